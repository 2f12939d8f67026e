/*
 * qtest: bad input to the iommufd object and vfio-pci, on the command
 * line and over QMP
 *
 * A table of wrong objects, fds, paths, duplicates and junk values, each
 * with the message it must produce.  QEMU must refuse every one without
 * crashing: a command-line case exits with status 1 and the message, a
 * QMP case returns it and leaves the VM running, with the iommufd object
 * unused (it can be deleted).  Cases that need a VFIO-capable host (edu
 * devices bound to vfio-pci, /dev/iommu, as in tests/testbed) are skipped
 * elsewhere, saying why.
 *
 * In the table, $BDF0 and $BDF1 stand for the edu devices, $TMP for an
 * empty directory, $FD for the number (command line) or getfd name "fd0"
 * (QMP) of the case's open file, and $GROUP0 and $CDEV0 (as that file)
 * for the VFIO group and device cdev of edu 0.
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/wait.h>
#include "libqtest.h"
#include "qapi/qmp/qdict.h"
#include "qapi/qmp/qjson.h"
#include "qapi/error.h"
#include "vfio-iommufd-util.h"

/* What a case needs from the host. */
enum {
    NEED_EDU1 = 1,      /* one edu device bound to vfio-pci */
    NEED_EDU2 = 2,      /* two of them */
    NEED_IOMMU = 4,     /* /dev/iommu */
    NEED_PCI0 = 8,      /* 0000:00:00.0, not bound to vfio-pci */
};

typedef struct BadInput {
    const char *name;
    unsigned needs;
    const char *file;   /* opened as $FD, or NULL */
    const char *input;  /* command-line arguments, or a QMP command */
    const char *error;  /* the message, or a part of it */
} BadInput;

#define IOMMUFD0 "-object iommufd,id=iommufd0 "
#define NO_HOST "host=00ff:1f:1f.7"

static const BadInput cli_cases[] = {
    { "iommufd-unknown", 0, NULL,
      "-device vfio-pci," NO_HOST ",iommufd=nosuch",
      "Device 'nosuch' not found" },
    { "iommufd-wrong-type", 0, NULL,
      "-object memory-backend-ram,id=mem0,size=1M "
      "-device vfio-pci," NO_HOST ",iommufd=mem0",
      "Invalid parameter type for 'iommufd', expected: iommufd" },
    { "object-fd-junk", 0, NULL, "-object iommufd,id=i0,fd=junk",
      "iommufd fd 'junk': Invalid file descriptor number 'junk'" },
    { "object-fd-empty", 0, NULL, "-object iommufd,id=i0,fd=",
      "iommufd fd '': Invalid file descriptor number ''" },
    { "object-fd-negative", 0, NULL, "-object iommufd,id=i0,fd=-1",
      "iommufd fd '-1': Invalid file descriptor number '-1'" },
    { "object-fd-closed", 0, NULL, "-object iommufd,id=i0,fd=999",
      "iommufd fd '999' is not usable: Bad file descriptor" },
    { "object-fd-null", NEED_IOMMU, "/dev/null",
      "-object iommufd,id=i0,fd=$FD",
      "iommufd fd '$FD' is not /dev/iommu (char device 1:3)" },
    { "object-fd-regular-file", 0, "$TMP/file",
      "-object iommufd,id=i0,fd=$FD",
      "iommufd fd '$FD' is not a character device" },
    { "object-fd-vfio-group", NEED_EDU1 | NEED_IOMMU, "$GROUP0",
      "-object iommufd,id=i0,fd=$FD", "iommufd fd '$FD' is not /dev/iommu" },
    { "object-fd-vfio-cdev", NEED_EDU1 | NEED_IOMMU, "$CDEV0",
      "-object iommufd,id=i0,fd=$FD", "iommufd fd '$FD' is not /dev/iommu" },
    { "object-fdset-missing", 0, NULL,
      "-object iommufd,id=i0,fd=/dev/fdset/7",
      "iommufd fd '/dev/fdset/7': Could not dup FD for /dev/fdset/7" },
    { "object-no-id", 0, NULL, "-object iommufd",
      "Parameter 'id' is missing" },
    { "object-unknown-property", 0, NULL, "-object iommufd,id=i0,foo=bar",
      "Invalid parameter 'foo'" },
    { "device-fd-junk", 0, NULL,
      IOMMUFD0 "-device vfio-pci,iommufd=iommufd0,fd=junk",
      "device fd 'junk': Invalid file descriptor number 'junk'" },
    { "device-fd-empty", 0, NULL,
      IOMMUFD0 "-device vfio-pci,iommufd=iommufd0,fd=",
      "device fd '': Invalid file descriptor number ''" },
    { "device-fd-closed", 0, NULL,
      IOMMUFD0 "-device vfio-pci,iommufd=iommufd0,fd=999",
      "vfio VFIO_FD999: the device fd is not usable: Bad file descriptor" },
    { "device-fd-null", 0, "/dev/null",
      IOMMUFD0 "-device vfio-pci,iommufd=iommufd0,fd=$FD",
      "the device fd is not a VFIO device cdev" },
    { "device-fd-regular-file", 0, "$TMP/file",
      IOMMUFD0 "-device vfio-pci,iommufd=iommufd0,fd=$FD",
      "the device fd is not a VFIO device cdev (not a character device)" },
    { "device-fd-dev-iommu", NEED_IOMMU, "/dev/iommu",
      IOMMUFD0 "-device vfio-pci,iommufd=iommufd0,fd=$FD",
      "the device fd is not a VFIO device cdev (char device 10:" },
    { "device-fd-vfio-group", NEED_EDU1, "$GROUP0",
      IOMMUFD0 "-device vfio-pci,iommufd=iommufd0,fd=$FD",
      "the device fd is not a VFIO device cdev (char device" },
    { "device-fd-without-iommufd", 0, "/dev/null",
      "-device vfio-pci,fd=$FD", "property 'fd' requires 'iommufd'" },
    { "host-and-sysfsdev", 0, NULL,
      IOMMUFD0 "-device vfio-pci," NO_HOST ",sysfsdev=$TMP,"
      "iommufd=iommufd0",
      "properties 'host' and 'sysfsdev' both given" },
    { "no-host-no-sysfsdev-no-fd", 0, NULL,
      IOMMUFD0 "-device vfio-pci,iommufd=iommufd0",
      "No provided host device" },
    { "sysfsdev-without-vfio-dev", 0, NULL,
      IOMMUFD0 "-device vfio-pci,sysfsdev=$TMP,iommufd=iommufd0",
      "no VFIO device cdev under $TMP/vfio-dev" },
    { "sysfsdev-missing", 0, NULL,
      IOMMUFD0 "-device vfio-pci,sysfsdev=$TMP/missing,iommufd=iommufd0",
      "vfio $TMP/missing: no such host device: No such file or directory" },
    { "host-junk", 0, NULL,
      IOMMUFD0 "-device vfio-pci,host=zz,iommufd=iommufd0",
      "Property 'vfio-pci.host' doesn't take value 'zz'" },
    { "host-missing", 0, NULL,
      IOMMUFD0 "-device vfio-pci," NO_HOST ",iommufd=iommufd0",
      "vfio /sys/bus/pci/devices/00ff:1f:1f.7: no such host device" },
    { "host-not-bound-to-vfio-pci", NEED_PCI0, NULL,
      IOMMUFD0 "-device vfio-pci,host=0000:00:00.0,iommufd=iommufd0",
      "no VFIO device cdev under /sys/bus/pci/devices/0000:00:00.0/"
      "vfio-dev" },
    { "same-device-twice", NEED_EDU1, NULL,
      IOMMUFD0 "-device vfio-pci,host=$BDF0,iommufd=iommufd0,id=a "
      "-device vfio-pci,host=$BDF0,iommufd=iommufd0,id=b",
      "vfio $BDF0: the host device is already attached as device 'a'" },
    { "same-device-twice-by-fd", NEED_EDU1, "$CDEV0",
      IOMMUFD0 "-device vfio-pci,host=$BDF0,iommufd=iommufd0,id=a "
      "-device vfio-pci,fd=$FD,iommufd=iommufd0,id=b",
      "vfio b: the host device is already attached as device 'a'" },
    { "same-device-two-objects", NEED_EDU1, NULL,
      IOMMUFD0 "-object iommufd,id=iommufd1 "
      "-device vfio-pci,host=$BDF0,iommufd=iommufd0,id=a "
      "-device vfio-pci,host=$BDF0,iommufd=iommufd1,id=b",
      "the host device is already attached as device 'a'" },
    { "fd-of-another-device", NEED_EDU2, "$CDEV0",
      IOMMUFD0 "-device vfio-pci,host=$BDF1,fd=$FD,iommufd=iommufd0",
      "the device fd is not the VFIO device cdev of "
      "/sys/bus/pci/devices/$BDF1" },
    { "legacy-then-iommufd", NEED_EDU1, NULL,
      IOMMUFD0 "-device vfio-pci,host=$BDF0,id=a "
      "-device vfio-pci,host=$BDF0,iommufd=iommufd0,id=b",
      "cannot bind the device to iommufd: Device or resource busy" },
    { "iommufd-then-legacy", NEED_EDU1, NULL,
      IOMMUFD0 "-device vfio-pci,host=$BDF0,iommufd=iommufd0,id=a "
      "-device vfio-pci,host=$BDF0,id=b",
      "failed to open $GROUP0: Device or resource busy" },
    { "balloon-allowed", 0, NULL,
      IOMMUFD0 "-device vfio-pci,sysfsdev=$TMP,iommufd=iommufd0,"
      "x-balloon-allowed=on",
      "x-balloon-allowed only potentially compatible with mdev devices" },
    { "junk-bool", 0, NULL,
      IOMMUFD0 "-device vfio-pci," NO_HOST ",iommufd=iommufd0,x-no-mmap=junk",
      "Parameter 'x-no-mmap' expects 'on' or 'off'" },
    { "junk-number", 0, NULL,
      IOMMUFD0 "-device vfio-pci," NO_HOST ",iommufd=iommufd0,rombar=junk",
      "Parameter 'rombar' expects integer" },
};

static const BadInput qmp_cases[] = {
    { "object-fd-unknown-name", 0, NULL,
      "{'execute': 'object-add', 'arguments': {'qom-type': 'iommufd',"
      " 'id': 'bad', 'fd': 'nosuch'}}",
      "iommufd fd 'nosuch': File descriptor named 'nosuch' has not been "
      "found" },
    { "object-fd-regular-file", 0, "$TMP/file",
      "{'execute': 'object-add', 'arguments': {'qom-type': 'iommufd',"
      " 'id': 'bad', 'fd': '$FD'}}",
      "iommufd fd 'fd0' is not a character device" },
    { "object-fd-null", NEED_IOMMU, "/dev/null",
      "{'execute': 'object-add', 'arguments': {'qom-type': 'iommufd',"
      " 'id': 'bad', 'fd': '$FD'}}",
      "iommufd fd 'fd0' is not /dev/iommu (char device 1:3" },
    { "object-fd-vfio-cdev", NEED_EDU1 | NEED_IOMMU, "$CDEV0",
      "{'execute': 'object-add', 'arguments': {'qom-type': 'iommufd',"
      " 'id': 'bad', 'fd': '$FD'}}",
      "iommufd fd 'fd0' is not /dev/iommu" },
    { "object-duplicate-id", 0, NULL,
      "{'execute': 'object-add', 'arguments': {'qom-type': 'iommufd',"
      " 'id': 'iommufd0'}}",
      "attempt to add duplicate property 'iommufd0'" },
    { "device-fd-unknown-name", 0, NULL,
      "{'execute': 'device_add', 'arguments': {'driver': 'vfio-pci',"
      " 'iommufd': 'iommufd0', 'fd': 'nosuch'}}",
      "device fd 'nosuch': File descriptor named 'nosuch' has not been "
      "found" },
    { "device-fd-dev-iommu", NEED_IOMMU, "/dev/iommu",
      "{'execute': 'device_add', 'arguments': {'driver': 'vfio-pci',"
      " 'id': 'hostdev0', 'iommufd': 'iommufd0', 'fd': '$FD'}}",
      "vfio hostdev0: the device fd is not a VFIO device cdev (char device "
      "10:" },
    { "device-fd-number", 0, NULL,
      "{'execute': 'device_add', 'arguments': {'driver': 'vfio-pci',"
      " 'iommufd': 'iommufd0', 'fd': 42}}",
      "device fd '42': fd numbers are accepted on the command line only" },
    { "device-host-and-sysfsdev", 0, NULL,
      "{'execute': 'device_add', 'arguments': {'driver': 'vfio-pci',"
      " 'iommufd': 'iommufd0', 'host': '00ff:1f:1f.7', 'sysfsdev': '$TMP'}}",
      "properties 'host' and 'sysfsdev' both given" },
    { "device-iommufd-wrong-type", 0, NULL,
      "{'execute': 'device_add', 'arguments': {'driver': 'vfio-pci',"
      " 'iommufd': 'mem0', 'host': '00ff:1f:1f.7'}}",
      "Invalid parameter type for 'iommufd', expected: iommufd" },
};

static char *tmpdir;

/* Does the host have what @needs asks for?  Skips the case if not. */
static bool have(unsigned needs)
{
    g_autofree char *vfio_dev = NULL;

    if ((needs & NEED_EDU2) && !edu_need(1)) {
        return false;
    }
    if ((needs & NEED_EDU1) && !edu_need(0)) {
        return false;
    }
    if ((needs & NEED_IOMMU) && access("/dev/iommu", F_OK)) {
        g_test_skip("needs /dev/iommu (a kernel with CONFIG_IOMMUFD)");
        return false;
    }
    vfio_dev = g_strdup("/sys/bus/pci/devices/0000:00:00.0/vfio-dev");
    if ((needs & NEED_PCI0) &&
        (access("/sys/bus/pci/devices/0000:00:00.0", F_OK) ||
         !access(vfio_dev, F_OK))) {
        g_test_skip("needs a PCI device 0000:00:00.0 not bound to "
                    "vfio-pci");
        return false;
    }
    return true;
}

static char *group_of(const char *bdf)
{
    g_autofree char *link = g_strdup_printf("/sys/bus/pci/devices/%s/"
                                            "iommu_group", bdf);
    g_autofree char *target = g_file_read_link(link, NULL);
    g_autofree char *base = NULL;

    g_assert(target);
    base = g_path_get_basename(target);
    return g_strdup_printf("/dev/vfio/%s", base);
}

/* Replace the $ names of the table in @s; $FD becomes @fd. */
static char *expand(const char *s, const char *fd)
{
    g_autoptr(GString) out = g_string_new(s);
    const char *bdf0 = edu_count() > 0 ? edu_need(0) : "";
    const char *bdf1 = edu_count() > 1 ? edu_need(1) : "";
    g_autofree char *group0 = *bdf0 ? group_of(bdf0) : g_strdup("");
    g_autofree char *cdev0 = *bdf0 ? edu_cdev(bdf0) : g_strdup("");
    const char *names[][2] = {
        { "$BDF0", bdf0 }, { "$BDF1", bdf1 }, { "$GROUP0", group0 },
        { "$CDEV0", cdev0 }, { "$TMP", tmpdir }, { "$FD", fd ? fd : "" },
    };

    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        const char *p;

        while ((p = strstr(out->str, names[i][0]))) {
            gssize pos = p - out->str;

            g_string_erase(out, pos, strlen(names[i][0]));
            g_string_insert(out, pos, names[i][1]);
        }
    }
    return g_strdup(out->str);
}

static int open_case_file(const BadInput *c)
{
    g_autofree char *path = expand(c->file, NULL);
    int fd = open(path, O_RDWR);

    if (fd < 0) {
        g_test_message("cannot open %s: %s", path, strerror(errno));
        g_assert_not_reached();
    }
    return fd;
}

static void test_cli_case(const void *data)
{
    const BadInput *c = data;
    g_autofree char *fdnum = NULL;
    g_autofree char *input = NULL;
    g_autofree char *args = NULL;
    g_autofree char *want = NULL;
    g_autofree char *err = NULL;
    g_autofree char *how = NULL;
    int fd = -1, ws;

    if (!have(c->needs)) {
        return;
    }
    if (c->file) {
        fd = open_case_file(c);
        fdnum = g_strdup_printf("%d", fd);
    }
    input = expand(c->input, fdnum);
    args = g_strdup_printf(VM_MACHINE "%s", input);
    want = expand(c->error, fdnum);
    ws = qemu_run(args, &err);
    if (fd >= 0) {
        close(fd);
    }
    how = wait_status_str(ws);
    g_test_message("%s: %s; %s", c->name, how, g_strstrip(err));
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 1) {
        g_test_message("expected exit status 1, got %s", how);
        g_test_fail();
    } else if (!contains(err, want)) {
        g_test_fail();
    }
}

/* A VM for the QMP cases: an unused iommufd object and a memory backend. */
static void qmp_vm_start(TestVM *vm)
{
    vm_start(vm, IOMMUFD0 "-object memory-backend-ram,id=mem0,size=1M");
}

/* After a refused command: the VM runs and nothing uses the object. */
static void qmp_vm_check_stop(TestVM *vm)
{
    g_autofree char *err = NULL;

    g_assert(vm_alive(vm));
    err = vm_qmp_error(vm, "{'execute': 'object-del', 'arguments':"
                       " {'id': 'iommufd0'}}");
    if (err) {
        g_test_message("object-del of the unused object: %s", err);
        g_test_fail();
    }
    vm_stop(vm);
}

static void send_fd(TestVM *vm, int fd, const char *name)
{
    QDict *resp = qtest_qmp_fds(vm->qts, &fd, 1, "{'execute': 'getfd',"
                                " 'arguments': {'fdname': %s}}", name);

    g_assert(qdict_haskey(resp, "return"));
    qobject_unref(resp);
}

/* Send @cmd (JSON); the case fails unless the error contains @want. */
static void assert_qmp_error(TestVM *vm, const char *cmd, const char *want)
{
    QObject *obj = qobject_from_json(cmd, &error_abort);
    QDict *resp;
    const char *desc;

    resp = qtest_qmp(vm->qts, "%p", obj);
    if (!qdict_haskey(resp, "error")) {
        g_test_message("%s: expected error \"%s\", got success", cmd, want);
        g_test_fail();
    } else {
        desc = qdict_get_str(qdict_get_qdict(resp, "error"), "desc");
        g_test_message("%s -> %s", cmd, desc);
        if (!contains(desc, want)) {
            g_test_fail();
        }
    }
    qobject_unref(resp);
}

static void test_qmp_case(const void *data)
{
    const BadInput *c = data;
    g_autofree char *cmd = NULL;
    g_autofree char *want = NULL;
    TestVM vm;

    if (!have(c->needs)) {
        return;
    }
    qmp_vm_start(&vm);
    if (c->file) {
        int fd = open_case_file(c);

        send_fd(&vm, fd, "fd0");
        close(fd);
    }
    cmd = expand(c->input, "fd0");
    want = expand(c->error, "fd0");
    assert_qmp_error(&vm, cmd, want);
    qmp_vm_check_stop(&vm);
}

/*
 * Over QMP, a number names one of QEMU's own fds; taking it would close
 * it.  Offer the one of the QMP connection itself.
 */
static void test_fd_number_of_qemu(void)
{
    g_autofree char *fddir = NULL;
    g_autofree char *cmd = NULL;
    const char *name;
    int own = -1;
    GDir *dir;
    TestVM vm;

    qmp_vm_start(&vm);
    fddir = g_strdup_printf("/proc/%d/fd", vm.pid);
    dir = g_dir_open(fddir, 0, NULL);
    g_assert(dir);
    while ((name = g_dir_read_name(dir))) {
        g_autofree char *link = g_build_filename(fddir, name, NULL);
        g_autofree char *target = g_file_read_link(link, NULL);

        if (target && g_str_has_prefix(target, "socket:")) {
            own = MAX(own, atoi(name));
        }
    }
    g_dir_close(dir);
    g_assert_cmpint(own, >=, 0);
    cmd = g_strdup_printf("{'execute': 'object-add', 'arguments':"
                          " {'qom-type': 'iommufd', 'id': 'bad',"
                          " 'fd': '%d'}}", own);
    assert_qmp_error(&vm, cmd, "fd numbers are accepted on the command "
                     "line only");
    qmp_vm_check_stop(&vm);
}

/* A VM with edu 0 assigned through iommufd0, as device 'edu0'. */
static const char *edu_vm_start(TestVM *vm)
{
    const char *bdf = edu_need(0);
    g_autofree char *args = NULL;

    if (!bdf) {
        return NULL;
    }
    args = g_strdup_printf(IOMMUFD0 "-device vfio-pci,host=%s,"
                           "iommufd=iommufd0,id=edu0,addr=%d", bdf, SLOT0);
    vm_start(vm, args);
    return bdf;
}

static void test_object_del_in_use(void)
{
    TestVM vm;

    if (!edu_vm_start(&vm)) {
        return;
    }
    assert_qmp_error(&vm, "{'execute': 'object-del', 'arguments':"
                     " {'id': 'iommufd0'}}",
                     "object 'iommufd0' is in use, can not be deleted");
    g_assert(vm_dma_round_trip(&vm, SLOT0, 0x10));
    vm_stop(&vm);
}

static void test_device_add_twice(void)
{
    g_autofree char *cmd = NULL;
    const char *bdf;
    TestVM vm;

    bdf = edu_vm_start(&vm);
    if (!bdf) {
        return;
    }
    cmd = g_strdup_printf("{'execute': 'device_add', 'arguments':"
                          " {'driver': 'vfio-pci', 'id': 'again',"
                          " 'host': '%s', 'iommufd': 'iommufd0',"
                          " 'addr': '%d'}}", bdf, SLOT1);
    assert_qmp_error(&vm, cmd,
                     "the host device is already attached as device 'edu0'");
    /* The first one is untouched. */
    g_assert(vm_dma_round_trip(&vm, SLOT0, 0x20));
    vm_stop(&vm);
}

static void test_fd_of_realized_device(void)
{
    TestVM vm;

    if (!edu_vm_start(&vm)) {
        return;
    }
    assert_qmp_error(&vm, "{'execute': 'qom-set', 'arguments':"
                     " {'path': '/machine/peripheral/edu0',"
                     " 'property': 'fd', 'value': '0'}}",
                     "cannot set 'fd' of a realized device");
    assert_qmp_error(&vm, "{'execute': 'qom-set', 'arguments':"
                     " {'path': '/objects/iommufd0',"
                     " 'property': 'fd', 'value': '0'}}",
                     "cannot change the fd of iommufd 'iommufd0' while in "
                     "use");
    g_assert(vm_dma_round_trip(&vm, SLOT0, 0x30));
    vm_stop(&vm);
}

/*
 * device_add is synchronous, so QMP cannot come in the middle of it; the
 * window a management tool can hit is an unplug that the guest has not
 * acknowledged yet.
 */
static void test_unplug_pending(void)
{
    g_autofree char *cmd = NULL;
    const char *bdf;
    TestVM vm;

    bdf = edu_vm_start(&vm);
    if (!bdf) {
        return;
    }
    qtest_qmp_device_del_send(vm.qts, "edu0");
    assert_qmp_error(&vm, "{'execute': 'device_del', 'arguments':"
                     " {'id': 'edu0'}}",
                     "Device edu0 is already in the process of unplug");
    assert_qmp_error(&vm, "{'execute': 'object-del', 'arguments':"
                     " {'id': 'iommufd0'}}",
                     "object 'iommufd0' is in use, can not be deleted");
    cmd = g_strdup_printf("{'execute': 'device_add', 'arguments':"
                          " {'driver': 'vfio-pci', 'id': 'edu0',"
                          " 'host': '%s', 'iommufd': 'iommufd0',"
                          " 'addr': '%d'}}", bdf, SLOT1);
    assert_qmp_error(&vm, cmd, "Duplicate device ID 'edu0'");
    /* Still assigned and working until the guest ejects it. */
    g_assert(vm_dma_round_trip(&vm, SLOT0, 0x40));
    qtest_outl(vm.qts, 0xae08, 1 << SLOT0);     /* ACPI PCI eject */
    qtest_qmp_eventwait(vm.qts, "DEVICE_DELETED");
    qmp_vm_check_stop(&vm);
}

int main(int argc, char **argv)
{
    g_autofree char *file = NULL;
    int ret;

    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("vfio-input-XXXXXX", NULL);
    g_assert(tmpdir);
    file = g_build_filename(tmpdir, "file", NULL);
    g_assert(g_file_set_contents(file, "not a device\n", -1, NULL));

    for (size_t i = 0; i < ARRAY_SIZE(cli_cases); i++) {
        g_autofree char *path = g_strdup_printf("/vfio-iommufd-input/cli/%s",
                                                cli_cases[i].name);

        qtest_add_data_func(path, &cli_cases[i], test_cli_case);
    }
    for (size_t i = 0; i < ARRAY_SIZE(qmp_cases); i++) {
        g_autofree char *path = g_strdup_printf("/vfio-iommufd-input/qmp/%s",
                                                qmp_cases[i].name);

        qtest_add_data_func(path, &qmp_cases[i], test_qmp_case);
    }
    qtest_add_func("/vfio-iommufd-input/qmp/object-fd-number-of-qemu",
                   test_fd_number_of_qemu);
    qtest_add_func("/vfio-iommufd-input/qmp/object-del-in-use",
                   test_object_del_in_use);
    qtest_add_func("/vfio-iommufd-input/qmp/device-add-twice",
                   test_device_add_twice);
    qtest_add_func("/vfio-iommufd-input/qmp/fd-of-realized-device",
                   test_fd_of_realized_device);
    qtest_add_func("/vfio-iommufd-input/qmp/unplug-pending",
                   test_unplug_pending);

    ret = g_test_run();
    unlink(file);
    rmdir(tmpdir);
    return ret;
}
