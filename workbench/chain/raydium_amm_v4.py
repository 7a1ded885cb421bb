"""Raydium AMM v4 ``AmmInfo`` (program 675kPX9M…), 752 bytes, no discriminator.

Offsets as the program's ``#[repr(C)] AmmInfo`` lays them out (raydium-amm ``state.rs``; the
same as raydium-sdk-V2's ``liquidityStateV4Layout`` and raydium-idl's AmmInfo). All integers
are little-endian u64 unless the table says u128. The Serum/OpenBook fields remain in the
layout but the program no longer places orders, so the reserves are the vault balances less
what the program owes out of them (``reserves``).

Each row: field, format, offset, then the unit and range in the comment.
"""

from __future__ import annotations

from ..errors import ChainError
from .account import PUBKEY, U128, Layout, dtype
from .pda import PROGRAM_IDS, find_program_address

PROGRAM = PROGRAM_IDS["raydium_amm_v4"]
SIZE = 752

FIELDS = (
    ("status", "<u8", 0),                    # AmmStatus: 1 Initialized, 2 Disabled, 3 WithdrawOnly, ... 6 SwapOnly; [0, 8)
    ("nonce", "<u8", 8),                     # bump of the authority PDA ["amm authority"]; [0, 256)
    ("max_order", "<u8", 16),                # orders per side on the market (legacy); count
    ("depth", "<u8", 24),                    # order book depth placed (legacy); count
    ("base_decimal", "<u8", 32),             # decimals of the base (coin) mint; [0, 20)
    ("quote_decimal", "<u8", 40),            # decimals of the quote (pc) mint; [0, 20)
    ("state", "<u8", 48),                    # order-placing state machine (legacy); enum
    ("reset_flag", "<u8", 56),               # order reset flag (legacy); enum
    ("min_size", "<u8", 64),                 # minimum order size, base units
    ("vol_max_cut_ratio", "<u8", 72),        # legacy order ratio; per 10^4
    ("amount_wave_ratio", "<u8", 80),        # legacy order ratio; per 10^6
    ("base_lot_size", "<u8", 88),            # market base lot, base units
    ("quote_lot_size", "<u8", 96),           # market quote lot, quote units
    ("min_price_multiplier", "<u8", 104),    # legacy price bound; ratio
    ("max_price_multiplier", "<u8", 112),    # legacy price bound; ratio
    ("system_decimal_value", "<u8", 120),    # 10^decimals used by the legacy price maths
    ("min_separate_numerator", "<u8", 128),  # legacy order spacing; fraction numerator
    ("min_separate_denominator", "<u8", 136),
    ("trade_fee_numerator", "<u8", 144),     # fee on order-book trades (legacy); fraction
    ("trade_fee_denominator", "<u8", 152),
    ("pnl_numerator", "<u8", 160),           # share of the fee kept as protocol PnL; fraction
    ("pnl_denominator", "<u8", 168),
    ("swap_fee_numerator", "<u8", 176),      # swap fee on the INPUT amount: numerator / denominator, [0, den)
    ("swap_fee_denominator", "<u8", 184),    # > 0
    ("base_need_take_pnl", "<u8", 192),      # base units in the base vault owed to the protocol (not liquidity)
    ("quote_need_take_pnl", "<u8", 200),     # quote units in the quote vault owed to the protocol
    ("quote_total_pnl", "<u8", 208),         # quote units taken as PnL so far (statistics)
    ("base_total_pnl", "<u8", 216),          # base units taken as PnL so far (statistics)
    ("pool_open_time", "<u8", 224),          # unix seconds from which swaps are allowed
    ("punish_pc_amount", "<u8", 232),        # legacy; quote units
    ("punish_coin_amount", "<u8", 240),      # legacy; base units
    ("orderbook_to_init_time", "<u8", 248),  # legacy; unix seconds
    ("swap_base_in_amount", U128, 256),      # base units swapped in so far (u128, statistics)
    ("swap_quote_out_amount", U128, 272),    # quote units paid out for them (u128)
    ("swap_base2_quote_fee", "<u8", 288),    # quote units of fee taken on base->quote swaps
    ("swap_quote_in_amount", U128, 296),     # quote units swapped in so far (u128)
    ("swap_base_out_amount", U128, 312),     # base units paid out for them (u128)
    ("swap_quote2_base_fee", "<u8", 328),    # base units of fee taken on quote->base swaps
    ("base_vault", PUBKEY, 336),             # token account holding the base liquidity (PDA, coin_vault seed)
    ("quote_vault", PUBKEY, 368),            # token account holding the quote liquidity (PDA, pc_vault seed)
    ("base_mint", PUBKEY, 400),              # the base (coin) mint: the pool's token a
    ("quote_mint", PUBKEY, 432),             # the quote (pc) mint: token b
    ("lp_mint", PUBKEY, 464),                # LP token mint (PDA)
    ("open_orders", PUBKEY, 496),            # OpenBook open orders account (PDA)
    ("market_id", PUBKEY, 528),              # OpenBook market; the seed of every PDA of the pool
    ("market_program_id", PUBKEY, 560),      # OpenBook program
    ("target_orders", PUBKEY, 592),          # legacy target orders account (PDA)
    ("withdraw_queue", PUBKEY, 624),         # legacy
    ("lp_vault", PUBKEY, 656),               # legacy temporary LP account
    ("owner", PUBKEY, 688),                  # the AMM's admin
    ("lp_reserve", "<u8", 720),              # LP tokens issued, LP base units
    ("padding", ("<u8", (3,)), 728),         # zero
)
DTYPE = dtype(FIELDS, SIZE)
LAYOUT = Layout("Raydium AMM v4 AmmInfo", (PROGRAM,), SIZE, b"", DTYPE)

# the pool's PDAs: seeds [program, market_id, <seed>] under the program
ASSOCIATED_SEEDS = {
    "address": b"amm_associated_seed",
    "base_vault": b"coin_vault_associated_seed",
    "quote_vault": b"pc_vault_associated_seed",
    "lp_mint": b"lp_mint_associated_seed",
    "open_orders": b"open_order_associated_seed",
    "target_orders": b"target_associated_seed",
}


def associated_address(market_id: str, field: str) -> str:
    """The PDA that ``field`` (a key of ASSOCIATED_SEEDS; 'address' is the pool itself) must hold."""
    return find_program_address([PROGRAM, market_id, ASSOCIATED_SEEDS[field]], PROGRAM)[0]


def reserves(address: str, rec, base_vault_amount: int, quote_vault_amount: int) -> tuple[int, int]:
    """The (base, quote) reserves the swap maths uses, as the program computes them without an
    order book (``calc_total_without_take_pnl_no_orderbook``): each vault's balance less the PnL
    it owes the protocol (``base_need_take_pnl``, ``quote_need_take_pnl``). A vault holding less
    than it owes is refused, as the program refuses it (CheckedSubOverflow)."""
    out = []
    for side, amount, owed in (("base", base_vault_amount, int(rec["base_need_take_pnl"])),
                               ("quote", quote_vault_amount, int(rec["quote_need_take_pnl"]))):
        if amount < owed:
            raise ChainError(f"account {address}", f"{side} vault holds {amount}, less than the {owed} "
                                                   f"{side}_need_take_pnl it owes")
        out.append(amount - owed)
    return out[0], out[1]
