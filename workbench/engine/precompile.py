"""Cold start on two cores: compile the engine's big leaf kernels in a second process.

numba compiles one function at a time, in Python, on one core. ``process_batch`` calls a
few large kernels that do not depend on each other (the shred reassembly, the transaction
decoder, the market); each is cached on its own (``cache=True``), and when
``process_batch`` is compiled its callees are loaded from the cache if they are there.
So on a cold cache ``warm_up`` starts ONE child process that compiles one half of the
leaves (with exactly the argument types ``process_batch`` uses) while this process
compiles the other half, waits for the child, then compiles ``process_batch`` itself,
which finds every leaf in the cache. On a warm cache the child is not started.

The split: without a market the child takes the transaction decoder and this process the
reassembly (add_data_shred: entries parsing and the prefix decoder), two halves of about
the same compile time; with a market the child takes the market's leaves (compiling
market/transaction.py's market_tx caches every kernel it calls; process_batch inlines its
body) and this process both of the others. The child is
``python -m workbench.engine.precompile_child``.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

from ..wire.txn import decode_txn

CHILD_TIMEOUT_S = 600.0


def _readonly(n: int) -> np.ndarray:
    a = np.zeros(n, np.uint8)
    a.flags.writeable = False
    return a


def compile_shreds(ds) -> None:
    """add_data_shred with process_batch's argument types (a read-only frame buffer)."""
    from .deshred import add_data_shred
    add_data_shred(ds, _readonly(64), np.int64(0), np.int64(0), np.int64(0), np.int64(0))


def compile_decoder(out, buf_readonly: bool) -> None:
    """decode_txn as process_batch calls it (bytes of the frame buffer or the reassembly slab)."""
    buf = _readonly(64) if buf_readonly else np.zeros(64, np.uint8)
    decode_txn(buf, np.int64(0), np.int64(0), out.txn, 0, out.instrs, 0, out.luts, 0)


def compile_market(state, out, mk, buf_readonly: bool) -> None:
    """market.transaction.market_tx with process_batch's argument types, on an empty transaction."""
    from .market.transaction import market_tx
    buf = _readonly(64) if buf_readonly else np.zeros(64, np.uint8)
    txn = out.txn[0]
    txn["instr_cnt"] = 0
    market_tx(buf, txn, out.instrs, out.luts, out.ins_pid, out.tx[0], state.keys, state.key_slots, mk,
              out.mscratch, out.swaps, np.int64(0), out.opps, np.int64(0), np.int64(0), state.dcount,
              state.ev_rejects, out.ctx, np.int64(1))


def engine_cached() -> bool:
    """True when numba's cache already holds a process_batch (a warm start: no child)."""
    from pathlib import Path
    from .. import NUMBA_CACHE_DIR
    return any(Path(NUMBA_CACHE_DIR).rglob("pipeline.process_batch-*.nbi"))


def parallel_warm_up(buf_readonly: bool, state, ds, out, market_folder: str, mk) -> float:
    """Compile the leaves in two processes (see the module doc). Returns seconds spent."""
    t = time.perf_counter()
    args = [sys.executable, "-m", "workbench.engine.precompile_child", f"--market={market_folder or ''}"]
    if buf_readonly:
        args.append("--readonly")
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        compile_shreds(ds)
        if market_folder:
            compile_decoder(out, buf_readonly)
        rc = child.wait(timeout=CHILD_TIMEOUT_S)
    except BaseException:
        child.kill()
        raise
    if rc != 0:          # the child's work is only an optimisation: this process compiles it then
        sys.stderr.write("workbench: parallel compile helper failed; compiling here\n"
                         + child.stderr.read().decode(errors="replace")[-2000:])
    return time.perf_counter() - t
