/*
 * qtest: VFIO device assignment of QEMU's edu device, proven by DMA
 *
 * Needs a host (or outer guest) whose edu PCI devices (1234:11e8) are
 * bound to vfio-pci, such as the test bed of tests/testbed; without one,
 * every case is skipped with the reason.  Each case assigns edu to the
 * guest through iommufd or the legacy container, has the real device copy
 * a pattern from guest RAM into its buffer and back into other guest RAM,
 * and compares the bytes: only the bytes prove the IOMMU mapping, since
 * edu reports a DMA as done even when the IOMMU blocked it.
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "libqos/pci-pc.h"
#include "hw/pci/pci_regs.h"
#include "qapi/qmp/qdict.h"
#include "qemu/cutils.h"
#include <sys/mman.h>
#include "vfio-iommufd-util.h"

/* Where DMA from outside QEMU lands, apart from GUEST_SRC and GUEST_DST. */
#define GUEST_DST2      0x3000000

/* edu_round_trip(), saying so when the bytes arrived. */
static bool round_trip(TestVM *vm, Edu *edu, uint64_t src, uint64_t dst,
                       uint8_t seed)
{
    if (!edu_round_trip(vm, edu, src, dst, seed)) {
        return false;
    }
    g_test_message("DMA guest 0x%" PRIx64 " -> edu buffer -> guest 0x%" PRIx64
                   ": %d bytes verified", src, dst, EDU_DMA_LEN);
    return true;
}

static void assert_round_trip(TestVM *vm, int slot, uint8_t seed)
{
    Edu edu;

    edu_open(vm, slot, &edu);
    g_assert(round_trip(vm, &edu, GUEST_SRC, GUEST_DST, seed));
    edu_close(&edu);
}

static void test_iommufd_host(void)
{
    const char *bdf = edu_need(0);
    g_autofree char *args = NULL;
    TestVM vm;

    if (!bdf) {
        return;
    }
    args = g_strdup_printf("-object iommufd,id=iommufd0 -device vfio-pci,"
                           "host=%s,iommufd=iommufd0,id=edu0,addr=%d",
                           bdf, SLOT0);
    vm_start(&vm, args);
    assert_round_trip(&vm, SLOT0, 0x11);
    vm_quit(&vm);
    /* It went through iommufd: one IOAS, one attach, no legacy group. */
    g_assert_cmpint(vm_trace_count(&vm, "iommufd_backend_alloc_ioas"),
                    ==, 1);
    g_assert_cmpint(vm_trace_index(&vm, "vfio_iommufd_attach_ioas"), >=, 0);
    vm_stop(&vm);
}

static void test_iommufd_sysfsdev(void)
{
    const char *bdf = edu_need(0);
    g_autofree char *args = NULL;
    TestVM vm;

    if (!bdf) {
        return;
    }
    args = g_strdup_printf("-object iommufd,id=iommufd0 -device vfio-pci,"
                           "sysfsdev=/sys/bus/pci/devices/%s,"
                           "iommufd=iommufd0,addr=%d", bdf, SLOT0);
    vm_start(&vm, args);
    assert_round_trip(&vm, SLOT0, 0x22);
    vm_stop(&vm);
}

/*
 * The way libvirt runs it: both fds opened by the caller and inherited,
 * no host= or sysfsdev=, and QEMU opens neither node itself.
 */
static void test_iommufd_passed_fds(void)
{
    const char *bdf = edu_need(0);
    g_autofree char *args = NULL;
    g_autofree char *cdev = NULL;
    int iommufd, devfd;
    TestVM vm;

    if (!bdf) {
        return;
    }
    cdev = edu_cdev(bdf);
    iommufd = open("/dev/iommu", O_RDWR);
    g_assert_cmpint(iommufd, >=, 0);
    devfd = open(cdev, O_RDWR);
    g_assert_cmpint(devfd, >=, 0);
    args = g_strdup_printf("-object '{\"qom-type\":\"iommufd\","
                           "\"id\":\"iommufd0\",\"fd\":\"%d\"}' "
                           "-device '{\"driver\":\"vfio-pci\","
                           "\"id\":\"hostdev0\",\"iommufd\":\"iommufd0\","
                           "\"fd\":\"%d\",\"addr\":\"%d\"}'",
                           iommufd, devfd, SLOT0);
    vm_start(&vm, args);
    close(iommufd);
    close(devfd);
    assert_round_trip(&vm, SLOT0, 0x33);
    vm_quit(&vm);
    g_assert_cmpint(vm_trace_count(&vm, "iommufd_backend_connect"), ==, 1);
    g_assert(vm_trace_first_has(&vm, "iommufd_backend_connect", "owned=0"));
    g_assert_cmpint(vm_trace_index(&vm, "vfio_iommufd_open_cdev"), ==, -1);
    vm_stop(&vm);
}

static void test_legacy(void)
{
    const char *bdf = edu_need(0);
    g_autofree char *args = NULL;
    TestVM vm;

    if (!bdf) {
        return;
    }
    args = g_strdup_printf("-device vfio-pci,host=%s,addr=%d", bdf, SLOT0);
    vm_start(&vm, args);
    assert_round_trip(&vm, SLOT0, 0x44);
    vm_quit(&vm);
    g_assert_cmpint(vm_trace_index(&vm, "iommufd_backend_alloc_ioas"),
                    ==, -1);
    vm_stop(&vm);
}

/* Two devices, one backend: one IOAS; two backends: two IOASes. */
static void test_shared_ioas(void)
{
    const char *bdf0 = edu_need(0);
    const char *bdf1 = bdf0 ? edu_need(1) : NULL;
    TestVM vm;

    if (!bdf1) {
        return;
    }
    {
        g_autofree char *args = g_strdup_printf(
            "-object iommufd,id=iommufd0 "
            "-device vfio-pci,host=%s,iommufd=iommufd0,addr=%d "
            "-device vfio-pci,host=%s,iommufd=iommufd0,addr=%d",
            bdf0, SLOT0, bdf1, SLOT1);

        vm_start(&vm, args);
        assert_round_trip(&vm, SLOT0, 0x55);
        assert_round_trip(&vm, SLOT1, 0x66);
        vm_quit(&vm);
        g_assert_cmpint(vm_trace_count(&vm, "iommufd_backend_alloc_ioas"),
                        ==, 1);
        g_assert_cmpint(vm_trace_count(&vm, "vfio_iommufd_attach_ioas"),
                        ==, 2);
        g_assert_cmpint(vm_trace_count(&vm, "vfio_iommufd_container_new"),
                        ==, 1);
        vm_stop(&vm);
    }
    {
        g_autofree char *args = g_strdup_printf(
            "-object iommufd,id=iommufd0 -object iommufd,id=iommufd1 "
            "-device vfio-pci,host=%s,iommufd=iommufd0,addr=%d "
            "-device vfio-pci,host=%s,iommufd=iommufd1,addr=%d",
            bdf0, SLOT0, bdf1, SLOT1);

        vm_start(&vm, args);
        assert_round_trip(&vm, SLOT0, 0x77);
        assert_round_trip(&vm, SLOT1, 0x88);
        vm_quit(&vm);
        g_assert_cmpint(vm_trace_count(&vm, "iommufd_backend_alloc_ioas"),
                        ==, 2);
        vm_stop(&vm);
    }
}

/* Both paths in one VM: one device through iommufd, one through a group. */
static void test_mixed(void)
{
    const char *bdf0 = edu_need(0);
    const char *bdf1 = bdf0 ? edu_need(1) : NULL;
    g_autofree char *args = NULL;
    TestVM vm;

    if (!bdf1) {
        return;
    }
    args = g_strdup_printf("-object iommufd,id=iommufd0 "
                           "-device vfio-pci,host=%s,iommufd=iommufd0,addr=%d "
                           "-device vfio-pci,host=%s,addr=%d",
                           bdf0, SLOT0, bdf1, SLOT1);
    vm_start(&vm, args);
    assert_round_trip(&vm, SLOT0, 0x5a);
    assert_round_trip(&vm, SLOT1, 0x6b);
    vm_quit(&vm);
    g_assert_cmpint(vm_trace_count(&vm, "vfio_iommufd_attach_ioas"), ==, 1);
    g_assert_cmpint(vm_trace_count_with(&vm, "vfio_attach_device",
                                        "backend=iommufd"), ==, 1);
    g_assert_cmpint(vm_trace_count_with(&vm, "vfio_attach_device",
                                        "backend=legacy"), ==, 1);
    vm_stop(&vm);
}

/*
 * Hot-plug the way management tools do: object-add, device_add, DMA,
 * object-del refused while in use, device_del, object-del; three times.
 */
static void test_hotplug(void)
{
    const char *bdf = edu_need(0);
    TestVM vm;

    if (!bdf) {
        return;
    }
    vm_start(&vm, "");
    for (int i = 0; i < 3; i++) {
        g_autofree char *in_use = NULL;
        g_autofree char *addr = g_strdup_printf("%d", SLOT0);

        qtest_qmp_assert_success(vm.qts, "{'execute': 'object-add',"
                                 " 'arguments': {'qom-type': 'iommufd',"
                                 " 'id': 'iommufd0'}}");
        qtest_qmp_assert_success(vm.qts, "{'execute': 'device_add',"
                                 " 'arguments': {'driver': 'vfio-pci',"
                                 " 'id': 'hostdev0', 'host': %s,"
                                 " 'iommufd': 'iommufd0', 'addr': %s}}",
                                 bdf, addr);
        assert_round_trip(&vm, SLOT0, 0x90 + i);

        in_use = vm_qmp_error(&vm, "{'execute': 'object-del',"
                              " 'arguments': {'id': 'iommufd0'}}");
        g_assert(in_use);
        g_assert(strstr(in_use, "iommufd0"));
        g_assert(strstr(in_use, "in use"));

        qpci_unplug_acpi_device_test(vm.qts, "hostdev0", SLOT0);
        qtest_qmp_assert_success(vm.qts, "{'execute': 'object-del',"
                                 " 'arguments': {'id': 'iommufd0'}}");
    }
    vm_quit(&vm);
    g_assert_cmpint(vm_trace_count(&vm, "vfio_iommufd_container_free"),
                    ==, 3);
    vm_stop(&vm);
}

/*
 * With KVM, the device must be added to the kvm-vfio device before the
 * bind, which is when the kernel takes its kvm reference.
 */
static void test_kvm_order(void)
{
    const char *bdf = edu_need(0);
    g_autofree char *args = NULL;
    int add, bind;
    QDict *resp;
    TestVM vm;

    if (!bdf) {
        return;
    }
    if (access("/dev/kvm", R_OK | W_OK)) {
        g_test_skip("needs /dev/kvm");
        return;
    }
    args = g_strdup_printf("-accel kvm -object iommufd,id=iommufd0 "
                           "-device vfio-pci,host=%s,iommufd=iommufd0,addr=%d",
                           bdf, SLOT0);
    vm_start(&vm, args);
    resp = qtest_qmp(vm.qts, "{'execute': 'query-kvm'}");
    g_assert(qdict_get_bool(qdict_get_qdict(resp, "return"), "enabled"));
    qobject_unref(resp);
    resp = qtest_qmp(vm.qts, "{'execute': 'query-status'}");
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(resp, "return"), "status"),
                    ==, "running");
    qobject_unref(resp);
    vm_quit(&vm);

    add = vm_trace_index(&vm, "vfio_kvm_device_add_fd");
    bind = vm_trace_index(&vm, "vfio_iommufd_bind");
    g_assert_cmpint(add, >=, 0);
    g_assert_cmpint(bind, >, add);
    g_assert(vm_trace_first_has(&vm, "vfio_kvm_device_add_fd", "errno=0"));
    g_assert(vm_trace_first_has(&vm, "vfio_iommufd_bind", "errno=0"));
    vm_stop(&vm);
}

/* How a case assigns the device: through iommufd or the legacy path. */
typedef struct Backend {
    const char *name;
    const char *object;         /* -object option, or "" */
    const char *props;          /* extra vfio-pci properties */
} Backend;

static const Backend backends[] = {
    { "iommufd", "-object iommufd,id=iommufd0", ",iommufd=iommufd0" },
    { "legacy", "", "" },
};

/*
 * i440fx PAM register for 0xe0000-0xe3fff: config byte 0x5e, low nibble;
 * 0 = PCI (the BIOS ROM), 1 = RAM read-only, 3 = RAM read/write.
 */
#define PAM_E0000_REG   0x5e
#define PAM_E0000       0xe0000

/*
 * Toggle a region of the guest memory map and check that device DMA
 * follows: a write to a read-only region is blocked by the IOMMU; made
 * read/write, it lands; made read-only again (the same RAM, now read
 * only), the old writable mapping must be gone, so a new write is
 * blocked and the RAM keeps the bytes of the previous one.
 */
static void test_region_toggle(const void *opaque)
{
    const Backend *be = opaque;
    const char *bdf = edu_need(0);
    g_autofree char *args = NULL;
    g_autofree uint8_t *before = g_malloc(EDU_DMA_LEN);
    g_autofree uint8_t *after = g_malloc(EDU_DMA_LEN);
    QPCIDevice *host;
    TestVM vm;
    Edu edu;

    if (!bdf) {
        return;
    }
    args = g_strdup_printf("%s -device vfio-pci,host=%s,addr=%d%s",
                           be->object, bdf, SLOT0, be->props);
    vm_start(&vm, args);
    host = qpci_device_find(vm.bus, 0);
    g_assert(host);
    edu_open(&vm, SLOT0, &edu);

    /* The BIOS ROM: a device write is refused. */
    qtest_memread(vm.qts, PAM_E0000, before, EDU_DMA_LEN);
    g_assert(round_trip(&vm, &edu, GUEST_SRC, GUEST_DST, 0xa1));
    edu_dma_start(&edu, EDU_BUFFER, PAM_E0000, EDU_DMA_LEN, true);
    g_assert(edu_dma_wait(&edu));
    qtest_memread(vm.qts, PAM_E0000, after, EDU_DMA_LEN);
    g_assert(!memcmp(before, after, EDU_DMA_LEN));

    /* RAM, read/write: the same DMA lands. */
    qpci_config_writeb(host, PAM_E0000_REG, 0x03);
    g_assert(round_trip(&vm, &edu, GUEST_SRC, PAM_E0000, 0xb2));

    /* RAM, read-only: a new pattern is blocked, the last one stays. */
    qpci_config_writeb(host, PAM_E0000_REG, 0x01);
    qtest_memread(vm.qts, PAM_E0000, before, EDU_DMA_LEN);
    g_assert(round_trip(&vm, &edu, GUEST_SRC, GUEST_DST, 0xc3));
    edu_dma_start(&edu, EDU_BUFFER, PAM_E0000, EDU_DMA_LEN, true);
    g_assert(edu_dma_wait(&edu));
    qtest_memread(vm.qts, PAM_E0000, after, EDU_DMA_LEN);
    g_assert(!memcmp(before, after, EDU_DMA_LEN));
    g_assert_cmphex(after[0], ==, (uint8_t)0xb2);

    edu_close(&edu);
    g_free(host);
    vm_stop(&vm);
}

/*
 * The edu device driven directly by this process through its BAR in
 * sysfs, bypassing QEMU: its DMA goes wherever the host IOMMU lets it.
 */
typedef struct RawEdu {
    int config;
    uint8_t *bar;
} RawEdu;

static void raw_edu_open(RawEdu *raw, const char *bdf)
{
    g_autofree char *res = g_strdup_printf("/sys/bus/pci/devices/%s/"
                                           "resource0", bdf);
    g_autofree char *cfg = g_strdup_printf("/sys/bus/pci/devices/%s/config",
                                           bdf);
    int fd = open(res, O_RDWR | O_SYNC);

    g_assert_cmpint(fd, >=, 0);
    raw->bar = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    g_assert(raw->bar != MAP_FAILED);
    close(fd);
    raw->config = open(cfg, O_RDWR);
    g_assert_cmpint(raw->config, >=, 0);
}

static void raw_edu_close(RawEdu *raw)
{
    munmap(raw->bar, 4096);
    close(raw->config);
}

static void raw_edu_dma_to_ram(RawEdu *raw, uint64_t dst, uint32_t len)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    /* MMIO registers: every access must reach the device. */
    volatile uint64_t *reg = (volatile uint64_t *)raw->bar;
    uint16_t cmd;

    /* Bus mastering may have been turned off when QEMU let go. */
    g_assert_cmpint(pread(raw->config, &cmd, 2, PCI_COMMAND), ==, 2);
    cmd |= PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY;
    g_assert_cmpint(pwrite(raw->config, &cmd, 2, PCI_COMMAND), ==, 2);

    reg[EDU_DMA_SRC / 8] = EDU_BUFFER;
    reg[EDU_DMA_DST / 8] = dst;
    reg[EDU_DMA_COUNT / 8] = len;
    reg[EDU_DMA_CMD / 8] = EDU_DMA_RUN | EDU_DMA_TO_RAM;
    while (reg[EDU_DMA_CMD / 8] & EDU_DMA_RUN) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

static bool guest_is_zero(TestVM *vm, uint64_t addr)
{
    g_autofree uint8_t *buf = g_malloc(EDU_DMA_LEN);

    qtest_memread(vm->qts, addr, buf, EDU_DMA_LEN);
    return buffer_is_zero(buf, EDU_DMA_LEN);
}

/*
 * While assigned, DMA started behind QEMU's back reaches guest RAM (the
 * control); after device_del, the same DMA to the same IOVA must not.
 * Re-adding the device then shows its buffer still held the pattern.
 */
static void test_unplug_unmaps(const void *opaque)
{
    const Backend *be = opaque;
    const char *bdf = edu_need(0);
    g_autofree char *args = NULL;
    g_autofree char *addr = g_strdup_printf("%d", SLOT0);
    RawEdu raw;
    TestVM vm;
    Edu edu;

    if (!bdf) {
        return;
    }
    args = g_strdup_printf("%s -device vfio-pci,host=%s,id=hostdev0,addr=%d%s",
                           be->object, bdf, SLOT0, be->props);
    vm_start(&vm, args);
    raw_edu_open(&raw, bdf);

    edu_open(&vm, SLOT0, &edu);
    g_assert(round_trip(&vm, &edu, GUEST_SRC, GUEST_DST, 0xd4));
    edu_close(&edu);

    qtest_memset(vm.qts, GUEST_DST2, 0, EDU_DMA_LEN);
    raw_edu_dma_to_ram(&raw, GUEST_DST2, EDU_DMA_LEN);
    g_assert(!guest_is_zero(&vm, GUEST_DST2));

    qpci_unplug_acpi_device_test(vm.qts, "hostdev0", SLOT0);
    qtest_memset(vm.qts, GUEST_DST2, 0, EDU_DMA_LEN);
    raw_edu_dma_to_ram(&raw, GUEST_DST2, EDU_DMA_LEN);
    g_assert(guest_is_zero(&vm, GUEST_DST2));

    if (be->object[0]) {
        qtest_qmp_assert_success(vm.qts, "{'execute': 'device_add',"
                                 " 'arguments': {'driver': 'vfio-pci',"
                                 " 'id': 'hostdev0', 'host': %s,"
                                 " 'iommufd': 'iommufd0', 'addr': %s}}",
                                 bdf, addr);
    } else {
        qtest_qmp_assert_success(vm.qts, "{'execute': 'device_add',"
                                 " 'arguments': {'driver': 'vfio-pci',"
                                 " 'id': 'hostdev0', 'host': %s,"
                                 " 'addr': %s}}", bdf, addr);
    }
    qtest_memset(vm.qts, GUEST_DST2, 0, EDU_DMA_LEN);
    raw_edu_dma_to_ram(&raw, GUEST_DST2, EDU_DMA_LEN);
    g_assert(!guest_is_zero(&vm, GUEST_DST2));

    raw_edu_close(&raw);
    vm_stop(&vm);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_func("/vfio-edu/iommufd/host", test_iommufd_host);
    qtest_add_func("/vfio-edu/iommufd/sysfsdev", test_iommufd_sysfsdev);
    qtest_add_func("/vfio-edu/iommufd/passed-fds", test_iommufd_passed_fds);
    qtest_add_func("/vfio-edu/legacy/host", test_legacy);
    qtest_add_func("/vfio-edu/iommufd/shared-ioas", test_shared_ioas);
    qtest_add_func("/vfio-edu/mixed/iommufd-and-legacy", test_mixed);
    qtest_add_func("/vfio-edu/iommufd/hotplug", test_hotplug);
    qtest_add_func("/vfio-edu/iommufd/kvm-order", test_kvm_order);
    for (size_t i = 0; i < ARRAY_SIZE(backends); i++) {
        g_autofree char *toggle = g_strdup_printf("/vfio-edu/%s/region-toggle",
                                                  backends[i].name);
        g_autofree char *unplug = g_strdup_printf("/vfio-edu/%s/unplug-unmaps",
                                                  backends[i].name);

        qtest_add_data_func(toggle, &backends[i], test_region_toggle);
        qtest_add_data_func(unplug, &backends[i], test_unplug_unmaps);
    }
    return g_test_run();
}
