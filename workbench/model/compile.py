"""``workbench compile models/NAME``: Treelite import, TL2cgen native library, the engine's tree arrays.

Steps (issue #4 part 4):

1. ``treelite.frontend.load_xgboost_model(model.json)``: the booster as a Treelite model.
2. ``tl2cgen.export_lib``: C code for the trees (``parallel_comp`` translation units;
   ``quantize`` off, see ``default_params``), compiled with gcc ``-O3`` (TL2cgen's default)
   and ``-march=native`` into ``models/NAME/predictor.so``.
3. The Treelite model's trees (``Model.dump_as_json()``) flattened into
   ``models/NAME/trees.npz``: the arrays ``engine/score/`` scores from inside the engine.
4. Parity on the validation set the training saved (``validation.npz``) and on threshold
   probes (a row per distinct split threshold, the input exactly on it): xgboost's
   ``inplace_predict``, TL2cgen's ``Predictor``, the .so's ``predict`` called directly
   through ctypes, and ``engine.score.score_rows``; every pairwise max abs difference must
   be below ``PARITY_TOL`` or the command fails (``ParityError``).

The generated library's entry point (TL2cgen 1.0, ``header.h``)::

    union Entry { int missing; float fvalue; int qvalue; };
    void predict(union Entry* data, int pred_margin, float* result);

``missing == -1`` marks a missing feature; with ``quantize`` the call overwrites ``data``
with bin indexes, so every call needs a freshly filled row, and ``result`` is ADDED to (the
trees accumulate into it), so it must be zeroed first (``NativePredictor`` does both).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError, ParityError
from ..engine.score.kernels import score_rows
from ..engine.score.layouts import tree_model_from_arrays
from ..engine.score.model_folder import (SCHEMA_FILE, TREES_FILE, TREES_FORMAT_VERSION, engine_features, load_tree_model,
                                         read_schema, read_trees)
from ..engine.score.tree_model import LAYOUT_LANES, POSTPROCESSORS

XGB_FILE = "model.json"          # the booster, xgboost JSON (model/train.py)
VALIDATION_FILE = "validation.npz"  # X float64[n, n_features], y int8[n], ts_ns int64[n] (model/train.py)
LIB_FILE = "predictor.so"        # the TL2cgen library
COMPILE_FILE = "compile.json"    # what was compiled, how, and the parity figures
PARITY_TOL = 1e-6                # max abs probability difference allowed between any two scorers
MISSING_ENTRY = -1               # TL2cgen's union Entry ``missing`` value of an absent feature


# ============================================================================================
# Treelite model -> flat node arrays
# ============================================================================================

def load_treelite(model_dir):
    """The Treelite model of ``model_dir/model.json`` (xgboost JSON)."""
    import treelite
    path = Path(model_dir) / XGB_FILE
    if not path.is_file():
        raise ModelError(path, "missing: train the model first (`workbench train RUN_DIR --out MODEL_DIR`)")
    try:
        return treelite.frontend.load_xgboost_model(str(path))
    except treelite.TreeliteError as e:
        raise ModelError(path, f"Treelite cannot read this xgboost model: {str(e).strip()[:500]}") from None


def trees_from_treelite(tl_model, source="<treelite model>") -> dict:
    """The trees of a Treelite model as trees.npz arrays (global node ids, Treelite's node order).

    Accepts what a binary xgboost classifier or regressor gives: one target, one class,
    scalar leaves, numerical ``<`` splits. Anything else is a ModelError naming it.
    """
    doc = json.loads(tl_model.dump_as_json(pretty_print=False))
    if doc.get("num_target") != 1 or list(doc.get("num_class", [])) != [1]:
        raise ModelError(source, f"{doc.get('num_target')} targets / classes {doc.get('num_class')}: "
                                 "the engine scores one binary target")
    if list(doc.get("leaf_vector_shape", [1, 1])) != [1, 1]:
        raise ModelError(source, f"leaf_vector_shape {doc['leaf_vector_shape']}: vector leaves are not supported")
    post = doc.get("postprocessor")
    if post not in POSTPROCESSORS:
        raise ModelError(source, f"postprocessor {post!r} unsupported (supported: {sorted(POSTPROCESSORS)})")
    if doc.get("average_tree_output"):
        raise ModelError(source, "average_tree_output (random forest) is not supported")
    feat, thr, dl, left, right, val, roots = [], [], [], [], [], [], []
    for t, tree in enumerate(doc["trees"]):
        if tree.get("has_categorical_split"):
            raise ModelError(source, f"tree {t} has a categorical split: not supported")
        base = len(feat)
        roots.append(base)
        nodes = sorted(tree["nodes"], key=lambda nd: nd["node_id"])
        if [nd["node_id"] for nd in nodes] != list(range(len(nodes))):
            raise ModelError(source, f"tree {t}: node ids are not 0..{len(nodes) - 1}")
        for nd in nodes:
            if "leaf_value" in nd:
                lv = nd["leaf_value"]
                if isinstance(lv, list):
                    if len(lv) != 1:
                        raise ModelError(source, f"tree {t} node {nd['node_id']}: vector leaf {lv}")
                    lv = lv[0]
                feat.append(-1), thr.append(0.0), dl.append(0), left.append(-1), right.append(-1)
                val.append(float(lv))
                continue
            if nd.get("node_type") != "numerical_test_node" or nd.get("comparison_op") != "<":
                raise ModelError(source, f"tree {t} node {nd['node_id']}: {nd.get('node_type')} "
                                         f"{nd.get('comparison_op')!r}; only numerical '<' splits are supported")
            feat.append(int(nd["split_feature_id"]))
            thr.append(float(nd["threshold"]))
            dl.append(1 if nd["default_left"] else 0)
            left.append(base + int(nd["left_child"]))
            right.append(base + int(nd["right_child"]))
            val.append(0.0)
    thr32 = np.asarray(thr, np.float64).astype(np.float32)
    if not np.array_equal(thr32.astype(np.float64), np.asarray(thr, np.float64)) and doc["threshold_type"] == "float32":
        raise ModelError(source, "a float32 threshold did not round-trip through the JSON dump")
    base_scores = doc.get("base_scores", [0.0])
    return {
        "node_feature": np.asarray(feat, np.int32), "node_threshold": thr32,
        "node_default_left": np.asarray(dl, np.int8), "node_left": np.asarray(left, np.int32),
        "node_right": np.asarray(right, np.int32), "node_leaf_value": np.asarray(val, np.float64),
        "tree_root": np.asarray(roots, np.int32),
        "format_version": np.int64(TREES_FORMAT_VERSION), "n_features": np.int64(doc["num_feature"]),
        "base_score": np.float64(base_scores[0]), "sigmoid_alpha": np.float64(doc.get("sigmoid_alpha", 1.0)),
        "postprocess": np.int64(POSTPROCESSORS[post]),
    }


def write_trees(arrs: dict, path) -> Path:
    """Write trees.npz atomically (a temporary file renamed into place)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrs)
    os.replace(tmp, path)
    return path


# ============================================================================================
# the compiled library
# ============================================================================================

def default_params(n_trees: int, nthread: int | None = None, parallel_comp: int | None = None,
                   quantize: bool = False) -> dict:
    """TL2cgen code generation parameters: trees split over ``parallel_comp`` translation units
    (default four per compiler process, so gcc runs in parallel). ``quantize`` is off by default:
    TL2cgen 1.0.0 prints the quantized threshold table (quantize.c) with 8 significant digits,
    too few for float32 (9), so an input equal to such a threshold takes the wrong branch
    (found by the threshold probes of ``parity_check``; e.g. 128005.3359375 printed 128005.34)."""
    nthread = nthread or os.cpu_count() or 1
    pc = parallel_comp if parallel_comp is not None else 4 * nthread
    return {"parallel_comp": int(max(1, min(n_trees, pc))), "quantize": int(bool(quantize))}


# What TL2cgen prints during ``export_lib`` that says nothing the user can act on (each understood):
#
# * Its own log callback ``print``s (to STDOUT, so a piped ``compile`` gets it mixed into its output)
#   "<time> .../split.cc:NN: Parallel compilation enabled; member trees will be divided into N
#   translation units": ``parallel_comp``, which the summary shows as a parameter.
# * TL2cgen 1.0.0 links its own copy of Treelite (4.1.x) and reads the model from the bytes of the
#   installed Python Treelite (newer, 4.8.x); that copy's serializer writes straight to file
#   descriptor 2, from C++, "The model you are loading originated from a newer Treelite version; some
#   functionalities may be unavailable" plus two lines naming both versions. Within one major
#   version the checkpoint layout is the same; and the parity check below scores the compiled
#   library against xgboost on every validation row and every split threshold, so a model that
#   did not survive the trip fails the command. Only that notice, and only when both versions share
#   their major version, is dropped; anything else written meanwhile is passed on.
_TL2CGEN_INFO = re.compile(r"^\[[\d:]+\] \S*split\.cc:\d+: Parallel compilation enabled; .*$")
_TREELITE_NEWER = re.compile(
    r"^\[[\d:]+\] \S*serializer\.cc:\d+: The model you are loading originated from a newer Treelite "
    r"version; some functionalities may be unavailable\.\n"
    r"Currently running Treelite version (\d+)\.[\d.]+\n"
    r"The model checkpoint was generated from Treelite version (\d+)\.[\d.]+\n?", re.M)


def _drop_understood_notices(stdout_text: str, stderr_text: str) -> tuple[str, str]:
    """``stdout_text`` and ``stderr_text`` captured around ``export_lib`` without the notices above."""
    out = "".join(line for line in stdout_text.splitlines(keepends=True) if not _TL2CGEN_INFO.match(line.rstrip("\n")))
    err = _TREELITE_NEWER.sub(lambda m: "" if m.group(1) == m.group(2) else m.group(0), stderr_text)
    return out, err


@contextlib.contextmanager
def _tl2cgen_notices_filtered():
    """Capture Python stdout and file descriptor 2 around a TL2cgen call, then pass on all but
    the understood notices (``_drop_understood_notices``). Text another thread writes to stderr
    meanwhile is delayed until the call ends, never lost."""
    sys.stderr.flush()
    saved_fd = os.dup(2)
    buf = io.StringIO()
    with tempfile.TemporaryFile() as cap:
        os.dup2(cap.fileno(), 2)
        try:
            with contextlib.redirect_stdout(buf):
                yield
        finally:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            cap.seek(0)
            out, err = _drop_understood_notices(buf.getvalue(), cap.read().decode("utf-8", "replace"))
            if out:
                sys.stdout.write(out)
            if err:
                sys.stderr.write(err)
                sys.stderr.flush()


def export_library(tl_model, libpath, *, params: dict | None = None, nthread: int | None = None,
                   options: tuple[str, ...] = ("-march=native",), toolchain: str = "gcc") -> Path:
    """``tl2cgen.export_lib`` to ``libpath`` (gcc -O3 is TL2cgen's default; ``options`` are added)."""
    import tl2cgen
    libpath = Path(libpath)
    with _tl2cgen_notices_filtered():
        tl2cgen.export_lib(tl_model, toolchain=toolchain, libpath=str(libpath),
                           params=params if params is not None else default_params(tl_model.num_tree, nthread),
                           nthread=nthread, options=list(options))
    return libpath


class NativePredictor:
    """The TL2cgen library's ``predict`` called directly (ctypes), one row at a time.

    ``row_buffer`` is the union Entry row (int32 words; float32 bits or -1 for missing).
    """

    def __init__(self, libpath):
        self.path = Path(libpath)
        self.lib = ctypes.CDLL(str(self.path.resolve()))
        self.n_features = int(self.lib.get_num_feature())
        self.lib.get_leaf_output_type.restype = ctypes.c_char_p
        out_type = self.lib.get_leaf_output_type().decode()
        if out_type != "float32":
            raise ModelError(self.path, f"leaf output type {out_type}; this caller reads float32 results")
        self.predict_fn = self.lib.predict
        self.predict_fn.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
        self.predict_fn.restype = None
        self.entries = np.zeros(self.n_features, np.int32)
        self.result = np.zeros(1, np.float32)
        self._entries_ptr = self.entries.ctypes.data
        self._result_ptr = self.result.ctypes.data

    @staticmethod
    def fill_entries(x: np.ndarray, entries: np.ndarray) -> None:
        """float64 row -> union Entry words: float32 bits, MISSING_ENTRY where NaN."""
        x32 = x.astype(np.float32)
        entries[:] = x32.view(np.int32)
        entries[np.isnan(x32)] = MISSING_ENTRY

    def predict_row(self, x: np.ndarray, pred_margin: bool = False) -> float:
        self.fill_entries(x, self.entries)
        self.result[0] = 0.0                    # predict() adds the trees into result
        self.predict_fn(self._entries_ptr, int(pred_margin), self._result_ptr)
        return float(self.result[0])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.array([self.predict_row(X[i]) for i in range(X.shape[0])], np.float64)


# ============================================================================================
# parity
# ============================================================================================

def tl2cgen_dmatrix(X: np.ndarray):
    """A TL2cgen DMatrix of float64 rows (NaN missing). TL2cgen 1.0 calls ``np.array(copy=False)``,
    which numpy 2 refuses when a cast is needed: hand it float32 C-contiguous rows already."""
    import tl2cgen
    return tl2cgen.DMatrix(np.ascontiguousarray(X, np.float32), dtype="float32", missing=np.nan)


@dataclass
class Parity:
    rows: int                   # validation rows scored
    max_abs_diff: dict          # "a vs b" -> max |p_a - p_b| over the validation rows
    probe_rows: int             # threshold probes scored (one row per distinct split threshold)
    probe_max_abs_diff: dict    # the same over the probes
    tol: float
    ok: bool
    native_direct: str          # how the .so was called


def threshold_probes(arrs: dict, base_row: np.ndarray) -> np.ndarray:
    """One row per reachable split node whose input is EXACTLY the node's threshold, plus an
    all-missing row. xgboost's hist cuts are values of the training data, so inputs equal to a
    threshold are common, and that is where a scorer that moved a threshold branches wrong.

    Each probe follows its node's path: every feature tested above the node is set inside the
    interval the path demands (float32 bounds: left x < t, right x >= t); other features keep
    ``base_row``. A node whose path cannot hold its own threshold is not probed.
    """
    feat, thr = arrs["node_feature"], arrs["node_threshold"]
    left, right = arrs["node_left"], arrs["node_right"]
    rows = []
    inf = np.float32(np.inf)
    for root in arrs["tree_root"]:
        stack = [(int(root), {})]                 # node, {feature: (lo, hi)} with lo <= x < hi
        while stack:
            k, box = stack.pop()
            f = int(feat[k])
            if f < 0:
                continue
            t = thr[k]
            lo, hi = box.get(f, (-inf, inf))
            if lo <= t < hi:
                x = base_row.astype(np.float64).copy()
                for g, (glo, ghi) in box.items():
                    if g != f:
                        x[g] = float(glo) if np.isfinite(glo) else (
                            float(np.nextafter(ghi, -inf)) if np.isfinite(ghi) else x[g])
                x[f] = float(t)
                rows.append(x)
            lbox, rbox = dict(box), dict(box)
            lbox[f] = (lo, min(hi, t))
            rbox[f] = (max(lo, t), hi)
            for child, cbox in ((int(left[k]), lbox), (int(right[k]), rbox)):
                if cbox[f][0] < cbox[f][1]:
                    stack.append((child, cbox))
    rows.append(np.full(len(base_row), np.nan))
    return np.asarray(rows, np.float64)


def _score_all(model_dir: Path, X: np.ndarray, tree_model, scalar=None) -> dict:
    """The four scorers on ``X`` (and ``scalar``, the perfect layout beside the engine's lane
    layout, when given). The library is loaded from a fresh copy: dlopen() of a path
    already loaded in this process returns the OLD library even when the file was rebuilt,
    which would check a stale .so after a second compile in the same process (a notebook)."""
    import shutil
    import tempfile
    import tl2cgen
    import xgboost as xgb
    booster = xgb.Booster(model_file=str(model_dir / XGB_FILE))
    p_xgb = np.asarray(booster.inplace_predict(X), np.float64).reshape(-1)
    with tempfile.TemporaryDirectory(prefix="wb-parity-") as tmp:
        lib = Path(tmp) / LIB_FILE
        shutil.copyfile(model_dir / LIB_FILE, lib)
        predictor = tl2cgen.Predictor(str(lib), nthread=1)
        p_tl = np.asarray(predictor.predict(tl2cgen_dmatrix(X)), np.float64).reshape(-1)
        p_so = NativePredictor(lib).predict(X)
    p_nb = score_rows(tree_model, X, np.empty(len(X), np.float64))
    out = {"xgboost": p_xgb, "tl2cgen_predictor": p_tl, "native_so": p_so, "numba_score_row": p_nb}
    if scalar is not None:
        out["numba_perfect_layout"] = score_rows(scalar, X, np.empty(len(X), np.float64))
    return out


def _pairwise_max(scores: dict) -> dict:
    names = list(scores)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = np.abs(scores[a] - scores[b])
            out[f"{a} vs {b}"] = float(np.max(d)) if len(d) else 0.0
    return out


def parity_check(model_dir, X: np.ndarray, tol: float = PARITY_TOL, tree_model=None, probes: bool = True) -> Parity:
    """Score ``X`` (and the threshold probes) with the four scorers and compare every pair."""
    d = Path(model_dir)
    X = np.ascontiguousarray(X, np.float64)
    tm = tree_model if tree_model is not None else load_tree_model(d)
    arrs = read_trees(d / TREES_FILE)
    # the engine takes the lane layout here: check the scalar layout (hosts without VBMI) too
    scalar = tree_model_from_arrays(arrs, d / TREES_FILE, "perfect") if tm.layout == LAYOUT_LANES else None
    diffs = _pairwise_max(_score_all(d, X, tm, scalar))
    pdiffs, n_probe = {}, 0
    if probes:
        # the probes' other features sit at each column's median; a feature missing in every row
        # (e.g. one the capture never carries) takes 0 (np.nanmedian would warn "All-NaN slice")
        base = np.zeros(X.shape[1] if X.ndim == 2 else tm.n_features)
        seen = ~np.isnan(X).all(axis=0) if len(X) else np.zeros(len(base), bool)
        if seen.any():
            base[seen] = np.nanmedian(X[:, seen], axis=0)
        base[np.isnan(base)] = 0.0
        P = threshold_probes(arrs, base)
        pdiffs, n_probe = _pairwise_max(_score_all(d, P, tm, scalar)), len(P)
    ok = all(v < tol for v in (*diffs.values(), *pdiffs.values()))
    return Parity(int(len(X)), diffs, n_probe, pdiffs, tol, ok,
                  "ctypes: predict(union Entry*, int pred_margin, float*)")


# ============================================================================================
# the command's runner function
# ============================================================================================

@dataclass
class CompileResult:
    model_dir: str
    lib: str
    trees: str
    n_trees: int
    max_depth: int
    n_nodes: int
    params: dict
    options: list
    compile_s: float
    parity: Parity


def compile_model(model_dir, *, nthread: int | None = None, parallel_comp: int | None = None,
                  quantize: bool = False, options: tuple[str, ...] = ("-march=native",), tol: float = PARITY_TOL,
                  validation: np.ndarray | None = None) -> CompileResult:
    """Compile ``model_dir`` (model.json + schema.json): predictor.so, trees.npz, parity, compile.json.

    ``validation``: rows for the parity check (default: the model's validation.npz ``X``).
    Raises ParityError (after writing compile.json) when two scorers differ by ``tol`` or more.
    """
    d = Path(model_dir)
    schema = read_schema(d / SCHEMA_FILE)
    tl_model = load_treelite(d)
    if tl_model.num_feature != len(schema):
        raise ModelError(d / XGB_FILE, f"{tl_model.num_feature} features but {SCHEMA_FILE} lists {len(schema)}")
    arrs = trees_from_treelite(tl_model, d / XGB_FILE)
    trees_path = write_trees(arrs, d / TREES_FILE)
    read_trees(trees_path)                                  # what the engine will read, checked
    params = default_params(tl_model.num_tree, nthread, parallel_comp, quantize)
    t0 = time.perf_counter()
    lib = export_library(tl_model, d / LIB_FILE, params=params, nthread=nthread, options=options)
    compile_s = time.perf_counter() - t0
    if validation is None:
        vpath = d / VALIDATION_FILE
        if not vpath.is_file():
            raise ModelError(vpath, "missing: the parity check needs the validation rows `workbench train` saves")
        try:
            with np.load(vpath, allow_pickle=False) as z:
                validation = z["X"]
        except (ValueError, OSError, KeyError) as e:
            raise ModelError(vpath, f"not a readable validation set ({e})") from None
    names = tuple(f["name"] for f in schema)
    tm = load_tree_model(d, features=names)
    parity = parity_check(d, validation, tol, tree_model=tm)
    depth = tm.depth if tm.depth >= 0 else -1
    res = CompileResult(str(d), str(lib), str(trees_path), int(tl_model.num_tree), int(depth),
                        int(len(arrs["node_feature"])), params, list(options), compile_s, parity)
    (d / COMPILE_FILE).write_text(json.dumps(asdict(res), indent=2) + "\n")
    if not parity.ok:
        worst = max([(f"{k} (validation)", v) for k, v in parity.max_abs_diff.items()]
                    + [(f"{k} (threshold probes)", v) for k, v in parity.probe_max_abs_diff.items()],
                    key=lambda kv: kv[1])
        hint = (" TL2cgen 1.0's quantize=1 writes its threshold table with 8 significant digits, which moves"
                " some float32 thresholds: compile without --quantize") if params.get("quantize") else ""
        raise ParityError(d / COMPILE_FILE, f"scorers disagree: {worst[0]} max abs diff {worst[1]:.3g} >= {tol:g}."
                                            + hint)
    if names != engine_features():
        # compiled for another feature list: the engine would refuse it at load; say so now
        load_tree_model(d)
    return res
