"""WebSocket channels: per-channel sequence numbers, memory for resumes, bounded client queues.

Everything here runs on the server's event loop: the engine's rows reach it by the server's
pump (service.py), which the run wakes when it hands rows on, so the engine thread never
waits on a socket. A channel numbers its items 0, 1, 2, ...; a frame carries a run of them
(``first_seq`` .. ``last_seq``) and ``handed_ns``, the wall time (time.time_ns()) at which the
engine handed on the rows of the batch the frame's first item came from (sinks.py ``SinkThread.put``:
what waits after that counts); it is encoded and framed once and shared by every client
(shared_frame.py). A client's queue holds at most ``queue_frames`` frames: a frame that does not
fit is dropped for that client alone and counted, and before the channel's next frame the
client gets ``{"type": "gap", "channel", "missed", "first_seq", "last_seq"}`` saying exactly
what it lost. A subscription with ``from`` first receives what the channel still holds in
memory from that sequence (older items: from the store for opportunities, resume.py; a gap
message otherwise), then the live stream, without a hole or a repeat: the memory part and
joining the live stream happen in one step of the loop. Each live frame written to a socket is
timed from its rows' hand-off (``frame_ns``: /v1/latency and /metrics as ``ws_frame_ns``): the
server process's share of the engine-to-client latency that a client reads from ``handed_ns``.

The ``transactions`` channel (tx_channel.py) keeps Arrow tables rather than encoded items and
encodes each batch once per distinct subscription filter.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import time
from dataclasses import dataclass, field

import pyarrow as pa

from ..metrics.hist import Histogram, record_held
from .defaults import HISTORY_ITEMS, QUEUE_FRAMES
from .frames import FRAME_ITEMS_MAX, arrow_frame, frame_bytes, gap_text, items_table
from .shared_frame import Shared
from .tx_channel import TX_HISTORY_ITEMS, TxChannel, TxFilter

CHANNELS = ("opportunities", "stats", "latency", "transactions")


@dataclass
class Channel:
    """A channel of encoded items: the newest ``history.maxlen`` of them, and the hand-off time of
    each batch they came in (``marks``: first sequence and time.time_ns() of each batch)."""
    name: str
    next_seq: int = 0
    history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=HISTORY_ITEMS))
    schema: object = None       # the newest engine table's schema: Arrow frames made from JSON items take its types
    _mark_seq: list = field(default_factory=list)
    _mark_ns: list = field(default_factory=list)

    @property
    def oldest_seq(self) -> int:
        return self.next_seq - len(self.history)

    def add(self, items: list[bytes], handed_ns: int) -> int:
        first = self.next_seq
        self.history.extend(items)
        self.next_seq += len(items)
        self._mark_seq.append(first)
        self._mark_ns.append(handed_ns)
        k = bisect.bisect_right(self._mark_seq, self.oldest_seq) - 1
        if k > 1024 and k > len(self._mark_seq) // 2:      # forget marks of batches memory no longer holds
            del self._mark_seq[:k], self._mark_ns[:k]
        return first

    def handed_at(self, seq: int) -> int:
        """Hand-off time of the batch item ``seq`` came in."""
        k = bisect.bisect_right(self._mark_seq, seq) - 1
        return self._mark_ns[max(k, 0)] if self._mark_ns else 0

    def frames(self, begin: int, fmt: str = "json") -> list[tuple[int, int, Shared]]:
        """(first, last, message) frames of the items held from ``begin`` (>= oldest_seq) on, JSON or
        (``fmt`` 'arrow') Arrow."""
        hist, out = self.history, []
        skip = begin - self.oldest_seq
        items = [hist[j] for j in range(skip, len(hist))]
        for i in range(0, len(items), FRAME_ITEMS_MAX):
            part = items[i:i + FRAME_ITEMS_MAX]
            out.append((begin + i, begin + i + len(part) - 1,
                        self.frame(begin + i, part, self.handed_at(begin + i), fmt)))
        return out

    def frame(self, first: int, items: list[bytes], handed_ns: int, fmt: str, table=None) -> Shared:
        """One frame of ``items`` (numbered from ``first``); an Arrow one reads ``table`` (the same rows)
        when given, else the items."""
        if fmt == "arrow":
            return Shared(arrow_frame(self.name, table if table is not None else items_table(items, self.schema),
                                      first, handed_ns), binary=True)
        return Shared(frame_bytes(self.name, first, items, handed_ns))


class ClientGone(Exception):
    """The client's socket closed while something waited to send to it."""


@dataclass(eq=False)          # identity: a client is one socket
class Client:
    """One socket: its queue of (channel, first, last, message), its pending gaps per channel and its
    subscription filters (transactions). A message is text (a reply, a notice, a frame for this client
    alone) or a ``Shared`` frame, the same object for every client that gets it."""
    queue_frames: int
    channels: set = field(default_factory=set)
    queue: asyncio.Queue = field(default=None)
    gaps: dict = field(default_factory=dict)            # channel -> [first_missed, last_missed, count]
    filters: dict = field(default_factory=dict)         # channel -> TxFilter (transactions only)
    formats: dict = field(default_factory=dict)         # channel -> 'json' or 'arrow' (opportunities, transactions)
    sent: int = 0
    missed: int = 0
    hub_missed: list = field(default_factory=lambda: [0])   # the hub's total, shared by its clients
    room: asyncio.Event = field(default=None)           # set by the socket writer each time it takes a frame
    closed: bool = False                                # the socket writer has ended
    # the socket's write of a built frame at once (ws_protocol.py; None under another server): False when
    # something would hold it back; ``busy``: the socket writer holds a frame (later ones queue behind it)
    write_now: object = None
    busy: bool = False

    def __post_init__(self):
        # unbounded for replies and notices; ``offer`` keeps the frames within ``queue_frames``
        self.queue = asyncio.Queue()
        self.room = asyncio.Event()

    def flush_gap(self, channel: str) -> None:
        """Queue the channel's pending gap notice if there is room (before any later frame of it)."""
        gap = self.gaps.get(channel)
        if gap is not None and self.queue.qsize() < self.queue_frames:
            self.queue.put_nowait((channel, gap[0], gap[1],
                                   gap_text(channel, gap[0], gap[1], gap[2], "the client read too slowly")))
            del self.gaps[channel]

    def offer(self, channel: str, first: int, last: int, data: str | Shared, n: int | None = None) -> bool:
        """Queue a frame of ``n`` items (default: ``last - first + 1``) unless the queue is full (then
        count them as missed); never waits."""
        self.flush_gap(channel)
        if self.queue.qsize() >= self.queue_frames:
            n = last - first + 1 if n is None else n
            if channel not in self.gaps:
                self.gaps[channel] = [first, last, n]
            else:
                g = self.gaps[channel]
                g[1], g[2] = last, g[2] + n
            self.missed += n
            self.hub_missed[0] += n
            return False
        self.queue.put_nowait((channel, first, last, data))
        return True

    def send_now(self, data: Shared) -> bool:
        """Write a live frame to the socket at once when nothing is ahead of it (no frame queued or
        in the writer's hands, no gap to tell) and the socket takes it now; False: ``offer`` it.
        A frame written here skips the writer task's turn of the loop and the ASGI send's calls."""
        if self.write_now is None or self.busy or self.gaps or not self.queue.empty():
            return False
        if not self.write_now(data.wire):
            return False
        self.sent += 1
        return True

    async def wait_room(self) -> None:
        """Until the queue holds fewer than ``queue_frames`` frames (a backlog waits for its reader
        instead of being dropped: only this client's own catch-up waits)."""
        while self.queue.qsize() >= self.queue_frames:
            if self.closed:
                raise ClientGone
            self.room.clear()
            await self.room.wait()
        if self.closed:
            raise ClientGone


FRAME_HIST = "ws_frame_ns"      # a live frame's rows handed off by the engine (or published) to its write on a socket (ns)


class Hub:
    """The channels and the subscribed clients."""

    def __init__(self, queue_frames: int = QUEUE_FRAMES, history_items: int = HISTORY_ITEMS,
                 tx_history_items: int = TX_HISTORY_ITEMS):
        self.channels = {c: Channel(c, history=collections.deque(maxlen=history_items))
                         for c in CHANNELS if c != "transactions"}
        self.tx = TxChannel(tx_history_items)
        self.channels["transactions"] = self.tx
        self.clients: set[Client] = set()
        self.queue_frames = queue_frames
        self.frames_sent = 0            # counted by the socket writers, and by publish for those it writes
        self.items_published = 0
        self._missed = [0]              # items dropped for slow clients, over every client ever connected
        self.frame_ns = Histogram(name=FRAME_HIST)

    def sent_live(self, live_ns: int) -> None:
        """Time a live frame written to a socket now, its rows handed on at ``live_ns`` (time.time_ns)."""
        h = self.frame_ns
        record_held(h.counts, h.stats, h.h, max(0, time.time_ns() - live_ns))     # (the wall clock may step back)

    def new_client(self) -> Client:
        c = Client(self.queue_frames, hub_missed=self._missed)
        self.clients.add(c)
        return c

    def drop_client(self, c: Client) -> None:
        self.clients.discard(c)

    @property
    def missed(self) -> int:
        return self._missed[0]

    def subscribed(self, channel: str) -> bool:
        return any(channel in c.channels for c in self.clients)

    def publish(self, channel: str, items: list[bytes], handed_ns: int | None = None, table=None,
                schema: pa.Schema | None = None) -> int:
        """Number ``items`` in ``channel``, keep them for resumes, queue them for its subscribers;
        ``handed_ns``: when the engine handed them on (default: now); ``table``: the same rows as an
        Arrow table (the engine's), or what makes it (called only if an Arrow subscriber reads it);
        ``schema``: its schema (default: the table's). Returns the first's number."""
        ch = self.channels[channel]
        if not items:
            return ch.next_seq
        handed_ns = time.time_ns() if handed_ns is None else handed_ns
        first = ch.add(items, handed_ns)
        if schema is not None or isinstance(table, pa.Table):
            ch.schema = schema if schema is not None else table.schema
        self.items_published += len(items)
        by_format: dict[str, list] = {}
        for c in self.clients:
            if channel in c.channels:
                by_format.setdefault(c.formats.get(channel, "json"), []).append(c)
        if "arrow" in by_format and callable(table):
            table = table()
        for fmt, subs in by_format.items():         # each frame encoded once per format, shared by its clients
            for i in range(0, len(items), FRAME_ITEMS_MAX):
                part = items[i:i + FRAME_ITEMS_MAX]
                data = ch.frame(first + i, part, handed_ns, fmt,
                                table.slice(i, len(part)) if isinstance(table, pa.Table) else None)
                data.live_ns = handed_ns
                for c in subs:
                    if c.send_now(data):
                        self.frames_sent += 1
                        self.sent_live(handed_ns)
                    else:
                        c.offer(channel, first + i, first + i + len(part) - 1, data)
        return first

    def publish_transactions(self, table, handed_ns: int | None = None) -> None:
        """Number the rows of a tx_features table; encode them once per distinct filter of its subscribers."""
        n = table.num_rows
        if not n:
            return
        handed_ns = time.time_ns() if handed_ns is None else handed_ns
        self.items_published += n
        subs = [c for c in self.clients if "transactions" in c.channels]
        self.tx.publish(table, handed_ns, subs)

    def flush_gaps(self) -> None:
        """Pending gap notices of clients that have room again (a client that missed the last frames of
        a burst hears of it without waiting for the next frame)."""
        for c in self.clients:
            for channel in list(c.gaps):
                c.flush_gap(channel)

    def subscribe(self, c: Client, channels: list[str], start: int | None, tx_filter: TxFilter | None = None,
                  fmt: str = "json") -> dict:
        """Subscribe ``c``; with ``start`` queue the channel's items from that sequence first. ``tx_filter``
        applies to the transactions channel, ``fmt`` (json or arrow frames) to it and opportunities."""
        next_seq = {}
        for name in channels:
            if name == "transactions":
                if name not in c.channels:
                    c.filters[name] = tx_filter
                    c.formats[name] = fmt
                    if start is not None:
                        self.tx.backlog(c, start, tx_filter, fmt)
                c.channels.add(name)
                next_seq[name] = self.tx.next_seq
                continue
            ch = self.channels[name]
            if name not in c.channels:
                c.formats[name] = fmt
            if start is not None and name not in c.channels:
                begin = max(start, ch.oldest_seq)
                if start < ch.oldest_seq:
                    missed = ch.oldest_seq - start
                    c.queue.put_nowait((name, start, ch.oldest_seq - 1, gap_text(
                        name, start, ch.oldest_seq - 1, missed, "older than the server's memory")))
                for first, last, text in ch.frames(begin, fmt):
                    c.offer(name, first, last, text)
            c.channels.add(name)
            next_seq[name] = ch.next_seq
        return next_seq

    def unsubscribe(self, c: Client, channels: list[str]) -> None:
        for name in channels:
            c.channels.discard(name)
            c.gaps.pop(name, None)
            c.filters.pop(name, None)
            c.formats.pop(name, None)
