"""Malformed and edge HTTP requests against a real `workbench serve` on raw loopback sockets
(bounded: a fixed seed, 120 connections): methods, targets and versions, JSON, Arrow and garbage
bodies (some with a byte changed), chunked bodies (some cut), lengths announced wrong, extra
headers (Expect, Connection: close, forwarded, upgrade, a huge one), requests pipelined on one
connection, sent in random pieces, some connections left early. Afterwards the server is alive,
answers a post and a page, counted no 500 and logged no traceback. A scratch version of this found
two faults: an empty first post answered 500, and an answer written to a connection closed behind a
pipelined bad request logged an error (below ASGI and through it)."""

from __future__ import annotations

import random
import socket

import orjson
import pytest

from test_api_post_fast import _row
from test_api_serve import Server
from test_api_units import _arrow

pytestmark = pytest.mark.timeout(600)

CONNECTIONS = 120


def _body(rng: random.Random) -> bytes:
    rows = [_row(rng.randrange(10**9)) for _ in range(rng.randrange(0, 4))]
    k = rng.random()
    b = orjson.dumps(rows) if k < 0.5 else (_arrow(rows) if rows else b"") if k < 0.7 else rng.randbytes(rng.randrange(200))
    if b and rng.random() < 0.3:
        at = rng.randrange(len(b))
        b = b[:at] + bytes([rng.randrange(256)]) + b[at + 1:]
    return b


def _request(rng: random.Random) -> bytes:
    method = rng.choice(["POST"] * 6 + ["GET", "PUT", "HEAD", "DELETE", "OPTIONS", "PO ST", ""])
    target = rng.choice(["/v1/opportunities"] * 5 + ["/v1/opportunities?x=1", "/v1/opportunities/", "//v1/opportunities",
                                                     "/v1/stats", "/%ff", "*", "/v1/opportunities?" + "a" * 9000])
    version = rng.choice(["1.1"] * 6 + ["1.0", "2.0", "1.x"])
    body = _body(rng)
    heads = ["host: 127.0.0.1"]
    ctype = rng.choice(["application/json", "application/vnd.apache.arrow.stream", "text/plain", ""])
    if ctype:
        heads.append(f"content-type: {ctype}")
    if rng.random() < 0.2:
        heads.append("transfer-encoding: chunked")
        parts = [b"%x\r\n%s\r\n" % (len(body[at:at + 64]), body[at:at + 64]) for at in range(0, len(body), 64)]
        payload = b"".join(parts) + (b"0\r\n\r\n" if rng.random() < 0.9 else b"zz\r\n")
    else:
        length = rng.choice([len(body)] * 6 + [len(body) + 7, max(0, len(body) - 7), -1, "abc"])
        if rng.random() < 0.85:
            heads.append(f"content-length: {length}")
        payload = body
    heads += rng.sample(["expect: 100-continue", "connection: close", "accept-encoding: gzip",
                         "x-forwarded-for: 10.0.0.1", "upgrade: websocket", "authorization: Bearer x",
                         "x-" + "h" * 10_000 + ": 1", "accept: application/vnd.apache.arrow.stream"], rng.randrange(3))
    return f"{method} {target} HTTP/{version}\r\n".encode() + "\r\n".join(heads).encode() + b"\r\n\r\n" + payload


def test_malformed_and_pipelined_requests_leave_the_server_answering_without_a_500(tmp_path):
    rng = random.Random(24)
    s = Server(tmp_path)
    try:
        answered = 0
        for _ in range(CONNECTIONS):
            data = b"".join(_request(rng) for _ in range(rng.choice([1, 1, 2, 3])))
            try:
                with socket.create_connection(("127.0.0.1", s.port), timeout=2) as sock:
                    at = 0
                    while at < len(data):
                        n = rng.randrange(1, 4096)
                        sock.sendall(data[at:at + n])
                        at += n
                        if rng.random() < 0.02:         # (the client leaves early)
                            break
                    sock.settimeout(0.3)
                    got = b""
                    try:
                        while chunk := sock.recv(1 << 16):
                            got += chunk
                    except (TimeoutError, ConnectionResetError):
                        pass
                    answered += got.count(b"HTTP/1.")
            except (ConnectionResetError, BrokenPipeError):
                pass
            assert s.proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        assert answered > CONNECTIONS // 2
        r = s.post("/v1/opportunities", [_row(10**10)])
        assert r.status_code == 201, r.text
        assert s.get("/v1/opportunities/" + orjson.loads(r.content)["ids"][0]).status_code == 200
        metrics = s.get("/metrics").text
        assert not [ln for ln in metrics.splitlines() if ln.startswith("workbench_http_requests_total") and 'code="5' in ln]
    finally:
        s.stop()
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-5000:]
