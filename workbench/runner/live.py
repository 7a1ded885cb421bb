"""Live mode: capture from a NIC (AF_PACKET) or UDP sockets and run the engine until stopped.

``live()`` goes through named steps: check the arguments, open the source, make the two
Stages and the run, warm the loop up, start the engine thread, supervise it (hand full
Stages to the sinks, status, stop), then drain what is left and report. The engine's
loop is one nopython call on its own thread (engine/live.py); this module talks to it
only through the mailbox functions of engine/live_mailbox.py.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import nullcontext
from typing import Callable

import numpy as np
import pyarrow as pa

from ..capture.afpacket import InterfaceWatch
from ..capture.pcapng import PcapngWriter, _pack_epb
from ..config import Settings, check_duration
from ..engine.market.counters import D_OPPS
from ..engine.market.resync import idle_resync
from ..engine.live_mailbox import (LAT_RUN, LAT_WINDOW, Stage, active_stage, busy_ns, clear_stop, free_stage,
                                   full_stages, loop_counters, new_ex, new_latency, new_stage, request_abort,
                                   request_stop, reset_latency_window, reset_mailbox, set_returned, source_closed,
                                   stage_bytes, staged_rows)
from ..engine.state import C_PACKETS, C_TRANSACTIONS, C_TS_FIRST, C_TS_LAST, EngineState
from ..engine.precompile import compile_engine, discard_early_workers, first_run_lock
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
from .stop import DONE, FAILED, StopSignals
from .thread_setup import go_realtime, pin_and_slack

LIVE_RECORD_BYTES_MIN = 32 << 20      # bytes of the live loop's recording buffer (at least 4 polls' worth)
LIVE_SINK_DEPTH = 64                  # slices of rows queued for the sink thread before the engine waits
IFACE_CHECK_S = 0.5                   # how often the run looks whether its interface still exists
LIVE_POLL_S = 0.002                   # the calling thread hands full Stages on and checks stop this often
KERNEL_TO_SCORED = "kernel_to_scored_ns"   # latency_hist name of live mode's per-packet latency
STOP_REQUESTED = "signal or stop request"   # stop_reason when ``stop`` ended the run ("signal SIGTERM": a signal)


def live(iface: str | None, out_dir, settings: Settings | None = None, *, source: str = "afpacket",
         ports=None, cpu: int | None = None, rt: bool = False, hugepages: bool = False, record=None,
         duration: float | None = None, split: bool = False, capture_cpu: int | None = None,
         db: str | None = None, sink: Callable[[str, pa.Table], None] | None = None,
         on_status: Callable[[LiveStatus], None] | None = None, on_ready: Callable[[str], None] | None = None,
         stop: threading.Event | None = None, status_every_s: float = 0.25, parquet: bool = True,
         state: EngineState | None = None, accounts: str | None = None, rpc: str | None = None,
         seed: bool = True, opportunity_feed=None) -> LiveResult:
    """Capture from ``iface`` (AF_PACKET) or UDP ``ports`` and run the engine until stopped.

    Stops after ``duration`` seconds of capture, when ``stop`` is set, or on SIGINT / SIGTERM /
    SIGHUP (when called from the main thread), with every row written; ``result.status`` (and
    the store's ``runs`` row) says 'done', 'interrupted' or 'terminated' (runner/stop.py). An
    error ends it as 'failed' with the rows staged until then written, and is raised. The UDP
    source binds its ports only after the loop's warm-up (``warmup_before_capture``), so that
    packets are never queued while the loop compiles. The engine thread is pinned to
    ``cpu`` (other threads are kept off it); ``rt`` asks for SCHED_FIFO; ``hugepages``
    backs the staging buffers (and the ``split`` ring) with huge pages where the host
    allows; ``record`` writes every frame seen to a pcapng file. Writes the same outputs
    as ``replay`` (Parquet, optional ClickHouse via ``db``, summary.json); ``parquet=False``
    leaves the row files out (rows still go to ``db`` and ``sink``; summary.json and the
    opportunity summary stay), for a capture box that streams to the store, or to measure
    the engine alone. ``state``: the engine state to run on (a view reading its histograms
    while the run goes on); a fresh one by default. ``accounts`` (grpc://, grpcs://, ws://, wss://;
    needs a market): the snapshot's pools are kept in sync from that account stream
    (runner/live_resync.py), counted in ``result.resync``; at start they are seeded with their current
    accounts from ``rpc`` (default: the snapshot's meta.json rpc_url) unless ``seed`` is False.
    ``opportunity_feed``: as ``replay``'s (a server's).
    """
    settings, ports = _checked(iface, settings, source, ports, duration)
    if accounts:
        from .live_resync import check_accounts_url
        check_accounts_url(accounts)
        if not settings.market:
            raise ConfigError("--accounts keeps a market snapshot's pools in sync: it needs --market")
    elif rpc:
        raise ConfigError("--rpc seeds the --accounts resync: it needs --accounts")
    if rpc and not rpc.startswith(("http://", "https://")):
        from ..chain.rpc import public_url
        raise ConfigError(f"--rpc {public_url(rpc)}: not an http:// or https:// URL")
    # the output paths are checked before the source opens (and made once it is open)
    out_folder(out_dir, create=False)
    if record:
        out_file(record, "--record", create=False)
    with StopSignals(stop) as stopper:          # a signal from here on ends the run through its normal ending
        return _run_live(iface, out_dir, settings, stopper, source=source, ports=ports, cpu=cpu, rt=rt,
                         hugepages=hugepages, record=record, duration=duration, split=split,
                         capture_cpu=capture_cpu, db=db, sink=sink, on_status=on_status, on_ready=on_ready,
                         status_every_s=status_every_s, parquet=parquet, state=state, accounts=accounts, rpc=rpc,
                         seed=seed, opportunity_feed=opportunity_feed)


def _run_live(iface, out_dir, settings: Settings, stopper: StopSignals, *, source, ports, cpu, rt, hugepages, record,
              duration, split, capture_cpu, db, sink, on_status, on_ready, status_every_s, parquet, state,
              accounts=None, rpc=None, seed=True, opportunity_feed=None) -> LiveResult:
    """live() once its arguments are checked and the stop signals are caught."""
    stop = stopper.event
    # the source first: a wrong interface or a refused socket fails before any output is made
    src, notes = open_live_source(source, iface, settings, ports, split=split, cpu=cpu, capture_cpu=capture_cpu,
                                  rt=rt, hugepages=hugepages)
    watch = InterfaceWatch(iface) if source == "afpacket" else None    # a NIC that goes away ends the run
    host_check = None
    if iface:                    # the host it ran on, in the summary and summary.json (host/tune, issue #20)
        from ..host.tune.check import quick_check, verdict_lines
        host_check = quick_check(iface, (cpu, capture_cpu if split else None))
        notes.extend(verdict_lines(host_check))
    stand_in = src.stand_in()
    warm_before_capture = stand_in is not None
    if stand_in is not None:     # opening it starts capture: closed while the loop warms up on the stand-in
        src.close()
    recorder = None
    run = None
    engine = None
    loop = None
    feed = None
    ex = new_ex()
    try:
        stages = _new_stages(settings, src, record, hugepages, notes)
        params = live_loop_params(settings, bool(record), src.max_batch_bytes)
        where = record if record else f"{src.kind}://{iface or ','.join(map(str, ports))}"
        run = EngineRun(out_dir, settings, state=state, sink=sink, db=db, source="live", capture_path=str(where),
                        batch_frames=settings.live_batch_frames, sink_depth=LIVE_SINK_DEPTH, parquet=parquet,
                        opportunity_feed=opportunity_feed)
        if record:
            recorder = PcapngWriter(out_file(record, "--record"), linktype=src.linktype)
        if accounts:
            from .live_resync import AccountFeed
            from .resync_seed import seed_url
            seed_rpc, seed_note = seed_url(settings.market, rpc, seed)
            feed = AccountFeed(accounts, settings.market, int(run.market.pool_kind.shape[0]), seed_rpc=seed_rpc)
            if seed_note:
                feed.note(seed_note)
        resync = feed.rs if feed is not None else idle_resync() if run.market is not None else None
        loop = LiveLoop(stand_in or src, run, stages, ex, params, recorder, resync)
        warmup_s = stopper.warm_up(lambda stop: _warm_up(loop, feed, stop))
        if warmup_s is None:                         # a signal during the warm-up: stop before capture starts
            warmup_s, t0 = 0.0, time.perf_counter()
            reason, kernel = f"signal {stopper.signal_name}" if stopper.signal_name else STOP_REQUESTED, {}
        else:
            if stand_in is not None:                 # warm: now capture starts
                stand_in.close()
                stand_in = None
                src = src.reopen()
                loop.use_source(src)
            engine = EngineThread(loop, cpu, rt, settings.live_fifo_priority, notes)
            t0 = time.perf_counter()                 # capture start: --duration and the rates count from here
            if feed is not None:
                feed.start()
            engine.start()
            engine.ready.wait()
            if cpu is not None:                      # every other thread (this one, sinks, store) off its CPU
                for tid in _other_threads(exclude=engine.native_id):
                    pin_other_cpus(cpu, tid)
            if on_ready is not None:
                on_ready(f"capturing on {iface or 'udp ports ' + ','.join(map(str, ports))} ({src.kind})")
            reason = _supervise(loop, engine, stop, t0 + duration if duration else None, on_status, status_every_s,
                                t0, watch)
            if stopper.signal_name and reason == STOP_REQUESTED:
                reason = f"signal {stopper.signal_name}"
            loop.finish()
            kernel = src.kernel()
            if feed is not None:
                feed.stop()
        run.close_sinks()
    except BaseException as e:
        _end_on_error(engine, loop, ex)
        if run is not None:
            run.abort(FAILED, e)
            if run.parquet is not None and isinstance(e, Exception):
                e.add_note(f"every row processed before the error is in the Parquet files under {run.out}")
        raise
    finally:
        if feed is not None:
            feed.stop()
        try:
            if recorder is not None:
                recorder.close()
        finally:
            if stand_in is not None:
                stand_in.close()
            src.close()
    wall = time.perf_counter() - t0
    result = _live_result(loop, iface, wall, warmup_s, kernel, reason, notes, record)
    result.warmup_before_capture = warm_before_capture
    result.host_check = host_check
    result.market, result.opportunities, result.detect_ns, result.ml_inference_ns = run.market_summary()
    if feed is not None:
        result.resync = feed.summary(run.market)
    run.finish(result, {"packets": result.packets, "transactions": result.transactions, "drops": result.drops,
                        **{f"status_{k}": v for k, v in result.by_status.items()},
                        **{f"shreds_{k}": v for k, v in result.shreds.items()},
                        **(feed.counts() if feed is not None else {})},
               status=stopper.status or DONE, extra_hists=[(KERNEL_TO_SCORED, loop.latency())]
               + ([(feed.drift().name, feed.drift())] if feed is not None else []))
    return result


def _end_on_error(engine: "EngineThread | None", loop: "LiveLoop | None", ex: np.ndarray) -> None:
    """An error stops the run: a healthy engine thread is stopped as at a normal end and the rows
    it staged are handed on (the sinks still take them: a failed consumer gets no more); an
    engine thread that failed is aborted."""
    if engine is None or not engine.is_alive():
        if engine is not None and engine.error is None and loop is not None:
            _hand_on_quietly(loop)
        return
    loop.src.request_stop()
    request_stop(ex)
    engine.join(SPLIT_CLOSE_TIMEOUT_S)
    if engine.is_alive():
        request_abort(ex)
        engine.join(SPLIT_CLOSE_TIMEOUT_S)
    elif engine.error is None:
        _hand_on_quietly(loop)


def _hand_on_quietly(loop: "LiveLoop") -> None:
    if loop.finished:
        return
    try:
        loop.finish()
    except Exception:  # noqa: BLE001 - the first error is the one raised; these rows are best effort
        pass


# --- the steps -----------------------------------------------------------------------------------
def _checked(iface, settings, source, ports, duration) -> tuple[Settings, tuple[int, ...]]:
    """The validated settings and the ports to capture; ConfigError for arguments that cannot work."""
    settings = (settings or Settings()).validate()
    if source not in ("afpacket", "udp"):
        raise ConfigError(f"source={source!r}: one of afpacket, udp")
    ports = tuple(int(p) for p in ports) if ports else tuple(settings.transaction_ports) + tuple(settings.shred_ports)
    if source == "afpacket" and not iface:
        raise ConfigError("the afpacket source needs --iface")
    check_duration(duration, "duration")       # inf, nan, 0 and negatives refused, as the CLI's --duration
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
                 recorder: PcapngWriter | None, resync=None):
        self.src, self.run, self.stages, self.ex, self.params, self.recorder = src, run, stages, ex, params, recorder
        self.resync = resync             # engine/market/resync.py Resync (--accounts; idle with a market), else None
        self.lat_counts, self.lat_stats = new_latency()
        self.finished = False            # finish() has run: the Stages are handed on
        st0, st1 = stages
        self.args = (run.state, run.ds, run.bout, run.market, run.model, st0, st1, self.lat_counts, self.lat_stats,
                     ex, params)

    def call(self) -> int:
        """The loop itself, until it is asked to stop or its source closes (engine thread)."""
        return self.src.loop(*self.args, resync=self.resync)

    def warm_up(self, stop: Callable[[], bool] | None = None) -> float:
        """Compile (or load) the loop with this run's types before capture counts, and fault in
        every page the loop will write (first-touch faults would land in the first packets'
        latency). Returns seconds. ``stop()`` true (a signal) ends a first run's compile between
        steps: CompileStopped."""
        run, src = self.run, self.src
        t = time.perf_counter()
        cold = not src.loop_cached(*self.args, resync=self.resync)   # a first run: the engine compiled in steps
        with first_run_lock(stop=stop) if cold else nullcontext():   # (until the loop is in the cache)
            if cold and not src.loop_cached(*self.args, resync=self.resync):
                compile_engine(not src.buf.flags.writeable, run.settings.market if run.market is not None else "",
                               run.settings.model if run.model is not None else "",
                               final=("the live loop",), stop=stop)
            discard_early_workers()      # (the engine was cached after all: started for nothing)
            prefault(run.state, run.ds, run.bout, *self.stages, self.lat_counts, src.cols,
                     src.buf if src.kind != "afpacket" else ())
            request_abort(self.ex)
            src.loop(*self.args, resync=self.resync)
        clear_stop(self.ex)
        while not src.drain(*self.args):          # (compiles the final drain; nothing is queued yet)
            pass
        reset_mailbox(self.ex)
        tx_table(run.bout.tx[:0], run.bout.prog_ids[:0], run.names)
        if self.recorder is not None:
            _warm_recorder(self.stages[0])
        return time.perf_counter() - t

    def use_source(self, src: LiveSource) -> None:
        """Run on ``src`` from now on (the warm-up ran on a stand-in of the same array types);
        its buffers are faulted in before the first packet, as the warm-up does."""
        self.src = src
        prefault(src.cols, src.buf if src.kind != "afpacket" else ())

    def hand_on(self, k: int) -> None:
        """Stage k's rows to the sinks and the recording; then it is free again."""
        st = self.stages[k]
        r = staged_rows(st)
        failed = None
        try:            # a sink's error comes after the rows are queued: record and free the Stage first
            if len(r.tx) or len(r.status):
                self.run.put_rows(r.tx, r.prog_ids, r.status, r.first_index, r.ts, r.swaps, r.opps)
        except Exception as e:  # noqa: BLE001 - raised below
            failed = e
        if self.recorder is not None and len(r.rec_off):
            self.recorder.write_many(r.rec_buf, r.rec_off, r.rec_len, r.rec_ts, r.rec_wirelen)
        free_stage(st, self.ex, k)       # handed on: never handed on twice
        if failed is not None:
            raise failed

    def hand_on_full(self) -> None:
        for k in full_stages(self.ex):               # at most one is full at a time: order is kept
            self.hand_on(k)

    def finish(self) -> None:
        """After the loop returned: what the source handed over is processed, queued shred
        transactions drained, and every Stage handed on."""
        self.finished = True
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


def _warm_up(loop: LiveLoop, feed, stop) -> float:
    """The loop's warm-up, then the account feed's (its chunk kernels, before capture starts). Seconds."""
    t = time.perf_counter()
    loop.warm_up(stop)
    if feed is not None:
        feed.warm_up()
    return time.perf_counter() - t


def _supervise(loop: LiveLoop, engine: EngineThread, stop: threading.Event, end_at: float | None,
               on_status, status_every_s: float, t0: float, watch: InterfaceWatch | None = None) -> str | None:
    """While the engine thread runs: hand full Stages on, report status, and ask the loop to
    stop (on ``stop``, at ``end_at``, or when ``watch``'s interface goes away: the frames it
    delivered are processed and written as at any end). Returns why the run stopped (None: not
    asked)."""
    ex = loop.ex
    last = (t0, 0, 0, 0)
    next_status = t0 + status_every_s
    reason = None
    stop_sent_at = None
    next_watch = t0 + IFACE_CHECK_S
    while engine.is_alive():
        loop.hand_on_full()
        now = time.perf_counter()
        gone = None
        if watch is not None and reason is None and now >= next_watch:
            next_watch = now + IFACE_CHECK_S
            gone = watch.gone()
        if reason is None and (stop.is_set() or (end_at is not None and now >= end_at) or gone):
            reason = gone or (STOP_REQUESTED if stop.is_set() else "duration")
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
