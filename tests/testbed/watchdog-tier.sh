#!/bin/sh
# A stand-in tier for watchdog_test.py, run in L1 through l1_tier.py: two
# groups of one case each, named and repeated the way guest_tier.py names
# and repeats its groups.  In its first L1, group b waits for the test to
# freeze L1 in the last repeat, after both groups have ended once; run
# again (l1_tier.py appends --group b), it passes at once.
# Usage: watchdog-tier.sh [--repeat N] [--group NAME]...
groups= again= repeat=1
while [ $# -gt 0 ]; do
    case $1 in
    --group) groups="$groups $2" again=1 ;;
    --repeat) repeat=$2 ;;
    esac
    shift 2
done
[ -n "$groups" ] || groups="a b"
echo "# groups:$(printf ' %s' $groups)"
n=0 i=1
while [ $i -le "$repeat" ]; do
    [ $i -gt 1 ] && echo "# repeat $i of $repeat"
    for g in $groups; do
        echo "# group $g begins"
        if [ "$g" = b ] && [ -z "$again" ] && [ $i -eq "$repeat" ]; then
            echo "watchdog-test: freeze me"
            sleep 600
        fi
        n=$((n + 1))
        echo "ok $n - $g"
        echo "# group $g ends"
    done
    i=$((i + 1))
done
echo "wdtest: $n passed, 0 failed"
