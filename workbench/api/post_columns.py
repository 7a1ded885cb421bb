"""Posted JSON batches checked a group at a time, column by column.

A POST of a few rows costs little to insert once posts share an insert (group_commit.py); what
was left was Python per value: ``check_rows`` tests each value of each row on its own and
builds the Arrow columns row by row. Here the bodies of every request of a group are parsed,
their rows laid side by side, and each column of the whole group is checked at once: the set
of Python types a column holds, then one Arrow conversion (which refuses an integer past its
range), then vectorised tests (a time below 0, a UUID not in its canonical text form, an enum
label not in the list). Rows that pass are already the canonical row dicts the GET memory and
the WebSocket send, so a row is encoded once. The checked columns are already the store's
types but for the time (a view as timestamp) and the enums (their codes, from the same look-up
that checked the labels), so the group's table is made in the store's shape here, as
``conform`` would make it, without a second pass over its columns (test_api_post_columns.py
compares the two).

Only when a column fails is the failure traced to its rows, and so to their requests: such a
request (and one whose rows are not objects, or that repeats an id) is checked again by
``check_rows``, value by value, which either names the first bad row and field (422, nothing
of that request written) or accepts it (a form the column checks leave to it, such as an
upper-case UUID or an integer profit) with the same values. The other requests of the group
are unaffected. So the fast path accepts a subset of what ``check_rows`` accepts, with the
same values, and every refusal carries ``check_rows``'s message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import StoreError
from ..store import schema as S
from .opportunity_rows import (BATCH_ROWS_MAX, ID, REQUIRED, TABLE, PostedBatch, RowError, check_arrow_batch,
                               check_rows, enum_pairs, json_name, literal_default, parse_batch)

UUID_TEXT = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"   # str(uuid.UUID(v)) == v


class _Missing:
    """A required field a row left out (its type is never allowed, so the column check fails)."""


_MISSING = _Missing()


@dataclass(frozen=True)
class _Rule:
    name: str                   # JSON field name
    arrow: pa.DataType          # the type check_rows builds the column with (before conform)
    types: frozenset            # Python types a value may have here
    kind: str                   # time | uuid | enum | nan_float | plain | str_list
    store: pa.DataType          # the column's type in the store's shape (conform's)
    labels: pa.Array | None = None      # enum labels (string), and their codes (the store's int8)
    codes: pa.Array | None = None


def _rules() -> tuple[_Rule, ...]:
    out = []
    for col in S.TABLES[TABLE].columns:
        name, t = json_name(col), col.arrow
        if col.kind == S.TIME:
            out.append(_Rule(name, pa.int64(), frozenset({int}), "time", t))
        elif col.kind == S.UUID_:
            out.append(_Rule(name, pa.string(), frozenset({str}), "uuid", pa.string()))   # the store parses the text
        elif col.kind == S.ENUM:
            pairs = enum_pairs(col)
            out.append(_Rule(name, pa.string(), frozenset({str}), "enum", t, pa.array([lab for lab, _ in pairs], pa.string()),
                             pa.array([code for _, code in pairs], t)))
        elif pa.types.is_floating(t):
            # an int is a float to check_rows (float(v)); the canonical row holds a float, so it goes there
            nan = col.default == "nan"
            out.append(_Rule(name, t, frozenset({float, type(None)} if nan else {float}), "nan_float" if nan else "plain",
                             t))
        elif pa.types.is_integer(t):
            out.append(_Rule(name, t, frozenset({int}), "plain", t))
        elif pa.types.is_string(t):
            out.append(_Rule(name, t, frozenset({str}), "plain", t))
        elif pa.types.is_list(t) and pa.types.is_string(t.value_type):
            out.append(_Rule(name, t, frozenset({list}), "str_list", t))
        else:
            out.append(_Rule(name, t, frozenset(), "plain", t))     # check_rows says what it cannot take
    return tuple(out)


RULES = _rules()
NAMES = tuple(r.name for r in RULES)                 # the canonical row's keys, in the table's order
# the store's shape of the table (store/columns.py ``conform``: every column, none nullable)
STORE_SCHEMA = pa.schema([pa.field(c.name, r.store, nullable=False) for c, r in zip(S.TABLES[TABLE].columns, RULES)])
_TEMPLATE = {}
for _col in S.TABLES[TABLE].columns:
    _d = literal_default(_col)
    _TEMPLATE[json_name(_col)] = _MISSING if _d is REQUIRED else _d


@dataclass
class CheckedGroup:
    """The accepted rows of a group of posts, in arrival order, and each request's share.

    ``spans[k]`` is request k's rows ``[lo, hi)`` in ``ids`` / ``rows`` / ``table``, or the error
    that refused it (RowError, or conform's StoreError)."""
    table: pa.Table | None                  # the store's shape (as conform makes it), every accepted row
    ids: list[str]                          # canonical UUID text per row
    rows: list[dict]                        # the canonical row dicts (NAMES order), JSON-ready
    spans: list = field(default_factory=list)


def _rows_of(data: list):
    """The canonical dicts of a parsed body, or None when a row is not an object (check_rows says
    why) or there are too many rows."""
    if len(data) > BATCH_ROWS_MAX:
        return None
    try:
        # a row already in the canonical shape is used as parsed; else defaults filled, keys in the table's order
        return [r if type(r) is dict and tuple(r) == NAMES else {**_TEMPLATE, **r} for r in data]
    except TypeError:
        return None


def _bad_values(col, arrow: pa.DataType) -> np.ndarray:
    """Which values of ``col`` Arrow refuses as ``arrow`` (traced one by one: the failure path)."""
    bad = np.zeros(len(col), bool)
    for i, v in enumerate(col):
        try:
            pa.array([v], arrow)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            bad[i] = True
    return bad


def _check_columns(rows: list[dict]):
    """Check the group's rows column by column: their table in the store's shape (``conform``'s)
    when every row passes (None of a null float made nan in the rows too), else a boolean array
    of the rows that fail."""
    n = len(rows)
    bad = np.fromiter(map(len, rows), np.int64, n) != len(NAMES)       # a key the table lacks
    # every row's keys are NAMES in order (_rows_of), plus any extra after them (flagged above): the
    # first len(NAMES) values of each row are its columns, read without a look-up per key
    cols = list(zip(*map(dict.values, rows))) if n else [()] * len(NAMES)
    typed = []
    for rule, col in zip(RULES, cols):
        if not set(map(type, col)) <= rule.types:
            allowed = rule.types
            bad |= np.fromiter((type(v) not in allowed for v in col), bool, n)
            typed.append(None)
        else:
            typed.append(col)
    if bad.any():
        return bad
    arrays, nulls, all_null = [], [], []
    for rule, col in zip(RULES, typed):
        try:
            arr = pa.array(col, rule.arrow)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            bad |= _bad_values(col, rule.arrow)
            arrays.append(None)
            continue
        if rule.kind == "time":
            bad |= np.asarray(pc.less(arr, 0))
            arr = arr.view(rule.store)
        elif rule.kind == "uuid":
            bad |= ~np.asarray(pc.match_substring_regex(arr, UUID_TEXT))
        elif rule.kind == "enum":
            at = pc.index_in(arr, value_set=rule.labels)
            if at.null_count:
                bad |= np.asarray(at.is_null())
                arrays.append(None)
                continue
            arr = rule.codes.take(at)
        elif rule.kind == "nan_float" and arr.null_count == n:
            all_null.append(rule.name)      # (the usual case for an optional column: no row gives it)
            arr = pa.array(np.full(n, math.nan), rule.arrow)
        elif rule.kind == "nan_float" and arr.null_count:
            nulls.append((rule.name, np.flatnonzero(np.asarray(arr.is_null()))))
            arr = pc.fill_null(arr, math.nan)
        elif rule.kind == "str_list" and arr.values.null_count:
            bad |= np.fromiter((None in v for v in col), bool, n)
        arrays.append(arr)
    if bad.any():
        return bad
    if all_null:        # one update per row for every column null in all of them (keys already there: order kept)
        nan_of = dict.fromkeys(all_null, math.nan)
        for r in rows:
            r.update(nan_of)
    for name, where in nulls:
        for i in where:
            rows[i][name] = math.nan
    return pa.Table.from_arrays(arrays, schema=STORE_SCHEMA)


def _repeats_an_id(rows: list[dict]) -> bool:
    ids = [r[ID] for r in rows]
    try:
        return len(set(ids)) != len(ids)
    except TypeError:           # an unhashable id: check_rows names it
        return True


def check_group(posts: list[tuple[bytes, bool]]) -> CheckedGroup:
    """Check a group of posted bodies ((body, is Arrow) each, in arrival order) and lay the accepted
    rows out in that order. Runs on a worker thread."""
    k_total = len(posts)
    fast: dict[int, list[dict]] = {}         # request -> its canonical rows, while they pass the column checks
    slow: dict[int, object] = {}             # request -> its parsed rows (or Arrow body) for check_rows
    errors: dict[int, Exception] = {}
    for k, (body, arrow) in enumerate(posts):
        try:
            if arrow:
                slow[k] = body
                continue
            data = parse_batch(body)
        except RowError as e:
            errors[k] = e
            continue
        rows = _rows_of(data)
        if rows is None or _repeats_an_id(rows):
            slow[k] = data
        else:
            fast[k] = rows
    fast_table = None
    while fast:
        order = list(fast)
        rows = [r for k in order for r in fast[k]]
        got = _check_columns(rows)
        if isinstance(got, pa.Table):
            fast_table = got
            break
        owner = np.repeat(np.arange(len(order)), [len(fast[k]) for k in order])
        for j in np.unique(owner[got]):          # requests with a failing row: value by value instead
            k = order[j]
            slow[k] = fast.pop(k)
    for k, data in slow.items():
        try:
            slow[k] = check_arrow_batch(data) if isinstance(data, bytes) else check_rows(data)
        except (RowError, StoreError) as e:      # conform's StoreError names the column too
            errors[k] = e
    # lay the accepted rows out in arrival order: slices of the fast table between the slow batches
    tables, ids, out_rows, spans = [], [], [], [None] * k_total
    fast_at = run_from = 0                  # the fast rows laid out so far; where the current run of them began
    for k in range(k_total):
        if k in errors:
            spans[k] = errors[k]
            continue
        lo = len(ids)
        if k in fast:
            rows = fast[k]
            fast_at += len(rows)
            ids += [r[ID] for r in rows]
        else:
            if fast_at > run_from:          # one slice per run of fast requests between slow ones
                tables.append(fast_table.slice(run_from, fast_at - run_from))
                run_from = fast_at
            b: PostedBatch = slow[k]
            rows = b.rows
            if rows:
                tables.append(b.table)
            ids += b.ids
        out_rows += rows
        spans[k] = (lo, len(ids))
    if fast_at > run_from:
        tables.append(fast_table.slice(run_from, fast_at - run_from))
    table = None
    if tables:
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
    return CheckedGroup(table, ids, out_rows, spans)


def checked_group_of(batches: list[PostedBatch]) -> CheckedGroup:
    """Batches already checked (``check_rows``) as one group, in order."""
    tables, ids, rows, spans = [], [], [], []
    for b in batches:
        spans.append((len(ids), len(ids) + len(b.ids)))
        if b.ids:
            tables.append(b.table)
        ids += b.ids
        rows += b.rows
    return CheckedGroup(_one_table(tables), ids, rows, spans)


def joined_groups(groups: list[CheckedGroup]) -> CheckedGroup:
    """Checked groups, in order, as one (for one insert): their rows laid end to end, each request's
    span moved by the rows before its group."""
    if len(groups) == 1:
        return groups[0]
    tables, ids, rows, spans = [], [], [], []
    for g in groups:
        at = len(ids)
        spans += [s if isinstance(s, Exception) else (s[0] + at, s[1] + at) for s in g.spans]
        if g.table is not None and g.table.num_rows:
            tables.append(g.table)
        ids += g.ids
        rows += g.rows
    return CheckedGroup(_one_table(tables), ids, rows, spans)


def _one_table(tables: list[pa.Table]) -> pa.Table | None:
    """The tables laid end to end (None when there are none)."""
    if not tables:
        return None
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
