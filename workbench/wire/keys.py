"""Interning of 32-byte public keys to small integer ids, in numba.

An open-addressing hash table (linear probing, power-of-two slots, load <= 1/2):
``keys`` uint8[cap, 32] holds the key of each id, ``slots`` int32[2 * cap] maps a hash
slot to an id (-1 empty), ``meta`` int64[META_COLS] counts ids and refused inserts.
Ids are given in order of first sight, so a replay is deterministic. The well-known
program ids and the eight Jito tip accounts are registered first, in ``KNOWN`` order,
so their ids are fixed: ``known_id(name)``.

Pubkeys are hashes or curve points, so their first 8 bytes are already uniform; we
still mix them (Fibonacci hashing) so adversarial vanity keys do not cluster.
"""

from __future__ import annotations

import base58
import numpy as np
from numba import njit

from ..binary import u64le

PUBKEY_SZ = 32           # bytes: ed25519 public key / account address
META_COUNT = 0          # ids given so far
META_REFUSED = 1        # inserts refused because the table was full
META_COLS = 2
FIB = np.uint64(0x9E3779B97F4A7C15)   # 2**64 / golden ratio

# (name, base58 address): the programs the workbench knows, then the Jito tip accounts.
KNOWN_PROGRAMS = (
    ("system", "11111111111111111111111111111111"),
    ("compute_budget", "ComputeBudget111111111111111111111111111111"),
    ("spl_token", "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"),
    ("token_2022", "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"),
    ("associated_token", "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"),
    ("raydium_amm_v4", "675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8"),
    ("raydium_cpmm", "CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C"),
    ("orca_whirlpool", "whirLbMiicVdio4qvUfM5KAg6Ct8VwpYzGff3uctyCc"),
    ("jupiter_v6", "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"),
    ("pump_fun", "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P"),
    ("meteora_dlmm", "LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo"),
    ("vote", "Vote111111111111111111111111111111111111111"),
    ("memo", "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"),
    ("jito_tip_payment", "T1pyyaTNZsKv2WcRAB8oVnk93mLJw2XzjtVYqCsaHqt"),
)
JITO_TIP_ACCOUNTS = (
    "96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5",
    "HFqU5x63VTqvQss8hp11i4wVV8bD44PvwucfZ2bU7gRe",
    "Cw8CFyM9FkoMi7K7Crf6HNQqf4uEMzpKw6QNghXLvLkY",
    "ADaUMid9yfUytqMBgopwjb2DTLSokTSzL1zt6iGPaS49",
    "DfXygSm4jCyNCybVYYK6DwvWqjKee8pbDmJGcLWNDXjh",
    "ADuUkR4vqLUMWXxW9gh6D6L8pMSawimctcNZ5pGwDcEt",
    "DttWaMuVvTiduZRnguLF7jNxTgiMBZ1hyAumKUiL2KRL",
    "3AVi9Tg9Uo68tJfuvoKvqKNWKkC5wPdSSdeBnizKZ6jT",
)
# the mints the market layer prices everything through (wrapped SOL, USDC)
MINT_WSOL = "So11111111111111111111111111111111111111112"
MINT_USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"

N_KNOWN_PROGRAMS = len(KNOWN_PROGRAMS)          # ids [0, N_KNOWN_PROGRAMS) are programs
TIP_ID_FIRST = N_KNOWN_PROGRAMS                 # ids [TIP_ID_FIRST, TIP_ID_END) are tip accounts
TIP_ID_END = TIP_ID_FIRST + len(JITO_TIP_ACCOUNTS)
N_PREREGISTERED = TIP_ID_END

_KNOWN_IDS = {name: i for i, (name, _) in enumerate(KNOWN_PROGRAMS)}
PROGRAM_NAMES = tuple(name for name, _ in KNOWN_PROGRAMS)

ID_SYSTEM = _KNOWN_IDS["system"]
ID_COMPUTE_BUDGET = _KNOWN_IDS["compute_budget"]


def program_address(name: str) -> str:
    """The base58 address of a known program, by its name in KNOWN_PROGRAMS."""
    return KNOWN_PROGRAMS[known_id(name)][1]


def known_id(name: str) -> int:
    """The fixed id of a known program (KeyError lists the names)."""
    try:
        return _KNOWN_IDS[name]
    except KeyError:
        raise KeyError(f"unknown program {name!r}; known: {', '.join(PROGRAM_NAMES)}") from None


@njit(cache=True, nogil=True, inline="always")
def _slot_of(buf, off, mask):
    h = u64le(buf, off) * FIB
    return np.int64(h >> np.uint64(32)) & mask


@njit(cache=True, nogil=True, inline="always")
def _same(keys, kid, buf, off):
    row = keys[kid]
    for j in range(0, PUBKEY_SZ, 8):            # four 8-byte compares, not 32 byte compares
        if u64le(row, j) != u64le(buf, off + j):
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def lookup(keys, slots, buf, off):
    """Id of the key at ``buf[off:off+32]``, or -1 if it was never interned."""
    mask = slots.shape[0] - 1
    s = _slot_of(buf, off, mask)
    while True:
        kid = slots[s]
        if kid < 0:
            return -1
        if _same(keys, kid, buf, off):
            return kid
        s = (s + 1) & mask


@njit(cache=True, nogil=True, inline="always")
def intern(keys, slots, meta, buf, off):
    """Id of the key at ``buf[off:off+32]``, giving it the next id if new; -1 if full."""
    mask = slots.shape[0] - 1
    s = _slot_of(buf, off, mask)
    while True:
        kid = slots[s]
        if kid < 0:
            n = meta[META_COUNT]
            if n >= keys.shape[0]:
                meta[META_REFUSED] += 1
                return -1
            for j in range(PUBKEY_SZ):
                keys[n, j] = buf[off + j]
            slots[s] = n
            meta[META_COUNT] = n + 1
            return n
        if _same(keys, kid, buf, off):
            return kid
        s = (s + 1) & mask


def new_key_table(capacity: int):
    """Arrays (keys, slots, meta) with the known programs and tip accounts registered."""
    if capacity < N_PREREGISTERED or capacity & (capacity - 1):
        raise ValueError(f"key table capacity {capacity}: must be a power of two >= {N_PREREGISTERED}")
    keys = np.zeros((capacity, PUBKEY_SZ), np.uint8)
    slots = np.full(2 * capacity, -1, np.int32)
    meta = np.zeros(META_COLS, np.int64)
    for i, addr in enumerate([a for _, a in KNOWN_PROGRAMS] + list(JITO_TIP_ACCOUNTS)):
        raw = np.frombuffer(base58.b58decode(addr), np.uint8)
        assert raw.shape[0] == PUBKEY_SZ, addr
        got = intern(keys, slots, meta, raw, 0)
        assert got == i, (addr, got, i)
    return keys, slots, meta


def key_to_base58(keys: np.ndarray, kid: int) -> str:
    return base58.b58encode(keys[kid].tobytes()).decode()
