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

Optional modes print the figures behind the scorer's design (engine/score/ says why, this
script says how much); each adds a table after the default ones, ``--all`` runs them all:

* ``--layouts``: the pointer layout (a branchy walk of the same trees) beside the others;
* ``--scaling``: the lane and perfect layouts by tree count, and the parts of a lane score
  (the ranks, one full group's masks and muxes, its 64 leaf loads, one packed group);
* ``--crossover``: a tail of r trees past the last full group, packed groups of 8 against
  one more full group (where ``PACKED_TAIL_MAX`` comes from);
* ``--ab``: the lane kernel against the alternatives it replaced, in one process: groups
  software-pipelined or one after the other, a group as vector IR or ``lane_mask`` + scalar
  muxes, the scorer inlined without NRT, inlined with NRT, or called;
* ``--cold``: one row with the model's arrays in L1/L2, in L3 only, in DRAM only, and after
  ``prefetch_model`` some microseconds ahead (why the engine prefetches);
* ``--portable``: the lane layout built for a CPU without AVX-512 VBMI (a child process
  pinned to x86-64-v3, numba cache of its own: it compiles first) beside this host's.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

from common import BENCH_DIR, table
from score_loops import (COLD_DRAM, COLD_DRAM_PREFETCH, COLD_L3, COLD_L3_PREFETCH, COLD_WARM, clock_pairs, cold_scores,
                         ensemble_of, full_group_loop, one_row_repeat, one_row_repeat_alloc, packed_tail_loop,
                         rank_rows, ranks_loop, rows_called, rows_engine, rows_engine_nrt, rows_in_turn,
                         rows_scalar_muxes)
from workbench.engine.score.kernels import score_row, score_rows, score_rows_buf
from workbench.engine.score.lanes import HAVE_VBMI, LANES, LANES_DEPTH, PACK
from workbench.engine.score.layouts import tree_model_from_arrays
from workbench.engine.score.model_folder import TREES_FILE, load_tree_model, read_trees
from workbench.engine.score.tree_model import (LAYOUT_LANES, LAYOUT_PERFECT, PACKED_TAIL_MAX, lane_groups,
                                               scratch_items)

MODES = ("layouts", "scaling", "crossover", "ab", "cold", "portable")


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
    from workbench.synth.run_folder import TS0_NS, synthetic_run
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


# ---------------------------------------------------------------------------------------------
# optional modes: the figures behind the scorer's design
# ---------------------------------------------------------------------------------------------


def ns_row(wall_cpu) -> tuple[str, str]:
    return f"{wall_cpu[0]:,.0f}", f"{wall_cpu[1]:,.0f}"


def mode_scaling(arrs, X, repeat: int) -> None:
    """The lane and perfect layouts by tree count; the parts of a lane score."""
    reps, n = 2000, len(X)
    out = np.empty(n)
    rows = []
    for trees in (8, 16, 64, 128, 192, 200, 256, 384, 512):
        e = ensemble_of(arrs, trees)
        lanes, perfect = tree_model_from_arrays(e, layout="lanes"), tree_model_from_arrays(e, layout="perfect")
        xx = np.empty(scratch_items(lanes.n_features), np.int32)
        tl = median_both(lambda: score_rows_buf(lanes, X, out, xx), repeat, n)
        tp = median_both(lambda: score_rows_buf(perfect, X, out, xx), repeat, n)
        full, packed = lane_groups(trees)
        rows.append((trees, f"{full} + {packed}", f"{tl[1]:,.0f}", f"{tl[1] / trees:.2f}", f"{tp[1]:,.0f}",
                     f"{tp[1] / tl[1]:.1f}x"))
    table(f"by tree count (depth {LANES_DEPTH}, the bench model's trees repeated), batch of {n} rows, "
          f"ns/row cpu, median of {repeat}",
          rows, ("trees", "full + packed groups", "lanes", "lanes per tree", "perfect", "perfect / lanes"))
    m = tree_model_from_arrays(ensemble_of(arrs, 3 * LANES + PACKED_TAIL_MAX), layout="lanes")
    xx = np.empty(scratch_items(m.n_features), np.int32)
    XB = np.zeros((n, 3 * LANES), np.uint8)
    rank_rows(m, X, XB)
    masks = median_both(lambda: full_group_loop(m, XB, reps, 0), repeat, reps)
    group = median_both(lambda: full_group_loop(m, XB, reps, LANES), repeat, reps)
    parts = [
        ("ranks of a row (rank_row)", *ns_row(median_both(lambda: ranks_loop(m, X, xx.view(np.uint8), reps),
                                                          repeat, reps))),
        ("one full group: 63 node masks and the muxes", *ns_row(masks)),
        ("one full group: masks, muxes and its 64 leaf loads", *ns_row(group)),
        ("  its 64 leaf loads (the difference)", f"{group[0] - masks[0]:,.0f}", f"{group[1] - masks[1]:,.0f}"),
        ("one packed group of 8 trees: 8 masks, selection, 8 leaf loads",
         *ns_row(median_both(lambda: packed_tail_loop(m, XB, reps, PACK), repeat, reps))),
    ]
    table(f"parts of a lane score (each alone, {reps} calls over {n} rows in turn), median of {repeat}",
          parts, ("part", "ns wall", "ns cpu"))


def mode_crossover(arrs, X, repeat: int) -> None:
    """A tail of r trees past the last full group: packed groups of 8, or one more full group."""
    reps, n = 2000, len(X)
    m = tree_model_from_arrays(ensemble_of(arrs, LANES + PACKED_TAIL_MAX), layout="lanes")
    XB = np.zeros((n, 3 * LANES), np.uint8)
    rank_rows(m, X, XB)
    rows = []
    for tail in range(PACK, LANES + 1, PACK):
        packed = median_both(lambda: packed_tail_loop(m, XB, reps, tail), repeat, reps)
        full = median_both(lambda: full_group_loop(m, XB, reps, tail), repeat, reps)
        rows.append((tail, -(-tail // PACK), f"{packed[1]:,.0f}", f"{full[1]:,.0f}",
                     "packed" if packed[1] < full[1] else "full",
                     "packed" if tail <= PACKED_TAIL_MAX else "full"))
    table(f"tail of r trees: packed groups vs one full group (masks, selection and leaf sums), "
          f"ns cpu, median of {repeat}",
          rows, ("r trees", "packed groups", "packed", "one full group", "cheaper here",
                 f"layout takes (PACKED_TAIL_MAX {PACKED_TAIL_MAX})"))


def mode_ab(model, X, repeat: int) -> None:
    """The lane kernel against the alternatives it replaced, one process, rows in turn."""
    if model.layout != LAYOUT_LANES:
        print("\n## --ab: the lane layout is not this host's (no AVX-512 VBMI): skipped")
        return
    reps = 2000
    xx = np.empty(scratch_items(model.n_features), np.int32)
    full, packed = lane_groups(model.n_trees)
    runs = {
        "engine: groups pipelined, vector IR, inlined without NRT": lambda: rows_engine(model, X, xx, reps),
        "groups one after the other (no pipeline)": lambda: rows_in_turn(model, X, xx, reps),
        "full groups as lane_mask + scalar muxes": lambda: rows_scalar_muxes(model, X, xx, reps),
        "inlined, compiled with NRT": lambda: rows_engine_nrt(model, X, xx, reps),
        "called (a jitted function, not inlined), NRT": lambda: rows_called(model, X, xx, reps),
    }
    t = {k: median_both(fn, repeat, reps) for k, fn in runs.items()}
    eng = t["engine: groups pipelined, vector IR, inlined without NRT"]
    table(f"lane margin of a row (ranks included), {model.n_trees} trees = {full} full + {packed} packed "
          f"groups, median of {repeat}",
          [(k, *ns_row(v), f"{v[1] / eng[1]:.2f}x") for k, v in t.items()], ("variant", "ns wall", "ns cpu",
                                                                               "vs engine (cpu)"))


def cache_bytes(level: int, default: int) -> int:
    """Size of the CPU's level-``level`` data/unified cache (sysfs), or ``default``."""
    for idx in range(8):
        p = Path(f"/sys/devices/system/cpu/cpu0/cache/index{idx}")
        try:
            if int((p / "level").read_text()) == level and (p / "type").read_text().strip() != "Instruction":
                v = (p / "size").read_text().strip()
                return int(v[:-1]) * {"K": 1 << 10, "M": 1 << 20}[v[-1]] if v[-1] in "KM" else int(v)
        except (OSError, ValueError):
            continue
    return default


def mode_cold(model, perfect, X, repeat: int) -> None:
    """One row with the model's arrays in L1/L2, L3 or DRAM, and after a prefetch ahead."""
    reps = 400
    evict = np.ones(4 * cache_bytes(2, 2 << 20), np.uint8)
    pairs = np.empty(reps, np.int64)
    clock_pairs(pairs)
    clock = float(np.median(pairs))
    where = {"warm (L1/L2)": COLD_WARM, "in L3 (L1/L2 evicted)": COLD_L3, "in DRAM (flushed)": COLD_DRAM,
             "in L3, prefetch_model 5 us ahead": COLD_L3_PREFETCH,
             "in DRAM, prefetch_model 5 us ahead": COLD_DRAM_PREFETCH}
    rows = []
    for name, m in (("lanes", model), ("perfect", perfect)):
        if name == "lanes" and m.layout != LAYOUT_LANES:
            continue
        xx = np.empty(scratch_items(m.n_features), np.int32)
        model_kib = sum(a.nbytes for a in (m.cuts, m.lane_node, m.lane_leaf, m.node, m.leaf_value)) / 1024
        for label, w in where.items():
            out = np.empty(reps, np.int64)
            med = []
            for _ in range(repeat):
                cold_scores(m, X, xx, evict, w, 5000, out)
                med.append(float(np.median(out)) - clock)
            rows.append((f"{name} ({model_kib:,.0f} KiB)", label, f"{statistics.median(med):,.0f}"))
    table(f"one row's score by where the model is, ns (median of {reps} rows, median of {repeat} runs; "
          f"clock pair {clock:.0f} ns subtracted)", rows, ("layout", "model arrays", "ns"))


def portable_child(d: Path, batch: int, repeat: int) -> None:
    """Under a target without VBMI (set by the parent): the lane and perfect layouts, one JSON line."""
    X = np.ascontiguousarray(np.load(d / "validation.npz")["X"][:batch])
    x, reps, out = X[1].copy(), 2000, np.empty(len(X))
    res = {"have_vbmi": HAVE_VBMI}
    for name in ("lanes", "perfect"):
        m = load_tree_model(d, layout=name)
        xx = np.empty(scratch_items(m.n_features), np.int32)
        res[name] = {"one": median_both(lambda: one_row_repeat(m, x, xx, reps), repeat, reps),
                     "batch": median_both(lambda: score_rows_buf(m, X, out, xx), repeat, len(X))}
    print(json.dumps(res))


def mode_portable(d: Path, here: dict, a) -> None:
    """The lane layout without AVX-512 VBMI (a child pinned to x86-64-v3) beside this host's figures."""
    env = {**os.environ, "NUMBA_CPU_NAME": "x86-64-v3", "NUMBA_CPU_FEATURES": "",
           "NUMBA_CACHE_DIR": str(BENCH_DIR / "numba-x86-64-v3")}
    print("\n# --portable: the child compiles the scorer for x86-64-v3 first", flush=True)
    r = subprocess.run([sys.executable, __file__, "--portable-child", str(d), "--batch", str(a.batch),
                        "--repeat", str(a.repeat)], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout + r.stderr)
        raise SystemExit("--portable: the child failed")
    child = json.loads(r.stdout.strip().splitlines()[-1])
    assert not child["have_vbmi"]
    rows = [(f"this host{' (AVX-512 VBMI)' if HAVE_VBMI else ''}, {k}", f"{v[0][1]:,.0f}", f"{v[1][1]:,.0f}")
            for k, v in here.items()]
    rows += [(f"x86-64-v3 (no VBMI), {k}", f"{child[k]['one'][1]:,.0f}", f"{child[k]['batch'][1]:,.0f}")
             for k in ("lanes", "perfect")]
    table(f"portable lane IR, ns/row cpu, median of {a.repeat}", rows, ("target, layout", "one row", "batch"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=7)
    for mode in MODES:
        ap.add_argument(f"--{mode}", action="store_true", help="optional mode (see the module docstring)")
    ap.add_argument("--all", action="store_true", help="every optional mode")
    ap.add_argument("--portable-child", metavar="DIR", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.portable_child:
        return portable_child(Path(a.portable_child), a.batch, a.repeat)
    modes = MODES if a.all else tuple(m for m in MODES if getattr(a, m))
    import tl2cgen
    import xgboost as xgb
    from workbench.model.compile import NativePredictor, tl2cgen_dmatrix
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
    pointer = load_tree_model(d, layout="pointer")        # explicit children: the branchy walk (--layouts)
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
                    ("score_row perfect", score_rows(perfect, X, np.empty(len(X)))),
                    ("score_row pointer", score_rows(pointer, X, np.empty(len(X))))):
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
    one["engine score_row, own scratch"] = median_both(lambda: one_row_repeat_alloc(model, x, reps), a.repeat, reps)
    if model.layout != LAYOUT_PERFECT:
        one["engine score_row, perfect layout"] = median_both(lambda: one_row_repeat(perfect, x, xx, reps),
                                                              a.repeat, reps)
    if "layouts" in modes:
        one["engine score_row, pointer layout"] = median_both(lambda: one_row_repeat(pointer, x, xx, reps),
                                                              a.repeat, reps)
    one["engine score_row (nopython)"] = median_both(lambda: one_row_repeat(model, x, xx, reps), a.repeat, reps)
    batch = {
        "xgboost inplace_predict": median_both(lambda: booster.inplace_predict(X), a.repeat, n),
        "TL2cgen Predictor.predict(DMatrix)": median_both(lambda: predictor.predict(tl2cgen_dmatrix(X)), a.repeat, n),
        ".so predict via ctypes (Python)": median_both(lambda: native.predict(X), a.repeat, n),
        ".so predict from nopython": median_both(lambda: so_rows(X, e32, ei, res, out), a.repeat, n),
    }
    if model.layout != LAYOUT_PERFECT:
        batch["engine score_row, perfect layout"] = median_both(lambda: score_rows_buf(perfect, X, out, xx),
                                                                a.repeat, n)
    if "layouts" in modes:
        batch["engine score_row, pointer layout"] = median_both(lambda: score_rows_buf(pointer, X, out, xx),
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

    arrs = read_trees(d / TREES_FILE)
    if "scaling" in modes:
        mode_scaling(arrs, X, a.repeat)
    if "crossover" in modes:
        mode_crossover(arrs, X, a.repeat)
    if "ab" in modes:
        mode_ab(model, X, a.repeat)
    if "cold" in modes:
        mode_cold(model, perfect, X, a.repeat)
    if "portable" in modes:
        p_key = "engine score_row, perfect layout" if model.layout != LAYOUT_PERFECT else "engine score_row (nopython)"
        here = {"perfect": (one[p_key], batch[p_key])}
        if model.layout == LAYOUT_LANES:
            here = {"lanes": (eng1, engb), **here}
        mode_portable(d, here, a)


if __name__ == "__main__":
    main()
