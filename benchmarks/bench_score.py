"""Model scoring, 200 trees of depth 6: xgboost vs TL2cgen's Predictor vs the compiled .so vs the engine's evaluator.

One model (trained on synthetic run folders, compiled by ``workbench compile``; cached in
the bench folder) scores realistic rows (the validation rows: NaNs included) four ways:

* xgboost ``Booster.inplace_predict`` (Python call);
* TL2cgen's ``Predictor.predict(DMatrix)`` (Python call, nthread=1: one row gains nothing from threads);
* the compiled library's ``predict`` called directly: from Python through ctypes, and from
  nopython code (numba calls the ctypes function pointer: no Python in the loop);
* ``engine.score.score_row`` from nopython code, as ``process_batch`` calls it.

One row (the same row, warm) and a batch of 256 rows; medians of --repeat runs, in wall
time and in this thread's CPU time (the dev box is shared: a preempted run inflates wall
time, not CPU time). Goals: in-engine <= 1 us per row, and >= 50x faster than TL2cgen's
Predictor on one row.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import time

import numpy as np
from numba import njit

from common import BENCH_DIR, table
from workbench.engine.score import (LAYOUT_LANES, LAYOUT_PERFECT, load_tree_model, score_row, score_row_buf,
                                    score_rows, score_rows_buf, scratch_items)


def median_both(fn, repeat: int, per: int = 1) -> tuple[float, float]:
    """(wall ns, thread CPU ns) per item: medians over ``repeat`` runs of ``fn`` (``per`` items each)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        fn()
        cpu.append((time.thread_time_ns() - c0) / per)
        wall.append((time.perf_counter_ns() - w0) / per)
    return statistics.median(wall), statistics.median(cpu)


def bench_model(trees: int, depth: int):
    """A compiled model folder of ``trees`` x ``depth``, trained once on synthetic runs and cached."""
    from workbench.model.compile import compile_model
    from workbench.model.labels import LabelConfig
    from workbench.model.synthetic import TS0_NS, synthetic_run
    from workbench.model.train import TrainConfig, train_runs
    d = BENCH_DIR / f"score-model-{trees}x{depth}"
    if (d / "compile.json").is_file() and (d / "predictor.so").is_file():
        return d
    runs = [synthetic_run(BENCH_DIR / f"score-run{i}", seconds=60, seed=40 + i, ts0_ns=TS0_NS + i * 60 * 10**9)
            for i in range(2)]
    res = train_runs(runs, d, LabelConfig(), TrainConfig(n_estimators=trees, max_depth=depth, seed=1))
    print(f"# trained {d.name}: validation AUC {res.auc:.3f} (profit-only {res.baseline_auc:.3f})", flush=True)
    c = compile_model(d)
    print(f"# compiled in {c.compile_s:.1f} s; parity max {max(c.parity.max_abs_diff.values()):.2g}", flush=True)
    return d


@njit(cache=True, nogil=True, _nrt=False)
def _one_row_repeat(model, x, xx, n):
    """``n`` scores of the same row, as the engine calls it: ``score_row_buf`` inlined into a
    function compiled without NRT (as ``process_batch`` is), with a scratch allocated once."""
    s = 0.0
    for _ in range(n):
        s += score_row_buf(model, x, xx)
    return s


@njit(cache=True, nogil=True)
def _one_row_repeat_alloc(model, x, n):
    """The same through ``score_row`` (allocates its int32 scratch per call)."""
    s = 0.0
    for _ in range(n):
        s += score_row(model, x)
    return s


def native_callers(libpath):
    """Jitted loops calling the .so's ``predict`` through its ctypes pointer (not cacheable: the
    address is baked into the machine code)."""
    lib = ctypes.CDLL(str(libpath))
    pred = lib.predict
    pred.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
    pred.restype = None

    @njit(nogil=True)
    def fill(x, e32, ei):
        for j in range(x.shape[0]):
            v = np.float32(x[j])
            e32[j] = v
            if v != v:
                ei[j] = -1                        # union Entry: missing

    @njit(nogil=True)
    def rows(X, e32, ei, res, out):
        for r in range(X.shape[0]):
            fill(X[r], e32, ei)
            res[0] = 0.0                          # predict() adds the trees into result
            pred(ei.ctypes.data, 0, res.ctypes.data)
            out[r] = res[0]
        return out

    @njit(nogil=True)
    def repeat(x, e32, ei, res, n):
        s = 0.0
        for _ in range(n):
            fill(x, e32, ei)
            res[0] = 0.0
            pred(ei.ctypes.data, 0, res.ctypes.data)
            s += res[0]
        return s

    return rows, repeat


def main():
    import tl2cgen
    import xgboost as xgb
    from workbench.model.compile import NativePredictor, tl2cgen_dmatrix
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    d = bench_model(a.trees, a.depth)
    meta = json.loads((d / "compile.json").read_text())
    X = np.ascontiguousarray(np.load(d / "validation.npz")["X"][: a.batch])
    x = X[1].copy()
    n_nan = int(np.isnan(X).sum())

    booster = xgb.Booster(model_file=str(d / "model.json"))
    booster.set_param({"nthread": 1})
    predictor = tl2cgen.Predictor(str(d / "predictor.so"), nthread=1)
    native = NativePredictor(d / "predictor.so")
    model = load_tree_model(d)                            # 'auto': the lane layout where the CPU has VBMI
    perfect = load_tree_model(d, layout="perfect")        # the scalar layout (hosts without AVX-512 VBMI)
    layout = "lanes (AVX-512 VBMI)" if model.layout == LAYOUT_LANES else "perfect"
    nf = model.n_features
    e32 = np.zeros(nf, np.float32)
    ei = e32.view(np.int32)
    res = np.zeros(1, np.float32)
    so_rows, so_repeat = native_callers((d / "predictor.so").resolve())
    out = np.empty(len(X))
    xx = np.empty(scratch_items(model.n_features), np.int32)

    # the four agree on these rows (the compile step checked the whole validation set)
    ref = booster.inplace_predict(X)
    for name, p in (("tl2cgen", predictor.predict(tl2cgen_dmatrix(X)).reshape(-1)),
                    ("so/numba", so_rows(X, e32, ei, res, np.empty(len(X)))),
                    ("score_row", score_rows(model, X, np.empty(len(X)))),
                    ("score_row perfect", score_rows(perfect, X, np.empty(len(X))))):
        assert np.max(np.abs(p - ref)) < 1e-6, name

    reps = 2000                                           # calls per timing of the nopython loops
    per_call = 200                                        # calls per timing of the Python-called scorers
    n = len(X)
    py_calls = {
        "xgboost inplace_predict": lambda: booster.inplace_predict(x[None, :]),
        "TL2cgen Predictor.predict(DMatrix)": lambda: predictor.predict(tl2cgen_dmatrix(x[None, :])),
        ".so predict via ctypes (Python)": lambda: native.predict_row(x),
        "engine score_row from Python": lambda: score_row(model, x),
    }
    one = {k: median_both(lambda fn=fn: [fn() for _ in range(per_call)], a.repeat, per_call)
           for k, fn in py_calls.items()}
    one[".so predict from nopython"] = median_both(lambda: so_repeat(x, e32, ei, res, reps), a.repeat, reps)
    one["engine score_row, own scratch"] = median_both(lambda: _one_row_repeat_alloc(model, x, reps), a.repeat, reps)
    if model.layout != LAYOUT_PERFECT:
        one["engine score_row, perfect layout"] = median_both(lambda: _one_row_repeat(perfect, x, xx, reps),
                                                              a.repeat, reps)
    one["engine score_row (nopython)"] = median_both(lambda: _one_row_repeat(model, x, xx, reps), a.repeat, reps)
    batch = {
        "xgboost inplace_predict": median_both(lambda: booster.inplace_predict(X), a.repeat, n),
        "TL2cgen Predictor.predict(DMatrix)": median_both(lambda: predictor.predict(tl2cgen_dmatrix(X)), a.repeat, n),
        ".so predict via ctypes (Python)": median_both(lambda: native.predict(X), a.repeat, n),
        ".so predict from nopython": median_both(lambda: so_rows(X, e32, ei, res, out), a.repeat, n),
    }
    if model.layout != LAYOUT_PERFECT:
        batch["engine score_row, perfect layout"] = median_both(lambda: score_rows_buf(perfect, X, out, xx),
                                                                a.repeat, n)
    batch["engine score_row (nopython)"] = median_both(lambda: score_rows_buf(model, X, out, xx), a.repeat, n)
    eng1, engb = one["engine score_row (nopython)"], batch["engine score_row (nopython)"]
    hdr = ("scorer", "ns/row wall", "ns/row cpu", "vs engine (cpu)")
    table(f"one row, {meta['n_trees']} trees x depth {meta['max_depth']} ({meta['n_nodes']:,} nodes), "
          f"median of {a.repeat}",
          [(k, f"{w:,.0f}", f"{c:,.0f}", f"{c / eng1[1]:.1f}x") for k, (w, c) in one.items()], hdr)
    table(f"batch of {n} rows ({n_nan} NaN features), median of {a.repeat}",
          [(k, f"{w:,.0f}", f"{c:,.0f}", f"{c / engb[1]:.1f}x") for k, (w, c) in batch.items()], hdr)
    tl1 = one["TL2cgen Predictor.predict(DMatrix)"]
    print(f"\nengine layout: {layout}")
    print(f"in-engine one row: {eng1[1]:,.0f} ns cpu ({eng1[0]:,.0f} wall) (goal <= 1000 ns); "
          f"batch: {engb[1]:,.0f} ns/row cpu ({engb[0]:,.0f} wall)")
    print(f"TL2cgen Predictor one row / engine one row: {tl1[1] / eng1[1]:.0f}x cpu, {tl1[0] / eng1[0]:.0f}x wall "
          f"(goal >= 50x)")
    print(f"compiled .so from nopython / engine, batch of varied rows: "
          f"{batch['.so predict from nopython'][1] / engb[1]:.1f}x cpu")

if __name__ == "__main__":
    main()
