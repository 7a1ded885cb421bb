"""Who may talk to the server, and how much they may send: plain ASGI middleware.

Off loopback the server needs a token (server.py refuses to start without one); with a token,
every route but /healthz and the /docs page's static files, the WebSocket included, needs ``Authorization: Bearer <token>``
(401 without one, 403 with a wrong one; the WebSocket handshake is refused before it is
accepted). Request bodies past ``body_max`` bytes get 413, whether announced by
Content-Length or streamed (``read_body``). With ``rate`` set, each client address may make
``rate`` requests per second (a burst of one second's worth); past that it gets 429 with
``Retry-After``, the WebSocket handshake included.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import time

OPEN_PATHS = ("/healthz",)
# need no token (still rate-limited): the /docs page and its files carry no data, and a browser cannot
# attach a bearer header to a navigation; the page sends the token the user types (api/docs.py)
TOKEN_FREE = ("/docs",)
TOKEN_FREE_PREFIXES = ("/docs/assets/",)
BODY_MAX_BYTES = 16 * 1024 * 1024        # a POST batch of BATCH_ROWS_MAX wide rows fits with room
TOKEN_ENV = "WORKBENCH_API_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_answer(text: str, extra: list | None = None) -> tuple[bytes, list]:
    """A refusal's JSON body and headers."""
    body = ('{"error":"%s"}' % text.replace('"', "'")).encode()
    return body, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]


async def _plain(send, status: int, text: str, extra: list | None = None) -> None:
    body, headers = plain_answer(text, extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass


class RateLimit:
    """A token bucket per client address: ``rate`` requests per second, a burst of ``rate``."""

    def __init__(self, rate: float):
        self.rate = float(rate)
        self._buckets: dict[str, list[float]] = {}

    def wait_s(self, who: str, now: float | None = None) -> float:
        """0 when the request may go now (and is counted), else seconds until it may."""
        now = time.monotonic() if now is None else now
        b = self._buckets.get(who)
        if b is None:
            b = self._buckets[who] = [self.rate, now]
            if len(self._buckets) > 100_000:          # forget idle clients rather than grow without end
                self._buckets = {who: b}
        b[0] = min(self.rate, b[0] + (now - b[1]) * self.rate)
        b[1] = now
        if b[0] >= 1.0:
            b[0] -= 1.0
            return 0.0
        return (1.0 - b[0]) / self.rate


class Guard:
    """Token check, rate limit and body size limit in front of the app."""

    def __init__(self, app, token: str | None, body_max: int = BODY_MAX_BYTES, rate: float | None = None):
        self.app, self.body_max = app, body_max
        self.token = token.encode() if token else None
        self.limit = RateLimit(rate) if rate else None

    def authorised(self, path: str, headers) -> int:
        """0 when a request for ``path`` with ``headers`` (lower-case names) is allowed, else the
        HTTP status to refuse it with."""
        if self.token is None or path in OPEN_PATHS or path in TOKEN_FREE or path.startswith(TOKEN_FREE_PREFIXES):
            return 0
        for k, v in headers:
            if k == b"authorization":
                scheme, _, given = v.partition(b" ")
                if scheme.lower() != b"bearer":
                    return 401
                return 0 if hmac.compare_digest(given.strip(), self.token) else 403
        return 401

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refused = self.authorised(scope.get("path", ""), scope.get("headers", ()))
        if refused:
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})    # uvicorn answers the handshake with 403
                return
            text = "a bearer token is required (Authorization: Bearer <token>)" if refused == 401 else "wrong token"
            return await _plain(send, refused, text, [(b"www-authenticate", b"Bearer")] if refused == 401 else [])
        if self.limit is not None and scope.get("path") not in OPEN_PATHS:
            retry = self.over_rate((scope.get("client") or ("?",))[0])
            if retry:
                if kind == "websocket":
                    await send({"type": "websocket.http.response.start", "status": 429,
                                "headers": [(b"retry-after", retry)]})
                    await send({"type": "websocket.http.response.body", "body": b""})
                    return
                return await _plain(send, 429, self.over_rate_text(), [(b"retry-after", retry)])
        if kind == "websocket":
            return await self.app(scope, receive, send)
        if self.announced_over(scope.get("headers", ())):
            return await _plain(send, 413, f"request body over {self.body_max} bytes")
        return await self.app(scope, receive, send)

    def announced_over(self, headers) -> bool:
        """Whether the request's Content-Length says its body passes the limit."""
        for k, v in headers:
            if k == b"content-length":
                return v.isdigit() and int(v) > self.body_max
        return False

    def over_rate(self, who: str) -> bytes | None:
        """None when client ``who`` may make a request now (it is counted), else the Retry-After
        value (whole seconds) of its 429. Only with a rate limit."""
        wait = self.limit.wait_s(who)
        return str(max(1, math.ceil(wait))).encode() if wait else None

    def over_rate_text(self) -> str:
        return f"over {self.limit.rate:g} requests/s from this address"


async def read_body(request, body_max: int = BODY_MAX_BYTES) -> bytes:
    """The request body, refused (BodyTooLarge) past ``body_max`` bytes even when it is streamed."""
    parts, seen = [], 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > body_max:
            raise BodyTooLarge(f"request body over {body_max} bytes")
        parts.append(chunk)
    return b"".join(parts)
