"""Builders for the store tests: tx_features, mev_opportunities and latency_hist batches as the
engine hands them over, a loopback port that refuses connections, and a row count."""

from __future__ import annotations

import socket

import numpy as np
import pyarrow as pa

from workbench.store import schema as S
from workbench.store.clickhouse import Store
from workbench.wire.base58 import ALPHABET
from workbench.wire.keys import program_address

PROGRAMS = [program_address(name) for name in ("system", "compute_budget", "jupiter_v6", "raydium_amm_v4",
                                               "orca_whirlpool")]
T0_NS = 1_767_225_600_000_000_000          # 2026-01-01T00:00:00Z


def b58_strings(rng, n, length=88):
    idx = rng.integers(0, len(ALPHABET), (n, length))
    raw = ALPHABET[idx]
    return pa.StringArray.from_buffers(n, pa.py_buffer(np.arange(0, (n + 1) * length, length, dtype=np.int32)),
                                       pa.py_buffer(raw.tobytes()))


def make_tx_features(n, seed=0, start=0, t0_ns=T0_NS):
    """A tx_features batch as the engine hands it over (the brief's Arrow schema)."""
    rng = np.random.default_rng(seed)
    idx = np.arange(start, start + n, dtype=np.int64)
    counts = rng.integers(0, 4, n).astype(np.int32)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    progs = pa.array(PROGRAMS).take(pa.array(rng.integers(0, len(PROGRAMS), int(offsets[-1]))))
    return pa.table({
        "tx_index": idx,
        "packet_index": idx,
        "ts_ns": t0_ns + idx * 1_000 + rng.integers(0, 1_000, n),
        "slot": np.where(rng.random(n) < 0.3, -1, 390_000_000 + idx // 400),
        "signature": b58_strings(rng, n),
        "version": pa.array(np.where(rng.random(n) < 0.5, "legacy", "0").tolist(), pa.string()),
        "size": rng.integers(100, 1233, n).astype(np.int32),
        "num_signatures": rng.integers(1, 3, n).astype(np.int32),
        "num_account_keys": rng.integers(1, 64, n).astype(np.int32),
        "num_instructions": rng.integers(0, 12, n).astype(np.int32),
        "num_lookup_tables": rng.integers(0, 3, n).astype(np.int32),
        "compute_unit_limit": rng.integers(0, 1_400_001, n),
        "compute_unit_price": rng.integers(0, 10**9, n),
        "priority_fee_lamports": rng.integers(0, 10**7, n),
        "jito_tip_lamports": np.where(rng.random(n) < 0.1, rng.integers(1000, 10**6, n), 0),
        "program_mask": rng.integers(0, 2**40, n),
        "programs": pa.ListArray.from_arrays(pa.array(offsets), progs),
    })


def make_opportunities(n, seed=0, t0_ns=T0_NS):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    ids[:, 6] = (ids[:, 6] & 0x0F) | 0x40           # RFC 4122 version 4
    ids[:, 8] = (ids[:, 8] & 0x3F) | 0x80
    counts = rng.integers(1, 4, n).astype(np.int32)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.table({
        "timestamp": pa.array(t0_ns + np.sort(rng.integers(0, 3_600 * 10**9, n)), pa.timestamp("ns")),
        "opportunity_id": pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(ids.tobytes())]),
        "type": pa.array(np.array(S.OPPORTUNITY_TYPES)[rng.integers(0, 3, n)].tolist()),
        "profit": rng.gamma(2.0, 0.05, n),
        "pools": pa.ListArray.from_arrays(pa.array(offsets), pa.array(PROGRAMS).take(
            pa.array(rng.integers(0, len(PROGRAMS), int(offsets[-1]))))),
        "slot": 390_000_000 + rng.integers(0, 10_000, n),
        "victim_signature": b58_strings(rng, n),
        "score": rng.random(n),
        "expected_profit_lamports": rng.integers(0, 10**9, n),
        "tip_lamports": rng.integers(0, 10**6, n),
        "detect_latency_ns": rng.integers(1_000, 10**6, n),
        "source": pa.array(["replay"] * n),
    })


def make_latency_hist(n, run_id="r", t0_ns=T0_NS):
    rng = np.random.default_rng(n)
    lows = [sorted(rng.integers(0, 10**6, 5).tolist()) for _ in range(n)]
    return pa.table({
        "run_id": [run_id] * n,
        "interval_start_ns": T0_NS + np.arange(n, dtype=np.int64) * 10**9,
        "interval_end_ns": T0_NS + (np.arange(n, dtype=np.int64) + 1) * 10**9,
        "hist_name": ["packet_processing_ns"] * n,
        "bucket_lower": pa.array(lows, pa.list_(pa.uint64())),
        "bucket_count": pa.array([rng.integers(1, 100, 5).tolist() for _ in range(n)], pa.list_(pa.uint64())),
        "count": pa.array(rng.integers(1, 500, n), pa.uint64()),
        "p50": pa.array(rng.integers(100, 200, n), pa.uint64()),
        "p99": pa.array(rng.integers(200, 900, n), pa.uint64()),
        "p999": pa.array(rng.integers(900, 2000, n), pa.uint64()),
        "min": pa.array(rng.integers(1, 100, n), pa.uint64()),
        "max": pa.array(rng.integers(2000, 10**6, n), pa.uint64()),
    })


def closed_port() -> int:
    """A loopback port that was bound, then closed: connecting to it is refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _rows(store: Store, table: str, where: str = "", params=None) -> int:
    return store.count(table, where, params)
