#include "qemu/osdep.h"
#include "libqtest.h"
#include "vfio-iommufd-util.h"

static void test_kvm_cold(void)
{
    const char *bdf = edu_need(0);
    g_autofree char *args = g_strdup_printf("-accel kvm -object iommufd,id=iommufd0 -device vfio-pci,host=%s,iommufd=iommufd0,id=edu0,addr=%d", bdf, SLOT0);
    TestVM vm;

    vm_start(&vm, args);
    g_test_message("cold kvm: %d", vm_dma_round_trip(&vm, SLOT0, 1));
    g_test_message("cold kvm again: %d", vm_dma_round_trip(&vm, SLOT0, 2));
    vm_stop(&vm);
}

static void test_kvm_hot(void)
{
    const char *bdf = edu_need(0);
    TestVM vm;
    char *err;

    vm_start(&vm, "-accel kvm");
    vm_qmp_ok(&vm, "{'execute': 'object-add', 'arguments': {'qom-type': 'iommufd', 'id': 'iommufd0'}}");
    err = vm_add_edu(&vm, "edu0", bdf, SLOT0, "iommufd0");
    g_test_message("add: %s", err);
    g_test_message("hot kvm: %d", vm_dma_round_trip(&vm, SLOT0, 1));
    vm_stop(&vm);
}

static void test_kvm_legacy_hot(void)
{
    const char *bdf = edu_need(0);
    TestVM vm;
    g_autofree char *addr = g_strdup_printf("%d", SLOT0);

    vm_start(&vm, "-accel kvm");
    vm_qmp_ok(&vm, "{'execute': 'device_add', 'arguments': {'driver': 'vfio-pci', 'id': 'edu0', 'host': %s, 'addr': %s}}", bdf, addr);
    g_test_message("hot kvm legacy: %d", vm_dma_round_trip(&vm, SLOT0, 1));
    vm_stop(&vm);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/x/cold", test_kvm_cold);
    qtest_add_func("/x/hot", test_kvm_hot);
    qtest_add_func("/x/legacyhot", test_kvm_legacy_hot);
    return g_test_run();
}
