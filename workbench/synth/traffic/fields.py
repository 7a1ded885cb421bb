"""The variable fields of a template: how each is drawn per packet (``GEN_*``, read by the
staging kernel) and where it sits in the serialized bytes (``Fields``).

A template is compiled with a random sentinel in every variable field; ``Fields.locate``
finds each sentinel in the compiled bytes, which gives the field's offset without parsing
the message. Slots: the recent blockhash and the vote fields draw from a per-slot hash
table (``HASH_*`` rows) indexed from ``SLOT_HISTORY`` slots before the capture start.
"""

from __future__ import annotations

import numpy as np

# --- time ------------------------------------------------------------------------------------
SLOT_NS = 400_000_000          # ns: target slot duration
SLOT0 = 345_000_000            # slot at the capture's start_ns (mainnet order of magnitude, mid-2025)
SLOT_HISTORY = 256             # slots of hashes kept before the capture start (blockhash lag, vote root)
HASH_BLOCKHASH, HASH_BANK, HASH_BLOCK_ID = 0, 1, 2   # rows of the per-slot hash table
HASH_ROWS = 3

# --- field generators: how _stage_txns draws each variable field (u = one uniform in [0, 1)) ---
GEN_BLOCKHASH = 0     # 32 B: blockhash of slot - lag, lag in [p0, p1] slots
GEN_AMOUNT = 1        # u64 LE: log-uniform in [p0, p1]
GEN_SCALED = 2        # u64 LE: previous field's value * p0 * (1 + p1 * u)  (slippage bound, wrap)
GEN_CU_LIMIT = 3      # u32 LE: compute units, uniform in [p0, p1], rounded to 100; ground truth
GEN_CU_PRICE = 4      # u64 LE: micro-lamports per CU, log-uniform in [p0, p1]; ground truth
GEN_TIP = 5           # u64 LE: lamports to a Jito tip account, log-uniform in [p0, p1]; ground truth
GEN_VOTE_ROOT = 6     # u64 LE: slot - p0 - floor(u * p1); becomes the "previous value"
GEN_VOTE_HASH = 7     # 32 B: bank hash of slot (previous value + p0)
GEN_VOTE_TS = 8       # i64 LE: unix seconds of the packet time
GEN_BLOCK_ID = 9      # 32 B: block id of slot (previous value + p0)
GEN_WIDTH = (32, 8, 8, 4, 8, 8, 8, 32, 8, 32)   # bytes written, by generator


class Fields:
    """Records the variable fields of one template as random sentinels, located after compiling."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.items: list[tuple[bytes, int, float, float]] = []
        self.swaps: list[tuple] = []        # Raydium swaps, one tuple each (instructions.raydium_swap)
        self.wrap: bytes | None = None      # sentinel of the wrap transfer the next swap pays from (market mode)

    def _add(self, width: int, gen: int, p0: float, p1: float) -> bytes:
        b = self.rng.bytes(width)
        self.items.append((b, gen, float(p0), float(p1)))
        return b

    def u64(self, gen: int, p0: float = 0.0, p1: float = 0.0) -> int:
        return int.from_bytes(self._add(8, gen, p0, p1), "little")

    def u32(self, gen: int, p0: float = 0.0, p1: float = 0.0) -> int:
        return int.from_bytes(self._add(4, gen, p0, p1), "little")

    def raw(self, gen: int, p0: float = 0.0, p1: float = 0.0) -> bytes:
        return self._add(GEN_WIDTH[gen], gen, p0, p1)

    def locate(self, payload: bytes) -> list[tuple[int, int, float, float]]:
        out = []
        for b, gen, p0, p1 in self.items:
            at = payload.find(b)
            if at < 0 or payload.find(b, at + 1) >= 0:
                raise RuntimeError("synth: a field sentinel is missing or not unique in its template")
            out.append((at, gen, p0, p1))
        return out
