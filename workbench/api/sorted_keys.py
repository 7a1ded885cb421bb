"""The GET memory's keys (timestamp_ns, opportunity_id, ...) in order, as sorted chunks.

recent.py kept one sorted list of up to 200,000 keys and made a new one for every batch of rows
(a page scanned on a worker thread keeps the list it took, so the list is never changed in
place). When posted keys fall before the newest held key (posts of one time whose ids
interleave, as a load test's do), each batch re-sorted the whole tail of memory on the event
loop: tens of milliseconds per group of posts, which every GET then waited behind. Here the
keys are chunks of at most ``CHUNK`` keys with each chunk's greatest key beside it; a batch
copies only the chunks its keys fall into (and the short list of chunks), so an insert costs
the size of a chunk, not of memory. A ``SortedKeys`` is never changed once made: ``add`` and
``drop_first`` return a new one that shares the untouched chunks.

A chunk is a tuple, not a list. A key holds only numbers and a string, so the cycle collector
stops tracking it at its first collection, and then a tuple of keys too; a list stays tracked,
and every full collection walked each key of every chunk (cache misses for a full memory).

A key may carry more after its time and id (recent.py: the row's place); no two keys held share a
time and id, so what follows them never decides an order, and a start is a (time, id).
"""

from __future__ import annotations

import bisect
from itertools import islice

CHUNK = 2_048           # keys per chunk at most: a batch copies the chunks it touches

Key = tuple             # (timestamp_ns, opportunity_id, ...)
PAST = float("inf")     # (t, id, PAST) is past every key (t, id, ...) and before every later one


class SortedKeys:
    __slots__ = ("chunks", "maxes", "n")

    def __init__(self, chunks: list[tuple[Key, ...]] | None = None, maxes: list[Key] | None = None,
                 n: int | None = None):
        """``maxes`` and ``n``, when the caller knows them (each chunk's last key, the keys in all):
        walking a full memory's chunks for them cost more than the rest of a small batch's add."""
        self.chunks = chunks or []
        self.maxes = [c[-1] for c in self.chunks] if maxes is None else maxes
        self.n = sum(map(len, self.chunks)) if n is None else n

    def __len__(self) -> int:
        return self.n

    def last(self) -> Key | None:
        return self.chunks[-1][-1] if self.chunks else None

    def add(self, new: list[Key]) -> "SortedKeys":
        """A new SortedKeys holding these keys and ``new`` (sorted, none of them held already)."""
        if not new:
            return self
        chunks, maxes = list(self.chunks), self.maxes
        if not chunks:
            return SortedKeys(_cut(new))
        if new[0] > maxes[-1]:      # after every key held (rows arriving in time order): append, no search
            appended = len(chunks[-1]) < CHUNK
            start = len(chunks) - 1 if appended else len(chunks)
            chunks[start:] = parts = _cut([*chunks[-1], *new] if appended else new)
            return SortedKeys(chunks, maxes[:start] + [c[-1] for c in parts], self.n + len(new))
        # which chunk each new key joins: the first whose greatest key is above it (or the last)
        parts: dict[int, list[Key]] = {}
        j = 0
        last = len(maxes) - 1
        for k in new:
            j = min(bisect.bisect_left(maxes, k, j), last)
            parts.setdefault(j, []).append(k)
        for j in sorted(parts, reverse=True):       # from the back: a split shifts only later indices
            merged = [*chunks[j], *parts[j]]
            merged.sort()                           # two sorted runs: one merge pass
            chunks[j:j + 1] = _cut(merged)
        return SortedKeys(chunks, n=self.n + len(new))

    def drop_first(self, count: int) -> tuple["SortedKeys", list[Key]]:
        """A new SortedKeys without the ``count`` smallest keys, and those keys in order."""
        gone: list[Key] = []
        chunks = self.chunks
        whole = 0                   # chunks dropped whole
        while count > 0 and whole < len(chunks) and len(chunks[whole]) <= count:
            gone += chunks[whole]
            count -= len(chunks[whole])
            whole += 1
        chunks = chunks[whole:]
        if count > 0 and chunks:    # the rest from the first chunk left (its last key stays)
            gone += chunks[0][:count]
            chunks[0] = chunks[0][count:]
        return SortedKeys(chunks, self.maxes[whole:], self.n - len(gone)), gone

    def iter_from(self, start: tuple | None, inclusive: bool = True):
        """The keys from ``start`` (a time and id) on, in order: with the key of that time and id
        when ``inclusive``. (A key (t, id, ...) is above (t, id), and below (t, id, PAST).)"""
        if not self.chunks:
            return iter(())
        if start is None:
            j, i = 0, 0
        else:
            if not inclusive:
                start = (*start, PAST)
            j = bisect.bisect_left(self.maxes, start)
            if j == len(self.chunks):
                return iter(())
            i = bisect.bisect_left(self.chunks[j], start)
        return self._walk(j, i)

    def _walk(self, j: int, i: int):
        chunks = self.chunks
        yield from islice(chunks[j], i, None)
        for c in chunks[j + 1:]:
            yield from c

    def __iter__(self):
        return self._walk(0, 0) if self.chunks else iter(())


def _cut(keys: list[Key]) -> list[tuple[Key, ...]]:
    """Sorted keys as chunks of at most ``CHUNK``."""
    return [tuple(keys[i:i + CHUNK]) for i in range(0, len(keys), CHUNK)]
