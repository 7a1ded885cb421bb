"""The ``workbench`` command. Each command parses flags and calls one runner function."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from .. import __version__
from ..config import load_settings
from .db import db_app
from .chain import register as register_chain_commands
from .model import register as register_model_commands
from .serve import register as register_serve_command
from .tune import register as register_tune_commands
from ..errors import WorkbenchError
from .output import console, err_console, fail as _fail, out_file, plain, warn

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Solana MEV research and replay workbench: one numba engine over captures or a NIC.")


@app.callback()
def _before_every_command() -> None:
    # a command's imports and Arrow building allocate millions of live containers (host/interpreter.py)
    from ..host.interpreter import fewer_collections
    fewer_collections()


def _progress(unit_bytes: bool = True) -> Progress:
    counts = (DownloadColumn(), TransferSpeedColumn()) if unit_bytes else (MofNCompleteColumn(), TextColumn("packets"))
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), *counts,
                    TimeRemainingColumn(), console=err_console, transient=False)


def _fmt_int(n) -> str:
    return f"{int(n):,}"


def _kv_table() -> Table:
    """A two-column what/value table without a header (the summaries)."""
    t = Table(show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    return t


def _status_table(by_status: dict[str, int], packets: int | None = None) -> Table:
    """Packets by status, commonest first; with ``packets``, a share column too."""
    s = Table(title="packets by status", title_justify="left")
    s.add_column("status")
    s.add_column("packets", justify="right")
    if packets is not None:
        s.add_column("share", justify="right")
    for name, c in sorted(by_status.items(), key=lambda kv: -kv[1]):
        share = () if packets is None else (f"{100 * c / max(1, packets):.2f}%",)
        s.add_row(name, _fmt_int(c), *share)
    return s


def print_summary(result) -> None:
    """The replay summary as rich tables."""
    console.print(plain(f"replay of {result.capture}", "bold"))
    t = _kv_table()
    t.add_row("packets", _fmt_int(result.packets))
    t.add_row("transactions decoded", _fmt_int(result.transactions))
    t.add_row("capture span", f"{(result.last_ts_ns - result.first_ts_ns) / 1e9:.3f} s"
              if result.packets else "-")
    t.add_row("wall time", f"{result.wall_s:.3f} s")
    t.add_row("engine warm-up", f"{result.warmup_s:.2f} s" + (" (numba compiled; cached for next runs)"
                                                               if result.warmup_s > 5 else " (numba cache)"))
    t.add_row("packets/s (end to end)", _fmt_int(result.packets_per_s))
    t.add_row("packets/s (engine only)", _fmt_int(result.engine_packets_per_s))
    for k in ("p50", "p99", "p99.9"):
        t.add_row(f"processing ns/packet {k}", _fmt_int(result.packet_ns.get(k, -1)))
    console.print(t)
    console.print(_status_table(result.by_status, result.packets))
    if result.by_program:
        p = Table(title="transactions by program (top 10)", title_justify="left")
        p.add_column("program")
        p.add_column("transactions", justify="right")
        for name, c in list(result.by_program.items())[:10]:
            p.add_row(plain(name), _fmt_int(c))
        console.print(p)
    if result.shreds:
        sh = Table(title="shreds", title_justify="left", show_header=False)
        sh.add_column("what")
        sh.add_column("count", justify="right")
        for k, v in result.shreds.items():
            sh.add_row(k.replace("_", " "), _fmt_int(v))
        console.print(sh)
    if result.market:
        _print_opportunities(result)
    if result.store:
        st = result.store
        line = (f"store {escape(str(st.get('dsn', '')))}: run {result.run_id}, "
                f"{_fmt_int(st.get('rows_inserted', 0))} rows inserted")
        if st.get("rows_spooled"):
            line += (f", [bold yellow]{_fmt_int(st['rows_spooled'])} rows spooled[/] (store unreachable: "
                     f"`workbench db flush-spool` re-inserts them)")
        console.print(line, soft_wrap=True, highlight=False)
    files = "tx_features, packet_status" + (", swaps, opportunities" if result.market else "")
    console.print(plain(f"outputs: {result.out_dir}  ({files} .parquet, summary.json)"))
    if result.capture_error:
        err_console.print(f"[bold yellow]capture damaged:[/] {escape(result.capture_error)}\n"
                          f"  every packet before the damage was processed ({_fmt_int(result.packets)} packets).",
                          soft_wrap=True, highlight=False)


def _print_opportunities(result) -> None:
    m, o = result.market, result.opportunities
    t = _kv_table()
    t.add_row("swaps on snapshot pools", _fmt_int(m.get("swaps", 0)))
    t.add_row("  applied", _fmt_int(m.get("swaps_applied", 0)))
    t.add_row("  transactions failed (limit)", _fmt_int(m.get("swap_transactions_failed", 0)))
    t.add_row("swaps on pools not in the snapshot", _fmt_int(m.get("swaps_unknown_pool", 0)))
    t.add_row("swaps with an unresolved lookup table", _fmt_int(m.get("swaps_pool_unresolved", 0)))
    t.add_row("opportunities", _fmt_int(o.get("count", 0)))
    for k, v in o.get("by_type", {}).items():
        t.add_row(f"  {k}", f"{_fmt_int(v)}  ({o['expected_profit_sol_by_type'][k]:,.4f} SOL)")
    t.add_row("expected profit, total", f"{o.get('expected_profit_sol', 0.0):,.4f} SOL")
    if result.detect_ns.get("count"):
        d = result.detect_ns
        t.add_row("detection ns/opportunity p50 / p99", f"{_fmt_int(d['p50'])} / {_fmt_int(d['p99'])}")
    if result.ml_inference_ns.get("count"):
        d = result.ml_inference_ns
        t.add_row("ml_inference_ns p50 / p99 / p99.9",
                  f"{_fmt_int(d['p50'])} / {_fmt_int(d['p99'])} / {_fmt_int(d['p99.9'])}")
    console.print(t)
    if o.get("top"):
        top = Table(title="top opportunities by expected profit", title_justify="left")
        for c in ("type", "packet", "pools", "amount in", "profit (SOL)"):
            top.add_column(c, justify="right" if c in ("packet", "amount in", "profit (SOL)") else "left")
        for r in o["top"]:
            pools = " > ".join(p[:6] + "…" for p in r["pools"])
            top.add_row(plain(r["type"]), _fmt_int(r["packet_index"]), plain(pools), _fmt_int(r["amount_in"]),
                        f"{r['expected_profit_sol']:,.4f}")
        console.print(top)


@app.command()
def replay(
    capture: Path = typer.Argument(..., help="pcap or pcapng capture of Solana UDP traffic"),
    out: Path = typer.Option(Path("runs/latest"), "--out", "-o", help="folder for Parquet outputs and summary.json"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML settings file"),
    batch_frames: Optional[int] = typer.Option(None, help="frames per batch"),
    transaction_ports: Optional[str] = typer.Option(None, help="UDP ports decoded only as transactions, e.g. 8003-8009"),
    shred_ports: Optional[str] = typer.Option(None, help="UDP ports decoded only as shreds"),
    speed: Optional[float] = typer.Option(None, help="pace by capture timestamps: 1.0 = as captured, 1e-6 to 1e6; "
                                                      "unset = as fast as the machine allows (0 is refused)"),
    db: Optional[str] = typer.Option(None, "--db", help="ClickHouse DSN (default: embedded chdb:///<data_dir>/clickhouse, "
                                                        "or WORKBENCH_DB); http(s)://user:pw@host:8123/db for a server"),
    no_db: bool = typer.Option(False, "--no-db", help="Parquet outputs only, no ClickHouse"),
    market: Optional[Path] = typer.Option(None, "--market", help="market snapshot folder (pools, lookup tables, "
                                                                 "token accounts, positions): swaps and opportunities"),
    tip_lamports: Optional[int] = typer.Option(None, "--tip-lamports", help="Jito tip an opportunity must beat"),
    model: Optional[Path] = typer.Option(None, "--model", help="compiled model folder (workbench train + compile): "
                                                               "scores every opportunity inside the engine"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Replay a capture through the engine, as fast as possible or paced like the wire."""
    from ..runner import replay as run_replay
    try:
        settings = load_settings(config, batch_frames=batch_frames, transaction_ports=transaction_ports,
                                 shred_ports=shred_ports, db=db, market=str(market) if market else None,
                                 tip_lamports=tip_lamports, model=str(model) if model else None)
        dsn = None if no_db else settings.db_dsn
        if quiet or not settings.progress:
            result = run_replay(capture, out, settings, speed=speed, db=dsn)
        else:
            with _progress() as prog:
                task = prog.add_task("replay", total=capture.stat().st_size if capture.exists() else None)
                result = run_replay(capture, out, settings, speed=speed, db=dsn,
                                    progress=lambda done, total: prog.update(task, completed=done, total=total))
    except WorkbenchError as e:
        _fail_with_notes(e)
    print_summary(result)
    _stopped_early(result, "replay")
    if result.capture_error:
        raise typer.Exit(3)


def _fail_with_notes(e: Exception) -> None:
    """``error: <message>`` and the notes a run added to it (what it kept of the rows), then exit 2."""
    notes = getattr(e, "__notes__", ())
    _fail(Exception("\n  ".join([str(e), *notes])) if notes else e)


def _stopped_early(result, what: str) -> None:
    """A run a signal stopped: say what was kept, exit 128 + the signal's number (the shell's convention)."""
    from ..runner.stop import exit_code
    code = exit_code(result.status, getattr(result, "stop_signal", ""))
    if code is None:
        return
    by = getattr(result, "stop_signal", "") or "a stop request"
    kept = "the Parquet outputs" + (" and the store (or its spool)" if result.store else "")
    warn(f"{what} stopped by {by} after {_fmt_int(result.packets)} packets: every row processed is in {kept}; "
         f"the run's status is '{result.status}'", "stopped:")
    raise typer.Exit(code)


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", "-o", help="capture to write (.pcap or .pcapng)"),
    seconds: float = typer.Option(10.0, help="seconds of traffic"),
    tps: float = typer.Option(5000.0, help="mean packets per second (Poisson arrivals)"),
    seed: int = typer.Option(7, help="random seed: the same seed writes the same bytes"),
    sign: bool = typer.Option(False, "--sign", help="sign every transaction with ed25519 (slower)"),
    bad_rate: float = typer.Option(0.02, help="fraction of bad packets (truncated, garbage, ...)"),
    txn_port: int = typer.Option(8003, help="UDP destination port of the transactions"),
    market: bool = typer.Option(False, "--market", help="build a market: swaps consistent with its pools, the "
                                                        "snapshot in <out>.market/, injected opportunities and "
                                                        "<out>.opportunities.truth.parquet"),
    opportunities: Optional[float] = typer.Option(None, help="--market: injected opportunities per second "
                                                             "(default 5; 0 = a quiet capture)"),
    tip_lamports: int = typer.Option(10_000, help="--market: the tip truth profits are counted after"),
    competition: str = typer.Option("flat", help="--market: rivals close opportunities independently of them "
                                                 "('flat') or faster and likelier for attractive ones ('prize': "
                                                 "training data whose labels depend on more than profit)"),
):
    """Write a realistic, deterministic synthetic capture and its ground truth."""
    from ..synth.generate import generate_capture
    try:
        out_file(out, "--out", "capture.pcap")  # a folder named, a missing parent made: before any packet
        with _progress(unit_bytes=False) as prog:
            task = prog.add_task("generate", total=None)
            res = generate_capture(out, seconds=seconds, tps=tps, seed=seed, sign=sign, bad_rate=bad_rate,
                                   txn_port=txn_port, market=market, opportunities=opportunities,
                                   tip_lamports=tip_lamports, competition=competition,
                                   progress=lambda done, total: prog.update(task, completed=done, total=total))
    except (WorkbenchError, ValueError) as e:
        _fail(e)
    print_generate(res, seed=seed, seconds=seconds, tps=tps)


def _size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size if p.exists() else 0


def _fmt_bytes(n: int) -> str:
    for unit, k in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= k:
            return f"{n / k:,.1f} {unit}"
    return f"{n:,} B"


def print_generate(res, seed: int, seconds: float, tps: float) -> None:
    """The generate summary: what was written (sizes), what is in it, and how it was drawn."""
    console.print(plain(f"generated {res.capture}", "bold"))
    t = _kv_table()
    t.add_row("packets", _fmt_int(res.packets))
    for kind, c in sorted(res.counts.items(), key=lambda kv: -kv[1]):
        if c:
            t.add_row(plain(f"  {kind.replace('_', ' ')}"), _fmt_int(c))
    t.add_row("transactions (the replay should decode)", _fmt_int(res.transactions))
    if res.opportunities:
        o = res.opportunities
        t.add_row("opportunities planted", f"{_fmt_int(o.get('injected', 0))} of {_fmt_int(o.get('scheduled', 0))} "
                                           f"scheduled")
        for k in ("sandwich", "arbitrage", "liquidation"):
            t.add_row(f"  {k} (truth rows)", _fmt_int(o.get(k, 0)))
    t.add_row("seed", str(seed))
    t.add_row("capture span / mean rate", f"{seconds:g} s / {tps:,.0f} packets/s")
    t.add_row("wall time", f"{res.elapsed_s:.2f} s ({_fmt_int(res.packets_per_s if res.elapsed_s > 0 else 0)} "
                           f"packets/s)")
    console.print(t)
    f = Table(title="files written", title_justify="left")
    f.add_column("file")
    f.add_column("size", justify="right")
    for path in (res.capture, res.truth, res.opportunities_truth, res.market):
        if path is not None:
            f.add_row(plain(f"{path}{'/' if Path(path).is_dir() else ''}"), _fmt_bytes(_size(path)))
    console.print(f)


@app.command()
def inspect(
    capture: Path = typer.Argument(..., help="pcap or pcapng capture"),
    frame: int = typer.Argument(..., help="frame index, from 0 (packet_index in the outputs)"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML settings file (ports)"),
    offsets: bool = typer.Option(False, "--offsets", help="the decoder's own fields instead: offsets into the "
                                                          "payload, counts, the engine's instruction rows"),
    market: Optional[Path] = typer.Option(None, "--market", help="market snapshot folder (e.g. CAPTURE.market): "
                                                                 "resolves lookup-table accounts and names pools, "
                                                                 "vaults and mints by token symbol"),
):
    """Show one frame as the explorer does: time, UDP ports, the engine's verdict; for a transaction its signature, account keys and roles, programs by name, instructions as the engine's decoders read them, swaps (pool, direction, exact amounts), transfers and Jito tips; for a shred its header."""
    from ..frame_report import inspect_frame
    from .inspect_view import market_labels, print_frame, print_offsets, print_transaction
    tables, names = {}, {}
    try:
        settings = load_settings(config)
        rep = inspect_frame(capture, frame, settings)
        if market is not None and not offsets:
            tables, names = market_labels(market)
    except WorkbenchError as e:
        _fail(e)
    if offsets:
        print_offsets(rep)
    elif rep.status == "transaction":
        from ..dissect import describe_transaction
        print_transaction(rep, describe_transaction(rep.payload, tables), names)
    else:
        kind = ""
        if rep.shred:
            from ..dissect import SolanaShred
            kind = str(SolanaShred(rep.payload).kind)
        print_frame(rep, kind)
    err = rep.error()
    if err is not None:
        err_console.print(f"[bold yellow]WireError:[/] {escape(str(err))}", soft_wrap=True, highlight=False)


def _fmt_ns(v) -> str:
    v = int(v)
    if v < 0:
        return "-"
    return f"{v / 1000:,.1f} us" if v >= 1000 else f"{v} ns"


@app.command()
def send(
    capture: Path = typer.Argument(..., help="pcap or pcapng capture of Ethernet frames"),
    iface: str = typer.Option(..., "--iface", "-i", help="interface to send out of (AF_PACKET, needs root)"),
    speed: Optional[float] = typer.Option(None, help="keep the capture's gaps, divided by this (1.0 = as captured; "
                                                      "1e-6 to 1e6)"),
    pps: Optional[float] = typer.Option(None, help="a fixed rate, packets per second (0.001 to 2e8)"),
    topspeed: bool = typer.Option(False, "--topspeed", help="as fast as the interface takes them"),
    loop: int = typer.Option(1, help="send the capture this many times"),
    limit: Optional[int] = typer.Option(None, help="stop after this many packets (loops included)"),
    cpu: Optional[int] = typer.Option(None, help="pin the sender to this CPU"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
):
    """Put a capture on the wire like tcpreplay, paced from one start instant (no drift)."""
    import json as _json
    from ..runner import send as run_send
    try:
        res = run_send(capture, iface, speed=speed, pps=pps, topspeed=topspeed, loop=loop, limit=limit, cpu=cpu)
    except WorkbenchError as e:
        _fail(e)
    if json_out:
        console.print_json(_json.dumps(res.to_dict()))
        return
    t = Table(show_header=False, title=plain(f"sent {res.capture} out of {res.iface} ({res.mode}, {res.loops} loop(s))"),
              title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    t.add_row("packets sent", _fmt_int(res.packets))
    t.add_row("bytes sent", _fmt_int(res.bytes))
    t.add_row("refused by the kernel", _fmt_int(res.send_errors))
    t.add_row("wall time", f"{res.wall_s:.3f} s")
    t.add_row("achieved packets/s", _fmt_int(res.pps))
    t.add_row("target packets/s", _fmt_int(res.target_pps) if res.target_pps else "-")
    for k, v in res.pace_error_ns.items():
        t.add_row(f"pacing error {k}", _fmt_ns(v))
    t.add_row("sendmmsg calls", _fmt_int(res.syscalls))
    console.print(t)


def _live_view(st) -> Table:
    t = Table(title=f"live  {st.elapsed_s:,.1f} s", title_justify="left", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    t.add_row("packets/s", _fmt_int(st.packets_per_s))
    t.add_row("packets", _fmt_int(st.packets))
    t.add_row("drops (kernel)", f"[bold red]{_fmt_int(st.drops)}[/]" if st.drops else "0")
    if st.freezes:
        t.add_row("queue freezes", f"[bold red]{_fmt_int(st.freezes)}[/]")
    for k in ("p50", "p99", "p99.9"):
        t.add_row(f"latency {k} (kernel -> scored)", _fmt_ns(st.latency_ns.get(k, -1)))
    t.add_row("transactions/s", _fmt_int(st.transactions_per_s))
    t.add_row("opportunities/s", "-" if st.opportunities_per_s is None else _fmt_int(st.opportunities_per_s))
    return t


def print_live_summary(r) -> None:
    status = getattr(r, "status", "done")
    console.print(plain(f"live capture on {r.iface or 'udp'} ({r.source}), stopped by {r.stop_reason} "
                        f"(status {status})", "bold"))
    t = _kv_table()
    t.add_row("packets", _fmt_int(r.packets))
    t.add_row("transactions decoded", _fmt_int(r.transactions))
    t.add_row("drops (kernel)", _fmt_int(r.drops))
    t.add_row("capture time", f"{r.wall_s:.3f} s")
    t.add_row("engine warm-up", f"{r.warmup_s:.2f} s " + (
        "(before capture: not in the capture time or the latency)" if getattr(r, "warmup_before_capture", False) else
        "(the source was capturing meanwhile: packets queued then were scored late)"))
    t.add_row("packets/s", _fmt_int(r.packets_per_s))
    for k in ("p50", "p99", "p99.9", "max"):
        t.add_row(f"latency {k} (kernel -> scored)", _fmt_ns(r.latency_ns.get(k, -1)))
    for k in ("p50", "p99", "p99.9"):
        t.add_row(f"processing ns/packet {k}", _fmt_int(r.packet_ns.get(k, -1)))
    console.print(t)
    console.print(_status_table(r.by_status))
    if r.market:
        _print_opportunities(r)
    if getattr(r, "resync", None):
        _print_resync(r.resync)
    for note in r.host:
        console.print(f"host: {escape(note)}", highlight=False, soft_wrap=True)
    if r.recorded:
        console.print(plain(f"recorded {_fmt_int(r.recorded['frames'])} frames to {r.recorded['path']}"))
    files = "tx_features, packet_status" + (", swaps, opportunities" if r.market else "")
    parquet = any(str(k) != "summary" for k in (r.outputs or {}))
    console.print(plain(f"outputs: {r.out_dir}  ({files + ' .parquet, ' if parquet else ''}summary.json)"))


def _print_resync(rs: dict) -> None:
    """--accounts: what the live resync took, applied and ignored, and the drift it measured."""
    t = _kv_table()
    t.add_row("resync endpoint", escape(rs["endpoint"]))
    for k in ("account_updates", "states_handed", "states_applied", "stale_account_updates", "stale_states",
              "waiting_for_accounts", "rejected_updates", "superseded_states", "dropped_full", "still_queued",
              "fee_changes"):
        t.add_row(f"resync {k.replace('_', ' ')}", _fmt_int(rs.get(k, 0)))
    seed = rs.get("seed") or {}
    if seed:
        t.add_row("resync seed", escape(f"{seed.get('accounts', 0):,} accounts, {seed.get('configs', 0):,} AmmConfigs "
                                        f"from {seed.get('rpc', '')}" + (" (failed)" if "error" in seed else "")
                                        + (" (the run stopped before it came back)" if seed.get("stopped") else "")))
    d = rs.get("drift_ppm", {})
    for k in ("p50", "p99", "max"):
        t.add_row(f"resync drift {k} (ppm, |predicted - chain| / chain)", _fmt_int(d.get(k, -1)))
    console.print(t)
    for note in rs.get("notes", []):
        console.print(f"resync: {escape(note)}", highlight=False, soft_wrap=True)


@app.command()
def live(
    iface: Optional[str] = typer.Option(None, "--iface", "-i", help="interface to capture on (afpacket source)"),
    ports: Optional[str] = typer.Option(None, help="UDP ports to capture, e.g. 8001,8003-8009 (afpacket: a BPF "
                                                   "filter, none = every frame; udp: the ports to bind)"),
    source: str = typer.Option("afpacket", help="afpacket (TPACKET_V3 ring, root) or udp (plain sockets)"),
    out: Path = typer.Option(Path("runs/live"), "--out", "-o", help="folder for Parquet outputs and summary.json"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML settings file"),
    cpu: Optional[int] = typer.Option(None, help="pin the engine thread to this CPU (others stay off it)"),
    rt: bool = typer.Option(False, "--rt", help="ask for SCHED_FIFO (reported if the host refuses)"),
    hugepages: bool = typer.Option(False, "--hugepages", help="back the buffers with huge pages where the host allows"),
    record: Optional[Path] = typer.Option(None, "--record", help="also write every frame seen to this pcapng"),
    duration: Optional[float] = typer.Option(None, help="stop after this many seconds (else on Ctrl-C / SIGTERM)"),
    split: bool = typer.Option(False, "--split",
                               help="capture in a second pinned process, through a shared-memory ring"),
    capture_cpu: Optional[int] = typer.Option(None, help="--split: CPU of the capture process (default: the next one)"),
    transaction_ports: Optional[str] = typer.Option(None, help="UDP ports decoded only as transactions"),
    shred_ports: Optional[str] = typer.Option(None, help="UDP ports decoded only as shreds"),
    db: Optional[str] = typer.Option(None, "--db", help="ClickHouse DSN (default: the embedded store)"),
    no_db: bool = typer.Option(False, "--no-db", help="Parquet outputs only, no ClickHouse"),
    no_parquet: bool = typer.Option(False, "--no-parquet", help="no Parquet row files (rows still go to the store "
                                                                "unless --no-db; summary.json stays)"),
    market: Optional[Path] = typer.Option(None, "--market", help="market snapshot folder: swaps and opportunities"),
    model: Optional[Path] = typer.Option(None, "--model", help="compiled model folder: scores every opportunity"),
    accounts: Optional[str] = typer.Option(None, "--accounts",
                                           help="keep the --market pools in sync from the chain: grpc://HOST:PORT "
                                                "(Yellowstone Subscribe) or ws(s)://... (accountSubscribe)"),
    rpc: Optional[str] = typer.Option(None, "--rpc", help="--accounts: JSON-RPC URL the pools are seeded from at "
                                                          "start (default: the snapshot's meta.json rpc_url)"),
    no_seed: bool = typer.Option(False, "--no-seed", help="--accounts: no seed; each pool waits until the stream "
                                                          "has sent its pool account and both vaults"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no live view"),
):
    """Capture live traffic and run the engine on it: a live view, then the replay outputs."""
    from ..config import check_duration, parse_ports
    from ..runner import live as run_live
    try:
        settings = load_settings(config, transaction_ports=transaction_ports, shred_ports=shred_ports, db=db,
                                 market=str(market) if market else None, model=str(model) if model else None)
        port_list = parse_ports(ports, "--ports") if ports else None     # port 0 refused: the OS would pick one
        duration = check_duration(duration, "--duration")
        dsn = None if no_db else settings.db_dsn
        ready = lambda msg: err_console.print(f"[bold]{escape(msg)}[/]  (Ctrl-C stops)", highlight=False)  # noqa: E731
        kw = dict(source=source, ports=port_list, cpu=cpu, rt=rt, hugepages=hugepages, record=record,
                  duration=duration, split=split, capture_cpu=capture_cpu, db=dsn, on_ready=ready,
                  parquet=not no_parquet, accounts=accounts, rpc=rpc, seed=not no_seed)
        if quiet or not settings.progress or not console.is_terminal:
            result = run_live(iface, out, settings, **kw)
        else:
            from rich.live import Live
            with Live(console=console, refresh_per_second=4, transient=True) as view:
                result = run_live(iface, out, settings, on_status=lambda st: view.update(_live_view(st)), **kw)
    except WorkbenchError as e:
        _fail(e)
    print_live_summary(result)


app.add_typer(db_app, name="db", help="Query and manage the ClickHouse store (embedded chDB or a server).")
register_model_commands(app)   # train, compile (cli/model.py)
register_chain_commands(app)   # snapshot (cli/chain.py)
register_serve_command(app)    # serve (cli/serve.py)
register_tune_commands(app)    # tune check|plan|apply|revert (cli/tune.py)


@app.command()
def version():
    """Print the workbench version."""
    console.print(__version__)


def main():  # pragma: no cover
    """The ``workbench`` script and ``python -m workbench.cli``: the command, then an exit that skips
    freeing the heap object by object (host/interpreter.py)."""
    from ..host.interpreter import exit_without_teardown
    try:
        code = app()
    except SystemExit as e:
        code = e.code
    exit_without_teardown(code)

