"""The market of a seed (``MarketSpec``, ``build_market``): tokens, Raydium AMM v4 pools with
depth, lending positions.

Tokens: WSOL and USDC (the real mints, ``wire.keys``) and ten others with familiar symbols
and decimals but synthetic mints (``TOKENS``). Pools (``POOLS``; fee 25/10000, Raydium AMM v4):

* pools 0-15 are the generator's twins (``traffic.world.N_POOLS``): eight pairs of two
  pools of the same pair. WSOL/USDC, JUP/WSOL and JUP/USDC twins form three-pool cycles
  (JUP -> WSOL -> USDC -> JUP); BONK, WIF, RAY, PYTH (with WSOL) and JTO (with USDC) twins
  are in no cycle: price dislocations are injected there;
* single pools: mSOL/WSOL and JitoSOL/WSOL (the oracles of the lending collateral: oracle
  moves are injected there), POPCAT/WSOL and MEW/WSOL (isolated: loose-slippage victims are
  injected there, so a victim opens no arbitrage).

Depth is in USD per side (``POOLS``), reserves follow from the token prices and decimals.
Positions: LST collateral (mSOL, JitoSOL) against WSOL debt, healths spaced by
``POS_SPACING`` from ``POS_HEALTH0`` up, and WSOL collateral against USDC debt, health
1.02-1.15. The pools' addresses, lookup tables and token accounts come with the templates
(synth/traffic/), which build their transactions on this spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import base58
import numpy as np

from ...wire.keys import MINT_USDC, MINT_WSOL

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

# --- positions -----------------------------------------------------------------------------------
POS_PER_LST = 30              # positions on each LST collateral
POS_HEALTH0 = 1.012           # health of the least healthy at the start
POS_SPACING = 1.012           # health ratio between consecutive positions of one collateral
LIQ_TARGET_HEALTH = 0.994     # an oracle move takes the target position to this health
POS_SOL_USDC = 20             # WSOL-collateral, USDC-debt positions (health 1.02-1.15, never crossing)


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
