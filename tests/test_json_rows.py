"""workbench/api/json_rows.py against its twin, ``orjson.dumps`` of each row dict: the same bytes
for every column type it encodes, on edge values, slices, chunks and seeded random data; and the
tables it does not encode go back to orjson (frames.py ``row_items``)."""

from __future__ import annotations

import math
import random
import struct

import orjson
import pyarrow as pa
import pytest

from workbench.api.frames import KERNEL_ROWS_MIN, row_items
from workbench.api.json_rows import row_bytes, rows_json

pytestmark = pytest.mark.timeout(120)

FLOATS = [0.0, -0.0, 0.1, 1 / 3, 1e-7, 1e-5, 1e15, 1e16, 1e22, 123456789.123, 5e-324, 2.2250738585072014e-308,
          1.7976931348623157e308, 2.0 ** 60, -2.5, math.nan, math.inf, -math.inf, 0.111137229, 8000.0]
STRINGS = ["", "plain", 'a"b', "back\\slash", "x,y},{\"f\":", "/", "\x7f", "é€𝄞", "\u2028\u2029", "\ufeff",
           "".join(chr(c) for c in range(32)), "So11111111111111111111111111111111111111112"]


def _twin(table: pa.Table) -> list[bytes]:
    return [orjson.dumps(r) for r in table.to_pylist()]


def _edge_table(n: int) -> pa.Table:
    pick = lambda xs, i: xs[i % len(xs)]                                        # noqa: E731
    return pa.table({
        "timestamp_ns": pa.array([1_750_000_000_000_000_000 + i for i in range(n)], pa.int64()),
        "i64": pa.array([pick([0, -1, 2**63 - 1, -2**63, 42], i) for i in range(n)], pa.int64()),
        "u64": pa.array([pick([0, 2**64 - 1, 2**63, 7], i) for i in range(n)], pa.uint64()),
        "i8": pa.array([pick([-128, 127, 0], i) for i in range(n)], pa.int8()),
        "u32": pa.array([pick([0, 2**32 - 1], i) for i in range(n)], pa.uint32()),
        "f64": pa.array([pick(FLOATS, i) for i in range(n)], pa.float64()),
        "f32": pa.array([pick(FLOATS, i) for i in range(n)], pa.float32()),
        "flag": pa.array([i % 3 == 0 for i in range(n)], pa.bool_()),
        "s": pa.array([pick(STRINGS, i) for i in range(n)], pa.string()),
        "ls": pa.array([pick(STRINGS, i + 3) for i in range(n)], pa.large_string()),
        "pools": pa.array([pick([[], ["PoolA"], ["a,b", '"q"', "é"], [""]], i) for i in range(n)],
                          pa.list_(pa.string())),
    })


def test_every_column_type_on_edge_values_is_orjsons_text():
    t = _edge_table(len(FLOATS) * 3)
    assert row_bytes(t) == _twin(t)
    assert row_items(t) == _twin(t)


def test_slices_and_chunks_read_their_own_rows():
    t = _edge_table(60)
    for off, n in ((0, 1), (7, 20), (59, 1), (13, 47)):
        part = t.slice(off, n)
        assert row_bytes(part) == _twin(part), (off, n)
    chunked = pa.concat_tables([t.slice(0, 10), t.slice(30, 15), t.slice(5, 1)])
    assert chunked.column("s").num_chunks == 3
    assert row_bytes(chunked) == _twin(chunked)


def test_the_buffer_holds_each_row_once_ended_by_a_newline():
    t = _edge_table(9)
    buf, offs = rows_json(t)
    assert len(offs) == 10 and offs[0] == 0 and offs[-1] == len(buf)
    for i, b in enumerate(_twin(t)):
        assert buf[offs[i]:offs[i + 1]].tobytes() == b + b"\n"


def test_seeded_random_floats_ints_and_strings():
    rnd = random.Random(19)
    n = 500
    floats = [struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(n)]
    ints = [rnd.randrange(-2**63, 2**63) for _ in range(n)]
    alphabet = [chr(c) for c in range(0, 0x80)] + ["é", "€", "𝄞", "\u2028"]
    strings = ["".join(rnd.choice(alphabet) for _ in range(rnd.randrange(12))) for _ in range(n)]
    lists = [[rnd.choice(strings) for _ in range(rnd.randrange(4))] for _ in range(n)]
    t = pa.table({"f": floats, "i": ints, "s": strings, "l": pa.array(lists, pa.list_(pa.string()))})
    assert row_bytes(t) == _twin(t)


def test_row_items_gives_the_same_bytes_below_and_above_the_kernels_threshold():
    for n in (1, KERNEL_ROWS_MIN - 1, KERNEL_ROWS_MIN, KERNEL_ROWS_MIN + 7):
        t = _edge_table(n)
        assert row_items(t) == _twin(t), n


def test_nulls_other_types_and_empty_tables_go_back_to_orjson():
    with_nulls = pa.table({"a": pa.array([1, None], pa.int64()), "b": ["x", "y"]})
    null_in_list = pa.table({"l": pa.array([["a", None]], pa.list_(pa.string()))})
    other = pa.table({"t": pa.array([1], pa.timestamp("us")), "d": pa.array(["x"]).dictionary_encode()})
    for t in (with_nulls, null_in_list, other):
        assert rows_json(t) is None
        assert row_items(t) == [orjson.dumps(r) for r in t.to_pylist()]
    empty = _edge_table(3).slice(0, 0)
    assert rows_json(empty) is None and row_items(empty) == []
    assert row_items(pa.table({"a": [1, 2]}).select([])) == [b"{}", b"{}"]
