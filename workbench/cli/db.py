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

from ..config import Settings, load_settings
from ..errors import WorkbenchError
from .output import console, err_console, fail as _fail, out_file, plain, warn
from .row_formats import FORMATS, dump, exact, print_rows

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


def _deadlines(ctx: typer.Context) -> dict:
    """The config's store deadlines (store_connect_timeout_s, store_read_timeout_s) for a db
    command's connection: a silent or broken server is named unreachable in bounded time. A
    query or an index rebuild that must stay silent longer takes a larger store_read_timeout_s
    or the DSN's send_receive_timeout option."""
    s = _settings(ctx)
    return {"connect_timeout": s.store_connect_timeout_s, "read_timeout": s.store_read_timeout_s}


def spool_dir(settings: Settings) -> Path:
    """Where failed inserts wait: ``<data_dir>/spool``."""
    from ..store import default_spool_dir
    return default_spool_dir(settings.data_dir)


FORMAT_HELP = ("auto (a table when the columns fit the terminal, else one block per row), table (long cells cut "
               "with …), vertical (one block per row, every value whole, like clickhouse-client's \\G), json (an "
               "array of objects), ndjson (one object per line), csv")


OUTPUT_SUFFIXES = {".csv": "csv", ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".parquet": "parquet"}


def _check_format(fmt: str, extra: tuple[str, ...] = ()) -> str:
    fmt = fmt.lower()
    if fmt not in FORMATS + extra:
        _fail(WorkbenchError(f"--format {fmt!r}: choose {', '.join(FORMATS + extra)}"))
    return fmt


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
    fmt: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP + " (written by ClickHouse), parquet. "
                                                          "JSON: integers exact as numbers, times ISO 8601 "
                                                          "to the nanosecond (README: db query formats)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write json, ndjson, csv or parquet to "
                                                                       "this file instead of stdout (its missing "
                                                                       "folders are made)"),
    max_rows: int = typer.Option(200, "--max-rows", help="rows shown by the auto, table and vertical formats"),
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
    fmt = _check_format(fmt, ("parquet",))
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        _fail(WorkbenchError("parquet is binary: pass --output FILE.parquet, or redirect stdout to a file"))
    if output is not None:
        if fmt == "auto":                   # the file's suffix names the format: -o result.json
            fmt = OUTPUT_SUFFIXES.get(output.suffix.lower(), fmt)
        if fmt in ("auto", "table", "vertical"):
            _fail(WorkbenchError(f"--output {output}: writes csv, json, ndjson or parquet: add --format csv, "
                                 f"--format json, --format ndjson or --format parquet (or name a file ending "
                                 f"{', '.join(OUTPUT_SUFFIXES)})"))
        try:
            out_file(output, "--output", f"result.{fmt}")   # before the query: a bad path must not cost a long query
        except WorkbenchError as e:
            _fail(e)
    sql = sql.strip().rstrip(";")
    try:
        with connect(_dsn(ctx, db), ensure_schema=False, read_only=read_only,
                     **_deadlines(ctx)) as store:
            if fmt not in ("csv", "parquet"):
                names, types, rows = store.query_exact(sql)
                rows = [tuple(exact(v, t) for v, t in zip(row, types)) for row in rows]
            elif fmt == "csv":
                body = store.query_raw(sql, "CSVWithNames")
            else:
                body = _parquet_with_text(store.query_raw(sql, "Parquet"))
    except WorkbenchError as e:
        _fail(e)
    if fmt in ("auto", "table", "vertical") or (fmt in ("json", "ndjson") and output is None):
        print_rows(console, names, rows, fmt, max_rows=max_rows)
        return
    if fmt in ("json", "ndjson"):
        body = dump(names, rows, fmt).encode()
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
    fmt: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP + ". json, ndjson and csv carry every "
                                                          "column whole (full capture path, market, code "
                                                          "version, every count)"),
    db: Optional[str] = DB_OPTION,
):
    """List the runs, newest first, with their counts and the rows stored for each."""
    fmt = _check_format(fmt)
    from ..store import connect
    from ..store.writer import mark_lost_runs
    try:
        with connect(_dsn(ctx, db), **_deadlines(ctx)) as store:
            mark_lost_runs(store)      # 'running' with no heartbeat: the process died (status 'killed')
            tbl = store.runs(limit)
    except WorkbenchError as e:
        _fail(e)
    if tbl.num_rows == 0 and fmt not in ("json", "ndjson", "csv"):
        console.print("no runs in the store yet (workbench replay CAPTURE writes one)")
        return
    records = tbl.to_pylist()
    for r in records:
        r["counts"] = dict(r.get("counts") or {})     # an Arrow map arrives as (key, value) pairs
    if fmt in ("json", "ndjson", "csv"):              # every column, every value whole
        print_rows(console, tbl.column_names, [tuple(r.values()) for r in records], fmt)
        return
    rows = []
    for r in records:
        r.pop("market"), r.pop("code_version")
        r["started_at"] = r["started_at"].strftime("%Y-%m-%d %H:%M:%S")
        r["capture"] = Path(r["capture"]).name if r["capture"] else ""
        counts = r.pop("counts")                      # the full counts: SELECT counts FROM runs FINAL
        r["packets"] = counts.get("packets")
        rows.append(tuple(r.values()))
    names = [{"tx_features_rows": "tx rows", "opportunity_rows": "opportunities",
              "latency_hist_rows": "hist rows", "started_at": "started (UTC)", "duration_s": "seconds"}.get(n, n)
             for n in tbl.column_names if n not in ("counts", "market", "code_version")] + ["packets"]
    print_rows(console, names, rows, fmt, title="runs", max_rows=limit, more_hint="--limit")


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
        with connect(dsn, ensure_schema=False, cluster=cluster, **_deadlines(ctx)) as store:
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
    to: Optional[str] = typer.Option(None, "--to", help="insert every spooled batch into this store (DSN), also "
                                                        "those spooled for another store; without it only the "
                                                        "batches spooled for the configured store go in"),
    db: Optional[str] = DB_OPTION,
):
    """Insert the batches that failed earlier (kept in the spool); rows already stored are skipped.

    Each batch goes only to the store it was spooled for, unless --to names where to put them all. A file that can never be inserted (not a spool file, unreadable, an unknown table, columns that do not fit) is moved to the spool's rejected/ folder with a reason file.
    """
    from ..store import Spool, connect, parse_dsn
    from ..store.spool import spool_target
    settings = _settings(ctx)
    if spool is not None and spool.exists() and not spool.is_dir():
        _fail(WorkbenchError(f"--spool {spool}: is a file, not a spool folder"))
    if to is not None and db is not None:
        _fail(WorkbenchError("--to and --db both name a store: --to DSN inserts every spooled batch there, "
                             "--db DSN only the batches spooled for that store; pass one"))
    sp = Spool(spool or spool_dir(settings))
    pending = sp.pending()
    if not pending:
        console.print(plain(f"spool {sp.dir} is empty"))
        return
    try:
        dest = parse_dsn(to if to is not None else _dsn(ctx, db))
    except WorkbenchError as e:
        _fail(WorkbenchError(f"--to: {e}") if to is not None else e)
    here = spool_target(dest)
    targets = sp.by_target()
    rows = sum(n for _f, n in targets.values())
    others = {t: fr for t, fr in targets.items() if t and t != here}
    if to is None and others and set(targets) <= set(others):     # nothing here for this store: refuse, unconnected
        _fail(WorkbenchError(_other_targets_message(sp.dir, others, here)))
    try:
        with connect(dest, connect_timeout=settings.store_connect_timeout_s,
                     read_timeout=settings.store_read_timeout_s) as store:
            stats = sp.flush(store, retarget=to is not None)
    except WorkbenchError as e:
        _fail(e)
    console.print(plain(f"spool {sp.dir}: {len(pending)} files, {rows:,} rows -> {dest}: {stats.files} files "
                        f"flushed, {stats.rows_inserted:,} rows inserted, {stats.rows_skipped:,} already stored, "
                        f"{len(stats.rejected)} set aside, {stats.files_left} files left"))
    # each file set aside was named in a warning when it was moved (spool.py logs it)
    for e in stats.errors:
        warn(str(e))
    if stats.other_target:
        warn(_other_targets_message(sp.dir, {t: (n, None) for t, n in stats.other_target.items()}, here))
    if stats.files_left:
        raise typer.Exit(1)


def _other_targets_message(where: Path, others: dict, here: str) -> str:
    """Batches spooled for other stores are not inserted into ``here``: say which and how to send them."""
    parts = [f"{files} files" + (f" ({rows:,} rows)" if rows is not None else "") + f" spooled for {t}"
             for t, (files, rows) in others.items()]
    return (f"spool {where}: {'; '.join(parts)}; the store configured now is {here}, so they stay in the spool. "
            f"Send them where they were meant to go with `workbench db flush-spool --db <that store's DSN>`, "
            f"or insert them into another store with `--to DSN`.")
