"""Orca ``Whirlpool`` (program whirLbMi…), 653 bytes, and the tick-to-price conversion that
turns its current tick into the liquidity range the engine assumes.

Anchor account: 8-byte discriminator (sha256("account:Whirlpool")[:8]), then the Borsh
fields (offsets agree with Orca's IDL of 2024-08, the Apache-2.0 one). Prices are Q64.64
square roots of (token b base units per token a base unit).
"""

from __future__ import annotations

import hashlib

from ..errors import ChainError
from .account import PUBKEY, U128, Layout, dtype
from .pda import PROGRAM_IDS, find_program_address

PROGRAM = PROGRAM_IDS["orca_whirlpool"]
SIZE = 653
FEE_RATE_DENOMINATOR = 1_000_000            # fee_rate is in hundredths of a basis point
TICK_MIN, TICK_MAX = -443636, 443636        # the program's tick index bounds (inclusive)
FULL_RANGE_ONLY_TICK_SPACING = 32768        # tick spacing from which a pool takes full-range positions only

REWARD_INFO = dtype((
    ("mint", PUBKEY, 0),                     # reward mint (zero when unused)
    ("vault", PUBKEY, 32),                   # reward token account
    ("authority", PUBKEY, 64),               # who may set the emissions (2025: "extension" bytes)
    ("emissions_per_second_x64", U128, 96),  # Q64.64 reward units per second
    ("growth_global_x64", U128, 112),        # Q64.64 reward per unit of liquidity so far
), 128)

FIELDS = (
    ("discriminator", ("u1", (8,)), 0),      # 3f95d10ce1806309
    ("whirlpools_config", PUBKEY, 8),        # WhirlpoolsConfig (mainnet 2LecshUw…); a PDA seed
    ("whirlpool_bump", "u1", 40),             # bump of the pool's PDA; [0, 256)
    ("tick_spacing", "<u2", 41),             # ticks between initializable ticks; [1, 65536)
    ("tick_spacing_seed", ("u1", (2,)), 43), # the PDA seed: the fee tier's tick spacing, u16 LE bytes
    ("fee_rate", "<u2", 45),                 # swap fee on the input, per 10^6; [0, 60000]
    ("protocol_fee_rate", "<u2", 47),        # protocol share of the fee, per 10^4
    ("liquidity", U128, 49),                 # active liquidity L in the current tick range (u128)
    ("sqrt_price", U128, 65),                # Q64.64 sqrt price; [4295048016, 79226673515401279992447579055]
    ("tick_current_index", "<i4", 81),       # tick of sqrt_price, rounded down; [TICK_MIN, TICK_MAX]
    ("protocol_fee_owed_a", "<u8", 85),      # token-a units in vault a owed to the protocol
    ("protocol_fee_owed_b", "<u8", 93),      # token-b units in vault b owed to the protocol
    ("token_mint_a", PUBKEY, 101),           # mint a (token a); mint_a < mint_b bytewise
    ("token_vault_a", PUBKEY, 133),          # token account holding token a (a keypair, not a PDA)
    ("fee_growth_global_a", U128, 165),      # Q64.64 fee per unit of liquidity, token a
    ("token_mint_b", PUBKEY, 181),           # mint b (token b)
    ("token_vault_b", PUBKEY, 213),          # token account holding token b
    ("fee_growth_global_b", U128, 245),      # Q64.64 fee per unit of liquidity, token b
    ("reward_last_updated_timestamp", "<u8", 261),  # unix seconds
    ("reward_infos", (REWARD_INFO, (3,)), 269),     # three reward slots
)
DTYPE = dtype(FIELDS, SIZE)
LAYOUT = Layout("Orca Whirlpool", (PROGRAM,), SIZE, hashlib.sha256(b"account:Whirlpool").digest()[:8], DTYPE)


def pool_address(config: str, mint_a: str, mint_b: str, tick_spacing: int) -> tuple[str, int]:
    """(address, bump): PDA ["whirlpool", config, mint_a, mint_b, tick_spacing u16 LE]."""
    return find_program_address([b"whirlpool", config, mint_a, mint_b, int(tick_spacing).to_bytes(2, "little")],
                                PROGRAM)


# sqrt(1.0001)^(2^i) as Q96 (positive ticks) and 1/sqrt(1.0001)^(2^i) as Q64 (negative ticks), i = 1..18:
# the constants of the program's tick_math.rs, so that the bounds equal the program's to the last bit
POS_Q96 = (79236085330515764027303304731, 79244008939048815603706035061, 79259858533276714757314932305,
            79291567232598584799939703904, 79355022692464371645785046466, 79482085999252804386437311141,
            79736823300114093921829183326, 80248749790819932309965073892, 81282483887344747381513967011,
            83390072131320151908154831281, 87770609709833776024991924138, 97234110755111693312479820773,
            119332217159966728226237229890, 179736315981702064433883588727, 407748233172238350107850275304,
            2098478828474011932436660412517, 55581415166113811149459800483533,
            38992368544603139932233054999993551)
NEG_Q64 = (18444899583751176498, 18443055278223354162, 18439367220385604838, 18431993317065449817,
            18417254355718160513, 18387811781193591352, 18329067761203520168, 18212142134806087854,
            17980523815641551639, 17526086738831147013, 16651378430235024244, 15030750278693429944,
            12247334978882834399, 8131365268884726200, 3584323654723342297, 696457651847595233,
            26294789957452057, 37481735321082)
POS_Q96_TICK1 = 79232123823359799118286999567    # sqrt(1.0001) as Q96: the start of an odd positive tick
NEG_Q64_TICK1 = 18445821805675392311             # 1/sqrt(1.0001) as Q64: the start of an odd negative tick
_MASK128 = (1 << 128) - 1


def sqrt_price_at_tick(tick: int) -> int:
    """The Q64.64 sqrt price of ``tick`` exactly as the program computes it (binary
    decomposition of |tick|, one rounded product per set bit, products kept to 128 bits)."""
    if not TICK_MIN <= tick <= TICK_MAX:
        raise ValueError(f"tick {tick} is outside [{TICK_MIN}, {TICK_MAX}]")
    if tick >= 0:
        ratio = POS_Q96_TICK1 if tick & 1 else 1 << 96
        for i, c in enumerate(POS_Q96, start=1):
            if tick >> i & 1:
                ratio = (ratio * c >> 96) & _MASK128
        return ratio >> 32
    t = -tick
    ratio = NEG_Q64_TICK1 if t & 1 else 1 << 64
    for i, c in enumerate(NEG_Q64, start=1):
        if t >> i & 1:
            ratio = (ratio * c & _MASK128) >> 64
    return ratio


def current_range(address: str, rec) -> tuple[int, int]:
    """(lower, upper) Q64.64 sqrt prices of the range in which the pool's liquidity is constant
    for sure: the tick-spacing interval holding the current tick (no tick inside it can be
    initialized), or the full range of a full-range-only pool. A swap that leaves it may
    cross an initialized tick (the engine flags WP_CROSSES_TICK there)."""
    ts, tick = int(rec["tick_spacing"]), int(rec["tick_current_index"])
    if ts == 0 or not TICK_MIN <= tick <= TICK_MAX:
        raise ChainError(f"account {address}", f"tick_spacing {ts} / tick_current_index {tick} out of range")
    if ts >= FULL_RANGE_ONLY_TICK_SPACING:
        lo, hi = -(-TICK_MIN // ts) * ts, TICK_MAX // ts * ts       # the program rounds both toward zero
    else:
        lo = tick // ts * ts                                       # floor, also for negative ticks
        hi = lo + ts
        lo, hi = max(lo, TICK_MIN), min(hi, TICK_MAX)
    return sqrt_price_at_tick(lo), sqrt_price_at_tick(hi)


def reserves(address: str, rec, vault_a_amount: int, vault_b_amount: int) -> tuple[int, int]:
    """(a, b) token balances the pool trades from: each vault less the protocol fee it owes.
    The Whirlpool maths does not use them (it uses sqrt price and liquidity); they size the
    pool for the oracle and the reports. Unclaimed LP fees stay in (the program keeps them in
    the vaults too)."""
    out = []
    for side, amount in (("a", vault_a_amount), ("b", vault_b_amount)):
        owed = int(rec[f"protocol_fee_owed_{side}"])
        if amount < owed:
            raise ChainError(f"account {address}", f"vault {side} holds {amount}, less than the {owed} "
                                                   f"protocol_fee_owed_{side}")
        out.append(amount - owed)
    return out[0], out[1]
