"""Status codes of the exact AMM maths (constant_product.py, whirlpool.py).

Every AMM function returns a status first, ``AMM_OK`` or one of the ``AMM_ERR_*`` codes
(the on-chain program would fail there), and never raises.
"""

from __future__ import annotations

AMM_OK = 0
AMM_ERR_ZERO_AMOUNT = -1       # amount 0, or an exact-out swap that would take 0 in (programs reject both)
AMM_ERR_DIV_ZERO = -2          # a division by zero the program would hit (empty reserve, zero liquidity)
AMM_ERR_OVERFLOW = -3          # an intermediate or the result leaves its Rust type (the program panics / errors)
AMM_ERR_INSUFFICIENT = -4      # the output would empty the reserve (exact-out amount >= reserve; empty input side)
AMM_ERR_ZERO_OUT = -5          # the swap yields 0 out (CPMM require_gt!(amount_received, 0))
AMM_ERR_BAD_FEE = -6           # fee numerator > denominator, or a zero denominator
AMM_ERR_PRICE_BOUNDS = -7      # Whirlpool: a price outside [MIN_SQRT_PRICE_X64, MAX_SQRT_PRICE_X64]
AMM_ERR_LIMIT_DIRECTION = -8   # Whirlpool: sqrt_price_limit on the wrong side of the current price
AMM_ERR_EXCEEDS_U64 = -9       # Whirlpool: a token delta beyond u64 (AmountDeltaU64::ExceedsMax)
AMM_STATUS_NAMES = {AMM_OK: "ok", AMM_ERR_ZERO_AMOUNT: "zero_amount", AMM_ERR_DIV_ZERO: "div_zero",
                    AMM_ERR_OVERFLOW: "overflow", AMM_ERR_INSUFFICIENT: "insufficient_reserve",
                    AMM_ERR_ZERO_OUT: "zero_out", AMM_ERR_BAD_FEE: "bad_fee",
                    AMM_ERR_PRICE_BOUNDS: "price_out_of_bounds", AMM_ERR_LIMIT_DIRECTION: "limit_direction",
                    AMM_ERR_EXCEEDS_U64: "exceeds_u64"}
