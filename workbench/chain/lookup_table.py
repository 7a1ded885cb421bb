"""Address lookup table accounts (program AddressLookupTab1e…): a 56-byte header, then the
table's addresses, 32 bytes each, in table order (a v0 transaction's index is into these).

Bincode of ``ProgramState::LookupTable(LookupTableMeta)`` (solana address-lookup-table
``state.rs``): u32 enum tag, then the meta; the addresses start at LOOKUP_TABLE_META_SIZE.
"""

from __future__ import annotations

import numpy as np

from ..errors import ChainError
from .account import PUBKEY, Account, Layout, b58, dtype

PROGRAM = "AddressLookupTab1e1111111111111111111111111"
META_SIZE = 56                  # bytes before the first address
ADDRESSES_MAX = 256             # a table holds at most this many addresses
TAG_UNINITIALIZED, TAG_LOOKUP_TABLE = 0, 1
ACTIVE = (1 << 64) - 1          # deactivation_slot of a table never deactivated

FIELDS = (
    ("tag", "<u4", 0),                      # ProgramState: 1 LookupTable (0 Uninitialized is refused)
    ("deactivation_slot", "<u8", 4),        # slot the table was deactivated at; ACTIVE (u64 max) when active
    ("last_extended_slot", "<u8", 12),      # slot of the last extension
    ("last_extended_slot_start_index", "u1", 20),  # addresses before that extension (usable at once); [0, 256]
    ("authority_option", "u1", 21),         # Option tag: 0 frozen (no authority), 1 some
    ("authority", PUBKEY, 22),              # who may extend / deactivate
    ("padding", "<u2", 54),
)
DTYPE = dtype(FIELDS, META_SIZE)
LAYOUT = Layout("address lookup table", (PROGRAM,), META_SIZE, b"", DTYPE, min_size=True)


def decode_table(acct: Account) -> tuple[np.void, list[str]]:
    """(header record, addresses in table order) of one lookup table; ChainError naming it when
    the owner, tag or length is wrong."""
    LAYOUT.check(acct)
    meta = np.frombuffer(acct.data[:META_SIZE], DTYPE)[0]
    where = f"account {acct.address}"
    if meta["tag"] != TAG_LOOKUP_TABLE:
        raise ChainError(where, f"lookup table tag {int(meta['tag'])}, expected {TAG_LOOKUP_TABLE} (LookupTable)")
    body = len(acct.data) - META_SIZE
    if body % 32:
        raise ChainError(where, f"truncated: {body} bytes of addresses after the {META_SIZE}-byte header "
                                "is not a multiple of 32")
    if body // 32 > ADDRESSES_MAX:
        raise ChainError(where, f"{body // 32} addresses, a table holds at most {ADDRESSES_MAX}")
    keys = np.frombuffer(acct.data, np.uint8, body, META_SIZE).reshape(-1, 32)
    return meta, [b58(k) for k in keys]
