"""The ``transactions`` WebSocket channel: the run's tx_features rows, filtered per subscription.

It is the high-volume channel, so it keeps what it numbered as the run's Arrow tables (not
encoded rows), at most about ``TX_HISTORY_ITEMS`` rows of them (whole tables are forgotten,
oldest first), and encodes a batch only for the filters someone subscribed with: once per
distinct filter, the frame shared by every client with that filter. Items keep the channel's
sequence numbers; a filtered frame lists its items' numbers in ``seqs`` (they need not be
contiguous), and its ``first_seq`` / ``last_seq`` are the first and last of them.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import base58
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..wire.keys import KNOWN_PROGRAMS
from .frames import FRAME_ITEMS_MAX, arrow_frame, frame_bytes_of_rows, gap_text, table_rows
from .shared_frame import Shared

TX_HISTORY_ITEMS = 100_000       # transaction rows kept for resumes (whole tables; the newest is always kept)
FEE_COLUMN = "priority_fee_lamports"
PROGRAMS_COLUMN = "programs"
TIME_COLUMN = "ts_ns"
_PROGRAM_BY_NAME = dict(KNOWN_PROGRAMS)


class FilterError(ValueError):
    """A subscription filter that cannot be used: ``field`` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class TxFilter:
    """Rows that invoke ``program`` (a base58 address) and pay at least ``min_fee`` lamports of
    priority fee; None: no condition. Hashable: clients with equal filters share frames."""
    program: str | None = None
    min_fee: int | None = None

    @classmethod
    def parse(cls, raw) -> "TxFilter | None":
        """From a subscription's ``filter`` object; FilterError names the bad field."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise FilterError("filter", f"filter {raw!r}: expected an object such as "
                                        '{"program": "raydium_amm_v4", "min_fee": 10000}')
        unknown = sorted(set(raw) - {"program", "min_fee"})
        if unknown:
            raise FilterError(f"filter.{unknown[0]}", f"filter.{unknown[0]}: not a filter field (program, min_fee)")
        program = raw.get("program")
        if program is not None:
            if not isinstance(program, str) or not program:
                raise FilterError("filter.program", f"filter.program {program!r}: expected a program name or a "
                                                    "base58 address")
            if program in _PROGRAM_BY_NAME:
                program = _PROGRAM_BY_NAME[program]
            else:
                try:
                    key = base58.b58decode(program)
                except Exception:       # noqa: BLE001 - any decoding failure is the same answer
                    key = None
                if key is None or len(key) != 32:
                    raise FilterError("filter.program", f"filter.program {program[:60]!r}: neither a known program "
                                                        f"name ({', '.join(_PROGRAM_BY_NAME)}) nor a base58 address of "
                                                        "32 bytes")
        fee = raw.get("min_fee")
        if fee is not None and (isinstance(fee, bool) or not isinstance(fee, int) or fee < 0 or fee >= 2**63):
            raise FilterError("filter.min_fee", f"filter.min_fee {fee!r}: expected lamports, an integer >= 0")
        if program is None and fee is None:
            return None
        return cls(program, fee)

    def select(self, table: pa.Table) -> np.ndarray:
        """Row positions of ``table`` this filter keeps."""
        keep = np.ones(table.num_rows, bool)
        if self.min_fee is not None:
            keep &= table.column(FEE_COLUMN).to_numpy() >= self.min_fee
        if self.program is not None:
            progs = table.column(PROGRAMS_COLUMN).combine_chunks()
            parents = pc.list_parent_indices(progs).to_numpy()
            hit = pc.equal(pc.list_flatten(progs), self.program).to_numpy(zero_copy_only=False)
            has = np.zeros(table.num_rows, bool)
            has[parents[hit]] = True
            keep &= has
        return np.flatnonzero(keep)


@dataclass
class _Batch:
    first: int
    table: pa.Table
    handed_ns: int


class TxChannel:
    """Sequence numbers and bounded memory of the transactions channel; frames per filter."""

    name = "transactions"

    def __init__(self, history_items: int = TX_HISTORY_ITEMS):
        self.history_items = history_items
        self.next_seq = 0
        self.history: collections.deque[_Batch] = collections.deque()
        self._held = 0

    @property
    def oldest_seq(self) -> int:
        return self.history[0].first if self.history else self.next_seq

    def publish(self, table: pa.Table, handed_ns: int, clients) -> None:
        b = _Batch(self.next_seq, table, handed_ns)
        self.next_seq += table.num_rows
        self.history.append(b)
        self._held += table.num_rows
        while len(self.history) > 1 and self._held - self.history[0].table.num_rows >= self.history_items:
            self._held -= self.history.popleft().table.num_rows
        groups: dict = {}
        for c in clients:
            groups.setdefault((c.filters.get(self.name), c.formats.get(self.name, "json")), []).append(c)
        for (flt, fmt), members in groups.items():
            for first, last, n, data in _frames(b, flt, 0, fmt):
                data.live_ns = handed_ns
                for c in members:
                    c.offer(self.name, first, last, data, n)

    def backlog(self, c, start: int, flt: TxFilter | None, fmt: str = "json") -> None:
        """Queue for ``c`` the held items from sequence ``start`` (a gap first for what is no longer held)."""
        oldest = self.oldest_seq
        if start < oldest:
            c.queue.put_nowait((self.name, start, oldest - 1, gap_text(
                self.name, start, oldest - 1, oldest - start, "older than the server's memory")))
        for b in list(self.history):
            if b.first + b.table.num_rows <= start:
                continue
            for first, last, n, data in _frames(b, flt, max(0, start - b.first), fmt):
                c.offer(self.name, first, last, data, n)

    def seq_at_time(self, t_ns: int) -> int:
        """Sequence of the first held row whose event time is at or after ``t_ns`` (next_seq if none)."""
        for b in self.history:
            ts = b.table.column(TIME_COLUMN).to_numpy()
            hit = np.flatnonzero(ts >= t_ns)
            if hit.size:
                return b.first + int(hit[0])
        return self.next_seq


def _frames(b: _Batch, flt: TxFilter | None, skip: int, fmt: str = "json"):
    """(first, last, n, message) frames of batch ``b`` from row ``skip`` on, as ``flt`` keeps them:
    JSON text, or with ``fmt`` 'arrow' Arrow IPC bytes (frames.py arrow_frame), each a ``Shared``
    message for every subscriber of the same filter and format."""
    t = b.table.slice(skip) if skip else b.table
    seqs = None
    if flt is not None:
        pos = flt.select(t)
        if not pos.size:
            return
        t = t.take(pa.array(pos))
        seqs = (pos + b.first + skip).tolist()
    base = b.first + skip
    for i in range(0, t.num_rows, FRAME_ITEMS_MAX):
        n = min(FRAME_ITEMS_MAX, t.num_rows - i)
        s = seqs[i:i + n] if seqs is not None else None
        first = s[0] if s is not None else base + i
        last = s[-1] if s is not None else base + i + n - 1
        if fmt == "json":
            yield first, last, n, Shared(frame_bytes_of_rows("transactions", first, table_rows(t.slice(i, n)),
                                                             b.handed_ns, s))
        else:
            yield first, last, n, Shared(arrow_frame("transactions", t.slice(i, n), first, b.handed_ns, s), binary=True)
