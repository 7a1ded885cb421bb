"""The market simulation of one capture (``MarketSim``): the injection schedule, the baseline
walk per chunk, the injected and closing swaps, and the truth rows.

Injected opportunities (rate ``opportunities`` per second)
-----------------------------------------------------------
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

Ground truth: the rules' twin (truth_rules.py) runs on every injected and closing packet;
``replay_truth`` (replay.py) runs it on every swap of a written capture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import base58
import numpy as np

from .. import frame as F
from ..outputs import opp_truth_schema
from .baseline_walk import (ARB_DEMAND, BAND, MIN_CAP, ROLE_CLOSER, ROLE_TRIGGER, SIZE_CAP, SLIP_MAX, SLIP_MIN,
                            VALUE_MAX, VALUE_MIN, _put_u64, _walk)
from .spec import FEE_DEN, FEE_NUM, LAMPORTS, LIQ_TARGET_HEALTH, LST, POS_PER_LST, SOL_USD, MarketSpec
from ...config import DEFAULT_TIP_LAMPORTS
from .truth_rules import Detector, ray_out

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
MIN_PROFIT_LAMPORTS = 1_000_000   # injected sandwiches / arbitrages are worth at least this (100 tips)


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
