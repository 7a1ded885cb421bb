"""Token-2022 (program TokenzQd…) base layouts: an account or mint is the SPL Token layout
(spl_token.py), optionally followed by extensions.

With extensions, a mint is padded with zeros to 165 bytes so that both kinds share the
offsets below; byte 165 is the ``AccountType`` (1 mint, 2 account) and the TLV entries start
at byte 166: u16 extension type, u16 length (bytes), then that many bytes. An account without
extensions is exactly 165 bytes (a mint 82). ``extensions`` lists the (type, offset, length)
entries so that a reader can find e.g. TransferFeeConfig (type 1) without decoding the rest.
"""

from __future__ import annotations

import struct

from ..errors import ChainError
from .account import Account, Layout
from .pda import TOKEN_2022_PROGRAM, TOKEN_PROGRAM
from .spl_token import ACCOUNT_DTYPE, ACCOUNT_SIZE, MINT_DTYPE, MINT_SIZE

ACCOUNT_TYPE_OFFSET = 165       # byte holding the AccountType when extensions follow
TLV_START = 166                 # first extension entry
ACCOUNT_TYPE_MINT, ACCOUNT_TYPE_ACCOUNT = 1, 2
EXT_TRANSFER_FEE_CONFIG = 1     # mint extension: a fee on every transfer (changes what a vault receives)

# both token programs: an SPL Token account and a Token-2022 one read the same base bytes
ACCOUNT_LAYOUT = Layout("token account", (TOKEN_PROGRAM, TOKEN_2022_PROGRAM), ACCOUNT_SIZE, b"", ACCOUNT_DTYPE,
                        min_size=True)
MINT_LAYOUT = Layout("token mint", (TOKEN_PROGRAM, TOKEN_2022_PROGRAM), MINT_SIZE, b"", MINT_DTYPE, min_size=True)


def check_extended(acct: Account, account_type: int) -> None:
    """ChainError naming ``acct`` when its bytes past the base are not a valid Token-2022 tail:
    only Token-2022 may have one, the AccountType must be ``account_type``, a mint's padding
    zero, and the TLV entries must end exactly at the end of the data."""
    where, n = f"account {acct.address}", len(acct.data)
    base = MINT_SIZE if account_type == ACCOUNT_TYPE_MINT else ACCOUNT_SIZE
    if n == base:
        return
    if acct.owner != TOKEN_2022_PROGRAM:
        raise ChainError(where, f"{n} bytes, an SPL Token {'mint' if base == MINT_SIZE else 'account'} is {base}")
    if n <= ACCOUNT_TYPE_OFFSET:
        raise ChainError(where, f"truncated: {n} bytes, a Token-2022 account with extensions is at least "
                                f"{ACCOUNT_TYPE_OFFSET + 1}")
    if base == MINT_SIZE and any(acct.data[MINT_SIZE:ACCOUNT_TYPE_OFFSET]):
        raise ChainError(where, f"bytes {MINT_SIZE}..{ACCOUNT_TYPE_OFFSET} of an extended mint are not zero padding")
    if acct.data[ACCOUNT_TYPE_OFFSET] != account_type:
        raise ChainError(where, f"AccountType {acct.data[ACCOUNT_TYPE_OFFSET]} at byte {ACCOUNT_TYPE_OFFSET}, "
                                f"expected {account_type} ({'mint' if account_type == 1 else 'account'})")
    extensions(acct)


def extensions(acct: Account) -> list[tuple[int, int, int]]:
    """(extension type, value offset, value length) of each TLV entry (empty without extensions)."""
    data, out, off = acct.data, [], TLV_START
    if len(data) <= ACCOUNT_TYPE_OFFSET:
        return out
    while off < len(data):
        if len(data) - off < 4:
            if not any(data[off:]):         # zero tail: the rest of an uninitialised entry
                break
            raise ChainError(f"account {acct.address}", f"truncated extension header at byte {off}")
        kind, length = struct.unpack_from("<HH", data, off)
        if kind == 0 and length == 0 and not any(data[off:]):
            break                           # Uninitialized (type 0) padding to the end
        if length > len(data) - off - 4:
            raise ChainError(f"account {acct.address}", f"extension type {kind} at byte {off} claims {length} "
                                                        f"bytes, only {len(data) - off - 4} follow")
        out.append((kind, off + 4, length))
        off += 4 + length
    return out
