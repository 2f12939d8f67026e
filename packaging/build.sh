#!/bin/sh
# Configure (once) and build the QEMU that `make install` and `make deb`
# install, in its own build directory (build/obj-pkg): configured for
# /usr/local with the data suffix qemu-iommufd; everything else as
# build/obj (scripts/build.sh, ccache).  QEMU 7.2 finds its data relative
# to its binary, so the result installs under any PREFIX (install.sh).
#
# Usage: packaging/build.sh BUILDDIR
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
# Only what gets installed (not the test programs of "all").
export NINJA_TARGETS="${NINJA_TARGETS:-qemu-system-x86_64 trace/trace-events-all}"
exec "$top/scripts/build.sh" "$top/build/qemu" "${1:?usage: build.sh BUILDDIR}" \
    --prefix=/usr/local --with-suffix=qemu-iommufd
