"""engine/score/model_folder.py: a model folder whose arrays would score NaN, a constant or garbage is
refused at load, with a ModelError naming the file and the array.

The model is a small hand-made ensemble written as ``workbench compile`` writes one
(``write_trees`` and a schema.json of the engine's features); each test rewrites one
array of trees.npz (or schema.json) and loads the folder.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from workbench.engine.score.kernels import score_row
from workbench.engine.score.model_folder import (_NODE_KEYS, _SCALAR_KEYS, SCHEMA_FILE, TREES_FILE,
                                                 TREES_FORMAT_VERSION, engine_features, load_tree_model)
from workbench.engine.score.tree_model import POST_SIGMOID
from workbench.errors import ModelError
from workbench.model.compile import write_trees

NF = len(engine_features())


def small_trees() -> dict:
    """Two trees: a split on feature 0 then on feature 2, and a lone split on feature 1."""
    return {
        "node_feature": np.array([0, 2, -1, -1, -1, 1, -1, -1], np.int32),
        "node_threshold": np.array([0.5, -1.0, 0, 0, 0, 2.0, 0, 0], np.float32),
        "node_default_left": np.array([1, 0, 0, 0, 0, 1, 0, 0], np.int8),
        "node_left": np.array([1, 3, -1, -1, -1, 6, -1, -1], np.int32),
        "node_right": np.array([2, 4, -1, -1, -1, 7, -1, -1], np.int32),
        "node_leaf_value": np.array([0, 0, 0.25, -0.5, 0.75, 0, 0.125, -0.125], np.float64),
        "tree_root": np.array([0, 5], np.int32),
        "format_version": np.int64(TREES_FORMAT_VERSION), "n_features": np.int64(NF),
        "base_score": np.float64(-0.25), "sigmoid_alpha": np.float64(1.0), "postprocess": np.int64(POST_SIGMOID),
    }


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    write_trees(small_trees(), d / TREES_FILE)
    (d / SCHEMA_FILE).write_text(json.dumps({"features": [{"name": f, "dtype": "float64"} for f in engine_features()]}))
    return d


def rewrite(d, **arrays):
    arrs = dict(np.load(d / TREES_FILE))
    arrs.update(arrays)
    write_trees(arrs, d / TREES_FILE)


def refused(d, array: str, words: str) -> str:
    with pytest.raises(ModelError) as e:
        load_tree_model(d)
    msg = str(e.value)
    assert msg.startswith(f"{d / TREES_FILE}: ") and f"'{array}'" in msg and words in msg, msg
    return msg


def test_the_small_model_loads_and_scores(model_dir):
    m = load_tree_model(model_dir)
    x = np.zeros(NF)
    assert m.n_trees == 2 and score_row(m, x) == pytest.approx(1 / (1 + math.exp(-(-0.25 + 0.75 + 0.125))))


@pytest.mark.parametrize("array, value, words", [
    ("format_version", np.array([1, 1]), "int64[2], expected one integer"),
    ("format_version", np.array([1]), "int64[1], expected one integer"),
    ("format_version", np.float64(1.0), "float64[], expected one integer"),
    ("base_score", np.array([], np.float64), "float64[0], expected one number"),
    ("n_features", np.array(str(NF)), "<U2[], expected one integer"),
    ("n_features", np.bool_(True), "bool[], expected one integer"),
    ("n_features", np.int64(0), "= 0: must be in [1,"),
    ("n_features", np.int64(1 << 40), "must be in [1,"),
    ("sigmoid_alpha", np.float64(np.nan), "= nan: must be finite and > 0"),
    ("sigmoid_alpha", np.float64(0.0), "= 0.0: must be finite and > 0"),
    ("base_score", np.float64(np.inf), "= inf: must be finite"),
    ("base_score", np.float64(-np.inf), "= -inf: must be finite"),
    ("postprocess", np.int64(7), "= 7: must be one of"),
    ("format_version", np.int64(TREES_FORMAT_VERSION + 1), "recompile the model"),
])
def test_a_scalar_of_the_wrong_shape_type_or_value_is_refused(model_dir, array, value, words):
    rewrite(model_dir, **{array: value})
    refused(model_dir, array, words)


@pytest.mark.parametrize("array", list(_SCALAR_KEYS))
@pytest.mark.parametrize("shape", ["empty", "two", "text"])
def test_every_scalar_must_be_one_number(model_dir, array, shape):
    """The class: any scalar of trees.npz stored as an empty array, two values or a string is refused."""
    value = {"empty": np.zeros(0), "two": np.ones(2, np.int64), "text": np.array("1")}[shape]
    rewrite(model_dir, **{array: value})
    refused(model_dir, array, "expected one")


@pytest.mark.parametrize("array", [*_NODE_KEYS, "tree_root"])
def test_every_node_array_must_have_its_dtype_and_shape(model_dir, array):
    a = small_trees()[array]
    for bad in (a.astype(np.complex128), a.reshape(2, -1), a[:1] if array == "tree_root" else a[:-1]):
        if array == "tree_root" and bad.ndim == 1 and bad.dtype == a.dtype:
            continue        # one tree fewer is a valid model
        rewrite(model_dir, **{array: bad})
        refused(model_dir, array, "expected")


@pytest.mark.parametrize("array, edit, words", [
    ("tree_root", lambda a: a.update(tree_root=np.zeros(0, np.int32)), "is empty: a model without trees"),
    ("tree_root", lambda a: a.update(tree_root=np.array([0, 99], np.int32)), "a tree_root outside [0, 8)"),
    ("node_default_left", lambda a: a["node_default_left"].__setitem__(5, 2), "node 5: default_left 2, not 0 or 1"),
    ("node_threshold", lambda a: a["node_threshold"].__setitem__(1, np.inf), "node 1: threshold inf is not finite"),
    ("node_threshold", lambda a: a["node_threshold"].__setitem__(0, np.nan), "node 0: threshold nan is not finite"),
    ("node_leaf_value", lambda a: a["node_leaf_value"].__setitem__(3, np.nan), "node 3: leaf value nan"),
    ("node_feature", lambda a: a["node_feature"].__setitem__(1, NF), f"node 1: split feature {NF} outside"),
    ("node_feature", lambda a: a["node_feature"].__setitem__(2, -7), "node 2: split feature -7 outside"),
    ("node_right", lambda a: a["node_right"].__setitem__(0, -3), "node 0: child or root index outside"),
    ("node_left", lambda a: a["node_left"].__setitem__(4, 2), "node 4: a leaf has a child"),
])
def test_a_node_value_the_scorer_cannot_use_is_refused(model_dir, array, edit, words):
    arrs = dict(np.load(model_dir / TREES_FILE))
    edit(arrs)
    write_trees(arrs, model_dir / TREES_FILE)
    refused(model_dir, array, words)


@pytest.mark.parametrize("doc, words", [
    ({"features": "f_a"}, "no feature list"),
    ({"features": [1, 2]}, "no feature list"),
    ([{"name": "f", "dtype": "float64"}], "no feature list"),
    ({"features": [{"name": None, "dtype": "float64"}]}, "position 0"),
])
def test_a_schema_of_the_wrong_shape_is_refused(model_dir, doc, words):
    (model_dir / SCHEMA_FILE).write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=words) as e:
        load_tree_model(model_dir)
    assert str(model_dir / SCHEMA_FILE) in str(e.value)
