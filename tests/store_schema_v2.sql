-- The store schema as version 2 wrote it (before the specification table fix, issue 17): the
-- migration tests build a store from this text and migrate it. History: do not edit.
-- version 1: the seed's mev_opportunities, as the seed document writes it
CREATE TABLE IF NOT EXISTS default.mev_opportunities (
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
SETTINGS index_granularity = 8192;
-- version 2: engine columns on mev_opportunities; tx_features, latency_hist, runs
ALTER TABLE default.mev_opportunities
    ADD COLUMN IF NOT EXISTS run_id LowCardinality(String) DEFAULT '' COMMENT 'run that found it (runs.run_id); empty for rows older than schema 2',
    ADD COLUMN IF NOT EXISTS slot Int64 DEFAULT -1 COMMENT 'Solana slot; -1 unknown' AFTER run_id,
    ADD COLUMN IF NOT EXISTS victim_signature String DEFAULT '' COMMENT 'base58 signature of the victim transaction (sandwich); empty otherwise' AFTER slot,
    ADD COLUMN IF NOT EXISTS score Float64 DEFAULT nan COMMENT 'model score in [0, 1]; nan when no model ran' AFTER victim_signature,
    ADD COLUMN IF NOT EXISTS expected_profit_lamports Int64 DEFAULT 0 COMMENT 'lamports the bundle is expected to net after fees and tip' AFTER score,
    ADD COLUMN IF NOT EXISTS tip_lamports Int64 DEFAULT 0 COMMENT 'Jito tip, lamports' AFTER expected_profit_lamports,
    ADD COLUMN IF NOT EXISTS detect_latency_ns Int64 DEFAULT -1 COMMENT 'ns from the packet timestamp to the detection; -1 not measured' AFTER tip_lamports,
    ADD COLUMN IF NOT EXISTS source Enum8('unknown' = 0, 'replay' = 1, 'live' = 2) DEFAULT 'unknown' COMMENT 'replay or live' AFTER detect_latency_ns;
ALTER TABLE default.mev_opportunities MODIFY SETTING non_replicated_deduplication_window = 10000;
CREATE TABLE IF NOT EXISTS default.tx_features (
    run_id LowCardinality(String) COMMENT 'runs.run_id',
    packet_index Int64 CODEC(Delta, LZ4) COMMENT '0-based frame index in the capture',
    ts DateTime64(9, 'UTC') CODEC(DoubleDelta, LZ4) COMMENT 'when the packet was seen (capture or NIC clock); ts_ns is the same in int64 ns',
    tx_index Int64 CODEC(Delta, LZ4) COMMENT '0-based index of the transaction row in its run (unique per run)',
    slot Int64 CODEC(Delta, LZ4) COMMENT '-1 unknown',
    origin Int8 DEFAULT 0 COMMENT '0 UDP transaction packet, 1 entry reassembled from shreds',
    origin_ts_ns Int64 DEFAULT -1 COMMENT 'shreds: event time of the first shred of the entry batch, ns; -1 for UDP',
    entry_index Int32 DEFAULT -1 COMMENT 'shreds: entry within its batch; -1 for UDP',
    signature String COMMENT 'first signature, base58',
    version LowCardinality(String) COMMENT '\'legacy\' or \'0\'',
    size Int32 COMMENT 'transaction bytes, [0, 1232]',
    num_signatures Int32,
    num_account_keys Int32 COMMENT 'static keys, lookups excluded',
    num_instructions Int32,
    num_lookup_tables Int32,
    num_loaded_accounts Int32 DEFAULT 0 COMMENT 'accounts loaded through lookup tables',
    compute_unit_limit Int64 COMMENT 'CU',
    compute_unit_price Int64 COMMENT 'micro-lamports per CU',
    priority_fee_lamports Int64,
    jito_tip_lamports Int64,
    program_mask Int64 COMMENT 'bitmask of known programs',
    num_programs Int32 DEFAULT length(programs) COMMENT 'distinct programs invoked',
    cb_flags Int32 DEFAULT 0 COMMENT '1 duplicate ComputeBudget tag, 2 deprecated RequestUnits, 4 short data',
    tip_dest_unresolved Int32 DEFAULT 0 COMMENT 'System transfers whose destination is in a lookup table',
    programs Array(LowCardinality(String)) COMMENT 'invoked program ids, base58',
    ts_ns Int64 ALIAS toUnixTimestamp64Nano(ts),
    INDEX idx_signature signature TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_ts ts TYPE minmax GRANULARITY 1
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (run_id, tx_index)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 10000;
CREATE TABLE IF NOT EXISTS default.latency_hist (
    run_id LowCardinality(String),
    interval_start DateTime64(9, 'UTC') COMMENT 'snapshot interval [start, end), event time',
    interval_end DateTime64(9, 'UTC'),
    hist_name LowCardinality(String) COMMENT 'e.g. packet_processing_ns; the unit is the name\'s suffix',
    bucket_lower Array(UInt64) COMMENT 'lower bound of each non-empty bucket',
    bucket_count Array(UInt64) COMMENT 'values recorded in each bucket',
    count UInt64,
    p50 UInt64,
    p99 UInt64,
    p999 UInt64,
    min UInt64,
    max UInt64,
    interval_start_ns Int64 ALIAS toUnixTimestamp64Nano(interval_start),
    interval_end_ns Int64 ALIAS toUnixTimestamp64Nano(interval_end)
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(interval_start)
ORDER BY (run_id, hist_name, interval_start)
SETTINGS non_replicated_deduplication_window = 10000;
CREATE TABLE IF NOT EXISTS default.runs (
    run_id String,
    status LowCardinality(String) COMMENT 'running | done | failed',
    source LowCardinality(String) COMMENT 'replay | live',
    capture_path String,
    capture_sha256 String COMMENT 'hex digest of the capture file',
    market String COMMENT 'market snapshot the pools came from',
    model String COMMENT 'model arrays path or id; empty = none',
    config String COMMENT 'the run\'s settings, JSON',
    code_version String COMMENT 'workbench version / git describe',
    started_at DateTime64(9, 'UTC'),
    ended_at DateTime64(9, 'UTC') COMMENT '1970-01-01 while running',
    counts Map(LowCardinality(String), Int64) COMMENT 'the engine\'s counters at the end: packets, transactions, opportunities, rejects',
    updated_at DateTime64(9, 'UTC') COMMENT 'version of the row: the latest wins (ReplacingMergeTree)',
    started_ns Int64 ALIAS toUnixTimestamp64Nano(started_at),
    ended_ns Int64 ALIAS toUnixTimestamp64Nano(ended_at)
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY run_id
SETTINGS non_replicated_deduplication_window = 10000;
