"""The opportunity ids an embedded store holds, in memory: POST's idempotence without a scan.

POST /v1/opportunities skips rows whose ``opportunity_id`` the store holds. Asking the store
means reading the whole id column (the table is ordered by type and time, not by id), a cost
that grows with the table and came to dominate a group commit. An embedded chDB folder is open
in one process only, this server, so every id it will ever hold is one that was there when the
server first posted, one the server's posts inserted, or one the server's engine run wrote:
this set is read from the store once (``SELECT toString(opportunity_id)``) and then kept up to
date by the posts and the run. A ClickHouse server may have other writers, so store_access.py
asks the store for those instead.

The set is an open-addressing hash table of the ids' 128 bits (two uint64 arrays, linear
probing), looked up and added to by jitted loops that let the GIL go: a look-up or an add costs
a hash and a probe or two per id, whatever the set's size and whatever the ids look like. The
earlier sorted array of the ids' text, with a Python set of the ids added since merged into it
now and then, compared texts through numpy's generic string routine: ids that share a long
prefix (a counter in the tail, as a load test's are; time-ordered UUIDs) made each comparison
long, and a merge into 800,000 ids held the GIL for up to half a second of the event loop's
time. The table grows (twice the slots) on the post spool's thread before it is half full
(``grow``), or, should that thread be behind, on the add that passes three quarters.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

ID_BYTES = 36                   # canonical UUID text
SLOTS_MIN = 1 << 12


def id_array(ids) -> np.ndarray:
    """Canonical id texts (a list of str, or an Arrow string array) as a fixed-width bytes array."""
    if hasattr(ids, "to_numpy"):
        ids = ids.to_numpy(zero_copy_only=False)
    return np.asarray(ids, dtype=f"S{ID_BYTES}")


@njit(cache=True, nogil=True)
def _key(text):
    """The 128 bits of a canonical UUID text (36 bytes, lower-case hex): (high, low)."""
    hi = np.uint64(0)
    lo = np.uint64(0)
    k = 0
    for i in range(36):
        if i == 8 or i == 13 or i == 18 or i == 23:
            continue
        c = text[i]
        v = np.uint64(c - 48) if c <= 57 else np.uint64((c | 32) - 87)
        if k < 16:
            hi = (hi << np.uint64(4)) | v
        else:
            lo = (lo << np.uint64(4)) | v
        k += 1
    return hi, lo


@njit(cache=True, nogil=True)
def _slot(hi, lo, mask):
    """A mixed hash (splitmix64's finaliser): ids that differ only in a counter spread out."""
    x = hi ^ (lo * np.uint64(0x9E3779B97F4A7C15))
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return np.int64(x & mask)


@njit(cache=True, nogil=True)
def _find(tab, hi, lo):
    """The slot of (hi, lo), not all zero, in ``tab`` (slots x 2 words), or of the empty slot where
    it would go; and whether it is there."""
    last = tab.shape[0] - 1
    i = _slot(hi, lo, np.uint64(last))
    while True:
        h = tab[i, 0]
        g = tab[i, 1]
        if h == hi and g == lo:
            return i, True
        if h == 0 and g == 0:
            return i, False
        i = (i + 1) & last


@njit(cache=True, nogil=True)
def _put(tab, hi, lo):
    """Insert (hi, lo), not all zero; whether it was new."""
    i, held = _find(tab, hi, lo)
    if not held:
        tab[i, 0] = hi
        tab[i, 1] = lo
    return not held


@njit(cache=True, nogil=True)
def _add(tab, texts):
    """Add each id (rows of 36 bytes); how many were new, and whether the nil id was among them (it is
    left to the caller)."""
    new = 0
    nil = False
    for j in range(texts.shape[0]):
        hi, lo = _key(texts[j])
        if hi == 0 and lo == 0:
            nil = True
        elif _put(tab, hi, lo):
            new += 1
    return new, nil


@njit(cache=True, nogil=True)
def _contains(tab, texts, nil, out):
    for j in range(texts.shape[0]):
        hi, lo = _key(texts[j])
        out[j] = nil if hi == 0 and lo == 0 else _find(tab, hi, lo)[1]


@njit(cache=True, nogil=True)
def _rehash(old, tab):
    for i in range(old.shape[0]):
        if old[i, 0] != 0 or old[i, 1] != 0:
            _put(tab, old[i, 0], old[i, 1])


def _texts(ids: np.ndarray) -> np.ndarray:
    """``id_array``'s ids as rows of 36 bytes (no copy)."""
    return np.ascontiguousarray(ids).view(np.uint8).reshape(len(ids), ID_BYTES)


def _slots_for(n: int) -> int:
    return max(SLOTS_MIN, 1 << (2 * n - 1).bit_length()) if n else SLOTS_MIN     # at most half full


class SeenIds:
    """A set of canonical ids: ``contains`` (vectorised), ``add``. Safe to use from two threads."""

    def __init__(self, ids: np.ndarray | None = None):
        n = len(ids) if ids is not None else 0
        self._tab = np.zeros((_slots_for(n), 2), np.uint64)     # an id's two words side by side: one cache line
        self._n = 0                 # ids held in the table
        self._nil = False           # the nil id (all zero bits: an empty slot's value) is held
        # while the table grows (on another thread, copying it unlocked) it is only read: the ids added
        # meanwhile wait here, looked up by a set, and go into the grown table with the swap
        self._growing = False
        self._waiting: list[np.ndarray] = []
        self._waiting_set: set[bytes] = set()
        self._lock = threading.Lock()
        self._grow_lock = threading.Lock()          # one growth at a time
        if n:
            self._n, self._nil = _add(self._tab, _texts(ids))

    def __len__(self) -> int:
        return self._n + self._nil + len(self._waiting_set)     # (an id added again while growing: twice)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` (``id_array``) are in the set."""
        out = np.zeros(len(ids), bool)
        if len(ids):
            with self._lock:
                _contains(self._tab, _texts(ids), self._nil, out)
                if self._waiting_set:
                    out |= np.fromiter(map(self._waiting_set.__contains__, ids.tolist()), bool, len(ids))
        return out

    def add(self, ids: np.ndarray, grow: bool = True) -> None:
        """Add ``ids``; ``grow`` lets this call grow the table ahead of need (``grow``: never on the
        event loop: a growth allocates and fills a table twice the size)."""
        if not len(ids):
            return
        with self._lock:
            if self._growing:
                self._waiting.append(ids)
                self._waiting_set.update(ids.tolist())
                return
            if (self._n + len(ids)) * 4 <= len(self._tab) * 3:
                new, nil = _add(self._tab, _texts(ids))
                self._n += new
                self._nil = self._nil or nil
                ids = None
        if ids is not None:         # past three quarters: grow here first, on whatever thread adds
            self._grow(len(ids))
            self.add(ids, grow=False)
        elif grow:
            self.grow()

    def half_full(self) -> bool:
        """Whether ``grow`` would grow the table now."""
        return self._n * 2 > len(self._tab)

    def grow(self) -> None:
        """Grow the table once it is half full: call off the event loop, after adds."""
        if self.half_full():
            self._grow(0)

    def _grow(self, more: int) -> None:
        """Twice the slots (or more, for ``more`` ids to come). The new table is allocated and
        filled without the lock (a first touch of new memory is slow on some hosts: tens of
        milliseconds for tens of megabytes), while adds wait aside; the lock is held for the
        swap and the ids that waited."""
        with self._grow_lock:
            with self._lock:
                slots = len(self._tab)
                while (self._n + more) * 2 > slots:
                    slots *= 2
                if slots == len(self._tab):
                    return
                old, self._growing = self._tab, True
            tab = None
            try:
                filling = np.zeros((slots, 2), np.uint64)
                _rehash(old, filling)   # (old is only read meanwhile)
                tab = filling
            finally:
                with self._lock:
                    self._growing = False
                    if tab is not None:     # (else the ids that waited stay in the set, still looked up)
                        n = self._n
                        for ids in self._waiting:
                            new, nil = _add(tab, _texts(ids))
                            n += new
                            self._nil = self._nil or nil
                        self._tab, self._n = tab, n
                        self._waiting, self._waiting_set = [], set()


def warm_up() -> None:
    """Load the kernels from numba's cache (compile them, on a first run), so that the first post does
    not wait for them."""
    seen = SeenIds(id_array(["00000000-0000-4000-8000-000000000001"]))
    seen.contains(id_array(["00000000-0000-4000-8000-000000000002"]))
    seen._grow(len(seen._tab))
