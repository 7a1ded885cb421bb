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
    that level's 2**l outcomes with a mux tree on the earlier bits, b_{l-1} (pairs of
    siblings) first. 63 masks and 57 muxes per 64 trees, straight-line code: no branch, no
    dependent load, and every mask independent of the others.
    """
    def at(p):
        return lane_mask(xb, slot, key, base + (p - 1) * LANES)

    # level 0: the roots
    o1 = at(1)
    b0 = o1
    # level 1: nodes 2..3, reduced by b0
    o2, o3 = at(2), at(3)
    b1 = _mux(b0, o3, o2)
    # level 2: nodes 4..7, reduced by b1
    o4, o5, o6, o7 = at(4), at(5), at(6), at(7)
    q0, q1 = _mux(b1, o5, o4), _mux(b1, o7, o6)
    b2 = _mux(b0, q1, q0)
    # level 3: nodes 8..15, reduced by b2
    o8, o9, o10, o11, o12, o13, o14, o15 = at(8), at(9), at(10), at(11), at(12), at(13), at(14), at(15)
    q0, q1, q2, q3 = _mux(b2, o9, o8), _mux(b2, o11, o10), _mux(b2, o13, o12), _mux(b2, o15, o14)
    q0, q1 = _mux(b1, q1, q0), _mux(b1, q3, q2)
    b3 = _mux(b0, q1, q0)
    # level 4: nodes 16..31, reduced by b3
    o16, o17, o18, o19, o20, o21, o22, o23 = at(16), at(17), at(18), at(19), at(20), at(21), at(22), at(23)
    o24, o25, o26, o27, o28, o29, o30, o31 = at(24), at(25), at(26), at(27), at(28), at(29), at(30), at(31)
    q0, q1, q2, q3 = _mux(b3, o17, o16), _mux(b3, o19, o18), _mux(b3, o21, o20), _mux(b3, o23, o22)
    q4, q5, q6, q7 = _mux(b3, o25, o24), _mux(b3, o27, o26), _mux(b3, o29, o28), _mux(b3, o31, o30)
    q0, q1, q2, q3 = _mux(b2, q1, q0), _mux(b2, q3, q2), _mux(b2, q5, q4), _mux(b2, q7, q6)
    q0, q1 = _mux(b1, q1, q0), _mux(b1, q3, q2)
    b4 = _mux(b0, q1, q0)
    # level 5: nodes 32..63, reduced by b4
    o32, o33, o34, o35, o36, o37, o38, o39 = at(32), at(33), at(34), at(35), at(36), at(37), at(38), at(39)
    o40, o41, o42, o43, o44, o45, o46, o47 = at(40), at(41), at(42), at(43), at(44), at(45), at(46), at(47)
    o48, o49, o50, o51, o52, o53, o54, o55 = at(48), at(49), at(50), at(51), at(52), at(53), at(54), at(55)
    o56, o57, o58, o59, o60, o61, o62, o63 = at(56), at(57), at(58), at(59), at(60), at(61), at(62), at(63)
    q0, q1, q2, q3 = _mux(b4, o33, o32), _mux(b4, o35, o34), _mux(b4, o37, o36), _mux(b4, o39, o38)
    q4, q5, q6, q7 = _mux(b4, o41, o40), _mux(b4, o43, o42), _mux(b4, o45, o44), _mux(b4, o47, o46)
    q8, q9, q10, q11 = _mux(b4, o49, o48), _mux(b4, o51, o50), _mux(b4, o53, o52), _mux(b4, o55, o54)
    q12, q13, q14, q15 = _mux(b4, o57, o56), _mux(b4, o59, o58), _mux(b4, o61, o60), _mux(b4, o63, o62)
    q0, q1, q2, q3 = _mux(b3, q1, q0), _mux(b3, q3, q2), _mux(b3, q5, q4), _mux(b3, q7, q6)
    q4, q5, q6, q7 = _mux(b3, q9, q8), _mux(b3, q11, q10), _mux(b3, q13, q12), _mux(b3, q15, q14)
    q0, q1, q2, q3 = _mux(b2, q1, q0), _mux(b2, q3, q2), _mux(b2, q5, q4), _mux(b2, q7, q6)
    q0, q1 = _mux(b1, q1, q0), _mux(b1, q3, q2)
    b5 = _mux(b0, q1, q0)

    lane_leaf_index(xb, out_off, b0, b1, b2, b3, b4, b5)


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
