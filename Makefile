# qemu-iommufd: QEMU 7.2 plus our iommufd series, assembled and built.
#
#   make             assemble the tree and build QEMU
#   make check       build what is missing and run every test tier
#   make deb         the packages of that build (build/deb)
#   make checkpatch  QEMU's checkpatch.pl over each patch of the series
#   make demo        the main job (see README.md)
#   make tree        (re)assemble build/qemu, a git tree of the series
#   make export      write build/qemu's history back into patches/
#
# QEMU_SRC=/path/to/qemu-7.2.x uses that tree instead of Debian's source.

SHELL := /bin/bash
TREE := build/qemu
OBJ := build/obj
QEMU := $(OBJ)/qemu-system-x86_64
CACHE ?= $(or $(QEMU_IOMMUFD_CACHE),$(HOME)/.cache/qemu-iommufd)

export QEMU_IOMMUFD_CACHE := $(CACHE)
export CCACHE_DIR ?= $(CACHE)/ccache
# Let runs from other checkouts share the compiler cache.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
export QEMU_SRC

# qtest-x86_64 tests left out of `make check`, with the reason:
#   bios-tables-test: the +dfsg tree's expected pc DSDT does not match what
#   7.2.22 generates; fails without our series too and tests no VFIO code.
#   pxe-test: boots iPXE with -accel kvm first; the KVM of our 2-core
#   machines (KVM-PVM) stops on iPXE's real-mode code ("KVM internal error.
#   Suberror: 1"), so does Debian's own binary.  It runs at all since user
#   networking is built in (Debian's configuration); no VFIO code.
QTEST_EXCLUDE := bios-tables-test pxe-test
# Single qtest cases skipped, with the reason:
#   /x86_64/migration/dirty_ring, /x86_64/migration/vcpu_dirty_limit: run
#   only where /dev/kvm offers a dirty ring.  On nested-KVM hosts such as
#   our CI machines the ring loses pages (dirty_ring finds guest RAM
#   inconsistent after migration) and the throttle that vcpu_dirty_limit
#   waits for never shows.  Neither involves a VFIO device; the other
#   migration cases run.
#   /x86_64/migration/*/tls/*: migration over TLS (PSK and x509), which
#   the Debian configuration builds (gnutls): 23 cases that take
#   migration-test past its timeout (450 s) on 2 shared cores, and no
#   VFIO device in any; the plain, multifd and compression cases run.
TLS_MIGRATION := $(addprefix /x86_64/migration/, \
	postcopy/recovery/tls/psk postcopy/preempt/recovery/tls/psk \
	postcopy/preempt/tls/psk postcopy/tls/psk precopy/unix/tls/psk \
	precopy/unix/tls/x509/default-host precopy/unix/tls/x509/override-host \
	precopy/tcp/tls/psk/match precopy/tcp/tls/psk/mismatch \
	precopy/tcp/tls/x509/default-host precopy/tcp/tls/x509/override-host \
	precopy/tcp/tls/x509/mismatch-host precopy/tcp/tls/x509/friendly-client \
	precopy/tcp/tls/x509/hostile-client precopy/tcp/tls/x509/allow-anon-client \
	precopy/tcp/tls/x509/reject-anon-client multifd/tcp/tls/psk/match \
	multifd/tcp/tls/psk/mismatch multifd/tcp/tls/x509/default-host \
	multifd/tcp/tls/x509/override-host multifd/tcp/tls/x509/mismatch-host \
	multifd/tcp/tls/x509/allow-anon-client multifd/tcp/tls/x509/reject-anon-client)
QTEST_SKIP := /x86_64/migration/dirty_ring /x86_64/migration/vcpu_dirty_limit \
	$(TLS_MIGRATION)

.PHONY: all build deps tree export lint checkpatch check check-qtest \
	check-roundtrip check-parity check-testbed check-watchdog check-series \
	check-reliability check-asan \
	check-guest check-mdev check-migration testbed-deps demo bench clean

all: build

deps:
	@scripts/deps.sh build src

tree: deps
	@scripts/assemble.sh $(TREE) $(if $(FORCE),--force)

build: tree
	@scripts/build.sh $(TREE) $(OBJ)

export:
	@scripts/export.sh $(TREE)

# The tests' own Python and shell, checked without running them.
lint:
	@scripts/deps.sh lint
	@scripts/lint.sh

checkpatch: tree
	@scripts/checkpatch.sh $(TREE)

check-roundtrip: deps
	@tests/scripts/roundtrip.sh

check-qtest: build
	@QTEST_SKIP="$(QTEST_SKIP)" scripts/qtest.sh $(OBJ) $(QTEST_EXCLUDE)

# Every tier, closing with one "N passed, N failed" line.  The build is
# also what the packages hold: parity and libvirt test those (build/deb).
check: build deb testbed-deps
	@QTEST_EXCLUDE="$(QTEST_EXCLUDE)" QTEST_SKIP="$(QTEST_SKIP)" PKG_DEBS=$(DEBS) \
		scripts/check.sh $(OBJ) \
		lint checkpatch roundtrip parity qtest testbed watchdog reliability \
		guest libvirt

# Our packages against Debian 12's qemu-system-x86 (tests/parity): devices,
# objects, netdevs, displays, QMP commands, -sandbox, configure switches.
check-parity: deb
	@scripts/deps.sh parity
	@tests/parity/check.sh $(OBJ) $(DEBS)

# The reliability tier alone: fault injection sweep, bad input table,
# teardown soak (SOAK cycles, default 10) and guest misbehaviour, in L1.
check-reliability: build testbed-deps
	@tests/faultinject/check.sh --soak $(or $(SOAK),10) $(OBJ)

# The guest tier alone: Linux guests (L2) on our QEMU inside L1, each case
# on the legacy and the iommufd path (tests/guest/README.md).
check-guest: build testbed-deps
	@tests/guest/check.sh $(OBJ) $(GUEST_ARGS)

# The mediated device cases of the guest tier alone (the kernel's mtty
# sample in L1), on both paths; `make check` runs them with the others.
check-mdev: build testbed-deps
	@tests/guest/check.sh $(OBJ) --case mdev $(GUEST_ARGS)

# The migration cases of the guest tier alone (tests/guest/cases_migration*.py),
# on both paths, with the fault sweeps that `make check` leaves out (about
# 40 minutes).
MIGRATION_GROUPS := migration migration-blocked migration-error \
	migration-untracked migration-hwpt migration-faults
check-migration: build testbed-deps
	@GUEST_TIMEOUT=$${GUEST_TIMEOUT:-3600} tests/guest/check.sh $(OBJ) \
		$(foreach g,$(MIGRATION_GROUPS),--case $(g)) $(GUEST_ARGS)

# The same under AddressSanitizer + UBSan, in build/obj-asan (about 35
# minutes to build on 2 cores, so not part of check).
check-asan: tree testbed-deps
	@scripts/build.sh $(TREE) build/obj-asan --enable-sanitizers \
		--disable-werror --extra-cflags=-fsanitize=undefined \
		--extra-ldflags=-fsanitize=undefined
	@tests/faultinject/check.sh --sanitizers build/obj-asan

testbed-deps:
	@scripts/deps.sh kernel testbed libvirt parity lint

# Each patch of the series builds on its own (not part of check: slow).
check-series: tree
	@scripts/check-series.sh $(TREE) build/series

# The real-kernel tier alone (boots L1; see tests/testbed/README.md).
check-testbed: build testbed-deps
	@tests/testbed/check.sh $(OBJ)

# The watchdog that ends a frozen L1, tested on an L1 that it stops.
check-watchdog: build testbed-deps
	@tests/testbed/check-watchdog.sh $(OBJ)

demo: build testbed-deps
	@scripts/demo.sh $(OBJ)

# Benchmarks (not tests): iommufd against legacy and the raw kernel cost,
# in the test bed (L1 with 10 GiB), large guests of 1-8 GiB, mapping with
# threads, and running L2 guests of the guest tier; writes
# docs/bench/REPORT.md, results.json and its plots (about 20 minutes on
# an idle 2-core machine, up to 45 under load).
bench: build testbed-deps
	@tests/bench/run.sh $(OBJ)

clean:
	rm -rf build

# Install like a distribution (packaging/), from the build the tiers test
# (build/obj, configured for /usr with the data suffix qemu-iommufd): our
# QEMU as PREFIX/bin/qemu-iommufd-system-x86_64 beside Debian's QEMU, with
# its modules and data; `make deb` packages it as qemu-iommufd and
# qemu-iommufd-gui (build/deb/*.deb), and `make check-deb DEB=FILE`
# installs that on a fresh Debian 12 root.
PREFIX ?= /usr/local
DESTDIR ?=
DEBS := build/deb
.PHONY: install deb check-deb check-libvirt

install: build
	@packaging/install.sh $(OBJ) $(PREFIX) $(DESTDIR)

deb: build
	@packaging/deb.sh $(OBJ) $(DEBS) >/dev/null

check-deb:
	@scripts/deps.sh libvirt
	@packaging/check-deb.sh $(or $(DEB),$(lastword $(sort $(wildcard build/deb/qemu-iommufd_*.deb))))

# The libvirt tier alone: libvirt 12.x from trixie-backports drives our
# QEMU inside L1 (tests/libvirt/README.md), the qemu-iommufd package
# installed into libvirt's root (DEB=FILE: that one).
check-libvirt: deb testbed-deps
	@tests/libvirt/check.sh $(OBJ) --deb $(or $(DEB),$(lastword $(sort $(wildcard $(DEBS)/qemu-iommufd_*.deb)))) $(LIBVIRT_ARGS)
