/*
 * ioas-map-ref: the kernel's own cost of the DMA map calls QEMU makes
 *
 * Sets up what QEMU's VFIO code sets up before it maps guest RAM, with
 * nothing else around it, then issues the same map calls (same IOVAs,
 * sizes and permissions) on anonymous memory that is mmap'd the way QEMU
 * mmaps guest RAM (private, anonymous, MADV_HUGEPAGE, not prefaulted:
 * pinning faults the pages in) and times each call.
 *
 *   ioas-map-ref ioctls                 print "NAME 0xNUMBER" for the
 *                                       ioctls the benchmark decodes
 *   ioas-map-ref iommufd CDEV SPEC      /dev/iommu + the device cdev: BIND,
 *                                       IOAS_ALLOC, ATTACH, then IOAS_MAP
 *   ioas-map-ref type1 GROUP SPEC       /dev/vfio/vfio + the group:
 *                                       SET_CONTAINER, SET_IOMMU, then
 *                                       VFIO_IOMMU_MAP_DMA
 *   ... cycles N                        instead of a SPEC: N cycles of
 *                                       mapping one 4 KiB page (already
 *                                       faulted in, as guest RAM a guest
 *                                       maps through its vIOMMU) at IOVA
 *                                       0x100000 and unmapping it, the
 *                                       host side of a vIOMMU map+unmap
 *   ... SPEC THREADS [MEMORY]           the same calls from THREADS
 *                                       threads, each taking the next
 *                                       call of SPEC; MEMORY is anon (the
 *                                       default), hugetlb (MAP_HUGETLB,
 *                                       2 MiB pages) or prealloc (anon,
 *                                       every page written first, as
 *                                       QEMU's prealloc=on does)
 *
 * SPEC has one map a line, "IOVA SIZE VADDR READONLY" (hex, hex, hex, 0/1),
 * in QEMU's order; VADDR is where QEMU had the memory, so that the layout
 * (and 2 MiB alignment) is the same: the program maps its memory at the
 * same addresses when it can.  Output: "map IOVA SIZE NS" per call,
 * "total NS COUNT" (the sum of the calls' times) and "wall NS" (first
 * call started to last call done); for cycles, "cycles N MEDIAN_NS MIN_NS
 * MAX_NS" of one map+unmap pair.  Exit status 0, or 1 with a message if a
 * call failed.
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/kvm.h>
#include <linux/vfio.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif

#define HUGE_SIZE (2UL << 20)
#define MAX_MAPS 4096

struct map {
    uint64_t iova, size, vaddr;
    int readonly;
    char *host;                 /* our copy of the memory at vaddr */
    uint64_t ns;                /* how long its call took */
};

static struct map maps[MAX_MAPS];
static int nmaps;

enum memory { MEM_ANON, MEM_HUGETLB, MEM_PREALLOC };
static enum memory memory = MEM_ANON;
static int nthreads = 1;
static int ncycles;             /* cycles N instead of a SPEC */

#define CYCLE_IOVA 0x100000

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("ioas-map-ref: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int xopen(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        die("open %s: %s", path, strerror(errno));
    }
    return fd;
}

static void xioctl(int fd, unsigned long req, void *arg, const char *what)
{
    if (ioctl(fd, req, arg)) {
        die("%s: %s", what, strerror(errno));
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void read_spec(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[256];

    if (!f) {
        die("open %s: %s", path, strerror(errno));
    }
    while (fgets(line, sizeof(line), f)) {
        struct map *m = &maps[nmaps];

        if (sscanf(line, "%" SCNx64 " %" SCNx64 " %" SCNx64 " %d",
                   &m->iova, &m->size, &m->vaddr, &m->readonly) != 4) {
            continue;
        }
        if (++nmaps == MAX_MAPS) {
            die("too many maps in %s", path);
        }
    }
    fclose(f);
    if (!nmaps) {
        die("no maps in %s", path);
    }
}

static int by_vaddr(const void *a, const void *b)
{
    const struct map *x = *(const struct map * const *)a;
    const struct map *y = *(const struct map * const *)b;

    return x->vaddr < y->vaddr ? -1 : x->vaddr > y->vaddr;
}

/* Map one stretch of anonymous memory at @start, or elsewhere with the
 * same offset in a huge page; return how far it landed from @start. */
static intptr_t alloc_stretch(uint64_t start, uint64_t len)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    char *p;

    if (memory == MEM_HUGETLB) {
        /* QEMU's hugetlbfs RAM: 2 MiB pages, at its 2 MiB aligned address. */
        len = (len + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
        p = mmap((void *)(uintptr_t)start, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB,
                 -1, 0);
        if (p == MAP_FAILED) {
            die("mmap of 0x%" PRIx64 " bytes of huge pages: %s", len,
                strerror(errno));
        }
        return (intptr_t)((uintptr_t)p - start);
    }
    p = mmap((void *)(uintptr_t)start, len, PROT_READ | PROT_WRITE,
             flags | MAP_FIXED_NOREPLACE, -1, 0);

    if (p == MAP_FAILED || (uintptr_t)p != start) {
        char *q;

        if (p != MAP_FAILED) {
            munmap(p, len);
        }
        q = mmap(NULL, len + HUGE_SIZE, PROT_READ | PROT_WRITE, flags, -1, 0);
        if (q == MAP_FAILED) {
            die("mmap of 0x%" PRIx64 " bytes: %s", len, strerror(errno));
        }
        p = q + ((start - (uintptr_t)q) & (HUGE_SIZE - 1));
    }
    /* As QEMU does for guest RAM; without THP in the kernel, a no-op. */
    madvise(p, len, MADV_HUGEPAGE);
    return (intptr_t)((uintptr_t)p - start);
}

/*
 * Give every map its memory: the stretches QEMU's maps cover, with gaps
 * under 2 MiB closed (they are one RAM block in QEMU), at QEMU's addresses.
 */
static void alloc_memory(void)
{
    struct map *sorted[MAX_MAPS];
    long page = sysconf(_SC_PAGESIZE);
    int i = 0;

    for (int j = 0; j < nmaps; j++) {
        sorted[j] = &maps[j];
    }
    qsort(sorted, nmaps, sizeof(sorted[0]), by_vaddr);
    while (i < nmaps) {
        uint64_t start = sorted[i]->vaddr & ~(uint64_t)(page - 1);
        uint64_t end = sorted[i]->vaddr + sorted[i]->size;
        int first = i;
        intptr_t delta;

        for (i++; i < nmaps && sorted[i]->vaddr < end + HUGE_SIZE; i++) {
            if (sorted[i]->vaddr + sorted[i]->size > end) {
                end = sorted[i]->vaddr + sorted[i]->size;
            }
        }
        end = (end + page - 1) & ~(uint64_t)(page - 1);
        delta = alloc_stretch(start, end - start);
        for (int j = first; j < i; j++) {
            sorted[j]->host = (char *)(uintptr_t)(sorted[j]->vaddr + delta);
        }
    }
    /* QEMU's read-only maps are ROMs it has filled: already faulted in. */
    for (int j = 0; j < nmaps; j++) {
        if (maps[j].readonly) {
            memset(maps[j].host, 0x5a, maps[j].size);
        } else if (memory == MEM_PREALLOC) {
            for (uint64_t off = 0; off < maps[j].size; off += page) {
                maps[j].host[off] = 0;
            }
        }
    }
}

/* One map call of the spec, done by whichever thread takes it. */
typedef void (*map_fn)(int fd, uint32_t ioas, struct map *m);

struct runner {
    map_fn fn;
    int fd;
    uint32_t ioas;
    int next;                   /* the next map to take */
};

static void *run_maps(void *opaque)
{
    struct runner *r = opaque;
    int i;

    while ((i = __atomic_fetch_add(&r->next, 1, __ATOMIC_SEQ_CST)) < nmaps) {
        uint64_t t0 = now_ns();

        r->fn(r->fd, r->ioas, &maps[i]);
        maps[i].ns = now_ns() - t0;
    }
    return NULL;
}

/* Make every call of the spec from nthreads threads; print the times. */
static void run_all(map_fn fn, int fd, uint32_t ioas)
{
    struct runner r = { .fn = fn, .fd = fd, .ioas = ioas };
    pthread_t threads[64];
    uint64_t total = 0, t0 = now_ns(), wall;

    for (int i = 1; i < nthreads; i++) {
        if (pthread_create(&threads[i], NULL, run_maps, &r)) {
            die("pthread_create failed");
        }
    }
    run_maps(&r);
    for (int i = 1; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
    }
    wall = now_ns() - t0;
    for (int i = 0; i < nmaps; i++) {
        printf("map 0x%" PRIx64 " 0x%" PRIx64 " %" PRIu64 "\n",
               maps[i].iova, maps[i].size, maps[i].ns);
        total += maps[i].ns;
    }
    printf("total %" PRIu64 " %d\n", total, nmaps);
    printf("wall %" PRIu64 " %d\n", wall, nthreads);
}

static void map_iommufd(int iommufd, uint32_t ioas, struct map *m)
{
    struct iommu_ioas_map map = {
        .size = sizeof(map),
        .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
                 (m->readonly ? 0 : IOMMU_IOAS_MAP_WRITEABLE),
        .ioas_id = ioas,
        .user_va = (uintptr_t)m->host,
        .length = m->size,
        .iova = m->iova,
    };

    xioctl(iommufd, IOMMU_IOAS_MAP, &map, "IOMMU_IOAS_MAP");
}

static void map_type1(int container, uint32_t ioas, struct map *m)
{
    struct vfio_iommu_type1_dma_map map = {
        .argsz = sizeof(map),
        .flags = VFIO_DMA_MAP_FLAG_READ |
                 (m->readonly ? 0 : VFIO_DMA_MAP_FLAG_WRITE),
        .vaddr = (uintptr_t)m->host,
        .iova = m->iova,
        .size = m->size,
    };

    (void)ioas;
    xioctl(container, VFIO_IOMMU_MAP_DMA, &map, "VFIO_IOMMU_MAP_DMA");
}

static void unmap_iommufd(int iommufd, uint32_t ioas, struct map *m)
{
    struct iommu_ioas_unmap unmap = {
        .size = sizeof(unmap),
        .ioas_id = ioas,
        .iova = m->iova,
        .length = m->size,
    };

    xioctl(iommufd, IOMMU_IOAS_UNMAP, &unmap, "IOMMU_IOAS_UNMAP");
}

static void unmap_type1(int container, uint32_t ioas, struct map *m)
{
    struct vfio_iommu_type1_dma_unmap unmap = {
        .argsz = sizeof(unmap),
        .iova = m->iova,
        .size = m->size,
    };

    (void)ioas;
    xioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap, "VFIO_IOMMU_UNMAP_DMA");
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* ncycles of map + unmap of one faulted-in page; print the median. */
static void run_cycles(map_fn map, map_fn unmap, int fd, uint32_t ioas)
{
    long page = sysconf(_SC_PAGESIZE);
    struct map m = { .iova = CYCLE_IOVA, .size = page };
    uint64_t *ns = calloc(ncycles, sizeof(*ns));

    m.host = mmap(NULL, page, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m.host == MAP_FAILED || !ns) {
        die("out of memory");
    }
    memset(m.host, 0x5a, page);
    for (int i = 0; i < ncycles; i++) {
        uint64_t t0 = now_ns();

        map(fd, ioas, &m);
        unmap(fd, ioas, &m);
        ns[i] = now_ns() - t0;
    }
    qsort(ns, ncycles, sizeof(*ns), cmp_u64);
    printf("cycles %d %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", ncycles,
           ns[ncycles / 2], ns[0], ns[ncycles - 1]);
    free(ns);
    munmap(m.host, page);
}

static int run_iommufd(const char *cdev)
{
    int iommufd = xopen("/dev/iommu");
    int devfd = xopen(cdev);
    struct vfio_device_bind_iommufd bind = {
        .argsz = sizeof(bind), .iommufd = iommufd,
    };
    struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
    struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };

    xioctl(devfd, VFIO_DEVICE_BIND_IOMMUFD, &bind, "VFIO_DEVICE_BIND_IOMMUFD");
    xioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc, "IOMMU_IOAS_ALLOC");
    attach.pt_id = alloc.out_ioas_id;
    xioctl(devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach,
           "VFIO_DEVICE_ATTACH_IOMMUFD_PT");

    if (ncycles) {
        run_cycles(map_iommufd, unmap_iommufd, iommufd, alloc.out_ioas_id);
    } else {
        run_all(map_iommufd, iommufd, alloc.out_ioas_id);
    }
    close(devfd);       /* unbinds and detaches; then the IOAS goes */
    close(iommufd);
    return 0;
}

static int run_type1(const char *group_path)
{
    int container = xopen("/dev/vfio/vfio");
    int group = xopen(group_path);

    xioctl(group, VFIO_GROUP_SET_CONTAINER, &container,
           "VFIO_GROUP_SET_CONTAINER");
    if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) {
        die("VFIO_SET_IOMMU: %s", strerror(errno));
    }
    if (ncycles) {
        run_cycles(map_type1, unmap_type1, container, 0);
    } else {
        run_all(map_type1, container, 0);
    }
    close(group);
    close(container);
    return 0;
}

#define IOCTL(name) { #name, name }

static const struct {
    const char *name;
    unsigned long nr;
} ioctls[] = {
    /* /dev/vfio/vfio: the legacy container */
    IOCTL(VFIO_GET_API_VERSION),
    IOCTL(VFIO_CHECK_EXTENSION),
    IOCTL(VFIO_SET_IOMMU),
    IOCTL(VFIO_IOMMU_GET_INFO),
    IOCTL(VFIO_IOMMU_MAP_DMA),
    IOCTL(VFIO_IOMMU_UNMAP_DMA),
    IOCTL(VFIO_IOMMU_ENABLE),
    IOCTL(VFIO_IOMMU_DISABLE),
    IOCTL(VFIO_IOMMU_DIRTY_PAGES),
    /* /dev/vfio/N: a group */
    IOCTL(VFIO_GROUP_GET_STATUS),
    IOCTL(VFIO_GROUP_SET_CONTAINER),
    IOCTL(VFIO_GROUP_UNSET_CONTAINER),
    IOCTL(VFIO_GROUP_GET_DEVICE_FD),
    /* a device: the cdev or a group's device fd */
    IOCTL(VFIO_DEVICE_GET_INFO),
    IOCTL(VFIO_DEVICE_GET_REGION_INFO),
    IOCTL(VFIO_DEVICE_GET_IRQ_INFO),
    IOCTL(VFIO_DEVICE_SET_IRQS),
    IOCTL(VFIO_DEVICE_RESET),
    IOCTL(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO),
    IOCTL(VFIO_DEVICE_PCI_HOT_RESET),
    IOCTL(VFIO_DEVICE_QUERY_GFX_PLANE),
    IOCTL(VFIO_DEVICE_GET_GFX_DMABUF),
    IOCTL(VFIO_DEVICE_IOEVENTFD),
    IOCTL(VFIO_DEVICE_FEATURE),
    IOCTL(VFIO_DEVICE_BIND_IOMMUFD),
    IOCTL(VFIO_DEVICE_ATTACH_IOMMUFD_PT),
    IOCTL(VFIO_DEVICE_DETACH_IOMMUFD_PT),
    /* /dev/iommu */
    IOCTL(IOMMU_DESTROY),
    IOCTL(IOMMU_IOAS_ALLOC),
    IOCTL(IOMMU_IOAS_ALLOW_IOVAS),
    IOCTL(IOMMU_IOAS_COPY),
    IOCTL(IOMMU_IOAS_IOVA_RANGES),
    IOCTL(IOMMU_IOAS_MAP),
    IOCTL(IOMMU_IOAS_UNMAP),
    IOCTL(IOMMU_OPTION),
    IOCTL(IOMMU_VFIO_IOAS),
    IOCTL(IOMMU_HWPT_SET_DIRTY_TRACKING),
    IOCTL(IOMMU_HWPT_GET_DIRTY_BITMAP),
    IOCTL(IOMMU_HWPT_ALLOC),
    IOCTL(IOMMU_GET_HW_INFO),
    /* KVM: the kvm-vfio device */
    IOCTL(KVM_CREATE_DEVICE),
    IOCTL(KVM_SET_DEVICE_ATTR),
    IOCTL(KVM_GET_DEVICE_ATTR),
    IOCTL(KVM_HAS_DEVICE_ATTR),
};

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "ioctls")) {
        for (size_t i = 0; i < sizeof(ioctls) / sizeof(ioctls[0]); i++) {
            printf("%s 0x%lx\n", ioctls[i].name, ioctls[i].nr);
        }
        return 0;
    }
    if (argc < 4 || argc > 6 ||
        (strcmp(argv[1], "iommufd") && strcmp(argv[1], "type1"))) {
        fprintf(stderr, "usage: ioas-map-ref ioctls\n"
                "       ioas-map-ref iommufd CDEV SPEC [THREADS [MEMORY]]\n"
                "       ioas-map-ref type1 GROUP SPEC [THREADS [MEMORY]]\n"
                "       ioas-map-ref iommufd|type1 CDEV|GROUP cycles N\n"
                "MEMORY: anon (default), hugetlb or prealloc\n");
        return 2;
    }
    if (!strcmp(argv[3], "cycles")) {
        ncycles = argc == 5 ? atoi(argv[4]) : 0;
        if (ncycles < 1) {
            die("cycles wants a count");
        }
        setvbuf(stdout, NULL, _IOFBF, 1 << 16);
        return !strcmp(argv[1], "iommufd") ? run_iommufd(argv[2])
                                           : run_type1(argv[2]);
    }
    if (argc > 4) {
        nthreads = atoi(argv[4]);
        if (nthreads < 1 || nthreads > 64) {
            die("THREADS must be 1 to 64");
        }
    }
    if (argc > 5) {
        if (!strcmp(argv[5], "hugetlb")) {
            memory = MEM_HUGETLB;
        } else if (!strcmp(argv[5], "prealloc")) {
            memory = MEM_PREALLOC;
        } else if (strcmp(argv[5], "anon")) {
            die("MEMORY must be anon, hugetlb or prealloc");
        }
    }
    read_spec(argv[3]);
    alloc_memory();
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    return !strcmp(argv[1], "iommufd") ? run_iommufd(argv[2])
                                       : run_type1(argv[2]);
}
