"""``workbench tune check``: read the NIC, its IRQs, the sysctls, the CPUs and huge pages;
compare each with what live mode wants; say per area whether the host is ready, and which
``workbench live`` flags fit it.

Every row may carry the ``Change`` that would fix it; ``plan`` collects those, so a
recommendation and the change it leads to have one home.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from .cpus import CpuReport, governor_path, node_of_cpus, read_cpus
from .ethtool import UNSUPPORTED, EthtoolReading, read_ethtool
from .nic import NicReport, read_nic
from .paths import format_cpu_list
from .sysctl import hugetlbfs_mounts, read_sysctls, read_thp, sysctl_path

AREAS = ("nic", "irq", "sysctl", "cpu", "memory")
WEIGHTS = ("high", "medium", "low", "info")       # how much a row matters to live latency and drops

# sysctl -> (least value wanted, weight, why); values after the Solana validator's own tuning
# for its UDP sockets, and the kernel's busy-polling guide (Documentation/networking/napi.rst).
SYSCTL_MIN = {
    "net.core.rmem_max": (134217728, "high", "the UDP source asks SO_RCVBUF up to this; a short buffer drops bursts"),
    "net.core.rmem_default": (134217728, "medium", "sockets that do not ask get this receive buffer"),
    "net.core.wmem_max": (134217728, "low", "send buffer ceiling (workbench send, the API)"),
    "net.core.netdev_max_backlog": (30000, "medium", "per-CPU queue before the stack; overflow drops packets"),
    "net.core.netdev_budget": (600, "low", "packets one softirq round may take from the NIC"),
    "net.core.busy_read": (50, "low", "microseconds a blocking read busy-polls the NIC queue (lower latency)"),
    "net.core.busy_poll": (50, "low", "microseconds poll/select busy-poll the NIC queue"),
    "net.core.somaxconn": (4096, "low", "listen backlog of the API server"),
}
HUGEPAGES_MIN = 512                                 # 2 MiB pages: 1 GiB for the split capture's shared ring
GOVERNOR = "performance"
# offload -> (wanted on?, weight, why)
FEATURE_WANT = {
    "rx-lro": (False, "high", "LRO merges frames: the capture would see frames nobody sent"),
    "rx-gro": (False, "medium", "GRO holds packets to merge them: latency, and merged UDP with forwarding"),
    "rx-udp-gro-forwarding": (False, "low", "merges forwarded UDP datagrams into one frame"),
    "rx-gro-list": (False, "low", "chains frames into one skb (fraglist GRO)"),
}


@dataclass
class Change:
    """One setting to change. ``kind``: sysctl (target: its name), file (target: a /proc or
    /sys path), feature (target: iface, key: feature), channels/rings/coalesce (target:
    iface, key: the ethtool field). ``current`` is what it was when planned."""

    kind: str
    target: str
    key: str
    current: str
    value: str
    why: str


@dataclass
class Row:
    area: str
    setting: str
    now: str
    recommended: str
    why: str
    weight: str
    ok: bool | None                  # None: information, nothing to judge
    change: Change | None = None


@dataclass
class CheckResult:
    iface: str
    cpus: list[int]
    rows: list[Row] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    live_flags: list[str] = field(default_factory=list)
    nic: NicReport | None = None
    cpu_report: CpuReport | None = None
    ethtool: EthtoolReading | None = None

    def to_dict(self) -> dict:
        return {"iface": self.iface, "cpus": self.cpus, "verdicts": self.verdicts, "warnings": self.warnings,
                "live_flags": self.live_flags,
                "rows": [{k: v for k, v in asdict(r).items() if k != "change"} for r in self.rows]}


def irq_target_cpus(nic: NicReport, cpus: CpuReport, engine: int | None, capture: int | None) -> list[int]:
    """Where the NIC's IRQs should go: CPUs on the NIC's NUMA node, off the engine and capture
    CPUs and their SMT siblings, off isolated CPUs (isolation is for the engine); each step
    relaxed only when it leaves nothing."""
    local = cpus.node_cpus.get(nic.numa_node, []) if nic.numa_node is not None else []
    local = local or cpus.present or sorted(os.sched_getaffinity(0))
    busy: set[int] = set()
    for c in (engine, capture):
        if c is not None:
            busy.add(c)
            busy.update(cpus.cpus[c].siblings if c in cpus.cpus else [])
    isolated = set().union(*cpus.isolated.values()) if cpus.isolated else set()
    for pick in ([c for c in local if c not in busy and c not in isolated],
                 [c for c in local if c not in busy],
                 [c for c in local if c != engine]):
        if pick:
            return pick
    return local


def _nic_rows(res: CheckResult, engine, capture) -> None:
    nic, cpus, eth = res.nic, res.cpu_report, res.ethtool
    res.rows.append(Row("nic", "driver", nic.driver or "none (virtual device)", "-", "which driver owns the queues",
                        "info", None))
    res.rows.append(Row("nic", "queues", f"{len(nic.rx_queues)} rx, {len(nic.tx_queues)} tx", "-",
                        "each rx queue has its own IRQ and RSS share", "info", None))
    if engine is not None:
        enode = node_of_cpus(cpus, engine)
        ok = nic.numa_node is None or enode is None or enode == nic.numa_node
        res.rows.append(Row("cpu", f"NUMA node of engine CPU {engine}", str(enode), f"{nic.numa_node} (the NIC's)" if nic.numa_node is not None else "any (the NIC has no node)",
                            "packets cross the socket interconnect when the engine is not on the NIC's node",
                            "high", ok))
        if not ok:
            near = format_cpu_list(cpus.node_cpus.get(nic.numa_node, []))
            res.warnings.append(f"engine CPU {engine} is on NUMA node {enode} but {nic.iface} is on node "
                                f"{nic.numa_node}: every packet crosses nodes; pick an engine CPU from {near}")
    if eth is None:
        res.rows.append(Row("nic", "channels, rings, coalescing, offloads", "not read (recorded tree)", "-",
                            "ethtool settings are read from the live kernel only", "info", None))
    else:
        ch = eth.channels
        res.rows.append(Row("nic", "channels", ch if isinstance(ch, str) else
                            ", ".join(f"{k[:-6]} {ch[k]}/{ch['max_' + k[:-6]]}" for k in
                                      ("rx_count", "tx_count", "combined_count", "other_count")
                                      if ch.get("max_" + k[:-6])), "-", "queues in use / the most the NIC has",
                            "info", None))
        rg = eth.rings
        if isinstance(rg, str) or "rx" not in rg:
            res.rows.append(Row("nic", "rx ring", rg if isinstance(rg, str) else "not reported", "its maximum",
                                "a longer ring absorbs bursts", "medium", None))
        else:
            want = rg.get("rx_max", rg["rx"])
            ok = rg["rx"] >= want
            res.rows.append(Row("nic", "rx ring", str(rg["rx"]), f"{want} (the maximum)",
                                "a longer ring absorbs bursts instead of dropping", "medium", ok,
                                None if ok else Change("rings", nic.iface, "rx", str(rg["rx"]), str(want),
                                                       "rx ring to its maximum")))
        co = eth.coalesce
        if isinstance(co, str) or "rx_coalesce_usecs" not in co:
            res.rows.append(Row("nic", "rx-usecs (coalescing)", co if isinstance(co, str) else "not reported", "0",
                                "IRQ coalescing delays each packet", "medium", None))
        else:
            for key, label, why in (("use_adaptive_rx_coalesce", "adaptive-rx (coalescing)",
                                     "adaptive coalescing raises rx-usecs under load"),
                                    ("rx_coalesce_usecs", "rx-usecs (coalescing)",
                                     "IRQ coalescing delays each packet up to this long")):
                ok = co.get(key, 0) == 0
                res.rows.append(Row("nic", label, str(co.get(key)), "0", why, "medium", ok,
                                    None if ok else Change("coalesce", nic.iface, key, str(co.get(key)), "0", why)))
        for name, (want, weight, why) in FEATURE_WANT.items():
            if name not in eth.features:
                res.rows.append(Row("nic", name, UNSUPPORTED, "off", why, weight, None))
                continue
            on, changeable = eth.features[name]
            ok = on == want
            now = ("on" if on else "off") + ("" if changeable else " (fixed by the driver)")
            res.rows.append(Row("nic", name, now, "on" if want else "off", why, weight,
                                ok if changeable or ok else None,
                                None if ok or not changeable else
                                Change("feature", nic.iface, name, "on" if on else "off", "on" if want else "off", why)))
    targets = irq_target_cpus(nic, cpus, engine, capture)
    tgt = format_cpu_list(targets)
    if not nic.irqs:
        res.rows.append(Row("irq", "NIC IRQs", "none (virtual device or no MSI)", "-",
                            "a virtual NIC is served by the sender's CPU", "info", None))
    for irq in nic.irqs:
        now = format_cpu_list(irq.affinity) if irq.affinity is not None else "unreadable"
        on_engine = irq.affinity is not None and engine is not None and engine in irq.affinity
        ok = irq.affinity is not None and set(irq.affinity) <= set(targets)
        res.rows.append(Row("irq", f"IRQ {irq.number} {irq.name}", now, tgt,
                            "the NIC's interrupts belong on its node, off the engine's CPU", "high" if on_engine else "medium",
                            ok, None if ok else Change("file", irq.affinity_path, "", now, tgt,
                                                       f"IRQ {irq.number} ({irq.name}) onto {tgt}")))
    if nic.irqs:
        res.rows.append(Row("irq", "irqbalance", "running" if cpus.irqbalance else "not running", "not running",
                            "irqbalance moves IRQs back (systemctl stop irqbalance, or IRQBALANCE_BANNED_CPULIST)",
                            "medium", not cpus.irqbalance))
    if nic.rps:
        on = {q: c for q, c in nic.rps.items() if c}
        bad = engine is not None and any(engine in c for c in on.values())
        res.rows.append(Row("irq", "RPS masks", ", ".join(f"{q}:{format_cpu_list(c)}" for q, c in on.items()) or "off",
                            "off, or off the engine CPU", "RPS moves packet work to the CPUs in its mask", "low", not bad))
    entries = nic.rfs_entries
    if nic.rfs_flows or entries is not None:
        flows = {q: n for q, n in nic.rfs_flows.items() if n}
        now = (("on" if flows and entries else "off")
               + f": net.core.rps_sock_flow_entries {'absent' if entries is None else entries}, rps_flow_cnt "
               + (", ".join(f"{q}:{n}" for q, n in flows.items()) or "0"))
        res.rows.append(Row("irq", "RFS (flow steering)", now, "off, or steering off the engine CPU",
                            "RFS runs a flow's stack work on the CPU its reading socket last ran on: with the UDP "
                            "source that is the engine CPU (AF_PACKET capture is not steered by it)", "low", None))
    if nic.xps:
        on = {q: c for q, c in nic.xps.items() if c}
        res.rows.append(Row("irq", "XPS masks", ", ".join(f"{q}:{format_cpu_list(c)}" for q, c in on.items()) or "off",
                            "-", "which CPUs send on which tx queue", "info", None))


def _sysctl_rows(res: CheckResult, root, engine) -> None:
    values = read_sysctls(root)
    for name, (least, weight, why) in SYSCTL_MIN.items():
        now = values.get(name)
        ok = None if now is None else now.lstrip("-").isdigit() and int(now) >= least
        res.rows.append(Row("sysctl", name, now if now is not None else "absent", f">= {least}", why, weight, ok,
                            Change("sysctl", name, "", now, str(least), why) if ok is False else None))
    rt = values.get("kernel.sched_rt_runtime_us")
    isolated = engine is not None and engine in res.cpu_report.isolated.get("isolcpus", [])
    want = "-1" if isolated else "default (950000)"
    ok = None if rt is None else (rt == "-1" if isolated else True)
    res.rows.append(Row("sysctl", "kernel.sched_rt_runtime_us", rt or "absent", want,
                        "RT throttling pauses a SCHED_FIFO busy-poller 50 ms a second; switch it off only when "
                        "the engine CPU is isolated", "medium", ok,
                        Change("sysctl", "kernel.sched_rt_runtime_us", "", rt, "-1",
                               "no RT throttling on an isolated engine CPU") if ok is False else None))


def _memory_rows(res: CheckResult, root) -> None:
    thp = read_thp(root)
    res.rows.append(Row("memory", "transparent huge pages", thp or "absent", "madvise or always",
                        "live --hugepages backs its buffers with THP", "low", None if thp is None else
                        thp in ("madvise", "always")))
    pages = read_sysctls(root, ("vm.nr_hugepages",))["vm.nr_hugepages"]
    mounts = hugetlbfs_mounts(root)
    res.rows.append(Row("memory", "vm.nr_hugepages", pages or "absent", f">= {HUGEPAGES_MIN} with a hugetlbfs mount",
                        "the split capture shares its ring through hugetlbfs; reserve at boot "
                        "(hugepages= on the command line) to be sure to get them", "low",
                        None if pages is None else int(pages) >= HUGEPAGES_MIN and bool(mounts)))


def _cpu_rows(res: CheckResult, root, engine, capture) -> None:
    cpus = res.cpu_report
    for c, role in ((engine, "engine"), (capture, "capture")):
        if c is None:
            continue
        for param, weight in (("isolcpus", "high"), ("nohz_full", "medium"), ("rcu_nocbs", "low")):
            listed = cpus.isolated.get(param)
            res.rows.append(Row("cpu", f"{param} has {role} CPU {c}", format_cpu_list(listed) if listed else "not set",
                                f"includes {c}", "keeps the scheduler, the tick and RCU callbacks off the CPU "
                                "(kernel command line, needs a reboot)", weight if role == "engine" else "low",
                                bool(listed) and c in listed))
        info = cpus.cpus.get(c)
        if info is None:
            continue
        gov = info.governor
        res.rows.append(Row("cpu", f"governor of CPU {c}", gov or "no cpufreq", GOVERNOR,
                            "a lower clock or a ramp-up adds to every packet", "medium",
                            None if gov is None else gov == GOVERNOR,
                            Change("file", governor_path(c), "", gov, GOVERNOR, f"CPU {c} at full clock")
                            if gov is not None and gov != GOVERNOR else None))
        others = [s for s in info.siblings if s != c]
        isolated = set(cpus.isolated.get("isolcpus", []))
        res.rows.append(Row("cpu", f"SMT siblings of CPU {c}", format_cpu_list(others) or "none", "none, or idle/isolated",
                            "a busy sibling shares the core's caches and pipeline", "medium" if role == "engine" else "low",
                            not others or set(others) <= isolated))


def _live_flags(res: CheckResult, root, engine, capture, targets) -> list[str]:
    cpus, nic = res.cpu_report, res.nic
    flags = []
    if engine is None:
        local = cpus.node_cpus.get(nic.numa_node, []) if nic.numa_node is not None else cpus.present
        iso = [c for c in local if c in cpus.isolated.get("isolcpus", [])]
        free = [c for c in (iso or local) if c not in targets]
        engine = (free or iso or local or [None])[-1]
    if engine is not None:
        flags.append(f"--cpu {engine}")
    if capture is not None:
        flags += ["--split", f"--capture-cpu {capture}"]
    rt = read_sysctls(root, ("kernel.sched_rt_runtime_us",))["kernel.sched_rt_runtime_us"]
    if os.geteuid() == 0 and rt is not None:
        flags.append("--rt")
    if read_thp(root) in ("madvise", "always") or hugetlbfs_mounts(root):
        flags.append("--hugepages")
    return flags


def run_check(iface: str, cpus: list[int] | tuple = (), root="/", ethtool: bool | None = None) -> CheckResult:
    """Read everything and judge it. ``cpus``: engine CPU, then the capture CPU (optional).
    ``ethtool``: read the NIC through the kernel (default: only when ``root`` is "/")."""
    cpus = list(cpus)
    engine = cpus[0] if cpus else None
    capture = cpus[1] if len(cpus) > 1 else None
    res = CheckResult(iface=iface, cpus=cpus)
    res.nic = read_nic(root, iface)
    res.cpu_report = read_cpus(root, cpus)
    if ethtool if ethtool is not None else str(root) == "/":
        res.ethtool = read_ethtool(iface)
    _nic_rows(res, engine, capture)
    _sysctl_rows(res, root, engine)
    _cpu_rows(res, root, engine, capture)
    _memory_rows(res, root)
    for area in AREAS:
        rows = [r for r in res.rows if r.area == area and r.ok is False]
        high = sum(r.weight == "high" for r in rows)
        if not rows:
            res.verdicts[area] = "ok"
        elif high:
            res.verdicts[area] = f"needs tuning ({high} high, {len(rows) - high} other)"
        else:
            res.verdicts[area] = f"could be better ({len(rows)} lesser)"
    if res.cpu_report.irqbalance and res.nic.irqs:
        res.warnings.append("irqbalance is running: it will move the NIC's IRQs after tune apply; stop it "
                            "(systemctl stop irqbalance) or ban the engine CPU (IRQBALANCE_BANNED_CPULIST)")
    res.live_flags = _live_flags(res, root, engine, capture, irq_target_cpus(res.nic, res.cpu_report, engine, capture))
    return res


def quick_check(iface: str, cpus=(), root="/") -> dict:
    """The check's quick part, for ``workbench live`` to record the host it ran on: /proc and
    /sys only, no ethtool (importing its binding costs more than all the rest). Structured for
    summary.json: the verdict per area with the settings found wanting, and the warnings; a
    host that cannot be read gives ``error``, never an exception."""
    from ...errors import TuneError
    cpus = [c for c in cpus if c is not None]
    doc = {"iface": iface, "cpus": cpus, "areas": [], "warnings": [], "error": None}
    try:
        res = run_check(iface, cpus, root=root, ethtool=False)
    except TuneError as e:
        doc["error"] = str(e)
        return doc
    for area, verdict in res.verdicts.items():
        wanting = [{"setting": r.setting, "now": r.now, "recommended": r.recommended, "weight": r.weight}
                   for r in res.rows if r.area == area and r.ok is False]
        doc["areas"].append({"area": area, "verdict": verdict, "wanting": wanting})
    doc["warnings"] = list(res.warnings)
    return doc


def verdict_lines(doc: dict) -> list[str]:
    """``quick_check``'s result as host notes: one line with the verdict per area, then the warnings."""
    if doc["error"]:
        return [f"host check: {doc['error']}"]
    verdicts = "; ".join(f"{a['area']} {a['verdict']}" for a in doc["areas"])
    return ([f"host check: {verdicts} (workbench tune check --iface {doc['iface']} shows the table)"]
            + [f"host check: {w}" for w in doc["warnings"]])


def quick_verdicts(iface: str, cpus=(), root="/") -> list[str]:
    """``quick_check`` as host notes (see ``verdict_lines``)."""
    return verdict_lines(quick_check(iface, cpus, root))


__all__ = ["AREAS", "Change", "CheckResult", "Row", "irq_target_cpus", "quick_check", "quick_verdicts", "run_check",
           "sysctl_path", "verdict_lines"]
