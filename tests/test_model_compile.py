"""model/compile.py: xgboost, TL2cgen's Predictor, the .so called directly and the numba evaluator agree.

A real model is trained on synthetic run folders (small, so the test stays well under a
minute on two cores), compiled with TL2cgen, and scored four ways on the validation rows
and on awkward rows (all missing, exact thresholds, their float64 neighbours, infinities).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from workbench.cli import app
from workbench.engine.score.kernels import score_row
from workbench.engine.score.lanes import LANES_DEPTH
from workbench.engine.score.model_folder import TREES_FILE, engine_features, load_tree_model
from workbench.engine.score.tree_model import LAYOUT_LANES
from workbench.errors import ModelError, ParityError
from workbench.model.compile import (PARITY_TOL, NativePredictor, compile_model, parity_check, trees_from_treelite,
                                     load_treelite)
from workbench.model.labels import LabelConfig
from workbench.model.train import TrainConfig, train_runs
from workbench.synth.run_folder import TS0_NS, synthetic_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return [synthetic_run(root / "a", seconds=20, seed=5),
            synthetic_run(root / "b", seconds=20, seed=6, ts0_ns=TS0_NS + 20 * 10**9)]


@pytest.fixture(scope="module")
def compiled(runs, tmp_path_factory):
    d = tmp_path_factory.mktemp("model") / "m"
    train_runs(runs, d, LabelConfig(), TrainConfig(n_estimators=30, max_depth=5, seed=2))
    res = compile_model(d, nthread=2)
    return d, res


def edge_rows(d, n=400, seed=0):
    """Validation-like rows pushed onto the model's own thresholds, NaN and infinities."""
    rng = np.random.default_rng(seed)
    X = np.load(d / "validation.npz")["X"][:n].copy()
    arrs = dict(np.load(d / TREES_FILE))
    f, t = arrs["node_feature"], arrs["node_threshold"]
    split = np.flatnonzero(f >= 0)
    for i in range(len(X)):
        for _ in range(4):
            k = rng.choice(split)
            v = np.float64(t[k])
            X[i, f[k]] = rng.choice([v, np.nextafter(v, -np.inf), np.nextafter(v, np.inf), np.nan, np.inf, -np.inf])
    X[0] = np.nan
    return X


def test_compile_writes_library_and_arrays_and_agrees(compiled):
    d, res = compiled
    assert (d / "predictor.so").is_file() and (d / TREES_FILE).is_file() and (d / "compile.json").is_file()
    assert res.parity.ok and res.parity.rows == len(np.load(d / "validation.npz")["X"]) > 100
    # every pair of xgboost, TL2cgen's Predictor, the .so, the engine's layout (and the scalar
    # perfect layout beside it where the engine takes the lane layout)
    n = 5 if load_tree_model(res.model_dir).layout == LAYOUT_LANES else 4
    assert len(res.parity.max_abs_diff) == n * (n - 1) // 2
    assert max(res.parity.max_abs_diff.values()) < PARITY_TOL
    assert res.params["quantize"] == 0 and res.params["parallel_comp"] >= 1 and "-march=native" in res.options
    n_split = int((np.load(d / TREES_FILE)["node_feature"] >= 0).sum())
    assert n_split // 2 < res.parity.probe_rows <= n_split + 1 and max(res.parity.probe_max_abs_diff.values()) < PARITY_TOL
    doc = json.loads((d / "compile.json").read_text())
    assert doc["parity"]["ok"] is True and doc["n_trees"] == 30


def test_parity_on_awkward_rows(compiled):
    d, _ = compiled
    p = parity_check(d, edge_rows(d))
    assert p.ok, p.max_abs_diff


def test_engine_loads_the_compiled_model(compiled):
    d, _ = compiled
    m = load_tree_model(d)
    assert m.n_trees == 30 and m.n_features == len(engine_features())
    assert m.depth == (LANES_DEPTH if m.layout == LAYOUT_LANES else 5)      # the lane layout pads to 6 levels
    assert load_tree_model(d, layout="perfect").depth == 5
    import xgboost as xgb
    X = np.load(d / "validation.npz")["X"][:50]
    want = xgb.Booster(model_file=str(d / "model.json")).inplace_predict(X)
    got = np.array([score_row(m, x) for x in X])
    assert np.max(np.abs(got - want)) < PARITY_TOL
    so = NativePredictor(d / "predictor.so")
    assert so.n_features == m.n_features
    assert abs(so.predict_row(X[3]) - got[3]) < PARITY_TOL
    assert abs(so.predict_row(X[3]) - got[3]) < PARITY_TOL          # the call zeroes its accumulator


def test_tampered_tree_arrays_break_parity(compiled, tmp_path):
    d, _ = compiled
    arrs = trees_from_treelite(load_treelite(d))
    leaf = np.flatnonzero(arrs["node_feature"] < 0)[0]
    arrs["node_leaf_value"][leaf] += 0.25
    from workbench.engine.score.layouts import tree_model_from_arrays
    p = parity_check(d, np.load(d / "validation.npz")["X"], tree_model=tree_model_from_arrays(arrs))
    assert not p.ok
    assert p.max_abs_diff["xgboost vs numba_score_row"] > 1e-3
    assert p.max_abs_diff["xgboost vs native_so"] < PARITY_TOL


def test_parity_failure_fails_the_compile(compiled, tmp_path):
    d, _ = compiled
    with pytest.raises(ParityError, match="scorers disagree"):
        compile_model(d, tol=1e-12, nthread=2)              # float32 sums differ by ~1e-8 > 1e-12
    assert json.loads((d / "compile.json").read_text())["parity"]["ok"] is False
    compile_model(d, nthread=2)                              # leave the folder good for the other tests


def test_quantize_threshold_table_precision_is_caught(compiled):
    """TL2cgen 1.0.0 prints quantize.c's thresholds with 8 significant digits: where that moves a
    float32 threshold, an input exactly on it branches differently, and the probes must say so."""
    d, _ = compiled
    t = np.load(d / TREES_FILE)["node_threshold"][np.load(d / TREES_FILE)["node_feature"] >= 0]
    moved = [x for x in np.unique(t) if np.float32(float(f"{float(x):.8g}")) > x]   # rounded up: x goes left
    if moved:
        with pytest.raises(ParityError, match="threshold probes.*quantize"):
            compile_model(d, quantize=True, nthread=2)
    else:
        assert compile_model(d, quantize=True, nthread=2).parity.ok
    compile_model(d, nthread=2)
    assert moved, "the synthetic model has no threshold that 8 digits move (the test above checked nothing new)"


def test_corrupted_booster_fails_naming_the_file(runs, tmp_path):
    d = tmp_path / "m"
    train_runs(runs, d, LabelConfig(), TrainConfig(n_estimators=3, max_depth=2))
    (d / "model.json").write_text('{"learner": {"broken": ')
    with pytest.raises(ModelError, match="model.json: Treelite cannot read"):
        compile_model(d)
    (d / "model.json").unlink()
    with pytest.raises(ModelError, match="model.json: missing"):
        compile_model(d)


def test_schema_not_matching_the_engine_fails_clearly(runs, tmp_path):
    d = tmp_path / "m"
    train_runs(runs, d, LabelConfig(), TrainConfig(n_estimators=3, max_depth=2))
    schema = json.loads((d / "schema.json").read_text())
    schema["features"][2]["name"] = "f_something_else"
    (d / "schema.json").write_text(json.dumps(schema))
    with pytest.raises(ModelError, match="position 2: expected 'f_victim_slippage', found 'f_something_else'"):
        compile_model(d, nthread=2)


def test_cli_train_and_compile(runs, tmp_path):
    d = tmp_path / "cli_model"
    r = CliRunner().invoke(app, ["train", *map(str, runs), "--out", str(d), "--trees", "8", "--depth", "3",
                                 "--latency", "decision=normal:50us:10us,seed=4", "--early-stopping", "3"])
    assert r.exit_code == 0, r.output
    assert "validation AUC" in r.output and "profit-only baseline AUC" in r.output and "calibration" in r.output
    for want in ("validation log loss", "validation Brier score", "(base rate 0.", "base rate (training win share)",
                 "beats the baselines", "early stopping"):
        assert want in r.output, (want, r.output)
    r = CliRunner().invoke(app, ["compile", str(d), "--nthread", "2"])
    assert r.exit_code == 0, r.output
    assert "parity:" in r.output and "threshold probes" in r.output and "numba_score_row" in r.output
    assert "NO" not in r.output
    r = CliRunner().invoke(app, ["compile", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "schema.json" in r.output
    r = CliRunner().invoke(app, ["train", *map(str, runs), "--out", str(d), "--latency", "feed=soon"])
    assert r.exit_code == 2 and "soon" in r.output


def test_cli_compile_prints_no_warnings(compiled, tmp_path):
    """Issue 17 item 6: run as a user runs it (a process: TL2cgen's Treelite copy writes to file
    descriptor 2, which no Python capture sees), with a feature missing in every validation row
    (what a capture without slots gives): stderr is empty and stdout holds only the summary."""
    import shutil
    import subprocess
    import sys
    d = tmp_path / "m"
    shutil.copytree(compiled[0], d)
    with np.load(d / "validation.npz") as z:
        v = {k: z[k] for k in z.files}
    v["X"][:, 3] = np.nan
    np.savez(d / "validation.npz", **v)
    p = subprocess.run([sys.executable, "-W", "default", "-m", "workbench.cli", "compile", str(d), "--nthread", "2"],
                       capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "COLUMNS": "200"})
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stderr == "", p.stderr
    for word in ("Warning", "Treelite version", "Parallel compilation", "All-NaN"):
        assert word not in p.stdout, p.stdout
    assert p.stdout.startswith("compiled ") and "parity:" in p.stdout


def test_only_the_understood_tl2cgen_notices_are_dropped():
    from workbench.model.compile import _drop_understood_notices
    info = "[06:57:28] /project/src/compiler/ast/split.cc:35: Parallel compilation enabled; member trees will be " \
           "divided into 8 translation units.\n"
    newer = ("[06:57:11] /tmp/x/libbuild/_deps/treelite-src/src/serializer.cc:202: The model you are loading "
             "originated from a newer Treelite version; some functionalities may be unavailable.\n"
             "Currently running Treelite version {}\nThe model checkpoint was generated from Treelite version {}\n")
    out, err = _drop_understood_notices(info + "gcc: note\n", newer.format("4.1.2", "4.8.1") + "other\n")
    assert out == "gcc: note\n" and err == "other\n"
    across_majors = newer.format("4.1.2", "5.0.0")                  # not understood: shown
    assert _drop_understood_notices("", across_majors) == ("", across_majors)


def test_threshold_probes_with_a_feature_missing_everywhere_do_not_warn(compiled):
    import warnings
    d, _ = compiled
    X = np.load(d / "validation.npz")["X"][:200].copy()
    X[:, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parity_check(d, X).ok


@pytest.mark.slow
def test_parity_200_trees_depth_6(runs, tmp_path):
    """The benchmark's size: 200 trees of depth 6."""
    d = tmp_path / "big"
    train_runs(runs, d, LabelConfig(), TrainConfig(n_estimators=200, max_depth=6, seed=3))
    res = compile_model(d)
    assert res.parity.ok and res.n_trees == 200 and math.isfinite(res.compile_s)
    assert parity_check(d, edge_rows(d, 300, 1)).ok
