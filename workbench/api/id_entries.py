"""The GET memory's map from an opportunity id to its row's place (an int), jitted.

recent.py keeps up to 200,000 rows, and under posts ids come and go in thousands a second: each
group of posts enters its ids and takes out as many evicted ones. A Python dict keyed by the ids'
text paid a few cache misses an id (the slot, the key's string, its hash), and rebuilt itself
whenever the slots its deleted entries left filled it. Here the map is an open-addressing table
of the ids' 128 bits and their entries, three words a slot (linear probing, seen_ids.py's hash),
sized for the memory once, with deletion by backward shift (no deleted slots to fill it); a
group's ids go in or out in one jitted call, and the table holds no Python object.

Ids are canonical UUID text (seen_ids.py ``id_array``): every id memory takes in is (the check,
the engine and the store write it so). An id asked for from outside (``get``) is matched
against the canonical form first, so that no other text reaches the table.
"""

from __future__ import annotations

import re

import numpy as np
from numba import njit

from .seen_ids import _key, _slot, _texts, id_array

_EMPTY = np.uint64(2**64 - 1)       # a slot's entry word when the slot is free (entries are >= 0)
_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SLOTS_MIN = 1 << 10


@njit(cache=True, nogil=True)
def _find(tab, hi, lo):
    """The slot of (hi, lo) in ``tab`` (slots x 3 words: the id's two, its entry), or of the free
    slot where it would go; and whether it is there."""
    last = tab.shape[0] - 1
    i = _slot(hi, lo, np.uint64(last))
    while True:
        if tab[i, 2] == _EMPTY:
            return i, False
        if tab[i, 0] == hi and tab[i, 1] == lo:
            return i, True
        i = (i + 1) & last


@njit(cache=True, nogil=True)
def _put_new(tab, hi, lo, entry):
    """Enter the id with ``entry`` unless it is held (its entry stays); whether it went in."""
    i, held = _find(tab, hi, lo)
    if held:
        return False
    tab[i, 0] = hi
    tab[i, 1] = lo
    tab[i, 2] = entry
    return True


@njit(cache=True, nogil=True)
def _add_new_texts(tab, texts, base, fresh):
    """Enter each id not held yet with the entry ``base`` + its place; ``fresh``: which went in (an id
    held, or met earlier in ``texts``, did not). How many went in."""
    new = 0
    for j in range(texts.shape[0]):
        hi, lo = _key(texts[j])
        fresh[j] = _put_new(tab, hi, lo, np.uint64(base + j))
        new += fresh[j]
    return new


@njit(cache=True, nogil=True)
def _get_texts(tab, texts, out):
    """Each id's entry in ``out`` (-1: not held)."""
    for j in range(texts.shape[0]):
        hi, lo = _key(texts[j])
        i, held = _find(tab, hi, lo)
        out[j] = np.int64(tab[i, 2]) if held else -1


@njit(cache=True, nogil=True)
def _pop_texts(tab, texts, out):
    """Take each id out, its entry in ``out`` (-1: not held); how many were held. A slot freed is
    filled again from the run after it (backward shift), so a probe never crosses a stale slot."""
    mask = tab.shape[0] - 1
    gone = 0
    for j in range(texts.shape[0]):
        hi, lo = _key(texts[j])
        i, held = _find(tab, hi, lo)
        if not held:
            out[j] = -1
            continue
        out[j] = np.int64(tab[i, 2])
        gone += 1
        k = i
        while True:
            k = (k + 1) & mask
            if tab[k, 2] == _EMPTY:
                break
            home = _slot(tab[k, 0], tab[k, 1], np.uint64(mask))
            if ((k - home) & mask) >= ((k - i) & mask):     # its home is at or before the hole: it moves up
                tab[i, 0] = tab[k, 0]
                tab[i, 1] = tab[k, 1]
                tab[i, 2] = tab[k, 2]
                i = k
        tab[i, 2] = _EMPTY
    return gone


@njit(cache=True, nogil=True)
def _rehash(old, tab):
    for i in range(old.shape[0]):
        if old[i, 2] != _EMPTY:
            _put_new(tab, old[i, 0], old[i, 1], old[i, 2])     # (the old table's ids are distinct)


def _table(slots: int) -> np.ndarray:
    tab = np.zeros((slots, 3), np.uint64)
    tab[:, 2] = _EMPTY
    return tab


def _slots_for(n: int) -> int:
    return max(SLOTS_MIN, 1 << (2 * n - 1).bit_length()) if n else SLOTS_MIN     # at most half full


class IdEntries:
    """Canonical id -> entry (an int >= 0). ``expected``: the ids it will hold at most, so that the
    table is made once at its size (it grows, should more come)."""

    __slots__ = ("_tab", "_n")

    def __init__(self, expected: int = 0):
        self._tab = _table(_slots_for(expected))
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add_new(self, ids, base: int) -> np.ndarray:
        """Enter those of ``ids`` not held yet (the first, of an id given twice) with the entry ``base``
        + their place in ``ids``; which went in (a bool array)."""
        texts = _texts(id_array(ids))
        if (self._n + len(texts)) * 2 > len(self._tab):
            self._grow(self._n + len(texts))
        fresh = np.empty(len(texts), np.bool_)
        self._n += _add_new_texts(self._tab, texts, base, fresh)
        return fresh

    def pop_many(self, ids) -> np.ndarray:
        """The entries of ``ids``, taken out (-1 for an id not held)."""
        texts = _texts(id_array(ids))
        out = np.empty(len(texts), np.int64)
        self._n -= _pop_texts(self._tab, texts, out)
        return out

    def entries(self, ids) -> np.ndarray:
        """The entries of ``ids`` (-1 for an id not held)."""
        texts = _texts(id_array(ids))
        out = np.empty(len(texts), np.int64)
        _get_texts(self._tab, texts, out)
        return out

    def get(self, oid: str, default=None):
        """The entry of ``oid`` (any text: only a canonical id can be held), else ``default``."""
        if not isinstance(oid, str) or not _CANONICAL.fullmatch(oid):
            return default
        e = int(self.entries([oid])[0])
        return default if e < 0 else e

    def __getitem__(self, oid: str) -> int:
        e = self.get(oid)
        if e is None:
            raise KeyError(oid)
        return e

    def __contains__(self, oid: str) -> bool:
        return self.get(oid) is not None

    def _grow(self, n: int) -> None:
        tab = _table(_slots_for(n))
        _rehash(self._tab, tab)
        self._tab = tab


def warm_up() -> None:
    """Load the kernels from numba's cache (compile them, on a first run), so that the first rows into
    memory do not wait for them."""
    m = IdEntries()
    m.add_new(["00000000-0000-4000-8000-000000000001"], 2)
    m.entries(["00000000-0000-4000-8000-000000000001"])
    m.pop_many(["00000000-0000-4000-8000-000000000001"])
    m._grow(SLOTS_MIN)
