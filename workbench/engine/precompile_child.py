"""A compile worker of a first run (engine/precompile.py): compiles the engine steps it is
handed into numba's cache, with the argument types ``process_batch`` uses.

    python -m workbench.engine.precompile_child [--market FOLDER] [--model FOLDER] [--readonly]

Reads one step name a line on stdin (followed by ``readonly`` when the run's frame buffer is
read-only, as ``--readonly`` says for every step), compiles it, answers ``done NAME WALL_SECONDS CPU_SECONDS`` (or
``fail NAME ERROR``) on stdout; exits at the end of stdin. ``--market`` / ``--model``:
the run's market snapshot and model folder (only their numba types matter; without them
the steps that need them are refused). ``--readonly``: the run's frame buffer is
read-only (a memory-mapped capture), which numba compiles apart from a writable one.
The engine state is a default one: array types are what compiling needs, not sizes. It is
made when the first step that needs it comes (precompile.STATELESS_STEPS do not), not at start:
a worker started early (while the caller compiles the state's own kernels) then loads those
kernels instead of compiling them too.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m workbench.engine.precompile_child")
    ap.add_argument("--market", default="", help="market snapshot folder ('' = none)")
    ap.add_argument("--model", default="", help="model folder ('' = none)")
    ap.add_argument("--readonly", action="store_true", help="the frame buffer is read-only")
    a = ap.parse_args(argv)
    from . import precompile
    from .deshred import new_deshred_state
    from .pipeline import new_batch_out
    from .state import market_of, model_of, new_state
    args = None
    for line in sys.stdin:
        name, *flags = line.split() or [""]
        if not name:
            continue
        t, c = time.perf_counter(), time.process_time()
        try:
            if args is None and name not in precompile.STATELESS_STEPS:
                state = new_state(tip_lamports=0)
                args = (state, new_deshred_state(), new_batch_out(1), market_of(a.market, state), model_of(a.model))
            precompile.compile_step(name, a.readonly or "readonly" in flags, *(args or (None,) * 5))
        except Exception as e:      # noqa: BLE001 - reported to the caller, which compiles the step itself
            msg = f"{type(e).__name__}: {e}".replace("\n", " ")[:1000]
            print(f"fail {name} {msg}", flush=True)
            continue
        print(f"done {name} {time.perf_counter() - t:.3f} {time.process_time() - c:.3f}", flush=True)


if __name__ == "__main__":
    main()
