"""A raw-ASGI answer for a repeated GET /v1/opportunities, in front of Starlette.

A page asked again while no row arrived is a dict lookup (recent.py), but Starlette still builds
a Request, routes, and runs the response through the gzip middleware, which under load costs
more than the lookup. This layer sits behind the Guard (same token, rate-limit and size rules)
and in front of Starlette: when the exact query string and the same Accept (JSON or Arrow) were
answered at the current data version, it sends those bytes itself; anything else goes on to the
route, which records what it answered here. The route counter is counted the same way. A plain
request for such a page does not even reach ASGI: post_protocol.py answers it in uvicorn's HTTP
protocol from the same answers (``answer_of``).
"""

from __future__ import annotations

import gzip

from .opportunity_rows import ARROW_STREAM

PATH = "/v1/opportunities"
ROUTE = "/v1/opportunities"
GZIP_MIN_BYTES = 64 * 1024          # answers at least this large are compressed for clients that accept gzip
GZIP_LEVEL = 6
ANSWERS_MAX = 4_096                 # raw answers kept per data version


class Answer:
    """One encoded page and its headers; the gzip form made on first need."""
    __slots__ = ("version", "body", "headers", "_gz")

    def __init__(self, version: int, body: bytes, headers: list[tuple[bytes, bytes]]):
        self.version, self.body, self.headers, self._gz = version, body, headers, None

    def gzipped(self) -> bytes:
        if self._gz is None:
            self._gz = gzip.compress(self.body, GZIP_LEVEL, mtime=0)
        return self._gz


class FastPages:
    def __init__(self, app, pages, counts):
        self.app, self.pages, self.counts = app, pages, counts
        self.answers: dict[tuple[bytes, bool], Answer] = {}
        self.hits = 0                   # pages answered again, here or below ASGI
        self.in_protocol = 0            # ... of them below ASGI (post_protocol.py)

    @staticmethod
    def wants(scope) -> tuple[bool, bool]:
        """(Arrow asked, gzip accepted) from the request headers."""
        arrow = gz = False
        for k, v in scope.get("headers", ()):
            if k == b"accept":
                arrow = ARROW_STREAM.encode() in v
            elif k == b"accept-encoding":
                gz = b"gzip" in v
        return arrow, gz

    def record(self, scope, version: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        """What the route answered for this request (called by the route)."""
        if version != self.pages.recent.version:
            return
        if len(self.answers) >= ANSWERS_MAX:
            self.answers.clear()
        arrow, _ = self.wants(scope)
        self.answers[(scope.get("query_string", b""), arrow)] = Answer(version, body, headers)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET":
            arrow, gz = self.wants(scope)
            got = self.answers.get((scope.get("query_string", b""), arrow))
            if got is not None and got.version == self.pages.recent.version:
                self.hits += 1
                body, headers = self.answer_of(got, gz)
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                self.counts[(ROUTE, 200)] += 1
                return
        await self.app(scope, receive, send)

    @staticmethod
    def answer_of(got: Answer, gz: bool) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """A kept page's body and headers, compressed as Starlette's GZipMiddleware answers when large
        and ``gz`` (the client accepts gzip)."""
        body = got.body
        headers = list(got.headers)
        if len(body) >= GZIP_MIN_BYTES:
            if gz:
                body = got.gzipped()
                headers.append((b"content-encoding", b"gzip"))
            headers.append((b"vary", b"Accept-Encoding"))
        headers.append((b"content-length", str(len(body)).encode()))
        return body, headers
