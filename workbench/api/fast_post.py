"""POST /v1/opportunities answered in a raw-ASGI layer in front of Starlette.

Per request, Starlette builds a Request, routes, wraps the body stream and runs the answer
through the gzip middleware; with posts grouped (group_commit.py) that cost more than the
request's share of the check and the insert. This layer sits behind the Guard (same token,
rate-limit and Content-Length rules) and in front of Starlette, like fast_get.py for GET: it
reads the body (413 past the limit, even when streamed), queues it for the next group and sends
the group's answer for it, counted under the route's name as the route counts. The answers are
the route's: 201/200 with ``{"inserted", "duplicates", "ids"}``, 422 naming the row and field,
503 when the store fails, compressed as Starlette's GZipMiddleware would when large.

Each post answered by its group is timed from the read of its body's last bytes to the write of
its answer (``answer_ns``, on the engine's log-linear buckets: /v1/latency and /metrics as
``post_answer_ns``): the server's own share of a post, queueing on the event loop included, the
wait in the socket's buffer before the loop reads it not.
"""

from __future__ import annotations

import gzip
import logging
import time

import orjson

from ..errors import StoreError
from ..metrics.hist import Histogram, record_held
from .fast_get import GZIP_LEVEL, GZIP_MIN_BYTES
from .opportunity_rows import ARROW_STREAM
from .security import BODY_MAX_BYTES

log = logging.getLogger(__name__)

PATH = "/v1/opportunities"
ROUTE = "POST /v1/opportunities"
_ARROW = ARROW_STREAM.encode()
JSON = b"application/json"
ANSWER_HIST = "post_answer_ns"      # a post's last bytes read to its group's answer written (ns)


class FastPosts:
    def __init__(self, app, posts, counts, body_max: int = BODY_MAX_BYTES):
        self.app, self.posts, self.counts, self.body_max = app, posts, counts, body_max
        self.in_protocol = 0            # posts taken below ASGI (post_protocol.py)
        self.heads: dict[int, bytes] = {}   # post_protocol.py's answer heads by status, for the default headers
        self.heads_of = None                # ... in heads_of (uvicorn's list, new each second)
        self.answer_ns = Histogram(name=ANSWER_HIST)

    def answered(self, read_ns: int) -> None:
        """Time a group's answer written now to a post whose body was read whole at ``read_ns``
        (``time.perf_counter_ns``)."""
        h = self.answer_ns
        record_held(h.counts, h.stats, h.h, time.perf_counter_ns() - read_ns)

    async def __call__(self, scope, receive, send):
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PATH):
            return await self.app(scope, receive, send)
        arrow = gz = False
        for k, v in scope.get("headers", ()):
            if k == b"content-type":
                arrow = is_arrow(v)
            elif k == b"accept-encoding":
                gz = takes_gzip(v)
        parts, seen = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return                          # the client left before its body arrived: nothing to answer
            chunk = msg.get("body", b"")
            seen += len(chunk)
            if seen > self.body_max:
                return await self._answer(send, *too_large(self.body_max), gz)
            parts.append(chunk)
            if not msg.get("more_body", False):
                break
        read_ns = time.perf_counter_ns()
        try:
            status, body = await self.posts.submit(b"".join(parts), arrow)
        except Exception as e:      # noqa: BLE001 - the store's error is a 503, anything else a logged 500
            await self._answer(send, *failure(e), gz)
        else:
            await self._answer(send, status, body, gz)
        self.answered(read_ns)

    async def _answer(self, send, status: int, body: bytes, gz: bool, ctype: bytes = JSON) -> None:
        body, headers = answer(body, gz, ctype)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.counts[(ROUTE, status)] += 1


def warm_up() -> None:
    """Load the answers' timer kernel from numba's cache, so that the first post does not wait for it."""
    h = Histogram()
    record_held(h.counts, h.stats, h.h, 0)


def is_arrow(content_type: bytes) -> bool:
    """Whether a request's Content-Type says its body is an Arrow IPC stream."""
    return content_type.split(b";")[0].strip() == _ARROW


def takes_gzip(accept_encoding: bytes) -> bool:
    return b"gzip" in accept_encoding


def too_large(body_max: int) -> tuple[int, bytes]:
    """The answer to a body that passed the limit as it streamed."""
    return 413, orjson.dumps({"error": f"request body over {body_max} bytes"})


def failure(e: BaseException) -> tuple[int, bytes, bytes]:
    """The answer to a post whose group failed: 503 when the store failed, else (logged, as
    Starlette's ServerErrorMiddleware does) a plain 500."""
    if isinstance(e, StoreError):
        return 503, orjson.dumps({"error": f"the store cannot answer: {e}"}), JSON
    log.error("POST /v1/opportunities failed", exc_info=e)
    return 500, b"Internal Server Error", b"text/plain; charset=utf-8"


def answer(body: bytes, gz: bool, ctype: bytes = JSON) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """An answer's body and headers, compressed as Starlette's GZipMiddleware would when large."""
    headers = [(b"content-type", ctype)]
    if len(body) >= GZIP_MIN_BYTES:
        if gz:
            body = gzip.compress(body, GZIP_LEVEL, mtime=0)
            headers.append((b"content-encoding", b"gzip"))
        headers.append((b"vary", b"Accept-Encoding"))
    headers.insert(0, (b"content-length", str(len(body)).encode()))
    return body, headers
