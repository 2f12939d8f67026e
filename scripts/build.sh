#!/bin/bash
# Configure (once) and build QEMU from the assembled tree.
# Usage: scripts/build.sh TREE BUILDDIR [extra configure args...]
set -euo pipefail

tree=$(cd "${1:?usage: build.sh TREE BUILDDIR}" && pwd)
mkdir -p "${2:?usage: build.sh TREE BUILDDIR}"
obj=$(cd "$2" && pwd)
shift 2

# Debian's +dfsg source has no firmware: use Debian's seabios/ipxe files.
firmware=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
args=(--target-list=x86_64-softmmu --without-default-features --enable-kvm
      --enable-fdt=system --disable-docs --enable-trace-backends=log
      "--firmwarepath=$firmware" "$@")
if command -v ccache >/dev/null; then
    args+=("--cc=ccache cc" "--cxx=ccache c++")
fi

# Reconfigure when the arguments change or a new tree was assembled (its
# files are older than the objects built from the tree it replaced).
created=$(cat "$tree/.git/qemu-iommufd-created" 2>/dev/null || true)
want="$created $tree ${args[*]}"
if [ ! -f "$obj/build.ninja" ] || [ "$(cat "$obj/.configure-args" 2>/dev/null)" != "$want" ]; then
    echo "build: configuring $obj" >&2
    rm -rf "$obj"
    mkdir -p "$obj"
    (cd "$obj" && "$tree/configure" "${args[@]}" > configure.log 2>&1) || {
        tail -n 30 "$obj/configure.log" >&2
        echo "build: configure failed, see $obj/configure.log" >&2
        exit 1
    }
    echo "$want" > "$obj/.configure-args"
fi

# A binary run from the build tree looks for firmware in qemu-bundle.
mkdir -p "$obj/qemu-bundle/usr/share" "$obj/qemu-bundle/usr/lib/ipxe"
ln -sfn /usr/share/seabios "$obj/qemu-bundle/usr/share/seabios"
ln -sfn /usr/share/qemu "$obj/qemu-bundle/usr/share/qemu"
ln -sfn /usr/lib/ipxe/qemu "$obj/qemu-bundle/usr/lib/ipxe/qemu"

# A changed meson.build regenerates the build files: keep that quiet.
ninja -C "$obj" build.ninja > "$obj/regenerate.log" 2>&1 || {
    tail -n 30 "$obj/regenerate.log" >&2
    echo "build: regenerating $obj failed, see $obj/regenerate.log" >&2
    exit 1
}

# ninja prints a status line per step: show every 200th, and all else.
NINJA_STATUS="[%f/%t] " ninja -C "$obj" ${NINJA_TARGETS:-all} 2>&1 |
    awk '/^\[[0-9]+\/[0-9]+\] / {
             split(substr($1, 2), a, "/");
             if (a[1] % 200 == 0 || a[1] == a[2]) {
                 print "build: " $1; fflush()
             }
             next
         }
         /^ninja: (Entering|no work)/ { next }
         { print; fflush() }' >&2 || {
    echo "build: ninja failed in $obj" >&2
    exit 1
}
echo "build: $obj/qemu-system-x86_64 is up to date" >&2
