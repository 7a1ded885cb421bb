"""``TreeModel``: a tree ensemble as flat numpy arrays in one of three layouts, and its constants.

The arrays are what ``kernels.py`` walks; ``layouts.py`` builds them from a ``trees.npz``.

Three layouts of the same trees (one ``TreeModel`` type either way)
------------------------------------------------------------------
* perfect (``depth >= 0``, used when the deepest tree has at most ``PERFECT_DEPTH_MAX``
  levels): every tree is padded to a complete binary tree of ``depth`` levels in heap
  order (a shallow leaf becomes a dummy split whose subtrees all hold its value). A tree
  is then exactly ``depth`` branch-free steps, and eight trees are walked at once, so the
  CPU overlaps eight independent chains of dependent loads and never mispredicts: a
  branchy walk of the same trees (the pointer layout) and TL2cgen's C (nested ifs) are
  slower (``benchmarks/bench_score.py --layouts`` prints the three).
* pointer (``depth == -1``): Treelite's nodes with explicit children, for deep trees whose
  padding would not fit in cache.
* lanes (``layout == LAYOUT_LANES``, chosen where the CPU has AVX-512 VBMI, the trees have
  at most 6 levels and no feature has more than 255 distinct thresholds, which xgboost's
  ``hist`` method guarantees with its default 256 bins): the row becomes one byte per
  feature slot, its RANK among that feature's sorted thresholds (two 16-wide counts: which
  block of 16, then within it), and a node's test becomes ``rank[slot] >= key`` on bytes.
  Sixty-four trees are padded to depth 6 and stored position-major, one byte per tree, so one
  node position of 64 trees is evaluated by one ``vpermb`` table lookup and one byte compare
  (``lanes.py``); the six path bits per tree come from mux trees over those masks. A short
  tail of trees past the last full group (at most PACKED_TAIL_MAX) is packed 8 trees to a
  group, 8 node positions per vector: 8 masks instead of 63 (``bench_score.py --crossover``
  prints where a full group becomes the cheaper). Groups are software-pipelined (one
  group's leaves summed while the next one's masks run). No dependent load, no branch
  (``bench_score.py`` prints this layout beside the perfect one; ``--scaling`` the cost
  of the ranks, of one group's masks and of its leaf loads, and the cost by tree count).

``empty_tree_model(n)`` has no trees, identity postprocessor and a NaN base score: it scores
NaN, which is the contract's "score NaN without a model", with the same numba type.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .lanes import LANES, PACK

PERFECT_DEPTH_MAX = 10          # deepest tree padded to the perfect layout (2**10 leaves per tree)

LAYOUT_PERFECT = 0              # TreeModel.layout: complete trees in heap order, 8 walked at once
LAYOUT_POINTER = 1              # explicit children (deep trees)
LAYOUT_LANES = 2                # 64 trees per byte-lane group, ranks instead of floats (AVX-512 VBMI)
LAYOUTS = {"perfect": LAYOUT_PERFECT, "pointer": LAYOUT_POINTER, "lanes": LAYOUT_LANES}
PACKED_TAIL_MAX = 16            # trees past the last full 64-lane group, at most this many: packed groups of 8
CUTS = 256                      # sorted thresholds per feature: <= 255, then +inf, NaN in the last entry
CUT_BLOCK = 16                  # one 16-wide float compare (lanes.py count_le16)
CUT_ROW = CUT_BLOCK + CUTS      # a feature's rank table: the 16 block tops (entry 16i+15), then the CUTS entries
SCRATCH_MIN_ITEMS = 48          # 4-byte items: 64 bytes of ranks + two 64-byte slots of leaf indexes (lanes)

POST_IDENTITY = 0               # margin as is
POST_SIGMOID = 1                # 1 / (1 + exp(-alpha * margin)) (xgboost binary:logistic)
POSTPROCESSORS = {"identity": POST_IDENTITY, "sigmoid": POST_SIGMOID}


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
SLOT_MASK = 0xFFFF              # the node word's slot bits


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


def new_tree_model(node, left, right, leaf_value, tree_root, depth, n_features, base_score, sigmoid_alpha,
                   postprocess, layout=None, lane_node=(), lane_leaf=(), cuts=()) -> TreeModel:
    """A TreeModel of contiguous copies with the dtypes the numba type needs (layout: pointer
    for depth < 0, else perfect, unless given)."""
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
    return new_tree_model(np.zeros(0, np.int64), z32, z32, np.zeros(0, np.float32), z32, 0, n_features,
                          np.nan, 1.0, POST_IDENTITY)


@njit(cache=True, nogil=True)
def lane_groups(n_trees):
    """(full 64-lane groups, packed 8-tree groups) of the lane layout for ``n_trees`` trees: full
    groups, then the rest in packed groups where it is at most PACKED_TAIL_MAX trees (a
    packed group costs 8 node masks, a full group 63), else one more full group."""
    full, rest = n_trees // LANES, n_trees % LANES
    if rest > PACKED_TAIL_MAX:
        return full + 1, 0
    return full, (rest + PACK - 1) // PACK
