"""The backfilled-blocks container: an Arrow IPC file of landed transactions (``workbench blocks``).

Why Arrow and not a pcapng with a custom block: the transactions column is a ``large_binary``
column, whose data buffer holds the frames back to back and whose int64 offsets buffer says
where each starts. Read through one ``np.memmap`` of the file, those two buffers ARE a
FrameBatch (``off`` = the data buffer's file offset + offsets, ``caplen`` = their differences):
no frame is copied, and the engine runs the same ``process_batch`` on it as on a pcap. The
other columns are readable by any Arrow tool (pandas, DuckDB, polars) without our code.

Layout (format ``FORMAT``), one row per landed transaction, in landed order (slot, then
index in the block):

- ``frame``            large_binary  LINKTYPE_SOLANA_LANDED frame (workbench/linktypes.py): the
                                     16-byte pseudo-header (slot, index, status) + the transaction
- ``slot``             int64         slot the block was produced in
- ``index_in_block``   int32         position of the transaction in its block, [0, n)
- ``block_time_s``     int64         the block's Unix time (s), null when the node has none
- ``err``              string        null on success, else meta.err as JSON text
- ``fee_lamports``     int64         lamports the fee payer paid
- ``compute_units_consumed`` int64   null when the node does not report it
- ``pre_token_balances`` / ``post_token_balances`` string: meta's lists as JSON text (only the
                                     accounts of the given vaults when a snapshot was given)

The schema's metadata (key ``b"workbench"``) is JSON: format, rpc URL (no credentials),
commitment, first and last slot asked, fetch time, and ``skipped``: one ``{slot, code,
message}`` per slot that has no block (skipped by the leader, or not available from the node),
as the node answered, never guessed.

The file starts with Arrow's magic ``ARROW1`` (capture/open.py tells it by that).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import CaptureError
from .frames import TS_MISSING, FrameBatch
from ..linktypes import LANDED_FAILED, LANDED_HDR_SZ, LANDED_SUCCESS, LINKTYPE_SOLANA_LANDED
from .pcap import PageReleaser, open_memmap

FORMAT = "workbench-blocks/1"
MAGIC = b"ARROW1"
META_KEY = b"workbench"
NS_PER_S = 1_000_000_000
_HDR = struct.Struct("<qIB3x")          # the pseudo-header of linktypes.py: slot, index, status
assert _HDR.size == LANDED_HDR_SZ

SCHEMA = pa.schema([
    ("frame", pa.large_binary()),
    ("slot", pa.int64()),
    ("index_in_block", pa.int32()),
    ("block_time_s", pa.int64()),
    ("err", pa.string()),
    ("fee_lamports", pa.int64()),
    ("compute_units_consumed", pa.int64()),
    ("pre_token_balances", pa.string()),
    ("post_token_balances", pa.string()),
])
# the columns this reader reads that it does not check itself (``__iter__`` checks the frames' offsets,
# and says which frame and where)
_VALIDATED = ("block_time_s", "index_in_block", "err")
LANDED_NAMES = ("success", "failed")      # the ``landed`` column the rows of a backfill replay carry


def schema_with(meta: dict) -> pa.Schema:
    return SCHEMA.with_metadata({META_KEY: json.dumps(meta).encode()})


class BlockFileReader:
    """FrameBatches over a blocks file, zero-copy (one read-only memmap of the file).

    ``meta`` is the file's metadata (skipped slots included); ``landed_columns(name, table)``
    adds ``index_in_block`` and ``landed`` to a row table by its ``packet_index``.
    ``release_lag`` as ``PcapReader``'s.
    """

    release_lag = 0

    def __init__(self, path, batch_frames: int = 16384, buf: np.ndarray | None = None):
        self.path = Path(path)
        self.batch_frames = batch_frames
        self.buf = buf if buf is not None else open_memmap(path)
        self.size = int(self.buf.shape[0])
        try:
            self._ipc = ipc.open_file(pa.BufferReader(pa.py_buffer(self.buf)))
            schema = self._ipc.schema
            names = schema.names            # (text: a damaged name is not UTF-8)
        except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
            raise CaptureError(self.path, f"not a complete blocks file ({self.size} bytes; the Arrow footer "
                                          f"at the end is missing or damaged: {e})", self.size) from None
        wrong = []
        for f in SCHEMA:
            if names.count(f.name) != 1:        # (twice is as bad as never: which one?)
                wrong.append(f"column {f.name} {'missing' if f.name not in names else 'repeated'}")
            elif schema.field(f.name).type != f.type:
                wrong.append(f"column {f.name} is {schema.field(f.name).type}, not {f.type}")
        if wrong:
            raise CaptureError(self.path, f"an Arrow file but not a blocks file: {'; '.join(wrong)}", 0)
        try:
            self.meta = json.loads((schema.metadata or {}).get(META_KEY, b"{}"))
        except ValueError as e:
            raise CaptureError(self.path, f"metadata {META_KEY.decode()!r} is not JSON ({e})", 0) from None
        self.bytes_read = 0
        self._base = self.buf.ctypes.data if self.size else 0

    @property
    def skipped(self) -> list[dict]:
        return list(self.meta.get("skipped", []))

    def _record_batch(self, k: int) -> pa.RecordBatch:
        try:
            rb = self._ipc.get_batch(k)
            # the reader checks that the buffers lie inside the file, not what they hold (offsets in
            # order, text that is UTF-8): a damaged column would be read astray. Only the columns read
            # here: the others (token balances' JSON) are the user's, and long
            for name in _VALIDATED:
                rb.column(name).validate(full=True)
            return rb
        except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
            raise CaptureError(self.path, f"record batch {k} does not read: {e}") from None

    def __iter__(self):
        first = 0
        pages = PageReleaser(self.buf, self.release_lag)  # touched pages count as resident: dropped behind us
        for k in range(self._ipc.num_record_batches):
            rb = self._record_batch(k)
            col = rb.column(rb.schema.get_field_index("frame"))
            n = len(col)
            if n == 0:
                continue
            if col.null_count:
                raise CaptureError(self.path, f"record batch {k}: {col.null_count} null frames", None, first)
            _, offs_buf, data_buf = col.buffers()
            offs = np.frombuffer(offs_buf, np.int64, count=col.offset + n + 1)[col.offset:]    # (a buffer may be longer)
            data_off = data_buf.address - self._base
            if data_off < 0 or data_off + data_buf.size > self.size:
                raise CaptureError(self.path, f"record batch {k}: frame data outside the file", data_off, first)
            lens = np.diff(offs)
            if offs[0] < 0 or (lens < 0).any() or offs[-1] > data_buf.size:
                bad = int(np.argmax(lens < 0)) if (lens < 0).any() else n - 1
                raise CaptureError(self.path, f"record batch {k}: frame offsets out of order or past the data",
                                   data_off + int(offs[0]), first + bad)
            bt = rb.column(rb.schema.get_field_index("block_time_s"))
            ts = np.where(bt.is_null().to_numpy(zero_copy_only=False), TS_MISSING,
                          bt.fill_null(0).to_numpy().astype(np.int64) * NS_PER_S).astype(np.int64)
            off = data_off + offs[:-1]
            caplen = lens.astype(np.int32)
            for s in range(0, n, self.batch_frames):
                pages.release_before(int(off[s]))      # the consumer is done with every earlier batch
                e = min(n, s + self.batch_frames)
                yield FrameBatch(self.buf, off[s:e], caplen[s:e], caplen[s:e], ts[s:e],
                                 np.full(e - s, LINKTYPE_SOLANA_LANDED, np.int32), first + s)
                self.bytes_read = int(off[e - 1]) + int(caplen[e - 1])
            first += n
        self.bytes_read = self.size

    def landed(self) -> tuple[np.ndarray, np.ndarray]:
        """(index_in_block int32, failed int8) of every row, in packet order."""
        idx, failed = [], []
        for k in range(self._ipc.num_record_batches):
            rb = self._record_batch(k)
            idx.append(rb.column(rb.schema.get_field_index("index_in_block")).to_numpy(zero_copy_only=False))
            failed.append(rb.column(rb.schema.get_field_index("err")).is_valid().to_numpy(zero_copy_only=False))
        if not idx:
            return np.zeros(0, np.int32), np.zeros(0, np.int8)
        return np.concatenate(idx).astype(np.int32), np.concatenate(failed).astype(np.int8)

    def landed_columns(self):
        """A function (table name, table) -> table with ``index_in_block`` and ``landed`` added to
        the rows that have a ``packet_index`` (tx_features, swaps, opportunities)."""
        idx, failed = self.landed()
        names = pa.array(list(LANDED_NAMES), pa.string())

        def add(name: str, table: pa.Table) -> pa.Table:
            if name not in ("tx_features", "swaps", "opportunities") or "packet_index" not in table.column_names:
                return table
            p = table.column("packet_index").to_numpy().astype(np.int64)
            table = table.append_column("index_in_block", pa.array(idx[p] if p.size else np.zeros(0, np.int32)))
            f = failed[p].astype(np.int32) if p.size else np.zeros(0, np.int32)
            return table.append_column("landed", pa.DictionaryArray.from_arrays(pa.array(f, pa.int32()), names))
        return add


def frame_bytes(slot: int, index: int, failed: bool, tx: bytes) -> bytes:
    """One LINKTYPE_SOLANA_LANDED frame: the pseudo-header, then the transaction."""
    return _HDR.pack(slot, index, LANDED_FAILED if failed else LANDED_SUCCESS) + tx
