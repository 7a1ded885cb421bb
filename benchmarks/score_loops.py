"""The jitted loops ``bench_score.py`` times: the engine's scorer called as ``process_batch`` calls
it, its parts alone, and the alternatives its design was chosen over (kept here only to be
timed, in the same process as the engine's code).

Every loop takes the rows in turn (or one row, where it says so) and returns a sum of what it
computed, so that no work can be left out.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

import common  # noqa: F401  (puts the repository on sys.path)
from workbench.engine.score.kernels import (_leaf_sum, _margin_lanes_row, prefetch_model, rank_row, score_row,
                                            score_row_buf)
from workbench.engine.score.lanes import (LANES, LANES_DEPTH, NODE, PACK, lane_group8_depth6, lane_group_depth6,
                                          lane_leaf_index, lane_mask)
from workbench.engine.score.tree_model import LAYOUT_LANES, lane_groups
from workbench.capture.clock import monotonic_ns


@njit(cache=True, nogil=True, _nrt=False)
def one_row_repeat(model, x, xx, n):
    """``n`` scores of the same row, as the engine calls it: ``score_row_buf`` inlined into a
    function compiled without NRT (as ``process_batch`` is), with a scratch allocated once."""
    s = 0.0
    for _ in range(n):
        s += score_row_buf(model, x, xx)
    return s


@njit(cache=True, nogil=True)
def one_row_repeat_alloc(model, x, n):
    """The same through ``score_row`` (allocates its int32 scratch per call)."""
    s = 0.0
    for _ in range(n):
        s += score_row(model, x)
    return s


def ensemble_of(arrs: dict, n_trees: int) -> dict:
    """trees.npz arrays of ``n_trees`` trees: the trees of ``arrs`` in order, repeated as often as needed."""
    n_nodes, roots = len(arrs["node_feature"]), arrs["tree_root"]
    copies = -(-n_trees // len(roots))
    out = dict(arrs)
    for k in ("node_feature", "node_threshold", "node_default_left", "node_leaf_value"):
        out[k] = np.tile(arrs[k], copies)
    for k in ("node_left", "node_right"):
        out[k] = np.concatenate([np.where(arrs[k] >= 0, arrs[k] + c * n_nodes, -1) for c in range(copies)]
                                ).astype(np.int32)
    out["tree_root"] = np.concatenate([roots + c * n_nodes for c in range(copies)])[:n_trees].astype(np.int32)
    return out


GROUP_STEP = ((1 << LANES_DEPTH) - 1) * NODE      # bytes of one full group's node records


@njit(cache=True, nogil=True, _nrt=False)
def rank_rows(model, X, XB):
    """XB[i, :64] = the ranks of row i (what the lane kernels read), for the part timings."""
    for i in range(X.shape[0]):
        rank_row(X[i], model.cuts, XB[i], model.n_features)
    return X.shape[0]


@njit(cache=True, nogil=True, _nrt=False)
def ranks_loop(model, X, xb, reps):
    """``reps`` rank computations, over the rows of X in turn."""
    n, s = X.shape[0], 0
    for i in range(reps):
        rank_row(X[i % n], model.cuts, xb, model.n_features)
        s += xb[0]
    return s


@njit(cache=True, nogil=True, _nrt=False)
def full_group_loop(model, XB, reps, leaves):
    """``reps`` full 64-tree groups (the model's full groups in turn, on the rows' ranks in turn), each
    followed by the sum of its first ``leaves`` leaves (0: the masks and muxes alone)."""
    nodes, val = model.lane_node, model.lane_leaf
    full = lane_groups(model.n_trees)[0]
    n, acc = XB.shape[0], 0.0
    for i in range(reps):
        xb = XB[i % n]
        k = i % full
        lane_group_depth6(xb, nodes, k * GROUP_STEP, LANES)
        acc += _leaf_sum(val, xb, LANES, k * LANES, leaves) + xb[LANES]
    return acc


@njit(cache=True, nogil=True, _nrt=False)
def packed_tail_loop(model, XB, reps, tail):
    """``reps`` tails of ``tail`` trees in packed groups of 8 (the model's packed groups in turn), each
    group followed by the sum of its leaves."""
    nodes, val = model.lane_node, model.lane_leaf
    full, packed = lane_groups(model.n_trees)
    n, acc = XB.shape[0], 0.0
    for i in range(reps):
        xb = XB[i % n]
        left, g = tail, 0
        while left > 0:
            q = g % packed
            lane_group8_depth6(xb, nodes, full * GROUP_STEP + q * PACK * NODE, LANES)
            acc += _leaf_sum(val, xb, LANES, full * LANES + q * PACK, min(PACK, left))
            left -= PACK
            g += 1
    return acc


@njit(cache=True, nogil=True, inline="always")
def _margin_lanes_in_turn(model, xb):
    """The lane margin WITHOUT the software pipeline: each group's leaves summed right after its masks."""
    nodes, val = model.lane_node, model.lane_leaf
    n_trees = model.n_trees
    full, packed = lane_groups(n_trees)
    acc = 0.0
    for k in range(full + packed):
        if k < full:
            lane_group_depth6(xb, nodes, k * GROUP_STEP, LANES)
            t0 = k * LANES
        else:
            lane_group8_depth6(xb, nodes, full * GROUP_STEP + (k - full) * PACK * NODE, LANES)
            t0 = full * LANES + (k - full) * PACK
        acc += _leaf_sum(val, xb, LANES, t0, min(LANES if k < full else PACK, n_trees - t0))
    return acc


@njit(cache=True, nogil=True, inline="always")
def _mux(b, one, zero):
    return (b & one) | (~b & zero)


@njit(cache=True, nogil=True, inline="always")
def _group_scalar_muxes(xb, nodes, base, out_off):
    """``lane_group_depth6`` as it was before the vector IR: 63 ``lane_mask`` (each moved to a uint64)
    and 57 scalar muxes, the earliest path bit first, then ``lane_leaf_index``."""
    def at(p):
        return lane_mask(xb, nodes, base + (p - 1) * NODE)

    b0 = at(1)
    o2, o3 = at(2), at(3)
    b1 = _mux(b0, o3, o2)
    o4, o5, o6, o7 = at(4), at(5), at(6), at(7)
    q0, q1 = _mux(b0, o6, o4), _mux(b0, o7, o5)
    b2 = _mux(b1, q1, q0)
    o8, o9, o10, o11, o12, o13, o14, o15 = at(8), at(9), at(10), at(11), at(12), at(13), at(14), at(15)
    q0, q1, q2, q3 = _mux(b0, o12, o8), _mux(b0, o13, o9), _mux(b0, o14, o10), _mux(b0, o15, o11)
    q0, q1 = _mux(b1, q2, q0), _mux(b1, q3, q1)
    b3 = _mux(b2, q1, q0)
    o16, o17, o18, o19, o20, o21, o22, o23 = at(16), at(17), at(18), at(19), at(20), at(21), at(22), at(23)
    o24, o25, o26, o27, o28, o29, o30, o31 = at(24), at(25), at(26), at(27), at(28), at(29), at(30), at(31)
    q0, q1, q2, q3 = _mux(b0, o24, o16), _mux(b0, o25, o17), _mux(b0, o26, o18), _mux(b0, o27, o19)
    q4, q5, q6, q7 = _mux(b0, o28, o20), _mux(b0, o29, o21), _mux(b0, o30, o22), _mux(b0, o31, o23)
    q0, q1, q2, q3 = _mux(b1, q4, q0), _mux(b1, q5, q1), _mux(b1, q6, q2), _mux(b1, q7, q3)
    q0, q1 = _mux(b2, q2, q0), _mux(b2, q3, q1)
    b4 = _mux(b3, q1, q0)
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


@njit(cache=True, nogil=True, inline="always")
def _margin_lanes_scalar_muxes(model, xb):
    """The engine's pipelined lane margin with ``_group_scalar_muxes`` for the full groups."""
    nodes, val = model.lane_node, model.lane_leaf
    n_trees = model.n_trees
    full, packed = lane_groups(n_trees)
    groups = full + packed
    acc = 0.0
    for k in range(groups + 1):
        if k < full:
            _group_scalar_muxes(xb, nodes, k * GROUP_STEP, LANES + LANES * (k & 1))
        elif k < groups:
            lane_group8_depth6(xb, nodes, full * GROUP_STEP + (k - full) * PACK * NODE, LANES + LANES * (k & 1))
        if k > 0:
            g = k - 1
            off = LANES + LANES * (g & 1)
            t0 = g * LANES if g < full else full * LANES + (g - full) * PACK
            acc += _leaf_sum(val, xb, off, t0, min(LANES if g < full else PACK, n_trees - t0))
    return acc


@njit(cache=True, nogil=True, _nrt=False)
def rows_engine(model, X, xx, reps):
    """``reps`` scores (margins) over the rows in turn, as the engine computes them (no NRT, inlined)."""
    n, acc = X.shape[0], 0.0
    for i in range(reps):
        acc += _margin_lanes_row(model, X[i % n], xx)
    return acc


@njit(cache=True, nogil=True)
def rows_engine_nrt(model, X, xx, reps):
    """The same compiled WITH NRT (reference counts of the model's arrays around the inlined scorer)."""
    n, acc = X.shape[0], 0.0
    for i in range(reps):
        acc += _margin_lanes_row(model, X[i % n], xx)
    return acc


@njit(cache=True, nogil=True)
def _margin_called(model, x, xx):
    """The lane margin behind a jitted function that is not ``inline="always"``."""
    return _margin_lanes_row(model, x, xx)


@njit(cache=True, nogil=True)
def rows_called(model, X, xx, reps):
    """The same through ``_margin_called`` (a call per row, NRT on)."""
    n, acc = X.shape[0], 0.0
    for i in range(reps):
        acc += _margin_called(model, X[i % n], xx)
    return acc


@njit(cache=True, nogil=True, _nrt=False)
def rows_in_turn(model, X, xx, reps):
    """``reps`` scores (margins) over the rows in turn, groups one after the other."""
    xb, n, acc = xx.view(np.uint8), X.shape[0], 0.0
    for i in range(reps):
        rank_row(X[i % n], model.cuts, xb, model.n_features)
        acc += _margin_lanes_in_turn(model, xb)
    return acc


@njit(cache=True, nogil=True, _nrt=False)
def rows_scalar_muxes(model, X, xx, reps):
    """``reps`` scores (margins) over the rows in turn, full groups as ``lane_mask`` + scalar muxes."""
    xb, n, acc = xx.view(np.uint8), X.shape[0], 0.0
    for i in range(reps):
        rank_row(X[i % n], model.cuts, xb, model.n_features)
        acc += _margin_lanes_scalar_muxes(model, xb)
    return acc


@intrinsic
def _clflush(typingctx, arr, off):
    """``clflush`` of the line holding byte ``off`` of ``arr``'s data (out of every cache level)."""
    if not isinstance(arr, types.Array):
        return None
    sig = types.void(arr, types.intp)

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        p = builder.gep(builder.bitcast(a.data, ir.IntType(8).as_pointer()), [args[1]])
        fn = builder.module.declare_intrinsic("llvm.x86.sse2.clflush", fnty=ir.FunctionType(ir.VoidType(), [p.type]))
        builder.call(fn, [p])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _mfence(typingctx):
    """``mfence``: the flushes are done before the clock is read."""
    sig = types.void()

    def codegen(context, builder, sig, args):
        fn = builder.module.declare_intrinsic("llvm.x86.sse2.mfence", fnty=ir.FunctionType(ir.VoidType(), []))
        builder.call(fn, [])
        return context.get_dummy_value()
    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _flush_lines(arr):
    for off in range(0, arr.size * arr.itemsize, 64):
        _clflush(arr, off)


COLD_WARM, COLD_L3, COLD_DRAM, COLD_L3_PREFETCH, COLD_DRAM_PREFETCH = 0, 1, 2, 3, 4


@njit(cache=True, nogil=True, _nrt=False)
def cold_scores(model, X, xx, evict, where, ahead_ns, out):
    """``out[i]`` = ns of one ``score_row_buf`` (rows in turn) with the model's arrays where ``where``
    says: left warm, pushed out of L1/L2 by reading ``evict`` (so in L3), or flushed to DRAM; the
    prefetch variants call ``prefetch_model`` and spin ``ahead_ns`` before the score."""
    n, s = X.shape[0], 0.0
    for i in range(out.shape[0]):
        if where == COLD_L3 or where == COLD_L3_PREFETCH:
            for j in range(0, evict.shape[0], 64):
                s += evict[j]
        elif where == COLD_DRAM or where == COLD_DRAM_PREFETCH:
            if model.layout == LAYOUT_LANES:
                _flush_lines(model.cuts)
                _flush_lines(model.lane_node)
                _flush_lines(model.lane_leaf)
            else:
                _flush_lines(model.node)
                _flush_lines(model.leaf_value)
            _mfence()
        if where == COLD_L3_PREFETCH or where == COLD_DRAM_PREFETCH:
            prefetch_model(model)
            t = monotonic_ns()
            while monotonic_ns() - t < ahead_ns:
                pass
        t0 = monotonic_ns()
        s += score_row_buf(model, X[i % n], xx)
        out[i] = monotonic_ns() - t0
    return s


@njit(cache=True, nogil=True, _nrt=False)
def clock_pairs(out):
    """``out[i]`` = ns between two clock reads with nothing between (subtracted from ``cold_scores``)."""
    for i in range(out.shape[0]):
        t0 = monotonic_ns()
        out[i] = monotonic_ns() - t0
    return out.shape[0]
