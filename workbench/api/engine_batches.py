"""The engine's opportunity batches made ready for the WebSocket and the GET memory.

The pump (service.py) publishes the run's rows on the event loop, which also sends every frame
and answers every HTTP request. A run's own opportunities come as the engine's records and are
made ready on the loop in a few calls (opportunity_records.py); the table of a finished run's
re-streamed rows is made ready where the run hands it on (runner/background.py ``prepare``,
``engine_batch`` here), off the loop, as putting a table in the store's column names and
encoding each row's JSON cost the loop up to milliseconds a batch. Either way the loop is left
with what orders the rows among others: their numbers and the frames. The GET memory takes a
batch's ids and times, and puts its rows in the page shape only when a page first reads them
(recent_route.py); a batch made from records builds its table only then too.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable

import numpy as np
import pyarrow as pa

from ..store.columns import mev_opportunities_table
from .frames import row_items
from .seq_index import uuid_bytes

log = logging.getLogger(__name__)


class EngineBatch:
    """``table``: the rows in the store's column names (store/columns.py mev_opportunities_table),
    given or made by ``make_table`` when first read (then ``schema`` gives its schema); ``items``:
    each row's JSON (frames.py ``row_items``); ``times_ns``: int64 ``timestamp_ns``; ``ids``: the
    opportunity ids; ``id_bytes``: their 16 bytes (``V16``); all in row order. ``types``: rows per
    opportunity type."""

    __slots__ = ("_table", "_make", "schema", "items", "times_ns", "ids", "id_bytes", "types")

    def __init__(self, table: pa.Table | None, items: list[bytes], times_ns: np.ndarray, ids: list[str],
                 id_bytes: np.ndarray, types: Counter, schema: pa.Schema | None = None,
                 make_table: Callable[[], pa.Table] | None = None):
        self._table, self._make = table, make_table
        self.schema = table.schema if table is not None else schema
        self.items, self.times_ns, self.ids, self.id_bytes, self.types = items, times_ns, ids, id_bytes, types

    @property
    def table(self) -> pa.Table:
        if self._table is None:
            self._table, self._make = self._make(), None
        return self._table

    @property
    def column_names(self) -> list[str]:
        return self.schema.names

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
    if any(b.schema != batches[0].schema for b in batches):
        return taken
    types = Counter()
    for b in batches:
        types.update(b.types)
    return [(EngineBatch(None, [i for b in batches for i in b.items], np.concatenate([b.times_ns for b in batches]),
                         [i for b in batches for i in b.ids], np.concatenate([b.id_bytes for b in batches]), types,
                         schema=batches[0].schema, make_table=lambda: pa.concat_tables([b.table for b in batches])),
             taken[0][1])]
