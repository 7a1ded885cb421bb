"""Concurrent POSTs share one store insert (api/group_commit.py) and answer as if they had come
one after the other: every id stored once, each request's inserted + duplicates = its rows, the
ids a request says it inserted are exactly the rows the store holds, JSON and Arrow mixed.
A real `workbench serve` on a free loopback port, real concurrent clients."""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest

from test_api_rest import ARROW, _rows
from test_api_serve import Server
from test_api_units import _arrow

pytestmark = pytest.mark.timeout(600)

REQUESTS = 48
ROWS = 12


async def _post_all(server: Server, bodies: list[list[dict]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=server.base, headers=server.headers, timeout=120) as c:
        async def one(k: int, rows: list[dict]):
            if k % 2:
                return await c.post("/v1/opportunities", content=_arrow(rows), headers={"content-type": ARROW})
            return await c.post("/v1/opportunities", json=rows)
        return await asyncio.gather(*(one(k, rows) for k, rows in enumerate(bodies)))


def _after_first_insert(server: Server, within_s: float = 60.0) -> dict:
    """/v1/stats' ``post_inserts`` once the store has taken a first insert of posted rows. The
    posts are answered once spooled (post_spool.py): the spool's thread inserts them after the
    answers, and a loaded machine may not have counted that insert by the time they come."""
    end = time.monotonic() + within_s
    while True:
        counts = server.get("/v1/stats").json()["post_inserts"]
        if counts["store_inserts"] >= 1 or time.monotonic() > end:
            return counts
        time.sleep(0.05)


def test_concurrent_posts_store_each_id_once_and_answer_as_if_in_turn(tmp_path):
    pool = _rows(REQUESTS * ROWS // 2, 0, 10_000, seed=11)       # every id is posted about twice
    rnd = random.Random(12)
    bodies = []
    for _ in range(REQUESTS):
        pick = rnd.sample(range(len(pool)), ROWS)
        bodies.append([pool[i] for i in pick])
    s = Server(tmp_path)
    try:
        answers = asyncio.run(_post_all(s, bodies))
        assert all(r.status_code in (200, 201) for r in answers), [r.text for r in answers if r.status_code > 201]
        said_inserted = []
        for body, r in zip(bodies, answers):
            a = r.json()
            assert a["inserted"] + a["duplicates"] == len(body)
            assert a["inserted"] == len(a["ids"]) and set(a["ids"]) <= {row["opportunity_id"] for row in body}
            assert (r.status_code == 201) == bool(a["ids"])
            said_inserted += a["ids"]
        posted = {row["opportunity_id"] for body in bodies for row in body}
        assert sorted(said_inserted) == sorted(posted)            # each id inserted by exactly one request
        stored = s.get("/v1/opportunities", params={"limit": 5000}).json()["rows"]
        assert sorted(r["opportunity_id"] for r in stored) == sorted(posted)
        counts = _after_first_insert(s)
        assert counts["requests"] == REQUESTS and 1 <= counts["store_inserts"] < REQUESTS, counts
        # posting the same bodies again inserts nothing, concurrently too
        again = asyncio.run(_post_all(s, bodies))
        assert all(r.status_code == 200 and r.json()["inserted"] == 0 for r in again)
    finally:
        s.stop()
