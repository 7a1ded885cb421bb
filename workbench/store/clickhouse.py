"""One ClickHouse client for both stores: embedded chDB and a server, via clickhouse-connect.

The DSN forms are in dsn.py; the Arrow shape of a batch (``conform``) in columns.py.

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

import pyarrow as pa

from .. import __version__
from ..errors import StoreError, StoreUnavailable
from . import schema as S
from .columns import conform
from .dsn import Dsn, parse_dsn
from .migrate import ensure_schema as _ensure_schema
from .server_config import embedded_client_options

log = logging.getLogger(__name__)

_AUTH_CODES = {192, 193, 194, 516}           # UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED
_UNAVAILABLE_CODES = {159, 164, 202, 209, 210, 241, 242, 252, 319, 425, 999}  # timeouts, overload, read-only, keeper
_UNAVAILABLE_TEXT = re.compile(r"connection refused|max retries exceeded|timed out|timeout|"
                               r"name or service not known|failed to establish|connection reset|"
                               r"remote end closed|broken pipe|temporary failure in name resolution|"
                               r"network is unreachable|no route to host|connection aborted|"
                               r"connection broken|incompleteread|badstatusline|remotedisconnected|"
                               r"http driver received http status|unexpected response to server version", re.I)
# Why a server counts as unreachable, said plainly (first match of the driver's message wins).
# A ClickHouse server's own errors carry an exception code (X-ClickHouse-Exception-Code); an
# HTTP error or an answer without one comes from something else on that port, or a proxy in
# front of a server that is down, and is retried later like a server that is not there.
_UNAVAILABLE_WHY = (
    (re.compile(r"read timed out.*?read timeout=(\d+)", re.I | re.S),
     "no answer within the read deadline of {0} s (store_read_timeout_s)"),
    (re.compile(r"connect timeout=(\d+)", re.I), "no connection within the connect deadline of {0} s "
                                                 "(store_connect_timeout_s)"),
    (re.compile(r"http driver received http status (\d+)", re.I),
     "it answered HTTP {0} without a ClickHouse error: not a ClickHouse server, or a proxy whose server is down"),
    (re.compile(r"incompleteread|connection broken|remotedisconnected|remote end closed", re.I),
     "it closed the connection in the middle of its answer"),
    (re.compile(r"badstatusline|unexpected response to server version", re.I),
     "its answer is not ClickHouse's (garbage or another protocol on that port)"),
)
# clickhouse-connect logs a warning (with a traceback) for every transport error before it
# raises; ``translate`` turns the error into the one message the user sees.
logging.getLogger("clickhouse_connect.driver._backend.http_sync").setLevel(logging.ERROR)
# An embedded insert of at most this many rows is pushed from memory as an Arrow stream; a larger
# one is written to a file the engine parses in parallel (Store._insert_arrow_embedded).
EMBEDDED_STREAM_ROWS_MAX = 65_536
# ...in pieces of this many bytes: each piece's copy into a bytes object holds the GIL, and a whole
# stream of a few MB held it for milliseconds (the server's event loop waited that long)
EMBEDDED_STREAM_PIECE_BYTES = 256 * 1024


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
                              f"use a store directory). Stop that process (a `workbench replay`, `workbench live` or "
                              f"`workbench db` command, or a `panel serve` of the panel apps), pass another "
                              f"--db chdb:///dir, or run a ClickHouse server and use --db http://host:8123/db.")
        if code in _UNAVAILABLE_CODES:      # too many parts, memory limit, timeout: try again later
            return StoreUnavailable(f"embedded store {where} is overloaded{what}: {_short(msg)}; "
                                    "the batch is spooled and retried")
        return StoreError(f"embedded store {where}{what}: {_short(msg)}")
    if code in _AUTH_CODES or re.search(r"authentication failed|wrong password|password is incorrect", msg, re.I):
        return StoreError(f"ClickHouse at {dsn.host}:{dsn.port} refused the credentials of user "
                          f"{dsn.user or 'default'!r}{what}. Fix the user and password in the DSN "
                          f"(http://user:password@host:{dsn.port}/{dsn.database}; set by --db, WORKBENCH_DB or "
                          f"the config's db), percent-encoding special characters in the password.")
    status = re.search(r"http driver received http status (\d+)", msg, re.I)
    if code is None and status and status.group(1) in ("401", "403"):    # a proxy refusing us: not transient
        return StoreError(f"{where} refused the request with HTTP {status.group(1)}, not a ClickHouse error (a "
                          f"proxy in front of the server?){what}. Check the DSN's user and password.")
    if code in _UNAVAILABLE_CODES or (code is None and _UNAVAILABLE_TEXT.search(msg)):
        hint = ""
        if dsn.port in (9000, 9440):
            hint = f" Port {dsn.port} is the native protocol; the HTTP port is 8123 (8443 with TLS)."
        why = next((w.format(*mm.groups()) for rx, w in _UNAVAILABLE_WHY if (mm := rx.search(msg))), "")
        return StoreUnavailable(f"cannot reach ClickHouse at {where}{what}: {why or _short(msg)}. Is the server "
                                f"running and the host and port right?{hint} Writes are spooled to disk meanwhile; "
                                f"`workbench db flush-spool` sends them once the server is back.")
    return StoreError(f"ClickHouse at {where}{what}: {_short(msg)}")


_READONLY_REFUSAL = re.compile(r"in readonly mode|\(READONLY\)")


def _what(doing: str) -> str:
    return f" while {doing}" if doing else ""


_GLOB = re.compile(r"[*?{}\[\]]")


def file_path_plain(path) -> bool:
    """Whether file() reads ``path`` as itself: no glob character in it."""
    return not _GLOB.search(os.fspath(path))


def _quote(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _settings_clause(settings: dict) -> str:
    """`` SETTINGS k = v, ...`` for an INSERT (empty without settings)."""
    if not settings:
        return ""
    return " SETTINGS " + ", ".join(f"{k} = {_quote(v) if isinstance(v, str) else v}" for k, v in settings.items())


def _short(msg: str, n: int = 400) -> str:
    msg = " ".join(msg.split())
    m = re.search(r"Code: \d+\..*", msg)
    if m:
        msg = m.group(0)
    msg = re.sub(r"\s*\(version [^)]*(\([^)]*\))?[^)]*\)\s*$", "", msg)
    return msg if len(msg) <= n else msg[: n - 3] + "..."


# --- the store ----------------------------------------------------------------------------
class Store:
    """A connected store: ``client`` (clickhouse-connect), ``dsn``, ``target`` (database, cluster)."""

    def __init__(self, dsn: Dsn, client, cluster: str | None = None, read_only: bool = False):
        self.dsn = dsn
        self.client = client
        self.target = S.Target(dsn.database, cluster)
        self.read_only = read_only

    # -- plumbing
    def _call(self, doing: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as e:  # driver, network and engine errors all land here
            if self.read_only and _READONLY_REFUSAL.search(str(e)):
                # code 164 counts as "unavailable" for the writer; here it is the session refusing
                raise StoreError(f"{self.dsn.redacted()} refused this in a read-only session{_what(doing)}: "
                                 f"{_short(str(e))}. A read-only session (--read-only, ClickHouse readonly=1) "
                                 f"runs only reads of the store's tables: no INSERT, DDL, SET or SETTINGS, and no "
                                 f"table functions such as file() or url().") from None
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

    def query_exact(self, sql: str, parameters: dict | None = None) -> tuple[list[str], list, list[tuple]]:
        """Column names, their types (clickhouse-connect type objects) and rows as Python values,
        with every DateTime and DateTime64, nested ones too, as its integer count of ticks
        (10**-scale s) since the epoch: a Python datetime cannot hold nanoseconds, exact output can."""
        res = self._call("querying", self.client.query, sql, parameters=parameters,
                         query_formats={"DateTime64": "int", "DateTime": "int"})
        return list(res.column_names), list(res.column_types), res.result_rows

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
        """chDB: a small batch as Arrow IPC bytes in memory, a large one through a file.

        A small batch (a group of posted rows, an engine batch) goes in as one ``INSERT ...
        FORMAT ArrowStream`` whose bytes are pushed to the engine from memory (chDB's
        ``send_insert``, on the client's own connection handle and under its lock). No file is
        written and read back: for a batch of a few thousand rows that file and the
        ``file()`` query around it cost more than the insert. A large batch is written as an
        Arrow IPC file once and read by the engine with ``file()`` (parallel parse), which
        wins past ``EMBEDDED_STREAM_ROWS_MAX`` rows (benchmarks/bench_store_insert.py).
        Both name the target columns, so values convert as the Arrow input format converts
        them; both are one statement.
        """
        handle = getattr(getattr(self.client, "_backend", None), "_handle", None)
        if handle is None or data.num_rows > EMBEDDED_STREAM_ROWS_MAX or not hasattr(handle.conn, "send_insert"):
            return self._insert_arrow_file(table, data, settings)
        sink = pa.BufferOutputStream()
        data = data.combine_chunks()        # one record batch: one block, parsed and written at once
        with pa.ipc.new_stream(sink, data.schema) as w:
            w.write_table(data)
        cols = ", ".join(f"`{n}`" for n in data.column_names)
        sql = f"INSERT INTO {self.table(table)} ({cols})" + _settings_clause(settings)
        stream, piece = sink.getvalue(), EMBEDDED_STREAM_PIECE_BYTES
        with handle.lock:           # the client's calls on this handle are serialised by it
            with handle.conn.send_insert(sql, "ArrowStream") as ins:    # (leaving it unfinished cancels)
                for at in range(0, stream.size, piece):
                    ins.append(stream.slice(at, min(piece, stream.size - at)).to_pybytes())
                ins.finish()

    def _insert_arrow_file(self, table: str, data: pa.Table, settings: dict) -> None:
        """chDB: write the Arrow IPC file once and let the engine read it with ``file()``.

        ``Client.insert_arrow`` on chDB serialises to memory, copies that to a temporary
        file and runs ``INSERT ... FROM INFILE`` (single-threaded parse): one copy more and
        no parallel parse (benchmarks/bench_store_insert.py compares the two). The ``file()``
        structure names the target types, so values convert exactly as the Arrow input
        format converts them.
        """
        spec = S.TABLES.get(table) or (S.VERSION_SPEC if table == S.VERSION_TABLE else None)
        types = {c.name: c.ch_type for c in spec.columns} if spec else {}
        structure = ", ".join(f"`{n}` {types[n]}" for n in data.column_names) \
            if all(n in types for n in data.column_names) else None
        fd, path = tempfile.mkstemp(prefix="workbench-insert-", suffix=".arrow")
        os.close(fd)
        try:
            with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, data.schema) as w:
                w.write_table(data)
            self.client.command(self._file_insert_sql(table, data.column_names, ["*"], path, "Arrow", structure,
                                                      settings))
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass

    def insert_file(self, table: str, columns: list[str], select: list[str], path, fmt: str, structure: str,
                    settings: dict | None = None) -> None:
        """``INSERT INTO table (columns) SELECT select FROM file(path, fmt, structure)``: the engine
        reads, parses and converts a file of this machine itself, one statement, without the GIL
        (embedded chDB only: a server's file() reads the server's files). ``path`` may hold no glob
        character, which file() would expand (``file_path_plain``)."""
        if not self.dsn.embedded:
            raise StoreError(f"{self.dsn.redacted()} is a ClickHouse server: it cannot read {path} with file()")
        if not file_path_plain(path):
            raise ValueError(f"{path} holds a character file() reads as a glob (* ? {{ }} [ ])")
        self._call(f"inserting {os.fspath(path)} into {table}", self.client.command,
                   self._file_insert_sql(table, columns, select, path, fmt, structure, settings or {}))

    def _file_insert_sql(self, table: str, columns: list[str], select: list[str], path, fmt: str,
                         structure: str | None, settings: dict) -> str:
        """``INSERT INTO table (columns) SELECT select FROM file(path, fmt[, structure])``."""
        source = ", ".join(_quote(x) for x in (os.fspath(path), fmt, structure) if x is not None)
        return (f"INSERT INTO {self.table(table)} ({', '.join(f'`{c}`' for c in columns)}) "
                f"SELECT {', '.join(select)} FROM file({source})" + _settings_clause(settings))

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
        """Create, migrate or repair the schema (store/migrate.py); returns the versions applied.

        What was repaired (tables or columns found missing) is left in ``self.schema_report``.
        """
        self.schema_report = _ensure_schema(self, cluster)
        return self.schema_report.applied

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
            connect_timeout: int | None = None, read_timeout: int | None = None,
            read_only: bool = False) -> Store:
    """Open a store; by default create or migrate its schema. Raises StoreError.

    ``connect_timeout`` and ``read_timeout`` (whole seconds; the config's
    store_connect_timeout_s and store_read_timeout_s) bound how long a server may take to
    accept the connection and how long it may stay silent while answering, for this client's
    whole life; the DSN's connect_timeout / send_receive_timeout options win over them. Past
    them, and on an answer that is not ClickHouse's, the error is StoreUnavailable. When a
    deadline is given the driver does not retry a failed query (one deadline, not several).
    ``read_only`` opens a read-only session (ClickHouse ``readonly=1`` on every query of this
    client, chDB or server): reads of the store's tables only; writes, DDL, settings changes
    and table functions (``file()``, ``url()``...) are refused with a StoreError saying so.
    No schema is created or migrated then.
    """
    import clickhouse_connect       # deferred: the chdb engine loads on first use

    d = dsn if isinstance(dsn, Dsn) else parse_dsn(dsn)
    if read_only and ensure_schema:
        raise StoreError("a read-only session cannot create or migrate the schema: connect with ensure_schema=False")
    session = {"settings": {"readonly": 1}} if read_only else {}
    try:
        if d.embedded:
            if d.path and read_only and not os.path.isdir(d.path):
                raise StoreError(f"no embedded store at {d.path} (a read-only session does not create one): "
                                 f"write a run into it first (workbench replay CAPTURE --db {d}), or pass its --db")
            if d.path:
                try:
                    os.makedirs(d.path, exist_ok=True)
                except OSError as e:
                    raise StoreError(f"cannot create the embedded store directory {d.path}: {e.strerror}; "
                                     "pass --db chdb:///a/writable/dir") from None
            opts = embedded_client_options()    # the specification's server settings (server_config.py)
            opts["settings"].update(session.get("settings", {}))
            client = clickhouse_connect.get_client(interface="chdb", path=d.path, **opts)
        else:
            opts = dict(d.options)
            for key, value in (("connect_timeout", connect_timeout), ("send_receive_timeout", read_timeout)):
                if value is not None:
                    opts.setdefault(key, int(value))
                    opts.setdefault("query_retries", 0)
            client = clickhouse_connect.get_client(
                interface=d.scheme, host=d.host, port=d.port, username=d.user or None,
                password=d.password, database=None, **opts, **session)
    except StoreError:
        raise
    except Exception as e:
        raise translate(e, d, "connecting") from e
    store = Store(d, client, cluster, read_only=read_only)
    try:
        if d.database != "default":
            if not store.scalar(f"EXISTS DATABASE {d.database}"):
                if read_only:
                    raise StoreError(f"{d.redacted()}: the database {d.database} does not exist (a read-only "
                                     "session does not create it)")
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
