"""An unpaced replay's tables for the store, gathered a little before they are shaped and put.

Each engine batch hands on a table of each kind (tx_features, swaps, opportunities). Making
one ready for the store (the text columns, the store's names, ``StoreWriter.put``'s conform)
costs a fixed share per column and per call, so with small batches those calls, not the rows,
set a replay's speed. Here each kind's tables wait until ``max_s`` after the first of them, or
until ``max_rows`` rows, then go on joined, as one call; the store writer gathers them further
into its inserts. The wait is checked whenever a table arrives, and ``flush`` puts what is left
(the sink thread calls it after the run's last rows). A paced replay and a live run keep one call
per table: there the pace, not the sink thread, sets the speed, and joined tables would come in
bursts that the server's event loop and the engine thread then wait behind (and a live run's
traffic can pause, and with it the arrivals that would end a wait).
"""

from __future__ import annotations

import time
from typing import Callable

import pyarrow as pa

GATHER_S = 0.1                  # longest a table waits for others of its kind (the store's rows lag by that)
GATHER_ROWS = 65_536            # rows of one kind that go on at once, however young


class StoreGather:
    """``put(name, table)``, called with each kind's tables joined: a consumer of the sink thread."""

    def __init__(self, put: Callable[[str, pa.Table], None], max_s: float = GATHER_S, max_rows: int = GATHER_ROWS,
                 clock: Callable[[], float] = time.monotonic):
        self._put, self._max_s, self._max_rows, self._clock = put, max_s, max_rows, clock
        self._waiting: dict[str, tuple[float, int, list[pa.Table]]] = {}   # kind -> (first's arrival, rows, tables)

    def __call__(self, name: str, table: pa.Table) -> None:
        now = self._clock()
        first, rows, tables = self._waiting.get(name, (now, 0, []))
        tables.append(table)
        self._waiting[name] = (first, rows + table.num_rows, tables)
        for kind, (first, rows, _) in list(self._waiting.items()):
            if rows >= self._max_rows or now - first >= self._max_s:
                self._put_waiting(kind)

    def flush(self) -> None:
        """Put every table still waiting, kind by kind in the order they first arrived."""
        for kind in list(self._waiting):
            self._put_waiting(kind)

    def _put_waiting(self, kind: str) -> None:
        _, _, tables = self._waiting.pop(kind)
        self._put(kind, tables[0] if len(tables) == 1 else pa.concat_tables(tables))
