"""The exact Orca Whirlpool maths (engine/market/whirlpool.py) against the Python-integer twin
(tests/reference/amm_ref.py) and the program's own token_math.rs vectors and proptests: amount
deltas, next prices, compute_swap, swaps within a tick (crossings, limits, validation), and
the full-range ExceedsMax path."""

from __future__ import annotations

import random

from amm_helpers import M64, SEED, U, _check, _name, _rand_u64, _split
from reference import amm_ref as R
from workbench.engine.market import amm_status as S
from workbench.engine.market import whirlpool as WP
from workbench import wide as W


# --- Whirlpool ----------------------------------------------------------------------------------

def test_whirlpool_program_vectors():
    """token_math.rs ``test_get_amount_delta_ok`` / ``_price_diff_zero_ok`` / ``_a_overflow``."""
    p4, p2 = _split(4 << 64), _split(2 << 64)
    l4 = _split(4)
    for ru in (True, False):
        assert [int(x) for x in WP.wp_amount_delta_a(*p4, *p2, *l4, ru)] == [S.AMM_OK, 1]
        assert [int(x) for x in WP.wp_amount_delta_b(*p4, *p2, *l4, ru)] == [S.AMM_OK, 8]
        assert [int(x) for x in WP.wp_amount_delta_a(*p4, *p4, *l4, ru)] == [S.AMM_OK, 0]
        assert [int(x) for x in WP.wp_amount_delta_b(*p4, *p4, *l4, ru)] == [S.AMM_OK, 0]
    p1 = _split(1 << 64)
    assert int(WP.wp_amount_delta_a(*p1, *p2, *_split((1 << 128) - 1), True)[0]) != S.AMM_OK
    assert int(WP.wp_amount_delta_a(*p1, *p2, *_split(M64 << 2), True)[0]) != S.AMM_OK
    assert int(WP.wp_amount_delta_a(*p1, *p2, *_split(M64 << 1), True)[0]) == S.AMM_OK
    assert int(WP.wp_amount_delta_a(*p1, *p2, *_split(M64), True)[0]) == S.AMM_OK


def _wp_status(fn, *args):
    try:
        return "ok", fn(*args)
    except R.ExceedsMax:
        return "exceeds_u64", None
    except R.AmmFail as e:
        return e.name, None


def _rand_price(rng):
    if rng.random() < 0.7:
        return R.tick_sqrt_price(rng.randint(-200_000, 200_000)) + rng.randint(0, 1 << 40)
    return rng.randint(R.WP_MIN_SQRT_PRICE_X64, R.WP_MAX_SQRT_PRICE_X64)


def _rand_liq(rng):
    r = rng.random()
    if r < 0.05:
        return rng.choice([0, 1, (1 << 128) - 1, M64])
    return rng.getrandbits(rng.randint(1, 110 if r < 0.9 else 128))


def test_whirlpool_price_and_delta_functions_match_python_integers():
    rng = random.Random(SEED + 60)
    for _ in range(1500):
        p0, p1, liq = _rand_price(rng), _rand_price(rng), _rand_liq(rng)
        amt = _rand_u64(rng)
        ru = rng.random() < 0.5
        for kfn, rfn in ((WP.wp_amount_delta_a, R.wp_amount_delta_a), (WP.wp_amount_delta_b, R.wp_amount_delta_b)):
            got = kfn(*_split(p0), *_split(p1), *_split(liq), ru)
            _check(got, (lambda s: (s[0], (s[1],) if s[0] == "ok" else None))(_wp_status(rfn, p0, p1, liq, ru)),
                   (kfn.__name__, p0, p1, liq, ru))
        for kfn, rfn in ((WP.wp_next_sqrt_price_from_a_round_up, R.wp_next_from_a_round_up),
                         (WP.wp_next_sqrt_price_from_b_round_down, R.wp_next_from_b_round_down)):
            st, h, l = kfn(*_split(p0), *_split(liq), U(amt), ru)
            rs, rv = _wp_status(rfn, p0, liq, amt, ru)
            assert _name(st) == rs, (kfn.__name__, p0, liq, amt, ru, _name(st), rs)
            if rs == "ok":
                assert W.join128(h, l) == rv


def test_whirlpool_next_price_properties_from_the_program():
    """token_math.rs proptests: the next price never takes more input / gives less output than asked."""
    rng = random.Random(SEED + 61)
    for _ in range(400):
        sp = rng.randint(R.WP_MIN_SQRT_PRICE_X64, R.WP_MAX_SQRT_PRICE_X64)
        liq = rng.getrandbits(rng.randint(1, 100)) or 1
        amt = rng.getrandbits(rng.randint(1, 64))
        st, h, l = WP.wp_next_sqrt_price_from_b_round_down(*_split(sp), *_split(liq), U(amt), True)
        if int(st) == S.AMM_OK:
            p3 = W.join128(h, l)
            assert p3 >= sp
            st2, d = WP.wp_amount_delta_b(*_split(sp), *_split(p3), *_split(liq), True)
            if int(st2) == S.AMM_OK:
                assert amt >= int(d)
        st, h, l = WP.wp_next_sqrt_price_from_a_round_up(*_split(sp), *_split(liq), U(amt), True)
        if int(st) == S.AMM_OK:
            st2, d = WP.wp_amount_delta_a(*_split(sp), *_split(W.join128(h, l)), *_split(liq), True)
            assert int(st2) == S.AMM_OK and amt >= int(d)


def test_whirlpool_compute_swap_matches_python_integers():
    rng = random.Random(SEED + 62)
    for _ in range(1500):
        sp, tgt, liq = _rand_price(rng), _rand_price(rng), _rand_liq(rng)
        amt = _rand_u64(rng)
        is_input = rng.random() < 0.5
        a_to_b = sp >= tgt
        fee = rng.choice([0, 1, 100, 300, 3000, 10_000, 60_000, 999_999, 1_000_000])
        got = WP.wp_compute_swap(U(amt), U(fee), *_split(liq), *_split(sp), *_split(tgt), is_input, a_to_b)
        rs, rv = _wp_status(R.wp_compute_swap, amt, fee, liq, sp, tgt, is_input, a_to_b)
        assert _name(got[0]) == rs, (amt, fee, liq, sp, tgt, is_input, a_to_b, _name(got[0]), rs)
        if rs == "ok":
            a_in, a_out, nxt, f = rv
            assert (int(got[1]), int(got[2]), W.join128(got[3], got[4]), int(got[5])) == (a_in, a_out, nxt, f)


def test_whirlpool_within_tick_matches_python_integers_and_flags_crossings():
    rng = random.Random(SEED + 63)
    seen = {"cross": 0, "incomplete": 0, "limit": 0, "inside": 0}
    for _ in range(1500):
        t = rng.randint(-150_000, 150_000)
        spacing = rng.choice([1, 8, 64, 128])
        sp = R.tick_sqrt_price(t) + rng.randint(0, 1 << 30)
        a_to_b = rng.random() < 0.5
        base = (t // spacing) * spacing
        k = rng.randint(0, 3)
        tick = R.tick_sqrt_price(base - spacing * k) if a_to_b else R.tick_sqrt_price(base + spacing * (k + 1))
        limit = 0
        if rng.random() < 0.3:
            limit = rng.randint(min(sp, tick) - (1 << 40), max(sp, tick) + (1 << 40))
        liq = rng.getrandbits(rng.randint(20, 100)) or 1
        amt = rng.getrandbits(rng.randint(1, 64)) or 1
        is_input = rng.random() < 0.5
        fee = rng.choice([100, 300, 500, 3000, 10_000, 65_535])
        got = WP.wp_swap_within_tick(U(amt), U(fee), *_split(liq), *_split(sp), *_split(limit), *_split(tick),
                                    is_input, a_to_b)
        rs, rv = _wp_status(R.wp_swap_within_tick, amt, fee, liq, sp, limit, tick, is_input, a_to_b)
        assert _name(got[0]) == rs, (amt, fee, liq, sp, limit, tick, is_input, a_to_b, _name(got[0]), rs)
        if rs != "ok":
            continue
        a_in, a_out, f, nxt, flags = rv
        assert (int(got[1]), int(got[2]), int(got[3]), W.join128(got[4], got[5]), int(got[6])) == rv
        if flags & WP.WP_CROSSES_TICK:
            seen["cross"] += 1
            assert nxt == tick
        if flags & WP.WP_INCOMPLETE:
            seen["incomplete"] += 1
            assert nxt != sp or a_in == 0
        if flags & WP.WP_AT_LIMIT:
            seen["limit"] += 1
        if flags == 0:
            seen["inside"] += 1
            assert (a_in + f == amt) if is_input else (a_out == amt)
            assert (tick < nxt <= sp) if a_to_b else (sp <= nxt < tick)
    assert min(seen.values()) > 20, seen


def test_whirlpool_within_tick_validates_like_the_program():
    sp = R.tick_sqrt_price(0)
    tick_lo, tick_hi = R.tick_sqrt_price(-64), R.tick_sqrt_price(64)
    liq = 10**12

    def run(amount, limit, tick, a_to_b):
        return _name(WP.wp_swap_within_tick(U(amount), U(3000), *_split(liq), *_split(sp), *_split(limit),
                                           *_split(tick), True, a_to_b)[0])

    assert run(0, 0, tick_lo, True) == "zero_amount"
    assert run(10, sp + 1, tick_lo, True) == "limit_direction"
    assert run(10, sp - 1, tick_hi, False) == "limit_direction"
    assert run(10, 1, tick_lo, True) == "price_out_of_bounds"
    assert run(10, 0, tick_lo, True) == "ok"
    # a 1-unit swap stays inside the tick; a huge one crosses it and is incomplete
    st, a_in, a_out, fee, h, l, flags = WP.wp_swap_within_tick(U(1), U(3000), *_split(liq), *_split(sp), U(0), U(0),
                                                              *_split(tick_lo), True, True)
    assert int(flags) == 0 and int(a_in) + int(fee) == 1
    st, a_in, a_out, fee, h, l, flags = WP.wp_swap_within_tick(U(M64), U(3000), *_split(liq), *_split(sp), U(0), U(0),
                                                              *_split(tick_lo), True, True)
    assert int(flags) == WP.WP_CROSSES_TICK | WP.WP_INCOMPLETE and W.join128(h, l) == tick_lo


def test_whirlpool_full_range_exact_in_takes_the_exceeds_max_path():
    """A full-range pool: the token-a delta to the minimum price exceeds u64 (ExceedsMax),
    which the program reads as "not a max swap" rather than an error."""
    sp, liq = R.tick_sqrt_price(0), 1 << 100
    st, d = WP.wp_amount_delta_a(*_split(sp), *_split(R.WP_MIN_SQRT_PRICE_X64), *_split(liq), True)
    assert _name(st) == "exceeds_u64"
    got = WP.wp_swap_within_tick(U(10**9), U(3000), *_split(liq), *_split(sp), U(0), U(0),
                                *_split(R.WP_MIN_SQRT_PRICE_X64), True, True)
    want = R.wp_swap_within_tick(10**9, 3000, liq, sp, 0, R.WP_MIN_SQRT_PRICE_X64, True, True)
    assert int(got[0]) == S.AMM_OK
    assert (int(got[1]), int(got[2]), int(got[3]), W.join128(got[4], got[5]), int(got[6])) == want
    assert want[4] == 0 and want[0] + want[2] == 10**9
