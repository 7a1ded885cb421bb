"""Templates: every shape compiled by solders into serialized transactions with a table of
their variable fields (``build_templates`` -> ``TemplateSet``, flat arrays for the kernels).

solders compiles each message (``Message`` / ``MessageV0.try_compile``,
``VersionedTransaction.populate``); the sentinels recorded in ``Fields`` give each variable
field's offset, and a swap's data sentinel gives its ``SwapMeta`` (where the market walk
rewrites it). Template popularity within a shape follows a Zipf-like law (``ZIPF_ALPHA``);
votes are uniform (one template per validator).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...wire.txn import PACKET_DATA_SIZE
from .fields import GEN_BLOCKHASH, Fields
from .shapes import BUILDERS, SHAPE_TOO_LONG, SHAPES, shape_searcher_swap, shape_too_long
from .world import World

VERSION_LEGACY = 0
VERSION_V0 = 1
VERSION_NAMES = ("legacy", "0")

TEMPLATES_PER_SHAPE = 256      # templates compiled per good shape
TOO_LONG_TEMPLATES = 32        # oversized (memo) templates for the too_long kind
GOOD_TXN_SZ_MAX = 1200         # bytes: good templates stay below this, so trailing bytes fit in 1232
TOO_LONG_SZ = (1240, 1460)     # bytes: oversized template sizes (<= 1472 so one frame carries them)
ZIPF_ALPHA = 0.9               # template popularity within a shape ~ 1 / rank**alpha
SEARCHER_TEMPLATES = 3         # market mode: searcher-swap templates per pool and direction


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
    """Where a template's Raydium swap sits, for the market walk (synth/market/) to rewrite it."""

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


def _compile(w: World, f: Fields, shape: int, payer, extra_signers, ixs, tables, lag) -> Template:
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


def build_templates(rng: np.random.Generator, per_shape: int = TEMPLATES_PER_SHAPE,
                    too_long: int = TOO_LONG_TEMPLATES, market=None) -> TemplateSet:
    """Compile ``per_shape`` templates of every shape in ``SHAPES`` and ``too_long`` oversized
    ones, all from ``rng`` (the same generator state gives the same templates, keys and pools).

    With ``market`` (a synth.market.spec.MarketSpec) the pools are the market's, and
    ``SEARCHER_TEMPLATES`` single-swap searcher templates per pool and direction follow
    (probability 0: only the market walk places them; ``TemplateSet.searcher[pool, coin_to_pc]``
    lists them)."""
    if per_shape < 1:
        raise ValueError(f"build_templates: per_shape={per_shape}: must be >= 1")
    w = World(rng, market)
    tmpls: list[Template] = []
    prob: list[float] = []
    for s, (shape, build) in enumerate(zip(SHAPES, BUILDERS)):
        made = []
        while len(made) < per_shape:
            f = Fields(rng)
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
        f = Fields(rng)
        state = rng.bit_generator.state
        payer, extra, ixs, tables, lag = shape_too_long(w, f, 600)
        t = _compile(w, f, SHAPE_TOO_LONG, payer, extra, ixs, tables, lag)
        # rebuild the same transaction with the memo grown to the target size
        rng.bit_generator.state = state
        f = Fields(rng)
        payer, extra, ixs, tables, lag = shape_too_long(w, f, 600 + target - len(t.payload))
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
                    f = Fields(rng)
                    payer, extra, ixs, tables, lag = shape_searcher_swap(w, f, p, bool(d))
                    searcher[p, d, j] = len(tmpls)
                    tmpls.append(_compile(w, f, 4, payer, extra, ixs, tables, lag))   # shape: raydium_bot
                    prob.append(0.0)
    ts = _pack(tmpls, np.asarray(prob), w)
    ts.searcher = searcher
    return ts


def _pack(tmpls: list[Template], prob: np.ndarray, w: World) -> TemplateSet:
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
