"""model/train.py: the time split leaks nothing, metrics equal their definitions, the model folder is complete."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from workbench.engine.score.model_folder import engine_features
from workbench.errors import ModelError
from workbench.model.labels import LabelConfig, read_labels
from workbench.model.train import (TrainConfig, base_rate_scores, beats_baselines, brier_score, calibration_error,
                                   calibration_table, log_loss, roc_auc, time_split, train_frame,
                                   train_runs)
from workbench.synth.run_folder import TS0_NS, synthetic_run


@pytest.mark.parametrize("seed", range(6))
def test_time_split_has_no_leakage(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 3000))
    ts = rng.integers(0, max(2, n // 3), n)          # many ties
    if len(np.unique(ts)) < 2:
        ts[0] = ts.max() + 1
    tr, va, cut = time_split(ts, 0.7)
    assert tr.any() and va.any()
    assert ts[tr].max() < ts[va].min() == cut
    assert not (tr & va).any() and (tr | va).all()
    # a timestamp never straddles the cut
    assert set(ts[tr]).isdisjoint(set(ts[va]))
    # the cut is where 70 % of the rows lie before it (up to ties at the cut)
    k = int(round(0.7 * n))
    assert np.sum(ts < cut) <= max(k, 1)


def test_time_split_refuses_a_single_timestamp():
    with pytest.raises(ModelError, match="same timestamp"):
        time_split(np.full(10, 5), 0.7)


def test_roc_auc_is_the_pairwise_probability():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)        # ties on purpose
    s[:5] = np.nan
    s_eff = np.where(np.isnan(s), -np.inf, s)
    pos, neg = s_eff[y == 1], s_eff[y == 0]
    brute = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg)])
    assert abs(roc_auc(y, s) - brute) < 1e-12
    assert np.isnan(roc_auc(np.ones(5), np.arange(5)))


def test_log_loss_and_calibration():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.1, 0.8, 0.6, 0.3])
    assert abs(log_loss(y, p) - (-(np.log(0.9) + np.log(0.8) + np.log(0.6) + np.log(0.7)) / 4)) < 1e-12
    rows = calibration_table(np.r_[np.zeros(50), np.ones(50)], np.linspace(0, 1, 100), bins=10)
    assert [r["rows"] for r in rows] == [10] * 10
    assert rows[0]["observed_rate"] == 0.0 and rows[-1]["observed_rate"] == 1.0
    assert all(a["p_max"] <= b["p_min"] for a, b in zip(rows, rows[1:]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    runs = [synthetic_run(root / "run1", seconds=30, seed=1),
            synthetic_run(root / "run2", seconds=30, seed=2, ts0_ns=TS0_NS + 30 * 10**9)]
    cfg = TrainConfig(n_estimators=40, max_depth=4, seed=1)
    res = train_runs(runs, root / "model", LabelConfig(), cfg)
    return root, res


def test_train_writes_a_complete_model_folder(trained):
    root, res = trained
    d = root / "model"
    for f in ("model.json", "schema.json", "metrics.json", "validation.npz", "labels.parquet"):
        assert (d / f).is_file(), f
    schema = json.loads((d / "schema.json").read_text())
    assert [f["name"] for f in schema["features"]] == list(engine_features())
    assert {f["dtype"] for f in schema["features"]} == {"float64"}
    m = json.loads((d / "metrics.json").read_text())
    for k in ("auc", "log_loss", "baseline_auc", "calibration", "importance_gain", "label_config", "cut_ns"):
        assert k in m
    assert list(m["importance_gain"]) and set(m["importance_gain"]) == set(engine_features())
    assert m["label_config"]["latency"]["submission"]["value_ns"] == 2e6


def test_validation_is_after_training_and_matches_the_files(trained):
    root, res = trained
    d = root / "model"
    df, cfg = read_labels(d / "labels.parquet")
    assert cfg == LabelConfig()
    tr, va = df[df.split == "train"], df[df.split == "validation"]
    assert tr.ts_ns.max() < va.ts_ns.min() == res.cut_ns
    assert len(tr) == res.rows["train"] and len(va) == res.rows["validation"]
    z = np.load(d / "validation.npz")
    assert len(z["X"]) == len(va) and (z["ts_ns"] >= res.cut_ns).all()
    np.testing.assert_array_equal(z["y"], va.sort_values("ts_ns", kind="stable").won.to_numpy())


def test_model_beats_the_profit_only_baseline(trained):
    _, res = trained
    assert 0.6 < res.auc <= 1.0
    # the baseline is a booster on profit alone (it learns that big prizes draw rivals); the
    # model must add what only the other features tell (sandwich or not, the victim's fee)
    assert res.auc > res.baseline_auc + 0.03 and res.auc > res.profit_score_auc + 0.1 and res.beats_baseline
    assert 0 < res.log_loss < np.log(2)               # better than a coin


def test_brier_and_base_rate_scores_by_hand():
    y = np.array([1, 0, 1, 1])
    p = np.array([0.9, 0.2, 0.6, 0.7])
    assert abs(brier_score(y, p) - (0.01 + 0.04 + 0.16 + 0.09) / 4) < 1e-12
    b = base_rate_scores([1, 0, 0, 0], y)          # the TRAINING share, 0.25, predicted for every row
    assert b["base_rate"] == 0.25
    assert abs(b["base_log_loss"] - -(3 * np.log(0.25) + np.log(0.75)) / 4) < 1e-12
    assert abs(b["base_brier"] - (3 * 0.75 ** 2 + 0.25 ** 2) / 4) < 1e-12


def test_calibration_error_by_hand():
    table = [{"rows": 30, "mean_predicted": 0.92, "observed_rate": 0.54},
             {"rows": 10, "mean_predicted": 0.10, "observed_rate": 0.10}]
    assert abs(calibration_error(table) - 30 * 0.38 / 40) < 1e-12
    y = np.array([0, 1] * 50)
    assert calibration_error(calibration_table(y, np.full(100, 0.5))) == 0.0
    assert np.isnan(calibration_error([]))


def test_ranking_well_is_not_beating_the_base_rate():
    """Issue 17 item 5: every win ranked above every loss (AUC 1), but the losses predicted at
    0.9 and above: worse log loss and Brier than the constant 0.5, so the model does not beat it."""
    y = np.array([0] * 50 + [1] * 50)
    p = np.concatenate([np.linspace(0.90, 0.95, 50), np.linspace(0.96, 0.999, 50)])
    auc, ll, br = roc_auc(y, p), log_loss(y, p), brier_score(y, p)
    base = base_rate_scores(y, y)
    assert auc == 1.0 and ll > base["base_log_loss"] > 0.69 and br > base["base_brier"] == 0.25
    beats, why = beats_baselines(auc, ll, br, 0.6, 0.5, base["base_log_loss"], base["base_brier"])
    assert not beats and len(why) == 2 and "log loss" in why[0] and "Brier" in why[1], why
    # calibrated probabilities with the same order do beat it
    q = np.concatenate([np.linspace(0.05, 0.3, 50), np.linspace(0.7, 0.95, 50)])
    assert beats_baselines(roc_auc(y, q), log_loss(y, q), brier_score(y, q), 0.6, 0.5,
                           base["base_log_loss"], base["base_brier"]) == (True, [])
    assert not beats_baselines(0.9, float("nan"), 0.1, 0.6, 0.5, 0.69, 0.25)[0]      # NaN beats nothing


def test_overconfident_model_does_not_beat_and_early_stopping_fixes_it(trained, tmp_path):
    """The synthetic runs, a deep fast booster: its AUC passes the profit baselines while its
    probabilities are worse than the base rate (the issue's small run); early stopping on the
    latest training rows keeps the best round, never looking at the validation period."""
    import xgboost as xgb
    root, _ = trained
    runs = [root / "run1", root / "run2"]
    wild = TrainConfig(n_estimators=300, max_depth=8, learning_rate=0.3, seed=1)
    res = train_runs(runs, tmp_path / "wild", LabelConfig(), wild)
    assert res.auc > res.baseline_auc and res.auc > res.profit_score_auc          # "yes" by AUC alone
    assert res.log_loss > res.base_log_loss and not res.beats_baseline
    assert any("log loss" in w for w in res.not_beaten_because) and res.early_stopping == {}
    m = json.loads((tmp_path / "wild" / "metrics.json").read_text())
    for k in ("brier", "base_rate", "base_log_loss", "base_brier", "not_beaten_because", "beats_baseline"):
        assert k in m, k
    stopped = train_runs(runs, tmp_path / "stopped", LabelConfig(),
                         TrainConfig(n_estimators=300, max_depth=8, learning_rate=0.3, seed=1, early_stopping_rounds=15))
    es = stopped.early_stopping
    assert stopped.beats_baseline and stopped.log_loss < stopped.base_log_loss, stopped.not_beaten_because
    assert es["trees_kept"] < es["rounds_run"] < 300 and es["watched_rows"] + es["fit_rows"] == stopped.rows["train"]
    assert es["watched_from_ns"] < stopped.cut_ns                   # the watched rows are training rows
    assert stopped.calibration_error < res.calibration_error         # its probabilities come truer
    saved = xgb.Booster(model_file=str(tmp_path / "stopped" / "model.json"))
    assert saved.num_boosted_rounds() == es["trees_kept"]           # the best round is what compile gets
    with pytest.raises(ValueError, match="--early-stopping -1"):
        train_runs(runs, tmp_path / "bad", LabelConfig(), TrainConfig(early_stopping_rounds=-1))


def test_one_class_labels_fail_clearly(tmp_path):
    run = synthetic_run(tmp_path / "run", seconds=5, seed=3)
    from workbench.model.labels import label_run
    df = label_run(run)
    df["won"] = 0
    with pytest.raises(ModelError, match="training period has only lost rows"):
        train_frame(df, tmp_path / "m", LabelConfig(), TrainConfig(n_estimators=2))


def test_missing_feature_column_fails_clearly(tmp_path):
    run = synthetic_run(tmp_path / "run", seconds=5, seed=4)
    from workbench.model.labels import label_run
    df = label_run(run).drop(columns=["f_pool_swaps_100ms"])
    with pytest.raises(ModelError, match=r"feature columns \['f_pool_swaps_100ms'\] missing"):
        train_frame(df, tmp_path / "m", LabelConfig(), TrainConfig(n_estimators=2))


def test_replayed_prize_capture_trains_a_model_that_beats_profit(tmp_path):
    """End to end on packets: a market capture whose rivals follow the prize (``--competition
    prize``), replayed by the engine, labelled under the default latency model, trained: the
    model must beat the booster on profit alone on the later validation period."""
    from workbench.config import Settings
    from workbench.runner import replay
    from workbench.synth.generate import generate_capture
    cap = tmp_path / "prize.pcapng"
    generate_capture(cap, seconds=60, tps=3000, seed=5, market=True, opportunities=25, competition="prize")
    market = str(cap) + ".market"
    replay(cap, tmp_path / "run", Settings(progress=False, market=market))
    res = train_runs([tmp_path / "run"], tmp_path / "model", LabelConfig(), market_dir=market)
    assert res.rows["validation"] > 300 and 0 < res.rows["validation_won"] < res.rows["validation"]
    assert res.beats_baseline and res.auc > res.baseline_auc + 0.05, (res.auc, res.baseline_auc)
    # the capture's ShredStream gives the UDP triggers a slot clock (issue 17 rough edge 11)
    assert res.importance_gain["f_ms_since_slot_start"] > 0, res.importance_gain
