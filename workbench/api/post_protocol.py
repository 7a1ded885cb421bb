"""POST /v1/opportunities taken inside uvicorn's HTTP protocol, below ASGI.

Through ASGI, every request costs uvicorn a scope, a cycle with its event, a task that runs the
app (the proxy-headers middleware, the Guard, fast_post.py's layer), a future the task awaits,
and two writes (the head, then the body); bench_http_floor.py measures that floor beside a bare
protocol. Posts come in thousands a second, each a small share of a group's check
(group_commit.py), so that floor was a large part of a post. Here uvicorn's httptools protocol
(subclassed: ``http=`` of uvicorn.Config, imported when the server starts, as ws_protocol.py)
takes a plain POST to the route itself: it gathers the body as the parser hands it over, queues
it with the request as the group's waiter (no task, no future), and writes the answer in one
write when the group answers.

"Plain" means nothing about it needs the ASGI path, which stays the reference and answers
everything else, unchanged: other routes and methods, a query string, a request behind another
on its connection (uvicorn answers pipelined requests in order), ``Expect: 100-continue``, an
upgrade, forwarded headers (uvicorn's proxy middleware decides what address they give, which
the rate limit counts), a refused token (the Guard's 401/403), a body announced past the limit
(the Guard's 413). What a plain post gets is what the ASGI path would give it: the Guard's rate
limit (its 429 and Retry-After) on the same buckets, fast_post.py's answers (413 when a streamed
body passes the limit, the group's 201/200/422, 503 or 500 on failure, gzip when large), the
count per route and code, uvicorn's default headers (server, date), keep-alive or
``connection: close`` as uvicorn's cycle writes them, and uvicorn's handling of the connection
(keep-alive timer, shutdown, a client that leaves: its rows are stored all the same, and
nothing is written back).

A GET of the route whose exact query string and form (JSON or Arrow) fast_get.py answered at the
current data version is taken the same way: the page is the one the fast layer holds, and the
answer is the one it would send (its bytes, gzip when large and accepted, Vary), after the same
Guard (the token, or the ASGI path's 401/403; the rate limit's 429). Dashboards and bots poll the
same page, and such a GET's work is the dict lookup: the ASGI floor was most of it. Anything else
(the first ask of a page, a page a new row made stale, a body, a fragment) goes through ASGI, whose
route makes the page and records it for the next ask.
"""

from __future__ import annotations

import logging
import time

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .fast_get import GZIP_MIN_BYTES, FastPages
from .fast_get import ROUTE as PAGES_ROUTE
from .fast_post import JSON, PATH, ROUTE, FastPosts, answer, failure, is_arrow, takes_gzip, too_large
from .opportunity_rows import ARROW_STREAM
from .security import Guard, plain_answer

log = logging.getLogger(__name__)

_PATH = PATH.encode()
_PAGE = _PATH + b"?"                    # a GET of the route with its query string
_ARROW_ACCEPT = ARROW_STREAM.encode()
_FORWARDED = (b"x-forwarded-for", b"x-forwarded-proto")     # what uvicorn's proxy middleware reads
# a GET that takes the ASGI path for one of its headers: a body, or forwarded addresses
_NOT_PLAIN_GET = frozenset((b"content-length", b"transfer-encoding", *_FORWARDED))
_JSON_END = b"\r\ncontent-type: " + JSON + b"\r\n\r\n"        # a small JSON answer's head after its length


class _NoEvent:
    def set(self) -> None:      # uvicorn sets a cycle's event when its connection is lost: nobody waits here
        pass


class _Post:
    """A post taken by the protocol: the connection's current cycle for uvicorn (what the protocol
    reads of one: ``response_complete``, ``keep_alive``, ``disconnected``, ``message_event``) and
    the group's waiter for its answer (``done``, ``set_result``, ``set_exception``)."""

    __slots__ = ("proto", "gz", "arrow", "parts", "seen", "keep_alive", "disconnected", "response_complete",
                 "read_ns")
    message_event = _NoEvent()

    def __init__(self, proto: PostProtocol, gz: bool, arrow: bool, keep_alive: bool):
        self.proto, self.gz, self.arrow, self.keep_alive = proto, gz, arrow, keep_alive
        self.parts: list[bytes] = []
        self.seen = self.read_ns = 0     # read_ns: when its body was read whole (0: not yet)
        self.disconnected = self.response_complete = False

    def done(self) -> bool:
        return self.response_complete or self.disconnected

    def set_result(self, got: tuple[int, bytes]) -> None:
        self.proto.answer(self, *got)

    def set_exception(self, e: BaseException) -> None:
        self.proto.answer(self, *failure(e))


class PostProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, taking plain posts to the route (``post_protocol`` binds the
    server's Guard and post layer)."""

    guard: Guard
    layer: FastPosts            # fast_post.py's layer: the group commit, the counts, the body limit
    pages: FastPages            # fast_get.py's layer: the pages answered at the current data version
    _behind: list = []          # requests still running that a pipelined request became the newest behind

    def on_headers_complete(self) -> None:
        # no keep-alive timer while a request runs: an answer written here while uvicorn parses (a page
        # asked again, a 429) armed it, and a request behind it in the same packet would be cut at 5 s
        self._unset_keepalive_if_required()
        method = self.parser.get_method()
        if method == b"POST":
            if self.url == _PATH and self._take_post():
                return
        elif method == b"GET" and (self.url == _PATH or self.url.startswith(_PAGE)) and self._answer_page():
            return
        earlier = self.cycle
        super().on_headers_complete()
        if earlier is not None and earlier is not self.cycle and not earlier.response_complete:
            self._behind = [c for c in self._behind if not c.response_complete] + [earlier]

    def connection_lost(self, exc: Exception | None) -> None:
        # uvicorn marks only the connection's newest request gone; one still running before it (a post
        # waiting for its group, or a route through ASGI) would write its answer to the closed socket
        for cycle in self._behind:
            if not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self._behind = []
        super().connection_lost(exc)

    def _plain(self) -> bool:
        """Whether nothing about the connection's state needs the ASGI path: no request before this one
        still running, no 100-continue, no concurrency limit, no upgrade."""
        return (self.cycle is None or self.cycle.response_complete) and not self.expect_100_continue \
            and self.limit_concurrency is None and not self.parser.should_upgrade()

    def _keep_alive(self) -> bool:
        return self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()

    def _answer_page(self) -> bool:
        """Answer a GET of a page fast_get.py holds at the current data version, as it would (see the
        module's text); False leaves the request to ASGI."""
        if not self._plain():
            return False
        arrow = gz = False
        headers = self.headers
        for k, v in headers:
            if k == b"accept":
                arrow = _ARROW_ACCEPT in v
            elif k == b"accept-encoding":
                gz = takes_gzip(v)
            elif k in _NOT_PLAIN_GET:
                return False
        url = self.url
        if b"#" in url:
            return False
        pages = self.pages
        got = pages.answers.get((url[len(_PAGE):], arrow))
        if got is None or got.version != pages.pages.recent.version:
            return False
        guard = self.guard
        if guard.authorised(PATH, headers):
            return False
        page = self.cycle = _Post(self, gz, arrow, self._keep_alive())
        if self._refused_over_rate(page):
            return True
        body, head = pages.answer_of(got, gz)
        pages.hits += 1
        pages.in_protocol += 1
        pages.counts[(PAGES_ROUTE, 200)] += 1
        self._write(page, 200, head, body)
        return True

    def _take_post(self) -> bool:
        """Take the request if it is a plain post (see the module's text); False leaves it to ASGI."""
        if not self._plain():
            return False
        guard = self.guard
        headers = self.headers
        arrow = gz = False
        for k, v in headers:
            if k == b"content-type":
                arrow = is_arrow(v)
            elif k == b"accept-encoding":
                gz = takes_gzip(v)
            elif k in _FORWARDED:
                return False
        if guard.authorised(PATH, headers) or guard.announced_over(headers):
            return False
        post = self.cycle = _Post(self, gz, arrow, self._keep_alive())
        self.layer.in_protocol += 1
        self._refused_over_rate(post)                       # (a refused post's body is read and dropped)
        return True

    def _refused_over_rate(self, cycle: _Post) -> bool:
        """Answer the Guard's 429 (with Retry-After) when the client is over its rate; whether it was."""
        guard = self.guard
        if guard.limit is None:
            return False
        retry = guard.over_rate(self.client[0] if self.client else "?")
        if retry:
            body, head = plain_answer(guard.over_rate_text(), [(b"retry-after", retry)])
            self._write(cycle, 429, head, body)
        return bool(retry)

    def on_body(self, body: bytes) -> None:
        post = self.cycle
        if type(post) is not _Post:
            return super().on_body(body)
        if post.response_complete:
            return
        post.seen += len(body)
        if post.seen > self.layer.body_max:
            self.answer(post, *too_large(self.layer.body_max))
            return
        post.parts.append(body)

    def on_message_complete(self) -> None:
        post = self.cycle
        if type(post) is not _Post:
            return super().on_message_complete()
        if post.response_complete:
            return
        parts, post.parts = post.parts, []
        post.read_ns = time.perf_counter_ns()
        self.layer.posts.enqueue(parts[0] if len(parts) == 1 else b"".join(parts), post.arrow, post)

    def answer(self, post: _Post, status: int, body: bytes, ctype: bytes = JSON) -> None:
        """Answer ``post`` (on the loop), as fast_post.py answers through ASGI."""
        self.layer.counts[(ROUTE, status)] += 1
        # (its client left; or the connection is closing and its loss not yet told: uvloop tells it a
        # turn of the loop after the close, uvicorn's on a bad request pipelined behind the post)
        if post.done() or self.transport.is_closing():
            return
        try:
            if len(body) < GZIP_MIN_BYTES and ctype is JSON and post.keep_alive:
                # the usual answer: its head up to the length is the same for every post of a status
                # while the server's default headers (the date's second) stay
                self._send(post, b"%s%d%s%s" % (self._head(status), len(body), _JSON_END, body))
            else:
                body, head = answer(body, post.gz, ctype)
                self._write(post, status, head, body)
        except Exception:           # noqa: BLE001 - never into the group's loop over its waiters
            log.exception("a POST answer could not be written")
            self.transport.close()
            return
        if post.read_ns:            # (a group's answer: not a 413 cut short)
            self.layer.answered(post.read_ns)

    def _head(self, status: int) -> bytes:
        """``_write``'s head of a small JSON answer kept alive, up to its content-length's value."""
        defaults = self.server_state.default_headers        # (a new list each second: the date)
        layer = self.layer
        if layer.heads_of is not defaults:
            layer.heads_of, layer.heads = defaults, {}
        head = layer.heads.get(status)
        if head is None:
            out = [STATUS_LINE[status]]
            for name, value in defaults:
                out += (name, b": ", value, b"\r\n")
            head = layer.heads[status] = b"".join(out) + b"content-length: "
        return head

    def _write(self, post: _Post, status: int, head: list[tuple[bytes, bytes]], body: bytes) -> None:
        """The answer in one write, as uvicorn's cycle writes it; then the connection goes on (the
        next pipelined request, or the keep-alive timer) or is closed."""
        out = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            out += (name, b": ", value, b"\r\n")
        for name, value in head:
            out += (name, b": ", value, b"\r\n")
        if not post.keep_alive:
            out.append(b"connection: close\r\n")
        out += (b"\r\n", body)
        self._send(post, b"".join(out))

    def _send(self, post: _Post, data: bytes) -> None:
        self.transport.write(data)
        post.response_complete = True
        if not post.keep_alive:
            self.transport.close()
        self.on_response_complete()


def post_protocol(app: Guard) -> type[PostProtocol]:
    """The protocol class for uvicorn.Config(http=...), bound to the app api/app.py built (its Guard,
    in front of the post layer, in front of the page layer)."""
    if not isinstance(app, Guard) or not isinstance(app.app, FastPosts) or not isinstance(app.app.app, FastPages):
        raise TypeError("post_protocol takes the app build_app makes: the Guard in front of FastPosts, "
                        "in front of FastPages")
    return type("PostProtocol", (PostProtocol,), {"guard": app, "layer": app.app, "pages": app.app.app})
