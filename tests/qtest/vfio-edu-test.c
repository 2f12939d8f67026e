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

#define EDU_VENDOR      0x1234
#define EDU_DEVICE      0x11e8
#define EDU_DMA_SRC     0x80
#define EDU_DMA_DST     0x88
#define EDU_DMA_COUNT   0x90
#define EDU_DMA_CMD     0x98
#define EDU_DMA_RUN     0x1
#define EDU_DMA_TO_RAM  0x2
#define EDU_BUFFER      0x40000
/* edu's range check is off by one: stay below EDU_BUFFER + 4096. */
#define DMA_LEN         2048

/* Guest addresses (= IOVAs without a vIOMMU), below edu's 28-bit mask. */
#define GUEST_SRC       0x1000000
#define GUEST_DST       0x2000000
#define GUEST_DST2      0x3000000

#define SLOT0           4
#define SLOT1           5

#define MACHINE "-machine pc -m 256M -nodefaults -display none "

/* The BDFs of the edu devices bound to vfio-pci, sorted. */
static GPtrArray *edu_bdfs;

static bool sysfs_hex_is(const char *dir, const char *attr, unsigned val)
{
    g_autofree char *path = g_build_filename(dir, attr, NULL);
    g_autofree char *contents = NULL;
    unsigned long got;

    return g_file_get_contents(path, &contents, NULL, NULL) &&
           !qemu_strtoul(g_strstrip(contents), NULL, 16, &got) && got == val;
}

/* g_ptr_array_sort() passes pointers to the elements. */
static gint compare_strings(gconstpointer a, gconstpointer b)
{
    return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

static void find_edu_devices(void)
{
    const char *drv = "/sys/bus/pci/drivers/vfio-pci";
    GDir *dir = g_dir_open(drv, 0, NULL);
    const char *name;

    edu_bdfs = g_ptr_array_new_with_free_func(g_free);
    if (!dir) {
        return;
    }
    while ((name = g_dir_read_name(dir))) {
        g_autofree char *dev = g_build_filename(drv, name, NULL);

        if (strchr(name, ':') && sysfs_hex_is(dev, "vendor", EDU_VENDOR) &&
            sysfs_hex_is(dev, "device", EDU_DEVICE)) {
            g_ptr_array_add(edu_bdfs, g_strdup(name));
        }
    }
    g_dir_close(dir);
    g_ptr_array_sort(edu_bdfs, compare_strings);
}

/* The BDF of edu device @n, or NULL after skipping the test. */
static const char *need_edu(unsigned n)
{
    if (edu_bdfs->len <= n) {
        g_autofree char *why = g_strdup_printf("needs %u edu devices bound "
                                               "to vfio-pci, found %u",
                                               n + 1, edu_bdfs->len);
        g_test_skip(why);
        return NULL;
    }
    return g_ptr_array_index(edu_bdfs, n);
}

/* /dev/vfio/devices/vfioN of a device, from its sysfs vfio-dev/ dir. */
static char *cdev_of(const char *bdf)
{
    g_autofree char *path = g_strdup_printf("/sys/bus/pci/devices/%s/"
                                            "vfio-dev", bdf);
    GDir *dir = g_dir_open(path, 0, NULL);
    const char *name;
    char *node = NULL;

    g_assert(dir);
    while ((name = g_dir_read_name(dir))) {
        if (g_str_has_prefix(name, "vfio")) {
            node = g_strdup_printf("/dev/vfio/devices/%s", name);
        }
    }
    g_dir_close(dir);
    g_assert(node);
    return node;
}

typedef struct TestVM {
    const char *name;   /* of the test case, for kept trace logs */
    QTestState *qts;
    QPCIBus *bus;
    char *tmpdir;
    char *trace;        /* the trace log of the VFIO and iommufd events */
} TestVM;

static void vm_start(TestVM *vm, const char *name, const char *extra)
{
    g_autofree char *args = NULL;

    vm->name = name;
    vm->tmpdir = g_dir_make_tmp("vfio-edu-XXXXXX", NULL);
    g_assert(vm->tmpdir);
    vm->trace = g_build_filename(vm->tmpdir, "trace.log", NULL);
    args = g_strdup_printf(MACHINE "-D %s -trace enable=iommufd_backend_* "
                           "-trace enable=vfio_iommufd_* "
                           "-trace enable=vfio_kvm_device_* "
                           "-trace enable=vfio_attach_device "
                           "-trace enable=vfio_detach_device %s",
                           vm->trace, extra);
    vm->qts = qtest_init(args);
    vm->bus = qpci_new_pc(vm->qts, NULL);
}

/* Quit QEMU, which flushes the trace log; the log can still be read. */
static void vm_quit(TestVM *vm)
{
    qpci_free_pc(vm->bus);
    vm->bus = NULL;
    qtest_quit(vm->qts);
    vm->qts = NULL;
}

static void vm_stop(TestVM *vm)
{
    const char *keep = getenv("VFIO_EDU_TEST_TRACE_DIR");

    if (vm->qts) {
        vm_quit(vm);
    }
    if (keep) {
        /* Keep the trace for a report, named after the test case. */
        g_autofree char *dest = g_strdup_printf("%s/%s.log", keep, vm->name);
        g_autofree char *log = NULL;

        if (g_file_get_contents(vm->trace, &log, NULL, NULL)) {
            g_file_set_contents(dest, log, -1, NULL);
        }
    }
    unlink(vm->trace);
    rmdir(vm->tmpdir);
    g_free(vm->trace);
    g_free(vm->tmpdir);
}

/*
 * Does a trace log line record @event?  The log backend writes "event
 * args", or "pid@time:event args" with -msg timestamp=on.
 */
static bool trace_line_is(const char *line, const char *event)
{
    const char *colon = strchr(line, ':');
    const char *name = colon && colon < strchr(line, ' ') ? colon + 1 : line;
    size_t len = strlen(event);

    return !strncmp(name, event, len) && name[len] == ' ';
}

/* The lines of the trace log that record @event. */
static GPtrArray *trace_lines(TestVM *vm, const char *event)
{
    g_autofree char *log = NULL;
    g_auto(GStrv) lines = NULL;
    GPtrArray *found = g_ptr_array_new_with_free_func(g_free);

    g_assert(g_file_get_contents(vm->trace, &log, NULL, NULL));
    lines = g_strsplit(log, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        if (trace_line_is(lines[i], event)) {
            g_ptr_array_add(found, g_strdup(lines[i]));
        }
    }
    return found;
}

static unsigned trace_count(TestVM *vm, const char *event)
{
    g_autoptr(GPtrArray) lines = trace_lines(vm, event);

    return lines->len;
}

/* How many trace lines of @event contain @text? */
static unsigned trace_count_with(TestVM *vm, const char *event,
                                 const char *text)
{
    g_autoptr(GPtrArray) lines = trace_lines(vm, event);
    unsigned n = 0;

    for (unsigned i = 0; i < lines->len; i++) {
        n += !!strstr(g_ptr_array_index(lines, i), text);
    }
    return n;
}

/* Does the first trace line naming @event contain @text? */
static bool trace_first_has(TestVM *vm, const char *event, const char *text)
{
    g_autoptr(GPtrArray) lines = trace_lines(vm, event);

    return lines->len && strstr(g_ptr_array_index(lines, 0), text);
}

/* Index in the trace of the first line naming @event, or -1. */
static int trace_index(TestVM *vm, const char *event)
{
    g_autofree char *log = NULL;
    g_auto(GStrv) lines = NULL;

    g_assert(g_file_get_contents(vm->trace, &log, NULL, NULL));
    lines = g_strsplit(log, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        if (trace_line_is(lines[i], event)) {
            return i;
        }
    }
    return -1;
}

typedef struct Edu {
    QPCIDevice *dev;
    QPCIBar bar;
} Edu;

/* Find edu in @slot, check its IDs, map BAR0, enable bus mastering. */
static void edu_init(Edu *edu, TestVM *vm, int slot)
{
    edu->dev = qpci_device_find(vm->bus, QPCI_DEVFN(slot, 0));
    g_assert(edu->dev);
    g_assert_cmphex(qpci_config_readw(edu->dev, PCI_VENDOR_ID), ==,
                    EDU_VENDOR);
    g_assert_cmphex(qpci_config_readw(edu->dev, PCI_DEVICE_ID), ==,
                    EDU_DEVICE);
    qpci_device_enable(edu->dev);
    edu->bar = qpci_iomap(edu->dev, 0, NULL);
}

static void edu_fini(Edu *edu)
{
    qpci_iounmap(edu->dev, edu->bar);
    g_free(edu->dev);
}

/* Run one DMA and wait for edu to report it done (real time: its timer). */
static void edu_dma(Edu *edu, uint64_t src, uint64_t dst, uint32_t len,
                    bool to_ram)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    qpci_io_writeq(edu->dev, edu->bar, EDU_DMA_SRC, src);
    qpci_io_writeq(edu->dev, edu->bar, EDU_DMA_DST, dst);
    qpci_io_writeq(edu->dev, edu->bar, EDU_DMA_COUNT, len);
    qpci_io_writeq(edu->dev, edu->bar, EDU_DMA_CMD,
                   EDU_DMA_RUN | (to_ram ? EDU_DMA_TO_RAM : 0));
    while (qpci_io_readq(edu->dev, edu->bar, EDU_DMA_CMD) & EDU_DMA_RUN) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

/*
 * Copy a pattern from guest RAM at @src through edu's buffer to guest RAM
 * at @dst; true if the bytes arrived.
 */
static bool edu_round_trip(TestVM *vm, Edu *edu, uint64_t src, uint64_t dst,
                           uint8_t seed)
{
    g_autofree uint8_t *pattern = g_malloc(DMA_LEN);
    g_autofree uint8_t *back = g_malloc(DMA_LEN);

    for (int i = 0; i < DMA_LEN; i++) {
        pattern[i] = seed + i * 7;
    }
    qtest_memwrite(vm->qts, src, pattern, DMA_LEN);
    qtest_memset(vm->qts, dst, 0, DMA_LEN);

    edu_dma(edu, src, EDU_BUFFER, DMA_LEN, false);
    edu_dma(edu, EDU_BUFFER, dst, DMA_LEN, true);

    qtest_memread(vm->qts, dst, back, DMA_LEN);
    if (memcmp(pattern, back, DMA_LEN)) {
        g_test_message("DMA 0x%" PRIx64 " -> edu -> 0x%" PRIx64 ": bytes "
                       "differ (first byte 0x%02x, expected 0x%02x)",
                       src, dst, back[0], pattern[0]);
        return false;
    }
    g_test_message("DMA guest 0x%" PRIx64 " -> edu buffer -> guest 0x%" PRIx64
                   ": %d bytes verified", src, dst, DMA_LEN);
    return true;
}

static void assert_round_trip(TestVM *vm, int slot, uint8_t seed)
{
    Edu edu;

    edu_init(&edu, vm, slot);
    g_assert(edu_round_trip(vm, &edu, GUEST_SRC, GUEST_DST, seed));
    edu_fini(&edu);
}

static void test_iommufd_host(void)
{
    const char *bdf = need_edu(0);
    g_autofree char *args = NULL;
    TestVM vm;

    if (!bdf) {
        return;
    }
    args = g_strdup_printf("-object iommufd,id=iommufd0 -device vfio-pci,"
                           "host=%s,iommufd=iommufd0,id=edu0,addr=%d",
                           bdf, SLOT0);
    vm_start(&vm, "iommufd-host", args);
    assert_round_trip(&vm, SLOT0, 0x11);
    vm_quit(&vm);
    /* It went through iommufd: one IOAS, one attach, no legacy group. */
    g_assert_cmpint(trace_count(&vm, "iommufd_backend_alloc_ioas"),
                    ==, 1);
    g_assert_cmpint(trace_index(&vm, "vfio_iommufd_attach_ioas"), >=, 0);
    vm_stop(&vm);
}

static void test_iommufd_sysfsdev(void)
{
    const char *bdf = need_edu(0);
    g_autofree char *args = NULL;
    TestVM vm;

    if (!bdf) {
        return;
    }
    args = g_strdup_printf("-object iommufd,id=iommufd0 -device vfio-pci,"
                           "sysfsdev=/sys/bus/pci/devices/%s,"
                           "iommufd=iommufd0,addr=%d", bdf, SLOT0);
    vm_start(&vm, "iommufd-sysfsdev", args);
    assert_round_trip(&vm, SLOT0, 0x22);
    vm_stop(&vm);
}

/*
 * The way libvirt runs it: both fds opened by the caller and inherited,
 * no host= or sysfsdev=, and QEMU opens neither node itself.
 */
static void test_iommufd_passed_fds(void)
{
    const char *bdf = need_edu(0);
    g_autofree char *args = NULL;
    g_autofree char *cdev = NULL;
    int iommufd, devfd;
    TestVM vm;

    if (!bdf) {
        return;
    }
    cdev = cdev_of(bdf);
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
    vm_start(&vm, "iommufd-passed-fds", args);
    close(iommufd);
    close(devfd);
    assert_round_trip(&vm, SLOT0, 0x33);
    vm_quit(&vm);
    g_assert_cmpint(trace_count(&vm, "iommufd_backend_connect"), ==, 1);
    g_assert(trace_first_has(&vm, "iommufd_backend_connect", "owned=0"));
    g_assert_cmpint(trace_index(&vm, "vfio_iommufd_open_cdev"), ==, -1);
    vm_stop(&vm);
}

static void test_legacy(void)
{
    const char *bdf = need_edu(0);
    g_autofree char *args = NULL;
    TestVM vm;

    if (!bdf) {
        return;
    }
    args = g_strdup_printf("-device vfio-pci,host=%s,addr=%d", bdf, SLOT0);
    vm_start(&vm, "legacy-host", args);
    assert_round_trip(&vm, SLOT0, 0x44);
    vm_quit(&vm);
    g_assert_cmpint(trace_index(&vm, "iommufd_backend_alloc_ioas"), ==, -1);
    vm_stop(&vm);
}

/* Two devices, one backend: one IOAS; two backends: two IOASes. */
static void test_shared_ioas(void)
{
    const char *bdf0 = need_edu(0);
    const char *bdf1 = bdf0 ? need_edu(1) : NULL;
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

        vm_start(&vm, "shared-ioas-one", args);
        assert_round_trip(&vm, SLOT0, 0x55);
        assert_round_trip(&vm, SLOT1, 0x66);
        vm_quit(&vm);
        g_assert_cmpint(trace_count(&vm, "iommufd_backend_alloc_ioas"), ==, 1);
        g_assert_cmpint(trace_count(&vm, "vfio_iommufd_attach_ioas"),
                        ==, 2);
        g_assert_cmpint(trace_count(&vm, "vfio_iommufd_container_new"),
                        ==, 1);
        vm_stop(&vm);
    }
    {
        g_autofree char *args = g_strdup_printf(
            "-object iommufd,id=iommufd0 -object iommufd,id=iommufd1 "
            "-device vfio-pci,host=%s,iommufd=iommufd0,addr=%d "
            "-device vfio-pci,host=%s,iommufd=iommufd1,addr=%d",
            bdf0, SLOT0, bdf1, SLOT1);

        vm_start(&vm, "shared-ioas-two", args);
        assert_round_trip(&vm, SLOT0, 0x77);
        assert_round_trip(&vm, SLOT1, 0x88);
        vm_quit(&vm);
        g_assert_cmpint(trace_count(&vm, "iommufd_backend_alloc_ioas"),
                        ==, 2);
        vm_stop(&vm);
    }
}

/* Both paths in one VM: one device through iommufd, one through a group. */
static void test_mixed(void)
{
    const char *bdf0 = need_edu(0);
    const char *bdf1 = bdf0 ? need_edu(1) : NULL;
    g_autofree char *args = NULL;
    TestVM vm;

    if (!bdf1) {
        return;
    }
    args = g_strdup_printf("-object iommufd,id=iommufd0 "
                           "-device vfio-pci,host=%s,iommufd=iommufd0,addr=%d "
                           "-device vfio-pci,host=%s,addr=%d",
                           bdf0, SLOT0, bdf1, SLOT1);
    vm_start(&vm, "mixed", args);
    assert_round_trip(&vm, SLOT0, 0x5a);
    assert_round_trip(&vm, SLOT1, 0x6b);
    vm_quit(&vm);
    g_assert_cmpint(trace_count(&vm, "vfio_iommufd_attach_ioas"), ==, 1);
    g_assert_cmpint(trace_count_with(&vm, "vfio_attach_device",
                                     "backend=iommufd"), ==, 1);
    g_assert_cmpint(trace_count_with(&vm, "vfio_attach_device",
                                     "backend=legacy"), ==, 1);
    vm_stop(&vm);
}

static char *object_del_error(TestVM *vm, const char *id)
{
    QDict *resp = qtest_qmp(vm->qts, "{'execute': 'object-del',"
                            " 'arguments': {'id': %s}}", id);
    char *desc;

    g_assert(qdict_haskey(resp, "error"));
    desc = g_strdup(qdict_get_str(qdict_get_qdict(resp, "error"), "desc"));
    qobject_unref(resp);
    return desc;
}

/*
 * Hot-plug the way management tools do: object-add, device_add, DMA,
 * object-del refused while in use, device_del, object-del; three times.
 */
static void test_hotplug(void)
{
    const char *bdf = need_edu(0);
    TestVM vm;

    if (!bdf) {
        return;
    }
    vm_start(&vm, "hotplug", "");
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

        in_use = object_del_error(&vm, "iommufd0");
        g_assert(strstr(in_use, "iommufd0"));
        g_assert(strstr(in_use, "in use"));

        qpci_unplug_acpi_device_test(vm.qts, "hostdev0", SLOT0);
        qtest_qmp_assert_success(vm.qts, "{'execute': 'object-del',"
                                 " 'arguments': {'id': 'iommufd0'}}");
    }
    vm_quit(&vm);
    g_assert_cmpint(trace_count(&vm, "vfio_iommufd_container_free"),
                    ==, 3);
    vm_stop(&vm);
}

/*
 * With KVM, the device must be added to the kvm-vfio device before the
 * bind, which is when the kernel takes its kvm reference.
 */
static void test_kvm_order(void)
{
    const char *bdf = need_edu(0);
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
    vm_start(&vm, "kvm-order", args);
    resp = qtest_qmp(vm.qts, "{'execute': 'query-kvm'}");
    g_assert(qdict_get_bool(qdict_get_qdict(resp, "return"), "enabled"));
    qobject_unref(resp);
    resp = qtest_qmp(vm.qts, "{'execute': 'query-status'}");
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(resp, "return"), "status"),
                    ==, "running");
    qobject_unref(resp);
    vm_quit(&vm);

    add = trace_index(&vm, "vfio_kvm_device_add_fd");
    bind = trace_index(&vm, "vfio_iommufd_bind");
    g_assert_cmpint(add, >=, 0);
    g_assert_cmpint(bind, >, add);
    g_assert(trace_first_has(&vm, "vfio_kvm_device_add_fd", "errno=0"));
    g_assert(trace_first_has(&vm, "vfio_iommufd_bind", "errno=0"));
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
    const char *bdf = need_edu(0);
    g_autofree char *args = NULL;
    g_autofree uint8_t *before = g_malloc(DMA_LEN);
    g_autofree uint8_t *after = g_malloc(DMA_LEN);
    QPCIDevice *host;
    TestVM vm;
    Edu edu;

    if (!bdf) {
        return;
    }
    args = g_strdup_printf("%s -device vfio-pci,host=%s,addr=%d%s",
                           be->object, bdf, SLOT0, be->props);
    vm_start(&vm, "region-toggle", args);
    host = qpci_device_find(vm.bus, 0);
    g_assert(host);
    edu_init(&edu, &vm, SLOT0);

    /* The BIOS ROM: a device write is refused. */
    qtest_memread(vm.qts, PAM_E0000, before, DMA_LEN);
    g_assert(edu_round_trip(&vm, &edu, GUEST_SRC, GUEST_DST, 0xa1));
    edu_dma(&edu, EDU_BUFFER, PAM_E0000, DMA_LEN, true);
    qtest_memread(vm.qts, PAM_E0000, after, DMA_LEN);
    g_assert(!memcmp(before, after, DMA_LEN));

    /* RAM, read/write: the same DMA lands. */
    qpci_config_writeb(host, PAM_E0000_REG, 0x03);
    g_assert(edu_round_trip(&vm, &edu, GUEST_SRC, PAM_E0000, 0xb2));

    /* RAM, read-only: a new pattern is blocked, the last one stays. */
    qpci_config_writeb(host, PAM_E0000_REG, 0x01);
    qtest_memread(vm.qts, PAM_E0000, before, DMA_LEN);
    g_assert(edu_round_trip(&vm, &edu, GUEST_SRC, GUEST_DST, 0xc3));
    edu_dma(&edu, EDU_BUFFER, PAM_E0000, DMA_LEN, true);
    qtest_memread(vm.qts, PAM_E0000, after, DMA_LEN);
    g_assert(!memcmp(before, after, DMA_LEN));
    g_assert_cmphex(after[0], ==, (uint8_t)0xb2);

    edu_fini(&edu);
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
    g_autofree uint8_t *buf = g_malloc(DMA_LEN);

    qtest_memread(vm->qts, addr, buf, DMA_LEN);
    return buffer_is_zero(buf, DMA_LEN);
}

/*
 * While assigned, DMA started behind QEMU's back reaches guest RAM (the
 * control); after device_del, the same DMA to the same IOVA must not.
 * Re-adding the device then shows its buffer still held the pattern.
 */
static void test_unplug_unmaps(const void *opaque)
{
    const Backend *be = opaque;
    const char *bdf = need_edu(0);
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
    vm_start(&vm, "unplug-unmaps", args);
    raw_edu_open(&raw, bdf);

    edu_init(&edu, &vm, SLOT0);
    g_assert(edu_round_trip(&vm, &edu, GUEST_SRC, GUEST_DST, 0xd4));
    edu_fini(&edu);

    qtest_memset(vm.qts, GUEST_DST2, 0, DMA_LEN);
    raw_edu_dma_to_ram(&raw, GUEST_DST2, DMA_LEN);
    g_assert(!guest_is_zero(&vm, GUEST_DST2));

    qpci_unplug_acpi_device_test(vm.qts, "hostdev0", SLOT0);
    qtest_memset(vm.qts, GUEST_DST2, 0, DMA_LEN);
    raw_edu_dma_to_ram(&raw, GUEST_DST2, DMA_LEN);
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
    qtest_memset(vm.qts, GUEST_DST2, 0, DMA_LEN);
    raw_edu_dma_to_ram(&raw, GUEST_DST2, DMA_LEN);
    g_assert(!guest_is_zero(&vm, GUEST_DST2));

    raw_edu_close(&raw);
    vm_stop(&vm);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    find_edu_devices();

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
