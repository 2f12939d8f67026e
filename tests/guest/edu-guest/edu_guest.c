// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * edu_guest: a guest kernel driver for QEMU's "edu" device, for tests
 *
 * Runs inside the guest tier's L2 Linux guest, where the edu is an
 * assigned device (vfio-pci in the L1 QEMU).  It drives the device the way
 * a real driver does: the kernel's DMA API (through the guest's vIOMMU when
 * there is one), MSI or INTx, and interrupts for DMA completion.  Each
 * operation is a write to a sysfs attribute of the PCI device; reading the
 * attribute gives the outcome as one line of key=value pairs:
 *
 *   edu_dma        "LEN [OFF]": streaming-map a buffer, DMA it to the
 *                  device's buffer at OFF, back into a second buffer, and
 *                  compare the bytes; each transfer completes with an
 *                  interrupt.
 *   edu_dma_range  "START END LEN": the same with buffers in movable pages
 *                  whose physical address lies in [START, END), e.g.
 *                  memory a virtio-mem device plugged.
 *   edu_irq        "N": raise N interrupts through the device's raise
 *                  register, waiting for each to be delivered.
 *   edu_stats      (read only) the interrupt mode and the counters since
 *                  the driver bound.
 *
 * Module parameters: msi (1: MSI, 0: INTx), dma_bits (the device's DMA
 * mask width; edu's default is 28).
 *
 * Copyright (c) 2026 The qemu-iommufd developers
 */

#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/gfp.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/slab.h>

#define EDU_VENDOR      0x1234
#define EDU_DEVICE      0x11e8

#define EDU_IRQ_STATUS  0x24
#define EDU_IRQ_RAISE   0x60
#define EDU_IRQ_ACK     0x64
#define EDU_DMA_SRC     0x80
#define EDU_DMA_DST     0x88
#define EDU_DMA_COUNT   0x90
#define EDU_DMA_CMD     0x98

#define EDU_DMA_RUN     0x1
#define EDU_DMA_TO_RAM  0x2
#define EDU_DMA_IRQ     0x4
#define EDU_IRQ_DMA     0x100
#define EDU_IRQ_TEST    0x10000     /* our own bit for raised interrupts */

#define EDU_BUFFER      0x40000
/* edu's range check is off by one: the transfer must end before 0x41000. */
#define EDU_BUFFER_MAX  4095

/* A transfer takes at least edu's 100 ms timer; allow for a slow host. */
#define EDU_TIMEOUT_MS  10000

static bool msi = true;
module_param(msi, bool, 0444);
MODULE_PARM_DESC(msi, "use MSI (default) or INTx");

static unsigned int dma_bits = 28;
module_param(dma_bits, uint, 0444);
MODULE_PARM_DESC(dma_bits, "DMA mask width of the device (edu: 28)");

struct edu {
	struct pci_dev *pdev;
	void __iomem *bar;
	int irq;
	struct mutex lock;          /* one operation at a time */
	struct completion irq_done;
	u32 irq_seen;               /* status bits the handler acknowledged */
	atomic_t delivered;         /* interrupts the handler acknowledged */
	atomic_t spurious;          /* handler calls with no status bit */
	unsigned int raised;        /* interrupts the driver made the device raise */
	unsigned int dma_ok, dma_failed;
	char dma_result[192];
	char dma_range_result[192];
	char irq_result[96];
};

static irqreturn_t edu_irq(int irq, void *opaque)
{
	struct edu *edu = opaque;
	u32 status = ioread32(edu->bar + EDU_IRQ_STATUS);

	if (!status) {
		atomic_inc(&edu->spurious);
		return IRQ_NONE;
	}
	iowrite32(status, edu->bar + EDU_IRQ_ACK);
	WRITE_ONCE(edu->irq_seen, READ_ONCE(edu->irq_seen) | status);
	atomic_inc(&edu->delivered);
	complete(&edu->irq_done);
	return IRQ_HANDLED;
}

/* Wait for the handler to acknowledge @bit: 0 or -ETIMEDOUT. */
static int edu_wait_irq(struct edu *edu, u32 bit)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(EDU_TIMEOUT_MS);

	while (!(READ_ONCE(edu->irq_seen) & bit)) {
		long left = (long)(deadline - jiffies);

		if (left <= 0 ||
			!wait_for_completion_timeout(&edu->irq_done, left)) {
			if (!(READ_ONCE(edu->irq_seen) & bit))
				return -ETIMEDOUT;
		}
	}
	WRITE_ONCE(edu->irq_seen, READ_ONCE(edu->irq_seen) & ~bit);
	return 0;
}

/* One transfer between @addr and the device buffer, completed by an IRQ. */
static int edu_transfer(struct edu *edu, dma_addr_t addr, u32 off, u32 len,
						bool to_ram)
{
	u64 dev_addr = EDU_BUFFER + off;

	reinit_completion(&edu->irq_done);
	writeq(to_ram ? dev_addr : addr, edu->bar + EDU_DMA_SRC);
	writeq(to_ram ? addr : dev_addr, edu->bar + EDU_DMA_DST);
	writeq(len, edu->bar + EDU_DMA_COUNT);
	edu->raised++;
	writeq(EDU_DMA_RUN | EDU_DMA_IRQ | (to_ram ? EDU_DMA_TO_RAM : 0),
	       edu->bar + EDU_DMA_CMD);
	return edu_wait_irq(edu, EDU_IRQ_DMA);
}

/*
 * A round trip through the device: @src to the device buffer, then back
 * into @dst, which starts out as the complement of @src.  Returns 0 when
 * the bytes match, -EIO when they do not, or the error of a transfer.
 */
static int edu_round_trip(struct edu *edu, struct page *src_page,
			  struct page *dst_page, u32 off, u32 len,
			  char *res, size_t res_len)
{
	struct device *dev = &edu->pdev->dev;
	u8 *src = page_address(src_page), *dst = page_address(dst_page);
	dma_addr_t src_dma, dst_dma;
	u32 i, bad = 0, first_bad = 0;
	int ret;

	get_random_bytes(src, len);
	for (i = 0; i < len; i++)
		dst[i] = ~src[i];

	src_dma = dma_map_page(dev, src_page, 0, len, DMA_TO_DEVICE);
	if (dma_mapping_error(dev, src_dma)) {
		scnprintf(res, res_len, "result=fail error=map-src");
		return -ENOMEM;
	}
	dst_dma = dma_map_page(dev, dst_page, 0, len, DMA_FROM_DEVICE);
	if (dma_mapping_error(dev, dst_dma)) {
		dma_unmap_page(dev, src_dma, len, DMA_TO_DEVICE);
		scnprintf(res, res_len, "result=fail error=map-dst");
		return -ENOMEM;
	}

	ret = edu_transfer(edu, src_dma, off, len, false);
	if (!ret)
		ret = edu_transfer(edu, dst_dma, off, len, true);
	dma_unmap_page(dev, dst_dma, len, DMA_FROM_DEVICE);
	dma_unmap_page(dev, src_dma, len, DMA_TO_DEVICE);

	if (ret) {
		scnprintf(res, res_len, "result=fail error=irq-timeout src=0x%llx "
			  "dst=0x%llx len=%u", (u64)src_dma, (u64)dst_dma, len);
		return ret;
	}
	for (i = 0; i < len; i++) {
		if (dst[i] != src[i]) {
			if (!bad++)
				first_bad = i;
		}
	}
	scnprintf(res, res_len, "result=%s src=0x%llx dst=0x%llx len=%u "
		  "phys=0x%llx bad=%u first_bad=%u", bad ? "fail" : "ok",
		  (u64)src_dma, (u64)dst_dma, len,
		  (u64)page_to_phys(dst_page), bad, first_bad);
	return bad ? -EIO : 0;
}

static struct edu *edu_of(struct device *dev)
{
	return pci_get_drvdata(to_pci_dev(dev));
}

static ssize_t edu_dma_store(struct device *dev, struct device_attribute *attr,
			 const char *buf, size_t count)
{
	struct edu *edu = edu_of(dev);
	struct page *src, *dst;
	u32 len, off = 0;
	int ret;

	if (sscanf(buf, "%u %u", &len, &off) < 1 || !len ||
		off + len > EDU_BUFFER_MAX) {
		return -EINVAL;
	}
	src = alloc_page(GFP_KERNEL);
	dst = alloc_page(GFP_KERNEL);
	if (!src || !dst) {
		ret = -ENOMEM;
		goto out;
	}
	mutex_lock(&edu->lock);
	ret = edu_round_trip(edu, src, dst, off, len, edu->dma_result,
			     sizeof(edu->dma_result));
	if (ret)
		edu->dma_failed++;
	else
		edu->dma_ok++;
	mutex_unlock(&edu->lock);
out:
	if (src)
		__free_page(src);
	if (dst)
		__free_page(dst);
	return ret ? ret : count;
}

static ssize_t edu_dma_show(struct device *dev, struct device_attribute *attr,
						char *buf)
{
	return sysfs_emit(buf, "%s\n", edu_of(dev)->dma_result);
}
static DEVICE_ATTR_RW(edu_dma);

/*
 * A movable page whose physical address lies in [start, end): allocate
 * until one does (movable allocations prefer ZONE_MOVABLE, where plugged
 * memory goes), keeping the misses on @misses to free later.
 */
static struct page *edu_page_in(phys_addr_t start, phys_addr_t end,
								struct list_head *misses)
{
	int tries;

	for (tries = 0; tries < 65536; tries++) {
		struct page *page = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_NOWARN);
		phys_addr_t phys;

		if (!page)
			return NULL;
		phys = page_to_phys(page);
		if (phys >= start && phys < end)
			return page;
		list_add(&page->lru, misses);
	}
	return NULL;
}

static ssize_t edu_dma_range_store(struct device *dev,
			       struct device_attribute *attr,
			       const char *buf, size_t count)
{
	struct edu *edu = edu_of(dev);
	struct page *src = NULL, *dst = NULL, *page, *next;
	unsigned long long start, end;
	LIST_HEAD(misses);
	u32 len;
	int ret;

	if (sscanf(buf, "%llx %llx %u", &start, &end, &len) != 3 || !len ||
		len > EDU_BUFFER_MAX || start >= end) {
		return -EINVAL;
	}
	mutex_lock(&edu->lock);
	src = edu_page_in(start, end, &misses);
	dst = src ? edu_page_in(start, end, &misses) : NULL;
	if (!dst) {
		scnprintf(edu->dma_range_result, sizeof(edu->dma_range_result),
			  "result=fail error=no-page-in-range");
		ret = -ENOMEM;
	} else {
		/* page_address() needs a kernel mapping: x86_64 has no highmem. */
		ret = edu_round_trip(edu, src, dst, 0, len, edu->dma_range_result,
				     sizeof(edu->dma_range_result));
	}
	if (ret)
		edu->dma_failed++;
	else
		edu->dma_ok++;
	mutex_unlock(&edu->lock);

	list_for_each_entry_safe(page, next, &misses, lru) {
		list_del(&page->lru);
		__free_page(page);
	}
	if (src)
		__free_page(src);
	if (dst)
		__free_page(dst);
	return ret ? ret : count;
}

static ssize_t edu_dma_range_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", edu_of(dev)->dma_range_result);
}
static DEVICE_ATTR_RW(edu_dma_range);

static ssize_t edu_irq_store(struct device *dev, struct device_attribute *attr,
			 const char *buf, size_t count)
{
	struct edu *edu = edu_of(dev);
	unsigned int n, i, ok = 0;
	int ret = 0;

	if (kstrtouint(buf, 0, &n) || !n || n > 100000)
		return -EINVAL;
	mutex_lock(&edu->lock);
	for (i = 0; i < n; i++) {
		reinit_completion(&edu->irq_done);
		edu->raised++;
		iowrite32(EDU_IRQ_TEST, edu->bar + EDU_IRQ_RAISE);
		ret = edu_wait_irq(edu, EDU_IRQ_TEST);
		if (ret)
			break;
		ok++;
	}
	scnprintf(edu->irq_result, sizeof(edu->irq_result),
		  "result=%s raised=%u delivered=%u", ret ? "fail" : "ok",
		  i + (ret ? 1 : 0), ok);
	mutex_unlock(&edu->lock);
	return ret ? ret : count;
}

static ssize_t edu_irq_show(struct device *dev, struct device_attribute *attr,
						char *buf)
{
	return sysfs_emit(buf, "%s\n", edu_of(dev)->irq_result);
}
static DEVICE_ATTR_RW(edu_irq);

static ssize_t edu_stats_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	struct edu *edu = edu_of(dev);

	return sysfs_emit(buf, "mode=%s irq=%d raised=%u delivered=%d "
			  "spurious=%d dma_ok=%u dma_failed=%u dma_bits=%u\n",
			  edu->pdev->msi_enabled ? "msi" : "intx", edu->irq,
			  edu->raised, atomic_read(&edu->delivered),
			  atomic_read(&edu->spurious), edu->dma_ok,
			  edu->dma_failed, dma_bits);
}
static DEVICE_ATTR_RO(edu_stats);

static struct attribute *edu_attrs[] = {
	&dev_attr_edu_dma.attr,
	&dev_attr_edu_dma_range.attr,
	&dev_attr_edu_irq.attr,
	&dev_attr_edu_stats.attr,
	NULL,
};
ATTRIBUTE_GROUPS(edu);

static int edu_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct edu *edu;
	int ret;

	edu = devm_kzalloc(&pdev->dev, sizeof(*edu), GFP_KERNEL);
	if (!edu)
		return -ENOMEM;
	edu->pdev = pdev;
	mutex_init(&edu->lock);
	init_completion(&edu->irq_done);
	strscpy(edu->dma_result, "result=none", sizeof(edu->dma_result));
	strscpy(edu->dma_range_result, "result=none",
			sizeof(edu->dma_range_result));
	strscpy(edu->irq_result, "result=none", sizeof(edu->irq_result));

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	ret = pcim_iomap_regions(pdev, BIT(0), "edu_guest");
	if (ret)
		return ret;
	edu->bar = pcim_iomap_table(pdev)[0];
	ret = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(dma_bits));
	if (ret)
		return ret;
	pci_set_master(pdev);

	ret = pci_alloc_irq_vectors(pdev, 1, 1, msi ? PCI_IRQ_MSI : PCI_IRQ_INTX);
	if (ret < 0)
		return ret;
	edu->irq = pci_irq_vector(pdev, 0);
	ret = request_irq(edu->irq, edu_irq, IRQF_SHARED, "edu_guest", edu);
	if (ret) {
		pci_free_irq_vectors(pdev);
		return ret;
	}
	pci_set_drvdata(pdev, edu);
	dev_info(&pdev->dev, "edu_guest: irq %d (%s), dma mask %u bits\n",
		 edu->irq, pdev->msi_enabled ? "msi" : "intx", dma_bits);
	return 0;
}

static void edu_remove(struct pci_dev *pdev)
{
	struct edu *edu = pci_get_drvdata(pdev);

	free_irq(edu->irq, edu);
	pci_free_irq_vectors(pdev);
	pci_clear_master(pdev);
}

static const struct pci_device_id edu_ids[] = {
	{ PCI_DEVICE(EDU_VENDOR, EDU_DEVICE) },
	{ }
};
MODULE_DEVICE_TABLE(pci, edu_ids);

static struct pci_driver edu_driver = {
	.name = "edu_guest",
	.id_table = edu_ids,
	.probe = edu_probe,
	.remove = edu_remove,
	.dev_groups = edu_groups,
};
module_pci_driver(edu_driver);

MODULE_DESCRIPTION("Test driver for QEMU's edu device");
MODULE_LICENSE("GPL");
