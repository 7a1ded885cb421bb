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

_START = 1 << 12


class SeqIndex:
    def __init__(self):
        self.n = 0
        self._ts = np.zeros(_START, np.int64)
        self._id = np.zeros(_START, "V16")
        self._engine = np.zeros(_START, bool)

    def append(self, ts_ns, ids: list[str], engine: bool) -> None:
        """Items ``n``.. : their event times (ns) and opportunity ids (UUID text)."""
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
        self._id[self.n:need] = np.frombuffer(b"".join(uuid.UUID(i).bytes for i in ids), "V16")
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
        want = np.frombuffer(b"".join(uuid.UUID(i).bytes for i in ids), "V16")
        return np.isin(want.view("S16"), self._id[:self.n].view("S16"))

    def first_at_or_after(self, t_ns: int) -> int:
        """Sequence of the first item whose event time is at or after ``t_ns`` (``n`` if none)."""
        hit = np.flatnonzero(self._ts[:self.n] >= t_ns)
        return int(hit[0]) if hit.size else self.n
