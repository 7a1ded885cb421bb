"""Raydium CPMM ``PoolState`` (637 bytes) and ``AmmConfig`` (236 bytes), program CPMMoo8L….

Anchor accounts: 8-byte discriminator (sha256("account:<Name>")[:8]), then the packed
``#[repr(C, packed)]`` struct (raydium-cp-swap ``states/pool.rs``, ``states/config.rs``).
The 2025 program added the creator fee inside the old padding: ``creator_fee_on``,
``enable_creator_fee``, ``creator_fees_token_0/1`` in PoolState and ``creator_fee_rate`` in
AmmConfig; older pools read zeros there. The trade fee is NOT in the pool: it is the pool's
AmmConfig's ``trade_fee_rate`` (hundredths of a basis point, per 10^6).
"""

from __future__ import annotations

import hashlib

from ..errors import ChainError
from .account import PUBKEY, Layout, dtype
from .pda import PROGRAM_IDS, find_program_address

PROGRAM = PROGRAM_IDS["raydium_cpmm"]
POOL_SIZE = 637
CONFIG_SIZE = 236
FEE_RATE_DENOMINATOR = 1_000_000      # trade, protocol, fund and creator fee rates are per 10^6


def _disc(name: str) -> bytes:
    return hashlib.sha256(f"account:{name}".encode()).digest()[:8]


POOL_FIELDS = (
    ("discriminator", ("u1", (8,)), 0),     # f7ede3f5d7c3de46
    ("amm_config", PUBKEY, 8),              # AmmConfig account holding the fee rates
    ("pool_creator", PUBKEY, 40),           # who created the pool (receives creator fees)
    ("token0_vault", PUBKEY, 72),           # token account of token 0 (PDA ["pool_vault", pool, mint0])
    ("token1_vault", PUBKEY, 104),          # token account of token 1 (PDA ["pool_vault", pool, mint1])
    ("lp_mint", PUBKEY, 136),               # LP mint (PDA ["pool_lp_mint", pool])
    ("token0_mint", PUBKEY, 168),           # mint of token 0 (the pool's token a); token0 < token1 bytewise
    ("token1_mint", PUBKEY, 200),           # mint of token 1 (token b)
    ("token0_program", PUBKEY, 232),        # SPL Token or Token-2022
    ("token1_program", PUBKEY, 264),
    ("observation_key", PUBKEY, 296),       # price oracle ring (PDA ["observation", pool])
    ("auth_bump", "u1", 328),               # bump of the vault authority PDA; [0, 256)
    ("status", "u1", 329),                  # bits: 1 deposit disabled, 2 withdraw disabled, 4 swap disabled
    ("lp_mint_decimals", "u1", 330),        # [0, 20)
    ("mint0_decimals", "u1", 331),          # [0, 20)
    ("mint1_decimals", "u1", 332),          # [0, 20)
    ("lp_supply", "<u8", 333),              # LP tokens outstanding, LP base units
    ("protocol_fees_token0", "<u8", 341),   # token-0 units in the vault owed to the protocol
    ("protocol_fees_token1", "<u8", 349),   # token-1 units owed to the protocol
    ("fund_fees_token0", "<u8", 357),       # token-0 units owed to the fund
    ("fund_fees_token1", "<u8", 365),       # token-1 units owed to the fund
    ("open_time", "<u8", 373),              # unix seconds from which swaps are allowed
    ("recent_epoch", "<u8", 381),           # epoch of the last update
    ("creator_fee_on", "u1", 389),          # which token pays the creator fee: 0 both (input), 1 token 0, 2 token 1
    ("enable_creator_fee", "u1", 390),      # 0 or 1
    ("padding1", ("u1", (6,)), 391),
    ("creator_fees_token0", "<u8", 397),    # token-0 units owed to the pool creator
    ("creator_fees_token1", "<u8", 405),    # token-1 units owed to the pool creator
    ("padding", ("<u8", (28,)), 413),       # zero
)
CONFIG_FIELDS = (
    ("discriminator", ("u1", (8,)), 0),     # daf42168cbcb2b6f
    ("bump", "u1", 8),
    ("disable_create_pool", "u1", 9),       # 0 or 1
    ("index", "<u2", 10),                   # config number
    ("trade_fee_rate", "<u8", 12),          # swap fee on the input, per 10^6; [0, 10^6)
    ("protocol_fee_rate", "<u8", 20),       # share of the trade fee to the protocol, per 10^6
    ("fund_fee_rate", "<u8", 28),           # share of the trade fee to the fund, per 10^6
    ("create_pool_fee", "<u8", 36),         # lamports charged to create a pool
    ("protocol_owner", PUBKEY, 44),
    ("fund_owner", PUBKEY, 76),
    ("creator_fee_rate", "<u8", 108),       # creator fee on top of the trade fee, per 10^6
    ("padding", ("<u8", (15,)), 116),
)
POOL_LAYOUT = Layout("Raydium CPMM PoolState", (PROGRAM,), POOL_SIZE, _disc("PoolState"), dtype(POOL_FIELDS, POOL_SIZE))
CONFIG_LAYOUT = Layout("Raydium CPMM AmmConfig", (PROGRAM,), CONFIG_SIZE, _disc("AmmConfig"),
                       dtype(CONFIG_FIELDS, CONFIG_SIZE))


def pool_address(amm_config: str, mint0: str, mint1: str) -> str:
    """PDA ["pool", amm_config, mint0, mint1]: the address a pool of this config and pair must have."""
    return find_program_address([b"pool", amm_config, mint0, mint1], PROGRAM)[0]


def vault_address(pool: str, mint: str) -> str:
    """PDA ["pool_vault", pool, mint]."""
    return find_program_address([b"pool_vault", pool, mint], PROGRAM)[0]


def lp_mint_address(pool: str) -> str:
    """PDA ["pool_lp_mint", pool]."""
    return find_program_address([b"pool_lp_mint", pool], PROGRAM)[0]


def observation_address(pool: str) -> str:
    """PDA ["observation", pool]."""
    return find_program_address([b"observation", pool], PROGRAM)[0]


def reserves(address: str, rec, vault0_amount: int, vault1_amount: int) -> tuple[int, int]:
    """The (token 0, token 1) reserves the swap maths uses, as the program's
    ``vault_amount_without_fee``: each vault's balance less the protocol, fund and creator fees
    it holds for others. A vault holding less than it owes is refused, as the program refuses
    it (InsufficientVault)."""
    out = []
    for i, amount in ((0, vault0_amount), (1, vault1_amount)):
        owed = sum(int(rec[f"{k}_fees_token{i}"]) for k in ("protocol", "fund", "creator"))
        if amount < owed:
            raise ChainError(f"account {address}", f"token{i} vault holds {amount}, less than the {owed} "
                                                   "protocol + fund + creator fees it owes")
        out.append(amount - owed)
    return out[0], out[1]


def swap_fee(pool_rec, config_rec) -> tuple[int, int]:
    """(numerator, denominator) of the fee on a swap's input: the config's trade fee, plus its
    creator fee when the pool has it on. The program takes the creator fee from the input when
    ``creator_fee_on`` is 0 and from one fixed token otherwise; the engine's single input fee
    counts it on every swap, which over-charges by at most ``creator_fee_rate`` on the swaps
    that pay it from the output."""
    num = int(config_rec["trade_fee_rate"])
    if pool_rec["enable_creator_fee"]:
        num += int(config_rec["creator_fee_rate"])
    return num, FEE_RATE_DENOMINATOR
