"""Prices in SOL from the oracle pools, and the health of lending positions priced by them.

A token's oracle pool is its constant-product pool with WSOL holding the most WSOL at
load (snapshot.py picks it); the price is reserve_wsol / reserve_token in lamports per
base unit (float64), read from the live reserves, so it follows the swaps: ``token_price``
caches it and pools.py refreshes it whenever an oracle pool moves. WSOL's price is 1; a
token without such a pool has no price (NaN).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .layout import M_WSOL

@njit(cache=True, nogil=True, inline="always")
def oracle_price(mk, t):
    """Lamports per base unit of token row ``t`` from its oracle pool's reserves (NaN: none)."""
    if t < 0:
        return np.nan
    if t == mk.meta[M_WSOL]:
        return 1.0
    p = mk.token_oracle[t]
    if p < 0:
        return np.nan
    if mk.pool_mint[p, 0] == t:
        return np.float64(mk.pool_res[p, 1]) / np.float64(mk.pool_res[p, 0])
    return np.float64(mk.pool_res[p, 0]) / np.float64(mk.pool_res[p, 1])


@njit(cache=True, nogil=True, inline="always")
def price_sol(mk, t):
    """The same, cached in ``token_price`` (refreshed whenever an oracle pool moves)."""
    return mk.token_price[t] if t >= 0 else np.nan


@njit(cache=True, nogil=True)
def init_prices(mk):
    for t in range(mk.token_price.shape[0]):
        mk.token_price[t] = oracle_price(mk, t)



@njit(cache=True, nogil=True, inline="always")
def _health(mk, j):
    pc = price_sol(mk, mk.pos_mint[j, 0])
    pd = price_sol(mk, mk.pos_mint[j, 1])
    return (np.float64(mk.pos_amount[j, 0]) * pc * mk.pos_param[j, 0]) / (np.float64(mk.pos_amount[j, 1]) * pd)


@njit(cache=True, nogil=True)
def init_health(mk):
    """Prices from the oracle pools, then mark the positions below health 1 at load (they are
    not emitted until they recover)."""
    init_prices(mk)
    for j in range(mk.pos_id.shape[0]):
        h = _health(mk, j)
        mk.pos_healthy[j] = 0 if h < 1.0 else 1

