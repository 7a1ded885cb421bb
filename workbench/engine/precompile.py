"""A first run on this CPU: compile the engine in steps, several at once, and say so.

numba compiles one function at a time, in Python, on one core, and caches each
``cache=True`` function on its own: when a caller is compiled, a callee already in the
cache (with the same argument types) is loaded, not compiled again. So on a cold cache
``compile_engine`` hands the steps to a few worker processes (``python -m
workbench.engine.precompile_child``, one per core, started as soon as a first run is
known: ``say_if_first_run``; with a market, one takes the Whirlpool maths at once, while the
caller compiles its tables) that compile the engine's kernels into the cache, each step
with exactly the argument types its caller passes (a literal, a read-only or a
differently laid out array is a compile of its own): with a market, the pool maths, the sizing
maths, the Whirlpool maths, the swap decoders and the detectors, then the market's transaction
step that calls them (LLVM inlines the detectors into it as it links them: ``forceinline``, so
the hot path makes no call per swap); the shred reassembly and the transaction decoder; with a
model its scorer; then the engine loop, ``process_batch``, which loads all of these. Nothing waits on the
capture reader's scan and the Arrow row builders (which a run compiled alone, after its
warm-up, before they were steps): they fill a worker while the other compiles the engine
loop. ``plan_order`` orders the steps by their weights so that both workers stay busy
until the end; the caller then loads every kernel from the cache. Each step is
announced as it starts ("step 3 of 9"), with the cache folder named, so a first run
never sits silent. On a warm cache (``engine_cached``) nothing of this runs.

A worker that fails is only an optimisation lost: the caller compiles what is missing.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import selectors
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numba
import numpy as np

from ..wire.txn import decode_txn

STEP_TIMEOUT_S = 900.0       # a worker silent this long is given up on (compiling then happens in the caller)
STOP_POLL_S = 0.2            # how often the wait for the workers looks whether the caller asked to stop


class CompileStopped(Exception):
    """The caller asked to stop (a signal during a first run's compile): the workers were ended.
    Raised only between steps, never from inside numba's compiler, where an exception raised by a
    signal handler is swallowed by LLVM's callbacks and leaves the compiler in a broken state."""


def _stop_if_asked(stop: Callable[[], bool] | None) -> None:
    if stop is not None and stop():
        raise CompileStopped("a stop was asked while the engine compiled")


WORKERS_MAX = 4              # more workers than independent steps would only load numba again
READER_SCANS = ("pcap", "pcapng")   # capture readers (their ``format``) whose scan is a compile step


class Step(NamedTuple):
    name: str                # the worker's name for it (precompile_child reads it)
    what: str                # what the user is told
    after: tuple[str, ...]   # steps whose kernels it calls (compiled first, so it loads them)
    weight: float = 1.0      # its compile cost relative to the others (CompileReport's CPU per step)


def _by_longest_chain(steps: list[Step]) -> list[Step]:
    """``steps`` ordered by the compile cost still ahead of each (its own weight plus the longest
    chain of steps waiting on it), highest first: a free worker takes the first ready step, so the
    chain that ends last starts first and the short independent steps fill the other core
    meanwhile. A step always comes after the steps it waits on (their chains contain its own)."""
    waiting = {s.name: [t for t in steps if s.name in t.after] for s in steps}
    ahead: dict[str, float] = {}

    def cost(s: Step) -> float:
        if s.name not in ahead:
            ahead[s.name] = s.weight + max((cost(t) for t in waiting[s.name]), default=0.0)
        return ahead[s.name]

    return sorted(steps, key=cost, reverse=True)


def _finish_time(order: list[Step], workers: int, free_at: list[float], done: dict[str, float]) -> tuple[float, list[Step]]:
    """(when the last step ends, the order steps start in) if each free worker takes the first step of
    ``order`` whose dependencies are done, steps taking their weight; workers free at ``free_at``,
    ``done`` the steps already ended (name -> end)."""
    done, free_at, pending, started = dict(done), list(free_at), list(order), []
    running: list[tuple[float, str]] = []
    while pending:
        now = min(free_at)
        ready = next((t for t in pending if all(d in done and done[d] <= now for d in t.after)), None)
        if ready is None:           # wait for the next running step to end
            later = [end for end, _ in running if end > now]
            free_at[free_at.index(now)] = min(later)
            continue
        pending.remove(ready)
        started.append(ready)
        end = now + ready.weight
        free_at[free_at.index(now)] = end
        done[ready.name] = end
        running.append((end, ready.name))
    return max([0.0] + list(done.values())), started


def plan_order(steps: list[Step], workers: int, first: tuple[str, ...] = ()) -> list[Step]:
    """The order for ``workers`` workers that take the first ready step: built one start at a time,
    each time the ready step whose choice lets the rest (taken by the longest chain) end soonest.
    The longest chain alone can leave the steps it waits on unevenly split between the workers (one
    then still compiles a dependency of the engine loop when the other is free). The steps named in
    ``first`` (given to workers started early: early_steps) come first, as they start first."""
    order = [s for s in steps if s.name in first]
    rest = [s for s in steps if s.name not in first]
    while rest:
        _, taken = _finish_time(order + rest, workers, [0.0] * workers, {})
        # candidates: the steps that could start at the next start's time in some order
        head = taken[len(order)]
        best, best_end = head, None
        for cand in rest:
            trial = order + [cand] + [t for t in rest if t is not cand]
            end, started = _finish_time(trial, workers, [0.0] * workers, {})
            if started[len(order)] is cand and (best_end is None or end < best_end - 1e-9):
                best, best_end = cand, end
        order.append(best)
        rest.remove(best)
    return order


def engine_steps(market: bool, model: bool, reader: str = "", loop: bool = True) -> list[Step]:
    """The compile steps of a run with/without a market and a model, in the order workers take
    them (``_by_longest_chain``). ``reader`` ('pcap', 'pcapng' or '') adds the capture reader's
    scan; ``loop`` False leaves ``process_batch`` out (a caller whose own loop calls it with
    other types). Each step compiles what a later one calls, with the argument types it passes,
    so nothing is compiled twice and the steps' chains, not one big function, set the pace."""
    steps = []
    if market:
        # the detectors are steps of their own (a worker each, beside the maths): LLVM inlines them
        # into market_tx when it links it (forceinline), so the hot path makes no call per swap
        steps += [Step("whirlpool_maths", "the Whirlpool maths", (), 4.0),
                  # the market step waits on all of its maths: split in two, they even out the two
                  # workers' loads before it (then it starts sooner)
                  Step("sizing_maths", "the constant-product sizing maths", (), 1.8),
                  Step("pool_maths", "the pool reads and the opportunity writer", (), 1.7),
                  Step("swap_decoders", "the DEX instruction decoders", (), 4.8),
                  Step("sandwich", "the sandwich detector", ("pool_maths",), 1.4),
                  Step("arbitrage", "the arbitrage detectors", ("sizing_maths", "pool_maths"), 1.5),
                  Step("liquidation", "the liquidation detector", ("pool_maths",), 0.6),
                  Step("market", "the market's transaction step",
                       ("whirlpool_maths", "sizing_maths", "pool_maths", "swap_decoders", "sandwich", "arbitrage",
                        "liquidation"), 5.4)]
    steps += [Step("reassembly", "the shred reassembly", (), 4.3), Step("decoder", "the transaction decoder", (), 3.7)]
    if model:
        steps.append(Step("scorer", "the model's scorer", (), 2.7))
    if loop:
        steps.append(Step("engine_loop", "the engine loop", tuple(s.name for s in steps), 5.4))
    if reader in READER_SCANS:
        steps.append(Step(f"{reader}_scan", f"the {reader} reader", (), 2.8 if reader == "pcapng" else 0.5))
    steps.append(Step("row_builders", "the Arrow row builders", (), 2.5 if market else 0.3))
    return _by_longest_chain(steps)


# the steps that compile kernels of plain integer arguments: a worker compiles them without making the
# engine state (whose own kernels the caller is compiling meanwhile on a first run)
STATELESS_STEPS = ("whirlpool_maths", "sizing_maths")


def early_steps(market: bool, workers: int) -> tuple[str, ...]:
    """The steps workers started early (start_workers_early) take at once, one each, while the caller
    still compiles the engine state's kernels: the longest stateless step of the market's chain,
    which waits on it, on the core otherwise idle then (a second would share the two cores with
    the caller's own compile, which the other steps wait on)."""
    return ("whirlpool_maths",)[:workers] if market else ()


# --- the steps (run in a worker; each compiles with process_batch's argument types) ------------

def _buf(buf_readonly: bool) -> np.ndarray:
    a = np.zeros(64, np.uint8)
    a.flags.writeable = not buf_readonly
    return a


def _sig(*values) -> tuple:
    return tuple(numba.typeof(v) for v in values)


def compile_step(name: str, buf_readonly: bool, state, ds, out, mk, model) -> None:
    """Compile step ``name`` (see engine_steps) into numba's cache."""
    i64, u64 = numba.int64, numba.uint64
    buf = _buf(buf_readonly)
    if name == "reassembly":
        from .deshred import add_data_shred, drain_ready
        add_data_shred(ds, buf, np.int64(0), np.int64(0), np.int64(0), np.int64(0))
        # process_batch drains into its rows from row 0: a literal 0, which numba types apart from int64
        drain_ready.compile(_sig(ds, out.ready) + (numba.types.literal(0), i64))
    elif name == "decoder":
        # process_batch decodes from the frame buffer or the reassembly slab (writable): one type
        decode_txn(buf, np.int64(0), np.int64(0), out.txn, np.int64(0), out.instrs, np.int64(0), out.luts,
                   np.int64(0))
        # and walks the frame's headers (the IP layer is a call) and asks whether a payload is a shred
        from ..wire.net import _ip
        from ..wire.shred import shred_kind
        _ip.compile((numba.typeof(buf), i64, i64, i64))
        shred_kind.compile((numba.typeof(buf), i64, i64))
        # the features of a decoded transaction, as process_batch calls them (a row of out.tx)
        from ..metrics.hist import record_call
        from .features import fill_features
        record_call.compile(_sig(state.hist_counts, state.hist_stats) + (i64, i64))
        fill_features.compile(_sig(buf, out.txn[0], out.instrs, state.keys, state.key_slots, state.key_meta, out.tx[0],
                                   out.prog_ids) + (i64,) + _sig(state.prog_tx_counts, out.ins_pid))
    elif name == "swap_decoders":
        from ..wire.programs.dispatch import decode_swaps
        decode_swaps.compile(_sig(buf, out.txn[0], out.instrs, out.luts, out.ins_pid, out.mscratch.events)
                             + (i64,) + _sig(state.ev_rejects))
    elif name == "whirlpool_maths":
        from .market.whirlpool import wp_swap_within_tick
        wp_swap_within_tick.compile((u64,) * 10 + (numba.boolean, numba.boolean))
    elif name == "sizing_maths":
        # the exact sizings the detectors call, with the types they pass
        from .market.constant_product import min_amount_in_for_out, optimal_two_pool_arb_in
        optimal_two_pool_arb_in.compile((u64,) * 8 + (i64,))
        min_amount_in_for_out.compile((u64,) * 5 + (i64,))
    elif name == "pool_maths":
        # the pool reads and the row writer the detectors call, with the types they pass
        from .market.arbitrage import _route_out
        from .market.emit import _emit_row
        from .market.pools import _in, _out
        f64 = numba.float64
        mkt, opps, ctx, fx = _sig(mk, out.opps, out.ctx, out.mscratch.fx)
        _out.compile((mkt, i64, i64, u64, u64, u64))
        _in.compile((mkt, i64, u64, u64, u64))
        _route_out.compile((mkt,) + _sig(out.mscratch.route, out.mscratch.sides) + (u64,))
        _emit_row.compile((opps,) + (i64,) * 7 + (u64, u64, i64, f64, i64, i64, ctx, fx, mkt))
    elif name in ("sandwich", "arbitrage", "liquidation"):
        # market_tx's calls: pool p, direction and counts int64, a swap event's exact_in int8 and
        # amounts uint64, the tip int64
        mkt, opps, ctx, fx = _sig(mk, out.opps, out.ctx, out.mscratch.fx)
        if name == "sandwich":
            from .market.sandwich import _sandwich
            _sandwich.compile((mkt, i64, i64, numba.int8, u64, u64, i64, opps, i64, ctx, fx))
        elif name == "arbitrage":
            from .market.arbitrage import _arb_three, _arb_two
            _arb_two.compile((mkt, i64, numba.typeof(mk.sibs).dtype, i64, opps, i64, ctx, fx))
            # the cycle index runs over range(cyc_first[p], cyc_first[p + 1]): cyc_first's integer type
            cyc = numba.typeof(mk.cyc_first).dtype
            _arb_three.compile((mkt, cyc, i64, opps, i64, ctx, fx) + _sig(out.mscratch.route, out.mscratch.sides))
        else:
            from .market.liquidation import _liquidations
            _liquidations.compile((mkt, i64, i64, opps, i64, ctx, fx))
    elif name == "market":
        from .market.transaction import market_tx
        txn = out.txn[0]
        txn["instr_cnt"] = 0          # an empty transaction: market_tx returns at once
        market_tx(buf, txn, out.instrs, out.luts, out.ins_pid, out.tx[0], state.keys, state.key_slots, mk,
                  out.mscratch, out.swaps, np.int64(0), out.opps, np.int64(0), np.int64(0), state.dcount,
                  state.ev_rejects, out.ctx, np.int64(1))
    elif name == "engine_loop":
        # an empty batch over the run's buffer type, as the caller's warm-up passes it
        from ..capture.frames import FrameBatch, empty_columns
        from .pipeline import process_batch
        process_batch(FrameBatch(buf, *empty_columns(0), 0), state, ds, out, 0, mk, model)
    elif name == "pcap_scan":
        from ..capture.frames import empty_columns
        from ..capture.pcap import _scan_pcap
        off, caplen, wirelen, ts_ns, _ = empty_columns(1)
        # as PcapReader calls it: position, byte swap, ns per fraction, header size and count as Python values
        _scan_pcap.compile(_sig(buf, 0, False, 1, 16, off, caplen, wirelen, ts_ns, 1))
    elif name == "pcapng_scan":
        from ..capture.frames import empty_columns
        from ..capture.pcapng import IF_COLS, MAX_INTERFACES, ST_COLS, _scan_pcapng
        st, ifaces = np.zeros(ST_COLS, np.int64), np.zeros((MAX_INTERFACES, IF_COLS), np.int64)
        _scan_pcapng.compile(_sig(buf, 0, st, ifaces, *empty_columns(1), 1))
    elif name == "row_builders":
        from ..wire.txn import SIGNATURE_SZ
        from .tables import KeyNames, encode_strings, tx_table
        tx_table(out.tx[:0], out.prog_ids[:0], KeyNames(state.keys))
        if mk is not None:            # the opportunities' signatures (opp_table), base58
            encode_strings(np.zeros(SIGNATURE_SZ, np.uint8), np.zeros(1, np.int64), SIGNATURE_SZ)
    elif name == "scorer":
        from .score.kernels import score_opportunity
        features = numba.typeof(out.opps).dtype.typeof("features")   # a record's array field, as the engine has it
        score_opportunity.compile(_sig(model) + (features,) + _sig(out.mscratch.xx))
    else:
        raise ValueError(f"unknown compile step {name!r}")


# --- the caller's side ---------------------------------------------------------------------------

def _args_sig(dispatcher, args) -> tuple:
    return tuple(dispatcher.typeof_pyval(a) for a in args)


def is_cached(dispatcher, args) -> bool:
    """True when numba's cache holds ``dispatcher`` compiled for the types of ``args`` on this CPU
    (what a call would load instead of compiling)."""
    try:
        cache = dispatcher._cache
        key = cache._index_key(_args_sig(dispatcher, args), dispatcher.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:            # numba's cache internals moved: fall back on "any version cached"
        from .. import NUMBA_CACHE_DIR
        name = dispatcher.py_func.__qualname__
        return any(Path(NUMBA_CACHE_DIR).rglob(f"*.{name}-*.nbi"))


def engine_cached(batch, state, ds, out, mk, model) -> bool:
    """True when ``process_batch`` with these arguments' types is in the cache (a warm start)."""
    from .pipeline import process_batch
    return is_cached(process_batch, (batch, state, ds, out, np.int64(0), mk, model))


def cache_folder() -> str:
    from .. import NUMBA_CACHE_DIR
    return NUMBA_CACHE_DIR


def say_stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def say_if_first_run(say: Callable[[str], None] = say_stderr, market_folder: str = "",
                     model_folder: str = "") -> bool:
    """A cache folder holding no ``process_batch`` at all is a first run: say so at once, before the
    engine state's key table and the market loader (jitted too) compile ahead of the steps, so
    that a first run speaks in its first second, and start the compile workers for a run with
    ``market_folder`` and ``model_folder`` now (start_workers_early). True when it said so."""
    if any(Path(cache_folder()).rglob("*.process_batch-*.nbi")):
        return False
    say(f"compiling the engine for this CPU, first run only (numba cache: {cache_folder()}): "
        "its tables first, then the steps below")
    start_workers_early(market_folder, model_folder)
    return True


# workers started before compile_engine, by the market and model folders they were started for
_early: dict[tuple[str, str], list[subprocess.Popen]] = {}
_early_step: dict[int, str] = {}     # worker pid -> the step it was given at its start (early_steps)


def _workers_wanted(n_steps: int, workers: int | None = None) -> int:
    return workers or max(1, min(os.cpu_count() or 1, WORKERS_MAX, n_steps))


def start_workers_early(market_folder: str = "", model_folder: str = "") -> None:
    """Start the compile workers of a first run now, while the caller still makes the engine state
    (whose kernels compile on a first run too): a worker takes as long to import numba and the
    engine as a step to compile, and does it beside the caller instead of after it. A worker
    makes its own state only at its first step that needs it, when the caller's kernels are in the
    cache. compile_engine takes them; discard_early_workers ends the ones it did not take. With a
    market, the first takes early_steps at once (the caller's tables compile on one core meanwhile)."""
    key = (market_folder or "", model_folder or "")
    if key in _early:
        return
    n = _workers_wanted(len(engine_steps(bool(key[0]), bool(key[1]))))
    procs = [_worker(*key) for _ in range(n)]
    for p, name in zip(procs, early_steps(bool(key[0]), n)):
        try:
            p.stdin.write(name + "\n")
            p.stdin.flush()
            _early_step[p.pid] = name
        except OSError:                   # (a worker that died at once: compile_engine finds it gone)
            pass
    _early[key] = procs


def discard_early_workers() -> None:
    """End the workers started early that no compile took (the engine was in the cache after all)."""
    while _early:
        _, procs = _early.popitem()
        for p in procs:
            _early_step.pop(p.pid, None)
            p.kill()
            p.wait()


atexit.register(discard_early_workers)


LOCK_FILE = ".first-run.lock"    # in the cache folder: held by the process compiling the engine into it


@contextmanager
def first_run_lock(say: Callable[[str], None] = say_stderr, stop: Callable[[], bool] | None = None) -> Iterator[None]:
    """Held while a first run compiles into this cache folder (its steps and its own final step),
    so that a second process started meanwhile (``make setup``'s compile and a replay, two
    replays at once) waits, says so, then finds the engine in the cache instead of compiling it
    a second time on the same cores. The caller looks again whether the engine is cached once it
    holds the lock. A lock, not a marker file: the kernel drops it when its process dies.
    ``stop()`` true while waiting raises CompileStopped."""
    folder = Path(cache_folder())
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"compiling the engine for this CPU, first run only (numba cache: {cache_folder()}): another "
                "process is compiling it into this cache; waiting for it")
            while True:
                _stop_if_asked(stop)
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(STOP_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class CompileReport(NamedTuple):
    seconds: float                        # wall seconds of the workers' part
    steps: dict[str, float]               # wall seconds each step took in its worker
    cpu: dict[str, float]                 # CPU seconds of each step (what it costs on a quiet machine)
    failed: dict[str, str]                # step -> the worker's error (the caller compiles it then)


def _worker(market_folder: str, model_folder: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "workbench.engine.precompile_child", f"--market={market_folder or ''}",
            f"--model={model_folder or ''}"]
    # the worker imports this very package (a notebook or script may have put it on sys.path), so
    # it compiles the same sources into the same cache folder, with the same NUMBA_* settings
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, bufsize=1, env=env)


def compile_engine(buf_readonly: bool, market_folder: str = "", model_folder: str = "",
                   say: Callable[[str], None] = say_stderr, final: tuple[str, ...] = (),
                   workers: int | None = None, stop: Callable[[], bool] | None = None,
                   reader: str = "", loop: bool = True) -> CompileReport:
    """Compile the engine's steps (engine_steps: ``reader`` and ``loop`` as there) in worker
    processes, telling ``say`` each step as it starts. ``final`` names the steps the caller does
    itself afterwards (counted and announced here as the last ones: the caller then compiles
    them without a word).
    ``stop()`` true ends the workers and raises
    CompileStopped (looked at every STOP_POLL_S while the workers compile, and last before
    returning, so that the caller need not look again before its own final steps)."""
    t0 = time.perf_counter()
    steps = engine_steps(bool(market_folder), bool(model_folder), reader, loop)
    total = len(steps) + len(final)
    n = _workers_wanted(len(steps), workers)
    names = {s.name for s in steps}
    procs = _early.pop((market_folder or "", model_folder or ""), [])
    # (a worker busy with a step this compile does not have would answer for it: of no use here)
    usable = [p for p in procs if _early_step.get(p.pid, next(iter(names))) in names][:n]
    _early[("", "-")] = [p for p in procs if p not in usable]   # (with any started for other folders)
    procs = usable
    given = {p.pid: _early_step.pop(p.pid) for p in procs if p.pid in _early_step}
    discard_early_workers()
    steps = plan_order(steps, n, tuple(given.values()))
    head = f"compiling the engine for this CPU, first run only (numba cache: {cache_folder()})"
    say(f"{head}: {total} steps, {n} at a time")
    procs += [_worker(market_folder, model_folder) for _ in range(n - len(procs))]
    flag = " readonly" if buf_readonly else ""
    sel = selectors.DefaultSelector()
    for p in procs:
        sel.register(p.stdout, selectors.EVENT_READ, p)
    pending = list(steps)
    done: set[str] = set()
    busy: dict[int, Step] = {}            # worker pid -> its step
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}
    failed: dict[str, str] = {}
    alive = list(procs)
    started = 0
    for p in procs:                       # the steps workers started early took at once
        if p.pid in given:
            step = next(s for s in pending if s.name == given[p.pid])
            pending.remove(step)
            busy[p.pid] = step
            started += 1
            say(f"compiling the engine for this CPU, first run only: step {started} of {total}: {step.what}")
    try:
        while pending or busy:
            for p in list(alive):
                if p.pid in busy:
                    continue
                ready = next((s for s in pending if all(d in done for d in s.after)), None)
                if ready is None:
                    break
                pending.remove(ready)
                try:
                    p.stdin.write(ready.name + flag + "\n")
                    p.stdin.flush()
                except OSError:           # the worker is gone: the step goes back to the queue
                    pending.insert(0, ready)
                    alive.remove(p)
                    sel.unregister(p.stdout)
                    continue
                busy[p.pid] = ready
                started += 1
                say(f"compiling the engine for this CPU, first run only: step {started} of {total}: {ready.what}")
            _stop_if_asked(stop)
            if not busy:                  # every worker died: the caller compiles the rest
                for s in pending:
                    failed[s.name] = "no compile worker left"
                break
            waited = 0.0
            while not (events := sel.select(timeout=STOP_POLL_S if stop is not None else STEP_TIMEOUT_S)):
                _stop_if_asked(stop)
                waited += STOP_POLL_S if stop is not None else STEP_TIMEOUT_S
                if waited >= STEP_TIMEOUT_S:
                    raise TimeoutError(f"no compile step finished in {STEP_TIMEOUT_S:.0f} s")
            for key, _ in events:
                p = key.data
                line = p.stdout.readline()
                step = busy.pop(p.pid, None)
                if not line:              # the worker died: what it was doing is left to the caller
                    sel.unregister(p.stdout)
                    alive.remove(p)
                    if step is not None:
                        failed[step.name] = (p.stderr.read() or "").strip()[-2000:] or f"exit code {p.wait()}"
                        done.add(step.name)
                    continue
                kind, name, rest = (line.rstrip("\n").split(" ", 2) + ["", ""])[:3]
                if kind == "done":
                    wall_s, cpu_s = (rest.split() + ["nan"])[:2]
                    times[name], cpu[name] = float(wall_s), float(cpu_s)
                else:
                    failed[name] = rest
                done.add(name)
    except BaseException:
        for p in procs:
            p.kill()
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    p.stdin.close()
                except OSError:
                    pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        sel.close()
    _stop_if_asked(stop)                  # (before the caller compiles the final steps)
    for name, err in failed.items():
        say(f"workbench: compile step {name} failed in its worker; compiling it here instead\n{err}")
    for i, what in enumerate(final, start=started + 1):
        say(f"compiling the engine for this CPU, first run only: step {i} of {total}: {what}")
    return CompileReport(time.perf_counter() - t0, times, cpu, failed)
