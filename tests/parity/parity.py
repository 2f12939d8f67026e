#!/usr/bin/python3
"""Feature parity: our packaged QEMU against Debian 12's qemu-system-x86.

Both binaries are asked what they have, the way a user or libvirt asks:
-device, -object, -netdev, -display, -audiodev, -chardev, -machine and
-accel help, the QMP commands and block drivers of query-qmp-schema, and
whether libvirt's -sandbox runs with QEMU's seccomp filter on.  Whatever
Debian's binary has and ours lacks fails, unless ALLOWED (allowed.txt)
lists it with a reason.  The configure switches of the build are compared
with those of debian/rules and debian/control of the tree it was built
from, the same way.

Prints "ok N - what: detail" / "not ok N - what: reason" and closes with
"parity: N passed, M failed".
"""

import argparse
import json
import os
import re
import select
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# What libvirt 12.9 passes when QEMU has a sandbox (qemu.conf's
# seccomp_sandbox = 1, Debian's default).
SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny'


class Qemu:
    def __init__(self, name, argv):
        self.name = name
        self.argv = argv

    def run(self, *args, ok=True):
        r = subprocess.run(self.argv + list(args), capture_output=True,
                           text=True, timeout=60, check=False)
        if ok and r.returncode != 0:
            raise RuntimeError(f'{self.name} {" ".join(args)}: exit '
                               f'{r.returncode}: {r.stderr.strip()[-300:]}')
        return r

    def listed(self, option, header):
        """The names of `OPTION help` after its @header line."""
        out = [line.strip() for line in
               self.run(option, 'help').stdout.splitlines()]
        if header not in out:
            raise RuntimeError(f'{self.name} {option} help: no "{header}" '
                               f'in {out[:3]}')
        return {line.split()[0] for line in out[out.index(header) + 1:]
                if line.strip()}

    def devices(self):
        out = self.run('-device', 'help').stdout
        return set(re.findall(r'^name "([^"]+)"', out, re.M))

    def machines(self):
        out = self.run('-machine', 'help').stdout.splitlines()[1:]
        return {line.split()[0] for line in out if line.strip()}

    def accels(self):
        out = self.run('-accel', 'help').stdout.splitlines()[1:]
        return {line.strip() for line in out if line.strip()}

    def qmp(self, extra, *cmds, probe=None):
        """Start QEMU with a QMP monitor on stdio, run @cmds, call
        @probe(pid) while it runs, quit; the answers and @probe's result."""
        p = subprocess.Popen(self.argv + extra + ['-qmp', 'stdio'],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            answers = []
            self.read(p)                                 # the greeting
            for cmd in ('qmp_capabilities',) + cmds:
                p.stdin.write(json.dumps({'execute': cmd}) + '\n')
                p.stdin.flush()
                answers.append(self.read(p))
            seen = probe(p.pid) if probe else None
            p.stdin.write('{"execute": "quit"}\n')
            p.stdin.flush()
            p.wait(timeout=30)
            return answers[1:], seen
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def read(self, p, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r, _, _ = select.select([p.stdout], [], [], 1)
            if r:
                line = p.stdout.readline()
                if not line:
                    break
                msg = json.loads(line)
                if 'event' not in msg:
                    return msg
            elif p.poll() is not None:
                break
        raise RuntimeError(f'{self.name}: no QMP answer: exit {p.poll()}, '
                           f'{p.stderr.read()[-300:] if p.poll() is not None else ""}')

    def schema(self):
        (ans,), _ = self.qmp(['-machine', 'none', '-nodefaults',
                              '-display', 'none'], 'query-qmp-schema')
        return ans['return']


def schema_commands(schema):
    return {e['name'] for e in schema if e['meta-type'] == 'command'}


def schema_block_drivers(schema):
    """The values of blockdev-add's "driver" enum."""
    by_name = {e['name']: e for e in schema}
    cmd = by_name['blockdev-add']
    obj = by_name[cmd['arg-type']]
    driver = [m for m in obj['members'] if m['name'] == 'driver'][0]
    return set(by_name[driver['type']]['values'])


def read_allowed(path):
    """kind name reason... -> {(kind, name): reason}"""
    allowed = {}
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                kind, name, reason = line.split(None, 2)
                allowed[(kind, name)] = reason
    return allowed


SWITCH = r'(?<![^\s"])(--[a-z][-a-z0-9]*(?:=[^\s"]*)?)'


def switch_names(switches):
    """Each switch, and its name alone (the part before any "=")."""
    return set(switches) | {s.split('=')[0] for s in switches}


def debian_switches(tree):
    """The configure switches Debian's d/rules gives its system build on
    amd64: its common ones, its own, and those that d/control's comments
    hold for linux-amd64.  A value that is a make variable counts as the
    switch's name alone."""
    opts = subprocess.run(['sh', f'{tree}/debian/extract-config-opts',
                           'linux-amd64', f'{tree}/debian/control'],
                          capture_output=True, text=True, check=True).stdout
    with open(f'{tree}/debian/rules') as f:
        rules = f.read()
    common = re.search(r'^common_configure_opts = \\\n((?:.*\\\n)*)', rules,
                       re.M).group(1)
    block = rules[rules.index('b/qemu/configured: configure'):]
    block = common + block[:block.index('touch $@')]
    found = set(opts.split()) | set(re.findall(SWITCH, block))
    return {s.split('=')[0] if '$' in s or s.endswith('=') else s
            for s in found}


class Parity:
    def __init__(self, args):
        self.args = args
        self.n = self.failed = 0
        self.allowed = read_allowed(args.allowed)
        self.used = set()
        self.table = []

    def report(self, ok, what, detail):
        self.n += 1
        self.failed += not ok
        print(f'{"ok" if ok else "not ok"} {self.n} - {what}: {detail}',
              flush=True)

    def compare(self, kind, theirs, ours):
        missing = sorted(theirs - ours)
        excused = [m for m in missing if (kind, m) in self.allowed]
        self.used |= {(kind, m) for m in excused}
        bad = [m for m in missing if (kind, m) not in self.allowed]
        extra = sorted(ours - theirs)
        self.table.append((kind, len(theirs), len(ours & theirs), extra,
                           excused))
        detail = (f'Debian {len(theirs)}, ours {len(ours)}; all of '
                  f"Debian's present" if not missing else
                  f'Debian {len(theirs)}, ours {len(ours)}')
        if excused:
            detail += '; missing with a listed reason: ' + ', '.join(
                f'{m} ({self.allowed[(kind, m)]})' for m in excused)
        if extra:
            detail += f'; ours only: {", ".join(extra)}'
        if bad:
            self.report(False, kind, f'missing in ours: {", ".join(bad)}; '
                        f'{detail}')
        else:
            self.report(True, kind, detail)

    def case(self, kind, fn):
        try:
            fn()
        except (RuntimeError, OSError, subprocess.SubprocessError,
                KeyError, ValueError) as e:
            self.report(False, kind, ' '.join(str(e).split()))

    def sandbox(self, q):
        """libvirt's -sandbox on a q35 machine: QEMU runs under a seccomp
        filter (Seccomp: 2) and answers QMP."""
        def seccomp(pid):
            with open(f'/proc/{pid}/status') as f:
                return [line.split()[1] for line in f
                        if line.startswith('Seccomp:')][0]
        r = q.run('-sandbox', 'help', ok=False)
        (st,), mode = q.qmp(['-machine', 'q35', '-accel', 'tcg', '-nodefaults',
                             '-display', 'none', '-sandbox', SANDBOX],
                            'query-status', probe=seccomp)
        if mode != '2' or 'return' not in st:
            raise RuntimeError(f'{q.name} -sandbox {SANDBOX}: Seccomp: '
                               f'{mode}, query-status {st}; {r.stderr.strip()}')
        return f'Seccomp: {mode}, status {st["return"]["status"]}'

    def main(self):
        ours = Qemu('ours', self.args.ours)
        deb = Qemu('Debian', self.args.debian)
        print(f'# ours: {shlex.join(ours.argv)}: '
              f'{ours.run("-version").stdout.splitlines()[0]}')
        print(f'# Debian: {shlex.join(deb.argv)}: '
              f'{deb.run("-version").stdout.splitlines()[0]}')
        lists = [
            ('device', Qemu.devices),
            ('object', lambda q: q.listed('-object',
                                          'List of user creatable objects:')),
            ('netdev', lambda q: q.listed('-netdev',
                                          'Available netdev backend types:')),
            ('display', lambda q: q.listed('-display',
                                           'Available display backend types:')),
            ('audiodev', lambda q: q.listed('-audiodev',
                                            'Available audio drivers:')),
            ('chardev', lambda q: q.listed('-chardev',
                                           'Available chardev backend types:')),
            ('machine', Qemu.machines),
            ('accel', Qemu.accels),
        ]
        for kind, fn in lists:
            self.case(kind, lambda: self.compare(kind, fn(deb), fn(ours)))
        schemas = {}

        def schema(q):
            if q.name not in schemas:
                schemas[q.name] = q.schema()
            return schemas[q.name]
        self.case('qmp-command', lambda: self.compare(
            'qmp-command', schema_commands(schema(deb)),
            schema_commands(schema(ours))))
        self.case('block-driver', lambda: self.compare(
            'block-driver', schema_block_drivers(schema(deb)),
            schema_block_drivers(schema(ours))))

        def sandbox():
            theirs = self.sandbox(deb)
            self.report(True, 'sandbox', f'-sandbox {SANDBOX}: ours '
                        f'{self.sandbox(ours)} (Debian: {theirs})')
        self.case('sandbox', sandbox)
        if self.args.tree:
            self.case('configure', self.configure)
        kinds = {row[0] for row in self.table}
        stale = sorted(k for k in set(self.allowed) - self.used
                       if k[0] in kinds)
        self.report(not stale, 'allowed list',
                    'every entry still needed' if not stale else
                    f'entries no longer missing, remove them: {stale}')
        print('# feature | Debian 12 | ours (both: names in common; ours '
              'only; missing with a reason)')
        for kind, theirs, common, extra, excused in self.table:
            print(f'# {kind} | {theirs} | {common} of them'
                  f'{" + " + ", ".join(extra) if extra else ""}'
                  f'{"; missing: " + ", ".join(excused) if excused else ""}')
        print(f'1..{self.n}')
        print(f'parity: {self.n - self.failed} passed, {self.failed} failed',
              flush=True)
        return 1 if self.failed else 0

    def configure(self):
        """Our configure switches against Debian's: each of Debian's, by
        name and value where Debian's value is literal."""
        with open(os.path.join(self.args.obj, '.configure-args')) as f:
            raw = set(re.findall(SWITCH, f.read()))
        theirs = debian_switches(self.args.tree)
        names = {t.split('=')[0] for t in theirs}
        ours = (switch_names(raw) & theirs |
                {s for s in raw if s.split('=')[0] not in names})
        self.compare('configure', theirs, ours)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--ours', required=True, type=shlex.split,
                    help='our binary, with arguments if needed')
    ap.add_argument('--debian', default=['/usr/bin/qemu-system-x86_64'],
                    type=shlex.split, help="Debian 12's binary")
    ap.add_argument('--allowed', default=os.path.join(HERE, 'allowed.txt'))
    ap.add_argument('--obj', help='the build directory (its .configure-args)')
    ap.add_argument('--tree', help='the source tree with debian/')
    args = ap.parse_args()
    sys.exit(Parity(args).main())


if __name__ == '__main__':
    main()
