"""The text of the WebSocket messages a channel sends: rows frames and gap notices.

A rows frame is built from items that are JSON already (joined, never re-encoded), once for
every client that gets it. Its ``handed_ns`` is the wall time (time.time_ns()) at which the
run handed on the batch the frame's first item came from, so a client can measure
engine-to-client latency as its own time.time_ns() at receipt minus ``handed_ns``.
"""

from __future__ import annotations

import orjson
import pyarrow as pa

FRAME_ITEMS_MAX = 1_000          # items in one frame (a backlog goes out in frames this size)
FORMATS = ("json", "arrow")      # how a subscription's rows frames are encoded
ARROW_HEADER_KEY = b"frame"      # schema metadata key of an Arrow frame's header (the JSON frame's other fields)


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


def arrow_frame(channel: str, table: pa.Table, first: int, handed_ns: int, seqs: list[int] | None = None) -> bytes:
    """A rows frame as one Arrow IPC stream (a binary WebSocket message): the rows are the table,
    the JSON frame's other fields (type, channel, first_seq, last_seq, handed_ns, seqs) are the
    schema's metadata under ``frame``."""
    last = seqs[-1] if seqs is not None else first + table.num_rows - 1
    header = {"type": "rows", "channel": channel, "first_seq": first, "last_seq": last, "handed_ns": handed_ns}
    if seqs is not None:
        header["seqs"] = seqs
    table = table.replace_schema_metadata({ARROW_HEADER_KEY: orjson.dumps(header)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()
