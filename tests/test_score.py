"""engine/score/: the numba tree evaluator against a slow, obvious twin, and its loader's errors.

The twin walks each tree node by node in Python with xgboost's rule (float32 compare,
NaN goes the default way). Trees are random, unbalanced (shallow leaves exercise the
perfect layout's padding), and rows hit the awkward values: NaN, +-inf, exactly a
threshold, a float64 just below a threshold that rounds onto it in float32.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numba
import numpy as np
import pytest

from workbench.engine.score.kernels import prefetch_model, score_row, score_row_buf, score_rows
from workbench.engine.score.lanes import HAVE_VBMI
from workbench.engine.score.layouts import tree_model_from_arrays
from workbench.engine.score.model_folder import (SCHEMA_FILE, TREES_FILE, TREES_FORMAT_VERSION, engine_features,
                                                 load_tree_model)
from workbench.engine.score.tree_model import (LAYOUT_LANES, LAYOUT_PERFECT, LAYOUTS, PACKED_TAIL_MAX, POST_IDENTITY,
                                               POST_SIGMOID, TreeModel, empty_tree_model, lane_groups, scratch_items)
from workbench.errors import ModelError

N_FEATURES = 13


# ---------------------------------------------------------------------------------------------
# random trees in trees.npz form, and the twin
# ---------------------------------------------------------------------------------------------

def random_trees(rng, n_trees, max_depth, n_features=N_FEATURES, leaf_p=0.25):
    feat, thr, dl, left, right, val, roots = [], [], [], [], [], [], []

    def grow(depth):
        k = len(feat)
        feat.append(-1), thr.append(0.0), dl.append(0), left.append(-1), right.append(-1), val.append(0.0)
        if depth == max_depth or (depth > 0 and rng.random() < leaf_p):
            val[k] = float(np.float32(rng.normal(0, 0.3)))
            return k
        feat[k] = int(rng.integers(0, n_features))
        thr[k] = float(np.float32(rng.choice([rng.normal(0, 1), 0.0, -0.0, 1e-45, -1e-45, 3e38])))
        dl[k] = int(rng.integers(0, 2))
        lk = grow(depth + 1)
        rk = grow(depth + 1)
        left[k], right[k] = lk, rk
        return k

    for _ in range(n_trees):
        roots.append(grow(0))
    return {
        "node_feature": np.asarray(feat, np.int32), "node_threshold": np.asarray(thr, np.float32),
        "node_default_left": np.asarray(dl, np.int8), "node_left": np.asarray(left, np.int32),
        "node_right": np.asarray(right, np.int32), "node_leaf_value": np.asarray(val, np.float64),
        "tree_root": np.asarray(roots, np.int32), "format_version": np.int64(TREES_FORMAT_VERSION),
        "n_features": np.int64(n_features), "base_score": np.float64(-0.25), "sigmoid_alpha": np.float64(1.0),
        "postprocess": np.int64(POST_SIGMOID),
    }


def twin_margin(arrs, x):
    m = float(arrs["base_score"])
    for r in arrs["tree_root"]:
        k = int(r)
        while arrs["node_feature"][k] >= 0:
            with np.errstate(over="ignore"):
                v = np.float32(x[arrs["node_feature"][k]])
            if math.isnan(v):
                left = bool(arrs["node_default_left"][k])
            else:
                left = bool(v < arrs["node_threshold"][k])
            k = int(arrs["node_left"][k] if left else arrs["node_right"][k])
        m += float(arrs["node_leaf_value"][k])
    return m


def twin_score(arrs, x):
    m = twin_margin(arrs, x)
    if int(arrs["postprocess"]) == POST_SIGMOID:
        return 1.0 / (1.0 + math.exp(-float(arrs["sigmoid_alpha"]) * m))
    return m


def awkward_rows(rng, arrs, n):
    """Rows mixing normal values, NaN, +-inf, thresholds and their float64 neighbours."""
    X = rng.normal(0, 1, (n, N_FEATURES))
    thr = arrs["node_threshold"][arrs["node_feature"] >= 0].astype(np.float64)
    pick = rng.random(X.shape)
    ths = rng.choice(thr, X.shape)
    X = np.where(pick < 0.15, ths, X)                                           # exactly a threshold
    below = np.nextafter(ths, -np.inf)                                          # rounds up onto it in float32
    X = np.where((pick >= 0.15) & (pick < 0.25), below, X)
    X = np.where((pick >= 0.25) & (pick < 0.35), np.nan, X)
    X = np.where((pick >= 0.35) & (pick < 0.37), np.inf, X)
    X = np.where((pick >= 0.37) & (pick < 0.39), -np.inf, X)
    X = np.where((pick >= 0.39) & (pick < 0.40), 1e300, X)                      # overflows float32 to inf
    X = np.where((pick >= 0.40) & (pick < 0.42), -0.0, X)                       # -0 == +0 for a compare
    X = np.where((pick >= 0.42) & (pick < 0.43), 1e-45, X)                      # a float32 subnormal
    X[0] = np.nan                                                               # everything missing
    return X


@pytest.mark.parametrize("seed,n_trees,depth", [(1, 1, 3), (2, 7, 4), (3, 8, 6), (4, 29, 6), (5, 40, 1), (6, 17, 9),
                                                (7, 130, 6), (8, 64, 5), (9, 80, 6), (10, 81, 6), (11, 203, 6)])
def test_score_row_matches_twin_every_layout(seed, n_trees, depth):
    """Each layout scores every awkward row as the twin does. Lanes: full 64-tree groups, a
    partial last group (29, 40, 81 trees), packed 8-tree groups after the full ones (1, 7, 8,
    130, 80 = 64 + two packed, 203 = 192 + a partial packed), trees shallower than 6 padded."""
    rng = np.random.default_rng(seed)
    arrs = random_trees(rng, n_trees, depth)
    X = awkward_rows(rng, arrs, 300)
    want = np.array([twin_score(arrs, x) for x in X])
    layouts = ("perfect", "pointer", "lanes") if depth <= 6 else ("perfect", "pointer")
    if depth > 6:
        with pytest.raises(ModelError, match="depth 9"):
            tree_model_from_arrays(arrs, layout="lanes")
    for layout in layouts:
        m = tree_model_from_arrays(arrs, layout=layout)
        assert m.layout == LAYOUTS[layout] and (m.depth >= 0) == (layout != "pointer")
        got = np.array([score_row(m, x) for x in X])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=layout)
        out = score_rows(m, X, np.empty(len(X)))
        np.testing.assert_array_equal(out, got)
        xx = np.empty(scratch_items(m.n_features), np.int32)
        assert score_row_buf(m, X[1], xx) == got[1]
        xf = np.empty(scratch_items(m.n_features), np.float32)          # a float32 scratch works the same
        assert [score_row_buf(m, x, xf) for x in X[:50]] == got[:50].tolist()


def test_float32_rounding_decides_the_branch():
    """x just below a threshold in float64 rounds ONTO it in float32: not < threshold, so right."""
    t = np.float32(0.1)
    arrs = {
        "node_feature": np.array([0, -1, -1], np.int32), "node_threshold": np.array([t, 0, 0], np.float32),
        "node_default_left": np.array([1, 0, 0], np.int8), "node_left": np.array([1, -1, -1], np.int32),
        "node_right": np.array([2, -1, -1], np.int32), "node_leaf_value": np.array([0, -1.0, 1.0]),
        "tree_root": np.array([0], np.int32), "format_version": np.int64(TREES_FORMAT_VERSION),
        "n_features": np.int64(1), "base_score": np.float64(0.0), "sigmoid_alpha": np.float64(1.0),
        "postprocess": np.int64(POST_IDENTITY),
    }
    x_below = np.nextafter(np.float64(t), -np.inf)
    assert x_below < np.float64(t) and np.float32(x_below) == t
    for layout in ("perfect", "pointer", "lanes"):
        m = tree_model_from_arrays(arrs, layout=layout)
        assert score_row(m, np.array([x_below])) == 1.0          # right, as xgboost
        assert score_row(m, np.array([np.float64(np.nextafter(t, np.float32(-1)))])) == -1.0
        assert score_row(m, np.array([np.nan])) == -1.0          # default left
        assert score_row(m, np.array([np.inf])) == 1.0
        assert score_row(m, np.array([-np.inf])) == -1.0


def test_empty_model_scores_nan_with_the_same_numba_type(tmp_path):
    e = empty_tree_model(N_FEATURES)
    assert math.isnan(score_row(e, np.zeros(N_FEATURES)))
    arrs = random_trees(np.random.default_rng(0), 3, 4)
    m = tree_model_from_arrays(arrs)
    assert numba.typeof(e) == numba.typeof(m)
    assert numba.typeof(m) == numba.typeof(tree_model_from_arrays(arrs, layout="pointer"))
    # one compiled specialisation serves both
    before = len(score_row.signatures)
    score_row(m, np.zeros(N_FEATURES))
    score_row(e, np.zeros(N_FEATURES))
    assert len(score_row.signatures) - before <= 1


def test_single_leaf_trees():
    """Trees of depth 0 (a lone leaf) give depth-0 perfect layout: margin = base + leaves."""
    arrs = {
        "node_feature": np.array([-1, -1], np.int32), "node_threshold": np.zeros(2, np.float32),
        "node_default_left": np.zeros(2, np.int8), "node_left": np.full(2, -1, np.int32),
        "node_right": np.full(2, -1, np.int32), "node_leaf_value": np.array([0.5, -0.125]),
        "tree_root": np.array([0, 1], np.int32), "format_version": np.int64(TREES_FORMAT_VERSION),
        "n_features": np.int64(2), "base_score": np.float64(1.0), "sigmoid_alpha": np.float64(1.0),
        "postprocess": np.int64(POST_IDENTITY),
    }
    m = tree_model_from_arrays(arrs, layout="perfect")
    assert m.depth == 0
    assert score_row(m, np.array([np.nan, 3.0])) == 1.375
    assert score_row(tree_model_from_arrays(arrs, layout="lanes"), np.array([np.nan, 3.0])) == 1.375


def test_lane_groups_pack_a_short_tail():
    """Past the last full 64-tree group, up to PACKED_TAIL_MAX trees go in packed groups of 8
    (8 node masks each instead of 63); a longer tail takes one more full group."""
    assert lane_groups(0) == (0, 0)
    assert lane_groups(1) == (0, 1)
    assert lane_groups(PACKED_TAIL_MAX) == (0, PACKED_TAIL_MAX // 8)
    assert lane_groups(PACKED_TAIL_MAX + 1) == (1, 0)
    assert lane_groups(64) == (1, 0)
    assert lane_groups(200) == (3, 1)
    assert lane_groups(128 + PACKED_TAIL_MAX + 1) == (3, 0)


def test_lane_ranks_at_the_full_table():
    """A feature with 255 distinct thresholds (the most the lane layout ranks, one byte) scores as
    the twin at every threshold, just below each, and at +-inf: the rank count's block tops and
    its never-counted last entry hold at the top of the table."""
    rng = np.random.default_rng(12)
    arrs = random_trees(rng, 70, 6, leaf_p=0.0)
    split = np.flatnonzero(arrs["node_feature"] >= 0)
    cuts = np.sort(rng.normal(0, 1, 255).astype(np.float32))
    arrs["node_feature"][arrs["node_feature"] == 2] = 3
    arrs["node_feature"][split[: 4 * 255]] = 2
    arrs["node_threshold"][split[: 4 * 255]] = np.tile(cuts, 4)
    feat2 = arrs["node_threshold"][arrs["node_feature"] == 2]
    assert len(np.unique(feat2)) == 255
    m = tree_model_from_arrays(arrs, layout="lanes")
    vals = np.concatenate([cuts, np.nextafter(cuts, -np.inf), [np.inf, -np.inf, np.nan, 0.0]]).astype(np.float64)
    X = awkward_rows(rng, arrs, len(vals))
    X[:, 2] = vals
    np.testing.assert_allclose(score_rows(m, X, np.empty(len(X))), [twin_score(arrs, x) for x in X],
                               rtol=0, atol=1e-12)


def test_lanes_refuse_a_short_scratch():
    m = tree_model_from_arrays(random_trees(np.random.default_rng(2), 5, 3), layout="lanes")
    with pytest.raises(ValueError, match="scratch smaller"):
        score_row_buf(m, np.zeros(N_FEATURES), np.empty(2 * N_FEATURES, np.int32))


def test_auto_layout_takes_lanes_only_where_they_fit():
    """'auto' picks the lane layout on a VBMI host when the trees fit it; a feature with more
    than 255 distinct thresholds (xgboost's exact method can make those) keeps the perfect layout,
    and asking for lanes names the feature."""
    rng = np.random.default_rng(11)
    arrs = random_trees(rng, 40, 6)
    assert tree_model_from_arrays(arrs).layout == (LAYOUT_LANES if HAVE_VBMI else LAYOUT_PERFECT)
    many = random_trees(rng, 200, 6, leaf_p=0.0)
    split = np.flatnonzero(many["node_feature"] >= 0)
    many["node_feature"][split] = 3
    many["node_threshold"][split] = np.arange(len(split), dtype=np.float32)
    assert tree_model_from_arrays(many).layout == LAYOUT_PERFECT
    with pytest.raises(ModelError, match="feature 3 has 12600 distinct thresholds"):
        tree_model_from_arrays(many, layout="lanes")
    X = awkward_rows(rng, many, 50)
    np.testing.assert_allclose(score_rows(tree_model_from_arrays(many), X, np.empty(len(X))),
                               [twin_score(many, x) for x in X], rtol=0, atol=1e-12)


def test_lanes_portable_lookup_without_vbmi(tmp_path):
    """On a target without AVX-512 VBMI (numba pinned to x86-64-v3 here) the lane kernel is
    built from portable IR and still scores exactly as the twin."""
    import subprocess
    import sys
    code = (
        "import sys, numpy as np\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from test_score import random_trees, awkward_rows, twin_score\n"
        "from workbench.engine.score.lanes import HAVE_VBMI\n"
        "from workbench.engine.score.kernels import score_rows\n"
        "from workbench.engine.score.layouts import tree_model_from_arrays\n"
        "assert not HAVE_VBMI\n"
        "rng = np.random.default_rng(3)\n"
        "arrs = random_trees(rng, 70, 6)\n"
        "X = awkward_rows(rng, arrs, 200)\n"
        "got = score_rows(tree_model_from_arrays(arrs, layout='lanes'), X, np.empty(len(X)))\n"
        "want = np.array([twin_score(arrs, x) for x in X])\n"
        "assert np.max(np.abs(got - want)) < 1e-12, np.max(np.abs(got - want))\n"
        "print('ok')\n")
    env = {**__import__("os").environ, "NUMBA_CPU_NAME": "x86-64-v3", "NUMBA_CPU_FEATURES": "",
           "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------
# loading: schema check and damaged files
# ---------------------------------------------------------------------------------------------

def write_model(d, arrs, features):
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / TREES_FILE, **arrs)
    (d / SCHEMA_FILE).write_text(json.dumps({"features": [{"name": f, "dtype": "float64"} for f in features]}))
    return d


@pytest.fixture
def model_dir(tmp_path):
    arrs = random_trees(np.random.default_rng(9), 12, 5)
    return write_model(tmp_path / "m", arrs, engine_features())


def test_load_tree_model_round_trip(model_dir):
    m = load_tree_model(model_dir)
    assert isinstance(m, TreeModel) and m.n_trees == 12 and m.n_features == len(engine_features())
    arrs = dict(np.load(model_dir / TREES_FILE))
    x = np.linspace(-1, 1, m.n_features)
    assert abs(score_row(m, x) - twin_score(arrs, x)) < 1e-12


def test_schema_mismatch_names_first_differing_feature(model_dir):
    feats = list(engine_features())
    feats[3], feats[4] = feats[4], feats[3]
    (model_dir / SCHEMA_FILE).write_text(json.dumps({"features": [{"name": f, "dtype": "float64"} for f in feats]}))
    with pytest.raises(ModelError) as e:
        load_tree_model(model_dir)
    msg = str(e.value)
    assert "position 3" in msg and repr(engine_features()[3]) in msg and repr(feats[3]) in msg
    assert str(model_dir / SCHEMA_FILE) in msg


def test_schema_shorter_than_engine(model_dir):
    feats = list(engine_features())[:-1]
    (model_dir / SCHEMA_FILE).write_text(json.dumps({"features": [{"name": f, "dtype": "float64"} for f in feats]}))
    with pytest.raises(ModelError, match=f"position {len(feats)}.*{engine_features()[-1]}.*model has fewer"):
        load_tree_model(model_dir)


@pytest.mark.parametrize("damage,match", [
    (lambda d: (d / TREES_FILE).write_bytes(b"not a zip at all"), "not a readable .npz"),
    (lambda d: (d / TREES_FILE).write_bytes((d / TREES_FILE).read_bytes()[:200]), "not a readable .npz"),
    (lambda d: (d / TREES_FILE).unlink(), "missing: run `workbench compile`"),
    (lambda d: (d / SCHEMA_FILE).write_text("{not json"), "not valid JSON"),
    (lambda d: (d / SCHEMA_FILE).write_text('{"names": []}'), "no feature list"),
    (lambda d: (d / SCHEMA_FILE).unlink(), "missing: the model folder has no feature schema"),
])
def test_damaged_files_fail_naming_the_file(model_dir, damage, match):
    damage(model_dir)
    with pytest.raises(ModelError, match=match) as e:
        load_tree_model(model_dir)
    assert str(model_dir) in str(e.value)


@pytest.mark.parametrize("edit,match", [
    (lambda a: a.pop("node_left"), "'node_left' missing"),
    (lambda a: a.update(node_threshold=a["node_threshold"].astype(np.float64)), "'node_threshold': float64"),
    (lambda a: a.update(node_feature=np.where(a["node_feature"] >= 0, 99, -1).astype(np.int32)),
     "split feature 99 outside"),
    (lambda a: a.update(node_right=np.where(a["node_feature"] >= 0, 10**6, -1).astype(np.int32)),
     "child or root index outside"),
    (lambda a: a.update(format_version=np.int64(TREES_FORMAT_VERSION + 1)), "format_version"),
    (lambda a: a.update(node_leaf_value=a["node_leaf_value"] + 1e-12), "not a float32"),
    (lambda a: a.update(node_left=np.where(a["node_feature"] >= 0, 0, -1).astype(np.int32)),
     "reached twice"),
])
def test_corrupted_arrays_fail_clearly(model_dir, edit, match):
    arrs = dict(np.load(model_dir / TREES_FILE))
    edit(arrs)
    np.savez(model_dir / TREES_FILE, **arrs)
    with pytest.raises(ModelError, match=match) as e:
        load_tree_model(model_dir)
    assert str(model_dir / TREES_FILE) in str(e.value)


def test_not_a_folder(tmp_path):
    with pytest.raises(ModelError, match="not a model folder"):
        load_tree_model(tmp_path / "nope")


def test_npz_members_are_checked_not_pickled(model_dir):
    """An object array (pickle) in the npz is refused, not executed."""
    with zipfile.ZipFile(model_dir / TREES_FILE, "a") as z:
        z.writestr("evil.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
                   + b" " * 53 + b"\n" + b"\x80\x04N.")
    with pytest.raises(ModelError, match="not a readable .npz"):
        load_tree_model(model_dir)


def test_prefetch_model_touches_nothing_it_should_not():
    """prefetch_model (called by process_batch before the detectors) compiles for every layout
    and the empty model, changes no score and reads no byte outside the arrays (prefetches only)."""
    @numba.njit(_nrt=False)
    def prefetch_then_score(m, x, xx):
        prefetch_model(m)
        return score_row_buf(m, x, xx)

    rng = np.random.default_rng(21)
    arrs = random_trees(rng, 70, 6)
    x = awkward_rows(rng, arrs, 3)[2]
    xx = np.empty(scratch_items(N_FEATURES), np.int32)
    for layout in ("lanes", "perfect", "pointer"):
        m = tree_model_from_arrays(arrs, layout=layout)
        assert prefetch_then_score(m, x, xx) == score_row(m, x)
    assert math.isnan(prefetch_then_score(empty_tree_model(N_FEATURES), x, xx))
