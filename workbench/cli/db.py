"""``workbench db``: query the store, list runs, print or apply the schema, flush the spool.

Every command takes ``--db DSN``; without it the settings decide (``WORKBENCH_DB``, the
config's ``db``, else ``chdb:///<data_dir>/clickhouse``). The spool is ``<data_dir>/spool``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import pyarrow as pa
import typer
from rich.table import Table
from rich.text import Text

from ..config import Settings, load_settings
from ..errors import WorkbenchError
from .output import console, err_console, fail as _fail, out_file, plain, warn

db_app = typer.Typer(add_completion=False, no_args_is_help=True,
                     help="The ClickHouse store: query it, list runs, print or apply the schema, flush the spool.")

DB_OPTION = typer.Option(None, "--db", help="store DSN: chdb:///dir or http://user:password@host:8123/database "
                                            "(default: WORKBENCH_DB, the config's db, or <data_dir>/clickhouse)")


def _settings(ctx: typer.Context | None = None) -> Settings:
    obj = getattr(ctx, "obj", None) if ctx is not None else None
    if isinstance(obj, Settings):
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("settings"), Settings):
        return obj["settings"]
    try:    # a bad WORKBENCH_* variable or config file is a message, in every db command
        return load_settings()
    except WorkbenchError as e:
        _fail(e)


def _dsn(ctx: typer.Context, db: str | None) -> str:
    return db or _settings(ctx).db_dsn


def spool_dir(settings: Settings) -> Path:
    """Where failed inserts wait: ``<data_dir>/spool``."""
    from ..store import default_spool_dir
    return default_spool_dir(settings.data_dir)


def _cell(v) -> Text:
    """One value as plain Text: a value from the store is shown as it is, never read as markup."""
    if v is None:
        return Text("NULL", style="dim")
    if isinstance(v, float):
        return Text(f"{v:.6g}")
    if isinstance(v, int) and not isinstance(v, bool):
        return Text(f"{v:,}")
    if isinstance(v, list) and v and isinstance(v[0], tuple) and len(v[0]) == 2:   # Map -> list of pairs
        return Text(", ".join(f"{k}={val:,}" if isinstance(val, int) else f"{k}={val}" for k, val in v))
    return Text(str(v))


def print_table(names: list[str], rows: list, title: str | None = None, max_rows: int = 200) -> None:
    """Rows as a rich table; numbers right-aligned, at most ``max_rows`` shown."""
    t = Table(title=title, title_justify="left")
    shown = rows[:max_rows]
    for i, name in enumerate(names):
        numeric = bool(shown) and all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool)
                                      for r in shown if r[i] is not None)
        t.add_column(plain(name), justify="right" if numeric else "left", overflow="fold")
    for row in shown:
        t.add_row(*(_cell(v) for v in row))
    console.print(t)
    more = len(rows) - len(shown)
    console.print(f"[dim]{len(rows):,} rows" + (f" ({more:,} not shown: --max-rows, or --format csv)" if more else "")
                  + "[/]")


def _parquet_with_text(body: bytes) -> bytes:
    """ClickHouse writes Enum columns to Parquet as bare byte arrays: mark UTF-8 ones as strings."""
    import pyarrow.parquet as pq
    tbl = pq.read_table(pa.BufferReader(body))
    changed = False
    for i, f in enumerate(tbl.schema):
        if pa.types.is_binary(f.type):
            try:
                tbl = tbl.set_column(i, f.name, tbl.column(i).cast(pa.string()))
                changed = True
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass                        # really binary: leave it
    if not changed:
        return body
    sink = pa.BufferOutputStream()
    pq.write_table(tbl, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


@db_app.command()
def query(
    ctx: typer.Context,
    sql: str = typer.Argument(..., help="SQL to run, e.g. \"SELECT type, count() FROM mev_opportunities GROUP BY type\""),
    fmt: str = typer.Option("table", "--format", "-f", help="table (rich), csv, or parquet"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write to this file instead of stdout "
                                                                       "(its missing folders are made)"),
    max_rows: int = typer.Option(200, "--max-rows", help="rows shown by --format table"),
    read_only: bool = typer.Option(False, "--read-only", help="a read-only session (ClickHouse readonly=1): only "
                                                              "SELECT, SHOW, DESCRIBE, EXISTS on the store's tables; "
                                                              "writes, DDL, SET/SETTINGS and table functions such as "
                                                              "file() and url() are refused"),
    db: Optional[str] = DB_OPTION,
):
    """Run SQL against the store and print the result (CSV and Parquet are written by ClickHouse).

    The SQL runs with the store user's full rights unless --read-only: it may INSERT, ALTER, DROP, and read or write files and URLs with file(), url(), s3() and INSERT INTO FUNCTION (on the embedded chDB store, as the user running this command). Pass --read-only for SQL from elsewhere.
    """
    from ..store import connect
    fmt = fmt.lower()
    if fmt not in ("table", "csv", "parquet"):
        _fail(WorkbenchError(f"--format {fmt!r}: choose table, csv or parquet"))
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        _fail(WorkbenchError("parquet is binary: pass --output FILE.parquet, or redirect stdout to a file"))
    if output is not None:
        if fmt == "table":
            _fail(WorkbenchError("--output writes csv or parquet: add --format csv or --format parquet"))
        try:
            out_file(output, "--output", f"result.{fmt}")   # before the query: a bad path must not cost a long query
        except WorkbenchError as e:
            _fail(e)
    sql = sql.strip().rstrip(";")
    try:
        with connect(_dsn(ctx, db), ensure_schema=False, read_only=read_only) as store:
            if fmt == "table":
                names, rows = store.query_table(sql)
            elif fmt == "csv":
                body = store.query_raw(sql, "CSVWithNames")
            else:
                body = _parquet_with_text(store.query_raw(sql, "Parquet"))
    except WorkbenchError as e:
        _fail(e)
    if fmt == "table":
        print_table(names, rows, max_rows=max_rows)
        return
    if output is not None:
        try:
            output.write_bytes(body)
        except OSError as e:
            _fail(WorkbenchError(f"--output {output}: cannot write: {e.strerror or e}"))
        err_console.print(plain(f"{len(body):,} bytes of {fmt} -> {output}"), highlight=False)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()


@db_app.command()
def runs(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", "-n", help="newest runs to list"),
    db: Optional[str] = DB_OPTION,
):
    """List the runs, newest first, with their counts and the rows stored for each."""
    from ..store import connect
    try:
        with connect(_dsn(ctx, db)) as store:
            tbl = store.runs(limit)
    except WorkbenchError as e:
        _fail(e)
    if tbl.num_rows == 0:
        console.print("no runs in the store yet (workbench replay CAPTURE writes one)")
        return
    tbl = tbl.drop_columns(["market", "code_version"])
    rows = []
    for r in tbl.to_pylist():
        r["started_at"] = r["started_at"].strftime("%Y-%m-%d %H:%M:%S")
        r["capture"] = Path(r["capture"]).name if r["capture"] else ""
        counts = dict(r.pop("counts") or {})      # the full counts: SELECT counts FROM runs FINAL
        r["packets"] = counts.get("packets", "")
        rows.append(tuple(r.values()))
    names = [{"tx_features_rows": "tx rows", "opportunity_rows": "opportunities",
              "latency_hist_rows": "hist rows", "started_at": "started (UTC)"}.get(n, n)
             for n in tbl.column_names if n != "counts"] + ["packets"]
    print_table(names, rows, title="runs", max_rows=limit)


@db_app.command()
def schema(
    ctx: typer.Context,
    cluster: Optional[str] = typer.Option(None, "--cluster", help="ON CLUSTER name: ReplicatedMergeTree tables "
                                                                  "<name>_local plus Distributed <name>"),
    apply: bool = typer.Option(False, "--apply", help="create or migrate the store's schema (default: print it)"),
    database: Optional[str] = typer.Option(None, "--database", help="database for the printed DDL "
                                                                    "(default: the DSN's)"),
    db: Optional[str] = DB_OPTION,
):
    """Print the store's DDL (idempotent, versioned), or apply it with --apply.

    --apply runs the migrations the store's version lacks, then compares the tables, columns and skip indexes the store holds with what this version should have and recreates or adds what is missing (a dropped table or column is repaired whatever version the store records).
    """
    from ..store import SCHEMA_VERSION, StoreError, Target, connect, parse_dsn, render_ddl
    try:
        dsn = parse_dsn(_dsn(ctx, db))
        if not apply:
            target = Target(database or dsn.database, cluster)
            sys.stdout.write(f"-- workbench store schema, version {SCHEMA_VERSION}"
                             f"{' (cluster ' + cluster + ')' if cluster else ' (single node)'}\n")
            for sql in render_ddl(target):
                sys.stdout.write(sql + ";\n\n")
            return
        if database:
            raise StoreError("--database applies to the printed DDL; with --apply put the database in the DSN")
        with connect(dsn, ensure_schema=False, cluster=cluster) as store:
            before = store.schema_version()[0]
            applied = store.ensure_schema(cluster)
            report = store.schema_report
    except ValueError as e:
        _fail(WorkbenchError(str(e)))
    except WorkbenchError as e:
        _fail(e)
    if applied:
        console.print(plain(f"{dsn}: schema version {before} -> {applied[-1]} (applied {applied})"))
    elif not report.repairs:
        console.print(plain(f"{dsn}: schema already at version {before}, every table and column present"))
    if report.repairs:      # tables, columns or indexes the store lacked whatever its version said
        console.print(plain(f"{dsn}: repaired what was missing ({len(report.repairs)} statements):"))
        for sql in report.repairs:
            console.print(plain("  " + " ".join(sql.split())), soft_wrap=True)
    for problem in report.problems:
        warn(problem)


@db_app.command("flush-spool")
def flush_spool_cmd(
    ctx: typer.Context,
    spool: Optional[Path] = typer.Option(None, "--spool", help="spool directory (default <data_dir>/spool)"),
    db: Optional[str] = DB_OPTION,
):
    """Insert the batches that failed earlier (kept in the spool); rows already stored are skipped."""
    from ..store import Spool, connect
    settings = _settings(ctx)
    if spool is not None and spool.exists() and not spool.is_dir():
        _fail(WorkbenchError(f"--spool {spool}: is a file, not a spool folder"))
    sp = Spool(spool or spool_dir(settings))
    pending = sp.pending()
    if not pending:
        console.print(plain(f"spool {sp.dir} is empty"))
        return
    rows = sp.pending_rows()
    try:
        with connect(_dsn(ctx, db)) as store:
            stats = sp.flush(store)
    except WorkbenchError as e:
        _fail(e)
    console.print(plain(f"spool {sp.dir}: {len(pending)} files, {rows:,} rows -> {stats.files} files flushed, "
                  f"{stats.rows_inserted:,} rows inserted, {stats.rows_skipped:,} already stored, "
                  f"{stats.files_left} files left"))
    for e in stats.errors:
        warn(str(e))
    if stats.files_left:
        raise typer.Exit(1)
