"""benchmarks/bench_api.py's peer (FastAPI over clickhouse-connect, the routes written the obvious
way) starts from a fresh install and answers both routes it is measured on: a bench whose peer
cannot start has no ratio to print. A real peer process on a free loopback port, on an embedded
store made by the workbench's own schema."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_api as B  # noqa: E402

pytestmark = pytest.mark.timeout(300)

T0 = 1_760_000_000_000_000_000


def test_the_peer_posts_rows_and_pages_them_back(tmp_path):
    store = tmp_path / "store"
    # the schema, made in a process of its own: one chDB folder opens in one process at a time
    subprocess.run([sys.executable, "-c", f"from workbench.store.clickhouse import connect; connect('chdb://{store}')"],
                   check=True, timeout=120)
    peer, base = B.start_peer(store, tmp_path)
    try:
        rows = [{"timestamp_ns": T0 + i, "opportunity_id": str(uuid.uuid4()), "type": ("sandwich", "arbitrage")[i % 2],
                 "profit": 0.5 + i, "pools": [f"Pool{i}"]} for i in range(4)]
        with httpx.Client(base_url=base, timeout=60) as http:
            r = http.post("/v1/opportunities", json=rows)
            assert r.status_code == 201 and r.json() == {"inserted": 4}, r.text
            page = http.get(B.GET_PATH)
            assert page.status_code == 200, page.text
        assert [p["opportunity_id"] for p in page.json()] == [r["opportunity_id"] for r in rows[::2]]
    finally:
        peer.terminate()
        peer.wait(60)
