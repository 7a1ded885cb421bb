"""The store against a real ClickHouse server: run when WORKBENCH_TEST_CLICKHOUSE_URL is set.

    WORKBENCH_TEST_CLICKHOUSE_URL=http://default:password@localhost:8123 pytest tests/test_store_server.py

Each test works in a fresh database (``wb_test_<hex>``) and drops it afterwards.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlparse, urlunparse

import pytest

from store_helpers import closed_port, make_opportunities, make_tx_features
from workbench.store import StoreError, StoreWriter, connect, parse_dsn
from workbench.store import schema as S
from workbench.store.columns import conform
from workbench.store.spool import Spool

URL = os.environ.get("WORKBENCH_TEST_CLICKHOUSE_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="WORKBENCH_TEST_CLICKHOUSE_URL is not set (a ClickHouse server "
                                                "URL, e.g. http://default:pw@localhost:8123)")


def _with_database(url: str, database: str) -> str:
    u = urlparse(url)
    return urlunparse(u._replace(path=f"/{database}"))


@pytest.fixture
def server_dsn():
    db = f"wb_test_{uuid.uuid4().hex[:10]}"
    dsn = _with_database(URL, db)
    yield dsn
    with connect(_with_database(URL, "default"), ensure_schema=False) as s:
        s.command(f"DROP DATABASE IF EXISTS {db}")


def test_server_schema_and_round_trip(server_dsn, tmp_path):
    batches = [make_tx_features(3_000, seed=i, start=i * 3_000) for i in range(3)]
    opp = make_opportunities(2_000)
    with StoreWriter(server_dsn, tmp_path / "spool") as w:
        run_id = w.record_run_start(capture_path="cap.pcap")
        for b in batches:
            w.put("tx_features", b)
        w.put("mev_opportunities", opp)
        w.record_run_end({"transactions": 9_000})
    assert w.stats.rows_spooled == 0, w.stats.last_error
    with connect(server_dsn) as s:
        assert s.schema_version()[0] == S.SCHEMA_VERSION
        cols = [c for c in batches[0].column_names]
        got = s.query_arrow(f"SELECT {', '.join(cols)} FROM tx_features WHERE run_id = {{r:String}} "
                            "ORDER BY packet_index", {"r": run_id})
        for c in cols:
            assert got.column(c).to_pylist() == sum((b.column(c).to_pylist() for b in batches), []), c
        ids = s.query_arrow("SELECT UUIDStringToNum(toString(opportunity_id)) AS id FROM mev_opportunities "
                            "ORDER BY timestamp, id")
        exp = opp.sort_by([("timestamp", "ascending"), ("opportunity_id", "ascending")])
        assert ids.column("id").to_pylist() == exp.column("opportunity_id").to_pylist()
        assert s.runs().num_rows == 1


def test_server_honours_the_deduplication_token(server_dsn):
    with connect(server_dsn) as s:
        b = conform("tx_features", make_tx_features(1_000), run_id="r")
        s.insert_arrow("tx_features", b, "tok")
        s.insert_arrow("tx_features", b, "tok")
        assert s.count("tx_features") == 1_000


def test_server_spool_flush_adds_nothing_twice(server_dsn, tmp_path):
    spool = tmp_path / "spool"
    with StoreWriter(f"http://127.0.0.1:{closed_port()}", spool, run_id="r") as w:
        for i in range(3):
            w.put("tx_features", make_tx_features(1_000, seed=i, start=i * 1_000))
    assert w.stats.rows_spooled == 3_000
    files = {p.name: p.read_bytes() for p in Spool(spool).pending()}
    with connect(server_dsn) as s:
        fs = Spool(spool).flush(s, retarget=True)     # spooled for the closed port: sent here on purpose
        assert (fs.rows_inserted, fs.files_left) == (3_000, 0)
        for name, body in files.items():           # the same files again
            (spool / name).write_bytes(body)
        fs = Spool(spool).flush(s, retarget=True)     # spooled for the closed port: sent here on purpose
        assert (fs.rows_inserted, fs.rows_skipped) == (0, 3_000)
        assert s.count("tx_features") == 3_000


def test_server_wrong_password_is_named(server_dsn):
    d = parse_dsn(server_dsn)
    u = urlparse(server_dsn)
    bad = urlunparse(u._replace(netloc=f"{d.user or 'default'}:wrong-{uuid.uuid4().hex[:6]}@{d.host}:{d.port}"))
    with pytest.raises(StoreError, match="refused the credentials"):
        connect(bad)


def test_server_newer_schema_is_refused(server_dsn):
    with connect(server_dsn) as s:
        s.command(f"INSERT INTO {s.table('schema_version')} (version, description) VALUES (99, 'future')")
    with pytest.raises(StoreError, match="schema version 99"):
        connect(server_dsn)
