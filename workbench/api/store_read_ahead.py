"""Store reads for GET pages that read ahead: a cursor walk costs a query every few pages.

A page the store answers costs one query (store_access.py ``opportunity_rows``), and most of that
query is ClickHouse's own: parsing and planning a SELECT of the table's every column, whatever the
rows. A client that walks a filter's pages with their cursors (a notebook reading a day back, the
tests' walks) paid it for every page. So a store read asks for at least ``READ_AHEAD_ROWS`` rows
(several pages' unless the pages are that large) and keeps them under the filter; the next page's
read, whose cursor lies inside them, is answered from those rows when they hold the page's rows (or
the store has no more).

Kept rows are the store's as it was at the read: they serve only while memory's data version is
the one they were read at (recent.py: every row that enters memory moves it, as for the cached
pages). Rows the server inserts enter memory first, and a page merges memory's rows into the
store's; the store changes by another process only on a ClickHouse server, and cached pages
already wait for the next row to see those. While the run's rows wait outside memory (recent.py
``hold``: its id is not known yet) the store gets rows the version does not count, so no read is
kept or used then (``version`` None).
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

import pyarrow as pa

from .opportunity_rows import ID

READ_AHEAD_ROWS = 1_024     # rows a store read asks for at least (a query's cost hardly grows with them)
FILTERS_KEPT = 16           # filters whose read-ahead rows are kept at once (a few MB at most)

Key = tuple                 # (timestamp_ns, opportunity_id)


@dataclass
class _Read:
    version: int
    after: Key | None       # the read's start (its rows' keys are greater)
    keys: list[Key]         # its rows' keys, in order
    table: pa.Table
    complete: bool          # the store held no more rows of the filter after these


class StoreReadAhead:
    def __init__(self, read_rows):
        """``read_rows(f, n, after)``: up to ``n`` store rows of filter ``f`` after ``after``, in key
        order (store_access.py ``opportunity_rows``)."""
        self._read_rows = read_rows
        self._reads: dict[tuple, _Read] = {}
        self._lock = threading.Lock()       # (pages are read on worker threads)
        self.queries = 0
        self.hits = 0

    def rows(self, fkey: tuple, f, n: int, after: Key | None, version: int | None) -> pa.Table:
        """The store's first ``n`` rows of filter ``f`` (``fkey``: its hashable form) after ``after``,
        as of data version ``version`` (None: the store's now, read alone)."""
        if version is None:
            self.queries += 1
            return self._read_rows(f, n, after)
        with self._lock:
            got = self._reads.get(fkey)
        if got is not None and got.version == version and _within(got.after, after):
            start = 0 if after is None else bisect.bisect_right(got.keys, after)
            if got.complete or len(got.keys) - start >= n:
                self.hits += 1
                return got.table.slice(start, n)
        ask = max(n, READ_AHEAD_ROWS)
        table = self._read_rows(f, ask, after)
        self.queries += 1
        if ask > n:
            keys = list(zip(table.column("timestamp_ns").to_pylist(), table.column(ID).to_pylist()))
            with self._lock:        # (reads of an older data version serve no page again)
                kept = {k: r for k, r in self._reads.items() if r.version == version}
                if len(kept) >= FILTERS_KEPT:
                    kept = {}
                kept[fkey] = _Read(version, after, keys, table, table.num_rows < ask)
                self._reads = kept
        return table.slice(0, n)


def _within(start: Key | None, after: Key | None) -> bool:
    """Whether a read from ``start`` holds every row after ``after`` it has room for."""
    return start is None or (after is not None and after >= start)
