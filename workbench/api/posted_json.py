"""A posted JSON body decoded and checked in one pass: msgspec, with a type made from the table.

POST /v1/opportunities spent most of a request's time checking its rows: parsing the body,
then testing each column of the group in Python and Arrow. Here the table's columns
(store/schema.py) become a msgspec Struct whose field types are the checks themselves: an
integer in its column's range, a finite float (an integer taken as one) or, where the column's
DEFAULT is nan, null or any float, a string, a list of strings, an enum label, a time in ns at or after the
epoch, a UUID in its canonical text; a required field missing, or a field the table lacks,
fails the Struct. msgspec checks all of that in C while it parses.

msgspec parses a float of about 1e289 or more by an exact slow path, many times a usual float's
cost and all of it with the GIL held: one large body of such values held the event loop for
seconds. orjson parses them at its usual speed, and ``msgspec.convert`` makes the same checks from
Python values (``parsed_first``), but costs several times the single pass on usual rows. So each
body is decoded by the single pass, its CPU time taken; one that took far more than its size explains
(``SLOW_NS_PER_KIB``) opens a window of ``PARSED_FIRST_S`` in which every body is parsed by orjson
first. A body of more than ``PIECE_BYTES`` is first cut into its rows (msgspec's ``Raw``, which
skips numbers without converting them) and decoded a piece of about that size at a time, so that
no single call holds the GIL for longer than a piece takes, and a body of huge floats costs one
slow piece before the window opens (benchmarks/bench_post_floats.py).

This is the fast way only: a body it refuses for any reason (a bad value, a form it does not
take, such as an upper-case UUID or an id twice in one batch) is checked again by
``check_rows``, value by value, which names the row and field of a refusal or accepts the form
with the same values. So what is accepted here is a subset of what ``check_rows`` accepts, with
the same values, and every refusal carries ``check_rows``'s message (test_api_post_columns.py).

The rows stay msgspec Structs (``PostedRow``: gc=False, no dict per row): their JSON, with the
table's keys in its order, is encoded from them by msgspec (``posted_items``), the store's table
is made from their attributes (post_columns.py ``store_table``, after a failed insert or at a
restart), and the GET memory makes dicts only of the rows a page reads (``row_dicts``, from the
JSON). A field whose column's DEFAULT is nan holds None
for nan, written as null, as ``orjson`` writes nan. msgspec writes a float's positive exponent
without its sign (``1e16`` where orjson writes ``1e+16``): the same value.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from operator import attrgetter
from typing import Annotated, Literal, Optional, Union

import msgspec
import orjson
import pyarrow as pa

from ..store import schema as S
from .opportunity_rows import BATCH_ROWS_MAX, ID, REQUIRED, TABLE, enum_pairs, int_range, json_name, literal_default

log = logging.getLogger(__name__)

# canonical UUID text (``str(uuid.UUID(v)) == v``), any number end to end: msgspec takes a UUID field
# of 36 characters, and a body's ids are then matched in one call (a pattern in the field's type
# made msgspec run one match a row, each with its call's cost)
UUID_TEXT = 36
_UUIDS = re.compile(r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})*")
_INT64_MAX = 2**63 - 1               # msgspec's bounds stop here
# a float between these is finite: msgspec refuses NaN and the infinities against them (JSON has no
# literal for either, and a number past them is refused as out of range; an Arrow body can carry both)
_FINITE = msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)
PIECE_BYTES = 16 * 1024              # a larger body is decoded a piece of about this size at a time
SLOW_NS_PER_KIB = 10_000             # a single pass taking more CPU than this per KiB of body met huge floats ...
SLOW_MIN_NS = 2_000_000              # ... when it took at least this much in all
PARSED_FIRST_S = 10.0                # then bodies are parsed by orjson first for this long


# what a column's JSON field holds, as both checks of a posted row see it: the msgspec type here, the
# column check of an Arrow body (posted_arrow.py ``by_columns``)
TIME, UUID, ENUM, FLOAT, NAN_FLOAT, INT, TEXT, TEXTS = range(8)


def field_kind(col: S.Column) -> tuple[int, object]:
    """The kind of a column's JSON field, and what its check needs: an enum's labels, an integer
    type's [lo, hi); None for the others. TypeError for a column the API cannot take."""
    t = col.arrow
    if col.kind == S.TIME:
        return TIME, None
    if col.kind == S.UUID_:
        return UUID, None
    if col.kind == S.ENUM:
        return ENUM, tuple(lab for lab, _ in enum_pairs(col))
    if pa.types.is_floating(t):
        return (NAN_FLOAT if col.default == "nan" else FLOAT), None
    bounds = int_range(t)
    if bounds is not None:
        return INT, bounds
    if pa.types.is_string(t):
        return TEXT, None
    if pa.types.is_list(t) and pa.types.is_string(t.value_type):
        return TEXTS, None
    raise TypeError(f"the API cannot take {col.name}'s {col.ch_type} values yet")


def _field_type(col: S.Column):
    """The msgspec type of a column's JSON field, and the bound msgspec cannot say (an upper
    bound past int64's: tested after decoding), or None."""
    kind, arg = field_kind(col)
    if kind == TIME:
        return Annotated[int, msgspec.Meta(ge=0, le=_INT64_MAX)], None
    if kind == UUID:
        return Annotated[str, msgspec.Meta(min_length=UUID_TEXT, max_length=UUID_TEXT)], None
    if kind == ENUM:
        return Literal[arg], None
    if kind == NAN_FLOAT:
        return Optional[float], None
    if kind == FLOAT:
        return Annotated[float, _FINITE], None
    if kind == INT:
        lo, top = arg[0], arg[1] - 1
        return (Annotated[int, msgspec.Meta(ge=lo)], top) if top > _INT64_MAX else \
            (Annotated[int, msgspec.Meta(ge=lo, le=top)], None)
    if kind == TEXT:
        return str, None
    return tuple[str, ...], None            # (a tuple of str: the collector stops tracking it)


def _row_type():
    fields, nan_names, tops, uuids = [], [], [], []
    for col in S.TABLES[TABLE].columns:
        name = json_name(col)
        if col.kind == S.UUID_:
            uuids.append(name)
        ftype, top = _field_type(col)
        default = literal_default(col)
        fields.append((name, ftype) if default is REQUIRED else (name, ftype, default))
        if field_kind(col)[0] == NAN_FLOAT:
            nan_names.append(name)
        if top is not None:
            tops.append((name, top))
    # gc=False: a decoded row holds no reference back to anything, so it can be in no cycle, and the
    # collector need not track the rows that wait in the post spool for their insert
    row = msgspec.defstruct("PostedRow", fields, forbid_unknown_fields=True, gc=False)
    return row, tuple(nan_names), tuple(tops), tuple(uuids)


PostedRow, NAN_NAMES, _TOPS, _UUID_NAMES = _row_type()
_Wrapped = msgspec.defstruct("PostedRows", [("rows", list[PostedRow])], gc=False)
_BODY = Union[list[PostedRow], _Wrapped]
_DECODER = msgspec.json.Decoder(_BODY)
_RAWS = msgspec.json.Decoder(Union[list[msgspec.Raw], msgspec.defstruct("PostedRaws", [("rows", list[msgspec.Raw])])])
_LINES = msgspec.json.Decoder(PostedRow)
parsed_first_until = 0.0            # (time.monotonic) until then every body is parsed by orjson first (0: closed)
_ENCODER = msgspec.json.Encoder()
row_id = attrgetter(ID)           # a PostedRow's opportunity id


def decode_rows(body: bytes) -> list | None:
    """The rows (``PostedRow``) of a JSON body (a list of rows, or ``{"rows": [...]}``) when every
    row passes; None when anything fails (``check_rows`` then decides, and says why)."""
    try:
        got = _decoded(body) if len(body) <= PIECE_BYTES else _in_pieces(body)
    except (msgspec.DecodeError, orjson.JSONDecodeError):         # (ValidationError too)
        return None
    return accepted(got.rows if type(got) is _Wrapped else got)


def accepted(rows: list) -> list | None:
    """Decoded rows (``PostedRow``) when what msgspec's types cannot say passes too: the batch's
    size, the bounds past int64, canonical UUIDs, each id once; None when anything fails
    (``check_rows`` then names it)."""
    if len(rows) > BATCH_ROWS_MAX or _over_top(rows) or not _canonical(rows):
        return None
    if len(set(map(row_id, rows))) != len(rows):
        return None
    return rows


def _decoded(body: bytes):
    """``single_pass``, its CPU time taken (a pause of the thread does not count), or ``parsed_first``
    while a window opened by a slow pass lasts."""
    global parsed_first_until
    if time.monotonic() < parsed_first_until:
        return parsed_first(body)
    t = time.thread_time_ns()
    got = single_pass(body)
    took = time.thread_time_ns() - t
    if took >= SLOW_MIN_NS and took * 1024 > SLOW_NS_PER_KIB * len(body):
        parsed_first_until = time.monotonic() + PARSED_FIRST_S
        log.warning("a posted body of %d bytes took %.1f ms to decode (floats of 1e289 and more?): bodies are "
                    "parsed by orjson first for %g s", len(body), took / 1e6, PARSED_FIRST_S)
    return got


def _in_pieces(body: bytes) -> list:
    """A large body's rows, decoded (``_decoded``) a piece of about ``PIECE_BYTES`` at a time."""
    raws = _RAWS.decode(body)
    if not isinstance(raws, list):
        raws = raws.rows
    rows, piece, size = [], [], 0
    for raw in raws:
        piece.append(raw)
        size += len(raw)
        if size >= PIECE_BYTES:
            rows += _decoded(b"[%s]" % b",".join(piece))
            piece, size = [], 0
    if piece:
        rows += _decoded(b"[%s]" % b",".join(piece))
    return rows


def single_pass(body: bytes):
    """A body's rows (a list, or the rows wrapper) by msgspec's one pass: parsed and checked in C
    (msgspec.DecodeError when refused)."""
    return _DECODER.decode(body)


def parsed_first(body: bytes):
    """The same by orjson's parse, then msgspec's check of the values (orjson.JSONDecodeError or
    msgspec.ValidationError when refused)."""
    return msgspec.convert(orjson.loads(body), _BODY)


def decode_log(data: bytes) -> list | None:
    """The rows of a post log's JSON lines (one row a line) when every line passes; None when any
    fails (a line cut short by a crash: ``check_rows`` then goes line by line). A log of more than
    ``PIECE_BYTES`` is parsed by orjson first: it is read rarely (after a failed insert, at a
    restart), on the spool's thread with the GIL held, and may hold huge floats."""
    try:
        if len(data) <= PIECE_BYTES:
            got = _LINES.decode_lines(data)
        else:
            got = parsed_first(b"[%s]" % b",".join(ln for ln in data.splitlines() if ln))
    except (msgspec.DecodeError, orjson.JSONDecodeError):
        return None
    return None if _over_top(got) or not _canonical(got) else got


def _canonical(rows: list) -> bool:
    """Whether every UUID field of ``rows`` (36 characters each, as decoded) is canonical text."""
    return all(canonical_ids(map(attrgetter(name), rows)) for name in _UUID_NAMES)


def canonical_ids(ids) -> bool:
    """Whether UUIDs of 36 characters each are all canonical text (read as one text: one match)."""
    return _UUIDS.fullmatch("".join(ids)) is not None


def _over_top(rows: list) -> bool:
    """Whether a value passes its column's upper bound where msgspec cannot say it (past int64)."""
    return any(max(map(attrgetter(name), rows), default=top) > top for name, top in _TOPS)


def as_rows(dicts: list[dict]) -> list:
    """``check_rows``'s canonical dicts (values already checked) as ``PostedRow``s."""
    return msgspec.convert(dicts, list[PostedRow])


def encoded_default(value) -> bytes:
    """A column's DEFAULT as a row's JSON holds it (posted_scan.py writes it for a field left out)."""
    return _ENCODER.encode(value)


def decode_items(items: list[bytes]) -> list:
    """Rows' JSON (``posted_items``'s, or posted_scan.py's lines) as ``PostedRow``s again."""
    return _LINES.decode_lines(b"\n".join(items)) if items else []


def posted_items(rows: list) -> list[bytes]:
    """Each row's JSON. One msgspec call a row: one call for the whole list, cut between the rows as
    frames.py ``dict_items`` cuts orjson's, cost half as much again, in the cut."""
    return list(map(_ENCODER.encode, rows))


def row_dicts(items: list[bytes]) -> list[dict]:
    """The canonical dicts (``check_rows``'s values: nan, not null) of rows' JSON ``items``."""
    dicts = orjson.loads(b"[" + b",".join(items) + b"]")
    for r in dicts:
        for name in NAN_NAMES:
            if r[name] is None:
                r[name] = math.nan
    return dicts
