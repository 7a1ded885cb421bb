"""Disk spool for batches the store refused: one Arrow IPC file per batch, flushed later.

A batch whose insert failed (server down, network error, any store error) is written here,
never dropped, and re-inserted by ``workbench db flush-spool`` or by the next writer that
starts with this spool directory. Files are named ``<spooled_ns>-<pid>-<seq>.<table>.arrow``
so that a directory listing is the order they failed in; a file appears atomically
(written as ``.tmp``, fsynced, renamed). The schema metadata carries the table, the insert's
deduplication token and the error that sent it here.

Re-inserting never doubles rows, whatever happened to the failed insert (not sent, or sent
and committed but the answer lost): before inserting a file, ``missing_rows`` looks up the
batch's key columns (``schema.TableSpec.key``) in the store and keeps only the rows that are
not there. The full batch goes in with its original token (the server's deduplication window
catches a concurrent flusher); a partial remainder goes in with a token derived from it.
A file being flushed is flocked: two flushers never send the same file at once.

Each file records the store it was meant for (``workbench.target``: the DSN without its
password, and the database, ``Dsn.target``). A flush inserts a file into another store only
when asked (``flush(store, retarget=True)``, ``workbench db flush-spool --to DSN``); otherwise
the file stays and the flush says which store it waits for. Files spooled before targets
were recorded carry none and go to the store flushed into.

A file that can never be inserted (not a spool file, unreadable or cut short, naming a table
the store does not have, columns that do not fit its table) is set aside: moved to
``rejected/`` beside a ``<name>.reason.txt`` saying why, and logged. It never stops the
files after it, nor a later run's writer (which flushes the spool at start).
"""

from __future__ import annotations

import dataclasses
import fcntl
import itertools
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import StoreError, StoreUnavailable
from . import schema as S
from .clickhouse import Store, connect
from .columns import conform
from .dsn import Dsn, parse_dsn

log = logging.getLogger(__name__)

SUFFIX = ".arrow"
REJECTED = "rejected"           # subfolder for files that can never be inserted, each with a reason file
REASON_SUFFIX = ".reason.txt"
# <spooled_ns>-<pid>-<seq>.<table>.arrow, as Spool.write names them
_NAME = re.compile(r"^\d{20}-\d+-\d{6}\.([A-Za-z_][A-Za-z0-9_]*)\.arrow$")
_META_TABLE = b"workbench.table"
_META_TOKEN = b"workbench.dedup_token"
_META_TIME = b"workbench.spooled_ns"
_META_ERROR = b"workbench.error"
_META_ROWS = b"workbench.rows"
_META_TARGET = b"workbench.target"
_IN_LIST_MAX = 1000             # distinct strings a key lookup lists with IN (...)
_seq = itertools.count()


@dataclass
class FlushStats:
    files: int = 0              # files inserted (or found already stored) and removed
    rows_inserted: int = 0      # rows that were missing from the store and went in
    rows_skipped: int = 0       # rows already in the store (the failed insert had landed)
    files_left: int = 0         # files still in the spool after this flush
    unavailable: bool = False   # stopped because the store could not be reached
    errors: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)   # files set aside in rejected/, with the reason
    other_target: dict = field(default_factory=dict)    # target -> files left for that other store


class Rejected(StoreError):
    """A spool file that can never be inserted: the message says why."""


@dataclass(frozen=True)
class SpoolFile:
    path: Path
    table: str
    dedup_token: str
    spooled_ns: int
    error: str
    data: pa.Table
    target: str = ""            # Dsn.target of the store it was spooled for; "" = not recorded


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def read_spool_file(path: str | os.PathLike) -> SpoolFile:
    """Read and check one spool file; ``Rejected`` says why it can never be inserted."""
    path = Path(path)
    m = _NAME.match(path.name)
    if not m:
        raise Rejected(f"not a spool file: its name is not <spooled_ns>-<pid>-<seq>.<table>{SUFFIX}")
    try:
        with pa.memory_map(str(path), "r") as src:
            data = pa.ipc.open_file(src).read_all()
    except (OSError, pa.ArrowInvalid, ValueError) as e:
        raise Rejected(f"unreadable: not a complete Arrow IPC file (cut short or damaged): {e}") from None
    meta = data.schema.metadata or {}
    if _META_TABLE not in meta:
        raise Rejected(f"not a workbench spool file: no {_META_TABLE.decode()} metadata")
    try:
        table = meta[_META_TABLE].decode()
        item = SpoolFile(path, table, meta.get(_META_TOKEN, b"").decode(), int(meta.get(_META_TIME, b"0")),
                         meta.get(_META_ERROR, b"").decode(errors="replace"), data.replace_schema_metadata(None),
                         meta.get(_META_TARGET, b"").decode())
    except (UnicodeDecodeError, ValueError) as e:
        raise Rejected(f"damaged spool metadata: {e}") from None
    if table not in S.TABLES:
        raise Rejected(f"names the table {table!r}, which the store does not have (tables: {', '.join(S.TABLES)})")
    if m.group(1) != table:
        raise Rejected(f"its name says table {m.group(1)!r} but its metadata says {table!r}")
    renamed = _current_names(table, item.data)
    if renamed is not item.data:
        item = dataclasses.replace(item, data=renamed)
    try:
        conform(table, item.data)       # the columns and types the table takes, as the writer sent them
    except StoreError as e:
        raise Rejected(f"its columns do not fit the table {table}: {e}") from None
    return item


def _current_names(table: str, data: pa.Table) -> pa.Table:
    """``data`` with columns a later schema version renamed (``Column.renamed_from``) under their
    current names: a batch spooled by an older workbench still goes in after an upgrade."""
    renames = {old: c.name for c in S.TABLES[table].columns for old in getattr(c, "renamed_from", ()) or ()
               if old in data.column_names and c.name not in data.column_names}
    if not renames:
        return data
    return data.rename_columns([renames.get(n, n) for n in data.column_names])


def spool_target(dsn: Dsn | str) -> str:
    """The store a spool file is meant for, as recorded in it: ``Dsn.target``."""
    return (dsn if isinstance(dsn, Dsn) else parse_dsn(dsn)).target


def missing_rows(store: Store, table: str, data: pa.Table) -> pa.Table:
    """The rows of ``data`` whose key is not yet in ``store.table``: exact, by key lookup."""
    spec = S.TABLES[table]
    if data.num_rows == 0 or not spec.key:
        return data
    where, select = [], []
    for name in dict.fromkeys(spec.key + spec.narrow):
        col, arr = spec.column(name), data.column(name)
        t = arr.type
        if col.kind == S.TIME:
            ns = pc.cast(arr, pa.int64()) if not pa.types.is_timestamp(t) else arr.cast(pa.int64())
            lo, hi = pc.min_max(ns).values()
            where.append(f"{name} BETWEEN fromUnixTimestamp64Nano(toInt64({lo.as_py()})) "
                         f"AND fromUnixTimestamp64Nano(toInt64({hi.as_py()}))")
        elif pa.types.is_integer(t):
            lo, hi = pc.min_max(arr).values()
            where.append(f"{name} BETWEEN {lo.as_py()} AND {hi.as_py()}")
        elif pa.types.is_string(t) and col.kind == S.PLAIN:
            values = pc.unique(arr)
            if len(values) <= _IN_LIST_MAX:
                where.append(f"{name} IN (" + ", ".join(_quote(v) for v in values.to_pylist()) + ")")
    for name in spec.key:
        col, t = spec.column(name), data.column(name).type
        if col.kind == S.UUID_:
            expr = f"UUIDStringToNum(toString({name}))" if pa.types.is_fixed_size_binary(t) else f"toString({name})"
        elif col.kind == S.TIME:
            expr = f"toUnixTimestamp64Nano({name})"
        elif pa.types.is_string(t):
            expr = f"toString({name})"
        else:
            expr = name
        select.append(f"{expr} AS __key_{name}")     # a fresh alias: ClickHouse aliases shadow columns in WHERE
    sql = f"SELECT {', '.join(select)} FROM {store.table(table)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if spec.version:        # ReplacingMergeTree: merges keep only the newest version of a key
        sql = (f"SELECT {', '.join(select)}, max(toUnixTimestamp64Nano({spec.version})) AS __version "
               f"FROM {store.table(table)}" + (" WHERE " + " AND ".join(where) if where else "")
               + f" GROUP BY {', '.join('__key_' + k for k in spec.key)}")
        have = store.query_arrow(sql).rename_columns(list(spec.key) + ["__version"])
    else:
        have = store.query_arrow(sql).rename_columns(list(spec.key))
    if have.num_rows == 0:
        return data
    mine = {}
    for name in spec.key:
        col, arr = spec.column(name), data.column(name)
        if col.kind == S.TIME:
            arr = arr.cast(pa.int64())
        elif col.kind == S.UUID_ and not pa.types.is_fixed_size_binary(arr.type):
            arr = pc.utf8_lower(arr)
        mine[name] = arr
        have_col = have.column(name)
        if have_col.type != arr.type:
            have = have.set_column(have.schema.get_field_index(name), name, have_col.cast(arr.type))
    mine["__row"] = pa.array(np.arange(data.num_rows, dtype=np.int64))
    left = pa.table(mine)
    if spec.version:        # keep a row unless the store has its key at the same or a newer version
        j = left.join(have, keys=list(spec.key), join_type="left outer")
        mine_v = pc.take(data.column(spec.version).cast(pa.int64()), j.column("__row"))
        stored = pc.fill_null(pc.greater_equal(j.column("__version"), mine_v), False)
        keep = pc.filter(j.column("__row"), pc.invert(stored))
    else:
        keep = left.join(have, keys=list(spec.key), join_type="left anti").column("__row")
    return data.take(pc.take(keep, pc.sort_indices(keep)))      # in the batch's order


class Spool:
    """A directory of spooled batches; ``target``: the store (a Dsn or DSN text) the batches
    written here are meant for, recorded in each file."""

    def __init__(self, directory: str | os.PathLike, target: Dsn | str | None = None):
        self.dir = Path(directory)
        self.target = spool_target(target) if target is not None else ""

    @property
    def rejected_dir(self) -> Path:
        return self.dir / REJECTED

    def write(self, table: str, data: pa.Table, dedup_token: str, error: str = "", *, fsync: bool = True,
              compression: str | None = "zstd") -> Path:
        """Spool one (conformed) batch; durable when this returns. Without ``fsync`` the file
        survives a crash of this process (it is complete once renamed), not a power loss."""
        self.dir.mkdir(parents=True, exist_ok=True)
        now = time.time_ns()
        name = f"{now:020d}-{os.getpid()}-{next(_seq):06d}.{table}{SUFFIX}"
        meta = {_META_TABLE: table.encode(), _META_TOKEN: dedup_token.encode(),
                _META_TIME: str(now).encode(), _META_ERROR: error[:2000].encode(),
                _META_ROWS: str(data.num_rows).encode(), _META_TARGET: self.target.encode()}
        data = data.replace_schema_metadata(meta)
        tmp = self.dir / f".{name}.tmp"
        opts = pa.ipc.IpcWriteOptions(compression=compression)
        with open(tmp, "wb") as f:
            with pa.ipc.new_file(f, data.schema, options=opts) as w:
                w.write_table(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        final = self.dir / name
        os.replace(tmp, final)
        return final

    def pending(self) -> list[Path]:
        """The spool files waiting, oldest first (hidden files, such as a write in progress, and
        folders are not; any other file is, and a flush sets it aside if it is not a spool file)."""
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if not p.name.startswith(".") and p.is_file())

    def pending_rows(self) -> int:
        """Rows waiting in the spool (read from each file's metadata)."""
        return sum(rows for _files, rows in self.by_target().values())

    def by_target(self) -> dict[str | None, tuple[int, int]]:
        """(files, rows) waiting per target, from each file's metadata: ``""`` for files that
        record none (spooled before targets were), None for files whose metadata cannot be read."""
        out: dict[str | None, tuple[int, int]] = {}
        for p in self.pending():
            try:
                with pa.memory_map(str(p), "r") as src:
                    meta = pa.ipc.open_file(src).schema.metadata or {}
                t, n = meta.get(_META_TARGET, b"").decode(), int(meta.get(_META_ROWS, b"0"))
            except (OSError, pa.ArrowInvalid, ValueError):
                t, n = None, 0
            files, rows = out.get(t, (0, 0))
            out[t] = (files + 1, rows + n)
        return out

    def reject(self, path: Path, reason: str) -> Path:
        """Move ``path`` to ``rejected/`` with a reason file beside it; returns where it went."""
        self.rejected_dir.mkdir(exist_ok=True)
        dest = self.rejected_dir / path.name
        n = 0
        while dest.exists():        # a name met before (a stray file of the same name): never overwrite
            n += 1
            dest = self.rejected_dir / f"{path.name}.{n}"
        os.replace(path, dest)
        dest.with_name(dest.name + REASON_SUFFIX).write_text(
            f"{path.name}: {reason}\nset aside {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} by the "
            f"spool flush of {self.dir}; it was not inserted anywhere. Inspect it, then delete it (or move a "
            f"repaired file back to {self.dir}).\n")
        log.warning("spool %s: %s set aside in %s: %s", self.dir, path.name, self.rejected_dir, reason)
        return dest

    def flush(self, store: Store, *, retarget: bool = False) -> FlushStats:
        """Insert every spooled batch that is not in the store yet; remove the files that made it.

        Files spooled for another store stay (counted in ``other_target``) unless ``retarget``.
        Files that can never be inserted are set aside in ``rejected/`` (``rejected``).
        Stops at the first StoreUnavailable (the server went away again: the rest stays);
        other errors are reported in ``errors`` and that file stays for a later flush.
        """
        stats = FlushStats()
        here = spool_target(store.dsn)
        for path in self.pending():
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                continue                    # another flusher took it
            except OSError as e:
                stats.errors.append(f"{path.name}: cannot be opened: {e.strerror or e}")
                continue
            with f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue                # being flushed right now by someone else
                try:
                    if os.fstat(f.fileno()).st_ino != os.stat(path).st_ino:
                        continue
                except FileNotFoundError:
                    continue
                try:
                    item = read_spool_file(path)
                except Rejected as e:
                    try:
                        dest = self.reject(path, str(e))
                        stats.rejected.append(f"{path.name}: {e}; set aside in {dest.parent}")
                    except OSError as oe:
                        stats.errors.append(f"{path.name}: {e}; could not be set aside: {oe.strerror or oe}")
                    continue
                if item.target and item.target != here and not retarget:
                    stats.other_target[item.target] = stats.other_target.get(item.target, 0) + 1
                    continue
                try:
                    todo = missing_rows(store, item.table, item.data)
                    token = item.dedup_token
                    if 0 < todo.num_rows < item.data.num_rows:
                        token = f"{token}/remaining:{todo.num_rows}"
                    store.insert_arrow(item.table, todo, token or None)
                except StoreUnavailable as e:
                    stats.errors.append(f"{path.name}: {e}")
                    stats.unavailable = True
                    break
                except StoreError as e:
                    stats.errors.append(f"{path.name}: {e}")
                    continue
                except Exception as e:      # a bug met on this file must not stop the others
                    log.exception("spool %s: flushing %s", self.dir, path.name)
                    stats.errors.append(f"{path.name}: {type(e).__name__}: {e}")
                    continue
                stats.rows_inserted += todo.num_rows
                stats.rows_skipped += item.data.num_rows - todo.num_rows
                stats.files += 1
                os.unlink(path)
        stats.files_left = len(self.pending())
        if stats.files or stats.errors or stats.rejected:
            log.info("spool %s: %d files flushed (%d rows in, %d already stored), %d set aside, %d left",
                     self.dir, stats.files, stats.rows_inserted, stats.rows_skipped, len(stats.rejected),
                     stats.files_left)
        return stats


def default_spool_dir(data_dir: str | os.PathLike = "data") -> Path:
    """``<data_dir>/spool``: where the CLI and the runner keep failed batches."""
    return Path(data_dir).resolve() / "spool"


def flush_spool(dsn, spool_dir: str | os.PathLike, *, retarget: bool = False) -> FlushStats:
    """Connect to ``dsn`` (creating or migrating its schema) and flush ``spool_dir`` into it
    (with ``retarget``, files spooled for other stores too)."""
    store = connect(dsn)
    try:
        return Spool(spool_dir).flush(store, retarget=retarget)
    finally:
        store.close()
