"""The routes: REST /v1, the WebSocket /ws, /metrics, health, the OpenAPI document.

Starlette on uvicorn (uvloop, httptools), bodies encoded with orjson: the README's "Service:
workbench serve" gives the measured comparison with FastAPI and the standard json module.
Store queries run on worker threads (the store client blocks); everything else on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools

import anyio
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from ..errors import StoreError
from ..store.schema import OPPORTUNITY_TYPES
from .docs import ASSETS_PREFIX, DOCS_PATH, docs_routes
from .fast_get import GZIP_MIN_BYTES, FastPages
from .group_commit import GroupCommit
from .posted_rows import PostedRows
from .openapi import openapi_document
from .fast_post import FastPosts
from .runtime_tuning import collect_young_every, settle_after_start
from .opportunity_rows import ARROW_STREAM
from .recent_route import opportunity_pages
from .prometheus import CONTENT_TYPE, ServerMetrics
from .security import BodyTooLarge, Guard, read_body
from .service import Service
from .ws import ws_endpoint
from .store_access import (PAGE_ROWS_DEFAULT, PAGE_ROWS_MAX, RUNS_MAX, BadQuery, OpportunityFilter, decode_cursor,
                           note_hand_offs)

JSON = "application/json"
NEXT_CURSOR_HEADER = "x-next-cursor"
PAGE_SOURCE_HEADER = "x-page-source"    # memory | store+memory: where the page's rows were read
CACHE_HEADER = "x-cache"                # hit: the encoded page was kept from an earlier request (same data)


def _json(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=JSON)


def _error(status: int, message: str, **extra) -> Response:
    return _json({"error": message, **extra}, status)


class QueryError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _int(q, name: str, lo: int | None = None, hi: int | None = None) -> int | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        n = int(v)
    except ValueError:
        raise QueryError(name, f"{name}={v!r}: expected an integer") from None
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise QueryError(name, f"{name}={n}: expected {lo}..{hi}")
    return n


def _float(q, name: str) -> float | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        raise QueryError(name, f"{name}={v!r}: expected a number") from None
    if f != f:
        raise QueryError(name, f"{name}=nan: expected a number")
    return f


def _types(q) -> list[str]:
    out = []
    for v in q.getlist("type"):
        out += [t.strip() for t in v.split(",") if t.strip()]
    bad = [t for t in out if t not in OPPORTUNITY_TYPES]
    if bad:
        raise QueryError("type", f"type={bad[0]!r}: expected one of {list(OPPORTUNITY_TYPES)}")
    return out


def build_app(service: Service) -> Guard:
    metrics = ServerMetrics(service.metrics_snapshot)
    store = service.store
    pages = opportunity_pages(service)     # the newest rows in memory, merged with the store's

    def posted(rows: PostedRows) -> None:       # a group's new rows: memory, then /ws
        pages.add_posted(rows)
        service.published_posted(rows)

    posts = service.posts = GroupCommit(store, posted)    # concurrent posts share one check and one insert
    note_hand_offs(service.run, store)      # an engine row's id is known from its hand-off (idempotence)

    def counted(route: str):
        def wrap(fn):
            @functools.wraps(fn)
            async def handler(request: Request) -> Response:
                try:
                    resp = await fn(request)
                except QueryError as e:
                    resp = _error(422, str(e), field=e.field)
                except BadQuery as e:
                    resp = _error(422, str(e), field="cursor")
                except StoreError as e:
                    resp = _error(503, f"the store cannot answer: {e}")
                service.http_requests[(route, resp.status_code)] += 1
                return resp
            return handler
        return wrap

    @counted("/v1/opportunities")
    async def list_opportunities(request: Request) -> Response:
        q = request.query_params
        f = OpportunityFilter(types=_types(q), since_ns=_int(q, "since"), until_ns=_int(q, "until"),
                              min_profit=_float(q, "min_profit"), pool=q.get("pool") or None,
                              run=q.get("run") or None, min_score=_float(q, "min_score"))
        limit = _int(q, "limit", 1, PAGE_ROWS_MAX) or PAGE_ROWS_DEFAULT
        cursor = q.get("cursor") or None
        arrow = ARROW_STREAM in request.headers.get("accept", "")
        version, hits = pages.recent.version, pages.recent.cache_hits
        body, nxt, source = await pages.page(f, limit, decode_cursor(cursor) if cursor else None, arrow)
        headers = {PAGE_SOURCE_HEADER: source, CACHE_HEADER: "hit" if pages.recent.cache_hits > hits else "miss"}
        if arrow:
            # the page as an Arrow IPC stream; the next page's cursor travels in a header
            resp = Response(body, media_type=ARROW_STREAM, headers={NEXT_CURSOR_HEADER: nxt or "", **headers})
        else:
            resp = Response(body, media_type=JSON, headers=headers)
        # the same query asked again before a row arrives is answered in front of Starlette (fast_get.py)
        fast.record(request.scope, version, body,
                    [(k, b"hit" if k == CACHE_HEADER.encode() else v) for k, v in resp.raw_headers
                     if k != b"content-length"])
        return resp

    @counted("/v1/opportunities/{id}")
    async def get_opportunity(request: Request) -> Response:
        oid = request.path_params["id"]
        held = pages.recent.row(oid)       # the newest rows, some not written to the store yet
        if held is not None:
            return Response(held[1], media_type=JSON)
        row = await anyio.to_thread.run_sync(store.opportunity, oid)
        if row is None:
            return _error(404, f"no opportunity {oid!r} in the store")
        return Response(row, media_type=JSON)

    @counted("POST /v1/opportunities")
    async def post_opportunities(request: Request) -> Response:
        try:
            body = await read_body(request)
        except BodyTooLarge as e:
            return _error(413, str(e))
        # (posts are answered in front of Starlette, fast_post.py; this route gives the same answers)
        arrow = request.headers.get("content-type", "").split(";")[0].strip() == ARROW_STREAM
        status, answer = await posts.submit(body, arrow)
        return Response(answer, status_code=status, media_type=JSON)

    @counted("/v1/runs")
    async def list_runs(request: Request) -> Response:
        limit = _int(request.query_params, "limit", 1, RUNS_MAX) or 50
        return _json({"runs": await anyio.to_thread.run_sync(store.runs, limit)})

    @counted("/v1/runs/{id}")
    async def get_run(request: Request) -> Response:
        rid = request.path_params["id"]
        row = await anyio.to_thread.run_sync(store.run, rid)
        run = service.run
        if run is not None and getattr(run.result, "run_id", None) == rid and run.summary:
            row = {**(row or {}), "summary": run.summary}
        if row is None:
            return _error(404, f"no run {rid!r} in the store")
        return _json(row)

    @counted("/v1/stats")
    async def stats(request: Request) -> Response:
        return _json({**service.stats(), "pages": {"cache_hits": pages.recent.cache_hits,
                                                   "answered_again": fast.hits,
                                                   "answered_below_asgi": fast.in_protocol,
                                                   "store_queries": pages.store_rows.queries,
                                                   "store_read_ahead_hits": pages.store_rows.hits}})

    @counted("/v1/latency")
    async def latency(request: Request) -> Response:
        return _json(service.latency())

    @counted("/metrics")
    async def prometheus(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        return _json({"ok": True})

    @counted("/readyz")
    async def readyz(request: Request) -> Response:
        problems = []
        try:
            await anyio.to_thread.run_sync(store.ping)
        except StoreError as e:
            problems.append(f"store: {e}")
        run = service.run
        if run is not None and run.phase == "failed":
            problems.append(f"engine run failed: {run.error}")
        body = {"ready": not problems, "problems": problems,
                "run_phase": run.phase if run is not None else None}
        return _json(body, 503 if problems else 200)

    openapi_body = orjson.dumps(openapi_document(token=service.options.token is not None))

    async def openapi(request: Request) -> Response:
        return Response(openapi_body, media_type=JSON)

    docs_page, docs_asset = docs_routes()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.start()
        settle_after_start()        # the start-up heap is never walked by the collector again
        stop_collecting = collect_young_every(asyncio.get_running_loop())
        try:
            yield
        finally:
            stop_collecting()
            await service.stop()

    routes = [
        Route("/v1/opportunities", list_opportunities, methods=["GET"]),
        Route("/v1/opportunities", post_opportunities, methods=["POST"]),
        Route("/v1/opportunities/{id}", get_opportunity, methods=["GET"]),
        Route("/v1/runs", list_runs, methods=["GET"]),
        Route("/v1/runs/{id}", get_run, methods=["GET"]),
        Route("/v1/stats", stats, methods=["GET"]),
        Route("/v1/latency", latency, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route(DOCS_PATH, docs_page, methods=["GET"]),
        Route(ASSETS_PREFIX + "{name}", docs_asset, methods=["GET"]),
        WebSocketRoute("/ws", ws_endpoint(service)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES)])
    fast = FastPages(app, pages, service.http_requests)
    service.post_layer = FastPosts(fast, posts, service.http_requests)
    return Guard(service.post_layer, service.options.token, rate=service.options.rate_limit)

