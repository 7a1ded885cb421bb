"""The baseline traffic of a market capture (``_walk``, numba, capture order): every swap
rewritten on the exact pool state so that the baseline holds no opportunity.

Only good, non-duplicate transaction packets count (the engine rejects the others and
drops duplicates by first signature). Every Raydium swap is rewritten on the exact pool
state (``engine.market.constant_product.raydium_v4_amount_out/_in``): its size is a value in SOL, log-uniform
in [``VALUE_MIN``, ``VALUE_MAX``] lamports, capped at ``SIZE_CAP`` of the input reserve
(so no baseline swap is a profitable sandwich victim) and so that the pool's price stays
within ``BAND`` (log) of its reference (so twins and cycles stay inside the round-trip fees:
no arbitrage); a swap pushing the price away from its reference shrinks with the square of
the room left in the band (prices mean-revert), and one that cannot move the way it is drawn
without leaving the band fails its limit (min out above the output; the engine fails its
transaction). Limits are tight: 0.1-0.5 % from the exact amount. Two-swap arb-bot
transactions demand a profit and fail. A swap on a pool locked by an open injected
opportunity fails too. The state update is the programs': the whole amount in enters the
input reserve, the output leaves the other.

The walk stops at the first packet with a role (``ROLE_TRIGGER``, ``ROLE_CLOSER``: an
injected or closing swap), which the market simulation (simulation.py) handles in Python.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...engine.market.amm_status import AMM_OK
from ...engine.market.constant_product import raydium_v4_amount_in, raydium_v4_amount_out
from .. import frame as F

BAND = 0.002                  # |ln(price / reference)| kept below this by baseline swaps
SIZE_CAP = 0.0005             # baseline swap input <= this share of the input reserve
VALUE_MIN = 2e6               # lamports: smallest baseline swap value
VALUE_MAX = 2e10              # lamports: largest (before the caps)
SLIP_MIN = 0.001              # baseline limit slack, share of the exact amount
SLIP_MAX = 0.005
MIN_CAP = 1.0                 # base units: a band cap below this fails the swap instead
ARB_DEMAND = 0.003            # an arb bot's last swap asks this much more than it can get

ROLE_NONE, ROLE_TRIGGER, ROLE_CLOSER = 0, 1, 2     # what a packet is to the injections


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
