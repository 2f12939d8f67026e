/*
 * qtest: every failure of a kernel call on the iommufd path, one at a time
 *
 * Preloads tests/faultinject's library into QEMU, which fails the Nth
 * ioctl on /dev/iommu or a VFIO device cdev (with KVM, also the kvm-vfio
 * calls), and sweeps N over every such call of four operations: device
 * realize at start-up, device_add, device_del, and a change of guest
 * memory (a pc-dimm plugged and unplugged).  For each N:
 * - QEMU does not crash or abort: a failed start-up exits with status 1
 *   and a message, a failed hot-plug returns a QMP error and the VM keeps
 *   running;
 * - nothing of a failed device is left: QEMU's open fds and its locked
 *   and pinned memory are back to their baseline, the iommufd object can
 *   be deleted, and the same device can be added again and moves bytes by
 *   DMA;
 * - a failure QEMU tolerates leaves a device that still moves bytes.
 *
 * Needs edu devices bound to vfio-pci (tests/testbed) and the library
 * (tests/faultinject/build.sh), found at $FAULTINJECT_LIB or
 * tests/faultinject/libfaultinject.so under the build directory; skips
 * otherwise.  $VFIO_FAULT_ERRNO picks the errno (default ENOMEM).
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qapi/qmp/qdict.h"
#include "vfio-iommufd-util.h"

/* Which ioctls a sweep fails: requests and kinds of fd, as faultinject's. */
typedef struct Filter {
    const char *name;
    const char *reqs;
    const char *kinds;
    const char *accel;      /* extra QEMU arguments */
} Filter;

static const Filter filter_iommufd = {
    "iommufd", "any", "iommu,vfio-cdev", "",
};

/*
 * With KVM, also the calls that tell the kvm-vfio device of the cdev.  -S
 * keeps the firmware from running: it would program the BARs too.
 */
static const Filter filter_kvm = {
    "kvm-vfio", "KVM_CREATE_DEVICE,KVM_SET_DEVICE_ATTR", "kvm-vm,kvm-vfio",
    "-accel kvm -S",
};

typedef struct Fault {
    char *dir;
    char *ctl;          /* FAULT_CTL: injection armed while it exists */
    char *log;          /* FAULT_COUNT_FILE: one line per match */
    unsigned seq;
} Fault;

static char *faultinject_lib(void)
{
    const char *env = g_getenv("FAULTINJECT_LIB");
    g_autofree char *path = g_strdup(env ? env :
                                     "tests/faultinject/libfaultinject.so");
    char *abs = realpath(path, NULL);

    if (!abs) {
        g_autofree char *why = g_strdup_printf(
            "needs the fault injection library at %s (build it with "
            "tests/faultinject/build.sh, or set FAULTINJECT_LIB)", path);
        g_test_skip(why);
    }
    return abs;
}

/*
 * Preload the library into the QEMU processes started from here on (they
 * inherit our environment).  With @ctl, injection waits for fault_arm().
 */
static bool fault_setup(Fault *f, const Filter *flt, bool ctl)
{
    g_autofree char *lib = faultinject_lib();
    const char *err = g_getenv("VFIO_FAULT_ERRNO");

    if (!lib) {
        return false;
    }
    f->dir = g_dir_make_tmp("faultinject-XXXXXX", NULL);
    g_assert(f->dir);
    f->ctl = g_build_filename(f->dir, "ctl", NULL);
    f->log = g_build_filename(f->dir, "count", NULL);
    f->seq = 0;
    g_setenv("LD_PRELOAD", lib, true);
    g_setenv("FAULT_REQ", flt->reqs, true);
    g_setenv("FAULT_FD_KIND", flt->kinds, true);
    g_setenv("FAULT_ERRNO", err ? err : "ENOMEM", true);
    g_setenv("FAULT_COUNT_FILE", f->log, true);
    g_setenv("FAULT_NTH", "0", true);
    if (ctl) {
        g_setenv("FAULT_CTL", f->ctl, true);
    } else {
        g_unsetenv("FAULT_CTL");
    }
    return true;
}

static void fault_teardown(Fault *f)
{
    const char *vars[] = { "LD_PRELOAD", "FAULT_REQ", "FAULT_FD_KIND",
                           "FAULT_ERRNO", "FAULT_COUNT_FILE", "FAULT_NTH",
                           "FAULT_CTL" };

    for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
        g_unsetenv(vars[i]);
    }
    unlink(f->ctl);
    unlink(f->log);
    rmdir(f->dir);
    g_free(f->ctl);
    g_free(f->log);
    g_free(f->dir);
}

/* Fail match @nth (0: only count) of the operations from now on. */
static void fault_arm(Fault *f, unsigned nth)
{
    g_autofree char *ctl = g_strdup_printf("%u %u\n", nth, ++f->seq);

    unlink(f->log);
    g_assert(g_file_set_contents(f->ctl, ctl, -1, NULL));
}

static void fault_disarm(Fault *f)
{
    unlink(f->ctl);
}

/* Without a control file: fail match @nth of the next QEMU process. */
static void fault_set_nth(Fault *f, unsigned nth)
{
    g_autofree char *val = g_strdup_printf("%u", nth);

    unlink(f->log);
    g_setenv("FAULT_NTH", val, true);
}

/*
 * The matches since the last arm: their number, and in *failed (if not
 * NULL) "REQUEST" of the failed one or NULL.
 */
static unsigned fault_matches(Fault *f, char **failed)
{
    g_autofree char *log = NULL;
    g_auto(GStrv) lines = NULL;
    unsigned n = 0;

    if (failed) {
        *failed = NULL;
    }
    if (!g_file_get_contents(f->log, &log, NULL, NULL)) {
        return 0;
    }
    lines = g_strsplit(log, "\n", -1);
    for (int i = 0; lines[i] && *lines[i]; i++) {
        n++;
        if (failed && g_str_has_suffix(lines[i], " failed")) {
            g_auto(GStrv) words = g_strsplit(lines[i], " ", 3);

            *failed = g_strdup(words[1]);
        }
    }
    return n;
}

/* The names of the matching calls, for the report: "A B B C...". */
static char *fault_points(Fault *f)
{
    g_autofree char *log = NULL;
    g_auto(GStrv) lines = NULL;
    GString *s = g_string_new("");

    if (g_file_get_contents(f->log, &log, NULL, NULL)) {
        lines = g_strsplit(log, "\n", -1);
        for (int i = 0; lines[i] && *lines[i]; i++) {
            g_auto(GStrv) words = g_strsplit(lines[i], " ", 3);

            g_string_append_printf(s, "%s%s", i ? " " : "", words[1]);
        }
    }
    return g_string_free(s, false);
}

/* What one sweep found, for its closing line. */
typedef struct Sweep {
    const char *name;
    unsigned points;        /* matching calls of the operation */
    unsigned swept;         /* of them, failed one at a time and checked */
    unsigned refused;       /* the operation failed cleanly */
    unsigned tolerated;     /* it completed, and the VM and device work */
} Sweep;

static void sweep_report(Sweep *s, const Filter *flt)
{
    g_test_message("%s (%s): %u/%u injection points swept: %u refused "
                   "cleanly, %u completed with the VM and device working",
                   s->name, flt->name, s->swept, s->points, s->refused,
                   s->tolerated);
    g_assert_cmpuint(s->swept, ==, s->points);
}

/* Poll until QEMU's fds, VmLck and VmPin are back to @base (10 s). */
static void assert_baseline(TestVM *vm, const ProcStats *base,
                            const char *when)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    ProcStats now;

    for (;;) {
        proc_stats(vm->pid, &now);
        if (now.fds == base->fds && now.lck_kb == base->lck_kb &&
            now.pin_kb == base->pin_kb) {
            return;
        }
        if (g_get_monotonic_time() > deadline) {
            break;
        }
        g_usleep(50 * 1000);
    }
    {
        g_autofree char *want = proc_stats_str(base);
        g_autofree char *got = proc_stats_str(&now);

        g_test_message("%s: expected %s, got %s", when, want, got);
        g_assert_not_reached();
    }
}

/* The iommufd object and edu 0 on it, checked by a DMA round trip. */
static void add_edu(TestVM *vm, const char *bdf, uint8_t seed)
{
    g_autofree char *err = NULL;

    vm_qmp_ok(vm, "{'execute': 'object-add', 'arguments':"
              " {'qom-type': 'iommufd', 'id': 'iommufd0'}}");
    err = vm_add_edu(vm, "edu0", bdf, SLOT0, "iommufd0");
    if (err) {
        g_test_message("device_add without injection: %s", err);
        g_assert_not_reached();
    }
    g_assert(vm_dma_round_trip(vm, SLOT0, seed));
}

/* Remove edu 0 and the object; the object must be deletable. */
static void del_edu(TestVM *vm)
{
    vm_del_device(vm, "edu0", SLOT0);
    vm_qmp_ok(vm, "{'execute': 'object-del', 'arguments':"
              " {'id': 'iommufd0'}}");
}

/*
 * After a failure: the VM runs, nothing of the device is left, and the
 * same device can be added again and works.
 */
static void assert_recovered(TestVM *vm, const char *bdf,
                             const ProcStats *base, const char *what)
{
    g_assert(vm_alive(vm));
    assert_baseline(vm, base, what);
    add_edu(vm, bdf, 0x5a);
    del_edu(vm);
    assert_baseline(vm, base, what);
}

/* The QEMU arguments of one iommufd edu at start-up, after VM_MACHINE. */
static char *edu_args(const char *bdf, const Filter *flt)
{
    return g_strdup_printf("%s -object iommufd,id=iommufd0 "
                           "-device vfio-pci,host=%s,iommufd=iommufd0,"
                           "id=edu0,addr=%d", flt->accel, bdf, SLOT0);
}

/* Is @err the report of a failed start-up, naming the device? */
static bool startup_error_ok(const char *err, const char *bdf)
{
    g_autofree char *prefix = g_strdup_printf(": -device vfio-pci,host=%s,"
                                              "iommufd=iommufd0,id=edu0,"
                                              "addr=%d: vfio %s: ",
                                              bdf, SLOT0, bdf);

    return contains(err, prefix) && !strstr(err, "Assertion") &&
           !strstr(err, "unable to continue");
}

/* (a) Device realize at start-up. */
static void sweep_startup(const Filter *flt)
{
    const char *bdf = edu_need(0);
    g_autofree char *args = NULL;
    g_autofree char *run_args = NULL;
    g_autofree char *err = NULL;
    g_autofree char *points = NULL;
    Sweep s = { .name = "start-up" };
    Fault f;
    int ws;

    if (!bdf || !fault_setup(&f, flt, false)) {
        return;
    }
    args = edu_args(bdf, flt);
    run_args = g_strdup_printf(VM_MACHINE "%s", args);

    fault_set_nth(&f, 0);
    ws = qemu_run(run_args, &err);
    g_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    s.points = fault_matches(&f, NULL);
    points = fault_points(&f);
    g_test_message("start-up: %u calls: %s", s.points, points);
    g_assert_cmpuint(s.points, >, 0);

    for (unsigned n = 1; n <= s.points; n++) {
        g_autofree char *msg = NULL;
        g_autofree char *how = NULL;
        g_autofree char *failed = NULL;

        fault_set_nth(&f, n);
        ws = qemu_run(run_args, &msg);
        fault_matches(&f, &failed);
        how = wait_status_str(ws);
        g_test_message("start-up, failing call %u (%s): %s; %s", n,
                       failed ? failed : "none", how, g_strstrip(msg));
        g_assert(failed);
        g_assert(WIFEXITED(ws));
        if (WEXITSTATUS(ws) == 1) {
            g_assert(startup_error_ok(msg, bdf));
            s.refused++;
        } else {
            TestVM vm;

            g_assert_cmpint(WEXITSTATUS(ws), ==, 0);
            /* It started: the same failure must leave a working device. */
            fault_set_nth(&f, n);
            vm_start(&vm, args);
            g_assert(vm_dma_round_trip(&vm, SLOT0, n));
            vm_stop(&vm);
            s.tolerated++;
        }
        s.swept++;
    }
    fault_teardown(&f);
    sweep_report(&s, flt);
}

/* A VM without devices, the library armed from the control file. */
static void start_sweep_vm(TestVM *vm, const Filter *flt,
                           const char *bdf, const char *extra,
                           ProcStats *base)
{
    g_autofree char *args = g_strdup_printf("%s %s", flt->accel, extra);
    g_autofree char *s = NULL;

    g_autofree char *with = NULL;
    ProcStats attached;

    vm_start(vm, args);
    /* One clean round first: what stays allocated afterwards is the base. */
    add_edu(vm, bdf, 0x11);
    proc_stats(vm->pid, &attached);
    del_edu(vm);
    proc_stats(vm->pid, base);
    s = proc_stats_str(base);
    with = proc_stats_str(&attached);
    g_test_message("with the device: %s; baseline without it: %s", with, s);
    /* The device pins guest RAM: the figure that must come back. */
    g_assert_cmpuint(attached.pin_kb, >, base->pin_kb);
}

static void send_fd(TestVM *vm, const char *path, const char *name)
{
    int fd = open(path, O_RDWR);
    QDict *resp;

    g_assert_cmpint(fd, >=, 0);
    resp = qtest_qmp_fds(vm->qts, &fd, 1, "{'execute': 'getfd',"
                         " 'arguments': {'fdname': %s}}", name);
    g_assert(qdict_haskey(resp, "return"));
    qobject_unref(resp);
    close(fd);
}

/*
 * object-add of iommufd0 and device_add of edu0 as device edu0; with
 * @passed, the way libvirt does it: QEMU opens no node, both fds come
 * with getfd.  Returns the error of device_add, or NULL.
 */
static char *plug_edu(TestVM *vm, const char *bdf, bool passed)
{
    g_autofree char *cdev = NULL;
    g_autofree char *addr = NULL;

    if (!passed) {
        vm_qmp_ok(vm, "{'execute': 'object-add', 'arguments':"
                  " {'qom-type': 'iommufd', 'id': 'iommufd0'}}");
        return vm_add_edu(vm, "edu0", bdf, SLOT0, "iommufd0");
    }
    cdev = edu_cdev(bdf);
    addr = g_strdup_printf("%d", SLOT0);
    send_fd(vm, "/dev/iommu", "iommufd0-fd");
    send_fd(vm, cdev, "edu0-fd");
    vm_qmp_ok(vm, "{'execute': 'object-add', 'arguments':"
              " {'qom-type': 'iommufd', 'id': 'iommufd0',"
              " 'fd': 'iommufd0-fd'}}");
    return vm_qmp_error(vm, "{'execute': 'device_add', 'arguments':"
                        " {'driver': 'vfio-pci', 'id': 'edu0',"
                        " 'iommufd': 'iommufd0', 'fd': 'edu0-fd',"
                        " 'addr': %s}}", addr);
}

/* (b) device_add, QEMU opening the nodes or given their fds. */
static void sweep_hotplug(const Filter *flt, bool passed)
{
    const char *bdf = edu_need(0);
    g_autofree char *points = NULL;
    g_autofree char *prefix = NULL;
    Sweep s = { .name = passed ? "device_add with passed fds"
                               : "device_add" };
    ProcStats base;
    TestVM vm;
    Fault f;

    if (!bdf || !fault_setup(&f, flt, true)) {
        return;
    }
    prefix = g_strdup_printf("vfio %s: ", passed ? "edu0" : bdf);
    start_sweep_vm(&vm, flt, bdf, "", &base);

    fault_arm(&f, 0);
    g_assert_null(plug_edu(&vm, bdf, passed));
    fault_disarm(&f);
    s.points = fault_matches(&f, NULL);
    points = fault_points(&f);
    g_test_message("%s: %u calls: %s", s.name, s.points, points);
    g_assert_cmpuint(s.points, >, 0);
    g_assert(vm_dma_round_trip(&vm, SLOT0, 0x12));
    del_edu(&vm);
    assert_baseline(&vm, &base, s.name);

    for (unsigned n = 1; n <= s.points; n++) {
        g_autofree char *err = NULL;
        g_autofree char *failed = NULL;
        g_autofree char *what = NULL;

        fault_arm(&f, n);
        err = plug_edu(&vm, bdf, passed);
        fault_disarm(&f);
        fault_matches(&f, &failed);
        what = g_strdup_printf("%s, failing call %u (%s)", s.name, n,
                               failed ? failed : "none");
        g_test_message("%s: %s", what, err ? err : "succeeded");
        g_assert(failed);
        g_assert(vm_alive(&vm));
        if (err) {
            g_assert(contains(err, prefix));
            /* The failed device is gone: the object is unused. */
            vm_qmp_ok(&vm, "{'execute': 'object-del', 'arguments':"
                      " {'id': 'iommufd0'}}");
            s.refused++;
        } else {
            g_assert(vm_dma_round_trip(&vm, SLOT0, n));
            del_edu(&vm);
            s.tolerated++;
        }
        /* Passed fds included: QEMU closed both. */
        assert_recovered(&vm, bdf, &base, what);
        s.swept++;
    }
    vm_stop(&vm);
    fault_teardown(&f);
    sweep_report(&s, flt);
}

/*
 * (b') device_add of a second device into the IOAS of a first one: the
 * failure must not disturb the first device or the shared IOAS.
 */
static void sweep_hotplug_shared(const Filter *flt)
{
    const char *bdf = edu_need(0);
    const char *other = bdf ? edu_need(1) : NULL;
    g_autofree char *points = NULL;
    g_autofree char *s_base = NULL;
    Sweep s = { .name = "device_add into a shared IOAS" };
    ProcStats base;
    TestVM vm;
    Fault f;

    if (!other || !fault_setup(&f, flt, true)) {
        return;
    }
    start_sweep_vm(&vm, flt, bdf, "", &base);
    vm_qmp_ok(&vm, "{'execute': 'object-add', 'arguments':"
              " {'qom-type': 'iommufd', 'id': 'iommufd0'}}");
    g_assert_null(vm_add_edu(&vm, "edu1", other, SLOT1, "iommufd0"));
    g_assert(vm_dma_round_trip(&vm, SLOT1, 0x44));
    /* The baseline now: with the first device. */
    proc_stats(vm.pid, &base);
    s_base = proc_stats_str(&base);
    g_test_message("baseline with the first device: %s", s_base);

    fault_arm(&f, 0);
    g_assert_null(vm_add_edu(&vm, "edu0", bdf, SLOT0, "iommufd0"));
    fault_disarm(&f);
    s.points = fault_matches(&f, NULL);
    points = fault_points(&f);
    g_test_message("%s: %u calls: %s", s.name, s.points, points);
    g_assert_cmpuint(s.points, >, 0);
    vm_del_device(&vm, "edu0", SLOT0);

    for (unsigned n = 1; n <= s.points; n++) {
        g_autofree char *err = NULL;
        g_autofree char *failed = NULL;

        fault_arm(&f, n);
        err = vm_add_edu(&vm, "edu0", bdf, SLOT0, "iommufd0");
        fault_disarm(&f);
        fault_matches(&f, &failed);
        g_test_message("%s, failing call %u (%s): %s", s.name, n,
                       failed ? failed : "none", err ? err : "succeeded");
        g_assert(failed);
        g_assert(vm_alive(&vm));
        if (err) {
            s.refused++;
        } else {
            g_assert(vm_dma_round_trip(&vm, SLOT0, n));
            vm_del_device(&vm, "edu0", SLOT0);
            s.tolerated++;
        }
        assert_baseline(&vm, &base, s.name);
        /* The first device did not notice; the second one can join. */
        g_assert(vm_dma_round_trip(&vm, SLOT1, n));
        g_assert_null(vm_add_edu(&vm, "edu0", bdf, SLOT0, "iommufd0"));
        g_assert(vm_dma_round_trip(&vm, SLOT0, n + 1));
        vm_del_device(&vm, "edu0", SLOT0);
        assert_baseline(&vm, &base, s.name);
        s.swept++;
    }
    vm_del_device(&vm, "edu1", SLOT1);
    vm_qmp_ok(&vm, "{'execute': 'object-del', 'arguments':"
              " {'id': 'iommufd0'}}");
    vm_stop(&vm);
    fault_teardown(&f);
    sweep_report(&s, flt);
}

/*
 * KVM_DEV_VFIO_FILE_DEL failed: the kvm-vfio device keeps its reference to
 * the cdev, so the kernel keeps the device bound to the old iommufd until
 * the VM exits and the same device cannot be bound again before.  (The
 * kernel fails FILE_DEL only for an fd that is not registered, in which
 * case it holds nothing: this state needs an injected failure.)  Check
 * that a re-add says so plainly and that a new VM gets the device back.
 */
static void assert_held_by_kvm(TestVM *vm, const Filter *flt,
                               const char *bdf, ProcStats *base)
{
    g_autofree char *err = NULL;

    vm_qmp_ok(vm, "{'execute': 'object-add', 'arguments':"
              " {'qom-type': 'iommufd', 'id': 'iommufd0'}}");
    err = vm_add_edu(vm, "edu0", bdf, SLOT0, "iommufd0");
    g_test_message("device_add while KVM holds the device: %s",
                   err ? err : "succeeded");
    g_assert(err && contains(err, "cannot bind the device to iommufd"));
    vm_qmp_ok(vm, "{'execute': 'object-del', 'arguments':"
              " {'id': 'iommufd0'}}");
    vm_stop(vm);
    start_sweep_vm(vm, flt, bdf, "", base);
}

/* (c) device_del. */
static void sweep_unplug(const Filter *flt)
{
    const char *bdf = edu_need(0);
    g_autofree char *points = NULL;
    Sweep s = { .name = "device_del" };
    ProcStats base;
    TestVM vm;
    Fault f;

    if (!bdf || !fault_setup(&f, flt, true)) {
        return;
    }
    start_sweep_vm(&vm, flt, bdf, "", &base);

    add_edu(&vm, bdf, 0x22);
    fault_arm(&f, 0);
    vm_del_device(&vm, "edu0", SLOT0);
    /* The device may be finalized a little later: wait for its fds. */
    assert_baseline(&vm, &base, "device_del");
    fault_disarm(&f);
    s.points = fault_matches(&f, NULL);
    points = fault_points(&f);
    g_test_message("device_del: %u calls: %s", s.points, points);
    g_assert_cmpuint(s.points, >, 0);
    vm_qmp_ok(&vm, "{'execute': 'object-del', 'arguments':"
              " {'id': 'iommufd0'}}");

    for (unsigned n = 1; n <= s.points; n++) {
        g_autofree char *failed = NULL;
        g_autofree char *what = NULL;

        add_edu(&vm, bdf, n);
        fault_arm(&f, n);
        vm_del_device(&vm, "edu0", SLOT0);
        assert_baseline(&vm, &base, "device_del");
        fault_disarm(&f);
        fault_matches(&f, &failed);
        what = g_strdup_printf("device_del, failing call %u (%s)", n,
                               failed ? failed : "none");
        g_test_message("%s: done", what);
        g_assert(failed);
        g_assert(vm_alive(&vm));
        vm_qmp_ok(&vm, "{'execute': 'object-del', 'arguments':"
                  " {'id': 'iommufd0'}}");
        if (!strcmp(failed, "KVM_SET_DEVICE_ATTR")) {
            assert_held_by_kvm(&vm, flt, bdf, &base);
        } else {
            assert_recovered(&vm, bdf, &base, what);
        }
        s.tolerated++;
        s.swept++;
    }
    vm_stop(&vm);
    fault_teardown(&f);
    sweep_report(&s, flt);
}

#define MEMHP_BASE      0xa00   /* ACPI memory hotplug registers of pc */
#define MEMHP_SELECT    0x0
#define MEMHP_FLAGS     0x14
#define MEMHP_EJECT     0x8

static void dimm_add(TestVM *vm, unsigned i)
{
    g_autofree char *mem = g_strdup_printf("mem%u", i);
    g_autofree char *dimm = g_strdup_printf("dimm%u", i);

    vm_qmp_ok(vm, "{'execute': 'object-add', 'arguments':"
              " {'qom-type': 'memory-backend-ram', 'id': %s,"
              " 'size': 67108864}}", mem);
    vm_qmp_ok(vm, "{'execute': 'device_add', 'arguments':"
              " {'driver': 'pc-dimm', 'id': %s, 'memdev': %s, 'slot': 0}}",
              dimm, mem);
}

/* device_del of the DIMM in slot 0 and the guest's ACPI eject. */
static void dimm_del(TestVM *vm, unsigned i)
{
    g_autofree char *mem = g_strdup_printf("mem%u", i);
    g_autofree char *dimm = g_strdup_printf("dimm%u", i);

    qtest_qmp_device_del_send(vm->qts, dimm);
    qtest_outl(vm->qts, MEMHP_BASE + MEMHP_SELECT, 0);
    qtest_outl(vm->qts, MEMHP_BASE + MEMHP_FLAGS, MEMHP_EJECT);
    qtest_qmp_eventwait(vm->qts, "DEVICE_DELETED");
    vm_qmp_ok(vm, "{'execute': 'object-del', 'arguments': {'id': %s}}",
              mem);
}

/*
 * (d) Guest memory changes under an attached device: a DIMM plugged
 * (QEMU maps it into the IOAS) and unplugged (unmaps it).
 */
static void sweep_memory(const Filter *flt)
{
    const char *bdf = edu_need(0);
    Sweep add = { .name = "pc-dimm plug" };
    Sweep del = { .name = "pc-dimm unplug" };
    ProcStats base;
    unsigned dimms = 0;
    TestVM vm;
    Fault f;

    if (!bdf || !fault_setup(&f, flt, true)) {
        return;
    }
    start_sweep_vm(&vm, flt, bdf, "-m 256M,slots=2,maxmem=1G", &base);

    add_edu(&vm, bdf, 0x33);
    fault_arm(&f, 0);
    dimm_add(&vm, dimms);
    fault_disarm(&f);
    add.points = fault_matches(&f, NULL);
    fault_arm(&f, 0);
    dimm_del(&vm, dimms++);
    fault_disarm(&f);
    del.points = fault_matches(&f, NULL);
    g_test_message("pc-dimm plug: %u calls, unplug: %u calls", add.points,
                   del.points);
    g_assert_cmpuint(add.points, >, 0);
    g_assert_cmpuint(del.points, >, 0);

    for (unsigned n = 1; n <= add.points; n++) {
        g_autofree char *failed = NULL;

        fault_arm(&f, n);
        dimm_add(&vm, dimms);
        fault_disarm(&f);
        fault_matches(&f, &failed);
        g_test_message("pc-dimm plug, failing call %u (%s)", n,
                       failed ? failed : "none");
        g_assert(failed);
        /* The VM runs on, and DMA to the memory it had still works. */
        g_assert(vm_alive(&vm));
        g_assert(vm_dma_round_trip(&vm, SLOT0, n));
        dimm_del(&vm, dimms++);
        add.tolerated++;
        add.swept++;
    }
    for (unsigned n = 1; n <= del.points; n++) {
        g_autofree char *failed = NULL;

        dimm_add(&vm, dimms);
        fault_arm(&f, n);
        dimm_del(&vm, dimms++);
        fault_disarm(&f);
        fault_matches(&f, &failed);
        g_test_message("pc-dimm unplug, failing call %u (%s)", n,
                       failed ? failed : "none");
        g_assert(failed);
        g_assert(vm_alive(&vm));
        g_assert(vm_dma_round_trip(&vm, SLOT0, n));
        del.tolerated++;
        del.swept++;
    }
    /* Once the device is gone, so is every pinned page, stale or not. */
    del_edu(&vm);
    assert_recovered(&vm, bdf, &base, "after the pc-dimm sweeps");
    vm_stop(&vm);
    fault_teardown(&f);
    sweep_report(&add, flt);
    sweep_report(&del, flt);
}

static void test_startup(void)
{
    sweep_startup(&filter_iommufd);
}

static void test_hotplug(void)
{
    sweep_hotplug(&filter_iommufd, false);
}

static void test_hotplug_passed(void)
{
    sweep_hotplug(&filter_iommufd, true);
}

static void test_hotplug_shared(void)
{
    sweep_hotplug_shared(&filter_iommufd);
}

static void test_unplug(void)
{
    sweep_unplug(&filter_iommufd);
}

static void test_memory(void)
{
    sweep_memory(&filter_iommufd);
}

static bool need_kvm(void)
{
    if (access("/dev/kvm", R_OK | W_OK)) {
        g_test_skip("needs /dev/kvm");
        return false;
    }
    return true;
}

static void test_kvm_startup(void)
{
    if (need_kvm()) {
        sweep_startup(&filter_kvm);
    }
}

static void test_kvm_hotplug(void)
{
    if (need_kvm()) {
        sweep_hotplug(&filter_kvm, false);
    }
}

static void test_kvm_unplug(void)
{
    if (need_kvm()) {
        sweep_unplug(&filter_kvm);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_func("/vfio-iommufd-fault/startup", test_startup);
    qtest_add_func("/vfio-iommufd-fault/device_add", test_hotplug);
    qtest_add_func("/vfio-iommufd-fault/device_add-passed-fds",
                   test_hotplug_passed);
    qtest_add_func("/vfio-iommufd-fault/device_add-shared-ioas",
                   test_hotplug_shared);
    qtest_add_func("/vfio-iommufd-fault/device_del", test_unplug);
    qtest_add_func("/vfio-iommufd-fault/memory", test_memory);
    qtest_add_func("/vfio-iommufd-fault/kvm/startup", test_kvm_startup);
    qtest_add_func("/vfio-iommufd-fault/kvm/device_add", test_kvm_hotplug);
    qtest_add_func("/vfio-iommufd-fault/kvm/device_del", test_kvm_unplug);
    return g_test_run();
}
