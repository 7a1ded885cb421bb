"""POST /v1/opportunities answered in front of Starlette (api/fast_post.py), grouped and checked
column by column (api/post_columns.py): a real `workbench serve` on a free loopback port, real
concurrent clients. A bad request among concurrent ones gets its 422 naming row and field with
nothing of it written, while the others land; an id twice in one post is refused, across posts
counted once; an embedded store's ids are known again after a restart; the token, rate-limit
and streamed-body rules hold on this path too."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_api_serve import Server
from workbench.api.opportunity_rows import RowError, check_batch

pytestmark = pytest.mark.timeout(600)

T0 = 1_760_000_000_000_000_000
ROUTE = "POST /v1/opportunities"


def _row(i: int, **over) -> dict:
    r = {"timestamp_ns": T0 + i, "opportunity_id": str(uuid.uuid4()), "type": ("sandwich", "arbitrage")[i % 2],
         "profit": 0.25 + i, "pools": [f"Pool{i % 3}"], "run_id": "fast", "slot": 1000 + i, "score": None}
    r.update(over)
    return r


async def _post_all(server: Server, bodies: list[bytes]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=server.base, headers=server.headers, timeout=120) as c:
        return await asyncio.gather(*(c.post("/v1/opportunities", content=b) for b in bodies))


def _stored_ids(server: Server) -> list[str]:
    rows = server.get("/v1/opportunities", params={"limit": 5000}).json()["rows"]
    return [r["opportunity_id"] for r in rows]


def _counted(server: Server, code: int) -> float:
    text = server.get("/metrics").text
    return sum(x.value for fam in text_string_to_metric_families(text) for x in fam.samples
               if x.name == "workbench_http_requests_total" and x.labels.get("route") == ROUTE
               and x.labels.get("code") == str(code))


def test_concurrent_posts_one_bad_gets_its_422_and_the_others_land(tmp_path):
    s = Server(tmp_path)
    try:
        goods = [[_row(10 * k + i) for i in range(10)] for k in range(30)]
        bad = [_row(900 + i) for i in range(6)]
        bad[3]["slot"] = "soon"
        with pytest.raises(RowError) as want:
            check_batch(orjson.dumps(bad))
        bodies = [orjson.dumps(b) for b in goods[:15]] + [orjson.dumps(bad)] + [orjson.dumps(b) for b in goods[15:]]
        answers = asyncio.run(_post_all(s, bodies))
        refused = answers[15]
        assert refused.status_code == 422, refused.text
        assert refused.json() == {"error": "the batch does not fit the table; nothing of it was written",
                                  "row": 3, "field": "slot", "message": want.value.message}
        for r, rows in zip(answers[:15] + answers[16:], goods):
            assert r.status_code == 201, r.text
            assert r.json() == {"inserted": 10, "duplicates": 0, "ids": [x["opportunity_id"] for x in rows]}
        stored = _stored_ids(s)
        assert sorted(stored) == sorted(x["opportunity_id"] for rows in goods for x in rows)
        for x in bad:                                   # not even the good rows of the bad request
            assert s.get(f"/v1/opportunities/{x['opportunity_id']}").status_code == 404
        # a stored row reads back as posted (defaults filled, null score kept as null)
        one = s.get(f"/v1/opportunities/{goods[4][2]['opportunity_id']}").json()
        assert {k: one[k] for k in goods[4][2]} == goods[4][2] and one["source"] == "unknown"
        assert _counted(s, 422) == 1 and _counted(s, 201) == 30
        st = s.get("/v1/stats").json()
        assert st["posted_opportunities"] == 300 and st["post_inserts"]["requests"] == 30
    finally:
        s.stop()


def test_an_id_twice_in_one_post_is_refused_and_across_posts_is_stored_once_even_after_a_restart(tmp_path):
    s = Server(tmp_path)
    try:
        r0 = _row(0)
        twice = s.post("/v1/opportunities", [r0, _row(1), dict(r0)])
        assert twice.status_code == 422
        assert (twice.json()["row"], twice.json()["field"]) == (2, "opportunity_id")
        assert "also row 0" in twice.json()["message"]
        assert _stored_ids(s) == []
        # the same id in several concurrent posts: one of them inserts it, the others count a duplicate
        shared = _row(5)
        bodies = [orjson.dumps([dict(shared), _row(10 + k)]) for k in range(8)]
        answers = asyncio.run(_post_all(s, bodies))
        assert all(r.status_code == 201 for r in answers), [r.text for r in answers]
        got = [r.json() for r in answers]
        assert sum(shared["opportunity_id"] in a["ids"] for a in got) == 1
        assert sum(a["duplicates"] for a in got) == 7 and sum(a["inserted"] for a in got) == 9
        assert sorted(_stored_ids(s)).count(shared["opportunity_id"]) == 1
        again = s.post("/v1/opportunities", [dict(shared)])
        assert again.status_code == 200 and again.json() == {"inserted": 0, "duplicates": 1, "ids": []}
    finally:
        s.stop()
    s = Server(tmp_path)                                # the same store: its ids are read back on the first post
    try:
        fresh = _row(50)
        r = s.post("/v1/opportunities", [dict(shared), fresh])
        assert r.status_code == 201 and r.json() == {"inserted": 1, "duplicates": 1, "ids": [fresh["opportunity_id"]]}
        assert len(_stored_ids(s)) == 10
    finally:
        s.stop()


def test_the_fast_path_keeps_the_token_rate_limit_and_body_rules(tmp_path):
    s = Server(tmp_path, "--rate-limit", "5", token="sekrit")
    try:
        body = orjson.dumps([_row(0)])
        url = s.base + "/v1/opportunities"
        assert s.http.post(url, content=body, timeout=30).status_code == 401
        assert s.http.post(url, content=body, headers={"Authorization": "Bearer nope"}, timeout=30).status_code == 403
        assert _stored_ids(s) == []

        def streamed():                                  # no Content-Length: the limit is counted as it streams
            for _ in range(17):
                yield b" " * (1024 * 1024)
        big = s.http.post(url, content=streamed(), headers=s.headers, timeout=60)
        assert big.status_code == 413 and "over" in big.json()["error"]
        codes = asyncio.run(_post_all(s, [orjson.dumps([_row(i)]) for i in range(40)]))    # at once: past the rate
        assert {r.status_code for r in codes} <= {201, 429}
        limited = [r for r in codes if r.status_code == 429]
        assert limited and all(int(r.headers["retry-after"]) >= 1 for r in limited)
    finally:
        s.stop()
