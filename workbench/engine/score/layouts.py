"""Which layout, and its arrays: checked ``trees.npz`` arrays -> ``TreeModel``.

``tree_model_from_arrays`` measures the deepest tree, asks whether the trees fit the lane
layout (``lanes_fit``), and pads or packs them into the perfect, pointer or lane layout
that ``tree_model.py`` describes and ``kernels.py`` walks.
"""

from __future__ import annotations

import numpy as np

from ...errors import ModelError
from .lanes import HAVE_VBMI, LANES, LANES_DEPTH, PACK
from .tree_model import (CUT_BLOCK, CUTS, LAYOUT_LANES, LAYOUTS, PERFECT_DEPTH_MAX, TreeModel, lane_groups,
                         new_tree_model, pack_nodes)


def _deepest(arrs, path) -> int:
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


def _pad_perfect(arrs, depth: int):
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


def _lane_arrays(arrs):
    """(lane_node, lane_leaf, cuts) of the lane layout (see TreeModel)."""
    pf, pd, pt, real, pv = _pad_perfect(arrs, LANES_DEPTH)
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
    depth = _deepest(arrs, path)
    common = dict(n_features=int(arrs["n_features"]), base_score=float(arrs["base_score"]),
                  sigmoid_alpha=float(arrs["sigmoid_alpha"]), postprocess=int(arrs["postprocess"]))
    z = np.zeros(0, np.int32)
    wants_lanes = layout == "lanes" or (layout == "auto" and HAVE_VBMI)
    unfit = lanes_fit(arrs, depth) if wants_lanes else None        # per-feature threshold counts: only if asked
    if layout == "lanes" and unfit:
        raise ModelError(path, f"no lane layout for {unfit}")
    if wants_lanes and unfit is None:
        node, leaf, cuts = _lane_arrays(arrs)
        trees = np.arange(len(arrs["tree_root"]), dtype=np.int32)       # tree t's leaves at lane_leaf[t * 64:]
        return new_tree_model(np.zeros(0, np.int64), z, z, np.zeros(0, np.float32), trees, LANES_DEPTH, **common,
                              layout=LAYOUT_LANES, lane_node=node, lane_leaf=leaf, cuts=cuts)
    perfect = layout == "perfect" or (layout == "auto" and depth <= PERFECT_DEPTH_MAX)
    if perfect:
        pf, pd, pt, _, pv = _pad_perfect(arrs, depth)
        words = pack_nodes(pf, pd, pt)
        roots = np.arange(len(arrs["tree_root"]), dtype=np.int32) * ((1 << depth) - 1)
        return new_tree_model(words, z, z, pv, roots, depth, **common)
    words = pack_nodes(arrs["node_feature"], arrs["node_default_left"], arrs["node_threshold"])
    return new_tree_model(words, arrs["node_left"], arrs["node_right"], arrs["node_leaf_value"], arrs["tree_root"],
                          -1, **common)
