"""The `workbench db` CLI (cli/db.py) on embedded chDB: query in table/csv/parquet form, runs,
schema (single node and cluster, --apply), flush-spool, and a bad DSN's exit code."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from store_helpers import make_opportunities
from workbench.store import StoreWriter


# --- CLI ---------------------------------------------------------------------------------------
def test_cli_db_commands(dsn, tmp_path, monkeypatch):
    from typer.testing import CliRunner
    from workbench.cli import db as cli_db
    from workbench.cli.db import db_app
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cli_db.console, "width", 200)
    runner = CliRunner()
    with StoreWriter(dsn, tmp_path / "data" / "spool") as w:
        w.record_run_start(capture_path="/caps/demo.pcap")
        w.put("mev_opportunities", make_opportunities(50))
        w.record_run_end({"packets": 7})
    r = runner.invoke(db_app, ["query", "SELECT type, count() AS n FROM mev_opportunities GROUP BY type ORDER BY type",
                               "--db", dsn])
    assert r.exit_code == 0, r.output
    assert "arbitrage" in r.output and "rows" in r.output
    r = runner.invoke(db_app, ["query", "SELECT count() AS n FROM mev_opportunities", "--db", dsn, "-f", "csv"])
    assert r.exit_code == 0 and r.stdout.splitlines() == ['"n"', "50"]
    out = tmp_path / "o.parquet"
    r = runner.invoke(db_app, ["query", "SELECT * FROM mev_opportunities", "--db", dsn, "-f", "parquet", "-o", str(out)])
    assert r.exit_code == 0, r.output
    t = pq.read_table(out)
    assert t.num_rows == 50 and t.schema.field("type").type == pa.string()
    r = runner.invoke(db_app, ["runs", "--db", dsn])
    assert r.exit_code == 0 and "demo.pcap" in r.output and "done" in r.output
    r = runner.invoke(db_app, ["schema"])
    assert r.exit_code == 0 and "CREATE TABLE IF NOT EXISTS default.mev_opportunities" in r.output
    r = runner.invoke(db_app, ["schema", "--cluster", "prod"])
    assert "ReplicatedMergeTree()" in r.output and "Distributed(prod" in r.output
    r = runner.invoke(db_app, ["schema", "--apply", "--db", dsn])
    assert r.exit_code == 0 and "already at version" in r.output
    r = runner.invoke(db_app, ["flush-spool", "--db", dsn])
    assert r.exit_code == 0 and "empty" in r.output
    r = runner.invoke(db_app, ["query", "SELECT 1", "--db", "mysql://x"])
    assert r.exit_code == 2 and "bad store DSN" in r.output
