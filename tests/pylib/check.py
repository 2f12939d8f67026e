"""How a case fails: Fail with what was expected and what came."""


class Fail(Exception):
    """A case's check failed; the message says what was expected."""


class Hang(Fail):
    """An L2 guest stopped answering (or reset itself): worth a rerun."""


def check(cond, what):
    """Fail with @what unless @cond."""
    if not cond:
        raise Fail(what)


def expect(cond, what, expected, got):
    """Fail with '@what: expected @expected, got @got' unless @cond."""
    if not cond:
        raise Fail(f'{what}: expected {expected}, got {got}')
