"""A first run (empty numba cache) says what it compiles, step by step, and where the cache is;
a warm run says nothing of it (engine/precompile.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.engine.precompile import compile_engine, engine_steps

REPO = Path(__file__).resolve().parent.parent
NOTE = "compiling the engine for this CPU, first run only"
RUN_TIMEOUT_S = 900


def _replay(cache: Path, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "workbench.cli", "replay", str(REPO / "captures" / "small.pcap"),
                           "--no-db", "--quiet", "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)


@pytest.mark.slow
def test_cold_replay_names_the_cache_and_counts_the_steps(tmp_path):
    cache = tmp_path / "numba"
    p = _replay(cache, tmp_path / "cold")
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [ln for ln in p.stderr.splitlines() if NOTE in ln]
    # the first line on stderr says it is a first run and names the cache folder (the source-hash
    # folder inside NUMBA_CACHE_DIR), before anything compiles
    assert p.stderr.splitlines()[0] == lines[0]
    assert re.search(re.escape(str(cache)) + r"/[0-9a-f]{16}\)", lines[0]), lines[0]
    steps = [m for ln in lines if (m := re.search(r"step (\d+) of (\d+): (.+)$", ln))]
    assert steps and len(steps) == len(lines) - 2, lines      # the first-run line, the step count, the steps
    total = int(steps[0].group(2))
    assert [int(m.group(1)) for m in steps] == list(range(1, total + 1))
    assert {m.group(3) for m in steps} >= {"the shred reassembly", "the transaction decoder", "the engine loop"}
    assert "failed" not in p.stderr
    warm = _replay(cache, tmp_path / "warm")
    assert warm.returncode == 0, warm.stderr[-3000:]
    assert NOTE not in warm.stderr


def test_steps_come_after_what_they_call():
    for market in (False, True):
        for model in (False, True):
            names = [s.name for s in engine_steps(market, model)]
            for i, s in enumerate(engine_steps(market, model)):
                assert all(names.index(d) < i for d in s.after), s
            assert ("market" in names) == market and ("scorer" in names) == model


def test_a_failing_worker_is_reported_and_left_to_the_caller(tmp_path):
    """Workers that cannot start (a market folder that is not there) fail every step they took:
    each is reported, and the caller is told to compile it itself; no exception."""
    said = []
    rep = compile_engine(True, market_folder=str(tmp_path / "no-such-market"), say=said.append, workers=1)
    assert set(rep.failed) == {s.name for s in engine_steps(True, False)}
    assert any("compile step market failed in its worker; compiling it here instead" in s for s in said)
    assert said[-1].endswith("the engine loop")
