"""``workbench tune check | plan | apply | revert`` (issue #20): a thin face over
workbench/host/tune/. ``register(app)`` adds the ``tune`` group to the main app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import WorkbenchError
from .output import console, err_console, fail as _fail, out_file, plain, warn

tune_app = typer.Typer(no_args_is_help=True, add_completion=False,
                       help="Check, plan, apply and revert host tuning for live mode (NIC, IRQs, sysctls, CPUs).")

ROOT_HELP = "root folder the readers see /proc and /sys under (a recorded tree; default the host)"


def _cpus(text: Optional[str]) -> list[int]:
    from ..host.tune.paths import parse_cpu_list
    if not text:
        return []
    parts = [p.strip() for p in text.split(",")]
    cpus = []
    for p in parts:
        got = parse_cpu_list(p, "--cpus")
        if len(got) != 1:
            raise WorkbenchError(f"--cpus {text}: give ENGINE_CPU[,CAPTURE_CPU], single CPUs, not ranges")
        cpus += got
    if len(cpus) > 2 or len(set(cpus)) != len(cpus):
        raise WorkbenchError(f"--cpus {text}: give ENGINE_CPU[,CAPTURE_CPU] (two different CPUs at most)")
    return cpus


def _areas(text: Optional[str]):
    from ..host.tune.check import AREAS
    if not text:
        return None
    got = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in got if a not in AREAS]
    if bad:
        raise WorkbenchError(f"--areas {text}: {', '.join(bad)} not one of {', '.join(AREAS)}")
    return got


def print_check(res) -> None:
    t = Table(title=plain(f"host check for {res.iface}" + (f", CPUs {res.cpus}" if res.cpus else "")),
              title_justify="left")
    for col in ("area", "setting", "now", "recommended", "why", "matters"):
        t.add_column(col, overflow="fold")
    for r in res.rows:
        mark = {True: "ok", False: r.weight.upper() if r.weight == "high" else r.weight, None: "-"}[r.ok]
        t.add_row(r.area, plain(r.setting), plain(r.now), plain(r.recommended), plain(r.why), mark)
    console.print(t)
    for w in res.warnings:
        warn(w, "warning:")
    for area, verdict in res.verdicts.items():
        console.print(plain(f"{area}: {verdict}"))
    console.print(plain(f"workbench live flags for this host: {' '.join(res.live_flags) or '(none)'}", "bold"))


@tune_app.command()
def check(
    iface: str = typer.Option(..., "--iface", "-i", help="the interface live mode captures on"),
    cpus: Optional[str] = typer.Option(None, "--cpus", help="ENGINE_CPU[,CAPTURE_CPU]"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
    root: Path = typer.Option(Path("/"), "--root", help=ROOT_HELP),
):
    """Read the NIC, its IRQs, sysctls, CPUs and huge pages; say what to change and how much it matters."""
    from ..host.tune.check import run_check
    try:
        res = run_check(iface, _cpus(cpus), root=str(root))
    except WorkbenchError as e:
        _fail(e)
    if json_out:
        console.print_json(json.dumps(res.to_dict()))
    else:
        print_check(res)


@tune_app.command()
def plan(
    iface: str = typer.Option(..., "--iface", "-i", help="the interface live mode captures on"),
    cpus: Optional[str] = typer.Option(None, "--cpus", help="ENGINE_CPU[,CAPTURE_CPU]"),
    out: Path = typer.Option(Path("tune-plan.toml"), "--out", "-o", help="plan file to write"),
    areas: Optional[str] = typer.Option(None, "--areas", help="only these areas: nic,irq,sysctl,cpu,memory"),
    channels: Optional[int] = typer.Option(None, "--channels", help="also set the NIC's rx queue count (veth: rx) "
                                                                    "or combined channels to this"),
    root: Path = typer.Option(Path("/"), "--root", help=ROOT_HELP),
):
    """Write the changes the check recommends, each with its current value. Nothing is changed."""
    from ..host.tune.check import Change, run_check
    from ..host.tune.plan import plan_from_check, write_plan
    try:
        cpu_list = _cpus(cpus)
        out_file(out, "--out", "plan.toml")
        res = run_check(iface, cpu_list, root=str(root))
        p = plan_from_check(res, _areas(areas), root=str(root))
        if channels is not None:
            ch = res.ethtool.channels if res.ethtool else None
            if not isinstance(ch, dict):
                raise WorkbenchError(f"--channels: {iface} channels cannot be read here")
            key = "combined_count" if ch.get("max_combined") else "rx_count"
            irq_changes = [c for c in p.changes if c.target.startswith("/proc/irq/")]
            if irq_changes:        # new queue counts bring new IRQ numbers: their affinity is planned afterwards
                p.changes = [c for c in p.changes if c not in irq_changes]
                warn(f"--channels renumbers {iface}'s IRQs: {len(irq_changes)} IRQ affinity change(s) left out; "
                     f"after apply, run tune plan again (without --channels) for them")
            p.changes.insert(0, Change("channels", iface, key, str(ch.get(key)), str(channels),
                                       f"{channels} queues asked with --channels"))
        write_plan(p, out, f"workbench tune plan --iface {iface}" + (f" --cpus {cpus}" if cpus else ""))
    except WorkbenchError as e:
        _fail(e)
    for w in res.warnings:
        warn(w, "warning:")
    t = Table(title=plain(f"plan {out}: {len(p.changes)} change(s); apply with: workbench tune apply {out}"),
              title_justify="left")
    for col in ("kind", "target", "now", "to", "why"):
        t.add_column(col)
    for c in p.changes:
        t.add_row(c.kind, plain(c.target + (f" {c.key}" if c.key else "")), plain(c.current), plain(c.value),
                  plain(c.why))
    console.print(t)


def _print_result(res, verb: str) -> None:
    for c in res.applied:
        console.print(plain(f"{verb} {c.kind} {c.target}{' ' + c.key if c.key else ''} = {c.value} (read back)"))
    for c, why in res.refused:
        warn(f"{c.kind} {c.target}{' ' + c.key if c.key else ''} = {c.value}: {why}", "refused:")
    for c in res.undone:
        warn(f"{c.kind} {c.target}{' ' + c.key if c.key else ''} back to {c.current}", "undone:")


@tune_app.command()
def apply(
    plan_file: Path = typer.Argument(..., help="plan written by workbench tune plan (maybe edited)"),
    revert_file: Optional[Path] = typer.Option(None, "--revert-file", help="where to write the revert file "
                                                                           "(default: PLAN.revert.toml)"),
    root: Optional[Path] = typer.Option(None, "--root", help="override the plan's root folder"),
):
    """Apply a plan (root): every value checked first, read back after; all or nothing unless the plan says otherwise."""
    from ..host.tune.plan import apply_plan, load_plan
    target = revert_file or plan_file.with_suffix(".revert.toml")
    try:
        p = load_plan(plan_file)
        out_file(target, "--revert-file", "plan.revert.toml")
        res = apply_plan(p, target, root=str(root) if root else None)
    except WorkbenchError as e:
        _fail(e)
    _print_result(res, "set")
    if res.revert_path:
        console.print(plain(f"revert file: {res.revert_path}  (workbench tune revert {res.revert_path})", "bold"))
    if not res.ok:
        err_console.print("nothing changed: the plan is all-or-nothing" if p.all_or_nothing and not res.applied
                          else "some changes were refused", style="bold red", highlight=False)
        raise typer.Exit(1)


@tune_app.command()
def revert(
    revert_file: Path = typer.Argument(..., help="revert file written by workbench tune apply"),
    root: Optional[Path] = typer.Option(None, "--root", help="override the file's root folder"),
):
    """Restore every value a revert file holds (root)."""
    from ..host.tune.plan import revert as run_revert
    try:
        res = run_revert(revert_file, root=str(root) if root else None)
    except WorkbenchError as e:
        _fail(e)
    _print_result(res, "restored")
    if not res.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(tune_app, name="tune", help="Check, plan, apply and revert host tuning for live mode.")
