"""Byte-lane kernels for the tree scorer: 64 trees at once, one byte per tree.

numba intrinsics (LLVM IR written here, inlined into the jitted caller):

* ``lane_group_depth6(xb, nodes, base, out_off)``: the leaves of one group of 64
  depth-6 trees, the whole group as one block of vector IR (see its docstring).
* ``lane_group8_depth6`` (numba, over ``lane_mask`` and ``lane_leaf_index``): the same for a
  packed group of 8 trees.
* ``count_le16(arr, off, v)``: how many of 16 float32 are <= v (the rank counts).
* ``lane_mask(tab, nodes, off) -> uint64``: bit j is ``tab[nodes[off + j]] >= nodes[off + 64 + j]``
  (unsigned bytes, j < 64). ``tab`` holds the row's 64 bytes (the rank of each feature
  slot, see ``kernels.py`` ``rank_row``); ``nodes[off:off + 128]`` is one node position of 64 trees,
  their 64 slots then their 64 keys (one stream of 128-byte records). On a
  host with AVX-512 VBMI this is one ``vpermb`` (a 64-way table lookup inside a register),
  one ``vpcmpub`` and a mask move: no gather, no branch. Elsewhere the same IR is built
  from per-lane extracts: correct and portable, but many times slower, so ``layouts.py``
  only picks the lane layout by itself where ``HAVE_VBMI`` (``benchmarks/bench_score.py
  --portable`` prints both, beside the perfect layout).
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
from numba.core import cgutils, config
from numba.extending import intrinsic

LANES = 64                      # trees per lane group: one byte each in a 512-bit register
LANES_DEPTH = 6                 # levels of the lane kernels (63 node positions, 64 leaves)
NODE = 2 * LANES                # bytes of one node position of a group: 64 slots, then 64 keys
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


def _node_position(context, builder, aryty, nodes, off):
    """(slots, keys) of the node position at ``nodes[off:off + 128]``: two <64 x i8> loads."""
    sv = builder.load(_vec_ptr(context, builder, aryty, nodes, off), align=1)
    koff = builder.add(off, ir.Constant(off.type, LANES))
    return sv, builder.load(_vec_ptr(context, builder, aryty, nodes, koff), align=1)


def _permute(builder, tab, idx):
    """<64 x i8>: tab[idx[j] & 63] per lane, ``tab`` the table's 64 bytes in memory (<64 x i8>*)."""
    if HAVE_VBMI:
        fn = builder.module.declare_intrinsic("llvm.x86.avx512.permvar.qi.512",
                                              fnty=ir.FunctionType(_V64, [_V64, _V64]))
        return builder.call(fn, [builder.load(tab, align=1), idx])
    # a loop over the lanes, a byte load each from the table in memory: 64 lanes extracted at a
    # variable index from the register, unrolled, took LLVM many times longer to compile and ran
    # slower (bench_score.py --portable)
    ip, op = cgutils.alloca_once(builder, _V64), cgutils.alloca_once(builder, _V64)
    builder.store(idx, ip)
    i8p = _I8.as_pointer()
    tb, ib, ob = builder.bitcast(tab, i8p), builder.bitcast(ip, i8p), builder.bitcast(op, i8p)
    with cgutils.for_range(builder, ir.Constant(_I32, LANES)) as loop:
        j = loop.index
        i = builder.and_(builder.load(builder.gep(ib, [j])), ir.Constant(_I8, LANES - 1))
        builder.store(builder.load(builder.gep(tb, [builder.zext(i, _I32)])), builder.gep(ob, [j]))
    return builder.load(op)


@intrinsic
def lane_mask(typingctx, tab, nodes, off):
    """uint64: bit j = tab[nodes[off + j]] >= nodes[off + 64 + j], unsigned bytes, 64 lanes (tab: >= 64 bytes)."""
    if not all(isinstance(a, types.Array) and a.dtype == types.uint8 for a in (tab, nodes)):
        return None
    sig = types.uint64(tab, nodes, types.intp)

    def codegen(context, builder, sig, args):
        t, nd, o = args
        zero = ir.Constant(ir.IntType(64), 0)
        tp = _vec_ptr(context, builder, sig.args[0], t, zero)
        sv, kv = _node_position(context, builder, sig.args[1], nd, o)
        ge = builder.icmp_unsigned(">=", _permute(builder, tp, sv), kv)
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


def _vector_intrinsic(builder, name):
    """The overloaded LLVM intrinsic ``name`` on <64 x i8> (two operands), declared once per module."""
    g = builder.module.globals.get(name)
    return g if g is not None else ir.Function(builder.module, ir.FunctionType(_V64, [_V64, _V64]), name=name)


@intrinsic
def lane_group_depth6(typingctx, xb, nodes, base, out_off):
    """Leaves reached by one group of 64 perfect depth-6 trees: ``xb[out_off + j]`` = leaf of tree j.

    ``nodes`` holds the group's 63 node positions (heap order, position p's 128-byte record
    at ``base + (p - 1) * 128``: 64 slots, 64 keys); ``xb[:64]`` is the row's rank table. The IR is
    written here, position by position, all in 64-byte vectors: node p of the 64 trees is
    ``L_p = min(key -sat rank[slot], 1)`` (one ``vpermb`` lookup and a byte compare: 1 where the
    tree goes LEFT), and the bit L_l of level l (per lane) selects among that level's 2**l
    outcomes with byte-wise muxes (``vpternlog``), the earliest bit first so that each level
    waits on the one before it for a single mux. The six bits then make the leaf index
    (63 minus the left-bits number: the right-bits number), stored as 64 bytes. 63 lookups
    and 57 muxes per 64 trees, no branch, no dependent load, no mask moved to a scalar
    register (``benchmarks/bench_score.py --ab`` times it against the same tree of
    ``lane_mask`` + scalar muxes).
    """
    if not all(isinstance(a, types.Array) and a.dtype == types.uint8 for a in (xb, nodes)):
        return None
    sig = types.void(xb, nodes, types.intp, types.intp)

    def codegen(context, builder, sig, args):
        xbv, nd, b, oo = args
        i64 = ir.IntType(64)
        tp = _vec_ptr(context, builder, sig.args[0], xbv, ir.Constant(i64, 0))
        one = ir.Constant(_V64, [1] * LANES)
        usub_sat, umin = _vector_intrinsic(builder, "llvm.usub.sat.v64i8"), _vector_intrinsic(builder, "llvm.umin.v64i8")

        def left(p):                                      # 1 where node p sends the tree left (rank < key)
            sv, kv = _node_position(context, builder, sig.args[1], nd, builder.add(b, ir.Constant(i64, (p - 1) * NODE)))
            return builder.call(umin, [builder.call(usub_sat, [kv, _permute(builder, tp, sv)]), one])

        def mux(bit, if_left, if_right):
            return builder.or_(builder.and_(bit, if_left), builder.and_(builder.xor(bit, one), if_right))

        bits = [left(1)]
        for level in range(1, LANES_DEPTH):
            n = 1 << level
            cur = [left(n + k) for k in range(n)]         # node n + path, path's top bit = level 0's
            for j in range(level):                        # reduce by bit j: upper half where it went right
                half = len(cur) // 2
                cur = [mux(bits[j], cur[k], cur[half + k]) for k in range(half)]
            bits.append(cur[0])
        idx = bits[0]
        for bit in bits[1:]:
            idx = builder.add(builder.add(idx, idx), bit)
        idx = builder.xor(idx, ir.Constant(_V64, [LANES - 1] * LANES))     # left bits -> right bits (63 - idx)
        builder.store(idx, _vec_ptr(context, builder, sig.args[0], xbv, oo), align=1)
        return context.get_dummy_value()
    return sig, codegen


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
def lane_group8_depth6(xb, nodes, base, out_off):
    """Leaves reached by one PACKED group of 8 depth-6 trees: ``xb[out_off + t]`` = leaf of tree t
    (t < 8; bytes 8..63 written 0).

    For a group of at most 8 trees, a full 64-lane group would spend 63 node masks on 8
    lanes. Here the 64 heap positions (0 unused) x 8 trees fill 8 records of 64 slots and
    64 keys: record v byte ``8 * i + t`` is position ``8v + i`` of tree t, so ``lane_mask``
    number v gives in byte i
    the 8 outcomes of position 8v + i. Eight masks; the per-level selection runs on those
    words (SWAR), earlier path bits first as in ``lane_group_depth6``: level 5 (positions
    32..63 in words 4..7, word ``4 + 2*b0 + b1``, byte ``4*b2 + 2*b3 + b4``) is three word
    muxes, then three byte selections in the one word left.
    """
    def at(v):
        return lane_mask(xb, nodes, base + v * NODE)

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
