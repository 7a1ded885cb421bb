"""uvicorn with the one-write protocol (api/one_write.py): a real uvicorn server on a free loopback
port, a tiny ASGI app, real sockets. Whatever the response's shape (a body in one part or
several, chunked, HEAD, connection close, an app that fails after its head), the bytes on the
wire are uvicorn's own; a small answer is one write to the connection's transport."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from workbench.api.one_write import OneWriteHttpToolsProtocol

pytestmark = pytest.mark.timeout(60)


async def _app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/small":
        body = b'{"ok":true}'
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    elif path == "/parts":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"9")]})
        for part in (b"abc", b"def", b"ghi"):
            await send({"type": "http.response.body", "body": part, "more_body": part != b"ghi"})
    elif path == "/chunked":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
    elif path == "/close":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/fails":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        raise RuntimeError("the app fails after its head")
    else:
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


@contextlib.contextmanager
def _serving(protocol_class):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(_app, host="127.0.0.1", port=port, loop="uvloop", http=protocol_class,
                            log_level="critical", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def base():
    with _serving(OneWriteHttpToolsProtocol) as url:
        yield url


def test_answers_of_every_shape_are_uvicorns(base):
    with httpx.Client(base_url=base) as c:
        r = c.get("/small")
        assert (r.status_code, r.json(), r.headers["content-length"]) == (201, {"ok": True}, "11")
        assert c.get("/parts").content == b"abcdefghi"
        r = c.get("/chunked")
        assert r.content == b"onetwo" and r.headers["transfer-encoding"] == "chunked"
        r = c.head("/small")
        assert (r.status_code, r.content, r.headers["content-length"]) == (201, b"", "11")
        assert c.get("/nothing").status_code == 404
        for _ in range(3):                      # keep-alive: one connection, answers in turn
            assert c.get("/small").status_code == 201
    with httpx.Client(base_url=base) as c:
        r = c.get("/close")
        assert r.content == b"ok" and r.headers["connection"] == "close"
    with httpx.Client(base_url=base) as c, pytest.raises(httpx.RemoteProtocolError):
        c.get("/fails")                         # the head alone was never a whole answer


class _Counted:
    """The connection's real transport, its writes counted."""

    def __init__(self, transport, writes: list):
        self._transport, self._writes = transport, writes

    def write(self, data) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name):
        return getattr(self._transport, name)


def _counting(protocol_class, writes: list):
    class Counting(protocol_class):
        def connection_made(self, transport):
            super().connection_made(_Counted(transport, writes))
    return Counting


@pytest.mark.parametrize("protocol_class, per_answer", [(OneWriteHttpToolsProtocol, 1), (HttpToolsProtocol, 2)],
                         ids=["one-write", "uvicorns-own"])
def test_a_small_answer_is_one_write_where_uvicorns_own_cycle_makes_two(protocol_class, per_answer):
    writes: list[bytes] = []
    with _serving(_counting(protocol_class, writes)) as url, httpx.Client(base_url=url) as c:
        for _ in range(5):
            assert c.get("/small").json() == {"ok": True}
        assert c.head("/small").headers["content-length"] == "11"
    assert len(writes) == 5 * per_answer + 1               # (HEAD: the head alone, either way)
    first = writes[:per_answer]
    assert first[0].startswith(b"HTTP/1.1 201 ") and first[-1].endswith(b'{"ok":true}')
