"""SPL Token ``Account`` (165 bytes) and ``Mint`` (82 bytes), program Tokenkeg….

Packed little-endian layouts of spl-token ``state.rs``. A ``COption<T>`` is a u32 tag
(0 none, 1 some) followed by T, whose bytes are zero when none. Token-2022 accounts start
with the same bytes (token_2022.py reads what follows).
"""

from __future__ import annotations

from .account import PUBKEY, Layout, dtype
from .pda import TOKEN_PROGRAM

ACCOUNT_SIZE = 165
MINT_SIZE = 82

# AccountState (byte 108 of an account)
STATE_UNINITIALIZED, STATE_INITIALIZED, STATE_FROZEN = 0, 1, 2

ACCOUNT_FIELDS = (
    ("mint", PUBKEY, 0),                    # the mint whose tokens this account holds
    ("owner", PUBKEY, 32),                  # who may transfer them (a pool's vault: the pool's authority PDA)
    ("amount", "<u8", 64),                  # balance, base units of the mint (10^-decimals tokens)
    ("delegate_option", "<u4", 72),         # COption tag: 0 none, 1 some
    ("delegate", PUBKEY, 76),
    ("state", "u1", 108),                   # STATE_*: uninitialized, initialized, frozen; [0, 3)
    ("is_native_option", "<u4", 109),       # COption tag: 1 for a wrapped-SOL account
    ("is_native", "<u8", 113),              # rent-exempt reserve, lamports (wrapped SOL only)
    ("delegated_amount", "<u8", 121),       # base units the delegate may still move
    ("close_authority_option", "<u4", 129), # COption tag
    ("close_authority", PUBKEY, 133),
)
MINT_FIELDS = (
    ("mint_authority_option", "<u4", 0),    # COption tag: 0 fixed supply, 1 some
    ("mint_authority", PUBKEY, 4),
    ("supply", "<u8", 36),                  # tokens in existence, base units
    ("decimals", "u1", 44),                 # base units per token = 10^decimals; [0, 256)
    ("is_initialized", "u1", 45),           # 0 or 1
    ("freeze_authority_option", "<u4", 46), # COption tag
    ("freeze_authority", PUBKEY, 50),
)
ACCOUNT_DTYPE = dtype(ACCOUNT_FIELDS, ACCOUNT_SIZE)
MINT_DTYPE = dtype(MINT_FIELDS, MINT_SIZE)
ACCOUNT_LAYOUT = Layout("SPL Token account", (TOKEN_PROGRAM,), ACCOUNT_SIZE, b"", ACCOUNT_DTYPE)
MINT_LAYOUT = Layout("SPL Token mint", (TOKEN_PROGRAM,), MINT_SIZE, b"", MINT_DTYPE)
