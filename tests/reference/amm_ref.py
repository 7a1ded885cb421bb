"""Slow, obvious twins of the exact AMM maths (engine/market/: wide.py, constant_product.py,
whirlpool.py) in Python integers (arbitrary precision).

Each function is a line-by-line transcription of the program source it names (Rust
``u128`` / ``U128`` / ``U256`` become Python ints; a Rust overflow, ``checked_*`` None or
``unwrap`` panic becomes ``AmmFail(name)``). Used to check the kernels bit for bit.
"""

from __future__ import annotations

U64_MAX = (1 << 64) - 1
U128_MAX = (1 << 128) - 1
U256_MAX = (1 << 256) - 1
WP_MIN_SQRT_PRICE_X64 = 4295048016
WP_MAX_SQRT_PRICE_X64 = 79226673515401279992447579055


class AmmFail(Exception):
    def __init__(self, name):
        super().__init__(name)
        self.name = name


def _u128(x):
    if x > U128_MAX or x < 0:
        raise AmmFail("overflow")
    return x


# --- Raydium / SPL ceil divisions ----------------------------------------------------------------

def ceil_div_plain(a: int, b: int) -> int:
    if b == 0:
        raise AmmFail("div_zero")
    return -(-a // b)


def ceil_div_raydium(a: int, b: int) -> int:
    """raydium-amm math.rs / raydium-cp-swap utils/math.rs ``CheckedCeilDiv`` (u128): the quotient."""
    if b == 0:
        raise AmmFail("div_zero")
    q = a // b
    if q == 0:
        if _u128(a * 2) >= b:          # self.checked_mul(2)?
            return 1
        return 0
    if a % b > 0:
        q += 1
    return q


CEIL = {0: ceil_div_plain, 1: ceil_div_raydium}


# --- Raydium AMM v4 (processor.rs process_swap_base_in / _out, math.rs Calculator) -----------------

def raydium_v4_amount_out(amount_in, reserve_in, reserve_out, num=25, den=10_000, kind=1):
    """(amount_out, swap_fee) of SwapBaseIn; AmmFail on what the program rejects."""
    if amount_in == 0:
        raise AmmFail("zero_amount")
    if den == 0 or num > den:
        raise AmmFail("bad_fee")
    fee = CEIL[kind](amount_in * num, den)
    net = amount_in - fee
    if reserve_in + net == 0:
        raise AmmFail("div_zero")
    out = reserve_out * net // (reserve_in + net)
    if out == 0:
        raise AmmFail("zero_out")
    if out >= reserve_out:
        raise AmmFail("insufficient_reserve")
    return out, fee


def raydium_v4_amount_in(amount_out, reserve_in, reserve_out, num=25, den=10_000, kind=1):
    """(amount_in, swap_fee) of SwapBaseOut."""
    if amount_out == 0:
        raise AmmFail("zero_amount")
    if den == 0 or num >= den:
        raise AmmFail("bad_fee")
    if amount_out >= reserve_out:
        raise AmmFail("insufficient_reserve")
    before = CEIL[kind](reserve_in * amount_out, reserve_out - amount_out)
    if before > U64_MAX:               # before_fee.as_u64() / u128 mul overflow
        raise AmmFail("overflow")
    after = CEIL[kind](before * den, den - num)
    if after > U64_MAX:                # .as_u64()
        raise AmmFail("overflow")
    if after == 0:                     # swap_in_after_add_fee == 0 -> InvalidInput
        raise AmmFail("zero_amount")
    return after, after - before


# --- Raydium CPMM (curve/calculator.rs, constant_product.rs, fees.rs) ----------------------------

CPMM_DEN = 1_000_000


def cpmm_amount_out(amount_in, reserve_in, reserve_out, rate):
    """(amount_out, trade_fee) of swap_base_input (no transfer fee)."""
    if amount_in == 0:
        raise AmmFail("zero_amount")
    if rate > CPMM_DEN:
        raise AmmFail("bad_fee")
    trade_fee = (amount_in * rate + CPMM_DEN - 1) // CPMM_DEN           # fees.rs ceil_div
    less = amount_in - trade_fee
    if reserve_in + less == 0:
        raise AmmFail("div_zero")
    out = less * reserve_out // (reserve_in + less)                    # swap_base_input_without_fees
    if out == 0:
        raise AmmFail("zero_out")
    if out >= reserve_out:
        raise AmmFail("insufficient_reserve")
    return out, trade_fee


def cpmm_amount_in(amount_out, reserve_in, reserve_out, rate):
    """(amount_in, trade_fee) of swap_base_output (no transfer fee)."""
    if amount_out == 0:
        raise AmmFail("zero_amount")
    if rate >= CPMM_DEN:
        raise AmmFail("bad_fee")
    if amount_out >= reserve_out:
        raise AmmFail("insufficient_reserve")
    swapped = ceil_div_raydium(reserve_in * amount_out, reserve_out - amount_out)   # tuple ceil, .0
    if swapped > U64_MAX:
        raise AmmFail("overflow")
    if rate == 0:
        source = swapped
    else:
        d = CPMM_DEN - rate
        source = (swapped * CPMM_DEN + d - 1) // d                     # calculate_pre_fee_amount
    if source > U64_MAX:
        raise AmmFail("overflow")
    if source == 0:                    # (kept alike for both programs: nothing to swap)
        raise AmmFail("zero_amount")
    return source, (source * rate + CPMM_DEN - 1) // CPMM_DEN


def cp_out_generic(amount_in, reserve_in, reserve_out, num, den, kind):
    """cp_amount_out's formula with either ceil (for the arbitrage search)."""
    fee = CEIL[kind](amount_in * num, den)
    net = amount_in - fee
    if reserve_in + net == 0:
        return 0
    return reserve_out * net // (reserve_in + net)


# --- Orca Whirlpool (math/token_math.rs, math/swap_math.rs) -------------------------------------

WP_FEE = 1_000_000


def _order(p0, p1):
    return (p1, p0) if p0 > p1 else (p0, p1)


class ExceedsMax(Exception):
    pass


def wp_amount_delta_a(p0, p1, liq, round_up):
    lo, up = _order(p0, p1)
    num = liq * (up - lo)
    if num << 64 > U256_MAX:           # checked_shift_word_left
        raise AmmFail("overflow")
    num <<= 64
    den = up * lo
    if den == 0:
        raise AmmFail("div_zero")
    q, r = divmod(num, den)
    if round_up and r:
        q += 1
    if q > U64_MAX:
        raise ExceedsMax()
    return q


def wp_amount_delta_b(p0, p1, liq, round_up):
    lo, up = _order(p0, p1)
    n0, n1 = liq, up - lo
    if n0 == 0 or n1 == 0:
        return 0
    p = n0 * n1
    if p > U128_MAX:
        raise ExceedsMax()
    result = p >> 64
    should_round = round_up and (p & U64_MAX) > 0
    if should_round and result == U64_MAX:
        raise ExceedsMax()
    return result + 1 if should_round else result


def wp_next_from_a_round_up(sp, liq, amount, is_input):
    if amount == 0:
        return sp
    product = sp * amount
    num = liq * sp
    if num << 64 > U256_MAX:
        raise AmmFail("overflow")
    num <<= 64
    lsl = liq << 64
    if not is_input and lsl <= product:
        raise AmmFail("div_zero")
    den = lsl + product if is_input else lsl - product
    if den == 0:
        raise AmmFail("div_zero")
    price = -(-num // den)
    if price > U128_MAX:
        raise AmmFail("overflow")
    if price < WP_MIN_SQRT_PRICE_X64 or price > WP_MAX_SQRT_PRICE_X64:
        raise AmmFail("price_out_of_bounds")
    return price


def wp_next_from_b_round_down(sp, liq, amount, is_input):
    if liq == 0:
        raise AmmFail("div_zero")
    ax = amount << 64
    delta = -(-ax // liq) if not is_input else ax // liq
    new = sp + delta if is_input else sp - delta
    if new < 0 or new > U128_MAX:
        raise AmmFail("overflow")
    return new


def _exc(fn, *a):
    """Value, or None for ExceedsMax."""
    try:
        return fn(*a)
    except ExceedsMax:
        return None


def wp_compute_swap(amount_remaining, fee_rate, liq, sp, target, is_input, a_to_b):
    """(amount_in, amount_out, next_price, fee_amount) of compute_swap (ExceedsMax-aware revision)."""
    if fee_rate >= WP_FEE:
        raise AmmFail("bad_fee")
    fixed_a = a_to_b == is_input
    fixed_fn = wp_amount_delta_a if fixed_a else wp_amount_delta_b
    unfixed_fn = wp_amount_delta_b if fixed_a else wp_amount_delta_a
    initial = _exc(fixed_fn, sp, target, liq, is_input)
    amount_calc = amount_remaining
    if is_input:
        amount_calc = amount_remaining * (WP_FEE - fee_rate) // WP_FEE
    if initial is not None and initial <= amount_calc:
        nxt = target
    else:
        nxt = (wp_next_from_a_round_up if fixed_a else wp_next_from_b_round_down)(sp, liq, amount_calc, is_input)
    is_max = nxt == target
    unfixed = _exc(unfixed_fn, sp, nxt, liq, not is_input)
    if unfixed is None:
        raise AmmFail("overflow")
    if not is_max or initial is None:
        fixed = _exc(fixed_fn, sp, nxt, liq, is_input)
        if fixed is None:
            raise AmmFail("overflow")
    else:
        fixed = initial
    if is_input:
        a_in, a_out = fixed, unfixed
    else:
        a_in, a_out = unfixed, fixed
        a_out = min(a_out, amount_remaining)
    if is_input and not is_max:
        fee = amount_remaining - a_in
    else:
        fee = -(-(a_in * fee_rate) // (WP_FEE - fee_rate))
        if fee > U64_MAX:
            raise AmmFail("overflow")
    return a_in, a_out, nxt, fee


def wp_swap_within_tick(amount, fee_rate, liq, sp, limit, tick, is_input, a_to_b):
    """(amount_in, amount_out, fee, next_price, flags) as engine/market/whirlpool.py wp_swap_within_tick."""
    if amount == 0:
        raise AmmFail("zero_amount")
    if limit == 0:
        limit = WP_MIN_SQRT_PRICE_X64 if a_to_b else WP_MAX_SQRT_PRICE_X64
    if not WP_MIN_SQRT_PRICE_X64 <= limit <= WP_MAX_SQRT_PRICE_X64:
        raise AmmFail("price_out_of_bounds")
    if (a_to_b and limit >= sp) or (not a_to_b and limit <= sp):
        raise AmmFail("limit_direction")
    target = max(tick, limit) if a_to_b else min(tick, limit)
    at_tick = target == tick
    a_in, a_out, nxt, fee = wp_compute_swap(amount, fee_rate, liq, sp, target, is_input, a_to_b)
    flags = 0
    if nxt == target:
        if at_tick:
            flags |= 1
        if nxt == limit:
            flags |= 4
    used = a_in + fee if is_input else a_out
    if used < amount and not flags & 4:
        flags |= 2
    return a_in, a_out, fee, nxt, flags


def tick_sqrt_price(tick: int) -> int:
    """Q64.64 sqrt(1.0001**tick), rounded (for test inputs only; the program uses a bit table)."""
    from decimal import Decimal, getcontext
    getcontext().prec = 60
    return int((Decimal("1.0001") ** tick).sqrt() * (Decimal(2) ** 64))
