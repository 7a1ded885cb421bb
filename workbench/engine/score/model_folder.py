"""A model folder (``models/NAME``): its ``schema.json`` and ``trees.npz`` read, checked against
the engine, and loaded as a ``TreeModel``.

``model/train.py`` writes the schema, ``model/compile.py`` the trees (the flattened nodes of
a Treelite model); ``load_tree_model`` is what the engine calls. Every refusal is a
ModelError naming the file and the array or field: a scalar of the wrong shape or type, a
value the scorer would turn into NaN or a constant (a NaN sigmoid_alpha, an infinite
base_score, no trees), an index or value out of range. A model whose trees are all single
leaves is accepted: xgboost writes one when the training data hold no useful split (small
runs do), and it scores as xgboost does, the same for every row.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from ...errors import ModelError
from ..opps import MODEL_FEATURES
from .layouts import tree_model_from_arrays
from .tree_model import MAX_FEATURES, POSTPROCESSORS, TreeModel

TREES_FILE = "trees.npz"        # models/NAME/trees.npz: the flattened node arrays (model/compile.py)
SCHEMA_FILE = "schema.json"     # models/NAME/schema.json: feature names, order, dtypes (model/train.py)
TREES_FORMAT_VERSION = 1        # trees.npz ``format_version``; bump on any change of the arrays below


def engine_features() -> tuple[str, ...]:
    """The engine's ordered model feature names (``engine.opps.MODEL_FEATURES``)."""
    return tuple(MODEL_FEATURES)


_NODE_KEYS = {  # trees.npz array -> dtype (all per node, in Treelite's order, node ids global)
    "node_feature": np.int32, "node_threshold": np.float32, "node_default_left": np.int8,
    "node_left": np.int32, "node_right": np.int32, "node_leaf_value": np.float64,
}
# trees.npz 0-d array -> (dtype kinds, does the engine take the value, what it must be). A NaN
# sigmoid_alpha scores every row NaN and an infinite base_score every row 1.0: refused here.
_SCALAR_KEYS = {
    "format_version": ("iu", lambda v: v == TREES_FORMAT_VERSION,
                       f"{TREES_FORMAT_VERSION}, the format this engine reads: recompile the model"),
    "n_features": ("iu", lambda v: 1 <= v <= MAX_FEATURES, f"in [1, {MAX_FEATURES}] (the engine's limit)"),
    "base_score": ("fiu", math.isfinite, "finite"),
    "sigmoid_alpha": ("fiu", lambda v: math.isfinite(v) and v > 0, "finite and > 0"),
    "postprocess": ("iu", lambda v: v in POSTPROCESSORS.values(), f"one of {POSTPROCESSORS}"),
}


def _check_scalars(arrs: dict, path) -> None:
    """Each scalar of ``_SCALAR_KEYS``: one value (a 0-d array) of a numeric kind the engine takes."""
    for k, (kinds, ok, must) in _SCALAR_KEYS.items():
        a = arrs[k]
        if a.ndim != 0 or a.dtype.kind not in kinds:
            raise ModelError(path, f"array {k!r}: {a.dtype}{list(a.shape)}, expected one "
                                   f"{'integer' if kinds == 'iu' else 'number'} (a 0-d array)")
        v = a.item()
        if not ok(v):
            raise ModelError(path, f"array {k!r} = {v!r}: must be {must}")


def _check_nodes(arrs: dict, path) -> None:
    """The per-node arrays (dtypes, one length) and tree_root, then every index and value in range."""
    feat = arrs["node_feature"]
    n = len(feat) if feat.ndim == 1 else -1
    for k, dt in _NODE_KEYS.items():
        a = arrs[k]
        if a.dtype != dt or a.ndim != 1 or len(a) != n:
            raise ModelError(path, f"array {k!r}: {a.dtype}[{a.shape}], expected {np.dtype(dt)}"
                                   f"[{n if n >= 0 else 'n_nodes'}] (one per node of 'node_feature')")
    root = arrs["tree_root"]
    if root.dtype != np.int32 or root.ndim != 1:
        raise ModelError(path, f"array 'tree_root': {root.dtype}{root.shape}, expected int32[n_trees]")
    if len(root) == 0:
        raise ModelError(path, "array 'tree_root' is empty: a model without trees scores every row the same")
    if np.any((root < 0) | (root >= n)):
        raise ModelError(path, f"array 'tree_root': a tree_root outside [0, {n})")
    nf = int(arrs["n_features"])
    left, right, dl = arrs["node_left"], arrs["node_right"], arrs["node_default_left"]
    thr, lv = arrs["node_threshold"], arrs["node_leaf_value"]
    split = feat >= 0
    # (array, the nodes where it is wrong, what is wrong at the first of them i)
    bad_nodes = (
        ("node_feature", (feat >= nf) | (feat < -1), lambda i: f"split feature {int(feat[i])} outside [0, {nf})"),
        ("node_left", split & ((left < 0) | (left >= n)), lambda i: f"child or root index outside [0, {n})"),
        ("node_right", split & ((right < 0) | (right >= n)), lambda i: f"child or root index outside [0, {n})"),
        ("node_left", ~split & (left != -1), lambda i: "a leaf has a child (node_left must be -1 at leaves)"),
        ("node_default_left", split & (dl != 0) & (dl != 1), lambda i: f"default_left {int(dl[i])}, not 0 or 1"),
        ("node_threshold", split & ~np.isfinite(thr), lambda i: f"threshold {thr[i]} is not finite"),
        ("node_leaf_value", ~np.isfinite(lv), lambda i: f"leaf value {lv[i]} is not finite"),
        ("node_leaf_value", lv.astype(np.float32).astype(np.float64) != lv,
         lambda i: "a leaf value is not a float32 (xgboost's leaves are): not an xgboost model"),
    )
    for k, bad, why in bad_nodes:
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ModelError(path, f"array {k!r} node {i}: {why(i)}")


def read_trees(path) -> dict:
    """The arrays of a ``trees.npz``, checked (keys, dtypes, shapes, index ranges, values); ModelError
    names the file and the array."""
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
    _check_scalars(arrs, path)
    _check_nodes(arrs, path)
    return arrs


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
