"""A market for synthetic captures: tokens, Raydium AMM v4 pools with depth, lending
positions, and swap traffic kept consistent with them, with injected opportunities and
their ground truth (``generate_capture(..., market=True)``, ``workbench generate --market``).

The market (``MarketSpec``, from the seed)
-------------------------------------------
Tokens: WSOL and USDC (the real mints) and ten others with familiar symbols and decimals
but synthetic mints (``TOKENS``). Pools (``POOLS``; fee 25/10000, Raydium AMM v4):

* pools 0-15 are the generator's twins (``traffic.N_POOLS``): eight pairs of two pools of
  the same pair. WSOL/USDC, JUP/WSOL and JUP/USDC twins form three-pool cycles
  (JUP -> WSOL -> USDC -> JUP); BONK, WIF, RAY, PYTH (with WSOL) and JTO (with USDC) twins
  are in no cycle: price dislocations are injected there;
* single pools: mSOL/WSOL and JitoSOL/WSOL (the oracles of the lending collateral: oracle
  moves are injected there), POPCAT/WSOL and MEW/WSOL (isolated: loose-slippage victims are
  injected there, so a victim opens no arbitrage).

Depth is in USD per side (``POOLS``), reserves follow from the token prices and decimals.
Positions: LST collateral (mSOL, JitoSOL) against WSOL debt, healths spaced by
``POS_SPACING`` from ``POS_HEALTH0`` up, and WSOL collateral against USDC debt, health
1.02-1.15. Lookup tables: every table the templates use. Token accounts: every user
source / destination account of every swap template, with its mint.

Baseline traffic (``_walk``, numba, capture order)
--------------------------------------------------
Only good, non-duplicate transaction packets count (the engine rejects the others and
drops duplicates by first signature). Every Raydium swap is rewritten on the exact pool
state (``engine.amm.raydium_v4_amount_out/_in``): its size is a value in SOL, log-uniform
in [``VALUE_MIN``, ``VALUE_MAX``] lamports, capped at ``SIZE_CAP`` of the input reserve
(so no baseline swap is a profitable sandwich victim) and so that the pool's price stays
within ``BAND`` (log) of its reference (so twins and cycles stay inside the round-trip fees:
no arbitrage); a swap pushing the price away from its reference shrinks with the square of
the room left in the band (prices mean-revert), and one that cannot move the way it is drawn
without leaving the band fails its limit (min out above the output; the engine fails its
transaction). Limits are tight:
0.1-0.5 % from the exact amount. Two-swap arb-bot transactions demand a profit and fail.
A swap on a pool locked by an open injected opportunity fails too. The state update is the
programs': the whole amount in enters the input reserve, the output leaves the other.

Injected opportunities (``MarketSim``; rate ``opportunities`` per second)
-------------------------------------------------------------------------
* sandwich: a searcher-template exact-in swap on an isolated pool, 0.4-1.5 % of the input
  reserve (grown until the sandwich profit is at least ``MIN_PROFIT_LAMPORTS``), min out
  3-10 % below the exact output;
* arbitrage: an exact-limit swap moving the smaller pool of a twin pair by 1.2-4 %;
  the truth is the two-pool arbitrage with its twin;
* liquidation: an exact-limit sale of an LST into its oracle pool that takes the least
  healthy healthy position on it to ``LIQ_TARGET_HEALTH``; the pool's reference price
  follows (the market moved), so the position does not recover.
Each sandwich and arbitrage locks its pools (baseline swaps on them fail) until a closing
swap on the same pool restores the reference price: a competitor's back-run 1-50 ms later
with probability ``TAKEN_SHARE`` (``taken_by_competitor``), else organic flow 100-400 ms
later. Closing and injected swaps carry exact limits (no slack: no sandwich).

Competition (``competition``): ``"flat"`` (the default, the bundled captures) draws the
competitor independently of the opportunity, as above. ``"prize"`` makes rivals follow the
prize the way searchers do: an opportunity's attractiveness A in [0, 1] is the victim's
slippage for a sandwich (a loose victim is worth every bot's while) and the size of the
dislocation for an arbitrage; a competitor comes with probability ``PRIZE_TAKEN`` (0.15 at
A = 0 to 0.95 at A = 1) and its delay is log-uniform from 1 ms to 50 ms x 0.03**A (1.5 ms
at A = 1: faster than any bundle). Labels (model/labels.py) then depend on features the
engine measures beyond profit, which is what a model must learn (``workbench train``'s
profit-only baseline cannot). Both modes draw the same random numbers in the same order.

Ground truth (``<capture>.opportunities.truth.parquet``, ``OPP_TRUTH_SCHEMA``) is computed
by this module's own Python-integer twin of the contract's rules (``Detector``: sandwich by
bisection over exact amounts, arbitrage by ternary search on exact integer profit plus a
local scan, liquidation by the health formula), never by engine/detect.py. It runs on every
injected and closing packet; ``replay_truth`` runs it on every swap of a written capture
(tests: it must give the same rows, and none on a capture without injections).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import base58
import numpy as np
from numba import njit

from ..engine.amm import AMM_OK, raydium_v4_amount_in, raydium_v4_amount_out
from . import frame as F

MINT_WSOL = "So11111111111111111111111111111111111111112"
MINT_USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
FEE_NUM = 25                  # Raydium AMM v4 swap_fee_numerator
FEE_DEN = 10_000              # swap_fee_denominator
SOL_USD = 150.0               # reference USD price of SOL
LAMPORTS = 1_000_000_000

# (symbol, decimals, USD price); mints of all but WSOL and USDC are synthetic (from the seed)
TOKENS = (
    ("WSOL", 9, SOL_USD), ("USDC", 6, 1.0), ("JUP", 6, 0.9), ("BONK", 5, 0.00002), ("WIF", 6, 1.8),
    ("RAY", 6, 2.5), ("PYTH", 6, 0.35), ("JTO", 9, 2.8), ("mSOL", 9, 180.0), ("JitoSOL", 9, 175.0),
    ("POPCAT", 9, 0.6), ("MEW", 5, 0.004),
)
# (coin, pc, USD depth per side, role); pools 2k, 2k+1 (k < 8) are twins
POOLS = (
    ("WSOL", "USDC", 6.0e6, "cycle"), ("WSOL", "USDC", 2.5e6, "cycle"),
    ("JUP", "WSOL", 1.5e6, "cycle"), ("JUP", "WSOL", 0.6e6, "cycle"),
    ("JUP", "USDC", 1.0e6, "cycle"), ("JUP", "USDC", 0.4e6, "cycle"),
    ("BONK", "WSOL", 1.2e6, "twin"), ("BONK", "WSOL", 0.5e6, "twin"),
    ("WIF", "WSOL", 1.0e6, "twin"), ("WIF", "WSOL", 0.4e6, "twin"),
    ("RAY", "WSOL", 0.8e6, "twin"), ("RAY", "WSOL", 0.3e6, "twin"),
    ("PYTH", "WSOL", 0.6e6, "twin"), ("PYTH", "WSOL", 0.25e6, "twin"),
    ("JTO", "USDC", 0.5e6, "twin"), ("JTO", "USDC", 0.2e6, "twin"),
    ("mSOL", "WSOL", 3.0e6, "oracle"), ("JitoSOL", "WSOL", 2.5e6, "oracle"),
    ("POPCAT", "WSOL", 0.4e6, "victim"), ("MEW", "WSOL", 0.3e6, "victim"),
)
LST = ("mSOL", "JitoSOL")     # lending collateral with WSOL debt

# --- baseline walk -------------------------------------------------------------------------------
BAND = 0.002                  # |ln(price / reference)| kept below this by baseline swaps
SIZE_CAP = 0.0005             # baseline swap input <= this share of the input reserve
VALUE_MIN = 2e6               # lamports: smallest baseline swap value
VALUE_MAX = 2e10              # lamports: largest (before the caps)
SLIP_MIN = 0.001              # baseline limit slack, share of the exact amount
SLIP_MAX = 0.005
MIN_CAP = 1.0                 # base units: a band cap below this fails the swap instead
ARB_DEMAND = 0.003            # an arb bot's last swap asks this much more than it can get

# --- positions -----------------------------------------------------------------------------------
POS_PER_LST = 30              # positions on each LST collateral
POS_HEALTH0 = 1.012           # health of the least healthy at the start
POS_SPACING = 1.012           # health ratio between consecutive positions of one collateral
LIQ_TARGET_HEALTH = 0.994     # an oracle move takes the target position to this health
POS_SOL_USDC = 20             # WSOL-collateral, USDC-debt positions (health 1.02-1.15, never crossing)

# --- injections ----------------------------------------------------------------------------------
DEFAULT_OPPORTUNITIES_PER_S = 5.0
TYPE_SHARES = (("sandwich", 0.4), ("arbitrage", 0.4), ("liquidation", 0.2))
TAKEN_SHARE = 0.5             # share of sandwiches / arbitrages a competitor closes within 1-50 ms
COMPETITOR_MS = (1.0, 50.0)   # log-uniform delay of a competitor's back-run
ORGANIC_MS = (100.0, 400.0)   # uniform delay of the organic closing swap when no competitor came
COMPETITION = ("flat", "prize")
PRIZE_TAKEN = (0.15, 0.95)    # "prize": competitor probability at attractiveness 0 and 1
PRIZE_FAST = 0.03             # "prize": the competitor delay's upper bound is COMPETITOR_MS[1] * PRIZE_FAST**A
VICTIM_FRAC = (0.004, 0.015)  # victim input, share of the input reserve
VICTIM_SLIP = (0.03, 0.10)    # victim min out below the exact output
DISLOCATION = (0.012, 0.04)   # price move of a dislocation
DEFAULT_TIP_LAMPORTS = 10_000
MIN_PROFIT_LAMPORTS = 1_000_000   # injected sandwiches / arbitrages are worth at least this (100 tips)

ROLE_NONE, ROLE_TRIGGER, ROLE_CLOSER = 0, 1, 2
OPP_TRUTH_SUFFIX = ".opportunities.truth.parquet"
MARKET_SUFFIX = ".market"


def opportunities_truth_path(capture) -> Path:
    p = Path(capture)
    return p.with_name(p.name + OPP_TRUTH_SUFFIX)


def market_path(capture) -> Path:
    p = Path(capture)
    return p.with_name(p.name + MARKET_SUFFIX)


def opp_truth_schema():
    """The opportunities ground truth, one row per opportunity the rules find.

    type                   string   'sandwich' | 'arbitrage' | 'liquidation'
    packet_index           int64    the trigger packet (the victim; the swap after which it exists)
    ts_ns                  int64    its capture timestamp
    trigger_signature      string   base58 first signature of the trigger transaction
    pools                  list<string>  pool addresses in trade order (sandwich, liquidation: one)
    profit_mint            string   mint profit_quote counts in
    profit_quote           int64    gross profit in profit_mint base units, before the tip
    amount_in              uint64   front-run / arbitrage input / liquidation repay
    amount_out             uint64   back-run output / arbitrage output / seized collateral
    expected_profit_sol    float64  profit_quote * price_sol(profit_mint) - tip, in SOL
    position_id            int64    liquidation: the position; -1 otherwise
    primary                bool     the opportunity injected at this packet (False: one it also opened)
    injection              int32    index of the injection (-1 none)
    taken_by_competitor    bool     a competitor's back-run closed it within 1-50 ms
    competitor_packet_index int64   that back-run's packet, -1
    """
    import pyarrow as pa
    return pa.schema([
        ("type", pa.string()), ("packet_index", pa.int64()), ("ts_ns", pa.int64()),
        ("trigger_signature", pa.string()), ("pools", pa.list_(pa.string())), ("profit_mint", pa.string()),
        ("profit_quote", pa.int64()),
        ("amount_in", pa.uint64()), ("amount_out", pa.uint64()), ("expected_profit_sol", pa.float64()),
        ("position_id", pa.int64()), ("primary", pa.bool_()), ("injection", pa.int32()),
        ("taken_by_competitor", pa.bool_()), ("competitor_packet_index", pa.int64()),
    ])


# ============================================================================================
# the market
# ============================================================================================

@dataclass
class PoolSpec:
    coin: str                 # mint a (base58)
    pc: str                   # mint b
    price: float              # pc base units per coin base unit (reference)
    reserve_a: int
    reserve_b: int
    role: str


@dataclass
class MarketSpec:
    """Tokens, pools and positions of a seed (no addresses of pools: those come with the templates)."""
    mints: list               # base58, TOKENS order
    symbols: list
    decimals: list
    usd: list
    pools: list               # PoolSpec, POOLS order
    positions: list = field(default_factory=list)   # (id, owner, coll token, coll amount, debt token, debt amount,
                                                    #  threshold, bonus)

    def token(self, symbol: str) -> int:
        return self.symbols.index(symbol)


def build_market(rng: np.random.Generator) -> MarketSpec:
    """The market of a seed (``rng`` is the market's own stream)."""
    mints, symbols, decs, usd = [], [], [], []
    for sym, dec, price in TOKENS:
        raw = rng.bytes(32)
        mints.append(MINT_WSOL if sym == "WSOL" else MINT_USDC if sym == "USDC" else base58.b58encode(raw).decode())
        symbols.append(sym)
        decs.append(dec)
        usd.append(price)
    pools = []
    for coin, pc, depth, role in POOLS:
        a, b = symbols.index(coin), symbols.index(pc)
        ra = int(depth / usd[a] * 10 ** decs[a])
        rb = int(depth / usd[b] * 10 ** decs[b])
        pools.append(PoolSpec(mints[a], mints[b], rb / ra, ra, rb, role))
    spec = MarketSpec(mints, symbols, decs, usd, pools)
    # positions: the LST ones spaced in health (WSOL debt: health moves with the LST price only)
    pid = 1
    wsol, usdc = spec.token("WSOL"), spec.token("USDC")
    for sym in LST:
        t = spec.token(sym)
        p = next(i for i, q in enumerate(pools) if q.coin == mints[t])
        price = pools[p].reserve_b / pools[p].reserve_a              # lamports per base unit
        for j in range(POS_PER_LST):
            h = POS_HEALTH0 * POS_SPACING ** j
            thr = float(rng.choice([0.75, 0.8, 0.85]))
            bonus = float(rng.choice([0.05, 0.075, 0.1]))
            coll = int(math.exp(rng.uniform(math.log(20e9), math.log(3000e9))) / price)
            debt = int(coll * price * thr / h)
            spec.positions.append((pid, base58.b58encode(rng.bytes(32)).decode(), t, coll, wsol, debt, thr, bonus))
            pid += 1
    usdc_price = pools[0].reserve_a / pools[0].reserve_b                # lamports per USDC base unit
    for _ in range(POS_SOL_USDC):
        h = float(rng.uniform(1.02, 1.15))
        thr = float(rng.choice([0.75, 0.8]))
        coll = int(math.exp(rng.uniform(math.log(10e9), math.log(5000e9))))
        debt = int(coll * thr / (h * usdc_price))
        spec.positions.append((pid, base58.b58encode(rng.bytes(32)).decode(), wsol, coll, usdc, debt, thr, 0.05))
        pid += 1
    return spec


# ============================================================================================
# Python-integer twin of the contract's rules (independent of engine/detect.py)
# ============================================================================================

def ray_ceil(a: int, b: int) -> int:
    """Raydium CheckedCeilDiv: a zero quotient rounds half up, else the ceiling."""
    q, r = divmod(a, b)
    if q == 0:
        return 1 if 2 * a >= b else 0
    return q + (1 if r else 0)


def ray_out(amount_in: int, r_in: int, r_out: int, num: int = FEE_NUM, den: int = FEE_DEN) -> int:
    """SwapBaseIn output (0 when the program would fail)."""
    if amount_in <= 0 or amount_in >= 1 << 64:
        return 0
    net = amount_in - ray_ceil(amount_in * num, den)
    out = r_out * net // (r_in + net) if r_in + net else 0
    if out >= r_out:
        return 0
    return out


def ray_in(amount_out: int, r_in: int, r_out: int, num: int = FEE_NUM, den: int = FEE_DEN) -> int:
    """SwapBaseOut input (0 when the program would fail)."""
    if amount_out <= 0 or amount_out >= r_out:
        return 0
    before = ray_ceil(r_in * amount_out, r_out - amount_out)
    a = ray_ceil(before * den, den - num)
    return a if 0 < a < 1 << 64 else 0


@dataclass
class Opp:
    type: str
    pools: list               # pool rows, trade order
    profit_mint: int          # token row
    profit_quote: int
    amount_in: int
    amount_out: int
    profit_sol: float         # after the tip
    position_id: int = -1


class Detector:
    """The contract's detection rules on Python integers, over a mutable pool state.

    ``res`` is a list of [reserve_a, reserve_b] (Python ints); ``mint`` the token rows of
    each pool; ``wsol``, ``usdc`` token rows. Positions: (id, coll token, coll amount, debt
    token, debt amount, threshold, bonus).
    """

    def __init__(self, res, mint, n_tokens, wsol, usdc, positions, tip):
        self.res = [list(map(int, r)) for r in res]
        self.mint = [tuple(map(int, m)) for m in mint]
        self.wsol, self.usdc, self.tip = wsol, usdc, float(tip)
        P = len(self.res)
        best = {}
        for p in range(P):
            a, b = self.mint[p]
            if wsol in (a, b):
                other, r = (b, self.res[p][0]) if a == wsol else (a, self.res[p][1])
                if other not in best or r > best[other][0]:
                    best[other] = (r, p)
        self.oracle = {t: p for t, (_, p) in best.items()}
        pair = {}
        for p in range(P):
            pair.setdefault(tuple(sorted(self.mint[p])), []).append(p)
        self.sibs = [[q for q in pair[tuple(sorted(self.mint[p]))] if q != p] for p in range(P)]
        self.cycles = [[] for _ in range(P)]    # (u, v, w, start): start -> u -> v -> w -> start
        for p in range(P):
            a, b = self.mint[p]
            for q in range(P):
                if q == p or b not in self.mint[q]:
                    continue
                c = self.mint[q][1] if self.mint[q][0] == b else self.mint[q][0]
                if c in (a, b):
                    continue
                for r in range(P):
                    if r in (p, q) or set(self.mint[r]) != {a, c}:
                        continue
                    toks = {a, b, c}
                    start = wsol if wsol in toks else usdc if usdc in toks else b
                    self.cycles[p].append((p, q, r, start))
        self.positions = list(positions)
        self.healthy = [self.health(j) >= 1.0 for j in range(len(self.positions))]

    # --- prices ---
    def price(self, t) -> float:
        if t == self.wsol:
            return 1.0
        p = self.oracle.get(t)
        if p is None:
            return math.nan
        a, b = self.res[p]
        return b / a if self.mint[p][0] == t else a / b

    def health(self, j) -> float:
        _, tc, ca, td, da, thr, _ = self.positions[j]
        return (float(ca) * self.price(tc) * thr) / (float(da) * self.price(td))

    def side(self, p, t) -> int:
        return 0 if self.mint[p][0] == t else 1

    # --- swaps ---
    def result(self, p, a_to_b, exact_in, amount, limit):
        """(ok, amount_in, amount_out) of a swap on the current state."""
        i = 0 if a_to_b else 1
        x, y = self.res[p][i], self.res[p][1 - i]
        if exact_in:
            out = ray_out(amount, x, y)
            return (out > 0 and out >= limit), amount, out
        a = ray_in(amount, x, y)
        return (a > 0 and a <= limit), a, amount

    def apply(self, p, a_to_b, a_in, a_out):
        i = 0 if a_to_b else 1
        self.res[p][i] += a_in
        self.res[p][1 - i] -= a_out

    # --- sandwich (before the victim) ---
    def sandwich(self, p, a_to_b, exact_in, amount, limit):
        i = 0 if a_to_b else 1
        x, y = self.res[p][i], self.res[p][1 - i]
        t_in = self.mint[p][i]
        pin = self.price(t_in)
        if not pin > 0:
            return []

        def ok(f):
            of = ray_out(f, x, y)
            if of == 0:
                return False
            x1, y1 = x + f, y - of
            if exact_in:
                ov = ray_out(amount, x1, y1)
                return ov > 0 and ov >= limit
            a = ray_in(amount, x1, y1)
            return a > 0 and a <= limit

        # the least front-run with an output, then the largest the victim survives (monotone)
        lo, hi = 1, max(2, x)
        if ray_out(lo, x, y) == 0:
            a, b = 1, x
            while b - a > 1:
                m = (a + b) // 2
                if ray_out(m, x, y) > 0:
                    b = m
                else:
                    a = m
            lo = b
        if not ok(lo):
            return []
        while ok(hi):
            hi *= 2
        while hi - lo > 1:
            m = (lo + hi) // 2
            if ok(m):
                lo = m
            else:
                hi = m
        f = lo
        of = ray_out(f, x, y)
        x1, y1 = x + f, y - of
        if exact_in:
            ov, va = ray_out(amount, x1, y1), amount
        else:
            ov, va = amount, ray_in(amount, x1, y1)
        back = ray_out(of, y1 - ov, x1 + va)
        profit = back - f
        if float(profit) * pin <= self.tip:
            return []
        return [Opp("sandwich", [p], t_in, profit, f, back, (profit * pin - self.tip) / LAMPORTS)]

    # --- arbitrage (after a swap on p) ---
    def route_out(self, route, start, amount):
        t = start
        a = amount
        for p in route:
            s = self.side(p, t)
            a = ray_out(a, self.res[p][s], self.res[p][1 - s])
            if a == 0:
                return 0
            t = self.mint[p][1 - s]
        return a

    def best_route(self, route, start):
        """(profit, amount_in, amount_out): the best exact integer input of a cycle from ``start``,
        by ternary search on the exact profit and a scan around its end; (0, 0, 0) if none."""
        # the no-fee marginal rate at 0 bounds every input's rate: <= 1 means no profit at all
        t, rate = start, 1.0
        for p in route:
            s = self.side(p, t)
            rate *= self.res[p][1 - s] / self.res[p][s]
            t = self.mint[p][1 - s]
        if rate <= 1.0:
            return 0, 0, 0
        s0 = self.side(route[0], start)
        lo, hi = 1, self.res[route[0]][s0]

        def prof(d):
            return self.route_out(route, start, d) - d

        while hi - lo > 64:
            m1 = lo + (hi - lo) // 3
            m2 = hi - (hi - lo) // 3
            if prof(m1) < prof(m2):
                lo = m1 + 1
            else:
                hi = m2
        best = (0, 0, 0)
        for d in range(max(1, lo - 64), hi + 65):
            back = self.route_out(route, start, d)
            if back - d > best[0]:
                best = (back - d, d, back)
        return best

    def arbitrage(self, p):
        opps = []
        a, b = self.mint[p]
        X = self.wsol if self.wsol in (a, b) else self.usdc if self.usdc in (a, b) else b
        px = self.price(X)
        for q in self.sibs[p]:
            if not px > 0:
                break
            best, order = (0, 0, 0), None
            for route in ([p, q], [q, p]):
                r = self.best_route(route, X)
                if r[0] > best[0]:
                    best, order = r, route
            if order is not None and float(best[0]) * px > self.tip:
                opps.append(Opp("arbitrage", order, X, best[0], best[1], best[2], (best[0] * px - self.tip) / LAMPORTS))
        for (p0, q, r, start) in self.cycles[p]:
            pxs = self.price(start)
            if not pxs > 0:
                continue
            holders = [k for k in (p0, q, r) if start in self.mint[k]]
            v = next(k for k in (p0, q, r) if start not in self.mint[k])
            u, w = holders
            best, order = (0, 0, 0), None
            for route in ([u, v, w], [w, v, u]):
                res = self.best_route(route, start)
                if res[0] > best[0]:
                    best, order = res, route
            if order is not None and float(best[0]) * pxs > self.tip:
                opps.append(Opp("arbitrage", order, start, best[0], best[1], best[2],
                                (best[0] * pxs - self.tip) / LAMPORTS))
        return opps

    # --- liquidation (after a swap on p) ---
    def liquidations(self, p):
        opps = []
        for t in self.mint[p]:
            if self.oracle.get(t) != p:
                continue
            for j, (pid, tc, ca, td, da, thr, bonus) in enumerate(self.positions):
                if t not in (tc, td):
                    continue
                h = self.health(j)
                if h != h:
                    continue
                if h >= 1.0:
                    self.healthy[j] = True
                    continue
                if not self.healthy[j]:
                    continue
                self.healthy[j] = False
                pc, pd = self.price(tc), self.price(td)
                repay = da // 2
                value = float(repay) * pd * (1.0 + bonus)
                cap = float(ca) * pc
                value = min(value, cap)
                seized = int(value / pc)
                profit = int(value / pd - float(repay))
                if float(profit) * pd <= self.tip:
                    continue
                opps.append(Opp("liquidation", [p], td, profit, repay, seized, (profit * pd - self.tip) / LAMPORTS,
                                pid))
        return opps

    def after(self, p):
        return self.arbitrage(p) + self.liquidations(p)

    def transaction(self, swaps):
        """Apply one transaction's swaps [(pool, a_to_b, exact_in, amount, limit)] atomically, with
        the detectors. Returns (applied, [(swap index, Opp)])."""
        saved = {p: list(self.res[p]) for p, *_ in swaps}
        for p, d, e, amount, limit in swaps:
            ok, a_in, a_out = self.result(p, d, e, amount, limit)
            if not ok:
                for q, r in saved.items():
                    self.res[q] = r
                return False, []
            self.apply(p, d, a_in, a_out)
        for q, r in saved.items():
            self.res[q] = r
        found = []
        for k, (p, d, e, amount, limit) in enumerate(swaps):
            found += [(k, o) for o in self.sandwich(p, d, e, amount, limit)]
            _, a_in, a_out = self.result(p, d, e, amount, limit)
            self.apply(p, d, a_in, a_out)
            found += [(k, o) for o in self.after(p)]
        return True, found


# ============================================================================================
# the baseline walk (numba)
# ============================================================================================

U64_MASK = (1 << 64) - 1


@njit(cache=True, nogil=True, inline="always")
def _put_u64(b, i, v):
    for k in range(8):
        b[i + k] = (v >> np.uint64(8 * k)) & np.uint64(0xFF)


@njit(cache=True, nogil=True, inline="always")
def _cap_in(res, ref, p, i_in, band, size_cap):
    """Largest input (float, base units) keeping pool p's price within the band and the size cap."""
    x = np.float64(res[p, i_in])
    kf = np.float64(res[p, 0]) * np.float64(res[p, 1])
    if i_in == 0:                       # a in: price (b per a) falls
        lim = np.sqrt(kf / (ref[p] * np.exp(-band))) - x
    else:                               # b in: price rises
        lim = np.sqrt(kf * ref[p] * np.exp(band)) - x
    cap = size_cap * x
    return lim if lim < cap else cap


@njit(cache=True, nogil=True)
def _walk(i0, i1, kinds, tidx, role, stage, stage_off, u, sw_first, sw_cnt, sw_pool, sw_a2b, sw_base_out,
          sw_doff, sw_wrap, res, fee, ref, lock, pool_tok, tok_price, params, counts):
    """Rewrite the swaps of packets [i0, i1) on the pool state, in capture order.

    Stops at the first packet with a role (an injected or closing swap, handled in Python)
    and returns its index (i1 when none). ``params``: band, size cap, value min, value
    max, slip min, slip max, min cap, arb demand. ``counts``: applied, failed (band or
    lock), arb-bot transactions failed.
    """
    band, size_cap, vmin, vmax, smin, smax, min_cap, demand = (params[0], params[1], params[2], params[3],
                                                               params[4], params[5], params[6], params[7])
    for i in range(i0, i1):
        k = kinds[i]
        if k != F.KIND_TRANSACTION and k != F.KIND_VLAN_TRANSACTION:
            continue
        if role[i] != ROLE_NONE:
            return i
        t = tidx[i]
        if t < 0:
            continue
        n = sw_cnt[t]
        if n == 0:
            continue
        base = stage_off[i]
        if n == 1:
            s = sw_first[t]
            p = sw_pool[s]
            i_in = 0 if sw_a2b[s] == 1 else 1
            x = res[p, i_in]
            y = res[p, 1 - i_in]
            value = np.exp(np.log(vmin) + u[i, 0] * (np.log(vmax) - np.log(vmin)))
            want = value / tok_price[pool_tok[p, i_in]]
            # mean reversion: a swap pushing the price further from its reference shrinks with
            # the square of the room left in the band
            dev = np.log(np.float64(res[p, 1]) / np.float64(res[p, 0]) / ref[p])
            if (i_in == 0 and dev < 0.0) or (i_in == 1 and dev > 0.0):
                room = 1.0 - abs(dev) / band
                want *= room * room if room > 0.0 else 0.0
            cap = _cap_in(res, ref, p, i_in, band, size_cap)
            fail = lock[p] != 0 or cap < min_cap
            amt = want if fail or want < cap else cap
            if fail and amt > size_cap * np.float64(x):
                amt = size_cap * np.float64(x)
            a_in = np.uint64(amt) if amt >= 1.0 else np.uint64(1)
            st, out, _ = raydium_v4_amount_out(a_in, x, y, fee[p, 0], fee[p, 1])
            if st != AMM_OK:
                fail = True
                out = np.uint64(0)
            slip = smin + u[i, 1] * (smax - smin)
            d = base + sw_doff[s]
            if sw_base_out[s] == 0:
                if fail:
                    lim = out + np.uint64(1) + np.uint64(np.float64(out) * 0.002)
                else:
                    lim = out - np.uint64(np.float64(out) * slip)
                _put_u64(stage, d + 1, a_in)
                _put_u64(stage, d + 9, lim)
                if sw_wrap[s] >= 0:
                    _put_u64(stage, base + sw_wrap[s], a_in)
                if not fail:
                    res[p, i_in] += a_in
                    res[p, 1 - i_in] -= out
            else:
                if out == np.uint64(0):
                    out = np.uint64(1)
                st2, req, _ = raydium_v4_amount_in(out, x, y, fee[p, 0], fee[p, 1])
                if st2 != AMM_OK:
                    fail = True
                if fail:
                    cut = np.uint64(1) + np.uint64(np.float64(req) * 0.002)
                    mx = req - cut if req > cut else np.uint64(0)
                else:
                    mx = req + np.uint64(np.float64(req) * slip)
                _put_u64(stage, d + 1, mx)
                _put_u64(stage, d + 9, out)
                if sw_wrap[s] >= 0:
                    _put_u64(stage, base + sw_wrap[s], mx)
                if not fail:
                    res[p, i_in] += req
                    res[p, 1 - i_in] -= out
            if fail:
                counts[1] += 1
            else:
                counts[0] += 1
        else:
            # an arb bot: swap j's input is swap j-1's minimum out; the last demands a profit it
            # cannot get (no arbitrage in the baseline), so the transaction fails
            first_in = np.uint64(0)
            prev_min = np.uint64(0)
            for j in range(n):
                s = sw_first[t] + j
                p = sw_pool[s]
                i_in = 0 if sw_a2b[s] == 1 else 1
                x = res[p, i_in]
                y = res[p, 1 - i_in]
                if j == 0:
                    value = np.exp(np.log(vmin) + u[i, 0] * (np.log(vmax) - np.log(vmin)))
                    amt = value / tok_price[pool_tok[p, i_in]]
                    if amt > size_cap * np.float64(x):
                        amt = size_cap * np.float64(x)
                    a_in = np.uint64(amt) if amt >= 1.0 else np.uint64(1)
                    first_in = a_in
                else:
                    a_in = prev_min if prev_min > np.uint64(0) else np.uint64(1)
                st, out, _ = raydium_v4_amount_out(a_in, x, y, fee[p, 0], fee[p, 1])
                if st != AMM_OK:
                    out = np.uint64(0)
                d = base + sw_doff[s]
                if j < n - 1:
                    lim = out - np.uint64(np.float64(out) * (smin + u[i, 1] * (smax - smin)))
                else:
                    lim = out + np.uint64(1) + np.uint64(np.float64(out) * demand)
                    if lim <= first_in:
                        lim = first_in + np.uint64(1)
                _put_u64(stage, d + 1, a_in)
                _put_u64(stage, d + 9, lim)
                prev_min = lim
            counts[2] += 1
    return i1


# ============================================================================================
# the market simulation: schedule, walk, injections, truth, snapshot
# ============================================================================================

@dataclass
class Injection:
    type: str
    pool: int                 # the pool of the trigger swap
    a_to_b: bool              # its direction
    trigger: int              # packet index
    closer: int = -1          # closing swap's packet (-1 none)
    taken: bool = False       # the closer is a competitor's back-run within 1-50 ms
    lockset: tuple = ()
    frac: float = 0.0         # victim size, share of the input reserve
    slip: float = 0.0         # victim slippage
    gap: float = 0.0          # dislocation price move
    lst: int = -1             # liquidation: token row of the collateral


def competitor(competition: str, typ: str, u_taken: float, u_delay: float, slip: float, gap: float):
    """(taken by a competitor, closing delay in ms) of one injection from two uniform draws.
    ``u_delay`` maps exactly as ``rng.uniform`` would (low + (high - low) * u)."""
    if competition == "flat":
        taken, hi = u_taken < TAKEN_SHARE, COMPETITOR_MS[1]
    else:
        lo_hi = VICTIM_SLIP if typ == "sandwich" else DISLOCATION
        a = (slip if typ == "sandwich" else gap) - lo_hi[0]
        a = min(1.0, max(0.0, a / (lo_hi[1] - lo_hi[0])))
        taken = u_taken < PRIZE_TAKEN[0] + (PRIZE_TAKEN[1] - PRIZE_TAKEN[0]) * a
        hi = COMPETITOR_MS[1] * PRIZE_FAST ** a
    if taken:
        lo, top = math.log(COMPETITOR_MS[0]), math.log(hi)
        return True, math.exp(lo + (top - lo) * u_delay)
    return False, ORGANIC_MS[0] + (ORGANIC_MS[1] - ORGANIC_MS[0]) * u_delay


class MarketSim:
    """The per-capture market state: the numba walk's arrays, the Python truth detector,
    the injection schedule and the truth rows."""

    def __init__(self, spec: MarketSpec, tmpl, ts: np.ndarray, kinds: np.ndarray, start_ns: int, seconds: float,
                 rng: np.random.Generator, rate: float, tip: int = DEFAULT_TIP_LAMPORTS,
                 competition: str = "flat"):
        if competition not in COMPETITION:
            raise ValueError(f"competition={competition!r}: one of {COMPETITION}")
        self.spec, self.tmpl, self.tip, self.competition = spec, tmpl, int(tip), competition
        P = len(spec.pools)
        self.P = P
        tok = {m: i for i, m in enumerate(spec.mints)}
        self.pool_tok = np.array([(tok[p.coin], tok[p.pc]) for p in spec.pools], np.int64)
        self.res = np.array([(p.reserve_a, p.reserve_b) for p in spec.pools], np.uint64)
        self.fee = np.tile(np.array([FEE_NUM, FEE_DEN], np.uint64), (P, 1))
        self.ref = np.array([p.price for p in spec.pools], np.float64)
        self.lock = np.zeros(P, np.int32)
        wsol, usdc = spec.token("WSOL"), spec.token("USDC")
        self.tok_price = np.array([spec.usd[t] / SOL_USD * 10.0 ** (9 - spec.decimals[t])
                                   for t in range(len(spec.mints))], np.float64)
        self.params = np.array([BAND, SIZE_CAP, VALUE_MIN, VALUE_MAX, SLIP_MIN, SLIP_MAX, MIN_CAP, ARB_DEMAND],
                               np.float64)
        self.counts = np.zeros(3, np.int64)
        positions = [(pid, tc, ca, td, da, thr, b) for pid, _, tc, ca, td, da, thr, b in spec.positions]
        self.det = Detector(self.res.tolist(), self.pool_tok.tolist(), len(spec.mints), wsol, usdc, positions, tip)
        # swap metadata as arrays
        first, cnt, pool, a2b, bout, doff, wrap = [], [], [], [], [], [], []
        for sw in tmpl.swaps:
            first.append(len(pool))
            cnt.append(len(sw))
            for m in sw:
                pool.append(m.pool)
                a2b.append(1 if m.coin_to_pc else 0)
                bout.append(1 if m.base_out else 0)
                doff.append(m.data_off)
                wrap.append(m.wrap_off)
            if len(sw) > 1 and any(m.base_out for m in sw):
                raise RuntimeError("synth market: a multi-swap template with an exact-out swap (not an arb bot)")
        self.sw_first = np.array(first, np.int64)
        self.sw_cnt = np.array(cnt, np.int64)
        self.sw_pool = np.array(pool, np.int64)
        self.sw_a2b = np.array(a2b, np.int8)
        self.sw_base_out = np.array(bout, np.int8)
        self.sw_doff = np.array(doff, np.int64)
        self.sw_wrap = np.array(wrap, np.int64)
        self.rows: list[dict] = []
        self.injections: list[Injection] = []
        self._schedule(ts, kinds, start_ns, seconds, rng, rate)

    # --- schedule ---------------------------------------------------------------------------
    def lockset(self, p) -> tuple:
        s = {p, *self.det.sibs[p]}
        for c in self.det.cycles[p]:
            s.update(c[:3])
        return tuple(sorted(s))

    def _schedule(self, ts, kinds, start_ns, seconds, rng, rate):
        n = ts.shape[0]
        self.role = np.zeros(n, np.int8)
        self.role_inj = np.full(n, -1, np.int32)
        self.role_tmpl = np.full(n, -1, np.int64)
        if rate <= 0 or n == 0:
            return
        free = (kinds == F.KIND_TRANSACTION) | (kinds == F.KIND_VLAN_TRANSACTION)
        busy = np.full(self.P, -1, np.int64)          # locked up to this packet index
        roles = [p.role for p in self.spec.pools]
        victims = [p for p in range(self.P) if roles[p] == "victim"]
        pairs = [(2 * k + 1, 2 * k) for k in range(self.P // 2) if 2 * k + 1 < self.P
                 and roles[2 * k] == "twin" and roles[2 * k + 1] == "twin"
                 and self.spec.pools[2 * k].coin == self.spec.pools[2 * k + 1].coin]
        lst_pool = {}
        for sym in LST:
            t = self.spec.token(sym)
            lst_pool[t] = next(p for p in range(self.P) if roles[p] == "oracle" and self.pool_tok[p, 0] == t)
        liq_left = {t: POS_PER_LST - 2 for t in lst_pool}
        names = [t for t, _ in TYPE_SHARES]
        shares = np.array([s for _, s in TYPE_SHARES])
        t_s = 0.0
        free_idx = np.flatnonzero(free)

        def next_free(i):
            j = np.searchsorted(free_idx, i)
            while j < free_idx.shape[0] and not free[free_idx[j]]:
                j += 1
            return int(free_idx[j]) if j < free_idx.shape[0] else -1

        while True:
            t_s += float(rng.exponential(1.0 / rate))
            if t_s >= seconds:
                break
            typ = names[int(rng.choice(len(names), p=shares / shares.sum()))]
            d = bool(rng.random() < 0.5)
            u_taken, u_delay = float(rng.random()), float(rng.random())
            pick = int(rng.integers(1 << 30))
            frac = float(rng.uniform(*VICTIM_FRAC))
            slip = float(rng.uniform(*VICTIM_SLIP))
            gap = float(rng.uniform(*DISLOCATION))
            taken, delay_ms = competitor(self.competition, typ, u_taken, u_delay, slip, gap)
            j_t = [int(rng.integers(self.tmpl.searcher.shape[2])) for _ in range(2)]
            trig = next_free(int(np.searchsorted(ts, start_ns + int(t_s * 1e9))))
            if trig < 0:
                break
            inj = Injection(typ, -1, d, trig, frac=frac, slip=slip, gap=gap)
            if typ == "liquidation":
                cands = [t for t in lst_pool if liq_left[t] > 0]
                if not cands:
                    continue
                t = cands[pick % len(cands)]
                liq_left[t] -= 1
                inj.lst, inj.pool, inj.a_to_b = t, lst_pool[t], True       # sell the LST (the coin)
            else:
                cands = victims if typ == "sandwich" else [p for p, _ in pairs]
                cands = [p for p in cands if all(busy[q] < trig for q in self.lockset(p))]
                if not cands:
                    continue
                inj.pool = cands[pick % len(cands)]
                inj.lockset = self.lockset(inj.pool)
                close = next_free(int(np.searchsorted(ts, ts[trig] + int(delay_ms * 1e6))))
                if close < 0 or close == trig:
                    continue
                inj.closer, inj.taken = close, taken
                for q in inj.lockset:
                    busy[q] = close
                free[close] = False
                self.role[close] = ROLE_CLOSER
                self.role_inj[close] = len(self.injections)
                self.role_tmpl[close] = self.tmpl.searcher[inj.pool, 0 if inj.a_to_b else 1, j_t[1]]
            free[trig] = False
            self.role[trig] = ROLE_TRIGGER
            self.role_inj[trig] = len(self.injections)
            self.role_tmpl[trig] = self.tmpl.searcher[inj.pool, 1 if inj.a_to_b else 0, j_t[0]]
            self.injections.append(inj)

    # --- per chunk --------------------------------------------------------------------------
    def walk(self, a: int, kinds, tidx, stage, stage_off, u):
        """Rewrite the swaps of chunk packets (global index a + i) in capture order; handle the
        injected and closing swaps. Truth rows get their signature later (``sign_rows``)."""
        m = kinds.shape[0]
        role = self.role[a:a + m]
        i = 0
        while i < m:
            i = _walk(i, m, kinds, tidx, role, stage, stage_off, u, self.sw_first, self.sw_cnt, self.sw_pool,
                      self.sw_a2b, self.sw_base_out, self.sw_doff, self.sw_wrap, self.res, self.fee, self.ref,
                      self.lock, self.pool_tok, self.tok_price, self.params, self.counts)
            if i >= m:
                break
            self._role_packet(a + i, int(stage_off[i]) + self._doff(int(tidx[i])), stage)
            i += 1

    def _doff(self, t):
        return int(self.sw_doff[self.sw_first[t]])

    def _sync_in(self):
        self.det.res = [[int(x), int(y)] for x, y in self.res.tolist()]

    def _sync_out(self):
        self.res[:] = np.array(self.det.res, np.uint64)

    def _role_packet(self, gi: int, d: int, stage):
        inj_id = int(self.role_inj[gi])
        inj = self.injections[inj_id]
        self._sync_in()
        det = self.det
        p = inj.pool
        closer = self.role[gi] == ROLE_CLOSER
        a2b = (not inj.a_to_b) if closer else inj.a_to_b
        i_in = 0 if a2b else 1
        x, y = det.res[p][i_in], det.res[p][1 - i_in]
        if closer:
            amount = self._restore_amount(p, a2b)
            limit = ray_out(amount, x, y)
        elif inj.type == "sandwich":
            frac = inj.frac
            for _ in range(12):
                amount = max(1, int(frac * x))
                out = ray_out(amount, x, y)
                limit = out - int(out * inj.slip)
                s = det.sandwich(p, a2b, True, amount, limit)
                if s and s[0].profit_sol * LAMPORTS >= MIN_PROFIT_LAMPORTS:
                    break
                frac *= 1.4
        elif inj.type == "arbitrage":
            gap = inj.gap
            for _ in range(12):
                amount = self._move_amount(p, a2b, gap)
                limit = ray_out(amount, x, y)
                saved = [list(r) for r in det.res]
                det.apply(p, a2b, amount, limit)
                best = max((o.profit_sol for o in det.arbitrage(p) if len(o.pools) == 2), default=0.0)
                det.res = saved
                if best * LAMPORTS >= MIN_PROFIT_LAMPORTS:
                    break
                gap *= 1.3
        else:
            amount, limit = self._liquidation_amount(inj)
        if amount <= 0 or limit <= 0:          # nothing sensible to do (the pool is where it should be)
            amount, limit = 1, 1 << 63
        _put_u64(stage, d + 1, np.uint64(amount))
        _put_u64(stage, d + 9, np.uint64(limit))
        applied, found = det.transaction([(p, a2b, True, amount, limit)])
        self._sync_out()
        if closer:
            for q in inj.lockset:
                self.lock[q] -= 1
        elif inj.type in ("sandwich", "arbitrage"):
            for q in inj.lockset:
                self.lock[q] += 1
        elif inj.type == "liquidation" and applied:
            self.ref[p] = det.res[p][1] / det.res[p][0]     # the market moved: baseline trades around here now
            self.tok_price[inj.lst] = self.ref[p]
        for _, o in found:
            primary = (not closer) and o.type == inj.type and (o.type != "arbitrage" or len(o.pools) == 2)
            self.rows.append(dict(
                type=o.type, packet_index=gi, pools=o.pools, profit_mint=o.profit_mint,
                profit_quote=int(o.profit_quote), amount_in=int(o.amount_in), amount_out=int(o.amount_out),
                expected_profit_sol=float(o.profit_sol), position_id=int(o.position_id), primary=primary,
                injection=inj_id, taken_by_competitor=bool(inj.taken and not closer),
                competitor_packet_index=int(inj.closer if inj.taken and not closer else -1)))

    def _move_amount(self, p, a2b, gap) -> int:
        """Input moving pool p's price by ``gap`` (down when a goes in, up otherwise)."""
        ra, rb = self.det.res[p]
        if a2b:
            return max(1, int(ra * (1.0 / math.sqrt(1.0 - gap) - 1.0)))
        return max(1, int(rb * (math.sqrt(1.0 + gap) - 1.0)))

    def _restore_amount(self, p, a2b) -> int:
        """Input bringing pool p's price back to its reference."""
        ra, rb = self.det.res[p]
        k = float(ra) * float(rb)
        if a2b:
            return int(math.sqrt(k / self.ref[p]) - ra)
        return int(math.sqrt(k * self.ref[p]) - rb)

    def _liquidation_amount(self, inj):
        """The LST sale taking the least healthy healthy position on it to LIQ_TARGET_HEALTH."""
        det = self.det
        p = inj.pool
        js = [j for j, pos in enumerate(det.positions) if pos[1] == inj.lst and det.healthy[j]]
        if not js:
            return 0, 0
        j = min(js, key=det.health)
        h = det.health(j)
        gap = 1.0 - LIQ_TARGET_HEALTH / h
        for _ in range(40):
            amount = self._move_amount(p, True, gap)
            out = ray_out(amount, det.res[p][0], det.res[p][1])
            saved = [list(r) for r in det.res]
            det.apply(p, True, amount, out)
            after = det.health(j)
            det.res = saved
            if after < LIQ_TARGET_HEALTH + 0.0005:
                return amount, out
            gap += 0.0005
        return amount, out

    def sign_rows(self, a: int, stage, stage_off, ts):
        """Fill the signature and time of the truth rows of chunk packets [a, a + len(ts))."""
        for r in self.rows:
            i = r["packet_index"] - a
            if "trigger_signature" not in r and 0 <= i < ts.shape[0]:
                o = int(stage_off[i])
                r["trigger_signature"] = base58.b58encode(stage[o + 1:o + 65].tobytes()).decode()
                r["ts_ns"] = int(ts[i])

    # --- outputs ----------------------------------------------------------------------------
    def pool_addresses(self) -> list:
        return [str(p.amm) for p in self.tmpl.pools]

    def truth_table(self):
        import pyarrow as pa
        addr = self.pool_addresses()
        rows = sorted(self.rows, key=lambda r: (r["packet_index"], r["type"], r["pools"], r["position_id"]))
        cols = {name: [] for name in opp_truth_schema().names}
        for r in rows:
            for name in cols:
                v = r[name]
                if name == "pools":
                    v = [addr[q] for q in v]
                elif name == "profit_mint":
                    v = self.spec.mints[v]
                cols[name].append(v)
        return pa.table(cols, schema=opp_truth_schema())

    def write_snapshot(self, folder) -> Path:
        """The market as the engine loads it (engine.market.write_snapshot), state at the capture start."""
        from ..engine.market import write_snapshot
        spec, tm = self.spec, self.tmpl
        tokens = dict(mint=list(spec.mints), decimals=list(spec.decimals), symbol=list(spec.symbols))
        pools = {c: [] for c in ("address", "program", "mint_a", "mint_b", "vault_a", "vault_b", "reserve_a",
                                 "reserve_b", "fee_num", "fee_den", "sqrt_price_x64", "liquidity",
                                 "sqrt_price_lower_x64", "sqrt_price_upper_x64", "tick_spacing")}
        for ps, pool in zip(spec.pools, tm.pools):
            for c, v in (("address", str(pool.amm)), ("program", "raydium_amm_v4"), ("mint_a", ps.coin),
                         ("mint_b", ps.pc), ("vault_a", str(pool.coin_vault)), ("vault_b", str(pool.pc_vault)),
                         ("reserve_a", ps.reserve_a), ("reserve_b", ps.reserve_b), ("fee_num", FEE_NUM),
                         ("fee_den", FEE_DEN), ("sqrt_price_x64", ""), ("liquidity", ""),
                         ("sqrt_price_lower_x64", ""), ("sqrt_price_upper_x64", ""), ("tick_spacing", 0)):
                pools[c].append(v)
        luts = dict(address=[], keys=[])
        for t in tm.tables:
            luts["address"].append(str(t.key))
            luts["keys"].append([str(k) for k in t.addresses])
        accts = {}
        for sw in tm.swaps:
            for m in sw:
                accts.setdefault(m.src, (m.src_mint, m.owner))
                accts.setdefault(m.dst, (m.dst_mint, m.owner))
        token_accounts = dict(address=list(accts), mint=[v[0] for v in accts.values()],
                              owner=[v[1] for v in accts.values()])
        positions = {c: [] for c in ("position_id", "owner", "collateral_mint", "collateral_amount", "debt_mint",
                                     "debt_amount", "liquidation_threshold", "liquidation_bonus")}
        for pid, owner, tc, ca, td, da, thr, bonus in spec.positions:
            for c, v in (("position_id", pid), ("owner", owner), ("collateral_mint", spec.mints[tc]),
                         ("collateral_amount", ca), ("debt_mint", spec.mints[td]), ("debt_amount", da),
                         ("liquidation_threshold", thr), ("liquidation_bonus", bonus)):
                positions[c].append(v)
        return write_snapshot(folder, tokens, pools, luts, token_accounts, positions)


# ============================================================================================
# independent replay of a written capture (tests; slow: Python per swap)
# ============================================================================================

PROGRAM_RAYDIUM_AMM_V4 = "675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8"


def replay_truth(capture, tip: int = DEFAULT_TIP_LAMPORTS):
    """Every opportunity the contract's rules find in ``capture``, by this module's Detector,
    from the bytes: frames cut by hand, transactions parsed by solders, pools and lookup
    tables and token accounts from ``<capture>.market/``, good packets from the packet truth,
    duplicates dropped by first signature. Returns (rows, stats): rows are dicts (type,
    packet_index, pools as addresses, profit_mint, profit_quote, amount_in, amount_out,
    position_id), stats counts applied / failed transactions and swaps, and ``slack`` maps the
    packet of every applied one-swap transaction to its limit's slack (1 - min out / out, or
    max in / in - 1).
    """
    import pyarrow.parquet as pq
    from solders.transaction import VersionedTransaction

    from ..capture.open import open_capture
    from .generate import truth_path_for

    capture = Path(capture)
    folder = market_path(capture)
    tokens = pq.read_table(folder / "tokens.parquet").to_pydict()
    pools = pq.read_table(folder / "pools.parquet").to_pydict()
    luts = pq.read_table(folder / "lookup_tables.parquet").to_pydict()
    accts = pq.read_table(folder / "token_accounts.parquet").to_pydict()
    pos = pq.read_table(folder / "positions.parquet").to_pydict()
    mints = tokens["mint"]
    trow = {m: i for i, m in enumerate(mints)}
    prow = {a: i for i, a in enumerate(pools["address"])}
    res = [[int(a), int(b)] for a, b in zip(pools["reserve_a"], pools["reserve_b"])]
    pmint = [(trow[a], trow[b]) for a, b in zip(pools["mint_a"], pools["mint_b"])]
    positions = [(int(i), trow[c], int(ca), trow[d], int(da), float(th), float(b)) for i, c, ca, d, da, th, b in zip(
        pos["position_id"], pos["collateral_mint"], pos["collateral_amount"], pos["debt_mint"], pos["debt_amount"],
        pos["liquidation_threshold"], pos["liquidation_bonus"])]
    det = Detector(res, pmint, len(mints), trow.get(MINT_WSOL, -1), trow.get(MINT_USDC, -1), positions, tip)
    table = dict(zip(luts["address"], luts["keys"]))
    mint_of = dict(zip(accts["address"], accts["mint"]))
    kinds = pq.read_table(truth_path_for(capture), columns=["kind"]).column("kind").to_pylist()
    good = {"transaction", "vlan_transaction"}
    seen = set()
    rows = []
    slack = {}
    stats = dict(transactions=0, swap_transactions=0, applied=0, failed=0, swaps=0, slack=slack)
    reader = open_capture(capture)
    for batch in reader:
        for j in range(batch.off.shape[0]):
            gi = batch.first_index + j
            if kinds[gi] not in good:
                continue
            o = int(batch.off[j])
            frame = bytes(batch.buf[o:o + int(batch.caplen[j])])
            at = 18 if frame[12:14] == b"\x81\x00" else 14
            payload = frame[at + 28:]
            sig = payload[1:65]
            if sig in seen:
                continue
            seen.add(sig)
            stats["transactions"] += 1
            tx = VersionedTransaction.from_bytes(payload)
            msg = tx.message
            keys = [str(k) for k in msg.account_keys]
            lookups = getattr(msg, "address_table_lookups", None) or []
            w = [table[str(lu.account_key)][i] for lu in lookups for i in bytes(lu.writable_indexes)]
            r = [table[str(lu.account_key)][i] for lu in lookups for i in bytes(lu.readonly_indexes)]
            keys = keys + w + r
            swaps = []
            for ix in msg.instructions:
                if keys[ix.program_id_index] != PROGRAM_RAYDIUM_AMM_V4:
                    continue
                data = bytes(ix.data)
                acc = bytes(ix.accounts)
                if len(data) < 17 or data[0] not in (9, 11) or len(acc) not in (17, 18):
                    continue
                p = prow.get(keys[acc[1]])
                if p is None:
                    continue
                src_mint = mint_of.get(keys[acc[-3]])
                if src_mint is None:
                    raise AssertionError(f"packet {gi}: a swap whose source account is not in the snapshot")
                a_to_b = trow[src_mint] == pmint[p][0]
                u1 = int.from_bytes(data[1:9], "little")
                u2 = int.from_bytes(data[9:17], "little")
                if data[0] == 9:
                    swaps.append((p, a_to_b, True, u1, u2))
                else:
                    swaps.append((p, a_to_b, False, u2, u1))
            if not swaps:
                continue
            stats["swap_transactions"] += 1
            stats["swaps"] += len(swaps)
            if len(swaps) == 1:                 # the limit's slack on the state it met
                p, d, e, amount, limit = swaps[0]
                ok, a_in, a_out = det.result(p, d, e, amount, limit)
                if ok:
                    slack[gi] = 1.0 - limit / a_out if e else limit / a_in - 1.0
            applied, found = det.transaction(swaps)
            stats["applied" if applied else "failed"] += 1
            for _, o in found:
                rows.append(dict(type=o.type, packet_index=gi, pools=[pools["address"][q] for q in o.pools],
                                 profit_mint=mints[o.profit_mint], profit_quote=int(o.profit_quote),
                                 amount_in=int(o.amount_in), amount_out=int(o.amount_out),
                                 position_id=int(o.position_id)))
    return rows, stats
