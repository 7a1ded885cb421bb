"""Program-derived addresses: ``find_program_address`` and the associated token account.

A PDA is the first ``sha256(seeds || [bump] || program || "ProgramDerivedAddress")``, bump
counting down from 255, that is NOT a point on the ed25519 curve (so no private key can
sign for it). solders implements exactly the runtime's derivation (its ``Pubkey`` wraps
solana-program's), so it is used here rather than a second implementation; each layout module
names its own seeds (raydium_amm_v4.py, raydium_cpmm.py, whirlpool.py).
"""

from __future__ import annotations

from solders.pubkey import Pubkey

from ..wire.keys import KNOWN_PROGRAMS
from .account import address_bytes

PROGRAM_IDS = dict(KNOWN_PROGRAMS)      # name -> base58 program id (wire/keys.py is their one home)
TOKEN_PROGRAM = PROGRAM_IDS["spl_token"]
TOKEN_2022_PROGRAM = PROGRAM_IDS["token_2022"]
ASSOCIATED_TOKEN_PROGRAM = PROGRAM_IDS["associated_token"]


def find_program_address(seeds, program: str) -> tuple[str, int]:
    """(address, bump) of the PDA of ``seeds`` (bytes, or base58 addresses given as str) under ``program``."""
    raw = [address_bytes(s, "seed") if isinstance(s, str) else bytes(s) for s in seeds]
    key, bump = Pubkey.find_program_address(raw, Pubkey(address_bytes(program, "program")))
    return str(key), bump


def is_on_curve(address: str) -> bool:
    """True when ``address`` is an ed25519 point (a keypair's address, never a PDA)."""
    return Pubkey(address_bytes(address)).is_on_curve()


def associated_token_address(wallet: str, mint: str, token_program: str = TOKEN_PROGRAM) -> str:
    """The associated token account of ``wallet`` for ``mint`` (seeds: wallet, token program, mint)."""
    return find_program_address([wallet, token_program, mint], ASSOCIATED_TOKEN_PROGRAM)[0]
