"""The engine's opportunity batches made ready for the WebSocket and the GET memory where the run
hands them on, on the run's sink thread.

The pump (service.py) publishes the run's rows on the event loop, which also sends every frame
and answers every HTTP request. Putting a batch in the store's column names and encoding each
row's JSON cost the loop up to milliseconds a batch, and every frame of every client waited
behind that work. The run's sink thread does it instead, as it hands the batch on
(runner/background.py ``prepare``), after the batch's hand-off time is taken, so a frame's
``handed_ns`` still counts it. The loop is left with what orders the rows among others: their
numbers and the frames. The GET memory takes the batch's ids and times, and puts its rows in the
page shape only when a page first reads them (recent_route.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..store.columns import mev_opportunities_table
from .frames import row_items
from .seq_index import uuid_bytes

log = logging.getLogger(__name__)


@dataclass
class EngineBatch:
    table: pa.Table             # the rows in the store's column names (store/columns.py mev_opportunities_table)
    items: list[bytes]          # each row's JSON (frames.py ``row_items``), in row order
    times_ns: np.ndarray        # int64 ``timestamp_ns``, in row order
    ids: list[str]              # the opportunity ids, in row order
    id_bytes: np.ndarray        # ``V16``: the ids' 16 bytes, in row order
    types: Counter              # rows per opportunity type

    def __len__(self) -> int:
        return len(self.items)


def engine_batch(table: pa.Table, source: str) -> EngineBatch:
    """An engine opportunities table (opportunities.parquet's columns) made ready; ``source``: the
    run's mode (replay or live), the store's ``source`` column."""
    shaped = mev_opportunities_table(table, source)
    ids = shaped.column("opportunity_id").to_pylist()
    # (the ids' bytes from their list: a batch is small, and the Arrow path's numpy steps cost more than the ids)
    return EngineBatch(shaped, row_items(shaped), shaped.column("timestamp_ns").to_numpy(), ids,
                       uuid_bytes(ids), Counter(shaped.column("type").to_pylist()))


def preparer(source: str):
    """The run's ``prepare`` hook for opportunities: the table as an EngineBatch; the table itself
    should that fail (logged: the pump tries again and says why, and the run never stops for it)."""
    def prepare(table: pa.Table):
        try:
            return engine_batch(table, source)
        except Exception:       # noqa: BLE001 - on the run's sink thread: the rows still reach files and store
            log.exception("an opportunities batch could not be made ready for the WebSocket on the sink thread")
            return table
    return prepare


def joined(taken: list[tuple[EngineBatch, int]]) -> list[tuple[EngineBatch, int]]:
    """The (batch, hand-off time) pairs one pump step took, as one batch with the first's time (a step
    that fell behind sends fewer, fuller frames); rows keep their order and numbers. Tables of
    different schemas (not the engine's) stay as they came."""
    if len(taken) < 2:
        return taken
    batches = [b for b, _ in taken]
    try:
        table = pa.concat_tables([b.table for b in batches])
    except pa.ArrowInvalid:
        return taken
    types = Counter()
    for b in batches:
        types.update(b.types)
    return [(EngineBatch(table, [i for b in batches for i in b.items], np.concatenate([b.times_ns for b in batches]),
                         [i for b in batches for i in b.ids], np.concatenate([b.id_bytes for b in batches]), types),
             taken[0][1])]
