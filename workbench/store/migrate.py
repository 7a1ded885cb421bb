"""Bring a store to the schema of this code: versioned migrations, then a repair from what exists.

The version a store records says which migrations ran, not that their tables are still
there: a ``DROP TABLE tx_features`` or ``ALTER TABLE ... DROP COLUMN`` leaves the version at
its number while every insert into that table fails (and the writer spools forever). So
``ensure_schema`` runs the migrations the version lacks, then compares what the store holds
(``system.columns``, ``system.data_skipping_indices``) with what every table should have
(schema.py) and issues what is missing:

* a missing table is made again by the migrations that made it, in their order (so a
  remade ``mev_opportunities`` is the specification's table plus the added columns);
* a column under an earlier name (``Column.renamed_from``) is renamed;
* a missing column (or ALIAS) is added after the column that precedes it in the spec;
* a column whose codec differs gets the spec's codec;
* a skip index that is missing, or has another expression or granularity, is made again and
  materialised for the parts already written.

Types of existing columns are never changed (that could lose data): a column of another
type is reported as a problem the user must settle. Every statement is idempotent.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

import pyarrow as pa

from .. import __version__
from ..errors import StoreError
from . import schema as S

log = logging.getLogger(__name__)

_INDEX = re.compile(r"^INDEX (\w+) (.+) TYPE (.+) GRANULARITY (\d+)$")
_CODEC_PART = re.compile(r"(\w+)(?:\(([^)]*)\))?")
_WIDTH_CODECS = {"Delta", "DoubleDelta", "Gorilla", "T64"}     # ClickHouse fills in the data width


@dataclass(frozen=True)
class PresentColumn:
    name: str
    ch_type: str
    codec: str            # as system.columns shows it: "CODEC(Gorilla(8), ZSTD(3))" or ""
    default_kind: str     # "", "DEFAULT", "ALIAS", ...


@dataclass
class Present:
    """What a store holds: per table (its name in the target: ``<t>_local`` on a cluster)."""

    columns: dict[str, list[PresentColumn]] = field(default_factory=dict)
    indexes: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)   # table: name -> (expr, granularity)

    def has(self, table: str) -> bool:
        return table in self.columns


@dataclass
class SchemaReport:
    applied: list[int] = field(default_factory=list)      # migration versions applied now
    repairs: list[str] = field(default_factory=list)      # statements run because something was missing
    problems: list[str] = field(default_factory=list)     # differences left for the user (column types)


def _local(t: S.Target, table: str) -> str:
    return f"{table}_local" if t.cluster else table


def inspect(store, t: S.Target) -> Present:
    """The tables, columns and skip indexes of the store's database."""
    names = [_local(t, n) for n in S.TABLES]
    p = Present()
    rows = store.query_rows(
        "SELECT table, name, type, compression_codec, default_kind FROM system.columns "
        "WHERE database = {db:String} AND table IN {names:Array(String)} ORDER BY table, position",
        {"db": t.database, "names": names})
    for table, name, ch_type, codec, kind in rows:
        p.columns.setdefault(table, []).append(PresentColumn(name, ch_type, codec, kind))
    rows = store.query_rows(
        "SELECT table, name, expr, granularity FROM system.data_skipping_indices "
        "WHERE database = {db:String} AND table IN {names:Array(String)}", {"db": t.database, "names": names})
    for table, name, expr, gran in rows:
        p.indexes.setdefault(table, {})[name] = (expr, int(gran))
    return p


def codec_key(codec: str) -> tuple:
    """A codec list in comparable form: ``CODEC(Gorilla(8), ZSTD(3))`` == ``Gorilla, ZSTD(3)``."""
    body = codec.strip()
    if body.startswith("CODEC(") and body.endswith(")"):
        body = body[6:-1]
    return tuple((m.group(1), "" if m.group(1) in _WIDTH_CODECS else (m.group(2) or ""))
                 for m in _CODEC_PART.finditer(body))


def _norm(expr: str) -> str:
    return "".join(expr.split()).strip("`")


def _creating_ops(table: str) -> list[tuple]:
    """The migration ops that made ``table`` and added to it, in order."""
    return [op for m in S.MIGRATIONS for op in m.ops if op[0] != "repair" and
            ((op[0] == "seed" and table == S.OPPORTUNITIES.name) or (op[0] != "seed" and op[1] == table))]


def repair_statements(present: Present, t: S.Target, tables=None) -> tuple[list[str], list[str]]:
    """(statements, problems) that bring ``tables`` (default all) from ``present`` to their specs."""
    out, problems = [], []
    for name in tables or S.TABLES:
        spec, local = S.TABLES[name], _local(t, name)
        if not present.has(local):
            for op in _creating_ops(name):
                out += S.render_op(op, t)
            continue
        have = {c.name: c for c in present.columns[local]}
        targets = [t.name(name)] + ([f"{t.database}.{name}"] if t.cluster else [])
        want_idx = {m.group(1): (m.group(2), int(m.group(4)), pos, text)
                    for pos, text in enumerate(spec.indexes) for m in [_INDEX.match(text)]}
        have_idx = present.indexes.get(local, {})
        renames = [(old, c) for c in spec.columns if c.name not in have
                   for old in c.renamed_from if old in have]
        renamed_away = {old for old, _ in renames}
        # indexes that differ go first: an index over a column blocks renaming it
        redo = [n for n, (expr, gran, _pos, _text) in want_idx.items()
                if n not in have_idx or _norm(have_idx[n][0]) != _norm(expr) or have_idx[n][1] != gran]
        for n in redo:
            if n in have_idx:
                out.append(f"ALTER TABLE {t.name(name)}{t.on} DROP INDEX IF EXISTS {n}")
        for n, (expr, _g) in have_idx.items():     # an index over a column being renamed
            if n not in redo and any(re.search(rf"\b{old}\b", expr) for old in renamed_away):
                out.append(f"ALTER TABLE {t.name(name)}{t.on} DROP INDEX IF EXISTS {n}")
                redo.append(n)
        for old, c in renames:
            for target in targets:
                out.append(f"ALTER TABLE {target}{t.on} RENAME COLUMN IF EXISTS {old} TO {c.name}")
            have[c.name] = have.pop(old)
        prev = None
        for c in spec.columns:
            if c.name not in have:
                for target, with_codec in zip(targets, (True, False)):
                    after = f" AFTER {prev}" if prev else " FIRST"
                    out.append(f"ALTER TABLE {target}{t.on} ADD COLUMN IF NOT EXISTS {c.ddl(with_codec)}{after}")
            else:
                p = have[c.name]
                if p.ch_type != c.ch_type:
                    problems.append(f"{name}.{c.name} is {p.ch_type} in the store, {c.ch_type} in this schema: "
                                    f"left as it is (changing a type can lose data); convert it with ALTER TABLE "
                                    f"{t.name(name)} MODIFY COLUMN {c.name} {c.ch_type} if that is safe")
                elif codec_key(p.codec) != codec_key(f"CODEC({c.codec})" if c.codec else ""):
                    codec = f"CODEC({c.codec})" if c.codec else "CODEC(Default)"
                    out.append(f"ALTER TABLE {t.name(name)}{t.on} MODIFY COLUMN {c.name} {codec}")
            prev = c.name
        for a in spec.aliases:
            alias = a.split()[0]
            if alias not in have:
                for target in targets:
                    out.append(f"ALTER TABLE {target}{t.on} ADD COLUMN IF NOT EXISTS {a}")
        for n in sorted((n for n in redo if n in want_idx), key=lambda n: want_idx[n][2]):   # spec order
            out.append(f"ALTER TABLE {t.name(name)}{t.on} ADD INDEX IF NOT EXISTS {want_idx[n][3][len('INDEX '):]}")
            out.append(f"ALTER TABLE {t.name(name)}{t.on} MATERIALIZE INDEX {n}")
    return out, problems


def _record(store, m: S.Migration, cluster: str | None) -> None:
    row = pa.table({"version": pa.array([m.version], pa.uint32()),
                    "applied_at": pa.array([time.time_ns() // 1_000_000], pa.timestamp("ms", tz="UTC")),
                    "code_version": [__version__], "cluster": [cluster or ""],
                    "description": [m.description]})
    store.insert_arrow(S.VERSION_TABLE, row)


def ensure_schema(store, cluster: str | None = None) -> SchemaReport:
    """Run the migrations the store's version lacks, then repair what is missing (see the module doc).

    Idempotent (every statement is IF [NOT] EXISTS, and the repair finds nothing on a whole
    store). A store made by the specification's DDL alone (``mev_opportunities`` without a
    version table) is migrated like a version-1 store.
    """
    version, recorded = store.schema_version()
    store.check_version(version)
    if cluster and recorded and cluster != recorded:
        raise StoreError(f"the store {store.dsn} was created ON CLUSTER {recorded}, not {cluster}; "
                         f"pass --cluster {recorded}")
    cluster = cluster or recorded or None
    t = store.target = S.Target(store.target.database, cluster)
    report = SchemaReport()
    if version < S.SCHEMA_VERSION:
        if cluster:
            store.command(f"CREATE DATABASE IF NOT EXISTS {t.database}{t.on}")
        for sql in S.render_version_table(t):
            store.command(sql)
        for m in S.MIGRATIONS:
            if m.version <= version:
                continue
            for op in m.ops:
                if op[0] == "repair":
                    stmts, _ = repair_statements(inspect(store, t), t, [op[1]])
                else:
                    stmts = S.render_op(op, t)
                for sql in stmts:
                    store.command(sql)
            _record(store, m, cluster)
            report.applied.append(m.version)
            log.info("store %s: schema version %d applied (%s)", store.dsn, m.version, m.description)
    stmts, report.problems = repair_statements(inspect(store, t), t)
    for sql in stmts:
        store.command(sql)
    report.repairs = stmts
    if stmts:
        log.warning("store %s: repaired what was missing: %s", store.dsn, "; ".join(stmts))
    return report
