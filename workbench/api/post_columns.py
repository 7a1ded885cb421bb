"""Posted batches checked a group at a time, and the store's table made from checked rows.

A POST of a few rows costs little to insert once posts share an insert (group_commit.py); what
was left was the check. Here each JSON body of a group is scanned by one jitted pass (posted_scan.py)
into its rows' JSON lines (for the post log, the GET memory and the WebSocket), with each row's id,
time and type. A body outside the scan's subset is decoded and checked in one C pass
(posted_json.py), and each Arrow body's table converted in one (posted_arrow.py), into rows
(``PostedRow`` structs), whose JSON is encoded once (``posted_items``). A body that pass refuses (a
bad value, or a form it leaves to ``check_rows``,
such as an upper-case UUID or an integer profit) is checked by ``check_rows``, value by value,
which either names the first bad row and field (422, nothing of that request written) or accepts
it with the same values as the fast pass would (as the same structs). The other requests of the
group are unaffected.

The store's table of the rows is made only where it is needed: for an insert without a post
spool, once for the groups of the insert (``store_table``, in the store's shape as ``conform``
makes it: test_api_post_columns.py compares the two). A post spool (post_spool.py) logs the
rows' JSON and the store reads the log itself (``LOG_SELECT``); it makes the table only after a
failed insert and at a restart.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import StoreError
from ..store import schema as S
from .opportunity_rows import TABLE, PostedBatch, RowError, check_arrow_batch, check_rows, enum_pairs, json_name, \
    parse_batch
from .posted_arrow import decode_arrow
from .posted_json import NAN_NAMES, as_rows, decode_items, decode_rows, posted_items, row_id
from .posted_scan import TIME_NAME, TYPE_NAME, scan


@dataclass(frozen=True)
class _Rule:
    name: str                   # JSON field name
    arrow: pa.DataType          # the type of the JSON values' column (check_rows's, before conform)
    kind: str                   # time | enum | str_list | nan | plain
    store: pa.DataType          # the column's type in the store's shape (conform's)
    labels: pa.Array | None = None      # enum labels (string), and their codes (the store's int8)
    codes: pa.Array | None = None


def _rules() -> tuple[_Rule, ...]:
    out = []
    for col in S.TABLES[TABLE].columns:
        name, t = json_name(col), col.arrow
        if col.kind == S.TIME:
            out.append(_Rule(name, pa.int64(), "time", t))
        elif col.kind == S.UUID_:
            out.append(_Rule(name, pa.string(), "plain", pa.string()))        # the store parses the text
        elif col.kind == S.ENUM:
            pairs = enum_pairs(col)
            out.append(_Rule(name, pa.string(), "enum", t, pa.array([lab for lab, _ in pairs], pa.string()),
                             pa.array([code for _, code in pairs], t)))
        elif pa.types.is_list(t):
            out.append(_Rule(name, t, "str_list", t))
        elif name in NAN_NAMES:
            out.append(_Rule(name, t, "nan", t))
        else:
            out.append(_Rule(name, t, "plain", t))
    return tuple(out)


RULES = _rules()
NAMES = tuple(r.name for r in RULES)                 # the canonical row's keys, in the table's order
# the store's shape of the table (store/columns.py ``conform``: every column, none nullable)
STORE_SCHEMA = pa.schema([pa.field(c.name, r.store, nullable=False) for c, r in zip(S.TABLES[TABLE].columns, RULES)])


def store_table(rows: list, pause_s: float = 0.0) -> pa.Table:
    """Checked rows (``PostedRow``s) as the store's table, in the shape ``conform`` gives
    ``check_rows``'s table.

    ``pause_s``: sleep that long after each column. A column's conversion holds the GIL, and
    ``pa.array`` gives the GIL up and takes it back at once, too fast for a waiting thread to get
    it (a convoy: the event loop would wait for the whole table); a sleep hands it over, so a
    thread building a large table in the background holds the GIL one column at a time."""
    arrays = []
    for rule in RULES:
        arr = pa.array(list(map(attrgetter(rule.name), rows)), rule.arrow)
        if rule.kind == "nan":
            arr = arr.fill_null(math.nan)       # (a row's None is nan)
        elif rule.kind == "time":
            arr = arr.view(rule.store)
        elif rule.kind == "enum":
            arr = rule.codes.take(pc.index_in(arr, value_set=rule.labels))
        arrays.append(arr)
        if pause_s:
            time.sleep(pause_s)
    return pa.Table.from_arrays(arrays, schema=STORE_SCHEMA)


def _log_select() -> tuple[list[str], list[str], str]:
    """How the store reads a post log's JSON lines (post_spool.py) with file(): the table's columns,
    the SELECT that makes each from its JSON field, and the file's structure. A time travels as int
    ns, a UUID and an enum label as text (converted by the INSERT, as the Arrow route's enum codes
    and UUID text are), a nan as null."""
    names, select, structure = [], [], []
    for col, rule in zip(S.TABLES[TABLE].columns, RULES):
        q = f"`{rule.name}`"
        names.append(col.name)
        if rule.kind == "time":
            select.append(f"fromUnixTimestamp64Nano({q})")
            structure.append(f"{q} Int64")
        elif rule.kind == "nan":
            select.append(f"ifNull({q}, nan)")
            structure.append(f"{q} Nullable({col.ch_type})")
        else:
            select.append(q)
            plain = "String" if col.kind in (S.UUID_, S.ENUM) or col.ch_type == "LowCardinality(String)" else col.ch_type
            structure.append(f"{q} {plain}")
    return names, select, ", ".join(structure)


LOG_COLUMNS, LOG_SELECT, LOG_STRUCTURE = _log_select()
# floats parsed exactly (ClickHouse's default fast parse may miss by an ulp); one thread per file:
# a parallel parse of an insert's few MB costs more CPU than it saves time; the insert's threads at
# the lowest CPU priority (nice 19; ClickHouse ignores it without CAP_SYS_NICE): they run in the
# background of posts already answered, and on a small host they took CPU time from the event loop
# (and the clients) for milliseconds at a time
LOG_SETTINGS = {"precise_float_parsing": 1, "input_format_parallel_parsing": 0, "os_threads_nice_value_query": 19}


@dataclass
class CheckedGroup:
    """The accepted rows of a group of posts, in arrival order, and each request's share.

    ``spans[k]`` is request k's rows ``[lo, hi)`` in ``ids`` / ``items`` / ``times`` / ``types``, or
    the error that refused it (RowError, or conform's StoreError). ``rows`` (posted_json.py
    ``PostedRow``s, for the store's table without a post spool) are those msgspec's pass made, and
    the scanned rows' decoded from their lines when first asked for (floats below 10^288 there:
    msgspec's fast path; a body of larger ones went to its pass, whose rows are kept)."""
    ids: list[str]                          # canonical UUID text per row
    items: list[bytes]                      # each row's JSON line (posted_json.py ``posted_items``, posted_scan.py)
    times: list[int]                        # ``timestamp_ns`` per row
    types: list[str]                        # the opportunity type's label per row
    spans: list = field(default_factory=list)
    made: list = field(default_factory=list)    # per row, its PostedRow, or None (scanned: not made yet)

    @property
    def rows(self) -> list:
        missing = [i for i, r in enumerate(self.made) if r is None]
        if missing:
            for i, r in zip(missing, decode_items([self.items[i] for i in missing])):
                self.made[i] = r
        return self.made

    def kept(self, keep: np.ndarray) -> CheckedGroup:
        """The rows where ``keep`` is true (no spans)."""
        if np.count_nonzero(keep) == keep.size:        # (ndarray.all costs several times as much)
            return self
        at = np.flatnonzero(keep).tolist()
        return CheckedGroup([self.ids[i] for i in at], [self.items[i] for i in at], [self.times[i] for i in at],
                            [self.types[i] for i in at], [], [self.made[i] for i in at])


_times, _types = attrgetter(TIME_NAME), attrgetter(TYPE_NAME)


def _of_rows(rows: list, spans: list) -> CheckedGroup:
    return CheckedGroup(list(map(row_id, rows)), posted_items(rows), list(map(_times, rows)),
                        list(map(_types, rows)), spans, rows)


def check_group(posts: list[tuple[bytes, bool]]) -> CheckedGroup:
    """Check a group of posted bodies ((body, is Arrow) each, in arrival order) and lay the accepted
    rows out in that order. Runs on a worker thread, or on the loop for a small group."""
    return joined_groups([_checked_body(body, arrow) for body, arrow in posts])


def _checked_body(body: bytes, arrow: bool) -> CheckedGroup:
    """One posted body's rows as a group of one request (its span, or the error that refused it).

    A JSON body is scanned first (posted_scan.py: checked and made into its lines in one jitted pass);
    one outside the scan's subset goes to msgspec's pass, and one that pass refuses to ``check_rows``."""
    got = None if arrow else scan(body)
    if got is not None:
        n = len(got.ids)
        return CheckedGroup(got.ids, got.items, got.times, got.types, [(0, n)], [None] * n)
    made = decode_arrow(body) if arrow else decode_rows(body)
    if made is None:
        try:
            b: PostedBatch = check_arrow_batch(body) if arrow else check_rows(parse_batch(body))
        except (RowError, StoreError) as e:      # conform's StoreError names the column too
            return CheckedGroup([], [], [], [], [e], [])
        made = as_rows(b.rows)
    return _of_rows(made, [(0, len(made))])


def checked_group_of(batches: list[PostedBatch]) -> CheckedGroup:
    """Batches already checked (``check_rows``) as one group, in order."""
    return joined_groups([_of_rows(as_rows(b.rows), [(0, len(b.ids))]) for b in batches])


def joined_groups(groups: list[CheckedGroup]) -> CheckedGroup:
    """Checked groups, in order, as one (for one insert): their rows laid end to end, each request's
    span moved by the rows before its group."""
    if len(groups) == 1:
        return groups[0]
    ids, items, times, types, spans, rows = [], [], [], [], [], []
    for g in groups:
        at = len(ids)
        spans += [s if isinstance(s, Exception) else (s[0] + at, s[1] + at) for s in g.spans]
        ids += g.ids
        items += g.items
        times += g.times
        types += g.types
        rows += g.made
    return CheckedGroup(ids, items, times, types, spans, rows)
