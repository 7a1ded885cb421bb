"""The market's swap and detection counters: the rows of ``EngineState.dcount``."""

from __future__ import annotations

D_SWAPS = 0               # swap events on snapshot pools
D_UNKNOWN_POOL = 1        # swap events on pools not in the snapshot
D_POOL_UNRESOLVED = 2     # swap events whose pool is in a lookup table the snapshot lacks
D_APPLIED = 3
D_FAILED_TX = 4           # transactions whose swaps failed (none applied)
D_OPPS = 5
D_OPP_ROWS_FULL = 6       # opportunities not written for lack of rows (never with the caller's room)
D_EXACT_SANDWICH = 7      # sandwich candidates that passed the float filter (sized exactly)
D_UNPRICED = 8            # candidates skipped because a token has no SOL price
D_EVENT_REJECTS = 9       # instructions of a known program whose data did not fit its layout
D_EXACT_ARB2 = 10         # two-pool arbitrage candidates sized exactly
D_EXACT_ARB3 = 11         # three-pool cycles sized exactly
DETECT_COUNTER_NAMES = ("swaps", "swaps_unknown_pool", "swaps_pool_unresolved", "swaps_applied",
                        "swap_transactions_failed", "opportunities", "opportunity_rows_full", "exact_sandwich",
                        "unpriced_candidates", "event_rejects", "exact_arb2", "exact_arb3")
N_DETECT_COUNTERS = len(DETECT_COUNTER_NAMES)
