"""What /proc and PCI sysfs say about processes and devices."""

import os


# --- processes --------------------------------------------------------------

def pids():
    for name in os.listdir('/proc'):
        if name.isdigit():
            yield int(name)


def status(pid):
    """/proc/PID/status as {key: [fields]}; {} once the process is gone."""
    st = {}
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                key, _, value = line.partition(':')
                st[key] = value.split()
    except OSError:
        return {}
    return st


def memory_kb(pid, keys=('VmPin', 'VmLck', 'VmRSS')):
    """Those memory figures of /proc/PID/status, in kB."""
    st = status(pid)
    return {k: int(st[k][0]) for k in keys if k in st}


def fds(pid, root=None):
    """{fd: target} of a process; targets under @root read as @root sees
    them (a process in a chroot)."""
    out = {}
    try:
        names = os.listdir(f'/proc/{pid}/fd')
    except OSError:
        return out
    for name in names:
        try:
            target = os.readlink(f'/proc/{pid}/fd/{name}')
        except OSError:
            continue
        if root and target.startswith(root + '/'):
            target = target[len(root):]
        out[int(name)] = target
    return out


def fd_of(pid, target):
    """The fds of a process open on @target, sorted."""
    return sorted(fd for fd, t in fds(pid).items() if t == target)


def children(pid):
    """Pids whose parent is @pid."""
    found = []
    for p in pids():
        try:
            with open(f'/proc/{p}/stat') as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(')', 1)[1].split()[1]) == pid:
            found.append(p)
    return sorted(found)


def alive(pid):
    """The process exists and is no zombie."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(') ', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):
        return False


def threads(pid):
    """[(tid, comm, state, wchan)] of a process's threads."""
    out = []
    try:
        tids = sorted(os.listdir(f'/proc/{pid}/task'), key=int)
    except OSError:
        return out
    for tid in tids:
        task = f'/proc/{pid}/task/{tid}'
        try:
            with open(f'{task}/stat') as f:
                state = f.read().rsplit(') ', 1)[1].split()[0]
            with open(f'{task}/comm') as f:
                comm = f.read().strip()
            with open(f'{task}/wchan') as f:
                wchan = f.read().strip()
        except (OSError, IndexError):
            continue
        out.append((int(tid), comm, state, wchan))
    return out


def cmdline(pid):
    with open(f'/proc/{pid}/cmdline', 'rb') as f:
        return [a.decode() for a in f.read().split(b'\0') if a]


def memlock_limit(pid):
    """(soft, hard) RLIMIT_MEMLOCK of a process, in bytes."""
    with open(f'/proc/{pid}/limits') as f:
        for line in f:
            if line.startswith('Max locked memory'):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise LookupError(f'no memlock limit in /proc/{pid}/limits')


def holders(prefixes=('/dev/iommu', '/dev/vfio/'), root=None):
    """Every process with one of those nodes open: [(pid, comm, node)]."""
    out = []
    for pid in pids():
        for target in fds(pid, root).values():
            if target.startswith(prefixes):
                out.append((pid, status(pid).get('Name', ['?'])[0], target))
    return out


def pinners():
    """Processes with pinned or locked memory: [(pid, comm, VmPin, VmLck)]."""
    out = []
    for pid in pids():
        st = status(pid)
        pin = int(st.get('VmPin', ['0'])[0])
        lck = int(st.get('VmLck', ['0'])[0])
        if pin or lck:
            out.append((pid, st['Name'][0], pin, lck))
    return out


def loadavg():
    with open('/proc/loadavg') as f:
        return f.read().split()[:3]


def meminfo():
    """/proc/meminfo in kB."""
    with open('/proc/meminfo') as f:
        return {ln.split(':')[0]: int(ln.split()[1]) for ln in f}


# --- PCI devices ------------------------------------------------------------

def pci(bdf, name=''):
    return f'/sys/bus/pci/devices/{bdf}/{name}'.rstrip('/')


def driver(bdf):
    """The driver @bdf is bound to, or None."""
    link = pci(bdf, 'driver')
    return os.path.basename(os.readlink(link)) if os.path.exists(link) else None


def bind(bdf, override=''):
    """Rebind @bdf: to the driver that matches it, or to @override."""
    if driver(bdf):
        write(pci(bdf, 'driver/unbind'), bdf)
    write(pci(bdf, 'driver_override'), override + '\n')
    write('/sys/bus/pci/drivers_probe', bdf)


def cdev_of(bdf):
    """/dev/vfio/devices/vfioN of a device (a BDF or a sysfs directory, as
    of an mdev) while vfio has it, else None."""
    base = bdf if bdf.startswith('/') else pci(bdf)
    try:
        names = [n for n in os.listdir(f'{base}/vfio-dev')
                 if n.startswith('vfio')]
    except FileNotFoundError:
        return None
    return f'/dev/vfio/devices/{names[0]}' if len(names) == 1 else None


def group_of(bdf):
    """/dev/vfio/N, the group node of @bdf."""
    return '/dev/vfio/' + os.path.basename(os.readlink(pci(bdf, 'iommu_group')))


def ids(bdf):
    """(vendor, device) of a PCI device."""
    with open(pci(bdf, 'vendor')) as v, open(pci(bdf, 'device')) as d:
        return int(v.read(), 16), int(d.read(), 16)


def bound_to(drv, vendor_device):
    """BDFs of the devices with those IDs bound to @drv, sorted."""
    path = f'/sys/bus/pci/drivers/{drv}'
    names = os.listdir(path) if os.path.isdir(path) else []
    return sorted(n for n in names
                  if ':' in n and ids(n) == vendor_device)


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)
