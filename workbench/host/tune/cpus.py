"""The CPUs the engine may run on: isolation on the kernel command line, frequency governor,
SMT siblings and NUMA node, read from ``<root>/proc`` and ``<root>/sys``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...errors import TuneError
from .paths import at, parse_cpu_list, read

ISOLATION_PARAMS = ("isolcpus", "nohz_full", "rcu_nocbs")


@dataclass
class CpuInfo:
    cpu: int
    node: int | None                       # NUMA node; None: the host shows none
    siblings: list[int]                    # SMT siblings, the CPU itself included
    governor: str | None                   # cpufreq scaling governor; None: no cpufreq here


@dataclass
class CpuReport:
    present: list[int]
    isolated: dict[str, list[int]] = field(default_factory=dict)   # param -> CPUs on the command line
    cpus: dict[int, CpuInfo] = field(default_factory=dict)
    node_cpus: dict[int, list[int]] = field(default_factory=dict)  # NUMA node -> its CPUs
    irqbalance: bool = False


def cmdline_isolation(cmdline: str) -> dict[str, list[int]]:
    """``isolcpus=domain,managed_irq,2-5 nohz_full=2-5`` -> {param: CPUs}; flags such as
    ``domain`` before the list are skipped."""
    out: dict[str, list[int]] = {}
    for word in cmdline.split():
        name, eq, value = word.partition("=")
        if name in ISOLATION_PARAMS and eq:
            cpu_part = ",".join(p for p in value.split(",") if p and (p[0].isdigit()))
            try:
                out[name] = parse_cpu_list(cpu_part, name)
            except TuneError:
                out[name] = []
    return out


def _node_of(root, cpu: int) -> int | None:
    d = at(root, f"/sys/devices/system/cpu/cpu{cpu}")
    try:
        for p in d.iterdir():
            m = re.fullmatch(r"node(\d+)", p.name)
            if m:
                return int(m.group(1))
    except OSError:
        pass
    return None


def irqbalance_running(root="/") -> bool:
    """Whether a process named irqbalance runs (it would move IRQ affinities back)."""
    try:
        for p in at(root, "/proc").iterdir():
            if p.name.isdigit() and read(root, f"/proc/{p.name}/comm") == "irqbalance":
                return True
    except OSError:
        pass
    return False


def read_cpus(root="/", cpus=()) -> CpuReport:
    present_text = read(root, "/sys/devices/system/cpu/present") or read(root, "/sys/devices/system/cpu/online")
    present = parse_cpu_list(present_text, "/sys/devices/system/cpu/present") if present_text else []
    rep = CpuReport(present=present, isolated=cmdline_isolation(read(root, "/proc/cmdline") or ""),
                    irqbalance=irqbalance_running(root))
    for node_dir in sorted(at(root, "/sys/devices/system/node").glob("node[0-9]*")):
        text = read(root, f"/sys/devices/system/node/{node_dir.name}/cpulist")
        if text is not None:
            rep.node_cpus[int(node_dir.name[4:])] = parse_cpu_list(text, f"{node_dir}/cpulist")
    for cpu in cpus:
        if present and cpu not in present:
            raise TuneError(f"--cpus: CPU {cpu} is not on this host (CPUs {present_text})")
        base = f"/sys/devices/system/cpu/cpu{cpu}"
        sib = read(root, f"{base}/topology/thread_siblings_list")
        rep.cpus[cpu] = CpuInfo(cpu=cpu, node=_node_of(root, cpu),
                                siblings=parse_cpu_list(sib, "thread_siblings_list") if sib else [cpu],
                                governor=read(root, f"{base}/cpufreq/scaling_governor"))
    return rep


def governor_path(cpu: int) -> str:
    return f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"


def node_of_cpus(rep: CpuReport, cpu: int) -> int | None:
    info = rep.cpus.get(cpu)
    if info is not None and info.node is not None:
        return info.node
    for node, cpus in rep.node_cpus.items():
        if cpu in cpus:
            return node
    return None


__all__ = ["CpuInfo", "CpuReport", "read_cpus", "cmdline_isolation", "irqbalance_running", "governor_path",
           "node_of_cpus"]
