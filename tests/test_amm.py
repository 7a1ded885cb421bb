"""The exact AMM maths (engine/market/: wide.py, constant_product.py) against Python-integer
twins (tests/reference/amm_ref.py), the programs' own unit-test vectors, and a brute-force
search for the arbitrage sizing. The Whirlpool maths are in test_amm_whirlpool.py."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest

from amm_helpers import M64, SEED, U, _check, _ref, _rand_u64, _split, _u
from reference import amm_ref as R
from workbench.engine.market import amm_status as S
from workbench.engine.market import constant_product as CP
from workbench import wide as W


# --- limb arithmetic --------------------------------------------------------------------------

def _rand_bits(rng, n):
    k = rng.choice([0, 1, 2, 31, 32, 33, 63, 64, 65, 96, 127, n])
    k = min(k, n)
    x = rng.getrandbits(k) if k else 0
    if rng.random() < 0.1:
        x = (1 << k) - 1 if k else 0          # all ones: carries everywhere
    return x


def test_mul64_divlu_divmod128_exact():
    rng = random.Random(SEED)
    for _ in range(4000):
        a, b = rng.getrandbits(64), rng.getrandbits(64)
        h, l = W.mul64(U(a), U(b))
        assert W.join128(h, l) == a * b
        u, v = _rand_bits(rng, 128), _rand_bits(rng, 128) or 1
        qh, ql, rh, rl = W.divmod128(*_split(u), *_split(v))
        assert (W.join128(qh, ql), W.join128(rh, rl)) == divmod(u, v), (u, v)
        v64 = rng.getrandbits(rng.randint(1, 64)) or 1
        u1 = rng.randrange(v64)
        u0 = rng.getrandbits(64)
        q, r = W.divlu(U(u1), U(u0), U(v64))
        assert (int(q), int(r)) == divmod((u1 << 64) | u0, v64)
    for u in (0, 1, M64, (1 << 128) - 1, 1 << 64, 1 << 127):
        for v in (1, 2, M64, 1 << 64, (1 << 128) - 1, (1 << 64) + 1, 3):
            qh, ql, rh, rl = W.divmod128(*_split(u), *_split(v))
            assert (W.join128(qh, ql), W.join128(rh, rl)) == divmod(u, v), (u, v)


def test_ceil_div_kinds_match_raydium_and_plain():
    rng = random.Random(SEED + 1)
    cases = [(0, 1), (1, 3), (2, 3), (1, 2), (3, 2), (4, 2), (199 * 25, 10_000), (200 * 25, 10_000),
             ((1 << 128) - 1, (1 << 128) - 1), ((1 << 127) - 1, (1 << 128) - 1), (1 << 127, (1 << 128) - 1)]
    cases += [(_rand_bits(rng, 128), _rand_bits(rng, 128) or 1) for _ in range(3000)]
    for n, d in cases:
        for kind, ref in ((W.CEIL_PLAIN, R.ceil_div_plain), (W.CEIL_RAYDIUM, R.ceil_div_raydium)):
            qh, ql, ovf = W.ceil_div128(*_split(n), *_split(d), kind)
            try:
                want = ref(n, d)
            except R.AmmFail:
                assert ovf, (n, d, kind)
                continue
            if want > (1 << 128) - 1:
                assert ovf
            else:
                assert not ovf and W.join128(qh, ql) == want, (n, d, kind)


def test_u256_mul_and_division_exact():
    rng = random.Random(SEED + 2)

    def limbs(x):
        return [U((x >> (64 * i)) & M64) for i in (3, 2, 1, 0)]

    def val(ws):
        return sum(int(w) << (64 * i) for i, w in zip((3, 2, 1, 0), ws))

    for _ in range(1500):
        a, b = _rand_bits(rng, 128), _rand_bits(rng, 128)
        assert val(W.mul128(*_split(a), *_split(b))) == a * b
        n, d = _rand_bits(rng, 256) | (rng.getrandbits(200) if rng.random() < 0.5 else 0), _rand_bits(rng, 256) or 1
        out = W.divmod256(*limbs(n), *limbs(d))
        assert (val(out[:4]), val(out[4:])) == divmod(n, d), (n, d)
        s = val(W.add256(*limbs(n), *limbs(d))[:4])
        assert s == (n + d) % (1 << 256)
        assert val(W.sub256(*limbs(n), *limbs(d))[:4]) == (n - d) % (1 << 256)
    top = (1 << 256) - 1
    out = W.divmod256(*limbs(top), *limbs(top - 1))
    assert (val(out[:4]), val(out[4:])) == divmod(top, top - 1)


# --- constant product ----------------------------------------------------------------------

def _cp_cases(rng, n):
    out = []
    for _ in range(n):
        amt, rin, rout = _rand_u64(rng), _rand_u64(rng), _rand_u64(rng)
        if rng.random() < 0.5:                # realistic: trade a fraction of the pool
            rin = rng.getrandbits(rng.randint(20, 64)) or 1
            rout = rng.getrandbits(rng.randint(20, 64)) or 1
            amt = max(1, rin >> rng.randint(0, 30))
        out.append((amt, rin, rout))
    edges = [0, 1, 2, 199, 200, 400, M64 - 1, M64]
    out += [(a, b, c) for a in edges for b in (0, 1, M64) for c in (0, 1, M64)]
    return out


@pytest.mark.parametrize("kind", [W.CEIL_RAYDIUM, W.CEIL_PLAIN])
def test_raydium_v4_amounts_match_python_integers(kind):
    rng = random.Random(SEED + 10 + kind)
    for amt, rin, rout in _cp_cases(rng, 2500):
        num, den = rng.choice([(25, 10_000), (0, 10_000), (30, 10_000), (1, 1), (9_999, 10_000), (3, 0)])
        got = CP.cp_amount_out(*_u(amt, rin, rout, num, den), kind)
        _check(got, _ref(R.raydium_v4_amount_out, amt, rin, rout, num, den, kind), ("out", amt, rin, rout, num, den))
        got = CP.cp_amount_in(*_u(amt, rin, rout, num, den), kind, kind)
        ref = _ref(R.raydium_v4_amount_in, amt, rin, rout, num, den, kind)
        if ref[0] == "ok":
            ref = ("ok", (ref[1][0], ref[1][0] - ref[1][1]))      # kernel returns (amount_in, before_fee)
        _check(got, ref, ("in", amt, rin, rout, num, den))


def test_raydium_v4_wrappers_and_fee_rounding():
    # 25 / 10000 with Raydium's ceil: a fee of 0 below 200 units, 1 from 200 to 400, then ceil
    for amt, fee in ((1, 0), (199, 0), (200, 1), (399, 1), (400, 1), (401, 2), (10_000, 25), (10_001, 26)):
        st, out, f = CP.raydium_v4_amount_out(*_u(amt, 1_000, 10**12, 25, 10_000))
        assert int(st) == S.AMM_OK and int(f) == fee, (amt, f)
    st, out, f = CP.cp_amount_out(*_u(199, 10**12, 10**12, 25, 10_000), W.CEIL_PLAIN)
    assert int(f) == 1                           # the plain ceiling charges 1
    st, a_in, fee = CP.raydium_v4_amount_in(*_u(10**6, 10**9, 5 * 10**9, 25, 10_000))
    want = R.raydium_v4_amount_in(10**6, 10**9, 5 * 10**9)
    assert (int(st), int(a_in), int(fee)) == (S.AMM_OK, *want)


def test_cpmm_amounts_match_python_integers():
    rng = random.Random(SEED + 20)
    for amt, rin, rout in _cp_cases(rng, 2500):
        rate = rng.choice([2500, 0, 10_000, 40_000, 999_999, 1_000_000])
        _check(CP.cpmm_amount_out(*_u(amt, rin, rout, rate)), _ref(R.cpmm_amount_out, amt, rin, rout, rate),
               ("out", amt, rin, rout, rate))
        _check(CP.cpmm_amount_in(*_u(amt, rin, rout, rate)), _ref(R.cpmm_amount_in, amt, rin, rout, rate),
               ("in", amt, rin, rout, rate))


def test_cpmm_program_rounding_vectors():
    """raydium-cp-swap constant_product.rs ``constant_product_swap_rounding`` (fee-free curve)."""
    vectors = [(10, 4_000_000, 70_000_000_000, 174_999), (20, 30_000 - 20, 10_000, 6), (19, 30_000 - 20, 10_000, 6),
               (18, 30_000 - 20, 10_000, 6), (10, 20_000, 30_000, 14), (10, 20_000 - 9, 30_000, 14),
               (10, 20_000 - 10, 30_000, 15), (100, 60_000, 30_000, 49), (99, 60_000, 30_000, 49),
               (98, 60_000, 30_000, 48)]
    for amt, rin, rout, want in vectors:
        st, out, fee = CP.cpmm_amount_out(*_u(amt, rin, rout, 0))
        assert (int(st), int(out), int(fee)) == (S.AMM_OK, want, 0)


def test_exact_out_inverts_exact_in():
    """The exact-out amount is the least input whose exact-in output reaches it (where fees round alike)."""
    rng = random.Random(SEED + 21)
    for _ in range(400):
        rin, rout = rng.randint(10**6, 10**15), rng.randint(10**6, 10**15)
        want = rng.randint(1, rout // 3)
        st, a_in, _ = CP.cpmm_amount_in(*_u(want, rin, rout, 2500))
        assert int(st) == S.AMM_OK
        st, got, _ = CP.cpmm_amount_out(*_u(int(a_in), rin, rout, 2500))
        assert int(got) >= want - 1              # CPMM's pre-fee ceiling can fall 1 short
        if int(a_in) > 1:
            st, less, _ = CP.cpmm_amount_out(*_u(int(a_in) - 1, rin, rout, 2500))
            assert int(st) != S.AMM_OK or int(less) <= want


def test_price_impact_within_its_bound():
    rng = random.Random(SEED + 30)
    for _ in range(2000):
        rin, rout = rng.getrandbits(rng.randint(1, 64)) or 1, rng.getrandbits(rng.randint(1, 64)) or 1
        amt = rng.getrandbits(rng.randint(1, 64)) or 1
        st, out, _ = CP.raydium_v4_amount_out(*_u(amt, rin, rout, 25, 10_000))
        out = int(out)
        got = float(CP.price_impact(*_u(amt, out, rin, rout)))
        ratio = Fraction(out * rin, amt * rout)
        bound = 2.0**-53 * (7 * float(ratio) + abs(float(1 - ratio))) * (1 + 1e-6) + 2.0**-1074
        assert abs(Fraction(got) - (1 - ratio)) <= Fraction(bound), (amt, rin, rout)
        if st == S.AMM_OK and amt >= 400:
            assert got >= 0.0025 - 1e-12                         # the fee alone


# --- arbitrage sizing -------------------------------------------------------------------------

def _cp_out_vec(a, rin, rout, num, den, kind):
    """cp_amount_out over an int64 array (exact for the small reserves used here)."""
    p = a * num
    q, r = np.divmod(p, den)
    if kind == W.CEIL_RAYDIUM:
        fee = np.where(q == 0, (2 * p >= den).astype(np.int64), q + (r > 0))
    else:
        fee = q + (r > 0)
    net = a - fee
    d = rin + net
    return np.where(d > 0, rout * net // np.maximum(d, 1), 0)


ARB_PROFIT_TOL = 2     # base units of X: see optimal_two_pool_arb_in's docstring


@pytest.mark.parametrize("kind", [W.CEIL_RAYDIUM, W.CEIL_PLAIN])
def test_optimal_two_pool_arb_matches_brute_force(kind):
    """The closed-form optimum, polished, is within the documented slack (2 + ceil(x_b / y_b)
    base units) of the best profit over EVERY input 1..3 x_a (brute force on exact integer
    amounts), for price
    ratios from 1/300 to 300 (a unit of the mid token worth many input units, and the
    reverse); where no input profits it returns 0."""
    rng = random.Random(SEED + 40 + kind)
    profitable = 0
    for i in range(48):
        x_a = rng.randint(2_000, 300_000)
        y_a = max(1, int(x_a * np.exp(rng.uniform(np.log(1 / 300), np.log(300)))))
        skew = rng.uniform(0.95, 1.15)
        y_b = max(1, int(y_a * rng.uniform(0.3, 3.0)))
        x_b = max(1, int(x_a * y_b / y_a * skew))
        fa = rng.choice([(25, 10_000), (30, 10_000), (2500, 1_000_000), (0, 10_000)])
        fb = rng.choice([(25, 10_000), (100, 10_000), (0, 1)])
        a_in, mid, back = (int(v) for v in CP.optimal_two_pool_arb_in(*_u(x_a, y_a, *fa, y_b, x_b, *fb), kind))
        d = np.arange(1, 3 * x_a + 1, dtype=np.int64)
        m = _cp_out_vec(d, x_a, y_a, fa[0], fa[1], kind)
        b = _cp_out_vec(m, y_b, x_b, fb[0], fb[1], kind)
        profit = np.where((m > 0) & (b > 0), b - d, -(1 << 62))
        best = int(profit.max())
        if best <= 0:
            assert (a_in, mid, back) == (0, 0, 0), (x_a, y_a, y_b, x_b)
            continue
        profitable += 1
        assert 0 < a_in <= 3 * x_a, (x_a, y_a, y_b, x_b, best)
        assert (mid, back) == (int(m[a_in - 1]), int(b[a_in - 1]))       # exact program amounts
        slack = ARB_PROFIT_TOL + -(-x_b // y_b)
        assert back - a_in >= best - slack, (x_a, y_a, y_b, x_b, fa, fb, back - a_in, best)
    assert profitable >= 15


def test_min_amount_in_for_out_is_the_least_input():
    rng = random.Random(SEED + 45)
    for _ in range(60):
        rin, rout = rng.randint(1_000, 200_000), rng.randint(1_000, 200_000)
        num, den = rng.choice([(25, 10_000), (2500, 1_000_000), (0, 1)])
        kind = rng.choice([W.CEIL_RAYDIUM, W.CEIL_PLAIN])
        d = np.arange(0, 4 * rin + 1, dtype=np.int64)
        outs = _cp_out_vec(d, rin, rout, num, den, kind)
        for want in [1, 2, rng.randint(1, rout // 2), rng.randint(1, rout - 1), int(outs.max()), rout]:
            st, got = CP.min_amount_in_for_out(*_u(want, rin, rout, num, den), kind)
            idx = np.nonzero(outs >= want)[0]
            if want >= rout:
                assert int(st) != S.AMM_OK
            elif idx.size:
                assert (int(st), int(got)) == (S.AMM_OK, int(idx[0])), (want, rin, rout, num, den, kind)
            else:                                   # beyond the brute-forced range: check the ends
                got = int(got)
                assert int(st) == S.AMM_OK and got > 4 * rin
                assert R.cp_out_generic(got, rin, rout, num, den, kind) >= want
                assert R.cp_out_generic(got - 1, rin, rout, num, den, kind) < want


def test_optimal_two_pool_arb_large_reserves_is_a_local_maximum():
    """At mainnet scale (no brute force): no probe within +-50 000 units, nor 0.1 % away,
    does better than the documented slack, 2 + ceil(x_b / y_b) base units (pool B's fee
    ceiling on the mid amount is worth up to one mid unit there; the real-valued profit is
    flat over ~sqrt(reserve) units, so some input in that plateau may round luckier)."""
    rng = random.Random(SEED + 50)
    for _ in range(40):
        x_a = rng.randint(10**9, 10**18)
        y_a = rng.randint(10**9, 10**18)
        y_b = int(y_a * rng.uniform(0.01, 10))
        x_b = int(x_a * y_b / y_a * rng.uniform(1.006, 1.2))
        args = _u(x_a, y_a, 25, 10_000, y_b, x_b, 25, 10_000)
        a_in, mid, back = (int(v) for v in CP.optimal_two_pool_arb_in(*args, W.CEIL_RAYDIUM))
        assert a_in > 0 and back > a_in
        ours = back - a_in
        slack = 2 + -(-x_b // y_b)
        for probe in list(range(max(1, a_in - 50_000), a_in + 50_001, 997)) + [int(a_in * 0.999), int(a_in * 1.001)]:
            mid2 = R.cp_out_generic(probe, x_a, y_a, 25, 10_000, 1)
            back2 = R.cp_out_generic(mid2, y_b, x_b, 25, 10_000, 1)
            assert back2 - probe <= ours + slack, (probe, a_in)
        assert back2 - int(a_in * 1.001) < ours            # 0.1 % off the optimum is clearly worse
        mid_r = R.cp_out_generic(a_in, x_a, y_a, 25, 10_000, 1)
        assert (mid, back) == (mid_r, R.cp_out_generic(mid_r, y_b, x_b, 25, 10_000, 1))


def test_no_arbitrage_returns_zero():
    assert tuple(int(v) for v in CP.optimal_two_pool_arb_in(*_u(10**9, 10**9, 25, 10_000, 10**9, 10**9, 25, 10_000),
                                                           W.CEIL_RAYDIUM)) == (0, 0, 0)
