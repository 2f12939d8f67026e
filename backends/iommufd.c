/*
 * iommufd backend: an owner of /dev/iommu shared by VFIO devices
 *
 * This file is the only place that issues iommufd ioctls.  Each wrapper
 * fills its struct (size, flags), makes one kernel call, traces it with
 * its inputs and result, and reports a failure with the kernel's errno.
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <linux/iommufd.h>
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qom/object_interfaces.h"
#include "monitor/monitor.h"
#include "qemu/module.h"
#include "qemu/ctype.h"
#include "sysemu/iommufd.h"
#include "trace.h"

static void iommufd_backend_init(Object *obj)
{
    IOMMUFDBackend *be = IOMMUFD_BACKEND(obj);

    be->fd = -1;
    be->owned = false;
    be->users = 0;
    be->map_threads = 1;
}

static void iommufd_backend_finalize(Object *obj)
{
    IOMMUFDBackend *be = IOMMUFD_BACKEND(obj);

    /* An owned fd is closed by the last user; a passed one lives to here. */
    assert(!be->users);
    if (be->fd >= 0) {
        qemu_close(be->fd);
        be->fd = -1;
    }
}

int iommufd_fd_param(const char *str, Error **errp)
{
    /* -add-fd puts fds in sets that are opened as /dev/fdset/N. */
    if (g_str_has_prefix(str, "/dev/fdset/")) {
        return qemu_open(str, O_RDWR, errp);
    }
    /*
     * A number is an fd of QEMU itself: on the command line one its caller
     * passed, but from a monitor one that QEMU opened for its own use, which
     * the property would then own and close.
     */
    if (monitor_cur() && qemu_isdigit(str[0])) {
        error_setg(errp, "fd numbers are accepted on the command line only");
        error_append_hint(errp, "Pass the fd with getfd and give its name, "
                          "or use -add-fd and /dev/fdset/N.\n");
        return -1;
    }
    return monitor_fd_param(monitor_cur(), str, errp);
}

/*
 * Is @st the /dev/iommu misc device?  Unknown (true) when sysfs does not
 * say, e.g. in a sandbox without /sys.
 */
static bool iommufd_is_dev_iommu(struct stat *st)
{
    g_autofree char *devt = NULL;
    unsigned int maj, min;

    if (!g_file_get_contents("/sys/class/misc/iommu/dev", &devt, NULL, NULL) ||
        sscanf(devt, "%u:%u", &maj, &min) != 2) {
        return true;
    }
    return major(st->st_rdev) == maj && minor(st->st_rdev) == min;
}

static void iommufd_backend_set_fd(Object *obj, const char *str, Error **errp)
{
    ERRP_GUARD();
    IOMMUFDBackend *be = IOMMUFD_BACKEND(obj);
    struct stat st;
    int fd;

    if (be->users) {
        error_setg(errp, "cannot change the fd of iommufd '%s' while in use",
                   object_get_canonical_path_component(obj));
        return;
    }
    fd = iommufd_fd_param(str, errp);
    if (fd < 0) {
        error_prepend(errp, "iommufd fd '%s': ", str);
        return;
    }
    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "iommufd fd '%s' is not usable", str);
        return;
    }
    if (!S_ISCHR(st.st_mode)) {
        error_setg(errp, "iommufd fd '%s' is not a character device", str);
        error_append_hint(errp, "Pass an open /dev/iommu.\n");
        qemu_close(fd);
        return;
    }
    if (!iommufd_is_dev_iommu(&st)) {
        error_setg(errp, "iommufd fd '%s' is not /dev/iommu (char device "
                   "%u:%u)", str, major(st.st_rdev), minor(st.st_rdev));
        error_append_hint(errp, "Pass an open /dev/iommu.\n");
        qemu_close(fd);
        return;
    }
    if (be->fd >= 0) {
        qemu_close(be->fd);
    }
    be->fd = fd;
    be->owned = false;
    trace_iommufd_backend_set_fd(str, fd);
}

static void iommufd_backend_get_map_threads(Object *obj, Visitor *v,
                                            const char *name, void *opaque,
                                            Error **errp)
{
    IOMMUFDBackend *be = IOMMUFD_BACKEND(obj);

    visit_type_uint32(v, name, &be->map_threads, errp);
}

static void iommufd_backend_set_map_threads(Object *obj, Visitor *v,
                                            const char *name, void *opaque,
                                            Error **errp)
{
    IOMMUFDBackend *be = IOMMUFD_BACKEND(obj);
    uint32_t value;

    if (!visit_type_uint32(v, name, &value, errp)) {
        return;
    }
    if (value > IOMMUFD_MAP_THREADS_MAX) {
        error_setg(errp, "iommufd map-threads must be at most %u, not %u",
                   IOMMUFD_MAP_THREADS_MAX, value);
        return;
    }
    be->map_threads = value;
}

static bool iommufd_backend_can_be_deleted(UserCreatable *uc)
{
    IOMMUFDBackend *be = IOMMUFD_BACKEND(uc);

    return !be->users;
}

static void iommufd_backend_class_init(ObjectClass *oc, void *data)
{
    UserCreatableClass *ucc = USER_CREATABLE_CLASS(oc);

    ucc->can_be_deleted = iommufd_backend_can_be_deleted;

    object_class_property_add_str(oc, "fd", NULL, iommufd_backend_set_fd);
    object_class_property_set_description(oc, "fd",
        "an open /dev/iommu: a file descriptor number, a name passed to "
        "the monitor with getfd, or /dev/fdset/N of -add-fd (default: QEMU "
        "opens /dev/iommu)");
    object_class_property_add(oc, "map-threads", "uint32",
                              iommufd_backend_get_map_threads,
                              iommufd_backend_set_map_threads, NULL, NULL);
    object_class_property_set_description(oc, "map-threads",
        "threads that map a large guest RAM section together, in chunks "
        "(default 1: each section in one call; 0: one per host CPU, "
        "up to 4)");
}

bool iommufd_backend_connect(IOMMUFDBackend *be, Error **errp)
{
    ERRP_GUARD();
    int fd;

    if (be->users == UINT32_MAX) {
        error_setg(errp, "too many users of iommufd");
        return false;
    }
    if (be->fd < 0) {
        fd = qemu_open("/dev/iommu", O_RDWR, errp);
        if (fd < 0) {
            if (errno == ENOENT) {
                error_append_hint(errp, "The host kernel needs "
                                  "CONFIG_IOMMUFD for iommufd.\n");
            }
            return false;
        }
        be->fd = fd;
        be->owned = true;
    }
    be->users++;
    trace_iommufd_backend_connect(be->fd, be->owned, be->users);
    return true;
}

void iommufd_backend_disconnect(IOMMUFDBackend *be)
{
    assert(be->users);
    be->users--;
    trace_iommufd_backend_disconnect(be->fd, be->owned, be->users);
    if (!be->users && be->owned) {
        qemu_close(be->fd);
        be->fd = -1;
        be->owned = false;
    }
}

bool iommufd_backend_alloc_ioas(IOMMUFDBackend *be, uint32_t *ioas_id,
                                Error **errp)
{
    struct iommu_ioas_alloc alloc = {
        .size = sizeof(alloc),
        .flags = 0,
    };
    int ret;

    ret = ioctl(be->fd, IOMMU_IOAS_ALLOC, &alloc);
    trace_iommufd_backend_alloc_ioas(be->fd, alloc.out_ioas_id,
                                     ret ? errno : 0);
    if (ret) {
        error_setg_errno(errp, errno, "IOMMU_IOAS_ALLOC failed");
        return false;
    }
    *ioas_id = alloc.out_ioas_id;
    return true;
}

bool iommufd_backend_free_id(IOMMUFDBackend *be, uint32_t id, Error **errp)
{
    struct iommu_destroy des = {
        .size = sizeof(des),
        .id = id,
    };
    int ret;

    ret = ioctl(be->fd, IOMMU_DESTROY, &des);
    trace_iommufd_backend_free_id(be->fd, id, ret ? errno : 0);
    if (ret) {
        error_setg_errno(errp, errno, "IOMMU_DESTROY of id %u failed", id);
        return false;
    }
    return true;
}

bool iommufd_backend_map_dma(IOMMUFDBackend *be, uint32_t ioas_id,
                             hwaddr iova, uint64_t size, void *vaddr,
                             bool readonly, Error **errp)
{
    struct iommu_ioas_map map = {
        .size = sizeof(map),
        .flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
        .ioas_id = ioas_id,
        .user_va = (uintptr_t)vaddr,
        .length = size,
        .iova = iova,
    };
    int ret, err;

    if (!readonly) {
        map.flags |= IOMMU_IOAS_MAP_WRITEABLE;
    }
    ret = ioctl(be->fd, IOMMU_IOAS_MAP, &map);
    err = ret ? errno : 0;
    trace_iommufd_backend_map_dma(be->fd, ioas_id, iova, size, vaddr,
                                  readonly, err);
    if (ret && err == ENOMEM) {
        /* Pinning is charged to RLIMIT_MEMLOCK: say so where QMP shows it. */
        error_setg_errno(errp, err, "IOMMU_IOAS_MAP of iova 0x%" PRIx64
                         " size 0x%" PRIx64 " exceeds the locked memory "
                         "limit (RLIMIT_MEMLOCK)", (uint64_t)iova, size);
    } else if (ret) {
        error_setg_errno(errp, err, "IOMMU_IOAS_MAP of iova 0x%" PRIx64
                         " size 0x%" PRIx64 " failed", (uint64_t)iova, size);
    }
    if (ret) {
        if (err == ENOMEM) {
            error_append_hint(errp, "Pinned memory is limited by "
                              "RLIMIT_MEMLOCK (of the user, or of this "
                              "process in iommufd's per-process accounting "
                              "mode); raise it to cover guest RAM.\n");
        }
        /* Callers may want the kernel's reason. */
        errno = err;
        return false;
    }
    return true;
}

int iommufd_backend_unmap_dma(IOMMUFDBackend *be, uint32_t ioas_id,
                              hwaddr iova, uint64_t size, uint64_t *unmapped,
                              Error **errp)
{
    struct iommu_ioas_unmap unmap = {
        .size = sizeof(unmap),
        .ioas_id = ioas_id,
        .iova = iova,
        .length = size,
    };
    int ret;

    ret = ioctl(be->fd, IOMMU_IOAS_UNMAP, &unmap);
    ret = ret ? -errno : 0;
    trace_iommufd_backend_unmap_dma(be->fd, ioas_id, iova, size,
                                    ret ? 0 : unmap.length, -ret);
    if (ret) {
        error_setg_errno(errp, -ret, "IOMMU_IOAS_UNMAP of iova 0x%" PRIx64
                         " size 0x%" PRIx64 " failed", (uint64_t)iova, size);
        return ret;
    }
    if (unmapped) {
        *unmapped = unmap.length;
    }
    return 0;
}

bool iommufd_backend_get_iova_ranges(IOMMUFDBackend *be, uint32_t ioas_id,
                                     IOMMUFDRange **ranges, uint32_t *nr,
                                     uint64_t *alignment, Error **errp)
{
    struct iommu_ioas_iova_ranges query = {
        .size = sizeof(query),
        .ioas_id = ioas_id,
        .num_iovas = 0,
    };
    g_autofree struct iommu_iova_range *buf = NULL;
    int ret;

    /* First pass sizes the array: EMSGSIZE with the number needed. */
    ret = ioctl(be->fd, IOMMU_IOAS_IOVA_RANGES, &query);
    trace_iommufd_backend_get_iova_ranges(be->fd, ioas_id, 0,
                                          query.num_iovas, ret ? errno : 0);
    if (ret && errno != EMSGSIZE) {
        error_setg_errno(errp, errno, "IOMMU_IOAS_IOVA_RANGES failed");
        return false;
    }
    if (ret) {
        uint32_t want = query.num_iovas;

        buf = g_new0(struct iommu_iova_range, want);
        query.allowed_iovas = (uintptr_t)buf;
        ret = ioctl(be->fd, IOMMU_IOAS_IOVA_RANGES, &query);
        trace_iommufd_backend_get_iova_ranges(be->fd, ioas_id, want,
                                              query.num_iovas,
                                              ret ? errno : 0);
        if (ret) {
            /* EMSGSIZE again: the ranges changed under us, not expected. */
            error_setg_errno(errp, errno, "IOMMU_IOAS_IOVA_RANGES failed");
            return false;
        }
    }

    *nr = query.num_iovas;
    *ranges = g_new0(IOMMUFDRange, query.num_iovas);
    for (uint32_t i = 0; i < query.num_iovas; i++) {
        (*ranges)[i].start = buf[i].start;
        (*ranges)[i].last = buf[i].last;
    }
    *alignment = query.out_iova_alignment;
    return true;
}

static bool iommufd_backend_option(IOMMUFDBackend *be, uint16_t op,
                                   uint32_t option_id, uint32_t object_id,
                                   uint64_t *val, Error **errp)
{
    struct iommu_option option = {
        .size = sizeof(option),
        .option_id = option_id,
        .op = op,
        .object_id = object_id,
        .val64 = *val,
    };
    int ret;

    ret = ioctl(be->fd, IOMMU_OPTION, &option);
    trace_iommufd_backend_option(be->fd, option_id, op, object_id,
                                 option.val64, ret ? errno : 0);
    if (ret) {
        error_setg_errno(errp, errno, "IOMMU_OPTION %u failed", option_id);
        return false;
    }
    *val = option.val64;
    return true;
}

bool iommufd_backend_set_option(IOMMUFDBackend *be, uint32_t option_id,
                                uint32_t object_id, uint64_t val,
                                Error **errp)
{
    return iommufd_backend_option(be, IOMMU_OPTION_OP_SET, option_id,
                                  object_id, &val, errp);
}

bool iommufd_backend_get_option(IOMMUFDBackend *be, uint32_t option_id,
                                uint32_t object_id, uint64_t *val,
                                Error **errp)
{
    *val = 0;
    return iommufd_backend_option(be, IOMMU_OPTION_OP_GET, option_id,
                                  object_id, val, errp);
}

static const TypeInfo iommufd_backend_info = {
    .name = TYPE_IOMMUFD_BACKEND,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(IOMMUFDBackend),
    .instance_init = iommufd_backend_init,
    .instance_finalize = iommufd_backend_finalize,
    .class_init = iommufd_backend_class_init,
    .interfaces = (InterfaceInfo[]) {
        { TYPE_USER_CREATABLE },
        { }
    },
};

static void register_types(void)
{
    type_register_static(&iommufd_backend_info);
}

type_init(register_types);
