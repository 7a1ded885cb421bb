"""The ClickHouse schema of the workbench store, as data: tables, columns, migrations.

One source for three consumers: the DDL (``render_migration`` / ``render_ddl``, printed by
``workbench db schema``), the Arrow shape the writer sends (``Column.arrow``, applied by
``columns.conform``), and the spool's duplicate check (``TableSpec.key``).

Decisions
---------
* Version 1 is the specification's ``mev_opportunities`` table as the specification writes
  it (``deploy/spec/mev_opportunities.sql``; ``render_seed`` renders it from the columns
  below and a test compares the two, whitespace aside). Later versions only add to it:
  version 2 appends the engine's columns with ``ALTER TABLE ... ADD COLUMN`` and creates the
  other tables, version 4 adds what a join needs (the trigger's ``tx_index``,
  ``packet_index`` and signature, amounts, the profit token, the model features) and the
  ``swaps`` table. A fresh store runs every migration in order, so a fresh store and a
  migrated one are the same thing by construction.
* Stores written before version 3 named the profit column ``profit_estimate``, lacked two
  codecs and had other skip index granularities. Version 3 brings them to the
  specification's text; the statements come from comparing what the store holds with these
  specs (``migrate.repair_statements``), the same comparison that repairs a store whose
  tables or columns were dropped, whatever version it records.
* Times are ``DateTime64(9, 'UTC')`` columns named without a unit (``ts``,
  ``interval_start``) so SQL can say ``ts > now() - INTERVAL 1 HOUR``; each has an
  ``ALIAS <name>_ns Int64`` giving the integer nanoseconds the Parquet files carry
  (``SELECT ts_ns FROM tx_features``). ALIAS columns are not in ``SELECT *``.
  The specification's ``timestamp DateTime64(9)`` keeps its spelling (no zone: epoch ns all the same).
* Missing is a sentinel, never NULL in an integer column: ``slot = -1`` unknown,
  ``''`` for no string, ``detect_latency_ns = -1`` not measured.
* ``run_id`` is ``LowCardinality(String)``: a handful of runs per table.
* Joins: ``(run_id, tx_index)`` names one transaction of a run in ``tx_features``,
  ``mev_opportunities`` (its trigger) and ``swaps``; ``swaps.pool`` is a base58 pool
  address as in ``mev_opportunities.pools``.
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

SCHEMA_VERSION = 4          # the version this code writes; a store above it is refused
DEDUP_WINDOW = 10_000       # insert blocks whose ids a MergeTree remembers for deduplication
VERSION_TABLE = "schema_version"

# mev_opportunities.type as the specification's table declares it, and its labels in code order
# (the engine writes the same codes: engine/opps.py OPP_*, checked by tests/test_store.py)
TYPE_ENUM = "Enum8('arbitrage' = 1, 'sandwich' = 2, 'liquidation' = 3)"
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
    renamed_from: tuple[str, ...] = ()  # earlier names of the column: a store holding one is renamed

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

# --- mev_opportunities: the specification's five columns, then what the engine knows ----------
SEED_COLUMNS = (
    Column("timestamp", "DateTime64(9)", pa.timestamp("ns"), TIME, "DoubleDelta, ZSTD(3)"),
    Column("opportunity_id", "UUID", pa.binary(16), UUID_, "ZSTD(3)"),
    Column("type", TYPE_ENUM, pa.int8(), ENUM),
    Column("profit", "Float64", pa.float64(), codec="Gorilla, ZSTD(3)", renamed_from=("profit_estimate",)),
    Column("pools", "Array(String)", pa.list_(pa.string()), codec="ZSTD(3)"),
)
SEED_INDEXES = ("INDEX idx_timestamp timestamp TYPE minmax GRANULARITY 8192",
                "INDEX idx_profit profit TYPE minmax GRANULARITY 4096")
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


def _feature_column(name: str) -> Column:
    return Column(name, "Float64", pa.float64(), default="nan",
                  comment="model feature (engine/opps.py OPP_FEATURES); nan unknown or older than schema 4")


# The model's features as opportunities.parquet names them (engine/opps.py MODEL_FEATURES; the
# store imports nothing of the engine, so tests/test_store_joins.py checks the two agree).
OPP_FEATURE_NAMES = (
    "f_expected_profit_sol", "f_pool_depth_sol", "f_victim_slippage", "f_victim_priority_fee_lamports",
    "f_victim_tip_lamports", "f_pool_swaps_10ms", "f_pool_swaps_100ms", "f_pool_swaps_1000ms",
    "f_ms_since_slot_start", "f_tx_size", "f_num_instructions", "f_program_count", "f_type")
JOIN_OPP_COLUMNS = (
    Column("packet_index", "Int64", pa.int64(), default="-1",
           comment="0-based frame index of the trigger packet in the capture (tx_features.packet_index); "
                   "-1 older than schema 4"),
    Column("tx_index", "Int64", pa.int64(), default="-1",
           comment="the trigger transaction: tx_features.tx_index and swaps.tx_index of the same run_id; "
                   "-1 older than schema 4"),
    Column("trigger_signature", "String", pa.string(), default="''",
           comment="base58 first signature of the trigger transaction (tx_features.signature)"),
    Column("amount_in", "UInt64", pa.uint64(), default="0",
           comment="what the bundle puts in, base units of the first pool's input token"),
    Column("amount_out", "UInt64", pa.uint64(), default="0",
           comment="what the bundle takes out, base units of the same token"),
    Column("profit_quote", "Int64", pa.int64(), default="0",
           comment="profit before tip in base units of profit_mint"),
    Column("profit_mint", "String", pa.string(), default="''",
           comment="base58 mint of the token the profit is counted in"),
    Column("position_id", "Int64", pa.int64(), default="-1",
           comment="liquidations: the lending position id of the snapshot; -1 otherwise"),
) + tuple(_feature_column(n) for n in OPP_FEATURE_NAMES)
OPPORTUNITIES = TableSpec(
    name="mev_opportunities",
    columns=SEED_COLUMNS + ENGINE_OPP_COLUMNS + JOIN_OPP_COLUMNS,
    engine="MergeTree()",
    partition_by="toYYYYMMDD(timestamp)",
    order_by="(type, timestamp)",
    indexes=SEED_INDEXES,
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

# --- swaps: every swap the engine applied (or refused) on a snapshot pool (swaps.parquet + run_id) -
SWAPS = TableSpec(
    name="swaps",
    columns=(
        Column("run_id", "LowCardinality(String)", pa.string(), comment="runs.run_id"),
        Column("ts", "DateTime64(9, 'UTC')", _ts(), TIME, "DoubleDelta, LZ4",
               comment="when the packet was seen; ts_ns is the same in int64 ns"),
        Column("packet_index", "Int64", pa.int64(), codec="Delta, LZ4",
               comment="0-based frame index in the capture"),
        Column("tx_index", "Int64", pa.int64(), codec="Delta, LZ4",
               comment="the transaction (tx_features.tx_index of the same run_id)"),
        Column("slot", "Int64", pa.int64(), comment="-1 unknown"),
        Column("instr_index", "Int16", pa.int16(), comment="top-level instruction of the transaction"),
        Column("pool", "String", pa.string(), comment="pool address, base58 (as in mev_opportunities.pools)"),
        Column("pool_row", "Int32", pa.int32(), comment="the pool's row in the market snapshot"),
        Column("program", "LowCardinality(String)", pa.string(), comment="AMM program name"),
        Column("a_to_b", "Int8", pa.int8(), comment="1: token A in, token B out"),
        Column("exact_in", "Int8", pa.int8(), comment="1: amount_in fixed, 0: amount_out fixed"),
        Column("amount_in", "UInt64", pa.uint64(), comment="base units of the input token"),
        Column("amount_out", "UInt64", pa.uint64(), comment="base units of the output token"),
        Column("amount_limit", "UInt64", pa.uint64(),
               comment="the instruction's minimum out (exact in) or maximum in (exact out); swaps.parquet limit"),
        Column("reserve_a", "UInt64", pa.uint64(), comment="pool reserve of token A after the swap"),
        Column("reserve_b", "UInt64", pa.uint64(), comment="pool reserve of token B after the swap"),
        Column("status", "LowCardinality(String)", pa.string(),
               comment="applied, slippage, reverted, direction_unresolved, amm_error, crosses_tick"),
    ),
    engine="MergeTree()",
    partition_by="toYYYYMMDD(ts)",
    order_by="(run_id, tx_index, instr_index)",
    indexes=("INDEX idx_pool pool TYPE bloom_filter(0.01) GRANULARITY 4",
             "INDEX idx_ts ts TYPE minmax GRANULARITY 1"),
    aliases=("ts_ns Int64 ALIAS toUnixTimestamp64Nano(ts)",),
    settings=(("index_granularity", 8192),) + _DEDUP,
    shard_key="cityHash64(run_id, tx_index)",
    key=("run_id", "tx_index", "instr_index", "pool_row"),
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

TABLES: dict[str, TableSpec] = {t.name: t for t in (OPPORTUNITIES, TX_FEATURES, LATENCY_HIST, RUNS, SWAPS)}


# --- migrations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    ops: tuple = field(default_factory=tuple)   # ("seed",) | ("create", table) | ("add", table, cols) | ("dedup", table)
                                                # | ("repair", table): what the store lacks of the table's spec


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the specification's mev_opportunities, as the specification writes it", (("seed",),)),
    Migration(2, "engine columns on mev_opportunities; tx_features, latency_hist, runs", (
        ("add", "mev_opportunities", ENGINE_OPP_COLUMNS),
        ("dedup", "mev_opportunities"),
        ("create", "tx_features"),
        ("create", "latency_hist"),
        ("create", "runs"),
    )),
    Migration(3, "mev_opportunities as the specification writes it: profit_estimate renamed profit, "
                 "ZSTD(3) on opportunity_id and pools, skip index granularity 8192 and 4096", (
        ("repair", "mev_opportunities"),
    )),
    Migration(4, "mev_opportunities joins: trigger packet_index, tx_index and signature, amounts, profit "
                 "token, position, model features; the swaps table", (
        ("add", "mev_opportunities", JOIN_OPP_COLUMNS),
        ("create", "swaps"),
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
    """Version 1: the specification's table, rendered from ``SEED_COLUMNS`` and ``SEED_INDEXES``
    (``SEED_DDL`` is the plain form, compared with deploy/spec/mev_opportunities.sql by a test)."""
    spec = OPPORTUNITIES
    lines = [f"    {c.ddl()}" for c in SEED_COLUMNS] + [""] + [f"    {i}" for i in SEED_INDEXES]
    body = ",\n".join(lines[:len(SEED_COLUMNS)]) + ",\n" + "\n" + ",\n".join(lines[len(SEED_COLUMNS) + 1:])
    settings = ", ".join(f"{k} = {v}" for k, v in spec.settings)
    sql = (f"CREATE TABLE IF NOT EXISTS {t.name(spec.name)}{t.on} (\n{body}\n) ENGINE = {t.engine(spec.engine)}\n"
           f"PARTITION BY {spec.partition_by}\nORDER BY {spec.order_by}\nSETTINGS {settings}")
    out = [sql]
    if t.cluster:
        out.append(t.distributed(spec.name, spec.shard_key))
    return out


# The specification's table as plain DDL (no database, no IF NOT EXISTS).
SEED_DDL = render_seed(Target())[0].replace("CREATE TABLE IF NOT EXISTS default.", "CREATE TABLE ", 1) + ";"


def render_op(op: tuple, t: Target) -> list[str]:
    kind = op[0]
    if kind == "seed":
        return render_seed(t)
    if kind == "create":
        return render_create(TABLES[op[1]], t)
    if kind == "repair":        # depends on what the store holds: migrate.repair_statements
        return []
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
