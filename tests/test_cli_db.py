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


def _invoke(args, monkeypatch, tmp_path):
    from typer.testing import CliRunner
    from workbench.cli import db as cli_db
    from workbench.cli import output
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cli_db.console, "width", 200)
    monkeypatch.setattr(output.err_console, "width", 200)
    return CliRunner().invoke(cli_db.db_app, args)


# --- issue 15 item 12: values from the store and error messages are printed as they are -----------
def test_cli_db_prints_store_values_and_errors_as_plain_text(dsn, tmp_path, monkeypatch):
    sql = "SELECT '[/bold]' AS `[/x]`, '[red]RED[/red]' AS b, 'a\\\\' AS c, NULL AS d, map('[k]', 1) AS m"
    r = _invoke(["query", sql, "--db", dsn], monkeypatch, tmp_path)
    assert r.exit_code == 0, r.output
    for text in ("[/x]", "[/bold]", "[red]RED[/red]", "a\\", "NULL", "[k]"):
        assert text in r.output, (text, r.output)
    # an SQL error quoting markup: a message, the markup shown as is
    r = _invoke(["query", "SELECT * FROM nope_[/x]", "--db", dsn], monkeypatch, tmp_path)
    assert r.exit_code == 2 and "error:" in r.output and "[/x]" in r.output and "Traceback" not in r.output
    # a DSN (printed by schema --apply) and a spool folder carrying markup
    odd = tmp_path / "[/x]"
    r = _invoke(["schema", "--apply", "--db", f"chdb://{odd}"], monkeypatch, tmp_path)
    assert r.exit_code == 0 and f"chdb://{odd}" in r.output, r.output
    r = _invoke(["flush-spool", "--spool", str(tmp_path / "[red]s[/red]"), "--db", dsn], monkeypatch, tmp_path)
    assert r.exit_code == 0 and "[red]s[/red]" in r.output, r.output


def test_cli_warnings_and_failures_print_markup_literally(capsys):
    import typer
    from workbench.cli.output import fail, warn
    warn("spool file [/x] set aside: [red]bad[/red]", label="[/y]")
    try:
        fail(ValueError("quoting [/bold] and [red]x[/red]"))
    except typer.Exit as e:
        assert e.exit_code == 2
    err = capsys.readouterr().err
    assert "[/x]" in err and "[red]bad[/red]" in err and "[/y]" in err and "[/bold] and [red]x[/red]" in err


# --- issue 15 item 13: output paths are checked before the query runs ------------------------------
def test_cli_db_query_output_paths(dsn, tmp_path, monkeypatch):
    q = ["query", "SELECT 1 AS n", "--db", dsn, "-f", "csv", "-o"]
    r = _invoke(q + [str(tmp_path)], monkeypatch, tmp_path)
    assert r.exit_code == 2 and f"--output {tmp_path}: is a folder" in r.output, r.output
    deep = tmp_path / "new" / "deeper" / "n.csv"           # missing folders: made, as replay --out does
    r = _invoke(q + [str(deep)], monkeypatch, tmp_path)
    assert r.exit_code == 0 and deep.read_text().splitlines() == ['"n"', "1"], r.output
    (tmp_path / "plain").write_text("x")
    r = _invoke(q + [str(tmp_path / "plain" / "n.csv")], monkeypatch, tmp_path)
    assert r.exit_code == 2 and "cannot create its folder" in r.output and "plain" in r.output, r.output
    r = _invoke(["query", "SELECT 1", "--db", dsn, "-o", str(tmp_path / "t.txt")], monkeypatch, tmp_path)
    assert r.exit_code == 2 and "--format csv" in r.output and not (tmp_path / "t.txt").exists()
    r = _invoke(["flush-spool", "--spool", str(tmp_path / "plain"), "--db", dsn], monkeypatch, tmp_path)
    assert r.exit_code == 2 and f"--spool {tmp_path / 'plain'}: is a file" in r.output, r.output


def test_cli_db_query_output_checked_before_the_query(tmp_path, monkeypatch):
    from workbench import store
    calls = []
    monkeypatch.setattr(store, "connect", lambda *a, **k: calls.append(a))
    r = _invoke(["query", "SELECT 1", "-f", "csv", "-o", str(tmp_path)], monkeypatch, tmp_path)
    assert r.exit_code == 2 and "is a folder" in r.output and calls == []


# --- issue 15 item 16: db query --read-only ------------------------------------------------------
def test_cli_db_query_read_only_refuses_writes_and_file_functions(dsn, tmp_path, monkeypatch):
    from workbench.store import connect
    with connect(dsn):
        pass                                                # the schema
    evil = tmp_path / "evil.csv"
    refused = [f"INSERT INTO FUNCTION file('{evil}', 'CSV', 'x Int32') SELECT 1",
               "INSERT INTO mev_opportunities (type) VALUES ('arbitrage')",
               "SELECT * FROM file('/etc/hostname', 'LineAsString')",
               "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
               "DROP TABLE mev_opportunities",
               "SELECT 1 SETTINGS readonly = 0"]
    for sql in refused:
        for fmt in ("table", "csv"):
            r = _invoke(["query", sql, "--db", dsn, "--read-only", "-f", fmt], monkeypatch, tmp_path)
            assert r.exit_code == 2, (sql, r.output)
            assert "refused this in a read-only session" in r.output and "Traceback" not in r.output, r.output
    assert not evil.exists()
    r = _invoke(["query", "SELECT count() AS n FROM mev_opportunities", "--db", dsn, "--read-only", "-f", "csv"],
                monkeypatch, tmp_path)
    assert r.exit_code == 0 and r.stdout.splitlines() == ['"n"', "0"], r.output
    # the same SQL without --read-only runs with the user's rights: the help says so
    r = _invoke(["query", f"INSERT INTO FUNCTION file('{evil}', 'CSV', 'x Int32') SELECT 1", "--db", dsn],
                monkeypatch, tmp_path)
    assert r.exit_code == 0 and evil.read_text().strip() == "1"
    r = _invoke(["query", "--help"], monkeypatch, tmp_path)
    assert "--read-only" in r.output and "file()" in r.output and "INSERT" in r.output
