"""Live mode: capture from a NIC (AF_PACKET) or UDP sockets and run the engine until stopped.

``live()`` goes through named steps: check the arguments, open the source, make the two
Stages and the run, warm the loop up, start the engine thread, supervise it (hand full
Stages to the sinks, status, stop), then drain what is left and report. The engine's
loop is one nopython call on its own thread (engine/live.py); this module talks to it
only through the mailbox functions of engine/live_mailbox.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable

import numpy as np
import pyarrow as pa

from ..capture.pcapng import PcapngWriter, _pack_epb
from ..config import Settings
from ..engine.market.counters import D_OPPS
from ..engine.live_mailbox import (LAT_RUN, LAT_WINDOW, Stage, active_stage, busy_ns, clear_stop, free_stage,
                                   full_stages, loop_counters, new_ex, new_latency, new_stage, request_abort,
                                   request_stop, reset_latency_window, reset_mailbox, set_returned, source_closed,
                                   stage_bytes, staged_rows)
from ..engine.state import C_PACKETS, C_TRANSACTIONS, C_TS_FIRST, C_TS_LAST, EngineState
from ..engine.precompile import compile_engine
from ..engine.tables import tx_table
from ..errors import ConfigError
from ..host import alloc_buffer, huge_backed_bytes
from ..host.cpu import pin_other_cpus
from ..host.memory import prefault
from ..metrics.hist import Histogram
from ..wire.status import counts_by_name
from .engine_run import EngineRun, out_file, out_folder
from .from_settings import live_loop_params
from .live_sources import SPLIT_CLOSE_TIMEOUT_S, LiveSource, open_live_source
from .results import LiveResult, LiveStatus, hist_summary, program_counts, shred_summary
from .thread_setup import go_realtime, pin_and_slack

LIVE_RECORD_BYTES_MIN = 32 << 20      # bytes of the live loop's recording buffer (at least 4 polls' worth)
LIVE_SINK_DEPTH = 64                  # slices of rows queued for the sink thread before the engine waits
LIVE_POLL_S = 0.002                   # the calling thread hands full Stages on and checks stop this often
KERNEL_TO_SCORED = "kernel_to_scored_ns"   # latency_hist name of live mode's per-packet latency


def live(iface: str | None, out_dir, settings: Settings | None = None, *, source: str = "afpacket",
         ports=None, cpu: int | None = None, rt: bool = False, hugepages: bool = False, record=None,
         duration: float | None = None, split: bool = False, capture_cpu: int | None = None,
         db: str | None = None, sink: Callable[[str, pa.Table], None] | None = None,
         on_status: Callable[[LiveStatus], None] | None = None, on_ready: Callable[[str], None] | None = None,
         stop: threading.Event | None = None, status_every_s: float = 0.25, parquet: bool = True,
         state: EngineState | None = None) -> LiveResult:
    """Capture from ``iface`` (AF_PACKET) or UDP ``ports`` and run the engine until stopped.

    Stops after ``duration`` seconds, when ``stop`` is set, or on SIGINT / SIGTERM (when
    called from the main thread), with every row written. The engine thread is pinned to
    ``cpu`` (other threads are kept off it); ``rt`` asks for SCHED_FIFO; ``hugepages``
    backs the staging buffers (and the ``split`` ring) with huge pages where the host
    allows; ``record`` writes every frame seen to a pcapng file. Writes the same outputs
    as ``replay`` (Parquet, optional ClickHouse via ``db``, summary.json); ``parquet=False``
    leaves the row files out (rows still go to ``db`` and ``sink``; summary.json and the
    opportunity summary stay), for a capture box that streams to the store, or to measure
    the engine alone. ``state``: the engine state to run on (a view reading its histograms
    while the run goes on); a fresh one by default.
    """
    settings, ports = _checked(iface, settings, source, ports, duration)
    # the output paths are checked before the source opens (and made once it is open)
    out_folder(out_dir, create=False)
    if record:
        out_file(record, "--record", create=False)
    stop = stop or threading.Event()
    # the source first: a wrong interface or a refused socket fails before any output is made
    src, notes = open_live_source(source, iface, settings, ports, split=split, cpu=cpu, capture_cpu=capture_cpu,
                                  rt=rt, hugepages=hugepages)
    recorder = None
    run = None
    old_handlers = {}
    engine = None
    ex = new_ex()
    try:
        stages = _new_stages(settings, src, record, hugepages, notes)
        params = live_loop_params(settings, bool(record), src.max_batch_bytes)
        where = record if record else f"{src.kind}://{iface or ','.join(map(str, ports))}"
        run = EngineRun(out_dir, settings, state=state, sink=sink, db=db, source="live", capture_path=str(where),
                        batch_frames=settings.live_batch_frames, sink_depth=LIVE_SINK_DEPTH, parquet=parquet)
        if record:
            recorder = PcapngWriter(out_file(record, "--record"), linktype=src.linktype)
        loop = LiveLoop(src, run, stages, ex, params, recorder)
        warmup_s = loop.warm_up()
        engine = EngineThread(loop, cpu, rt, settings.live_fifo_priority, notes)
        if threading.current_thread() is threading.main_thread():
            old_handlers = _stop_on_signals(stop)
        t0 = time.perf_counter()
        engine.start()
        engine.ready.wait()
        if cpu is not None:                          # every other thread (this one, sinks, store) off its CPU
            for tid in _other_threads(exclude=engine.native_id):
                pin_other_cpus(cpu, tid)
        if on_ready is not None:
            on_ready(f"capturing on {iface or 'udp ports ' + ','.join(map(str, ports))} ({src.kind})")
        reason = _supervise(loop, engine, stop, t0 + duration if duration else None, on_status, status_every_s, t0)
        loop.finish()
        kernel = src.kernel()
    except BaseException:
        if engine is not None and engine.is_alive():
            request_abort(ex)
            engine.join(10)
        if run is not None:
            run.fail()
        raise
    finally:
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
        try:
            if run is not None:
                run.close_sinks()
        finally:
            if recorder is not None:
                recorder.close()
            src.close()
    wall = time.perf_counter() - t0
    result = _live_result(loop, iface, wall, warmup_s, kernel, reason, notes, record)
    result.market, result.opportunities, result.detect_ns, result.ml_inference_ns = run.market_summary()
    run.finish(result, {"packets": result.packets, "transactions": result.transactions, "drops": result.drops,
                        **{f"status_{k}": v for k, v in result.by_status.items()},
                        **{f"shreds_{k}": v for k, v in result.shreds.items()}},
               status="done", extra_hists=[(KERNEL_TO_SCORED, loop.latency())])
    return result


# --- the steps -----------------------------------------------------------------------------------
def _checked(iface, settings, source, ports, duration) -> tuple[Settings, tuple[int, ...]]:
    """The validated settings and the ports to capture; ConfigError for arguments that cannot work."""
    settings = (settings or Settings()).validate()
    if source not in ("afpacket", "udp"):
        raise ConfigError(f"source={source!r}: one of afpacket, udp")
    ports = tuple(int(p) for p in ports) if ports else tuple(settings.transaction_ports) + tuple(settings.shred_ports)
    if source == "afpacket" and not iface:
        raise ConfigError("the afpacket source needs --iface")
    if duration is not None and not duration > 0:
        raise ConfigError(f"duration={duration}: must be > 0 seconds")
    return settings, ports


def _new_stages(settings: Settings, src: LiveSource, record, hugepages: bool, notes: list[str]) -> list[Stage]:
    """The loop's two Stages of rows (on huge pages if asked: a note says how many it got)."""
    rec_bytes = max(LIVE_RECORD_BYTES_MIN, 4 * src.max_batch_bytes) if record else 0
    rows = settings.live_stage_rows
    call_rows = settings.live_batch_frames
    need = stage_bytes(rows, rows, rec_bytes, call_rows)
    if not hugepages:
        return [new_stage(rows, rows, rec_bytes, call_rows=call_rows) for _ in range(2)]
    stages, huge = [], 0
    for _ in range(2):
        sbuf, how = alloc_buffer(need, hugepages=True)
        stages.append(new_stage(rows, rows, rec_bytes, buf=sbuf, call_rows=call_rows))
        huge += min(huge_backed_bytes(sbuf), sbuf.nbytes)   # (smaps may merge neighbouring mappings)
    notes.append(f"staging buffers: {how}, {huge >> 20} MiB of {2 * need >> 20} MiB on huge pages")
    return stages


class LiveLoop:
    """The engine's live loop as this process drives it: its arguments, its two Stages,
    its mailbox ``ex`` and its latency histograms; full Stages go to the run's sinks (and
    the recording)."""

    def __init__(self, src: LiveSource, run: EngineRun, stages: list[Stage], ex: np.ndarray, params: np.ndarray,
                 recorder: PcapngWriter | None):
        self.src, self.run, self.stages, self.ex, self.params, self.recorder = src, run, stages, ex, params, recorder
        self.lat_counts, self.lat_stats = new_latency()
        st0, st1 = stages
        self.args = (run.state, run.ds, run.bout, run.market, run.model, st0, st1, self.lat_counts, self.lat_stats,
                     ex, params)

    def call(self) -> int:
        """The loop itself, until it is asked to stop or its source closes (engine thread)."""
        return self.src.loop(*self.args)

    def warm_up(self) -> float:
        """Compile (or load) the loop with this run's types before capture counts, and fault in
        every page the loop will write (first-touch faults would land in the first packets'
        latency). Returns seconds."""
        run, src = self.run, self.src
        t = time.perf_counter()
        if not src.loop_cached(*self.args):        # a first run: the engine compiled in steps, announced
            compile_engine(not src.buf.flags.writeable, run.settings.market if run.market is not None else "",
                           run.settings.model if run.model is not None else "",
                           final=("the live loop and the engine loop",),
                           meanwhile=lambda: tx_table(run.bout.tx[:0], run.bout.prog_ids[:0], run.names))
        prefault(run.state, run.ds, run.bout, *self.stages, self.lat_counts, src.cols,
                 src.buf if src.kind != "afpacket" else ())
        request_abort(self.ex)
        src.loop(*self.args)
        clear_stop(self.ex)
        while not src.drain(*self.args):          # (compiles the final drain; nothing is queued yet)
            pass
        reset_mailbox(self.ex)
        tx_table(run.bout.tx[:0], run.bout.prog_ids[:0], run.names)
        if self.recorder is not None:
            _warm_recorder(self.stages[0])
        return time.perf_counter() - t

    def hand_on(self, k: int) -> None:
        """Stage k's rows to the sinks and the recording; then it is free again."""
        st = self.stages[k]
        r = staged_rows(st)
        if len(r.tx) or len(r.status):
            self.run.put_rows(r.tx, r.prog_ids, r.status, r.first_index, r.ts, r.swaps, r.opps)
        if self.recorder is not None and len(r.rec_off):
            self.recorder.write_many(r.rec_buf, r.rec_off, r.rec_len, r.rec_ts, r.rec_wirelen)
        free_stage(st, self.ex, k)

    def hand_on_full(self) -> None:
        for k in full_stages(self.ex):               # at most one is full at a time: order is kept
            self.hand_on(k)

    def finish(self) -> None:
        """After the loop returned: what the source handed over is processed, queued shred
        transactions drained, and every Stage handed on."""
        self.hand_on_full()
        while not self.src.drain(*self.args):
            self.hand_on_full()
        self.hand_on_full()
        self.hand_on(active_stage(self.ex))

    def latency(self) -> Histogram:
        """Kernel timestamp -> scored, every packet of the run."""
        return Histogram(self.lat_counts, self.lat_stats, LAT_RUN, KERNEL_TO_SCORED)

    def emit_status(self, on_status: Callable[[LiveStatus], None], t0: float, last: tuple) -> tuple:
        """Hand ``on_status`` the rates since ``last`` (time, packets, transactions, opportunities)
        and the latency window; returns the new ``last``."""
        now = time.perf_counter()
        run = self.run
        state = run.state
        packets = int(state.counters[C_PACKETS])
        txs = int(state.counters[C_TRANSACTIONS])
        t_last, p_last, x_last, o_last = last
        opps = int(state.dcount[D_OPPS])
        dt = max(1e-9, now - t_last)
        win = Histogram(self.lat_counts.copy(), self.lat_stats.copy(), LAT_WINDOW, KERNEL_TO_SCORED)
        kernel = self.src.kernel()
        on_status(LiveStatus(elapsed_s=now - t0, packets=packets, packets_per_s=(packets - p_last) / dt,
                             transactions=txs, transactions_per_s=(txs - x_last) / dt,
                             drops=int(kernel.get("drops", 0)), freezes=int(kernel.get("freezes", 0)),
                             latency_ns=win.percentiles((50, 99, 99.9)),
                             opportunities_per_s=(opps - o_last) / dt if run.market_on else None,
                             by_status=counts_by_name(state.status_counts)))
        reset_latency_window(self.ex)
        return now, packets, txs, opps


class EngineThread(threading.Thread):
    """The engine thread: pinned, RT if asked, then one nopython call until stopped. An
    exception it meets is kept in ``error`` for the calling thread to raise."""

    def __init__(self, loop: LiveLoop, cpu: int | None, rt: bool, fifo_priority: int, notes: list[str]):
        super().__init__(name="workbench-engine", daemon=True)
        self.loop, self.cpu, self.rt, self.fifo_priority, self.notes = loop, cpu, rt, fifo_priority, notes
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.notes.extend(pin_and_slack("engine thread", self.cpu))
            if self.rt:
                self.notes.extend(go_realtime("engine thread", self.fifo_priority, self.loop.params))
            self.ready.set()
            set_returned(self.loop.ex, self.loop.call())
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            self.error = e
        finally:
            self.ready.set()


def _supervise(loop: LiveLoop, engine: EngineThread, stop: threading.Event, end_at: float | None,
               on_status, status_every_s: float, t0: float) -> str | None:
    """While the engine thread runs: hand full Stages on, report status, and ask the loop to
    stop (on ``stop``, or at ``end_at``). Returns why the run stopped (None: not asked)."""
    ex = loop.ex
    last = (t0, 0, 0, 0)
    next_status = t0 + status_every_s
    reason = None
    stop_sent_at = None
    while engine.is_alive():
        loop.hand_on_full()
        now = time.perf_counter()
        if reason is None and (stop.is_set() or (end_at is not None and now >= end_at)):
            reason = "signal or stop request" if stop.is_set() else "duration"
            loop.src.request_stop()
            request_stop(ex)
            stop_sent_at = now
        if stop_sent_at is not None and now - stop_sent_at > SPLIT_CLOSE_TIMEOUT_S:
            request_abort(ex)                        # the source never closed: give up on it
        if on_status is not None and now >= next_status:
            next_status = now + status_every_s
            last = loop.emit_status(on_status, t0, last)
        engine.join(LIVE_POLL_S)
    engine.join()
    if engine.error is not None:
        raise engine.error
    if source_closed(ex) and reason is None:
        reason = "source closed"
    return reason


def _live_result(loop: LiveLoop, iface, wall: float, warmup_s: float, kernel: dict, reason, notes, record
                 ) -> LiveResult:
    run, src, ex = loop.run, loop.src, loop.ex
    state = run.state
    packets = int(state.counters[C_PACKETS])
    busy = busy_ns(ex)
    recorder = loop.recorder
    return LiveResult(
        run_id=run.run_id, source=src.kind, iface=iface or "", out_dir=str(run.out), packets=packets,
        transactions=int(state.counters[C_TRANSACTIONS]),
        by_status=counts_by_name(state.status_counts), by_program=program_counts(state),
        wall_s=wall, warmup_s=warmup_s, packets_per_s=packets / wall if wall else 0.0,
        engine_packets_per_s=packets / (busy / 1e9) if busy > 0 else 0.0,
        drops=int(kernel.get("drops", 0)), kernel=kernel, latency_ns=hist_summary(loop.latency()),
        packet_ns=run.packet_ns(),
        first_ts_ns=int(state.counters[C_TS_FIRST]), last_ts_ns=int(state.counters[C_TS_LAST]),
        stop_reason=reason or "stop", host=notes, source_counters={**src.counters(), **loop_counters(ex)},
        shreds=shred_summary(run.ds),
        recorded={"path": str(record), "frames": recorder.frames_written} if recorder is not None else None,
        outputs=run.outputs(),
    )


def _stop_on_signals(stop: threading.Event) -> dict:
    """SIGINT and SIGTERM set ``stop`` (main thread only); returns the handlers to restore."""
    return {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}


def _warm_recorder(stage: Stage) -> None:
    """Compile (or load) the pcapng packer with the recording's array types before capture starts."""
    z = np.zeros(0, np.int64)
    _pack_epb(stage.rec_buf, z, z, np.asarray(stage.rec_wirelen[:0], np.int64), z, 0, False, np.zeros(1, np.uint8))


def _other_threads(exclude: int | None = None) -> list[int]:
    """Thread ids of this process except ``exclude`` (the engine thread)."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{os.getpid()}/task") if int(t) != exclude]
    except OSError:
        return []
