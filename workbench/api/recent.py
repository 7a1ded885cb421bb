"""The newest opportunities in memory, in the GET route's keyset order, merged with the store.

GET /v1/opportunities pages by the key (timestamp, opportunity_id) (store_access.py). This
index keeps the newest rows this process saw (the run the service pumps, and POSTs) sorted by
that key, in the page shape: each row as the dict and the JSON bytes the store's read would
give, so a page read from memory is byte for byte the page read from the store. A batch comes
in by its rows' ids and times (keys) and a way to make its rows (an engine batch's shaping, a
posted group's JSON): its row dicts are made when a page first scans it, a row's JSON when a page
or a GET by id first returns it. A batch whose rows cannot be made is left out of every later
scan, and memory stops answering alone (``MemoryMiss``).

What memory may answer alone: the index records ``cover``, a key such that every row of the
store with a greater key is in memory. It starts at the store's greatest key when the server
starts (rows stored before are the store's) and rises to each row evicted past ``capacity``.
A page whose keyset window lies wholly above ``cover`` is answered from memory; any other page
asks the store (ORDER BY its key, after the cursor) and merges in the memory rows the store may
not hold yet, deduplicated by id. Rows written to the store by another process while this one
runs are not seen by memory (an embedded store has no other writer; a ClickHouse server may).

Each encoded page is cached under (query, data version); every new row bumps the version, so a
repeated GET while no row arrived costs a dict lookup.
"""

from __future__ import annotations

import collections
import logging

import numpy as np
import orjson
import pyarrow as pa

from ..store import schema as S
from .frames import table_rows
from .id_entries import IdEntries
from .posted_json import row_dicts
from .opportunity_rows import ID, REQUIRED, TABLE, enum_pairs, literal_default
from .sorted_keys import PAST, SortedKeys
from .store_access import OpportunityFilter, encode_cursor

log = logging.getLogger(__name__)

_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_UUID_DASH_AT = [8, 13, 18, 23]              # where the canonical text of a UUID has its dashes
_UUID_HEX_AT = [i for i in range(36) if i not in _UUID_DASH_AT]

MEMORY_ROWS = 200_000          # rows the index keeps; older pages come from the store
ROW_BITS = 32                  # a memory entry: its batch's number above these bits, its row in them
ROW_MASK = (1 << ROW_BITS) - 1
CACHE_PAGES = 4_096            # encoded pages kept per data version
SETTLE_ROWS = 256              # queued posted rows taken in together at most, unless memory is read first

Key = tuple  # (timestamp_ns, opportunity_id); a held key has the row's entry third (``_take``)


def page_table(conformed: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table in the store's Arrow shape (store/columns.py ``conform``) as the store's SELECT of
    the GET route returns it (``schema``): times as int ns under ``<name>_ns``, UUIDs and enums as
    text."""
    spec = S.TABLES[TABLE]
    names = {c.name for c in spec.columns}
    arrays = []
    for f in schema:
        base = f.name[:-3] if f.name.endswith("_ns") and f.name[:-3] in names else f.name
        kind = spec.column(base).kind
        if base not in conformed.column_names:      # conform leaves out what the store fills by DEFAULT
            default = literal_default(spec.column(base))
            if default is REQUIRED:
                raise ValueError(f"{TABLE}.{base}: missing, and its DEFAULT is not a plain value")
            arrays.append(pa.repeat(pa.scalar(default, f.type), conformed.num_rows))
            continue
        col = conformed.column(base).combine_chunks()
        if kind == S.TIME:
            col = col.view(pa.int64()) if pa.types.is_timestamp(col.type) else col
        elif kind == S.UUID_ and pa.types.is_fixed_size_binary(col.type):
            col = uuid_text(col)
        elif kind == S.ENUM and pa.types.is_integer(col.type):
            col = enum_labels(col, enum_pairs(spec.column(base)), f"{TABLE}.{base}")
        arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def uuid_text(col: pa.Array) -> pa.Array:
    """16-byte UUIDs as their canonical text (``str(uuid.UUID(bytes=b))``), for the whole column at once."""
    raw = np.frombuffer(col.buffers()[1], np.uint8)[col.offset * 16:(col.offset + len(col)) * 16].reshape(-1, 16)
    hexed = _HEX[np.stack([raw >> 4, raw & 15], axis=2).reshape(-1, 32)]
    text = np.empty((len(col), 36), np.uint8)
    text[:, _UUID_HEX_AT] = hexed
    text[:, _UUID_DASH_AT] = ord("-")
    offsets = np.arange(0, 36 * len(col) + 1, 36, dtype=np.int32)
    return pa.StringArray.from_buffers(len(col), pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def enum_labels(col: pa.Array, pairs: list[tuple[str, int]], what: str) -> pa.Array:
    """Enum codes as their labels; ValueError naming ``what`` on a code the enum lacks."""
    codes = col.to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort([code for _, code in pairs])
    known = np.array([pairs[i][1] for i in order], np.int64)
    at = np.searchsorted(known, codes)
    if len(codes) and (at.max() >= len(known) or not np.array_equal(known[at], codes)):
        raise ValueError(f"{what}: codes outside the enum {pairs}")
    return pa.array([pairs[i][0] for i in order], pa.string()).take(pa.array(at))


def matches(f: OpportunityFilter, r: dict) -> bool:
    """The store's WHERE of ``StoreAccess.opportunities`` on one row in the page shape."""
    if f.types and r["type"] not in f.types:
        return False
    ts = r["timestamp_ns"]
    if f.since_ns is not None and ts < f.since_ns:
        return False
    if f.until_ns is not None and ts >= f.until_ns:
        return False
    if f.min_profit is not None and not r["profit"] >= f.min_profit:
        return False
    if f.pool and f.pool not in r["pools"]:
        return False
    if f.run and r["run_id"] != f.run:
        return False
    if f.min_score is not None and not r["score"] >= f.min_score:     # NaN never passes, as in SQL
        return False
    return True


def window_start(f: OpportunityFilter, after: Key | None) -> tuple[Key | None, bool]:
    """The lowest key a page may hold: (key, inclusive). None: from the beginning."""
    since = (f.since_ns, "") if f.since_ns is not None else None
    if after is not None and (since is None or after >= since):
        return after, False
    return since, True


class MemoryMiss(Exception):
    """Memory could not make a batch's rows (``add_lazy``'s ``loads`` failed): the batch is left out
    of every later scan and memory no longer answers alone; the page asked for is to be made again."""


class _Batch:
    """Rows that entered memory together, and each row's dict and JSON made when a page (or a GET
    by id) first needs them (the dicts: ``make(items)`` for posted rows, whose JSON ``items`` is
    kept, else ``make()``): taking a batch in costs no work per row.

    Posted rows' JSON is kept as a tuple, and their ``make`` is a module's function, not a closure
    made per batch: a tuple of bytes is no longer tracked by the cycle collector once a collection
    has seen it, so a batch of posts adds one object to every later full collection's walk, not
    six (with a closure, its cells and a list, a full memory was most of what such a walk met)."""
    __slots__ = ("list_columns", "_make", "_dicts", "_json", "failed")

    def __init__(self, list_columns: list[str], make, items: tuple[bytes, ...] | None = None):
        self.list_columns = list_columns
        self._make = make
        self._dicts = None
        self._json = items
        self.failed = False             # ``make`` raised: the batch's rows are skipped

    def dicts(self) -> list[dict]:
        if self._dicts is None:
            dicts = self._make() if self._json is None else self._make(self._json)
            for r in dicts:
                for name in self.list_columns:      # a tuple of str: the collector stops tracking the row
                    r[name] = tuple(r[name])
            self._dicts = dicts
            self._make = None
        return self._dicts

    def row(self, i: int) -> tuple[dict, bytes]:
        """Row ``i`` as (dict, JSON bytes): the bytes are ``orjson.dumps`` of the dict (a tuple is
        written as the list it was)."""
        r = self.dicts()[i]
        if self._json is None:
            self._json = [None] * len(self._dicts)
        b = self._json[i]
        if b is None:
            b = self._json[i] = orjson.dumps(r)
        return r, b


class RecentOpportunities:
    """The newest rows by key, the cover below which the store answers, and the page cache."""

    def __init__(self, schema: pa.Schema, cover: Key | None, capacity: int = MEMORY_ROWS,
                 cache_pages: int = CACHE_PAGES):
        self.schema = schema
        self._list_columns = [f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)]
        self.cover = cover                  # every stored row with a greater key is in memory; None: every row
        self.capacity = capacity
        self.cache_pages = cache_pages
        self.held = False
        # each row's entry is its batch's number and its row in it, as one int (number << ROW_BITS | row):
        # no object the cycle collector tracks (a tuple holding the batch itself would stay tracked, and
        # every full collection would walk a full memory's rows). A held key is (time, id, entry),
        # so that a page's scan finds its rows without a look-up an id; the id map answers a GET by id
        # and which ids are held. The batches by number, and their rows still held
        self.keys = SortedKeys()
        self.rows = IdEntries(capacity)         # (jitted: id_entries.py)
        self._queued: list[tuple] = []          # posted rows waiting to go in (``queue_posted``)
        self._queued_rows = 0
        self._batches: dict[int, _Batch] = {}
        self._held_rows: dict[int, int] = {}
        self._next_batch = 0
        self.version = 0
        self._cache: dict = {}
        self._cache_version = 0
        self.cache_hits = 0

    def __len__(self) -> int:
        return len(self.keys)

    # -- rows in
    def add(self, table: pa.Table) -> int:
        """Rows in the page shape (``page_table``); ids already held are skipped. Rows added."""
        if not table.num_rows:
            return 0
        return self.add_lazy(table.column(ID).to_pylist(), table.column("timestamp_ns").to_pylist(),
                             lambda: table_rows(table))

    def queue_posted(self, items: list[bytes], ids: list[str], times: list[int]) -> None:
        """``add_posted``'s rows (with ``row_dicts`` as their ``loads``), taken in with the rows queued
        before them at the next read of memory (a page, a GET by id, an engine batch) or once
        ``SETTLE_ROWS`` wait. Posted groups come a few rows at a time, thousands a second, and each
        merge pays a fixed share (the key chunks it copies, its calls into the id map), so the rows
        of many groups go in together. The data version moves now: no page cached before them is
        answered again."""
        self._queued.append((items, ids, times))
        self._queued_rows += len(items)
        self.version += 1
        if self._queued_rows >= SETTLE_ROWS:
            self.settle()

    def settle(self) -> None:
        """Take the queued posted rows in (on the thread that adds rows: the event loop's)."""
        if not self._queued:
            return
        queued, self._queued, self._queued_rows = self._queued, [], 0
        if len(queued) == 1:
            items, ids, times = queued[0]
        else:
            items = [b for q in queued for b in q[0]]
            ids = [i for q in queued for i in q[1]]
            times = [t for q in queued for t in q[2]]
        version = self.version
        try:
            self._add_posted(items, ids, times, row_dicts)
        except Exception:       # noqa: BLE001 - memory is a shortcut: the store answers every page instead
            log.exception("posted rows could not enter the GET memory; pages now come from the store")
            self.mark_uncovered()
            return
        self.version = version          # (moved when they were queued: pages made since hold them)

    def add_posted(self, items: list[bytes], ids: list[str], times: list[int], loads) -> int:
        """Rows in the page shape as their JSON (keys in the schema's order), their ids (distinct)
        and times (ns); ``loads(items)``: their dicts, made when a page first reads them. Ids
        already held are skipped. Rows added."""
        self.settle()
        return self._add_posted(items, ids, times, loads)

    def _add_posted(self, items: list[bytes], ids: list[str], times: list[int], loads) -> int:
        got = self._enter_ids(ids, times)
        return self._take(_Batch(self._list_columns, loads, tuple(items)), *got) if got else 0

    def add_lazy(self, ids: list[str], times: list[int], loads) -> int:
        """Rows known by their ids and times (ns), whose page-shape dicts ``loads()`` makes when a page
        first reads them (an engine batch: its shaping costs several Arrow calls a column, which a
        batch no page reads never pays). Ids already held (or twice here) are skipped. Rows added."""
        self.settle()
        got = self._enter_ids(ids, times)
        return self._take(_Batch(self._list_columns, loads), *got) if got else 0

    def _enter_ids(self, ids: list[str], times: list[int]):
        """Enter the next batch's ids in the id map (the look-up is the insert's probe): the ids and
        times of its rows to take, and their places in the batch (None: all, in order); None when
        none is new. An id held already, or met earlier in ``ids``, is left out (rare for posts)."""
        fresh = self.rows.add_new(ids, self._next_batch << ROW_BITS)
        if np.count_nonzero(fresh) == fresh.size:
            return ids, times, None
        at = np.flatnonzero(fresh).tolist()
        if not at:
            return None
        return [ids[i] for i in at], [times[i] for i in at], at

    def _take(self, batch: _Batch, ids: list[str], times: list[int], at: list[int] | None = None) -> int:
        """Take ``batch`` in, its ids already in the id map (entries: the batch's number, then each
        row's place): its rows' ids and times; ``at``: the rows' places in the batch, when not 0, 1,
        2, ..."""
        number = self._next_batch
        self._next_batch += 1
        self._batches[number] = batch
        self._held_rows[number] = len(ids)
        base = number << ROW_BITS
        entries = range(base, base + len(ids)) if at is None else [base + i for i in at]
        new = sorted(zip(times, ids, entries))
        # a new SortedKeys, never one changed in place: a page scanned on a worker thread keeps the one it took
        keys = self.keys.add(new)
        over = len(keys) - self.capacity
        if over > 0:
            keys, gone = keys.drop_first(over)
            self.rows.pop_many([k[1] for k in gone])
            held = self._held_rows
            for number, k in collections.Counter(k[2] >> ROW_BITS for k in gone).items():
                held[number] -= k
                if not held[number]:
                    del held[number], self._batches[number]
            if self.cover is None or gone[-1][:2] > self.cover:
                self.cover = gone[-1][:2]
        self.keys = keys
        self.version += 1
        return len(new)

    def row(self, oid: str) -> tuple[dict, bytes] | None:
        """The held row ``oid`` as (dict, JSON bytes); None when memory does not hold it."""
        self.settle()
        entry = self.rows.get(oid)
        batch = self._batches.get(entry >> ROW_BITS) if entry is not None else None
        if batch is None or batch.failed:
            return None
        try:
            self._dicts(batch)
        except MemoryMiss:
            return None
        return batch.row(entry & ROW_MASK)

    def hold(self, held: bool) -> None:
        """Rows this process saw wait outside memory (``held``): meanwhile every page asks the store."""
        if held != self.held:
            self.held = held
            self.version += 1

    def stale(self) -> None:
        """Rows are on their way in: pages cached so far are not answered again (a page is made anew
        once they are in)."""
        self.version += 1

    def mark_uncovered(self) -> None:
        """Memory missed rows it should hold: from now on every page asks the store."""
        self.cover = (2**63, "")
        self.version += 1

    # -- pages
    def covers(self, f: OpportunityFilter, after: Key | None) -> bool:
        """Whether memory alone answers the page (asked on the loop before a page is made: the
        queued rows go in first)."""
        self.settle()
        start, inclusive = window_start(f, after)
        if self.held:
            return False
        if self.cover is None:
            return True
        if start is None:
            return False
        return start > self.cover if inclusive else start >= self.cover

    def _from(self, f: OpportunityFilter, after: Key | None, n: int, below: Key | None = None):
        """Up to ``n`` memory rows matching ``f`` after the window start (and under ``below``)."""
        start, inclusive = window_start(f, after)
        out = []
        batches = self._batches
        if n <= 0:
            return out
        if below is not None:
            below = (*below, PAST)          # a held key is (time, id, entry): its entry never decides
        for k in self.keys.iter_from(start, inclusive):
            if below is not None and k > below:
                break
            if f.until_ns is not None and k[0] >= f.until_ns:
                break
            entry = k[2]
            batch = batches.get(entry >> ROW_BITS)      # None: dropped meanwhile (the data version moved on)
            if batch is not None and not batch.failed and matches(f, self._dicts(batch)[entry & ROW_MASK]):
                out.append((k[:2], batch.row(entry & ROW_MASK)))
                if len(out) >= n:
                    break
        return out

    def _dicts(self, batch: _Batch) -> list[dict]:
        """The batch's dicts; when they cannot be made, the batch is left out of later scans, memory
        stops answering alone, and MemoryMiss says the page is to be made again."""
        try:
            return batch.dicts()
        except Exception as e:
            batch.failed = True
            self.mark_uncovered()
            raise MemoryMiss(f"rows in memory could not be put in the page shape: {e}") from e

    def page_from_memory(self, f: OpportunityFilter, limit: int, after: Key | None):
        """The page's rows [(key, (dict, bytes))] and whether more follow: memory alone."""
        got = self._from(f, after, limit + 1)
        return got[:limit], len(got) > limit

    def page_merged(self, f: OpportunityFilter, limit: int, after: Key | None, stored: pa.Table):
        """The store's first ``limit`` + 1 rows of the window merged with the memory rows it may lack,
        deduplicated (an id has one key), in key order; and whether more rows follow."""
        dicts = stored.to_pylist()
        stored_more = len(dicts) > limit
        # past the store's last row, the store's next rows are unknown: memory may not fill beyond it
        below = (dicts[-1]["timestamp_ns"], dicts[-1][ID]) if stored_more and dicts else None
        merged = {(r["timestamp_ns"], r[ID]): None for r in dicts}
        out = [((r["timestamp_ns"], r[ID]), (r, None)) for r in dicts]
        for k, entry in self._from(f, after, limit + 1, below):
            if k not in merged:
                out.append((k, entry))
        out.sort(key=lambda e: e[0])
        return out[:limit], len(out) > limit

    # -- encoding and the cache
    def cached(self, key):
        if self._cache_version != self.version:
            self._cache.clear()
            self._cache_version = self.version
            return None
        hit = self._cache.get(key)
        if hit is not None:
            self.cache_hits += 1
        return hit

    def remember(self, key, value, version: int) -> None:
        if version != self.version:          # a row arrived while the page was made: it may be stale
            return
        if self.held:                        # held rows reach the store without moving the version
            return
        if self._cache_version != version:
            self._cache.clear()
            self._cache_version = version
        if len(self._cache) >= self.cache_pages:
            self._cache.clear()
        self._cache[key] = value

    def encode_json(self, page, more: bool) -> tuple[bytes, str | None]:
        nxt = encode_cursor(*page[-1][0]) if more and page else None
        parts = [b if b is not None else orjson.dumps(r) for _, (r, b) in page]
        return b'{"rows":[' + b",".join(parts) + b'],"next_cursor":' + orjson.dumps(nxt) + b"}", nxt

    def encode_arrow(self, page, more: bool) -> tuple[bytes, str | None]:
        nxt = encode_cursor(*page[-1][0]) if more and page else None
        t = pa.Table.from_pylist([r for _, (r, _) in page], schema=self.schema)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
        return sink.getvalue().to_pybytes(), nxt


def store_cover(table: pa.Table) -> Key | None:
    """The greatest key of a one-row table (the store's last row), None when empty."""
    if not table.num_rows:
        return None
    r = table.to_pylist()[0]
    return (int(r["timestamp_ns"]), str(r[ID]))

