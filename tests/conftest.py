"""Shared test fixtures: where the real Solana data lives, the bundled captures, and an
embedded chDB store in a fresh directory (``dsn``, ``store``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
# the real Solana data, copied into the repository with its provenance and licences
# (tests/fixtures/SOURCES.md), so that a clone alone runs every test
FIXTURES = REPO / "tests" / "fixtures"


def fixtures_dir() -> Path:
    """``WORKBENCH_FIXTURES`` (a folder with the same layout) if set, else ``tests/fixtures``."""
    env = os.environ.get("WORKBENCH_FIXTURES")
    return Path(env) if env else FIXTURES


@pytest.fixture(scope="session")
def fixtures() -> Path:
    d = fixtures_dir()
    assert d.is_dir(), f"WORKBENCH_FIXTURES={d} is not a folder"
    return d


def fixture_txn_files(root: Path) -> list[Path]:
    """Every single-transaction .bin fixture (Firedancer's), not the shred blobs."""
    files = sorted((root / "firedancer").rglob("*.bin"))
    return [f for f in files if "shred" not in f.parts[-3] and f.name != "demo-shreds.bin"]


@pytest.fixture
def dsn(tmp_path):
    return f"chdb://{tmp_path / 'clickhouse'}"


@pytest.fixture
def store(dsn):
    from workbench.store import connect          # deferred: only the store tests load the store
    s = connect(dsn)
    yield s
    s.close()


def pytest_sessionstart(session):
    """``make test`` (the whole suite) on a cold numba cache: compile the engine for the bundled
    market capture first, several kernels at once, and say so on the terminal (the tests' own
    output is captured, so a first run would otherwise sit silent for minutes)."""
    if getattr(session.config, "args_source", None) != pytest.Config.ArgsSource.TESTPATHS:
        return                                   # a chosen file or test: compile only what it uses
    from workbench.capture import open_capture
    from workbench.engine.deshred import new_deshred_state
    from workbench.engine.pipeline import new_batch_out
    from workbench.engine.state import market_of, new_state
    from workbench.runner import warm_up
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    say = reporter.write_line if reporter is not None else print
    if hasattr(session.config, "workerinput"):
        # a pytest-xdist worker: the controller says it on the terminal; a worker compiling first
        # holds the cache's lock and the others wait for it, then load (runner warm_up)
        say = None
    cap = CAPTURES / "market.pcapng"
    reader = open_capture(cap)
    state = new_state(tip_lamports=0)
    market = str(cap) + ".market"
    warm_up(reader.buf, state, new_deshred_state(), new_batch_out(4096), market_of(market, state), None, market,
            say=say)


def pytest_collection_modifyitems(config, items):
    """The files that hold slow suites first, each file's tests in their order: with a worker per
    core (``make test``: pytest-xdist, a file to a worker) the long files start early and the workers
    end together, rather than one worker running the last long file alone."""
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test (``item.rep_setup``, ``rep_call``, ...): a fixture's teardown
    reads whether the test failed (the browser tests' page keeps what it showed then)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
