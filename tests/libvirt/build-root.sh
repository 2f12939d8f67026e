#!/bin/sh
# Build (once) the Debian trixie root that the libvirt tier runs inside L1:
# libvirt 12.x from trixie-backports (the first Debian libvirt with
# iommufd), the libraries and firmware our QEMU build needs, and the
# settings of a daemon without systemd, udev, cgroups or namespaces (L1 has
# none of them).  Prints the root's path as the last line of stdout.
#
# Cache: $QEMU_IOMMUFD_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/qemu-iommufd)
# /libvirt-root/KEY, KEY = sha256 of the packages, the settings and the
# mirror; KEY/complete marks a finished root, KEY/versions lists what it
# holds, KEY/build.log is mmdebstrap's log.  Concurrent callers wait on a
# lock.  libvirt-daemon-driver-qemu depends on a QEMU, so the root also has
# trixie's qemu-system-x86 (not used by the tests).
#
# Usage: tests/libvirt/build-root.sh      ($DEBIAN_MIRROR overrides the mirror)
set -eu

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${QEMU_IOMMUFD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qemu-iommufd}/libvirt-root

say() { echo "build-root: $*" >&2; }
die() { say "$*"; exit 1; }

# libvirtd and virsh from trixie-backports; what build/obj's QEMU (and the
# qemu-iommufd package) link and load from trixie: glib, pixman, fdt, zlib,
# SeaBIOS, iPXE, qemu-system-data.
pkgs="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    libglib2.0-0t64 libpixman-1-0 libfdt1 zlib1g seabios ipxe-qemu
    qemu-system-data"

# Settings for the daemon inside L1: no SELinux/AppArmor, no cgroups, no
# mount namespace (the root is a chroot on 9p, no mount point of its own),
# QEMU's stdio in a plain file.  The packages create libvirt-qemu (uid
# 64055) and put it in group kvm, which L1's /dev/kvm gets (no udev there).
hook='set -e
cat >> "$1/etc/libvirt/qemu.conf" <<EOF
# tests/libvirt (build-root.sh)
user = "libvirt-qemu"
group = "libvirt-qemu"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
EOF
chroot "$1" id libvirt-qemu | grep -q "(kvm)"
mkdir -p "$1/var/lib/libvirt/images"'

# The root is what mmdebstrap makes of these: rebuilt when they change.
key=$(printf '%s\n' "$pkgs" "$hook" "$mirror" | sha256sum | cut -c1-16)
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
# shellcheck disable=SC2086
mmdebstrap --variant=apt --mode=root \
    --aptopt='APT::Default-Release "trixie-backports"' \
    --include="$(echo $pkgs | tr ' ' ',')" \
    --customize-hook="$hook" \
    trixie "$dir/root.tmp" \
    "deb $mirror trixie main" "deb $mirror trixie-backports main" \
    >"$dir/build.log" 2>&1 || { tail -n 20 "$dir/build.log" >&2; die "mmdebstrap failed"; }

chroot "$dir/root.tmp" dpkg-query -W -f='${Package} ${Version}\n' \
    libvirt-daemon libvirt-clients qemu-system-x86 seabios libc6 >"$dir/versions" 2>/dev/null || true
grep -q '^libvirt-daemon 12\.' "$dir/versions" ||
    die "expected libvirt 12.x, got: $(cat "$dir/versions")"
mv "$dir/root.tmp" "$dir/root"
touch "$dir/complete"
say "built in $(($(date +%s) - start)) s, $(du -sh "$dir/root" | cut -f1): $(tr '\n' ' ' <"$dir/versions")"
echo "$dir/root"
