"""Composes a source, the engine and the sinks. The CLI, panel apps and notebooks call this.

``replay(capture, out_dir)`` runs the one engine over a capture file: batches from the
memory-mapped reader go through ``process_batch``; rows become Arrow tables once per
batch and go to Parquet (and to the ClickHouse store, when one is given). A damaged
capture is processed up to the damage, and the error is kept in the result and summary.
"""

from __future__ import annotations

import hashlib
import json
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
from .engine.state import (C_PACKETS, C_TS_FIRST, C_TS_LAST, COUNTER_NAMES, HIST_NAMES, HIST_PACKET_NS,
                           EngineState, deshred_from_settings, state_from_settings)
from .engine.tables import KeyNames, empty_tx_table, status_table, tx_table
from .sinks import ParquetSink, SinkThread
from .errors import CaptureError
from .metrics.hist import Histogram
from .wire.keys import PROGRAM_NAMES, N_KNOWN_PROGRAMS, key_to_base58
from .wire.status import counts_by_name

@dataclass
class ReplayResult:
    run_id: str
    capture: str
    out_dir: str
    packets: int
    transactions: int
    by_status: dict[str, int]
    by_program: dict[str, int]
    wall_s: float
    engine_s: float
    warmup_s: float
    packets_per_s: float
    engine_packets_per_s: float
    packet_ns: dict[str, int]
    first_ts_ns: int
    last_ts_ns: int
    shreds: dict = field(default_factory=dict)
    capture_error: str | None = None
    pace_max_lag_ns: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    store: dict | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def file_sha256(path, limit: int | None = None) -> str:
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


def warm_up(buf: np.ndarray, state: EngineState, ds, bout) -> float:
    """Compile (first run) or load from the numba cache every kernel the run will call,
    with the run's own array types, before the clock of the run starts. Returns seconds."""
    t = time.perf_counter()
    process_batch(empty_batch(buf), state, ds, bout, 0)
    tx_table(bout.tx[:0], bout.prog_ids[:0], KeyNames(state.keys))
    return time.perf_counter() - t


def shred_summary(ds) -> dict[str, int]:
    """Counters of the shred reassembly that are not zero."""
    return {k: v for k, v in counters_dict(ds).items() if v}


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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = state if state is not None else state_from_settings(settings)
    ds = ds if ds is not None else deshred_from_settings(settings)
    bout = new_batch_out(settings.batch_frames)
    names = KeyNames(state.keys)
    run_id = str(uuid.uuid4())
    parquet = ParquetSink(out, names)
    writer = _open_store(db, settings, run_id, capture) if db else None
    consumers = [parquet.write] + ([sink] if sink is not None else [])
    if writer is not None:
        consumers.append(lambda name, table: writer.put(name, table) if name in STORE_TABLES else None)
    sinks = SinkThread(names, consumers)
    pacer = Pacer(speed) if speed else None
    capture_error = None
    engine_s = 0.0
    warmup_s = warm_up(reader.buf, state, ds, bout)
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
                nxt, n_tx, n_prog, queued = process_batch(part, state, ds, bout, start)
                engine_s += time.perf_counter() - t
                if nxt == start and n_tx == 0:   # cannot happen with new_batch_out's sizes; never spin
                    raise RuntimeError(f"process_batch made no progress at frame {batch.first_index + start}")
                sinks.put(bout.tx[:n_tx], bout.prog_ids[:n_prog], bout.pkt_status[start:nxt],
                          batch.first_index + start, batch.ts_ns[start:nxt])
                start = nxt
            if progress is not None:
                progress(reader.bytes_read, total)
        queued = 1
        while queued:                           # transactions of the last completed batches
            drain = empty_batch(reader.buf)
            _, n_tx, n_prog, queued = process_batch(drain, state, ds, bout, 0)
            sinks.put(bout.tx[:n_tx], bout.prog_ids[:n_prog], bout.pkt_status[:0], 0, drain.ts_ns)
    except BaseException:
        if writer is not None:
            writer.record_run_end({"packets": int(state.counters[C_PACKETS])}, status="failed")
            writer.close()
            writer = None
        raise
    finally:
        sinks.close()
        parquet.close(empty_tx_table(names), status_table(np.zeros(0, np.int16), 0, np.zeros(0, np.int64)))
    wall = time.perf_counter() - t0
    packets = int(state.counters[C_PACKETS])
    hist = Histogram(state.hist_counts, state.hist_stats, HIST_PACKET_NS, HIST_NAMES[HIST_PACKET_NS])
    result = ReplayResult(
        run_id=run_id, capture=str(capture), out_dir=str(out), packets=packets,
        transactions=int(state.counters[COUNTER_NAMES.index("transactions")]),
        by_status=counts_by_name(state.status_counts), by_program=program_counts(state),
        wall_s=wall, engine_s=engine_s, warmup_s=warmup_s, packets_per_s=packets / wall if wall else 0.0,
        engine_packets_per_s=packets / engine_s if engine_s else 0.0,
        packet_ns={**hist.percentiles((50, 99, 99.9)), "max": hist.max, "mean": round(float(hist.mean), 1) if hist.count else -1},
        first_ts_ns=int(state.counters[C_TS_FIRST]), last_ts_ns=int(state.counters[C_TS_LAST]),
        shreds=shred_summary(ds), capture_error=capture_error, pace_max_lag_ns=pacer.max_lag_ns if pacer else None,
        outputs={**{k: str(v) for k, v in parquet.paths.items()}, "summary": str(out / "summary.json")},
    )
    if writer is not None:
        writer.put("latency_hist", latency_table(run_id, state))
        writer.record_run_end({"packets": result.packets, "transactions": result.transactions,
                               **{f"status_{k}": v for k, v in result.by_status.items()},
                               **{f"shreds_{k}": v for k, v in result.shreds.items()}},
                              status="done" if capture_error is None else "capture_damaged")
        stats = writer.close()
        result.store = {"dsn": str(writer.dsn.redacted()) if hasattr(writer, "dsn") else "", **stats.as_dict()}
    (out / "summary.json").write_text(result.to_json())
    return result


STORE_TABLES = ("tx_features",)       # engine tables the store keeps (packet_status stays in Parquet)


def _open_store(dsn: str, settings: Settings, run_id: str, capture: Path):
    """A started StoreWriter with the run's first ``runs`` row written."""
    from .store import StoreWriter, default_spool_dir
    writer = StoreWriter(dsn, default_spool_dir(settings.data_dir), run_id=run_id).start()
    writer.record_run_start(run_id, source="replay", capture_path=str(capture.resolve()),
                            capture_sha256=file_sha256(capture), config=asdict(settings))
    return writer


def latency_table(run_id: str, state: EngineState) -> pa.Table:
    """One latency_hist row per engine histogram: the whole run as one interval."""
    rows = {k: [] for k in ("run_id", "interval_start_ns", "interval_end_ns", "hist_name", "bucket_lower",
                            "bucket_count", "count", "p50", "p99", "p999", "min", "max")}
    for h, name in enumerate(HIST_NAMES):
        hist = Histogram(state.hist_counts, state.hist_stats, h, name)
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
