"""The run's row files: tx_features, packet_status, swaps and opportunities (and opportunity_costs)
as Parquet, written from the sink thread's tables (sinks.py), regrouped so that a file's bytes depend
only on its rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .engine.tables import KeyNames, canonical_programs

# Parquet: dictionary only where values repeat, delta encoding for the ordered integers,
# statistics only where readers filter: smaller files, written faster; the packet_status
# file (one short row per packet) gains most.
# Compression: the per-packet files (tx_features, packet_status, swaps) are written at the
# engine's rate, so they are not compressed: even LZ4 took about as long as writing the rest of
# the file, on one of only two cores the whole run shares (files about 1.9x as large; compress
# a finished run's files later if size matters). Their fields are non-nullable (tables.py
# required_table), which spares the definition levels. The small files keep zstd.
_DELTA = "DELTA_BINARY_PACKED"
_FAST = "none"
TX_PARQUET = dict(compression=_FAST,
                  use_dictionary=["version", "programs.list.element"],
                  write_statistics=["tx_index", "packet_index", "ts_ns", "slot"],
                  column_encoding={"tx_index": _DELTA, "packet_index": _DELTA, "ts_ns": _DELTA})
STATUS_PARQUET = dict(compression=_FAST, use_dictionary=["status"], write_statistics=["packet_index"],
                      column_encoding={"packet_index": _DELTA, "ts_ns": _DELTA})
SWAPS_PARQUET = dict(compression=_FAST, use_dictionary=["pool", "program", "status"],
                     write_statistics=["tx_index", "packet_index", "ts_ns", "pool"],
                     column_encoding={"tx_index": _DELTA, "packet_index": _DELTA, "ts_ns": _DELTA})
OPPS_PARQUET = dict(compression="zstd", use_dictionary=["type", "profit_mint", "pools.list.element"],
                    write_statistics=["ts_ns", "packet_index", "type", "expected_profit_sol"])
COSTS_PARQUET = dict(compression="zstd", use_dictionary=False)
PARQUET_OPTIONS = {"tx_features": TX_PARQUET, "packet_status": STATUS_PARQUET, "swaps": SWAPS_PARQUET,
                   "opportunities": OPPS_PARQUET, "opportunity_costs": COSTS_PARQUET}


def _leaf_paths(schema: pa.Schema) -> dict[str, str]:
    """Parquet column path of each top-level field (a list's values are ``<name>.list.element``)."""
    paths = {}
    for f in schema:
        if pa.types.is_list(f.type) and not pa.types.is_nested(f.type.value_type):
            paths[f.name] = f"{f.name}.list.element"
        elif not pa.types.is_nested(f.type):
            paths[f.name] = f.name
        else:
            raise TypeError(f"column {f.name}: {f.type} has no Parquet column path rule here")
    return paths


def writer_options(name: str, schema: pa.Schema) -> dict:
    """``ParquetWriter`` keywords of table ``name``: PARQUET_OPTIONS, with ``uncompressed`` columns
    written without compression (a per-column codec map; a column missing from it would be
    uncompressed too, so every column is named)."""
    opts = dict(PARQUET_OPTIONS[name])
    plain = opts.pop("uncompressed", ())
    if plain:
        codec = opts["compression"]
        opts["compression"] = {path: ("none" if col in plain else codec) for col, path in _leaf_paths(schema).items()}
    return opts


def _canonical_programs(t: pa.Table) -> pa.Table:
    """``t`` with its ``programs`` dictionary cut to the names its rows use, sorted (so that a
    file's bytes depend only on its rows, whatever tables they came in)."""
    if "programs" not in t.column_names or not pa.types.is_dictionary(t.schema.field("programs").type.value_type):
        return t
    i = t.column_names.index("programs")
    return t.set_column(i, t.schema.field(i), canonical_programs(t.column(i)))


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
        self._built_whole: dict[str, bool] = {}

    def write(self, name: str, table: pa.Table) -> None:
        if name in WALL_CLOCK:
            costs, key, cols = WALL_CLOCK[name]
            self.write(costs, table.select([key, *cols]))
            table = table.drop_columns(list(cols))
        if name not in self.paths:
            return
        if name not in self._w:
            self.paths[name].unlink(missing_ok=True)      # an older run's file must not pass for this one's
            self._w[name] = pq.ParquetWriter(self.partial(name), table.schema, **writer_options(name, table.schema))
            self._pending[name], self._pending_rows[name] = [], 0
        # one table as tx_table built it is already canonical; a join or a leftover slice is not
        self._built_whole[name] = not self._pending[name]
        self._pending[name].append(table)
        self._pending_rows[name] += table.num_rows
        if self._pending_rows[name] >= self.rg:
            self._flush(name, final=False)

    def _flush(self, name: str, final: bool) -> None:
        if not self._pending[name]:
            return                    # every row already written (a multiple of whole row groups)
        whole_built = self._built_whole[name]
        whole = pa.concat_tables(self._pending[name]).combine_chunks()
        n = whole.num_rows
        cut = n if final else (n // self.rg) * self.rg
        for lo in range(0, cut, self.rg):
            part = whole.slice(lo, min(self.rg, cut - lo))
            if name == "tx_features" and not (whole_built and part.num_rows == n):
                # a join or a slice keeps dictionary names its rows may not use: cut as tx_table would
                part = _canonical_programs(part)
            self._w[name].write_table(part, row_group_size=self.rg)
        rest = whole.slice(cut)
        self._pending[name], self._pending_rows[name] = ([rest] if rest.num_rows else []), rest.num_rows
        self._built_whole[name] = False          # a leftover slice keeps its table's whole dictionary

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
