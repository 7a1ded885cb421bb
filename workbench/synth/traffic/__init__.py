"""Solana wire transactions for synthetic captures: shapes built by solders, varied per packet.

Every transaction shape is compiled by solders (``Message`` / ``MessageV0.try_compile``,
``VersionedTransaction.populate``) into a few hundred *templates*. A template is the
serialized transaction plus a table of its variable fields: where each sits in the bytes
(found by writing a random sentinel and searching for it), how wide it is and how to draw
it. Per packet, ``_stage_txns`` (numba) copies a template and rewrites only those fields —
signatures, recent blockhash, amounts, compute budget, Jito tip, vote root/hash/timestamp —
so every packet is a distinct, valid transaction without a Python object per packet. With
``sign=True`` each staged message is then signed by its template's keypairs (ed25519,
solders), so ``VersionedTransaction.verify_with_results`` holds.

One module per job:

=================  ==========================================================================
protocol.py        the generator's own copy of program ids, pool accounts, instruction tags
fields.py          the variable fields: how each is drawn (``GEN_*``), where it sits (``Fields``)
world.py           the fixed cast of a seed: pools, lookup tables, program keys, wallets
instructions.py    instruction builders (compute budget, transfers, ATA, tip, Raydium swap, ...)
shapes.py          the traffic mix (``SHAPES``) and one builder per shape
templates.py       shapes compiled into templates (``build_templates`` -> ``TemplateSet``)
staging.py         per packet: copy and redraw a template (``_stage_txns``), sign it
=================  ==========================================================================

Wire format: https://solana.com/docs/core/transactions (compact-u16 signature count,
signatures, message: header, compact-u16 account keys, recent blockhash, instructions,
v0 adds the 0x80 prefix and address table lookups).

Mix of good transactions (share of transaction packets; ``SHAPES`` holds the numbers):

==================  =====  =========================================================================
shape               share  what it is
==================  =====  =========================================================================
vote                 30 %  legacy; Vote program TowerSync (tag 14, 31 lockouts, root, bank hash,
                           timestamp, block id), identity pays, 20 % with a separate authorized
                           voter (2 signatures). No compute budget, no tip. (On chain ~70 % of
                           transactions are votes; a leader sees most of them on its TPU-vote
                           port, so the TPU port mix here carries fewer.)
sol_transfer         12 %  1-3 System transfers; SetComputeUnitLimit 70 %, SetComputeUnitPrice
                           80 %; Jito tip 5 %; legacy 70 %, v0 without lookups 30 %
token_transfer       10 %  SPL Token Transfer (tag 3 + u64), 30 % with an ATA CreateIdempotent
                           before it; limit 70 %, price 80 %; legacy 70 % / v0 30 %
raydium_wallet       18 %  Raydium AMM v4 swap from a wallet: ATA CreateIdempotent, wrap SOL
                           (System transfer + SyncNative) when paying SOL, SwapBaseIn 85 % /
                           SwapBaseOut 15 %, CloseAccount of the wSOL account; limit 90 %,
                           price 95 %, tip 15 %; v0 with 1-2 lookup tables 60 %, legacy 40 %
raydium_bot          15 %  searcher swap: limit and price always (price 1e5-1e8 micro-lamports),
                           SwapBaseIn 80 % / SwapBaseOut 20 %, Jito tip 70 % (last 80 %, first
                           20 %); v0 with 1-3 lookup tables (pool, common, the bot's own)
arb_bot               7 %  two SwapBaseIn through two pools of the same pair (A->B->A), tip 100 %;
                           v0 with 2-3 lookup tables
multisig              5 %  fee payer + 1-2 co-signers each moving SOL or SPL tokens; budget 50 %;
                           legacy (2-3 signatures)
memo                  3 %  Memo + System transfer; limit 30 %, price 60 %; legacy 70 % / v0 30 %
==================  =====  =========================================================================

Within a shape, template popularity follows a Zipf-like law (a few busy wallets and
bots, a long tail); votes are uniform (one template per validator). A fixed set of
Raydium pools (``N_POOLS``, pairs of twins for arbitrage, accounts derived from the
seed, authority and market program the real ones) recurs across the capture. Amounts
are log-uniform per template; a swap's limit (minimum out / maximum in) follows from the
amount and the pool's price with 0.5-10 % slippage. Jito tips are 1,000-1,000,000
lamports to one of the 8 real tip accounts. The recent blockhash is a per-slot hash
(400 ms slots) 1-60 slots old; votes use 1-4 slots old and root = slot - 32..34.

Market mode (``build_templates(..., market=spec)``, synth/market/): the pools are the
market's (twins first, then single pools; every shape draws from all of them, arb bots from
the twins), every template records where its Raydium swaps sit (``SwapMeta``: data offset,
pool, direction, user accounts and mints, the wrap transfer paying it) so the market walk can
rewrite amounts and limits, bots' own lookup tables never hold the token accounts their swaps
pay from (the engine reads a Raydium v4 swap's direction from its source account), and
``SEARCHER_TEMPLATES`` single-swap searcher templates per pool and direction (shape
raydium_bot, probability 0) carry the injected and closing swaps.

Oversized transactions (the ``too_long`` bad kind) come from their own family: a
well-formed legacy transaction whose Memo makes it 1,240-1,460 bytes.

Protocol constants (protocol.py) are deliberately the generator's own copy (an independent
twin of the decoders in ``wire/``, which the generated captures test), but for those with one
home in ``wire.keys``: the WSOL and USDC mints, the Raydium AMM v4 program id, the Jito tip
accounts.
"""
