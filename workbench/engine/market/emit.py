"""An opportunity's way out: the tip filter every candidate passes, and the row writer.

An opportunity is emitted when its profit in SOL exceeds the tip (``P_TIP_LAMPORTS``).
Every candidate is first sized in float64 (closed forms on the continuous constant
product) and dropped when its float profit is below the tip by more than the float
error can explain (``FLOAT_MARGIN``, ``_below_tip``); only candidates that may pass pay
for the exact integer sizing, so quiet traffic costs a few float operations per swap.
``_emit`` writes one ``OPP_DTYPE`` row (engine/opps.py) with the model's features.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...capture.clock import monotonic_ns
from ..opps import F_DEPTH, F_PROFIT, F_S10, F_S100, F_S1000, F_SLIPPAGE, F_TYPE, OPP_SANDWICH
from .pools import _recent
from .prices import price_sol

FLOAT_MARGIN = 1e-9          # relative slack (of the input) on float profit estimates before the exact sizing:
                             # float64 sizing is good to ~1e-15 of the input; the exact integers differ from
                             # the real-valued profit by a few base units (the 8-unit term)


@njit(cache=True, nogil=True, inline="always")
def _below_tip(est, tipf, unit_price, size):
    """The float profit ``est`` (lamports) cannot beat the tip even allowing for float error
    (FLOAT_MARGIN of the input ``size``) and the exact integers' few base units (8 of them,
    at ``unit_price`` lamports each): the candidate is not worth its exact sizing."""
    return est < tipf * (1.0 - FLOAT_MARGIN) - 8.0 * unit_price - FLOAT_MARGIN * size * unit_price


@njit(cache=True, nogil=True, inline="always")
def _emit(opps, n, kind, p0, p1, p2, npools, token, amount_in, amount_out, profit, price, tip, pos_row,
          ctx, fx, mk):
    """Write one opportunity row (if there is room). Returns the new count.

    The detectors pass constants (kinds, -1 for no pool) and ids of several integer types:
    each mix would compile ``_emit_row`` once more, so the integers go in as int64.
    """
    return _emit_row(opps, np.int64(n), np.int64(kind), np.int64(p0), np.int64(p1), np.int64(p2),
                     np.int64(npools), np.int64(token), amount_in, amount_out, profit, price, tip,
                     np.int64(pos_row), ctx, fx, mk)


@njit(cache=True, nogil=True, _nrt=False)
def _emit_row(opps, n, kind, p0, p1, p2, npools, token, amount_in, amount_out, profit, price, tip, pos_row,
              ctx, fx, mk):
    """``_emit``'s row writer, one compiled version."""
    if n >= opps.shape[0]:
        return -1
    o = opps[n]
    o.ts_ns = ctx[0]
    o.packet_index = ctx[1]
    o.tx_index = ctx[2]
    o.slot = ctx[3]
    o.kind = kind
    o.pools[0] = p0
    o.pools[1] = p1
    o.pools[2] = p2
    o.n_pools = npools
    o.profit_token = token
    o.amount_in = amount_in
    o.amount_out = amount_out
    o.profit_quote = profit
    o.tip_lamports = tip
    eps = np.float64(profit) * price - np.float64(tip)
    o.expected_profit_lamports = np.int64(eps)
    o.expected_profit_sol = eps / 1e9
    o.position_row = pos_row
    o.seq = np.int32(ctx[5])
    ctx[5] += 1
    for j in range(fx.shape[0]):
        o.features[j] = fx[j]
    o.features[F_PROFIT] = eps / 1e9
    o.features[F_TYPE] = kind
    o.features[F_S10], o.features[F_S100], o.features[F_S1000] = _recent(mk, p0, ctx[0])
    pa, pb = mk.pool_mint[p0, 0], mk.pool_mint[p0, 1]
    o.features[F_DEPTH] = (np.float64(mk.pool_res[p0, 0]) * price_sol(mk, pa) +
                           np.float64(mk.pool_res[p0, 1]) * price_sol(mk, pb)) / 1e9
    if kind != OPP_SANDWICH:
        o.features[F_SLIPPAGE] = 0.0
    o.score = np.nan
    o.detect_ns = monotonic_ns() - ctx[4]
    return n + 1

