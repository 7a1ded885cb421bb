"""Liquidation detector: run after a swap is applied.

Each lending position priced by the swapped pool (its oracle pool, prices.py) whose health
crosses from >= 1 to < 1: repay half the debt, seize repay * (1 + bonus) worth of
collateral (capped at the collateral); profit = repay * bonus in the debt token. A
position is emitted once per drop below 1 (``pos_healthy``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..opps import OPP_LIQUIDATION
from .emit import _emit
from .prices import _health, price_sol

LIQ_CLOSE_DIVISOR = 2        # one liquidation repays debt // this (a close factor of 1/2)


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _liquidations(mk, p, tip, opps, n, ctx, fx):
    tipf = np.float64(tip)
    for k in range(2):
        t = mk.pool_mint[p, k]
        if mk.token_oracle[t] != p:
            continue
        for r in range(mk.tok_pos_first[t], mk.tok_pos_first[t + 1]):
            j = mk.tok_pos[r]
            h = _health(mk, j)
            if not (h == h):
                continue
            if h >= 1.0:
                mk.pos_healthy[j] = 1
                continue
            if mk.pos_healthy[j] == 0:
                continue
            mk.pos_healthy[j] = 0
            pc = price_sol(mk, mk.pos_mint[j, 0])
            pd = price_sol(mk, mk.pos_mint[j, 1])
            repay = mk.pos_amount[j, 1] // np.uint64(LIQ_CLOSE_DIVISOR)
            value = np.float64(repay) * pd * (1.0 + mk.pos_param[j, 1])
            cap = np.float64(mk.pos_amount[j, 0]) * pc
            if value > cap:
                value = cap
            seized = np.uint64(value / pc)
            profit = np.int64(value / pd - np.float64(repay))
            if np.float64(profit) * pd <= tipf:
                continue
            n2 = _emit(opps, n, OPP_LIQUIDATION, p, -1, -1, 1, mk.pos_mint[j, 1], repay, seized, profit, pd, tip, j,
                       ctx, fx, mk)
            if n2 < 0:
                return -1
            n = n2
    return n

