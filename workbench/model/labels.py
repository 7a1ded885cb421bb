"""Latency-aware labels: would our bundle have won this opportunity? (issue #4 part 1)

An opportunity detected at event time ``t`` (``opportunities.parquet`` ``ts_ns``, the
capture timestamp of the trigger packet) is answered by a bundle that lands at

    land_ns = t + feed + decision + submission

where the three latencies are drawn from a ``LatencyModel`` (each a constant by default,
or a normal / lognormal distribution with a seed). The label rule (CONTRACT.md):

* **competitor**: the first LATER transaction of the capture (after the trigger in capture
  order, another ``tx_index``, and, when ``tx_features.parquet`` tells signatures, not the
  trigger or victim transaction seen again) with an ``applied`` swap on any of the
  opportunity's pools (``swaps.parquet``). Its capture time is ``competitor_ts_ns``.
* **landed_first** = no competitor, or ``land_ns < competitor_ts_ns`` (a tie is lost).
* **profit at landing**: when we land first, the pools at landing are in the detection
  state, so the profit is the engine's ``expected_profit_lamports``. When a competitor
  lands first, the profit of the same trade (same input) is recomputed with the exact
  AMM maths (``engine/market/constant_product.py``) on the pools' state at ``land_ns``: the snapshot reserves
  (``--market``) updated by every applied swap seen up to ``land_ns`` (``reserve_a`` /
  ``reserve_b`` after each ``swaps.parquet`` row). This needs the market snapshot (mints,
  fees) and constant-product pools; otherwise it is NaN.
* **fees**: our transactions' base fee plus priority fee (``fee_lamports_per_tx`` per
  transaction: one for an arbitrage or a liquidation, two for a sandwich).
* **won** (rule ``race``, the contract's) = landed_first AND profit_at_land > fees.
  Rule ``state`` drops the race: won = profit_at_land > fees wherever the profit at
  landing is known (a competitor's swap that leaves the arbitrage open does not beat us),
  falling back to ``race`` where it is not.

The latency model, the fees and the rule are stored with the labels (the parquet schema
metadata key ``workbench.labels``, JSON), so a label set always says how it was made.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..engine.market.amm_status import AMM_OK
from ..engine.market.constant_product import cp_amount_out
from ..engine.market.snapshot import read_snapshot_file
from ..wide import CEIL_PLAIN, CEIL_RAYDIUM
from ..engine.tables import read_tx_features
from ..errors import ModelError

OPPORTUNITIES_FILE = "opportunities.parquet"
SWAPS_FILE = "swaps.parquet"
TX_FEATURES_FILE = "tx_features.parquet"
LABELS_META_KEY = b"workbench.labels"
LABEL_RULES = ("race", "state")
BASE_FEE_LAMPORTS = 5_000            # Solana's fee per signature; one signature per transaction of ours
TXS_PER_BUNDLE = {"arbitrage": 1, "sandwich": 2, "liquidation": 1}   # our transactions per opportunity
CP_PROGRAMS = {"raydium_amm_v4": CEIL_RAYDIUM, "raydium_cpmm": CEIL_PLAIN}   # fee rounding per program

OPP_COLUMNS = ("ts_ns", "opportunity_id", "type", "packet_index", "tx_index", "pools", "victim_signature",
               "trigger_signature", "profit_mint", "amount_in", "amount_out", "profit_quote", "tip_lamports",
               "expected_profit_lamports")
SWAP_COLUMNS = ("ts_ns", "packet_index", "tx_index", "pool", "reserve_a", "reserve_b", "status")

_UNITS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def parse_duration_ns(text: str) -> float:
    """'250us' -> 250000.0; a bare number is nanoseconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ns|us|ms|s)?\s*", str(text))
    if not m:
        raise ValueError(f"{text!r}: expected a duration such as 500ns, 250us, 2ms, 0.1s")
    return float(m.group(1)) * _UNITS[m.group(2) or "ns"]


@dataclass(frozen=True)
class Dist:
    """One latency, in ns: ``constant`` (value_ns), ``normal`` (mean value_ns, std spread ns,
    clipped at 0) or ``lognormal`` (median value_ns, sigma = spread in log space)."""
    kind: str = "constant"
    value_ns: float = 0.0
    spread: float = 0.0

    def __post_init__(self):
        if self.kind not in ("constant", "normal", "lognormal"):
            raise ValueError(f"latency kind {self.kind!r}: use constant, normal or lognormal")
        if not (self.value_ns >= 0 and self.spread >= 0 and math.isfinite(self.value_ns)):
            raise ValueError(f"latency {self}: value and spread must be finite and >= 0")
        if self.kind == "lognormal" and self.value_ns <= 0:
            raise ValueError(f"latency {self}: a lognormal needs a median > 0")

    @classmethod
    def parse(cls, text: str) -> "Dist":
        """'2ms' | 'constant:2ms' | 'normal:2ms:300us' | 'lognormal:2ms:0.5' (sigma, log space)."""
        parts = str(text).split(":")
        if len(parts) == 1:
            return cls("constant", parse_duration_ns(parts[0]))
        kind = parts[0]
        if kind == "constant" and len(parts) == 2:
            return cls("constant", parse_duration_ns(parts[1]))
        if kind == "normal" and len(parts) == 3:
            return cls("normal", parse_duration_ns(parts[1]), parse_duration_ns(parts[2]))
        if kind == "lognormal" and len(parts) == 3:
            return cls("lognormal", parse_duration_ns(parts[1]), float(parts[2]))
        raise ValueError(f"{text!r}: expected DURATION, constant:D, normal:MEAN:STD or lognormal:MEDIAN:SIGMA")

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws, int64 ns >= 0."""
        if self.kind == "constant":
            v = np.full(n, self.value_ns)
        elif self.kind == "normal":
            v = np.clip(rng.normal(self.value_ns, self.spread, n), 0.0, None)
        else:
            v = rng.lognormal(math.log(self.value_ns), self.spread, n)
        return np.rint(v).astype(np.int64)


@dataclass(frozen=True)
class LatencyModel:
    """Feed + decision + submission latency; one seeded generator draws all three per opportunity."""
    feed: Dist = Dist("constant", 0.0)                 # capture vantage -> our feed
    decision: Dist = Dist("constant", 50_000.0)        # detection + scoring + bundle build: 50 us
    submission: Dist = Dist("constant", 2_000_000.0)   # bundle -> block engine -> leader: 2 ms
    seed: int = 0

    @classmethod
    def parse(cls, spec: str | None) -> "LatencyModel":
        """'feed=100us,decision=normal:50us:10us,submission=lognormal:2ms:0.5,seed=7' (any subset)."""
        if not spec:
            return cls()
        kw: dict = {}
        for item in spec.split(","):
            if not item.strip():
                continue
            key, _, val = item.partition("=")
            key = key.strip()
            if key == "seed":
                kw["seed"] = int(val)
            elif key in ("feed", "decision", "submission"):
                kw[key] = Dist.parse(val.strip())
            else:
                raise ValueError(f"latency {key!r}: expected feed=, decision=, submission= or seed=")
        return cls(**kw)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LatencyModel":
        return cls(**{k: Dist(**v) for k, v in d.items() if k != "seed"}, seed=int(d.get("seed", 0)))

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        return self.feed.sample(n, rng), self.decision.sample(n, rng), self.submission.sample(n, rng)


@dataclass(frozen=True)
class LabelConfig:
    latency: LatencyModel = field(default_factory=LatencyModel)
    fee_lamports_per_tx: int = BASE_FEE_LAMPORTS      # base fee + priority fee of each of our transactions
    rule: str = "race"

    def __post_init__(self):
        if self.rule not in LABEL_RULES:
            raise ValueError(f"label rule {self.rule!r}: use one of {LABEL_RULES}")

    def to_dict(self) -> dict:
        return {"latency": self.latency.to_dict(), "fee_lamports_per_tx": self.fee_lamports_per_tx,
                "rule": self.rule, "txs_per_bundle": TXS_PER_BUNDLE}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelConfig":
        return cls(LatencyModel.from_dict(d["latency"]), int(d["fee_lamports_per_tx"]), d["rule"])


# ============================================================================================
# reading a run folder
# ============================================================================================

def _read_table(path: Path, columns) -> pd.DataFrame:
    if not path.is_file():
        raise ModelError(path, "missing: replay the capture with a market snapshot (`workbench replay CAPTURE "
                               "--out DIR --market MKT`) to get opportunities and swaps")
    try:
        df = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as e:
        raise ModelError(path, f"not a readable parquet file ({e})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ModelError(path, f"columns {missing} missing (has {list(df.columns)})")
    return df


def read_run(run_dir) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, str] | None]:
    """(opportunities, swaps, tx_index -> signature or None) of a run folder."""
    d = Path(run_dir)
    opps = _read_table(d / OPPORTUNITIES_FILE, OPP_COLUMNS)
    swaps = _read_table(d / SWAPS_FILE, SWAP_COLUMNS)
    sigs = None
    txf = d / TX_FEATURES_FILE
    if txf.is_file():
        t = read_tx_features(txf, columns=["tx_index", "signature"]).to_pandas() \
            if {"tx_index", "signature"} <= set(pq.read_schema(txf).names) else None
        if t is not None:
            sigs = dict(zip(t["tx_index"].to_numpy(np.int64).tolist(), t["signature"].tolist()))
    return opps, swaps, sigs


def read_market_pools(market_dir) -> pd.DataFrame:
    """pools.parquet of a market snapshot, indexed by address (mints, reserves, fees, program)."""
    path = Path(market_dir) / "pools.parquet"
    cols = ("address", "program", "mint_a", "mint_b", "reserve_a", "reserve_b", "fee_num", "fee_den")
    read_snapshot_file(market_dir, "pools")         # the engine's column checks: MarketError names file, row, column
    return _read_table(path, cols).set_index("address")


# ============================================================================================
# the label rule
# ============================================================================================

def _capture_key(packet_index, tx_index, tx_span: int):
    """One int64 per row that orders (packet_index, tx_index) lexicographically."""
    return np.asarray(packet_index, np.int64) * tx_span + (np.asarray(tx_index, np.int64) + 1)


def _cp_trade(pools: list[str], start_mint: str, amount_in: int, reserves: dict, market: pd.DataFrame):
    """Output (start mint units) of ``amount_in`` through constant-product ``pools`` in order, or None."""
    cur, amt = start_mint, np.uint64(amount_in)
    for p in pools:
        if p not in market.index or p not in reserves:
            return None
        row = market.loc[p]
        kind = CP_PROGRAMS.get(row["program"])
        if kind is None:
            return None
        ra, rb = reserves[p]
        if cur == row["mint_a"]:
            rin, rout, nxt = ra, rb, row["mint_b"]
        elif cur == row["mint_b"]:
            rin, rout, nxt = rb, ra, row["mint_a"]
        else:
            return None
        st, out, _ = cp_amount_out(amt, np.uint64(rin), np.uint64(rout), np.uint64(row["fee_num"]),
                                   np.uint64(row["fee_den"]), kind)
        if st != AMM_OK:
            return 0
        cur, amt = nxt, np.uint64(out)         # numba hands back a Python int
    return int(amt) if cur == start_mint else None


def label_opportunities(opps: pd.DataFrame, swaps: pd.DataFrame, config: LabelConfig = LabelConfig(),
                        signatures: dict[int, str] | None = None, market: pd.DataFrame | None = None) -> pd.DataFrame:
    """``opps`` with the label columns added (see the module docstring)."""
    n = len(opps)
    out = opps.reset_index(drop=True).copy()
    feed, dec, sub = config.latency.sample(n)
    ts = out["ts_ns"].to_numpy(np.int64)
    land = ts + feed + dec + sub
    if len(swaps) == 0:
        swaps = pd.DataFrame({"ts_ns": np.zeros(0, np.int64), "packet_index": np.zeros(0, np.int64),
                              "tx_index": np.zeros(0, np.int64), "pool": np.zeros(0, object),
                              "reserve_a": np.zeros(0, np.uint64), "reserve_b": np.zeros(0, np.uint64),
                              "status": np.zeros(0, object)})
    applied = swaps[swaps["status"] == "applied"]
    tx_span = int(max(applied["tx_index"].max() if len(applied) else 0,
                      out["tx_index"].max() if n else 0)) + 2
    a_key = _capture_key(applied["packet_index"], applied["tx_index"], tx_span)
    order = np.argsort(a_key, kind="stable")
    a_key, a_ts = a_key[order], applied["ts_ns"].to_numpy(np.int64)[order]
    a_tx = applied["tx_index"].to_numpy(np.int64)[order]
    a_pool = applied["pool"].to_numpy(object)[order]
    a_ra = applied["reserve_a"].to_numpy(np.uint64)[order]
    a_rb = applied["reserve_b"].to_numpy(np.uint64)[order]
    by_pool: dict[str, np.ndarray] = {}
    for i, p in enumerate(a_pool):
        by_pool.setdefault(p, []).append(i)
    by_pool = {p: np.asarray(ix, np.int64) for p, ix in by_pool.items()}

    o_key = _capture_key(out["packet_index"], out["tx_index"], tx_span)
    comp_ts = np.full(n, -1, np.int64)
    comp_tx = np.full(n, -1, np.int64)
    profit_land = np.full(n, np.nan)
    exp_profit = out["expected_profit_lamports"].to_numpy(np.int64)
    for i in range(n):
        own_tx = int(out.at[i, "tx_index"])
        own_sigs = {s for s in (out.at[i, "trigger_signature"], out.at[i, "victim_signature"]) if s}
        best_ts, best_tx = -1, -1
        for p in out.at[i, "pools"]:
            ix = by_pool.get(p)
            if ix is None:
                continue
            j = int(np.searchsorted(a_key[ix], o_key[i], side="right"))
            while j < len(ix):
                r = ix[j]
                tx = int(a_tx[r])
                if tx != own_tx and not (signatures is not None and signatures.get(tx) in own_sigs):
                    if best_ts < 0 or a_ts[r] < best_ts:
                        best_ts, best_tx = int(a_ts[r]), tx
                    break
                j += 1
        comp_ts[i], comp_tx[i] = best_ts, best_tx
        if best_ts < 0 or land[i] < best_ts:
            profit_land[i] = float(exp_profit[i])          # the pools are as detected
        elif market is not None and out.at[i, "type"] == "arbitrage":
            profit_land[i] = _recompute_arbitrage(out.iloc[i], land[i], a_ts, a_ra, a_rb, by_pool, market)
    landed_first = (comp_ts < 0) | (land < comp_ts)
    ntx = out["type"].map(TXS_PER_BUNDLE).fillna(1).to_numpy(np.int64)
    fees = ntx * int(config.fee_lamports_per_tx)
    profitable = profit_land > fees                       # NaN compares False
    if config.rule == "race":
        won = landed_first & profitable
    else:
        won = np.where(np.isnan(profit_land), landed_first & profitable, profitable)
    out["latency_feed_ns"], out["latency_decision_ns"], out["latency_submission_ns"] = feed, dec, sub
    out["land_ns"] = land
    out["competitor_ts_ns"] = comp_ts
    out["competitor_tx_index"] = comp_tx
    out["landed_first"] = landed_first
    out["fees_lamports"] = fees
    out["profit_at_land_lamports"] = profit_land
    out["won"] = won.astype(np.int8)
    return out


def _recompute_arbitrage(opp, land_ns, a_ts, a_ra, a_rb, by_pool, market) -> float:
    """Profit (lamports after tip) of the same arbitrage on the pools' state at ``land_ns``; NaN if unknown."""
    reserves = {}
    for p in opp["pools"]:
        ix = by_pool.get(p, np.zeros(0, np.int64))
        seen = ix[a_ts[ix] <= land_ns] if len(ix) else ix     # every applied swap on p seen by landing
        if len(seen):
            r = seen[-1]
            reserves[p] = (int(a_ra[r]), int(a_rb[r]))
        elif p in market.index:
            reserves[p] = (int(market.at[p, "reserve_a"]), int(market.at[p, "reserve_b"]))
    amount_in = int(opp["amount_in"])
    got = _cp_trade(list(opp["pools"]), opp["profit_mint"], amount_in, reserves, market)
    pq_ = int(opp["profit_quote"])
    tip = int(opp["tip_lamports"])
    if got is None or pq_ <= 0:
        return float("nan")
    lamports_per_unit = (int(opp["expected_profit_lamports"]) + tip) / pq_   # the engine's own price
    return (got - amount_in) * lamports_per_unit - tip


def label_run(run_dir, config: LabelConfig = LabelConfig(), market_dir=None) -> pd.DataFrame:
    """Labelled opportunities of one run folder (``run_dir`` column added)."""
    opps, swaps, sigs = read_run(run_dir)
    market = read_market_pools(market_dir) if market_dir else None
    df = label_opportunities(opps, swaps, config, sigs, market)
    df.insert(0, "run_dir", str(run_dir))
    return df


def write_labels(df: pd.DataFrame, path, config: LabelConfig) -> Path:
    """Parquet with the label config in the schema metadata (``workbench.labels``)."""
    path = Path(path)
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[LABELS_META_KEY] = json.dumps(config.to_dict()).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def read_labels(path) -> tuple[pd.DataFrame, LabelConfig]:
    """A labels parquet and the config it was made with."""
    path = Path(path)
    t = pq.read_table(path)
    raw = (t.schema.metadata or {}).get(LABELS_META_KEY)
    if raw is None:
        raise ModelError(path, f"no {LABELS_META_KEY.decode()} metadata: not written by write_labels")
    return t.to_pandas(), LabelConfig.from_dict(json.loads(raw))
