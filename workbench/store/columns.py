"""The store's columns: engine batches checked and converted into a table's Arrow shape.

``conform`` is the one gate every batch passes before an insert (the writer calls it in
the caller's thread, so a wrong column fails where it was made). ``mev_opportunities_table``
renames the columns of opportunities.parquet (engine/tables.py ``opp_table``) to those of
the store's ``mev_opportunities`` table, and ``swaps_table`` those of swaps.parquet to the
``swaps`` table: which engine column feeds which store column is the store's knowledge, kept
here beside the schema (schema.py) it serves.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import StoreError
from . import schema as S

_ENUM_RE = re.compile(r"'([^']*)'\s*=\s*(-?\d+)")


def _enum_labels(ch_type: str) -> tuple[list[str], list[int]]:
    pairs = _ENUM_RE.findall(ch_type)
    return [p[0] for p in pairs], [int(p[1]) for p in pairs]


def _convert(col: S.Column, arr, src: str, table: str):
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.null_count:
        raise StoreError(f"{table}.{src}: {arr.null_count} null values; the store keeps no NULLs, "
                         "use the column's sentinel (-1, 0 or '') instead")
    t = arr.type
    if isinstance(t, pa.DictionaryType):
        arr = arr.dictionary_decode()
        t = arr.type
    try:
        if col.kind == S.TIME:
            if pa.types.is_integer(t):
                return pc.cast(pc.cast(arr, pa.int64()), col.arrow)
            if pa.types.is_timestamp(t):
                if t.unit == "ns":
                    return arr.view(col.arrow) if t != col.arrow else arr
                return pc.cast(pc.cast(arr, pa.timestamp("ns", tz=t.tz)).view(pa.int64()), col.arrow)
        elif col.kind == S.UUID_:
            if isinstance(t, pa.ExtensionType):
                arr, t = arr.storage, arr.storage.type
            if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
                return arr
            if pa.types.is_string(t) or pa.types.is_large_string(t):
                return pc.cast(arr, pa.string())            # ClickHouse parses the text form
        elif col.kind == S.ENUM:
            labels, codes = _enum_labels(col.ch_type)
            if pa.types.is_string(t) or pa.types.is_large_string(t):
                idx = pc.index_in(arr, value_set=pa.array(labels, t))
                if idx.null_count:
                    bad = pc.filter(arr, pc.is_null(idx)).unique().to_pylist()[:5]
                    raise StoreError(f"{table}.{src}: unknown label(s) {bad}; known: {labels}")
                return pc.take(pa.array(codes, pa.int8()), idx)
            if pa.types.is_integer(t):
                out = pc.cast(arr, pa.int8())
                if len(out) and not pc.all(pc.is_in(out, value_set=pa.array(codes, pa.int8()))).as_py():
                    raise StoreError(f"{table}.{src}: codes outside {dict(zip(codes, labels))}")
                return out
        else:
            return arr if t == col.arrow else pc.cast(arr, col.arrow)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise StoreError(f"{table}.{src}: cannot convert {t} to {col.arrow} for {col.ch_type}: {e}") from None
    raise StoreError(f"{table}.{src}: type {t} does not fit {col.name} {col.ch_type} (send {col.arrow})")


def conform(table_name: str, data: pa.Table, run_id: str | None = None) -> pa.Table:
    """Check and convert an engine batch into the store's Arrow shape (columns in table order).

    Accepts ``<name>_ns`` int64 for a DateTime64 ``<name>``, UUIDs as 16 bytes or text, enum
    labels or codes, dictionary-encoded columns. ``run_id`` fills a missing ``run_id`` column;
    columns with a DEFAULT may be missing. Extra columns and NULLs are errors (never dropped
    silently). Raises StoreError naming the column and the fix.
    """
    spec = S.TABLES.get(table_name)
    if spec is None:
        raise StoreError(f"no table {table_name!r} in the store; tables: {', '.join(S.TABLES)}")
    names = set(data.column_names)
    n = data.num_rows
    arrays, fields, used, missing = [], [], set(), []
    for col in spec.columns:
        src = col.name if col.name in names else (
            col.name + "_ns" if col.kind == S.TIME and col.name + "_ns" in names else None)
        if src is None:
            if col.name == "run_id" and run_id is not None:
                arr = pa.repeat(pa.scalar(run_id, pa.string()), n)
            elif col.default is not None:
                continue
            else:
                missing.append(col.name)
                continue
        else:
            used.add(src)
            arr = _convert(col, data.column(src), src, table_name)
        arrays.append(arr)
        fields.append(pa.field(col.name, arr.type, nullable=False))
    if missing:
        hint = " (pass run_id to the writer, or record_run_start first)" if "run_id" in missing else ""
        raise StoreError(f"{table_name}: missing column(s) {missing}{hint}; the batch has {sorted(names)}. Expected: "
                         + ", ".join(f"{c.name} {c.arrow}" for c in spec.columns if c.default is None))
    extra = names - used
    if extra:
        raise StoreError(f"{table_name}: column(s) {sorted(extra)} are not in the table "
                         f"(columns: {[c.name for c in spec.columns]}); add them to store/schema.py "
                         "with a migration, or drop them before writing")
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


# opportunities.parquet column -> mev_opportunities column, where the names differ
_OPP_RENAMES = {"ts_ns": "timestamp_ns", "expected_profit_sol": "profit", "detect_ns": "detect_latency_ns"}
OPP_SOURCE = "source"       # the column mev_opportunities_table adds: where the run's packets came from
# swaps.parquet column -> swaps column, where the names differ (LIMIT is an SQL keyword)
_SWAP_RENAMES = {"limit": "amount_limit"}


def _renamed(t: pa.Table, renames: dict[str, str]) -> pa.Table:
    """``t`` with its columns renamed to the store's names."""
    return t.rename_columns([renames.get(n, n) for n in t.column_names])


def mev_opportunities_table(t: pa.Table, source: str) -> pa.Table:
    """opportunities.parquet rows in the shape of the store's mev_opportunities table.

    Every column of the file goes to the store (``conform`` refuses one the table lacks), so a
    column the engine adds later fails here until a migration adds it to the table."""
    out = _renamed(t, _OPP_RENAMES)
    return out.append_column(OPP_SOURCE, pa.repeat(pa.scalar(source, pa.string()), t.num_rows))


def swaps_table(t: pa.Table) -> pa.Table:
    """swaps.parquet rows in the shape of the store's swaps table (``run_id`` added by the writer)."""
    return _renamed(t, _SWAP_RENAMES)
