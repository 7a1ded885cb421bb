"""Posted batches share one store insert: a group commit.

An embedded store's insert costs milliseconds whatever its size, so one insert per request
caps POST /v1/opportunities at a few dozen requests a second. Here each request's checked
batch joins a queue and waits; one worker at a time takes everything queued, looks up the
ids already stored with one query, inserts what is new with one insert, and answers every
waiting request. There is no timer: while an insert runs the next group gathers, so a lone
request waits for its own insert only and a busy server inserts in large groups. The rows a
group stored enter the GET route's memory in one merge too (``on_stored``).

The answer of each request is what it would have been had the requests run one after the
other in arrival order: a row whose id the store holds, or an earlier request of the same
group posted, counts as a duplicate. A store error fails every request of that group (each
gets the error; nothing of the group was written: the insert is one statement).
"""

from __future__ import annotations

import asyncio

import anyio

from .opportunity_rows import PostedBatch


class GroupCommit:
    """``await insert(batch)`` -> (indices of the rows inserted, rows already stored)."""

    def __init__(self, store, on_stored=None):
        self._store = store
        self._on_stored = on_stored     # called on the loop with [(batch, indices inserted)] after each insert
        self._queued: list[tuple[PostedBatch, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None
        self.groups = 0                 # inserts made (for /v1/stats: requests per insert)
        self.requests = 0

    async def insert(self, batch: PostedBatch) -> tuple[list[int], int]:
        fut = asyncio.get_running_loop().create_future()
        self._queued.append((batch, fut))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        while self._queued:
            group, self._queued = self._queued, []
            try:
                answers = await anyio.to_thread.run_sync(self._store.insert_group, [b for b, _ in group])
            except BaseException as e:          # (cancelled too: no request is left waiting)
                for _, fut in group:
                    if not fut.done():
                        fut.set_exception(e)
                if not isinstance(e, Exception):
                    raise
                continue
            self.groups += 1
            self.requests += len(group)
            if self._on_stored is not None:
                self._on_stored([(b, kept) for (b, _), (kept, _dups) in zip(group, answers)])
            for (_, fut), answer in zip(group, answers):
                if not fut.done():              # (its client may have gone: the rows are stored all the same)
                    fut.set_result(answer)
