"""Rows of the market part of the engine: swaps applied to pools, and opportunities.

``SWAP_DTYPE`` (swaps.parquet) and ``OPP_DTYPE`` (opportunities.parquet) are the records
``process_batch`` writes into ``BatchOut.swaps`` / ``BatchOut.opps``. The model's
features are one documented table (``OPP_FEATURES``), in the order the scorer reads them
(``MODEL_FEATURES``); a trained model's schema must list exactly these.
"""

from __future__ import annotations

import numpy as np

# swap row status (swaps.parquet ``status``)
SW_APPLIED = 0            # applied to the pool
SW_SLIPPAGE = 1           # the program would fail its limit (min out / max in): not applied
SW_REVERTED = 2           # another swap of the same transaction failed: not applied
SW_DIRECTION_UNRESOLVED = 3  # Raydium v4: the source account's mint is not in the snapshot
SW_AMM_ERROR = 4          # the maths says the program would fail (empty reserve, overflow, ...)
SW_CROSSES_TICK = 5       # Whirlpool: applied up to the end of the current range, flagged
SWAP_STATUS_NAMES = ("applied", "slippage", "reverted", "direction_unresolved", "amm_error", "crosses_tick")

# opportunity kinds (the store's Enum8 codes)
OPP_ARBITRAGE = 1
OPP_SANDWICH = 2
OPP_LIQUIDATION = 3
OPP_TYPE_NAMES = {OPP_ARBITRAGE: "arbitrage", OPP_SANDWICH: "sandwich", OPP_LIQUIDATION: "liquidation"}

#: name, meaning -- the model's features (float64; NaN = unknown), in scoring order
OPP_FEATURES = (
    ("f_expected_profit_sol", "expected profit after tip, SOL"),
    ("f_pool_depth_sol", "SOL value of both reserves of the first pool (oracle prices), SOL"),
    ("f_victim_slippage", "trigger swap's slack: 1 - min_out / expected out (exact out: max_in / expected in - 1); "
                          "0 when the opportunity is not a sandwich"),
    ("f_victim_priority_fee_lamports", "priority fee of the trigger transaction, lamports"),
    ("f_victim_tip_lamports", "Jito tip of the trigger transaction, lamports"),
    ("f_pool_swaps_10ms", "swaps applied to the first pool in the 10 ms before the trigger (saturates at 256)"),
    ("f_pool_swaps_100ms", "the same over 100 ms"),
    ("f_pool_swaps_1000ms", "the same over 1000 ms"),
    ("f_ms_since_slot_start", "ms since the first shred (or shred transaction) seen of the current slot, the "
                              "latest slot the stream's shreds showed; a UDP transaction carries no slot and is "
                              "placed in the current one, as a searcher watching TPU and ShredStream would; NaN "
                              "before any shred (a capture without shreds) and for a shred transaction of an "
                              "older slot"),
    ("f_tx_size", "trigger transaction size, bytes"),
    ("f_num_instructions", "trigger transaction's top-level instructions"),
    ("f_program_count", "distinct programs the trigger transaction invokes"),
    ("f_type", "1 arbitrage, 2 sandwich, 3 liquidation"),
)
MODEL_FEATURES = tuple(n for n, _ in OPP_FEATURES)
N_MODEL_FEATURES = len(MODEL_FEATURES)
(F_PROFIT, F_DEPTH, F_SLIPPAGE, F_PRIO, F_TIP, F_S10, F_S100, F_S1000, F_SLOT_MS, F_SIZE, F_NINS, F_NPROG,
 F_TYPE) = range(N_MODEL_FEATURES)

SWAP_DTYPE = np.dtype([
    ("ts_ns", np.int64), ("packet_index", np.int64), ("tx_index", np.int64), ("slot", np.int64),
    ("amount_in", np.uint64), ("amount_out", np.uint64), ("limit", np.uint64),
    ("reserve_a", np.uint64), ("reserve_b", np.uint64),
    ("pool_row", np.int32), ("instr_index", np.int16),
    ("program", np.int8), ("a_to_b", np.int8), ("exact_in", np.int8), ("status", np.int8),
], align=True)

POOLS_PER_OPP = 3
OPP_DTYPE = np.dtype([
    ("ts_ns", np.int64), ("packet_index", np.int64), ("tx_index", np.int64), ("slot", np.int64),
    ("amount_in", np.uint64), ("amount_out", np.uint64),
    ("profit_quote", np.int64), ("tip_lamports", np.int64), ("expected_profit_lamports", np.int64),
    ("expected_profit_sol", np.float64), ("detect_ns", np.int64), ("score", np.float64),
    ("features", np.float64, (N_MODEL_FEATURES,)),
    ("pools", np.int32, (POOLS_PER_OPP,)), ("profit_token", np.int32), ("position_row", np.int32),
    ("seq", np.int32),                     # opportunities of the same packet before this one (for the UUID)
    ("kind", np.int8), ("n_pools", np.int8),
    ("_sig", np.uint8, (64,)),             # the trigger transaction's first signature
], align=True)


def feature_docs() -> str:
    rows = ["| name | meaning |", "| --- | --- |"]
    return "\n".join(rows + [f"| `{n}` | {m} |" for n, m in OPP_FEATURES])
