"""The engine hands its output sets to the sink thread without copying them (runner/engine_run.py
``feed``): a set is filled again only once the sink thread has released it. Small batches cycle
the sets many times, and a slow consumer makes the engine wait for a free one; the row files must
be those of one large batch (their bytes depend on the rows only)."""

from __future__ import annotations

import time

from conftest import CAPTURES
from workbench.config import Settings
from workbench.runner import replay

MARKET = CAPTURES / "market.pcapng"
FILES = ("tx_features.parquet", "packet_status.parquet", "swaps.parquet", "opportunities.parquet")


def _files(out):
    return {f: (out / f).read_bytes() for f in FILES}


def test_small_batches_and_a_slow_consumer_write_the_rows_of_one_large_batch(tmp_path):
    market = str(MARKET) + ".market"
    replay(MARKET, tmp_path / "large", Settings(progress=False, market=market, batch_frames=1 << 16))
    replay(MARKET, tmp_path / "small", Settings(progress=False, market=market, batch_frames=97))
    seen = []

    def slow(name, table):          # every sink call waits: the engine runs out of free output sets
        time.sleep(0.002)
        seen.append((name, table.num_rows))

    replay(MARKET, tmp_path / "slow", Settings(progress=False, market=market, batch_frames=131), sink=slow)
    want = _files(tmp_path / "large")
    assert _files(tmp_path / "small") == want
    assert _files(tmp_path / "slow") == want
    assert sum(n for name, n in seen if name == "tx_features") > 0
