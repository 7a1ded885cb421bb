"""The opportunity ids an embedded store holds, in memory: POST's idempotence without a scan.

POST /v1/opportunities skips rows whose ``opportunity_id`` the store holds. Asking the store
means reading the whole id column (the table is ordered by type and time, not by id), a cost
that grows with the table and came to dominate a group commit. An embedded chDB folder is open
in one process only, this server, so every id it will ever hold is one that was there when the
server first posted, one the server's posts inserted, or one the server's engine run wrote:
this set is read from the store once (``SELECT toString(opportunity_id)``) and then kept up to
date by the posts and the run, and a look-up is a binary search per id. A ClickHouse server may
have other writers, so store_access.py asks the store for those instead.

Ids are kept as their canonical text (lower-case, hyphenated: ``str(uuid.UUID(...))``), the
form every checked row and the engine carry, as fixed-width bytes in one sorted numpy array,
plus a Python set of the ids added since, merged into the array when it grows past a fraction
of it: a look-up is one binary search of the array and one set test per id (a list of small
sorted arrays cost a binary search call per array and per group, and held dozens).
"""

from __future__ import annotations

import threading

import numpy as np

ID_BYTES = 36                   # canonical UUID text
MERGE_FRACTION = 8              # the recent ids are merged into the main array past 1/8 of its size


def id_array(ids) -> np.ndarray:
    """Canonical id texts (a list of str, or an Arrow string array) as a fixed-width bytes array."""
    if hasattr(ids, "to_numpy"):
        ids = ids.to_numpy(zero_copy_only=False)
    return np.asarray(ids, dtype=f"S{ID_BYTES}")


class SeenIds:
    """A set of canonical ids: ``contains`` (vectorised), ``add``. Safe to use from two threads."""

    def __init__(self, ids: np.ndarray | None = None):
        self._main = np.unique(ids) if ids is not None and len(ids) else np.zeros(0, f"S{ID_BYTES}")
        self._recent: set[bytes] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._main) + len(self._recent)     # (an id added again counts twice until merged)

    @staticmethod
    def _in(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
        if not len(sorted_ids):
            return np.zeros(len(ids), bool)
        at = np.searchsorted(sorted_ids, ids)
        at[at == len(sorted_ids)] = 0
        return sorted_ids[at] == ids

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` (``id_array``) are in the set."""
        with self._lock:    # the pair as one merge left it (a merge swaps both; an add only grows the set)
            main, recent = self._main, self._recent
        hit = self._in(main, ids)
        if recent:
            hit |= np.fromiter(map(recent.__contains__, ids.tolist()), bool, len(ids))
        return hit

    def add(self, ids: np.ndarray, merge: bool = True) -> None:
        """Add ``ids``; ``merge`` lets this call fold the recent ids into the main array (``merge``:
        never on the event loop)."""
        if not len(ids):
            return
        with self._lock:
            self._recent.update(ids.tolist())
        if merge:
            self.merge()

    def merge(self) -> None:
        """Fold the recent ids into the main array once they pass 1/MERGE_FRACTION of it: a copy of
        the array, so run from a worker thread (the posts', or the post spool's after an insert)."""
        with self._lock:
            if len(self._recent) * MERGE_FRACTION <= len(self._main):
                return
            taken, main = set(self._recent), self._main
        recent = np.sort(np.array(list(taken), dtype=f"S{ID_BYTES}"))
        merged = np.insert(main, np.searchsorted(main, recent), recent)     # one pass: both are sorted
        with self._lock:
            if self._main is main:          # (one merge at a time; ids added meanwhile stay recent)
                self._main = merged
                self._recent = self._recent - taken
