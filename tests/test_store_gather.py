"""A replay's tables for the store wait a little to go on joined (runner/store_gather.py); the
sink thread's call of ``flush`` after the last rows is tested in test_sink_grouping.py."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from workbench.runner.store_gather import StoreGather


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _t(lo: int, hi: int) -> pa.Table:
    return pa.table({"i": pa.array(np.arange(lo, hi), pa.int64())})


def test_tables_of_a_kind_go_on_joined_after_the_wait_or_the_rows_and_flush_puts_the_rest():
    got, clock = [], Clock()
    g = StoreGather(lambda name, t: got.append((name, t["i"].to_pylist())), max_s=0.1, max_rows=10, clock=clock)
    g("tx_features", _t(0, 3))
    g("swaps", _t(100, 101))
    clock.t = 0.05
    g("tx_features", _t(3, 5))
    assert got == []                                  # young and few: both wait
    clock.t = 0.1
    g("opportunities", _t(200, 202))                  # any arrival ends the waits that are due
    assert got == [("tx_features", [0, 1, 2, 3, 4]), ("swaps", [100])]
    g("tx_features", _t(5, 16))                       # past max_rows: at once, however young
    assert got[-1] == ("tx_features", list(range(5, 16)))
    g.flush()
    assert got[-1] == ("opportunities", [200, 201])
    g.flush()                                         # nothing left: nothing put twice
    assert len(got) == 4
