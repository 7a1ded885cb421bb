# SHIM(issue 14): re-exports for importers not yet moved; removed at integration
"""Former home of the exact AMM maths, now engine/market/ (wide.py, amm_status.py,
constant_product.py, whirlpool.py)."""

from .market.amm_status import (AMM_ERR_BAD_FEE, AMM_ERR_DIV_ZERO, AMM_ERR_EXCEEDS_U64, AMM_ERR_INSUFFICIENT,
                                AMM_ERR_LIMIT_DIRECTION, AMM_ERR_OVERFLOW, AMM_ERR_PRICE_BOUNDS, AMM_ERR_ZERO_AMOUNT,
                                AMM_ERR_ZERO_OUT, AMM_OK, AMM_STATUS_NAMES)
from .market.constant_product import (ARB_POLISH, CPMM_FEE_RATE_DEN, RAYDIUM_V4_FEE_DEN, RAYDIUM_V4_FEE_NUM,
                                      cp_amount_in, cp_amount_out, cp_fee, cpmm_amount_in, cpmm_amount_out,
                                      min_amount_in_for_out, optimal_two_pool_arb_in, price_impact,
                                      raydium_v4_amount_in, raydium_v4_amount_out, two_pool_round_trip)
from .market.whirlpool import (WP_AT_LIMIT, WP_CROSSES_TICK, WP_FEE_DEN_U, WP_FEE_RATE_DEN, WP_INCOMPLETE, WP_MAX_H,
                               WP_MAX_L, WP_MAX_SQRT_PRICE_X64, WP_MIN_H, WP_MIN_L, WP_MIN_SQRT_PRICE_X64,
                               wp_amount_delta_a, wp_amount_delta_b, wp_compute_swap,
                               wp_next_sqrt_price_from_a_round_up, wp_next_sqrt_price_from_b_round_down,
                               wp_swap_within_tick)
from .market.wide import (B32, CEIL_PLAIN, CEIL_RAYDIUM, M32, TOP_BIT, U0, U1, U2, U32, U63, U64, UMAX, add128, add256,
                          ceil_div128, divlu, divmod128, divmod256, join128, lt128, lt256, mul64, mul128, nlz64,
                          split128, sub128, sub256, u256_to_float)

__all__ = ["AMM_ERR_BAD_FEE", "AMM_ERR_DIV_ZERO", "AMM_ERR_EXCEEDS_U64", "AMM_ERR_INSUFFICIENT",
           "AMM_ERR_LIMIT_DIRECTION", "AMM_ERR_OVERFLOW", "AMM_ERR_PRICE_BOUNDS", "AMM_ERR_ZERO_AMOUNT",
           "AMM_ERR_ZERO_OUT", "AMM_OK", "AMM_STATUS_NAMES", "ARB_POLISH", "CPMM_FEE_RATE_DEN", "RAYDIUM_V4_FEE_DEN",
           "RAYDIUM_V4_FEE_NUM", "cp_amount_in", "cp_amount_out", "cp_fee", "cpmm_amount_in", "cpmm_amount_out",
           "min_amount_in_for_out", "optimal_two_pool_arb_in", "price_impact", "raydium_v4_amount_in",
           "raydium_v4_amount_out", "two_pool_round_trip", "WP_AT_LIMIT", "WP_CROSSES_TICK", "WP_FEE_DEN_U",
           "WP_FEE_RATE_DEN", "WP_INCOMPLETE", "WP_MAX_H", "WP_MAX_L", "WP_MAX_SQRT_PRICE_X64", "WP_MIN_H",
           "WP_MIN_L", "WP_MIN_SQRT_PRICE_X64", "wp_amount_delta_a", "wp_amount_delta_b", "wp_compute_swap",
           "wp_next_sqrt_price_from_a_round_up", "wp_next_sqrt_price_from_b_round_down", "wp_swap_within_tick",
           "B32", "CEIL_PLAIN", "CEIL_RAYDIUM", "M32", "TOP_BIT", "U0", "U1", "U2", "U32", "U63", "U64", "UMAX",
           "add128", "add256", "ceil_div128", "divlu", "divmod128", "divmod256", "join128", "lt128", "lt256", "mul64",
           "mul128", "nlz64", "split128", "sub128", "sub256", "u256_to_float"]
