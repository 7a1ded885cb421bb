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
