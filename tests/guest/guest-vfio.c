/*
 * guest-vfio: drive an edu device from inside a guest through the guest's
 * own VFIO device cdev and iommufd, with IOVAs of our choosing
 *
 * Runs in the guest tier's L2 guest, whose intel-iommu is emulated by the
 * L1 QEMU under test: every IOMMU_IOAS_MAP/UNMAP here becomes a guest
 * vIOMMU mapping that the L1 QEMU must mirror into its host container.
 *
 *   guest-vfio BDF iovas IOVA...      DMA round trip at each IOVA
 *   guest-vfio BDF cycles N IOVA      N map/unmap cycles, DMA checked in
 *                                     the first and the last
 *   guest-vfio BDF blocked IOVA       map, DMA, unmap, then DMA to the
 *                                     unmapped IOVA must not reach memory
 *   guest-vfio BDF hold IOVA FILE     map and DMA, then wait for FILE to
 *                                     exist before the next DMA and unmap
 *
 * Prints one "key=value ..." line per result; exit status 0 when every
 * result is as expected.  The device must be bound to vfio-pci.
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#define PAGE            4096UL
#define EDU_DMA_SRC     0x80
#define EDU_DMA_DST     0x88
#define EDU_DMA_COUNT   0x90
#define EDU_DMA_CMD     0x98
#define EDU_DMA_RUN     0x1
#define EDU_DMA_TO_RAM  0x2
#define EDU_BUFFER      0x40000
#define DMA_LEN         2048    /* below edu's off-by-one limit of 4095 */

typedef struct Dev {
    int iommufd;
    int fd;
    uint32_t ioas;
    volatile uint8_t *bar;
} Dev;

static void die(const char *what)
{
    printf("result=fail error=\"%s: %s\"\n", what, strerror(errno));
    exit(1);
}

static void dev_open(Dev *d, const char *bdf)
{
    char path[256];
    struct dirent *e;
    DIR *dir;
    int node = -1;

    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
    dir = opendir(path);
    if (!dir) {
        die(path);
    }
    while ((e = readdir(dir))) {
        if (sscanf(e->d_name, "vfio%d", &node) == 1) {
            break;
        }
    }
    closedir(dir);
    if (node < 0) {
        errno = ENOENT;
        die("no vfio cdev");
    }
    snprintf(path, sizeof(path), "/dev/vfio/devices/vfio%d", node);
    d->fd = open(path, O_RDWR);
    if (d->fd < 0) {
        die(path);
    }
    d->iommufd = open("/dev/iommu", O_RDWR);
    if (d->iommufd < 0) {
        die("/dev/iommu");
    }

    struct vfio_device_bind_iommufd bind = {
        .argsz = sizeof(bind), .iommufd = d->iommufd,
    };
    if (ioctl(d->fd, VFIO_DEVICE_BIND_IOMMUFD, &bind)) {
        die("VFIO_DEVICE_BIND_IOMMUFD");
    }
    struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
    if (ioctl(d->iommufd, IOMMU_IOAS_ALLOC, &alloc)) {
        die("IOMMU_IOAS_ALLOC");
    }
    d->ioas = alloc.out_ioas_id;
    struct vfio_device_attach_iommufd_pt attach = {
        .argsz = sizeof(attach), .pt_id = d->ioas,
    };
    if (ioctl(d->fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach)) {
        die("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
    }

    struct vfio_region_info cfg = {
        .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX,
    };
    struct vfio_region_info bar = {
        .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX,
    };
    if (ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &cfg) ||
        ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &bar)) {
        die("VFIO_DEVICE_GET_REGION_INFO");
    }
    uint16_t cmd;
    if (pread(d->fd, &cmd, 2, cfg.offset + 4) != 2) {
        die("read PCI command");
    }
    cmd |= 0x6;     /* memory space, bus master */
    if (pwrite(d->fd, &cmd, 2, cfg.offset + 4) != 2) {
        die("write PCI command");
    }
    d->bar = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd,
                  bar.offset);
    if (d->bar == MAP_FAILED) {
        die("mmap BAR0");
    }
}

static int ioas_map(Dev *d, void *va, uint64_t iova, uint64_t len)
{
    struct iommu_ioas_map map = {
        .size = sizeof(map),
        .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
                 IOMMU_IOAS_MAP_WRITEABLE,
        .ioas_id = d->ioas,
        .user_va = (uintptr_t)va,
        .length = len,
        .iova = iova,
    };
    return ioctl(d->iommufd, IOMMU_IOAS_MAP, &map) ? -errno : 0;
}

static int ioas_unmap(Dev *d, uint64_t iova, uint64_t len)
{
    struct iommu_ioas_unmap unmap = {
        .size = sizeof(unmap), .ioas_id = d->ioas, .iova = iova,
        .length = len,
    };
    return ioctl(d->iommufd, IOMMU_IOAS_UNMAP, &unmap) ? -errno : 0;
}

static void wr64(Dev *d, unsigned off, uint64_t v)
{
    *(volatile uint64_t *)(d->bar + off) = v;
}

static uint64_t rd64(Dev *d, unsigned off)
{
    return *(volatile uint64_t *)(d->bar + off);
}

/* One edu transfer, polled: 0, or -ETIMEDOUT. */
static int edu_transfer(Dev *d, uint64_t iova, bool to_ram)
{
    struct timespec ts = { 0, 20 * 1000 * 1000 };

    wr64(d, EDU_DMA_SRC, to_ram ? EDU_BUFFER : iova);
    wr64(d, EDU_DMA_DST, to_ram ? iova : EDU_BUFFER);
    wr64(d, EDU_DMA_COUNT, DMA_LEN);
    wr64(d, EDU_DMA_CMD, EDU_DMA_RUN | (to_ram ? EDU_DMA_TO_RAM : 0));
    for (int i = 0; i < 500; i++) {
        if (!(rd64(d, EDU_DMA_CMD) & EDU_DMA_RUN)) {
            return 0;
        }
        nanosleep(&ts, NULL);
    }
    return -ETIMEDOUT;
}

static uint8_t *buffer(size_t len)
{
    uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        die("mmap");
    }
    return p;
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
    }
}

/*
 * Two pages mapped at @iova: the first goes to the device and comes back
 * into the second.  Returns the number of bytes that differ, or -errno.
 */
static int round_trip(Dev *d, uint64_t iova, unsigned seed, bool map)
{
    static uint8_t *buf;
    int ret, bad = 0;

    if (!buf) {
        buf = buffer(2 * PAGE);
    }
    fill(buf, DMA_LEN, seed);
    memset(buf + PAGE, 0, PAGE);
    if (map && (ret = ioas_map(d, buf, iova, 2 * PAGE))) {
        return ret;
    }
    ret = edu_transfer(d, iova, false);
    if (!ret) {
        ret = edu_transfer(d, iova + PAGE, true);
    }
    if (map) {
        int r = ioas_unmap(d, iova, 2 * PAGE);
        ret = ret ? ret : r;
    }
    if (ret) {
        return ret;
    }
    for (int i = 0; i < DMA_LEN; i++) {
        bad += buf[i] != buf[PAGE + i];
    }
    return bad;
}

static int cmd_iovas(Dev *d, int argc, char **argv)
{
    int failed = 0;

    for (int i = 0; i < argc; i++) {
        uint64_t iova = strtoull(argv[i], NULL, 0);
        int ret = round_trip(d, iova, i + 1, true);

        printf("iova=0x%" PRIx64 " result=%s", iova, ret ? "fail" : "ok");
        if (ret < 0) {
            printf(" error=%s", strerror(-ret));
        } else if (ret) {
            printf(" bad=%d", ret);
        }
        printf("\n");
        fflush(stdout);
        failed += !!ret;
    }
    return failed ? 1 : 0;
}

static int cmd_cycles(Dev *d, unsigned long n, uint64_t iova)
{
    uint8_t *page = buffer(PAGE);
    unsigned long maps = 0, unmaps = 0;
    struct timespec t0, t1;
    int first, last, ret = 0;

    page[0] = 1;    /* populate it */
    first = round_trip(d, iova, 1, true);
    /* The cycles alone, without the DMA round trips around them. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned long i = 0; i < n; i++) {
        ret = ioas_map(d, page, iova, PAGE);
        if (ret) {
            break;
        }
        maps++;
        ret = ioas_unmap(d, iova, PAGE);
        if (ret) {
            break;
        }
        unmaps++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    last = round_trip(d, iova, 2, true);
    printf("cycles=%lu maps=%lu unmaps=%lu ns=%" PRId64 " first_dma=%s "
           "last_dma=%s result=%s", n, maps, unmaps,
           (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 +
           (t1.tv_nsec - t0.tv_nsec), first ? "fail" : "ok",
           last ? "fail" : "ok",
           ret || first || last || maps != n ? "fail" : "ok");
    if (ret) {
        printf(" error=%s", strerror(-ret));
    }
    printf("\n");
    return ret || first || last || maps != n;
}

/* DMA to an IOVA that was mapped and is no longer must not land. */
static int cmd_blocked(Dev *d, uint64_t iova)
{
    uint8_t *buf = buffer(2 * PAGE);
    int before, ret, landed = 0;

    fill(buf, 2 * PAGE, 3);
    if ((ret = ioas_map(d, buf, iova, 2 * PAGE))) {
        errno = -ret;
        die("IOMMU_IOAS_MAP");
    }
    /* Mapped: the device reads page 0 and writes it into page 1. */
    ret = edu_transfer(d, iova, false);
    if (!ret) {
        ret = edu_transfer(d, iova + PAGE, true);
    }
    before = ret ? -1 : memcmp(buf, buf + PAGE, DMA_LEN) != 0;
    if ((ret = ioas_unmap(d, iova, 2 * PAGE))) {
        errno = -ret;
        die("IOMMU_IOAS_UNMAP");
    }
    /*
     * Unmapped: the device writes its buffer (still the bytes of page 0)
     * to page 1 again, which must keep the marker instead.
     */
    memset(buf + PAGE, 0xa5, PAGE);
    ret = edu_transfer(d, iova + PAGE, true);
    for (int i = 0; i < DMA_LEN; i++) {
        landed += buf[PAGE + i] != 0xa5;
    }
    printf("iova=0x%" PRIx64 " mapped_dma=%s unmapped_dma_landed=%d "
           "result=%s\n", iova, before ? "fail" : "ok", landed,
           !before && !landed ? "ok" : "fail");
    return before || landed;
}

static int cmd_hold(Dev *d, uint64_t iova, const char *file)
{
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    uint8_t *buf = buffer(2 * PAGE);
    int a, b, ret;

    fill(buf, DMA_LEN, 5);
    if ((ret = ioas_map(d, buf, iova, 2 * PAGE))) {
        printf("iova=0x%" PRIx64 " result=fail error=%s\n", iova,
               strerror(-ret));
        return 1;
    }
    a = round_trip(d, iova, 6, false);
    printf("iova=0x%" PRIx64 " held=yes dma=%s\n", iova, a ? "fail" : "ok");
    fflush(stdout);
    while (access(file, F_OK)) {
        nanosleep(&ts, NULL);
    }
    b = round_trip(d, iova, 7, false);
    ret = ioas_unmap(d, iova, 2 * PAGE);
    printf("iova=0x%" PRIx64 " after=%s unmap=%s result=%s\n", iova,
           b ? "fail" : "ok", ret ? strerror(-ret) : "ok",
           a || b || ret ? "fail" : "ok");
    return a || b || ret;
}

int main(int argc, char **argv)
{
    Dev d;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 4) {
        fprintf(stderr, "usage: guest-vfio BDF iovas|cycles|blocked|hold "
                "ARGS...\n");
        return 2;
    }
    dev_open(&d, argv[1]);
    if (!strcmp(argv[2], "iovas")) {
        return cmd_iovas(&d, argc - 3, argv + 3);
    } else if (!strcmp(argv[2], "cycles") && argc == 5) {
        return cmd_cycles(&d, strtoul(argv[3], NULL, 0),
                          strtoull(argv[4], NULL, 0));
    } else if (!strcmp(argv[2], "blocked")) {
        return cmd_blocked(&d, strtoull(argv[3], NULL, 0));
    } else if (!strcmp(argv[2], "hold") && argc == 5) {
        return cmd_hold(&d, strtoull(argv[3], NULL, 0), argv[4]);
    }
    fprintf(stderr, "guest-vfio: unknown command %s\n", argv[2]);
    return 2;
}
