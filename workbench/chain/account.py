"""One account as JSON-RPC returns it, and the checked decode of many accounts of one layout.

Every layout module (raydium_amm_v4.py, raydium_cpmm.py, whirlpool.py, spl_token.py,
token_2022.py, lookup_table.py) declares a ``Layout``: the programs allowed to own the account,
its size, its discriminator and one numpy structured dtype whose offsets are the program's
byte offsets. ``decode`` checks every account first (exists, owner, size, discriminator) and
raises ChainError naming the first account that fails, then reads all of them with one
``np.frombuffer``: decoding is at the edge, once per snapshot, not in the jitted loop.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import base58
import numpy as np
from solders.pubkey import Pubkey

from ..errors import ChainError

PUBKEY = ("u1", (32,))          # a 32-byte address, as bytes; ``b58`` turns it into text
U128 = ("<u8", (2,))            # a little-endian u128 as (low, high) u64 words; ``u128`` joins them


@dataclass(frozen=True)
class Account:
    """One account: ``address`` and ``owner`` base58, ``data`` the raw bytes, ``lamports`` (None if unknown)."""
    address: str
    owner: str
    data: bytes
    lamports: int | None = None

    @classmethod
    def from_rpc(cls, address: str, value) -> "Account":
        """An account from a getAccountInfo / getMultipleAccounts ``value`` with base64 data
        (``None`` there means the account does not exist: ChainError naming it)."""
        if value is None:
            raise ChainError(f"account {address}", "does not exist (the RPC returned null)")
        try:
            blob, enc = value["data"]
            if enc != "base64":
                raise ChainError(f"account {address}", f"data encoding {enc!r}, expected 'base64'")
            data = base64.b64decode(blob, validate=True)
            owner = value["owner"]
        except ChainError:
            raise
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise ChainError(f"account {address}", f"not an account object with base64 data ({e})") from None
        return cls(address, owner, data, value.get("lamports"))


@dataclass(frozen=True)
class Layout:
    """An account layout: ``name`` (the program's type name), the ``owners`` allowed, ``size``
    (bytes; exact unless ``min_size``, then the base part that must be present),
    ``discriminator`` (the first bytes, b'' when the program has none) and the ``dtype`` of
    that base part (its itemsize is ``size``)."""
    name: str
    owners: tuple[str, ...]
    size: int
    discriminator: bytes
    dtype: np.dtype
    min_size: bool = False

    def check(self, acct: Account) -> None:
        """ChainError naming ``acct`` when it cannot be this layout: owner, size, discriminator."""
        where = f"account {acct.address}"
        if acct.owner not in self.owners:
            raise ChainError(where, f"owner {acct.owner} is not the program of a {self.name} "
                                    f"({' or '.join(self.owners)})")
        n = len(acct.data)
        if n < self.size:
            raise ChainError(where, f"truncated: {n} bytes, a {self.name} is {'at least ' if self.min_size else ''}"
                                    f"{self.size} bytes")
        if n != self.size and not self.min_size:
            raise ChainError(where, f"{n} bytes, a {self.name} is {self.size} bytes")
        d = self.discriminator
        if d and acct.data[:len(d)] != d:
            raise ChainError(where, f"discriminator {acct.data[:len(d)].hex()} is not a {self.name}'s ({d.hex()})")


def decode(layout: Layout, accounts) -> np.ndarray:
    """The ``layout.dtype`` records of ``accounts`` (each checked first; the base part only)."""
    accounts = list(accounts)
    for a in accounts:
        layout.check(a)
    blob = b"".join(a.data[:layout.size] for a in accounts)
    return np.frombuffer(blob, layout.dtype, count=len(accounts)).copy()


def dtype(fields, size: int) -> np.dtype:
    """A packed structured dtype from ``(name, format, offset)`` rows and the total ``size``."""
    names, formats, offsets = zip(*fields)
    return np.dtype({"names": list(names), "formats": list(formats), "offsets": list(offsets), "itemsize": size})


def b58(raw) -> str:
    """A 32-byte address field (``PUBKEY``) as base58 text (solders' encoder: the pure-Python
    base58 package is the slowest step of a large snapshot)."""
    return str(Pubkey.from_bytes(np.asarray(raw, np.uint8).tobytes()))


def u128(words) -> int:
    """A ``U128`` field (low, high) as a Python int."""
    lo, hi = (int(w) for w in words)
    return lo | hi << 64


def address_bytes(address: str, what: str = "address") -> bytes:
    """The 32 bytes of a base58 ``address``; ChainError naming it when it is not one."""
    try:
        raw = base58.b58decode(address)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ChainError(f"{what} {address!r}", "is not a base58 32-byte address")
    return raw


def record_dict(rec) -> dict:
    """One record as {field: Python value}: addresses as base58, u128 as int, COption flags as int."""
    out = {}
    for name in rec.dtype.names:
        fmt = rec.dtype.fields[name][0]
        v = rec[name]
        if fmt.shape == (32,) and fmt.base == np.uint8:
            out[name] = b58(v)
        elif fmt.shape == (2,) and fmt.base == np.dtype("<u8"):
            out[name] = u128(v)
        elif fmt.shape:
            out[name] = np.asarray(v).tolist()
        else:
            out[name] = v.item()
    return out
