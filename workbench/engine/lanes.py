"""Byte-lane primitives for the tree scorer: 64 trees at once, one byte per tree.

Two numba intrinsics (LLVM IR written here, inlined into the jitted caller):

* ``lane_mask(tab, slot, key, off) -> uint64``: bit j is ``tab[slot[off + j]] >= key[off + j]``
  (unsigned bytes, j < 64). ``tab`` holds the row's 64 bytes (the rank of each feature
  slot, see engine/score.py); ``slot`` and ``key`` are one node position of 64 trees. On a
  host with AVX-512 VBMI this is one ``vpermb`` (a 64-way table lookup inside a register),
  one ``vpcmpub`` and a mask move: no gather, no branch. Elsewhere the same IR is built
  from per-lane extracts (correct and portable, ~20x slower; engine/score.py only picks
  the lane layout where ``HAVE_VBMI``).
* ``lane_leaf_index(buf, off, b0, ..., b5)``: writes 64 bytes at ``buf[off:]``, byte j the
  6-bit number whose bits (b0 the highest) are bit j of the six masks: the leaf each of 64
  depth-6 trees reached. Portable IR (``vpmovm2b``-style mask expansion on AVX-512).

``HAVE_VBMI`` follows numba's target: the host CPU, or ``NUMBA_CPU_NAME`` /
``NUMBA_CPU_FEATURES`` when the user pins a portable target (then VBMI only if listed).
numba keys its cache on the target CPU and features, so a cached kernel never runs on a
host it was not built for.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import config
from numba.extending import intrinsic

LANES = 64                      # trees per lane group: one byte each in a 512-bit register
_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_V64 = ir.VectorType(_I8, LANES)
_M64 = ir.VectorType(ir.IntType(1), LANES)


def _host_has_vbmi() -> bool:
    if config.CPU_NAME:                                   # a pinned (portable) target: only what it lists
        feats = (config.CPU_FEATURES or "").split(",")
        return "+avx512vbmi" in feats and "+avx512bw" in feats
    import llvmlite.binding as llb
    f = llb.get_host_cpu_features()
    return bool(f.get("avx512vbmi")) and bool(f.get("avx512bw"))


HAVE_VBMI = _host_has_vbmi()


def _vec_ptr(context, builder, aryty, ary, off):
    """Pointer to 64 bytes of a uint8 array from item ``off`` (as <64 x i8>*)."""
    a = context.make_array(aryty)(context, builder, ary)
    return builder.bitcast(builder.gep(a.data, [off]), _V64.as_pointer())


def _permute(builder, tab, idx):
    """<64 x i8>: tab[idx[j] & 63] per lane."""
    if HAVE_VBMI:
        fn = builder.module.declare_intrinsic("llvm.x86.avx512.permvar.qi.512",
                                              fnty=ir.FunctionType(_V64, [_V64, _V64]))
        return builder.call(fn, [tab, idx])
    out = ir.Constant(_V64, None)
    for j in range(LANES):
        i = builder.and_(builder.extract_element(idx, ir.Constant(_I32, j)), ir.Constant(_I8, LANES - 1))
        out = builder.insert_element(out, builder.extract_element(tab, builder.zext(i, _I32)), ir.Constant(_I32, j))
    return out


@intrinsic
def lane_mask(typingctx, tab, slot, key, off):
    """uint64: bit j = tab[slot[off + j]] >= key[off + j], unsigned bytes, 64 lanes (tab: >= 64 bytes)."""
    if not all(isinstance(a, types.Array) and a.dtype == types.uint8 for a in (tab, slot, key)):
        return None
    sig = types.uint64(tab, slot, key, types.intp)

    def codegen(context, builder, sig, args):
        t, s, k, o = args
        zero = ir.Constant(ir.IntType(64), 0)
        tv = builder.load(_vec_ptr(context, builder, sig.args[0], t, zero), align=1)
        sv = builder.load(_vec_ptr(context, builder, sig.args[1], s, o), align=1)
        kv = builder.load(_vec_ptr(context, builder, sig.args[2], k, o), align=1)
        ge = builder.icmp_unsigned(">=", _permute(builder, tv, sv), kv)
        return builder.bitcast(ge, ir.IntType(64))
    return sig, codegen


@intrinsic
def lane_leaf_index(typingctx, buf, off, b0, b1, b2, b3, b4, b5):
    """buf[off + j] = sum over l of bit j of b_l << (5 - l), j < 64 (uint8 buf, uint64 masks)."""
    if not (isinstance(buf, types.Array) and buf.dtype == types.uint8):
        return None
    sig = types.void(buf, types.intp, types.uint64, types.uint64, types.uint64, types.uint64, types.uint64,
                     types.uint64)

    def codegen(context, builder, sig, args):
        p = _vec_ptr(context, builder, sig.args[0], args[0], args[1])
        acc = ir.Constant(_V64, [0] * LANES)
        for level, m in enumerate(args[2:]):
            v = builder.zext(builder.bitcast(m, _M64), _V64)
            acc = builder.or_(acc, builder.shl(v, ir.Constant(_V64, [5 - level] * LANES)))
        builder.store(acc, p, align=1)
        return context.get_dummy_value()
    return sig, codegen


_F32 = ir.FloatType()
_V16F = ir.VectorType(_F32, 16)


@intrinsic
def count_le16(typingctx, arr, off, v):
    """intp: how many of ``arr[off:off + 16]`` (float32) are ``<= v`` (a NaN entry never counts):
    one 16-wide float compare into a mask and a popcount (portable IR; one ``vcmpps`` into a
    k-register on AVX-512)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.float32 and isinstance(v, types.Float)):
        return None
    sig = types.intp(arr, types.intp, v)

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        p = builder.bitcast(builder.gep(a.data, [args[1]]), _V16F.as_pointer())
        blk = builder.load(p, align=4)
        x = args[2] if sig.args[2] == types.float32 else builder.fptrunc(args[2], _F32)
        splat = builder.insert_element(ir.Constant(_V16F, None), x, ir.Constant(_I32, 0))
        splat = builder.shuffle_vector(splat, ir.Constant(_V16F, None), ir.Constant(ir.VectorType(_I32, 16), [0] * 16))
        le = builder.fcmp_ordered("<=", blk, splat)
        bits = builder.zext(builder.bitcast(le, ir.IntType(16)), ir.IntType(64))
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, [bits])
    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _mux(b, one, zero):
    """Per bit: ``one`` where b is set, else ``zero``."""
    return (b & one) | (~b & zero)


@njit(cache=True, nogil=True, inline="always")
def lane_group_depth6(xb, slot, key, base, out_off):
    """Leaves reached by one group of 64 perfect depth-6 trees: ``xb[out_off + j]`` = leaf of tree j.

    ``slot``/``key`` hold the group's 63 node positions (heap order, position p at
    ``base + (p - 1) * 64``), 64 lanes each; ``xb[:64]`` is the row's rank table. Every node
    outcome is one ``lane_mask``; the bit b_l (level l's direction, per lane) selects among
    that level's 2**l outcomes with a mux tree on the earlier bits, b0 (known first) first and
    b_{l-1} last, so each level waits on the one before it for a single mux, not l of them
    (on this box the full group timed the same either way: its loads set the pace). 63
    masks and 57 muxes per 64 trees, straight-line code: no branch, no dependent load, every
    mask independent.
    """
    def at(p):
        return lane_mask(xb, slot, key, base + (p - 1) * LANES)

    # level 0: the roots
    b0 = at(1)
    # level 1: nodes 2..3, node 2 + path; reduced by b0 first, b0 last
    o2, o3 = at(2), at(3)
    b1 = _mux(b0, o3, o2)
    # level 2: nodes 4..7, node 4 + path; reduced by b0 first, b1 last
    o4, o5, o6, o7 = at(4), at(5), at(6), at(7)
    q0, q1 = _mux(b0, o6, o4), _mux(b0, o7, o5)
    b2 = _mux(b1, q1, q0)
    # level 3: nodes 8..15, node 8 + path; reduced by b0 first, b2 last
    o8, o9, o10, o11, o12, o13, o14, o15 = at(8), at(9), at(10), at(11), at(12), at(13), at(14), at(15)
    q0, q1, q2, q3 = _mux(b0, o12, o8), _mux(b0, o13, o9), _mux(b0, o14, o10), _mux(b0, o15, o11)
    q0, q1 = _mux(b1, q2, q0), _mux(b1, q3, q1)
    b3 = _mux(b2, q1, q0)
    # level 4: nodes 16..31, node 16 + path; reduced by b0 first, b3 last
    o16, o17, o18, o19, o20, o21, o22, o23 = at(16), at(17), at(18), at(19), at(20), at(21), at(22), at(23)
    o24, o25, o26, o27, o28, o29, o30, o31 = at(24), at(25), at(26), at(27), at(28), at(29), at(30), at(31)
    q0, q1, q2, q3 = _mux(b0, o24, o16), _mux(b0, o25, o17), _mux(b0, o26, o18), _mux(b0, o27, o19)
    q4, q5, q6, q7 = _mux(b0, o28, o20), _mux(b0, o29, o21), _mux(b0, o30, o22), _mux(b0, o31, o23)
    q0, q1, q2, q3 = _mux(b1, q4, q0), _mux(b1, q5, q1), _mux(b1, q6, q2), _mux(b1, q7, q3)
    q0, q1 = _mux(b2, q2, q0), _mux(b2, q3, q1)
    b4 = _mux(b3, q1, q0)
    # level 5: nodes 32..63, node 32 + path; reduced by b0 first, b4 last
    o32, o33, o34, o35, o36, o37, o38, o39 = at(32), at(33), at(34), at(35), at(36), at(37), at(38), at(39)
    o40, o41, o42, o43, o44, o45, o46, o47 = at(40), at(41), at(42), at(43), at(44), at(45), at(46), at(47)
    o48, o49, o50, o51, o52, o53, o54, o55 = at(48), at(49), at(50), at(51), at(52), at(53), at(54), at(55)
    o56, o57, o58, o59, o60, o61, o62, o63 = at(56), at(57), at(58), at(59), at(60), at(61), at(62), at(63)
    q0, q1, q2, q3 = _mux(b0, o48, o32), _mux(b0, o49, o33), _mux(b0, o50, o34), _mux(b0, o51, o35)
    q4, q5, q6, q7 = _mux(b0, o52, o36), _mux(b0, o53, o37), _mux(b0, o54, o38), _mux(b0, o55, o39)
    q8, q9, q10, q11 = _mux(b0, o56, o40), _mux(b0, o57, o41), _mux(b0, o58, o42), _mux(b0, o59, o43)
    q12, q13, q14, q15 = _mux(b0, o60, o44), _mux(b0, o61, o45), _mux(b0, o62, o46), _mux(b0, o63, o47)
    q0, q1, q2, q3 = _mux(b1, q8, q0), _mux(b1, q9, q1), _mux(b1, q10, q2), _mux(b1, q11, q3)
    q4, q5, q6, q7 = _mux(b1, q12, q4), _mux(b1, q13, q5), _mux(b1, q14, q6), _mux(b1, q15, q7)
    q0, q1, q2, q3 = _mux(b2, q4, q0), _mux(b2, q5, q1), _mux(b2, q6, q2), _mux(b2, q7, q3)
    q0, q1 = _mux(b3, q2, q0), _mux(b3, q3, q1)
    b5 = _mux(b4, q1, q0)

    lane_leaf_index(xb, out_off, b0, b1, b2, b3, b4, b5)


PACK = 8                        # trees per packed group: 8 node positions of 8 trees in each 64-byte vector
_BYTE = 0xFF
_EVERY_BYTE = 0x0101010101010101


@njit(cache=True, nogil=True, inline="always")
def _spread(b):
    """The 8 lane bits of ``b`` (one per tree) copied into every byte of a uint64."""
    return (b & np.uint64(_BYTE)) * np.uint64(_EVERY_BYTE)


@njit(cache=True, nogil=True, inline="always")
def _fold3(w, s0, s1, s2):
    """Byte 0 of ``w`` after three pairwise byte selections: bytes (i, i+4) by ``s0``, then
    (i, i+2) by ``s1``, then (i, i+1) by ``s2`` (each a ``_spread`` path bit): per tree bit,
    byte ``4*s0 + 2*s1 + s2`` of the eight, the latest bit used last."""
    w = _mux(s0, w >> np.uint64(32), w)
    w = _mux(s1, w >> np.uint64(16), w)
    return _mux(s2, w >> np.uint64(8), w)


@njit(cache=True, nogil=True, inline="always")
def lane_group8_depth6(xb, slot, key, base, out_off):
    """Leaves reached by one PACKED group of 8 depth-6 trees: ``xb[out_off + t]`` = leaf of tree t
    (t < 8; bytes 8..63 written 0).

    For a group of at most 8 trees, a full 64-lane group would spend 63 node masks on 8
    lanes. Here the 64 heap positions (0 unused) x 8 trees fill 8 vectors: vector v byte
    ``8 * i + t`` is position ``8v + i`` of tree t, so ``lane_mask`` number v gives in byte i
    the 8 outcomes of position 8v + i. Eight masks; the per-level selection runs on those
    words (SWAR), earlier path bits first as in ``lane_group_depth6``: level 5 (positions
    32..63 in words 4..7, word ``4 + 2*b0 + b1``, byte ``4*b2 + 2*b3 + b4``) is three word
    muxes, then three byte selections in the one word left.
    """
    def at(v):
        return lane_mask(xb, slot, key, base + v * LANES)

    m0, m1, m2, m3, m4, m5, m6, m7 = at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7)
    e8, e16, e32 = np.uint64(8), np.uint64(16), np.uint64(32)
    # levels 0..2: positions 1, 2..3, 4..7 are bytes of m0
    b0 = m0 >> e8
    s0 = _spread(b0)
    w = m0 >> e16
    b1 = _mux(s0, w >> e8, w)
    s1 = _spread(b1)
    w = m0 >> e32                                     # byte 2*b0 + b1
    w = _mux(s0, w >> e16, w)
    b2 = _mux(s1, w >> e8, w)
    s2 = _spread(b2)
    # level 3: positions 8..15 = m1, byte 4*b0 + 2*b1 + b2
    b3 = _fold3(m1, s0, s1, s2)
    s3 = _spread(b3)
    # level 4: positions 16..31 = m2 (b0 = 0), m3 (b0 = 1), byte 4*b1 + 2*b2 + b3
    b4 = _fold3(_mux(s0, m3, m2), s1, s2, s3)
    s4 = _spread(b4)
    # level 5: positions 32..63 = m4..m7 (word 4 + 2*b0 + b1), byte 4*b2 + 2*b3 + b4
    w = _mux(s1, _mux(s0, m7, m5), _mux(s0, m6, m4))
    b5 = _fold3(w, s2, s3, s4)
    f = np.uint64(_BYTE)
    lane_leaf_index(xb, out_off, b0 & f, b1 & f, b2 & f, b3 & f, b4 & f, b5 & f)


@intrinsic
def prefetch_byte(typingctx, arr, off):
    """``prefetcht1`` (toward L2) of the line holding byte ``off`` of ``arr``'s data: no load, no wait."""
    if not isinstance(arr, types.Array):
        return None
    sig = types.void(arr, types.intp)

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        p = builder.gep(builder.bitcast(a.data, _I8.as_pointer()), [args[1]])
        fn = builder.module.declare_intrinsic("llvm.prefetch.p0", fnty=ir.FunctionType(
            ir.VoidType(), [p.type, _I32, _I32, _I32]))
        builder.call(fn, [p, ir.Constant(_I32, 0), ir.Constant(_I32, 2), ir.Constant(_I32, 1)])   # read, L2, data
        return context.get_dummy_value()
    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def prefetch_lines(arr):
    """Prefetch every 64-byte line of ``arr`` (C-contiguous) toward L2."""
    for off in range(0, arr.size * arr.itemsize, 64):
        prefetch_byte(arr, off)
