"""The ClickHouse store on embedded chDB: DSN parsing, schema and migrations, Arrow round trips,
conform's column checks, deduplication, clear errors, and the store layer's imports.

chDB hosts one engine per process: each test opens its own directory and closes every
client before it ends (the fixtures in conftest.py do), so tests can run in any order.
The writer and spool are in test_store_writer.py, the `workbench db` CLI in test_cli_db.py.
"""

from __future__ import annotations

import http.server
import threading
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from store_helpers import T0_NS, _rows, closed_port, make_latency_hist, make_opportunities, make_tx_features
from workbench.store import StoreError, StoreUnavailable, StoreWriter, connect, parse_dsn
from workbench.store import schema as S
from workbench.store.columns import conform
from workbench.store.spool import missing_rows


# --- DSN -------------------------------------------------------------------------------------
def test_parse_dsn_forms():
    d = parse_dsn("chdb:///var/lib/wb/clickhouse")
    assert (d.scheme, d.path, d.database) == ("chdb", "/var/lib/wb/clickhouse", "default")
    assert parse_dsn("chdb:///x/y?database=mev").database == "mev"
    assert parse_dsn("chdb://memory").path is None
    d = parse_dsn("http://alice:s%40cret@ch.example:8123/mev?connect_timeout=5")
    assert (d.host, d.port, d.user, d.password, d.database) == ("ch.example", 8123, "alice", "s@cret", "mev")
    assert d.options == {"connect_timeout": 5}
    assert "s@cret" not in d.redacted() and "***" in d.redacted()
    assert parse_dsn("http://ch").port == 8123 and parse_dsn("https://ch").port == 8443
    assert parse_dsn("http://ch").database == "default"


@pytest.mark.parametrize("bad, words", [
    ("", "empty"),
    ("postgres://h/db", "unknown scheme"),
    ("clickhouse://h:9000/db", "HTTP"),
    ("chdb://data/clickhouse", "absolute path"),
    ("chdb:relative", "absolute path"),
    ("http:///db", "no host"),
    ("http://h:99999/db", "port"),
    ("http://h:8123/a/b", "one database"),
    ("http://h:8123/bad-name", "identifier"),
    ("http://h:8123/db?colour=red", "unknown option"),
])
def test_parse_dsn_errors_say_what_to_do(bad, words):
    with pytest.raises(StoreError) as e:
        parse_dsn(bad)
    msg = str(e.value)
    assert words in msg and "DSN forms" in msg


def test_bad_dsn_hides_password():
    with pytest.raises(StoreError) as e:
        parse_dsn("ftp://bob:hunter2@h/db")
    assert "hunter2" not in str(e.value)


# --- schema ------------------------------------------------------------------------------------
def test_seed_table_kept_verbatim():
    sql = S.render_seed(S.Target())[0]
    assert sql == S.SEED_DDL.rstrip(";").replace("CREATE TABLE mev_opportunities",
                                                  "CREATE TABLE IF NOT EXISTS default.mev_opportunities")
    assert S.render_migration(S.MIGRATIONS[0], S.Target()) == [sql]     # version 1 is that table alone


def test_fresh_store_has_the_seed_table_and_the_engine_columns(store):
    assert store.schema_version() == (S.SCHEMA_VERSION, "")
    cols = store.query_rows("SELECT name, type, compression_codec FROM system.columns "
                            "WHERE database = currentDatabase() AND table = 'mev_opportunities' ORDER BY position")
    assert [c[0] for c in cols] == [c.name for c in S.OPPORTUNITIES.columns]
    assert cols[:5] == [("timestamp", "DateTime64(9)", "CODEC(DoubleDelta, ZSTD(3))"),
                        ("opportunity_id", "UUID", "CODEC(ZSTD(3))"),
                        ("type", "Enum8('arbitrage' = 1, 'sandwich' = 2, 'liquidation' = 3)", ""),
                        ("profit", "Float64", "CODEC(Gorilla(8), ZSTD(3))"),   # 8: the Float64 width
                        ("pools", "Array(String)", "CODEC(ZSTD(3))")]
    (pk, sk, ddl), = store.query_rows("SELECT partition_key, sorting_key, create_table_query FROM system.tables "
                                      "WHERE database = currentDatabase() AND name = 'mev_opportunities'")
    assert (pk, sk) == ("toYYYYMMDD(timestamp)", "type, timestamp")
    assert "index_granularity = 8192" in ddl and "ENGINE = MergeTree" in ddl
    idx = store.query_rows("SELECT name, type, expr, granularity FROM system.data_skipping_indices "
                           "WHERE database = currentDatabase() AND table = 'mev_opportunities' ORDER BY name")
    assert idx == [("idx_profit", "minmax", "profit", 4096), ("idx_timestamp", "minmax", "timestamp", 8192)]
    for t in ("tx_features", "latency_hist", "runs", "swaps", "schema_version"):
        assert store.exists(t)


def test_schema_is_idempotent(dsn):
    with connect(dsn) as s:
        assert s.ensure_schema() == []
        assert s.query_rows("SELECT count() FROM schema_version")[0][0] == S.SCHEMA_VERSION
    with connect(dsn) as s:                 # reopening applies nothing either
        assert s.query_rows("SELECT count() FROM schema_version")[0][0] == S.SCHEMA_VERSION


def test_seed_store_is_migrated(dsn):
    """A store made by the seed's DDL alone is brought to the current version, rows kept."""
    with connect(dsn, ensure_schema=False) as s:
        s.command(S.SEED_DDL.rstrip(";"))
        s.command("INSERT INTO mev_opportunities VALUES "
                  "('2026-01-01 00:00:00.123456789', generateUUIDv4(), 'sandwich', 1.5, ['p1', 'p2'])")
        assert s.schema_version() == (0, "")
    with connect(dsn) as s:
        assert s.schema_version()[0] == S.SCHEMA_VERSION
        row = s.query_rows("SELECT type, profit, pools, run_id, slot, detect_latency_ns, source "
                           "FROM mev_opportunities")
        assert row == [("sandwich", 1.5, ["p1", "p2"], "", -1, -1, "unknown")]
        versions = s.query_rows("SELECT version FROM schema_version ORDER BY version")
        assert versions == [(v,) for v in range(1, S.SCHEMA_VERSION + 1)]


def test_newer_store_is_refused_with_advice(dsn):
    with connect(dsn) as s:
        s.command("INSERT INTO schema_version (version, code_version, description) VALUES (99, '9.9', 'future')")
    with pytest.raises(StoreError) as e:
        connect(dsn)
    msg = str(e.value)
    assert "schema version 99" in msg and f"up to {S.SCHEMA_VERSION}" in msg and "Upgrade" in msg
    with connect(dsn, ensure_schema=False) as s:     # reading is still allowed
        assert s.schema_version()[0] == 99


def test_cluster_ddl_uses_replicated_and_distributed():
    ddl = "\n".join(S.render_ddl(S.Target("mev", "prod")))
    assert "CREATE TABLE IF NOT EXISTS mev.tx_features_local ON CLUSTER prod" in ddl
    assert "ENGINE = ReplicatedMergeTree()" in ddl and "ENGINE = ReplicatedReplacingMergeTree(updated_at)" in ddl
    assert "Distributed(prod, mev, mev_opportunities_local, cityHash64(opportunity_id))" in ddl
    assert "replicated_deduplication_window" in ddl and "non_replicated" not in ddl
    single = "\n".join(S.render_ddl(S.Target()))
    assert " ON CLUSTER " not in single and "Distributed(" not in single and "Replicated" not in single


# --- Arrow round trips ---------------------------------------------------------------------------
TX_COLS = [c for c in make_tx_features(1).column_names]


def test_tx_features_round_trip_equals_parquet(dsn, tmp_path):
    batches = [make_tx_features(5_000, seed=i, start=i * 5_000) for i in range(4)]
    pq.write_table(pa.concat_tables(batches), tmp_path / "tx_features.parquet")
    with StoreWriter(dsn, tmp_path / "spool", queue_batches=2) as w:
        run_id = w.record_run_start(capture_path="cap.pcap", config={"batch_frames": 5000})
        for b in batches:
            w.put("tx_features", b)
        w.record_run_end({"transactions": 20_000})
    assert w.stats.rows_inserted == 20_002 and w.stats.rows_spooled == 0
    parquet = pq.read_table(tmp_path / "tx_features.parquet")
    with connect(dsn) as s:
        got = s.query_arrow(f"SELECT {', '.join(TX_COLS)} FROM tx_features WHERE run_id = {{r:String}} "
                            "ORDER BY packet_index", {"r": run_id})
        assert got.num_rows == parquet.num_rows
        for c in TX_COLS:
            assert got.column(c).to_pylist() == parquet.column(c).to_pylist(), c
        # the extra engine columns took their defaults
        assert s.query_rows("SELECT countIf(num_programs != length(programs)), max(cb_flags) FROM tx_features") \
            == [(0, 0)]


def test_opportunities_round_trip(store, tmp_path):
    opp = make_opportunities(3_000, seed=7)
    store.insert_batch("mev_opportunities", opp, "t1", run_id="run-a")
    got = store.query_arrow("SELECT toUnixTimestamp64Nano(timestamp) AS ts, UUIDStringToNum(toString(opportunity_id)) "
                            "AS id, toString(type) AS type, profit, pools, run_id, slot, victim_signature, "
                            "score, expected_profit_lamports, tip_lamports, detect_latency_ns, toString(source) AS "
                            "source FROM mev_opportunities ORDER BY ts, id")
    exp = opp.sort_by([("timestamp", "ascending"), ("opportunity_id", "ascending")])
    assert got.column("ts").to_pylist() == exp.column("timestamp").cast(pa.int64()).to_pylist()
    assert got.column("id").to_pylist() == exp.column("opportunity_id").to_pylist()
    for c in ("type", "profit", "pools", "slot", "victim_signature", "score", "expected_profit_lamports",
              "tip_lamports", "detect_latency_ns", "source"):
        assert got.column(c).to_pylist() == exp.column(c).to_pylist(), c
    assert set(got.column("run_id").to_pylist()) == {"run-a"}


def test_uuid_text_enum_codes_and_int_times_are_accepted(store):
    ids = [uuid.uuid4() for _ in range(3)]
    t = pa.table({"timestamp_ns": pa.array([T0_NS, T0_NS + 1, T0_NS + 2]),
                  "opportunity_id": [str(u) for u in ids],
                  "type": pa.array([1, 2, 3], pa.int8()),
                  "profit": [0.1, 0.2, 0.3],
                  "pools": pa.array([["a"], [], ["b", "c"]])})
    store.insert_batch("mev_opportunities", t, "x")
    rows = store.query_rows("SELECT toUnixTimestamp64Nano(timestamp), opportunity_id, type, pools, slot "
                            "FROM mev_opportunities ORDER BY timestamp")
    assert rows == [(T0_NS, ids[0], "arbitrage", ["a"], -1), (T0_NS + 1, ids[1], "sandwich", [], -1),
                    (T0_NS + 2, ids[2], "liquidation", ["b", "c"], -1)]


def test_latency_hist_and_runs(dsn, tmp_path):
    with StoreWriter(dsn, tmp_path / "spool") as w:
        rid = w.record_run_start(capture_path="/caps/a.pcap", capture_sha256="ab" * 32, market="m1",
                                 config={"x": 1}, started_ns=T0_NS)
        w.put("latency_hist", make_latency_hist(10).drop_columns(["run_id"]))
        w.put("tx_features", make_tx_features(100))
        w.record_run_end({"packets": 123, "transactions": 100}, ended_ns=T0_NS + 5 * 10**9)
    hist = make_latency_hist(10)
    with connect(dsn) as s:
        got = s.query_arrow("SELECT * EXCEPT run_id, interval_start_ns, interval_end_ns FROM latency_hist "
                            "ORDER BY interval_start")
        for c in ("hist_name", "bucket_lower", "bucket_count", "count", "p50", "p99", "p999", "min", "max"):
            assert got.column(c).to_pylist() == hist.column(c).to_pylist(), c
        assert got.column("interval_start_ns").to_pylist() == hist.column("interval_start_ns").to_pylist()
        runs = s.runs().to_pylist()
        assert len(runs) == 1
        r = runs[0]
        assert (r["run_id"], r["status"], r["capture"], r["duration_s"]) == (rid, "done", "/caps/a.pcap", 5.0)
        assert dict(r["counts"]) == {"packets": 123, "transactions": 100}
        assert (r["tx_features_rows"], r["latency_hist_rows"], r["opportunity_rows"]) == (100, 10, 0)


@pytest.mark.parametrize("mutate, words", [
    (lambda t: t.drop_columns(["signature"]), "missing column(s) ['signature']"),
    (lambda t: t.append_column("colour", pa.array(["red"] * t.num_rows)), "not in the table"),
    (lambda t: t.set_column(t.schema.get_field_index("slot"), "slot", pa.array([None] * t.num_rows, pa.int64())),
     "null"),
    (lambda t: t.set_column(t.schema.get_field_index("version"), "version", pa.array([[1]] * t.num_rows)), "version"),
    (lambda t: t.set_column(t.schema.get_field_index("slot"), "slot", pa.array(["x"] * t.num_rows)), "slot"),
])
def test_conform_names_the_column(mutate, words):
    with pytest.raises(StoreError) as e:
        conform("tx_features", mutate(make_tx_features(3)), run_id="r")
    assert words in str(e.value)


def test_conform_rejects_unknown_enum_label_and_table():
    opp = make_opportunities(3).set_column(2, "type", pa.array(["arbitrage", "frontrun", "arbitrage"]))
    with pytest.raises(StoreError, match="frontrun"):
        conform("mev_opportunities", opp)
    with pytest.raises(StoreError, match="no table"):
        conform("mempool", opp)


# --- deduplication -------------------------------------------------------------------------------
def test_chdb_honours_the_insert_deduplication_token(store):
    """chDB (embedded MergeTree) drops a block whose token it has seen: the window is on."""
    b = conform("tx_features", make_tx_features(1_000), run_id="r")
    store.insert_arrow("tx_features", b, "tok-1")
    store.insert_arrow("tx_features", b, "tok-1")
    assert _rows(store, "tx_features") == 1_000
    store.insert_arrow("tx_features", b, "tok-2")           # another token: it is another batch
    assert _rows(store, "tx_features") == 2_000
    o = conform("mev_opportunities", make_opportunities(500))
    store.insert_arrow("mev_opportunities", o, "o-1")
    store.insert_arrow("mev_opportunities", o, "o-1")
    assert _rows(store, "mev_opportunities") == 500


def test_missing_rows_is_exact(store):
    b = conform("tx_features", make_tx_features(2_000), run_id="r")
    store.insert_arrow("tx_features", b.slice(0, 700), "half")
    todo = missing_rows(store, "tx_features", b)
    assert todo.column("tx_index").to_pylist() == list(range(700, 2_000))
    o = conform("mev_opportunities", make_opportunities(1_000))
    store.insert_arrow("mev_opportunities", o.take(list(range(0, 1_000, 2))), "evens")
    assert missing_rows(store, "mev_opportunities", o).column("opportunity_id").to_pylist() == \
        o.take(list(range(1, 1_000, 2))).column("opportunity_id").to_pylist()


# --- clear errors -------------------------------------------------------------------------------
class _RefusingHandler(http.server.BaseHTTPRequestHandler):
    """Answers like a ClickHouse server that does not know the user/password."""

    def _refuse(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = (b"Code: 516. DB::Exception: alice: Authentication failed: password is incorrect, or there is no "
                b"user with such name. (AUTHENTICATION_FAILED) (version 25.8.1.1)\n")
        self.send_response(516)
        self.send_header("X-ClickHouse-Exception-Code", "516")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *a):
        pass


def test_refused_credentials_say_so(tmp_path):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        dsn = f"http://alice:wrong@127.0.0.1:{srv.server_address[1]}/mev"
        with pytest.raises(StoreError) as e:
            connect(dsn)
        msg = str(e.value)
        assert "refused the credentials of user 'alice'" in msg and "password" in msg and "wrong" not in msg
        assert not isinstance(e.value, StoreUnavailable)
        with pytest.raises(StoreError, match="refused the credentials"):   # the writer does not spool it away
            StoreWriter(dsn, tmp_path / "spool").start()
    finally:
        srv.shutdown()
        srv.server_close()


def test_unreachable_server_says_so():
    with pytest.raises(StoreUnavailable) as e:
        connect(f"http://127.0.0.1:{closed_port()}/db", connect_timeout=1)
    assert "cannot reach ClickHouse" in str(e.value) and "flush-spool" in str(e.value)


def test_second_embedded_path_in_one_process_says_so(dsn, tmp_path):
    with connect(dsn):
        with pytest.raises(StoreError, match="one directory per process"):
            connect(f"chdb://{tmp_path / 'other'}")


def test_store_held_by_another_process_says_so(dsn):
    import subprocess
    import sys
    with connect(dsn):
        code = ("from workbench.store import connect, StoreError\n"
                f"try:\n    connect({dsn!r})\nexcept StoreError as e:\n    print(e)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "open in another process" in out, out


def test_engine_opportunity_kinds_are_the_store_enum_codes():
    """The engine writes OPP_* codes; the store's mev_opportunities.type Enum8 reads them by code."""
    import re
    from workbench.engine.opps import OPP_TYPE_NAMES
    codes = {int(c): label for label, c in re.findall(r"'(\w+)' = (\d+)", S.TYPE_ENUM)}
    assert codes == OPP_TYPE_NAMES
    assert S.OPPORTUNITY_TYPES == tuple(OPP_TYPE_NAMES[k] for k in sorted(OPP_TYPE_NAMES))


def test_store_layer_imports_nothing_above_it():
    """store/ and cli/db.py receive Arrow tables: they import only the base modules and the store."""
    import ast
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1] / "workbench"
    allowed = {"workbench", "workbench.errors", "workbench.config", "workbench.store"}
    for f in sorted((root / "store").glob("*.py")) + [root / "cli" / "db.py"]:
        package = f"workbench.{f.parent.name}"
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = base + ("." + node.module if node.module else "")
            elif isinstance(node, (ast.ImportFrom, ast.Import)):
                mods = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                mod = next((m for m in mods if m.startswith("workbench")), None)
            else:
                continue
            if mod and mod.startswith("workbench"):
                top = ".".join(mod.split(".")[:2])
                assert top in allowed or mod.startswith(package), f"{f.name} imports {mod}: above the store layer"


# --- issue 15: read-only sessions (item 16) and the lock message naming real commands ------------
def test_read_only_session_refuses_writes_files_and_settings(dsn, tmp_path):
    with connect(dsn):
        pass                                                        # the schema, by a writable session
    evil = tmp_path / "evil.csv"
    with connect(dsn, ensure_schema=False, read_only=True) as ro:
        assert ro.scalar("SELECT count() FROM mev_opportunities") == 0
        for sql in (f"INSERT INTO FUNCTION file('{evil}', 'CSV', 'x Int32') SELECT 1",
                    "INSERT INTO mev_opportunities (type) VALUES ('arbitrage')",
                    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
                    "CREATE TABLE t (x Int32) ENGINE = Memory", "SET readonly = 0",
                    "SELECT 1 SETTINGS readonly = 0"):
            with pytest.raises(StoreError) as e:
                ro.command(sql)
            assert not isinstance(e.value, StoreUnavailable), sql      # not a transient: nothing to retry
            assert "read-only session" in str(e.value) and "file()" in str(e.value), str(e.value)
        with pytest.raises(StoreError, match="read-only session"):
            ro.insert_arrow("mev_opportunities", conform("mev_opportunities", make_opportunities(1)))
        # a writable session of the same process is not made read-only by it
        with connect(dsn) as rw:
            rw.insert_batch("mev_opportunities", make_opportunities(3))
        assert ro.scalar("SELECT count() FROM mev_opportunities") == 3
    assert not evil.exists()
    with pytest.raises(StoreError, match="cannot create or migrate"):
        connect(dsn, read_only=True)
    missing = tmp_path / "no-store"
    with pytest.raises(StoreError, match="no embedded store at"):
        connect(f"chdb://{missing}", ensure_schema=False, read_only=True)
    assert not missing.exists()


def test_read_only_session_on_a_server_sends_readonly_1(monkeypatch):
    """On a server the same session setting goes to clickhouse-connect (readonly=1 on every query)."""
    import clickhouse_connect
    seen = {}

    def fake_client(**kw):
        seen.update(kw)
        raise ConnectionRefusedError("connection refused")
    monkeypatch.setattr(clickhouse_connect, "get_client", fake_client)
    with pytest.raises(StoreUnavailable):
        connect("http://u:p@127.0.0.1:8123/db", ensure_schema=False, read_only=True)
    assert seen["settings"] == {"readonly": 1} and seen["interface"] == "http"
    seen.clear()
    with pytest.raises(StoreUnavailable):
        connect("http://u:p@127.0.0.1:8123/db", ensure_schema=False)
    assert "settings" not in seen


def test_store_lock_message_names_commands_that_exist(tmp_path):
    import fcntl
    import re
    from workbench.cli.app import app
    from workbench.store.clickhouse import translate
    d = tmp_path / "held"
    d.mkdir()
    with open(d / "status", "wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)                             # as a chDB process holds its store
        msg = str(translate(RuntimeError("Cannot lock file status"), parse_dsn(f"chdb://{d}")))
    assert "open in another process" in msg, msg
    named = re.findall(r"`workbench ([\w-]+)", msg)
    commands = {c.name or c.callback.__name__ for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert named and set(named) <= commands, (named, commands)


def test_the_views_store_watch_reads_through_a_read_only_session(dsn, tmp_path):
    from workbench.runner.store_watch import StoreWatch
    with StoreWriter(dsn, tmp_path / "spool") as w:
        run_id = w.record_run_start(capture_path="cap.pcap")
        w.put("tx_features", make_tx_features(10))
        w.put("mev_opportunities", make_opportunities(5))
        w.put("latency_hist", make_latency_hist(3, run_id=run_id))
        w.record_run_end({"packets": 12})
    watch = StoreWatch(dsn)
    try:
        assert watch.store.read_only and watch.latest_run() == run_id
        assert watch.counts(run_id)["packets"] == 12
        assert watch.tx_features(run_id, -1).num_rows == 10
        assert watch.opportunities(run_id, -1).num_rows == 5
        assert watch.histograms(run_id)
        with pytest.raises(StoreError, match="read-only session"):
            watch.query_arrow(f"SELECT * FROM file('{tmp_path / 'x'}', 'LineAsString')")
    finally:
        watch.store.close()
