#!/bin/sh
# Inside L1 (through run-l1.sh): enter the trixie root built by
# build-root.sh, start libvirtd there and run the libvirt tier.
#
# The root is a chroot on L1's throw-away overlay (writes vanish with L1).
# It gets /proc, L1's /sys and /dev (the real devices: /dev/iommu, the VFIO
# nodes, /dev/kvm), fresh /run and /tmp, this checkout and the results
# share at their own paths (build/obj's QEMU runs where it lies), and L1's
# own root, Debian 12, at /bookworm: Debian's stock QEMU 7.2 runs from
# there, with bookworm's loader and libraries (wrapper
# /usr/local/bin/qemu-system-x86_64-debian12).
#
# Confinement as on a Debian host: where L1's kernel has AppArmor,
# libvirt's own profiles (libvirtd, virt-aa-helper) are loaded from the
# root and libvirtd runs under its profile, in a mount namespace whose root
# is the trixie root (pivot_root: AppArmor matches paths from the
# namespace's root, which a chroot would prefix), so that libvirt's
# AppArmor driver confines each QEMU with the profile virt-aa-helper writes.
#
# Usage: tests/libvirt/l1-libvirt.sh ROOT [libvirt_tier.py options...]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
root=${1:?usage: l1-libvirt.sh ROOT [options...]}
shift

say() { echo "l1-libvirt: $*"; }

# securityfs before /sys is bound into the root: apparmor_parser and
# libvirt look for AppArmor there.
aa=/sys/kernel/security/apparmor
if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ]; then
    mountpoint -q /sys/kernel/security ||
        mount -n -t securityfs securityfs /sys/kernel/security
fi
mount -n -t proc proc "$root/proc"
mount -n --rbind /sys "$root/sys"
mount -n --rbind /dev "$root/dev"
mount -n -t tmpfs -o mode=755 tmpfs "$root/run"
mount -n -t tmpfs -o mode=1777 tmpfs "$root/tmp"
for d in "$top" "${L1_RESULTS:-}"; do
    [ -n "$d" ] || continue
    mkdir -p "$root$d"
    mount -n --rbind "$d" "$root$d"
done
mkdir -p "$root/bookworm"
mount -n --bind / "$root/bookworm"

# No udev in L1: give /dev/kvm to group kvm as Debian's udev rules do.
kvm=$(chroot "$root" getent group kvm | cut -d: -f3)
chgrp "$kvm" /dev/kvm
chmod 660 /dev/kvm

mkdir -p "$root/usr/local/bin"
cat >"$root/usr/local/bin/qemu-system-x86_64-debian12" <<'EOF'
#!/bin/sh
# Debian 12's stock QEMU 7.2 (qemu-system-x86), run from L1's root with its
# own loader (not /lib64's link: it points into this root), libraries,
# modules and firmware (run through the loader, QEMU cannot find its
# files relative to itself).
b=/bookworm
export QEMU_MODULE_DIR=$b/usr/lib/x86_64-linux-gnu/qemu
exec $b/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 \
    --library-path $b/lib/x86_64-linux-gnu:$b/usr/lib/x86_64-linux-gnu \
    $b/usr/bin/qemu-system-x86_64 "$@" \
    -L $b/usr/share/qemu -L $b/usr/share/seabios -L $b/usr/lib/ipxe/qemu
EOF
chmod 755 "$root/usr/local/bin/qemu-system-x86_64-debian12"

say "libvirt $(chroot "$root" dpkg-query -W -f='${Version}' libvirt-daemon)," \
    "starting libvirtd"
mkdir -p "$root/var/log/libvirt"
# Warnings and errors, and everything of libvirt's PCI device handling
# (binding, reset, return to the host driver).
if [ -d "$aa" ]; then
    # The test bed's own: libvirtd may run the stock wrapper (no profile
    # of its own: unconfined), as it may any /usr/bin/*.
    mkdir -p "$root/etc/apparmor.d/local"
    echo "  /usr/local/bin/qemu-system-x86_64-debian12 PUx," \
        >>"$root/etc/apparmor.d/local/usr.sbin.libvirtd"
    chroot "$root" apparmor_parser -r /etc/apparmor.d/usr.sbin.libvirtd \
        /etc/apparmor.d/usr.lib.libvirt.virt-aa-helper
    say "AppArmor: loaded $(grep -c . "$aa/profiles") profiles:" \
        "$(grep -o '^[^ ]*libvirt[^ ]* ([a-z]*)' "$aa/profiles" | tr '\n' ' ')"
else
    say "no AppArmor in L1's kernel: libvirt runs QEMU unconfined"
fi
mkdir -p "$root/.l1"
unshare -m sh -c '
    set -e
    mount --make-rprivate /
    mount --rbind "$1" "$1"
    cd "$1"
    pivot_root . .l1
    umount -l /.l1
    exec env LIBVIRT_LOG_OUTPUTS="1:file:/var/log/libvirt/libvirtd.log" \
        LIBVIRT_LOG_FILTERS="1:util.pci 1:*hostdev* 1:security" \
        /usr/sbin/libvirtd --daemon' sh "$root" || {
    say "no mount namespace rooted in the root: libvirtd in a chroot," \
        "where AppArmor cannot match its paths"
    chroot "$root" env LIBVIRT_LOG_OUTPUTS="1:file:/var/log/libvirt/libvirtd.log" \
        LIBVIRT_LOG_FILTERS="1:util.pci 1:*hostdev* 1:security" \
        /usr/sbin/libvirtd --daemon
}
n=0
until [ -S "$root/run/libvirt/libvirt-sock" ]; do
    n=$((n + 1))
    [ $n -lt 300 ] || { say "libvirtd did not start"; exit 1; }
    sleep 0.2
done

rc=0
/usr/bin/python3 "$here/libvirt_tier.py" --root "$root" "$@" || rc=$?
if [ -d "$aa" ] && dmesg | grep -q 'apparmor="DENIED"'; then
    say "AppArmor denials in this run (the apparmor case expects two):"
    dmesg | grep 'apparmor="DENIED"' | sed 's/^/# /' | tail -n 20
fi
kill "$(cat "$root/run/libvirtd.pid")" 2>/dev/null || true
exit $rc
