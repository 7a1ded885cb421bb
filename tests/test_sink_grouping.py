"""A Parquet-only run builds its Arrow tables once per row group (sinks.py ``SinkThread``
``group_rows``): the rows, the Parquet bytes and the opportunity summary must be those of
the per-call path, whatever the engine's call sizes and however a row group spans calls."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest

import engine_helpers
from conftest import CAPTURES
from workbench.engine.tables import empty_opp_table, empty_swap_table, empty_tx_table, status_table
from workbench.row_files import ParquetSink
from workbench.sinks import SinkThread

MARKET = CAPTURES / "market.pcapng"


@pytest.fixture(scope="module")
def engine_calls(tmp_path_factory):
    """Every call's rows of the market capture replayed in small batches (many calls per row group)."""
    return engine_helpers.engine_calls(tmp_path_factory.mktemp("run"), MARKET, 700)


def _through_sinks(run, calls, group_rows, out, row_group_rows):
    """The calls through a SinkThread into a ParquetSink (and a table collector); the tables seen,
    the sha256 of each file and the opportunity summary."""
    out.mkdir()
    parquet = ParquetSink(out, run.names, row_group_rows=row_group_rows)
    seen: dict[str, list[pa.Table]] = {}
    sinks = SinkThread(run.names, [parquet.write, lambda n, t: seen.setdefault(n, []).append(t)],
                       market_names=run.market_names, capture_id=lambda: "capture", group_rows=group_rows)
    for c in calls:
        sinks.put(*c)
    sinks.close()
    return seen, closed_files(run, parquet, out), sinks.opps.as_dict(), dict(sinks.rows)


def closed_files(run, parquet: ParquetSink, out) -> dict[str, str]:
    """Close ``parquet`` (writing empty files for tables that got no row) and say the sha256 of each
    row file under ``out``."""
    parquet.close({"tx_features": empty_tx_table(run.names),
                   "packet_status": status_table(np.zeros(0, np.int16), 0, np.zeros(0, np.int64)),
                   "swaps": empty_swap_table(run.market_names), "opportunities": empty_opp_table(run.market_names)})
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.parquet"))
            if p.name != "opportunity_costs.parquet"}


@pytest.mark.parametrize("group_rows", [1, 97, 1000, 65536])
def test_grouped_tables_hold_the_same_rows_and_write_the_same_files(engine_calls, tmp_path, group_rows):
    run, calls = engine_calls
    assert len(calls) > 5 and sum(c[0].shape[0] for c in calls) > 1000
    seen0, files0, opps0, rows0 = _through_sinks(run, calls, 0, tmp_path / "per-call", group_rows)
    seen1, files1, opps1, rows1 = _through_sinks(run, calls, group_rows, tmp_path / "grouped", group_rows)
    assert files1 == files0 and set(files0) == {"tx_features.parquet", "packet_status.parquet", "swaps.parquet",
                                                "opportunities.parquet"}
    assert opps1 == opps0 and opps0["count"] > 0
    assert rows1 == rows0
    for name, tables in seen0.items():
        want = pa.concat_tables(tables)
        got = pa.concat_tables(seen1[name])
        assert got.schema == want.schema and repr(got.to_pylist()) == repr(want.to_pylist()), name   # score: nan
        sizes = [t.num_rows for t in seen1[name]]
        assert all(s % group_rows == 0 for s in sizes[:-1]), (name, sizes)


def test_packets_that_do_not_follow_are_written_apart(engine_calls, tmp_path):
    """A call whose first packet index does not follow the gathered ones (a new source) closes the
    gathered rows: every packet keeps its own index."""
    run, calls = engine_calls
    moved = [c if i < 3 else (*c[:3], c[3] + 10_000, *c[4:]) for i, c in enumerate(calls)]
    seen0, files0, *_ = _through_sinks(run, moved, 0, tmp_path / "per-call", 500)
    seen1, files1, *_ = _through_sinks(run, moved, 500, tmp_path / "grouped", 500)
    got = pa.concat_tables(seen1["packet_status"]).column("packet_index").to_numpy()
    assert np.array_equal(got, pa.concat_tables(seen0["packet_status"]).column("packet_index").to_numpy())
    assert files1["packet_status.parquet"] == files0["packet_status.parquet"]


def test_a_failing_consumer_is_raised_at_close(engine_calls, tmp_path):
    """The grouped path calls its consumers from a second thread; their error still reaches the caller."""
    run, calls = engine_calls

    def broken(name, table):
        raise OSError(f"disk full writing {name}")

    sinks = SinkThread(run.names, [broken], market_names=run.market_names, capture_id=lambda: "c", group_rows=50)
    raised = []
    try:
        for c in calls:
            sinks.put(*c)
    except OSError as e:
        raised.append(e)
    try:
        sinks.close()
    except OSError as e:
        raised.append(e)
    assert raised and all("disk full writing" in str(e) for e in raised)
    assert not sinks.t.is_alive() and not sinks._wt.is_alive()


class _Holding:
    """A consumer that holds every table back until its ``flush`` (as runner/store_gather.py does)."""

    def __init__(self, fail: bool = False):
        self.held, self.flushed, self.fail = [], [], fail

    def __call__(self, name, table):
        self.held.append((name, table.num_rows))

    def flush(self):
        if self.fail:
            raise OSError("the store refused the last rows")
        self.flushed += self.held
        self.held = []


@pytest.mark.parametrize("group_rows", [0, 50])
def test_a_consumer_holding_rows_back_is_flushed_after_the_last_rows(engine_calls, group_rows):
    run, calls = engine_calls
    holding = _Holding()
    seen: dict[str, int] = {}
    sinks = SinkThread(run.names, [holding, lambda n, t: seen.__setitem__(n, seen.get(n, 0) + t.num_rows)],
                       market_names=run.market_names, capture_id=lambda: "c", group_rows=group_rows)
    for c in calls:
        sinks.put(*c)
    sinks.close()
    assert not holding.held
    got: dict[str, int] = {}
    for name, n in holding.flushed:
        got[name] = got.get(name, 0) + n
    assert got == seen and got["tx_features"] > 1000


@pytest.mark.parametrize("group_rows", [0, 50])
def test_a_flush_that_fails_is_raised_at_close(engine_calls, group_rows):
    run, calls = engine_calls
    sinks = SinkThread(run.names, [_Holding(fail=True)], market_names=run.market_names, capture_id=lambda: "c",
                       group_rows=group_rows)
    for c in calls:
        sinks.put(*c)
    with pytest.raises(OSError, match="refused the last rows"):
        sinks.close()
    assert not sinks.t.is_alive()
