"""Anchor instruction discriminators (the Raydium CPMM and Orca Whirlpool programs are Anchor).

An Anchor instruction's data starts with 8 bytes, the first 8 of sha256("global:<name>")
for its snake_case name. The kernels compare them as one little-endian u64. The program
modules write each one as hex, so a reader can match it against a transaction dump, and
check it here against its name at import (``tests/test_programs.py`` checks them again).
"""

from __future__ import annotations

import hashlib

import numpy as np

ANCHOR_DISC_SZ = 8              # bytes of an Anchor discriminator


def discriminator_from_hex(hex8: str) -> np.uint64:
    """The 8 bytes written as hex, as the little-endian u64 the kernels compare."""
    return np.uint64(int.from_bytes(bytes.fromhex(hex8), "little"))


def anchor_discriminator(name: str) -> np.uint64:
    """The first 8 bytes of sha256("global:<name>") as a little-endian u64."""
    return np.uint64(int.from_bytes(hashlib.sha256(f"global:{name}".encode()).digest()[:8], "little"))


def check_discriminators(by_name: dict) -> None:
    """Assert that each {instruction name: discriminator} pair hashes as Anchor says."""
    for name, disc in by_name.items():
        assert disc == anchor_discriminator(name), (name, disc)
