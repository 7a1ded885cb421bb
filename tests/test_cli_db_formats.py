"""Issue 17 item 2: `db query` and `db runs` in the auto, table, vertical, json, ndjson and csv
formats (cli/row_formats.py): tables that fit the terminal with long cells cut, vertical blocks
with every value whole, JSON with exact integers and nanosecond ISO times, markup never read."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from typer.testing import CliRunner

from store_helpers import make_opportunities
from workbench.cli.row_formats import ELLIPSIS, column_widths
from workbench.store import StoreWriter

EXACT_SQL = """SELECT toUInt64('18446744073709551615') AS u64,
       toInt128('-170141183460469231731687303715884105728') AS i128,
       toUInt256('115792089237316195423570985008687907853269984665640564039457584007913129639935') AS u256,
       toDateTime64('2026-01-01 00:00:00.123456789', 9, 'UTC') AS t9,
       toDateTime64('2026-01-01 09:00:00.5', 3, 'Asia/Tokyo') AS tokyo,
       toDateTime('2026-01-01 01:02:03', 'UTC') AS t0,
       [toDateTime64('1969-12-31 23:59:59.999', 3, 'UTC')] AS before_epoch,
       toDate('2026-01-02') AS d,
       toUUID('4c92981a-21f0-4454-aac9-70e7650a61a7') AS u,
       toDecimal128('1.10', 2) AS dec,
       nan AS f, 0.1 AS tenth,
       map('k', toUInt64('18446744073709551615')) AS m,
       NULL AS n,
       '[red]RED[/red] é' AS s"""


def _invoke(args, monkeypatch, tmp_path, width=200):
    from workbench.cli import db as cli_db
    from workbench.cli import output
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cli_db.console, "width", width)
    monkeypatch.setattr(output.err_console, "width", width)
    return CliRunner().invoke(cli_db.db_app, args)


def _exact_expected(o: dict) -> None:
    assert o["u64"] == 2**64 - 1 and o["i128"] == -(2**127) and o["u256"] == 2**256 - 1
    assert o["t9"] == "2026-01-01T00:00:00.123456789Z"
    assert o["tokyo"] == "2026-01-01T09:00:00.500+09:00"
    assert o["t0"] == "2026-01-01T01:02:03Z"
    assert o["before_epoch"] == ["1969-12-31T23:59:59.999Z"]
    assert o["d"] == "2026-01-02" and o["u"] == "4c92981a-21f0-4454-aac9-70e7650a61a7"
    assert o["dec"] == "1.10" and o["f"] is None and o["tenth"] == 0.1
    assert o["m"] == {"k": 2**64 - 1} and o["n"] is None and o["s"] == "[red]RED[/red] é"


def test_json_and_ndjson_are_exact(dsn, tmp_path, monkeypatch):
    r = _invoke(["query", EXACT_SQL, "--db", dsn, "-f", "json"], monkeypatch, tmp_path)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 1
    _exact_expected(rows[0])
    # the integers are written digit for digit in the text itself, not only after Python's parse
    assert '"u64": 18446744073709551615' in r.stdout and '"i128": -170141183460469231731687303715884105728' in r.stdout
    r = _invoke(["query", EXACT_SQL + " UNION ALL " + EXACT_SQL, "--db", dsn, "-f", "ndjson"], monkeypatch, tmp_path)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        _exact_expected(json.loads(line))
    # -o: the suffix names the format; missing folders are made
    out = tmp_path / "new" / "r.json"
    r = _invoke(["query", EXACT_SQL, "--db", dsn, "-o", str(out)], monkeypatch, tmp_path)
    assert r.exit_code == 0, r.output
    _exact_expected(json.loads(out.read_text())[0])
    out = tmp_path / "r.jsonl"
    r = _invoke(["query", EXACT_SQL, "--db", dsn, "-o", str(out)], monkeypatch, tmp_path)
    assert r.exit_code == 0 and len(out.read_text().splitlines()) == 1, r.output
    r = _invoke(["query", "SELECT 1 AS n WHERE 0", "--db", dsn, "-f", "json"], monkeypatch, tmp_path)
    assert r.exit_code == 0 and json.loads(r.stdout) == []


def test_vertical_shows_every_value_whole(dsn, tmp_path, monkeypatch):
    r = _invoke(["query", EXACT_SQL, "--db", dsn, "-f", "vertical"], monkeypatch, tmp_path, width=80)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert out.startswith("Row 1:\n──────\n")
    for want in ("u64:", "18,446,744,073,709,551,615", "2026-01-01 00:00:00.123456789", "2026-01-01 09:00:00.500",
                 "4c92981a-21f0-4454-aac9-70e7650a61a7", "[red]RED[/red] é", "NULL", "1 row"):
        assert want in out, (want, out)
    assert ELLIPSIS not in out
    assert re.search(r"^before_epoch: +\[1969-12-31 23:59:59\.999\]$", out, re.M), out


def _opportunities_store(dsn, tmp_path, n=5):
    with StoreWriter(dsn, tmp_path / "data" / "spool") as w:
        w.record_run_start(capture_path="/caps/some/folder/demo.pcap")
        w.put("mev_opportunities", make_opportunities(n))
        w.record_run_end({"packets": 7, "transactions": 5})


def test_table_at_80_columns_cuts_long_cells_never_numbers(dsn, tmp_path, monkeypatch):
    _opportunities_store(dsn, tmp_path)
    sql = "SELECT opportunity_id, type, pools, slot, expected_profit_lamports, timestamp FROM mev_opportunities"
    for fmt in ("auto", "table"):
        r = _invoke(["query", sql, "--db", dsn, "-f", fmt], monkeypatch, tmp_path, width=80)
        assert r.exit_code == 0, r.output
        lines = r.stdout.splitlines()
        assert all(len(line) <= 80 for line in lines), "\n".join(lines)
        body = [line for line in lines[2:] if line.strip() and "rows" not in line]
        assert len(body) == 5                              # one line per row: nothing wraps
        assert ELLIPSIS in r.stdout and "--format vertical or json shows them whole" in r.stdout
        header = lines[0].split()
        assert header[:2] == ["opportunity_id", "type"] or header[0].startswith("opportun"), lines[0]
    # every slot and profit is printed whole
    from workbench.store import connect
    with connect(dsn) as s:
        slots = [r[0] for r in s.query_rows("SELECT slot FROM mev_opportunities")]
    for slot in slots:
        assert f"{slot:,}" in r.stdout, (slot, r.stdout)
    # vertical: the full UUIDs and pool lists
    r = _invoke(["query", sql, "--db", dsn, "-f", "vertical"], monkeypatch, tmp_path, width=80)
    with connect(dsn) as s:
        ids = [str(r[0]) for r in s.query_rows("SELECT opportunity_id FROM mev_opportunities")]
    assert all(i in r.stdout for i in ids) and ELLIPSIS not in r.stdout


def test_auto_is_a_table_when_it_fits_else_vertical(dsn, tmp_path, monkeypatch):
    _opportunities_store(dsn, tmp_path)
    r = _invoke(["query", "SELECT * FROM mev_opportunities", "--db", dsn], monkeypatch, tmp_path, width=80)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("Row 1:") and "columns do not fit 80 characters" in r.stdout
    assert all(len(line) <= 80 or ":" in line for line in r.stdout.splitlines())
    r = _invoke(["query", "SELECT type, count() AS n FROM mev_opportunities GROUP BY type", "--db", dsn],
                monkeypatch, tmp_path, width=80)
    assert r.exit_code == 0 and "Row 1:" not in r.stdout and ELLIPSIS not in r.stdout
    # --format table forces a table however wide: cells cut at the cell limit, lines as long as needed
    r = _invoke(["query", "SELECT * FROM mev_opportunities", "--db", dsn, "-f", "table"], monkeypatch, tmp_path,
                width=80)
    assert r.exit_code == 0 and "Row 1:" not in r.stdout and max(map(len, r.stdout.splitlines())) > 80
    r = _invoke(["query", "SELECT 1", "--db", dsn, "-f", "xml"], monkeypatch, tmp_path)
    assert r.exit_code == 2 and "--format 'xml'" in r.output and "vertical" in r.output


def test_runs_in_every_format(dsn, tmp_path, monkeypatch):
    _opportunities_store(dsn, tmp_path)
    r = _invoke(["runs", "--db", dsn], monkeypatch, tmp_path, width=80)
    assert r.exit_code == 0, r.output
    assert "Row 1:" in r.stdout and re.search(r"^capture: +demo\.pcap$", r.stdout, re.M), r.stdout
    r = _invoke(["runs", "--db", dsn], monkeypatch, tmp_path, width=200)
    assert r.exit_code == 0 and "Row 1:" not in r.stdout and "demo.pcap" in r.stdout and "started (UTC)" in r.stdout
    r = _invoke(["runs", "--db", dsn, "-f", "json"], monkeypatch, tmp_path)
    assert r.exit_code == 0, r.output
    (run,) = json.loads(r.stdout)
    assert run["capture"] == "/caps/some/folder/demo.pcap" and run["counts"] == {"packets": 7, "transactions": 5}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", run["started_at"]), run["started_at"]
    assert run["opportunity_rows"] == 5 and run["status"] == "done"
    r = _invoke(["runs", "--db", dsn, "-f", "ndjson"], monkeypatch, tmp_path)
    assert json.loads(r.stdout.strip()) == run
    r = _invoke(["runs", "--db", dsn, "-f", "csv"], monkeypatch, tmp_path)
    (row,) = list(csv.DictReader(io.StringIO(r.stdout)))
    assert row["started_at"] == run["started_at"] and json.loads(row["counts"]) == run["counts"]


def test_markup_in_values_and_names_is_printed_as_is_in_every_text_format(dsn, tmp_path, monkeypatch):
    sql = "SELECT '[/bold]' AS `[/x]`, '[red]RED[/red]' AS b, NULL AS d, map('[k]', 1) AS m"
    for fmt in ("auto", "table", "vertical", "json", "ndjson", "csv"):
        r = _invoke(["query", sql, "--db", dsn, "-f", fmt], monkeypatch, tmp_path)
        assert r.exit_code == 0, (fmt, r.output)
        for text in ("[/x]", "[/bold]", "[red]RED[/red]", "[k]"):
            assert text in r.stdout, (fmt, text, r.stdout)


@pytest.mark.parametrize("room", [20, 40, 60, 80, 200])
def test_column_widths_fit_and_never_cut_numbers(room):
    names = ["id", "pools", "slot", "t"]
    cells = [["4c92981a-21f0-4454-aac9-70e7650a61a7", "[" + "x" * 90 + "]", "390,003,102", "2026-01-01 00:00:00.1"]]
    numeric = [False, False, True, False]
    widths, fits = column_widths(names, cells, numeric, room)
    if fits:
        assert sum(widths) <= room and widths[2] == len("390,003,102")
        assert all(w >= min(8, len(c)) for w, c in zip(widths, cells[0]))
    else:
        assert sum(min(8, len(c)) if not n else max(len(c), min(8, len(h)))
                   for c, n, h in zip(cells[0], numeric, names)) > room
