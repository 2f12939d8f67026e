#!/bin/sh
# Install a qemu-iommufd package the way a user does, on a fresh Debian 12:
# a minimal bookworm root (mmdebstrap) with Debian's qemu-system-x86, then
# `apt-get install ./qemu-iommufd_*.deb ./qemu-iommufd-gui_*.deb` (the
# latter from beside DEB), which brings the dependencies.
# Checks that both packages are installed and share no file, and that the
# installed binary runs: its version, the iommufd object, its data and
# firmware paths, a q35 machine with SeaBIOS and an iPXE option ROM.
# Prints "deb: N passed, M failed" last.  The root is removed afterwards.
#
# Usage: packaging/check-deb.sh DEB       ($DEBIAN_MIRROR overrides the mirror)
set -u

deb=$(cd "$(dirname "${1:?usage: check-deb.sh DEB}")" && pwd)/$(basename "$1")
gui=$(dirname "$deb")/$(basename "$deb" | sed 's/^qemu-iommufd_/qemu-iommufd-gui_/')
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "not ok - $*"; }

root=$(mktemp -d "${TMPDIR:-/tmp}/check-deb.XXXXXX")
trap 'rm -rf "$root"' EXIT
echo "deb: a bookworm root with qemu-system-x86, then apt-get install $(basename "$deb")"
start=$(date +%s)
if ! mmdebstrap --variant=apt --mode=root --include=qemu-system-x86 \
    --customize-hook="copy-in $deb $gui /tmp" \
    --customize-hook="chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q /tmp/$(basename "$deb") /tmp/$(basename "$gui")" \
    bookworm "$root/root" "deb $mirror bookworm main" \
    "deb $mirror-security bookworm-security main" >"$root/log" 2>&1; then
    tail -n 20 "$root/log"
    bad "installing into a fresh bookworm root (mmdebstrap)"
    echo "deb: $passed passed, $failed failed"
    exit 1
fi
r=$root/root
ok "apt-get install ./$(basename "$deb") on a fresh bookworm root ($(($(date +%s) - start)) s)"
grep -E '^(Setting up|Unpacking) qemu-iommufd' "$root/log" | sed 's/^/#   /'

q() { chroot "$r" "$@" 2>&1; }
vers=$(q dpkg-query -W -f='${Package} ${Version} ${Status}\n' qemu-iommufd qemu-iommufd-gui qemu-system-x86)
echo "$vers" | sed 's/^/#   /'
[ "$(echo "$vers" | grep -c 'install ok installed$')" = 3 ] &&
    ok "qemu-iommufd, qemu-iommufd-gui and qemu-system-x86 installed" ||
    bad "both packages installed: $vers"

files() { q dpkg -L "$@" | sort -u | while read -r f; do [ -d "$r$f" ] || echo "$f"; done; }
ours=$(files qemu-iommufd qemu-iommufd-gui)
theirs=$(files qemu-system-x86 qemu-system-common qemu-system-data)
common=$(printf '%s\n%s\n' "$ours" "$theirs" | sort | uniq -d)
[ -z "$common" ] && ok "no file of qemu-iommufd belongs to Debian's QEMU packages: $(echo $ours)" ||
    bad "files in both: $common"

bin=/usr/bin/qemu-iommufd-system-x86_64
v=$(q $bin -version | head -n 1)
echo "$v" | grep -q '^QEMU emulator version 7\.2\.' && ok "$bin -version: $v" || bad "version: $v"
stock=$(q /usr/bin/qemu-system-x86_64 -version | head -n 1)
echo "$stock" | grep -q 'Debian' && ok "Debian's /usr/bin/qemu-system-x86_64 untouched: $stock" ||
    bad "stock version: $stock"
h=$(q $bin -object iommufd,help)
echo "$h" | grep -q 'fd=<' && ok "-object iommufd,help lists fd" || bad "iommufd help: $h"
h=$(q /usr/bin/qemu-system-x86_64 -object iommufd,help)
echo "$h" | grep -q "Parameter 'qom-type' does not accept value 'iommufd'" &&
    ok "the stock binary has no iommufd ($h)" ||
    bad "stock iommufd help: $h"
# -L help prints the relocated data directory as /usr/bin/../share/...
paths=$(q $bin -L help | while read -r p; do chroot "$r" realpath -m "$p"; done)
for p in /usr/share/qemu-iommufd /usr/share/seabios /usr/lib/ipxe/qemu /usr/share/qemu; do
    echo "$paths" | grep -qx "$p" && ok "-L help has $p" || bad "-L help lacks $p: $(echo $paths)"
done
out=$(printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"quit"}' |
    chroot "$r" $bin -machine q35 -accel tcg -display none -nodefaults \
        -device e1000 -qmp stdio 2>&1)
if [ $? = 0 ] && ! echo "$out" | grep -qi 'could not\|failed'; then
    ok "q35 with SeaBIOS and e1000's iPXE ROM starts and quits"
else
    bad "q35 start: $out"
fi

echo "deb: $passed passed, $failed failed"
[ "$failed" = 0 ]
