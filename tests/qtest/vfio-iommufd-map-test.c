/*
 * qtest: guest RAM mapped into an IOAS by several threads, in chunks
 *
 * With map-threads=2 on the iommufd object, the 255 MiB RAM section of a
 * 256 MiB pc guest (1 MiB..256 MiB) is mapped as chunks, an
 * IOMMU_IOAS_MAP call each, by two threads.  The cases check what must
 * not change with that: the IOAS maps the same IOVAs to the same guest
 * RAM with the same permissions as one call per section does (read from
 * the trace of both); the device's DMA crosses every chunk boundary it
 * can reach (edu's 28-bit mask: all of them here) with the bytes
 * compared; device_del unmaps every chunk and unpins all of it; a chunk
 * that fails (RLIMIT_MEMLOCK) leaves nothing of the section mapped or
 * pinned and the device can be added once the limit allows; the legacy
 * container still maps a section in one call.
 *
 * Needs edu devices bound to vfio-pci, as in tests/testbed; without them
 * the DMA cases are skipped with the reason.
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/resource.h>
#include "libqtest.h"
#include "qapi/qmp/qdict.h"
#include "qemu/units.h"
#include "vfio-iommufd-util.h"

/* The RAM above 1 MiB of the VM_MACHINE guest: the section split. */
#define SECTION_START   (1 * MiB)
#define SECTION_END     (256 * MiB)

/* One IOMMU_IOAS_MAP call of the trace. */
typedef struct MapCall {
    uint64_t iova;
    uint64_t size;
    uint64_t vaddr;
    int readonly;
    int err;
} MapCall;

/* The IOMMU_IOAS_MAP calls of the trace log, in order. */
static GArray *map_calls(TestVM *vm)
{
    g_autofree char *log = NULL;
    g_auto(GStrv) lines = NULL;
    GArray *calls = g_array_new(false, true, sizeof(MapCall));

    g_assert(g_file_get_contents(vm->trace, &log, NULL, NULL));
    lines = g_strsplit(log, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        const char *p = strstr(lines[i], "iommufd_backend_map_dma ");
        MapCall c;

        if (p && sscanf(p, "iommufd_backend_map_dma iommufd=%*d ioas=%*u "
                        "iova=0x%" SCNx64 " size=0x%" SCNx64 " vaddr=%"
                        SCNx64 " readonly=%d errno=%d", &c.iova, &c.size,
                        &c.vaddr, &c.readonly, &c.err) == 5) {
            g_array_append_val(calls, c);
        }
    }
    return calls;
}

/* The bytes the trace says were unmapped from an IOAS. */
static uint64_t unmapped_bytes(TestVM *vm)
{
    g_autofree char *log = NULL;
    g_auto(GStrv) lines = NULL;
    uint64_t total = 0;

    g_assert(g_file_get_contents(vm->trace, &log, NULL, NULL));
    lines = g_strsplit(log, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        const char *p = strstr(lines[i], "iommufd_backend_unmap_dma ");
        uint64_t unmapped;

        if (p && sscanf(p, "iommufd_backend_unmap_dma iommufd=%*d ioas=%*u "
                        "iova=0x%*x size=0x%*x unmapped=0x%" SCNx64,
                        &unmapped) == 1) {
            total += unmapped;
        }
    }
    return total;
}

static int by_iova(gconstpointer a, gconstpointer b)
{
    const MapCall *x = a, *y = b;

    return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/*
 * The successful calls from @from on, sorted, with adjacent calls that
 * map contiguous guest RAM (same vaddr - iova) alike merged: what the
 * IOAS holds, whatever the calls it took.
 */
static GArray *merged_mappings(GArray *calls, guint from)
{
    GArray *out = g_array_new(false, true, sizeof(MapCall));

    for (guint i = from; i < calls->len; i++) {
        MapCall *c = &g_array_index(calls, MapCall, i);

        if (!c->err) {
            g_array_append_val(out, *c);
        }
    }
    g_array_sort(out, by_iova);
    for (guint i = 1; i < out->len; i++) {
        MapCall *prev = &g_array_index(out, MapCall, i - 1);
        MapCall *c = &g_array_index(out, MapCall, i);

        if (prev->iova + prev->size == c->iova &&
            prev->vaddr + prev->size == c->vaddr &&
            prev->readonly == c->readonly) {
            prev->size += c->size;
            g_array_remove_index(out, i--);
        }
    }
    return out;
}

/*
 * The successful calls from @from on that map the big section, sorted by
 * IOVA; asserts that they cover it exactly, from one stretch of memory.
 */
static GArray *section_chunks(GArray *calls, guint from)
{
    GArray *chunks = g_array_new(false, true, sizeof(MapCall));
    uint64_t next = SECTION_START;

    for (guint i = from; i < calls->len; i++) {
        MapCall *c = &g_array_index(calls, MapCall, i);

        if (!c->err && c->iova >= SECTION_START && c->iova < SECTION_END) {
            g_array_append_val(chunks, *c);
        }
    }
    g_array_sort(chunks, by_iova);
    for (guint i = 0; i < chunks->len; i++) {
        MapCall *c = &g_array_index(chunks, MapCall, i);
        MapCall *first = &g_array_index(chunks, MapCall, 0);

        g_test_message("chunk %u: iova 0x%" PRIx64 " size 0x%" PRIx64, i,
                       c->iova, c->size);
        g_assert_cmphex(c->iova, ==, next);
        g_assert_cmphex(c->vaddr - c->iova, ==, first->vaddr - first->iova);
        g_assert_cmpint(c->readonly, ==, 0);
        next = c->iova + c->size;
    }
    g_assert_cmphex(next, ==, SECTION_END);
    return chunks;
}

/*
 * DMA across every boundary between chunks: from 1 KiB below boundary i
 * to 1 KiB below boundary i + 1 (the last one to the first), so that
 * every boundary is read across and written across.
 */
static void dma_across(TestVM *vm, GArray *chunks, uint8_t seed)
{
    guint nb = chunks->len - 1;
    Edu edu;

    g_assert_cmpuint(nb, >=, 1);
    edu_open(vm, SLOT0, &edu);
    for (guint i = 0; i < nb; i++) {
        uint64_t src = g_array_index(chunks, MapCall, i + 1).iova;
        uint64_t dst = g_array_index(chunks, MapCall, (i + 1) % nb + 1).iova;

        src -= EDU_DMA_LEN / 2;
        dst -= EDU_DMA_LEN / 2;
        if (nb == 1) {
            dst = GUEST_DST;
        }
        g_assert(edu_round_trip(vm, &edu, src, dst, seed + i));
        g_test_message("DMA 0x%" PRIx64 " -> edu -> 0x%" PRIx64 ", across "
                       "chunk boundaries: %d bytes verified", src, dst,
                       EDU_DMA_LEN);
    }
    edu_close(&edu);
}

/* Start a VM with edu on iommufd, map-threads=@threads; its map calls. */
static GArray *start_with_threads(TestVM *vm, const char *bdf,
                                  unsigned threads)
{
    g_autofree char *args = g_strdup_printf(
        "-object iommufd,id=iommufd0,map-threads=%u "
        "-device vfio-pci,host=%s,iommufd=iommufd0,id=edu0,addr=%d "
        "-trace enable=vfio_dma_map_chunks*", threads, bdf, SLOT0);

    vm_start(vm, args);
    /* The trace is written as QEMU goes: the maps of realize are in. */
    return map_calls(vm);
}

/*
 * Chunks at start-up: the IOAS holds what one call per section gives,
 * and DMA crosses each chunk boundary.
 */
static void test_boundaries(void)
{
    const char *bdf = edu_need(0);
    g_autoptr(GArray) serial = NULL, parallel = NULL, chunks = NULL;
    g_autoptr(GArray) serial_ioas = NULL, parallel_ioas = NULL;
    TestVM vm;

    if (!bdf) {
        return;
    }
    serial = start_with_threads(&vm, bdf, 1);
    vm_stop(&vm);
    serial_ioas = merged_mappings(serial, 0);
    chunks = section_chunks(serial, 0);
    g_assert_cmpuint(chunks->len, ==, 1);
    g_array_unref(chunks);

    parallel = start_with_threads(&vm, bdf, 2);
    chunks = section_chunks(parallel, 0);
    g_assert_cmpuint(chunks->len, >=, 2);
    parallel_ioas = merged_mappings(parallel, 0);

    /* The same mappings, told apart only by the host address of RAM. */
    g_assert_cmpuint(serial_ioas->len, ==, parallel_ioas->len);
    for (guint i = 0; i < serial_ioas->len; i++) {
        MapCall *s = &g_array_index(serial_ioas, MapCall, i);
        MapCall *p = &g_array_index(parallel_ioas, MapCall, i);

        g_test_message("IOAS: 0x%" PRIx64 "+0x%" PRIx64 " ro=%d, serial and "
                       "with two threads", s->iova, s->size, s->readonly);
        g_assert_cmphex(s->iova, ==, p->iova);
        g_assert_cmphex(s->size, ==, p->size);
        g_assert_cmpint(s->readonly, ==, p->readonly);
    }

    dma_across(&vm, chunks, 0x21);
    vm_quit(&vm);
    g_assert_cmpuint(vm_trace_count_with(&vm, "vfio_dma_map_chunks",
                                         "threads=2"), ==, 1);
    vm_stop(&vm);
}

/*
 * Chunks at hot-plug, with the guest's RAM in use: DMA across the
 * boundaries; device_del unmaps every chunk (the trace's unmapped bytes
 * cover all that was mapped) and unpins all of it; twice.
 */
static void test_hotplug(void)
{
    const char *bdf = edu_need(0);
    ProcStats base, plugged, unplugged;
    TestVM vm;

    if (!bdf) {
        return;
    }
    vm_start(&vm, "-trace enable=vfio_dma_map_chunks*");
    proc_stats(vm.pid, &base);
    qtest_memset(vm.qts, SECTION_START, 0x5a, SECTION_END - SECTION_START);
    for (int i = 0; i < 2; i++) {
        g_autoptr(GArray) calls = map_calls(&vm);
        g_autoptr(GArray) chunks = NULL;
        guint before = calls->len;
        uint64_t mapped = 0, unmapped_before = unmapped_bytes(&vm);

        vm_qmp_ok(&vm, "{'execute': 'object-add', 'arguments':"
                  " {'qom-type': 'iommufd', 'id': 'iommufd0',"
                  " 'map-threads': 2}}");
        g_assert_null(vm_add_edu(&vm, "edu0", bdf, SLOT0, "iommufd0"));
        g_array_unref(calls);
        calls = map_calls(&vm);
        chunks = section_chunks(calls, before);
        g_assert_cmpuint(chunks->len, >=, 2);
        for (guint j = before; j < calls->len; j++) {
            MapCall *c = &g_array_index(calls, MapCall, j);

            mapped += c->err ? 0 : c->size;
        }
        proc_stats(vm.pid, &plugged);
        g_assert_cmpuint(plugged.pin_kb - base.pin_kb, ==, mapped / KiB);
        dma_across(&vm, chunks, 0x40 + i * 0x10);

        vm_del_device(&vm, "edu0", SLOT0);
        vm_qmp_ok(&vm, "{'execute': 'object-del', 'arguments':"
                  " {'id': 'iommufd0'}}");
        proc_stats(vm.pid, &unplugged);
        g_test_message("cycle %d: mapped %" PRIu64 " MiB in %u chunks; "
                       "VmPin %lu -> %lu -> %lu kB", i, mapped / MiB,
                       chunks->len, base.pin_kb, plugged.pin_kb,
                       unplugged.pin_kb);
        g_assert_cmpuint(unplugged.pin_kb, ==, base.pin_kb);
        g_assert_cmpuint(unmapped_bytes(&vm) - unmapped_before, ==, mapped);
    }
    g_assert(vm_alive(&vm));
    vm_stop(&vm);
}

/*
 * A chunk that fails: RLIMIT_MEMLOCK below guest RAM, QEMU without
 * CAP_IPC_LOCK (which would exempt it from the limit), so some chunk of
 * the section gets ENOMEM.  device_add fails with the kernel's reason,
 * nothing stays pinned, and with the limit raised the device is added
 * and DMA crosses the boundaries.  Once with one call per section for
 * comparison, once with two threads.
 */
static void test_memlock(const void *opaque)
{
    unsigned threads = GPOINTER_TO_UINT(opaque);
    const char *bdf = edu_need(0);
    const char *qemu = getenv("QTEST_QEMU_BINARY");
    g_autofree char *wrapped = NULL;
    g_autofree char *err = NULL;
    g_autoptr(GArray) calls = NULL, chunks = NULL;
    struct rlimit lim = { 160 * MiB, 160 * MiB };
    ProcStats base, failed;
    TestVM vm;

    if (!bdf) {
        return;
    }
    if (access("/usr/bin/setpriv", X_OK)) {
        g_test_skip("needs setpriv (util-linux) to drop CAP_IPC_LOCK");
        return;
    }
    /* libqtest runs "exec $QTEST_QEMU_BINARY ..." through the shell. */
    wrapped = g_strdup_printf("/usr/bin/setpriv --bounding-set=-ipc_lock "
                              "--inh-caps=-ipc_lock %s", qemu);
    g_setenv("QTEST_QEMU_BINARY", wrapped, true);
    vm_start(&vm, "");
    g_setenv("QTEST_QEMU_BINARY", qemu, true);
    g_assert_cmpint(prlimit(vm.pid, RLIMIT_MEMLOCK, &lim, NULL), ==, 0);
    proc_stats(vm.pid, &base);

    vm_qmp_ok(&vm, "{'execute': 'object-add', 'arguments':"
              " {'qom-type': 'iommufd', 'id': 'iommufd0',"
              " 'map-threads': %u}}", threads);
    err = vm_add_edu(&vm, "edu0", bdf, SLOT0, "iommufd0");
    g_assert(err);
    g_test_message("device_add with RLIMIT_MEMLOCK at 160 MiB, %u "
                   "thread(s): %s", threads, err);
    g_assert(contains(err, "RLIMIT_MEMLOCK"));
    proc_stats(vm.pid, &failed);
    g_assert_cmpuint(failed.pin_kb, ==, base.pin_kb);
    g_assert(vm_alive(&vm));

    lim.rlim_cur = lim.rlim_max = 512 * MiB;
    g_assert_cmpint(prlimit(vm.pid, RLIMIT_MEMLOCK, &lim, NULL), ==, 0);
    g_assert_null(vm_add_edu(&vm, "edu0", bdf, SLOT0, "iommufd0"));
    calls = map_calls(&vm);
    /* The calls of the second device_add: after the last failed one. */
    for (guint i = calls->len; i > 0; i--) {
        if (g_array_index(calls, MapCall, i - 1).err) {
            chunks = section_chunks(calls, i);
            break;
        }
    }
    g_assert(chunks);
    g_assert_cmpuint(chunks->len, ==, threads > 1 ? 4 : 1);
    if (threads > 1) {
        dma_across(&vm, chunks, 0x70);
    } else {
        g_assert(vm_dma_round_trip(&vm, SLOT0, 0x70));
    }
    vm_stop(&vm);
}

/* The legacy container maps each section in one call, as it always did. */
static void test_legacy_serial(void)
{
    const char *bdf = edu_need(0);
    g_autofree char *args = NULL;
    TestVM vm;

    if (!bdf) {
        return;
    }
    args = g_strdup_printf("-device vfio-pci,host=%s,addr=%d "
                           "-trace enable=vfio_dma_map*", bdf, SLOT0);
    vm_start(&vm, args);
    g_assert(vm_dma_round_trip(&vm, SLOT0, 0x90));
    vm_quit(&vm);
    g_assert_cmpuint(vm_trace_count(&vm, "vfio_dma_map_chunks"), ==, 0);
    g_assert_cmpuint(vm_trace_count_with(&vm, "vfio_dma_map",
                                         "iova=0x100000 size=0xff00000"),
                     ==, 1);
    vm_stop(&vm);
}

/* map-threads: at most 64, 1 (one call per section) by default. */
static void test_property(void)
{
    g_autofree char *err = NULL;
    QTestState *qts;
    QDict *resp;
    int ws;

    ws = qemu_run(VM_MACHINE "-object iommufd,id=iommufd0,map-threads=65",
                  &err);
    g_test_message("map-threads=65: %s: %s", wait_status_str(ws), err);
    g_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 1);
    g_assert(contains(err, "map-threads must be at most 64, not 65"));

    qts = qtest_init(VM_MACHINE "-object iommufd,id=iommufd0");
    resp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments':"
                     " {'path': '/objects/iommufd0',"
                     " 'property': 'map-threads'}}");
    g_assert_cmpint(qdict_get_int(resp, "return"), ==, 1);
    qobject_unref(resp);
    qtest_quit(qts);

    /* 0: one thread per host CPU, chosen when a device attaches. */
    qts = qtest_init(VM_MACHINE "-object iommufd,id=iommufd0,map-threads=0");
    resp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments':"
                     " {'path': '/objects/iommufd0',"
                     " 'property': 'map-threads'}}");
    g_assert_cmpint(qdict_get_int(resp, "return"), ==, 0);
    qobject_unref(resp);
    qtest_quit(qts);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_func("/vfio-iommufd-map/property", test_property);
    qtest_add_func("/vfio-iommufd-map/boundaries", test_boundaries);
    qtest_add_func("/vfio-iommufd-map/hotplug", test_hotplug);
    qtest_add_data_func("/vfio-iommufd-map/memlock/serial",
                        GUINT_TO_POINTER(1), test_memlock);
    qtest_add_data_func("/vfio-iommufd-map/memlock/threads",
                        GUINT_TO_POINTER(2), test_memlock);
    qtest_add_func("/vfio-iommufd-map/legacy-serial", test_legacy_serial);
    return g_test_run();
}
