"""Solana wire transactions for synthetic captures: shapes built by solders, varied per packet.

Every transaction shape is compiled by solders (``Message`` / ``MessageV0.try_compile``,
``VersionedTransaction.populate``) into a few hundred *templates*. A template is the
serialized transaction plus a table of its variable fields: where each sits in the bytes
(found by writing a random sentinel and searching for it), how wide it is and how to draw
it. Per packet, ``_stage_txns`` (numba) copies a template and rewrites only those fields —
signatures, recent blockhash, amounts, compute budget, Jito tip, vote root/hash/timestamp —
so every packet is a distinct, valid transaction, at a few hundred ns each. With
``sign=True`` each staged message is then signed by its template's keypairs (ed25519,
solders), so ``VersionedTransaction.verify_with_results`` holds.

Wire format: https://solana.com/docs/core/transactions (compact-u16 signature count,
signatures, message: header, compact-u16 account keys, recent blockhash, instructions,
v0 adds the 0x80 prefix and address table lookups).

Mix of good transactions (share of transaction packets; ``SHAPES`` holds the numbers):

==================  =====  =========================================================================
shape               share  what it is
==================  =====  =========================================================================
vote                 30 %  legacy; Vote program TowerSync (tag 14, 31 lockouts, root, bank hash,
                           timestamp, block id), identity pays, 20 % with a separate authorized
                           voter (2 signatures). No compute budget, no tip. (On chain ~70 % of
                           transactions are votes; a leader sees most of them on its TPU-vote
                           port, so the TPU port mix here carries fewer.)
sol_transfer         12 %  1-3 System transfers; SetComputeUnitLimit 70 %, SetComputeUnitPrice
                           80 %; Jito tip 5 %; legacy 70 %, v0 without lookups 30 %
token_transfer       10 %  SPL Token Transfer (tag 3 + u64), 30 % with an ATA CreateIdempotent
                           before it; limit 70 %, price 80 %; legacy 70 % / v0 30 %
raydium_wallet       18 %  Raydium AMM v4 swap from a wallet: ATA CreateIdempotent, wrap SOL
                           (System transfer + SyncNative) when paying SOL, SwapBaseIn 85 % /
                           SwapBaseOut 15 %, CloseAccount of the wSOL account; limit 90 %,
                           price 95 %, tip 15 %; v0 with 1-2 lookup tables 60 %, legacy 40 %
raydium_bot          15 %  searcher swap: limit and price always (price 1e5-1e8 micro-lamports),
                           SwapBaseIn 80 % / SwapBaseOut 20 %, Jito tip 70 % (last 80 %, first
                           20 %); v0 with 1-3 lookup tables (pool, common, the bot's own)
arb_bot               7 %  two SwapBaseIn through two pools of the same pair (A->B->A), tip 100 %;
                           v0 with 2-3 lookup tables
multisig              5 %  fee payer + 1-2 co-signers each moving SOL or SPL tokens; budget 50 %;
                           legacy (2-3 signatures)
memo                  3 %  Memo + System transfer; limit 30 %, price 60 %; legacy 70 % / v0 30 %
==================  =====  =========================================================================

Within a shape, template popularity follows a Zipf-like law (a few busy wallets and
bots, a long tail); votes are uniform (one template per validator). A fixed set of
Raydium pools (``N_POOLS``, pairs of twins for arbitrage, accounts derived from the
seed, authority and market program the real ones) recurs across the capture. Amounts
are log-uniform per template; a swap's limit (minimum out / maximum in) follows from the
amount and the pool's price with 0.5-10 % slippage. Jito tips are 1,000-1,000,000
lamports to one of the 8 real tip accounts. The recent blockhash is a per-slot hash
(400 ms slots) 1-60 slots old; votes use 1-4 slots old and root = slot - 32..34.

Market mode (``build_templates(..., market=spec)``, synth/market.py): the pools are the
market's (twins first, then single pools; every shape draws from all of them, arb bots from
the twins), every template records where its Raydium swaps sit (``SwapMeta``: data offset,
pool, direction, user accounts and mints, the wrap transfer paying it) so the market walk can
rewrite amounts and limits, bots' own lookup tables never hold the token accounts their swaps
pay from (the engine reads a Raydium v4 swap's direction from its source account), and
``SEARCHER_TEMPLATES`` single-swap searcher templates per pool and direction (shape
raydium_bot, probability 0) carry the injected and closing swaps.

Oversized transactions (the ``too_long`` bad kind) come from their own family: a
well-formed legacy transaction whose Memo makes it 1,240-1,460 bytes.

Protocol constants here are deliberately the generator's own copy (an independent twin
of the decoders in ``wire/``, which the generated captures test).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ..wire.base58 import encode_column

from ..wire.txn import PACKET_DATA_SIZE, SIGNATURE_SZ

# --- program ids and well-known accounts (base58) ---------------------------------------------
PROGRAM_SYSTEM = "11111111111111111111111111111111"
PROGRAM_COMPUTE_BUDGET = "ComputeBudget111111111111111111111111111111"
PROGRAM_TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
PROGRAM_ATA = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"    # Associated Token Account program
PROGRAM_RAYDIUM_AMM_V4 = "675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8"
PROGRAM_OPENBOOK = "srmqPvymJeFKQ4zGQed1GFppgkRHL9kaELCbyksJtPX"  # market program of Raydium v4 pools
PROGRAM_VOTE = "Vote111111111111111111111111111111111111111"
PROGRAM_MEMO = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
RAYDIUM_AMM_AUTHORITY = "5Q544fKrFoe6tsEbD7S8EmxGTJYAKtTVhAW5Q5pge4j1"  # PDA of "amm authority"
MINT_WSOL = "So11111111111111111111111111111111111111112"
MINT_USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
SYSVAR_RENT = "SysvarRent111111111111111111111111111111111"
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

# --- instruction tags ------------------------------------------------------------------------
RAYDIUM_SWAP_BASE_IN = 9       # u8 tag, u64 amount_in, u64 minimum_amount_out (18 accounts)
RAYDIUM_SWAP_BASE_OUT = 11     # u8 tag, u64 max_amount_in, u64 amount_out (18 accounts)
TOKEN_TRANSFER = 3             # u8 tag, u64 amount; accounts: source (w), destination (w), owner (s)
TOKEN_CLOSE_ACCOUNT = 9        # u8 tag; accounts: account (w), destination (w), owner (s)
TOKEN_SYNC_NATIVE = 17         # u8 tag; accounts: native token account (w)
ATA_CREATE_IDEMPOTENT = 1      # u8 tag; payer (s,w), ata (w), owner, mint, system program, token program
VOTE_TOWER_SYNC = 14           # u32 tag; accounts: vote account (w), vote authority (s)
VOTE_LOCKOUTS = 31             # lockouts in a full tower (MAX_LOCKOUT_HISTORY)

# --- time ------------------------------------------------------------------------------------
SLOT_NS = 400_000_000          # ns: target slot duration
SLOT0 = 345_000_000            # slot at the capture's start_ns (mainnet order of magnitude, mid-2025)
SLOT_HISTORY = 256             # slots of hashes kept before the capture start (blockhash lag, vote root)
HASH_BLOCKHASH, HASH_BANK, HASH_BLOCK_ID = 0, 1, 2   # rows of the per-slot hash table
HASH_ROWS = 3

# --- field generators: how _stage_txns draws each variable field (u = one uniform in [0, 1)) ---
GEN_BLOCKHASH = 0     # 32 B: blockhash of slot - lag, lag in [p0, p1] slots
GEN_AMOUNT = 1        # u64 LE: log-uniform in [p0, p1]
GEN_SCALED = 2        # u64 LE: previous field's value * p0 * (1 + p1 * u)  (slippage bound, wrap)
GEN_CU_LIMIT = 3      # u32 LE: compute units, uniform in [p0, p1], rounded to 100; ground truth
GEN_CU_PRICE = 4      # u64 LE: micro-lamports per CU, log-uniform in [p0, p1]; ground truth
GEN_TIP = 5           # u64 LE: lamports to a Jito tip account, log-uniform in [p0, p1]; ground truth
GEN_VOTE_ROOT = 6     # u64 LE: slot - p0 - floor(u * p1); becomes the "previous value"
GEN_VOTE_HASH = 7     # 32 B: bank hash of slot (previous value + p0)
GEN_VOTE_TS = 8       # i64 LE: unix seconds of the packet time
GEN_BLOCK_ID = 9      # 32 B: block id of slot (previous value + p0)
GEN_WIDTH = (32, 8, 8, 4, 8, 8, 8, 32, 8, 32)   # bytes written, by generator

VERSION_LEGACY = 0
VERSION_V0 = 1
VERSION_NAMES = ("legacy", "0")

TEMPLATES_PER_SHAPE = 256      # templates compiled per good shape
TOO_LONG_TEMPLATES = 32        # oversized (memo) templates for the too_long kind
GOOD_TXN_SZ_MAX = 1200         # bytes: good templates stay below this, so trailing bytes fit in 1232
TOO_LONG_SZ = (1240, 1460)     # bytes: oversized template sizes (<= 1472 so one frame carries them)
N_POOLS = 16                   # Raydium pools; pools 2k and 2k+1 trade the same pair (arbitrage twins)
CU_PRICE_MAX = 100_000_000     # micro-lamports per CU: the top of the priority-fee tail (0.03 SOL at 300k CU)
ZIPF_ALPHA = 0.9               # template popularity within a shape ~ 1 / rank**alpha


@dataclass(frozen=True)
class Shape:
    name: str
    share: float          # fraction of good transaction packets
    zipf: bool            # Zipf popularity across templates (else uniform)


SHAPES = (
    Shape("vote", 0.30, False),
    Shape("sol_transfer", 0.12, True),
    Shape("token_transfer", 0.10, True),
    Shape("raydium_wallet", 0.18, True),
    Shape("raydium_bot", 0.15, True),
    Shape("arb_bot", 0.07, True),
    Shape("multisig", 0.05, True),
    Shape("memo", 0.03, True),
)
SHAPE_TOO_LONG = len(SHAPES)   # shape code of the oversized family
SHAPE_NAMES = tuple(s.name for s in SHAPES) + ("too_long",)


# ============================================================================================
# per-packet kernels
# ============================================================================================

@njit(cache=True, nogil=True, inline="always")
def _put_le(b, i, v, width):
    for k in range(width):
        b[i + k] = (v >> (8 * k)) & 0xFF


@njit(cache=True, nogil=True, inline="always")
def _log_uniform(lo, hi, u):
    return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))


@njit(cache=True, nogil=True, inline="always")
def _clamp_u63(x):
    if x < 1.0:
        return np.int64(1)
    if x > 9.0e18:
        return np.int64(9_000_000_000_000_000_000)
    return np.int64(x)


@njit(cache=True, nogil=True)
def _stage_txns(tmpl_buf, tmpl_off, tmpl_sz, tmpl_nsig, fld_start, fld_cnt, fld_off, fld_gen, fld_p0,
                fld_p1, tmpl_idx, ts_ns, start_ns, sig_rand, u, slot_hash, stage, stage_off, stage_sz,
                cu_limit, cu_price, tip):
    """Copy template ``tmpl_idx[i]`` to ``stage`` for every packet with one (>= 0), fill its
    signatures from ``sig_rand[i]`` and redraw its variable fields from ``u[i]``.

    ``slot_hash[row, slot - SLOT0 + SLOT_HISTORY, 32]`` are the per-slot hashes. Writes
    ``stage_off/stage_sz`` (-1/0 when no template) and the ground-truth compute-unit limit,
    price and tip (left as they are when the template has no such field). Returns bytes used.
    """
    pos = 0
    base = SLOT0 - SLOT_HISTORY
    for i in range(tmpl_idx.shape[0]):
        t = tmpl_idx[i]
        if t < 0:
            stage_off[i] = -1
            stage_sz[i] = 0
            continue
        sz = tmpl_sz[t]
        src = tmpl_off[t]
        for k in range(sz):
            stage[pos + k] = tmpl_buf[src + k]
        nsig_b = tmpl_nsig[t] * SIGNATURE_SZ
        for k in range(nsig_b):
            stage[pos + 1 + k] = sig_rand[i, k]
        slot = SLOT0 + (ts_ns[i] - start_ns) // SLOT_NS
        last = np.int64(0)
        for j in range(fld_cnt[t]):
            f = fld_start[t] + j
            g = fld_gen[f]
            o = pos + fld_off[f]
            p0 = fld_p0[f]
            p1 = fld_p1[f]
            uu = u[i, j]
            if g == GEN_BLOCKHASH:
                lag = np.int64(p0) + np.int64(uu * (p1 - p0 + 1.0))
                row = slot - lag - base
                for k in range(32):
                    stage[o + k] = slot_hash[HASH_BLOCKHASH, row, k]
            elif g == GEN_AMOUNT:
                last = _clamp_u63(_log_uniform(p0, p1, uu))
                _put_le(stage, o, last, 8)
            elif g == GEN_SCALED:
                last = _clamp_u63(last * p0 * (1.0 + p1 * uu))
                _put_le(stage, o, last, 8)
            elif g == GEN_CU_LIMIT:
                v = np.int64(p0 + uu * (p1 - p0 + 1.0))
                v = max(np.int64(100), v - v % 100) if p1 > p0 else np.int64(p0)
                _put_le(stage, o, v, 4)
                cu_limit[i] = v
                last = v
            elif g == GEN_CU_PRICE:
                last = _clamp_u63(_log_uniform(p0, p1, uu))
                _put_le(stage, o, last, 8)
                cu_price[i] = last
            elif g == GEN_TIP:
                last = _clamp_u63(_log_uniform(p0, p1, uu))
                _put_le(stage, o, last, 8)
                tip[i] = last
            elif g == GEN_VOTE_ROOT:
                last = slot - np.int64(p0) - np.int64(uu * p1)
                _put_le(stage, o, last, 8)
            elif g == GEN_VOTE_HASH or g == GEN_BLOCK_ID:
                row = last + np.int64(p0) - base
                hr = HASH_BANK if g == GEN_VOTE_HASH else HASH_BLOCK_ID
                for k in range(32):
                    stage[o + k] = slot_hash[hr, row, k]
            elif g == GEN_VOTE_TS:
                _put_le(stage, o, ts_ns[i] // 1_000_000_000, 8)
        stage_off[i] = pos
        stage_sz[i] = sz
        pos += sz
    return pos


def b58_column(buf: np.ndarray, off: np.ndarray, n: int = SIGNATURE_SZ):
    """A pyarrow string array: base58 of the ``n``-byte field at each ``off`` ("" where off < 0).

    The encoding is the workbench's own (wire/base58.py, tested against the base58 package).
    """
    import pyarrow as pa

    off = np.asarray(off, np.int64)
    good = off >= 0
    k = int(good.sum())
    data = np.empty(max(1, k * (2 * n)), np.uint8)
    sub = np.empty(k + 1, np.int32)
    used = encode_column(np.asarray(buf, np.uint8), off[good], n, data, sub)
    lens = np.zeros(off.shape[0], np.int32)
    lens[good] = np.diff(sub)
    offsets = np.zeros(off.shape[0] + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    return pa.StringArray.from_buffers(off.shape[0], pa.py_buffer(offsets), pa.py_buffer(data[:used].copy()))


# ============================================================================================
# template building (solders)
# ============================================================================================

class _Fields:
    """Records the variable fields of one template as random sentinels, located after compiling."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.items: list[tuple[bytes, int, float, float]] = []
        self.swaps: list[tuple] = []        # Raydium swaps: (sentinel, base_out, pool, coin_to_pc, src, dst, owner, wrap)
        self.wrap: bytes | None = None      # sentinel of the wrap transfer the next swap pays from (market mode)

    def _add(self, width: int, gen: int, p0: float, p1: float) -> bytes:
        b = self.rng.bytes(width)
        self.items.append((b, gen, float(p0), float(p1)))
        return b

    def u64(self, gen: int, p0: float = 0.0, p1: float = 0.0) -> int:
        return int.from_bytes(self._add(8, gen, p0, p1), "little")

    def u32(self, gen: int, p0: float = 0.0, p1: float = 0.0) -> int:
        return int.from_bytes(self._add(4, gen, p0, p1), "little")

    def raw(self, gen: int, p0: float = 0.0, p1: float = 0.0) -> bytes:
        return self._add(GEN_WIDTH[gen], gen, p0, p1)

    def locate(self, payload: bytes) -> list[tuple[int, int, float, float]]:
        out = []
        for b, gen, p0, p1 in self.items:
            at = payload.find(b)
            if at < 0 or payload.find(b, at + 1) >= 0:
                raise RuntimeError("synth: a field sentinel is missing or not unique in its template")
            out.append((at, gen, p0, p1))
        return out


@dataclass
class Template:
    payload: bytes                      # the serialized transaction, sentinels in variable fields
    fields: list                        # (offset, gen, p0, p1) in drawing order
    signers: list                       # Wallets (solders Keypairs) in signature order
    shape: int
    version: int                        # VERSION_LEGACY | VERSION_V0
    num_signatures: int
    num_account_keys: int               # static keys
    num_instructions: int
    num_lookup_tables: int
    programs: list                      # base58 program ids invoked, unique, first appearance
    swaps: list = field(default_factory=list)   # SwapMeta of its Raydium swaps, instruction order


@dataclass
class SwapMeta:
    """Where a template's Raydium swap sits, for the market walk (synth/market.py) to rewrite it."""

    data_off: int           # payload offset of the instruction data (tag; the two u64 follow at +1, +9)
    base_out: bool          # SwapBaseOut (max_amount_in, amount_out) else SwapBaseIn (amount_in, minimum_amount_out)
    pool: int               # index in TemplateSet.pools
    coin_to_pc: bool        # the coin (token a) goes in
    wrap_off: int           # payload offset of the wrap transfer's lamports paying the swap, -1 none
    src: str                # user source token account (base58)
    dst: str                # user destination token account
    owner: str              # the signer owning them
    src_mint: str
    dst_mint: str


@dataclass
class TemplateSet:
    """Every template as flat arrays for the kernels, plus what the ground truth needs."""

    buf: np.ndarray            # uint8: payloads back to back
    off: np.ndarray            # int64 [T]: payload start in buf
    sz: np.ndarray             # int64 [T]: payload bytes
    nsig: np.ndarray           # int64 [T]: signatures
    fld_start: np.ndarray      # int64 [T]: first field row
    fld_cnt: np.ndarray        # int64 [T]: field rows
    fld_off: np.ndarray        # int64 [F]: offset in the payload
    fld_gen: np.ndarray        # int64 [F]: GEN_*
    fld_p0: np.ndarray         # float64 [F]
    fld_p1: np.ndarray         # float64 [F]
    shape: np.ndarray          # int64 [T]: index in SHAPE_NAMES
    version: np.ndarray        # int64 [T]: VERSION_*
    num_account_keys: np.ndarray
    num_instructions: np.ndarray
    num_lookup_tables: np.ndarray
    programs: list             # [T] lists of base58 program ids
    signers: list              # [T] lists of Wallets, signature order
    good_prob: np.ndarray      # float64 [T]: probability of each template for a good packet (0 for too_long)
    good: np.ndarray           # int64: indices of good templates
    too_long: np.ndarray       # int64: indices of oversized templates
    fields_max: int            # most fields in one template
    pools: list = field(default_factory=list)
    swaps: list = field(default_factory=list)    # [T] lists of SwapMeta
    tables: list = field(default_factory=list)   # every AddressLookupTableAccount the templates may use
    searcher: object = None                      # market mode: int64[pool, coin_to_pc, j] searcher templates

    @property
    def count(self) -> int:
        return int(self.sz.shape[0])


@dataclass
class Pool:
    """One Raydium AMM v4 pool with its OpenBook market (all accounts but the authority are synthetic)."""

    amm: object
    open_orders: object
    target_orders: object
    coin_vault: object          # pool coin token account
    pc_vault: object            # pool pc token account
    market: object
    bids: object
    asks: object
    event_queue: object
    market_coin_vault: object
    market_pc_vault: object
    vault_signer: object
    coin_mint: object
    pc_mint: object
    price: float                # pc base units per coin base unit
    table: object               # AddressLookupTableAccount holding the pool's accounts


class Wallet:
    """A solders Keypair with its public key computed once (``Keypair.pubkey`` costs ~15 us)."""

    __slots__ = ("keypair", "_pubkey")

    def __init__(self, keypair):
        self.keypair = keypair
        self._pubkey = keypair.pubkey()

    def pubkey(self):
        return self._pubkey

    def sign_message(self, message: bytes):
        return self.keypair.sign_message(message)


class _World:
    """The fixed cast of a seed: pools, lookup tables, program keys."""

    def __init__(self, rng: np.random.Generator, market=None):
        from solders.address_lookup_table_account import AddressLookupTableAccount
        from solders.pubkey import Pubkey

        P = Pubkey.from_string
        self.rng = rng
        self.system = P(PROGRAM_SYSTEM)
        self.token = P(PROGRAM_TOKEN)
        self.ata = P(PROGRAM_ATA)
        self.raydium = P(PROGRAM_RAYDIUM_AMM_V4)
        self.openbook = P(PROGRAM_OPENBOOK)
        self.vote = P(PROGRAM_VOTE)
        self.memo = P(PROGRAM_MEMO)
        self.authority = P(RAYDIUM_AMM_AUTHORITY)
        self.wsol = P(MINT_WSOL)
        self.usdc = P(MINT_USDC)
        self.tips = [P(s) for s in JITO_TIP_ACCOUNTS]
        self.market = market
        self.pools: list[Pool] = []
        self.tables: list = []
        self.n_pools = N_POOLS if market is None else len(market.pools)
        for k in range(self.n_pools):
            if market is not None:      # the market's pools: twins 2k, 2k+1 first (N_POOLS), then single pools
                spec = market.pools[k]
                coin, pc, price = P(spec.coin), P(spec.pc), spec.price
            elif k % 2 == 0:
                coin = self.key()
                pc = self.wsol if rng.random() < 0.7 else self.usdc
                price = float(np.exp(rng.uniform(np.log(1e-4), np.log(1e2))))
            else:                       # the twin: same pair, a price a little off
                prev = self.pools[-1]
                coin, pc, price = prev.coin_mint, prev.pc_mint, prev.price * float(rng.uniform(0.97, 1.03))
            keys = [self.key() for _ in range(12)]
            table = AddressLookupTableAccount(self.key(), keys + [self.authority, self.openbook, coin, pc])
            self.pools.append(Pool(*keys, coin_mint=coin, pc_mint=pc, price=price, table=table))
            self.tables.append(table)
        common = [self.token, self.system, self.ata, self.openbook, self.authority, self.wsol, self.usdc,
                  P(SYSVAR_RENT)] + [self.key() for _ in range(24)]
        self.common_table = AddressLookupTableAccount(self.key(), common)
        self.tables.append(self.common_table)

    def key(self):
        from solders.pubkey import Pubkey
        return Pubkey(self.rng.bytes(32))

    def wallet(self) -> "Wallet":
        from solders.keypair import Keypair
        return Wallet(Keypair.from_seed(self.rng.bytes(32)))

    def log_uniform(self, lo: float, hi: float) -> float:
        return float(np.exp(self.rng.uniform(np.log(lo), np.log(hi))))

    def ata_of(self, owner, mint):
        from solders.token.associated import get_associated_token_address
        return get_associated_token_address(owner, mint)

    def table(self, keys):
        from solders.address_lookup_table_account import AddressLookupTableAccount
        t = AddressLookupTableAccount(self.key(), list(keys))
        self.tables.append(t)
        return t


# --- instruction helpers ----------------------------------------------------------------------

def _ix(program, data: bytes, metas):
    from solders.instruction import AccountMeta, Instruction
    return Instruction(program, data, [AccountMeta(k, s, w) for k, s, w in metas])


def _budget(w: _World, f: _Fields, p_limit: float, p_price: float, limit: tuple, price: tuple) -> list:
    """ComputeBudget SetComputeUnitLimit / SetComputeUnitPrice, each with its probability."""
    from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
    out = []
    if w.rng.random() < p_limit:
        lo = int(w.rng.integers(limit[0], limit[1] + 1))
        hi = lo if w.rng.random() < 0.5 else min(1_400_000, int(lo * w.rng.uniform(1.1, 3.0)))
        out.append(set_compute_unit_limit(f.u32(GEN_CU_LIMIT, lo, hi)))
    if w.rng.random() < p_price:
        lo = w.log_uniform(*price)
        hi = min(CU_PRICE_MAX, lo * w.log_uniform(1.5, 10.0))
        out.append(set_compute_unit_price(f.u64(GEN_CU_PRICE, lo, hi)))
    if len(out) == 2 and w.rng.random() < 0.2:
        out.reverse()
    return out


def _transfer(f: _Fields, src, dst, lo: float, hi: float):
    from solders.system_program import TransferParams, transfer
    return transfer(TransferParams(from_pubkey=src, to_pubkey=dst, lamports=f.u64(GEN_AMOUNT, lo, hi)))


def _tip(w: _World, f: _Fields, payer):
    from solders.system_program import TransferParams, transfer
    lo = w.log_uniform(1_000, 100_000)
    hi = min(1_000_000.0, lo * w.log_uniform(2.0, 100.0))
    dst = w.tips[int(w.rng.integers(len(w.tips)))]
    return transfer(TransferParams(from_pubkey=payer, to_pubkey=dst, lamports=f.u64(GEN_TIP, lo, hi)))


def _ata_create(w: _World, payer, owner, mint):
    ata = w.ata_of(owner, mint)
    return ata, _ix(w.ata, bytes([ATA_CREATE_IDEMPOTENT]), [
        (payer, True, True), (ata, False, True), (owner, False, False), (mint, False, False),
        (w.system, False, False), (w.token, False, False)])


def _token_transfer(w: _World, f: _Fields, src, dst, owner, lo: float, hi: float):
    data = bytes([TOKEN_TRANSFER]) + f.u64(GEN_AMOUNT, lo, hi).to_bytes(8, "little")
    return _ix(w.token, data, [(src, False, True), (dst, False, True), (owner, True, False)])


def _raydium_swap(w: _World, f: _Fields, pool: Pool, user_src, user_dst, owner, base_out: bool,
                  coin_to_pc: bool, amount: tuple, slip: float, chained: bool = False):
    """Raydium AMM v4 SwapBaseIn / SwapBaseOut with the program's 18-account order.

    Fields: amount_in (log-uniform, or the previous field when ``chained``) then
    minimum_amount_out = amount_in * rate * (1 - slip*u); for base-out, amount_out then
    max_amount_in = amount_out / rate * (1 + slip*u).
    """
    rate = pool.price if coin_to_pc else 1.0 / pool.price     # destination units per source unit
    if base_out:
        amount_out = f.u64(GEN_AMOUNT, amount[0] * rate, amount[1] * rate)
        max_in = f.u64(GEN_SCALED, 1.0 / rate, slip)
        data = bytes([RAYDIUM_SWAP_BASE_OUT]) + max_in.to_bytes(8, "little") + amount_out.to_bytes(8, "little")
    else:
        amount_in = f.u64(GEN_SCALED, 1.0, 0.0) if chained else f.u64(GEN_AMOUNT, *amount)
        min_out = f.u64(GEN_SCALED, rate, -slip)
        data = bytes([RAYDIUM_SWAP_BASE_IN]) + amount_in.to_bytes(8, "little") + min_out.to_bytes(8, "little")
    src_mint, dst_mint = (pool.coin_mint, pool.pc_mint) if coin_to_pc else (pool.pc_mint, pool.coin_mint)
    f.swaps.append((data[:9], base_out, w.pools.index(pool), coin_to_pc, str(user_src), str(user_dst), str(owner),
                    f.wrap, str(src_mint), str(dst_mint)))
    f.wrap = None
    metas = [
        (w.token, False, False),              # 0 SPL Token program
        (pool.amm, False, True),              # 1 amm
        (w.authority, False, False),          # 2 amm authority
        (pool.open_orders, False, True),      # 3 amm open orders
        (pool.target_orders, False, True),    # 4 amm target orders
        (pool.coin_vault, False, True),       # 5 pool coin token account
        (pool.pc_vault, False, True),         # 6 pool pc token account
        (w.openbook, False, False),           # 7 serum (OpenBook) program
        (pool.market, False, True),           # 8 serum market
        (pool.bids, False, True),             # 9 serum bids
        (pool.asks, False, True),             # 10 serum asks
        (pool.event_queue, False, True),      # 11 serum event queue
        (pool.market_coin_vault, False, True),  # 12 serum coin vault
        (pool.market_pc_vault, False, True),  # 13 serum pc vault
        (pool.vault_signer, False, False),    # 14 serum vault signer
        (user_src, False, True),              # 15 user source token account
        (user_dst, False, True),              # 16 user destination token account
        (owner, True, False),                 # 17 user owner (signer)
    ]
    return _ix(w.raydium, data, metas)


def _tower_sync(w: _World, f: _Fields, vote_account, authority):
    """Vote TowerSync (bincode, compact form): u32 tag, root u64, short_vec of lockout
    (varint offset, u8 confirmation count), bank hash, Option<i64> timestamp, block id."""
    data = VOTE_TOWER_SYNC.to_bytes(4, "little")
    data += f.u64(GEN_VOTE_ROOT, 32, 3).to_bytes(8, "little")
    data += bytes([VOTE_LOCKOUTS])
    for k in range(VOTE_LOCKOUTS):
        data += bytes([1, VOTE_LOCKOUTS - k])
    data += f.raw(GEN_VOTE_HASH, VOTE_LOCKOUTS)
    data += b"\x01" + f.u64(GEN_VOTE_TS).to_bytes(8, "little")
    data += f.raw(GEN_BLOCK_ID, VOTE_LOCKOUTS)
    return _ix(w.vote, data, [(vote_account, False, True), (authority, True, False)])


def _memo(w: _World, text: bytes, signer):
    return _ix(w.memo, text, [(signer, True, False)])


_ALNUM = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", np.uint8)


def _ascii(w: _World, n: int) -> bytes:
    return _ALNUM[w.rng.integers(0, _ALNUM.shape[0], n)].tobytes()


# --- shapes: each returns (payer, instructions, lookup tables or None for legacy) -----------------

def _shape_vote(w, f):
    identity = w.wallet()
    authority = w.wallet() if w.rng.random() < 0.2 else identity
    ixs = [_tower_sync(w, f, w.key(), authority.pubkey())]
    return identity, [authority], ixs, None, (1, 4)


def _v0_or_legacy(w, p_v0):
    return [] if w.rng.random() < p_v0 else None


def _shape_sol_transfer(w, f):
    payer = w.wallet()
    ixs = _budget(w, f, 0.7, 0.8, (300, 3_000), (1_000, 200_000))
    lo = w.log_uniform(1e5, 1e10)
    for _ in range(int(w.rng.choice([1, 2, 3], p=[0.85, 0.1, 0.05]))):
        ixs.append(_transfer(f, payer.pubkey(), w.key(), lo, lo * w.log_uniform(2, 100)))
    if w.rng.random() < 0.05:
        ixs.append(_tip(w, f, payer.pubkey()))
    return payer, [], ixs, _v0_or_legacy(w, 0.3), (1, 60)


def _token_mints(w):
    return [w.usdc] + [p.coin_mint for p in w.pools[::2]]


def _shape_token_transfer(w, f):
    payer = w.wallet()
    mints = _token_mints(w)
    mint = mints[int(w.rng.integers(len(mints)))]
    ixs = _budget(w, f, 0.7, 0.8, (5_000, 60_000), (1_000, 500_000))
    dest_owner = w.key()
    src = w.ata_of(payer.pubkey(), mint)
    if w.rng.random() < 0.3:
        dst, create = _ata_create(w, payer.pubkey(), dest_owner, mint)
        ixs.append(create)
    else:
        dst = w.ata_of(dest_owner, mint)
    lo = w.log_uniform(1e3, 1e9)
    ixs.append(_token_transfer(w, f, src, dst, payer.pubkey(), lo, lo * w.log_uniform(2, 1000)))
    return payer, [], ixs, _v0_or_legacy(w, 0.3), (1, 60)


def _pool(w) -> int:
    return int(w.rng.integers(w.n_pools))


def _slip(w) -> float:
    return float(w.rng.uniform(0.005, 0.10))


def _shape_raydium_wallet(w, f):
    payer = w.wallet()
    me = payer.pubkey()
    pool = w.pools[_pool(w)]
    coin_to_pc = bool(w.rng.random() < 0.5)
    base_out = bool(w.rng.random() < 0.15)
    src_mint, dst_mint = (pool.coin_mint, pool.pc_mint) if coin_to_pc else (pool.pc_mint, pool.coin_mint)
    src_ata, dst_ata = w.ata_of(me, src_mint), w.ata_of(me, dst_mint)
    ixs = _budget(w, f, 0.9, 0.95, (60_000, 400_000), (10_000, 2_000_000))
    lo = w.log_uniform(1e4, 1e9)
    amount = (lo, lo * w.log_uniform(10, 1000))
    wrap = src_mint == w.wsol
    unwrap = wrap or dst_mint == w.wsol
    chained = False
    if wrap:
        _, create = _ata_create(w, me, me, w.wsol)
        ixs.append(create)
        if not base_out:
            ixs.append(_transfer(f, me, src_ata, *amount))     # wrap exactly amount_in
            chained = True
        else:
            ixs.append(_transfer(f, me, src_ata, amount[0], amount[1] * 1.1))
        f.wrap = f.items[-1][0]
        ixs.append(_ix(w.token, bytes([TOKEN_SYNC_NATIVE]), [(src_ata, False, True)]))
    elif w.rng.random() < 0.6:
        ixs.append(_ata_create(w, me, me, dst_mint)[1])
    ixs.append(_raydium_swap(w, f, pool, src_ata, dst_ata, me, base_out, coin_to_pc, amount, _slip(w),
                             chained=chained))
    if unwrap:
        wsol_ata = src_ata if wrap else dst_ata
        ixs.append(_ix(w.token, bytes([TOKEN_CLOSE_ACCOUNT]), [(wsol_ata, False, True), (me, False, True),
                                                               (me, True, False)]))
    if w.rng.random() < 0.15:
        ixs.append(_tip(w, f, me))
    tables = None
    if w.rng.random() < 0.6:
        tables = [pool.table] if w.rng.random() < 0.5 else [w.common_table, pool.table]
    return payer, [], ixs, tables, (1, 60)


def _bot_table(w, owner):
    if w.market is not None:
        # market mode: the bot's table holds other accounts of its own, never the token accounts its
        # swaps pay from (a source loaded from a table cannot tell the engine the swap's direction)
        return w.table([w.key() for _ in range(10)])
    keys = [w.ata_of(owner, m) for m in {bytes(p.coin_mint): p.coin_mint for p in w.pools}.values()]
    keys += [w.ata_of(owner, w.wsol), w.ata_of(owner, w.usdc)] + [w.key() for _ in range(8)]
    return w.table(keys)


def _shape_raydium_bot(w, f):
    payer = w.wallet()
    me = payer.pubkey()
    pool = w.pools[_pool(w)]
    coin_to_pc = bool(w.rng.random() < 0.5)
    base_out = bool(w.rng.random() < 0.2)
    src_mint, dst_mint = (pool.coin_mint, pool.pc_mint) if coin_to_pc else (pool.pc_mint, pool.coin_mint)
    ixs = _budget(w, f, 1.0, 1.0, (60_000, 300_000), (100_000, 10_000_000))
    lo = w.log_uniform(1e5, 1e10)
    swap = _raydium_swap(w, f, pool, w.ata_of(me, src_mint), w.ata_of(me, dst_mint), me, base_out, coin_to_pc,
                         (lo, lo * w.log_uniform(10, 1000)), _slip(w))
    ixs.append(swap)
    if w.rng.random() < 0.7:
        tip = _tip(w, f, me)
        if w.rng.random() < 0.8:
            ixs.append(tip)
        else:
            ixs.insert(0, tip)
    n_tables = int(w.rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    tables = [[pool.table], [w.common_table, pool.table], [w.common_table, pool.table, _bot_table(w, me)]][n_tables - 1]
    return payer, [], ixs, tables, (1, 20)


def _shape_arb_bot(w, f):
    payer = w.wallet()
    me = payer.pubkey()
    k = 2 * int(w.rng.integers(N_POOLS // 2))
    a, b = (w.pools[k], w.pools[k + 1]) if w.rng.random() < 0.5 else (w.pools[k + 1], w.pools[k])
    ixs = _budget(w, f, 1.0, 1.0, (100_000, 400_000), (100_000, 10_000_000))
    pc_ata, coin_ata = w.ata_of(me, a.pc_mint), w.ata_of(me, a.coin_mint)
    lo = w.log_uniform(1e6, 1e10)
    ixs.append(_raydium_swap(w, f, a, pc_ata, coin_ata, me, False, False, (lo, lo * w.log_uniform(10, 100)),
                             _slip(w)))
    ixs.append(_raydium_swap(w, f, b, coin_ata, pc_ata, me, False, True, (1.0, 1.0), _slip(w), chained=True))
    ixs.append(_tip(w, f, me))
    tables = [a.table, b.table]
    if w.rng.random() < 0.5:
        tables = [w.common_table] + tables
    return payer, [], ixs, tables, (1, 10)


def _shape_multisig(w, f):
    payer = w.wallet()
    cosigners = [w.wallet() for _ in range(int(w.rng.choice([1, 2], p=[0.7, 0.3])))]
    ixs = _budget(w, f, 0.5, 0.5, (5_000, 100_000), (1_000, 1_000_000))
    mints = _token_mints(w)
    for c in cosigners:
        if w.rng.random() < 0.5:
            lo = w.log_uniform(1e5, 1e10)
            ixs.append(_transfer(f, c.pubkey(), w.key(), lo, lo * w.log_uniform(2, 100)))
        else:
            mint = mints[int(w.rng.integers(len(mints)))]
            lo = w.log_uniform(1e3, 1e9)
            ixs.append(_token_transfer(w, f, w.ata_of(c.pubkey(), mint), w.ata_of(w.key(), mint), c.pubkey(),
                                       lo, lo * w.log_uniform(2, 100)))
    return payer, cosigners, ixs, None, (1, 60)


def _shape_memo(w, f):
    payer = w.wallet()
    ixs = _budget(w, f, 0.3, 0.6, (5_000, 50_000), (1_000, 100_000))
    ixs.append(_memo(w, _ascii(w, int(w.rng.integers(8, 65))), payer.pubkey()))
    lo = w.log_uniform(1e4, 1e9)
    ixs.append(_transfer(f, payer.pubkey(), w.key(), lo, lo * 10))
    return payer, [], ixs, _v0_or_legacy(w, 0.3), (1, 60)


def _shape_too_long(w, f, memo_sz: int):
    payer = w.wallet()
    ixs = _budget(w, f, 0.0, 1.0, (0, 0), (1_000, 100_000))
    ixs.append(_memo(w, _ascii(w, memo_sz), payer.pubkey()))
    lo = w.log_uniform(1e4, 1e9)
    ixs.append(_transfer(f, payer.pubkey(), w.key(), lo, lo * 10))
    return payer, [], ixs, None, (1, 60)


_BUILDERS = (_shape_vote, _shape_sol_transfer, _shape_token_transfer, _shape_raydium_wallet,
             _shape_raydium_bot, _shape_arb_bot, _shape_multisig, _shape_memo)


def _compile(w: _World, f: _Fields, shape: int, payer, extra_signers, ixs, tables, lag) -> Template:
    """solders compiles the message; sentinels give the variable-field offsets."""
    from solders.hash import Hash
    from solders.message import Message, MessageV0
    from solders.signature import Signature
    from solders.transaction import VersionedTransaction

    bh = Hash(f.raw(GEN_BLOCKHASH, *lag))
    # keep the blockhash first in drawing order (fields are drawn in order; scaled ones follow their base)
    f.items.insert(0, f.items.pop())
    if tables is None:
        msg = Message.new_with_blockhash(ixs, payer.pubkey(), bh)
        version, n_tables = VERSION_LEGACY, 0
    else:
        msg = MessageV0.try_compile(payer.pubkey(), ixs, tables, bh)
        version, n_tables = VERSION_V0, len(msg.address_table_lookups)
    n_sig = msg.header.num_required_signatures
    keys = list(msg.account_keys)
    by_key = {kp.pubkey(): kp for kp in [payer] + list(extra_signers)}
    signers = [by_key[k] for k in keys[:n_sig]]
    tx = VersionedTransaction.populate(msg, [Signature.default()] * n_sig)
    payload = bytes(tx)
    programs = []
    for ix in msg.instructions:
        p = str(keys[ix.program_id_index])
        if p not in programs:
            programs.append(p)
    swaps = []
    for head, base_out, pool, coin_to_pc, src, dst, owner, wrap, src_mint, dst_mint in f.swaps:
        at = payload.find(head)
        if at < 0 or payload.find(head, at + 1) >= 0:
            raise RuntimeError("synth: a swap's data is missing or not unique in its template")
        wrap_off = -1 if wrap is None else payload.find(wrap)
        swaps.append(SwapMeta(at, base_out, pool, coin_to_pc, wrap_off, src, dst, owner, src_mint, dst_mint))
    return Template(payload, f.locate(payload), signers, shape, version, n_sig, len(keys), len(msg.instructions),
                    n_tables, programs, swaps)


def _zipf(n: int, alpha: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** alpha
    return w / w.sum()


def _shape_searcher_swap(w, f, pool_idx: int, coin_to_pc: bool):
    """A searcher's single exact-in swap on a given pool and direction (market mode: the
    injected victims, dislocations, oracle moves and competitors' back-runs; never drawn for
    the baseline). Compute budget and a Jito tip always; v0 with the pool's table."""
    payer = w.wallet()
    me = payer.pubkey()
    pool = w.pools[pool_idx]
    src_mint, dst_mint = (pool.coin_mint, pool.pc_mint) if coin_to_pc else (pool.pc_mint, pool.coin_mint)
    ixs = _budget(w, f, 1.0, 1.0, (60_000, 300_000), (100_000, 10_000_000))
    ixs.append(_raydium_swap(w, f, pool, w.ata_of(me, src_mint), w.ata_of(me, dst_mint), me, False, coin_to_pc,
                             (1e6, 1e9), 0.01))
    ixs.append(_tip(w, f, me))
    tables = [pool.table] if w.rng.random() < 0.5 else [w.common_table, pool.table]
    return payer, [], ixs, tables, (1, 20)


SEARCHER_TEMPLATES = 3          # market mode: searcher-swap templates per pool and direction


def build_templates(rng: np.random.Generator, per_shape: int = TEMPLATES_PER_SHAPE,
                    too_long: int = TOO_LONG_TEMPLATES, market=None) -> TemplateSet:
    """Compile ``per_shape`` templates of every shape in ``SHAPES`` and ``too_long`` oversized
    ones, all from ``rng`` (the same generator state gives the same templates, keys and pools).

    With ``market`` (a synth.market.MarketSpec) the pools are the market's, and
    ``SEARCHER_TEMPLATES`` single-swap searcher templates per pool and direction follow
    (probability 0: only the market walk places them; ``TemplateSet.searcher[pool, coin_to_pc]``
    lists them)."""
    if per_shape < 1:
        raise ValueError(f"build_templates: per_shape={per_shape}: must be >= 1")
    w = _World(rng, market)
    tmpls: list[Template] = []
    prob: list[float] = []
    for s, (shape, build) in enumerate(zip(SHAPES, _BUILDERS)):
        made = []
        while len(made) < per_shape:
            f = _Fields(rng)
            payer, extra, ixs, tables, lag = build(w, f)
            t = _compile(w, f, s, payer, extra, ixs, tables, lag)
            if len(t.payload) > GOOD_TXN_SZ_MAX and tables is None:
                # too big as legacy: the same instructions through the pool/common tables, as wallets do
                f.items = [it for it in f.items if it[1] != GEN_BLOCKHASH]
                t = _compile(w, f, s, payer, extra, ixs, [w.common_table] + [p.table for p in w.pools], lag)
            if len(t.payload) > GOOD_TXN_SZ_MAX:
                continue
            made.append(t)
        tmpls.extend(made)
        weights = _zipf(per_shape, ZIPF_ALPHA) if shape.zipf else np.full(per_shape, 1.0 / per_shape)
        prob.extend((shape.share * weights).tolist())
    lo, hi = TOO_LONG_SZ
    for _ in range(too_long):
        target = int(rng.integers(lo, hi + 1))
        f = _Fields(rng)
        state = rng.bit_generator.state
        payer, extra, ixs, tables, lag = _shape_too_long(w, f, 600)
        t = _compile(w, f, SHAPE_TOO_LONG, payer, extra, ixs, tables, lag)
        # rebuild the same transaction with the memo grown to the target size
        rng.bit_generator.state = state
        f = _Fields(rng)
        payer, extra, ixs, tables, lag = _shape_too_long(w, f, 600 + target - len(t.payload))
        t = _compile(w, f, SHAPE_TOO_LONG, payer, extra, ixs, tables, lag)
        assert PACKET_DATA_SIZE < len(t.payload) <= 1472, len(t.payload)
        tmpls.append(t)
        prob.append(0.0)
    searcher = None
    if market is not None:
        searcher = np.zeros((w.n_pools, 2, SEARCHER_TEMPLATES), np.int64)
        for p in range(w.n_pools):
            for d in (0, 1):
                for j in range(SEARCHER_TEMPLATES):
                    f = _Fields(rng)
                    payer, extra, ixs, tables, lag = _shape_searcher_swap(w, f, p, bool(d))
                    searcher[p, d, j] = len(tmpls)
                    tmpls.append(_compile(w, f, 4, payer, extra, ixs, tables, lag))   # shape: raydium_bot
                    prob.append(0.0)
    ts = _pack(tmpls, np.asarray(prob), w)
    ts.searcher = searcher
    return ts


def _pack(tmpls: list[Template], prob: np.ndarray, w: _World) -> TemplateSet:
    sz = np.array([len(t.payload) for t in tmpls], np.int64)
    off = np.zeros(len(tmpls), np.int64)
    off[1:] = np.cumsum(sz)[:-1]
    cnt = np.array([len(t.fields) for t in tmpls], np.int64)
    start = np.zeros(len(tmpls), np.int64)
    start[1:] = np.cumsum(cnt)[:-1]
    rows = [r for t in tmpls for r in t.fields]
    shape = np.array([t.shape for t in tmpls], np.int64)
    prob = prob / prob.sum()
    return TemplateSet(
        buf=np.frombuffer(b"".join(t.payload for t in tmpls), np.uint8).copy(), off=off, sz=sz,
        nsig=np.array([t.num_signatures for t in tmpls], np.int64),
        fld_start=start, fld_cnt=cnt,
        fld_off=np.array([r[0] for r in rows], np.int64), fld_gen=np.array([r[1] for r in rows], np.int64),
        fld_p0=np.array([r[2] for r in rows], np.float64), fld_p1=np.array([r[3] for r in rows], np.float64),
        shape=shape, version=np.array([t.version for t in tmpls], np.int64),
        num_account_keys=np.array([t.num_account_keys for t in tmpls], np.int64),
        num_instructions=np.array([t.num_instructions for t in tmpls], np.int64),
        num_lookup_tables=np.array([t.num_lookup_tables for t in tmpls], np.int64),
        programs=[t.programs for t in tmpls], signers=[t.signers for t in tmpls],
        good_prob=prob, good=np.flatnonzero(shape != SHAPE_TOO_LONG), too_long=np.flatnonzero(shape == SHAPE_TOO_LONG),
        fields_max=int(cnt.max()), pools=w.pools, swaps=[t.swaps for t in tmpls], tables=list(w.tables))


def sign_staged(ts: TemplateSet, stage: np.ndarray, stage_off: np.ndarray, tmpl_idx: np.ndarray) -> None:
    """Sign every staged transaction in place with its template's keypairs (ed25519)."""
    for i in np.flatnonzero(tmpl_idx >= 0):
        t = int(tmpl_idx[i])
        o = int(stage_off[i])
        n = int(ts.nsig[t])
        msg = stage[o + 1 + n * SIGNATURE_SZ:o + int(ts.sz[t])].tobytes()
        for j, kp in enumerate(ts.signers[t]):
            a = o + 1 + j * SIGNATURE_SZ
            stage[a:a + SIGNATURE_SZ] = np.frombuffer(bytes(kp.sign_message(msg)), np.uint8)
