"""The store's schema against the specification, its migrations and its repair (issue 17, issue 15 item 6).

* Version 1 is the specification's mev_opportunities text (whitespace aside), and the
  repository's copy of the specification is the shared one when that is present.
* A store written by version 2 (profit_estimate, no codecs on two columns, other index
  granularities; built from tests/store_schema_v2.sql, the DDL version 2 wrote) is migrated:
  rows kept, and its tables then read the same in ClickHouse's system tables as a fresh store.
* A store whose version is current but whose tables, columns or indexes were dropped is
  repaired by `workbench db schema --apply`, and a replay stores its rows again (nothing spooled).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import CAPTURES, REPO
from workbench.store import connect
from workbench.store import schema as S
from workbench.store.migrate import Present, PresentColumn, codec_key, repair_statements

SPEC_SQL = REPO / "deploy" / "spec" / "mev_opportunities.sql"
SHARED_SPEC = REPO.parent / "shared" / "spec"
OLD_DDL = Path(__file__).resolve().parent / "store_schema_v2.sql"


def _words(sql: str) -> str:
    """SQL without comments, whitespace aside."""
    return " ".join(re.sub(r"--[^\n]*", "", sql).split())


def _statements(text: str) -> list[str]:
    return [s for s in re.split(r";\s*\n", re.sub(r"(?m)^--.*\n", "", text)) if s.strip()]


# --- the specification's text ----------------------------------------------------------------
def test_version_1_is_the_specification_text():
    (sql,) = S.render_migration(S.MIGRATIONS[0], S.Target())
    plain = sql.replace("CREATE TABLE IF NOT EXISTS default.", "CREATE TABLE ", 1) + ";"
    assert _words(plain) == _words(SPEC_SQL.read_text())
    assert _words(S.SEED_DDL) == _words(SPEC_SQL.read_text())


@pytest.mark.skipif(not SHARED_SPEC.is_dir(), reason="no ../shared/spec beside this clone")
@pytest.mark.parametrize("name", ["mev_opportunities.sql", "clickhouse-config.xml"])
def test_the_repository_copy_is_the_shared_specification(name):
    assert (REPO / "deploy" / "spec" / name).read_bytes() == (SHARED_SPEC / name).read_bytes()


def test_the_specification_query_runs_on_a_fresh_store(store):
    store.command("INSERT INTO mev_opportunities (timestamp, opportunity_id, type, profit, pools) VALUES "
                  "(now64(9), generateUUIDv4(), 'arbitrage', 0.25, ['a']), "
                  "(now64(9), generateUUIDv4(), 'sandwich', 0.75, ['b'])")
    rows = store.query_rows("SELECT type, profit FROM mev_opportunities "
                            "WHERE timestamp >= now64(9) - INTERVAL 1 HOUR ORDER BY profit DESC LIMIT 100")
    assert rows == [("sandwich", 0.75), ("arbitrage", 0.25)]


# --- what a store holds, in comparable form ----------------------------------------------------
def _describe(store) -> dict:
    cols = store.query_rows(
        "SELECT table, name, type, compression_codec, default_kind, default_expression, comment "
        "FROM system.columns WHERE database = currentDatabase() ORDER BY table, position")
    idx = store.query_rows("SELECT table, name, type_full, expr, granularity FROM system.data_skipping_indices "
                           "WHERE database = currentDatabase() ORDER BY table, name")
    tables = store.query_rows("SELECT name, engine, partition_key, sorting_key FROM system.tables "
                              "WHERE database = currentDatabase() AND name != 'schema_version' ORDER BY name")
    cols = [c for c in cols if c[0] != "schema_version"]
    return {"columns": cols, "indexes": idx, "tables": tables}


@pytest.fixture
def fresh_description(tmp_path):
    with connect(f"chdb://{tmp_path / 'fresh'}") as s:
        return _describe(s)


def _build_version_2_store(dsn: str) -> None:
    """A store exactly as version 2 of the workbench left it, with a row in it."""
    with connect(dsn, ensure_schema=False) as s:
        for sql in _statements(OLD_DDL.read_text()):
            s.command(sql)
        for sql in S.render_version_table(S.Target()):
            s.command(sql)
        s.command("INSERT INTO schema_version (version, code_version, description) VALUES "
                  "(1, '0.1.0', 'seed'), (2, '0.1.0', 'engine columns')")
        s.command("INSERT INTO mev_opportunities (timestamp, opportunity_id, type, profit_estimate, pools, run_id, "
                  "slot, source) VALUES ('2026-01-01 00:00:00.123456789', "
                  "'6f1c2d8e-5a4b-4c3d-9e2f-1a0b9c8d7e6f', 'sandwich', 1.5, ['p1', 'p2'], 'run-old', 7, 'replay')")
        assert s.schema_version() == (2, "")
        assert "profit_estimate" in [r[0] for r in s.query_rows(
            "SELECT name FROM system.columns WHERE table = 'mev_opportunities'")]


def test_a_version_2_store_is_migrated_to_the_specification(tmp_path, fresh_description):
    dsn = f"chdb://{tmp_path / 'old'}"
    _build_version_2_store(dsn)
    with connect(dsn) as s:
        assert s.schema_report.applied == [3, 4] and s.schema_report.problems == []
        assert s.schema_version()[0] == S.SCHEMA_VERSION
        rows = s.query_rows("SELECT toString(opportunity_id), type, profit, pools, run_id, slot, toString(source), "
                            "tx_index, trigger_signature, isNaN(f_pool_depth_sol) FROM mev_opportunities")
        assert rows == [("6f1c2d8e-5a4b-4c3d-9e2f-1a0b9c8d7e6f", "sandwich", 1.5, ["p1", "p2"], "run-old", 7,
                         "replay", -1, "", 1)]
        # the specification's query, and the skip index over the renamed column is there for old parts too
        assert s.query_rows("SELECT profit FROM mev_opportunities ORDER BY profit DESC LIMIT 100") == [(1.5,)]
        migrated = _describe(s)
        assert s.ensure_schema() == [] and s.schema_report.repairs == []       # nothing left to do
    assert migrated == fresh_description


def test_repair_statements_of_an_old_table_rename_before_reindexing():
    cols = [PresentColumn(c.name if c.name != "profit" else "profit_estimate", c.ch_type, "", "")
            for c in S.OPPORTUNITIES.columns]
    present = Present({f"{n}": [PresentColumn(c.name, c.ch_type, f"CODEC({c.codec})" if c.codec else "", "")
                                for c in S.TABLES[n].columns]
                       + [PresentColumn(a.split()[0], a.split()[1], "", "ALIAS") for a in S.TABLES[n].aliases]
                       for n in S.TABLES if n != "mev_opportunities"},
                      {"mev_opportunities": {"idx_profit": ("profit_estimate", 4), "idx_timestamp": ("timestamp", 1)}})
    present.columns["mev_opportunities"] = cols
    for n in S.TABLES:
        if n != "mev_opportunities":
            present.indexes[n] = {i.split()[1]: (i.split()[2], int(i.split()[-1])) for i in S.TABLES[n].indexes}
    stmts, problems = repair_statements(present, S.Target())
    assert problems == []
    text = [" ".join(s.split()) for s in stmts]
    drop = text.index("ALTER TABLE default.mev_opportunities DROP INDEX IF EXISTS idx_profit")
    rename = text.index("ALTER TABLE default.mev_opportunities RENAME COLUMN IF EXISTS profit_estimate TO profit")
    add = text.index("ALTER TABLE default.mev_opportunities ADD INDEX IF NOT EXISTS idx_profit profit TYPE minmax "
                     "GRANULARITY 4096")
    assert drop < rename < add
    assert "ALTER TABLE default.mev_opportunities MATERIALIZE INDEX idx_profit" in text
    assert "ALTER TABLE default.mev_opportunities MODIFY COLUMN pools CODEC(ZSTD(3))" in text
    assert all("tx_features" not in s and "swaps" not in s for s in text)      # whole tables left alone


def test_repair_on_a_cluster_alters_the_local_and_the_distributed_table():
    t = S.Target("mev", "prod")
    spec = S.TABLES["swaps"]
    present = Present({f"{n}_local": [PresentColumn(c.name, c.ch_type, f"CODEC({c.codec})" if c.codec else "", "")
                                      for c in S.TABLES[n].columns if c.name != "amount_limit"]
                       + [PresentColumn(a.split()[0], a.split()[1], "", "ALIAS") for a in S.TABLES[n].aliases]
                       for n in ("swaps",)})
    present.indexes["swaps_local"] = {i.split()[1]: (i.split()[2], int(i.split()[-1])) for i in spec.indexes}
    stmts, _ = repair_statements(present, t, ["swaps"])
    assert [" ".join(s.split()) for s in stmts] == [
        f"ALTER TABLE mev.swaps_local ON CLUSTER prod ADD COLUMN IF NOT EXISTS {spec.column('amount_limit').ddl()} "
        "AFTER amount_out",
        f"ALTER TABLE mev.swaps ON CLUSTER prod ADD COLUMN IF NOT EXISTS "
        f"{spec.column('amount_limit').ddl(with_codec=False)} AFTER amount_out"]
    stmts, _ = repair_statements(Present(), t, ["runs"])          # a missing table: local and Distributed
    assert any("mev.runs_local ON CLUSTER prod" in s for s in stmts) and any("Distributed(prod" in s for s in stmts)


def test_codec_key_reads_what_clickhouse_shows():
    assert codec_key("CODEC(Gorilla(8), ZSTD(3))") == codec_key("Gorilla, ZSTD(3)")
    assert codec_key("CODEC(ZSTD(1))") != codec_key("ZSTD(3)")
    assert codec_key("") == ()


# --- issue 15 item 6: repair from what exists -----------------------------------------------------
def test_dropped_table_column_and_index_are_repaired_and_a_replay_stores_again(tmp_path, monkeypatch,
                                                                                fresh_description):
    from typer.testing import CliRunner
    from workbench.cli import db as cli_db
    from workbench.config import Settings
    from workbench.runner import replay
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    with connect(dsn) as s:
        s.command("DROP TABLE tx_features")
        s.command("ALTER TABLE mev_opportunities DROP COLUMN trigger_signature")
        s.command("ALTER TABLE swaps DROP INDEX idx_pool")
        s.command("ALTER TABLE runs DROP COLUMN capture_sha256")
        assert s.schema_version()[0] == S.SCHEMA_VERSION           # the version alone says all is well
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cli_db.console, "width", 200)
    r = CliRunner().invoke(cli_db.db_app, ["schema", "--apply", "--db", dsn])
    assert r.exit_code == 0, r.output
    assert "repaired what was missing" in r.output and "already at version" not in r.output
    for words in ("CREATE TABLE IF NOT EXISTS default.tx_features", "ADD COLUMN IF NOT EXISTS trigger_signature",
                  "ADD INDEX IF NOT EXISTS idx_pool", "ADD COLUMN IF NOT EXISTS capture_sha256"):
        assert words in r.output, (words, r.output)
    with connect(dsn, ensure_schema=False) as s:
        assert _describe(s) == fresh_description
    r = CliRunner().invoke(cli_db.db_app, ["schema", "--apply", "--db", dsn])
    assert r.exit_code == 0 and "already at version" in r.output and "repaired" not in r.output
    settings = Settings(data_dir=str(tmp_path / "data"), progress=False)
    res = replay(CAPTURES / "small.pcap", tmp_path / "out", settings, db=dsn)
    assert res.store["rows_spooled"] == 0 and res.store["rows_inserted"] >= res.transactions > 0
    with connect(dsn) as s:
        assert s.count("tx_features", "run_id = {r:String}", {"r": res.run_id}) == \
            pq.read_table(tmp_path / "out" / "tx_features.parquet").num_rows


def test_a_writer_repairs_on_start(tmp_path):
    """The writer's connect repairs too: a dropped table does not make every later run spool."""
    from workbench.store import StoreWriter
    from store_helpers import make_tx_features
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    with connect(dsn) as s:
        s.command("DROP TABLE tx_features")
    with StoreWriter(dsn, tmp_path / "spool") as w:
        w.record_run_start(capture_path="x.pcap")
        w.put("tx_features", make_tx_features(100))
        w.record_run_end({"transactions": 100})
    assert w.stats.rows_spooled == 0 and w.stats.by_table["tx_features"][0] == 100


def test_a_dropped_mev_opportunities_is_made_again_by_the_migrations_that_made_it(tmp_path, fresh_description):
    """The specification's table, then the columns versions 2 and 4 added, in that order."""
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    with connect(dsn) as s:
        s.command("DROP TABLE mev_opportunities")
    with connect(dsn) as s:
        repairs = [" ".join(r.split()) for r in s.schema_report.repairs]
        assert repairs[0].startswith("CREATE TABLE IF NOT EXISTS default.mev_opportunities ( timestamp")
        assert _words(repairs[0]) == _words(S.render_seed(S.Target())[0])
        assert _describe(s) == fresh_description
