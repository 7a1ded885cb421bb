"""The second process of a cold start (engine/precompile.py): compiles one half of the
engine's leaf kernels into numba's cache, with the argument types ``process_batch`` uses.

    python -m workbench.engine.precompile_child [--market FOLDER] [--readonly]

``--market``: the run's market snapshot (the child compiles the market's leaves; without
one, the transaction decoder). ``--readonly``: the run's frame buffer is read-only (a
memory-mapped capture), which numba compiles apart from a writable one. Only the array
types matter here, so the engine state is a default one.
"""

from __future__ import annotations

import argparse

from . import precompile
from .pipeline import new_batch_out
from .state import market_of, new_state


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m workbench.engine.precompile_child")
    ap.add_argument("--market", default="", help="market snapshot folder ('' = none)")
    ap.add_argument("--readonly", action="store_true", help="the frame buffer is read-only")
    a = ap.parse_args(argv)
    state = new_state(tip_lamports=0)   # argument types are what compiling needs, not values
    if a.market:
        precompile.compile_market(state, new_batch_out(1), market_of(a.market, state), a.readonly)
    else:
        precompile.compile_decoder(new_batch_out(1), a.readonly)


if __name__ == "__main__":
    main()
