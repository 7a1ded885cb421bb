"""Sinks run beside the engine: a thread turns engine rows into Arrow tables and writes them.

The engine thread only runs ``process_batch`` (nogil) and copies its rows; this thread
builds the Arrow tables (base58, list columns), writes Parquet and hands tables to the
store. On a 2-core machine the two overlap, so a replay runs at the speed of the slower
of the two rather than their sum. The queue is bounded: a slow sink slows the engine
(backpressure) instead of growing memory. An exception in the thread is re-raised in the
engine thread at the next ``put`` or at ``close``.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .engine.tables import KeyNames, MarketNames, opp_table, status_table, swap_table, tx_table

_STOP = object()

# Parquet: dictionary only where values repeat, delta encoding for the ordered integers,
# statistics only where readers filter: smaller files, written faster; the packet_status
# file (one short row per packet) gains most
_DELTA = "DELTA_BINARY_PACKED"
TX_PARQUET = dict(compression="zstd", use_dictionary=["version", "programs.list.element"],
                  write_statistics=["tx_index", "packet_index", "ts_ns", "slot"],
                  column_encoding={"tx_index": _DELTA, "packet_index": _DELTA, "ts_ns": _DELTA})
STATUS_PARQUET = dict(compression="zstd", use_dictionary=["status"], write_statistics=["packet_index"],
                      column_encoding={"packet_index": _DELTA, "ts_ns": _DELTA})
SWAPS_PARQUET = dict(compression="zstd", use_dictionary=["pool", "program", "status"],
                     write_statistics=["tx_index", "packet_index", "ts_ns", "pool"],
                     column_encoding={"tx_index": _DELTA, "packet_index": _DELTA, "ts_ns": _DELTA})
OPPS_PARQUET = dict(compression="zstd", use_dictionary=["type", "profit_mint", "pools.list.element"],
                    write_statistics=["ts_ns", "packet_index", "type", "expected_profit_sol"])
COSTS_PARQUET = dict(compression="zstd", use_dictionary=False)
PARQUET_OPTIONS = {"tx_features": TX_PARQUET, "packet_status": STATUS_PARQUET, "swaps": SWAPS_PARQUET,
                   "opportunities": OPPS_PARQUET, "opportunity_costs": COSTS_PARQUET}
# wall-clock columns live apart, so that two replays of one capture write identical files
WALL_CLOCK = {"opportunities": ("opportunity_costs", "opportunity_id", ("detect_ns",))}


ROW_GROUP_ROWS = 1 << 16      # rows per Parquet row group, whatever the engine's call sizes
PARTIAL_SUFFIX = ".partial"   # a row file being written: renamed to its final name once closed


class ParquetSink:
    """tx_features.parquet, packet_status.parquet, swaps.parquet and opportunities.parquet of one run.

    Rows are regrouped into row groups of exactly ROW_GROUP_ROWS (the last one shorter),
    so the file's bytes depend only on the rows: a paced replay, a full-speed replay and
    a replay with another batch size write identical files.
    """

    def __init__(self, out_dir: Path, key_names: KeyNames, row_group_rows: int = ROW_GROUP_ROWS):
        self.out = Path(out_dir)
        self.names = key_names
        self.rg = row_group_rows
        self.paths = {name: self.out / f"{name}.parquet" for name in PARQUET_OPTIONS}
        self._w: dict[str, pq.ParquetWriter] = {}
        self._pending: dict[str, list[pa.Table]] = {}
        self._pending_rows: dict[str, int] = {}

    def write(self, name: str, table: pa.Table) -> None:
        if name in WALL_CLOCK:
            costs, key, cols = WALL_CLOCK[name]
            self.write(costs, table.select([key, *cols]))
            table = table.drop_columns(list(cols))
        if name not in self.paths:
            return
        if name not in self._w:
            self.paths[name].unlink(missing_ok=True)      # an older run's file must not pass for this one's
            self._w[name] = pq.ParquetWriter(self.partial(name), table.schema, **PARQUET_OPTIONS[name])
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

    def partial(self, name: str) -> Path:
        """Where ``name``'s file is written until it is closed: a Parquet file is readable only once
        its footer is written, so only a closed file has the final name (a process killed with
        SIGKILL leaves ``*.parquet.partial`` files, never an unreadable ``*.parquet``)."""
        return self.paths[name].with_name(self.paths[name].name + PARTIAL_SUFFIX)

    def close(self, empties: dict[str, pa.Table]) -> None:
        """Flush and close every file, each then renamed to its final name; ``empties`` gives the
        schema of tables that got no rows."""
        for name, empty in list(empties.items()):
            if name in WALL_CLOCK:
                costs, key, cols = WALL_CLOCK[name]
                empties[costs] = empty.select([key, *cols])
        first: BaseException | None = None
        for name, empty in empties.items():
            try:                  # one file that fails to close never keeps the others open
                if name not in self._w:
                    self.write(name, empty)
                if self._pending_rows[name] or not self._pending[name]:
                    self._flush(name, final=True)
                self._w[name].close()
                os.replace(self.partial(name), self.paths[name])
            except Exception as e:  # noqa: BLE001 - raised once every file had its chance
                first = first or e
        if first is not None:
            raise first


class OppSummary:
    """Opportunities by type, total expected profit and the top ten, gathered as rows pass."""

    TOP = 10

    def __init__(self):
        self.by_type: dict[str, int] = {}
        self.profit_sol: dict[str, float] = {}
        self.top: list[dict] = []

    def add(self, t: pa.Table) -> None:
        if t.num_rows == 0:
            return
        types = t.column("type").to_pylist()
        profit = t.column("expected_profit_sol").to_numpy()
        for k, p in zip(types, profit):
            self.by_type[k] = self.by_type.get(k, 0) + 1
            self.profit_sol[k] = self.profit_sol.get(k, 0.0) + float(p)
        best = np.argsort(-profit, kind="stable")[:self.TOP]
        cols = ("opportunity_id", "type", "ts_ns", "packet_index", "pools", "amount_in", "profit_quote",
                "expected_profit_sol", "victim_signature")
        sub = t.take(pa.array(best)).select(list(cols)).to_pylist()
        self.top = sorted(self.top + sub, key=lambda r: (-r["expected_profit_sol"], r["ts_ns"]))[:self.TOP]

    def as_dict(self) -> dict:
        return {"count": sum(self.by_type.values()), "by_type": dict(sorted(self.by_type.items())),
                "expected_profit_sol": round(sum(self.profit_sol.values()), 9),
                "expected_profit_sol_by_type": {k: round(v, 9) for k, v in sorted(self.profit_sol.items())},
                "top": self.top}


class SinkThread:
    """Builds Arrow tables from copied engine rows and passes them to ``consumers``.

    ``market_names`` (engine/tables.py MarketNames) names pools and tokens of the swap and
    opportunity rows; ``capture_id`` (a callable, called once at the first opportunity)
    seeds their deterministic UUIDs.
    """

    def __init__(self, key_names: KeyNames, consumers: list[Callable[[str, pa.Table], None]], depth: int = 4,
                 market_names: MarketNames | None = None, capture_id: Callable[[], str] | None = None):
        self.names = key_names
        self.market_names = market_names
        self._capture_id_fn = capture_id
        self._capture_id: str | None = None
        self.consumers = consumers
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.failed: list[Callable[[str, pa.Table], None]] = []   # consumers that raised: they get no more rows
        self.rows = {"tx_features": 0, "packet_status": 0, "swaps": 0, "opportunities": 0}
        self.opps = OppSummary()
        self.t = threading.Thread(target=self._run, name="workbench-sinks", daemon=True)
        self.t.start()

    def put(self, tx: np.ndarray, prog_ids: np.ndarray, status: np.ndarray, first_index: int, ts_ns: np.ndarray,
            swaps: np.ndarray | None = None, opps: np.ndarray | None = None):
        """Hand over COPIES of one call's rows (the engine reuses its buffers). With no consumer
        only the opportunities travel (the run's opportunity summary needs them). A consumer's
        error is raised AFTER the rows are queued: rows the engine made are never left out."""
        if not self.consumers:
            if opps is not None and opps.shape[0]:
                self.q.put((None, None, None, first_index, None, None, opps.copy()))
        else:
            self.q.put((tx.copy(), prog_ids.copy(), status.copy(), first_index, ts_ns.copy(),
                        None if swaps is None or not swaps.shape[0] else swaps.copy(),
                        None if opps is None or not opps.shape[0] else opps.copy()))
        self._raise()

    def capture_id(self) -> str:
        if self._capture_id is None:
            self._capture_id = self._capture_id_fn() if self._capture_id_fn is not None else ""
        return self._capture_id

    def _run(self):
        broken = False                        # building tables failed: nothing more can be built
        while True:
            item = self.q.get()
            if item is _STOP:
                return
            if broken:
                continue                      # drain without work after a failure
            try:
                tx, prog_ids, status, first, ts, swaps, opps = item
                tables = ([("tx_features", tx_table(tx, prog_ids, self.names)),
                           ("packet_status", status_table(status, first, ts))] if tx is not None else [])
                if swaps is not None and self.market_names is not None:
                    tables.append(("swaps", swap_table(swaps, self.market_names)))
                if opps is not None and self.market_names is not None:
                    t = opp_table(opps, self.market_names, self.capture_id())
                    self.opps.add(t)
                    tables.append(("opportunities", t))
            except BaseException as e:        # noqa: BLE001 - re-raised in the engine thread
                self.error, broken = self.error or e, True
                continue
            for name, table in tables:
                self.rows[name] += table.num_rows
                for c in list(self.consumers):
                    try:
                        c(name, table)
                    except BaseException as e:  # noqa: BLE001 - re-raised in the engine thread
                        # a failed consumer (the store writer) gets no more rows; the others (the Parquet
                        # files) go on getting every row, so the row files stay complete and agree
                        self.consumers.remove(c)
                        self.failed.append(c)
                        self.error = self.error or e

    def _raise(self):
        if self.error is not None:
            e, self.error = self.error, None
            raise e

    def close(self) -> None:
        self.q.put(_STOP)
        self.t.join()
        self._raise()
