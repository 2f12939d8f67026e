#!/bin/sh
# Configure (once) and build QEMU from the assembled tree.
# Usage: scripts/build.sh TREE BUILDDIR [extra configure args...]
set -eu

tree=$(cd "${1:?usage: build.sh TREE BUILDDIR}" && pwd)
mkdir -p "${2:?usage: build.sh TREE BUILDDIR}"
obj=$(cd "$2" && pwd)
shift 2

# Debian's +dfsg source has no firmware: use Debian's seabios/ipxe files.
firmware=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
args="--target-list=x86_64-softmmu --without-default-features --enable-kvm
    --enable-fdt=system --disable-docs --enable-trace-backends=log
    --firmwarepath=$firmware $*"

# Reconfigure when the arguments change or a new tree was assembled (its
# files are older than the objects built from the tree it replaced).
created=$(cat "$tree/.git/qemu-iommufd-created" 2>/dev/null || true)
if [ ! -f "$obj/build.ninja" ] ||
   [ "$(cat "$obj/.configure-args" 2>/dev/null)" != "$created $tree $args" ]; then
    echo "build: configuring $obj" >&2
    rm -rf "$obj"
    mkdir -p "$obj"
    # shellcheck disable=SC2086
    (cd "$obj" && "$tree/configure" $args > configure.log 2>&1) || {
        tail -n 30 "$obj/configure.log" >&2
        echo "build: configure failed, see $obj/configure.log" >&2
        exit 1
    }
    echo "$created $tree $args" > "$obj/.configure-args"
fi

# A binary run from the build tree looks for firmware in qemu-bundle.
mkdir -p "$obj/qemu-bundle/usr/share" "$obj/qemu-bundle/usr/lib/ipxe"
ln -sfn /usr/share/seabios "$obj/qemu-bundle/usr/share/seabios"
ln -sfn /usr/share/qemu "$obj/qemu-bundle/usr/share/qemu"
ln -sfn /usr/lib/ipxe/qemu "$obj/qemu-bundle/usr/lib/ipxe/qemu"

total=$(ninja -C "$obj" -n 2>/dev/null | grep -c '^\[' || true)
echo "build: $total steps in $obj" >&2
# ninja prints one status line per step; show every 100th and errors.
NINJA_STATUS="[%f/%t] " ninja -C "$obj" "${NINJA_TARGETS:-all}" 2>&1 |
    awk '/^\[[0-9]+\/[0-9]+\] / { split(substr($1, 2), a, "/");
                                  if (a[1] % 100 == 0 || a[1] == a[2])
                                      print "build: " $1; fflush(); next }
         { print; fflush() }' >&2
status=$(ninja -C "$obj" -n "${NINJA_TARGETS:-all}" 2>/dev/null | grep -c '^\[' || true)
[ "$status" = 0 ] || { echo "build: ninja failed" >&2; exit 1; }
