"""The store writer on embedded chDB: the spool when the server is down (a closed port) and its
exact flush, recovery when the store comes back, back-pressure and coalescing of queued
batches, API misuse, and a reader's consistent counts while the writer inserts.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from store_helpers import _rows, closed_port, make_opportunities, make_tx_features
from workbench.store import StoreError, StoreUnavailable, StoreWriter, conform, connect
from workbench.store.clickhouse import Store
from workbench.store.spool import Spool, flush_spool


# --- fault: the server is down -----------------------------------------------------------------------
def test_closed_port_spools_everything_then_flush_into_chdb_once(dsn, tmp_path):
    spool = tmp_path / "spool"
    down = f"http://default:pw@127.0.0.1:{closed_port()}/mev"
    with StoreWriter(down, spool, queue_batches=2, retry_interval_s=60) as w:
        rid = w.record_run_start(capture_path="cap.pcap")
        for i in range(5):
            w.put("tx_features", make_tx_features(2_000, seed=i, start=i * 2_000))
        w.put("mev_opportunities", make_opportunities(1_500))
        w.record_run_end({"transactions": 10_000})
    st = w.stats
    assert st.rows_inserted == 0
    assert st.rows_spooled == 10_000 + 1_500 + 2
    assert 3 <= st.batches_spooled <= 8          # queued batches of one table may be coalesced
    assert "cannot reach ClickHouse" in st.last_error and "Connection refused" in st.last_error
    sp = Spool(spool)
    files = len(sp.pending())
    assert files == st.batches_spooled and sp.pending_rows() == st.rows_spooled
    backup = tmp_path / "spool-copy"
    shutil.copytree(spool, backup)

    fs = flush_spool(dsn, spool, retarget=True)
    assert (fs.files, fs.rows_inserted, fs.rows_skipped, fs.files_left, fs.errors) == (files, 11_502, 0, 0, [])
    with connect(dsn) as s:
        counts = (_rows(s, "tx_features", "run_id = {r:String}", {"r": rid}), _rows(s, "mev_opportunities"),
                  s.query_rows("SELECT count() FROM runs FINAL")[0][0])
    assert counts == (10_000, 1_500, 1)

    assert flush_spool(dsn, spool, retarget=True).files == 0                 # a second flush: nothing left to add
    shutil.rmtree(spool)
    shutil.copytree(backup, spool)                            # the same files again (a crash before unlink)
    fs = flush_spool(dsn, spool, retarget=True)
    assert (fs.files, fs.rows_inserted, fs.rows_skipped) == (files, 0, 11_502)
    with connect(dsn) as s:
        assert (_rows(s, "tx_features"), _rows(s, "mev_opportunities")) == (10_000, 1_500)
        assert s.query_rows("SELECT count(), any(status) FROM runs FINAL") == [(1, "done")]


def test_writer_flushes_an_old_spool_on_start(dsn, tmp_path):
    """Rows an earlier run spooled for this store go in; rows spooled for another store stay."""
    spool = tmp_path / "spool"
    with StoreWriter(f"http://127.0.0.1:{closed_port()}", spool, run_id="early") as w:
        w.put("tx_features", make_tx_features(1_000), "batch-0")
    assert w.stats.rows_spooled == 1_000
    Spool(spool, target=dsn).write("tx_features", conform("tx_features", make_tx_features(300, start=2_000), "early"),
                                   "batch-1")
    with StoreWriter(dsn, spool, run_id="later") as w2:
        w2.put("tx_features", make_tx_features(10, start=5_000))
    assert (w2.stats.rows_flushed, w2.stats.rows_inserted, w2.stats.spool_files_left) == (300, 10, 1)
    with connect(dsn) as s:
        assert _rows(s, "tx_features") == 310


def test_writer_recovers_when_the_store_comes_back(dsn, tmp_path, monkeypatch):
    """Inserts fail for a while (as if the server went away), then work: nothing lost, nothing doubled."""
    real = Store.insert_arrow
    fails = {"n": 3}

    def flaky(self, table, data, token=None):
        if table == "tx_features" and fails["n"] > 0:
            fails["n"] -= 1
            raise StoreUnavailable("cannot reach ClickHouse (test)")
        return real(self, table, data, token)

    monkeypatch.setattr(Store, "insert_arrow", flaky)
    with StoreWriter(dsn, tmp_path / "spool", retry_interval_s=0.0, run_id="r", coalesce_rows=500) as w:
        for i in range(6):
            w.put("tx_features", make_tx_features(500, seed=i, start=i * 500))
    st = w.stats
    assert st.rows_spooled >= 1_500 and st.rows_flushed == st.rows_spooled and st.spool_files_left == 0
    assert st.rows_inserted + st.rows_spooled == 3_000
    with connect(dsn) as s:
        assert _rows(s, "tx_features") == 3_000
        assert s.query_rows("SELECT uniqExact(packet_index) FROM tx_features")[0][0] == 3_000


def test_put_blocks_when_the_queue_is_full(dsn, tmp_path, monkeypatch):
    real = Store.insert_arrow
    seen = []

    def slow(self, table, data, token=None):
        time.sleep(0.05)
        return real(self, table, data, token)

    monkeypatch.setattr(Store, "insert_arrow", slow)
    with StoreWriter(dsn, tmp_path / "spool", queue_batches=2, run_id="r", coalesce_rows=100) as w:
        for i in range(8):
            w.put("tx_features", make_tx_features(100, seed=i, start=i * 100))
            seen.append(w._q.qsize())
    assert max(seen) <= 2                        # never more than queue_batches waiting
    assert w.stats.put_wait_s > 0.1              # the producer was held back
    assert w.stats.rows_inserted == 800


def test_queued_batches_are_coalesced(dsn, tmp_path, monkeypatch):
    real = Store.insert_arrow
    calls = []

    def slow(self, table, data, token=None):
        calls.append((table, data.num_rows, token))
        time.sleep(0.05)
        return real(self, table, data, token)

    monkeypatch.setattr(Store, "insert_arrow", slow)
    with StoreWriter(dsn, tmp_path / "spool", queue_batches=16, run_id="r", coalesce_rows=2_500) as w:
        for i in range(20):
            w.put("tx_features", make_tx_features(200, seed=i, start=i * 200))
    tx = [c for c in calls if c[0] == "tx_features"]
    assert len(tx) < 20 and all(n <= 2_500 for _, n, _ in tx)
    assert sum(n for _, n, _ in tx) == 4_000 == w.stats.rows_inserted
    assert any(".." in tok for _, _, tok in tx)            # a coalesced insert names its first..last batch
    with connect(dsn) as s:
        assert s.query_rows("SELECT count(), uniqExact(packet_index), min(packet_index), max(packet_index) "
                            "FROM tx_features") == [(4_000, 4_000, 0, 3_999)]


def test_writer_api_misuse():
    w = StoreWriter("chdb://memory", "/tmp/unused-spool")
    with pytest.raises(StoreError, match="start"):
        w.put("tx_features", make_tx_features(1))
    with pytest.raises(StoreError, match="record_run_start"):
        w.record_run_end()


# --- concurrency ----------------------------------------------------------------------------------
def test_reader_sees_consistent_counts_while_the_writer_inserts(dsn, tmp_path):
    batch, n_batches = 1_000, 30
    seen, stop = [], threading.Event()
    with connect(dsn) as reader:
        def poll():
            while not stop.is_set():
                seen.append(_rows(reader, "tx_features"))

        t = threading.Thread(target=poll)
        t.start()
        try:
            with StoreWriter(dsn, tmp_path / "spool", queue_batches=4, run_id="r", coalesce_rows=batch) as w:
                for i in range(n_batches):
                    w.put("tx_features", make_tx_features(batch, seed=i, start=i * batch))
        finally:
            stop.set()
            t.join()
        final = _rows(reader, "tx_features")
    assert final == batch * n_batches
    assert len(set(seen)) > 2, "the reader never saw the store between batches"
    assert all(c % batch == 0 for c in seen), "a reader saw part of a batch"
    assert seen == sorted(seen), "a count went backwards"
