/*
 * qtest: hot-plug and unplug cycles of assigned devices, watching what
 * QEMU holds
 *
 * Each cycle adds the iommufd object and one edu device, or two sharing
 * one IOAS, checks the DMA round trip of each, unplugs them (with the
 * guest's ACPI eject) and deletes the object.  QEMU's open fds and its
 * locked and pinned memory must be the same after the last cycle as after
 * the first, and its RSS must not grow by more than VFIO_SOAK_RSS_KB
 * (default 8192).  VFIO_SOAK_CYCLES sets the number of cycles (default
 * 10; the soak target of the test bed runs 100).
 *
 * Needs edu devices bound to vfio-pci (tests/testbed); skips otherwise.
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qemu/cutils.h"
#include "vfio-iommufd-util.h"

static unsigned long env_uint(const char *name, unsigned long dflt)
{
    const char *val = g_getenv(name);
    unsigned long n;

    if (!val || !*val) {
        return dflt;
    }
    if (qemu_strtoul(val, NULL, 10, &n)) {
        g_test_message("%s=%s is not a number", name, val);
        g_assert_not_reached();
    }
    return n;
}

/* One cycle with @n edu devices on one iommufd object. */
static void cycle(TestVM *vm, const char **bdfs, unsigned n, unsigned i,
                  ProcStats *attached)
{
    const int slots[] = { SLOT0, SLOT1 };
    const char *ids[] = { "edu0", "edu1" };

    vm_qmp_ok(vm, "{'execute': 'object-add', 'arguments':"
              " {'qom-type': 'iommufd', 'id': 'iommufd0'}}");
    for (unsigned d = 0; d < n; d++) {
        g_autofree char *err = vm_add_edu(vm, ids[d], bdfs[d], slots[d],
                                          "iommufd0");

        if (err) {
            g_test_message("cycle %u: device_add of %s: %s", i, bdfs[d],
                           err);
            g_assert_not_reached();
        }
    }
    for (unsigned d = 0; d < n; d++) {
        if (!vm_dma_round_trip(vm, slots[d], i + d)) {
            g_test_message("cycle %u: DMA through %s failed", i, bdfs[d]);
            g_assert_not_reached();
        }
    }
    proc_stats(vm->pid, attached);
    for (unsigned d = 0; d < n; d++) {
        vm_del_device(vm, ids[d], slots[d]);
    }
    vm_qmp_ok(vm, "{'execute': 'object-del', 'arguments':"
              " {'id': 'iommufd0'}}");
}

static void soak(unsigned n)
{
    const char *bdfs[2] = { edu_need(0), n > 1 ? edu_need(1) : NULL };
    unsigned long cycles = env_uint("VFIO_SOAK_CYCLES", 10);
    unsigned long rss_slack = env_uint("VFIO_SOAK_RSS_KB", 8192);
    ProcStats first = { 0 }, last = { 0 }, attached, first_attached = { 0 };
    g_autofree char *s_first = NULL;
    g_autofree char *s_last = NULL;
    g_autofree char *s_attached = NULL;
    TestVM vm;

    if (!bdfs[0] || (n > 1 && !bdfs[1])) {
        return;
    }
    g_assert_cmpuint(cycles, >=, 2);
    vm_start(&vm, "");
    for (unsigned i = 0; i < cycles; i++) {
        cycle(&vm, bdfs, n, i, &attached);
        proc_stats(vm.pid, i ? &last : &first);
        if (!i) {
            first_attached = attached;
        }
        g_assert_cmpuint(attached.pin_kb, ==, first_attached.pin_kb);
        /* One IOAS for both devices: guest RAM (256M) pinned once. */
        g_assert_cmpuint(attached.pin_kb, <, 2 * 256 * 1024);
    }
    s_first = proc_stats_str(&first);
    s_last = proc_stats_str(&last);
    s_attached = proc_stats_str(&first_attached);
    g_test_message("%lu cycles of %u device(s): with the devices %s", cycles,
                   n, s_attached);
    g_test_message("after cycle 1: %s", s_first);
    g_test_message("after cycle %lu: %s", cycles, s_last);
    g_assert_cmpuint(first_attached.pin_kb, >, 0);
    g_assert_cmpuint(last.fds, ==, first.fds);
    g_assert_cmpuint(last.pin_kb, ==, first.pin_kb);
    g_assert_cmpuint(last.lck_kb, ==, first.lck_kb);
    g_assert_cmpuint(last.rss_kb, <=, first.rss_kb + rss_slack);
    vm_stop(&vm);
}

static void test_one_device(void)
{
    soak(1);
}

static void test_two_devices(void)
{
    soak(2);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/vfio-iommufd-soak/one-device", test_one_device);
    qtest_add_func("/vfio-iommufd-soak/two-devices-one-ioas",
                   test_two_devices);
    return g_test_run();
}
