"""Composes a source, the engine and the sinks. The CLI, panel apps and notebooks call this.

``replay(capture, out_dir)`` runs the one engine over a capture file: batches from the
memory-mapped reader go through ``process_batch``; rows become Arrow tables once per
batch and go to Parquet (and to the ClickHouse store, when one is given). A damaged
capture is processed up to the damage, and the error is kept in the result and summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from .capture import open_capture
from .capture.frames import FrameBatch, empty_columns
from .capture.pace import Pacer
from .engine.deshred import counters_dict
from .config import Settings
from .engine.pipeline import new_batch_out, process_batch
from .engine.precompile import engine_cached, parallel_warm_up
from .engine.pipeline import N_OPPS, N_SWAPS
from .engine.state import (market_of, model_of, C_PACKETS, C_TS_FIRST, C_TS_LAST, COUNTER_NAMES, HIST_DETECT_NS, HIST_NAMES, HIST_PACKET_NS,
                           HIST_SCORE_NS,
                           EngineState, deshred_from_settings, state_from_settings)
from .engine.detect import D_OPPS, DETECT_COUNTER_NAMES
from .engine.tables import (KeyNames, MarketNames, empty_opp_table, empty_swap_table, empty_tx_table, status_table,
                            store_opportunities, tx_table)
from .sinks import ParquetSink, SinkThread
from .engine.live import drain_queued, live_afpacket, live_spsc, live_udp
from .errors import CaptureError, ConfigError
from .metrics.hist import Histogram
from .wire.keys import PROGRAM_NAMES, N_KNOWN_PROGRAMS, key_to_base58
from .wire.status import counts_by_name

@dataclass(kw_only=True)
class RunResult:
    """What every run reports, replay or live (summary.json, the CLI summary)."""

    run_id: str
    out_dir: str
    packets: int
    transactions: int
    by_status: dict[str, int]
    by_program: dict[str, int]
    wall_s: float
    warmup_s: float
    packets_per_s: float
    engine_packets_per_s: float
    packet_ns: dict                  # engine processing per packet (1 in latency_sample_every)
    first_ts_ns: int
    last_ts_ns: int
    shreds: dict = field(default_factory=dict)
    market: dict = field(default_factory=dict)          # swap and detection counters (engine/detect.py); {} without
    opportunities: dict = field(default_factory=dict)   # count, by_type, expected_profit_sol, top ten
    detect_ns: dict = field(default_factory=dict)       # detection cost per opportunity: p50, p99, p99.9, max
    ml_inference_ns: dict = field(default_factory=dict)  # model score per opportunity (with --model): p50, p99, ...
    outputs: dict[str, str] = field(default_factory=dict)
    store: dict | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@dataclass(kw_only=True)
class ReplayResult(RunResult):
    capture: str
    engine_s: float
    capture_error: str | None = None
    pace_max_lag_ns: int | None = None


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def program_counts(state: EngineState, top: int | None = None) -> dict[str, int]:
    """Transactions per program, by name for known programs, base58 otherwise."""
    counts = state.prog_tx_counts
    ids = np.nonzero(counts)[0]
    ids = ids[np.argsort(-counts[ids], kind="stable")]
    if top is not None:
        ids = ids[:top]
    return {(PROGRAM_NAMES[i] if i < N_KNOWN_PROGRAMS else key_to_base58(state.keys, int(i))): int(counts[i])
            for i in ids}


def empty_batch(buf: np.ndarray) -> FrameBatch:
    """A batch of no frames over ``buf``: drains queued shred transactions. It views the
    source's own buffer so that numba sees the same types (a read-only memmap is not the
    same array type as a writable array, and each type is compiled apart)."""
    return FrameBatch(buf, *empty_columns(0), 0)


def warm_up(buf: np.ndarray, state: EngineState, ds, bout, market=None, model=None, market_folder: str = "") -> float:
    """Compile (first run) or load from the numba cache every kernel the run will call,
    with the run's own array types, before the clock of the run starts. Returns seconds."""
    t = time.perf_counter()
    if not engine_cached() and os.cpu_count() and os.cpu_count() > 1:
        parallel_warm_up(not buf.flags.writeable, state, ds, bout, market_folder, market)
    process_batch(empty_batch(buf), state, ds, bout, 0, market, model)
    tx_table(bout.tx[:0], bout.prog_ids[:0], KeyNames(state.keys))
    return time.perf_counter() - t


def shred_summary(ds) -> dict[str, int]:
    """Counters of the shred reassembly that are not zero."""
    return {k: v for k, v in counters_dict(ds).items() if v}


class EngineRun:
    """One run of the engine and its sinks: what replay and live mode share.

    Holds the engine state, the reusable output rows, and the sinks (Parquet, the
    optional ClickHouse store, an optional extra ``sink`` callable) behind one SinkThread.
    ``feed`` is the replay loop over one FrameBatch (optionally paced); live mode runs its
    loop in nopython code and hands its staged rows to ``put_rows``. ``drain`` moves the
    shred transactions still queued at the end; ``finish`` writes the latency histograms,
    the final ``runs`` row and ``summary.json``.
    """

    def __init__(self, out_dir, settings: Settings, *, state: EngineState | None = None, ds=None,
                 sink: Callable[[str, pa.Table], None] | None = None, db: str | None = None,
                 source: str = "replay", capture_path: str = "", capture_sha256: str = "",
                 batch_frames: int | None = None, sink_depth: int = 4, market=None, parquet: bool = True):
        self.settings = settings
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state = state if state is not None else state_from_settings(settings)
        self.ds = ds if ds is not None else deshred_from_settings(settings)
        self.bout = new_batch_out(batch_frames or settings.batch_frames)
        self.names = KeyNames(self.state.keys)
        self.market = market if market is not None else market_of(settings.market, self.state)
        self.model = model_of(settings.model)
        self.market_on = self.market is not None
        self.market_names = MarketNames(self.names, self.market) if self.market is not None else None
        self.run_id = str(uuid.uuid4())
        # parquet=False (live --no-parquet): no row files; rows still reach the store and ``sink``
        self.parquet = ParquetSink(self.out, self.names) if parquet else None
        self.writer = (_open_store(db, settings, self.run_id, source=source, capture_path=capture_path,
                                   capture_sha256=capture_sha256) if db else None)
        consumers = ([self.parquet.write] if self.parquet is not None else []) + ([sink] if sink is not None else [])
        if self.writer is not None:
            writer = self.writer
            def to_store(name, table, writer=writer, source=source):
                # the store keeps tx_features and opportunities (packet_status and swaps stay in Parquet)
                if name == "tx_features":
                    writer.put(name, table)
                elif name == "opportunities":
                    writer.put("mev_opportunities", store_opportunities(table, source))
            consumers.append(to_store)
        # opportunity ids are seeded by the capture's sha256 (the store's, or computed at the first one)
        capture_id = (lambda: capture_sha256) if capture_sha256 else (
            (lambda: file_sha256(capture_path)) if capture_path and Path(capture_path).is_file() else
            (lambda: self.run_id))
        self.sinks = SinkThread(self.names, consumers, depth=sink_depth, market_names=self.market_names,
                                capture_id=capture_id)
        self.engine_s = 0.0
        self._closed = False

    def warm_up(self, buf: np.ndarray) -> float:
        return warm_up(buf, self.state, self.ds, self.bout, self.market, self.model, self.settings.market)

    def feed(self, batch: FrameBatch, pacer: Pacer | None = None) -> None:
        """Process every frame of ``batch`` (released as ``pacer`` says) and hand the rows on."""
        state, ds, bout, sinks = self.state, self.ds, self.bout, self.sinks
        start = 0
        while start < batch.n:
            part = batch
            if pacer is not None:
                end = pacer.wait_due(batch.ts_ns, start)
                if end < batch.n:
                    part = batch._replace(off=batch.off[:end], caplen=batch.caplen[:end],
                                          wirelen=batch.wirelen[:end], ts_ns=batch.ts_ns[:end],
                                          linktype=batch.linktype[:end])
            t = time.perf_counter()
            nxt, n_tx, n_prog, queued = process_batch(part, state, ds, bout, start, self.market, self.model)
            self.engine_s += time.perf_counter() - t
            if nxt == start and n_tx == 0:   # cannot happen with new_batch_out's sizes; never spin
                raise RuntimeError(f"process_batch made no progress at frame {batch.first_index + start}")
            sinks.put(bout.tx[:n_tx], bout.prog_ids[:n_prog], bout.pkt_status[start:nxt],
                      batch.first_index + start, batch.ts_ns[start:nxt], bout.swaps[:bout.counts[N_SWAPS]],
                      bout.opps[:bout.counts[N_OPPS]])
            start = nxt

    def put_rows(self, tx: np.ndarray, prog_ids: np.ndarray, status: np.ndarray, first_index: int,
                 ts_ns: np.ndarray, swaps: np.ndarray | None = None, opps: np.ndarray | None = None) -> None:
        """Rows made elsewhere (the live loop's Stage): copied, then built and written by the sink thread."""
        self.sinks.put(tx, prog_ids, status, first_index, ts_ns, swaps, opps)

    def drain(self, buf: np.ndarray) -> None:
        """Transactions of the last completed entry batches, still queued in the reassembly."""
        queued = 1
        while queued:
            drain = empty_batch(buf)
            _, n_tx, n_prog, queued = process_batch(drain, self.state, self.ds, self.bout, 0, self.market, self.model)
            b = self.bout
            self.sinks.put(b.tx[:n_tx], b.prog_ids[:n_prog], b.pkt_status[:0], 0, drain.ts_ns,
                           b.swaps[:b.counts[N_SWAPS]], b.opps[:b.counts[N_OPPS]])

    def fail(self) -> None:
        """The run failed: the store gets a final 'failed' runs row."""
        if self.writer is not None:
            self.writer.record_run_end({"packets": int(self.state.counters[C_PACKETS])}, status="failed")
            self.writer.close()
            self.writer = None

    def close_sinks(self) -> None:
        """Every row handed on is written (Parquet files closed)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.sinks.close()
        finally:
            if self.parquet is not None:
                market = ({"swaps": empty_swap_table(self.market_names),
                           "opportunities": empty_opp_table(self.market_names)} if self.market_names is not None else {})
                self.parquet.close({"tx_features": empty_tx_table(self.names),
                                    "packet_status": status_table(np.zeros(0, np.int16), 0, np.zeros(0, np.int64)),
                                    **market})

    def packet_ns(self) -> dict:
        hist = Histogram(self.state.hist_counts, self.state.hist_stats, HIST_PACKET_NS, HIST_NAMES[HIST_PACKET_NS])
        return {**hist.percentiles((50, 99, 99.9)), "max": hist.max,
                "mean": round(float(hist.mean), 1) if hist.count else -1}

    def market_summary(self) -> tuple[dict, dict, dict, dict]:
        """(market counters, opportunity summary, detection cost, model cost) for the result; empty without a
        market (and the last without a model)."""
        if not self.market_on:
            return {}, {}, {}, {}
        counters = {k: int(v) for k, v in zip(DETECT_COUNTER_NAMES, self.state.dcount)}
        st = self.state
        det = _hist_summary(Histogram(st.hist_counts, st.hist_stats, HIST_DETECT_NS, HIST_NAMES[HIST_DETECT_NS]))
        ml = (_hist_summary(Histogram(st.hist_counts, st.hist_stats, HIST_SCORE_NS, HIST_NAMES[HIST_SCORE_NS]))
              if self.model is not None else {})
        return counters, self.sinks.opps.as_dict(), det, ml

    def outputs(self) -> dict[str, str]:
        files = self.parquet.paths.items() if self.parquet is not None else ()
        return {**{k: str(v) for k, v in files}, "summary": str(self.out / "summary.json")}

    def finish(self, result, counts: dict[str, int], status: str, extra_hists=()) -> None:
        """Store: latency histograms (the engine's, then ``extra_hists``: (name, Histogram)),
        the final runs row; then ``summary.json`` (with the store's figures)."""
        if self.writer is not None:
            self.writer.put("latency_hist", latency_table(self.run_id, self.state, extra_hists))
            self.writer.record_run_end(counts, status=status)
            stats = self.writer.close()
            result.store = {"dsn": str(self.writer.dsn.redacted()) if hasattr(self.writer, "dsn") else "",
                            **stats.as_dict()}
        (self.out / "summary.json").write_text(result.to_json())


def replay(capture, out_dir, settings: Settings | None = None,
           progress: Callable[[int, int], None] | None = None,
           sink: Callable[[str, pa.Table], None] | None = None,
           state: EngineState | None = None, speed: float | None = None, ds=None,
           db: str | None = None) -> ReplayResult:
    """Replay ``capture``; write Parquet under ``out_dir``.

    ``speed`` None runs as fast as the machine allows; 1.0 releases frames as they were
    captured (event-time pacing), 2.0 twice as fast. ``sink(table_name, arrow_table)``
    receives every table too. ``db`` (a DSN) also writes the run to ClickHouse: its
    ``runs`` row, every ``tx_features`` batch and the latency histograms; a store that
    cannot be reached gets the rows spooled to disk, never dropped.
    """
    settings = (settings or Settings()).validate()
    capture = Path(capture)
    reader = open_capture(capture, settings.batch_frames)
    total = capture.stat().st_size
    run = EngineRun(out_dir, settings, state=state, ds=ds, sink=sink, db=db, source="replay",
                    capture_path=str(capture.resolve()), capture_sha256=file_sha256(capture) if db else "")
    pacer = Pacer(speed) if speed else None
    capture_error = None
    warmup_s = run.warm_up(reader.buf)
    t0 = time.perf_counter()
    try:
        batches = iter(reader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except CaptureError as e:          # damaged file: everything before it is kept
                capture_error = str(e)
                break
            run.feed(batch, pacer)
            if progress is not None:
                progress(reader.bytes_read, total)
        run.drain(reader.buf)
    except BaseException:
        run.fail()
        raise
    finally:
        run.close_sinks()
    wall = time.perf_counter() - t0
    state = run.state
    packets = int(state.counters[C_PACKETS])
    engine_s = run.engine_s
    result = ReplayResult(
        run_id=run.run_id, capture=str(capture), out_dir=str(run.out), packets=packets,
        transactions=int(state.counters[COUNTER_NAMES.index("transactions")]),
        by_status=counts_by_name(state.status_counts), by_program=program_counts(state),
        wall_s=wall, engine_s=engine_s, warmup_s=warmup_s, packets_per_s=packets / wall if wall else 0.0,
        engine_packets_per_s=packets / engine_s if engine_s else 0.0,
        packet_ns=run.packet_ns(),
        first_ts_ns=int(state.counters[C_TS_FIRST]), last_ts_ns=int(state.counters[C_TS_LAST]),
        shreds=shred_summary(run.ds), capture_error=capture_error, pace_max_lag_ns=pacer.max_lag_ns if pacer else None,
        outputs=run.outputs(),
    )
    result.market, result.opportunities, result.detect_ns, result.ml_inference_ns = run.market_summary()
    run.finish(result, {"packets": result.packets, "transactions": result.transactions,
                        **{f"status_{k}": v for k, v in result.by_status.items()},
                        **{f"shreds_{k}": v for k, v in result.shreds.items()}},
               status="done" if capture_error is None else "capture_damaged")
    return result


def _open_store(dsn: str, settings: Settings, run_id: str, *, source: str, capture_path: str,
                capture_sha256: str):
    """A started StoreWriter with the run's first ``runs`` row written."""
    from .store import StoreWriter, default_spool_dir
    writer = StoreWriter(dsn, default_spool_dir(settings.data_dir), run_id=run_id).start()
    writer.record_run_start(run_id, source=source, capture_path=capture_path,
                            capture_sha256=capture_sha256, config=asdict(settings))
    return writer


def latency_table(run_id: str, state: EngineState, extra=()) -> pa.Table:
    """One latency_hist row per engine histogram (then per ``(name, Histogram)`` of ``extra``):
    the whole run as one interval. Detection and inference histograms only when they ran."""
    rows = {k: [] for k in ("run_id", "interval_start_ns", "interval_end_ns", "hist_name", "bucket_lower",
                            "bucket_count", "count", "p50", "p99", "p999", "min", "max")}
    hists = [(name, Histogram(state.hist_counts, state.hist_stats, h, name)) for h, name in enumerate(HIST_NAMES)]
    for name, hist in hists + list(extra):
        if not hist.count and name not in (HIST_NAMES[0], HIST_NAMES[1]):
            continue              # detection / inference histograms of a run without a market / model
        lows, _highs, counts = hist.buckets()
        rows["run_id"].append(run_id)
        rows["interval_start_ns"].append(int(state.counters[C_TS_FIRST]))
        rows["interval_end_ns"].append(int(state.counters[C_TS_LAST]))
        rows["hist_name"].append(name)
        rows["bucket_lower"].append([int(x) for x in lows])
        rows["bucket_count"].append([int(x) for x in counts])
        rows["count"].append(hist.count)
        for q, col in ((50, "p50"), (99, "p99"), (99.9, "p999")):
            rows[col].append(max(0, hist.percentile(q)))
        rows["min"].append(max(0, hist.min))
        rows["max"].append(max(0, hist.max))
    return pa.table(rows)


# --- live mode -------------------------------------------------------------------------------------
LIVE_RECORD_BYTES_MIN = 32 << 20      # bytes of the live loop's recording buffer (at least 4 polls' worth)
SPLIT_READY_TIMEOUT_S = 300.0         # the capture process may compile its loop on a cold numba cache
SPLIT_CLOSE_TIMEOUT_S = 10.0          # after a stop request, wait this long for the capture process to close
LIVE_SINK_DEPTH = 64                  # slices of rows queued for the sink thread before the engine waits
LIVE_POLL_S = 0.002                   # the calling thread hands full Stages on and checks stop this often


@dataclass
class LiveStatus:
    """What the live terminal view shows, every ``status_every_s``."""

    elapsed_s: float
    packets: int
    packets_per_s: float             # since the previous status
    transactions: int
    transactions_per_s: float
    drops: int                       # frames the kernel dropped (ring / socket buffer full), whole run
    freezes: int                     # AF_PACKET queue freezes, whole run
    latency_ns: dict                 # kernel timestamp -> scored since the previous status: p50, p99, p99.9
    opportunities_per_s: float | None   # None: no market snapshot given (no detection)
    by_status: dict


@dataclass(kw_only=True)
class LiveResult(RunResult):
    """engine_packets_per_s: packets / seconds the engine thread was busy with them (its capacity)."""

    source: str                      # "afpacket", "udp" (", split": capture in its own process)
    iface: str
    drops: int                       # frames the kernel dropped before the engine saw them
    kernel: dict                     # the source's kernel counters (afpacket: packets, drops, freezes)
    latency_ns: dict                 # kernel timestamp -> scored, every packet: p50, p99, p99.9, max, mean, count
    stop_reason: str
    host: list[str] = field(default_factory=list)
    source_counters: dict = field(default_factory=dict)
    recorded: dict | None = None


def _hist_summary(h: Histogram) -> dict:
    return {**h.percentiles((50, 99, 99.9)), "max": h.max, "mean": round(float(h.mean), 1) if h.count else -1,
            "count": h.count}


class _LiveSource:
    """One live source as the runner drives it: a nopython loop call, counters, close."""

    kind = ""
    buf: np.ndarray
    max_batch_bytes: int
    linktype: int

    def loop(self, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params) -> int:
        raise NotImplementedError

    def drain(self, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params) -> bool:
        return drain_queued(self.buf, *self.cols, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params)

    def kernel(self) -> dict:
        return {}

    def counters(self) -> dict:
        return {}

    def close(self) -> None:
        pass


class _AfPacketLive(_LiveSource):
    kind = "afpacket"

    def __init__(self, iface: str, settings: Settings, ports):
        from .capture.afpacket import AfPacketSource
        self.src = AfPacketSource(iface, block_size=settings.afpacket_block_size,
                                  block_nr=settings.afpacket_block_count, retire_ms=settings.afpacket_retire_ms,
                                  ports=ports, fanout_group=settings.fanout_group,
                                  fanout_mode=settings.fanout_mode, peek=settings.afpacket_peek,
                                  promisc=settings.afpacket_promisc, batch_frames=settings.live_batch_frames)
        self.buf, self.cols = self.src.ring, self.src.cols
        self.max_batch_bytes, self.linktype = self.src.max_batch_bytes, self.src.linktype
        self._kernel = {"packets": 0, "drops": 0, "freezes": 0}

    def loop(self, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params):
        s = self.src
        return live_afpacket(s.ring, s.cursor, s.block_size, s.block_nr, s.linktype, s.peek, *s.cols,
                             state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params)

    def kernel(self):
        st = self.src.stats()
        self._kernel = {"packets": st.packets, "drops": st.drops, "freezes": st.freezes}
        return self._kernel

    def counters(self):
        return {**self.src.counters(), "peek": bool(self.src.peek), "filter_ports": len(self.src.ports)}

    def close(self):
        self.src.close()


class _UdpLive(_LiveSource):
    kind = "udp"

    def __init__(self, settings: Settings, ports):
        from .capture.udp import UdpSource
        self.src = UdpSource(ports, bind_addr=settings.udp_bind_addr, rcvbuf=settings.udp_rcvbuf,
                             batch=min(settings.udp_batch, settings.live_batch_frames),
                             slot_bytes=settings.udp_slot_bytes)
        self.buf, self.cols = self.src.slots, self.src.cols
        self.max_batch_bytes, self.linktype = self.src.max_batch_bytes, self.src.linktype

    def loop(self, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params):
        s = self.src
        return live_udp(s.fds, s.port_of_fd, s.ctl, s.drops_by_socket, s.msgs, s.names, s.ctrl, s.slots,
                        s.slot_bytes, *s.cols, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params)

    def kernel(self):
        return {"drops": self.src.drops(), "rcvbuf_bytes": self.src.rcvbuf}

    def counters(self):
        return self.src.counters()

    def close(self):
        self.src.close()


class _SplitLive(_LiveSource):
    """``--split``: a capture process fills an SPSC ring in shared memory; this process reads it."""

    def __init__(self, kind: str, iface: str, settings: Settings, ports, capture_cpu: int | None, rt: bool,
                 hugepages: bool):
        import multiprocessing as mp
        from .engine.ring import init_ring, new_local, ring_bytes
        from .host import SharedBuffer
        self.kind = f"{kind}, split"
        slots, slot_sz = settings.split_ring_slots, settings.split_slot_bytes
        nbytes = ring_bytes(slots, slot_sz)
        self.shm = SharedBuffer.create(nbytes, hugepages=hugepages, prefix="workbench-ring")
        self.how = self.shm.how
        self.rctl, self.data = init_ring(self.shm.buf, slots, slot_sz)
        self.local = new_local()
        n = settings.live_batch_frames
        self.cols = (np.empty(n, np.int64), np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, np.int64),
                     np.empty(n, np.int32))
        self.index = np.empty(n, np.int64)
        self.buf = self.data
        self.max_batch_bytes = n * slot_sz
        from .capture.frames import LINKTYPE_ETHERNET, LINKTYPE_RAW
        self.linktype = LINKTYPE_RAW if kind == "udp" else LINKTYPE_ETHERNET
        ctx = mp.get_context("spawn")
        self.conn, child_conn = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_split_capture_main, name="workbench-capture", daemon=True,
                                args=(self.shm.path, nbytes, kind, iface, tuple(ports), asdict(settings), capture_cpu,
                                      rt, child_conn))
        self.proc.start()
        child_conn.close()
        self.child_notes: list[str] = []
        deadline = time.monotonic() + SPLIT_READY_TIMEOUT_S
        from .engine.ring import W_READY
        while self.rctl[W_READY] == 0:
            if not self.proc.is_alive() or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if self.conn.poll(0.5):
            msg = self.conn.recv()
            if isinstance(msg, dict) and "error" in msg:
                self.close()
                raise CaptureError(iface or "udp", msg["error"])
            self.child_notes = list(msg.get("host", [])) if isinstance(msg, dict) else []
        if self.rctl[W_READY] != 1:
            self.close()
            raise CaptureError(iface or "udp", "the capture process did not start (see its stderr)")

    def loop(self, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params):
        return live_spsc(self.rctl, self.data, self.local, *self.cols, self.index, state, ds, out, mk, model, st0, st1,
                         lat_counts, lat_stats, ex, params)

    def request_stop(self):
        from .engine.ring import request_stop
        request_stop(self.rctl)

    def kernel(self):
        from .engine.ring import W_FULL_WAITS, W_SRC_DROPS, W_SRC_FRAMES, W_SRC_FREEZES, W_SRC_PACKETS
        r = self.rctl
        return {"packets": int(r[W_SRC_PACKETS]), "drops": int(r[W_SRC_DROPS]), "freezes": int(r[W_SRC_FREEZES]),
                "frames_into_ring": int(r[W_SRC_FRAMES]), "ring_full_waits": int(r[W_FULL_WAITS])}

    def counters(self):
        return {"ring": self.how}

    def close(self):
        if getattr(self, "proc", None) is not None:
            self.request_stop()
            self.proc.join(SPLIT_CLOSE_TIMEOUT_S)
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(2)
            self.proc = None
        self.shm.close()


def _split_capture_main(path, nbytes, kind, iface, ports, settings_dict, cpu, rt, conn):
    """The capture process of ``--split`` (spawned): source -> SPSC ring until asked to stop."""
    import signal as _signal
    from .engine.live import new_params, split_afpacket, split_udp
    from .engine.ring import W_READY, W_SRC_DROPS, W_SRC_FREEZES, W_SRC_PACKETS, close_producer, new_local, \
        ring_views, stop_requested
    from .host import SharedBuffer, pin_thread, request_fifo, set_timer_slack_ns
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)      # the engine process decides when to stop
    _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
    shm = SharedBuffer.attach(path, nbytes)
    rctl, data = ring_views(shm.buf)
    settings = Settings(**settings_dict)
    notes = []
    try:
        if cpu is not None:
            notes.append("capture process: " + str(pin_thread(cpu)))
        notes.append("capture process: " + str(set_timer_slack_ns(1)))
        src = (_AfPacketLive(iface, settings, ports) if kind == "afpacket" else _UdpLive(settings, ports)).src
    except Exception as e:  # noqa: BLE001 - reported to the engine process
        conn.send({"error": str(e)})
        rctl[W_READY] = -1
        return
    local = new_local()
    params = new_params(0, settings.live_batch_frames, settings.live_idle_spin_us * 1000, settings.live_idle_sleep_us,
                        False, 0)
    try:
        def step(deadline):
            if kind == "afpacket":
                split_afpacket(src.ring, src.cursor, src.block_size, src.block_nr, src.linktype, src.peek, *src.cols,
                               rctl, data, local, params, deadline)
            else:
                split_udp(src.fds, src.port_of_fd, src.ctl, src.drops_by_socket, src.msgs, src.names, src.ctrl,
                          src.slots, src.slot_bytes, *src.cols, rctl, data, local, params, deadline)
        step(0)                                            # compile / load before saying ready
        if rt:
            g = request_fifo(settings.live_fifo_priority)
            notes.append("capture process: " + str(g))
            if g.granted:
                notes.append("capture process: " + _rt_pacing(params))
        conn.send({"host": notes})
        rctl[W_READY] = 1
        while not stop_requested(rctl):
            step(time.monotonic_ns() + settings.live_slice_ms * 1_000_000)
            if kind == "afpacket":
                st = src.stats()
                rctl[W_SRC_PACKETS], rctl[W_SRC_DROPS], rctl[W_SRC_FREEZES] = st.packets, st.drops, st.freezes
            else:
                rctl[W_SRC_DROPS] = src.drops()
    finally:
        if kind == "afpacket":
            st = src.stats()
            rctl[W_SRC_PACKETS], rctl[W_SRC_DROPS], rctl[W_SRC_FREEZES] = st.packets, st.drops, st.freezes
        close_producer(rctl)
        src.close()
        conn.close()


def _rt_pacing(params) -> str:
    """Set the live loop's RT pacing (engine/live.py P_RT_PACE_NS) for this host; say what it is."""
    from .engine.live import P_RT_PACE_NS, P_RT_SLEEP_US
    from .host.cpu import rt_pace_ns, rt_share
    sleep_us = int(params[P_RT_SLEEP_US])
    params[P_RT_PACE_NS] = pace = rt_pace_ns(sleep_us, rt_share())
    if pace == 0:
        return "RT pacing off (no RT throttling: the loop may spin without end)"
    return (f"RT pacing: an empty poll sleeps {sleep_us} us after {pace / 1000:.0f} us of running, so "
            "RT throttling never stops the loop (it would for 50 ms every second)")


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
    from .engine.live import (E_ACTIVE, E_BUSY_NS, E_FULL0, E_RETURN, E_STOP, K_FIRST, K_NOPP, K_NPKT, K_NPROG,
                              K_NSW, K_NTX, K_REC_N, LAT_RUN, R_CLOSED, new_ex, new_latency, new_params, new_stage, reset_rows,
                              stage_bytes)
    from .host import alloc_buffer, huge_backed_bytes, request_fifo, set_timer_slack_ns
    from .host.memory import prefault
    from .host.cpu import pin_other_cpus, pin_thread
    settings = (settings or Settings()).validate()
    if source not in ("afpacket", "udp"):
        raise ConfigError(f"source={source!r}: one of afpacket, udp")
    ports = tuple(int(p) for p in ports) if ports else tuple(settings.transaction_ports) + tuple(settings.shred_ports)
    if source == "afpacket" and not iface:
        raise ConfigError("the afpacket source needs --iface")
    if duration is not None and not duration > 0:
        raise ConfigError(f"duration={duration}: must be > 0 seconds")
    notes: list[str] = []
    stop = stop or threading.Event()
    # the source first: a wrong interface or a refused socket fails before any output is made
    if split:
        if capture_cpu is None and cpu is not None and (os.cpu_count() or 1) > 1:
            capture_cpu = (cpu + 1) % (os.cpu_count() or 1)
        src: _LiveSource = _SplitLive(source, iface, settings, ports, capture_cpu, rt, hugepages)
        notes.extend(src.child_notes)
        notes.append(f"split ring: {src.how}")
    elif source == "afpacket":
        src = _AfPacketLive(iface, settings, ports)
    else:
        src = _UdpLive(settings, ports)
    recorder = None
    run = None
    old_handlers = {}
    engine = None
    ex = new_ex()
    try:
        rec_bytes = max(LIVE_RECORD_BYTES_MIN, 4 * src.max_batch_bytes) if record else 0
        rows = settings.live_stage_rows
        call_rows = settings.live_batch_frames
        need = stage_bytes(rows, rows, rec_bytes, call_rows)
        if hugepages:
            stages, huge = [], 0
            for _ in range(2):
                sbuf, how = alloc_buffer(need, hugepages=True)
                stages.append(new_stage(rows, rows, rec_bytes, buf=sbuf, call_rows=call_rows))
                huge += min(huge_backed_bytes(sbuf), sbuf.nbytes)   # (smaps may merge neighbouring mappings)
            notes.append(f"staging buffers: {how}, {huge >> 20} MiB of {2 * need >> 20} MiB on huge pages")
        else:
            stages = [new_stage(rows, rows, rec_bytes, call_rows=call_rows) for _ in range(2)]
        st0, st1 = stages
        lat_counts, lat_stats = new_latency()
        params = new_params(settings.live_slice_ms * 1_000_000, settings.live_batch_frames,
                            settings.live_idle_spin_us * 1000, settings.live_idle_sleep_us, bool(record),
                            src.max_batch_bytes)
        where = record if record else f"{src.kind}://{iface or ','.join(map(str, ports))}"
        run = EngineRun(out_dir, settings, state=state, sink=sink, db=db, source="live", capture_path=str(where),
                        batch_frames=settings.live_batch_frames, sink_depth=LIVE_SINK_DEPTH, parquet=parquet)
        if record:
            from .capture.pcapng import PcapngWriter
            recorder = PcapngWriter(record, linktype=src.linktype)
        engine_args = (run.state, run.ds, run.bout, run.market, run.model, st0, st1, lat_counts, lat_stats, ex, params)
        # warm up: compile (or load) the loop with this run's types before capture counts,
        # and fault in every page the loop will write (first-touch faults are milliseconds)
        t = time.perf_counter()
        prefault(run.state, run.ds, run.bout, st0, st1, lat_counts, src.cols,
                 src.buf if src.kind != "afpacket" else ())
        ex[E_STOP] = 2
        src.loop(*engine_args)
        ex[E_STOP] = 0
        while not src.drain(*engine_args):          # (compiles the final drain; nothing is queued yet)
            pass
        ex[:] = 0
        tx_table(run.bout.tx[:0], run.bout.prog_ids[:0], run.names)
        if recorder is not None:
            _warm_recorder(st0)
        warmup_s = time.perf_counter() - t

        def hand_on(k: int) -> None:
            """Stage k's rows to the sinks and the recording; then it is free again."""
            st = stages[k]
            c = st.ctl
            ntx, nprog, npkt, nrec = int(c[K_NTX]), int(c[K_NPROG]), int(c[K_NPKT]), int(c[K_REC_N])
            nsw, nopp = int(c[K_NSW]), int(c[K_NOPP])
            if ntx or npkt:
                run.put_rows(st.tx[:ntx], st.prog_ids[:nprog], st.status[:npkt], int(c[K_FIRST]), st.ts[:npkt],
                             st.swaps[:nsw], st.opps[:nopp])
            if recorder is not None and nrec:
                recorder.write_many(st.rec_buf, st.rec_off[:nrec], st.rec_len[:nrec], st.rec_ts[:nrec],
                                    st.rec_wirelen[:nrec])
            reset_rows(st)
            ex[E_FULL0 + k] = 0

        def hand_on_full() -> None:
            for k in (0, 1):                         # at most one is full at a time: order is kept
                if ex[E_FULL0 + k]:
                    hand_on(k)

        # the engine thread: pinned, RT if asked, then one nopython call until stopped
        engine_error: list[BaseException] = []
        engine_ready = threading.Event()

        def engine_main():
            try:
                if cpu is not None:
                    notes.append("engine thread: " + str(pin_thread(cpu)))
                notes.append("engine thread: " + str(set_timer_slack_ns(1)))
                if rt:
                    g = request_fifo(settings.live_fifo_priority)
                    notes.append("engine thread: " + str(g))
                    if g.granted:
                        notes.append("engine thread: " + _rt_pacing(params))
                engine_ready.set()
                ex[E_RETURN] = src.loop(*engine_args)
            except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
                engine_error.append(e)
            finally:
                engine_ready.set()

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, lambda signum, frame: stop.set())
        t0 = time.perf_counter()
        engine = threading.Thread(target=engine_main, name="workbench-engine", daemon=True)
        engine.start()
        engine_ready.wait()
        if cpu is not None:                          # every other thread (this one, sinks, store) off its CPU
            for tid in _other_threads(exclude=engine.native_id):
                pin_other_cpus(cpu, tid)
        if on_ready is not None:
            on_ready(f"capturing on {iface or 'udp ports ' + ','.join(map(str, ports))} ({src.kind})")
        end_at = t0 + duration if duration else None
        last = (t0, 0, 0, 0)
        next_status = t0 + status_every_s
        reason = None
        stop_sent_at = None
        while engine.is_alive():
            hand_on_full()
            now = time.perf_counter()
            if reason is None and (stop.is_set() or (end_at is not None and now >= end_at)):
                reason = "signal or stop request" if stop.is_set() else "duration"
                if isinstance(src, _SplitLive):
                    src.request_stop()              # the capture process closes the ring; the loop drains it
                ex[E_STOP] = 1
                stop_sent_at = now
            if stop_sent_at is not None and now - stop_sent_at > SPLIT_CLOSE_TIMEOUT_S:
                ex[E_STOP] = 2                       # the source never closed: give up on it
            if on_status is not None and now >= next_status:
                next_status = now + status_every_s
                last = _emit_status(on_status, run, lat_counts, lat_stats, src, t0, last, ex)
            engine.join(LIVE_POLL_S)
        engine.join()
        if engine_error:
            raise engine_error[0]
        if ex[E_RETURN] == R_CLOSED and reason is None:
            reason = "source closed"
        # the end: what the source handed over is processed, queued shred transactions drained
        hand_on_full()
        while not src.drain(*engine_args):
            hand_on_full()
        hand_on_full()
        hand_on(int(ex[E_ACTIVE]))
        kernel = src.kernel()
    except BaseException:
        if engine is not None and engine.is_alive():
            ex[E_STOP] = 2
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
    state = run.state
    packets = int(state.counters[C_PACKETS])
    lat = Histogram(lat_counts, lat_stats, LAT_RUN, KERNEL_TO_SCORED)
    result = LiveResult(
        run_id=run.run_id, source=src.kind, iface=iface or "", out_dir=str(run.out), packets=packets,
        transactions=int(state.counters[COUNTER_NAMES.index("transactions")]),
        by_status=counts_by_name(state.status_counts), by_program=program_counts(state),
        wall_s=wall, warmup_s=warmup_s, packets_per_s=packets / wall if wall else 0.0,
        engine_packets_per_s=packets / (ex[E_BUSY_NS] / 1e9) if ex[E_BUSY_NS] > 0 else 0.0,
        drops=int(kernel.get("drops", 0)), kernel=kernel, latency_ns=_hist_summary(lat), packet_ns=run.packet_ns(),
        first_ts_ns=int(state.counters[C_TS_FIRST]), last_ts_ns=int(state.counters[C_TS_LAST]),
        stop_reason=reason or "stop", host=notes, source_counters={**src.counters(), **_loop_counters(ex)},
        shreds=shred_summary(run.ds),
        recorded={"path": str(record), "frames": recorder.frames_written} if recorder is not None else None,
        outputs=run.outputs(),
    )
    result.market, result.opportunities, result.detect_ns, result.ml_inference_ns = run.market_summary()
    run.finish(result, {"packets": result.packets, "transactions": result.transactions, "drops": result.drops,
                        **{f"status_{k}": v for k, v in result.by_status.items()},
                        **{f"shreds_{k}": v for k, v in result.shreds.items()}},
               status="done", extra_hists=[(KERNEL_TO_SCORED, lat)])
    return result


KERNEL_TO_SCORED = "kernel_to_scored_ns"   # latency_hist name of live mode's per-packet latency


def _warm_recorder(stage) -> None:
    """Compile (or load) the pcapng packer with the recording's array types before capture starts."""
    from .capture.pcapng import _pack_epb
    z = np.zeros(0, np.int64)
    _pack_epb(stage.rec_buf, z, z, np.asarray(stage.rec_wirelen[:0], np.int64), z, 0, False, np.zeros(1, np.uint8))


def _other_threads(exclude: int | None = None) -> list[int]:
    """Thread ids of this process except ``exclude`` (the engine thread)."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{os.getpid()}/task") if int(t) != exclude]
    except OSError:
        return []


def _loop_counters(ex) -> dict:
    from .engine.live import E_BUSY_NS, E_EMPTY_POLLS, E_FLIPS, E_POLLS, E_SLEEPS, E_WAITS
    return {"polls": int(ex[E_POLLS]), "empty_polls": int(ex[E_EMPTY_POLLS]), "idle_sleeps": int(ex[E_SLEEPS]),
            "stages_handed_over": int(ex[E_FLIPS]), "waits_for_sinks": int(ex[E_WAITS]),
            "busy_s": round(int(ex[E_BUSY_NS]) / 1e9, 6)}


def _emit_status(on_status, run, lat_counts, lat_stats, src, t0, last, ex):
    from .engine.live import E_WINDOW_RESET, LAT_WINDOW
    now = time.perf_counter()
    state = run.state
    packets = int(state.counters[C_PACKETS])
    txs = int(state.counters[COUNTER_NAMES.index("transactions")])
    t_last, p_last, x_last, o_last = last
    opps = int(state.dcount[D_OPPS])
    dt = max(1e-9, now - t_last)
    win = Histogram(lat_counts.copy(), lat_stats.copy(), LAT_WINDOW, KERNEL_TO_SCORED)
    kernel = src.kernel()
    on_status(LiveStatus(elapsed_s=now - t0, packets=packets, packets_per_s=(packets - p_last) / dt, transactions=txs,
                         transactions_per_s=(txs - x_last) / dt, drops=int(kernel.get("drops", 0)),
                         freezes=int(kernel.get("freezes", 0)), latency_ns=win.percentiles((50, 99, 99.9)),
                         opportunities_per_s=(opps - o_last) / dt if run.market_on else None,
                         by_status=counts_by_name(state.status_counts)))
    ex[E_WINDOW_RESET] = 1                   # the engine thread zeroes the window (it owns the histogram)
    return now, packets, txs, opps


def send(capture, iface: str, *, speed: float | None = None, pps: float | None = None, topspeed: bool = False,
         loop: int = 1, limit: int | None = None, cpu: int | None = None,
         progress: Callable[[int, int], None] | None = None):
    """Put ``capture`` on the wire out of ``iface`` (capture/sender.py); returns a SendResult."""
    from .capture.sender import send_capture
    from .host import pin_thread, set_timer_slack_ns
    if cpu is not None:
        pin_thread(cpu)
    set_timer_slack_ns(1)
    return send_capture(capture, iface, speed=speed, pps=pps, topspeed=topspeed, loop=loop, limit=limit,
                        progress=progress)
