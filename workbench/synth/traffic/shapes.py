"""The transaction shapes of the traffic mix (``SHAPES``) and their builders.

Each builder draws one transaction of its shape from the world's generator and returns
(payer, extra signers, instructions, lookup tables or None for legacy, blockhash lag in
slots); ``BUILDERS`` lists them in ``SHAPES`` order. ``shape_too_long`` builds the oversized
family, ``shape_searcher_swap`` the market's injected and closing swaps.
"""

from __future__ import annotations

from dataclasses import dataclass

from .instructions import (ascii_text, ata_create, compute_budget, instruction, jito_tip, memo_instruction,
                           raydium_swap, system_transfer, token_transfer, tower_sync)
from .protocol import TOKEN_CLOSE_ACCOUNT, TOKEN_SYNC_NATIVE
from .world import N_POOLS


@dataclass(frozen=True)
class Shape:
    name: str
    share: float          # fraction of good transaction packets
    zipf: bool            # Zipf popularity across templates (else uniform)


SHAPES = (
    Shape("vote", 0.30, False),
    Shape("sol_transfer", 0.12, True),
    Shape("token_transfer", 0.10, True),
    Shape("raydium_wallet", 0.18, True),
    Shape("raydium_bot", 0.15, True),
    Shape("arb_bot", 0.07, True),
    Shape("multisig", 0.05, True),
    Shape("memo", 0.03, True),
)
SHAPE_TOO_LONG = len(SHAPES)   # shape code of the oversized family
SHAPE_NAMES = tuple(s.name for s in SHAPES) + ("too_long",)


def _shape_vote(w, f):
    identity = w.wallet()
    authority = w.wallet() if w.rng.random() < 0.2 else identity
    ixs = [tower_sync(w, f, w.key(), authority.pubkey())]
    return identity, [authority], ixs, None, (1, 4)


def _v0_or_legacy(w, p_v0):
    return [] if w.rng.random() < p_v0 else None


def _shape_sol_transfer(w, f):
    payer = w.wallet()
    ixs = compute_budget(w, f, 0.7, 0.8, (300, 3_000), (1_000, 200_000))
    lo = w.log_uniform(1e5, 1e10)
    for _ in range(int(w.rng.choice([1, 2, 3], p=[0.85, 0.1, 0.05]))):
        ixs.append(system_transfer(f, payer.pubkey(), w.key(), lo, lo * w.log_uniform(2, 100)))
    if w.rng.random() < 0.05:
        ixs.append(jito_tip(w, f, payer.pubkey()))
    return payer, [], ixs, _v0_or_legacy(w, 0.3), (1, 60)


def _token_mints(w):
    return [w.usdc] + [p.coin_mint for p in w.pools[::2]]


def _shape_token_transfer(w, f):
    payer = w.wallet()
    mints = _token_mints(w)
    mint = mints[int(w.rng.integers(len(mints)))]
    ixs = compute_budget(w, f, 0.7, 0.8, (5_000, 60_000), (1_000, 500_000))
    dest_owner = w.key()
    src = w.ata_of(payer.pubkey(), mint)
    if w.rng.random() < 0.3:
        dst, create = ata_create(w, payer.pubkey(), dest_owner, mint)
        ixs.append(create)
    else:
        dst = w.ata_of(dest_owner, mint)
    lo = w.log_uniform(1e3, 1e9)
    ixs.append(token_transfer(w, f, src, dst, payer.pubkey(), lo, lo * w.log_uniform(2, 1000)))
    return payer, [], ixs, _v0_or_legacy(w, 0.3), (1, 60)


def _pool(w) -> int:
    return int(w.rng.integers(w.n_pools))


def _slip(w) -> float:
    return float(w.rng.uniform(0.005, 0.10))


def _shape_raydium_wallet(w, f):
    payer = w.wallet()
    me = payer.pubkey()
    pool = w.pools[_pool(w)]
    coin_to_pc = bool(w.rng.random() < 0.5)
    base_out = bool(w.rng.random() < 0.15)
    src_mint, dst_mint = (pool.coin_mint, pool.pc_mint) if coin_to_pc else (pool.pc_mint, pool.coin_mint)
    src_ata, dst_ata = w.ata_of(me, src_mint), w.ata_of(me, dst_mint)
    ixs = compute_budget(w, f, 0.9, 0.95, (60_000, 400_000), (10_000, 2_000_000))
    lo = w.log_uniform(1e4, 1e9)
    amount = (lo, lo * w.log_uniform(10, 1000))
    wrap = src_mint == w.wsol
    unwrap = wrap or dst_mint == w.wsol
    chained = False
    if wrap:
        _, create = ata_create(w, me, me, w.wsol)
        ixs.append(create)
        if not base_out:
            ixs.append(system_transfer(f, me, src_ata, *amount))     # wrap exactly amount_in
            chained = True
        else:
            ixs.append(system_transfer(f, me, src_ata, amount[0], amount[1] * 1.1))
        f.wrap = f.items[-1][0]
        ixs.append(instruction(w.token, bytes([TOKEN_SYNC_NATIVE]), [(src_ata, False, True)]))
    elif w.rng.random() < 0.6:
        ixs.append(ata_create(w, me, me, dst_mint)[1])
    ixs.append(raydium_swap(w, f, pool, src_ata, dst_ata, me, base_out, coin_to_pc, amount, _slip(w),
                            chained=chained))
    if unwrap:
        wsol_ata = src_ata if wrap else dst_ata
        ixs.append(instruction(w.token, bytes([TOKEN_CLOSE_ACCOUNT]),
                               [(wsol_ata, False, True), (me, False, True), (me, True, False)]))
    if w.rng.random() < 0.15:
        ixs.append(jito_tip(w, f, me))
    tables = None
    if w.rng.random() < 0.6:
        tables = [pool.table] if w.rng.random() < 0.5 else [w.common_table, pool.table]
    return payer, [], ixs, tables, (1, 60)


def _bot_table(w, owner):
    if w.market is not None:
        # market mode: the bot's table holds other accounts of its own, never the token accounts its
        # swaps pay from (a source loaded from a table cannot tell the engine the swap's direction)
        return w.table([w.key() for _ in range(10)])
    keys = [w.ata_of(owner, m) for m in {bytes(p.coin_mint): p.coin_mint for p in w.pools}.values()]
    keys += [w.ata_of(owner, w.wsol), w.ata_of(owner, w.usdc)] + [w.key() for _ in range(8)]
    return w.table(keys)


def _shape_raydium_bot(w, f):
    payer = w.wallet()
    me = payer.pubkey()
    pool = w.pools[_pool(w)]
    coin_to_pc = bool(w.rng.random() < 0.5)
    base_out = bool(w.rng.random() < 0.2)
    src_mint, dst_mint = (pool.coin_mint, pool.pc_mint) if coin_to_pc else (pool.pc_mint, pool.coin_mint)
    ixs = compute_budget(w, f, 1.0, 1.0, (60_000, 300_000), (100_000, 10_000_000))
    lo = w.log_uniform(1e5, 1e10)
    swap = raydium_swap(w, f, pool, w.ata_of(me, src_mint), w.ata_of(me, dst_mint), me, base_out, coin_to_pc,
                        (lo, lo * w.log_uniform(10, 1000)), _slip(w))
    ixs.append(swap)
    if w.rng.random() < 0.7:
        tip = jito_tip(w, f, me)
        if w.rng.random() < 0.8:
            ixs.append(tip)
        else:
            ixs.insert(0, tip)
    n_tables = int(w.rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    tables = [[pool.table], [w.common_table, pool.table], [w.common_table, pool.table, _bot_table(w, me)]][n_tables - 1]
    return payer, [], ixs, tables, (1, 20)


def _shape_arb_bot(w, f):
    payer = w.wallet()
    me = payer.pubkey()
    k = 2 * int(w.rng.integers(N_POOLS // 2))
    a, b = (w.pools[k], w.pools[k + 1]) if w.rng.random() < 0.5 else (w.pools[k + 1], w.pools[k])
    ixs = compute_budget(w, f, 1.0, 1.0, (100_000, 400_000), (100_000, 10_000_000))
    pc_ata, coin_ata = w.ata_of(me, a.pc_mint), w.ata_of(me, a.coin_mint)
    lo = w.log_uniform(1e6, 1e10)
    ixs.append(raydium_swap(w, f, a, pc_ata, coin_ata, me, False, False, (lo, lo * w.log_uniform(10, 100)),
                            _slip(w)))
    ixs.append(raydium_swap(w, f, b, coin_ata, pc_ata, me, False, True, (1.0, 1.0), _slip(w), chained=True))
    ixs.append(jito_tip(w, f, me))
    tables = [a.table, b.table]
    if w.rng.random() < 0.5:
        tables = [w.common_table] + tables
    return payer, [], ixs, tables, (1, 10)


def _shape_multisig(w, f):
    payer = w.wallet()
    cosigners = [w.wallet() for _ in range(int(w.rng.choice([1, 2], p=[0.7, 0.3])))]
    ixs = compute_budget(w, f, 0.5, 0.5, (5_000, 100_000), (1_000, 1_000_000))
    mints = _token_mints(w)
    for c in cosigners:
        if w.rng.random() < 0.5:
            lo = w.log_uniform(1e5, 1e10)
            ixs.append(system_transfer(f, c.pubkey(), w.key(), lo, lo * w.log_uniform(2, 100)))
        else:
            mint = mints[int(w.rng.integers(len(mints)))]
            lo = w.log_uniform(1e3, 1e9)
            ixs.append(token_transfer(w, f, w.ata_of(c.pubkey(), mint), w.ata_of(w.key(), mint), c.pubkey(),
                                      lo, lo * w.log_uniform(2, 100)))
    return payer, cosigners, ixs, None, (1, 60)


def _shape_memo(w, f):
    payer = w.wallet()
    ixs = compute_budget(w, f, 0.3, 0.6, (5_000, 50_000), (1_000, 100_000))
    ixs.append(memo_instruction(w, ascii_text(w, int(w.rng.integers(8, 65))), payer.pubkey()))
    lo = w.log_uniform(1e4, 1e9)
    ixs.append(system_transfer(f, payer.pubkey(), w.key(), lo, lo * 10))
    return payer, [], ixs, _v0_or_legacy(w, 0.3), (1, 60)


def shape_too_long(w, f, memo_sz: int):
    payer = w.wallet()
    ixs = compute_budget(w, f, 0.0, 1.0, (0, 0), (1_000, 100_000))
    ixs.append(memo_instruction(w, ascii_text(w, memo_sz), payer.pubkey()))
    lo = w.log_uniform(1e4, 1e9)
    ixs.append(system_transfer(f, payer.pubkey(), w.key(), lo, lo * 10))
    return payer, [], ixs, None, (1, 60)


BUILDERS = (_shape_vote, _shape_sol_transfer, _shape_token_transfer, _shape_raydium_wallet,
            _shape_raydium_bot, _shape_arb_bot, _shape_multisig, _shape_memo)



def shape_searcher_swap(w, f, pool_idx: int, coin_to_pc: bool):
    """A searcher's single exact-in swap on a given pool and direction (market mode: the
    injected victims, dislocations, oracle moves and competitors' back-runs; never drawn for
    the baseline). Compute budget and a Jito tip always; v0 with the pool's table."""
    payer = w.wallet()
    me = payer.pubkey()
    pool = w.pools[pool_idx]
    src_mint, dst_mint = (pool.coin_mint, pool.pc_mint) if coin_to_pc else (pool.pc_mint, pool.coin_mint)
    ixs = compute_budget(w, f, 1.0, 1.0, (60_000, 300_000), (100_000, 10_000_000))
    ixs.append(raydium_swap(w, f, pool, w.ata_of(me, src_mint), w.ata_of(me, dst_mint), me, False, coin_to_pc,
                            (1e6, 1e9), 0.01))
    ixs.append(jito_tip(w, f, me))
    tables = [pool.table] if w.rng.random() < 0.5 else [w.common_table, pool.table]
    return payer, [], ixs, tables, (1, 20)
