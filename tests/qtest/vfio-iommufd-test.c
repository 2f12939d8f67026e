/*
 * qtest for the iommufd backend object and the iommufd properties of
 * vfio-pci that need no VFIO-capable host: object lifecycle,
 * introspection, and the errors a user meets for bad properties.
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qapi/qmp/qdict.h"
#include "qapi/qmp/qlist.h"
#include "qapi/qmp/qjson.h"
#include "qapi/qmp/qstring.h"
#include "qapi/error.h"

#define MACHINE "-machine pc -accel qtest -display none -nodefaults "

/* The error description of a QMP response, asserting that it failed. */
static char *qmp_error_desc(QDict *resp)
{
    QDict *error;
    char *desc;

    g_assert(resp);
    if (!qdict_haskey(resp, "error")) {
        g_test_message("expected an error, got success");
        g_assert_not_reached();
    }
    error = qdict_get_qdict(resp, "error");
    desc = g_strdup(qdict_get_str(error, "desc"));
    qobject_unref(resp);
    return desc;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle)) {
        g_test_message("expected \"%s\" in \"%s\"", needle, haystack);
        g_assert_not_reached();
    }
}

/* Does the QOM list at @path hold a child named @name? */
static bool qom_has_child(QTestState *qts, const char *path, const char *name)
{
    QDict *resp = qtest_qmp(qts, "{'execute': 'qom-list',"
                            " 'arguments': {'path': %s}}", path);
    QListEntry *e;
    bool found = false;

    g_assert(qdict_haskey(resp, "return"));
    QLIST_FOREACH_ENTRY(qdict_get_qlist(resp, "return"), e) {
        QDict *prop = qobject_to(QDict, qlist_entry_obj(e));

        if (!strcmp(qdict_get_str(prop, "name"), name)) {
            found = true;
        }
    }
    qobject_unref(resp);
    return found;
}

static bool list_has_name(QDict *resp, const char *name)
{
    QListEntry *e;
    bool found = false;

    g_assert(qdict_haskey(resp, "return"));
    QLIST_FOREACH_ENTRY(qdict_get_qlist(resp, "return"), e) {
        QDict *entry = qobject_to(QDict, qlist_entry_obj(e));

        if (!strcmp(qdict_get_str(entry, "name"), name)) {
            found = true;
        }
    }
    qobject_unref(resp);
    return found;
}

/* Pass @fd to QEMU under @name with getfd. */
static void send_fd(QTestState *qts, int fd, const char *name)
{
    QDict *resp = qtest_qmp_fds(qts, &fd, 1, "{'execute': 'getfd',"
                                " 'arguments': {'fdname': %s}}", name);

    g_assert(qdict_haskey(resp, "return"));
    qobject_unref(resp);
}

static void test_introspection(void)
{
    QTestState *qts = qtest_init(MACHINE);

    g_assert(list_has_name(qtest_qmp(qts, "{'execute': 'qom-list-types',"
                                     " 'arguments': {'implements':"
                                     " 'user-creatable'}}"), "iommufd"));
    g_assert(list_has_name(qtest_qmp(qts, "{'execute': 'qom-list-properties',"
                                     " 'arguments': {'typename': 'iommufd'}}"),
                           "fd"));
    g_assert(list_has_name(qtest_qmp(qts,
                                     "{'execute': 'device-list-properties',"
                                     " 'arguments': {'typename': 'vfio-pci'}}"),
                           "iommufd"));
    g_assert(list_has_name(qtest_qmp(qts,
                                     "{'execute': 'device-list-properties',"
                                     " 'arguments': {'typename': 'vfio-pci'}}"),
                           "fd"));
    qtest_quit(qts);
}

/* Created on the command line and with object-add; deleted when unused. */
static void test_object_lifecycle(void)
{
    QTestState *qts = qtest_init(MACHINE "-object iommufd,id=iommufd0");

    g_assert(qom_has_child(qts, "/objects", "iommufd0"));
    qtest_qmp_assert_success(qts, "{'execute': 'object-add', 'arguments':"
                             " {'qom-type': 'iommufd', 'id': 'iommufd1'}}");
    g_assert(qom_has_child(qts, "/objects", "iommufd1"));
    qtest_qmp_assert_success(qts, "{'execute': 'object-del', 'arguments':"
                             " {'id': 'iommufd1'}}");
    g_assert(!qom_has_child(qts, "/objects", "iommufd1"));
    qtest_qmp_assert_success(qts, "{'execute': 'object-del', 'arguments':"
                             " {'id': 'iommufd0'}}");
    g_assert(!qom_has_child(qts, "/objects", "iommufd0"));
    qtest_quit(qts);
}

static char *object_add_fd_error(QTestState *qts, const char *fd)
{
    return qmp_error_desc(qtest_qmp(qts, "{'execute': 'object-add',"
                                    " 'arguments': {'qom-type': 'iommufd',"
                                    " 'id': 'bad', 'fd': %s}}", fd));
}

static void test_object_bad_fd(void)
{
    QTestState *qts = qtest_init(MACHINE);
    g_autofree char *unknown = NULL;
    g_autofree char *closed = NULL;
    g_autofree char *regular = NULL;
    int fd;

    unknown = object_add_fd_error(qts, "nosuchfd");
    assert_contains(unknown, "File descriptor named 'nosuchfd' has not been "
                    "found");

    /* Over QMP a number would name one of QEMU's own fds. */
    closed = object_add_fd_error(qts, "987");
    assert_contains(closed, "iommufd fd '987': fd numbers are accepted on "
                    "the command line only");

    fd = open("/proc/self/cmdline", O_RDONLY);
    g_assert(fd >= 0);
    send_fd(qts, fd, "regular");
    close(fd);
    regular = object_add_fd_error(qts, "regular");
    assert_contains(regular, "iommufd fd 'regular' is not a character device");

    /* Nothing of the failed objects is left. */
    g_assert(!qom_has_child(qts, "/objects", "bad"));
    qtest_quit(qts);
}

/* device_add of a vfio-pci with @props (JSON members), expecting failure. */
static char *device_add_error(QTestState *qts, const char *props)
{
    g_autofree char *json = g_strdup_printf("{'driver': 'vfio-pci', %s}",
                                            props);
    QObject *args = qobject_from_json(json, &error_abort);

    return qmp_error_desc(qtest_qmp(qts, "{'execute': 'device_add',"
                                    " 'arguments': %p}", args));
}

typedef struct BadDevice {
    const char *props;
    const char *error;
} BadDevice;

static void test_device_bad_properties(void)
{
    g_autofree char *dir = g_dir_make_tmp("vfio-iommufd-XXXXXX", NULL);
    g_autofree char *sysfsdev = g_strdup_printf("'iommufd': 'iommufd0', "
                                                "'sysfsdev': '%s'", dir);
    g_autofree char *no_cdev = g_strdup_printf("no VFIO device cdev under "
                                               "%s/vfio-dev", dir);
    const BadDevice cases[] = {
        { "'iommufd': 'nosuchobj', 'host': '0000:00:01.0'",
          "Device 'nosuchobj' not found" },
        { "'iommufd': 'mem0', 'host': '0000:00:01.0'",
          "Invalid parameter type for 'iommufd', expected: iommufd" },
        { "'fd': 'nullfd'", "property 'fd' requires 'iommufd'" },
        { "'iommufd': 'iommufd0'", "No provided host device" },
        { "'iommufd': 'iommufd0', 'host': '0000:00:1f.7'",
          "no such host device" },
        { "'iommufd': 'iommufd0', 'fd': 'nosuchfd'",
          "device fd 'nosuchfd': File descriptor named 'nosuchfd' has not "
          "been found" },
        { sysfsdev, no_cdev },
    };
    QTestState *qts;
    int fd;

    g_assert(dir);
    qts = qtest_init(MACHINE "-object iommufd,id=iommufd0 "
                     "-object memory-backend-ram,id=mem0,size=1M");

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *desc = NULL;

        if (!strcmp(cases[i].props, "'fd': 'nullfd'")) {
            fd = open("/dev/null", O_RDWR);
            g_assert(fd >= 0);
            send_fd(qts, fd, "nullfd");
            close(fd);
        }
        desc = device_add_error(qts, cases[i].props);
        g_test_message("%s -> %s", cases[i].props, desc);
        assert_contains(desc, cases[i].error);
    }

    /* A char device that is no VFIO cdev is refused before any kernel call. */
    fd = open("/dev/null", O_RDWR);
    g_assert(fd >= 0);
    send_fd(qts, fd, "nullfd2");
    close(fd);
    {
        g_autofree char *desc = device_add_error(qts,
            "'iommufd': 'iommufd0', 'fd': 'nullfd2', 'id': 'hostdev0'");

        assert_contains(desc, "vfio hostdev0: the device fd is not a VFIO "
                        "device cdev");
    }

    /* Failed devices leave no user behind: the object can go. */
    qtest_qmp_assert_success(qts, "{'execute': 'object-del', 'arguments':"
                             " {'id': 'iommufd0'}}");
    qtest_quit(qts);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    if (!qtest_has_device("vfio-pci")) {
        g_test_skip("vfio-pci is not built in");
        return g_test_run();
    }

    qtest_add_func("/vfio-iommufd/object/introspection", test_introspection);
    qtest_add_func("/vfio-iommufd/object/lifecycle", test_object_lifecycle);
    qtest_add_func("/vfio-iommufd/object/bad-fd", test_object_bad_fd);
    qtest_add_func("/vfio-iommufd/device/bad-properties",
                   test_device_bad_properties);
    return g_test_run();
}
