"""A command's process: what it imports and how it ends (host/interpreter.py, arrow_columns.py).

The ``workbench`` script skips the interpreter's object-by-object teardown, so these check
that everything the interpreter does before it still happens, in order, with the right status;
and that a replay without the store never imports pandas (pyarrow's pandas hooks would) nor
scipy.linalg (numba's BLAS probe would: numba_blas.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

ENDING = """
import atexit, sys, threading, time
from workbench.host.interpreter import exit_without_teardown
atexit.register(lambda: print("atexit handler ran", flush=True))
def late():
    time.sleep(0.2)
    print("non-daemon thread finished", flush=True)
threading.Thread(target=late).start()
sys.stdout.write("buffered text, no newline")
exit_without_teardown({code})
"""


def _end_with(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ENDING.format(code=code)], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


@pytest.mark.parametrize("code, status", [("None", 0), ("0", 0), ("3", 3), ("-1", 255)])
def test_an_ending_joins_threads_runs_atexit_flushes_and_keeps_the_status(code, status):
    p = _end_with(code)
    assert p.returncode == status, p.stderr
    assert p.stdout == "buffered text, no newlinenon-daemon thread finished\natexit handler ran\n"


def test_an_ending_with_a_message_prints_it_and_exits_1_as_sys_exit_does():
    p = _end_with("'error: the capture is gone'")
    assert p.returncode == 1
    assert p.stderr.strip() == "error: the capture is gone"
    assert "atexit handler ran" in p.stdout


def test_a_process_that_loaded_embedded_clickhouse_ends_the_normal_way():
    code = ENDING.format(code="0").replace("import atexit,", "import chdb, atexit,")
    code += "\nprint('not reached: exit_without_teardown returned', flush=True)\n"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 0, p.stderr
    # sys.exit: the same order of what the interpreter does, ending in its own teardown
    assert p.stdout == "buffered text, no newlinenon-daemon thread finished\natexit handler ran\n"


def test_the_cli_exit_status_and_errors_are_those_of_the_command(tmp_path):
    env = {**os.environ, "NO_COLOR": "1"}
    ok = subprocess.run([sys.executable, "-m", "workbench.cli", "version"], capture_output=True, text=True,
                        timeout=120, cwd=REPO, env=env)
    assert ok.returncode == 0 and ok.stdout.strip()
    bad = subprocess.run([sys.executable, "-m", "workbench.cli", "replay", str(tmp_path / "missing.pcap"),
                          "--no-db", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                         timeout=120, cwd=REPO, env=env)
    assert bad.returncode == 2
    assert "missing.pcap" in bad.stderr


def test_a_replay_without_the_store_never_imports_pandas_nor_scipy_linalg(tmp_path):
    code = ("import sys\n"
            "from workbench.runner import replay\n"
            "from workbench.config import Settings\n"
            f"replay({str(REPO / 'captures' / 'market.pcapng')!r}, {str(tmp_path / 'out')!r}, "
            f"Settings(market={str(REPO / 'captures' / 'market.pcapng.market')!r}))\n"
            "print(sorted(m for m in ('pandas', 'pyarrow.dataset', 'scipy.linalg') if m in sys.modules))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "opportunities.parquet").stat().st_size > 0
