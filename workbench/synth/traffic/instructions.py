"""Instruction builders (solders) for the shapes: compute budget, System and SPL Token
transfers, the associated token account, a Jito tip, a Raydium AMM v4 swap in the program's
account order, a Vote TowerSync, a Memo. Every variable field is recorded in the template's
``Fields`` as it is written.
"""

from __future__ import annotations

import numpy as np

from ...wire.programs.raydium_amm_v4 import RAY_SWAP_BASE_IN, RAY_SWAP_BASE_OUT
from ...wire.programs.spl_token import TOKEN_TRANSFER
from .fields import (GEN_AMOUNT, GEN_BLOCK_ID, GEN_CU_LIMIT, GEN_CU_PRICE, GEN_SCALED, GEN_TIP, GEN_VOTE_HASH,
                     GEN_VOTE_ROOT, GEN_VOTE_TS, Fields)
from .protocol import ATA_CREATE_IDEMPOTENT, VOTE_LOCKOUTS, VOTE_TOWER_SYNC
from .world import Pool, World

CU_PRICE_MAX = 100_000_000     # micro-lamports per CU: the top of the priority-fee tail (0.03 SOL at 300k CU)


def instruction(program, data: bytes, metas):
    from solders.instruction import AccountMeta, Instruction
    return Instruction(program, data, [AccountMeta(k, s, w) for k, s, w in metas])


def compute_budget(w: World, f: Fields, p_limit: float, p_price: float, limit: tuple, price: tuple) -> list:
    """ComputeBudget SetComputeUnitLimit / SetComputeUnitPrice, each with its probability."""
    from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
    out = []
    if w.rng.random() < p_limit:
        lo = int(w.rng.integers(limit[0], limit[1] + 1))
        hi = lo if w.rng.random() < 0.5 else min(1_400_000, int(lo * w.rng.uniform(1.1, 3.0)))
        out.append(set_compute_unit_limit(f.u32(GEN_CU_LIMIT, lo, hi)))
    if w.rng.random() < p_price:
        lo = w.log_uniform(*price)
        hi = min(CU_PRICE_MAX, lo * w.log_uniform(1.5, 10.0))
        out.append(set_compute_unit_price(f.u64(GEN_CU_PRICE, lo, hi)))
    if len(out) == 2 and w.rng.random() < 0.2:
        out.reverse()
    return out


def system_transfer(f: Fields, src, dst, lo: float, hi: float):
    from solders.system_program import TransferParams, transfer
    return transfer(TransferParams(from_pubkey=src, to_pubkey=dst, lamports=f.u64(GEN_AMOUNT, lo, hi)))


def jito_tip(w: World, f: Fields, payer):
    from solders.system_program import TransferParams, transfer
    lo = w.log_uniform(1_000, 100_000)
    hi = min(1_000_000.0, lo * w.log_uniform(2.0, 100.0))
    dst = w.tips[int(w.rng.integers(len(w.tips)))]
    return transfer(TransferParams(from_pubkey=payer, to_pubkey=dst, lamports=f.u64(GEN_TIP, lo, hi)))


def ata_create(w: World, payer, owner, mint):
    ata = w.ata_of(owner, mint)
    return ata, instruction(w.ata, bytes([ATA_CREATE_IDEMPOTENT]), [
        (payer, True, True), (ata, False, True), (owner, False, False), (mint, False, False),
        (w.system, False, False), (w.token, False, False)])


def token_transfer(w: World, f: Fields, src, dst, owner, lo: float, hi: float):
    data = bytes([TOKEN_TRANSFER]) + f.u64(GEN_AMOUNT, lo, hi).to_bytes(8, "little")
    return instruction(w.token, data, [(src, False, True), (dst, False, True), (owner, True, False)])


def raydium_swap(w: World, f: Fields, pool: Pool, user_src, user_dst, owner, base_out: bool,
                 coin_to_pc: bool, amount: tuple, slip: float, chained: bool = False):
    """Raydium AMM v4 SwapBaseIn / SwapBaseOut with the program's 18-account order.

    Fields: amount_in (log-uniform, or the previous field when ``chained``) then
    minimum_amount_out = amount_in * rate * (1 - slip*u); for base-out, amount_out then
    max_amount_in = amount_out / rate * (1 + slip*u).
    """
    rate = pool.price if coin_to_pc else 1.0 / pool.price     # destination units per source unit
    if base_out:
        amount_out = f.u64(GEN_AMOUNT, amount[0] * rate, amount[1] * rate)
        max_in = f.u64(GEN_SCALED, 1.0 / rate, slip)
        data = bytes([RAY_SWAP_BASE_OUT]) + max_in.to_bytes(8, "little") + amount_out.to_bytes(8, "little")
    else:
        amount_in = f.u64(GEN_SCALED, 1.0, 0.0) if chained else f.u64(GEN_AMOUNT, *amount)
        min_out = f.u64(GEN_SCALED, rate, -slip)
        data = bytes([RAY_SWAP_BASE_IN]) + amount_in.to_bytes(8, "little") + min_out.to_bytes(8, "little")
    src_mint, dst_mint = (pool.coin_mint, pool.pc_mint) if coin_to_pc else (pool.pc_mint, pool.coin_mint)
    f.swaps.append((data[:9], base_out, w.pools.index(pool), coin_to_pc, str(user_src), str(user_dst), str(owner),
                    f.wrap, str(src_mint), str(dst_mint)))
    f.wrap = None
    metas = [
        (w.token, False, False),              # 0 SPL Token program
        (pool.amm, False, True),              # 1 amm
        (w.authority, False, False),          # 2 amm authority
        (pool.open_orders, False, True),      # 3 amm open orders
        (pool.target_orders, False, True),    # 4 amm target orders
        (pool.coin_vault, False, True),       # 5 pool coin token account
        (pool.pc_vault, False, True),         # 6 pool pc token account
        (w.openbook, False, False),           # 7 serum (OpenBook) program
        (pool.market, False, True),           # 8 serum market
        (pool.bids, False, True),             # 9 serum bids
        (pool.asks, False, True),             # 10 serum asks
        (pool.event_queue, False, True),      # 11 serum event queue
        (pool.market_coin_vault, False, True),  # 12 serum coin vault
        (pool.market_pc_vault, False, True),  # 13 serum pc vault
        (pool.vault_signer, False, False),    # 14 serum vault signer
        (user_src, False, True),              # 15 user source token account
        (user_dst, False, True),              # 16 user destination token account
        (owner, True, False),                 # 17 user owner (signer)
    ]
    return instruction(w.raydium, data, metas)


def tower_sync(w: World, f: Fields, vote_account, authority):
    """Vote TowerSync (bincode, compact form): u32 tag, root u64, short_vec of lockout
    (varint offset, u8 confirmation count), bank hash, Option<i64> timestamp, block id."""
    data = VOTE_TOWER_SYNC.to_bytes(4, "little")
    data += f.u64(GEN_VOTE_ROOT, 32, 3).to_bytes(8, "little")
    data += bytes([VOTE_LOCKOUTS])
    for k in range(VOTE_LOCKOUTS):
        data += bytes([1, VOTE_LOCKOUTS - k])
    data += f.raw(GEN_VOTE_HASH, VOTE_LOCKOUTS)
    data += b"\x01" + f.u64(GEN_VOTE_TS).to_bytes(8, "little")
    data += f.raw(GEN_BLOCK_ID, VOTE_LOCKOUTS)
    return instruction(w.vote, data, [(vote_account, False, True), (authority, True, False)])


def memo_instruction(w: World, text: bytes, signer):
    return instruction(w.memo, text, [(signer, True, False)])


_ALNUM = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", np.uint8)


def ascii_text(w: World, n: int) -> bytes:
    return _ALNUM[w.rng.integers(0, _ALNUM.shape[0], n)].tobytes()
