"""Start-up: a first run (empty numba cache) and a warm one, for each way the engine runs.

Each run is the ``workbench`` command in a fresh process, timed from start to exit:

* replay: ``workbench replay captures/market.pcapng --no-db``;
* --market: the same with its snapshot (``make demo`` without the store);
* --model: the same with a model folder as well (random trees written by this script: the
  engine's compile does not depend on their values);
* live: ``workbench live --source udp`` on a loopback port for ``--live-s`` seconds
  (nothing sent: start-up is what is measured; its duration is taken off the wall time).

"cold" runs with an empty NUMBA_CACHE_DIR (everything compiled; the first run's progress
messages must name the cache folder), "warm" reuses it. Each cold run gets a cache of its
own, then its warm runs follow. The column "warm-up s" is the run's own ``warmup_s``
(summary.json): compile or cache load, before its clock starts. Goals (issue 16): a first
run with --market compiles in <= 30 s on 2 cores; warm runs take a couple of seconds.
Peer: the warm run of the same command (what a cold run costs on top of it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO, table

CAPTURE = REPO / "captures" / "market.pcapng"
MARKET = REPO / "captures" / "market.pcapng.market"
COMPILE_NOTE = "compiling the engine for this CPU, first run only"
RUN_TIMEOUT_S = 900.0


def write_model(d: Path) -> Path:
    """A model folder of random depth-4 trees over the engine's features (model/compile.py's format)."""
    from workbench.engine.score.model_folder import SCHEMA_FILE, TREES_FILE, TREES_FORMAT_VERSION, engine_features
    from workbench.engine.score.tree_model import POST_SIGMOID
    feats = engine_features()
    rng = np.random.default_rng(5)
    feat, thr, left, right, val, roots = [], [], [], [], [], []

    def grow(depth):
        k = len(feat)
        feat.append(-1), thr.append(0.0), left.append(-1), right.append(-1), val.append(0.0)
        if depth == 4:
            val[k] = float(np.float32(rng.normal(0, 0.3)))
            return k
        feat[k] = int(rng.integers(0, len(feats)))
        thr[k] = float(np.float32(rng.normal()))
        left[k] = grow(depth + 1)
        right[k] = grow(depth + 1)
        return k

    roots = [grow(0) for _ in range(20)]
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / TREES_FILE, node_feature=np.asarray(feat, np.int32), node_threshold=np.asarray(thr, np.float32),
             node_default_left=np.zeros(len(feat), np.int8), node_left=np.asarray(left, np.int32),
             node_right=np.asarray(right, np.int32), node_leaf_value=np.asarray(val, np.float64),
             tree_root=np.asarray(roots, np.int32), format_version=np.int64(TREES_FORMAT_VERSION),
             n_features=np.int64(len(feats)), base_score=np.float64(0.0), sigmoid_alpha=np.float64(1.0),
             postprocess=np.int64(POST_SIGMOID))
    (d / SCHEMA_FILE).write_text(json.dumps({"features": [{"name": f, "dtype": "float64"} for f in feats]}))
    return d


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(mode: str, out: Path, model: Path, live_s: float) -> tuple[list[str], float]:
    """(argv, seconds of the run that are not start-up) of ``mode``."""
    wb = [sys.executable, "-m", "workbench.cli"]
    if mode == "live":
        return wb + ["live", "--source", "udp", "--ports", str(free_udp_port()), "--duration", str(live_s),
                     "--no-db", "--quiet", "--out", str(out)], live_s
    argv = wb + ["replay", str(CAPTURE), "--no-db", "--quiet", "--out", str(out)]
    if mode in ("--market", "--model"):
        argv += ["--market", str(MARKET)]
    if mode == "--model":
        argv += ["--model", str(model)]
    return argv, 0.0


def run(mode: str, cache: str, work: Path, model: Path, live_s: float, cold: bool,
        check_messages: bool = True) -> tuple[float, float, float]:
    """(process wall seconds less the live duration, warmup_s of summary.json, CPU seconds of the
    process and its compile workers) of one run."""
    out = Path(tempfile.mkdtemp(dir=work))
    argv, busy_s = command(mode, out, model, live_s)
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(REPO))
    env.pop("NUMBA_BOUNDSCHECK", None)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=work)
    wall = time.perf_counter() - t - busy_s
    ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru2.ru_utime - ru.ru_utime + ru2.ru_stime - ru.ru_stime
    if p.returncode != 0:
        raise SystemExit(f"{mode}: exit {p.returncode}\n{p.stderr[-3000:]}")
    said = COMPILE_NOTE in p.stderr
    if check_messages and (said != cold or (cold and cache not in p.stderr)):
        raise SystemExit(f"{mode} ({'cold' if cold else 'warm'}): the first-run messages are "
                         f"{'missing or do not name ' + cache if cold else 'there on a warm cache'}:\n{p.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return wall, float(summary.get("warmup_s", float("nan"))), cpu


def cpu_model() -> str:
    """The CPU's model name (compile times depend on it as much as on the core count)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", type=int, default=1, help="cold runs per mode (each with a new empty cache)")
    ap.add_argument("--warm", type=int, default=3, help="warm runs after each cold one")
    ap.add_argument("--modes", default="replay,--market,--model,live")
    ap.add_argument("--live-s", type=float, default=1.0, help="duration of a live run")
    ap.add_argument("--no-message-check", action="store_true",
                    help="do not require the first-run messages (to time a version before them)")
    a = ap.parse_args()
    rows = []
    print(f"# {cpu_model()}, {os.cpu_count()} CPUs; load average (1/5/15 min) {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = write_model(work / "model")
        for mode in a.modes.split(","):
            cold, warm = [], []
            load_before = load()
            for _ in range(a.cold):
                cache = tempfile.mkdtemp(dir=work, prefix="numba-")
                check = not a.no_message_check
                cold.append(run(mode, cache, work, model, a.live_s, True, check))
                warm += [run(mode, cache, work, model, a.live_s, False, check) for _ in range(a.warm)]
            med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
            c, w = med(cold, 0), med(warm, 0)
            load_after = load()
            rows += [(mode, "cold (empty cache)", len(cold), f"{c:.1f}", f"{med(cold, 1):.1f}", f"{med(cold, 2):.1f}",
                      f"{c / w:.1f}x", f"{load_before} -> {load_after}"),
                     (mode, "warm", len(warm), f"{w:.2f}", f"{med(warm, 1):.2f}", f"{med(warm, 2):.2f}", "1.0x", "")]
            print(f"# {mode}: cold {c:.1f} s ({med(cold, 2):.1f} s CPU), warm {w:.2f} s; load {load_before} -> "
                  f"{load_after}", flush=True)
    table(f"workbench start-up, fresh process each run, median ({cpu_model()}, {os.cpu_count()} CPUs, load now "
          f"{load()})", rows, ("mode", "numba cache", "runs", "process wall s", "warm-up s", "CPU s (all processes)",
                               "wall vs warm", "load 1/5/15 before -> after"))
    print("\ngoal: cold with --market <= 30 s on 2 cores (process wall, quiet machine: a load above the core "
          "count stretches the wall time, while the CPU column says what the runs cost)")


if __name__ == "__main__":
    main()
