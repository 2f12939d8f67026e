/*
 * faultinject: fail the Nth matching ioctl of a process, for tests
 *
 * Preloaded (LD_PRELOAD) into QEMU, it passes every ioctl (and fstat, and
 * read and write on a migration data fd) to the kernel except the Nth one
 * that matches a filter, which it fails with a chosen errno without
 * calling the kernel.  A test first runs with FAULT_NTH=0
 * to count the matching calls, then once for each N up to that count, as
 * the kernel's iommufd_fail_nth selftest does for its own failure points.
 *
 * Environment, read once at start-up:
 *   FAULT_REQ         requests to match, comma separated: names such as
 *                     IOMMU_IOAS_MAP or VFIO_DEVICE_BIND_IOMMUFD, numbers
 *                     (0x3b85), "fstat" for fstat() calls, or "any" (the
 *                     default: every ioctl).  One feature of
 *                     VFIO_DEVICE_FEATURE is named by its own name, e.g.
 *                     VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE; VFIO_MIG_READ
 *                     and VFIO_MIG_WRITE are read() and write() on a
 *                     migration data fd (one that a MIG_DEVICE_STATE call
 *                     returned), failed like an ioctl.
 *                     VFIO_IOMMU_DIRTY_PAGES has the number of
 *                     VFIO_DEVICE_FEATURE: the name matches only the calls
 *                     on a type1 container
 *   FAULT_FD_KIND     kinds of fd to match, comma separated: iommu,
 *                     vfio-cdev, vfio-group, vfio-container, kvm-vfio,
 *                     kvm-vm, kvm, vfio-mig (a migration data fd), or
 *                     "any" (the default)
 *   FAULT_NTH         the match to fail, from 1; 0 (the default) only counts
 *   FAULT_ERRNO       the errno to fail it with, a number or a name such as
 *                     ENOMEM (default EIO)
 *   FAULT_COUNT_FILE  a line per match, "N REQUEST FD-KIND", with " failed"
 *                     appended for the failed one; truncated at the first
 *                     match of a count (so remove it before a run that may
 *                     have none)
 *   FAULT_CTL         a control file: while it does not exist nothing is
 *                     counted or failed; its content, "N" or "N TAG", sets
 *                     the match to fail; a change of content restarts the
 *                     count.  Lets one process run many sweeps.
 *   FAULT_FAKE_DIRTY  "1": fake iommufd dirty tracking, which the test
 *                     bed's emulated VT-d lacks: IOMMU_GET_HW_INFO reports
 *                     IOMMU_HW_CAP_DIRTY_TRACKING (also for a device whose
 *                     call fails, an mdev); IOMMU_HWPT_ALLOC with
 *                     IOMMU_HWPT_ALLOC_DIRTY_TRACKING returns a fake HWPT
 *                     id, which VFIO_DEVICE_ATTACH_IOMMUFD_PT turns into
 *                     its IOAS and IOMMU_DESTROY forgets;
 *                     IOMMU_HWPT_SET_DIRTY_TRACKING and
 *                     IOMMU_HWPT_GET_DIRTY_BITMAP on it succeed, and the
 *                     bitmap reports the first page of each range dirty.
 *                     Faked calls count and fail like real ones.
 *   FAULT_MIG_ERROR   "1": after a failed VFIO_DEVICE_FEATURE that sets
 *                     MIG_DEVICE_STATE, the next one that gets it reports
 *                     the device in ERROR (the state a kernel driver leaves
 *                     a device in when it cannot go on or back), without
 *                     calling the kernel
 * Every failed call is logged on stderr, beginning with "faultinject:".
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/iommufd.h>
#include <linux/kvm.h>
#include <linux/vfio.h>

#define MAX_REQS 64

/*
 * Requests that are no ioctl number of their own, outside ioctl's 32
 * bits: fstat(), read() and write() on a migration data fd,
 * VFIO_IOMMU_DIRTY_PAGES on a container (its number is
 * VFIO_DEVICE_FEATURE's), a feature of VFIO_DEVICE_FEATURE.
 */
#define FSTAT_REQUEST   0x100000000UL
#define MIG_READ_REQ    0x200000001UL
#define MIG_WRITE_REQ   0x200000002UL
#define DIRTY_PAGES_REQ 0x200000003UL
#define FEATURE_REQ(f)  (0x300000000UL | (f))
#define MAX_FDS         4096
#define MAX_FAKE_HWPTS  16
#define FAKE_HWPT_BASE  0x7f000000u

typedef struct Name {
    const char *name;
    unsigned long value;
} Name;

#define N(x) { #x, x }
static const Name requests[] = {
    { "fstat", FSTAT_REQUEST },
    N(IOMMU_DESTROY), N(IOMMU_IOAS_ALLOC), N(IOMMU_IOAS_IOVA_RANGES),
    N(IOMMU_IOAS_ALLOW_IOVAS), N(IOMMU_IOAS_MAP), N(IOMMU_IOAS_COPY),
    N(IOMMU_IOAS_UNMAP), N(IOMMU_OPTION), N(IOMMU_VFIO_IOAS),
    N(IOMMU_HWPT_ALLOC), N(IOMMU_GET_HW_INFO),
    N(VFIO_GET_API_VERSION), N(VFIO_CHECK_EXTENSION), N(VFIO_SET_IOMMU),
    N(VFIO_GROUP_GET_STATUS), N(VFIO_GROUP_SET_CONTAINER),
    N(VFIO_GROUP_UNSET_CONTAINER), N(VFIO_GROUP_GET_DEVICE_FD),
    N(VFIO_DEVICE_GET_INFO), N(VFIO_DEVICE_GET_REGION_INFO),
    N(VFIO_DEVICE_GET_IRQ_INFO), N(VFIO_DEVICE_SET_IRQS),
    N(VFIO_DEVICE_RESET), N(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO),
    N(VFIO_DEVICE_PCI_HOT_RESET), N(VFIO_DEVICE_IOEVENTFD),
    N(VFIO_DEVICE_FEATURE), N(VFIO_DEVICE_BIND_IOMMUFD),
    N(VFIO_DEVICE_ATTACH_IOMMUFD_PT), N(VFIO_DEVICE_DETACH_IOMMUFD_PT),
    N(VFIO_IOMMU_GET_INFO), N(VFIO_IOMMU_MAP_DMA), N(VFIO_IOMMU_UNMAP_DMA),
    { "VFIO_IOMMU_DIRTY_PAGES", DIRTY_PAGES_REQ },
    N(VFIO_MIG_GET_PRECOPY_INFO),
    N(IOMMU_HWPT_SET_DIRTY_TRACKING), N(IOMMU_HWPT_GET_DIRTY_BITMAP),
#define F(x) { #x, FEATURE_REQ(x) }
    F(VFIO_DEVICE_FEATURE_MIGRATION), F(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE),
    F(VFIO_DEVICE_FEATURE_DMA_LOGGING_START),
    F(VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP),
    F(VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT),
#undef F
    { "VFIO_MIG_READ", MIG_READ_REQ }, { "VFIO_MIG_WRITE", MIG_WRITE_REQ },
    N(KVM_CREATE_DEVICE), N(KVM_SET_DEVICE_ATTR), N(KVM_GET_DEVICE_ATTR),
    N(KVM_HAS_DEVICE_ATTR),
};

static const Name errnos[] = {
    N(EPERM), N(ENOENT), N(EINTR), N(EIO), N(ENXIO), N(EBADF), N(EAGAIN),
    N(ENOMEM), N(EACCES), N(EFAULT), N(EBUSY), N(EEXIST), N(ENODEV),
    N(EINVAL), N(ENOSPC), N(ENOTTY), N(EOVERFLOW), N(EOPNOTSUPP),
};
#undef N

/* Kinds of fd, by the target of /proc/self/fd/N. */
typedef struct FdKind {
    const char *name;
    const char *link;   /* exact target, or prefix when it ends in '/' */
} FdKind;

static const FdKind fd_kinds[] = {
    { "iommu", "/dev/iommu" },
    { "vfio-cdev", "/dev/vfio/devices/" },
    { "vfio-container", "/dev/vfio/vfio" },
    { "vfio-group", "/dev/vfio/" },
    { "kvm-vfio", "anon_inode:kvm-vfio" },
    { "kvm-vm", "anon_inode:kvm-vm" },
    { "kvm", "/dev/kvm" },
    { "vfio-mig", NULL },     /* known by the call that returned it */
};
#define FD_KIND_CONTAINER 2
#define FD_KIND_MIG ((int)(sizeof(fd_kinds) / sizeof(fd_kinds[0])) - 1)

static int (*real_ioctl)(int fd, unsigned long request, ...);
static int (*real_fstat)(int fd, struct stat *st);
static int (*real_fstat64)(int fd, struct stat64 *st);
static ssize_t (*real_read)(int fd, void *buf, size_t count);
static ssize_t (*real_write)(int fd, const void *buf, size_t count);
static int (*real_close)(int fd);

/* Migration data fds, by number. */
static volatile unsigned char mig_fd[MAX_FDS];

/* FAULT_MIG_ERROR: the next MIG_DEVICE_STATE GET reports ERROR. */
static bool mig_error;
static volatile bool mig_error_next_get;

/* FAULT_FAKE_DIRTY: the fake HWPTs, each over an IOAS. */
static bool fake_dirty;
static struct {
    uint32_t id, ioas;
    bool tracking;
} fake_hwpts[MAX_FAKE_HWPTS];
static uint32_t fake_hwpt_next = FAKE_HWPT_BASE;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long req_filter[MAX_REQS];
static int nr_reqs = -1;        /* -1: any request */
static unsigned kind_filter;    /* bit per fd_kinds[] entry, 0: any */
static unsigned long nth;
static int fail_errno = EIO;
static const char *count_file;
static const char *ctl_file;
static char ctl_seen[64];
static unsigned long count;

static void die(const char *fmt, const char *what)
{
    fprintf(stderr, "faultinject: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n");
    exit(1);
}

/* A whole string as a number: decimal, 0x hex or 0 octal. */
static bool parse_number(const char *s, unsigned long *value)
{
    long v;
    int len = -1;

    if (sscanf(s, "%li%n", &v, &len) != 1 || len != (int)strlen(s) ||
        v < 0) {
        return false;
    }
    *value = v;
    return true;
}

static bool lookup(const Name *names, size_t n, const char *s,
                   unsigned long *value)
{

    for (size_t i = 0; i < n; i++) {
        if (!strcmp(names[i].name, s)) {
            *value = names[i].value;
            return true;
        }
    }
    return parse_number(s, value);
}

static const char *request_name(unsigned long request)
{
    static __thread char buf[32];

    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        if (requests[i].value == request) {
            return requests[i].name;
        }
    }
    snprintf(buf, sizeof(buf), "0x%lx", request);
    return buf;
}

static const char *errno_name(int err)
{
    for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++) {
        if (errnos[i].value == (unsigned long)err) {
            return errnos[i].name;
        }
    }
    return "?";
}

/* Split the comma list @env and call @fn on each item. */
static void for_each_item(const char *env, void (*fn)(const char *item))
{
    char *copy = strdup(env), *save = NULL;

    for (char *s = strtok_r(copy, ",", &save); s;
         s = strtok_r(NULL, ",", &save)) {
        fn(s);
    }
    free(copy);
}

static void add_request(const char *item)
{
    unsigned long value;

    if (!strcmp(item, "any")) {
        nr_reqs = -1;
        return;
    }
    if (!lookup(requests, sizeof(requests) / sizeof(requests[0]), item,
                &value)) {
        die("unknown request '%s' in FAULT_REQ", item);
    }
    if (nr_reqs < 0) {
        nr_reqs = 0;
    }
    if (nr_reqs == MAX_REQS) {
        die("too many requests in FAULT_REQ%s", "");
    }
    req_filter[nr_reqs++] = value;
}

static void add_kind(const char *item)
{
    if (!strcmp(item, "any")) {
        kind_filter = 0;
        return;
    }
    for (size_t i = 0; i < sizeof(fd_kinds) / sizeof(fd_kinds[0]); i++) {
        if (!strcmp(fd_kinds[i].name, item)) {
            kind_filter |= 1u << i;
            return;
        }
    }
    die("unknown fd kind '%s' in FAULT_FD_KIND", item);
}

__attribute__((constructor))
static void faultinject_init(void)
{
    const char *env;
    unsigned long value;

    real_ioctl = dlsym(RTLD_NEXT, "ioctl");
    real_fstat = dlsym(RTLD_NEXT, "fstat");
    real_fstat64 = dlsym(RTLD_NEXT, "fstat64");
    real_read = dlsym(RTLD_NEXT, "read");
    real_write = dlsym(RTLD_NEXT, "write");
    real_close = dlsym(RTLD_NEXT, "close");
    if (!real_ioctl || !real_fstat || !real_fstat64 || !real_read ||
        !real_write || !real_close) {
        die("cannot find ioctl, fstat, read, write or close: %s", dlerror());
    }
    env = getenv("FAULT_REQ");
    if (env && *env) {
        nr_reqs = 0;
        for_each_item(env, add_request);
    }
    env = getenv("FAULT_FD_KIND");
    if (env && *env) {
        for_each_item(env, add_kind);
    }
    env = getenv("FAULT_NTH");
    if (env && *env) {
        if (!lookup(NULL, 0, env, &value)) {
            die("FAULT_NTH '%s' is not a number", env);
        }
        nth = value;
    }
    env = getenv("FAULT_ERRNO");
    if (env && *env) {
        if (!lookup(errnos, sizeof(errnos) / sizeof(errnos[0]), env,
                    &value)) {
            die("unknown errno '%s' in FAULT_ERRNO", env);
        }
        fail_errno = value;
    }
    count_file = getenv("FAULT_COUNT_FILE");
    ctl_file = getenv("FAULT_CTL");
    env = getenv("FAULT_MIG_ERROR");
    mig_error = env && !strcmp(env, "1");
    env = getenv("FAULT_FAKE_DIRTY");
    fake_dirty = env && !strcmp(env, "1");
}

static bool request_matches(unsigned long request)
{
    if (nr_reqs < 0) {
        /* "any" is every ioctl: the others are asked for by name */
        return request <= UINT32_MAX;
    }
    for (int i = 0; i < nr_reqs; i++) {
        if (req_filter[i] == request) {
            return true;
        }
    }
    return false;
}

/* The index in fd_kinds[] of @fd's kind, or -1. */
static int fd_kind(int fd)
{
    char path[64], link[256];
    ssize_t len;

    if (fd >= 0 && fd < MAX_FDS && mig_fd[fd]) {
        return FD_KIND_MIG;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    len = readlink(path, link, sizeof(link) - 1);
    if (len < 0) {
        return -1;
    }
    link[len] = 0;
    for (size_t i = 0; i < sizeof(fd_kinds) / sizeof(fd_kinds[0]); i++) {
        size_t n = fd_kinds[i].link ? strlen(fd_kinds[i].link) : 0;
        bool prefix;

        if (!n) {
            continue;
        }
        prefix = fd_kinds[i].link[n - 1] == '/';
        if (prefix ? !strncmp(link, fd_kinds[i].link, n) &&
                     !strchr(link + n, '/')
                   : !strcmp(link, fd_kinds[i].link)) {
            return i;
        }
    }
    return -1;
}

static bool fd_matches(int fd, int *kind)
{
    *kind = fd_kind(fd);
    return !kind_filter || (*kind >= 0 && (kind_filter & (1u << *kind)));
}

/*
 * With a control file: is it there, and what does it say?  A new content
 * restarts the count and sets the match to fail.
 */
static bool armed(void)
{
    char buf[sizeof(ctl_seen)];
    ssize_t len;
    int fd;

    if (!ctl_file) {
        return true;
    }
    fd = open(ctl_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[len > 0 ? len : 0] = 0;
    if (strcmp(buf, ctl_seen)) {
        strcpy(ctl_seen, buf);
        count = 0;
        if (sscanf(buf, "%lu", &nth) != 1) {
            nth = 0;
        }
    }
    return true;
}

/* Append one line for a match to the count file, truncated when @restart. */
static void log_match(unsigned long request, int kind, bool fail,
                      bool restart)
{
    char buf[128];
    int fd, len;

    if (!count_file) {
        return;
    }
    fd = open(count_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
              (restart ? O_TRUNC : 0), 0644);
    if (fd < 0) {
        return;
    }
    len = snprintf(buf, sizeof(buf), "%lu %s %s%s\n", count,
                   request_name(request),
                   kind >= 0 ? fd_kinds[kind].name : "other",
                   fail ? " failed" : "");
    if (write(fd, buf, len) != len) {
        /* The test sees a short file and says so. */
    }
    close(fd);
}

/*
 * Does this call of @request (or of @alt, the feature it carries; 0 for
 * none) fail?  Counts and logs the match; the caller fails the call.
 */
static bool should_fail(int fd, unsigned long request, unsigned long alt)
{
    int kind;
    bool fail = false;
    unsigned long req = request_matches(request) ? request : alt;

    if ((request_matches(request) || (alt && request_matches(alt))) &&
        fd_matches(fd, &kind)) {
        pthread_mutex_lock(&lock);
        if (armed()) {
            count++;
            fail = count == nth;
            log_match(req, kind, fail, count == 1);
        }
        pthread_mutex_unlock(&lock);
        if (fail) {
            fprintf(stderr, "faultinject: failing %s (match %lu) on fd %d "
                    "(%s) with %s\n", request_name(req), nth, fd,
                    kind >= 0 ? fd_kinds[kind].name : "other",
                    errno_name(fail_errno));
            errno = fail_errno;
        }
    }
    return fail;
}

/* A data fd that a MIG_DEVICE_STATE call returned: its reads and writes. */
static void note_mig_fd(unsigned long request, void *arg, int ret)
{
    struct vfio_device_feature *feature = arg;
    struct vfio_device_feature_mig_state *mig;

    if (ret || request != VFIO_DEVICE_FEATURE ||
        (feature->flags & VFIO_DEVICE_FEATURE_MASK) !=
        VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE ||
        !(feature->flags & VFIO_DEVICE_FEATURE_SET) ||
        feature->argsz < sizeof(*feature) + sizeof(*mig)) {
        return;
    }
    mig = (void *)feature->data;
    if (mig->data_fd >= 0 && mig->data_fd < MAX_FDS) {
        mig_fd[mig->data_fd] = 1;
    }
}

static int fake_hwpt_index(uint32_t id)
{
    for (int i = 0; i < MAX_FAKE_HWPTS; i++) {
        if (fake_hwpts[i].id && fake_hwpts[i].id == id) {
            return i;
        }
    }
    return -1;
}

/*
 * FAULT_FAKE_DIRTY: answer the dirty tracking calls that the kernel
 * cannot, or pass them on: the call's result, or 1 to make the real call.
 */
static int fake_dirty_ioctl(int fd, unsigned long request, void *arg)
{
    int ret = 1, i;

    pthread_mutex_lock(&lock);
    switch (request) {
    case IOMMU_GET_HW_INFO: {
        struct iommu_hw_info *info = arg;

        pthread_mutex_unlock(&lock);
        if (real_ioctl(fd, request, arg)) {
            info->out_data_type = IOMMU_HW_INFO_TYPE_NONE;
            info->out_capabilities = 0;
        }
        info->out_capabilities |= IOMMU_HW_CAP_DIRTY_TRACKING;
        return 0;
    }
    case IOMMU_HWPT_ALLOC: {
        struct iommu_hwpt_alloc *alloc = arg;

        if (!(alloc->flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING)) {
            break;
        }
        for (i = 0; i < MAX_FAKE_HWPTS && fake_hwpts[i].id; i++) {
            /* the first free slot */
        }
        if (i == MAX_FAKE_HWPTS) {
            errno = ENOSPC;
            ret = -1;
            break;
        }
        fake_hwpts[i].id = fake_hwpt_next++;
        fake_hwpts[i].ioas = alloc->pt_id;
        fake_hwpts[i].tracking = false;
        alloc->out_hwpt_id = fake_hwpts[i].id;
        ret = 0;
        break;
    }
    case VFIO_DEVICE_ATTACH_IOMMUFD_PT: {
        struct vfio_device_attach_iommufd_pt *attach = arg;
        uint32_t id = attach->pt_id;

        i = fake_hwpt_index(id);
        if (i < 0) {
            break;
        }
        attach->pt_id = fake_hwpts[i].ioas;
        pthread_mutex_unlock(&lock);
        ret = real_ioctl(fd, request, arg);
        attach->pt_id = id;
        return ret;
    }
    case IOMMU_DESTROY: {
        struct iommu_destroy *des = arg;

        i = fake_hwpt_index(des->id);
        if (i >= 0) {
            fake_hwpts[i].id = 0;
            ret = 0;
        }
        break;
    }
    case IOMMU_HWPT_SET_DIRTY_TRACKING: {
        struct iommu_hwpt_set_dirty_tracking *set = arg;

        i = fake_hwpt_index(set->hwpt_id);
        if (i >= 0) {
            fake_hwpts[i].tracking =
                set->flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE;
            ret = 0;
        }
        break;
    }
    case IOMMU_HWPT_GET_DIRTY_BITMAP: {
        struct iommu_hwpt_get_dirty_bitmap *get = arg;

        i = fake_hwpt_index(get->hwpt_id);
        if (i < 0) {
            break;
        }
        if (!fake_hwpts[i].tracking || !get->length || !get->page_size) {
            errno = EINVAL;
            ret = -1;
            break;
        }
        *(uint64_t *)(uintptr_t)get->data |= 1;
        ret = 0;
        break;
    }
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    void *arg;
    unsigned long req, alt = 0;
    int ret;

    va_start(ap, request);
    arg = va_arg(ap, void *);
    va_end(ap);

    /*
     * The kernel takes the request as an unsigned int; callers that pass
     * it as an int (QEMU's kvm_vm_ioctl()) sign-extend the ones with the
     * top bit set, such as KVM_CREATE_DEVICE.
     */
    req = (unsigned int)request;
    if (req == VFIO_IOMMU_DIRTY_PAGES && fd_kind(fd) == FD_KIND_CONTAINER) {
        /* "any" still matches it by its number */
        req = DIRTY_PAGES_REQ;
        alt = VFIO_IOMMU_DIRTY_PAGES;
    } else if (req == VFIO_DEVICE_FEATURE && arg) {
        alt = FEATURE_REQ(((struct vfio_device_feature *)arg)->flags &
                          VFIO_DEVICE_FEATURE_MASK);
    }
    if (should_fail(fd, req, alt)) {
        if (mig_error &&
            alt == FEATURE_REQ(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE) &&
            (((struct vfio_device_feature *)arg)->flags &
             VFIO_DEVICE_FEATURE_SET)) {
            mig_error_next_get = true;
        }
        return -1;
    }
    if (mig_error_next_get &&
        alt == FEATURE_REQ(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE) &&
        (((struct vfio_device_feature *)arg)->flags &
         VFIO_DEVICE_FEATURE_GET)) {
        struct vfio_device_feature_mig_state *mig =
            (void *)((struct vfio_device_feature *)arg)->data;

        mig_error_next_get = false;
        mig->device_state = VFIO_DEVICE_STATE_ERROR;
        mig->data_fd = -1;
        fprintf(stderr, "faultinject: the device reports ERROR\n");
        return 0;
    }
    if (fake_dirty) {
        ret = fake_dirty_ioctl(fd, req, arg);
        if (ret != 1) {
            return ret;
        }
    }
    ret = real_ioctl(fd, request, arg);
    note_mig_fd(req, arg, ret);
    return ret;
}

ssize_t read(int fd, void *buf, size_t count)
{
    if (fd >= 0 && fd < MAX_FDS && mig_fd[fd] &&
        should_fail(fd, MIG_READ_REQ, 0)) {
        return -1;
    }
    return real_read(fd, buf, count);
}

ssize_t write(int fd, const void *buf, size_t count)
{
    if (fd >= 0 && fd < MAX_FDS && mig_fd[fd] &&
        should_fail(fd, MIG_WRITE_REQ, 0)) {
        return -1;
    }
    return real_write(fd, buf, count);
}

int close(int fd)
{
    if (fd >= 0 && fd < MAX_FDS) {
        mig_fd[fd] = 0;
    }
    return real_close(fd);
}

/* QEMU, built with _FILE_OFFSET_BITS=64, calls fstat64. */
int fstat(int fd, struct stat *st)
{
    return should_fail(fd, FSTAT_REQUEST, 0) ? -1 : real_fstat(fd, st);
}

int fstat64(int fd, struct stat64 *st)
{
    return should_fail(fd, FSTAT_REQUEST, 0) ? -1 : real_fstat64(fd, st);
}
