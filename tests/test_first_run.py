"""A first run (empty numba cache) says what it compiles, step by step, and where the cache is;
a warm run says nothing of it (engine/precompile.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.engine.precompile import (STATELESS_STEPS, _finish_time, _workers_wanted, compile_engine, early_steps,
                                         engine_steps, plan_order)

REPO = Path(__file__).resolve().parent.parent
NOTE = "compiling the engine for this CPU, first run only"
RUN_TIMEOUT_S = 900


def test_steps_come_after_what_they_call():
    for market in (False, True):
        for model in (False, True):
            names = [s.name for s in engine_steps(market, model)]
            for i, s in enumerate(engine_steps(market, model)):
                assert all(names.index(d) < i for d in s.after), s
            assert ("market" in names) == market and ("scorer" in names) == model


def test_a_failing_worker_is_reported_and_left_to_the_caller(tmp_path):
    """Workers that cannot make the engine state (a market folder that is not there) fail every step
    that needs it: each is reported, and the caller is told to compile it itself; no exception. (The
    stateless steps, plain integer maths, do not read the market.)"""
    said = []
    rep = compile_engine(True, market_folder=str(tmp_path / "no-such-market"), say=said.append, workers=1)
    assert set(rep.failed) == {s.name for s in engine_steps(True, False)} - set(STATELESS_STEPS)
    assert any("compile step market failed in its worker; compiling it here instead" in s for s in said)
    assert any("compile step engine_loop failed in its worker; compiling it here instead" in s for s in said)


def test_a_second_first_run_waits_for_the_lock_and_says_so():
    """While another process compiles into the cache folder (it holds the folder's lock), a first
    run says it waits and goes on only once the lock is released."""
    import fcntl
    import threading
    import time
    from workbench.engine.precompile import LOCK_FILE, cache_folder, first_run_lock
    Path(cache_folder()).mkdir(parents=True, exist_ok=True)
    with open(Path(cache_folder()) / LOCK_FILE, "a") as other:      # (flock: per open file, so a second open conflicts)
        fcntl.flock(other, fcntl.LOCK_EX)
        threading.Timer(0.6, fcntl.flock, (other, fcntl.LOCK_UN)).start()
        said = []
        t = time.perf_counter()
        with first_run_lock(say=said.append):
            waited = time.perf_counter() - t
    assert waited >= 0.5
    assert len(said) == 1 and NOTE in said[0] and "waiting for it" in said[0] and cache_folder() in said[0]
    with first_run_lock(say=said.append):                          # free now: no word
        pass
    assert len(said) == 1


def test_a_stop_while_waiting_for_the_lock_ends_the_wait():
    import fcntl
    from workbench.engine.precompile import LOCK_FILE, CompileStopped, cache_folder, first_run_lock
    Path(cache_folder()).mkdir(parents=True, exist_ok=True)
    with open(Path(cache_folder()) / LOCK_FILE, "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(CompileStopped):
            with first_run_lock(say=lambda _t: None, stop=lambda: True):
                pass


def test_setup_compile_refuses_a_missing_capture_by_name(tmp_path):
    from workbench.runner.first_compile import main
    with pytest.raises(SystemExit) as e:
        main(["--capture", str(tmp_path / "none.pcapng")])
    assert "--capture" in str(e.value) and "none.pcapng" in str(e.value)


def test_setup_compile_leaves_both_replay_modes_cached():
    """make setup's compile (runner/first_compile.py): afterwards a replay with and without a
    market finds process_batch in the cache (a warm start)."""
    from workbench.capture import open_capture
    from workbench.engine.deshred import new_deshred_state
    from workbench.engine.pipeline import new_batch_out
    from workbench.engine.precompile import engine_cached
    from workbench.engine.state import market_of, new_state
    from workbench.runner.engine_run import empty_batch
    from workbench.runner.first_compile import compile_modes
    cap = REPO / "captures" / "market.pcapng"
    seconds = compile_modes(cap, str(cap) + ".market", say=lambda _t: None)
    assert set(seconds) == {"replay --market", "replay"}
    buf = open_capture(cap).buf
    for folder in (str(cap) + ".market", ""):
        state = new_state(tip_lamports=0)
        mk = market_of(folder, state) if folder else None
        assert engine_cached(empty_batch(buf), state, new_deshred_state(), new_batch_out(1), mk, None)


# the engine's kernels the compile workers make: a caller that compiles one of them again got its
# argument types from a step that typed them otherwise (each type is a compile of its own)
WORKER_KERNELS = ("process_batch", "market_tx", "_sandwich", "_arb_two", "_arb_three", "_liquidations",
                  "decode_swaps", "decode_txn", "_decode", "add_data_shred", "wp_swap_within_tick", "_scan_pcapng",
                  "encode64_column", "drain_ready", "_ip", "shred_kind", "fill_features", "record_call")


@pytest.mark.slow
def test_cold_market_replay_compiles_no_kernel_of_the_workers_again(tmp_path):
    """A first replay with a market: it says so first, naming the cache folder, and counts its
    steps; every step's kernel is typed as the caller calls it, so the caller (and the replay after
    its warm-up: the capture's scan, the opportunities' base58) loads them from the cache; the
    steps' order runs the longest chain first; the next replay is warm and says nothing of it.
    (One first run for all of it: each costs a whole compile of the engine.)"""
    compiled = tmp_path / "compiled.txt"
    cache = tmp_path / "numba"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
    env.pop("NUMBA_BOUNDSCHECK", None)
    cap = REPO / "captures" / "market.pcapng"
    args = ["replay", str(cap), "--market", str(cap) + ".market", "--no-db", "--quiet", "--out"]
    p = subprocess.run([sys.executable, str(REPO / "tests" / "compiles_in_caller.py"), str(compiled), *args,
                        str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "failed" not in p.stderr, p.stderr[-3000:]
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
    again = [n for n in compiled.read_text().split() if n.rsplit(":", 1)[1] in WORKER_KERNELS]
    assert not again, again
    said = [ln.split(": ", 2)[2] for ln in p.stderr.splitlines() if re.search(r": step \d+ of \d+: ", ln)]
    steps = engine_steps(True, False, "pcapng")
    n = _workers_wanted(len(steps))
    planned = plan_order(steps, n, early_steps(True, n))        # the workers started early take theirs first
    assert set(said[:2]) == {s.what for s in planned[:2]}, said
    what = {s.name: s.what for s in steps}
    assert what["pcapng_scan"] in said and said.index(what["engine_loop"]) > said.index(what["market"]), said
    warm = subprocess.run([sys.executable, "-m", "workbench.cli", *args, str(tmp_path / "warm")], env=env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert warm.returncode == 0, warm.stderr[-3000:]
    assert NOTE not in warm.stderr


def test_steps_take_the_longest_chain_first():
    """Every step of the market's chain (maths, market_tx, the engine loop) comes before
    the steps nothing waits on (the reader's scan, the row builders), which fill the other core."""
    names = [s.name for s in engine_steps(True, True, "pcap")]
    assert names[-2:] == ["pcap_scan", "row_builders"] or names[-2:] == ["row_builders", "pcap_scan"], names
    assert names.index("engine_loop") == len(names) - 3
    assert "blocks_scan" not in [s.name for s in engine_steps(False, False, "blocks")]
    assert "engine_loop" not in [s.name for s in engine_steps(False, False, loop=False)]


def test_workers_started_early_are_ended_when_not_used(tmp_path):
    """A first run starts its compile workers before its own tables compile; when the engine turns
    out to be cached (another process compiled it meanwhile) they are ended, not left behind."""
    from workbench.engine import precompile
    precompile.start_workers_early(str(tmp_path / "market"), "")
    procs = [p for ps in precompile._early.values() for p in ps]
    assert procs and all(p.poll() is None for p in procs)
    assert list(precompile._early_step.values()) == list(early_steps(True, len(procs)))   # (busy with it already)
    precompile.discard_early_workers()
    assert not precompile._early and all(p.poll() is not None for p in procs)
    assert not precompile._early_step


def test_the_planned_order_keeps_dependencies_and_ends_no_later():
    """plan_order (what compile_engine hands its workers): each step still after the steps it calls,
    and by the steps' weights the planned order ends no later than the longest chain's order."""
    for market in (False, True):
        for model in (False, True):
            for workers in (1, 2, 3):
                steps = engine_steps(market, model, "pcapng")
                planned = plan_order(steps, workers)
                names = [s.name for s in planned]
                assert sorted(names) == sorted(s.name for s in steps)
                assert all(names.index(d) < i for i, s in enumerate(planned) for d in s.after), names
                free = [0.0] * workers
                assert _finish_time(planned, workers, free, {})[0] <= _finish_time(steps, workers, free, {})[0] + 1e-9


def test_the_early_step_is_stateless_and_planned_first():
    """A worker started early takes a step that needs no engine state (the caller is still making
    it), one the market's chain waits on; the plan counts it as the first step started."""
    assert early_steps(False, 2) == ()
    for workers in (1, 2, 3):
        first = early_steps(True, workers)
        assert first and set(first) <= set(STATELESS_STEPS)
        steps = engine_steps(True, False, "pcapng")
        market = next(s for s in steps if s.name == "market")
        assert set(first) <= set(market.after)
        planned = plan_order(steps, workers, first)
        assert [s.name for s in planned[:len(first)]] == list(first)
        names = [s.name for s in planned]
        assert all(names.index(d) < i for i, s in enumerate(planned) for d in s.after), names
