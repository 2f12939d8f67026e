"""What a Debian host's libvirt puts around QEMU, for the libvirt tier's
sandbox, apparmor and full-domain cases: QEMU's seccomp filter and
AppArmor label as /proc shows them, the kernel's AppArmor denials, QMP
commands that pass fds, and the devices a management tool writes into a
Debian guest's domain, with the display's first words."""

import hashlib
import json
import os
import re
import socket
import subprocess
import xml.etree.ElementTree as ET

# What libvirt passes with qemu.conf's seccomp_sandbox = 1 (the default).
SANDBOX = ('on,obsolete=deny,elevateprivileges=deny,spawn=deny,'
           'resourcecontrol=deny')
APPARMOR = '/sys/kernel/security/apparmor'
# A domain that libvirt's AppArmor driver leaves unconfined.
UNCONFINED = "  <seclabel type='none' model='apparmor'/>\n"
MAC = '52:54:00:1f:d0:01'


def status_field(pid, name):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(name + ':'):
                return line.split(':', 1)[1].strip()
    return None


def seccomp(pid):
    """QEMU's seccomp mode (2: a filter) and number of filters."""
    return status_field(pid, 'Seccomp'), status_field(pid, 'Seccomp_filters')


def apparmor_label(pid):
    """The AppArmor confinement of @pid, e.g. "libvirt-UUID (enforce)"."""
    with open(f'/proc/{pid}/attr/current') as f:
        return f.read().strip('\0\n ')


def kernel_log():
    return subprocess.run(['dmesg'], capture_output=True, text=True,
                          check=False).stdout.splitlines()


def denials(before, profile):
    """AppArmor's DENIED lines for @profile logged after @before (an
    earlier kernel_log()): [(operation, name)]."""
    out = []
    for line in kernel_log()[len(before):]:
        if 'apparmor="DENIED"' in line and f'profile="{profile}"' in line:
            op = re.search(r'operation="([^"]*)"', line)
            name = re.search(r' name="([^"]*)"', line)
            out.append((op.group(1) if op else '?',
                        name.group(1) if name else '?'))
    return out


def qmp_passing(t, dom, fds, cmd, **arguments):
    """A QMP command through virsh, with @fds passed along (getfd): the
    answer's "return", or raises with QEMU's or libvirt's error."""
    msg = {'execute': cmd}
    if arguments:
        msg['arguments'] = arguments
    args = ['qemu-monitor-command', dom]
    if fds:
        args += ['--pass-fds', ','.join(str(fd) for fd in fds)]
    r = t.virsh(*args, json.dumps(msg), ok=False, pass_fds=tuple(fds))
    if r.returncode != 0:
        return None, ' '.join(r.stderr.split())
    ans = json.loads(r.stdout)
    if 'error' in ans:
        return None, ans['error'].get('desc', str(ans['error']))
    return ans['return'], None


def full_devices(disk):
    """A Debian guest's devices as virt-install writes them for q35 (less
    the hostdev): virtio qcow2 disk, a NIC on user networking, the guest
    agent and SPICE agent channels, VNC and SPICE graphics (on unix
    sockets and no listener: L1 has no TCP/IP), USB redirection on a
    qemu-xhci controller, a TPM 2.0 (swtpm), a virtio RNG and balloon."""
    return f"""    <controller type='usb' model='qemu-xhci'/>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'>
      <mac address='{MAC}'/>
      <model type='virtio'/>
    </interface>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <channel type='spicevmc'>
      <target type='virtio' name='com.redhat.spice.0'/>
    </channel>
    <graphics type='vnc'>
      <listen type='socket'/>
    </graphics>
    <graphics type='spice'>
      <listen type='none'/>
    </graphics>
    <redirdev bus='usb' type='spicevmc'/>
    <tpm model='tpm-crb'>
      <backend type='emulator' version='2.0'/>
    </tpm>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
"""


def full_domain(xml, disk):
    """@xml (libvirt_tier.domain_xml) with the full domain's devices in
    place of its "none" USB controller and balloon."""
    for old, new in (("    <controller type='usb' model='none'/>\n",
                      full_devices(disk)),
                     ("<memballoon model='none'/>",
                      "<memballoon model='virtio'/>")):
        if old not in xml:
            raise ValueError(f'domain XML without {old.strip()}')
        xml = xml.replace(old, new)
    return xml


def free_root_port(dumpxml):
    """The index of a pcie-root-port of the live domain that holds no
    device (libvirt puts the bridge for a conventional PCI hostdev into one
    of the domain's root ports): the last such, or None."""
    root = ET.fromstring(dumpxml)
    ports = [int(c.get('index')) for c in
             root.findall("devices/controller[@type='pci']")
             if c.get('model') == 'pcie-root-port']
    used = {int(a.get('bus'), 16) for a in root.iter('address')
            if a.get('type') == 'pci' and a.get('bus') is not None}
    free = [p for p in ports if p not in used]
    return free[-1] if free else None


def vnc_socket(dumpxml):
    """The unix socket libvirt gave the VNC display."""
    listen = ET.fromstring(dumpxml).find(
        "devices/graphics[@type='vnc']/listen[@type='socket']")
    return listen.get('socket') if listen is not None else None


def vnc_banner(path, timeout=10):
    """What a VNC server says first: "RFB 003.008".  @path, in the root
    as L1 sees it, can be longer than a unix socket address may be (108
    bytes, reached once libvirt's domain ids have two digits): connect
    through a descriptor of its directory."""
    d = os.open(os.path.dirname(path), os.O_PATH)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(f'/proc/self/fd/{d}/{os.path.basename(path)}')
        finally:
            os.close(d)
        data = b''
        while not data.endswith(b'\n') and len(data) < 12:
            chunk = s.recv(12 - len(data))
            if not chunk:
                break
            data += chunk
        return data.decode(errors='replace').strip()


def unresolved(root, package):
    """Libraries that the ELF files of @package installed in @root need
    and the root's loader cannot find: {file: [library]}."""
    files = subprocess.run(['chroot', root, 'dpkg', '-L', package],
                           capture_output=True, text=True,
                           check=True).stdout.split()
    missing = {}
    for f in files:
        if not (f.endswith('.so') or '/bin/' in f):
            continue
        r = subprocess.run(['chroot', root, 'ldd', f], capture_output=True,
                           text=True, check=False)
        gone = [line.split()[0] for line in r.stdout.splitlines()
                if 'not found' in line]
        if gone:
            missing[f] = gone
    return missing


def md5_of(path, size):
    """md5 of the first @size bytes of @path."""
    with open(path, 'rb') as f:
        return hashlib.md5(f.read(size)).hexdigest()
