"""``workbench train RUN_DIR... --out models/NAME``: an XGBoost classifier of "would we have won".

Rows are the labelled opportunities of the runs (``model/labels.py``); features are the
engine's ``MODEL_FEATURES`` columns in that order (float64, NaN = unknown, xgboost's
missing). The split is by time: the earliest ``train_fraction`` of the rows by ``ts_ns``
train, the rest validate, and every validation row is strictly later than every training
row (rows sharing the cut timestamp all go to validation; the split asserts it).

Reported on the validation period: ROC AUC, log loss, Brier score, a calibration table
(deciles of the predicted probability: mean prediction vs observed win rate), feature
importance (total gain), and the baselines on the same rows: the expected profit itself as
the score (``profit_score_auc``), the profit-only MODEL (``baseline_auc``: a booster with the
same parameters trained on ``f_expected_profit_sol`` alone, so any monotone or bumpy
relation of profit to winning counts for the baseline, not only "more profit wins"), and the
constant base rate (every row predicted at the training period's win share: the log loss and
Brier score of knowing nothing per row). The model beats the baselines when its AUC exceeds
both profit baselines AND its log loss and Brier score are below the base rate's: a model
that ranks well but whose probabilities are worse than a constant (overconfident trees) does
not beat them, because the engine uses those probabilities, not only their order.

Early stopping (``TrainConfig.early_stopping_rounds``) keeps the validation period untouched:
the training period is itself split by time, its latest ``early_stopping_fraction`` watched
(log loss) while the earlier part trains, and the booster is cut at its best round; the
profit-only baseline model is fitted the same way.

``models/NAME/`` receives: ``model.json`` (the booster, xgboost JSON), ``schema.json``
(feature names, order, dtypes), ``metrics.json``, ``validation.npz`` (the validation rows,
for ``workbench compile``'s parity check) and ``labels.parquet`` (every labelled row, its
split, with the label config in the metadata).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..engine.score.model_folder import SCHEMA_FILE, engine_features
from ..errors import ModelError
from .compile import VALIDATION_FILE, XGB_FILE
from .labels import LabelConfig, label_run, write_labels

METRICS_FILE = "metrics.json"
LABELS_FILE = "labels.parquet"
PROFIT_FEATURE = "f_expected_profit_sol"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    n_estimators: int = 200
    max_depth: int = 6
    learning_rate: float = 0.1
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    train_fraction: float = 0.7
    seed: int = 0
    nthread: int = 0                 # 0 = all cores
    early_stopping_rounds: int = 0   # 0 = off; else stop after this many rounds without a better log loss
    early_stopping_fraction: float = 0.2   # latest share of the TRAINING period watched by early stopping

    def check(self) -> None:
        """ValueError naming the flag when a setting cannot train."""
        if not (isinstance(self.early_stopping_rounds, int) and 0 <= self.early_stopping_rounds <= 100_000):
            raise ValueError(f"--early-stopping {self.early_stopping_rounds!r}: rounds without improvement, "
                             f"an integer in 0 (off) .. 100,000")
        if not 0 < self.early_stopping_fraction < 1:
            raise ValueError(f"early_stopping_fraction={self.early_stopping_fraction!r}: must be in (0, 1)")
        if not 0 < self.train_fraction < 1:
            raise ValueError(f"--train-fraction {self.train_fraction!r}: must be in (0, 1)")

    def xgb_params(self) -> dict:
        return {"objective": "binary:logistic", "eval_metric": ["auc", "logloss"], "tree_method": "hist",
                "max_depth": self.max_depth, "eta": self.learning_rate, "subsample": self.subsample,
                "colsample_bytree": self.colsample_bytree, "min_child_weight": self.min_child_weight,
                "seed": self.seed, "nthread": self.nthread or os.cpu_count() or 1}


# ============================================================================================
# metrics (plain numpy: the definitions are short and the tests compare them to brute force)
# ============================================================================================

def roc_auc(y, score) -> float:
    """Probability that a random positive scores above a random negative (ties count half).
    NaN scores rank lowest. NaN when one class is absent."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(score, np.float64)
    s = np.where(np.isnan(s), -np.inf, s)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = pd.Series(s).rank(method="average").to_numpy()   # average ranks of ties
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y, p, eps: float = 1e-15) -> float:
    y = np.asarray(y, np.float64)
    p = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def brier_score(y, p) -> float:
    """Mean squared difference between the predicted probability and the 0/1 outcome."""
    y = np.asarray(y, np.float64)
    p = np.asarray(p, np.float64)
    return float(np.mean((p - y) ** 2))


def base_rate_scores(y_train, y_val) -> dict:
    """The constant predictor's scores on ``y_val``: every row predicted at the training win share
    (what is known without looking at any row's features, before the validation period)."""
    rate = float(np.mean(np.asarray(y_train, np.float64)))
    const = np.full(len(y_val), rate)
    return {"base_rate": rate, "base_log_loss": log_loss(y_val, const), "base_brier": brier_score(y_val, const)}


def beats_baselines(auc: float, log_loss_: float, brier: float, baseline_auc: float, profit_score_auc: float,
                    base_log_loss: float, base_brier: float) -> tuple[bool, list[str]]:
    """(beats, why not): AUC above both profit baselines, log loss and Brier below the base rate's.
    A NaN on either side of a comparison fails it (nothing shown is nothing beaten)."""
    fails = []
    if not auc > baseline_auc:
        fails.append(f"AUC {auc:.4f} not above the profit-only model's {baseline_auc:.4f}")
    if not auc > profit_score_auc:
        fails.append(f"AUC {auc:.4f} not above profit as the score's {profit_score_auc:.4f}")
    if not log_loss_ < base_log_loss:
        fails.append(f"log loss {log_loss_:.4f} not below the base rate's {base_log_loss:.4f}")
    if not brier < base_brier:
        fails.append(f"Brier score {brier:.4f} not below the base rate's {base_brier:.4f}")
    return not fails, fails


def calibration_table(y, p, bins: int = 10) -> list[dict]:
    """Rows sorted by prediction, cut into ``bins`` equal-count groups: mean prediction vs win rate."""
    y = np.asarray(y, np.float64)
    p = np.asarray(p, np.float64)
    order = np.argsort(p, kind="stable")
    rows = []
    for b, ix in enumerate(np.array_split(order, bins)):
        if len(ix) == 0:
            continue
        rows.append({"bin": b, "rows": int(len(ix)), "p_min": float(p[ix].min()), "p_max": float(p[ix].max()),
                     "mean_predicted": float(p[ix].mean()), "observed_rate": float(y[ix].mean())})
    return rows


def calibration_error(table: list[dict]) -> float:
    """Row-weighted mean of |mean prediction - observed win rate| over ``calibration_table``'s
    groups (the expected calibration error): 0 when every group's probabilities come true."""
    rows = sum(r["rows"] for r in table)
    if not rows:
        return float("nan")
    return float(sum(r["rows"] * abs(r["mean_predicted"] - r["observed_rate"]) for r in table) / rows)


def time_split(ts_ns, train_fraction: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(train mask, validation mask, cut_ns): train = ts < cut_ns, validation = ts >= cut_ns."""
    ts = np.asarray(ts_ns, np.int64)
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction={train_fraction}: must be in (0, 1)")
    if len(ts) < 2:
        raise ModelError("<rows>", f"{len(ts)} labelled rows: too few to split by time")
    k = min(len(ts) - 1, max(1, int(round(train_fraction * len(ts)))))
    cut = int(np.sort(ts, kind="stable")[k])
    train, val = ts < cut, ts >= cut
    if not train.any() or not val.any():
        raise ModelError("<rows>", f"every row has the same timestamp {cut}: cannot split by time")
    assert ts[train].max() < ts[val].min(), "time split leaks: a training row is not before every validation row"
    assert not np.any(train & val) and np.all(train | val)
    return train, val, cut


# ============================================================================================
# training
# ============================================================================================

@dataclass
class TrainResult:
    model_dir: str
    features: list
    rows: dict
    cut_ns: int
    auc: float
    log_loss: float
    baseline_auc: float             # the profit-only model's validation AUC
    beats_baseline: bool            # auc above baseline_auc and profit_score_auc, log loss and brier below base_*
    calibration: list
    importance_gain: dict
    label_config: dict
    train_config: dict
    train_s: float
    versions: dict = field(default_factory=dict)
    profit_score_auc: float = float("nan")   # f_expected_profit_sol itself as the score
    brier: float = float("nan")              # the model's validation Brier score
    base_rate: float = float("nan")          # training period's win share: the constant predictor
    base_log_loss: float = float("nan")      # its validation log loss
    base_brier: float = float("nan")         # and Brier score
    not_beaten_because: list = field(default_factory=list)   # the comparisons that failed (empty: beats)
    early_stopping: dict = field(default_factory=dict)       # rounds kept, best round, rows watched (when on)
    calibration_error: float = float("nan")  # row-weighted mean |predicted - observed| over the deciles


def feature_matrix(df: pd.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise ModelError("<labelled rows>", f"feature columns {missing} missing: the runs predate these "
                                            f"features; replay the captures again")
    return np.ascontiguousarray(df[list(features)].to_numpy(np.float64))


def train_frame(df: pd.DataFrame, out_dir, label_config: LabelConfig, config: TrainConfig = TrainConfig(),
                features: tuple[str, ...] | None = None) -> TrainResult:
    """Train on labelled rows (``won`` column) and write the model folder."""
    import xgboost as xgb
    features = tuple(features) if features is not None else engine_features()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = df.sort_values("ts_ns", kind="stable").reset_index(drop=True)
    X = feature_matrix(df, features)
    y = df["won"].to_numpy(np.int8)
    ts = df["ts_ns"].to_numpy(np.int64)
    tr, va, cut = time_split(ts, config.train_fraction)
    for name, m in (("training", tr), ("validation", va)):
        if len(np.unique(y[m])) < 2:
            raise ModelError(out, f"the {name} period has only {'won' if y[m].all() else 'lost'} rows "
                                  f"({int(m.sum())} rows): the labels cannot train a classifier; "
                                  "check the latency model or add runs")
    config.check()
    t0 = time.perf_counter()
    dval = xgb.DMatrix(X[va], label=y[va], feature_names=list(features), missing=np.nan)
    booster, stopping = _fit(X[tr], y[tr], ts[tr], list(features), config)
    train_s = time.perf_counter() - t0
    p = booster.predict(dval)
    gain = booster.get_score(importance_type="total_gain")
    importance = {f: float(gain.get(f, 0.0)) for f in features}
    importance = dict(sorted(importance.items(), key=lambda kv: -kv[1]))
    auc = roc_auc(y[va], p)
    base = score_base = float("nan")
    if PROFIT_FEATURE in features:
        k = features.index(PROFIT_FEATURE)
        score_base = roc_auc(y[va], X[va, k])
        one, _ = _fit(X[tr][:, [k]], y[tr], ts[tr], [PROFIT_FEATURE], config)
        base = roc_auc(y[va], one.predict(xgb.DMatrix(X[va][:, [k]], feature_names=[PROFIT_FEATURE],
                                                      missing=np.nan)))
    import treelite
    import tl2cgen
    ll, brier = log_loss(y[va], p), brier_score(y[va], p)
    const = base_rate_scores(y[tr], y[va])
    beats, why_not = beats_baselines(auc, ll, brier, base, score_base, const["base_log_loss"], const["base_brier"])
    res = TrainResult(
        model_dir=str(out), features=list(features),
        rows={"train": int(tr.sum()), "validation": int(va.sum()), "train_won": int(y[tr].sum()),
              "validation_won": int(y[va].sum()), "runs": sorted(df["run_dir"].unique().tolist())
              if "run_dir" in df else []},
        cut_ns=cut, auc=auc, log_loss=ll, baseline_auc=base, profit_score_auc=score_base,
        beats_baseline=beats, not_beaten_because=why_not, brier=brier, **const, early_stopping=stopping,
        calibration=(cal := calibration_table(y[va], p)), calibration_error=calibration_error(cal),
        importance_gain=importance,
        label_config=label_config.to_dict(), train_config=asdict(config), train_s=train_s,
        versions={"xgboost": xgb.__version__, "treelite": treelite.__version__, "tl2cgen": tl2cgen.__version__},
    )
    booster.save_model(str(out / XGB_FILE))
    (out / SCHEMA_FILE).write_text(json.dumps({
        "schema_version": SCHEMA_VERSION,
        "features": [{"name": f, "dtype": "float64"} for f in features],
        "missing": "NaN", "label": "won", "objective": "binary:logistic"}, indent=2) + "\n")
    np.savez(out / VALIDATION_FILE, X=X[va], y=y[va], ts_ns=ts[va])
    labelled = df.assign(split=np.where(tr, "train", "validation"))
    write_labels(labelled, out / LABELS_FILE, label_config)
    (out / METRICS_FILE).write_text(json.dumps(asdict(res), indent=2) + "\n")
    return res


def _fit(X, y, ts, names: list, config: TrainConfig):
    """(booster, early-stopping facts): ``config.n_estimators`` rounds on all rows, or with early
    stopping, rounds on the earlier part of these (training-period) rows while the latest
    ``early_stopping_fraction`` by time is watched, the booster cut at its best round."""
    import xgboost as xgb
    params = config.xgb_params()
    if not config.early_stopping_rounds:
        dtrain = xgb.DMatrix(X, label=y, feature_names=names, missing=np.nan)
        return xgb.train(params, dtrain, num_boost_round=config.n_estimators, verbose_eval=False), {}
    try:
        fit, watch, cut = time_split(ts, 1 - config.early_stopping_fraction)
    except ModelError as e:
        raise ModelError("<training rows>", f"early stopping cannot split the training period by time: {e}") from None
    for name, m in (("fitting", fit), ("watched", watch)):
        if len(np.unique(y[m])) < 2:
            raise ModelError("<training rows>", f"early stopping: the {name} part of the training period has "
                                                f"one class only ({int(m.sum())} rows); turn it off "
                                                f"(--early-stopping 0) or add runs")
    dfit = xgb.DMatrix(X[fit], label=y[fit], feature_names=names, missing=np.nan)
    dwatch = xgb.DMatrix(X[watch], label=y[watch], feature_names=names, missing=np.nan)
    params = {**params, "eval_metric": ["auc", "logloss"]}      # the last metric decides: log loss
    booster = xgb.train(params, dfit, num_boost_round=config.n_estimators, evals=[(dwatch, "watched")],
                        early_stopping_rounds=config.early_stopping_rounds, verbose_eval=False)
    best, best_score = int(booster.best_iteration), float(booster.best_score)
    rounds = booster.num_boosted_rounds()
    booster = booster[: best + 1]           # the saved model (and so the compiled one) is the best round's
    return booster, {"rounds": int(config.early_stopping_rounds), "rounds_run": int(rounds),
                     "trees_kept": best + 1, "best_watched_log_loss": best_score,
                     "fit_rows": int(fit.sum()), "watched_rows": int(watch.sum()), "watched_from_ns": int(cut)}


def train_runs(run_dirs, out_dir, label_config: LabelConfig = LabelConfig(), config: TrainConfig = TrainConfig(),
               market_dir=None) -> TrainResult:
    """Label every run folder, then ``train_frame``."""
    if not run_dirs:
        raise ModelError("<runs>", "no run folder given")
    frames = [label_run(d, label_config, market_dir) for d in run_dirs]
    df = pd.concat(frames, ignore_index=True)
    if len(df) == 0:
        raise ModelError(run_dirs[0], "no opportunities in these runs: nothing to train on")
    return train_frame(df, out_dir, label_config, config)
