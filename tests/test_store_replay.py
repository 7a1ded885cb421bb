"""Replays into the store, end to end: ClickHouse holds exactly what the Parquet outputs hold,
and a replay against an unreachable server loses nothing (spool, then one exact flush)."""

from __future__ import annotations

import pytest

from conftest import CAPTURES
from store_helpers import closed_port
from workbench.config import Settings
from workbench.engine.tables import read_tx_features
from workbench.runner import replay
from workbench.store import connect, flush_spool, default_spool_dir


def _store_rows(dsn, run_id):
    with connect(dsn) as s:
        t = s.query_arrow("SELECT * EXCEPT (run_id, ts), ts_ns FROM tx_features WHERE run_id = {r:String} "
                          "ORDER BY tx_index", {"r": run_id})
        runs = s.query_rows("SELECT status, counts['packets'] FROM runs FINAL WHERE run_id = {r:String}",
                            {"r": run_id})
        hist = s.query_rows("SELECT hist_name, count FROM latency_hist WHERE run_id = {r:String} ORDER BY hist_name",
                            {"r": run_id})
    return t, runs, hist


# small batches: an unpaced replay's tables reach the store gathered (runner/store_gather.py), a
# paced one's one call per table; the store holds the same rows either way
@pytest.mark.parametrize("speed, batch_frames", [(None, 16384), (None, 64), (1000.0, 64)])
def test_replay_into_embedded_store_equals_parquet(tmp_path, speed, batch_frames):
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    settings = Settings(data_dir=str(tmp_path), progress=False, batch_frames=batch_frames)
    res = replay(CAPTURES / "demo.pcapng", tmp_path / "out", settings, db=dsn, speed=speed)
    assert res.store["rows_inserted"] >= res.transactions and not res.store["rows_spooled"]
    parquet = read_tx_features(tmp_path / "out/tx_features.parquet")
    stored, runs, hist = _store_rows(dsn, res.run_id)
    assert stored.num_rows == parquet.num_rows == res.transactions
    for name in parquet.column_names:
        assert stored.column(name).to_pylist() == parquet.column(name).to_pylist(), name
    assert runs == [("done", res.packets)]
    assert [h[0] for h in hist] == ["batch_processing_ns", "packet_processing_ns"] and all(h[1] > 0 for h in hist)


def test_unreachable_server_spools_and_one_flush_restores_everything(tmp_path):
    down = f"http://default:pw@127.0.0.1:{closed_port()}/mev"
    settings = Settings(data_dir=str(tmp_path), progress=False)
    res = replay(CAPTURES / "small.pcap", tmp_path / "out", settings, db=down)
    assert res.store["rows_inserted"] == 0 and res.store["rows_spooled"] >= res.transactions
    spool = default_spool_dir(tmp_path)
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    first = flush_spool(dsn, spool, retarget=True)      # spooled for the down server: sent here on purpose
    again = flush_spool(dsn, spool, retarget=True)
    assert again.rows_inserted == 0
    stored, runs, _ = _store_rows(dsn, res.run_id)
    parquet = read_tx_features(tmp_path / "out/tx_features.parquet")
    assert stored.num_rows == parquet.num_rows == res.transactions
    assert stored.column("signature").to_pylist() == parquet.column("signature").to_pylist()
    assert runs == [("done", res.packets)] and first.rows_inserted >= res.transactions
