#!/bin/bash
# Configure (once) and build QEMU from the assembled tree.
# Usage: scripts/build.sh TREE BUILDDIR [extra configure args...]
set -euo pipefail

tree=$(cd "${1:?usage: build.sh TREE BUILDDIR}" && pwd)
mkdir -p "${2:?usage: build.sh TREE BUILDDIR}"
obj=$(cd "$2" && pwd)
shift 2

# One configuration for the binary the tiers test and the one the package
# ships (packaging/): Debian 12's qemu-system-x86, as debian/rules and the
# configure switches in debian/control's comments build it for amd64
# (tests/parity/check.sh compares these with the fetched debian/ tree), for
# x86_64-softmmu alone.  As Debian's, the build starts from QEMU's default
# features (each "auto" one is on when its library is installed: deps.sh
# installs Debian's Build-Depends); debian/control names switches for
# patterns such as "amd64" that its extract-config-opts never matches
# against "linux-amd64", so Debian gets seccomp, rbd, glusterfs and numa
# by detection: we ask for them, so that a missing library fails here.  Installed under /usr beside Debian's QEMU: data in
# /usr/share/qemu-iommufd, modules in /usr/lib/x86_64-linux-gnu/qemu-iommufd
# (--with-suffix), firmware from Debian's seabios, ipxe-qemu and
# qemu-system-data (the +dfsg source has none).
#   Left out, with the reason: --enable-docs (the manual and man pages ship
#   in Debian's qemu-system-common, and sphinx costs build time), the tools,
#   the guest agent and virtiofsd (qemu-img and friends are Debian's
#   qemu-utils, qemu-guest-agent and qemu-system-common; x86_64-softmmu
#   needs none of them).
firmware=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
debian_switches="--enable-capstone --enable-linux-aio
    --audio-drv-list=pa,alsa,jack,oss,sdl --enable-attr --enable-bpf
    --enable-brlapi --enable-virtfs --enable-cap-ng --enable-curl
    --enable-fdt=system --enable-fuse --enable-gnutls --enable-gtk --enable-vte
    --enable-libiscsi --enable-curses --enable-virglrenderer --enable-opengl
    --enable-libnfs --enable-smartcard --enable-vnc-sasl --enable-sdl
    --enable-slirp --enable-spice --enable-rdma --enable-linux-io-uring
    --enable-libusb --enable-usb-redir --enable-libssh --enable-zstd
    --enable-vde --enable-nettle --enable-libudev --enable-vnc
    --enable-vnc-jpeg --enable-png --enable-libpmem --enable-kvm
    --enable-vhost-net --enable-seccomp --enable-rbd --enable-glusterfs
    --enable-numa"
# shellcheck disable=SC2086
args=(--target-list=x86_64-softmmu
      --prefix=/usr --sysconfdir=/etc "--libdir=/usr/lib/$multiarch"
      --libexecdir=/usr/lib/qemu --localstatedir=/var
      "--firmwarepath=$firmware" --disable-install-blobs --disable-strip
      --with-git-submodules=ignore --disable-user --disable-xen
      --enable-modules --enable-module-upgrades $debian_switches
      "--extra-ldflags=-Wl,-z,relro -Wl,-z,now -Wl,--as-needed"
      --with-pkgversion=qemu-iommufd --with-suffix=qemu-iommufd
      --disable-docs --disable-tools --disable-guest-agent --disable-virtiofsd
      --enable-trace-backends=log "$@")
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
