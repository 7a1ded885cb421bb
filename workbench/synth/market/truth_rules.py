"""The contract's detection rules on Python integers: the truth's own twin, independent of
the engine's detectors (engine/market/), so that a test comparing the two compares two
implementations.

``Detector`` keeps a mutable pool state (reserves as Python ints) and finds, after each
swap, what the contract's rules find: a sandwich by bisection over exact amounts (before
the victim), a two- or three-pool arbitrage by ternary search on the exact integer profit
plus a local scan, a liquidation by the health formula. Raydium AMM v4 maths are the
program's (``ray_out``, ``ray_in``: SwapBaseIn / SwapBaseOut with its CheckedCeilDiv).
Profits count after ``tip`` lamports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .spec import FEE_DEN, FEE_NUM, LAMPORTS



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
