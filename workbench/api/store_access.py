"""The store connections the server owns, and the queries behind its routes.

Reads go through a read-only session (ClickHouse ``readonly=1``: a route can never write,
whatever reaches its SQL); posted batches through one writable connection, one at a time, so
the check for ids already stored and the insert cannot interleave with another post. Column
names and types come from the live table (``DESCRIBE``), so a migration that renames or adds
a column changes what the routes serve without a change here.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa

from ..store import connect
from .opportunity_rows import ID, TABLE, PostedBatch, dumps_rows
from .post_columns import checked_group_of, store_table
from .post_spool import PostSpool, post_spool_dir
from .seen_ids import ID_BYTES, SeenIds, id_array

PAGE_ROWS_DEFAULT = 100
PAGE_ROWS_MAX = 5_000
RUNS_MAX = 10_000               # runs listed by one GET /v1/runs


class BadQuery(ValueError):
    """A query parameter that cannot be used (a cursor that is not ours): the message names it."""


@dataclass
class OpportunityFilter:
    types: list[str]
    since_ns: int | None = None
    until_ns: int | None = None
    min_profit: float | None = None
    pool: str | None = None
    run: str | None = None
    min_score: float | None = None


def _select_expr(name: str, ch_type: str) -> str:
    """How a live column is read into the JSON shape (opportunity_rows.py)."""
    q = f"`{name}`"
    if ch_type.startswith("DateTime64"):
        return f"toUnixTimestamp64Nano({q}) AS `{name}_ns`"
    if ch_type.startswith("DateTime"):
        return f"toUnixTimestamp({q}) * 1000000000 AS `{name}_ns`"
    if ch_type.startswith(("UUID", "Enum", "LowCardinality(UUID")):
        return f"toString({q}) AS {q}"
    return q


def encode_cursor(ts_ns: int, oid: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts_ns, oid])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        ts, oid = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(ts, int) or not isinstance(oid, str):
            raise ValueError
        return ts, oid
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise BadQuery(f"cursor {cursor[:40]!r} is not one this server gave (pass the next_cursor of a page)") from None


class StoreAccess:
    """A read-only session and a writer on one store DSN, each used by one thread at a time."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        # the writable connection first: it creates or migrates the schema a read-only session cannot
        self.writer = connect(dsn)
        self.reader = connect(dsn, ensure_schema=False, read_only=True)
        self._read_lock = threading.Lock()
        self._write_lock = threading.RLock()    # (re-entered: the first id read inside insert_group)
        self._seen: SeenIds | None = None       # an embedded store's ids, read on the first post
        self._early: list[np.ndarray] = []      # engine ids handed on before that read (note_stored)
        self._seen_lock = threading.Lock()      # between note_stored (the run's sink thread) and that read
        self._reserve_lock = threading.Lock()   # one spooled group at a time (look-up, spool, ids noted)
        self._post_inserts = 0                  # store inserts of posted groups (without a post spool)
        # an embedded store on disk: posts are answered once spooled and inserted in the background
        # (post_spool.py); what an earlier server spooled goes in now, before any post looks ids up
        spool_dir = post_spool_dir(self.writer.dsn)
        self._post_spool = PostSpool(self.writer, spool_dir, self._write_lock, after_insert=self.grow_seen) \
            if spool_dir else None
        if self._post_spool is not None:
            self._post_spool.replay()
        self.columns = self._live_columns()

    def close(self) -> None:
        if self._post_spool is not None:
            self._post_spool.close()            # what waits is inserted (or stays spooled for the next start)
        self.reader.close()
        self.writer.close()

    @property
    def post_inserts(self) -> int:
        """Store inserts of posted rows so far."""
        return self._post_spool.inserts if self._post_spool is not None else self._post_inserts

    def wait_posts_inserted(self) -> None:
        """Wait until the posts answered so far are in the store (with a post spool they are
        inserted in the background)."""
        if self._post_spool is not None:
            self._post_spool.wait_inserted()

    @property
    def spooled_inserts(self) -> bool:
        """Whether posts are answered once spooled, before their insert (post_spool.py)."""
        return self._post_spool is not None

    def _live_columns(self) -> list[tuple[str, str]]:
        rows = self.reader.query_rows(f"DESCRIBE TABLE {self.reader.table(TABLE)}")
        # DESCRIBE lists ALIAS columns too (default_type 'ALIAS'): they are derived, not stored
        return [(r[0], r[1]) for r in rows if len(r) < 3 or r[2] != "ALIAS"]

    def _query(self, sql: str, params: dict | None = None) -> pa.Table:
        with self._read_lock:
            return self.reader.query_arrow(sql, params)

    def ping(self) -> None:
        with self._read_lock:
            self.reader.query_rows("SELECT 1")

    # -- opportunities
    def _select(self) -> str:
        return ", ".join(_select_expr(n, t) for n, t in self.columns)

    def page_schema(self) -> pa.Schema:
        """The Arrow schema of the GET route's rows, as the store returns them."""
        return self._query(f"SELECT {self._select()} FROM {self.reader.table(TABLE)} LIMIT 0").schema

    def last_key(self) -> pa.Table:
        """The row with the greatest (timestamp, opportunity_id): at most one row."""
        return self._query(f"SELECT toUnixTimestamp64Nano(timestamp) AS timestamp_ns, toString(opportunity_id) AS {ID} "
                           f"FROM {self.reader.table(TABLE)} ORDER BY timestamp DESC, {ID} DESC LIMIT 1")

    def opportunity_rows(self, f: OpportunityFilter, n: int, after: tuple[int, str] | None) -> pa.Table:
        """Up to ``n`` rows matching ``f`` in (timestamp, opportunity_id) order after the key ``after``."""
        where, params = [], {}
        if f.types:
            where.append("toString(type) IN {types:Array(String)}")
            params["types"] = f.types
        if f.since_ns is not None:
            where.append("timestamp >= fromUnixTimestamp64Nano({since:Int64})")
            params["since"] = f.since_ns
        if f.until_ns is not None:
            where.append("timestamp < fromUnixTimestamp64Nano({until:Int64})")
            params["until"] = f.until_ns
        if f.min_profit is not None:
            where.append("profit >= {min_profit:Float64}")
            params["min_profit"] = f.min_profit
        if f.pool:
            where.append("has(pools, {pool:String})")
            params["pool"] = f.pool
        if f.run:
            where.append("toString(run_id) = {run:String}")
            params["run"] = f.run
        if f.min_score is not None:
            where.append("score >= {min_score:Float64}")
            params["min_score"] = f.min_score
        if after is not None:
            where.append("(timestamp, toString(opportunity_id)) > (fromUnixTimestamp64Nano({c_ts:Int64}), {c_id:String})")
            params.update(c_ts=after[0], c_id=after[1])
        sql = (f"SELECT {self._select()} FROM {self.reader.table(TABLE)}"
               + (f" WHERE {' AND '.join(where)}" if where else "")
               + f" ORDER BY timestamp, toString(opportunity_id) LIMIT {int(n)}")
        return self._query(sql, params)

    def opportunities(self, f: OpportunityFilter, limit: int, cursor: str | None) -> tuple[pa.Table, str | None]:
        """One page in (timestamp, opportunity_id) order after ``cursor`` (an Arrow table in the JSON
        shape's names); the next page's cursor or None."""
        t = self.opportunity_rows(f, limit + 1, decode_cursor(cursor) if cursor else None)
        more = t.num_rows > limit
        t = t.slice(0, limit)
        nxt = None
        if more and t.num_rows:
            last = t.slice(t.num_rows - 1, 1).to_pylist()[0]
            nxt = encode_cursor(int(last["timestamp_ns"]), str(last[ID]))
        return t, nxt

    def opportunity(self, oid: str) -> bytes | None:
        t = self._query(f"SELECT {self._select()} FROM {self.reader.table(TABLE)} WHERE toString(opportunity_id) = {{id:String}} "
                        f"LIMIT 1", {"id": oid})
        return dumps_rows(t)[0] if t.num_rows else None

    def count_opportunities(self) -> int:
        with self._read_lock:
            return self.reader.count(TABLE)

    def insert(self, batch: PostedBatch) -> tuple[list[int], int]:
        """Insert the rows whose ids the store lacks; (indices of the rows inserted, rows already stored)."""
        keep = self.insert_group(checked_group_of([batch]))
        kept = np.flatnonzero(keep).tolist()
        return kept, len(batch.ids) - len(kept)

    def stored_ids(self, ids: list[str]) -> list[str]:
        """Which of ``ids`` (canonical UUID text) the store holds: one query on the id column itself."""
        if not ids:
            return []
        rows = self.writer.query_rows(
            f"SELECT DISTINCT toString(opportunity_id) FROM {self.writer.table(TABLE)} "
            f"WHERE opportunity_id IN {{ids:Array(UUID)}}", {"ids": ids})
        return [r[0] for r in rows]

    def _stored_mask(self, ids: np.ndarray, uniq: np.ndarray) -> np.ndarray:
        """Which of ``ids`` (seen_ids.py ``id_array``) the store holds. An embedded store has no other
        writer: its ids are read once and kept in memory (seen_ids.py); a server is asked each time."""
        if not self.writer.dsn.embedded:
            stored = self.stored_ids([v.decode() for v in uniq])
            return np.isin(ids, id_array(stored)) if stored else np.zeros(len(ids), bool)
        if self._seen is None:
            with self._write_lock:
                t = self.writer.query_arrow(f"SELECT toString(opportunity_id) AS id FROM {self.writer.table(TABLE)}")
            with self._seen_lock:
                # the engine rows handed on so far are in the store or in _early (the store may not have
                # them yet: its writer runs behind the hand-off); those handed on from here go to the set
                self._seen = SeenIds(np.concatenate([id_array(t.column("id")), *self._early]))
                self._early = []
        return self._seen.contains(ids)

    @property
    def ids_loaded(self) -> bool:
        """Whether a post's id look-up is answered from memory (an embedded store's ids were read)."""
        return self._seen is not None

    def grow_seen(self) -> None:
        """Grow the id set if it is half full (off the event loop: a growth copies it whole)."""
        if self._seen is not None:
            self._seen.grow()

    def note_streamed(self, ids) -> bool:
        """``note_stored`` for ids the server streams before its run hands their table on (its own
        engine's opportunities, made ready from the engine's records: service.py), called on the
        event loop before anyone can see them. True when the id set is half full: the caller then
        has ``grow_seen`` run off the loop."""
        self.note_stored(ids)
        seen = self._seen
        return seen is not None and seen.half_full()

    def note_stored(self, ids) -> None:
        """Ids the server's engine run hands on, which its store writer is about to write (canonical
        text). Called on the run's sink thread when the run hands a table on, before the writer gets
        it (``note_hand_offs``), so that no moment exists in which such a row is stored, or about to
        be, while a post of its id would not see it."""
        ids = id_array(ids)
        with self._seen_lock:
            if self._seen is None:
                if self.writer.dsn.embedded and len(ids):
                    self._early.append(ids)
                return
        self._seen.add(ids, grow=False)

    def insert_group(self, group) -> np.ndarray:
        """Insert a group of posted rows (post_columns.py ``CheckedGroup``) with one look-up and one
        insert: which rows were inserted, as if the requests had come one after the other in order
        (a row whose id the store holds, or an earlier row of the group has, is not). With a post
        spool the rows are spooled instead, and inserted later (post_spool.py); their ids are noted
        at once, so a later post of one of them is a duplicate."""
        if self._post_spool is not None:
            with self._reserve_lock:
                ids, keep = self._new_rows(group)
                # (count_nonzero: a fraction of ndarray.all's and .any's cost, a few times a group)
                kept = np.count_nonzero(keep)
                every = kept == keep.size       # (the usual group: every row new, nothing to pick out)
                if kept:                        # (a group of empty posts: nothing to log, no ids read yet)
                    # one write, so a failure spools nothing of the group
                    self._post_spool.append(group.kept(keep).items)
                    # (grown on the spool's thread: this may run on the loop)
                    self._seen.add(ids if every else ids[keep], grow=False)
                return keep
        with self._write_lock:
            ids, keep = self._new_rows(group)
            if np.count_nonzero(keep):
                # one statement, so a failure writes nothing of the group
                self.writer.insert_arrow(TABLE, store_table(group.kept(keep).rows))
                self._post_inserts += 1
                if self._seen is not None:
                    self._seen.add(ids[keep])
            return keep

    def _new_rows(self, group) -> tuple[np.ndarray, np.ndarray]:
        """The group's ids (``id_array``) and which of its rows are new: the first row of each id,
        when the store (or the id set) lacks it."""
        n = len(group.ids)
        if not n:
            return np.zeros(0, f"S{ID_BYTES}"), np.zeros(0, bool)
        ids = id_array(group.ids)                       # canonical text: one id, one spelling
        if len(set(group.ids)) == n:                    # (the usual group: no id twice; no sort to find out)
            return ids, ~self._stored_mask(ids, ids)
        uniq, first = np.unique(ids, return_index=True)
        keep = np.zeros(n, bool)
        keep[first] = True                              # the first row of each id in the group
        keep &= ~self._stored_mask(ids, uniq)
        return ids, keep

    # -- runs
    def runs(self, limit: int) -> list[dict]:
        with self._read_lock:
            t = self.reader.runs(limit)
        return _plain_rows(t)

    def run(self, run_id: str) -> dict | None:
        t = self._query(f"SELECT * FROM {self.reader.table('runs')} FINAL WHERE run_id = {{run:String}}",
                        {"run": run_id})
        if not t.num_rows:
            return None
        out = _plain_rows(t)[0]
        for k in ("config",):
            try:
                out[k] = orjson.loads(out[k]) if out.get(k) else out.get(k)
            except orjson.JSONDecodeError:
                pass
        hist = self._query(
            f"SELECT hist_name, argMax(count, interval_end) AS count, argMax(p50, interval_end) AS p50, "
            f"argMax(p99, interval_end) AS p99, argMax(p999, interval_end) AS p999 "
            f"FROM {self.reader.table('latency_hist')} WHERE run_id = {{run:String}} GROUP BY hist_name "
            f"ORDER BY hist_name", {"run": run_id})
        out["latency"] = {r["hist_name"]: {"count": r["count"], "p50": r["p50"], "p99": r["p99"], "p99.9": r["p999"]}
                          for r in hist.to_pylist()}
        out["opportunities"] = int(self._query(
            f"SELECT count() AS n FROM {self.reader.table(TABLE)} WHERE toString(run_id) = {{run:String}}",
            {"run": run_id}).column("n")[0].as_py())
        return out


def note_hand_offs(run, store: StoreAccess) -> None:
    """Give ``store`` the opportunity ids of every table the engine ``run`` (runner/background.py
    BackgroundRun) hands on, at the hand-off itself, on the run's sink thread.

    The run's sink hands a table to the server before its store writer gets the same table, and
    the writer stores it later on its own thread. (The server's pump streams the engine's own
    opportunities before that, from the engine's records, and notes their ids first:
    ``note_streamed``.)
    Noting ids when the pump took them left a moment in which an engine row was stored, or about
    to be, while a post of its id found it neither in the id set nor (read earlier) in the store,
    and stored it a second time. Noting them at the hand-off closes that moment."""
    if run is None:
        return
    hand_on = run.sink

    def sink(name, table):
        if name == "opportunities" and table.num_rows and "opportunity_id" in table.schema.names:
            store.note_stored(table.column("opportunity_id"))
        hand_on(name, table)

    run.sink = sink             # (the run passes ``self.sink`` to the runner when it starts)


def _plain_rows(t: pa.Table) -> list[dict]:
    """Rows as JSON-ready dicts: times as int ns under ``<name>_ns``, maps as objects."""
    cols, names = [], []
    for name, col in zip(t.column_names, t.columns):
        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            col = col.cast(pa.timestamp("ns", tz=getattr(col.type, "tz", None))).cast(pa.int64()) \
                if pa.types.is_timestamp(col.type) else col.cast(pa.int64())
            name = name + "_ns"
        cols.append(col)
        names.append(name)
    rows = pa.Table.from_arrays(cols, names=names).to_pylist()
    for r in rows:
        for k, v in r.items():
            if isinstance(v, list) and v and isinstance(v[0], tuple):
                r[k] = dict(v)
    return rows

