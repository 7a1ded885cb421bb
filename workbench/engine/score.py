"""In-engine scoring: a tree ensemble as flat numpy arrays and one jitted evaluator.

``model/compile.py`` extracts the trees of a Treelite model (``Model.dump_as_json()``) into
``models/NAME/trees.npz``; this module loads those arrays (``load_tree_model``) and scores
one feature row with ``score_row(model, x)`` from inside ``process_batch``: no Python call,
no allocation, no xgboost/treelite import (engine/ loads model ARRAYS, never model code).

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
* margin = base_score + one leaf per tree; with the sigmoid postprocessor probability =
  1 / (1 + exp(-sigmoid_alpha * margin)). Leaves (float32 in xgboost) are summed in
  float64, so this evaluator is the most exact of the three; the float32 sums of xgboost
  and TL2cgen differ from it by a few 1e-7 at most (model/compile.py checks < 1e-6).

Two layouts of the same trees (one ``TreeModel`` type either way)
------------------------------------------------------------------
* perfect (``depth >= 0``, used when the deepest tree has at most ``PERFECT_DEPTH_MAX``
  levels): every tree is padded to a complete binary tree of ``depth`` levels in heap
  order (a shallow leaf becomes a dummy split whose subtrees all hold its value). A tree
  is then exactly ``depth`` branch-free steps, and eight trees are walked at once, so the
  CPU overlaps eight independent chains of dependent loads and never mispredicts.
  Measured on the 2-core EPYC dev box (benchmarks/bench_score.py), 200 trees of depth 6:
  ~0.8 us per row; a branchy walk of the same trees ~6.5 us, TL2cgen's C (nested ifs)
  ~4 us called from numba on varied rows.
* pointer (``depth == -1``): Treelite's nodes with explicit children, for deep trees whose
  padding would not fit in cache.
* lanes (``layout == LAYOUT_LANES``, chosen where the CPU has AVX-512 VBMI, the trees have
  at most 6 levels and no feature has more than 255 distinct thresholds, which xgboost's
  ``hist`` method guarantees with its default 256 bins): the row becomes one byte per
  feature slot, its RANK among that feature's sorted thresholds (two 16-wide counts: which
  block of 16, then within it), and a node's test becomes ``rank[slot] >= key`` on bytes.
  Sixty-four trees are padded to depth 6 and stored position-major, one byte per tree, so one
  node position of 64 trees is evaluated by one ``vpermb`` table lookup and one byte compare
  (engine/lanes.py); the six path bits per tree come from mux trees over those masks. A short
  tail of trees past the last full group (at most PACKED_TAIL_MAX) is packed 8 trees to a
  group, 8 node positions per vector: 8 masks instead of 63. Groups are software-pipelined
  (one group's leaves summed while the next one's masks run). No dependent load, no
  branch: 200 trees of depth 6 (3 full groups and one packed) in ~0.23 us a row
  (~0.013 us the ranks; ~0.03 us per full group's 63 masks and muxes, ~0.025 us its 64 leaf
  loads) instead of ~0.88 us for the perfect layout (benchmarks/bench_score.py, same machine).

``empty_tree_model(n)`` has no trees, identity postprocessor and a NaN base score: it scores
NaN, which is the contract's "score NaN without a model", with the same numba type.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit

from ..errors import ModelError
from .lanes import (HAVE_VBMI, LANES, LANES_DEPTH, NODE, PACK, count_le16, lane_group8_depth6, lane_group_depth6,  # noqa: F401
                    prefetch_lines)
from .opps import MODEL_FEATURES

TREES_FILE = "trees.npz"        # models/NAME/trees.npz: the flattened node arrays (model/compile.py)
SCHEMA_FILE = "schema.json"     # models/NAME/schema.json: feature names, order, dtypes (model/train.py)
TREES_FORMAT_VERSION = 1        # trees.npz ``format_version``; bump on any change of the arrays below
PERFECT_DEPTH_MAX = 10          # deepest tree padded to the perfect layout (2**10 leaves per tree)

LAYOUT_PERFECT = 0              # TreeModel.layout: complete trees in heap order, 8 walked at once
LAYOUT_POINTER = 1              # explicit children (deep trees)
LAYOUT_LANES = 2                # 64 trees per byte-lane group, ranks instead of floats (AVX-512 VBMI)
LAYOUTS = {"perfect": LAYOUT_PERFECT, "pointer": LAYOUT_POINTER, "lanes": LAYOUT_LANES}
PACKED_TAIL_MAX = 16            # trees past the last full 64-lane group, at most this many: packed groups of 8
CUTS = 256                      # sorted thresholds per feature: <= 255, then +inf, NaN in the last entry
CUT_BLOCK = 16                  # one 16-wide float compare (engine/lanes.py count_le16)
CUT_ROW = CUT_BLOCK + CUTS      # a feature's rank table: the 16 block tops (entry 16i+15), then the CUTS entries
SCRATCH_MIN_ITEMS = 48          # 4-byte items: 64 bytes of ranks + two 64-byte slots of leaf indexes (lanes)

POST_IDENTITY = 0               # margin as is
POST_SIGMOID = 1                # 1 / (1 + exp(-alpha * margin)) (xgboost binary:logistic)
POSTPROCESSORS = {"identity": POST_IDENTITY, "sigmoid": POST_SIGMOID}

def engine_features() -> tuple[str, ...]:
    """The engine's ordered model feature names (``engine.opps.MODEL_FEATURES``)."""
    return tuple(MODEL_FEATURES)


class TreeModel(NamedTuple):
    """A tree ensemble as flat arrays (all C-contiguous, writable; the numba type never varies).

    Compares are on int32 ORDER KEYS of float32 values (``f32_key``: the bits, with the
    magnitude bits flipped for negatives, -0 made +0), which order exactly as the floats do.
    A split node is one int64 word ``(key(threshold) << 16) | slot`` with slot
    ``s = 2 * feature + default_left`` into the row's expanded key form ``xx``
    (``expand_row``): ``xx[2f] = xx[2f + 1] = key(float32(x[f]))``, except that a missing
    (NaN) ``x[f]`` gives INT32_MAX in ``xx[2f]`` and INT32_MIN in ``xx[2f + 1]``. Then
    ``go right <=> xx[s] >= key(threshold)`` is xgboost's rule, missing values included
    (thresholds are finite), with one load, one integer compare and no NaN branch per node.

    perfect layout (``depth >= 0``): tree t's ``2**depth - 1`` split nodes are at
    ``[t * (2**depth - 1), ...)`` in heap order (node h >= 1 at offset h - 1, children 2h
    and 2h + 1), its ``2**depth`` leaves at ``[t * 2**depth, ...)``. pointer layout
    (``depth == -1``): Treelite's nodes with explicit children, ``left == -1`` at a leaf.
    """
    node: np.ndarray           # int64: (key(threshold) << 16) | (2 * feature + default_left); 0 at a leaf
    left: np.ndarray           # int32: left child, a global node index (pointer layout; empty when perfect)
    right: np.ndarray          # int32: right child (pointer layout; empty when perfect)
    leaf_value: np.ndarray     # float32 (xgboost's leaves are float32; summed in float64): per leaf slot
                               # (perfect) or per node (pointer, 0 at splits)
    tree_root: np.ndarray      # int32[n_trees]: root node of each tree (pointer layout; perfect: t * (2**d - 1);
                               # lanes: t)
    depth: int                 # perfect layout depth >= 0; -1 = pointer layout
    n_trees: int
    n_features: int            # length of the row ``x`` score_row reads, <= MAX_FEATURES
    base_score: float          # margin added once (Treelite base_scores[0]); NaN in the empty model
    sigmoid_alpha: float       # slope of the sigmoid postprocessor
    postprocess: int           # POST_IDENTITY | POST_SIGMOID
    layout: int                # LAYOUT_PERFECT | LAYOUT_POINTER | LAYOUT_LANES
    lane_node: np.ndarray      # uint8 (lanes): 128-byte records, one per node position of a group: 64 slots
                               # (feature slot 2f + default_left per lane), then 64 rank keys (go right <=>
                               # rank >= key). Full groups (``lane_groups``): position p of tree g*64+j in
                               # record g*63 + p-1, lane j; then packed groups of 8: position p (0 unused)
                               # of tree F*64 + q*8 + j in record F*63 + q*8 + p//8, lane (p%8)*8 + j
    lane_leaf: np.ndarray      # float32[(F*64 + packed*8) * 64]: leaf h of tree t at t*64 + h
    cuts: np.ndarray           # float32[n_features * CUT_ROW] (lanes): per feature the top of each block of 16
                               # thresholds, then its sorted distinct thresholds, +inf after, NaN last


MAX_FEATURES = (1 << 15) - 1    # a slot (2 * feature + 1) fits the node word's low 16 bits
_SLOT_MASK = 0xFFFF


def f32_key(a) -> np.ndarray:
    """int32 order keys of float32 values (no NaN): key(a) < key(b) <=> a < b; -0 and +0 equal."""
    a = np.asarray(a, np.float32) + np.float32(0.0)          # -0 -> +0
    b = a.view(np.int32).astype(np.int64)
    return (b ^ ((b >> 31) & 0x7FFFFFFF)).astype(np.int32)


def pack_nodes(feature, default_left, threshold) -> np.ndarray:
    """Node words ``(key(threshold) << 16) | (2 * feature + default_left)``; 0 where feature < 0."""
    feature = np.asarray(feature, np.int64)
    slot = 2 * feature + np.asarray(default_left, np.int64)
    thr = np.where(feature >= 0, np.asarray(threshold, np.float32), np.float32(0))
    w = (f32_key(thr).astype(np.int64) << 16) | slot
    return np.where(feature >= 0, w, 0).astype(np.int64)


def _model(node, left, right, leaf_value, tree_root, depth, n_features, base_score, sigmoid_alpha, postprocess,
           layout=None, lane_node=(), lane_leaf=(), cuts=()) -> TreeModel:
    c = np.ascontiguousarray
    if layout is None:
        layout = LAYOUT_POINTER if depth < 0 else LAYOUT_PERFECT
    return TreeModel(c(node, dtype=np.int64).copy(), c(left, dtype=np.int32).copy(),
                     c(right, dtype=np.int32).copy(), c(leaf_value, dtype=np.float32).copy(),
                     c(tree_root, dtype=np.int32).copy(), int(depth), int(len(tree_root)), int(n_features),
                     float(base_score), float(sigmoid_alpha), int(postprocess), int(layout),
                     c(lane_node, dtype=np.uint8).copy(),
                     c(lane_leaf, dtype=np.float32).copy(), c(cuts, dtype=np.float32).copy())


@njit(cache=True, nogil=True)
def scratch_items(n_features):
    """4-byte items of the scorer's scratch (``score_row_buf``'s ``xx``) for ``n_features``
    (jitted: callable from Python and from nopython code)."""
    return max(2 * n_features, SCRATCH_MIN_ITEMS)


def empty_tree_model(n_features: int) -> TreeModel:
    """A model with zero trees: ``score_row`` returns NaN (no model), with the loaded models' numba type."""
    z32 = np.zeros(0, np.int32)
    return _model(np.zeros(0, np.int64), z32, z32, np.zeros(0, np.float32), z32, 0, n_features,
                  np.nan, 1.0, POST_IDENTITY)


# ============================================================================================
# the evaluator
# ============================================================================================

_U1 = np.uint64(1)
_U8 = np.uint64(8)
_U_SLOT_MASK = np.uint64(_SLOT_MASK)
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


@njit(cache=True, nogil=True)
def lane_groups(n_trees):
    """(full 64-lane groups, packed 8-tree groups) of the lane layout for ``n_trees`` trees: full
    groups, then the rest in packed groups where it is at most PACKED_TAIL_MAX trees (a
    packed group costs 8 node masks, a full group 63), else one more full group."""
    full, rest = n_trees // LANES, n_trees % LANES
    if rest > PACKED_TAIL_MAX:
        return full + 1, 0
    return full, (rest + PACK - 1) // PACK


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
    (engine/lanes.py). Software-pipelined: group k's leaf indexes go to one of two scratch
    slots while group k-1's leaves are summed from the other, so the leaf loads enter the
    CPU's window with their indexes already known instead of waiting at the end of each
    group's mask chain (measured: 174 vs 207 ns for 3 groups)."""
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
    callee counts references to them (measured: 690 ns a row with calls, 420 inlined; 360-380
    inlined into a function compiled without NRT, as ``process_batch`` is)."""
    xb = xx.view(np.uint8)
    if xb.shape[0] < 3 * LANES:            # ranks, then two 64-byte leaf index slots: unchecked in the kernels
        raise ValueError("score_row_buf: scratch smaller than scratch_items(n_features) 4-byte items")
    rank_row(x, model.cuts, xb, model.n_features)
    return _margin_lanes(model, xb)


@njit(cache=True, nogil=True, inline="always")
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
    """Ask for the model's arrays in L2 (about 1,300 line prefetches for 200 trees of depth 6
    in the lane layout), some microseconds before a score: the engine calls it when a DEX
    transaction starts through the detectors. Scoring now and then, the engine otherwise
    finds the trees in L3 or DRAM (measured: ~1.1 us a row from L3, ~7 us from DRAM,
    ~0.4 us from L1/L2)."""
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


@njit(cache=True, nogil=True)
def score_row(model, x):
    """Probability (sigmoid models) or margin of one float64 feature row (NaN = missing);
    NaN for the empty model. Allocates its int32 scratch (~20 ns)."""
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


# ============================================================================================
# loading (Python): trees.npz + schema.json -> TreeModel
# ============================================================================================

_NODE_KEYS = {  # trees.npz array -> dtype (all per node, in Treelite's order, node ids global)
    "node_feature": np.int32, "node_threshold": np.float32, "node_default_left": np.int8,
    "node_left": np.int32, "node_right": np.int32, "node_leaf_value": np.float64,
}
_SCALAR_KEYS = ("format_version", "n_features", "base_score", "sigmoid_alpha", "postprocess")


def read_schema(path) -> list[dict]:
    """The feature list of a ``schema.json``: ``[{"name": ..., "dtype": ...}, ...]`` in model order."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "missing: the model folder has no feature schema (written by `workbench train`)")
    try:
        doc = json.loads(path.read_text())
        feats = doc["features"]
        out = [{"name": str(f["name"]), "dtype": str(f["dtype"])} for f in feats]
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(path, f"not valid JSON ({e})") from None
    except (KeyError, TypeError) as e:
        raise ModelError(path, f"no feature list: expected {{'features': [{{'name', 'dtype'}}, ...]}} ({e!r})") from None
    return out


def check_schema(schema: list[dict], expected: tuple[str, ...], path) -> None:
    """Raise ModelError naming the first feature whose position, name or dtype differs from ``expected``."""
    n = max(len(schema), len(expected))
    for i in range(n):
        exp = expected[i] if i < len(expected) else "<none: the engine has fewer features>"
        got = schema[i]["name"] if i < len(schema) else "<none: the model has fewer features>"
        if exp != got:
            raise ModelError(path, f"feature schema does not match the engine's MODEL_FEATURES at position {i}: "
                                   f"expected {exp!r}, found {got!r} (retrain the model on this engine's runs)")
        if schema[i]["dtype"] != "float64":
            raise ModelError(path, f"feature {i} {got!r} has dtype {schema[i]['dtype']!r}; the engine scores float64")


def read_trees(path) -> dict:
    """The arrays of a ``trees.npz``, checked (keys, dtypes, shapes, index ranges); ModelError names the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "missing: run `workbench compile` on the model folder first")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrs = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ModelError(path, f"not a readable .npz ({type(e).__name__}: {e})") from None
    for k in (*_NODE_KEYS, "tree_root", *_SCALAR_KEYS):
        if k not in arrs:
            raise ModelError(path, f"array {k!r} missing (has {sorted(arrs)})")
    if int(arrs["format_version"]) != TREES_FORMAT_VERSION:
        raise ModelError(path, f"format_version {int(arrs['format_version'])}, this engine reads "
                               f"{TREES_FORMAT_VERSION}: recompile the model")
    n = len(arrs["node_feature"])
    for k, dt in _NODE_KEYS.items():
        a = arrs[k]
        if a.dtype != dt or a.ndim != 1 or len(a) != n:
            raise ModelError(path, f"array {k!r}: {a.dtype}[{a.shape}], expected {np.dtype(dt)}[{n}]")
    root = arrs["tree_root"]
    if root.dtype != np.int32 or root.ndim != 1:
        raise ModelError(path, f"array 'tree_root': {root.dtype}{root.shape}, expected int32[n_trees]")
    nf = int(arrs["n_features"])
    feat, left, right = arrs["node_feature"], arrs["node_left"], arrs["node_right"]
    split = feat >= 0
    if np.any(feat[split] >= nf) or np.any(feat < -1):
        i = int(np.flatnonzero((feat >= nf) | (feat < -1))[0])
        raise ModelError(path, f"node {i}: split feature {int(feat[i])} outside [0, {nf})")
    bad = split & ((left < 0) | (left >= n) | (right < 0) | (right >= n))
    if np.any(bad) or np.any((root < 0) | (root >= n)):
        i = int(np.flatnonzero(bad)[0]) if np.any(bad) else -1
        raise ModelError(path, f"node {i}: child or root index outside [0, {n})" if i >= 0
                         else f"a tree_root outside [0, {n})")
    if not np.all(left[~split] == -1):
        raise ModelError(path, "a leaf has a child (node_left must be -1 at leaves)")
    lv = arrs["node_leaf_value"]
    if not np.all(np.isfinite(lv)) or not np.all(np.isfinite(arrs["node_threshold"][split])):
        raise ModelError(path, "a leaf value or threshold is not finite")
    if not np.array_equal(lv.astype(np.float32).astype(np.float64), lv):
        raise ModelError(path, "a leaf value is not a float32 (xgboost's leaves are): not an xgboost model")
    if nf > MAX_FEATURES:
        raise ModelError(path, f"n_features {nf}: the engine scores at most {MAX_FEATURES}")
    pp = int(arrs["postprocess"])
    if pp not in POSTPROCESSORS.values():
        raise ModelError(path, f"postprocess {pp} unknown (known: {POSTPROCESSORS})")
    return arrs


def _depths(arrs, path) -> int:
    """Deepest root-to-leaf path (splits) over all trees; ModelError on a cycle or shared node."""
    feat, left, right = arrs["node_feature"], arrs["node_left"], arrs["node_right"]
    seen = np.zeros(len(feat), np.bool_)
    deepest = 0
    for r in arrs["tree_root"]:
        stack = [(int(r), 0)]
        while stack:
            k, d = stack.pop()
            if seen[k]:
                raise ModelError(path, f"node {k} is reached twice: the trees are not trees")
            seen[k] = True
            if feat[k] < 0:
                deepest = max(deepest, d)
            else:
                stack.append((int(left[k]), d + 1))
                stack.append((int(right[k]), d + 1))
    return deepest


def _perfect(arrs, depth: int):
    """Pad every tree to a complete binary tree of ``depth`` levels, in heap order: (feature,
    default_left, threshold, is_split) per split position and the leaf values. A padding
    position (under a shallow leaf) is feature 0 at threshold 0 with the same leaf both ways."""
    feat, thr, dl = arrs["node_feature"], arrs["node_threshold"], arrs["node_default_left"]
    left, right, val = arrs["node_left"], arrs["node_right"], arrs["node_leaf_value"]
    roots = arrs["tree_root"]
    n_split, n_leaf = (1 << depth) - 1, 1 << depth
    T = len(roots)
    pf = np.zeros(T * n_split, np.int32)     # dummy splits: feature 0 at threshold 0, same leaf both ways
    pd = np.zeros(T * n_split, np.int8)
    pt = np.zeros(T * n_split, np.float32)
    pv = np.zeros(T * n_leaf, np.float32)
    real = np.zeros(T * n_split, np.bool_)
    for t in range(T):
        stack = [(int(roots[t]), 1)]            # (source node, heap index h >= 1 in the perfect tree)
        while stack:
            k, h = stack.pop()
            if h > n_split:                     # a leaf slot
                pv[t * n_leaf + h - n_leaf] = val[k]
                continue
            if feat[k] < 0:                     # shallow leaf: both subtrees hold its value
                stack.append((k, 2 * h))
                stack.append((k, 2 * h + 1))
                continue
            g = t * n_split + h - 1
            pf[g], pd[g], pt[g], real[g] = feat[k], dl[k], thr[k], True
            stack.append((int(left[k]), 2 * h))
            stack.append((int(right[k]), 2 * h + 1))
    return pf, pd, pt, real, pv


def lanes_fit(arrs, depth: int) -> str | None:
    """Why these trees cannot take the lane layout, or None when they can."""
    nf = int(arrs["n_features"])
    if depth > LANES_DEPTH:
        return f"trees of depth {depth} (the lane layout holds at most {LANES_DEPTH})"
    if 2 * nf > LANES:
        return f"{nf} features (the lane layout ranks at most {LANES // 2})"
    feat, thr = arrs["node_feature"], arrs["node_threshold"]
    for f in range(nf):
        n = len(np.unique(thr[feat == f] + np.float32(0)))
        if n > CUTS - 1:
            return f"feature {f} has {n} distinct thresholds (the lane layout ranks at most {CUTS - 1})"
    return None


def _lanes(arrs):
    """(lane_node, lane_leaf, cuts) of the lane layout (see TreeModel)."""
    pf, pd, pt, real, pv = _perfect(arrs, LANES_DEPTH)
    nf, T = int(arrs["n_features"]), len(arrs["tree_root"])
    ns, nl = (1 << LANES_DEPTH) - 1, 1 << LANES_DEPTH
    cuts = np.full((nf, CUTS), np.inf, np.float32)
    key = np.zeros(T * ns, np.uint8)                 # padding positions: key 0, always right (same leaf)
    for f in range(nf):
        sel = real & (pf == f)
        u = np.unique(pt[sel] + np.float32(0))       # -0 and +0 are one threshold
        cuts[f, :len(u)] = u
        key[sel] = np.searchsorted(u, pt[sel] + np.float32(0)) + 1     # go right <=> rank(x) >= index + 1
    slot = np.where(real, 2 * pf + pd, 0).astype(np.uint8).reshape(T, ns)
    key = key.reshape(T, ns)
    full, packed = lane_groups(T)
    # full groups: position p (1..63) of tree g*64 + j in record g*63 + p-1, lane j
    n_full = min(T, full * LANES)
    t = np.arange(n_full)
    full_rec = np.zeros((full, ns, 2, LANES), np.uint8)
    full_rec[t // LANES, :, 0, t % LANES] = slot[:n_full]
    full_rec[t // LANES, :, 1, t % LANES] = key[:n_full]
    # packed groups: position p (0..63, 0 unused) of tree full*64 + q*8 + j in record q*8 + p//8, lane (p%8)*8 + j
    t = np.arange(T - n_full)
    pk = np.zeros((packed, 2, nl, PACK), np.uint8)
    pk[t // PACK, 0, 1:, t % PACK] = slot[n_full:]
    pk[t // PACK, 1, 1:, t % PACK] = key[n_full:]
    pk_rec = pk.reshape(packed, 2, PACK, PACK * PACK).transpose(0, 2, 1, 3)     # (group, record, slots|keys, lane)
    lane_node = np.concatenate([full_rec.reshape(-1), pk_rec.reshape(-1)])
    lane_leaf = np.zeros((full * LANES + packed * PACK, nl), np.float32)     # tree t's leaf h at t*64 + h
    lane_leaf[:T] = pv.reshape(T, nl)
    cuts[:, CUTS - 1] = np.nan                       # never counted: a rank is at most 255 (lanes_fit)
    table = np.concatenate([cuts[:, CUT_BLOCK - 1::CUT_BLOCK], cuts], axis=1)     # block tops, then the thresholds
    return lane_node, lane_leaf.reshape(-1), table.reshape(-1)


def tree_model_from_arrays(arrs: dict, path="<arrays>", layout: str = "auto") -> TreeModel:
    """A TreeModel from checked trees.npz arrays. ``layout``: 'auto' | 'lanes' | 'perfect' | 'pointer'.

    'auto' takes the lane layout where the CPU has AVX-512 VBMI and the trees fit it
    (``lanes_fit``), else the perfect layout up to PERFECT_DEPTH_MAX levels, else pointers.
    'lanes' on a host without VBMI still scores right, through a slow portable lookup (tests)."""
    if layout not in ("auto", *LAYOUTS):
        raise ValueError(f"layout={layout!r}: use 'auto', 'lanes', 'perfect' or 'pointer'")
    depth = _depths(arrs, path)
    common = dict(n_features=int(arrs["n_features"]), base_score=float(arrs["base_score"]),
                  sigmoid_alpha=float(arrs["sigmoid_alpha"]), postprocess=int(arrs["postprocess"]))
    z = np.zeros(0, np.int32)
    wants_lanes = layout == "lanes" or (layout == "auto" and HAVE_VBMI)
    unfit = lanes_fit(arrs, depth) if wants_lanes else None        # per-feature threshold counts: only if asked
    if layout == "lanes" and unfit:
        raise ModelError(path, f"no lane layout for {unfit}")
    if wants_lanes and unfit is None:
        node, leaf, cuts = _lanes(arrs)
        trees = np.arange(len(arrs["tree_root"]), dtype=np.int32)       # tree t's leaves at lane_leaf[t * 64:]
        return _model(np.zeros(0, np.int64), z, z, np.zeros(0, np.float32), trees, LANES_DEPTH, **common,
                      layout=LAYOUT_LANES, lane_node=node, lane_leaf=leaf, cuts=cuts)
    perfect = layout == "perfect" or (layout == "auto" and depth <= PERFECT_DEPTH_MAX)
    if perfect:
        pf, pd, pt, _, pv = _perfect(arrs, depth)
        words = pack_nodes(pf, pd, pt)
        roots = np.arange(len(arrs["tree_root"]), dtype=np.int32) * ((1 << depth) - 1)
        return _model(words, z, z, pv, roots, depth, **common)
    words = pack_nodes(arrs["node_feature"], arrs["node_default_left"], arrs["node_threshold"])
    return _model(words, arrs["node_left"], arrs["node_right"], arrs["node_leaf_value"], arrs["tree_root"], -1,
                  **common)


def load_tree_model(model_dir, features: tuple[str, ...] | None = None, layout: str = "auto") -> TreeModel:
    """The TreeModel of ``model_dir`` (``trees.npz`` + ``schema.json``), checked against the engine.

    ``features``: the expected ordered names (default: the engine's MODEL_FEATURES). Raises
    ModelError naming the file: missing or damaged files, or the first differing feature
    (position, expected, found).
    """
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelError(d, "not a model folder (expected trees.npz and schema.json from train + compile)")
    expected = tuple(features) if features is not None else engine_features()
    schema_path = d / SCHEMA_FILE
    check_schema(read_schema(schema_path), expected, schema_path)
    trees_path = d / TREES_FILE
    arrs = read_trees(trees_path)
    if int(arrs["n_features"]) != len(expected):
        raise ModelError(trees_path, f"n_features {int(arrs['n_features'])} but the schema lists {len(expected)}")
    return tree_model_from_arrays(arrs, trees_path, layout)
