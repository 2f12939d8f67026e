/*
 * iommufd backend: an owner of /dev/iommu shared by VFIO devices
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef SYSEMU_IOMMUFD_H
#define SYSEMU_IOMMUFD_H

#include "qom/object.h"
#include "exec/hwaddr.h"

#define TYPE_IOMMUFD_BACKEND "iommufd"
OBJECT_DECLARE_SIMPLE_TYPE(IOMMUFDBackend, IOMMUFD_BACKEND)

struct IOMMUFDBackend {
    Object parent_obj;

    /*
     * The /dev/iommu file.  Without an "fd" property it is opened by the
     * first user and closed by the last one (owned); a passed fd is kept
     * until the object is finalized.
     */
    int fd;
    bool owned;
    uint32_t users;
    /*
     * Threads that map a large RAM section into an IOAS of this object
     * together, in chunks: 1 (the default) maps each section in one call,
     * 0 lets hw/vfio choose.
     */
    uint32_t map_threads;
};

/* The most threads "map-threads" takes. */
#define IOMMUFD_MAP_THREADS_MAX 64

/*
 * Resolve an fd property: a number (on the command line only), a name
 * passed with getfd, or an fd set /dev/fdset/N of -add-fd.  Close the
 * result with qemu_close().
 */
int iommufd_fd_param(const char *str, Error **errp);

/*
 * A user (a VFIO device) connects before it uses the backend's fd and
 * disconnects when it is done; the object cannot be deleted in between.
 */
bool iommufd_backend_connect(IOMMUFDBackend *be, Error **errp);
void iommufd_backend_disconnect(IOMMUFDBackend *be);

/* The iommufd ioctls, each one kernel call. */
bool iommufd_backend_alloc_ioas(IOMMUFDBackend *be, uint32_t *ioas_id,
                                Error **errp);
bool iommufd_backend_free_id(IOMMUFDBackend *be, uint32_t id, Error **errp);
/* On failure errno is the kernel's. */
bool iommufd_backend_map_dma(IOMMUFDBackend *be, uint32_t ioas_id,
                             hwaddr iova, uint64_t size, void *vaddr,
                             bool readonly, Error **errp);
/*
 * Unmap [iova, iova + size).  *unmapped (if not NULL) receives the number
 * of bytes the kernel unmapped; returns -errno so callers can tell ENOENT
 * (nothing was mapped there) from a failure.
 */
int iommufd_backend_unmap_dma(IOMMUFDBackend *be, uint32_t ioas_id,
                              hwaddr iova, uint64_t size, uint64_t *unmapped,
                              Error **errp);

typedef struct IOMMUFDRange {
    uint64_t start;
    uint64_t last;
} IOMMUFDRange;

/*
 * The IOVA ranges an IOAS can map; *ranges is allocated and must be
 * g_free()d.  *alignment receives the minimum IOVA alignment.
 */
bool iommufd_backend_get_iova_ranges(IOMMUFDBackend *be, uint32_t ioas_id,
                                     IOMMUFDRange **ranges, uint32_t *nr,
                                     uint64_t *alignment, Error **errp);
bool iommufd_backend_set_option(IOMMUFDBackend *be, uint32_t option_id,
                                uint32_t object_id, uint64_t val,
                                Error **errp);
bool iommufd_backend_get_option(IOMMUFDBackend *be, uint32_t option_id,
                                uint32_t object_id, uint64_t *val,
                                Error **errp);

#endif /* SYSEMU_IOMMUFD_H */
