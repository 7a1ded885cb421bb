"""Sinks run beside the engine: a thread turns engine rows into Arrow tables and writes them.

The engine thread only runs ``process_batch`` (nogil) and copies its rows; this thread
builds the Arrow tables (base58, list columns), writes Parquet and hands tables to the
store. On a 2-core machine the two overlap, so a replay runs at the speed of the slower
of the two rather than their sum. The queue is bounded: a slow sink slows the engine
(backpressure) instead of growing memory. An exception in the thread is re-raised in the
engine thread at the next ``put`` or at ``close``.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .engine.tables import KeyNames, status_table, tx_table

_STOP = object()

# Parquet: dictionary only where values repeat, delta encoding for the ordered integers,
# statistics only where readers filter (measured: status file 94 -> 23 ns/row, 3.4x smaller)
_DELTA = "DELTA_BINARY_PACKED"
TX_PARQUET = dict(compression="zstd", use_dictionary=["version", "programs.list.element"],
                  write_statistics=["tx_index", "packet_index", "ts_ns", "slot"],
                  column_encoding={"tx_index": _DELTA, "packet_index": _DELTA, "ts_ns": _DELTA})
STATUS_PARQUET = dict(compression="zstd", use_dictionary=["status"], write_statistics=["packet_index"],
                      column_encoding={"packet_index": _DELTA, "ts_ns": _DELTA})


ROW_GROUP_ROWS = 1 << 16      # rows per Parquet row group, whatever the engine's call sizes


class ParquetSink:
    """tx_features.parquet and packet_status.parquet of one run.

    Rows are regrouped into row groups of exactly ROW_GROUP_ROWS (the last one shorter),
    so the file's bytes depend only on the rows: a paced replay, a full-speed replay and
    a replay with another batch size write identical files.
    """

    def __init__(self, out_dir: Path, key_names: KeyNames, row_group_rows: int = ROW_GROUP_ROWS):
        self.out = Path(out_dir)
        self.names = key_names
        self.rg = row_group_rows
        self.paths = {"tx_features": self.out / "tx_features.parquet",
                      "packet_status": self.out / "packet_status.parquet"}
        self._w: dict[str, pq.ParquetWriter] = {}
        self._pending: dict[str, list[pa.Table]] = {}
        self._pending_rows: dict[str, int] = {}

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self.paths:
            return
        if name not in self._w:
            opts = TX_PARQUET if name == "tx_features" else STATUS_PARQUET
            self._w[name] = pq.ParquetWriter(self.paths[name], table.schema, **opts)
            self._pending[name], self._pending_rows[name] = [], 0
        self._pending[name].append(table)
        self._pending_rows[name] += table.num_rows
        if self._pending_rows[name] >= self.rg:
            self._flush(name, final=False)

    def _flush(self, name: str, final: bool) -> None:
        whole = pa.concat_tables(self._pending[name]).combine_chunks()
        n = whole.num_rows
        cut = n if final else (n // self.rg) * self.rg
        for lo in range(0, cut, self.rg):
            self._w[name].write_table(whole.slice(lo, min(self.rg, cut - lo)), row_group_size=self.rg)
        rest = whole.slice(cut)
        self._pending[name], self._pending_rows[name] = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self, empty_tx: pa.Table, empty_status: pa.Table) -> None:
        for name, empty in (("tx_features", empty_tx), ("packet_status", empty_status)):
            if name not in self._w:
                self.write(name, empty)
            if self._pending_rows[name] or not self._pending[name]:
                self._flush(name, final=True)
            self._w[name].close()


class SinkThread:
    """Builds Arrow tables from copied engine rows and passes them to ``consumers``."""

    def __init__(self, key_names: KeyNames, consumers: list[Callable[[str, pa.Table], None]], depth: int = 4):
        self.names = key_names
        self.consumers = consumers
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.rows = {"tx_features": 0, "packet_status": 0}
        self.t = threading.Thread(target=self._run, name="workbench-sinks", daemon=True)
        self.t.start()

    def put(self, tx: np.ndarray, prog_ids: np.ndarray, status: np.ndarray, first_index: int, ts_ns: np.ndarray):
        """Hand over COPIES of one call's rows (the engine reuses its buffers)."""
        self._raise()
        self.q.put((tx.copy(), prog_ids.copy(), status.copy(), first_index, ts_ns.copy()))

    def _run(self):
        while True:
            item = self.q.get()
            if item is _STOP:
                return
            if self.error is not None:
                continue                      # drain without work after a failure
            try:
                tx, prog_ids, status, first, ts = item
                tables = (("tx_features", tx_table(tx, prog_ids, self.names)),
                          ("packet_status", status_table(status, first, ts)))
                for name, table in tables:
                    self.rows[name] += table.num_rows
                    for c in self.consumers:
                        c(name, table)
            except BaseException as e:        # noqa: BLE001 - re-raised in the engine thread
                self.error = e

    def _raise(self):
        if self.error is not None:
            e, self.error = self.error, None
            raise e

    def close(self) -> None:
        self.q.put(_STOP)
        self.t.join()
        self._raise()
