# SHIM(issue 14): re-exports for importers not yet moved; removed at integration
"""Former home of pool state and detection, now engine/market/ (transaction.py, counters.py,
prices.py, pools.py, emit.py, sandwich.py, arbitrage.py, liquidation.py)."""

from .market.arbitrage import ARB_POLISH3
from .market.counters import (D_APPLIED, D_EVENT_REJECTS, D_EXACT_ARB2, D_EXACT_ARB3, D_EXACT_SANDWICH, D_FAILED_TX,
                              D_OPP_ROWS_FULL, D_OPPS, D_POOL_UNRESOLVED, D_SWAPS, D_UNKNOWN_POOL, D_UNPRICED,
                              DETECT_COUNTER_NAMES, N_DETECT_COUNTERS)
from .market.emit import FLOAT_MARGIN
from .market.liquidation import LIQ_CLOSE_DIVISOR
from .market.pools import MS
from .market.prices import init_health, init_prices, oracle_price, price_sol
from .market.transaction import OPPS_PER_TX_MAX, SWAPS_PER_TX_MAX, market_tx

__all__ = ["ARB_POLISH3", "D_APPLIED", "D_EVENT_REJECTS", "D_EXACT_ARB2", "D_EXACT_ARB3", "D_EXACT_SANDWICH",
           "D_FAILED_TX", "D_OPP_ROWS_FULL", "D_OPPS", "D_POOL_UNRESOLVED", "D_SWAPS", "D_UNKNOWN_POOL", "D_UNPRICED",
           "DETECT_COUNTER_NAMES", "N_DETECT_COUNTERS", "FLOAT_MARGIN", "LIQ_CLOSE_DIVISOR", "MS", "init_health",
           "init_prices", "oracle_price", "price_sol", "OPPS_PER_TX_MAX", "SWAPS_PER_TX_MAX", "market_tx"]
