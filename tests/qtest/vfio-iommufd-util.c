/*
 * Helpers for the real-kernel VFIO/iommufd qtests
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/wait.h>
#include "libqtest.h"
#include "libqos/pci-pc.h"
#include "hw/pci/pci_regs.h"
#include "qapi/qmp/qdict.h"
#include "qemu/cutils.h"
#include "vfio-iommufd-util.h"

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

/* For g_ptr_array_sort(), which passes pointers to the elements. */
static gint compare_strings(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void edu_find(void)
{
    const char *drv = "/sys/bus/pci/drivers/vfio-pci";
    GDir *dir;
    const char *name;

    if (edu_bdfs) {
        return;
    }
    edu_bdfs = g_ptr_array_new_with_free_func(g_free);
    dir = g_dir_open(drv, 0, NULL);
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

unsigned edu_count(void)
{
    edu_find();
    return edu_bdfs->len;
}

const char *edu_need(unsigned n)
{
    edu_find();
    if (edu_bdfs->len <= n) {
        g_autofree char *why = g_strdup_printf("needs %u edu devices bound "
                                               "to vfio-pci, found %u",
                                               n + 1, edu_bdfs->len);
        g_test_skip(why);
        return NULL;
    }
    return g_ptr_array_index(edu_bdfs, n);
}

char *edu_cdev(const char *bdf)
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

void vm_start(TestVM *vm, const char *extra)
{
    g_autofree char *args = NULL;
    g_autofree char *pidfile = NULL;
    g_autofree char *pid = NULL;

    vm->tmpdir = g_dir_make_tmp("vfio-iommufd-XXXXXX", NULL);
    g_assert(vm->tmpdir);
    vm->trace = g_build_filename(vm->tmpdir, "trace.log", NULL);
    pidfile = g_build_filename(vm->tmpdir, "qemu.pid", NULL);
    args = g_strdup_printf(VM_MACHINE "-pidfile %s -D %s "
                           "-trace enable=iommufd_backend_* "
                           "-trace enable=vfio_iommufd_* "
                           "-trace enable=vfio_kvm_device_* "
                           "-trace enable=vfio_attach_device "
                           "-trace enable=vfio_detach_device %s",
                           pidfile, vm->trace, extra);
    vm->qts = qtest_init(args);
    vm->bus = qpci_new_pc(vm->qts, NULL);
    g_assert(g_file_get_contents(pidfile, &pid, NULL, NULL));
    vm->pid = atoi(pid);
    g_assert_cmpint(vm->pid, >, 0);
}

void vm_quit(TestVM *vm)
{
    qpci_free_pc(vm->bus);
    vm->bus = NULL;
    qtest_quit(vm->qts);
    vm->qts = NULL;
}

void vm_stop(TestVM *vm)
{
    g_autofree char *pidfile = g_build_filename(vm->tmpdir, "qemu.pid",
                                                NULL);

    if (vm->qts) {
        vm_quit(vm);
    }
    unlink(vm->trace);
    unlink(pidfile);
    rmdir(vm->tmpdir);
    g_free(vm->trace);
    g_free(vm->tmpdir);
    memset(vm, 0, sizeof(*vm));
}

bool vm_alive(TestVM *vm)
{
    QDict *resp = qtest_qmp(vm->qts, "{'execute': 'query-status'}");
    const char *status = qdict_haskey(resp, "return") ?
        qdict_get_str(qdict_get_qdict(resp, "return"), "status") : "none";
    /* Started with -S, the VM stays in prelaunch. */
    bool alive = !strcmp(status, "running") || !strcmp(status, "prelaunch");

    if (!alive) {
        g_test_message("expected the VM running, got status %s", status);
    }
    qobject_unref(resp);
    return alive;
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

unsigned vm_trace_count(TestVM *vm, const char *event)
{
    g_autoptr(GPtrArray) lines = trace_lines(vm, event);

    return lines->len;
}

unsigned vm_trace_count_with(TestVM *vm, const char *event, const char *text)
{
    g_autoptr(GPtrArray) lines = trace_lines(vm, event);
    unsigned n = 0;

    for (unsigned i = 0; i < lines->len; i++) {
        n += !!strstr(g_ptr_array_index(lines, i), text);
    }
    return n;
}

bool vm_trace_first_has(TestVM *vm, const char *event, const char *text)
{
    g_autoptr(GPtrArray) lines = trace_lines(vm, event);

    return lines->len && strstr(g_ptr_array_index(lines, 0), text);
}

int vm_trace_index(TestVM *vm, const char *event)
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

static char *vm_qmp_verror(TestVM *vm, const char *fmt, va_list ap)
{
    QDict *resp = qtest_vqmp(vm->qts, fmt, ap);
    char *desc = NULL;

    g_assert(resp);
    if (qdict_haskey(resp, "error")) {
        desc = g_strdup(qdict_get_str(qdict_get_qdict(resp, "error"),
                                      "desc"));
    }
    qobject_unref(resp);
    return desc;
}

char *vm_qmp_error(TestVM *vm, const char *fmt, ...)
{
    va_list ap;
    char *desc;

    va_start(ap, fmt);
    desc = vm_qmp_verror(vm, fmt, ap);
    va_end(ap);
    return desc;
}

void vm_qmp_ok(TestVM *vm, const char *fmt, ...)
{
    g_autofree char *desc = NULL;
    va_list ap;

    va_start(ap, fmt);
    desc = vm_qmp_verror(vm, fmt, ap);
    va_end(ap);
    if (desc) {
        g_test_message("expected success, got error: %s", desc);
        g_assert_not_reached();
    }
}

char *vm_add_edu(TestVM *vm, const char *id, const char *bdf, int slot,
                 const char *iommufd)
{
    g_autofree char *addr = g_strdup_printf("%d", slot);

    return vm_qmp_error(vm, "{'execute': 'device_add', 'arguments':"
                        " {'driver': 'vfio-pci', 'id': %s, 'host': %s,"
                        " 'iommufd': %s, 'addr': %s}}",
                        id, bdf, iommufd, addr);
}

void vm_del_device(TestVM *vm, const char *id, int slot)
{
    qpci_unplug_acpi_device_test(vm->qts, id, slot);
}

void edu_open(TestVM *vm, int slot, Edu *edu)
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

void edu_close(Edu *edu)
{
    qpci_iounmap(edu->dev, edu->bar);
    g_free(edu->dev);
}

void edu_dma_start(Edu *edu, uint64_t src, uint64_t dst, uint32_t len,
                   bool to_ram)
{
    uint64_t dev_addr = to_ram ? src : dst;

    /*
     * Outside its buffer (and, off by one, at its end) edu stops the outer
     * emulator, the whole test bed: keep the device side in range.
     */
    g_assert(dev_addr >= EDU_BUFFER && dev_addr + len < EDU_BUFFER + 4096);
    qpci_io_writeq(edu->dev, edu->bar, EDU_DMA_SRC, src);
    qpci_io_writeq(edu->dev, edu->bar, EDU_DMA_DST, dst);
    qpci_io_writeq(edu->dev, edu->bar, EDU_DMA_COUNT, len);
    qpci_io_writeq(edu->dev, edu->bar, EDU_DMA_CMD,
                   EDU_DMA_RUN | (to_ram ? EDU_DMA_TO_RAM : 0));
}

bool edu_dma_wait(Edu *edu)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    /* edu's DMA runs on a timer of the outer emulator: real time. */
    while (qpci_io_readq(edu->dev, edu->bar, EDU_DMA_CMD) & EDU_DMA_RUN) {
        if (g_get_monotonic_time() > deadline) {
            g_test_message("edu DMA not done after 10 s");
            return false;
        }
        g_usleep(10 * 1000);
    }
    return true;
}

bool edu_round_trip(TestVM *vm, Edu *edu, uint64_t src, uint64_t dst,
                    uint8_t seed)
{
    g_autofree uint8_t *pattern = g_malloc(EDU_DMA_LEN);
    g_autofree uint8_t *back = g_malloc(EDU_DMA_LEN);
    bool ok;

    for (int i = 0; i < EDU_DMA_LEN; i++) {
        pattern[i] = seed + i * 7;
    }
    qtest_memwrite(vm->qts, src, pattern, EDU_DMA_LEN);
    qtest_memset(vm->qts, dst, 0, EDU_DMA_LEN);
    edu_dma_start(edu, src, EDU_BUFFER, EDU_DMA_LEN, false);
    ok = edu_dma_wait(edu);
    edu_dma_start(edu, EDU_BUFFER, dst, EDU_DMA_LEN, true);
    ok = edu_dma_wait(edu) && ok;
    qtest_memread(vm->qts, dst, back, EDU_DMA_LEN);

    ok = ok && !memcmp(pattern, back, EDU_DMA_LEN);
    if (!ok) {
        g_test_message("DMA 0x%" PRIx64 " -> edu -> 0x%" PRIx64 ": bytes "
                       "differ (first byte 0x%02x, expected 0x%02x)",
                       src, dst, back[0], pattern[0]);
    }
    return ok;
}

bool vm_dma_round_trip(TestVM *vm, int slot, uint8_t seed)
{
    bool ok;
    Edu edu;

    edu_open(vm, slot, &edu);
    ok = edu_round_trip(vm, &edu, GUEST_SRC, GUEST_DST, seed);
    if (!ok) {
        g_test_message("DMA round trip through edu in slot %d failed", slot);
    }
    edu_close(&edu);
    return ok;
}

static unsigned long status_kb(const char *status, const char *field)
{
    const char *p = strstr(status, field);
    const char *end;
    unsigned long kb = 0;

    if (p) {
        g_assert(!qemu_strtoul(p + strlen(field), &end, 10, &kb));
    }
    return kb;
}

void proc_stats(pid_t pid, ProcStats *st)
{
    g_autofree char *fddir = g_strdup_printf("/proc/%d/fd", pid);
    g_autofree char *path = g_strdup_printf("/proc/%d/status", pid);
    g_autofree char *status = NULL;
    GDir *dir = g_dir_open(fddir, 0, NULL);

    g_assert(dir);
    st->fds = 0;
    while (g_dir_read_name(dir)) {
        st->fds++;
    }
    g_dir_close(dir);
    g_assert(g_file_get_contents(path, &status, NULL, NULL));
    st->rss_kb = status_kb(status, "VmRSS:");
    st->lck_kb = status_kb(status, "VmLck:");
    st->pin_kb = status_kb(status, "VmPin:");
}

char *proc_stats_str(const ProcStats *st)
{
    return g_strdup_printf("fds %u, VmRSS %lu kB, VmLck %lu kB, "
                           "VmPin %lu kB", st->fds, st->rss_kb, st->lck_kb,
                           st->pin_kb);
}

int qemu_run(const char *args, char **err)
{
    g_autofree char *dir = g_dir_make_tmp("qemu-run-XXXXXX", NULL);
    g_autofree char *in = g_build_filename(dir, "qmp.in", NULL);
    g_autofree char *out = g_build_filename(dir, "qmp.out", NULL);
    g_autofree char *errfile = g_build_filename(dir, "stderr", NULL);
    g_autofree char *cmd = NULL;
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    const char *argv[] = { "/bin/sh", "-c", NULL, NULL };
    GPid pid;
    int wstatus;

    g_assert(dir && g_getenv("QTEST_QEMU_BINARY"));
    g_assert(g_file_set_contents(in, "{'execute': 'qmp_capabilities'}\n"
                                 "{'execute': 'quit'}\n", -1, NULL));
    /* After @args: an -accel there is tried first. */
    cmd = g_strdup_printf("exec %s -display none -nodefaults %s -accel qtest "
                          "-qmp stdio <%s >%s 2>%s",
                          g_getenv("QTEST_QEMU_BINARY"),
                          args, in, out, errfile);
    argv[2] = cmd;
    g_test_message("running: %s", cmd);
    g_assert(g_spawn_async(NULL, (char **)argv, NULL,
                           G_SPAWN_DO_NOT_REAP_CHILD |
                           G_SPAWN_LEAVE_DESCRIPTORS_OPEN, NULL, NULL, &pid,
                           NULL));
    while (waitpid(pid, &wstatus, WNOHANG) == 0) {
        if (g_get_monotonic_time() > deadline) {
            kill(pid, SIGKILL);
            g_assert(waitpid(pid, &wstatus, 0) == pid);
            break;
        }
        g_usleep(20 * 1000);
    }
    g_spawn_close_pid(pid);
    if (!g_file_get_contents(errfile, err, NULL, NULL)) {
        *err = g_strdup("");
    }
    unlink(in);
    unlink(out);
    unlink(errfile);
    rmdir(dir);
    return wstatus;
}

char *wait_status_str(int wstatus)
{
    if (WIFEXITED(wstatus)) {
        return g_strdup_printf("exit status %d", WEXITSTATUS(wstatus));
    }
    if (WIFSIGNALED(wstatus)) {
        return g_strdup_printf("signal %d (%s)", WTERMSIG(wstatus),
                               strsignal(WTERMSIG(wstatus)));
    }
    return g_strdup_printf("wait status 0x%x", wstatus);
}

bool contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle)) {
        g_test_message("expected \"%s\" in \"%s\"", needle, haystack);
        return false;
    }
    return true;
}
