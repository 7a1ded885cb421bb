"""solana-mev-workbench: one numba engine over recorded captures or a tuned NIC.

Layers point down (see ARCHITECTURE.md): capture -> wire -> engine (metrics beneath)
-> model (offline) -> store, api -> runner, cli, panel_apps.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__version__ = "0.1.0"


# the modules that hold jitted code: their sources name the numba cache
JIT_SOURCES = ("binary.py", "linktypes.py", "wide.py", "capture", "wire", "metrics", "chain", "engine", "synth")


def _source_hash() -> str:
    """Hash of every module that holds jitted code: names the numba cache of this exact code."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    files = [root / d for d in JIT_SOURCES if d.endswith(".py")]
    files += [p for d in JIT_SOURCES if not d.endswith(".py") for p in (root / d).rglob("*.py")]
    for p in sorted(files):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _configure_numba_cache() -> str:
    """Point numba's on-disk cache at a folder named by the source hash.

    numba checks only the changed function's own file when it loads a cached kernel, so a
    kernel that inlines a function from another module that changed would run stale
    machine code. One cache folder per source hash makes every code change start clean.
    ``NUMBA_CACHE_DIR`` (if set) is the parent folder.
    """
    import numba

    from .numba_blas import load_cython_blas_alone
    load_cython_blas_alone()
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "solana-mev-workbench", "numba")
    path = os.path.join(base, _source_hash())
    numba.config.CACHE_DIR = path
    _prune(base, keep=path)
    return path


def _prune(base: str, keep: str, max_age_s: float = 7 * 86400) -> None:
    """Remove cache folders of other source versions unused for a week."""
    import shutil
    import time
    try:
        for entry in os.scandir(base):
            if entry.path != keep and entry.is_dir() and time.time() - entry.stat().st_mtime > max_age_s:
                shutil.rmtree(entry.path, ignore_errors=True)
    except OSError:
        pass


NUMBA_CACHE_DIR = _configure_numba_cache()
