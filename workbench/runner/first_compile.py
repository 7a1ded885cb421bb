"""``make setup``'s last step: compile the engine for the replays a new user starts with, into
the default numba cache, so that the first ``workbench replay`` after setup starts warm.

    python -m workbench.runner.first_compile [--capture PATH] [--market FOLDER]

Two modes: a replay with a market (what ``make demo`` runs) and one without. Each is exactly
a replay's own warm-up (engine_run.warm_up: the stepped, announced compile of a first run),
so nothing is compiled that a replay would not compile itself, and a mode already in the
cache costs a look-up. numba compiles for argument TYPES: the bundled capture (a read-only
memory map, as every replayed capture is) and its snapshot stand for any capture and any
market. Live mode (a writable ring buffer and its own loop) and ``--model`` are not compiled
here: their first run compiles them, announced. A replay started while this runs waits on the
cache folder's lock (engine/precompile.py) and then loads what this compiled.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..capture import open_capture
from ..engine.deshred import new_deshred_state
from ..engine.pipeline import new_batch_out
from ..engine.precompile import cache_folder, say_stderr
from ..engine.state import market_of, new_state
from ..errors import ConfigError
from .engine_run import warm_up

CAPTURE = Path("captures") / "market.pcapng"     # the bundled market capture (make demo's), from the repository


def compile_modes(capture: Path, market: str, say=say_stderr) -> dict[str, float]:
    """Warm up a replay of ``capture`` with the market snapshot ``market`` and without one;
    returns seconds per mode (about zero for a mode already in the cache)."""
    if not capture.is_file():
        raise ConfigError(f"--capture {capture}: no such file (run from the repository, or name a capture)")
    if not Path(market).is_dir():
        raise ConfigError(f"--market {market}: no such snapshot folder")
    reader = open_capture(capture)
    seconds = {}
    for mode, folder in (("replay --market", market), ("replay", "")):
        state = new_state(tip_lamports=0)
        mk = market_of(folder, state) if folder else None
        seconds[mode] = warm_up(reader.buf, state, new_deshred_state(), new_batch_out(1), mk, None, folder, say=say,
                                reader=getattr(reader, "format", ""))
    return seconds


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m workbench.runner.first_compile",
                                 description="compile the engine for replays with and without a market")
    ap.add_argument("--capture", type=Path, default=CAPTURE, help="a capture whose buffer type replays use")
    ap.add_argument("--market", default="", help="a market snapshot folder (default: the capture's own)")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    try:
        seconds = compile_modes(a.capture, a.market or str(a.capture) + ".market")
    except ConfigError as e:
        raise SystemExit(f"workbench: {e}") from None
    done = ", ".join(f"{mode} {s:.1f} s" for mode, s in seconds.items())
    say_stderr(f"workbench: the engine is compiled for this CPU (numba cache: {cache_folder()}): {done}; "
               f"{time.perf_counter() - t:.1f} s in all")


if __name__ == "__main__":
    main()
