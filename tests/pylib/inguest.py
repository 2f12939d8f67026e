"""
What the tiers do inside an L2 guest, through its control line (any
object with l2.Guest's sh()): find the edus, load edu_guest and drive its
DMA and interrupts, hand a device to the guest's vfio-pci.
"""

import re

from pylib.check import Fail, check

EDU_IDS = '0x1234:0x11e8'


def kv(line):
    """'a=1 b=x' -> {'a': '1', 'b': 'x'}"""
    return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))


def pci_devices(g, ids):
    """BDFs of the guest's PCI devices with @ids ('0xVVVV:0xDDDD')."""
    out = g.sh('for d in /sys/bus/pci/devices/*; do '
               'echo "$(basename $d) $(cat $d/vendor):$(cat $d/device)"; done')
    return [ln.split()[0] for ln in out.splitlines()
            if ln.split()[1:] == [ids]]


def guest_edus(g):
    """BDFs of the edu devices the guest sees, in order."""
    return pci_devices(g, EDU_IDS)


def insmod(g, msi=True, dma_bits=28):
    """(Re)load edu_guest; it must bind to every edu of the guest."""
    g.sh('rmmod edu_guest 2>/dev/null; '
         f'insmod /edu_guest.ko msi={1 if msi else 0} dma_bits={dma_bits}')
    for bdf in guest_edus(g):
        _, out = g.sh(f'readlink /sys/bus/pci/devices/{bdf}/driver', ok=False)
        if not out.strip().endswith('/edu_guest'):
            raise Fail(f'edu_guest did not bind to {bdf} ({out.strip()}); '
                       f'guest dmesg: {g.sh("dmesg | tail -n 5")}')


def edu_attr(g, bdf, attr, value=None):
    """Write @value to one of edu_guest's sysfs attributes (if given) and
    read it back as key=value pairs."""
    base = f'/sys/bus/pci/devices/{bdf}'
    if value is not None:
        rc, _ = g.sh(f'echo "{value}" > {base}/{attr}', ok=False)
    res = kv(g.sh(f'cat {base}/{attr}'))
    if value is not None and rc != 0 and res.get('result') == 'ok':
        res['result'] = 'fail'
    return res


def guest_dma(g, bdf, length=4095, offset=0):
    """edu_guest's DMA round trip; the bytes compared by the guest."""
    r = edu_attr(g, bdf, 'edu_dma', f'{length} {offset}')
    check(r.get('result') == 'ok', f'DMA of {length} bytes at {offset}: {r}')
    return r


def edu_stats(g, bdf):
    """edu_guest's interrupt counts: mode, raised, delivered, spurious."""
    return kv(g.sh(f'cat /sys/bus/pci/devices/{bdf}/edu_stats'))


def bind_vfio(g, bdf):
    """Hand @bdf to the guest's own vfio-pci."""
    g.sh(f'd=/sys/bus/pci/devices/{bdf}; '
         f'[ -e $d/driver ] && echo {bdf} > $d/driver/unbind; '
         f'echo vfio-pci > $d/driver_override; '
         f'echo {bdf} > /sys/bus/pci/drivers_probe; '
         f'ls $d/vfio-dev')
