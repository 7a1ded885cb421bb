"""The one JSON shape of an opportunity, and a posted batch checked against the store's table.

Every route and channel speaks the store's ``mev_opportunities`` column names (store/schema.py,
through store/columns.py for engine tables), so a row read with GET can be posted back as it
is: a DateTime64 column ``c`` travels as ``c_ns`` (int ns since the epoch, exact where a JSON
date could not be), a UUID as its text, an enum as its label, a NaN float as null.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass

import orjson
import pyarrow as pa

from ..store import schema as S
from ..store.columns import conform

TABLE = "mev_opportunities"
ID = "opportunity_id"
BATCH_ROWS_MAX = 10_000              # rows in one POST: a bigger batch is split by the client
ARROW_STREAM = "application/vnd.apache.arrow.stream"     # the media type of an Arrow IPC stream


class RowError(ValueError):
    """A posted row that does not fit the table: ``row`` (0-based) and ``field`` name it."""

    def __init__(self, row: int | None, field: str | None, message: str):
        super().__init__(message)
        self.row, self.field, self.message = row, field, message

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "message": self.message}


def dumps_rows(table: pa.Table) -> list[bytes]:
    """Each row of ``table`` as JSON bytes (encoded once, then shared by every client)."""
    return [orjson.dumps(r) for r in table.to_pylist()]


def json_name(col: S.Column) -> str:
    """The column's field name in JSON: a time column carries its unit."""
    return col.name + "_ns" if col.kind == S.TIME else col.name


def _literal_default(col: S.Column):
    """The column's DEFAULT as a Python value, when it is a plain literal; else a sentinel."""
    d = col.default
    if d is None:
        return _REQUIRED
    if d.startswith("'") and d.endswith("'"):
        return d[1:-1]
    if d == "nan":
        return math.nan
    try:
        return int(d)
    except ValueError:
        try:
            return float(d)
        except ValueError:
            return _REQUIRED


_REQUIRED = object()
REQUIRED = _REQUIRED            # what ``literal_default`` gives for a column with no plain literal DEFAULT


def literal_default(col: S.Column):
    """The column's DEFAULT as a Python value, or REQUIRED when it has none a row can take."""
    return _literal_default(col)
_INT_BITS = {pa.int8(): 8, pa.int16(): 16, pa.int32(): 32, pa.int64(): 64}
_UINT_BITS = {pa.uint8(): 8, pa.uint16(): 16, pa.uint32(): 32, pa.uint64(): 64}


def int_range(t: pa.DataType) -> tuple[int, int] | None:
    """[lo, hi) of an Arrow integer type's values; None for any other type."""
    if t in _INT_BITS:
        return -(1 << (_INT_BITS[t] - 1)), 1 << (_INT_BITS[t] - 1)
    if t in _UINT_BITS:
        return 0, 1 << _UINT_BITS[t]
    return None


def _check_value(col: S.Column, v, row: int, name: str):
    """``v`` as the Python value the column's Arrow type takes; RowError naming row and field."""
    t = col.arrow
    if col.kind == S.TIME:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
            raise RowError(row, name, f"expected an integer time in ns since the Unix epoch, got {v!r}")
        return v
    if col.kind == S.UUID_:
        try:
            return str(uuid.UUID(str(v))) if isinstance(v, str) else _bad(row, name, "a UUID as text", v)
        except ValueError:
            return _bad(row, name, "a UUID as text", v)
    if col.kind == S.ENUM:
        labels = [lab for lab, _ in enum_pairs(col)]
        if isinstance(v, str) and v in labels:
            return v
        return _bad(row, name, f"one of {labels}", v)
    if pa.types.is_floating(t):
        if v is None and col.default == "nan":
            return math.nan
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return _bad(row, name, "a number" + (" or null" if col.default == "nan" else ""), v)
        # (only an Arrow body can carry these: JSON has no literal for them, and a row's JSON, which the
        # post log and the WebSocket carry, would turn them into null)
        if not math.isfinite(v) and not (col.default == "nan" and math.isnan(v)):
            return _bad(row, name, "a finite number" + (", NaN or null" if col.default == "nan" else ""), v)
        return float(v)
    bounds = int_range(t)
    if bounds is not None:
        if isinstance(v, bool) or not isinstance(v, int):
            return _bad(row, name, "an integer", v)
        lo, hi = bounds
        if not lo <= v < hi:
            raise RowError(row, name, f"{v} is outside [{lo}, {hi}) of {col.ch_type}")
        return v
    if pa.types.is_string(t):
        return v if isinstance(v, str) else _bad(row, name, "a string", v)
    if pa.types.is_list(t) and pa.types.is_string(t.value_type):
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
        return _bad(row, name, "a list of strings", v)
    raise RowError(row, name, f"the API cannot take {col.ch_type} values yet")


def _bad(row: int, name: str, expected: str, v):
    shown = repr(v)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise RowError(row, name, f"expected {expected}, got {shown}")


def enum_pairs(col: S.Column) -> list[tuple[str, int]]:
    """(label, code) of an Enum8 column, in the DDL's order."""
    return [(lab, int(code)) for lab, code in re.findall(r"'([^']*)'\s*=\s*(-?\d+)", col.ch_type)]


@dataclass
class PostedBatch:
    """A checked batch: the Arrow table in the store's shape, its ids, and the rows as JSON."""
    table: pa.Table
    ids: list[str]
    rows: list[dict]


def check_batch(body: bytes) -> PostedBatch:
    """Parse and check a posted JSON batch (a list of row objects, or ``{"rows": [...]}``).

    Every field is checked against the store's columns before anything is written: the first
    bad row raises RowError naming the row and the field. A row's ``opportunity_id`` repeated
    within the batch is a RowError too (a batch says each opportunity once).
    """
    return check_rows(parse_batch(body))


def parse_batch(body: bytes) -> list:
    """The rows of a posted JSON body, unchecked; RowError when the body is not a JSON list of
    rows (or ``{"rows": [...]}``)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise RowError(None, None, f"the body is not JSON: {e}") from None
    if isinstance(data, dict) and "rows" in data:
        data = data["rows"]
    if not isinstance(data, list):
        raise RowError(None, None, 'expected a JSON list of rows, or {"rows": [...]}')
    return data


def read_arrow_stream(body: bytes) -> pa.Table:
    """The table of a posted Arrow IPC stream; RowError saying where and what is wrong otherwise."""
    src = pa.BufferReader(body)
    batches = []
    try:
        reader = pa.ipc.open_stream(src)
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as e:
        raise RowError(None, None, f"the body is not a readable Arrow IPC stream (stopped at byte {src.tell()} of "
                                   f"{len(body)}): {e}") from None
    rows = sum(b.num_rows for b in batches)
    if rows > BATCH_ROWS_MAX:
        raise RowError(None, None, f"{rows} rows in one batch; at most {BATCH_ROWS_MAX}: split it")
    t = pa.Table.from_batches(batches, schema=reader.schema)
    try:
        t.schema.names                  # (read as text at every use)
    except UnicodeDecodeError as e:
        raise RowError(None, None, f"a column's name in the Arrow stream is not UTF-8: {e}") from None
    try:
        # the reader checks the buffers' bounds only; text that is not UTF-8, or offsets out of order,
        # would fail (or read astray) when the values are read, for the whole group of posts
        t.validate(full=True)
    except pa.ArrowInvalid as whole:
        for name, col in zip(t.column_names, t.columns):
            try:
                col.validate(full=True)
            except pa.ArrowInvalid as e:
                raise RowError(None, name, f"column {name!r} does not hold valid Arrow data: {e}") from None
        raise RowError(None, None, f"the Arrow stream does not hold valid data: {whole}") from None
    return t


def check_arrow_batch(body: bytes) -> PostedBatch:
    """Check a posted Arrow IPC stream exactly as a JSON batch: its columns are the JSON shape's
    (a GET with Accept: application/vnd.apache.arrow.stream gives one), and each value goes
    through the same checks, so a bad one is named by row and field (``json_shaped``)."""
    t = json_shaped(read_arrow_stream(body))
    try:
        rows = t.to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise RowError(None, None, f"the Arrow columns cannot be read as rows: {e}") from None
    return check_rows(rows)


def json_shaped(t: pa.Table, types: list[pa.DataType] | None = None) -> pa.Table:
    """``t`` with the JSON shape's values: a ``timestamp`` column ``<name>_ns`` as its int ns, a
    dictionary column as its values; every other column as sent (the checks decide). ``types``:
    ``t.schema.types``, when the caller has them. RowError naming a column that cannot be read."""
    for at, typ in enumerate(t.schema.types if types is None else types):
        if typ.id not in RESHAPED:          # (the usual column: left alone)
            continue
        name, col = t.schema.names[at], t.column(at)
        try:
            if typ.id == _TIMESTAMP and name.endswith("_ns"):
                col = col.cast(pa.timestamp(typ.unit)).cast(pa.timestamp("ns")).cast(pa.int64())
            elif typ.id == _DICTIONARY:
                col = col.cast(typ.value_type)
            else:
                continue
            t = t.set_column(at, name, col)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise RowError(None, name, f"column {name!r} of type {typ} cannot be read: {e}") from None
    return t


_TIMESTAMP, _DICTIONARY = pa.timestamp("ns").id, pa.dictionary(pa.int8(), pa.string()).id
RESHAPED = frozenset((_TIMESTAMP, _DICTIONARY))     # type ids (``DataType.id``) json_shaped converts


def check_rows(data: list) -> PostedBatch:
    """Check a batch of row objects against the store's columns (see ``check_batch``)."""
    if len(data) > BATCH_ROWS_MAX:
        raise RowError(None, None, f"{len(data)} rows in one batch; at most {BATCH_ROWS_MAX}: split it")
    spec = S.TABLES[TABLE]
    cols = [(c, json_name(c), _literal_default(c)) for c in spec.columns]
    known = {name for _, name, _ in cols}
    values: dict[str, list] = {name: [] for _, name, _ in cols}
    seen: dict[str, int] = {}
    for i, r in enumerate(data):
        if not isinstance(r, dict):
            raise RowError(i, None, f"expected an object, got {type(r).__name__}")
        extra = [k for k in r if k not in known]
        if extra:
            raise RowError(i, extra[0], f"{extra[0]!r} is not a column of {TABLE} "
                                        f"(columns: {', '.join(sorted(known))})")
        for col, name, default in cols:
            if name in r:
                v = _check_value(col, r[name], i, name)
            elif default is not _REQUIRED:
                v = default
            else:
                raise RowError(i, name, f"required field {name!r} is missing")
            values[name].append(v)
        oid = values[json_name(spec.column(ID))][-1]
        if oid in seen:
            raise RowError(i, ID, f"{oid} is also row {seen[oid]} of this batch")
        seen[oid] = i
    arrays, names = [], []
    for col, name, _ in cols:
        t = pa.int64() if col.kind == S.TIME else (pa.string() if col.kind in (S.UUID_, S.ENUM) else col.arrow)
        arrays.append(pa.array(values[name], t))
        names.append(name)
    raw = pa.Table.from_arrays(arrays, names=names)
    rows = [dict(zip(names, vals)) for vals in zip(*(values[n] for n in names))]
    return PostedBatch(conform(TABLE, raw), list(seen), rows)
