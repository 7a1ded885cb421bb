"""A posted Arrow IPC body checked in one pass, as a JSON body is (posted_json.py).

``check_arrow_batch`` (opportunity_rows.py) turns the stream's table into row dicts and sends every
value through ``check_rows`` in Python, and post_columns.py converts the checked rows again: an
Arrow body, the form a detector in pandas or Polars sends most easily, cost many times a JSON body
of the same rows (benchmarks/bench_post_check.py). Here the table in the JSON shape
(``json_shaped``: times as int ns, dictionaries decoded) goes straight to ``msgspec.convert`` into
``PostedRow``, whose field types are the column checks, so msgspec makes them in C; then the checks
its types cannot say (posted_json.py ``accepted``, and ``_no_infinity``).

That holds only where a column's Python values are ones that ``msgspec.convert`` and
``check_rows`` judge alike: integers, floats, strings, lists of strings, nulls (``_plain``).
msgspec would take a decimal for a float, where ``check_rows`` wants a number; so a body with a
column of any other type, and one that anything here refuses, goes to ``check_arrow_batch``,
which names the row and field of a refusal or accepts it with the same values.

The rows are converted ``PIECE_ROWS`` at a time (zero-copy slices of the table), so that a large
body checked on a worker thread never holds the GIL for long in one call.

Before that, a table whose every column has the type GET's Arrow pages give it (after
``json_shaped``: int64 times, text ids and labels, floats, integers whose type's range lies in the
field's, text, lists of text) is checked column by column (``by_columns``): each column's values as
one Python list (``to_pylist`` of a column, not a dict a row), then each column's check in one
C-speed pass over its list (``min``/``max``, ``in``, ``set``, ``math.isfinite``), the same checks
the field types make, and the rows made from the columns (``PostedRow(*values)``, which checks
nothing: the columns were). Anything else (another column type, a null where the type wants a
value, any value refused) goes the way above, which decides as before.
"""

from __future__ import annotations

import math
from itertools import chain, repeat, starmap
from operator import attrgetter

import msgspec
import pyarrow as pa

from ..store import schema as S
from .opportunity_rows import (BATCH_ROWS_MAX, ID, REQUIRED, RESHAPED, TABLE, RowError, int_range, json_name,
                               json_shaped, literal_default, read_arrow_stream)
from .posted_json import (ENUM, FLOAT, INT, NAN_FLOAT, NAN_NAMES, TEXTS, TIME, UUID, UUID_TEXT, PostedRow, accepted,
                          canonical_ids, field_kind)

PIECE_ROWS = 64                     # rows per msgspec.convert call
COLUMN_PIECE_ROWS = 1024            # rows per piece checked column by column (a column's read holds the GIL)
_ROWS = list[PostedRow]
# Arrow type ids (``DataType.id``) whose Python values both checks judge alike
_STRINGS = frozenset(t.id for t in (pa.string(), pa.large_string(), pa.null()))
_INTS = (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64())
_PLAIN = frozenset(t.id for t in (*_INTS, pa.float16(), pa.float32(), pa.float64())) | _STRINGS
_LISTS = frozenset(t.id for t in (pa.list_(pa.string()), pa.large_list(pa.string())))
# float fields that may be NaN or null, never infinite
_MAY_BE_NAN = tuple(map(attrgetter, NAN_NAMES))


def _plain(t: pa.DataType) -> bool:
    """Whether a column of type ``t`` gives Python values both checks judge alike: integers,
    floats, strings, lists of strings, nulls."""
    return t.id in _PLAIN or (t.id in _LISTS and t.value_type.id in _STRINGS)


def decode_arrow(body: bytes) -> list | None:
    """The rows (``PostedRow``) of an Arrow IPC body when every row passes; None when anything
    fails or a column's type is not plain (``check_arrow_batch`` then decides, and says why)."""
    try:
        table = read_arrow_stream(body)
        types = table.schema.types
        if any(t.id in RESHAPED for t in types):
            table = json_shaped(table, types)
            types = table.schema.types
    except RowError:
        return None
    if not all(map(_plain, types)):
        return None
    got = by_columns(table, types)
    if got is not None:
        return got
    rows = []
    try:
        for piece in table.to_batches(max_chunksize=PIECE_ROWS):
            rows += msgspec.convert(piece.to_pylist(), _ROWS)
    except (msgspec.ValidationError, pa.ArrowException):
        return None
    return accepted(rows) if _no_infinity(rows) else None


def _no_infinity(rows: list) -> bool:
    """Whether no float whose column's DEFAULT is nan is infinite (``check_rows`` takes NaN there, and
    so does msgspec, but refuses the infinities; every other float's finiteness is in its type)."""
    for get in _MAY_BE_NAN:
        values = list(map(get, rows))
        if math.inf in values or -math.inf in values:
            return False
    return True


# -- column by column --------------------------------------------------------------------------------
_FLOATS = frozenset(t.id for t in (pa.float32(), pa.float64()))      # (a float16's Python value is numpy's)
_NAN_FLOATS = _FLOATS | {pa.null().id}
_TEXT_IDS = frozenset(t.id for t in (pa.string(), pa.large_string()))
_INT64 = pa.int64().id
# [lo, hi) of each Arrow integer type by its id (a DataType's hash costs microseconds: int_range's lookup)
_INT_RANGES = {t.id: int_range(t) for t in _INTS}


def _field_plan() -> list[tuple]:
    """(field name, kind, default or REQUIRED, what the check needs) of each ``PostedRow`` field, in
    its order (an enum's labels as a set)."""
    plan = []
    for col in S.TABLES[TABLE].columns:
        kind, arg = field_kind(col)
        plan.append((json_name(col), kind, literal_default(col), frozenset(arg) if kind == ENUM else arg))
    assert tuple(f[0] for f in plan) == PostedRow.__struct_fields__
    return plan


_PLAN = _field_plan()
_ID_AT = next(k for k, f in enumerate(_PLAN) if f[0] == ID)


def by_columns(table: pa.Table, types: list[pa.DataType]) -> list | None:
    """The rows (``PostedRow``) of a JSON-shaped table (its ``types``) whose every column has the type
    GET gives it, checked column by column; None when a column's type is another, a field is missing
    without a default, a column is unknown or twice, or any value is refused (the caller's way then
    decides). Every pyarrow call costs about as much as a small column's check, so each column of a
    piece is read in one call and the checks look at its Python values."""
    names = table.schema.names
    at = {name: k for k, name in enumerate(names)}
    if len(at) != len(names) or not 0 < table.num_rows <= BATCH_ROWS_MAX:
        return None
    fields = [(at.get(name), kind, default, arg) for name, kind, default, arg in _PLAN]
    if any(k is None and default is REQUIRED for k, _, default, _ in fields):
        return None                     # a required field not sent
    if sum(k is not None for k, *_ in fields) != len(names):
        return None                     # a column that is no field
    rows, ids = [], []
    for piece in table.to_batches(max_chunksize=COLUMN_PIECE_ROWS):      # (zero-copy slices)
        columns = []
        for k, kind, default, arg in fields:
            got = repeat(default, piece.num_rows) if k is None else \
                _checked(piece.column(k).to_pylist(), types[k], kind, arg)
            if got is None:
                return None
            columns.append(got)
        ids += columns[_ID_AT]
        rows += starmap(PostedRow, zip(*columns))
    return rows if len(set(ids)) == len(ids) else None       # (else an id twice)


def _checked(v: list, typ: pa.DataType, kind: int, arg) -> list | None:
    """A column's values ``v`` (of Arrow type ``typ``) as the field's, when the type is the field's
    and every value passes its check; None otherwise."""
    tid = typ.id
    if kind == NAN_FLOAT:              # null (nan) or any float but the infinities; a column of nulls only
        return v if tid in _NAN_FLOATS and math.inf not in v and -math.inf not in v else None
    if None in v:
        return None
    if kind == FLOAT:
        return v if tid in _FLOATS and all(map(math.isfinite, v)) else None
    if kind == INT:
        own = _INT_RANGES.get(tid)
        if own is None or own[0] < arg[0] and min(v) < arg[0] or own[1] > arg[1] and max(v) >= arg[1]:
            return None
        return v
    if kind == TIME:                   # int ns at or after the epoch (json_shaped made a timestamp one)
        return v if tid == _INT64 and min(v) >= 0 else None
    if kind == TEXTS:
        if tid not in _LISTS or typ.value_type.id not in _TEXT_IDS or None in chain.from_iterable(v):
            return None
        return list(map(tuple, v))
    if tid not in _TEXT_IDS:
        return None
    if kind == ENUM:
        return v if arg.issuperset(v) else None
    if kind == UUID:                   # canonical text: 36 characters each, then read as one text
        return v if set(map(len, v)) == {UUID_TEXT} and canonical_ids(v) else None
    return v
