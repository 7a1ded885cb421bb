"""GET /v1/opportunities pages: from memory when it covers the window, else store + memory.

Ties recent.py's index to the service: the rows the pump publishes (the engine run's) and the
posted rows enter the index in the page shape; a page is looked up in the cache, then made from
memory or from the store merged with memory. Concurrent requests for the same page at the same
data version share one store read, so a burst right after a new row costs one query, not one
per request.

An engine batch enters memory by its ids and times alone, on the event loop; its rows are put in
the page shape (conform, UUID text, enum labels: several Arrow calls a column, whatever the
batch's size) when a page or a GET by id first reads them. Shaping every batch as it came, on a
worker thread of its own, took a fifth of a CPU through a paced replay and the GIL with it, and the
WebSocket's frames waited for both; a run nobody pages through never pays it now. A batch that
cannot be shaped is left out and the page is made from the store (recent.py ``MemoryMiss``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import anyio
import pyarrow as pa

from ..store.columns import conform
from .opportunity_rows import TABLE
from .post_columns import NAMES
from .posted_json import row_dicts
from .frames import table_rows
from .recent import MemoryMiss, RecentOpportunities, page_table, store_cover
from .store_access import OpportunityFilter
from .store_read_ahead import StoreReadAhead

log = logging.getLogger(__name__)

RUN_START_SLACK_NS = 1_000_000_000    # the run starts after the index is made; slack for clock steps only
INLINE_SCAN_ROWS = 20_000       # memory at most this large is scanned on the event loop (a thread hop costs more)


class OpportunityPages:
    def __init__(self, service):
        self.service = service
        store = service.store
        self.store = store
        self.recent = RecentOpportunities(store.page_schema(), store_cover(store.last_key()))
        self.store_rows = StoreReadAhead(store.opportunity_rows)
        # posted rows' JSON is the page shape when the live table's columns are the code's (asked
        # once: a schema's names are a new list at each call)
        self._posted_shape = tuple(self.recent.schema.names) == NAMES
        self._run_id: str | None = None
        self._pending: list = []               # engine batches waiting for the store to show their run
        self.started_ns = time.time_ns()
        self._inflight: dict = {}
        self._asking = False                   # a run-id look-up is on a worker thread
        self._ask_task = None

    # -- rows in
    def add_posted(self, posted) -> None:
        """The rows a group of posts stored (posted_rows.PostedRows: their JSON, keys in post_columns.py
        ``NAMES`` order, their ids and times), queued to go into memory with the next groups'
        (recent.py ``queue_posted``). They are the page shape when the live table's columns are the
        code's (else they go through the table path at once, as engine rows do)."""
        if not self._posted_shape:
            t = pa.Table.from_pylist(row_dicts(posted.items))
            self._add(lambda: t, posted.ids, posted.times_ns.tolist(), None)
            return
        try:
            self.recent.queue_posted(posted.items, posted.ids, posted.times)
        except Exception:       # noqa: BLE001 - as in _add
            log.exception("posted rows could not enter the GET index; pages now come from the store")
            self.recent.mark_uncovered()

    def _find_run_id(self) -> str | None:
        """The engine run's id: the newest ``runs`` row that started after this server did (the run
        records it when it starts; the store may show it a little after the first rows)."""
        for r in self.store.runs(5):
            started = r.get("started_at_ns", r.get("started_at"))
            if isinstance(started, int) and started >= self.started_ns - RUN_START_SLACK_NS:
                return str(r["run_id"])
        return None

    def add_engine(self, batch) -> None:
        """An engine batch (engine_batches.py EngineBatch: its table in the store's column names, its
        ids and times) from service.py's pump. Its run id comes from the store; until the store shows
        the run, batches wait (and pages ask the store)."""
        if "run_id" in batch.column_names:
            self._add(lambda: batch.table, batch.ids, batch.times_ns.tolist(), None)
            return
        self._pending.append(batch)
        if self._run_id is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:        # called off the server's loop (a script, a test): ask here
                self._run_id = self._find_run_id()
            else:                       # on the loop: a store query waits for the reads' lock, never here
                self._ask_run_id(loop)
        self._flush_pending()

    def _ask_run_id(self, loop) -> None:
        """Look the run id up on a worker thread (one look-up at a time); the batches held meanwhile
        enter memory when it is known."""
        if self._asking:
            return
        self._asking = True

        async def ask():
            try:
                run_id = await anyio.to_thread.run_sync(self._find_run_id)
            except Exception:       # noqa: BLE001 - pages ask the store meanwhile; the next batch asks again
                log.exception("the run's id could not be read from the store")
                run_id = None
            finally:
                self._asking = False
            if run_id is not None and self._run_id is None:
                self._run_id = run_id
                self._flush_pending()

        self._ask_task = loop.create_task(ask())     # (held: the loop keeps only a weak reference)

    def _flush_pending(self) -> None:
        if self._run_id is None:
            self.recent.hold(bool(self._pending))
            return
        pending, self._pending = self._pending, []
        for b in pending:
            self._add(lambda b=b: b.table, b.ids, b.times_ns.tolist(), self._run_id)
        self.recent.hold(False)

    def _add(self, table_of: Callable[[], pa.Table], ids: list[str], times: list[int], run_id: str | None) -> None:
        """Rows (``table_of()``: their table, in the store's column names; their ids and times) into
        memory; the table is made and shaped when a page first reads them."""
        try:
            self.recent.add_lazy(ids, times, lambda: table_rows(self._shape(table_of(), run_id)))
        except Exception:       # noqa: BLE001 - memory is only a shortcut: the store answers every page instead
            log.exception("rows could not enter the GET index; pages now come from the store")
            self.recent.mark_uncovered()

    def _shape(self, t: pa.Table, run_id: str | None) -> pa.Table:
        return page_table(conform(TABLE, t, run_id), self.recent.schema)

    def hook(self, batch) -> None:
        try:
            self.add_engine(batch)
        except Exception:       # noqa: BLE001 - as in _add
            log.exception("the run's rows could not enter the GET index; pages now come from the store")
            self.recent.mark_uncovered()

    # -- pages out
    async def page(self, f: OpportunityFilter, limit: int, after, arrow: bool) -> tuple[bytes, str | None, str]:
        """The encoded page, its next cursor, and where it was read: ``memory`` or ``store+memory``."""
        if self._pending and self._run_id is None:
            self._run_id = await anyio.to_thread.run_sync(self._find_run_id)
            self._flush_pending()
        while True:
            try:
                return await self._page(f, limit, after, arrow)
            except MemoryMiss:          # that batch is left out from now on, and memory no longer answers alone
                log.exception("rows in the GET index could not be read; pages now come from the store")

    async def _page(self, f: OpportunityFilter, limit: int, after, arrow: bool) -> tuple[bytes, str | None, str]:
        recent = self.recent
        fkey = (tuple(sorted(set(f.types))), f.since_ns, f.until_ns, f.min_profit, f.pool, f.run, f.min_score)
        key = (*fkey, limit, after, arrow)
        hit = recent.cached(key)
        if hit is not None:
            return hit
        version = recent.version
        if recent.covers(f, after):
            if len(recent) > INLINE_SCAN_ROWS:      # a selective filter may scan all of memory: off the loop
                rows, more = await anyio.to_thread.run_sync(recent.page_from_memory, f, limit, after)
            else:
                rows, more = recent.page_from_memory(f, limit, after)
        else:
            shared = self._inflight.get((key, version))
            if shared is not None:
                return await asyncio.shield(shared)
            fut = asyncio.get_running_loop().create_future()
            self._inflight[(key, version)] = fut
            try:
                # (rows held outside memory reach the store unseen by the version: no read kept then)
                ahead = None if recent.held else version
                rows, more = await anyio.to_thread.run_sync(self._store_page, fkey, f, limit, after, ahead)
                out = (*await self._encode(rows, more, arrow), "store+memory")
            except BaseException as e:
                if isinstance(e, Exception):
                    fut.set_exception(e)
                    fut.exception()     # retrieved: waiters re-raise it, nobody logs it as lost
                else:
                    fut.cancel()
                raise
            finally:
                self._inflight.pop((key, version), None)
            fut.set_result(out)
            recent.remember(key, out, version)
            return out
        out = (*await self._encode(rows, more, arrow), "memory")
        recent.remember(key, out, version)
        return out

    def _store_page(self, fkey: tuple, f: OpportunityFilter, limit: int, after, version: int | None):
        """On a worker thread: the store's rows of the window (read ahead: store_read_ahead.py) merged
        with memory's."""
        stored = self.store_rows.rows(fkey, f, limit + 1, after, version)
        return self.recent.page_merged(f, limit, after, stored)

    async def _encode(self, rows, more: bool, arrow: bool):
        if arrow:
            if len(rows) > 500:         # a big table off the loop
                return await anyio.to_thread.run_sync(self.recent.encode_arrow, rows, more)
            return self.recent.encode_arrow(rows, more)
        return self.recent.encode_json(rows, more)


def opportunity_pages(service) -> OpportunityPages:
    pages = OpportunityPages(service)
    service.opportunity_hooks.append(pages.hook)
    return pages
