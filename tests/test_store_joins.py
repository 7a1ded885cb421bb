"""A store a researcher can join (issue 17): a real replay of the bundled market capture with its
snapshot into an embedded store, then SQL from an opportunity to its trigger transaction, the
swaps of that transaction and their pools, checked against the run's Parquet files."""

from __future__ import annotations

import math
import re

import pyarrow.parquet as pq
import pytest

from conftest import CAPTURES, REPO
from workbench.store import connect
from workbench.store import schema as S

pytestmark = pytest.mark.slow


def test_the_store_feature_columns_are_the_engine_model_features():
    from workbench.engine.opps import MODEL_FEATURES
    assert S.OPP_FEATURE_NAMES == MODEL_FEATURES


@pytest.fixture(scope="module")
def market_run(tmp_path_factory):
    from workbench.config import Settings
    from workbench.engine.tables import readable_tx_table
    from workbench.runner import replay
    tmp = tmp_path_factory.mktemp("joins")
    dsn = f"chdb://{tmp / 'clickhouse'}"
    settings = Settings(data_dir=str(tmp / "data"), progress=False,
                        market=str(CAPTURES / "market.pcapng.market")).validate()
    res = replay(CAPTURES / "market.pcapng", tmp / "out", settings, db=dsn)
    assert res.store["rows_spooled"] == 0 and res.store["insert_errors"] == 0, res.store
    files = {n: readable_tx_table(pq.read_table(tmp / "out" / f"{n}.parquet"))     # base58 signatures, as stored
             for n in ("tx_features", "swaps", "opportunities")}
    assert files["opportunities"].num_rows > 0 and files["swaps"].num_rows > 0
    return dsn, res.run_id, files


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_every_opportunity_column_of_the_parquet_file_is_stored(market_run):
    dsn, run_id, files = market_run
    parquet = files["opportunities"].sort_by("opportunity_id")
    store_names = {"ts_ns": "toUnixTimestamp64Nano(timestamp)", "opportunity_id": "toString(opportunity_id)",
                   "type": "toString(type)", "expected_profit_sol": "profit", "detect_ns": "detect_latency_ns"}
    select = ", ".join(f"{store_names.get(n, n)} AS {n}" for n in parquet.column_names)
    with connect(dsn) as s:
        stored = s.query_arrow(f"SELECT {select} FROM mev_opportunities WHERE run_id = {{r:String}} "
                               "ORDER BY opportunity_id", {"r": run_id})
        assert s.query_rows("SELECT DISTINCT toString(source) FROM mev_opportunities") == [("replay",)]
    assert stored.num_rows == parquet.num_rows
    for name in parquet.column_names:
        got, want = stored.column(name).to_pylist(), parquet.column(name).to_pylist()
        assert all(_same(g, w) for g, w in zip(got, want)), name


def test_every_swap_of_the_parquet_file_is_stored(market_run):
    dsn, run_id, files = market_run
    parquet = files["swaps"]
    select = ", ".join("amount_limit AS `limit`" if n == "limit" else n for n in parquet.column_names)
    with connect(dsn) as s:
        stored = s.query_arrow(f"SELECT {select} FROM swaps WHERE run_id = {{r:String}} "
                               "ORDER BY tx_index, instr_index, pool_row", {"r": run_id})
    parquet = parquet.sort_by([("tx_index", "ascending"), ("instr_index", "ascending"), ("pool_row", "ascending")])
    assert stored.num_rows == parquet.num_rows
    for name in parquet.column_names:
        assert stored.column(name).to_pylist() == parquet.column(name).to_pylist(), name


def test_an_opportunity_joins_its_trigger_transaction_its_swaps_and_their_pools(market_run):
    dsn, run_id, files = market_run
    opps = files["opportunities"].to_pandas()
    txs = files["tx_features"].to_pandas().set_index("tx_index")
    swaps = files["swaps"].to_pandas()
    with connect(dsn) as s:
        rows = s.query_rows("""
            SELECT toString(o.opportunity_id), t.signature, t.packet_index, t.slot,
                   groupArray((s.instr_index, s.pool, s.amount_in, s.amount_out, s.reserve_a, s.reserve_b))
            FROM mev_opportunities AS o
            JOIN tx_features AS t ON t.run_id = o.run_id AND t.tx_index = o.tx_index
            JOIN swaps AS s ON s.run_id = o.run_id AND s.tx_index = o.tx_index
            WHERE o.run_id = {r:String}
            GROUP BY o.opportunity_id, t.signature, t.packet_index, t.slot""", {"r": run_id})
    by_id = {r[0]: r[1:] for r in rows}
    assert len(by_id) == len(opps)                      # every opportunity reaches a transaction and its swaps
    for o in opps.itertuples():
        signature, packet_index, slot, trigger_swaps = by_id[o.opportunity_id]
        tx = txs.loc[o.tx_index]                            # the same relation, read from the Parquet files
        assert (signature, packet_index, slot) == (o.trigger_signature, o.packet_index, o.slot) \
            == (tx.signature, tx.packet_index, tx.slot)
        want = swaps[swaps.tx_index == o.tx_index]
        assert sorted(trigger_swaps) == sorted(zip(want.instr_index, want.pool, want.amount_in, want.amount_out,
                                                   want.reserve_a, want.reserve_b))
        # the trigger moved a pool of the opportunity (for an arbitrage, one of its route)
        assert set(o.pools) & {sw[1] for sw in trigger_swaps}, o.opportunity_id


def test_the_views_read_the_renamed_profit_column(market_run):
    """StoreWatch (the Panel views' reader) gets the specification's profit as expected_profit_sol."""
    from workbench.runner.store_watch import StoreWatch
    dsn, run_id, files = market_run
    watch = StoreWatch(dsn)
    try:
        got = watch.opportunities(run_id, -1).sort_by("opportunity_id")
    finally:
        watch.store.close()
    want = files["opportunities"].sort_by("opportunity_id")
    assert got.column("opportunity_id").to_pylist() == want.column("opportunity_id").to_pylist()
    assert got.column("expected_profit_sol").to_pylist() == want.column("expected_profit_sol").to_pylist()


def _readme_join_sql() -> str:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    joins = [b for b in blocks if "FROM mev_opportunities AS o" in b and "JOIN swaps" in b]
    assert joins, "the README shows no join from mev_opportunities to swaps"
    return joins[0]


def test_the_readme_join_runs_on_the_store(market_run):
    dsn, run_id, files = market_run
    with connect(dsn) as s:
        names, rows = s.query_table(_readme_join_sql())
    assert rows and {"signature", "pool", "reserve_a", "reserve_b"} <= set(names)
    sigs = set(files["opportunities"].column("trigger_signature").to_pylist())
    assert {r[names.index("signature")] for r in rows} <= sigs



def test_swaps_and_opportunities_spooled_for_a_dead_server_are_flushed_once(tmp_path):
    """The new rows go through the spool like the others: nothing lost, nothing doubled."""
    from store_helpers import closed_port
    from workbench.config import Settings
    from workbench.runner import replay
    from workbench.store import default_spool_dir, flush_spool
    settings = Settings(data_dir=str(tmp_path), progress=False,
                        market=str(CAPTURES / "market.pcapng.market")).validate()
    res = replay(CAPTURES / "market.pcapng", tmp_path / "out", settings,
                 db=f"http://default:pw@127.0.0.1:{closed_port()}/mev")
    assert res.store["rows_inserted"] == 0
    assert {"swaps", "mev_opportunities"} <= set(res.store["by_table"])
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    # the rows were spooled for the server: flushing them into another store is asked for by name
    first = flush_spool(dsn, default_spool_dir(tmp_path), retarget=True)
    assert first.files_left == 0 and not first.errors, first
    assert flush_spool(dsn, default_spool_dir(tmp_path), retarget=True).rows_inserted == 0
    with connect(dsn) as s:
        for table, parquet in (("swaps", "swaps"), ("mev_opportunities", "opportunities")):
            want = pq.read_table(tmp_path / "out" / f"{parquet}.parquet").num_rows
            assert want > 0 and s.count(table, "run_id = {r:String}", {"r": res.run_id}) == want, table
