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

_START = 1 << 12
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
        # a few canonical texts (posted rows): hex decoded whole, with no Arrow array made for them
        try:
            raw = bytes.fromhex("".join(ids).replace("-", ""))
        except ValueError:
            raw = b""
        if len(raw) == 16 * len(ids):       # (fromhex skips spaces: then the length tells)
            return np.frombuffer(raw, "V16")
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


class SeqIndex:
    def __init__(self):
        self.n = 0
        self._ts = np.zeros(_START, np.int64)
        self._id = np.zeros(_START, "V16")
        self._engine = np.zeros(_START, bool)

    def append(self, ts_ns, ids, engine: bool) -> None:
        """Items ``n``.. : their event times (ns) and opportunity ids (UUID text: a list of str or an
        Arrow string array; or their 16 bytes already, a ``V16`` array)."""
        k = len(ids)
        if not k:
            return
        need = self.n + k
        if need > self._ts.shape[0]:
            cap = max(need, 2 * self._ts.shape[0])
            for name in ("_ts", "_id", "_engine"):
                old = getattr(self, name)
                new = np.zeros(cap, old.dtype)
                new[:self.n] = old[:self.n]
                setattr(self, name, new)
        self._ts[self.n:need] = np.asarray(ts_ns, np.int64)
        self._id[self.n:need] = ids if isinstance(ids, np.ndarray) and ids.dtype == self._id.dtype else uuid_bytes(ids)
        self._engine[self.n:need] = engine
        self.n = need

    def ts(self, lo: int, hi: int) -> np.ndarray:
        return self._ts[lo:hi]

    def ids(self, lo: int, hi: int) -> list[str]:
        return [str(uuid.UUID(bytes=bytes(v))) for v in self._id[lo:hi]]

    def engine(self, lo: int, hi: int) -> np.ndarray:
        return self._engine[lo:hi]

    def has_ids(self, ids: list[str]) -> np.ndarray:
        """Which of ``ids`` this server numbered."""
        if not ids or not self.n:
            return np.zeros(len(ids), bool)
        want = uuid_bytes(ids)
        return np.isin(want.view("S16"), self._id[:self.n].view("S16"))

    def first_at_or_after(self, t_ns: int) -> int:
        """Sequence of the first item whose event time is at or after ``t_ns`` (``n`` if none)."""
        hit = np.flatnonzero(self._ts[:self.n] >= t_ns)
        return int(hit[0]) if hit.size else self.n
