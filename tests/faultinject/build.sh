#!/bin/sh
# Build the fault injection library (see faultinject.c) with the VFIO and
# iommufd UAPI headers of an assembled QEMU tree.
# Usage: tests/faultinject/build.sh QEMU_TREE OUTPUT.so
set -eu

here=$(cd "$(dirname "$0")" && pwd)
tree=${1:?usage: build.sh QEMU_TREE OUTPUT.so}
out=${2:?usage: build.sh QEMU_TREE OUTPUT.so}
mkdir -p "$(dirname "$out")"
${CC:-cc} -shared -fPIC -O2 -g -Wall -Wextra -Werror \
    -I "$tree/linux-headers" -o "$out" "$here/faultinject.c" -ldl -lpthread
