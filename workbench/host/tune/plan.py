"""Plans: the changes ``tune check`` recommends, as a TOML file a person can read and edit;
``apply`` makes them and ``revert`` undoes them.

Apply is all or nothing by default (``all_or_nothing = true`` in the plan): every change is
validated and checked against the host before the first write; if the kernel then refuses
one, or a value does not read back as written, every change already made is undone (in
reverse order) and the refusal is reported. With ``all_or_nothing = false`` refused changes
are reported and the others kept. Either way the revert file holds, for each change that
stayed, the value read just before writing it, so ``revert`` restores exactly what was there.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import TuneError
from . import ethtool as eth
from .check import Change, CheckResult
from .paths import at, parse_cpu_list, read
from .sysctl import sysctl_path

KINDS = ("sysctl", "file", "feature", "channels", "rings", "coalesce")
GROUP_KEYS = {"channels": eth.CHANNEL_KEYS, "rings": eth.RING_KEYS, "coalesce": eth.COALESCE_KEYS}
# the /proc and /sys files a plan may write, and how their values are checked
FILE_RULES = (
    (re.compile(r"/proc/irq/\d+/smp_affinity_list"), "cpus"),
    (re.compile(r"/sys/devices/system/cpu/cpu\d+/cpufreq/scaling_governor"), "governor"),
    (re.compile(r"/sys/class/net/[^/]+/queues/(rx|tx)-\d+/(rps_cpus|xps_cpus)"), "mask"),
)
SYSCTL_NAME = re.compile(r"[a-z0-9_]+(\.[a-z0-9_\-]+)+")
INT_VALUE = re.compile(r"-?\d+")


@dataclass
class Plan:
    changes: list[Change]
    iface: str = ""
    root: str = "/"
    all_or_nothing: bool = True
    source: str = ""                   # the file it came from (messages name it)
    revert_of: str = ""                # set in revert files


@dataclass
class ApplyResult:
    applied: list[Change] = field(default_factory=list)      # made and read back (value = what was written)
    refused: list[tuple[Change, str]] = field(default_factory=list)
    undone: list[Change] = field(default_factory=list)
    revert_path: str | None = None

    @property
    def ok(self) -> bool:
        return not self.refused


def _q(s: str) -> str:
    return json.dumps(str(s))          # a TOML basic string is JSON's for these values


def plan_from_check(res: CheckResult, areas=None, root="/") -> Plan:
    """The changes behind every row the check found wanting, in the areas asked for."""
    changes = [r.change for r in res.rows if r.change is not None and (areas is None or r.area in areas)]
    return Plan(changes=changes, iface=res.iface, root=str(root))


def dump_plan(plan: Plan, header: str = "") -> str:
    lines = [f"# {line}" for line in header.splitlines()]
    lines += ["# Each [[change]] sets `target` (and `key`) to `value`; `current` is what it was when planned.",
              "# Edit values or delete changes freely; `workbench tune apply` checks every value first.",
              f"iface = {_q(plan.iface)}", f"root = {_q(plan.root)}",
              f"all_or_nothing = {'true' if plan.all_or_nothing else 'false'}"]
    if plan.revert_of:
        lines.append(f"revert_of = {_q(plan.revert_of)}")
    for c in plan.changes:
        lines += ["", "[[change]]"] + [f"{k} = {_q(getattr(c, k))}" for k in ("kind", "target", "key", "current",
                                                                                 "value", "why")]
    return "\n".join(lines) + "\n"


def write_plan(plan: Plan, path, header: str = "") -> Path:
    path = Path(path)
    path.write_text(dump_plan(plan, header))
    return path


def load_plan(path) -> Plan:
    """Read a plan or revert file; every field's type and every value's form checked, each
    problem named by file, change number and field."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TuneError(f"{path}: no such plan file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TuneError(f"{path}: cannot read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise TuneError(f"{path}: not a TOML plan: {e}") from None
    raw = doc.get("change", [])
    if not isinstance(raw, list):
        raise TuneError(f"{path}: `change` must be a list of [[change]] tables")
    aon = doc.get("all_or_nothing", True)
    if not isinstance(aon, bool):
        raise TuneError(f"{path}: all_or_nothing must be true or false, not {aon!r}")
    changes, problems = [], []
    for i, c in enumerate(raw, 1):
        where = f"{path} change {i}"
        if not isinstance(c, dict):
            problems.append(f"{where}: not a table")
            continue
        vals = {}
        for k in ("kind", "target", "key", "current", "value", "why"):
            v = c.get(k, "" if k in ("key", "why", "current") else None)
            if isinstance(v, bool) or v is None:
                problems.append(f"{where}: field `{k}` is missing" if v is None else f"{where}: field `{k}` must be a string")
                break
            vals[k] = str(v)
        else:
            change = Change(**vals)
            problems += [f"{where} ({change.kind} {change.target}{' ' + change.key if change.key else ''}): {p}"
                         for p in _form_problems(change)]
            changes.append(change)
    if problems:
        raise TuneError("plan not applied, nothing changed:\n  " + "\n  ".join(problems))
    return Plan(changes=changes, iface=str(doc.get("iface", "")), root=str(doc.get("root", "/")),
                all_or_nothing=aon, source=str(path), revert_of=str(doc.get("revert_of", "")))


def _form_problems(c: Change) -> list[str]:
    """What is wrong with a change on its face (no host needed)."""
    if c.kind not in KINDS:
        return [f"kind {c.kind!r} is not one of {', '.join(KINDS)}"]
    v = c.value.strip()
    if c.kind == "sysctl":
        if not SYSCTL_NAME.fullmatch(c.target):
            return [f"{c.target!r} is not a sysctl name like net.core.rmem_max"]
        if not all(INT_VALUE.fullmatch(w) for w in v.split()) or not v:
            return [f"value {c.value!r} is not an integer"]
        least = -1 if c.target == "kernel.sched_rt_runtime_us" else 0
        if any(int(w) < least for w in v.split()):
            return [f"value {c.value!r} is below {least}"]
        return []
    if c.kind == "file":
        rule = next((r for pat, r in FILE_RULES if pat.fullmatch(c.target)), None)
        if rule is None:
            return [f"{c.target!r} is not a file a plan may write (IRQ affinity, CPU governor, RPS/XPS masks)"]
        if rule == "cpus":
            try:
                if not parse_cpu_list(v, "value"):
                    return ["value is an empty CPU list"]
            except TuneError as e:
                return [str(e)]
        if rule == "governor" and not re.fullmatch(r"[a-z_]+", v):
            return [f"value {c.value!r} is not a governor name"]
        if rule == "mask" and not re.fullmatch(r"[0-9a-fA-F,]+", v):
            return [f"value {c.value!r} is not a hex CPU mask"]
        return []
    if not re.fullmatch(r"[\w.\-@:]{1,15}", c.target):
        return [f"{c.target!r} is not an interface name"]
    if c.kind == "feature":
        return [] if v in ("on", "off") else [f"value {c.value!r} must be on or off"]
    if c.key not in GROUP_KEYS[c.kind]:
        return [f"key {c.key!r} is not one of {', '.join(GROUP_KEYS[c.kind])}"]
    return [] if v.isdigit() else [f"value {c.value!r} is not a non-negative integer"]


def _path_of(c: Change) -> str:
    return sysctl_path(c.target) if c.kind == "sysctl" else c.target


def read_now(c: Change, root) -> str | None:
    """The setting's value now, in the form a plan writes it."""
    if c.kind in ("sysctl", "file"):
        text = read(root, _path_of(c))
        return " ".join(text.split()) if text is not None else None
    rd = eth.read_ethtool(c.target)
    if c.kind == "feature":
        f = rd.features.get(c.key)
        return None if f is None else ("on" if f[0] else "off")
    group = getattr(rd, c.kind)
    return None if isinstance(group, str) else str(group.get(c.key))


def _same(c: Change, a: str | None, b: str) -> bool:
    if a is None:
        return False
    if c.kind == "file" and c.target.endswith("smp_affinity_list"):
        return parse_cpu_list(a) == parse_cpu_list(b)
    if c.kind == "file" and c.target.endswith("_cpus"):
        return int(a.replace(",", ""), 16) == int(b.replace(",", ""), 16)
    return a.split() == b.split()


def _host_problems(c: Change, root) -> list[str]:
    """What the host will refuse, found before the first write."""
    if c.kind in ("sysctl", "file"):
        p = at(root, _path_of(c))
        if not p.is_file():
            return [f"{_path_of(c)} does not exist on this host"]
        if not os.access(p, os.W_OK):
            return [f"{_path_of(c)} is read-only here (not root, a read-only /proc/sys, or a setting this "
                    f"network namespace does not own)"]
        if c.kind == "file" and c.target.endswith("smp_affinity_list"):
            present = parse_cpu_list(read(root, "/sys/devices/system/cpu/present") or "0")
            extra = set(parse_cpu_list(c.value)) - set(present)
            if extra:
                return [f"CPUs {sorted(extra)} are not on this host"]
        if c.kind == "file" and c.target.endswith("scaling_governor"):
            avail = (read(root, c.target.replace("scaling_governor", "scaling_available_governors")) or "").split()
            if avail and c.value not in avail:
                return [f"governor {c.value!r} is not one of {', '.join(avail)}"]
        return []
    rd = eth.read_ethtool(c.target)
    if c.kind == "feature":
        f = rd.features.get(c.key)
        if f is None:
            return [f"feature {c.key} {eth.UNSUPPORTED}"]
        return [] if f[1] else [f"feature {c.key} is fixed by the driver (veth and some NICs cannot change it)"]
    group = getattr(rd, c.kind)
    if isinstance(group, str):
        return [f"{c.kind} {eth.UNSUPPORTED}"]
    most = group.get("max_" + c.key.replace("_count", "")) if c.kind == "channels" else \
        group.get(c.key + "_max") if c.kind == "rings" else None
    if most is not None and int(c.value) > most:
        return [f"{c.key} {c.value} is above the driver's maximum {most}"]
    return []


def _write(c: Change, root, value: str) -> None:
    if c.kind in ("sysctl", "file"):
        with open(at(root, _path_of(c)), "w") as f:
            f.write(value + "\n")
    elif c.kind == "feature":
        eth.set_feature(c.target, c.key, value == "on")
    else:
        eth.set_group(c.target, c.kind, {c.key: int(value)})


def _set(c: Change, root, value: str) -> str | None:
    """Write and read back; None when it took, else why not."""
    try:
        _write(c, root, value)
    except OSError as e:
        return f"the kernel refused: {e.strerror or e}"
    except TuneError as e:
        return f"refused: {e}"
    now = read_now(c, root)
    return None if _same(c, now, value) else f"wrote {value!r} but it reads back {now!r}"


def check_plan(plan: Plan, root=None, euid: int | None = None) -> list[str]:
    root = plan.root if root is None else root
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        return [f"applying a plan needs root (running as uid {euid}); run it with sudo"]
    problems = []
    for i, c in enumerate(plan.changes, 1):
        try:
            problems += [f"{plan.source or 'plan'} change {i} ({c.kind} {c.target}{' ' + c.key if c.key else ''}): {p}"
                         for p in _host_problems(c, root)]
        except TuneError as e:
            problems.append(f"{plan.source or 'plan'} change {i}: {e}")
    return problems


def apply_plan(plan: Plan, revert_path, root=None, euid: int | None = None) -> ApplyResult:
    """Make every change (see the module docstring for all-or-nothing). The revert file is
    written whenever anything stays changed."""
    root = plan.root if root is None else root
    problems = check_plan(plan, root, euid)
    if problems and plan.all_or_nothing:
        raise TuneError("plan not applied, nothing changed:\n  " + "\n  ".join(problems))
    res = ApplyResult()
    before: list[tuple[Change, str]] = []
    for c in plan.changes:
        try:
            was = read_now(c, root)
        except TuneError as e:
            res.refused.append((c, str(e)))
            was = None
        else:
            why = _set(c, root, c.value) if was is not None else "cannot be read on this host"
            if why is None:
                before.append((c, was))
                res.applied.append(c)
                continue
            res.refused.append((c, why))
            if was is not None:
                _set(c, root, was)                    # a half-taken write (a partial read-back) goes back too
        if plan.all_or_nothing:
            break
    if res.refused and plan.all_or_nothing:
        for c, was in reversed(before):
            _set(c, root, was)
            res.undone.append(c)
        res.applied = []
        return res
    if before:
        back = Plan(changes=[Change(c.kind, c.target, c.key, c.value, was, f"undo: {c.why}")
                             for c, was in reversed(before)],
                    iface=plan.iface, root=str(root), all_or_nothing=False, revert_of=plan.source)
        res.revert_path = str(write_plan(back, revert_path, f"revert file of {plan.source}: "
                                                            f"workbench tune revert {revert_path}"))
    return res


def revert(path, root=None, euid: int | None = None) -> ApplyResult:
    """Restore every value a revert file holds; a refusal is reported and the rest restored."""
    plan = load_plan(path)
    plan.all_or_nothing = False
    root = plan.root if root is None else root
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise TuneError(f"reverting needs root (running as uid {euid}); run it with sudo")
    res = ApplyResult()
    for c in plan.changes:
        why = _set(c, root, c.value)
        if why is None:
            res.applied.append(c)
        else:
            res.refused.append((c, why))
    return res
