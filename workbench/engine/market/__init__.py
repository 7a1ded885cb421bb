"""The market domain of the engine: pool state and opportunity detection, inside the jitted loop.

A market snapshot (a folder of Parquet files) loads into the ``Market`` tuple of arrays;
``process_batch`` (engine/pipeline.py) hands every decoded transaction that invokes a DEX
program to ``market_tx``, which applies its swaps to the pools and runs the detectors.

=====================  ==================================================================
snapshot.py            read and validate a snapshot folder into a Market; write one
layout.py              the Market tuple and the named indices into it (PK_*, WP_*, M_*)
wide.py                u128 / u256 integers as 64-bit limbs (numba has no wider integer)
amm_status.py          the AMM functions' status codes
constant_product.py    Raydium AMM v4 and CPMM exact maths, two-pool arbitrage sizing
whirlpool.py           Orca Whirlpool exact maths within the current tick
prices.py              token prices in SOL from the oracle pools, position health
pools.py               a swap's pool, direction and result; applying it; swap rows
emit.py                the tip filter every candidate passes, the opportunity row writer
sandwich.py            the sandwich detector
arbitrage.py           the two-pool and three-pool arbitrage detectors
liquidation.py         the liquidation detector
transaction.py         ``market_tx``: one transaction through pools and detectors
counters.py            the swap and detection counters (``dcount`` rows)
=====================  ==================================================================

Exactness. Amounts, reserves and profits are exact program integers (wide.py,
constant_product.py, whirlpool.py). Profits in SOL are float64 (price = reserve ratio of
the oracle pool). Whirlpools are tracked within the current tick range; the detectors
consider constant-product pools only.
"""
