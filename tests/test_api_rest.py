"""GET /v1/opportunities from memory equals the store, byte for byte; POST takes Arrow IPC.

Real `workbench serve` processes on one store: the first holds posted rows in memory (the store
was empty when it started, so memory covers every page); the same store restarted is read only
from the store; rows posted after the restart sit in memory above and below the store's last
key, so pages cross the memory/store boundary; rows posted between pages keep the keyset."""

from __future__ import annotations

import random
import shutil
import uuid

import httpx
import orjson
import pyarrow as pa
import pytest

from test_api_serve import Server

pytestmark = pytest.mark.timeout(600)

ARROW = "application/vnd.apache.arrow.stream"
T0 = 1_750_000_000_000_000_000
TYPES = ("sandwich", "arbitrage", "liquidation")
QUERIES = [
    {}, {"type": "sandwich"}, {"type": "sandwich,liquidation"}, {"since": T0 + 40_000, "until": T0 + 260_000},
    {"min_profit": 0.5}, {"pool": "PoolB"}, {"run": "r2"}, {"min_score": 0.4},
    {"type": "arbitrage", "pool": "PoolA", "min_profit": 0.2, "since": T0 + 10_000},
]
LIMIT = 7


def _rows(n: int, t_lo: int, t_hi: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        ts = T0 + rnd.randrange(t_lo, t_hi) * 1_000          # repeats: the id orders rows of one time
        out.append({"timestamp_ns": ts, "opportunity_id": str(uuid.UUID(int=rnd.getrandbits(128))),
                    "type": rnd.choice(TYPES), "profit": rnd.choice([0.1, 0.2, 0.5, 1 / 3, 2.5]),
                    "pools": rnd.sample(["PoolA", "PoolB", "PoolC"], rnd.randint(1, 2)),
                    "run_id": rnd.choice(["r1", "r2"]), "score": rnd.choice([None, 0.1, 0.4, 0.9]),
                    "slot": rnd.randrange(1, 10**9)})
    return out


def _pages(server: Server, params: dict, arrow: bool, cursor: str | None = None, stop_after: int | None = None):
    """[(cursor asked with, body bytes, page source)] until the last page."""
    out = []
    while True:
        p = {**params, "limit": LIMIT, **({"cursor": cursor} if cursor else {})}
        r = server.get("/v1/opportunities", params=p, headers={"accept": ARROW} if arrow else {})
        assert r.status_code == 200, r.text
        out.append((cursor, r.content, r.headers["x-page-source"]))
        cursor = r.headers["x-next-cursor"] or None if arrow else r.json()["next_cursor"]
        if cursor is None or (stop_after is not None and len(out) == stop_after):
            return out, cursor


def _all(server: Server) -> dict:
    return {(i, arrow): _pages(server, q, arrow)[0] for i, q in enumerate(QUERIES) for arrow in (False, True)}


def _post(server: Server, rows: list[dict], arrow: bool = False) -> httpx.Response:
    if arrow:
        t = pa.Table.from_pylist(rows)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
        return server.http.post(server.base + "/v1/opportunities", content=sink.getvalue().to_pybytes(),
                                headers={**server.headers, "content-type": ARROW}, timeout=60)
    return server.post("/v1/opportunities", rows)


def _expected(rows: list[dict], q: dict) -> list[str]:
    """The ids a query should give, in key order, worked out here from the posted rows."""
    def ok(r):
        types = q.get("type", "").split(",") if q.get("type") else None
        return ((types is None or r["type"] in types) and r["timestamp_ns"] >= q.get("since", 0)
                and r["timestamp_ns"] < q.get("until", 2**63) and r["profit"] >= q.get("min_profit", -1e300)
                and (not q.get("pool") or q["pool"] in r["pools"]) and (not q.get("run") or r["run_id"] == q["run"])
                and ("min_score" not in q or (r["score"] is not None and r["score"] >= q["min_score"])))
    return [r["opportunity_id"] for r in sorted(rows, key=lambda r: (r["timestamp_ns"], r["opportunity_id"])) if ok(r)]


def test_memory_pages_equal_store_pages_byte_for_byte_across_the_boundary_and_inserts(tmp_path):
    first = _rows(300, 0, 300, seed=1)
    a = Server(tmp_path)
    try:
        assert _post(a, first[:150]).status_code == 201
        assert _post(a, first[150:], arrow=True).status_code == 201          # Arrow and JSON posts alike
        in_memory = _all(a)
        for (i, arrow), pages in in_memory.items():
            assert {src for _, _, src in pages} == {"memory"}, QUERIES[i]
            if not arrow:
                ids = [r["opportunity_id"] for _, body, _ in pages for r in orjson.loads(body)["rows"]]
                assert ids == _expected(first, QUERIES[i]), QUERIES[i]
        cached = a.get("/v1/opportunities", params={"type": "sandwich", "limit": LIMIT})
        assert cached.content == in_memory[(1, False)][0][1]
    finally:
        a.stop()
    shutil.move(tmp_path / "serve.log", tmp_path / "serve-a.log")

    b = Server(tmp_path)                 # the same store: every row is the store's now
    try:
        from_store = _all(b)
        for k, pages in from_store.items():
            assert {src for _, _, src in pages} == {"store+memory"}, QUERIES[k[0]]
            assert [body for _, body, _ in pages] == [body for _, body, _ in in_memory[k]], QUERIES[k[0]]

        # newer rows (memory alone answers above the store's last key) and older ones (below it)
        second = _rows(120, 280, 400, seed=2) + _rows(40, 0, 200, seed=3)
        assert _post(b, second).status_code == 201
        crossing = _all(b)
        sources = {src for pages in crossing.values() for _, _, src in pages}
        assert sources == {"memory", "store+memory"}
        for (i, arrow), pages in crossing.items():
            if not arrow:
                ids = [r["opportunity_id"] for _, body, _ in pages for r in orjson.loads(body)["rows"]]
                assert ids == _expected(first + second, QUERIES[i]), QUERIES[i]

        # rows inserted between pages: the next page goes on after the cursor, keyset unchanged
        head, cursor = _pages(b, {}, False, stop_after=3)
        seen = [r["opportunity_id"] for _, body, _ in head for r in orjson.loads(body)["rows"]]
        last = orjson.loads(head[-1][1])["rows"][-1]
        third = _rows(30, 0, 400, seed=4)
        assert _post(b, third).status_code == 201
        tail, _ = _pages(b, {}, False, cursor=cursor)
        after = [r["opportunity_id"] for _, body, _ in tail for r in orjson.loads(body)["rows"]]
        everything = _expected(first + second + third, {})
        cut = everything.index(last["opportunity_id"]) + 1
        assert after == everything[cut:]
        assert set(seen) <= set(everything[:cut])
        later = {k: _pages(b, QUERIES[k[0]], k[1])[0] for k in crossing}
        tail_arrow, _ = _pages(b, {}, True, cursor=cursor)
    finally:
        b.stop()
    shutil.move(tmp_path / "serve.log", tmp_path / "serve-b.log")

    c = Server(tmp_path)                 # again: the same pages, now read only from the store
    try:
        for k, pages in later.items():
            again = [c.get("/v1/opportunities", params={**QUERIES[k[0]], "limit": LIMIT,
                                                        **({"cursor": cur} if cur else {})},
                           headers={"accept": ARROW} if k[1] else {}).content for cur, _, _ in pages]
            assert again == [body for _, body, _ in pages], QUERIES[k[0]]
        for cur, body, _ in tail + tail_arrow:
            arrow = body[:1] != b"{"
            assert c.get("/v1/opportunities", params={"limit": LIMIT, "cursor": cur},
                         headers={"accept": ARROW} if arrow else {}).content == body
        # a walk's pages come from a store read that read ahead (store_read_ahead.py): a query every
        # few pages; the Arrow walk of a query found the JSON walk's rows kept
        walked = sum(len(pages) for pages in later.values()) + len(tail) + len(tail_arrow)
        counts = c.get("/v1/stats").json()["pages"]
        assert counts["store_queries"] + counts["store_read_ahead_hits"] == walked, counts
        assert counts["store_queries"] * 6 < walked, counts
    finally:
        c.stop()


def test_a_store_read_ahead_gives_the_stores_rows_after_any_key(tmp_path, monkeypatch):
    """store_read_ahead.py against the store itself: for cursors at rows, between rows and past the
    end, and page sizes from 1 to past the read's size, the rows it gives are the store's own read
    of them; a data version read before is never answered from. (Reads of 40 rows here, so that a
    read ends both before the store's last row and at it.)"""
    from workbench.api import store_read_ahead
    from workbench.api.store_access import OpportunityFilter, StoreAccess
    from workbench.api.store_read_ahead import StoreReadAhead
    monkeypatch.setattr(store_read_ahead, "READ_AHEAD_ROWS", 40)
    rows = _rows(200, 0, 150, seed=11)         # times repeat: keys of one time ordered by id
    s = Server(tmp_path)
    try:
        assert _post(s, rows).status_code == 201
    finally:
        s.stop()
    store = StoreAccess(f"chdb://{tmp_path / 'db'}")
    try:
        ahead = StoreReadAhead(store.opportunity_rows)
        rnd = random.Random(12)
        keys = sorted((r["timestamp_ns"], r["opportunity_id"]) for r in rows)

        def same(a, b):                         # (the float columns' DEFAULT is nan: Table.equals says no)
            return a.schema == b.schema and orjson.dumps(a.to_pylist()) == orjson.dumps(b.to_pylist())
        for f, fkey in ((OpportunityFilter([]), ("all",)), (OpportunityFilter(["sandwich"], min_profit=0.2), ("s",))):
            for version in (1, 2):
                after = None
                while True:                     # a walk: each read after the last row given
                    n = rnd.choice([1, 2, 8, 50])
                    got = ahead.rows(fkey, f, n, after, version)
                    assert same(got, store.opportunity_rows(f, n, after)), (fkey, after, n)
                    if got.num_rows < n:
                        break
                    after = tuple(got.slice(n - 1).to_pylist()[0][k] for k in ("timestamp_ns", "opportunity_id"))
                for _ in range(40):             # jumps: at a key, just before one, past the end
                    k = rnd.choice(keys)
                    after = rnd.choice([k, (k[0], k[1][:-1]), (k[0] + 1, ""), (keys[-1][0] + 1, "")])
                    n = rnd.choice([1, 8, 300])
                    assert same(ahead.rows(fkey, f, n, after, version), store.opportunity_rows(f, n, after))
        assert ahead.hits > 50, (ahead.hits, ahead.queries)        # (the walks' small pages, mostly)
        before = ahead.queries
        ahead.rows(("s",), OpportunityFilter(["sandwich"], min_profit=0.2), 8, None, 1)   # an older version: read again
        assert ahead.queries == before + 1
        f, hits = OpportunityFilter([]), ahead.hits
        for _ in range(2):              # no version (rows held outside memory): each read alone, none kept
            assert same(ahead.rows(("none",), f, 8, None, None), store.opportunity_rows(f, 8, None))
        assert ahead.queries == before + 3 and ahead.hits == hits
    finally:
        store.close()


def test_arrow_post_round_trips_is_idempotent_and_refuses_bad_batches(tmp_path):
    s = Server(tmp_path)
    try:
        rows = _rows(20, 0, 100, seed=5)
        r = _post(s, rows, arrow=True)
        assert r.status_code == 201 and r.json()["inserted"] == 20, r.text
        page = s.get("/v1/opportunities", params={"limit": 100}).json()["rows"]
        assert [p["opportunity_id"] for p in page] == _expected(rows, {})
        got = {p["opportunity_id"]: p for p in page}
        for want in rows:
            assert {k: got[want["opportunity_id"]][k] for k in want} == want
        arrow_page = s.get("/v1/opportunities", params={"limit": 100}, headers={"accept": ARROW}).content
        # a page read as Arrow posts back unchanged: every id is a duplicate now
        again = s.http.post(s.base + "/v1/opportunities", content=arrow_page, headers={"content-type": ARROW})
        assert again.status_code == 200 and again.json() == {"inserted": 0, "duplicates": 20, "ids": []}
        half = _rows(4, 100, 200, seed=6)
        mixed = _post(s, rows[:2] + half, arrow=True)
        assert mixed.status_code == 201 and mixed.json()["inserted"] == 4 and mixed.json()["duplicates"] == 2

        def refused(body_rows=None, raw: bytes | None = None):
            if raw is None:
                return _post(s, body_rows, arrow=True)
            return s.http.post(s.base + "/v1/opportunities", content=raw, headers={"content-type": ARROW})

        fresh = _rows(3, 200, 300, seed=7)
        bad_type = [dict(r, profit=str(r["profit"])) for r in fresh]
        r = refused(bad_type)
        assert r.status_code == 422 and (r.json()["row"], r.json()["field"]) == (0, "profit"), r.text
        r = refused([{k: v for k, v in row.items() if k != "pools"} for row in fresh])
        assert r.status_code == 422 and (r.json()["row"], r.json()["field"]) == (0, "pools")
        r = refused([fresh[0], dict(fresh[1], slot=None), fresh[2]])
        assert r.status_code == 422 and (r.json()["row"], r.json()["field"]) == (1, "slot")
        r = refused([fresh[0], fresh[1], dict(fresh[0])])
        assert r.status_code == 422 and (r.json()["row"], r.json()["field"]) == (2, "opportunity_id")
        r = refused(raw=b"ARROW1\x00\x00 this is not a stream")
        assert r.status_code == 422 and "Arrow IPC" in r.json()["message"] and "byte" in r.json()["message"]
        for row in fresh:                  # nothing of any refused batch was written
            assert s.get(f"/v1/opportunities/{row['opportunity_id']}").status_code == 404
        big = s.http.post(s.base + "/v1/opportunities", content=b"\0" * (16 * 1024 * 1024 + 1),
                          headers={"content-type": ARROW}, timeout=60)
        assert big.status_code == 413
    finally:
        s.stop()


def test_a_replays_rows_from_memory_equal_the_same_rows_read_back_from_the_store(tmp_path):
    from test_api_serve import CAPTURE, MARKET
    s = Server(tmp_path, "--replay", str(CAPTURE), "--market", str(MARKET), "--speed", "4")
    try:
        s.wait_done()
        run_id = s.get("/v1/runs").json()["runs"][0]["run_id"]
        queries = [{}, {"type": "sandwich"}, {"min_profit": 0.5}, {"run": run_id}]
        served = {(i, arrow): _pages(s, q, arrow)[0] for i, q in enumerate(queries) for arrow in (False, True)}
        assert {src for pages in served.values() for _, _, src in pages} == {"memory"}
        assert orjson.loads(served[(3, False)][0][1])["rows"]               # the run's rows carry its run id
    finally:
        s.stop()
    shutil.move(tmp_path / "serve.log", tmp_path / "serve-replay.log")
    again = Server(tmp_path)
    try:
        for (i, arrow), pages in served.items():
            got = _pages(again, queries[i], arrow)[0]
            assert {src for _, _, src in got} == {"store+memory"}
            assert [body for _, body, _ in got] == [body for _, body, _ in pages], queries[i]
    finally:
        again.stop()


def test_a_repeated_get_is_answered_from_the_cache_with_the_same_bytes_rules_and_counts(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families
    token = "cache-test-token"
    s = Server(tmp_path, token=token)
    try:
        rows = _rows(400, 0, 400, seed=8)
        for r in rows:                         # wide rows: a page of 100 is past the gzip threshold
            r["victim_signature"] = "S" * 88
            r["trigger_signature"] = "T" * 88
            r["pools"] = [f"{p:0>44}" for p in range(6)] + r["pools"]
        assert _post(s, rows).status_code == 201

        def counted():
            text = s.get("/metrics").text
            return sum(x.value for fam in text_string_to_metric_families(text) for x in fam.samples
                       if x.name == "workbench_http_requests_total" and x.labels.get("route") == "/v1/opportunities")

        for params, headers in (({"limit": 100}, {}), ({"type": "sandwich", "limit": 3}, {"accept": ARROW}),
                                ({"limit": 100}, {"accept-encoding": "identity"})):
            first = s.get("/v1/opportunities", params=params, headers=headers)
            before = counted()
            again = [s.get("/v1/opportunities", params=params, headers=headers) for _ in range(3)]
            assert counted() == before + 3
            for r in again:
                assert r.status_code == 200 and r.headers["x-cache"] == "hit"
                assert r.content == first.content
                for h in ("content-type", "x-page-source", "x-next-cursor", "content-encoding", "vary"):
                    assert r.headers.get(h) == first.headers.get(h), h
        big = s.get("/v1/opportunities", params={"limit": 100})
        assert big.headers["content-encoding"] == "gzip" and len(big.json()["rows"]) == 100
        assert s.http.get(s.base + "/v1/opportunities", params={"limit": 100}).status_code == 401     # the guard first
        newer = _rows(1, 500, 501, seed=9)
        assert _post(s, newer).status_code == 201           # a new row: the next answer is made again
        fresh = s.get("/v1/opportunities", params={"limit": 100})
        assert fresh.headers["x-cache"] == "miss" and fresh.content == big.content   # the row sorts after the page
        last = s.get("/v1/opportunities", params={"since": newer[0]["timestamp_ns"]}).json()["rows"]
        assert [r["opportunity_id"] for r in last] == [newer[0]["opportunity_id"]]
    finally:
        s.stop()
