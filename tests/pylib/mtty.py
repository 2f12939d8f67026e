"""
The kernel's mtty sample (a mediated device with two 16550-like serial
ports): its instances in L1, and what the tiers do with it inside an L2
guest (any object with l2.Guest's sh()).

Port 0's registers are driven through the BAR's sysfs resource file, so
that only the device's own state can give them back after a migration;
the ports' serial round trips go through the guest's 8250 driver.
"""

import os
import uuid

from pylib.check import check
from pylib.inguest import pci_devices

MTTY_TYPES = '/sys/class/mdev_bus/mtty/mdev_supported_types'
MTTY_IDS = '0x4348:0x3253'

# What port 0 holds across a migration: bytes in its receive FIFO (mtty
# loops what is written to THR into it; fewer than its 16 places), the
# line control register and the divisor latch, left enabled (DLAB)
# because setting DLAB clears mtty's divisor.
FIFO_BYTES = 'mig-fifo-42'
LCR = 0x1b          # 8 bits, even parity, 1 stop bit
DIVISOR = 0x1234


# --- instances in L1 ---------------------------------------------------------

def available():
    return os.path.isdir(MTTY_TYPES)


def create(ports=2):
    """A new mtty instance of type mtty-@ports: its sysfs directory."""
    uid = str(uuid.uuid4())
    with open(f'{MTTY_TYPES}/mtty-{ports}/create', 'w') as f:
        f.write(uid)
    return f'/sys/bus/mdev/devices/{uid}'


def remove(sysfs):
    if os.path.exists(sysfs):
        with open(sysfs + '/remove', 'w') as f:
            f.write('1')


# --- in the guest ------------------------------------------------------------

def ports(g):
    """The guest's mtty device (its BDF) and its ttys, sorted by number."""
    bdfs = pci_devices(g, MTTY_IDS)
    check(len(bdfs) == 1, f'one mtty device in the guest: {bdfs}')
    ttys = g.sh(f'ls /sys/bus/pci/devices/{bdfs[0]}/tty 2>/dev/null || '
                f'for t in /sys/class/tty/ttyS*; do '
                f'readlink $t/device | grep -q {bdfs[0]} && '
                f'basename $t; done; true').split()
    return bdfs[0], sorted(ttys, key=lambda t: int(t[4:]))


def round_trip(g, tty, msg):
    """
    Bytes written to @tty come back (mtty loops TX into RX).  One open of
    the tty does both, so that no byte arrives while nobody has it open
    (a reader started in the background lost that race in a loaded L1).
    """
    rc, out = g.sh(f'sh -c \'exec 3<>/dev/{tty}; stty raw -echo <&3; '
                   f'printf %s {msg} >&3; timeout 8 dd bs=1 '
                   f'count={len(msg)} <&3 2>/dev/null\'', timeout=60,
                   ok=False)
    got = out.rstrip('\n')
    check(rc == 0 and got == msg, f'{tty}: sent "{msg}", read back "{got}" '
          f'(status {rc})')


def _uart_shell(bdf):
    """Shell functions w BAR OFF VALUE and r BAR OFF for the guest."""
    res = f'/sys/bus/pci/devices/{bdf}/resource'
    return (f'w() {{ printf "\\\\$(printf %o $3)" | dd of={res}$1 bs=1 '
            f'seek=$2 count=1 conv=notrunc 2>/dev/null; }}; '
            f'r() {{ dd if={res}$1 bs=1 skip=$2 count=1 2>/dev/null | '
            f'od -An -tu1; }}; ')


def uart_setup(g, bdf):
    """Fill port 0's FIFO, set its line control and divisor."""
    writes = ' '.join(f'w 0 0 {ord(c)};' for c in FIFO_BYTES)
    g.sh(_uart_shell(bdf) + f'echo 1 > /sys/bus/pci/devices/{bdf}/enable; '
         f'w 0 3 {LCR}; {writes} w 0 3 {0x80 | LCR}; '
         f'w 0 0 {DIVISOR & 0xff}; w 0 1 {DIVISOR >> 8}')


def uart_regs(g, bdf):
    """Port 0's LCR, divisor and LSR, read without touching the FIFO."""
    out = g.sh(_uart_shell(bdf) + 'echo $(r 0 3) $(r 0 0) $(r 0 1) $(r 0 5)')
    lcr, dll, dlm, lsr = (int(x) for x in out.split())
    return lcr, dll | dlm << 8, lsr


def uart_drain(g, bdf):
    """Clear DLAB and read port 0's FIFO empty: the bytes it held."""
    out = g.sh(_uart_shell(bdf) + f'w 0 3 {LCR}; s=; '
               'for i in $(seq 16); do [ $(( $(r 0 5) & 1 )) = 1 ] || break; '
               's="$s $(r 0 0)"; done; echo $s')
    return ''.join(chr(int(x)) for x in out.split())


def check_regs(g, bdf, where):
    """Port 0 has what uart_setup() gave it: (LCR, divisor)."""
    lcr, div, lsr = uart_regs(g, bdf)
    check(lcr == 0x80 | LCR and div == DIVISOR and lsr & 1,
          f'{where}: port 0 has LCR 0x{lcr:02x}, divisor 0x{div:04x}, LSR '
          f'0x{lsr:02x}; expected LCR 0x{0x80 | LCR:02x}, divisor '
          f'0x{DIVISOR:04x}, data ready')
    return lcr, div


def check_fifo(g, bdf, where):
    """Port 0's FIFO holds what uart_setup() wrote (and is read empty)."""
    got = uart_drain(g, bdf)
    check(got == FIFO_BYTES, f'{where}: port 0 FIFO "{got}", expected '
          f'"{FIFO_BYTES}"')
    return len(got)
