"""Posted batches share one check, one store insert and one merge into memory: a group commit.

An embedded store's insert costs milliseconds whatever its size, so one insert per request
caps POST /v1/opportunities at a few dozen requests a second. Here each request's body joins a
queue and waits; one worker at a time takes everything queued, checks the bodies of the whole
group (post_columns.py: each JSON body decoded and checked in one C pass), looks up the ids
already stored with one query, inserts what is new with one insert, and encodes every answer.
There is no timer: a group is taken one turn of the event loop after its first request (the
requests read in that turn join it), and while a group is committed the next one gathers, so a
lone request waits for its own insert only and a busy server inserts in large groups. The rows a
group stored enter the GET route's memory and the WebSocket in one step (``on_stored``), made
ready for both beside the check (posted_rows.py).

With a post spool (an embedded store on disk: post_spool.py) there is no insert to wait for: a
group is checked, its new rows logged and its ids noted in one step, one group at a time in
arrival order, and the store's insert of many groups runs later on the spool's own thread. A
group of up to ``INLINE_BYTES_MAX`` body bytes (an Arrow body's weighed by ``ARROW_BYTE_WEIGHT``)
takes that step on the event loop itself: the check holds the GIL wherever it runs, and the hop to
a worker thread and back cost more than a small group's check; a larger group goes to a worker
thread, so that the loop goes on answering between the thread's turns at the GIL.

Without a spool (a store in memory, or a ClickHouse server) the check and the insert run on
worker threads and overlap: while one insert runs, what arrives meanwhile is checked on another
thread, and the next insert takes every request checked by then (several checked groups, one
insert: the groups an insert takes must stay as large as they were without the overlap).
Inserts run one at a time and in arrival order, so the id look-up and the insert of a group
always see every row of the groups before it.

The answer of each request is what it would have been had the requests run one after the
other in arrival order: a bad row gets 422 naming the row and field and nothing of its request
is written (the other requests of the group go on); a row whose id the store holds, or an
earlier request of the same group posted, counts as a duplicate. A store error fails every
request of the group that passed its checks (each gets the error; nothing of the group was
written: the insert is one statement). With a post spool that error is the log's (a group is
one write); an insert that fails later is tried again (post_spool.py)."""

from __future__ import annotations

import asyncio
import logging

import anyio
import numpy as np
import orjson

from .post_columns import CheckedGroup, check_group, joined_groups
from .posted_rows import posted_rows

log = logging.getLogger(__name__)

# a spooled group of at most this many body bytes is checked and spooled on the loop itself: about
# three hundred rows, a millisecond or two of the loop's time
INLINE_BYTES_MAX = 512 * 1024
# an Arrow body's byte weighs this many JSON bytes there: its rows are about half the size, and its
# check costs about twice a JSON row's, more on small bodies (benchmarks/bench_post_check.py)
ARROW_BYTE_WEIGHT = 4
REFUSED = "the batch does not fit the table; nothing of it was written"


def refusal(e: Exception) -> bytes:
    """The 422 body for a batch ``check_rows`` refused (RowError, or conform's StoreError)."""
    detail = e.as_dict() if hasattr(e, "as_dict") else {"row": None, "field": None, "message": str(e)}
    return orjson.dumps({"error": REFUSED, **detail})


class GroupCommit:
    """``await submit(body, arrow)`` -> (HTTP status, JSON answer); raises the store's error."""

    def __init__(self, store, on_stored=None):
        self._store = store
        self._on_stored = on_stored     # called on the loop with each group's stored rows (posted_rows.PostedRows)
        self._queued: list[tuple[tuple[bytes, bool], asyncio.Future]] = []     # (or any waiter: enqueue)
        self._checked: list[tuple[list, CheckedGroup]] = []    # checked, waiting for the next insert
        self._worker: asyncio.Task | None = None               # checks what is queued
        self._storing: asyncio.Task | None = None              # the insert running
        self._groups = 0                # groups committed
        self.requests = 0               # requests that passed their checks
        # posts answered once spooled (post_spool.py): a group is checked and spooled in one step
        self._spooled = bool(getattr(store, "spooled_inserts", False))

    @property
    def groups(self) -> int:
        """Store inserts of posted rows (for /v1/stats: requests per insert)."""
        return getattr(self._store, "post_inserts", self._groups)

    async def submit(self, body: bytes, arrow: bool = False) -> tuple[int, bytes]:
        fut = asyncio.get_running_loop().create_future()
        self.enqueue(body, arrow, fut)
        return await fut

    def enqueue(self, body: bytes, arrow: bool, waiter) -> None:
        """Queue a body for the next group (on the loop). ``waiter`` gets the answer as a future
        does: ``done()`` is asked first (a waiter done is skipped), then ``set_result((status,
        body))`` or ``set_exception(error)`` is called, on the loop."""
        self._queued.append(((body, arrow), waiter))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._check_queued())

    async def _check_queued(self) -> None:
        # one turn of the loop first: the requests whose bodies it reads meanwhile join this group (a group
        # costs a fixed share beside its rows' work, and under load the groups grow without a timer)
        await asyncio.sleep(0)
        while self._queued:
            group, self._queued = self._queued, []
            if self._spooled:
                # spooling costs little beside the check: both in one step, in arrival order (this
                # loop runs one group at a time); a small group on the loop itself, where the check
                # holds the GIL all the same and a hop to a thread and back costs more than it does
                posts = [p for p, _ in group]
                if getattr(self._store, "ids_loaded", False) and _weight(posts) <= INLINE_BYTES_MAX:
                    try:
                        got = self._checked_and_stored(posts)
                    except Exception as e:      # noqa: BLE001 - every request of the group gets it
                        _fail(group, e)
                        continue
                    self._deliver(group, *got)
                else:
                    await self._answer(group, self._checked_and_stored, posts)
                continue
            try:
                checked = await anyio.to_thread.run_sync(check_group, [p for p, _ in group])
            except BaseException as e:          # (cancelled too: no request is left waiting)
                _fail(group, e)
                if not isinstance(e, Exception):
                    raise
                continue
            self._checked.append((group, checked))
            self._store_next()

    def _checked_and_stored(self, posts: list[tuple[bytes, bool]]):
        return self._stored(check_group(posts))

    def _store_next(self) -> None:
        """Start an insert of everything checked, unless one runs (its end starts the next)."""
        if self._checked and (self._storing is None or self._storing.done()):
            taken, self._checked = self._checked, []
            self._storing = asyncio.create_task(self._store_and_answer(taken))

    def _stored(self, group: CheckedGroup):
        """On a worker thread, after ``check_group``: [(status, body) or the store's exception] per
        request, the rows stored (PostedRows, None when none), and how many requests passed."""
        accepted = [s for s in group.spans if not isinstance(s, Exception)]
        try:
            keep = self._store.insert_group(group) if accepted else np.zeros(0, bool)
        except Exception as e:          # noqa: BLE001 - every request that reached the insert gets it
            return [(422, refusal(s)) if isinstance(s, Exception) else e for s in group.spans], None, 0
        answers = []
        every = np.count_nonzero(keep) == keep.size     # (the usual group: no duplicate, no per-request mask)
        for span in group.spans:
            if isinstance(span, Exception):
                answers.append((422, refusal(span)))
                continue
            lo, hi = span
            ids = group.ids[lo:hi] if every else [group.ids[lo + j] for j in np.flatnonzero(keep[lo:hi]).tolist()]
            answers.append((201 if ids else 200,
                            orjson.dumps({"inserted": len(ids), "duplicates": hi - lo - len(ids), "ids": ids})))
        kept = group.kept(keep)
        return answers, (posted_rows(kept) if kept.ids else None), len(accepted)

    async def _store_and_answer(self, taken: list[tuple[list, CheckedGroup]]) -> None:
        group = [req for g, _ in taken for req in g]
        try:
            await self._answer(group, self._stored, joined_groups([c for _, c in taken]))
        finally:
            self._storing = None
            self._store_next()                  # what was checked meanwhile: the next insert

    async def _answer(self, group: list, stored, arg) -> None:
        """Run ``stored(arg)`` on a worker thread, then answer every request of ``group``."""
        try:
            got = await anyio.to_thread.run_sync(stored, arg)
        except BaseException as e:              # (cancelled too: no request is left waiting)
            _fail(group, e)
            if not isinstance(e, Exception):
                raise
            return
        self._deliver(group, *got)

    def _deliver(self, group: list, answers: list, posted, accepted: int) -> None:
        """Answer each request of a group, then hand its stored rows on (on the loop). A waiter that
        writes its answer at once (post_protocol.py) does not wait for the hand-on; no request reaches
        the loop before both are done, so a client that reads after its answer finds its rows."""
        if accepted:
            self._groups += 1
            self.requests += accepted
        for (_, fut), answer in zip(group, answers):
            if fut.done():                  # (its client may have gone: the rows are stored all the same)
                continue
            if isinstance(answer, Exception):
                fut.set_exception(answer)
            else:
                fut.set_result(answer)
        if posted is not None and self._on_stored is not None:
            try:
                self._on_stored(posted)
            except Exception:       # noqa: BLE001 - the rows are stored; memory and the stream are extras
                log.exception("posted rows were stored but could not enter memory or the WebSocket")


def _weight(posts: list[tuple[bytes, bool]]) -> int:
    """A group's check cost, in JSON body bytes."""
    return sum(len(body) * ARROW_BYTE_WEIGHT if arrow else len(body) for body, arrow in posts)


def _fail(group, e: BaseException) -> None:
    for _, fut in group:
        if not fut.done():
            fut.set_exception(e)
