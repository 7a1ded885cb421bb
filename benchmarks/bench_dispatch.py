"""The engine's call from Python: numba's dispatcher beside SteadyCall (runner/steady_call.py), in one run.

1. One call of ``process_batch`` on an empty batch over the market capture's buffer, with the
   run's own state, output rows and market: through numba's dispatcher (the peer), through
   SteadyCall, and the compiled version's entry point called directly (the floor: unboxing the
   arguments and the call, no check). Medians of ``--repeat`` timings of ``--calls`` calls each.
2. A replay of a long capture of unique transactions made from the bundled market capture
   (benchmarks/unique_capture.py, ``--packets``, cached under runs/bench/), paced (``--speed``; a paced replay calls the engine at
   most once a millisecond, capture/pace.py) and at top speed, with SteadyCall and with the
   dispatcher, alternating: the time inside the engine's calls (``engine_s``) and its CPU time
   (``engine_cpu_s``), medians of ``--repeat`` runs, and their ratio.

Run: ``python benchmarks/bench_dispatch.py [--repeat 5] [--speed 50] [--packets 300000]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from common import REPO, table
from unique_capture import unique_capture

from workbench.capture.open import open_capture
from workbench.config import Settings
from workbench.engine.pipeline import process_batch
from workbench.runner import engine_run
from workbench.runner.engine_run import EngineRun, empty_batch
from workbench.runner.replay import replay
from workbench.runner.steady_call import SteadyCall

BASE = REPO / "captures" / "market.pcapng"


def per_call_us(fn, args: tuple, calls: int, repeat: int) -> float:
    fn(*args)
    times = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        for _ in range(calls):
            fn(*args)
        times.append((time.perf_counter_ns() - t) / calls / 1000)
    return statistics.median(times)


def one_call(calls: int, repeat: int) -> None:
    settings = Settings(market=str(BASE.with_name(BASE.name + ".market")), progress=False).validate()
    reader = open_capture(BASE, settings.batch_frames)
    buf = next(iter(reader)).buf
    with tempfile.TemporaryDirectory() as out:
        run = EngineRun(out, settings, parquet=False)
        try:
            run.warm_up(buf)
            args = (empty_batch(buf), run.state, run.ds, run.bout, 0, run.market, run.model)
            steady = SteadyCall(process_batch)
            steady(*args)
            entry = steady._entry
            rows, us = [], {}
            for name, fn in (("numba's dispatcher (peer)", process_batch), ("SteadyCall", steady),
                             ("the entry point alone (floor)", entry)):
                us[name] = per_call_us(fn, args, calls, repeat)
            peer = us["numba's dispatcher (peer)"]
            for name, v in us.items():
                rows.append((name, f"{v:.2f}", f"{peer / v:.1f}x"))
            table(f"one call of process_batch on an empty batch (market run), µs, median of {repeat} x {calls}",
                  rows, ("call", "µs a call", "faster than the peer"))
            print(f"SteadyCall went through the dispatcher {steady.dispatched} time(s) in "
                  f"{1 + calls * (repeat + 1)} calls")
        finally:
            run.close_sinks()


class Counted:
    """The run's engine call, counted (both ways alike)."""

    def __init__(self, call):
        self.call, self.n = call, 0

    def __call__(self, *args):
        self.n += 1
        return self.call(*args)


def replays(capture, speed: float | None, repeat: int) -> None:
    settings = Settings(market=str(capture.with_name(capture.name + ".market")), progress=False).validate()
    got: dict[str, list] = {"SteadyCall": [], "dispatcher (peer)": []}
    for _ in range(repeat):
        for name in got:
            calls = []
            engine_run.SteadyCall = lambda d, steady=name == "SteadyCall": calls.append(
                Counted(SteadyCall(d) if steady else d)) or calls[-1]
            try:
                with tempfile.TemporaryDirectory() as out:
                    r = replay(capture, out, settings, speed=speed)
            finally:
                engine_run.SteadyCall = SteadyCall
            got[name].append((r.engine_s, r.engine_cpu_s, r.packets, calls[0].n))
    rows = []
    peer_s = statistics.median(g[0] for g in got["dispatcher (peer)"])
    for name, runs in got.items():
        s = statistics.median(g[0] for g in runs)
        cpu = statistics.median(g[1] for g in runs)
        n = statistics.median(g[3] for g in runs)
        rows.append((name, f"{runs[0][2]:,}", f"{n:,.0f}", f"{s * 1000:.1f}", f"{cpu * 1000:.1f}",
                     f"{(peer_s - s) / n * 1e6:.1f}" if n >= 1000 else "-", f"{peer_s / s:.2f}x"))
    pace = f"--speed {speed:g}" if speed else "top speed"
    table(f"a replay of {capture.name} ({pace}): the time inside the engine's calls, median of {repeat}",
          rows, ("engine called through", "packets", "calls", "engine_s (ms)", "engine_cpu_s (ms)",
                 "µs saved a call", "engine_s: peer / this"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--calls", type=int, default=2000, help="calls per timing of one call")
    ap.add_argument("--speed", type=float, default=50.0, help="the paced replays' speed (0: leave them out)")
    ap.add_argument("--packets", type=int, default=300_000, help="packets of the unique-transactions capture")
    args = ap.parse_args()
    capture = unique_capture(args.packets, base=BASE)
    one_call(args.calls, args.repeat)
    if args.speed:
        replays(capture, args.speed, args.repeat)
    replays(capture, None, args.repeat)


if __name__ == "__main__":
    main()
