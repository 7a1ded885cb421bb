"""Shared test fixtures: where the real Solana data lives, and the bundled captures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"


def fixtures_dir() -> Path | None:
    """``WORKBENCH_FIXTURES`` or ``../shared/fixtures`` beside the repository, if present."""
    env = os.environ.get("WORKBENCH_FIXTURES")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "fixtures"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def fixtures() -> Path:
    d = fixtures_dir()
    if d is None:
        pytest.skip("real Solana fixtures not found: set WORKBENCH_FIXTURES or place ../shared/fixtures "
                    "(CI always has it)")
    return d


def fixture_txn_files(root: Path) -> list[Path]:
    """Every single-transaction .bin fixture (Firedancer's), not the shred blobs."""
    files = sorted((root / "firedancer").rglob("*.bin"))
    return [f for f in files if "shred" not in f.parts[-3] and f.name != "demo-shreds.bin"]
