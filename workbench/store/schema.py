"""The ClickHouse schema of the workbench store, as data: tables, columns, migrations.

One source for three consumers: the DDL (``render_migration`` / ``render_ddl``, printed by
``workbench db schema``), the Arrow shape the writer sends (``Column.arrow``, applied by
``columns.conform``), and the spool's duplicate check (``TableSpec.key``).

Decisions
---------
* ``mev_opportunities`` is the seed document's table, kept byte for byte (``SEED_DDL``,
  schema version 1). Version 2 appends the engine's columns with ``ALTER TABLE ... ADD
  COLUMN`` and creates the other tables. A fresh store runs migration 1 then 2, so a fresh
  store and a migrated seed store are the same thing by construction.
* Times are ``DateTime64(9, 'UTC')`` columns named without a unit (``ts``,
  ``interval_start``) so SQL can say ``ts > now() - INTERVAL 1 HOUR``; each has an
  ``ALIAS <name>_ns Int64`` giving the integer nanoseconds the Parquet files carry
  (``SELECT ts_ns FROM tx_features``). ALIAS columns are not in ``SELECT *``.
  The seed's ``timestamp DateTime64(9)`` keeps its spelling (no zone: epoch ns all the same).
* Missing is a sentinel, never NULL in an integer column: ``slot = -1`` unknown,
  ``''`` for no string, ``detect_latency_ns = -1`` not measured.
* ``run_id`` is ``LowCardinality(String)``: a handful of runs per table.
* Exact re-insert: each insert carries ``insert_deduplication_token``; the MergeTree tables
  keep a window of ``DEDUP_WINDOW`` block ids (``non_replicated_deduplication_window``,
  ``replicated_deduplication_window`` on a cluster). The spool flush does not trust the
  window alone: it looks up each spooled batch's ``key`` columns first (see spool.py).
* Cluster (``cluster=NAME``): each table becomes ``<name>_local`` with
  ``ReplicatedMergeTree()`` (empty arguments: the server's ``default_replica_path`` /
  ``default_replica_name``, i.e. ``/clickhouse/tables/{uuid}/{shard}`` and ``{replica}``),
  created ``ON CLUSTER``, plus a ``Distributed`` table under the plain name sharded by a
  deterministic key (a re-inserted row lands on the shard that already holds it).
  Single node is the default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa

SCHEMA_VERSION = 2          # the version this code writes; a store above it is refused
DEDUP_WINDOW = 10_000       # insert blocks whose ids a MergeTree remembers for deduplication
VERSION_TABLE = "schema_version"

# The seed document's table, verbatim. Do not edit: migration 2 adds to it.
SEED_DDL = """\
CREATE TABLE mev_opportunities (
    timestamp DateTime64(9) CODEC(DoubleDelta, ZSTD(3)),
    opportunity_id UUID,
    type Enum8('arbitrage' = 1, 'sandwich' = 2, 'liquidation' = 3),
    profit_estimate Float64 CODEC(Gorilla, ZSTD(3)),
    pools Array(String),
    INDEX idx_profit profit_estimate TYPE minmax GRANULARITY 4,
    INDEX idx_timestamp timestamp TYPE minmax GRANULARITY 1
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (type, timestamp)
SETTINGS index_granularity = 8192;"""

# mev_opportunities.type as the seed's table declares it, and its labels in code order (the
# engine writes the same codes: engine/opps.py OPP_*, checked by tests/test_store.py)
TYPE_ENUM = re.search(r"\btype (Enum8\([^)]*\))", SEED_DDL).group(1)
OPPORTUNITY_TYPES = tuple(label for label, _code in
                          sorted(re.findall(r"'(\w+)' = (\d+)", TYPE_ENUM), key=lambda lc: int(lc[1])))

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Column kinds steer how an incoming Arrow column is converted (``conform``) and how the
# spool compares keys: plain values, a DateTime64 fed from ``<name>_ns`` int64 or an Arrow
# timestamp, a UUID fed from 16 bytes / text, an Enum8 fed from its label or code.
PLAIN, TIME, UUID_, ENUM = "plain", "time", "uuid", "enum"


@dataclass(frozen=True)
class Column:
    name: str
    ch_type: str                    # ClickHouse type
    arrow: pa.DataType              # Arrow type the writer sends
    kind: str = PLAIN
    codec: str = ""                 # e.g. "DoubleDelta, ZSTD(3)"
    default: str | None = None      # DEFAULT expression; None = the column is required
    comment: str = ""               # meaning, unit, range

    def ddl(self, with_codec: bool = True) -> str:
        s = f"{self.name} {self.ch_type}"
        if self.default is not None:
            s += f" DEFAULT {self.default}"
        if self.codec and with_codec:
            s += f" CODEC({self.codec})"
        if self.comment:
            s += " COMMENT '" + self.comment.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return s


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    engine: str                     # single-node engine, e.g. "MergeTree()"
    order_by: str
    partition_by: str = ""
    indexes: tuple[str, ...] = ()   # "INDEX name expr TYPE t GRANULARITY g"
    settings: tuple[tuple[str, object], ...] = ()
    aliases: tuple[str, ...] = ()   # "name Type ALIAS expr"
    shard_key: str = "rand()"       # Distributed sharding expression (cluster only)
    key: tuple[str, ...] = ()       # columns that identify a row (spool duplicate check)
    narrow: tuple[str, ...] = ()    # extra columns whose [min, max] narrows that lookup
    version: str = ""               # ReplacingMergeTree version column: a row is stored when its
                                    # key holds a version >= its own (merges drop older versions)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _ts() -> pa.DataType:
    return pa.timestamp("ns", tz="UTC")


_DEDUP = (("non_replicated_deduplication_window", DEDUP_WINDOW),)

# --- mev_opportunities: the seed's five columns, then what the engine knows ------------------
SEED_COLUMNS = (
    Column("timestamp", "DateTime64(9)", pa.timestamp("ns"), TIME, "DoubleDelta, ZSTD(3)",
           comment=""),
    Column("opportunity_id", "UUID", pa.binary(16), UUID_),
    Column("type", TYPE_ENUM, pa.int8(), ENUM),
    Column("profit_estimate", "Float64", pa.float64(), codec="Gorilla, ZSTD(3)"),
    Column("pools", "Array(String)", pa.list_(pa.string())),
)
ENGINE_OPP_COLUMNS = (
    Column("run_id", "LowCardinality(String)", pa.string(), default="''",
           comment="run that found it (runs.run_id); empty for rows older than schema 2"),
    Column("slot", "Int64", pa.int64(), default="-1", comment="Solana slot; -1 unknown"),
    Column("victim_signature", "String", pa.string(), default="''",
           comment="base58 signature of the victim transaction (sandwich); empty otherwise"),
    Column("score", "Float64", pa.float64(), default="nan",
           comment="model score in [0, 1]; nan when no model ran"),
    Column("expected_profit_lamports", "Int64", pa.int64(), default="0",
           comment="lamports the bundle is expected to net after fees and tip"),
    Column("tip_lamports", "Int64", pa.int64(), default="0", comment="Jito tip, lamports"),
    Column("detect_latency_ns", "Int64", pa.int64(), default="-1",
           comment="ns from the packet timestamp to the detection; -1 not measured"),
    Column("source", "Enum8('unknown' = 0, 'replay' = 1, 'live' = 2)", pa.int8(), ENUM,
           default="'unknown'", comment="replay or live"),
)
OPPORTUNITIES = TableSpec(
    name="mev_opportunities",
    columns=SEED_COLUMNS + ENGINE_OPP_COLUMNS,
    engine="MergeTree()",
    partition_by="toYYYYMMDD(timestamp)",
    order_by="(type, timestamp)",
    indexes=("INDEX idx_profit profit_estimate TYPE minmax GRANULARITY 4",
             "INDEX idx_timestamp timestamp TYPE minmax GRANULARITY 1"),
    settings=(("index_granularity", 8192),),
    shard_key="cityHash64(opportunity_id)",
    key=("opportunity_id",),
    narrow=("timestamp",),
)

# --- tx_features: one row per decoded transaction (tx_features.parquet + run_id) ------------
TX_FEATURES = TableSpec(
    name="tx_features",
    columns=(
        Column("run_id", "LowCardinality(String)", pa.string(), comment="runs.run_id"),
        Column("packet_index", "Int64", pa.int64(), codec="Delta, LZ4",
               comment="0-based frame index in the capture"),
        Column("ts", "DateTime64(9, 'UTC')", _ts(), TIME, "DoubleDelta, LZ4",
               comment="when the packet was seen (capture or NIC clock); ts_ns is the same in int64 ns"),
        Column("tx_index", "Int64", pa.int64(), codec="Delta, LZ4",
               comment="0-based index of the transaction row in its run (unique per run)"),
        Column("slot", "Int64", pa.int64(), codec="Delta, LZ4", comment="-1 unknown"),
        Column("origin", "Int8", pa.int8(), default="0",
               comment="0 UDP transaction packet, 1 entry reassembled from shreds"),
        Column("origin_ts_ns", "Int64", pa.int64(), default="-1",
               comment="shreds: event time of the first shred of the entry batch, ns; -1 for UDP"),
        Column("entry_index", "Int32", pa.int32(), default="-1",
               comment="shreds: entry within its batch; -1 for UDP"),
        Column("signature", "String", pa.string(), comment="first signature, base58"),
        Column("version", "LowCardinality(String)", pa.string(), comment="'legacy' or '0'"),
        Column("size", "Int32", pa.int32(), comment="transaction bytes, [0, 1232]"),
        Column("num_signatures", "Int32", pa.int32()),
        Column("num_account_keys", "Int32", pa.int32(), comment="static keys, lookups excluded"),
        Column("num_instructions", "Int32", pa.int32()),
        Column("num_lookup_tables", "Int32", pa.int32()),
        Column("num_loaded_accounts", "Int32", pa.int32(), default="0",
               comment="accounts loaded through lookup tables"),
        Column("compute_unit_limit", "Int64", pa.int64(), comment="CU"),
        Column("compute_unit_price", "Int64", pa.int64(), comment="micro-lamports per CU"),
        Column("priority_fee_lamports", "Int64", pa.int64()),
        Column("jito_tip_lamports", "Int64", pa.int64()),
        Column("program_mask", "Int64", pa.int64(), comment="bitmask of known programs"),
        Column("num_programs", "Int32", pa.int32(), default="length(programs)",
               comment="distinct programs invoked"),
        Column("cb_flags", "Int32", pa.int32(), default="0",
               comment="1 duplicate ComputeBudget tag, 2 deprecated RequestUnits, 4 short data"),
        Column("tip_dest_unresolved", "Int32", pa.int32(), default="0",
               comment="System transfers whose destination is in a lookup table"),
        Column("programs", "Array(LowCardinality(String))", pa.list_(pa.string()),
               comment="invoked program ids, base58"),
    ),
    engine="MergeTree()",
    partition_by="toYYYYMMDD(ts)",
    order_by="(run_id, tx_index)",
    indexes=("INDEX idx_signature signature TYPE bloom_filter(0.01) GRANULARITY 4",
             "INDEX idx_ts ts TYPE minmax GRANULARITY 1"),
    aliases=("ts_ns Int64 ALIAS toUnixTimestamp64Nano(ts)",),
    settings=(("index_granularity", 8192),) + _DEDUP,
    shard_key="cityHash64(run_id, tx_index)",
    key=("run_id", "tx_index"),
)

# --- latency_hist: histogram snapshots per run and interval -----------------------------------
LATENCY_HIST = TableSpec(
    name="latency_hist",
    columns=(
        Column("run_id", "LowCardinality(String)", pa.string()),
        Column("interval_start", "DateTime64(9, 'UTC')", _ts(), TIME,
               comment="snapshot interval [start, end), event time"),
        Column("interval_end", "DateTime64(9, 'UTC')", _ts(), TIME),
        Column("hist_name", "LowCardinality(String)", pa.string(),
               comment="e.g. packet_processing_ns; the unit is the name's suffix"),
        Column("bucket_lower", "Array(UInt64)", pa.list_(pa.uint64()),
               comment="lower bound of each non-empty bucket"),
        Column("bucket_count", "Array(UInt64)", pa.list_(pa.uint64()),
               comment="values recorded in each bucket"),
        Column("count", "UInt64", pa.uint64()),
        Column("p50", "UInt64", pa.uint64()),
        Column("p99", "UInt64", pa.uint64()),
        Column("p999", "UInt64", pa.uint64()),
        Column("min", "UInt64", pa.uint64()),
        Column("max", "UInt64", pa.uint64()),
    ),
    engine="MergeTree()",
    partition_by="toYYYYMM(interval_start)",
    order_by="(run_id, hist_name, interval_start)",
    aliases=("interval_start_ns Int64 ALIAS toUnixTimestamp64Nano(interval_start)",
             "interval_end_ns Int64 ALIAS toUnixTimestamp64Nano(interval_end)"),
    settings=_DEDUP,
    shard_key="cityHash64(run_id)",
    key=("run_id", "hist_name", "interval_start"),
)

# --- runs: one logical row per run; start and end rows collapse (ReplacingMergeTree) ---------
RUNS = TableSpec(
    name="runs",
    columns=(
        Column("run_id", "String", pa.string()),
        Column("status", "LowCardinality(String)", pa.string(), comment="running | done | failed"),
        Column("source", "LowCardinality(String)", pa.string(), comment="replay | live"),
        Column("capture_path", "String", pa.string()),
        Column("capture_sha256", "String", pa.string(), comment="hex digest of the capture file"),
        Column("market", "String", pa.string(), comment="market snapshot the pools came from"),
        Column("model", "String", pa.string(), comment="model arrays path or id; empty = none"),
        Column("config", "String", pa.string(), comment="the run's settings, JSON"),
        Column("code_version", "String", pa.string(), comment="workbench version / git describe"),
        Column("started_at", "DateTime64(9, 'UTC')", _ts(), TIME),
        Column("ended_at", "DateTime64(9, 'UTC')", _ts(), TIME, comment="1970-01-01 while running"),
        Column("counts", "Map(LowCardinality(String), Int64)", pa.map_(pa.string(), pa.int64()),
               comment="the engine's counters at the end: packets, transactions, opportunities, rejects"),
        Column("updated_at", "DateTime64(9, 'UTC')", _ts(), TIME,
               comment="version of the row: the latest wins (ReplacingMergeTree)"),
    ),
    engine="ReplacingMergeTree(updated_at)",
    order_by="run_id",
    aliases=("started_ns Int64 ALIAS toUnixTimestamp64Nano(started_at)",
             "ended_ns Int64 ALIAS toUnixTimestamp64Nano(ended_at)"),
    settings=_DEDUP,
    shard_key="cityHash64(run_id)",
    key=("run_id",),
    version="updated_at",
)

VERSION_SPEC = TableSpec(
    name=VERSION_TABLE,
    columns=(
        Column("version", "UInt32", pa.uint32()),
        Column("applied_at", "DateTime64(3, 'UTC')", pa.timestamp("ms", tz="UTC"), TIME),
        Column("code_version", "String", pa.string()),
        Column("cluster", "String", pa.string(), comment="ON CLUSTER name; empty = single node"),
        Column("description", "String", pa.string()),
    ),
    engine="MergeTree()",
    order_by="version",
    shard_key="version",
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (OPPORTUNITIES, TX_FEATURES, LATENCY_HIST, RUNS)}


# --- migrations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    ops: tuple = field(default_factory=tuple)   # ("seed",) | ("create", table) | ("add", table, cols) | ("dedup", table)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the seed's mev_opportunities, as the seed document writes it", (("seed",),)),
    Migration(2, "engine columns on mev_opportunities; tx_features, latency_hist, runs", (
        ("add", "mev_opportunities", ENGINE_OPP_COLUMNS),
        ("dedup", "mev_opportunities"),
        ("create", "tx_features"),
        ("create", "latency_hist"),
        ("create", "runs"),
    )),
)
assert MIGRATIONS[-1].version == SCHEMA_VERSION


def check_identifier(name: str, what: str) -> str:
    if not _IDENT.match(name or ""):
        raise ValueError(f"{what} {name!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return name


@dataclass(frozen=True)
class Target:
    """Where DDL lands: a database, and optionally a cluster (Replicated + Distributed)."""

    database: str = "default"
    cluster: str | None = None

    def __post_init__(self):
        check_identifier(self.database, "database")
        if self.cluster:
            check_identifier(self.cluster, "cluster")

    @property
    def on(self) -> str:
        return f" ON CLUSTER {self.cluster}" if self.cluster else ""

    def name(self, table: str) -> str:
        """The table that holds the rows (``<table>_local`` on a cluster)."""
        return f"{self.database}.{table}_local" if self.cluster else f"{self.database}.{table}"

    def engine(self, single: str) -> str:
        return "Replicated" + single if self.cluster else single

    def distributed(self, table: str, shard_key: str) -> str:
        return (f"CREATE TABLE IF NOT EXISTS {self.database}.{table}{self.on} "
                f"AS {self.database}.{table}_local\n"
                f"ENGINE = Distributed({self.cluster}, {self.database}, {table}_local, {shard_key})")


def render_create(spec: TableSpec, t: Target) -> list[str]:
    lines = [f"    {c.ddl()}" for c in spec.columns]
    lines += [f"    {a}" for a in spec.aliases]
    lines += [f"    {i}" for i in spec.indexes]
    settings = list(spec.settings)
    if t.cluster:
        settings = [("replicated_deduplication_window", DEDUP_WINDOW) if k == "non_replicated_deduplication_window"
                    else (k, v) for k, v in settings]
    sql = f"CREATE TABLE IF NOT EXISTS {t.name(spec.name)}{t.on} (\n" + ",\n".join(lines) + "\n)"
    sql += f" ENGINE = {t.engine(spec.engine)}\n"
    if spec.partition_by:
        sql += f"PARTITION BY {spec.partition_by}\n"
    sql += f"ORDER BY {spec.order_by}"
    if settings:
        sql += "\nSETTINGS " + ", ".join(f"{k} = {v}" for k, v in settings)
    out = [sql]
    if t.cluster:
        out.append(t.distributed(spec.name, spec.shard_key))
    return out


def render_seed(t: Target) -> list[str]:
    sql = SEED_DDL.rstrip(";")
    sql = sql.replace("CREATE TABLE mev_opportunities (",
                      f"CREATE TABLE IF NOT EXISTS {t.name('mev_opportunities')}{t.on} (", 1)
    sql = sql.replace("ENGINE = MergeTree()", f"ENGINE = {t.engine('MergeTree()')}", 1)
    out = [sql]
    if t.cluster:
        out.append(t.distributed("mev_opportunities", OPPORTUNITIES.shard_key))
    return out


def render_op(op: tuple, t: Target) -> list[str]:
    kind = op[0]
    if kind == "seed":
        return render_seed(t)
    if kind == "create":
        return render_create(TABLES[op[1]], t)
    if kind == "add":
        table, cols = op[1], op[2]
        out = []
        targets = [(t.name(table), True)]
        if t.cluster:       # the Distributed table mirrors the columns (no codecs there)
            targets.append((f"{t.database}.{table}", False))
        for name, with_codec in targets:
            adds = []
            prev = None
            for c in cols:
                after = f" AFTER {prev}" if prev else ""
                adds.append(f"    ADD COLUMN IF NOT EXISTS {c.ddl(with_codec)}{after}")
                prev = c.name
            out.append(f"ALTER TABLE {name}{t.on}\n" + ",\n".join(adds))
        return out
    if kind == "dedup":
        setting = "replicated_deduplication_window" if t.cluster else "non_replicated_deduplication_window"
        return [f"ALTER TABLE {t.name(op[1])}{t.on} MODIFY SETTING {setting} = {DEDUP_WINDOW}"]
    raise ValueError(f"unknown migration op {kind!r}")


def render_migration(m: Migration, t: Target) -> list[str]:
    return [sql for op in m.ops for sql in render_op(op, t)]


def render_version_table(t: Target) -> list[str]:
    return render_create(VERSION_SPEC, t)


def render_ddl(t: Target, from_version: int = 0) -> list[str]:
    """Every statement that brings a store at ``from_version`` to SCHEMA_VERSION."""
    out = []
    if t.cluster:
        out.append(f"CREATE DATABASE IF NOT EXISTS {t.database}{t.on}")
    out += render_version_table(t)
    for m in MIGRATIONS:
        if m.version > from_version:
            out += render_migration(m, t)
    return out
