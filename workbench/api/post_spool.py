"""Posted rows answered once spooled, inserted into an embedded store in the background.

An embedded store's insert costs milliseconds of CPU whatever its size, and every part it
writes is merged again later in the store's background threads; a post answered only after
its group's insert waited for that insert (and for the one before it), and many small groups
made many small parts to merge. Here a group's new rows are written to a file of the store's
spool (store/spool.py: an Arrow IPC file, complete once renamed) and the posts are answered;
a thread inserts everything spooled since its last insert at most every ``INSERT_INTERVAL_S``
(sooner when ``INSERT_ROWS`` rows wait), one statement for all of it, then removes those
files. So an insert serves hundreds of posts and the store writes few, large parts.

What an answered post promises is what a chDB insert promised: the file is written but not
fsynced (chDB does not fsync its parts either), so the rows survive a crash of the server's
process, not a power loss or a crash of the machine. The next server on the same store
inserts the files left (``replay``, before its first post: ``Spool.flush`` keeps only the
rows whose ids the store lacks, so a crash between an insert and the removal of its files
doubles nothing). Idempotence and reads do not wait for the insert: the ids are in the
posts' id set (seen_ids.py) and the rows in the GET memory and the WebSocket when the post
is answered. A failed insert is logged and tried again (only the rows the store lacks);
the files stay until a try succeeds, or for the next start.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pyarrow as pa

from ..errors import StoreError
from ..store import Spool
from ..store.clickhouse import EMBEDDED_STREAM_ROWS_MAX
from ..store.spool import missing_rows
from .opportunity_rows import TABLE

log = logging.getLogger(__name__)

SPOOL_SUFFIX = ".posted"                    # the spool folder beside an embedded store's folder
INSERT_INTERVAL_S = 0.25                    # the background insert's pace: few, large parts
INSERT_ROWS = EMBEDDED_STREAM_ROWS_MAX      # rows waiting that start an insert before the interval ends
RETRY_S = 1.0                               # wait after a failed insert


def post_spool_dir(dsn) -> Path | None:
    """Where the posts to an embedded store on disk wait for their insert; None for a store in
    memory (nothing outlives its process) or a ClickHouse server (other writers: posts are
    inserted before they are answered)."""
    if not dsn.embedded or not dsn.path:
        return None
    path = Path(dsn.path)
    return path.with_name(path.name + SPOOL_SUFFIX)


class PostSpool:
    """``append(table)`` spools a group's new rows (conformed); a thread inserts them later.

    ``write_lock`` is held around each use of ``store`` (the connection the posts share)."""

    def __init__(self, store, directory: Path, write_lock: threading.Lock):
        self.spool = Spool(directory, target=store.dsn)
        self._store, self._write_lock = store, write_lock
        self._pending: list[tuple[Path, pa.Table]] = []     # spooled, not yet inserted, in order
        self._pending_rows = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.inserts = 0                # store inserts of posted rows
        self.failures = 0               # inserts that failed (each tried again)
        self._failures_seen = 0

    def replay(self):
        """Insert what an earlier process spooled and did not insert; drop its unfinished writes
        (hidden ``.tmp`` files: their posts were never answered). Call before the first post."""
        d = self.spool.dir
        if not d.is_dir():
            return None
        for p in d.glob(".*.tmp"):
            p.unlink(missing_ok=True)
        with self._write_lock:
            stats = self.spool.flush(self._store)
        if stats.files or stats.errors or stats.rejected:
            log.warning("posted rows spooled by an earlier server: %d files inserted (%d rows, %d already stored), "
                        "%d left, %d set aside", stats.files, stats.rows_inserted, stats.rows_skipped,
                        stats.files_left, len(stats.rejected))
        return stats

    def append(self, table: pa.Table) -> None:
        """Spool ``table`` (written, not fsynced, when this returns) for the next insert."""
        try:
            path = self.spool.write(TABLE, table, "", fsync=False, compression=None)
        except OSError as e:            # (a full disk): the posts get 503, nothing of the group kept
            raise StoreError(f"the post spool {self.spool.dir} cannot be written: {e.strerror or e}") from None
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="post-inserts", daemon=True)
                self._thread.start()
            self._pending.append((path, table))
            self._pending_rows += table.num_rows
            if self._pending_rows >= INSERT_ROWS or len(self._pending) == 1:
                self._cond.notify()

    def pending_rows(self) -> int:
        with self._cond:
            return self._pending_rows

    def wait_inserted(self) -> None:
        """Wait until every row spooled so far is inserted (or a try failed)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._pending or self.failures > self._failures_seen)
            self._failures_seen = self.failures

    def close(self) -> None:
        """Insert what waits, then stop the thread (what cannot be inserted stays spooled)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        last = float("-inf")        # the first insert goes at once: a lone post waits for none
        retry = False               # the last try failed: only the rows the store lacks go in
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                if not self._pending:
                    return
                # gather until the interval since the last insert ends (a lone post waits at most that)
                self._cond.wait_for(lambda: self._closing or self._pending_rows >= INSERT_ROWS,
                                    timeout=max(0.0, last + (RETRY_S if retry else INSERT_INTERVAL_S) - time.monotonic()))
                taken = list(self._pending)
                closing = self._closing
            last = time.monotonic()
            data = pa.concat_tables([t for _, t in taken]) if len(taken) > 1 else taken[0][1]
            try:
                with self._write_lock:
                    if retry:
                        data = missing_rows(self._store, TABLE, data)
                    self._store.insert_arrow(TABLE, data)
            except Exception as e:      # noqa: BLE001 - the rows stay spooled: tried again, or at the next start
                with self._cond:
                    self.failures += 1
                    self._cond.notify_all()
                retry = True
                log.error("posted rows (%d, answered) could not be inserted; they stay in %s and are tried again: %s",
                          data.num_rows, self.spool.dir, e)
                if closing:
                    return
                continue
            retry = False
            self.inserts += 1
            with self._cond:
                del self._pending[:len(taken)]
                self._pending_rows -= sum(t.num_rows for _, t in taken)
                self._cond.notify_all()
            for path, _ in taken:
                path.unlink(missing_ok=True)
