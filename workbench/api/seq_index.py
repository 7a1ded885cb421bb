"""Every opportunity the server numbered: sequence -> (event time, opportunity id), in numpy.

The opportunities channel keeps only its newest items in memory (hub.py); this index keeps
25 bytes per item for every item since the server started, so that an old sequence number
still maps to a position in the store (the row's time and id, the keyset the store is read
by) and a time maps to a sequence number. ``engine`` marks items the engine made (their JSON
lacks the columns the store writer adds, such as ``run_id``), as opposed to posted rows.
"""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa

CHUNK = 1 << 16                     # items a chunk (1.6 MB)
_TEXT_SZ = 36                       # a UUID's canonical text: 8-4-4-4-12 hex digits
_DASHES = (8, 13, 18, 23)
_DIGITS = np.array([i for i in range(_TEXT_SZ) if i not in _DASHES])
_NIBBLE = np.full(256, 255, np.uint8)   # hex digit byte -> its value; 255: not a hex digit
for _v, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _NIBBLE[ord(chr(_c).upper())] = _v
del _v, _c


def uuid_bytes(ids) -> np.ndarray:
    """The 16 bytes (``V16``) of each UUID text in ``ids`` (a list of str or an Arrow string array).
    Canonical text (what the engine and the store write) is read in one vectorized pass over the
    array's bytes, with no Python object per id; anything else goes through ``uuid.UUID`` (which
    also takes braces, a ``urn:uuid:`` prefix or no dashes, and raises ValueError on bad text)."""
    if isinstance(ids, list) and all(len(i) == _TEXT_SZ and i[8] == i[13] == i[18] == i[23] == "-" for i in ids):
        # a few texts of the canonical shape: hex decoded whole, with no Arrow array made for them
        try:
            raw = canonical_uuid_bytes(ids)
        except ValueError:
            raw = None
        if raw is not None and len(raw) == len(ids):        # (fromhex skips spaces: then the length tells)
            return raw
    arr = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if not isinstance(arr, pa.Array):
        arr = pa.array(arr, pa.string())
    n = len(arr)
    if n and arr.null_count == 0 and pa.types.is_string(arr.type):
        off = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset:arr.offset + n + 1]
        if off[-1] - off[0] == n * _TEXT_SZ and np.all(np.diff(off) == _TEXT_SZ):
            text = np.frombuffer(arr.buffers()[2], np.uint8)[off[0]:off[-1]].reshape(n, _TEXT_SZ)
            nib = _NIBBLE[text[:, _DIGITS]]
            if np.all(text[:, _DASHES] == ord("-")) and not np.any(nib == 255):
                return np.ascontiguousarray((nib[:, 0::2] << 4) | nib[:, 1::2]).view("V16").ravel()
    return np.frombuffer(b"".join(uuid.UUID(i).bytes for i in arr.to_pylist()), "V16")


def canonical_uuid_bytes(ids: list[str]) -> np.ndarray:
    """``uuid_bytes`` of ids known to be canonical text (posted rows: their check made them so), with
    no look at each id first."""
    return np.frombuffer(bytes.fromhex("".join(ids).replace("-", "")), "V16")


class SeqIndex:
    """Items in chunks of ``CHUNK``: an append never reallocates what is held. (Arrays doubled in
    place copied the whole index on the event loop at each doubling: tens of milliseconds at a
    million items, under posts.)"""

    def __init__(self):
        self.n = 0
        self._ts: list[np.ndarray] = []         # int64 event times, CHUNK a chunk
        self._id: list[np.ndarray] = []         # V16 ids
        self._engine: list[np.ndarray] = []     # bool: the engine made it

    def append(self, ts_ns, ids, engine: bool) -> None:
        """Items ``n``.. : their event times (ns) and opportunity ids (UUID text: a list of str or an
        Arrow string array; or their 16 bytes already, a ``V16`` array)."""
        k = len(ids)
        if not k:
            return
        ts = np.asarray(ts_ns, np.int64)
        raw = ids if isinstance(ids, np.ndarray) and ids.dtype == np.dtype("V16") else uuid_bytes(ids)
        done = 0
        while done < k:
            at = self.n % CHUNK
            if at == 0:                 # (np.empty: pages are touched as items fill them, not all at once)
                self._ts.append(np.empty(CHUNK, np.int64))
                self._id.append(np.empty(CHUNK, "V16"))
                self._engine.append(np.empty(CHUNK, bool))
            take = min(k - done, CHUNK - at)
            self._ts[-1][at:at + take] = ts[done:done + take]
            self._id[-1][at:at + take] = raw[done:done + take]
            self._engine[-1][at:at + take] = engine
            done += take
            self.n += take

    def _range(self, chunks: list[np.ndarray], lo: int, hi: int) -> np.ndarray:
        """Items ``lo``..``hi - 1`` of one column (a view when they lie in one chunk)."""
        hi = min(hi, self.n)
        if lo >= hi:
            return chunks[0][:0] if chunks else np.zeros(0)
        first, last = lo // CHUNK, (hi - 1) // CHUNK
        if first == last:
            return chunks[first][lo % CHUNK:lo % CHUNK + hi - lo]
        parts = [chunks[first][lo % CHUNK:]] + chunks[first + 1:last] + [chunks[last][:(hi - 1) % CHUNK + 1]]
        return np.concatenate(parts)

    def _held(self, chunks: list[np.ndarray]):
        """Each chunk's items held so far."""
        for j, c in enumerate(chunks):
            yield c[:min(CHUNK, self.n - j * CHUNK)]

    def ts(self, lo: int, hi: int) -> np.ndarray:
        return self._range(self._ts, lo, hi)

    def ids(self, lo: int, hi: int) -> list[str]:
        return [str(uuid.UUID(bytes=bytes(v))) for v in self._range(self._id, lo, hi)]

    def engine(self, lo: int, hi: int) -> np.ndarray:
        return self._range(self._engine, lo, hi)

    def has_ids(self, ids: list[str]) -> np.ndarray:
        """Which of ``ids`` this server numbered."""
        out = np.zeros(len(ids), bool)
        if not ids or not self.n:
            return out
        want = uuid_bytes(ids).view("S16")
        for held in self._held(self._id):
            out |= np.isin(want, held.view("S16"))
        return out

    def first_at_or_after(self, t_ns: int) -> int:
        """Sequence of the first item whose event time is at or after ``t_ns`` (``n`` if none)."""
        for j, held in enumerate(self._held(self._ts)):
            hit = np.flatnonzero(held >= t_ns)
            if hit.size:
                return j * CHUNK + int(hit[0])
        return self.n
