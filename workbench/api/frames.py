"""The WebSocket messages a channel sends: rows frames (JSON or Arrow) and gap notices.

A rows frame is built from items that are JSON already (joined, never re-encoded), once for
every client that gets it. Its ``handed_ns`` is the wall time (time.time_ns()) at which the
run handed on the batch the frame's first item came from, so a client can measure
engine-to-client latency as its own time.time_ns() at receipt minus ``handed_ns``.
"""

from __future__ import annotations

import orjson
import pyarrow as pa

from .json_rows import row_bytes

FRAME_ITEMS_MAX = 1_000          # items in one frame (a backlog goes out in frames this size)
FORMATS = ("json", "arrow")      # how a subscription's rows frames are encoded
ARROW_CHANNELS = ("opportunities", "transactions")     # channels that offer Arrow frames
ARROW_HEADER_KEY = b"frame"      # schema metadata key of an Arrow frame's header (the JSON frame's other fields)
# Below this many rows a table's JSON is made from its row dicts in one orjson call, above it by the
# column kernels (json_rows.py). The kernels cost a fixed share per column, which a small batch
# does not repay (benchmarks/bench_ws_rows.py measures both); and each of their Arrow and jitted
# calls gives the GIL up, then waits to take it back from the server's other threads.
KERNEL_ROWS_MIN = 256


def frame_bytes(channel: str, first: int, items: list[bytes], handed_ns: int, seqs: list[int] | None = None) -> bytes:
    """One frame of items ``first``.. of ``channel`` (UTF-8 JSON). ``seqs``: the items' own sequence
    numbers when they are not contiguous (a filtered subscription); ``last_seq`` is then the last of them."""
    last = seqs[-1] if seqs is not None else first + len(items) - 1
    return _frame(channel, first, last, handed_ns, seqs, b"[" + b",".join(items) + b"]")


def frame_bytes_of_rows(channel: str, first: int, rows: list[dict], handed_ns: int,
                        seqs: list[int] | None = None) -> bytes:
    """``frame_bytes`` of rows not encoded yet: the whole array in one orjson call (the same bytes as
    encoding row by row and joining, without a Python call per row)."""
    last = seqs[-1] if seqs is not None else first + len(rows) - 1
    return _frame(channel, first, last, handed_ns, seqs, orjson.dumps(rows))


def _frame(channel: str, first: int, last: int, handed_ns: int, seqs: list[int] | None, rows_array: bytes) -> bytes:
    head = b'{"type":"rows","channel":"%s","first_seq":%d,"last_seq":%d,"handed_ns":%d,' % (
        channel.encode(), first, last, handed_ns)
    if seqs is not None:
        head += b'"seqs":' + orjson.dumps(seqs) + b","
    return b"".join((head, b'"rows":', rows_array, b"}"))


def table_rows(table: pa.Table, names: list[str] | None = None, extra: dict | None = None) -> list[dict]:
    """``table.to_pylist()``, read column by column and zipped into a dict per row (to_pylist
    builds each row key by key in Python, several times slower on wide tables). ``names``: the
    rows' keys in place of the column names (as many); ``extra``: keys and values added to every
    row, after the columns. Neither reads nor builds an Arrow table, so the GIL is held throughout."""
    names = table.schema.names if names is None else names
    rows = [dict(zip(names, values)) for values in zip(*(table.column(i).to_pylist() for i in range(len(names))))]
    if extra:
        for r in rows:
            r.update(extra)
    return rows


def row_items(table: pa.Table) -> list[bytes]:
    """Each row of ``table`` as JSON bytes, the same bytes as ``orjson.dumps`` of each row dict.

    Column by column, without Python per row (json_rows.py), when the table has at least
    ``KERNEL_ROWS_MIN`` rows and every column is of a type it encodes (the engine's are).
    Otherwise from its row dicts (``dict_items``)."""
    n = table.num_rows
    if not n:
        return []
    if not table.schema.names:
        return [b"{}"] * n
    fast = row_bytes(table) if n >= KERNEL_ROWS_MIN else None
    if fast is not None:
        return fast
    return dict_items(table_rows(table))


def dict_items(rows: list[dict]) -> list[bytes]:
    """``[orjson.dumps(r) for r in rows]`` for rows of the same keys, in ONE orjson call (a call per
    row costs several times more): the array is cut between its rows at ``},{"<first key>":``. An
    unescaped quote cannot occur inside a JSON string, so outside strings that marks the start of
    a row, unless a row holds objects of its own whose first key is the same; then the cut count
    is wrong and the rows are encoded one by one instead."""
    n = len(rows)
    if not n:
        return []
    if not rows[0]:
        return [b"{}"] * n
    body = orjson.dumps(rows)
    sep = b'},{"' + orjson.dumps(next(iter(rows[0])))[1:] + b":"
    parts = body[1:-1].split(sep)
    if len(parts) != n:
        return [orjson.dumps(r) for r in rows]
    if n == 1:
        return parts
    head = sep[2:]                      # '{"<first key>":'
    return [parts[0] + b"}"] + [head + p + b"}" for p in parts[1:-1]] + [head + parts[-1]]


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
    return arrow_message(header, table)


def arrow_message(header: dict, table: pa.Table) -> bytes:
    """``table`` as one Arrow IPC stream, ``header`` (the JSON message's other fields) in its schema's
    metadata under ``frame``."""
    table = table.replace_schema_metadata({ARROW_HEADER_KEY: orjson.dumps(header)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def items_table(items: list[bytes], schema: pa.Schema | None = None) -> pa.Table:
    """Rows already encoded as JSON objects, as an Arrow table (for an Arrow subscriber's frames made
    from a channel's memory or the store). With ``schema`` (the channel's engine table) and rows of
    exactly its columns, the columns take its types, so such a frame reads like a live one (JSON
    alone cannot tell a uint64 from an int64)."""
    rows = [orjson.loads(i) for i in items]
    if schema is not None and rows and list(rows[0]) == schema.names:
        try:
            return pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):   # a value outside its type: as JSON says
            pass
    try:
        return pa.Table.from_pylist(rows)
    except OverflowError:               # an unsigned 64-bit value past int64 (an amount): that column as uint64
        names = list(dict.fromkeys(k for r in rows for k in r))
        return pa.table({k: _column([r.get(k) for r in rows]) for k in names})


def _column(values: list) -> pa.Array:
    try:
        return pa.array(values)
    except OverflowError:
        return pa.array(values, pa.uint64())
