"""Command-line pieces for assigned devices, on either path."""

import json

PATHS = ('legacy', 'iommufd')


def path_objects(path, map_threads=None):
    """The backend object the iommufd path needs (none for legacy)."""
    if path != 'iommufd':
        return []
    opts = f',map-threads={map_threads}' if map_threads is not None else ''
    return ['-object', f'iommufd,id=iommufd0{opts}']


def vfio_props(path, dev_id, host=None, sysfsdev=None, **more):
    """A vfio-pci device's properties, for device_add or -device."""
    props = {'driver': 'vfio-pci'}
    if host:
        props['host'] = host
    if sysfsdev:
        props['sysfsdev'] = sysfsdev
    props['id'] = dev_id
    if path == 'iommufd':
        props['iommufd'] = 'iommufd0'
    props.update(more)
    return props


def device_arg(props):
    """['-device', 'driver,key=value,...'] of a property dict."""
    props = dict(props)
    return ['-device', ','.join([props.pop('driver')] +
                                [f'{k}={v}' for k, v in props.items()])]


def edu_arg(path, host, dev_id, bus_args=''):
    """-device vfio-pci for an L1 device on @path; @bus_args: ',bus=...'."""
    return _with(device_arg(vfio_props(path, dev_id, host=host)), bus_args)


def mdev_arg(path, sysfs, dev_id, bus_args=''):
    """-device vfio-pci for an mdev (its sysfs directory) on @path."""
    return _with(device_arg(vfio_props(path, dev_id, sysfsdev=sysfs)),
                 bus_args)


def _with(arg, more):
    return [arg[0], arg[1] + more]


def jarg(obj):
    """A JSON command-line value, as libvirt writes it."""
    return json.dumps(obj, separators=(',', ':'))


def iommufd_json(fd):
    """libvirt's -object for an iommufd backend on a passed fd."""
    return ['-object', jarg({'qom-type': 'iommufd', 'id': 'iommufd0',
                             'fd': str(fd)})]


def hostdev_json(dev_id, fd, bus, addr):
    """libvirt's -device for a vfio-pci device on a passed cdev fd."""
    return ['-device', jarg({'driver': 'vfio-pci', 'id': dev_id,
                             'iommufd': 'iommufd0', 'fd': str(fd),
                             'bus': bus, 'addr': f'0x{addr:x}'})]
