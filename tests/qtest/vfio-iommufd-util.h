/*
 * Helpers for the real-kernel VFIO/iommufd qtests: edu devices bound to
 * vfio-pci, a VM with an assigned edu, its DMA round trip and its trace
 * log, the /proc figures of the QEMU process, and QEMU runs that are
 * expected to fail.
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef VFIO_IOMMUFD_UTIL_H
#define VFIO_IOMMUFD_UTIL_H

#include "libqtest.h"
#include "libqos/pci-pc.h"

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
#define EDU_DMA_LEN     2048

/* Guest addresses (= IOVAs without a vIOMMU), below edu's 28-bit mask. */
#define GUEST_SRC       0x1000000
#define GUEST_DST       0x2000000

#define SLOT0           4
#define SLOT1           5

#define VM_MACHINE "-machine pc -m 256M -nodefaults -display none "

/* The BDF of edu device @n bound to vfio-pci, or NULL after a skip. */
const char *edu_need(unsigned n);
/* The number of edu devices bound to vfio-pci. */
unsigned edu_count(void);
/* /dev/vfio/devices/vfioN of @bdf, from its sysfs vfio-dev/ directory. */
char *edu_cdev(const char *bdf);

typedef struct TestVM {
    QTestState *qts;
    QPCIBus *bus;
    char *tmpdir;
    char *trace;        /* the log of the VFIO and iommufd trace events */
    pid_t pid;
} TestVM;

/* Start QEMU (a pc machine, see VM_MACHINE) with @extra arguments. */
void vm_start(TestVM *vm, const char *extra);
/* Quit QEMU, which flushes the trace log: it can still be read. */
void vm_quit(TestVM *vm);
/* Quit QEMU unless vm_quit() did, and remove its files. */
void vm_stop(TestVM *vm);
/* Does QEMU still answer QMP, and is the VM running? */
bool vm_alive(TestVM *vm);

/* The trace log, complete once vm_quit() returned: lines of @event. */
unsigned vm_trace_count(TestVM *vm, const char *event);
/* The lines of @event that contain @text. */
unsigned vm_trace_count_with(TestVM *vm, const char *event, const char *text);
/* Does the first line of @event contain @text? */
bool vm_trace_first_has(TestVM *vm, const char *event, const char *text);
/* The index of the first line of @event among all lines, or -1. */
int vm_trace_index(TestVM *vm, const char *event);

/* Send a QMP command, printf-like; NULL on success, else the error. */
char *vm_qmp_error(TestVM *vm, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* The same, asserting success. */
void vm_qmp_ok(TestVM *vm, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* The iommufd backend object and a vfio-pci device of edu @bdf on it. */
char *vm_add_edu(TestVM *vm, const char *id, const char *bdf, int slot,
                 const char *iommufd);
/* device_del and the guest's ACPI eject, waiting for DEVICE_DELETED. */
void vm_del_device(TestVM *vm, const char *id, int slot);

/* Copy a pattern guest -> edu -> guest through edu in @slot: bytes equal? */
bool vm_dma_round_trip(TestVM *vm, int slot, uint8_t seed);

/* An edu in the guest: BAR0 mapped, memory and bus mastering enabled. */
typedef struct Edu {
    QPCIDevice *dev;
    QPCIBar bar;
} Edu;

/* Find edu in @slot, check its IDs, map BAR0, enable bus mastering. */
void edu_open(TestVM *vm, int slot, Edu *edu);
void edu_close(Edu *edu);
/* Start a DMA of @len bytes between guest (IOVA) and device addresses. */
void edu_dma_start(Edu *edu, uint64_t src, uint64_t dst, uint32_t len,
                   bool to_ram);
/* Wait (real time) until edu says the DMA is done: false after 10 s. */
bool edu_dma_wait(Edu *edu);
/*
 * Copy a pattern from guest RAM at @src through edu's buffer to guest RAM
 * at @dst: did the bytes arrive?
 */
bool edu_round_trip(TestVM *vm, Edu *edu, uint64_t src, uint64_t dst,
                    uint8_t seed);

/* What the kernel says about a process: resources a device may leak. */
typedef struct ProcStats {
    unsigned fds;           /* entries of /proc/PID/fd */
    unsigned long rss_kb;   /* VmRSS */
    unsigned long lck_kb;   /* VmLck: mlock()ed */
    unsigned long pin_kb;   /* VmPin: pinned, e.g. by iommufd */
} ProcStats;

void proc_stats(pid_t pid, ProcStats *st);
/* "fds N, VmRSS N kB, VmLck N kB, VmPin N kB" */
char *proc_stats_str(const ProcStats *st);

/*
 * Run QEMU with @args and no libqtest: QMP on stdin sends "quit" once it
 * is up.  Returns the wait status; *err receives what it printed on
 * stderr.  QEMU gets at most 60 seconds.
 */
int qemu_run(const char *args, char **err);
/* Describe a wait status: "exit status 1", "signal 6 (Aborted)", ... */
char *wait_status_str(int wstatus);

/* Does @haystack contain @needle?  Says what it expected if not. */
bool contains(const char *haystack, const char *needle);

#endif
