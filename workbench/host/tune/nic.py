"""One network interface as /sys and /proc show it: driver, PCI address, NUMA node, queues
with their RPS/XPS masks, and the IRQs of its queues with their affinity.

IRQs are found as the kernel lists them: the numbers under ``device/msi_irqs`` when the
device has MSI-X, else the ``/proc/interrupts`` lines whose name carries the interface name
(``eth0-TxRx-0``), the PCI address (``mlx5_comp0@pci:0000:3b:00.0``) or the device's own
name (``virtio2-input.0``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ...errors import TuneError
from .paths import at, mask_to_cpus, parse_cpu_list, read, read_int


RFS_ENTRIES = "/proc/sys/net/core/rps_sock_flow_entries"      # the global RFS socket flow table


@dataclass
class Irq:
    number: int
    name: str                                # the last column of /proc/interrupts
    affinity: list[int] | None               # smp_affinity_list; None: unreadable

    @property
    def affinity_path(self) -> str:
        return f"/proc/irq/{self.number}/smp_affinity_list"


@dataclass
class NicReport:
    iface: str
    driver: str | None                       # None: a virtual device (veth, lo) has no driver link
    pci: str | None
    numa_node: int | None                    # None: no device or the host has one node (-1)
    rx_queues: list[str] = field(default_factory=list)
    tx_queues: list[str] = field(default_factory=list)
    rps: dict[str, list[int]] = field(default_factory=dict)     # rx-N -> CPUs
    xps: dict[str, list[int]] = field(default_factory=dict)     # tx-N -> CPUs
    rfs_flows: dict[str, int] = field(default_factory=dict)     # rx-N -> rps_flow_cnt (RFS flow table size)
    rfs_entries: int | None = None           # net.core.rps_sock_flow_entries (global; 0: RFS off); None: absent
    irqs: list[Irq] = field(default_factory=list)


def _link_name(root, path: str) -> str | None:
    try:
        return os.path.basename(os.readlink(at(root, path)))
    except OSError:
        return None


def _pci_address(root, iface: str) -> str | None:
    name = _link_name(root, f"/sys/class/net/{iface}/device")
    if name and re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", name):
        return name
    for line in (read(root, f"/sys/class/net/{iface}/device/uevent") or "").splitlines():
        if line.startswith("PCI_SLOT_NAME="):
            return line.split("=", 1)[1]
    return None


def parse_interrupts(text: str) -> dict[int, str]:
    """/proc/interrupts -> {irq number: name (last column)} for the numbered lines."""
    out = {}
    lines = text.splitlines()
    ncpu = len(lines[0].split()) if lines else 0
    for line in lines[1:]:
        head, _, rest = line.partition(":")
        if not head.strip().isdigit():
            continue
        fields = rest.split()
        # per-CPU counts, then the chip, hwirq/trigger words, then the action name(s)
        out[int(head)] = fields[-1] if len(fields) > ncpu else ""
    return out


def nic_irqs(root, iface: str, pci: str | None) -> list[Irq]:
    names = parse_interrupts(read(root, "/proc/interrupts") or "")
    msi_dir = at(root, f"/sys/class/net/{iface}/device/msi_irqs")
    numbers: list[int] = []
    if msi_dir.is_dir():
        numbers = sorted(int(p.name) for p in msi_dir.iterdir() if p.name.isdigit())
    if not numbers:
        dev = _link_name(root, f"/sys/class/net/{iface}/device")
        own = [iface] + ([dev] if dev and dev != pci else [])        # virtio: IRQs named virtio2-input.0
        pat = re.compile(rf"(^|[^\w])({'|'.join(map(re.escape, own))})([-_@]|$)")
        numbers = sorted(n for n, name in names.items()
                         if pat.search(name) or (pci is not None and pci in name))
    irqs = []
    for n in numbers:
        aff = read(root, f"/proc/irq/{n}/smp_affinity_list")
        try:
            cpus = parse_cpu_list(aff, f"/proc/irq/{n}/smp_affinity_list") if aff is not None else None
        except TuneError:
            cpus = None
        irqs.append(Irq(n, names.get(n, ""), cpus))
    return irqs


def read_nic(root="/", iface: str = "") -> NicReport:
    """The interface under ``root``; a TuneError naming it when there is none."""
    base = f"/sys/class/net/{iface}"
    if not iface or "/" in iface or not at(root, base).exists():
        have = sorted(p.name for p in at(root, "/sys/class/net").glob("*")) if at(root, "/sys/class/net").is_dir() else []
        raise TuneError(f"--iface {iface}: no such interface (this host has: {', '.join(have) or 'none'})")
    pci = _pci_address(root, iface)
    node = read_int(root, f"{base}/device/numa_node")
    rep = NicReport(iface=iface, driver=_link_name(root, f"{base}/device/driver"), pci=pci,
                    numa_node=node if node is not None and node >= 0 else None)
    qdir = at(root, f"{base}/queues")
    queues = sorted((p.name for p in qdir.iterdir()), key=lambda q: (q[:2], int(q.split("-")[1]))) \
        if qdir.is_dir() else []
    for q in queues:
        if q.startswith("rx-"):
            rep.rx_queues.append(q)
            mask = read(root, f"{base}/queues/{q}/rps_cpus")
            if mask is not None:
                rep.rps[q] = mask_to_cpus(mask)
            flows = read_int(root, f"{base}/queues/{q}/rps_flow_cnt")
            if flows is not None:
                rep.rfs_flows[q] = flows
        elif q.startswith("tx-"):
            rep.tx_queues.append(q)
            mask = read(root, f"{base}/queues/{q}/xps_cpus")
            if mask is not None:
                rep.xps[q] = mask_to_cpus(mask)
    rep.rfs_entries = read_int(root, RFS_ENTRIES)
    rep.irqs = nic_irqs(root, iface, pci)
    return rep
