/*
 * VFIO devices over the device cdev and an iommufd backend
 *
 * A device is opened as /dev/vfio/devices/vfioN (or passed as an fd),
 * bound to the iommufd of an "iommufd" backend object and attached to an
 * I/O address space (IOAS) of that object.  Every device of one guest
 * address space and one backend object shares one IOAS, which the
 * container's MemoryListener fills with guest RAM.
 *
 * The iommufd ioctls themselves live in backends/iommufd.c; this file
 * holds the policy and the VFIO device ioctls.
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <linux/vfio.h>

#include "hw/vfio/vfio-common.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "exec/ram_addr.h"
#include "sysemu/iommufd.h"
#include "trace.h"

typedef struct VFIOIOMMUFDContainer {
    VFIOContainer bcontainer;
    IOMMUFDBackend *be;
    uint32_t ioas_id;
} VFIOIOMMUFDContainer;

static VFIOIOMMUFDContainer *to_iommufd(VFIOContainer *bcontainer)
{
    return container_of(bcontainer, VFIOIOMMUFDContainer, bcontainer);
}

/* Called from worker threads too, for chunks of a section: thread-safe. */
static int vfio_iommufd_dma_map_chunk(VFIOContainer *bcontainer, hwaddr iova,
                                      ram_addr_t size, void *vaddr,
                                      bool readonly, Error **errp)
{
    VFIOIOMMUFDContainer *container = to_iommufd(bcontainer);

    if (!iommufd_backend_map_dma(container->be, container->ioas_id, iova,
                                 size, vaddr, readonly, errp)) {
        return -errno;
    }
    return 0;
}

static int vfio_iommufd_dma_map(VFIOContainer *bcontainer, hwaddr iova,
                                ram_addr_t size, void *vaddr, bool readonly)
{
    Error *err = NULL;
    int ret;

    ret = vfio_iommufd_dma_map_chunk(bcontainer, iova, size, vaddr, readonly,
                                     &err);
    if (ret) {
        /*
         * While the listener replays the memory map for a new container,
         * the first error fails the attach: keep the kernel's reason for
         * the user instead of the listener's generic one.
         */
        if (!bcontainer->initialized && !bcontainer->error) {
            error_propagate(&bcontainer->error, err);
        } else {
            error_report_err(err);
        }
    }
    return ret;
}

static int vfio_iommufd_dma_unmap(VFIOContainer *bcontainer, hwaddr iova,
                                  ram_addr_t size, IOMMUTLBEntry *iotlb)
{
    VFIOIOMMUFDContainer *container = to_iommufd(bcontainer);
    Error *err = NULL;
    int ret;

    ret = iommufd_backend_unmap_dma(container->be, container->ioas_id, iova,
                                    size, NULL, &err);
    /*
     * ENOENT: nothing was mapped in the range.  The listener unmaps every
     * section it saw, also those whose map failed (and ranges a vIOMMU
     * never populated), so this is not an error.
     */
    if (ret == -ENOENT) {
        error_free(err);
        return 0;
    }
    if (ret) {
        error_report_err(err);
    }
    return ret;
}

/*
 * The major number of the VFIO device cdevs ("vfio-dev" in /proc/devices):
 * 0 if the kernel has none, -1 if /proc/devices cannot be read.
 */
static int vfio_iommufd_cdev_major(void)
{
    g_autofree char *devices = NULL;
    g_auto(GStrv) lines = NULL;
    bool chr = false;

    if (!g_file_get_contents("/proc/devices", &devices, NULL, NULL)) {
        return -1;
    }
    lines = g_strsplit(devices, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        int major;
        char name[32];

        if (g_str_has_prefix(lines[i], "Character devices:")) {
            chr = true;
        } else if (g_str_has_prefix(lines[i], "Block devices:")) {
            chr = false;
        } else if (chr && sscanf(lines[i], "%d %31s", &major, name) == 2 &&
                   !strcmp(name, "vfio-dev")) {
            return major;
        }
    }
    return 0;
}

/* Check that fd is a VFIO device cdev (and not a group, /dev/iommu...). */
static bool vfio_iommufd_check_cdev(int fd, const char *what, Error **errp)
{
    ERRP_GUARD();
    struct stat st;
    int major;

    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "%s is not usable", what);
        return false;
    }
    if (!S_ISCHR(st.st_mode)) {
        error_setg(errp, "%s is not a VFIO device cdev (not a character "
                   "device)", what);
        return false;
    }
    major = vfio_iommufd_cdev_major();
    if (major == 0) {
        error_setg(errp, "%s is not a VFIO device cdev (the host kernel has "
                   "no VFIO device cdevs)", what);
        error_append_hint(errp, "The host kernel needs "
                          "CONFIG_VFIO_DEVICE_CDEV.\n");
        return false;
    }
    if (major > 0 && major(st.st_rdev) != major) {
        error_setg(errp, "%s is not a VFIO device cdev (char device %u:%u)",
                   what, major(st.st_rdev), minor(st.st_rdev));
        return false;
    }
    return true;
}

/*
 * Find the cdev of a device from its sysfs directory:
 * <sysfsdev>/vfio-dev/vfioN names /dev/vfio/devices/vfioN, whose device
 * number is in <sysfsdev>/vfio-dev/vfioN/dev.
 */
static bool vfio_iommufd_find_cdev(const char *sysfsdev, char **node,
                                   dev_t *devt, Error **errp)
{
    ERRP_GUARD();
    g_autofree char *dir = g_strdup_printf("%s/vfio-dev", sysfsdev);
    g_autofree char *dev_attr = NULL;
    g_autofree char *contents = NULL;
    const char *name = NULL;
    unsigned int maj, min;
    GDir *gdir;

    *node = NULL;
    gdir = g_dir_open(dir, 0, NULL);
    if (gdir) {
        while ((name = g_dir_read_name(gdir))) {
            if (g_str_has_prefix(name, "vfio")) {
                *node = g_strdup_printf("/dev/vfio/devices/%s", name);
                dev_attr = g_strdup_printf("%s/%s/dev", dir, name);
                break;
            }
        }
        g_dir_close(gdir);
    }
    if (!*node) {
        error_setg(errp, "no VFIO device cdev under %s", dir);
        error_append_hint(errp, "The device must be bound to vfio-pci, and "
                          "the host kernel needs CONFIG_VFIO_DEVICE_CDEV.\n");
        return false;
    }

    if (!g_file_get_contents(dev_attr, &contents, NULL, NULL) ||
        sscanf(contents, "%u:%u", &maj, &min) != 2) {
        error_setg(errp, "cannot read %s", dev_attr);
        g_free(*node);
        *node = NULL;
        return false;
    }
    *devt = makedev(maj, min);
    return true;
}

/* Open the cdev of a device found through its sysfs directory. */
static int vfio_iommufd_open_cdev(const char *sysfsdev, Error **errp)
{
    g_autofree char *node = NULL;
    struct stat st;
    dev_t devt;
    int fd;

    if (!vfio_iommufd_find_cdev(sysfsdev, &node, &devt, errp)) {
        return -1;
    }
    fd = qemu_open(node, O_RDWR, errp);
    if (fd < 0) {
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != devt) {
        error_setg(errp, "%s is not the character device %u:%u of %s",
                   node, major(devt), minor(devt), sysfsdev);
        qemu_close(fd);
        return -1;
    }
    trace_vfio_iommufd_open_cdev(sysfsdev, node, fd);
    return fd;
}

/*
 * A passed fd given with host= or sysfsdev=: they must name the same
 * device, or the device would be known under the name of another.
 */
static bool vfio_iommufd_check_passed_cdev(VFIODevice *vbasedev, int fd,
                                           Error **errp)
{
    g_autofree char *node = NULL;
    struct stat st;
    dev_t devt;

    if (!vfio_iommufd_find_cdev(vbasedev->sysfsdev, &node, &devt, errp)) {
        return false;
    }
    if (fstat(fd, &st) < 0 || st.st_rdev != devt) {
        error_setg(errp, "the device fd is not the VFIO device cdev of %s "
                   "(%s, char device %u:%u)", vbasedev->sysfsdev, node,
                   major(devt), minor(devt));
        return false;
    }
    return true;
}

/*
 * The kernel binds a device once: a second device_add of one host device
 * would fail in VFIO_DEVICE_BIND_IOMMUFD with a bare EINVAL.  Name the
 * device that has it instead.
 */
static bool vfio_iommufd_check_unique(VFIODevice *vbasedev, int fd,
                                      Error **errp)
{
    VFIODevice *other;
    struct stat st, ost;

    if (fstat(fd, &st) < 0) {
        return true;    /* the bind will say what is wrong */
    }
    QLIST_FOREACH(other, &vfio_device_list, global_next) {
        if (other->iommufd && other->fd >= 0 && !fstat(other->fd, &ost) &&
            S_ISCHR(ost.st_mode) && ost.st_rdev == st.st_rdev) {
            error_setg(errp, "the host device is already attached as %s%s%s",
                       other->dev->id ? "device '" : "",
                       other->dev->id ? other->dev->id : other->name,
                       other->dev->id ? "'" : "");
            return false;
        }
    }
    return true;
}

static bool vfio_iommufd_bind(VFIODevice *vbasedev, int fd,
                              IOMMUFDBackend *be, Error **errp)
{
    ERRP_GUARD();
    struct vfio_device_bind_iommufd bind = {
        .argsz = sizeof(bind),
        .flags = 0,
        .iommufd = be->fd,
    };
    int ret;

    ret = ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind);
    trace_vfio_iommufd_bind(vbasedev->name, fd, be->fd, bind.out_devid,
                            ret ? errno : 0);
    if (ret) {
        error_setg_errno(errp, errno, "cannot bind the device to iommufd");
        switch (errno) {
        case EBUSY:
            error_append_hint(errp, "Its IOMMU group is in use through "
                              "the legacy VFIO group interface.\n");
            break;
        case EINVAL:
            error_append_hint(errp, "The device fd is already bound, or is "
                              "not a VFIO device cdev.\n");
            break;
        case EPERM:
            error_append_hint(errp, "Another device of its IOMMU group may "
                              "be bound to a different iommufd, or the host "
                              "IOMMU lacks interrupt isolation (see "
                              "iommufd.allow_unsafe_interrupts).\n");
            break;
        }
        return false;
    }
    vbasedev->devid = bind.out_devid;
    return true;
}

/* 0 on success, else -errno with errp set. */
static int vfio_iommufd_attach_ioas(VFIODevice *vbasedev, int fd,
                                    uint32_t ioas_id, Error **errp)
{
    ERRP_GUARD();
    struct vfio_device_attach_iommufd_pt attach = {
        .argsz = sizeof(attach),
        .flags = 0,
        .pt_id = ioas_id,
    };
    int ret;

    ret = ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach);
    ret = ret ? -errno : 0;
    trace_vfio_iommufd_attach_ioas(vbasedev->name, fd, ioas_id, -ret);
    if (ret) {
        error_setg_errno(errp, -ret, "cannot attach the device to IOAS %u",
                         ioas_id);
        if (ret == -EADDRINUSE) {
            error_append_hint(errp, "The device's reserved IOVA ranges "
                              "overlap memory already mapped for other "
                              "devices; give it its own iommufd object.\n");
        }
    }
    return ret;
}

static void vfio_iommufd_detach_ioas(VFIODevice *vbasedev, int fd)
{
    struct vfio_device_detach_iommufd_pt detach = {
        .argsz = sizeof(detach),
        .flags = 0,
    };
    int ret;

    ret = ioctl(fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach);
    trace_vfio_iommufd_detach_ioas(vbasedev->name, fd, ret ? errno : 0);
    if (ret) {
        warn_report("vfio %s: cannot detach from its IOAS: %s",
                    vbasedev->name, strerror(errno));
    }
}

static bool vfio_iommufd_container_ranges(VFIOIOMMUFDContainer *container,
                                          Error **errp)
{
    VFIOContainer *bcontainer = &container->bcontainer;
    g_autofree IOMMUFDRange *ranges = NULL;
    uint64_t align;
    uint32_t nr;

    if (!iommufd_backend_get_iova_ranges(container->be, container->ioas_id,
                                         &ranges, &nr, &align, errp)) {
        return false;
    }
    /* iommufd does not report page sizes; it maps at host page size. */
    align = MAX(align, qemu_real_host_page_size());
    bcontainer->pgsizes = align;
    for (uint32_t i = 0; i < nr; i++) {
        vfio_host_win_add(bcontainer, ranges[i].start, ranges[i].last,
                          bcontainer->pgsizes);
    }
    return true;
}

/* The IOAS's ranges now: they narrow as devices with reserved regions join. */
static bool vfio_iommufd_get_iova_ranges(VFIOContainer *bcontainer,
                                         GArray *ranges, Error **errp)
{
    VFIOIOMMUFDContainer *container = to_iommufd(bcontainer);
    g_autofree IOMMUFDRange *r = NULL;
    uint64_t align;
    uint32_t nr;

    if (!iommufd_backend_get_iova_ranges(container->be, container->ioas_id,
                                         &r, &nr, &align, errp)) {
        return false;
    }
    for (uint32_t i = 0; i < nr; i++) {
        VFIOIovaRange range = { .start = r[i].start, .last = r[i].last };

        g_array_append_val(ranges, range);
    }
    return true;
}

/*
 * Threads that map a large RAM section into the IOAS together, in chunks
 * (the kernel pins the pages of separate IOMMU_IOAS_MAP calls
 * concurrently): the object's map-threads, 1 unless set; for 0, one per
 * host CPU that QEMU may run on, up to VFIO_IOMMUFD_MAP_THREADS_AUTO.
 */
#define VFIO_IOMMUFD_MAP_THREADS_AUTO 4

static unsigned int vfio_iommufd_map_threads(IOMMUFDBackend *be)
{
    cpu_set_t cpus;

    if (be->map_threads) {
        return be->map_threads;
    }
    if (sched_getaffinity(0, sizeof(cpus), &cpus)) {
        return 1;
    }
    return MIN(CPU_COUNT(&cpus), VFIO_IOMMUFD_MAP_THREADS_AUTO);
}

static void vfio_iommufd_container_free(VFIOIOMMUFDContainer *container)
{
    Error *err = NULL;

    vfio_container_destroy(&container->bcontainer);
    if (!iommufd_backend_free_id(container->be, container->ioas_id, &err)) {
        warn_report_err(err);
    }
    g_free(container);
}

static bool vfio_iommufd_attach_container(VFIODevice *vbasedev, int fd,
                                          AddressSpace *as, Error **errp)
{
    ERRP_GUARD();
    IOMMUFDBackend *be = vbasedev->iommufd;
    VFIOAddressSpace *space = vfio_get_address_space(as);
    VFIOIOMMUFDContainer *container;
    VFIOContainer *bcontainer;
    uint32_t ioas_id;
    int ret;

    /* Join an IOAS of this backend object in this address space. */
    QLIST_FOREACH(bcontainer, &space->containers, next) {
        if (bcontainer->ops != &vfio_iommufd_container_ops) {
            continue;
        }
        container = to_iommufd(bcontainer);
        if (container->be != be || bcontainer->broken) {
            continue;
        }
        ret = vfio_iommufd_attach_ioas(vbasedev, fd, container->ioas_id,
                                       errp);
        if (!ret) {
            vbasedev->container = bcontainer;
            return true;
        }
        if (ret != -EINVAL) {
            goto err_put_space;
        }
        /* EINVAL: the device's IOMMU cannot join this IOAS; try the next. */
        error_free(*errp);
        *errp = NULL;
    }

    if (!iommufd_backend_alloc_ioas(be, &ioas_id, errp)) {
        goto err_put_space;
    }
    if (vfio_iommufd_attach_ioas(vbasedev, fd, ioas_id, errp)) {
        goto err_free_ioas;
    }

    container = g_new0(VFIOIOMMUFDContainer, 1);
    container->be = be;
    container->ioas_id = ioas_id;
    bcontainer = &container->bcontainer;
    vfio_container_init(bcontainer, space, &vfio_iommufd_container_ops);
    bcontainer->map_threads = vfio_iommufd_map_threads(be);
    if (!vfio_iommufd_container_ranges(container, errp)) {
        goto err_detach;
    }

    /* Like type1, iommufd pins pages: discarding RAM would leave stale ones. */
    ret = ram_block_uncoordinated_discard_disable(true);
    if (ret) {
        error_setg_errno(errp, -ret, "Cannot set discarding of RAM broken");
        goto err_detach;
    }

    vbasedev->container = bcontainer;
    QLIST_INSERT_HEAD(&space->containers, bcontainer, next);
    if (!vfio_container_listen(bcontainer, errp)) {
        goto err_listen;
    }
    trace_vfio_iommufd_container_new(vbasedev->name, be->fd, ioas_id);
    return true;

err_listen:
    QLIST_REMOVE(bcontainer, next);
    vbasedev->container = NULL;
    ram_block_uncoordinated_discard_disable(false);
err_detach:
    vfio_iommufd_detach_ioas(vbasedev, fd);
    vfio_container_destroy(bcontainer);
    g_free(container);
err_free_ioas:
    iommufd_backend_free_id(be, ioas_id, NULL);
err_put_space:
    vfio_put_address_space(space);
    return false;
}

static void vfio_iommufd_detach_container(VFIODevice *vbasedev, int fd)
{
    VFIOContainer *bcontainer = vbasedev->container;
    VFIOAddressSpace *space = bcontainer->space;

    vfio_iommufd_detach_ioas(vbasedev, fd);
    vbasedev->container = NULL;
    if (QLIST_EMPTY(&bcontainer->device_list)) {
        /* The last device: unmap everything and free the IOAS. */
        vfio_container_unlisten(bcontainer);
        ram_block_uncoordinated_discard_disable(false);
        QLIST_REMOVE(bcontainer, next);
        trace_vfio_iommufd_container_free(to_iommufd(bcontainer)->ioas_id);
        vfio_iommufd_container_free(to_iommufd(bcontainer));
    }
    vfio_put_address_space(space);
}

static bool vfio_iommufd_attach_device(const char *name, VFIODevice *vbasedev,
                                       AddressSpace *as, Error **errp)
{
    ERRP_GUARD();
    IOMMUFDBackend *be = vbasedev->iommufd;
    struct vfio_device_info info = { .argsz = sizeof(info) };
    bool passed = vbasedev->fd_passed;
    int fd;

    /* 1. The device fd: passed to us, or the cdev found through sysfs. */
    if (passed) {
        fd = vbasedev->fd;
        if (!vfio_iommufd_check_cdev(fd, "the device fd", errp)) {
            return false;
        }
        if (vbasedev->sysfsdev &&
            !vfio_iommufd_check_passed_cdev(vbasedev, fd, errp)) {
            return false;
        }
    } else {
        fd = vfio_iommufd_open_cdev(vbasedev->sysfsdev, errp);
        if (fd < 0) {
            return false;
        }
    }
    if (!vfio_iommufd_check_unique(vbasedev, fd, errp)) {
        goto err_close_fd;
    }

    /* 2. The backend object, which opens /dev/iommu on first use. */
    if (!iommufd_backend_connect(be, errp)) {
        goto err_close_fd;
    }

    /*
     * 3. KVM: the kernel takes the device's kvm reference inside BIND, on
     * first open, so the device must be known to the kvm-vfio device first.
     */
    if (!vfio_kvm_device_add_fd(fd, errp)) {
        goto err_disconnect;
    }

    /* 4. Bind; undone only by closing the device fd. */
    if (!vfio_iommufd_bind(vbasedev, fd, be, errp)) {
        goto err_kvm_del;
    }

    /* 5. An IOAS: shared with the other devices of this backend and AS. */
    if (!vfio_iommufd_attach_container(vbasedev, fd, as, errp)) {
        goto err_kvm_del;
    }

    /* 6. What the device has, as for the legacy path. */
    if (ioctl(fd, VFIO_DEVICE_GET_INFO, &info)) {
        error_setg_errno(errp, errno, "error getting device info");
        goto err_detach;
    }

    vbasedev->fd = fd;
    vbasedev->num_irqs = info.num_irqs;
    vbasedev->num_regions = info.num_regions;
    vbasedev->flags = info.flags;
    vbasedev->reset_works = !!(info.flags & VFIO_DEVICE_FLAGS_RESET);
    trace_vfio_get_device(name, info.flags, info.num_regions, info.num_irqs);

    /* Publish late: only a fully attached device joins the lists. */
    vfio_device_publish(vbasedev);
    return true;

    /* Labels name what they undo, in reverse; the bind goes with the fd. */
err_detach:
    vfio_iommufd_detach_container(vbasedev, fd);
err_kvm_del:
    vfio_kvm_device_del_fd(fd);
err_disconnect:
    iommufd_backend_disconnect(be);
err_close_fd:
    vbasedev->fd = passed ? fd : -1;
    if (!passed) {
        qemu_close(fd);
    }
    return false;
}

static void vfio_iommufd_detach_device(VFIODevice *vbasedev)
{
    int fd = vbasedev->fd;

    vfio_device_unpublish(vbasedev);
    vfio_iommufd_detach_container(vbasedev, fd);
    vfio_kvm_device_del_fd(fd);
    iommufd_backend_disconnect(vbasedev->iommufd);
    /* A passed fd stays open until the device is finalized. */
    if (!vbasedev->fd_passed) {
        qemu_close(fd);
        vbasedev->fd = -1;
    }
    trace_vfio_iommufd_detach_device(vbasedev->name, fd);
}

const VFIOContainerOps vfio_iommufd_container_ops = {
    .name = "iommufd",
    .dma_map = vfio_iommufd_dma_map,
    .dma_unmap = vfio_iommufd_dma_unmap,
    .dma_map_chunk = vfio_iommufd_dma_map_chunk,
    .attach_device = vfio_iommufd_attach_device,
    .detach_device = vfio_iommufd_detach_device,
    .get_iova_ranges = vfio_iommufd_get_iova_ranges,
};
