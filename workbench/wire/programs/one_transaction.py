"""The Python face: one transaction's payload in, its events out (notebooks, dissect, tests).

The engine calls the kernels on shared batch tables; this decodes a single payload with
tables of its own and a key table holding only the preregistered keys, so program ids
are the fixed ones of ``wire/keys.py``.
"""

from __future__ import annotations

import numpy as np

from ..keys import N_PREREGISTERED, new_key_table
from ..txn import INSTR_DTYPE, LUT_DTYPE, TXN_DTYPE, decode_txn
from .dispatch import decode_events, program_ids_of
from .events import EV_REJECT_NAMES, EV_REJECT_SLOTS, EVENT_DTYPE, EVENTS_PER_INSTR_MAX


def events_of(payload: bytes):
    """Notebooks and tests: decode one transaction and its events.

    Returns (status, events, rejects): ``status`` 0 or the negative packet status of
    wire/status.py, ``events`` an EVENT_DTYPE array (offsets index ``payload``),
    ``rejects`` {name: count} of EV_* rejects.
    """
    buf = np.frombuffer(payload, np.uint8)
    txns = np.zeros(1, TXN_DTYPE)
    instrs = np.zeros(max(1, len(payload)), INSTR_DTYPE)
    luts = np.zeros(max(1, len(payload) // 34 + 1), LUT_DTYPE)
    r = decode_txn(buf, 0, buf.shape[0], txns, 0, instrs, 0, luts, 0)
    if r < 0:
        return int(r), np.zeros(0, EVENT_DTYPE), {}
    keys, slots, _ = _known_keys()
    t = txns[0]
    pids = np.full(instrs.shape[0], -1, np.int32)
    program_ids_of(buf, t, instrs, keys, slots, pids)
    events = np.zeros(max(1, int(t["instr_cnt"]) * EVENTS_PER_INSTR_MAX), EVENT_DTYPE)
    rejects = np.zeros(EV_REJECT_SLOTS, np.int64)
    n = decode_events(buf, t, instrs, luts, pids, events, 0, rejects)
    rej = {EV_REJECT_NAMES[-i]: int(c) for i, c in enumerate(rejects) if i and c}
    return 0, events[:max(0, n)].copy(), rej


_KNOWN_KEYS = None


def _known_keys():
    """A key table holding only the preregistered keys (so program ids are the fixed ones)."""
    global _KNOWN_KEYS
    if _KNOWN_KEYS is None:
        cap = 1
        while cap < N_PREREGISTERED:
            cap *= 2
        _KNOWN_KEYS = new_key_table(cap)
    return _KNOWN_KEYS
