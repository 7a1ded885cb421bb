"""One ClickHouse client for both stores: embedded chDB and a server, via clickhouse-connect.

DSN forms (``--db``, ``WORKBENCH_DB``, the config's ``db``; default
``chdb:///<data_dir>/clickhouse``):

* ``chdb:///abs/dir``                    embedded, persistent, created on first use
* ``chdb:///abs/dir?database=name``      ... in another database than ``default``
* ``chdb://memory``                      embedded, in memory (tests)
* ``http://user:password@host:8123/db``  a server (``https://...:8443`` for TLS); the database
  is created if missing. Query options: connect_timeout, send_receive_timeout, compress,
  verify, ca_cert, client_name, query_retries.

chDB hosts one engine per process: every client of a process must use the same directory,
and one directory serves one process (``Store`` says so when another process holds it).

``connect`` returns a ``Store``: the client, the DSN, the target database (and cluster), the
schema check and migrations (``schema.py``), and the query and insert helpers the writer,
the spool and ``workbench db`` use. Every failure becomes a ``StoreError`` naming what is
wrong and what to do; ``StoreUnavailable`` (cannot reach the server) is the transient kind
the writer answers by spooling.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc

from .. import __version__
from ..errors import WorkbenchError
from . import schema as S

log = logging.getLogger(__name__)

_HTTP_OPTIONS = {"connect_timeout": int, "send_receive_timeout": int, "compress": str, "verify": str,
                 "ca_cert": str, "client_name": str, "query_retries": int}
_AUTH_CODES = {192, 193, 194, 516}           # UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED
_UNAVAILABLE_CODES = {159, 164, 202, 209, 210, 241, 242, 252, 319, 425, 999}  # timeouts, overload, read-only, keeper
_UNAVAILABLE_TEXT = re.compile(r"connection refused|max retries exceeded|timed out|timeout|"
                               r"name or service not known|failed to establish|connection reset|"
                               r"remote end closed|broken pipe|temporary failure in name resolution|"
                               r"network is unreachable|no route to host|connection aborted", re.I)
DSN_HELP = ("DSN forms: chdb:///abs/dir (embedded, default chdb:///<data_dir>/clickhouse), "
            "http://user:password@host:8123/database, https://user:password@host:8443/database")


class StoreError(WorkbenchError):
    """The store cannot do what was asked; the message says what is wrong and what to do."""


class StoreUnavailable(StoreError):
    """The server cannot be reached now (down, network, overload): worth spooling and retrying."""


# --- DSN ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dsn:
    text: str                       # as given (may hold a password: print ``redacted()``)
    scheme: str                     # "chdb" | "http" | "https"
    path: str | None = None         # chdb directory; None = in memory
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = "default"
    options: dict = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.scheme == "chdb"

    def redacted(self) -> str:
        if self.embedded:
            return f"chdb://{self.path}" if self.path else "chdb://memory"
        auth = f"{self.user}:***@" if self.password else (f"{self.user}@" if self.user else "")
        return f"{self.scheme}://{auth}{self.host}:{self.port}/{self.database}"

    def __str__(self) -> str:
        return self.redacted()


def _bad_dsn(text: str, why: str) -> StoreError:
    shown = re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", text)
    return StoreError(f"bad store DSN {shown!r}: {why}. {DSN_HELP}")


def parse_dsn(text: str) -> Dsn:
    """Check a DSN and split it; raise StoreError naming the mistake and the right form."""
    if not isinstance(text, str) or not text.strip():
        raise _bad_dsn(str(text), "it is empty")
    text = text.strip()
    u = urlparse(text)
    scheme = u.scheme.lower()
    if scheme in ("clickhouse", "tcp", "native"):
        raise _bad_dsn(text, "the native TCP protocol (port 9000) is not spoken here; "
                             "clickhouse-connect uses HTTP: http://host:8123/database")
    if scheme not in ("chdb", "http", "https"):
        raise _bad_dsn(text, f"unknown scheme {u.scheme!r}" if u.scheme else "no scheme")
    query = {k: v[-1] for k, v in parse_qs(u.query).items()}
    if scheme == "chdb":
        database = query.pop("database", "default")
        if query:
            raise _bad_dsn(text, f"unknown chdb option(s) {sorted(query)}; only ?database=NAME")
        if u.netloc in ("memory", ":memory:") and u.path in ("", "/"):
            path = None
        elif u.netloc:
            raise _bad_dsn(text, f"{u.netloc + u.path!r} is not an absolute path; write chdb:///abs/dir "
                                 "(three slashes) or chdb://memory")
        elif not u.path.startswith("/"):
            raise _bad_dsn(text, "the chdb directory must be an absolute path: chdb:///abs/dir")
        else:
            path = os.path.normpath(unquote(u.path))
        try:
            S.check_identifier(database, "database")
        except ValueError as e:
            raise _bad_dsn(text, str(e)) from None
        return Dsn(text, "chdb", path=path, database=database)
    if not u.hostname:
        raise _bad_dsn(text, "no host; write http://user:password@host:8123/database")
    try:
        port = u.port or (8443 if scheme == "https" else 8123)
    except ValueError:
        raise _bad_dsn(text, "the port is not a number in 1-65535") from None
    parts = [p for p in u.path.split("/") if p]
    if len(parts) > 1:
        raise _bad_dsn(text, f"the path {u.path!r} must be one database name")
    database = unquote(parts[0]) if parts else query.pop("database", "default")
    try:
        S.check_identifier(database, "database")
    except ValueError as e:
        raise _bad_dsn(text, str(e)) from None
    options = {}
    for k, v in query.items():
        if k not in _HTTP_OPTIONS:
            raise _bad_dsn(text, f"unknown option {k!r}; known: {', '.join(sorted(_HTTP_OPTIONS))}")
        try:
            options[k] = _HTTP_OPTIONS[k](v)
        except ValueError:
            raise _bad_dsn(text, f"option {k}={v!r} is not a {_HTTP_OPTIONS[k].__name__}") from None
    return Dsn(text, scheme, host=u.hostname, port=port, user=unquote(u.username or ""),
               password=unquote(u.password or ""), database=database, options=options)


def default_dsn(data_dir: str | os.PathLike = "data") -> str:
    return f"chdb://{Path(data_dir).resolve() / 'clickhouse'}"


# --- errors -------------------------------------------------------------------------------
def _status_locked(path: str) -> bool:
    """True when another process holds the chDB directory (its ``status`` file is flocked)."""
    try:
        with open(os.path.join(path, "status"), "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def translate(exc: BaseException, dsn: Dsn, doing: str = "") -> StoreError:
    """Turn a driver exception into a StoreError that says what to do."""
    if isinstance(exc, StoreError):
        return exc
    msg = str(exc)
    code = getattr(exc, "code", None)
    if code is None:
        m = re.search(r"\bCode:\s*(\d+)", msg) or re.search(r"error code (\d+)", msg)
        code = int(m.group(1)) if m else None
    where = dsn.redacted()
    what = f" while {doing}" if doing else ""
    if dsn.embedded:
        m = re.search(r"already initialized with path '([^']*)'", msg)
        if m:
            return StoreError(f"this process already has the embedded store {m.group(1)} open; chDB serves one "
                              f"directory per process, so {where} cannot be opened too. Close the other store "
                              f"first, or use the same --db.")
        if dsn.path and ("EmbeddedServer" in msg or "Cannot lock file" in msg) and _status_locked(dsn.path):
            return StoreError(f"the embedded store {dsn.path} is open in another process (chDB lets one process "
                              f"use a store directory). Stop that process (a replay or `workbench serve`), pass "
                              f"another --db chdb:///dir, or run a ClickHouse server and use --db http://host:8123/db.")
        if code in _UNAVAILABLE_CODES:      # too many parts, memory limit, timeout: try again later
            return StoreUnavailable(f"embedded store {where} is overloaded{what}: {_short(msg)}; "
                                    "the batch is spooled and retried")
        return StoreError(f"embedded store {where}{what}: {_short(msg)}")
    if code in _AUTH_CODES or re.search(r"authentication failed|wrong password|password is incorrect", msg, re.I):
        return StoreError(f"ClickHouse at {dsn.host}:{dsn.port} refused the credentials of user "
                          f"{dsn.user or 'default'!r}{what}. Fix the user and password in the DSN "
                          f"(http://user:password@host:{dsn.port}/{dsn.database}; set by --db, WORKBENCH_DB or "
                          f"the config's db), percent-encoding special characters in the password.")
    if code in _UNAVAILABLE_CODES or (code is None and _UNAVAILABLE_TEXT.search(msg)):
        hint = ""
        if dsn.port in (9000, 9440):
            hint = f" Port {dsn.port} is the native protocol; the HTTP port is 8123 (8443 with TLS)."
        return StoreUnavailable(f"cannot reach ClickHouse at {where}{what}: {_short(msg)}. Is the server running "
                                f"and the host and port right?{hint} Writes are spooled to disk meanwhile; "
                                f"`workbench db flush-spool` sends them once the server is back.")
    return StoreError(f"ClickHouse at {where}{what}: {_short(msg)}")


def _quote(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _short(msg: str, n: int = 400) -> str:
    msg = " ".join(msg.split())
    m = re.search(r"Code: \d+\..*", msg)
    if m:
        msg = m.group(0)
    msg = re.sub(r"\s*\(version [^)]*(\([^)]*\))?[^)]*\)\s*$", "", msg)
    return msg if len(msg) <= n else msg[: n - 3] + "..."


# --- Arrow conformance ---------------------------------------------------------------------
_ENUM_RE = re.compile(r"'([^']*)'\s*=\s*(-?\d+)")


def _enum_labels(ch_type: str) -> tuple[list[str], list[int]]:
    pairs = _ENUM_RE.findall(ch_type)
    return [p[0] for p in pairs], [int(p[1]) for p in pairs]


def _convert(col: S.Column, arr, src: str, table: str):
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.null_count:
        raise StoreError(f"{table}.{src}: {arr.null_count} null values; the store keeps no NULLs, "
                         "use the column's sentinel (-1, 0 or '') instead")
    t = arr.type
    if isinstance(t, pa.DictionaryType):
        arr = arr.dictionary_decode()
        t = arr.type
    try:
        if col.kind == S.TIME:
            if pa.types.is_integer(t):
                return pc.cast(pc.cast(arr, pa.int64()), col.arrow)
            if pa.types.is_timestamp(t):
                if t.unit == "ns":
                    return arr.view(col.arrow) if t != col.arrow else arr
                return pc.cast(pc.cast(arr, pa.timestamp("ns", tz=t.tz)).view(pa.int64()), col.arrow)
        elif col.kind == S.UUID_:
            if isinstance(t, pa.ExtensionType):
                arr, t = arr.storage, arr.storage.type
            if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
                return arr
            if pa.types.is_string(t) or pa.types.is_large_string(t):
                return pc.cast(arr, pa.string())            # ClickHouse parses the text form
        elif col.kind == S.ENUM:
            labels, codes = _enum_labels(col.ch_type)
            if pa.types.is_string(t) or pa.types.is_large_string(t):
                idx = pc.index_in(arr, value_set=pa.array(labels, t))
                if idx.null_count:
                    bad = pc.filter(arr, pc.is_null(idx)).unique().to_pylist()[:5]
                    raise StoreError(f"{table}.{src}: unknown label(s) {bad}; known: {labels}")
                return pc.take(pa.array(codes, pa.int8()), idx)
            if pa.types.is_integer(t):
                out = pc.cast(arr, pa.int8())
                if len(out) and not pc.all(pc.is_in(out, value_set=pa.array(codes, pa.int8()))).as_py():
                    raise StoreError(f"{table}.{src}: codes outside {dict(zip(codes, labels))}")
                return out
        else:
            return arr if t == col.arrow else pc.cast(arr, col.arrow)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise StoreError(f"{table}.{src}: cannot convert {t} to {col.arrow} for {col.ch_type}: {e}") from None
    raise StoreError(f"{table}.{src}: type {t} does not fit {col.name} {col.ch_type} (send {col.arrow})")


def conform(table_name: str, data: pa.Table, run_id: str | None = None) -> pa.Table:
    """Check and convert an engine batch into the store's Arrow shape (columns in table order).

    Accepts ``<name>_ns`` int64 for a DateTime64 ``<name>``, UUIDs as 16 bytes or text, enum
    labels or codes, dictionary-encoded columns. ``run_id`` fills a missing ``run_id`` column;
    columns with a DEFAULT may be missing. Extra columns and NULLs are errors (never dropped
    silently). Raises StoreError naming the column and the fix.
    """
    spec = S.TABLES.get(table_name)
    if spec is None:
        raise StoreError(f"no table {table_name!r} in the store; tables: {', '.join(S.TABLES)}")
    names = set(data.column_names)
    n = data.num_rows
    arrays, fields, used, missing = [], [], set(), []
    for col in spec.columns:
        src = col.name if col.name in names else (
            col.name + "_ns" if col.kind == S.TIME and col.name + "_ns" in names else None)
        if src is None:
            if col.name == "run_id" and run_id is not None:
                arr = pa.repeat(pa.scalar(run_id, pa.string()), n)
            elif col.default is not None:
                continue
            else:
                missing.append(col.name)
                continue
        else:
            used.add(src)
            arr = _convert(col, data.column(src), src, table_name)
        arrays.append(arr)
        fields.append(pa.field(col.name, arr.type, nullable=False))
    if missing:
        hint = " (pass run_id to the writer, or record_run_start first)" if "run_id" in missing else ""
        raise StoreError(f"{table_name}: missing column(s) {missing}{hint}; the batch has {sorted(names)}. Expected: "
                         + ", ".join(f"{c.name} {c.arrow}" for c in spec.columns if c.default is None))
    extra = names - used
    if extra:
        raise StoreError(f"{table_name}: column(s) {sorted(extra)} are not in the table "
                         f"(columns: {[c.name for c in spec.columns]}); add them to store/schema.py "
                         "with a migration, or drop them before writing")
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


# --- the store ----------------------------------------------------------------------------
class Store:
    """A connected store: ``client`` (clickhouse-connect), ``dsn``, ``target`` (database, cluster)."""

    def __init__(self, dsn: Dsn, client, cluster: str | None = None):
        self.dsn = dsn
        self.client = client
        self.target = S.Target(dsn.database, cluster)

    # -- plumbing
    def _call(self, doing: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as e:  # driver, network and engine errors all land here
            raise translate(e, self.dsn, doing) from e

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:       # closing must not mask the error that led here
            log.debug("closing %s", self.dsn, exc_info=True)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def table(self, name: str) -> str:
        """Qualified name to read and write (the Distributed table on a cluster)."""
        return f"{self.target.database}.{name}"

    # -- queries
    def command(self, sql: str, parameters: dict | None = None):
        return self._call(f"running {' '.join(sql.split()[:3])} ...", self.client.command, sql, parameters=parameters)

    def query_arrow(self, sql: str, parameters: dict | None = None) -> pa.Table:
        return self._call("querying", self.client.query_arrow, sql, parameters=parameters, use_strings=True)

    def query_rows(self, sql: str, parameters: dict | None = None) -> list[tuple]:
        return self._call("querying", lambda: self.client.query(sql, parameters=parameters).result_rows)

    def query_table(self, sql: str, parameters: dict | None = None) -> tuple[list[str], list[tuple]]:
        """Column names and rows as Python values (enum labels, UUIDs, datetimes): for display."""
        res = self._call("querying", self.client.query, sql, parameters=parameters)
        return list(res.column_names), res.result_rows

    def query_raw(self, sql: str, fmt: str, parameters: dict | None = None) -> bytes:
        """The result serialised by ClickHouse itself (``fmt``: CSVWithNames, Parquet, ...)."""
        return self._call("querying", self.client.raw_query, sql, parameters=parameters, fmt=fmt)

    def scalar(self, sql: str, parameters: dict | None = None):
        rows = self.query_rows(sql, parameters)
        return rows[0][0] if rows else None

    def count(self, table: str, where: str = "", parameters: dict | None = None) -> int:
        sql = f"SELECT count() FROM {self.table(table)}" + (f" WHERE {where}" if where else "")
        return int(self.scalar(sql, parameters))

    def exists(self, table: str) -> bool:
        return bool(self.scalar(f"EXISTS TABLE {self.target.database}.{table}"))

    # -- inserts
    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> int:
        """Insert an already conformed Arrow table; returns rows written. Raises StoreError."""
        if data.num_rows == 0:
            return 0
        settings = {}
        if dedup_token:
            settings = {"insert_deduplicate": 1, "insert_deduplication_token": dedup_token}
        if self.target.cluster:
            settings["insert_distributed_sync"] = 1     # a failure must reach us, to be spooled
        doing = f"inserting {data.num_rows} rows into {table}"
        if self.dsn.embedded:
            self._call(doing, self._insert_arrow_embedded, table, data, settings)
        else:
            self._call(doing, self.client.insert_arrow, self.table(table), data, settings=settings)
        return data.num_rows

    def _insert_arrow_embedded(self, table: str, data: pa.Table, settings: dict) -> None:
        """chDB: write the Arrow IPC file once and let the engine read it with ``file()``.

        ``Client.insert_arrow`` on chDB serialises to memory, copies that to a temporary
        file and runs ``INSERT ... FROM INFILE`` (single-threaded parse): about half the speed
        of this path (benchmarks/bench_store_insert.py). The ``file()`` structure names the
        target types, so values convert exactly as the Arrow input format converts them.
        """
        spec = S.TABLES.get(table) or (S.VERSION_SPEC if table == S.VERSION_TABLE else None)
        types = {c.name: c.ch_type for c in spec.columns} if spec else {}
        fmt = "'Arrow'"
        if all(n in types for n in data.column_names):
            fmt += ", " + _quote(", ".join(f"`{n}` {types[n]}" for n in data.column_names))
        fd, path = tempfile.mkstemp(prefix="workbench-insert-", suffix=".arrow")
        os.close(fd)
        try:
            with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, data.schema) as w:
                w.write_table(data)
            cols = ", ".join(f"`{n}`" for n in data.column_names)
            sql = f"INSERT INTO {self.table(table)} ({cols}) SELECT * FROM file({_quote(path)}, {fmt})"
            if settings:
                sql += " SETTINGS " + ", ".join(f"{k} = {_quote(v) if isinstance(v, str) else v}"
                                                for k, v in settings.items())
            self.client.command(sql)
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass

    def insert_batch(self, table: str, data: pa.Table, dedup_token: str | None = None,
                     run_id: str | None = None) -> int:
        """``conform`` then ``insert_arrow``: the Arrow batch path of the writer."""
        return self.insert_arrow(table, conform(table, data, run_id), dedup_token)

    # -- schema
    def schema_version(self) -> tuple[int, str]:
        """(version, cluster) recorded in the store; (0, "") for a store without a version table."""
        if not self.exists(S.VERSION_TABLE):
            return 0, ""
        rows = self.query_rows(f"SELECT max(version), argMax(cluster, version), count() "
                               f"FROM {self.table(S.VERSION_TABLE)}")
        if not rows or not rows[0][2]:
            return 0, ""
        return int(rows[0][0]), rows[0][1] or ""

    def check_version(self, version: int) -> None:
        if version > S.SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.dsn} has schema version {version}, written by a newer workbench; this one "
                f"({__version__}) knows versions up to {S.SCHEMA_VERSION}. Upgrade the workbench "
                f"(pip install -U solana-mev-workbench), or point --db / WORKBENCH_DB at another store.")

    def ensure_schema(self, cluster: str | None = None) -> list[int]:
        """Create or migrate the schema to SCHEMA_VERSION; returns the versions applied.

        Idempotent (every statement is IF [NOT] EXISTS). A store made by the seed's DDL alone
        (``mev_opportunities`` without a version table) is migrated like a version-1 store.
        """
        version, recorded = self.schema_version()
        self.check_version(version)
        if cluster and recorded and cluster != recorded:
            raise StoreError(f"the store {self.dsn} was created ON CLUSTER {recorded}, not {cluster}; "
                             f"pass --cluster {recorded}")
        cluster = cluster or recorded or None
        self.target = S.Target(self.target.database, cluster)
        if version == S.SCHEMA_VERSION:
            return []
        applied = []
        for sql in (S.render_version_table(self.target) if not cluster else
                    [f"CREATE DATABASE IF NOT EXISTS {self.target.database}{self.target.on}"]
                    + S.render_version_table(self.target)):
            self.command(sql)
        for m in S.MIGRATIONS:
            if m.version <= version:
                continue
            for sql in S.render_migration(m, self.target):
                self.command(sql)
            row = pa.table({"version": pa.array([m.version], pa.uint32()),
                            "applied_at": pa.array([time.time_ns() // 1_000_000], pa.timestamp("ms", tz="UTC")),
                            "code_version": [__version__], "cluster": [cluster or ""],
                            "description": [m.description]})
            self.insert_arrow(S.VERSION_TABLE, row)
            applied.append(m.version)
            log.info("store %s: schema version %d applied (%s)", self.dsn, m.version, m.description)
        return applied

    # -- reports
    def runs(self, limit: int = 50) -> pa.Table:
        """The runs, newest first, with their recorded counts and the rows stored for each."""
        t = self.table
        return self.query_arrow(f"""
            SELECT r.run_id AS run_id, r.status AS status, r.source AS source,
                   r.started_at AS started_at,
                   if(r.ended_at > r.started_at, dateDiff('millisecond', r.started_at, r.ended_at) / 1e3, NULL)
                       AS duration_s,
                   r.capture_path AS capture, r.market AS market, r.model AS model,
                   r.code_version AS code_version, r.counts AS counts,
                   tf.n AS tx_features_rows, op.n AS opportunity_rows, lh.n AS latency_hist_rows
            FROM (SELECT * FROM {t('runs')} FINAL) AS r
            LEFT JOIN (SELECT run_id, count() AS n FROM {t('tx_features')} GROUP BY run_id) AS tf
                ON tf.run_id = r.run_id
            LEFT JOIN (SELECT toString(run_id) AS run_id, count() AS n FROM {t('mev_opportunities')}
                       GROUP BY run_id) AS op ON op.run_id = r.run_id
            LEFT JOIN (SELECT run_id, count() AS n FROM {t('latency_hist')} GROUP BY run_id) AS lh
                ON lh.run_id = r.run_id
            ORDER BY r.started_at DESC
            LIMIT {int(limit)}""")  # join_use_nulls = 0 (default): a run without rows shows 0


def connect(dsn: str | Dsn, *, ensure_schema: bool = True, cluster: str | None = None,
            connect_timeout: int | None = None) -> Store:
    """Open a store; by default create or migrate its schema. Raises StoreError.

    ``connect_timeout`` (seconds) bounds the wait for a server; the writer uses a short one.
    """
    import clickhouse_connect       # deferred: the chdb engine loads on first use

    d = dsn if isinstance(dsn, Dsn) else parse_dsn(dsn)
    try:
        if d.embedded:
            if d.path:
                try:
                    os.makedirs(d.path, exist_ok=True)
                except OSError as e:
                    raise StoreError(f"cannot create the embedded store directory {d.path}: {e.strerror}; "
                                     "pass --db chdb:///a/writable/dir") from None
            client = clickhouse_connect.get_client(interface="chdb", path=d.path)
        else:
            opts = dict(d.options)
            if connect_timeout is not None:
                opts["connect_timeout"] = connect_timeout
                opts.setdefault("query_retries", 0)
            client = clickhouse_connect.get_client(
                interface=d.scheme, host=d.host, port=d.port, username=d.user or None,
                password=d.password, database=None, **opts)
    except StoreError:
        raise
    except Exception as e:
        raise translate(e, d, "connecting") from e
    store = Store(d, client, cluster)
    try:
        if d.database != "default":
            if not store.scalar(f"EXISTS DATABASE {d.database}"):
                store.command(f"CREATE DATABASE IF NOT EXISTS {d.database}{store.target.on}")
            client.database = d.database
        if ensure_schema:
            store.ensure_schema(cluster)
        else:
            store.target = S.Target(d.database, cluster or store.schema_version()[1] or None)
    except BaseException:
        store.close()
        raise
    return store
