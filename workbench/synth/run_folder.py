"""Synthetic run folders for training tests and benchmarks: opportunities + swaps with a known mechanism.

Not a capture: this writes what a replay would write (``opportunities.parquet`` and
``swaps.parquet`` in the contract's columns), generated from a small market model in which
the label is NOT a formula of the features but the outcome of the label rule
(``model/labels.py``) on the generated swaps:

* every pool has an activity rate (lognormal, median ``median_rate_hz`` swaps per second);
  its swaps arrive as a Poisson process (the background flow);
* a share of the background swaps trigger an opportunity (arbitrage 60 %, sandwich 30 %,
  liquidation 10 %) with a lognormal profit;
* rival searchers see it too: with a probability rising with the profit, one of them lands
  a swap on the same pool after a lognormal delay that shrinks with the profit and the
  victim's priority fee (bigger prizes draw faster bots);
* the features are measured the way the engine measures them: swaps applied on the first
  pool in the 10/100/1000 ms before the trigger, the trigger's fees, size, instructions...

So a busy pool (high swap counts) and a big prize (fast rivals) both lower the chance of
winning, and a profit-only score is a weak baseline the model should beat. It lives in synth/
(synthetic data) rather than model/ (offline training), which only reads such folders.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..wire.keys import MINT_WSOL

TS0_NS = 1_750_000_000_000_000_000          # 2025-06-15, an arbitrary epoch for the synthetic clock
_TYPES = np.array(["arbitrage", "sandwich", "liquidation"])


def _pool_name(i: int) -> str:
    return f"SynthPool{i:04d}" + "1" * 30


def synthetic_run(out_dir, *, seconds: float = 60.0, n_pools: int = 16, median_rate_hz: float = 20.0,
                  trigger_share: float = 0.25, seed: int = 0, ts0_ns: int = TS0_NS,
                  tip_lamports: int = 10_000) -> Path:
    """Write ``opportunities.parquet`` and ``swaps.parquet`` of a synthetic run into ``out_dir``."""
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dur_ns = int(seconds * 1e9)
    rates = rng.lognormal(np.log(median_rate_hz), 1.0, n_pools)
    depth_sol = rng.lognormal(np.log(800.0), 1.2, n_pools)

    # background swaps: (ts, pool)
    ts_l, pool_l = [], []
    for p in range(n_pools):
        k = rng.poisson(rates[p] * seconds)
        ts_l.append(ts0_ns + np.sort(rng.integers(0, dur_ns, k)))
        pool_l.append(np.full(k, p))
    bg_ts = np.concatenate(ts_l)
    bg_pool = np.concatenate(pool_l)
    o = np.argsort(bg_ts, kind="stable")
    bg_ts, bg_pool = bg_ts[o], bg_pool[o]

    # opportunities on a share of the background swaps
    trig = np.flatnonzero(rng.random(len(bg_ts)) < trigger_share)
    n = len(trig)
    typ = rng.choice(3, n, p=[0.6, 0.3, 0.1])
    profit_sol = rng.lognormal(np.log(2e-4), 1.4, n)
    prio = np.where(rng.random(n) < 0.15, np.nan, rng.lognormal(np.log(20_000), 1.5, n))
    vtip = np.where(rng.random(n) < 0.6, 0.0, rng.lognormal(np.log(50_000), 1.0, n))
    slot_ms = np.where(rng.random(n) < 0.3, np.nan, rng.uniform(0, 400, n))
    # rivals: chance rises with the prize and for sandwiches (every bot runs them); speed rises
    # with the prize and, more, with the victim's priority fee (a high-fee victim lands early in
    # the block, and the bots that watch fees race for it)
    z = np.log(profit_sol / 2e-4)
    p_rival = 1.0 / (1.0 + np.exp(-(0.2 + 0.7 * z + 1.0 * (typ == 1))))
    rival = rng.random(n) < p_rival
    speed = np.exp(0.3 * z + 0.9 * np.log1p(np.nan_to_num(prio, nan=0.0) / 20_000))
    delay = (rng.lognormal(np.log(3e6), 0.6, n) / speed).astype(np.int64) + 1
    rv_ts = bg_ts[trig][rival] + delay[rival]
    rv_pool = bg_pool[trig][rival]

    # every swap row in capture order; one transaction per packet
    all_ts = np.concatenate([bg_ts, rv_ts])
    all_pool = np.concatenate([bg_pool, rv_pool])
    src = np.concatenate([np.arange(len(bg_ts)), np.full(len(rv_ts), -1)])   # background row or rival
    o = np.argsort(all_ts, kind="stable")
    all_ts, all_pool, src = all_ts[o], all_pool[o], src[o]
    tx_index = np.arange(len(all_ts), dtype=np.int64)
    bg_tx = np.empty(len(bg_ts), np.int64)
    bg_tx[src[src >= 0]] = tx_index[src >= 0]
    status = np.where(rng.random(len(all_ts)) < 0.04, "slippage", "applied")
    ra = rng.integers(10**9, 10**12, len(all_ts), dtype=np.uint64)
    rb = rng.integers(10**9, 10**12, len(all_ts), dtype=np.uint64)
    swaps = pd.DataFrame({
        "ts_ns": all_ts.astype(np.int64), "packet_index": tx_index, "tx_index": tx_index,
        "slot": np.full(len(all_ts), -1, np.int64), "instr_index": np.zeros(len(all_ts), np.int16),
        "pool": [_pool_name(p) for p in all_pool], "pool_row": all_pool.astype(np.int32),
        "program": "raydium_amm_v4", "a_to_b": rng.integers(0, 2, len(all_ts)).astype(np.int8),
        "exact_in": np.ones(len(all_ts), np.int8), "amount_in": rng.integers(1, 10**9, len(all_ts), dtype=np.uint64),
        "amount_out": rng.integers(1, 10**9, len(all_ts), dtype=np.uint64),
        "limit": np.zeros(len(all_ts), np.uint64), "reserve_a": ra, "reserve_b": rb, "status": status,
    })
    pq.write_table(pa.Table.from_pandas(swaps, preserve_index=False), out / "swaps.parquet")

    # features measured on the applied swaps of the first pool before the trigger
    t_ts, t_pool, t_tx = bg_ts[trig], bg_pool[trig], bg_tx[trig]
    app = status == "applied"
    counts = {}
    for w_ms in (10, 100, 1000):
        c = np.zeros(n)
        for p in range(n_pools):
            m = t_pool == p
            if not m.any():
                continue
            pts = all_ts[app & (all_pool == p)]
            hi = np.searchsorted(pts, t_ts[m], side="left")
            lo = np.searchsorted(pts, t_ts[m] - w_ms * 1_000_000, side="left")
            c[m] = np.minimum(hi - lo, 256)
        counts[w_ms] = c
    second = (t_pool + 1 + rng.integers(0, n_pools - 1, n)) % n_pools
    pools = [[_pool_name(a)] if k == 2 else [_pool_name(a), _pool_name(b)]
             for a, b, k in zip(t_pool, second, typ)]
    exp_lamports = np.rint(profit_sol * 1e9).astype(np.int64)
    nins = rng.integers(1, 12, n)
    opps = pd.DataFrame({
        "ts_ns": t_ts.astype(np.int64),
        "opportunity_id": [str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i)) for i in range(n)],
        "type": _TYPES[typ], "packet_index": t_tx, "tx_index": t_tx, "slot": np.full(n, -1, np.int64),
        "pools": pools,
        "victim_signature": np.where(typ == 1, [f"victim{i}" for i in range(n)], ""),
        "trigger_signature": [f"trigger{i}" for i in range(n)], "profit_mint": MINT_WSOL,
        "amount_in": rng.integers(10**6, 10**10, n, dtype=np.uint64), "amount_out": np.zeros(n, np.uint64),
        "profit_quote": exp_lamports + tip_lamports, "tip_lamports": np.full(n, tip_lamports, np.int64),
        "expected_profit_lamports": exp_lamports, "expected_profit_sol": exp_lamports / 1e9,
        "position_id": np.full(n, -1, np.int64), "detect_ns": rng.integers(2_000, 20_000, n),
        "score": np.full(n, np.nan),
        "f_expected_profit_sol": exp_lamports / 1e9,
        "f_pool_depth_sol": depth_sol[t_pool] * rng.lognormal(0, 0.05, n),
        "f_victim_slippage": np.where(typ == 1, rng.uniform(0.001, 0.05, n), 0.0),
        "f_victim_priority_fee_lamports": prio, "f_victim_tip_lamports": vtip,
        "f_pool_swaps_10ms": counts[10], "f_pool_swaps_100ms": counts[100], "f_pool_swaps_1000ms": counts[1000],
        "f_ms_since_slot_start": slot_ms, "f_tx_size": rng.integers(200, 1233, n).astype(np.float64),
        "f_num_instructions": nins.astype(np.float64),
        "f_program_count": np.minimum(nins, rng.integers(1, 7, n)).astype(np.float64),
        "f_type": (typ + 1).astype(np.float64),
    })
    opps["amount_out"] = (opps["amount_in"].to_numpy(np.uint64)
                          + opps["profit_quote"].to_numpy(np.int64).astype(np.uint64))
    pq.write_table(pa.Table.from_pandas(opps, preserve_index=False), out / "opportunities.parquet")
    return out
