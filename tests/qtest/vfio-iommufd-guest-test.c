/*
 * qtest: a misbehaving guest cannot make QEMU exit
 *
 * Through qtest the guest drives its assigned edu device badly: it turns
 * bus mastering off in the middle of a DMA, points DMA at IOVAs where no
 * RAM is mapped and at MMIO (the device's own BAR, which iommufd does not
 * map), writes junk to config space and to the BAR's registers, and
 * resets the VM while the device is mapped or busy.  After each, QEMU
 * must still answer QMP with the VM running, and the device must move
 * bytes again once the guest programs it properly.  The kernel may log
 * IOMMU (DMAR) faults; the test prints how many.
 *
 * edu's own model has a range check that stops the outer emulator on a
 * DMA whose device-side range leaves its buffer (a bug of the test
 * device): its DMA command register is left out of the junk.
 *
 * Needs an edu device bound to vfio-pci (tests/testbed); skips otherwise.
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "hw/pci/pci_regs.h"
#include "vfio-iommufd-util.h"

/* Guest RAM is 128M: IOVAs from there up to edu's 28-bit mask are unmapped. */
#define GUEST_RAM       "-m 128M "
#define UNMAPPED_IOVA   0x9000000
/* Where the guest moves BAR0 (1M) for DMA to MMIO: no RAM, in the mask. */
#define BAR_IN_MASK     0xc000000

#define EDU_FACTORIAL   0x08

/* The kernel's IOMMU fault messages so far, or -1 if dmesg is unreadable. */
static int dmar_faults(void)
{
    g_autofree char *out = NULL;
    g_auto(GStrv) lines = NULL;
    int n = 0;

    if (!g_spawn_command_line_sync("dmesg", &out, NULL, NULL, NULL)) {
        return -1;
    }
    lines = g_strsplit(out, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        if (strstr(lines[i], "DMAR") && strstr(lines[i], "fault")) {
            n++;
        }
    }
    return n;
}

typedef struct GuestCase {
    TestVM vm;
    Edu edu;
    int faults;
} GuestCase;

static bool guest_start(GuestCase *gc)
{
    const char *bdf = edu_need(0);
    g_autofree char *args = NULL;

    if (!bdf) {
        return false;
    }
    args = g_strdup_printf(GUEST_RAM "-object iommufd,id=iommufd0 "
                           "-device vfio-pci,host=%s,iommufd=iommufd0,"
                           "id=edu0,addr=%d", bdf, SLOT0);
    gc->faults = dmar_faults();
    vm_start(&gc->vm, args);
    edu_open(&gc->vm, SLOT0, &gc->edu);
    return true;
}

/* QEMU is up, and the device works once programmed properly. */
static void guest_check_stop(GuestCase *gc, const char *what)
{
    int faults;

    g_assert(vm_alive(&gc->vm));
    edu_close(&gc->edu);
    g_assert(vm_dma_round_trip(&gc->vm, SLOT0, 0x77));
    vm_stop(&gc->vm);
    faults = dmar_faults();
    if (faults >= 0 && gc->faults >= 0) {
        g_test_message("%s: QEMU running, device works; %d IOMMU fault "
                       "message(s) from the kernel", what,
                       faults - gc->faults);
    }
}

static void test_bus_master_off_mid_dma(void)
{
    GuestCase gc;
    uint16_t cmd;

    if (!guest_start(&gc)) {
        return;
    }
    edu_dma_start(&gc.edu, GUEST_SRC, EDU_BUFFER, EDU_DMA_LEN, false);
    cmd = qpci_config_readw(gc.edu.dev, PCI_COMMAND);
    qpci_config_writew(gc.edu.dev, PCI_COMMAND, cmd & ~PCI_COMMAND_MASTER);
    g_assert(edu_dma_wait(&gc.edu));
    edu_dma_start(&gc.edu, EDU_BUFFER, GUEST_DST, EDU_DMA_LEN, true);
    g_assert(edu_dma_wait(&gc.edu));
    guest_check_stop(&gc, "bus mastering off mid-DMA");
}

static void test_dma_unmapped_iova(void)
{
    GuestCase gc;

    if (!guest_start(&gc)) {
        return;
    }
    edu_dma_start(&gc.edu, UNMAPPED_IOVA, EDU_BUFFER, EDU_DMA_LEN, false);
    g_assert(edu_dma_wait(&gc.edu));
    edu_dma_start(&gc.edu, EDU_BUFFER, UNMAPPED_IOVA, EDU_DMA_LEN, true);
    g_assert(edu_dma_wait(&gc.edu));
    guest_check_stop(&gc, "DMA to and from an unmapped IOVA");
}

/* Move BAR0 to @addr and run a DMA there through the moved registers. */
static void edu_dma_at(QTestState *qts, uint64_t bar, uint64_t src,
                       uint64_t dst, bool to_ram)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    qtest_writeq(qts, bar + EDU_DMA_SRC, src);
    qtest_writeq(qts, bar + EDU_DMA_DST, dst);
    qtest_writeq(qts, bar + EDU_DMA_COUNT, EDU_DMA_LEN);
    qtest_writeq(qts, bar + EDU_DMA_CMD,
                 EDU_DMA_RUN | (to_ram ? EDU_DMA_TO_RAM : 0));
    while (qtest_readq(qts, bar + EDU_DMA_CMD) & EDU_DMA_RUN) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
}

static void test_dma_to_mmio(void)
{
    GuestCase gc;

    if (!guest_start(&gc)) {
        return;
    }
    qpci_config_writel(gc.edu.dev, PCI_BASE_ADDRESS_0, BAR_IN_MASK);
    g_assert_cmphex(qtest_readl(gc.vm.qts, BAR_IN_MASK), ==, 0x010000ed);
    /* The device reads from and writes to its own registers. */
    edu_dma_at(gc.vm.qts, BAR_IN_MASK, EDU_BUFFER, BAR_IN_MASK, true);
    edu_dma_at(gc.vm.qts, BAR_IN_MASK, BAR_IN_MASK, EDU_BUFFER, false);
    guest_check_stop(&gc, "DMA to and from MMIO (its own BAR)");
}

static void test_config_junk(void)
{
    const uint32_t junk[] = { 0xffffffff, 0, 0xa5a5a5a5, 0x5a5a5a5a };
    GuestCase gc;

    if (!guest_start(&gc)) {
        return;
    }
    for (size_t j = 0; j < ARRAY_SIZE(junk); j++) {
        for (int off = 0; off < 0x100; off += 4) {
            qpci_config_writel(gc.edu.dev, off, junk[j]);
        }
        for (int off = 0; off < 0x100; off++) {
            qpci_config_writeb(gc.edu.dev, off, junk[j] >> 8);
        }
        g_assert(vm_alive(&gc.vm));
    }
    /* A reset brings config space back for the check. */
    vm_qmp_ok(&gc.vm, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(gc.vm.qts, "RESET");
    guest_check_stop(&gc, "junk in config space");
}

static void test_bar_junk(void)
{
    const uint64_t junk[] = { ~0ULL, 0, 0xa5a5a5a5a5a5a5a5ULL };
    GuestCase gc;

    if (!guest_start(&gc)) {
        return;
    }
    for (size_t j = 0; j < ARRAY_SIZE(junk); j++) {
        for (int off = 0; off < 0x100; off += 4) {
            /*
             * Not the DMA command (see above), nor the factorial: a huge
             * one keeps the outer emulator busy for minutes.
             */
            if (off == EDU_DMA_CMD || off == EDU_DMA_CMD + 4 ||
                off == EDU_FACTORIAL) {
                continue;
            }
            qpci_io_writel(gc.edu.dev, gc.edu.bar, off, junk[j]);
            if (!(off & 7) && off + 8 <= EDU_DMA_CMD) {
                qpci_io_writeq(gc.edu.dev, gc.edu.bar, off, junk[j]);
            }
        }
        g_assert(vm_alive(&gc.vm));
    }
    guest_check_stop(&gc, "junk in the BAR's registers");
}

static void test_reset_while_mapped(void)
{
    GuestCase gc;

    if (!guest_start(&gc)) {
        return;
    }
    edu_close(&gc.edu);
    g_assert(vm_dma_round_trip(&gc.vm, SLOT0, 0x21));
    vm_qmp_ok(&gc.vm, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(gc.vm.qts, "RESET");
    edu_open(&gc.vm, SLOT0, &gc.edu);
    guest_check_stop(&gc, "system_reset while mapped");
}

static void test_reset_mid_dma(void)
{
    GuestCase gc;

    if (!guest_start(&gc)) {
        return;
    }
    edu_dma_start(&gc.edu, EDU_BUFFER, GUEST_DST, EDU_DMA_LEN, true);
    vm_qmp_ok(&gc.vm, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(gc.vm.qts, "RESET");
    /* The DMA ends on edu's timer; let it, into RAM that is still there. */
    g_usleep(300 * 1000);
    edu_close(&gc.edu);
    edu_open(&gc.vm, SLOT0, &gc.edu);
    guest_check_stop(&gc, "system_reset in the middle of a DMA");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/vfio-iommufd-guest/bus-master-off-mid-dma",
                   test_bus_master_off_mid_dma);
    qtest_add_func("/vfio-iommufd-guest/dma-unmapped-iova",
                   test_dma_unmapped_iova);
    qtest_add_func("/vfio-iommufd-guest/dma-to-mmio", test_dma_to_mmio);
    qtest_add_func("/vfio-iommufd-guest/config-junk", test_config_junk);
    qtest_add_func("/vfio-iommufd-guest/bar-junk", test_bar_junk);
    qtest_add_func("/vfio-iommufd-guest/reset-while-mapped",
                   test_reset_while_mapped);
    qtest_add_func("/vfio-iommufd-guest/reset-mid-dma", test_reset_mid_dma);
    return g_test_run();
}
