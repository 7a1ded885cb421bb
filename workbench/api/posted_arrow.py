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
"""

from __future__ import annotations

import math
from operator import attrgetter

import msgspec
import pyarrow as pa

from .opportunity_rows import RESHAPED, RowError, json_shaped, read_arrow_stream
from .posted_json import NAN_NAMES, PostedRow, accepted

PIECE_ROWS = 64                     # rows per msgspec.convert call
_ROWS = list[PostedRow]
# Arrow type ids (``DataType.id``) whose Python values both checks judge alike
_STRINGS = frozenset(t.id for t in (pa.string(), pa.large_string(), pa.null()))
_PLAIN = frozenset(t.id for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
                                  pa.uint32(), pa.uint64(), pa.float16(), pa.float32(), pa.float64())) | _STRINGS
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
