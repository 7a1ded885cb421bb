"""WebSocket channels: per-channel sequence numbers, memory for resumes, bounded client queues.

Everything here runs on the server's event loop: the engine's rows reach it by the server's
pump (server.py), which reads what the background run collected once per tick, so the engine
thread never waits on a socket. A channel numbers its items 0, 1, 2, ...; a frame carries a
run of them (``first_seq`` .. ``last_seq``), encoded once and shared by every client. A
client's queue holds at most ``queue_frames`` frames: a frame that does not fit is dropped for
that client alone and counted, and before the channel's next frame the client gets
``{"type": "gap", "channel", "missed", "first_seq", "last_seq"}`` saying exactly what it lost.
A subscription with ``from`` first receives what the channel still holds in memory from that
sequence (a gap message for what it no longer holds), then the live stream, without a hole or
a repeat: both happen in one step of the loop.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

import orjson

CHANNELS = ("opportunities", "stats", "latency")
HISTORY_ITEMS = 200_000          # items a channel keeps for resumes
FRAME_ITEMS_MAX = 1_000          # items in one frame (a backlog goes out in frames this size)
QUEUE_FRAMES = 1_024             # frames a client may have waiting before it starts missing some


def frame_text(channel: str, first: int, items: list[bytes]) -> str:
    """One frame of items ``first``.. of ``channel`` (items are JSON already: joined, not re-encoded)."""
    head = b'{"type":"rows","channel":"%s","first_seq":%d,"last_seq":%d,"rows":[' % (
        channel.encode(), first, first + len(items) - 1)
    return (head + b",".join(items) + b"]}").decode()


def _gap_text(channel: str, first: int, last: int, missed: int, reason: str) -> str:
    return orjson.dumps({"type": "gap", "channel": channel, "missed": missed, "first_seq": first,
                         "last_seq": last, "reason": reason}).decode()


@dataclass
class Channel:
    name: str
    next_seq: int = 0
    history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=HISTORY_ITEMS))

    @property
    def oldest_seq(self) -> int:
        return self.next_seq - len(self.history)


@dataclass(eq=False)          # identity: a client is one socket
class Client:
    """One socket: its queue of (channel, first, last, bytes) and its pending gaps per channel."""
    queue_frames: int
    channels: set = field(default_factory=set)
    queue: asyncio.Queue = field(default=None)
    gaps: dict = field(default_factory=dict)            # channel -> [first_missed, last_missed, count]
    sent: int = 0
    missed: int = 0
    hub_missed: list = field(default_factory=lambda: [0])   # the hub's total, shared by its clients

    def __post_init__(self):
        # unbounded for replies and notices; ``offer`` keeps the frames within ``queue_frames``
        self.queue = asyncio.Queue()

    def flush_gap(self, channel: str) -> None:
        """Queue the channel's pending gap notice if there is room (before any later frame of it)."""
        gap = self.gaps.get(channel)
        if gap is not None and self.queue.qsize() < self.queue_frames:
            self.queue.put_nowait((channel, gap[0], gap[1],
                                   _gap_text(channel, gap[0], gap[1], gap[2], "the client read too slowly")))
            del self.gaps[channel]

    def offer(self, channel: str, first: int, last: int, data: str) -> bool:
        """Queue a frame unless the queue is full (then count it as missed); never waits."""
        self.flush_gap(channel)
        if self.queue.qsize() >= self.queue_frames:
            n = last - first + 1
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


class Hub:
    """The channels and the subscribed clients."""

    def __init__(self, queue_frames: int = QUEUE_FRAMES, history_items: int = HISTORY_ITEMS):
        self.channels = {c: Channel(c, history=collections.deque(maxlen=history_items)) for c in CHANNELS}
        self.clients: set[Client] = set()
        self.queue_frames = queue_frames
        self.frames_sent = 0            # counted by the socket writers
        self.items_published = 0
        self._missed = [0]              # items dropped for slow clients, over every client ever connected

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

    def publish(self, channel: str, items: list[bytes]) -> None:
        """Number ``items`` in ``channel``, keep them for resumes, queue them for its subscribers."""
        if not items:
            return
        ch = self.channels[channel]
        first = ch.next_seq
        ch.history.extend(items)
        ch.next_seq += len(items)
        self.items_published += len(items)
        subs = [c for c in self.clients if channel in c.channels]
        for i in range(0, len(items), FRAME_ITEMS_MAX):
            part = items[i:i + FRAME_ITEMS_MAX]
            data = frame_text(channel, first + i, part)
            for c in subs:
                c.offer(channel, first + i, first + i + len(part) - 1, data)

    def flush_gaps(self) -> None:
        """Pending gap notices of clients that have room again (called every tick: a client that
        missed the last frames of a burst hears of it without waiting for the next frame)."""
        for c in self.clients:
            for channel in list(c.gaps):
                c.flush_gap(channel)

    def subscribe(self, c: Client, channels: list[str], start: int | None) -> dict:
        """Subscribe ``c``; with ``start`` queue the channel's items from that sequence first."""
        next_seq = {}
        for name in channels:
            ch = self.channels[name]
            if start is not None and name not in c.channels:
                begin = max(start, ch.oldest_seq)
                if start < ch.oldest_seq:
                    missed = ch.oldest_seq - start
                    c.queue.put_nowait((name, start, ch.oldest_seq - 1, _gap_text(
                        name, start, ch.oldest_seq - 1, missed, "older than the server's memory")))
                hist = ch.history
                skip = begin - ch.oldest_seq
                items = [hist[j] for j in range(skip, len(hist))]
                for i in range(0, len(items), FRAME_ITEMS_MAX):
                    part = items[i:i + FRAME_ITEMS_MAX]
                    c.offer(name, begin + i, begin + i + len(part) - 1, frame_text(name, begin + i, part))
            c.channels.add(name)
            next_seq[name] = ch.next_seq
        return next_seq

    def unsubscribe(self, c: Client, channels: list[str]) -> None:
        for name in channels:
            c.channels.discard(name)
            c.gaps.pop(name, None)
