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
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .capture import open_capture
from .config import Settings
from .engine.pipeline import new_batch_out, process_batch
from .engine.state import (C_PACKETS, C_TS_FIRST, C_TS_LAST, COUNTER_NAMES, HIST_NAMES, HIST_PACKET_NS,
                           EngineState, state_from_settings)
from .engine.tables import KeyNames, TX_COLUMNS, tx_table
from .errors import CaptureError
from .metrics.hist import Histogram
from .wire.keys import PROGRAM_NAMES, N_KNOWN_PROGRAMS, key_to_base58
from .wire.status import STATUS_NAMES, counts_by_name

_STATUS_CODES = sorted(STATUS_NAMES)
_STATUS_DICT = pa.array([STATUS_NAMES[c] for c in _STATUS_CODES], pa.string())
_STATUS_INDEX = np.zeros(256, np.int8)          # code (as uint8 of int16) -> dictionary index
for _i, _c in enumerate(_STATUS_CODES):
    _STATUS_INDEX[_c & 0xFF] = _i


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
    packets_per_s: float
    engine_packets_per_s: float
    packet_ns: dict[str, int]
    first_ts_ns: int
    last_ts_ns: int
    capture_error: str | None = None
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


def status_table(status: np.ndarray, first_index: int, ts_ns: np.ndarray) -> pa.Table:
    idx = _STATUS_INDEX[status.astype(np.int64) & 0xFF]
    return pa.table({
        "packet_index": pa.array(np.arange(first_index, first_index + status.shape[0], dtype=np.int64)),
        "ts_ns": pa.array(ts_ns),
        "status": pa.DictionaryArray.from_arrays(pa.array(idx), _STATUS_DICT),
    })


def replay(capture, out_dir, settings: Settings | None = None,
           progress: Callable[[int, int], None] | None = None,
           sink: Callable[[str, pa.Table], None] | None = None,
           state: EngineState | None = None) -> ReplayResult:
    """Replay ``capture`` as fast as the machine allows; write Parquet under ``out_dir``.

    ``sink(table_name, arrow_table)`` receives every batch too (the ClickHouse writer).
    """
    settings = (settings or Settings()).validate()
    capture = Path(capture)
    reader = open_capture(capture, settings.batch_frames)
    total = capture.stat().st_size
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = state if state is not None else state_from_settings(settings)
    bout = new_batch_out(settings.batch_frames)
    names = KeyNames(state.keys)
    run_id = str(uuid.uuid4())
    tx_path, st_path = out / "tx_features.parquet", out / "packet_status.parquet"
    tx_writer = st_writer = None
    capture_error = None
    engine_s = 0.0
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
                t = time.perf_counter()
                nxt, n_tx, n_prog = process_batch(batch, state, bout, start)
                engine_s += time.perf_counter() - t
                if nxt == start:            # cannot happen with new_batch_out's sizes; never spin
                    raise RuntimeError(f"process_batch made no progress at frame {batch.first_index + start}")
                table = tx_table(bout.tx[:n_tx], bout.prog_ids, names)
                stab = status_table(bout.pkt_status[start:nxt], batch.first_index + start, batch.ts_ns[start:nxt])
                if tx_writer is None:
                    tx_writer = pq.ParquetWriter(tx_path, table.schema, compression="zstd")
                    st_writer = pq.ParquetWriter(st_path, stab.schema, compression="zstd")
                tx_writer.write_table(table)
                st_writer.write_table(stab)
                if sink is not None:
                    sink("tx_features", table)
                start = nxt
            if progress is not None:
                progress(reader.bytes_read, total)
    finally:
        if tx_writer is None:
            empty = tx_table(bout.tx[:0], bout.prog_ids, names)
            tx_writer = pq.ParquetWriter(tx_path, empty.schema, compression="zstd")
            st_writer = pq.ParquetWriter(st_path, status_table(np.zeros(0, np.int16), 0, np.zeros(0, np.int64)).schema,
                                         compression="zstd")
        tx_writer.close()
        st_writer.close()
    wall = time.perf_counter() - t0
    packets = int(state.counters[C_PACKETS])
    hist = Histogram(state.hist_counts, state.hist_stats, HIST_PACKET_NS, HIST_NAMES[HIST_PACKET_NS])
    result = ReplayResult(
        run_id=run_id, capture=str(capture), out_dir=str(out), packets=packets,
        transactions=int(state.counters[COUNTER_NAMES.index("transactions")]),
        by_status=counts_by_name(state.status_counts), by_program=program_counts(state),
        wall_s=wall, engine_s=engine_s, packets_per_s=packets / wall if wall else 0.0,
        engine_packets_per_s=packets / engine_s if engine_s else 0.0,
        packet_ns={**hist.percentiles((50, 99, 99.9)), "max": hist.max, "mean": round(hist.mean, 1) if hist.count else -1},
        first_ts_ns=int(state.counters[C_TS_FIRST]), last_ts_ns=int(state.counters[C_TS_LAST]),
        capture_error=capture_error,
        outputs={"tx_features": str(tx_path), "packet_status": str(st_path), "summary": str(out / "summary.json")},
    )
    (out / "summary.json").write_text(result.to_json())
    return result
