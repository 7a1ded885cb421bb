"""``workbench blocks`` at scale (issue 18, session 8): slots asked a bounded distance ahead, written in
slot order whatever order they land in, a record batch of about ROWS_PER_WRITE rows.

The blocks are COMPOSED (tests/chain_rpc.py) of the bundled market capture's transactions; the
loopback server answers the first slot late, so later slots land first.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow.ipc as ipc
import pytest
from solders.transaction import VersionedTransaction

from chain_rpc import RpcServer, block, capture_transactions, ok_meta
from conftest import CAPTURES
from workbench.capture.block_file import BlockFileReader
from workbench.chain import blocks as chain_blocks
from workbench.runner.chain_blocks import backfill_blocks

pytestmark = pytest.mark.timeout(120)
S0 = 376_600_000
SLOTS, PER_BLOCK = 60, 40
LATE_S = 0.5


class FirstSlotLate(dict):
    """getBlock results by slot; the first slot is answered LATE_S late. ``log``: slots in the order
    the server answered them."""

    def __init__(self, *a):
        super().__init__(*a)
        self.log: list[int] = []

    def get(self, slot, default=None):
        if slot == S0:
            time.sleep(LATE_S)
        self.log.append(slot)
        return super().get(slot, default)


def test_slots_are_asked_a_bounded_distance_ahead_and_written_in_slot_order(tmp_path, monkeypatch):
    txs = capture_transactions(CAPTURES / "market.pcapng")[:SLOTS * PER_BLOCK]
    blocks = FirstSlotLate({S0 + k: block([(t, ok_meta()) for t in txs[k * PER_BLOCK:(k + 1) * PER_BLOCK]], S0 + k)
                            for k in range(SLOTS)})
    monkeypatch.setattr(chain_blocks, "SLOTS_AHEAD", 4)
    monkeypatch.setattr(chain_blocks, "ROWS_PER_WRITE", 500)
    with RpcServer({}, blocks=blocks) as srv:
        res = backfill_blocks(srv.url, S0, S0 + SLOTS - 1, tmp_path / "b.arrow", concurrency=8)
    # while the first slot was late, no more than SLOTS_AHEAD - 1 later ones were asked (8 could be in flight)
    assert blocks.log.index(S0) <= 3, blocks.log[:10]
    assert res.transactions == len(txs) and res.blocks == SLOTS
    f = ipc.open_file(tmp_path / "b.arrow")
    sizes = [f.get_batch(k).num_rows for k in range(f.num_record_batches)]
    assert all(n >= 500 for n in sizes[:-1]) and all(n < 500 + PER_BLOCK for n in sizes) and sum(sizes) == len(txs)
    t = f.read_all()
    slot, idx = t.column("slot").to_numpy(), t.column("index_in_block").to_numpy()
    assert (np.diff(slot * 1000 + idx) > 0).all()                           # landed order
    frames = t.column("frame").to_pylist()
    assert [bytes(VersionedTransaction.from_bytes(f[16:]).signatures[0]) for f in frames] == \
        [bytes(VersionedTransaction.from_bytes(x).signatures[0]) for x in txs]
    r = BlockFileReader(tmp_path / "b.arrow", batch_frames=300)
    assert sum(b.off.shape[0] for b in r) == len(txs) and r.bytes_read == r.size
