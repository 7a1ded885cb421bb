"""The jitted evaluator: one feature row's score from a ``TreeModel``, inside ``process_batch``.

No Python call, no allocation, no xgboost/treelite import (engine/ loads model ARRAYS, never
model code). ``score_row_buf`` is what the engine inlines; ``score_row`` / ``score_rows``
allocate their scratch; ``prefetch_model`` asks for the arrays ahead of a score.

Semantics (what xgboost's ``predict`` and TL2cgen's generated C compute)
------------------------------------------------------------------------
* A feature value is cast to float32 before it is compared (xgboost's DMatrix and the
  generated C keep float32 features): ``go left  <=>  float32(x[f]) < threshold`` with
  float32 thresholds (Treelite's ``comparison_op`` is ``"<"`` for every xgboost split;
  other operators are refused by model/compile.py).
* NaN is missing and goes the node's default direction. Instead of a NaN test per node,
  the row is expanded once (``expand_row``) into two slots per feature, the value or
  "above everything" in slot 2f (default right) and the value or "below everything" in
  slot 2f+1 (default left); a node compares slot ``2 * feature + default_left``.
* The compare is on int32 order keys of the float32 values (``f32_key``), and a node is
  one int64 word (threshold key, slot): one load and one integer compare per level.
  The lane layout compares byte ranks instead (``rank_row``), with the same outcome.
* margin = base_score + one leaf per tree; with the sigmoid postprocessor probability =
  1 / (1 + exp(-sigmoid_alpha * margin)). Leaves (float32 in xgboost) are summed in
  float64, so this evaluator is the most exact of the three; the float32 sums of xgboost
  and TL2cgen differ from it by a few 1e-7 at most (model/compile.py checks < 1e-6).

The layouts themselves are described in ``tree_model.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .lanes import LANES, LANES_DEPTH, NODE, PACK, count_le16, lane_group8_depth6, lane_group_depth6, prefetch_lines
from .tree_model import (CUT_BLOCK, CUT_ROW, LAYOUT_LANES, LAYOUT_PERFECT, POST_SIGMOID, SLOT_MASK, lane_groups,
                         scratch_items)

_U1 = np.uint64(1)
_U8 = np.uint64(8)
_U_SLOT_MASK = np.uint64(SLOT_MASK)
_KEY_MAX = np.int32(2**31 - 1)   # NaN in a default-right slot: not below any threshold key
_KEY_MIN = np.int32(-2**31)      # NaN in a default-left slot: below every threshold key
_MAGNITUDE = np.int32(0x7FFFFFFF)


@njit(cache=True, nogil=True, inline="always")
def expand_row(x, xx, n_features):
    """xx (any 4-byte dtype, 2 * n_features items; written as int32) = order keys of float32(x),
    a NaN as INT32_MAX (slot 2f) / INT32_MIN (slot 2f+1). Returns the int32 view."""
    xi = xx.view(np.int32)
    xf = xx.view(np.float32)
    for f in range(n_features):
        v = np.float32(x[f])
        if v != v:
            xi[2 * f] = _KEY_MAX
            xi[2 * f + 1] = _KEY_MIN
        else:
            xf[2 * f] = v + np.float32(0.0)          # -0 -> +0, then the bits in place
            b = xi[2 * f]
            k = b ^ ((b >> 31) & _MAGNITUDE)
            xi[2 * f] = k
            xi[2 * f + 1] = k
    return xi


@njit(cache=True, nogil=True, inline="always")
def _right(xx, node, k):
    """1 (uint64) when node k sends the row right: xx[slot] >= key(threshold)."""
    w = node[k]
    return np.uint64(xx[np.uint64(w) & _U_SLOT_MASK] >= (w >> 16))   # unsigned index: no wraparound fix-up


@njit(cache=True, nogil=True, inline="always")
def _margin_perfect(model, xx):
    """Sum of one leaf per tree, perfect layout. Eight trees walk at once: eight independent
    dependency chains the CPU overlaps (a tree alone is ``depth`` dependent loads)."""
    node = model.node
    val = model.leaf_value
    d = model.depth
    ns = np.uint64((1 << d) - 1)          # split nodes per tree
    nl = ns + _U1                         # leaves per tree
    n_trees = np.uint64(model.n_trees)
    acc = 0.0
    t = np.uint64(0)
    # uint64 index arithmetic throughout: no negative-index fix-up per access; b = t*ns - 1
    # wraps at t = 0 and b + h (h >= 1) wraps back (modular arithmetic)
    while t + _U8 <= n_trees:
        b0 = t * ns - _U1
        b1 = b0 + ns
        b2 = b1 + ns
        b3 = b2 + ns
        b4 = b3 + ns
        b5 = b4 + ns
        b6 = b5 + ns
        b7 = b6 + ns
        h0 = h1 = h2 = h3 = h4 = h5 = h6 = h7 = _U1
        for _ in range(d):
            h0 = h0 + h0 + _right(xx, node, b0 + h0)
            h1 = h1 + h1 + _right(xx, node, b1 + h1)
            h2 = h2 + h2 + _right(xx, node, b2 + h2)
            h3 = h3 + h3 + _right(xx, node, b3 + h3)
            h4 = h4 + h4 + _right(xx, node, b4 + h4)
            h5 = h5 + h5 + _right(xx, node, b5 + h5)
            h6 = h6 + h6 + _right(xx, node, b6 + h6)
            h7 = h7 + h7 + _right(xx, node, b7 + h7)
        lb = t * nl - nl                  # leaf h of tree t is at t*nl + h - nl, h in [nl, 2nl)
        acc += (np.float64(val[lb + h0]) + np.float64(val[lb + nl + h1])
                + np.float64(val[lb + np.uint64(2) * nl + h2]) + np.float64(val[lb + np.uint64(3) * nl + h3]))
        acc += (np.float64(val[lb + np.uint64(4) * nl + h4]) + np.float64(val[lb + np.uint64(5) * nl + h5])
                + np.float64(val[lb + np.uint64(6) * nl + h6]) + np.float64(val[lb + np.uint64(7) * nl + h7]))
        t += _U8
    while t < n_trees:
        b = t * ns - _U1
        h = _U1
        for _ in range(d):
            h = h + h + _right(xx, node, b + h)
        acc += np.float64(val[t * nl - nl + h])
        t += _U1
    return acc


@njit(cache=True, nogil=True)
def _margin_pointer(model, xx):
    """Sum of one leaf per tree, pointer layout (deep trees)."""
    node = model.node
    acc = 0.0
    for t in range(model.n_trees):
        k = np.int64(model.tree_root[t])
        while model.left[k] >= 0:
            if _right(xx, node, k):
                k = model.right[k]
            else:
                k = model.left[k]
        acc += np.float64(model.leaf_value[k])
    return acc


@njit(cache=True, nogil=True, inline="always")
def rank_row(x, cuts, xb, n_features):
    """xb[2f] = xb[2f+1] = number of feature f's thresholds <= float32(x[f]), in two 16-wide
    counts: the block tops say how many whole blocks of 16 lie at or below the value (b; the
    last top is NaN, so b <= 15), then block b is counted. Two compares, two popcounts and one
    dependent load per feature, and the features are independent chains. The +inf padding
    counts only for x = +inf (a rank above every key, as it should be); the NaN last entry
    never counts, so a rank fits a byte. A NaN x gives 255 in slot 2f (default right: not
    below any key) and 0 in slot 2f+1 (default left: below every key, keys are >= 1)."""
    for f in range(n_features):
        v = np.float32(x[f])
        if v != v:
            xb[2 * f] = 255
            xb[2 * f + 1] = 0
        else:
            t = f * CUT_ROW
            b = count_le16(cuts, t, v)
            n = CUT_BLOCK * b + count_le16(cuts, t + CUT_BLOCK + CUT_BLOCK * b, v)
            xb[2 * f] = n
            xb[2 * f + 1] = n



@njit(cache=True, nogil=True, inline="always")
def _leaf_sum(val, xb, off, t0, n):
    """Sum of the leaves of trees t0..t0+n-1 (tree t's leaf h at ``t * 64 + h``), their leaf
    indexes at ``xb[off + j]``, on four accumulators."""
    nl = 1 << LANES_DEPTH
    lb = t0 * nl
    a0 = a1 = a2 = a3 = 0.0
    j = 0
    while j + 4 <= n:
        a0 += np.float64(val[lb + j * nl + xb[off + j]])
        a1 += np.float64(val[lb + (j + 1) * nl + xb[off + j + 1]])
        a2 += np.float64(val[lb + (j + 2) * nl + xb[off + j + 2]])
        a3 += np.float64(val[lb + (j + 3) * nl + xb[off + j + 3]])
        j += 4
    while j < n:
        a0 += np.float64(val[lb + j * nl + xb[off + j]])
        j += 1
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, nogil=True, inline="always")
def _margin_lanes(model, xb):
    """Sum of one leaf per tree, lane layout: full groups of 64 trees, then packed groups of 8
    (lanes.py). Software-pipelined: group k's leaf indexes go to one of two scratch
    slots while group k-1's leaves are summed from the other, so the leaf loads enter the
    CPU's window with their indexes already known instead of waiting at the end of each
    group's mask chain (``benchmarks/bench_score.py --ab`` times this order against groups
    summed one after the other)."""
    nodes, val = model.lane_node, model.lane_leaf
    n_trees = model.n_trees
    full, packed = lane_groups(n_trees)
    step = ((1 << LANES_DEPTH) - 1) * NODE           # bytes of one full group's node positions
    groups = full + packed
    acc = 0.0
    for k in range(groups + 1):
        if k < full:
            lane_group_depth6(xb, nodes, k * step, LANES + LANES * (k & 1))
        elif k < groups:
            lane_group8_depth6(xb, nodes, full * step + (k - full) * PACK * NODE, LANES + LANES * (k & 1))
        if k > 0:
            g = k - 1
            off = LANES + LANES * (g & 1)
            t0 = g * LANES if g < full else full * LANES + (g - full) * PACK
            acc += _leaf_sum(val, xb, off, t0, min(LANES if g < full else PACK, n_trees - t0))
    return acc


@njit(cache=True, nogil=True, inline="always")
def _margin_lanes_row(model, x, xx):
    """Ranks of row ``x`` into the scratch, then ``_margin_lanes``. Inlined, as everything under
    ``score_row_buf``: a real call passes the TreeModel's eight arrays, and where NRT is on the
    callee counts references to them; inlined into a function compiled without NRT, as
    ``process_batch`` is, nothing is counted (``bench_score.py --ab`` times the three ways)."""
    xb = xx.view(np.uint8)
    if xb.shape[0] < 3 * LANES:            # ranks, then two 64-byte leaf index slots: unchecked in the kernels
        raise ValueError("score_row_buf: scratch smaller than scratch_items(n_features) 4-byte items")
    rank_row(x, model.cuts, xb, model.n_features)
    return _margin_lanes(model, xb)


# compiled on its own and inlined by LLVM (forceinline): numba's inline="always" copied its IR, with
# the three layouts inlined in it, once more at each level of score_row_buf's inlining
@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def score_margin_buf(model, x, xx):
    """Raw margin of row ``x`` (float64[n_features], NaN = missing); ``xx``: a scratch of
    ``scratch_items(n_features)`` 4-byte items (int32 or float32: it is used through int32 and
    uint8 views)."""
    if model.layout == LAYOUT_LANES:
        return model.base_score + _margin_lanes_row(model, x, xx)
    xi = expand_row(x, xx, model.n_features)
    if model.layout == LAYOUT_PERFECT:
        return model.base_score + _margin_perfect(model, xi)
    return model.base_score + _margin_pointer(model, xi)


@njit(cache=True, nogil=True, inline="always")
def prefetch_model(model):
    """Ask for the model's arrays in L2 (one prefetch per 64-byte line), some microseconds
    before a score: the engine calls it when a DEX transaction starts through the detectors.
    Scoring now and then, the engine otherwise finds the trees in L3 or DRAM, where a score
    waits on its loads far longer than from L1/L2 (``bench_score.py --cold`` prints the
    three, and a cold score after this prefetch)."""
    if model.layout == LAYOUT_LANES:
        prefetch_lines(model.cuts)
        prefetch_lines(model.lane_node)
        prefetch_lines(model.lane_leaf)
    else:
        prefetch_lines(model.node)
        prefetch_lines(model.leaf_value)


@njit(cache=True, nogil=True, inline="always")
def score_row_buf(model, x, xx):
    """``score_row`` with a caller-owned scratch ``xx = np.empty(scratch_items(n_features), np.int32)``
    (float32 works too: it is used through an int32 view); no allocation; one scratch per thread."""
    m = score_margin_buf(model, x, xx)
    if model.postprocess == POST_SIGMOID:
        return 1.0 / (1.0 + np.exp(-model.sigmoid_alpha * m))
    return m


@njit(cache=True, nogil=True, _nrt=False)
def score_opportunity(model, x, xx):
    """``score_row_buf`` compiled on its own: the engine scores an opportunity through this call
    (a few per thousand transactions), so a first run compiles the scorer beside the rest of
    the engine (engine/precompile.py) instead of inside process_batch."""
    return score_row_buf(model, x, xx)


@njit(cache=True, nogil=True)
def score_row(model, x):
    """Probability (sigmoid models) or margin of one float64 feature row (NaN = missing);
    NaN for the empty model. Allocates its int32 scratch (``bench_score.py`` prints it beside
    ``score_row_buf``'s caller-owned scratch)."""
    xx = np.empty(scratch_items(model.n_features), np.int32)
    return score_row_buf(model, x, xx)


@njit(cache=True, nogil=True, _nrt=False)
def score_rows_buf(model, X, out, xx):
    """``score_rows`` into ``out`` with a caller-owned scratch, compiled as ``process_batch`` is (no
    NRT: no reference counting of the model's arrays around the inlined scorer). Returns the
    row count (an array returned from a function without NRT would be freed twice)."""
    for i in range(X.shape[0]):
        out[i] = score_row_buf(model, X[i], xx)
    return X.shape[0]


@njit(cache=True, nogil=True)
def score_rows(model, X, out):
    """``out[i] = score_row(model, X[i])`` for each row of the float64 matrix ``X``; returns ``out``."""
    score_rows_buf(model, X, out, np.empty(scratch_items(model.n_features), np.int32))
    return out
