"""POST /v1/opportunities taken inside uvicorn's HTTP protocol (api/post_protocol.py): a real
`workbench serve` on a free loopback port, real sockets. A plain post goes below ASGI (counted in
/v1/stats) and gets what the ASGI path gives the same post (status, headers, body, gzip, 422);
requests pipelined on one connection, posts and others mixed, are answered in order; HTTP/1.0 and
``Connection: close`` close after the answer; a client that leaves before its answer still has its
rows stored and the server goes on; forwarded headers take the ASGI path, whose proxy middleware
gives the address the rate limit counts."""

from __future__ import annotations

import gzip
import itertools
import socket
import time
import uuid

import orjson
import pytest

from test_api_post_fast import _row
from test_api_serve import Server

pytestmark = pytest.mark.timeout(600)

PATH = "/v1/opportunities"


def _request(method: str, target: str, body: bytes = b"", headers: list | None = None, version: str = "1.1") -> bytes:
    head = [f"{method} {target} HTTP/{version}", "host: 127.0.0.1"]
    if method == "POST":
        head += ["content-type: application/json", f"content-length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers or ()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _answers(sock: socket.socket, n: int, closed_wait_s: float | None = 1.0) -> tuple[list, bool | None]:
    """``n`` answers read from ``sock`` in order (status, headers, body: every answer here has a
    Content-Length), and whether the server closed the connection after them (within
    ``closed_wait_s``, well inside uvicorn's keep-alive timeout of 5 s; None: not asked)."""
    sock.settimeout(60)
    buf, out = b"", []

    def more() -> bytes:
        data = sock.recv(1 << 16)
        assert data, f"the server closed the connection after {len(out)} answers"
        return data

    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            buf += more()
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        size = int(headers["content-length"])
        while len(buf) < size:
            buf += more()
        out.append((status, headers, buf[:size]))
        buf = buf[size:]
    assert buf == b""
    if closed_wait_s is None:
        return out, None
    sock.settimeout(closed_wait_s)
    try:
        closed = sock.recv(1) == b""
    except TimeoutError:
        closed = False
    return out, closed


def _one(s: Server, raw: bytes, closed_wait_s: float | None = 1.0) -> tuple[tuple[int, dict, bytes], bool | None]:
    with socket.create_connection(("127.0.0.1", s.port)) as sock:
        sock.sendall(raw)
        got, closed = _answers(sock, 1, closed_wait_s)
    return got[0], closed


def _below_asgi(s: Server) -> int:
    return s.get("/v1/stats").json()["post_inserts"]["in_protocol"]


def _rows(n: int, start: int = 0) -> list[dict]:
    return [_row(start + i) for i in range(n)]


def test_a_plain_post_goes_below_asgi_and_answers_as_the_asgi_path(tmp_path):
    s = Server(tmp_path)
    try:
        for rows, expect in ((_rows(3), 201), ([{**_row(9), "slot": "soon"}], 422)):
            plain = orjson.dumps(rows)
            twin = orjson.dumps([{**r, "opportunity_id": str(uuid.uuid4())} for r in rows])
            before = _below_asgi(s)
            (st, h, body), closed = _one(s, _request("POST", PATH, plain))
            assert _below_asgi(s) == before + 1 and not closed
            (st2, h2, body2), _ = _one(s, _request("POST", PATH + "?via=asgi", twin))   # a query: the ASGI path
            assert _below_asgi(s) == before + 1
            assert st == st2 == expect, (body, body2)
            assert set(h) == set(h2) and {k: v for k, v in h.items() if k != "date" and k != "content-length"} == \
                {k: v for k, v in h2.items() if k != "date" and k != "content-length"}
            a, b = orjson.loads(body), orjson.loads(body2)
            if expect == 201:
                assert a == {"inserted": 3, "duplicates": 0, "ids": [r["opportunity_id"] for r in rows]}
                assert b["inserted"] == 3 and b["duplicates"] == 0
            else:
                assert a == b and a["row"] == 0 and a["field"] == "slot"
        # a large answer, gzipped as Starlette's GZipMiddleware would (and not without Accept-Encoding)
        many = _rows(2_000, 100)
        raw = _request("POST", PATH, orjson.dumps(many), [("accept-encoding", "gzip")])
        (st, h, body), _ = _one(s, raw)
        assert st == 201 and h["content-encoding"] == "gzip" and h["vary"] == "Accept-Encoding"
        assert orjson.loads(gzip.decompress(body))["ids"] == [r["opportunity_id"] for r in many]
        (st, h, body), _ = _one(s, _request("POST", PATH, orjson.dumps(many)))
        assert st == 200 and "content-encoding" not in h and orjson.loads(body)["duplicates"] == 2_000
    finally:
        s.stop()


def test_pipelined_requests_are_answered_in_order_and_close_is_kept(tmp_path):
    s = Server(tmp_path)
    try:
        a, b, c = _rows(2, 0), _rows(2, 10), _rows(2, 20)
        raw = (_request("POST", PATH, orjson.dumps(a)) + _request("GET", "/healthz")
               + _request("POST", PATH, orjson.dumps(b)) + _request("POST", PATH + "?x=1", orjson.dumps(c))
               + _request("GET", "/v1/opportunities/" + b[1]["opportunity_id"]))
        with socket.create_connection(("127.0.0.1", s.port)) as sock:
            sock.sendall(raw)
            got, closed = _answers(sock, 5)
        assert [g[0] for g in got] == [201, 200, 201, 201, 200] and not closed
        assert orjson.loads(got[0][2])["ids"] == [r["opportunity_id"] for r in a]
        assert orjson.loads(got[1][2]) == {"ok": True}
        assert orjson.loads(got[2][2])["ids"] == [r["opportunity_id"] for r in b]
        assert orjson.loads(got[3][2])["ids"] == [r["opportunity_id"] for r in c]
        assert orjson.loads(got[4][2])["opportunity_id"] == b[1]["opportunity_id"]

        # HTTP/1.0, and Connection: close on 1.1: the answer says so and the connection is closed
        for version, extra in (("1.0", []), ("1.1", [("connection", "close")])):
            (st, h, body), closed = _one(s, _request("POST", PATH, orjson.dumps(_rows(1, 40 + len(extra))), extra,
                                                     version))
            assert st == 201 and h.get("connection") == "close" and closed, (version, h)
    finally:
        s.stop()


def test_a_client_that_leaves_before_its_answer_has_its_rows_stored(tmp_path):
    s = Server(tmp_path)
    try:
        rows = _rows(5, 200)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", s.port)) as sock:
                sock.sendall(_request("POST", PATH, orjson.dumps(rows)))
            rows = [{**r, "opportunity_id": str(uuid.uuid4())} for r in rows]
        deadline = time.monotonic() + 30
        while s.get("/v1/stats").json()["posted_opportunities"] < 15:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = s.post(PATH, _rows(1, 300))
        assert r.status_code == 201
        assert s.get("/v1/stats").json()["posted_opportunities"] == 16
    finally:
        s.stop()


def test_a_bad_request_behind_a_post_closes_the_connection_and_the_post_is_stored_quietly(tmp_path):
    """uvicorn answers a request it cannot parse with 400 and closes the connection. A post before it
    (and a request between them: uvicorn marks only that newest one gone), still waiting for its
    group, is stored, and its answer is not written to the closed socket (that logged an error with
    its traceback), below ASGI or through it (a query string)."""
    s = Server(tmp_path)
    try:
        for k, target in enumerate((PATH, PATH + "?x=1")):
            rows = _rows(2, 400 + 10 * k)
            with socket.create_connection(("127.0.0.1", s.port)) as sock:
                sock.sendall(_request("POST", target, orjson.dumps(rows)) + _request("GET", "/healthz")
                             + b"NOT HTTP\r\n\r\n")
                sock.settimeout(10)
                got = b""
                while chunk := sock.recv(1 << 16):      # (until the server closes it)
                    got += chunk
                assert b" 400 " in got
            deadline = time.monotonic() + 30
            while s.get("/v1/opportunities/" + rows[1]["opportunity_id"]).status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert s.post(PATH, _rows(1, 430)).status_code == 201
    finally:
        s.stop()
    log = (tmp_path / "serve.log").read_text()
    assert "could not be written" not in log and "Exception in ASGI application" not in log, log


def test_forwarded_headers_take_the_asgi_path_and_its_client_address(tmp_path):
    # uvicorn trusts forwarded headers from loopback: the rate limit counts the address they give.
    # One request a second per address (the stats reads count too: a second's wait before each)
    s = Server(tmp_path, "--rate-limit", "1")
    try:
        time.sleep(1.1)
        before = _below_asgi(s)
        codes = []
        for k in range(3):
            (st, _, _), _ = _one(s, _request("POST", PATH, orjson.dumps(_rows(1, 500 + k)),
                                             [("x-forwarded-for", f"10.0.0.{k + 1}")]), None)
            codes.append(st)
        assert codes == [201, 201, 201]             # three addresses, one request each
        time.sleep(1.1)
        (st1, _, _), _ = _one(s, _request("POST", PATH, orjson.dumps(_rows(1, 600))), None)
        (st2, h2, body2), _ = _one(s, _request("POST", PATH, orjson.dumps(_rows(1, 601))), None)
        assert st1 == 201 and st2 == 429 and int(h2["retry-after"]) >= 1 and "requests/s" in orjson.loads(body2)["error"]
        assert h2["content-type"] == "application/json"
        time.sleep(1.1)
        assert _below_asgi(s) == before + 2         # the two without forwarded headers (the 429 one too)
    finally:
        s.stop()


def test_the_usual_answer_is_written_as_every_other_answer_is():
    """A small JSON answer kept alive goes out through a head kept per status (post_protocol.py
    ``_head``): byte for byte what the general writer makes of the same answer, and made anew when
    uvicorn's default headers change (the date, each second)."""
    from collections import Counter
    from types import SimpleNamespace

    from workbench.api.fast_post import JSON, answer
    from workbench.api.post_protocol import PostProtocol, _Post

    class Proto(PostProtocol):          # (the protocol's answer path alone: no server, no socket)
        layer = SimpleNamespace(counts=Counter(), heads={}, heads_of=None)

        def on_response_complete(self):
            pass

    proto = object.__new__(Proto)
    sent = []
    proto.transport = SimpleNamespace(write=sent.append, close=lambda: None, is_closing=lambda: False)
    for second in (b"Sat, 05 Dec 2026 21:00:00 GMT", b"Sat, 05 Dec 2026 21:00:01 GMT"):
        proto.server_state = SimpleNamespace(default_headers=[(b"server", b"uvicorn"), (b"date", second)])
        for status, body in ((201, b'{"inserted":1}'), (200, b'{"inserted":0,"duplicates":1}'), (422, b"{}" * 40)):
            proto.answer(_Post(proto, False, False, True), status, body)
            body2, head = answer(body, False, JSON)
            proto._write(_Post(proto, False, False, True), status, head, body2)
            assert sent[-2] == sent[-1] and second in sent[-1] and sent[-1].endswith(b"\r\n\r\n" + body)
    assert Proto.layer.counts[("POST /v1/opportunities", 201)] == 2
    # a connection closing before its loss is told (uvloop tells it a turn of the loop later): the answer
    # is counted, nothing is written to it
    closing = object.__new__(Proto)
    closing.transport = SimpleNamespace(write=sent.append, close=lambda: None, is_closing=lambda: True)
    n = len(sent)
    closing.answer(_Post(closing, False, False, True), 201, b'{"inserted":1}')
    assert len(sent) == n and Proto.layer.counts[("POST /v1/opportunities", 201)] == 3


def test_each_answered_post_is_timed_in_latency_and_metrics(tmp_path):
    """Every post a group answers, below ASGI or through it, 201 or 422, is timed once
    (fast_post.py ``answer_ns``): /v1/latency shows the count and percentiles from the same buckets
    that /metrics exposes as a Prometheus histogram; a post cut short by the body limit is not."""
    import math

    from prometheus_client.parser import text_string_to_metric_families

    s = Server(tmp_path)
    try:
        assert "post_answer_ns" not in s.get("/v1/latency").json()      # (nothing answered yet)
        answered = 0
        with socket.create_connection(("127.0.0.1", s.port)) as sock:   # below ASGI, kept alive
            for k in range(5):
                sock.sendall(_request("POST", PATH, orjson.dumps(_rows(3, 10 * k))))
                [(st, _, _)], _ = _answers(sock, 1, None)
                assert st == 201
                answered += 1
        for target, rows, code in ((PATH + "?via=asgi", _rows(2, 100), 201), (PATH, [{**_row(200), "slot": "x"}], 422)):
            (st, _, _), _ = _one(s, _request("POST", target, orjson.dumps(rows)))
            assert st == code
            answered += 1
        r = s.http.post(s.base + PATH, content=b"[" + b" " * (17 << 20) + b"]", timeout=60)   # over the body limit
        assert r.status_code == 413
        lat = s.get("/v1/latency").json()["post_answer_ns"]
        assert lat["count"] == answered == sum(c for _, _, c in lat["buckets"])
        assert 0 < lat["p50"] <= lat["p99"] <= lat["p99.9"] <= lat["buckets"][-1][1]
        fam = next(f for f in text_string_to_metric_families(s.get("/metrics").text) if f.name == "post_answer_ns")
        buckets = [(float(x.labels["le"]), x.value) for x in fam.samples if x.name == "post_answer_ns_bucket"]
        assert buckets[-1] == (math.inf, answered)
        assert [le for le, _ in buckets[:-1]] == [hi for _, hi, _ in lat["buckets"]]
        assert [c for _, c in buckets[:-1]] == list(itertools.accumulate(c for _, _, c in lat["buckets"]))
    finally:
        s.stop()


# -- a GET of a page answered before ------------------------------------------------------------------
def _pages(s: Server) -> dict:
    return s.get("/v1/stats").json()["pages"]


def _same_answer(a: tuple[int, dict, bytes], b: tuple[int, dict, bytes]) -> None:
    """Status, headers (but the date) and body alike."""
    drop = lambda h: {k: v for k, v in h.items() if k != "date"}       # noqa: E731
    assert (a[0], drop(a[1]), a[2]) == (b[0], drop(b[1]), b[2])


def test_a_page_asked_again_is_answered_below_asgi_as_the_asgi_path_answers_it(tmp_path):
    s = Server(tmp_path)
    try:
        assert s.post(PATH, _rows(2_000, 1_000)).status_code == 201
        forwarded = [("x-forwarded-for", "127.0.0.1")]       # (the same address: takes the ASGI path)
        for target, extra in ((PATH + "?type=sandwich&limit=7", []),
                              (PATH + "?type=sandwich&limit=7", [("accept", "application/vnd.apache.arrow.stream")]),
                              (PATH, []),
                              (PATH + "?limit=1000", [("accept-encoding", "gzip")]),       # large: gzipped
                              (PATH + "?limit=999", [])):                                   # large, not gzipped
            before = _pages(s)
            first, _ = _one(s, _request("GET", target, headers=extra))      # made by the route, kept
            again, closed = _one(s, _request("GET", target, headers=extra))
            via_asgi, _ = _one(s, _request("GET", target, headers=extra + forwarded))
            after = _pages(s)
            assert after["answered_below_asgi"] == before["answered_below_asgi"] + 1, (target, extra)
            assert after["answered_again"] == before["answered_again"] + 2
            assert first[0] == 200 and not closed
            _same_answer(again, via_asgi)
            plain = lambda a: gzip.decompress(a[2]) if a[1].get("content-encoding") == "gzip" else a[2]   # noqa: E731
            assert plain(again) == plain(first) and first[1]["x-cache"] == "miss" and again[1]["x-cache"] == "hit"
            if "limit=99" in target or "limit=1000" in target:
                gz = bool(extra)
                assert again[1]["vary"] == "Accept-Encoding" and (again[1].get("content-encoding") == "gzip") == gz
                body = gzip.decompress(again[2]) if gz else again[2]
                assert len(orjson.loads(body)["rows"]) == (1000 if gz else 999)
        # a new row moves the data version: the next ask of a kept page is the route's, and shows it
        for _ in range(2):
            (st, _, body), _ = _one(s, _request("GET", PATH + "?limit=3000"))
        new = _rows(1, 5_000)
        assert s.post(PATH, new).status_code == 201
        before = _pages(s)
        (st, h, body), _ = _one(s, _request("GET", PATH + "?limit=3000"))
        assert _pages(s)["answered_below_asgi"] == before["answered_below_asgi"] and h["x-cache"] == "miss"
        assert new[0]["opportunity_id"] in {r["opportunity_id"] for r in orjson.loads(body)["rows"]}
        (st, h, body), _ = _one(s, _request("GET", PATH + "?limit=3000"))
        assert _pages(s)["answered_below_asgi"] == before["answered_below_asgi"] + 1 and h["x-cache"] == "hit"
        # HTTP/1.0 and Connection: close: answered below ASGI, and the connection closed
        for version, extra in (("1.0", []), ("1.1", [("connection", "close")])):
            before = _pages(s)["answered_below_asgi"]
            (st, h, body), closed = _one(s, _request("GET", PATH + "?limit=3000", headers=extra, version=version))
            assert st == 200 and h.get("connection") == "close" and closed, (version, h)
            assert _pages(s)["answered_below_asgi"] == before + 1
        # pipelined behind a post: answered in order (the GET by the ASGI path, behind the running post)
        more = _rows(1, 6_000)
        with socket.create_connection(("127.0.0.1", s.port)) as sock:
            sock.sendall(_request("POST", PATH, orjson.dumps(more)) + _request("GET", PATH + "?limit=3000"))
            got, _ = _answers(sock, 2)
        assert [g[0] for g in got] == [201, 200]
        assert more[0]["opportunity_id"] in {r["opportunity_id"] for r in orjson.loads(got[1][2])["rows"]}
    finally:
        s.stop()


def test_a_page_asked_again_keeps_the_token_and_the_rate_limit(tmp_path):
    s = Server(tmp_path, "--rate-limit", "50", token="sesame")
    try:
        assert s.post(PATH, _rows(20, 7_000)).status_code == 201
        target = PATH + "?limit=5"
        ok = [("authorization", "Bearer sesame")]
        assert _one(s, _request("GET", target, headers=ok))[0][0] == 200
        assert _one(s, _request("GET", target, headers=ok))[0][0] == 200          # now kept
        assert _one(s, _request("GET", target))[0][0] == 401
        assert _one(s, _request("GET", target, headers=[("authorization", "Bearer open")]))[0][0] == 403
        before = _pages(s)["answered_below_asgi"]
        time.sleep(1.1)
        codes, retry = [], None
        with socket.create_connection(("127.0.0.1", s.port)) as sock:
            for _ in range(80):             # past the burst of 50
                sock.sendall(_request("GET", target, headers=ok))
                (st, h, body), = _answers(sock, 1, None)[0]
                codes.append(st)
                if st == 429:
                    retry = (h, body)
        assert codes.count(200) >= 50 and codes.count(429) >= 20, codes
        h, body = retry
        assert int(h["retry-after"]) >= 1 and "requests/s" in orjson.loads(body)["error"]
        assert h["content-type"] == "application/json"
        time.sleep(1.1)
        assert _pages(s)["answered_below_asgi"] >= before + 50
    finally:
        s.stop()


def test_a_request_behind_a_page_answered_below_asgi_is_not_cut_by_the_keep_alive_timer(tmp_path):
    """A page answered while uvicorn parses arms the keep-alive timer (5 s) as any finished answer
    does; a request pipelined behind it in the same packet must disarm it, or a slow body (here one
    that pauses 6 s) has its connection closed under it, below ASGI or through it."""
    s = Server(tmp_path)
    try:
        assert s.post(PATH, _rows(5, 9_000)).status_code == 201
        target = PATH + "?limit=3"
        _one(s, _request("GET", target))                    # kept
        socks, bodies = [], []
        for k, post_target in enumerate((PATH, PATH + "?x=1")):
            body = orjson.dumps(_rows(2, 9_100 + 10 * k))
            raw = _request("GET", target) + _request("POST", post_target, body)
            cut = len(raw) - len(body) + 10                 # the post's head and its body's first bytes
            sock = socket.create_connection(("127.0.0.1", s.port))
            sock.sendall(raw[:cut])
            socks.append(sock)
            bodies.append(raw[cut:])
        time.sleep(6)
        for sock, rest in zip(socks, bodies):
            sock.sendall(rest)
            got, _ = _answers(sock, 2, None)
            assert [g[0] for g in got] == [200, 201]
            sock.close()
    finally:
        s.stop()
