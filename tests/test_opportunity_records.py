"""api/opportunity_records.py against its twin, the table path (``engine_batch`` of ``opp_table``:
the store's shape, each row's JSON by ``row_items``): the same bytes, ids, times and types for the
engine's own records of the market capture and for records pushed to the edges of every field, the
same table when one is asked for; a column the engine adds without a JSON here is refused, and a
batch the kernel cannot lay out goes through the table path instead."""

from __future__ import annotations

import copy
import math

import numpy as np
import pyarrow as pa
import pytest

from test_sink_grouping import engine_calls  # noqa: F401  (the module's fixture)
from workbench.api import opportunity_records as R
from workbench.api.engine_batches import engine_batch, joined
from workbench.api.frames import row_items
from workbench.engine.opps import OPP_ARBITRAGE, OPP_LIQUIDATION, OPP_SANDWICH, POOLS_PER_OPP
from workbench.engine.tables import MarketNames, opp_table

pytestmark = pytest.mark.timeout(300)

CAPTURE_IDS = ["capture", 'a "quoted" id\\ with é and \n']


@pytest.fixture(scope="module")
def records(engine_calls):  # noqa: F811
    run, calls = engine_calls
    recs = np.concatenate([c[6] for c in calls if c[6] is not None and c[6].shape[0]])
    return run, recs


def _twin(recs, names, capture_id, source="replay"):
    return engine_batch(opp_table(recs.copy(), names, capture_id), source)


def _same(got, want):
    assert got.items == want.items
    assert got.ids == want.ids
    assert got.id_bytes.tobytes() == want.id_bytes.tobytes() and got.id_bytes.dtype == want.id_bytes.dtype
    assert got.times_ns.tolist() == want.times_ns.tolist()
    assert got.types == want.types
    assert got.column_names == want.table.column_names and got.schema == want.table.schema
    assert row_items(got.table) == want.items            # the table made when asked holds the same rows


@pytest.mark.parametrize("capture_id", CAPTURE_IDS)
def test_the_engines_records_give_the_table_paths_bytes(records, capture_id):
    run, recs = records
    kinds = set(recs["kind"].tolist())
    assert {OPP_ARBITRAGE, OPP_SANDWICH} <= kinds and len(recs) > 50
    enc = R.OpportunityRecords(run.market_names, lambda: capture_id, "replay")
    for part in (recs[:1], recs[:7], recs, recs[::-3]):
        _same(enc.batch(part.copy()), _twin(part, run.market_names, capture_id))


def _edges(recs: np.ndarray, names: MarketNames) -> np.ndarray:
    """The records with every field pushed through its edge values, row by row."""
    rng = np.random.default_rng(7)
    n = max(len(recs), 64)
    e = np.resize(recs, n).copy()
    floats = [0.0, -0.0, 1 / 3, 1e-7, 1e16, 1e22, 5e-324, 1.7976931348623157e308, -2.5, math.nan, math.inf,
              -math.inf, 0.111137229, 8000.0]
    ints = [0, -1, 1, 2**63 - 1, -2**63, 42, 10**18]
    uints = [0, 2**64 - 1, 2**63, 7]
    for i in range(n):
        pick = lambda xs, k=0: xs[(i + k) % len(xs)]        # noqa: E731
        for k, f in enumerate(("ts_ns", "packet_index", "tx_index", "slot", "profit_quote", "tip_lamports",
                               "expected_profit_lamports", "detect_ns")):
            e[f][i] = pick(ints, k)
        e["amount_in"][i], e["amount_out"][i] = pick(uints), pick(uints, 1)
        e["expected_profit_sol"][i], e["score"][i] = pick(floats), pick(floats, 3)
        e["features"][i] = [pick(floats, k) if k % 2 else rng.normal() * 10.0 ** rng.integers(-8, 9)
                            for k in range(e["features"].shape[1])]
        e["kind"][i] = pick([OPP_ARBITRAGE, OPP_SANDWICH, OPP_LIQUIDATION])
        e["n_pools"][i] = i % (POOLS_PER_OPP + 1)
        e["pools"][i] = rng.integers(0, len(names.pools), POOLS_PER_OPP)
        e["profit_token"][i] = rng.integers(0, len(names.tokens))
        e["position_row"][i] = pick([-1, 0, len(names.market.pos_id) - 1])
        e["seq"][i] = i
        e["_sig"][i] = rng.integers(0, 256, 64) if i % 5 else 0       # all-zero signatures too ("1111...")
    return e


def test_every_fields_edges_give_the_table_paths_bytes(records):
    run, recs = records
    names = copy.copy(run.market_names)       # with positions to name (the capture's market has none)
    names.market = run.market_names.market._replace(pos_id=np.array([7, -3, 2**62], np.int64))
    e = _edges(recs, names)
    enc = R.OpportunityRecords(names, lambda: "edges", "live")
    _same(enc.batch(e), _twin(e, names, "edges", "live"))


def test_joined_batches_are_one_batch_of_their_rows(records):
    run, recs = records
    enc = R.OpportunityRecords(run.market_names, lambda: "capture", "replay")
    parts = [enc.batch(recs[:5].copy()), enc.batch(recs[5:9].copy()), enc.batch(recs[9:].copy())]
    [(one, handed)] = joined([(b, 10 + k) for k, b in enumerate(parts)])
    assert handed == 10
    _same(one, _twin(recs, run.market_names, "capture"))


def test_a_column_the_engine_gains_without_its_json_is_refused(records, monkeypatch):
    run, _ = records
    plain = R.empty_opp_table
    monkeypatch.setattr(R, "empty_opp_table", lambda mn: plain(mn).append_column("new_feature", pa.array([], pa.int64())))
    with pytest.raises(ValueError, match="new_feature"):
        R.OpportunityRecords(run.market_names, lambda: "capture", "replay")


def test_a_batch_the_kernel_cannot_lay_out_goes_through_the_table(records, monkeypatch, caplog):
    run, recs = records
    enc = R.OpportunityRecords(run.market_names, lambda: "capture", "replay")

    def broken(*_a):
        raise MemoryError("no room for the rows")
    monkeypatch.setattr(R, "_rows", broken)
    got = enc.ready(recs[:9].copy())
    assert got.items == _twin(recs[:9], run.market_names, "capture").items
    assert "made from their table instead" in caplog.text


@pytest.mark.parametrize("field, value", [("pools", 10**6), ("profit_token", -1), ("kind", 9), ("n_pools", 4)])
def test_an_index_out_of_range_is_refused_before_anything_is_read_through_it(records, field, value):
    run, recs = records
    enc = R.OpportunityRecords(run.market_names, lambda: "capture", "replay")
    bad = recs[:3].copy()
    if field == "pools":
        bad["n_pools"][1] = 1
        bad["pools"][1, 0] = value
    else:
        bad[field][1] = value
    with pytest.raises(ValueError, match="out of range"):
        enc.batch(bad)
