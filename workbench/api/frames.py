"""The text of the WebSocket messages a channel sends: rows frames and gap notices.

A rows frame is built from items that are JSON already (joined, never re-encoded), once for
every client that gets it. Its ``handed_ns`` is the wall time (time.time_ns()) at which the
run handed on the batch the frame's first item came from, so a client can measure
engine-to-client latency as its own time.time_ns() at receipt minus ``handed_ns``.
"""

from __future__ import annotations

import orjson

FRAME_ITEMS_MAX = 1_000          # items in one frame (a backlog goes out in frames this size)


def frame_text(channel: str, first: int, items: list[bytes], handed_ns: int, seqs: list[int] | None = None) -> str:
    """One frame of items ``first``.. of ``channel``. ``seqs``: the items' own sequence numbers when
    they are not contiguous (a filtered subscription); ``last_seq`` is then the last of them."""
    last = seqs[-1] if seqs is not None else first + len(items) - 1
    head = b'{"type":"rows","channel":"%s","first_seq":%d,"last_seq":%d,"handed_ns":%d,' % (
        channel.encode(), first, last, handed_ns)
    if seqs is not None:
        head += b'"seqs":' + orjson.dumps(seqs) + b","
    return (head + b'"rows":[' + b",".join(items) + b"]}").decode()


def gap_text(channel: str, first: int, last: int, missed: int, reason: str) -> str:
    return orjson.dumps({"type": "gap", "channel": channel, "missed": missed, "first_seq": first,
                         "last_seq": last, "reason": reason}).decode()
