#!/bin/sh
# Run COMMAND inside an L1 guest: Debian's qemu-system-x86_64 (TCG, q35,
# emulated VT-d, two edu devices bound to vfio-pci), booting the test kernel
# with the host's / as a read-only 9p root (plus a throw-away tmpfs overlay).
# The command runs with the caller's cwd, PATH and --env variables, and
# L1_EDU_BDFS / L1_RESULTS set; its output (stdout and stderr together) is
# streamed to stdout and its exit status becomes ours.
#
# Usage: tests/testbed/run-l1.sh [--kernel BZIMAGE] [--timeout SECS]
#            [--env VAR[=VALUE]]... [--results DIR] [--mem SIZE]
#            [--qemu-arg ARG]... [--no-edu] -- COMMAND [ARGS...]
#
#   --results DIR  writable 9p share, mounted in L1 at the same path
#                  (default: a temporary directory, removed on success);
#                  DIR/.l1/console.log is the full L1 console log
#   --qemu-arg ARG one more argument for the outer emulator (repeatable)
#   --no-edu       leave out the two default edu devices (give your own
#                  with --qemu-arg)
#   $L1_QEMU       outer emulator (default qemu-system-x86_64)
#   $L1_SILENCE    seconds of console silence before the watchdog acts
#                  (default 90; 0 turns the watchdog off)
# Exit status: the command's, 123 when L1 froze (see l1_watchdog.py), 124
# on timeout (default 1200 s), 125 if L1 failed to set up or finish.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
kernel= timeout=${L1_TIMEOUT:-1200} results= mem=2G extra= exports=
edus="-device edu -device edu"
qemu=${L1_QEMU:-qemu-system-x86_64}

say() { echo "run-l1: $*" >&2; }
die() { say "$*"; exit 125; }
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

while [ $# -gt 0 ]; do
    case $1 in
    --kernel) kernel=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --env)
        name=${2%%=*}
        case $name in '' | [0-9]* | *[!A-Za-z0-9_]*) die "bad --env $2" ;; esac
        if [ "$name" != "$2" ]; then
            exports="$exports export $name=$(q "${2#*=}");"
        elif eval "[ -n \"\${$name+set}\" ]"; then
            eval "exports=\"\$exports export \$name=\$(q \"\$$name\");\""
        fi
        shift 2 ;;
    --results) results=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --qemu-arg) extra="$extra $(q "$2")"; shift 2 ;;
    --no-edu) edus=; shift ;;
    --) shift; break ;;
    *) die "unknown option $1 (usage: run-l1.sh [options] -- COMMAND [ARGS...])" ;;
    esac
done
[ $# -gt 0 ] || die "no command given (usage: run-l1.sh [options] -- COMMAND [ARGS...])"

if [ -z "$kernel" ]; then
    kernel=$("$here/build-kernel.sh") || die "building the kernel failed"
    kernel=$(printf '%s\n' "$kernel" | tail -n 1)
fi
[ -f "$kernel" ] || die "no kernel $kernel"

tmp_results=
if [ -z "$results" ]; then
    results=$(mktemp -d "${TMPDIR:-/tmp}/l1-run.XXXXXX")
    tmp_results=1
fi
mkdir -p "$results"
results=$(cd "$results" && pwd)
case $results$here in
*[!A-Za-z0-9/._+-]*) die "paths must be plain for the kernel command line: $results $here" ;;
esac
ctl=$results/.l1
rm -rf "$ctl"
mkdir -p "$ctl"
log=$ctl/console.log

# The command as a script: environment, cwd, then the command itself.
{
    echo "export PATH=$(q "$PATH");$exports"
    echo "cd $(q "$(pwd)") || exit 127"
    printf 'exec'
    for a in "$@"; do printf ' %s' "$(q "$a")"; done
    echo
} >"$ctl/cmd.sh"

# no_timer_check: under TCG on a busy host the kernel's early check that
# the timer interrupt works through the remapped IO-APIC can time out and
# panic; the timer works, the check is only impatient.
append="console=ttyS0 panic=-1 intel_iommu=on iommu=nopt no_timer_check"
append="$append ro root=hostroot rootfstype=9p"
append="$append rootflags=trans=virtio,version=9p2000.L,msize=512000,cache=loose"
append="$append L1_RESULTS=$results init=/bin/sh -- $here/l1-init"

# Two monitors of the outer emulator: one the watchdog keeps connected,
# one for whoever else wants to look (its path is in .l1/qmp).  A unix
# socket path must stay short: they live in a directory of their own.
sockdir=$(mktemp -d "${TMPDIR:-/tmp}/l1-qmp.XXXXXX")
qmp=$sockdir/watchdog.sock
echo "$sockdir/qmp.sock" >"$ctl/qmp"

eval "set -- $extra"
say "booting L1 (kernel $kernel, results $results)"
start=$(date +%s)
rc=0
timeout -k 10 "$timeout" "$qemu" \
    -machine q35 -accel tcg -m "$mem" -smp 2 -cpu EPYC \
    -nodefaults -display none -no-reboot \
    -serial file:"$log" -serial stdio \
    -qmp unix:"$qmp",server=on,wait=off \
    -qmp unix:"$sockdir/qmp.sock",server=on,wait=off -pidfile "$ctl/qemu.pid" \
    -device intel-iommu,intremap=on \
    $edus \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap,id=hostroot \
    -virtfs local,path="$results",mount_tag=results,security_model=none,id=results \
    -kernel "$kernel" -append "$append" \
    "$@" </dev/null 2>"$ctl/qemu.err" &
qpid=$!

# The watchdog watches L1's console from out here (l1_watchdog.py); it
# needs QEMU's Python library (qemu.qmp) from the assembled tree.
wpid=
pylib=${L1_QEMU_PYTHON:-$here/../../build/qemu/python}
if [ "${L1_SILENCE:-90}" != 0 ]; then
    if [ -d "$pylib/qemu/qmp" ]; then
        PYTHONPATH=$pylib${PYTHONPATH:+:$PYTHONPATH} \
            python3 "$here/l1_watchdog.py" --ctl "$ctl" --qmp "$qmp" \
            --pidfile "$ctl/qemu.pid" --silence "${L1_SILENCE:-90}" \
            --system-map "$(dirname "$kernel")/build/System.map" &
        wpid=$!
    else
        say "no watchdog: QEMU's Python library is not at $pylib (make tree)"
    fi
fi
# A background job ignores SIGINT: pass an interrupt on.
trap 'kill $qpid $wpid 2>/dev/null' INT TERM HUP
wait $qpid || rc=$?
trap - INT TERM HUP
if [ -n "$wpid" ]; then
    kill "$wpid" 2>/dev/null || true
    wait "$wpid" 2>/dev/null || true
fi
rm -rf "$sockdir"
took=$(($(date +%s) - start))
if [ -f "$ctl/watchdog.log" ]; then
    say "the watchdog fired $(grep -c . "$ctl/watchdog.log") time(s), L1 woke $(grep -c '^woke' "$ctl/watchdog.log") time(s); state in $ctl/watchdog.txt"
fi

fail() {
    say "$1"
    # TCG's "doesn't support requested feature" warnings for -cpu EPYC are noise.
    if grep -qv "TCG doesn't support requested feature" "$ctl/qemu.err"; then
        say "outer emulator said:"
        grep -v "TCG doesn't support requested feature" "$ctl/qemu.err" | sed 's/^/  /' >&2
    fi
    if [ -s "$log" ]; then
        say "last console lines:"
        tail -n 20 "$log" | tr -d '\r' | sed 's/^/  /' >&2
    fi
    if [ -f "$ctl/watchdog.txt" ]; then
        say "where L1's vCPUs were:"
        sed -n '/^--- where the vCPUs are/,/^---/p' "$ctl/watchdog.txt" |
            grep '^CPU' | sed 's/^/  /' >&2
    fi
    say "console log: $log"
    exit "$2"
}
if [ -f "$ctl/frozen" ]; then
    fail "$(cat "$ctl/frozen")" 123
elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    fail "L1 timed out after $timeout s" 124
elif [ -f "$ctl/status" ]; then
    status=$(cat "$ctl/status")
elif [ -f "$ctl/error" ]; then
    fail "L1 setup failed: $(cat "$ctl/error")" 125
else
    fail "L1 did not finish (outer emulator exit status $rc)" 125
fi
say "command exited with status $status after $took s in L1"
[ "$status" = 0 ] && [ -n "$tmp_results" ] && rm -rf "$results"
[ "$status" = 0 ] || say "console log: $log"
exit "$status"
