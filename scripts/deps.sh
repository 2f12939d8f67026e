#!/bin/sh
# Install the Debian packages a make target needs, when they are missing.
# Usage: scripts/deps.sh GROUP...   (groups: build src kernel testbed deb
#                                    libvirt bench parity lint)
#        scripts/deps.sh --packages PACKAGE...
# apt-get waits up to 10 minutes for the dpkg lock (other installs, or
# unattended-upgrades on a fresh machine).
set -eu

# The libraries of Debian 12's QEMU build: the Build-Depends of the qemu
# source package's debian/control for amd64, less documentation (texinfo,
# sphinx: we build no docs) and Xen (libxen-dev: Debian's main build has
# --disable-xen).  Virtual names resolved: gnutls-dev -> libgnutls28-dev.
pkgs_debian="libcapstone-dev libaio-dev libjack-dev libpulse-dev
    libasound2-dev libbpf-dev libbrlapi-dev libcap-ng-dev libcurl4-gnutls-dev
    libfuse3-dev libgnutls28-dev libgtk-3-dev libvte-2.91-dev libiscsi-dev
    libncurses-dev libvirglrenderer-dev libva-dev libepoxy-dev libdrm-dev
    libgbm-dev libnfs-dev libnuma-dev libcacard-dev librbd-dev
    libglusterfs-dev libsasl2-dev libsdl2-dev libseccomp-dev libslirp-dev
    libspice-server-dev librdmacm-dev libibverbs-dev libibumad-dev
    liburing-dev libusb-1.0-0-dev libusbredirparser-dev libssh-dev
    libzstd-dev libvdeplug-dev nettle-dev uuid-dev libudev-dev libjpeg-dev
    libpng-dev libpmem-dev"
pkgs_build="build-essential pkg-config python3 ninja-build meson
    libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev ccache git
    seabios ipxe-qemu qemu-system-data $pkgs_debian"
pkgs_src="dpkg-dev"
pkgs_kernel="linux-source-6.12 bc bison flex libelf-dev libssl-dev xz-utils
    cpio"
# tests/libvirt and tests/bench run python3 and strace inside L1; the guest
# tier's L2 runs busybox from an initramfs (cpio) and is debugged with gdb.
pkgs_testbed="qemu-system-x86 strace busybox-static cpio gdb"
# make deb builds with Debian's packaging tools; tests/libvirt builds its
# trixie root, and packaging/check-deb.sh a fresh bookworm one, with
# mmdebstrap.
pkgs_deb="debhelper dpkg-dev"
pkgs_libvirt="mmdebstrap"
# tests/bench: the reference program, strace in L1, the report's plots.
pkgs_bench="build-essential python3 strace gnuplot-nox"
# tests/parity compares our package with Debian 12's QEMU for x86, as a
# desktop user installs it: the emulator, its GUI modules (GTK, SDL,
# PulseAudio, virtio-gpu-gl) and the extra block drivers.
pkgs_parity="qemu-system-x86 qemu-system-gui qemu-block-extra"

# scripts/lint.sh: the tests' Python and shell checked without running.
pkgs_lint="python3-pyflakes shellcheck"

want=""
if [ "${1:-}" = --packages ]; then
    shift
    want="$*"
    set --
fi
for group in "$@"; do
    eval "want=\"\$want \$pkgs_$group\""
done

# The kernel UAPI headers (linux/vfio.h, linux/iommufd.h of 6.6 or later)
# come from linux-headers-6.12.*-common, whose name carries the ABI.
case " $* " in
*" build "*)
    if ! ls -d /usr/src/linux-headers-6.*-common >/dev/null 2>&1; then
        find_headers() {
            apt-cache search --names-only '^linux-headers-6\.12\..*-common$' |
                cut -d' ' -f1 | grep -v -- '-rt$' | sort -V | tail -n 1
        }
        hdrs=$(find_headers)
        if [ -z "$hdrs" ] && [ "$(id -u)" = 0 ]; then
            apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
            hdrs=$(find_headers)
        fi
        [ -n "$hdrs" ] || {
            echo "deps: apt knows no linux-headers-6.12.*-common package" >&2
            exit 1
        }
        want="$want $hdrs"
    fi
    ;;
esac

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
if [ "$(id -u)" != 0 ]; then
    echo "deps: installing packages needs root (apt-get); run as root or install:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
    $missing >/dev/null
