"""Posted rows answered once logged, inserted into an embedded store in the background.

An embedded store's insert costs milliseconds of CPU whatever its size, and every part it
writes is merged again later in the store's background threads; a post answered only after
its group's insert waited for that insert (and for the one before it), and many small groups
made many small parts to merge. Here a group's new rows are appended to the spool's log (one
JSON row a line, the rows' own JSON, made once for the WebSocket too: one ``write`` a group)
and the posts are answered; a thread inserts everything logged since its last insert at most
every ``INSERT_INTERVAL_S`` (sooner when ``INSERT_ROWS`` rows wait), and removes the log files
it covered. So an insert serves hundreds of posts and the store writes few, large parts. The
store reads the log file itself (``insert_log``: ``INSERT ... SELECT ... FROM file()``, JSON
parsed and converted in ClickHouse, floats exactly), so the thread holds no GIL while it
inserts: a table made in Python (post_columns.py ``store_table``, a few microseconds a row with
the GIL held) kept the event loop waiting for the GIL whenever the loop let it go, at every
write of a group. That table is made only after a failed insert and at a restart, where every
line is checked again.

What an answered post promises is what a chDB insert promised: the line is written but not
fsynced (chDB does not fsync its parts either), so the rows survive a crash of the server's
process, not a power loss or a crash of the machine. The next server on the same store
inserts the rows left (``replay``, before its first post): each line is checked again as a
posted row (``check_rows``), and only the rows whose ids the store lacks go in, so a crash
between an insert and the removal of its files doubles nothing. A line cut short by a crash
during its write belongs to a post that was never answered: it is skipped, with a warning.
Idempotence and reads do not wait for the insert: the ids are in the posts' id set
(seen_ids.py) and the rows in the GET memory and the WebSocket when the post is answered. A
failed insert is logged and tried again (only the rows the store lacks); the files stay until
a try succeeds, or for the next start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import orjson

from ..errors import StoreError
from ..store import Spool
from ..store.clickhouse import EMBEDDED_STREAM_ROWS_MAX, file_path_plain
from ..store.spool import missing_rows
from .opportunity_rows import TABLE, RowError, check_rows
from .post_columns import LOG_COLUMNS, LOG_SELECT, LOG_SETTINGS, LOG_STRUCTURE, store_table
from .posted_json import as_rows, decode_log

log = logging.getLogger(__name__)

SPOOL_SUFFIX = ".posted"                    # the spool folder beside an embedded store's folder
LOG_SUFFIX = ".jsonl"                       # a log file: one posted row's JSON a line
INSERT_INTERVAL_S = 0.25                    # the background insert's pace: few, large parts
INSERT_ROWS = EMBEDDED_STREAM_ROWS_MAX      # rows waiting that start an insert before the interval ends
RETRY_S = 1.0                               # wait after a failed insert
HANDOVER_S = 1e-3                           # store_table's pause after each column (the GIL to the loop)


def post_spool_dir(dsn) -> Path | None:
    """Where the posts to an embedded store on disk wait for their insert; None for a store in
    memory (nothing outlives its process) or a ClickHouse server (other writers: posts are
    inserted before they are answered)."""
    if not dsn.embedded or not dsn.path:
        return None
    path = Path(dsn.path)
    return path.with_name(path.name + SPOOL_SUFFIX)


def read_log(path: Path) -> tuple[list, int]:
    """The rows (posted_json.py ``PostedRow``s) of a log file, checked as posted rows, and how many
    lines were skipped (cut short by a crash, or refused by the checks): in one msgspec pass when
    every line passes, else line by line (``check_rows`` says what is wrong with a line)."""
    data = path.read_bytes()
    rows = decode_log(data)
    if rows is not None:
        return rows, 0
    rows, skipped = [], 0
    for at, line in enumerate(data.splitlines()):
        try:
            rows += as_rows(check_rows([orjson.loads(line)]).rows)
        except (orjson.JSONDecodeError, RowError, StoreError) as e:
            skipped += 1
            log.warning("%s line %d is not a posted row, skipped: %s", path, at + 1, e)
    return rows, skipped


class PostSpool:
    """``append(items)`` logs a group's new rows (their JSON); a thread inserts them later.

    ``write_lock`` is held around each use of ``store`` (the connection the posts share);
    ``after_insert`` runs on the spool's thread after each insert (the id set's growth)."""

    def __init__(self, store, directory: Path, write_lock: threading.Lock, after_insert=None):
        self.dir = Path(directory)
        self._after_insert = after_insert           # called on the spool's thread after each insert
        self._store, self._write_lock = store, write_lock
        self._fd: int | None = None                 # the log file appended to
        self._path: Path | None = None
        self._size = 0                              # its length: where a failed write is cut back to
        self._next = self._first_number()
        self._closed: list[Path] = []               # closed log files, not yet taken by an insert
        self._pending = 0                           # rows logged, not yet inserted
        self._cond = threading.Condition(threading.Lock())     # (never re-entered)
        self._closing = False
        self._thread: threading.Thread | None = None
        self.inserts = 0                # store inserts of posted rows
        self.failures = 0               # inserts that failed (each tried again)
        self._failures_seen = 0

    def _first_number(self) -> int:
        try:
            return 1 + max((int(p.stem) for p in self.dir.glob("*" + LOG_SUFFIX) if p.stem.isdigit()), default=0)
        except OSError:
            return 1

    def replay(self) -> None:
        """Insert what an earlier process logged and did not insert (and the Arrow files an
        earlier version spooled). Call before the first post."""
        if not self.dir.is_dir():
            return
        for p in self.dir.glob(".*.tmp"):           # an earlier version's unfinished writes: never answered
            p.unlink(missing_ok=True)
        logs = sorted(self.dir.glob("*" + LOG_SUFFIX), key=lambda p: (len(p.stem), p.stem))
        with self._write_lock:
            read, inserted, skipped = self._insert_missing(logs)
            for p in logs:
                p.unlink()
            if logs:
                log.warning("posted rows logged by an earlier server: %d files, %d rows inserted, %d already stored, "
                            "%d lines skipped", len(logs), inserted, read - inserted, skipped)
            if any(self.dir.glob("*.arrow")):       # an earlier version's spool files
                stats = Spool(self.dir, target=self._store.dsn).flush(self._store)
                log.warning("posted rows spooled by an earlier server: %d files inserted (%d rows, %d already "
                            "stored), %d left, %d set aside", stats.files, stats.rows_inserted, stats.rows_skipped,
                            stats.files_left, len(stats.rejected))

    def append(self, items: list[bytes]) -> None:
        """Log rows (``items``: their JSON; written, not fsynced, when this returns) for the next
        insert. A failed write keeps nothing of them (StoreError)."""
        data = b"\n".join([*items, b""])        # (one copy of the rows: ``+ b"\n"`` would be a second)
        with self._cond:
            try:
                self._write(data)
            except OSError as e:        # (a full disk): the posts get 503, nothing of the group kept
                raise StoreError(f"the post spool {self.dir} cannot be written: {e.strerror or e}") from None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="post-inserts", daemon=True)
                self._thread.start()
            self._pending += len(items)
            if self._pending >= INSERT_ROWS or self._pending == len(items):
                self._cond.notify()

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._path = self.dir / f"{self._next}{LOG_SUFFIX}"
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._size = os.fstat(self._fd).st_size     # (the file's length, kept here: no seek a group)
            self._next += 1
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            # a part written would join the next group's first line: cut it off, and start a new file
            # for the next group all the same (should the cut fail too, the part ends that file)
            try:
                os.ftruncate(self._fd, self._size)
            finally:
                self._close_file()
            raise
        self._size += len(data)

    def _close_file(self) -> None:
        """Close the log file appended to; its rows wait in _pending (caller holds _cond)."""
        if self._fd is not None:
            os.close(self._fd)
            self._closed.append(self._path)
            self._fd = self._path = None

    def pending_rows(self) -> int:
        with self._cond:
            return self._pending

    def wait_inserted(self) -> None:
        """Wait until every row logged so far is inserted (or a try failed)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._pending or self.failures > self._failures_seen)
            self._failures_seen = self.failures

    def close(self) -> None:
        """Insert what waits, then stop the thread (what cannot be inserted stays logged)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._cond:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _run(self) -> None:
        last = float("-inf")        # the first insert goes at once: a lone post waits for none
        retry = False               # the last try failed: only the rows the store lacks go in
        files, taken = [], 0        # the log files of the next insert, and their rows
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                if not self._pending:
                    return
                # gather until the interval since the last insert ends (a lone post waits at most that)
                self._cond.wait_for(lambda: self._closing or self._pending >= INSERT_ROWS,
                                    timeout=max(0.0, last + (RETRY_S if retry else INSERT_INTERVAL_S) - time.monotonic()))
                # the file appended to is closed: every row logged so far is in the files taken
                self._close_file()
                files += self._closed
                self._closed = []
                taken = self._pending
                closing = self._closing
            last = time.monotonic()
            try:
                with self._write_lock:
                    if retry:
                        self._insert_missing(files)
                    else:
                        for path in files:
                            insert_log(self._store, path)
            except Exception as e:      # noqa: BLE001 - the rows stay logged: tried again, or at the next start
                with self._cond:
                    self.failures += 1
                    self._cond.notify_all()
                retry = True
                log.error("posted rows (%d, answered) could not be inserted; they stay in %s and are tried again: %s",
                          taken, self.dir, e)
                if closing:
                    return
                continue
            retry = False
            self.inserts += 1
            with self._cond:
                self._pending -= taken
                self._cond.notify_all()
            taken = 0
            for path in files:
                path.unlink(missing_ok=True)
            files = []
            if self._after_insert is not None:
                try:
                    self._after_insert()
                except Exception:       # noqa: BLE001 - an extra: the insert itself is done
                    log.exception("after a posted rows' insert")

    def _insert_missing(self, files: list[Path]) -> tuple[int, int, int]:
        """The rows of ``files`` the store lacks, checked again, in one insert: after a failed try
        (which may have inserted some files), or at a restart. (Rows read, inserted, lines skipped.)"""
        rows, skipped = [], 0
        for path in files:
            got, bad = read_log(path)
            rows += got
            skipped += bad
        inserted = 0
        if rows:
            data = missing_rows(self._store, TABLE, store_table(rows, pause_s=HANDOVER_S))
            if data.num_rows:
                self._store.insert_arrow(TABLE, data)
            inserted = data.num_rows
        return len(rows), inserted, skipped


def insert_log(store, path: Path) -> None:
    """Insert a log file's rows (our own JSON lines, each checked when posted): the store reads the
    file itself (``Store.insert_file``), parsing and converting without the GIL, so the event loop
    keeps it while the store works. A path file() would read as a glob goes the Arrow way."""
    if not file_path_plain(path):
        store.insert_arrow(TABLE, store_table(read_log(path)[0], pause_s=HANDOVER_S))
        return
    store.insert_file(TABLE, LOG_COLUMNS, LOG_SELECT, path, "JSONEachRow", LOG_STRUCTURE, LOG_SETTINGS)
