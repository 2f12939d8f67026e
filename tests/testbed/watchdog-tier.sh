#!/bin/sh
# A stand-in tier for watchdog_test.py, run in L1 through l1_tier.py: two
# groups of one case each, named the way guest_tier.py names its groups.
# In its first L1, group b waits for the test to freeze L1; run again
# (l1_tier.py appends --group b), it passes at once.
# Usage: watchdog-tier.sh [--group NAME]...
groups= again=
while [ $# -gt 0 ]; do
    [ "$1" = --group ] && groups="$groups $2" && again=1
    shift 2
done
[ -n "$groups" ] || groups="a b"
echo "# groups:$(printf ' %s' $groups)"
n=0
for g in $groups; do
    echo "# group $g begins"
    if [ "$g" = b ] && [ -z "$again" ]; then
        echo "watchdog-test: freeze me"
        sleep 600
    fi
    n=$((n + 1))
    echo "ok $n - $g"
    echo "# group $g ends"
done
echo "wdtest: $n passed, 0 failed"
