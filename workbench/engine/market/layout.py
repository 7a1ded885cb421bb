"""The ``Market`` tuple: the engine's market state as arrays, and the named indices into them.

A snapshot folder (snapshot.py) loads into one ``Market``. Every address is interned in
the engine's key table (wire/keys.py), so a packet's account resolves to a pool row or a
token account's mint by one hash lookup: ``pool_of_key[key id]`` and ``mint_of_key[key
id]`` (pool vaults count as token accounts of their mint, which is how CPMM swaps tell
their direction). Pools are numbered in file order, tokens in tokens.parquet order. The
jitted code (pools.py, the detectors) updates the reserves, Whirlpool prices, swap
history, token prices and position health in place.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# pool programs (pool_kind)
PK_RAYDIUM_V4 = 1
PK_CPMM = 2
PK_WHIRLPOOL = 3
PROGRAMS = {"raydium_amm_v4": PK_RAYDIUM_V4, "raydium_cpmm": PK_CPMM, "orca_whirlpool": PK_WHIRLPOOL}
PROGRAM_NAMES = {v: k for k, v in PROGRAMS.items()}

# Whirlpool words of pool_wp (u128 as hi, lo)
WP_PRICE_H, WP_PRICE_L, WP_LIQ_H, WP_LIQ_L, WP_LOWER_H, WP_LOWER_L, WP_UPPER_H, WP_UPPER_L = range(8)
N_WP = 8

SWAP_HISTORY = 256          # applied-swap times kept per pool (the 10/100/1000 ms window counts saturate there)


class Market(NamedTuple):
    """The snapshot as arrays (pool rows P, tokens T, positions N, cycles C, key capacity K)."""
    pool_kind: np.ndarray       # int8[P] PK_*
    pool_mint: np.ndarray       # int32[P, 2] token rows of mint a, mint b
    pool_res: np.ndarray        # uint64[P, 2] reserves a, b (base units; updated by every applied swap)
    pool_fee: np.ndarray        # uint64[P, 2] fee numerator, denominator
    pool_gamma: np.ndarray      # float64[P] 1 - fee (the float sizing's fee factor)
    pool_wp: np.ndarray         # uint64[P, N_WP] Whirlpool sqrt price, liquidity, current range bounds
    pool_swaps: np.ndarray      # int64[P, SWAP_HISTORY] event times of the last applied swaps (ring)
    pool_nswaps: np.ndarray     # int64[P] applied swaps (ring head)
    pool_kid: np.ndarray        # int32[P] key id of the pool address
    sib_first: np.ndarray       # int32[P + 1] CSR: constant-product pools of the same pair, sibs[first[p]:first[p+1]]
    sibs: np.ndarray            # int32[S]
    cyc_first: np.ndarray       # int32[P + 1] CSR: three-pool cycles through each pool
    cycles: np.ndarray          # int32[C, 4] pool rows (trigger first) and the start token row
    token_oracle: np.ndarray    # int32[T] oracle pool row, -1 none
    token_price: np.ndarray     # float64[T] lamports per base unit from the oracle pool (NaN none), kept current
    token_decimals: np.ndarray  # int16[T]
    token_kid: np.ndarray       # int32[T] key id of the mint
    pool_of_key: np.ndarray     # int32[K] key id -> pool row, -1
    mint_of_key: np.ndarray     # int32[K] key id -> token row of a token account / vault, -1
    tbl_keys: np.ndarray        # uint8[L, 32] lookup table addresses (wire/programs/account_resolution.py resolve_lut_account)
    tbl_first: np.ndarray       # int64[L] first row in tbl_kid
    tbl_cnt: np.ndarray         # int32[L] addresses in the table
    tbl_kid: np.ndarray         # int32[A] key id of each table address
    pos_id: np.ndarray          # int64[N]
    pos_mint: np.ndarray        # int32[N, 2] collateral, debt token rows
    pos_amount: np.ndarray      # uint64[N, 2] collateral, debt amounts
    pos_param: np.ndarray       # float64[N, 2] liquidation threshold, bonus
    pos_healthy: np.ndarray     # int8[N] 1 while health >= 1 (a drop below emits once), 0 below
    tok_pos_first: np.ndarray   # int32[T + 1] CSR: positions holding each token (either side)
    tok_pos: np.ndarray         # int32[M]
    meta: np.ndarray            # int64[N_META]: M_* below


# meta: WSOL and USDC token rows (-1 absent), pool and token counts, the latest slot seen
# (from shreds and shred transactions; -1 none yet) and the event time of its first shred or
# transaction (f_ms_since_slot_start)
M_WSOL, M_USDC, M_POOLS, M_TOKENS, M_SLOT, M_SLOT_TS = range(6)
N_META = 6
