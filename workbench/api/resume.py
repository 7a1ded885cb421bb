"""Where a subscription starts (``from``), and the part of an opportunities resume that memory
no longer holds, read from the store.

``from`` is a sequence number, ``{"time_ns": T}`` or an ISO-8601 time. For the opportunities
channel a time maps through the server's index (seq_index.py) to the first item numbered at or
after it, and, before that, to the rows the store holds from T on that this server never
numbered (an earlier server's, another writer's): they come first, in (time, id) order, in
``{"type":"stored"}`` frames without sequence numbers. An old sequence number maps through
the index to the rows' (time, id), read from the store in pages of ``STORE_ITEMS_MAX``; each
page waits for room in the client's queue (the backlog is the client's own, never dropped).
The caller then joins memory and the live stream in one step of the loop (hub.subscribe).
"""

from __future__ import annotations

import datetime as dt

import anyio
import orjson

from ..errors import StoreError
from .frames import FRAME_ITEMS_MAX, arrow_message, gap_text, items_table
from .shared_frame import Shared
from .store_access import OpportunityFilter
from .tx_channel import FilterError

STORE_ITEMS_MAX = 2_000          # sequence numbers resolved per store query
STORED_PAGE_ROWS = 2_000         # rows per page of a time resume's stored-only part
CHANNEL = "opportunities"


def parse_from(raw) -> tuple[int | None, int | None]:
    """(sequence, time_ns) of a subscription's ``from`` (at most one is set); FilterError names it."""
    if raw is None:
        return None, None
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 0:
            raise FilterError("from", f"from {raw}: expected a sequence number >= 0")
        return raw, None
    if isinstance(raw, dict) and set(raw) == {"time_ns"}:
        t = raw["time_ns"]
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < 2**63:
            raise FilterError("from.time_ns", f"from.time_ns {t!r}: expected ns since the epoch, an integer >= 0")
        return None, t
    if isinstance(raw, str):
        try:
            t = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise FilterError("from", f"from {raw[:60]!r}: not an ISO-8601 time (e.g. 2026-12-04T12:00:00Z)") from None
        if t.tzinfo is None:            # a time without a zone is UTC, as the store's times are
            t = t.replace(tzinfo=dt.timezone.utc)
        delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
        if ns < 0:
            raise FilterError("from", f"from {raw!r}: before 1970")
        if ns >= 2**63:         # (past 2262-04-11: a time in ns no longer fits the store's Int64)
            raise FilterError("from", f"from {raw!r}: after 2262-04-11, the last time in int64 ns")
        return None, ns
    raise FilterError("from", f"from {raw!r}: expected a sequence number, {{\"time_ns\": T}} or an ISO-8601 time")


def _store_rows(store, index, engine_keys, lo: int, hi: int) -> list[bytes | None]:
    """The JSON of items ``lo``..``hi - 1`` as the store holds them (None: not stored), in the
    stream's shape: an engine row keeps only ``engine_keys``, the columns of the engine's own JSON
    (the store writer adds others, such as ``run_id``)."""
    ts = index.ts(lo, hi)
    ids = index.ids(lo, hi)
    engine = index.engine(lo, hi)
    want = {oid: k for k, oid in enumerate(ids)}
    got: list[bytes | None] = [None] * len(ids)
    f = OpportunityFilter(types=[], since_ns=int(ts.min()), until_ns=int(ts.max()) + 1)
    cursor = None
    while True:
        table, cursor = store.opportunities(f, STORED_PAGE_ROWS, cursor)
        for row in table.to_pylist():
            k = want.get(str(row["opportunity_id"]))
            if k is not None and got[k] is None:
                if engine[k] and engine_keys:
                    row = {c: v for c, v in row.items() if c in engine_keys}
                got[k] = orjson.dumps(row)
        if cursor is None:
            return got


async def catch_up(service, client, start: int) -> int:
    """Queue for ``client`` the opportunities ``start``.. that memory no longer holds, from the store
    (a gap for any the store cannot give); returns where memory takes over. Between its awaits
    memory may roll further: it goes on until the position is held in memory."""
    ch = service.hub.channels[CHANNEL]
    pos = start
    while pos < ch.oldest_seq:
        end = min(pos + STORE_ITEMS_MAX, ch.oldest_seq)
        await client.wait_room()
        try:
            rows = await anyio.to_thread.run_sync(_store_rows, service.store, service.index,
                                                  service.engine_keys, pos, end)
        except StoreError as e:
            rows, reason = [None] * (end - pos), f"the store could not answer: {e}"
        else:
            reason = "not in the store (not written yet, or written elsewhere)"
        _queue_runs(client, pos, rows, reason, service.hub.channels[CHANNEL])
        pos = end
    return pos


def _queue_runs(client, first: int, rows: list, reason: str, channel) -> None:
    """Frames of the found rows (in the client's format) and gaps for the missing ones, in sequence order."""
    handed_at = channel.handed_at
    n = len(rows)
    if not n:
        return
    cuts = [0] + [k for k in range(1, n) if (rows[k] is None) != (rows[k - 1] is None)] + [n]
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        if rows[lo] is None:
            client.queue.put_nowait((CHANNEL, first + lo, first + hi - 1,
                                     gap_text(CHANNEL, first + lo, first + hi - 1, hi - lo, reason)))
            continue
        for k in range(lo, hi, FRAME_ITEMS_MAX):
            top = min(hi, k + FRAME_ITEMS_MAX)
            client.queue.put_nowait((CHANNEL, first + k, first + top - 1,
                                     channel.frame(first + k, rows[k:top], handed_at(first + k),
                                                   client.formats.get(CHANNEL, "json"))))


def _stored_only(store, index, t_ns: int, cursor):
    """One page of store rows from ``t_ns`` on that this server did not number: (rows, next cursor)."""
    table, nxt = store.opportunities(OpportunityFilter(types=[], since_ns=t_ns), STORED_PAGE_ROWS, cursor)
    rows = table.to_pylist()
    numbered = index.has_ids([str(r["opportunity_id"]) for r in rows])
    return [orjson.dumps(r) for r, known in zip(rows, numbered) if not known], nxt


async def stored_since(service, client, t_ns: int) -> None:
    """Queue the store's rows from ``t_ns`` on that this server never numbered, in (time, id) order."""
    cursor = None
    while True:
        await client.wait_room()
        try:
            rows, cursor = await anyio.to_thread.run_sync(_stored_only, service.store, service.index, t_ns, cursor)
        except StoreError as e:
            client.queue.put_nowait(("", -1, -1, orjson.dumps(
                {"type": "error", "field": "from", "message": f"the store could not answer: {e}"}).decode()))
            return
        arrow = client.formats.get(CHANNEL) == "arrow"
        for i in range(0, len(rows), FRAME_ITEMS_MAX):
            part = rows[i:i + FRAME_ITEMS_MAX]
            if arrow:
                msg = Shared(arrow_message({"type": "stored", "channel": CHANNEL}, items_table(part)), binary=True)
            else:
                msg = (b'{"type":"stored","channel":"opportunities","rows":[' + b",".join(part) + b"]}").decode()
            client.queue.put_nowait((CHANNEL, -1, -1, msg))
        if cursor is None:
            return
