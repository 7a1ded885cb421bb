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
Bad credentials, a bad DSN, a store of a newer schema or a spool folder that cannot be
written raise from ``start``: those are the user's to fix, not something to spool around
(a spool that cannot take rows would lose them the moment the store stops answering).

While a run is 'running' its ``runs`` row is rewritten every ``RUN_HEARTBEAT_S`` (when the
store answers); ``mark_lost_runs`` turns a 'running' row left unrewritten for
``RUN_LOST_AFTER_S`` into 'killed' (``start`` and ``workbench db runs`` call it).
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
from pathlib import Path

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute in mark_lost_runs

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
# A run that is alive rewrites its 'running' runs row every RUN_HEARTBEAT_S (its updated_at is
# the row's version: the newest wins). A 'running' row not rewritten for RUN_LOST_AFTER_S
# belongs to a process that died without writing its end (SIGKILL, OOM killer, power loss):
# mark_lost_runs says so. The margin covers an insert that holds the writer thread up.
RUN_HEARTBEAT_S = 10.0
RUN_LOST_AFTER_S = 120.0
KILLED = "killed"               # the status mark_lost_runs gives such a run


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
    rows_lost: int = 0              # rows neither inserted nor spooled (the writer failed: the spool refused them)
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
    heartbeat_s : while the run is 'running', how often its runs row is rewritten (the store
        tells a run whose process died by the missing heartbeat: ``mark_lost_runs``)
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
                 flush_spool_on_start: bool = True, coalesce_rows: int = 1_000_000, linger_s: float = 0.25,
                 heartbeat_s: float = RUN_HEARTBEAT_S):
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
        self._run_lock = threading.Lock()       # _run_row: the caller's thread and the heartbeat
        self.heartbeat_s = heartbeat_s
        self._next_beat = 0.0
        self._groups: dict[str, list] = {}

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "StoreWriter":
        if self._thread is not None:
            raise StoreError("StoreWriter.start() called twice")
        check_spool_dir(self.spool.dir)
        t0 = time.monotonic()
        try:
            self._store = connect(self.dsn, connect_timeout=self.connect_timeout_s, read_timeout=self.read_timeout_s)
            self._healthy = True
            try:
                mark_lost_runs(self._store)
            except StoreUnavailable:
                raise
            except StoreError as e:       # a report, not the run's business: say so and go on
                log.warning("could not look for runs whose process died: %s", e)
        except StoreUnavailable as e:
            log.warning("%s (spooling to %s until it answers)", e, self.spool.dir)
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
            lost = (f"; {self.stats.rows_lost:,} rows queued for the store are neither stored nor spooled"
                    if self.stats.rows_lost else "")
            raise StoreError(f"the store writer failed: {self._failure}{lost}") from self._failure
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
        row = dict(run_id=self.run_id, status="running", source=source, capture_path=str(capture_path),
                   capture_sha256=capture_sha256, market=market, model=model, config=config or "",
                   code_version=code_version or __version__, started_at=started_ns, ended_at=0,
                   counts={}, updated_at=started_ns)
        with self._run_lock:
            self._run_row = row
            self._next_beat = time.monotonic() + self.heartbeat_s
        self.put("runs", self._runs_table(row), f"{self.run_id}:runs:start")
        return self.run_id

    def record_run_end(self, counts: dict[str, int] | None = None, *, status: str = "done",
                       ended_ns: int | None = None) -> None:
        """Write the run's final ``runs`` row (it replaces the start row): end time, status, counts."""
        if self._run_row is None:
            raise StoreError("record_run_end() before record_run_start()")
        with self._run_lock:            # after every heartbeat: the end row is the newest version
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
        try:
            self.spool.write(table, data, token, str(err))
        except OSError as e:
            raise StoreError(f"spool folder {self.spool.dir}: cannot write a {table} batch there "
                             f"({e.strerror or e}), and the store did not take it") from e
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
            log.warning("%s (spooling to %s)", e, self.spool.dir)
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

    def _beat(self) -> None:
        """Rewrite the 'running' runs row with a fresh updated_at (its version), straight to the
        store: a heartbeat is worth nothing late, so it is never spooled, and skipped while the
        store is unreachable."""
        self._next_beat = time.monotonic() + self.heartbeat_s
        with self._run_lock:
            row = self._run_row
            if row is None or row["status"] != "running" or not self._healthy or self._store is None:
                return
            row = dict(row, updated_at=max(time.time_ns(), row["updated_at"] + 1))
            self._run_row = row
        try:
            self._store.insert_arrow("runs", conform("runs", self._runs_table(row), self.run_id),
                                     f"{self.run_id}:runs:beat:{row['updated_at']}")
        except StoreUnavailable as e:
            self._mark_down(e)
        except StoreError as e:
            self.stats.last_error = str(e)

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
                    wake = min([*due.values(), self._next_beat]) if self._run_row is not None else (
                        min(due.values()) if due else None)
                    wait = max(0.0, wake - time.monotonic()) if wake is not None else None
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
                if self._run_row is not None and now >= self._next_beat:
                    self._beat()
            if not self._healthy and self.spool.pending() and time.monotonic() >= self._next_probe:
                # one last chance before closing (the spool keeps the rest); not when a probe failed
                # within retry_interval_s: a silent server would cost its read deadline once more
                self._probe()
        except BaseException as e:      # a bug or a full disk: make put()/close() raise, drop nothing silently
            self._failure = e
            log.debug("store writer failed", exc_info=True)     # the message reaches the user through put()/close()
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
                except Exception:       # counted: close() says how many rows are in neither place
                    self.stats.rows_lost += item[1].num_rows


def check_spool_dir(path: str | os.PathLike) -> None:
    """StoreError naming ``path`` unless the spool folder is writable, or can be made: checked
    before a run's first row, because the spool is where rows go when the store stops answering."""
    d = Path(path)
    if d.exists() and not d.is_dir():
        raise StoreError(f"spool folder {d}: is a file, not a folder; the store's failed batches are kept there. "
                         f"Move it away, or point data_dir (WORKBENCH_DATA_DIR) elsewhere")
    f = d
    while not f.exists() and f != f.parent:
        f = f.parent
    if not f.is_dir():
        raise StoreError(f"spool folder {d}: cannot be made: {f} is a file; point data_dir (WORKBENCH_DATA_DIR) "
                         f"elsewhere")
    if not os.access(f, os.W_OK | os.X_OK):
        raise StoreError(f"spool folder {d}: {f} is not writable; the store's failed batches are kept there. "
                         f"Make it writable, or point data_dir (WORKBENCH_DATA_DIR) elsewhere")


def mark_lost_runs(store: Store, lost_after_s: float = RUN_LOST_AFTER_S, now_ns: int | None = None) -> list[str]:
    """Runs still 'running' whose row was not rewritten (heartbeat) for ``lost_after_s`` seconds:
    their process died without recording an end. Each gets a 'killed' row, ended at the last
    heartbeat, whose version is that heartbeat + 1 ns, so that an end row still on its way (a
    spool flushed later) wins over it. Returns their run ids. Nothing is done on a read-only store."""
    if getattr(store, "read_only", False):
        return []
    from .schema import RUNS
    cutoff = (now_ns or time.time_ns()) - int(lost_after_s * 1e9)
    names = [c.name for c in RUNS.columns]
    runs = store.query_arrow(
        f"SELECT {', '.join(names)} FROM {store.table('runs')} FINAL WHERE status = 'running' "
        f"AND updated_at < fromUnixTimestamp64Nano(toInt64({int(cutoff)}))")
    if runs.num_rows == 0:
        return []
    seen = runs.column("updated_at").cast(pa.int64())
    stamp = runs.schema.field("updated_at").type
    lost = runs.set_column(names.index("status"), "status", pa.array([KILLED] * runs.num_rows, pa.string()))
    lost = lost.set_column(names.index("ended_at"), "ended_at", seen.cast(stamp))
    lost = lost.set_column(names.index("updated_at"), "updated_at",
                           pa.compute.add(seen, 1).cast(stamp))
    ids = runs.column("run_id").to_pylist()
    store.insert_arrow("runs", conform("runs", lost), f"runs:lost:{','.join(ids)[:200]}:{cutoff}")
    log.warning("%d run(s) were still 'running' with no heartbeat for %.0f s: marked %s (%s)",
                len(ids), lost_after_s, KILLED, ", ".join(ids))
    return ids
