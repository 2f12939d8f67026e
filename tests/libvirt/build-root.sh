#!/bin/sh
# Build (once) the Debian trixie root that the libvirt tier runs inside L1:
# libvirt 12.x from trixie-backports (the first Debian libvirt with
# iommufd) as Debian installs it (libvirt-daemon-system: its AppArmor
# profiles and qemu.conf defaults), AppArmor, swtpm, qemu-img, and the
# libraries our QEMU needs, with the settings of a daemon without systemd,
# udev or cgroups (L1 has none of them).  Prints the root's path as the
# last line of stdout.
#
# With DEB, a qemu-iommufd package: the libraries it links.  It is built
# on Debian 12 and its Depends name bookworm's packages: each name that
# trixie (or trixie-backports) has, by itself or through a package that
# provides it (the 64-bit time_t renames), is installed from there; the
# few libraries whose soname trixie no longer ships (libaio.so.1, capstone
# 4, fuse3 3, libnfs 13) come from bookworm, the only packages allowed
# from it.  The
# tier installs the package under test in L1 (dpkg --force-depends for the
# names trixie renamed, then checks that every library resolves).
#
# Cache: $QEMU_IOMMUFD_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/qemu-iommufd)
# /libvirt-root/KEY, KEY = sha256 of the packages, the settings, the
# mirror and DEB's Depends; KEY/complete marks a finished root,
# KEY/versions lists what it holds, KEY/build.log is mmdebstrap's log.
# Concurrent callers wait on a lock.  libvirt-daemon-driver-qemu depends on
# a QEMU, so the root also has trixie's qemu-system-x86 (not used by the
# tests).
#
# Usage: tests/libvirt/build-root.sh [DEB]     ($DEBIAN_MIRROR overrides the mirror)
set -eu

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${QEMU_IOMMUFD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qemu-iommufd}/libvirt-root

say() { echo "build-root: $*" >&2; }
die() { say "$*"; exit 1; }

# libvirtd and virsh from trixie-backports; what build/obj's QEMU (and the
# qemu-iommufd package) link and load from trixie: glib, pixman, fdt, zlib,
# SeaBIOS, iPXE, qemu-system-data.
pkgs="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    libvirt-daemon-system apparmor apparmor-profiles swtpm swtpm-tools
    qemu-utils libglib2.0-0t64 libpixman-1-0 libfdt1 zlib1g seabios ipxe-qemu
    qemu-system-data"
deb=${1:-}
deps=""
if [ -n "$deb" ]; then
    deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
    deps=$(dpkg-deb -f "$deb" Depends)
fi

# Settings for the daemon inside L1: no cgroups, no mount namespace for
# QEMU (L1 has no cgroup hierarchy; l1-libvirt.sh gives libvirtd a mount
# namespace of its own), QEMU's stdio in a plain file.  Confinement stays
# at Debian's defaults: security_driver unset (libvirt picks AppArmor where
# the kernel has it), seccomp_sandbox unset (1: QEMU's -sandbox).  The
# packages create libvirt-qemu (uid 64055) and put it in group kvm, which
# L1's /dev/kvm gets (no udev there).
hook='set -e
cat >> "$1/etc/libvirt/qemu.conf" <<EOF
# tests/libvirt (build-root.sh)
user = "libvirt-qemu"
group = "libvirt-qemu"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
EOF
chroot "$1" id libvirt-qemu | grep -q "(kvm)"
mkdir -p "$1/var/lib/libvirt/images"'
# Bookworm as a source for the libraries trixie dropped, and nothing else.
bookworm_only="libaio1 libcapstone4 libfuse3-3 libnfs13"
setup='set -e
mkdir -p "$1/etc/apt/preferences.d"
printf "Package: *\nPin: release n=bookworm\nPin-Priority: -1\n\nPackage: %s\nPin: release n=bookworm\nPin-Priority: 500\n" \
    "'"$bookworm_only"'" >"$1/etc/apt/preferences.d/bookworm"'
debhook=""
if [ -n "$deb" ]; then
    names=$(echo "$deps" | tr ',' '\n' | sed 's/|.*//; s/(.*//; s/ //g')
    debhook='set -e
for p in '"$(echo $names)"'; do
    chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends --no-remove "$p" >/dev/null 2>&1 ||
        echo "build-root: $p not installed (trixie renamed it, or it would remove others)"
done'
fi

# The root is what mmdebstrap makes of these: rebuilt when they change.
key=$(printf '%s\n' "$pkgs" "$hook" "$setup" "$debhook" "$mirror" | sha256sum | cut -c1-16)
dir=$cache/$key
if [ -f "$dir/complete" ]; then
    echo "$dir/root"
    exit 0
fi
mkdir -p "$dir"
exec 9>"$dir/lock"
flock -n 9 || { say "waiting for another build of $key"; flock 9; }
if [ -f "$dir/complete" ]; then
    echo "$dir/root"
    exit 0
fi

"$(dirname "$0")/../../scripts/deps.sh" libvirt >&2 || die "cannot install mmdebstrap"

rm -rf "$dir/root" "$dir/root.tmp"
say "building a trixie root with libvirt from trixie-backports (log: $dir/build.log)"
start=$(date +%s)
set --
[ -z "$debhook" ] || set -- --customize-hook="$debhook"
# shellcheck disable=SC2086
mmdebstrap --variant=apt --mode=root \
    --aptopt='APT::Default-Release "trixie-backports"' \
    --include="$(echo $pkgs | tr ' ' ',')" \
    --setup-hook="$setup" --customize-hook="$hook" "$@" \
    trixie "$dir/root.tmp" \
    "deb $mirror trixie main" "deb $mirror trixie-backports main" \
    "deb $mirror bookworm main" "deb $mirror-security bookworm-security main" \
    >"$dir/build.log" 2>&1 || { tail -n 20 "$dir/build.log" >&2; die "mmdebstrap failed"; }

chroot "$dir/root.tmp" dpkg-query -W -f='${Package} ${Version}\n' \
    libvirt-daemon libvirt-clients qemu-system-x86 seabios libc6 apparmor \
    swtpm >"$dir/versions" 2>/dev/null || true
grep -q '^libvirt-daemon 12\.' "$dir/versions" ||
    die "expected libvirt 12.x, got: $(cat "$dir/versions")"
mv "$dir/root.tmp" "$dir/root"
touch "$dir/complete"
say "built in $(($(date +%s) - start)) s, $(du -sh "$dir/root" | cut -f1): $(tr '\n' ' ' <"$dir/versions")"
echo "$dir/root"
