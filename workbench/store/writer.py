"""The store writer: engine batches go in as Arrow through one thread and a bounded queue.

::

    w = StoreWriter(settings.db_dsn, spool_dir)      # parse the DSN (StoreError if bad)
    w.start()                                         # connect, migrate, flush an old spool
    run_id = w.record_run_start(capture_path=..., config=...)
    w.put("tx_features", arrow_table)                 # conform now, insert on the thread
    w.put("mev_opportunities", arrow_table)
    w.record_run_end(counts={...})
    stats = w.close()                                 # drain, join, WriterStats

``put`` checks and converts the batch in the caller's thread (``columns.conform``: a
wrong column raises at once, where it was made) and blocks while ``queue_batches`` batches
wait: backpressure, never unbounded memory. The thread inserts each batch with a
deduplication token; the batches of a table are gathered into one insert (up to
``coalesce_rows`` rows, or ``linger_s`` after the first), so small engine batches do not
cost a part each. A batch whose insert fails is spooled (``spool.py``), never dropped:
when the server is unreachable (``StoreUnavailable``) the writer goes on spooling without
retrying each batch, probes every ``retry_interval_s``, and when the server answers it first
flushes the spool, then carries on. ``start`` flushes what an earlier run left in the spool.
Bad credentials, a bad DSN or a store of a newer schema raise from ``start``: those are
the user's to fix, not something to spool around.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import pyarrow as pa

from .. import __version__
from ..config import Settings
from ..errors import StoreError, StoreUnavailable
from .clickhouse import Store, connect
from .columns import conform
from .dsn import Dsn, parse_dsn
from .spool import Spool

log = logging.getLogger(__name__)

_STOP = object()
_PUT_POLL_S = 0.25              # put() re-checks that the thread lives this often while blocked
# A failed probe that took t seconds (a silent server costs its whole read deadline) is not
# repeated for PROBE_COST_FACTOR * t (at least retry_interval_s): probing a server that never
# answers then holds the writer thread, and through its queue the engine, a fifth of the time
# at most instead of nearly all of it.
PROBE_COST_FACTOR = 4


@dataclass
class WriterStats:
    rows_inserted: int = 0          # rows of this writer's batches that went into the store
    rows_spooled: int = 0           # rows of this writer's batches that went to the spool
    batches_inserted: int = 0
    batches_spooled: int = 0
    rows_flushed: int = 0           # spooled rows (this run's or older) re-inserted by this writer
    rows_flush_skipped: int = 0     # spooled rows found already stored when flushing
    insert_errors: int = 0          # failed inserts (each one spooled)
    last_error: str = ""
    put_wait_s: float = 0.0         # time put() blocked on a full queue (backpressure)
    spool_files_left: int = 0       # files in the spool when the writer closed
    by_table: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # table: [inserted, spooled]

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "by_table"}
        d["by_table"] = {k: {"inserted": v[0], "spooled": v[1]} for k, v in self.by_table.items()}
        return d


def new_run_id(now_ns: int | None = None) -> str:
    """``YYYYmmddTHHMMSSZ-<8 hex>``: sorts by start time, unique without coordination."""
    t = time.gmtime((now_ns or time.time_ns()) / 1e9)
    return time.strftime("%Y%m%dT%H%M%SZ", t) + "-" + uuid.uuid4().hex[:8]


class StoreWriter:
    """Writes Arrow batches to the store from one thread; spools what fails.

    Parameters
    ----------
    dsn : the store (``chdb:///dir`` or ``http://user:pw@host:8123/db``)
    spool_dir : where failed batches wait (``<data_dir>/spool`` by convention)
    queue_batches : batches that may wait for the thread; ``put`` blocks beyond it
    run_id : fills a missing ``run_id`` column; ``record_run_start`` sets it
    retry_interval_s : while the server is unreachable, how often to probe it
    connect_timeout_s, read_timeout_s : how long a server may take to accept a connection, and
        stay silent while answering (the config's store_connect_timeout_s, store_read_timeout_s);
        past them, or on an answer that is not ClickHouse's, it counts as unreachable: spooling
    flush_spool_on_start : re-insert what the spool holds before the first batch
    coalesce_rows, linger_s : the thread gathers the batches of each table and inserts them
        together once they hold ``coalesce_rows`` rows or the first has waited ``linger_s``
        seconds (each insert makes a part: a fixed cost in the engine plus merges later, so
        small engine batches would otherwise cap the rate). Memory stays bounded: ``queue_batches``
        batches queued plus under ``coalesce_rows`` rows gathered per table.
    """

    def __init__(self, dsn: str | Dsn, spool_dir: str | os.PathLike, queue_batches: int = 8, *,
                 run_id: str | None = None, retry_interval_s: float = 5.0,
                 connect_timeout_s: int = Settings.store_connect_timeout_s,
                 read_timeout_s: int = Settings.store_read_timeout_s,
                 flush_spool_on_start: bool = True, coalesce_rows: int = 1_000_000, linger_s: float = 0.25):
        if queue_batches < 1:
            raise StoreError(f"queue_batches={queue_batches}: must be >= 1")
        self.dsn = dsn if isinstance(dsn, Dsn) else parse_dsn(dsn)
        self.spool = Spool(spool_dir, target=self.dsn)     # each file records the store it is for
        self.run_id = run_id
        self.stats = WriterStats()
        self.retry_interval_s = retry_interval_s
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.flush_spool_on_start = flush_spool_on_start
        self.coalesce_rows = coalesce_rows
        self.linger_s = linger_s
        self._q: queue.Queue = queue.Queue(maxsize=queue_batches)
        self._store: Store | None = None
        self._healthy = False
        self._next_probe = 0.0
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._closed = False
        self._writer_id = uuid.uuid4().hex[:12]
        self._seq: dict[str, itertools.count] = defaultdict(itertools.count)
        self._run_row: dict | None = None
        self._groups: dict[str, list] = {}

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "StoreWriter":
        if self._thread is not None:
            raise StoreError("StoreWriter.start() called twice")
        t0 = time.monotonic()
        try:
            self._store = connect(self.dsn, connect_timeout=self.connect_timeout_s, read_timeout=self.read_timeout_s)
            self._healthy = True
        except StoreUnavailable as e:
            log.warning("%s; spooling to %s until it answers", e, self.spool.dir)
            self._mark_down(e)
            self._probe_failed(t0)
        self._thread = threading.Thread(target=self._run, name="workbench-store-writer", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float | None = None) -> WriterStats:
        """Drain the queue, try once more to flush the spool, stop the thread, return the stats."""
        if self._closed:
            return self.stats
        self._closed = True
        if self._thread is not None:
            if self._thread.is_alive():
                self._put_item(_STOP)
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise StoreError(f"the store writer did not finish within {timeout} s; "
                                 f"{self._q.qsize()} batches still queued")
        if self._store is not None:
            self._store.close()
        self.stats.spool_files_left = len(self.spool.pending())
        if self._failure is not None:
            raise StoreError(f"the store writer failed: {self._failure}") from self._failure
        return self.stats

    def __enter__(self) -> "StoreWriter":
        return self.start() if self._thread is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the caller's side -------------------------------------------------------------
    def put(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        """Queue one batch for ``table``; blocks while the queue is full.

        ``dedup_token`` names the batch for the store's deduplication: unique per batch within
        the table and the same on every retry. Default: ``<run_id>:<table>:<n>``.
        """
        if self._thread is None or self._closed:
            raise StoreError("the store writer is not running: call start() first (and not after close())")
        arrow = conform(table, data, self.run_id)
        if arrow.num_rows == 0:
            return
        token = dedup_token or f"{self.run_id or self._writer_id}:{table}:{next(self._seq[table])}"
        self._put_item((table, arrow, token))

    def _put_item(self, item) -> None:
        t0 = time.perf_counter()
        while True:
            if self._failure is not None and item is not _STOP:
                raise StoreError(f"the store writer failed: {self._failure}") from self._failure
            try:
                self._q.put(item, timeout=_PUT_POLL_S)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    raise StoreError("the store writer thread has stopped") from self._failure
        self.stats.put_wait_s += time.perf_counter() - t0

    def record_run_start(self, run_id: str | None = None, *, source: str = "replay", capture_path: str = "",
                         capture_sha256: str = "", market: str = "", model: str = "",
                         config: dict | str | None = None, code_version: str | None = None,
                         started_ns: int | None = None) -> str:
        """Write the run's first ``runs`` row (status 'running'); returns and adopts the run id."""
        started_ns = started_ns or time.time_ns()
        self.run_id = run_id or self.run_id or new_run_id(started_ns)
        if isinstance(config, dict):
            config = json.dumps(config, sort_keys=True, default=str)
        self._run_row = dict(run_id=self.run_id, status="running", source=source, capture_path=str(capture_path),
                             capture_sha256=capture_sha256, market=market, model=model, config=config or "",
                             code_version=code_version or __version__, started_at=started_ns, ended_at=0,
                             counts={}, updated_at=started_ns)
        self.put("runs", self._runs_table(self._run_row), f"{self.run_id}:runs:start")
        return self.run_id

    def record_run_end(self, counts: dict[str, int] | None = None, *, status: str = "done",
                       ended_ns: int | None = None) -> None:
        """Write the run's final ``runs`` row (it replaces the start row): end time, status, counts."""
        if self._run_row is None:
            raise StoreError("record_run_end() before record_run_start()")
        ended_ns = max(ended_ns or time.time_ns(), self._run_row["started_at"] + 1)
        row = dict(self._run_row, status=status, ended_at=ended_ns,
                   counts={str(k): int(v) for k, v in (counts or {}).items()},
                   updated_at=max(time.time_ns(), self._run_row["updated_at"] + 1))
        self._run_row = row
        self.put("runs", self._runs_table(row), f"{self.run_id}:runs:end")

    @staticmethod
    def _runs_table(row: dict) -> pa.Table:
        from .schema import RUNS
        cols = {}
        for c in RUNS.columns:
            v = row[c.name]
            cols[c.name] = pa.array([list(v.items()) if c.name == "counts" else v], c.arrow)
        return pa.table(cols)

    # -- the thread's side -------------------------------------------------------------
    def _mark_down(self, err: BaseException) -> None:
        self._healthy = False
        self._next_probe = time.monotonic() + self.retry_interval_s
        self.stats.last_error = str(err)

    def _probe(self) -> bool:
        """Reconnect (or ping) and flush the spool; True when the store answers again."""
        t0 = time.monotonic()
        self._next_probe = t0 + self.retry_interval_s
        try:
            if self._store is None:
                self._store = connect(self.dsn, connect_timeout=self.connect_timeout_s,
                                      read_timeout=self.read_timeout_s)
            elif not self._store.client.ping():
                self._probe_failed(t0)
                return False
        except StoreUnavailable as e:
            self.stats.last_error = str(e)
            self._probe_failed(t0)
            return False
        self._healthy = True
        self._flush_spool()
        return self._healthy

    def _probe_failed(self, t0: float) -> None:
        now = time.monotonic()
        self._next_probe = now + max(self.retry_interval_s, PROBE_COST_FACTOR * (now - t0))

    def _flush_spool(self) -> None:
        if not self.spool.pending():
            return
        fs = self.spool.flush(self._store)
        self.stats.rows_flushed += fs.rows_inserted
        self.stats.rows_flush_skipped += fs.rows_skipped
        if fs.errors:
            self.stats.last_error = fs.errors[-1]
            if fs.unavailable:
                self._mark_down(StoreUnavailable(fs.errors[-1]))

    def _spool(self, table: str, data: pa.Table, token: str, err: BaseException | str) -> None:
        self.spool.write(table, data, token, str(err))
        self.stats.rows_spooled += data.num_rows
        self.stats.batches_spooled += 1
        self.stats.by_table[table][1] += data.num_rows

    def _write(self, table: str, data: pa.Table, token: str) -> None:
        if not self._healthy and (time.monotonic() < self._next_probe or not self._probe()):
            self._spool(table, data, token, self.stats.last_error or "store unavailable")
            return
        try:
            self._store.insert_arrow(table, data, token)
        except StoreUnavailable as e:
            self.stats.insert_errors += 1
            self._mark_down(e)
            log.warning("%s; spooling to %s", e, self.spool.dir)
            self._spool(table, data, token, e)
            return
        except StoreError as e:         # refused for another reason: keep it for a human, go on
            self.stats.insert_errors += 1
            self.stats.last_error = str(e)
            log.error("insert into %s failed, batch spooled: %s", table, e)
            self._spool(table, data, token, e)
            return
        self.stats.rows_inserted += data.num_rows
        self.stats.batches_inserted += 1
        self.stats.by_table[table][0] += data.num_rows

    def _flush_group(self, table: str, group: list) -> None:
        """Insert (or spool) the batches gathered for ``table`` as one insert."""
        if len(group) == 1:
            data, token = group[0]
        else:
            data = pa.concat_tables([g[0] for g in group])
            token = f"{group[0][1]}..{group[-1][1]}"       # unique: tokens of one table never repeat
        self._write(table, data, token)

    def _run(self) -> None:
        """Gather queued batches per table; insert a table's batches together when they reach
        ``coalesce_rows``, when the first of them has waited ``linger_s``, or at close."""
        groups = self._groups          # table -> [(data, token)], gathered, not yet written
        rows: dict[str, int] = {}
        due: dict[str, float] = {}

        def flush(table):
            self._flush_group(table, groups[table])
            del groups[table], rows[table], due[table]

        try:
            if self._healthy and self.flush_spool_on_start:
                self._flush_spool()
            while True:
                try:
                    wait = max(0.0, min(due.values()) - time.monotonic()) if due else None
                    item = self._q.get(timeout=wait)
                except queue.Empty:
                    item = None
                if item is _STOP:
                    for table in list(groups):
                        flush(table)
                    break
                if item is not None:
                    table, data, token = item
                    g = groups.get(table)
                    if g and (g[0][0].schema != data.schema or rows[table] + data.num_rows > self.coalesce_rows):
                        flush(table)
                    groups.setdefault(table, []).append((data, token))
                    rows[table] = rows.get(table, 0) + data.num_rows
                    due.setdefault(table, time.monotonic() + self.linger_s)
                    if rows[table] >= self.coalesce_rows:
                        flush(table)
                now = time.monotonic()
                for table in [t for t, d in due.items() if d <= now]:
                    flush(table)
            if not self._healthy and self.spool.pending() and time.monotonic() >= self._next_probe:
                # one last chance before closing (the spool keeps the rest); not when a probe failed
                # within retry_interval_s: a silent server would cost its read deadline once more
                self._probe()
        except BaseException as e:      # a bug or a full disk: make put()/close() raise, drop nothing silently
            self._failure = e
            log.exception("store writer failed")
            left = [(t, d, tok) for t, g in groups.items() for d, tok in g]
            while True:                 # unblock put(): whatever is queued is spooled if possible
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    left.append(item)
            for item in left:
                try:
                    self._spool(*item, e)
                except Exception:
                    log.exception("could not spool a %s batch after the writer failed", item[0])
