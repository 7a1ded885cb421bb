"""A blocks file (capture/block_file.py: backfilled blocks as an Arrow IPC file) with random bytes
changed, cut or added (bounded, fixed seed): opening it, walking its frames and reading its landed
columns either works or raises CaptureError naming the file; no other error escapes. A scratch
version of this found Arrow errors the reader did not catch (a damaged type, a column name that is
not UTF-8 or is repeated, an offsets buffer of an odd length) and batches it did not validate."""

from __future__ import annotations

import random
import struct

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from byte_damage import damaged
from workbench.capture import open_capture
from workbench.capture.block_file import SCHEMA, BlockFileReader, schema_with
from workbench.errors import CaptureError

pytestmark = pytest.mark.timeout(300)


def _blocks_file(path, rng: random.Random, rows: int = 6) -> bytes:
    cols = {}
    for f in SCHEMA:
        if f.name == "frame":
            cols[f.name] = pa.array([rng.randbytes(rng.randrange(20, 200)) for _ in range(rows)], f.type)
        elif pa.types.is_integer(f.type):
            cols[f.name] = pa.array([rng.randrange(100) for _ in range(rows)], f.type)
        else:
            cols[f.name] = pa.array([None if rng.random() < 0.5 else "x" for _ in range(rows)], f.type)
    table = pa.table(cols, schema=schema_with({"skipped": []}))
    with ipc.new_file(path, table.schema) as w:
        w.write_table(table, max_chunksize=3)
    return path.read_bytes()


def test_a_damaged_blocks_file_reads_or_says_capture_error(tmp_path):
    rng = random.Random(24)
    good = _blocks_file(tmp_path / "good.arrow", rng)
    assert sum(b.n for b in open_capture(tmp_path / "good.arrow")) == 6
    refused = 0
    for _ in range(1500):
        path = tmp_path / "damaged.arrow"
        path.write_bytes(damaged(good, rng))
        try:
            reader = BlockFileReader(path)
            for _ in reader:
                pass
            reader.landed()
        except CaptureError as e:
            assert str(path) in str(e)
            refused += 1
    assert refused > 300


def test_frame_offsets_out_of_order_are_named_by_frame_and_byte(tmp_path):
    """The frames' offsets are the reader's own check (not Arrow's validation), which says which
    frame and where in the file."""
    offsets = pa.py_buffer(struct.pack("<4q", 0, 40, 20, 60))
    cols = {f.name: pa.array([1, 2, 3], f.type) if pa.types.is_integer(f.type) else pa.nulls(3, f.type)
            for f in SCHEMA}
    cols["frame"] = pa.Array.from_buffers(pa.large_binary(), 3, [None, offsets, pa.py_buffer(bytes(60))])
    table = pa.table(cols, schema=schema_with({}))
    path = tmp_path / "backwards.arrow"
    with ipc.new_file(path, table.schema) as w:
        w.write_table(table)
    with pytest.raises(CaptureError) as e:
        for _ in BlockFileReader(path):
            pass
    assert e.value.frame == 1 and e.value.offset is not None and "out of order" in e.value.reason
