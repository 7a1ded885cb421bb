"""A model folder (``models/NAME``): its ``schema.json`` and ``trees.npz`` read, checked against
the engine, and loaded as a ``TreeModel``.

``model/train.py`` writes the schema, ``model/compile.py`` the trees (the flattened nodes of
a Treelite model); ``load_tree_model`` is what the engine calls. Every refusal is a
ModelError naming the file.
"""

from __future__ import annotations

import json
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
