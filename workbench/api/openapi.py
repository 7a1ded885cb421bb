"""The OpenAPI 3.1 document of the server, its row schema made from the store's table.

Written out rather than derived from handler signatures (the routes are plain Starlette): the
``Opportunity`` schema comes from store/schema.py's ``mev_opportunities`` columns, so a
migration that adds a column documents it here too.
"""

from __future__ import annotations

import pyarrow as pa

from .. import __version__
from ..store import schema as S
from ..store.schema import OPPORTUNITY_TYPES
from .opportunity_rows import ARROW_STREAM, BATCH_ROWS_MAX, TABLE, enum_pairs, json_name
from .store_access import PAGE_ROWS_MAX, RUNS_MAX


def _column_schema(c: S.Column) -> dict:
    if c.kind == S.TIME:
        s = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "description": "ns since the Unix epoch"}
    elif c.kind == S.UUID_:
        s = {"type": "string", "format": "uuid"}
    elif c.kind == S.ENUM:
        s = {"type": "string", "enum": [lab for lab, _ in enum_pairs(c)]}
    elif pa.types.is_floating(c.arrow):
        s = {"type": ["number", "null"] if c.default == "nan" else "number"}
    elif pa.types.is_integer(c.arrow):
        bits = c.arrow.bit_width
        lo, hi = (0, 2**bits - 1) if pa.types.is_unsigned_integer(c.arrow) else (-(2**(bits - 1)), 2**(bits - 1) - 1)
        s = {"type": "integer", "minimum": lo, "maximum": hi}
    elif pa.types.is_list(c.arrow):
        s = {"type": "array", "items": {"type": "string"}}
    else:
        s = {"type": "string"}
    if c.comment:
        s["description"] = (s.get("description", "") + "; " if s.get("description") else "") + c.comment
    return s


def _q(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _json_body(ref: str) -> dict:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _ok(description: str, ref: str | None = None) -> dict:
    r = {"description": description}
    if ref:
        r.update(_json_body(ref))
    return r


ERRORS = {"401": {"description": "no bearer token (the server has one)"},
          "403": {"description": "a wrong bearer token"}}


def openapi_document(token: bool) -> dict:
    """The document; ``token``: the server needs a bearer token (every route but /healthz)."""
    spec = S.TABLES[TABLE]
    errors = ERRORS if token else {}
    row = {"type": "object", "additionalProperties": False,
           "properties": {json_name(c): _column_schema(c) for c in spec.columns},
           "required": [json_name(c) for c in spec.columns if c.default is None]}
    list_params = [
        {**_q("type", {"type": "string", "enum": list(OPPORTUNITY_TYPES)}, "opportunity type (repeat or comma-separate)"),
         "explode": True},
        _q("since", {"type": "integer"}, "from this time on, ns since the epoch (inclusive)"),
        _q("until", {"type": "integer"}, "before this time, ns since the epoch (exclusive)"),
        _q("min_profit", {"type": "number"}, "expected profit at least this (SOL)"),
        _q("pool", {"type": "string"}, "a pool address the opportunity trades"),
        _q("run", {"type": "string"}, "run id"),
        _q("min_score", {"type": "number"}, "model score at least this"),
        _q("limit", {"type": "integer", "minimum": 1, "maximum": PAGE_ROWS_MAX}, "rows per page"),
        _q("cursor", {"type": "string"}, "next_cursor of the previous page (keyset on time and id)"),
    ]
    paths = {
        "/v1/opportunities": {
            "get": {"summary": "Opportunities in (time, id) order, filtered, one page",
                    "parameters": list_params,
                    "responses": {"200": {"description": "a page: JSON, or with Accept: application/vnd.apache."
                                                         "arrow.stream an Arrow IPC stream (next cursor in the "
                                                         "X-Next-Cursor header); gzip when large and accepted. "
                                                         "The newest rows are served from memory, older pages "
                                                         "from the store merged with memory: the same bytes "
                                                         "either way",
                                          "headers": {
                                              "X-Next-Cursor": {"description": "Arrow pages: the next page's cursor "
                                                                               "(empty on the last page)",
                                                                "schema": {"type": "string"}},
                                              "X-Page-Source": {"description": "where the page was read: memory, or "
                                                                               "store+memory",
                                                                "schema": {"type": "string",
                                                                           "enum": ["memory", "store+memory"]}},
                                              "X-Cache": {"description": "hit: the page was encoded for an earlier "
                                                                         "request and no row arrived since; miss",
                                                          "schema": {"type": "string", "enum": ["hit", "miss"]}}},
                                          "content": {
                                              "application/json": {"schema": {
                                                  "$ref": "#/components/schemas/OpportunityPage"}},
                                              "application/vnd.apache.arrow.stream": {
                                                  "schema": {"type": "string", "format": "binary"}}}},
                                  "422": _ok("a bad parameter", "Error"),
                                  **errors}},
            "post": {"summary": f"Store a batch of opportunities (at most {BATCH_ROWS_MAX}), idempotent on "
                                "opportunity_id, broadcast on the WebSocket",
                     "requestBody": {"required": True, "content": {
                         "application/json": {"schema": {
                             "type": "array", "maxItems": BATCH_ROWS_MAX,
                             "items": {"$ref": "#/components/schemas/Opportunity"}}},
                         ARROW_STREAM: {"schema": {
                             "type": "string", "format": "binary",
                             "description": f"an Arrow IPC stream of at most {BATCH_ROWS_MAX} rows whose columns are "
                                            "the Opportunity fields (a GET page in Arrow posts back unchanged); a "
                                            "time field may also be timestamp[ns]. Checked value by value like "
                                            "JSON: a bad value, a missing field or a null gets 422 naming the row "
                                            "and field"}}}},
                     "responses": {"201": _ok("rows inserted", "PostResult"),
                                   "200": _ok("every row was stored already", "PostResult"),
                                   "413": _ok("body too large", "Error"),
                                   "422": _ok("a row does not fit; nothing was written", "RowError"),
                                   **errors}},
        },
        "/v1/opportunities/{id}": {"get": {
            "summary": "One opportunity", "parameters": [{"name": "id", "in": "path", "required": True,
                                                         "schema": {"type": "string", "format": "uuid"}}],
            "responses": {"200": _ok("the row", "Opportunity"), "404": _ok("not stored", "Error"), **errors}}},
        "/v1/runs": {"get": {"summary": "Runs, newest first",
                             "parameters": [_q("limit", {"type": "integer", "minimum": 1, "maximum": RUNS_MAX},
                                               "runs to list")],
                             "responses": {"200": {"description": "runs"}, "422": _ok("a bad parameter", "Error"),
                                           **errors}}},
        "/v1/runs/{id}": {"get": {"summary": "One run: its row, latency summary and (this server's run) summary",
                                  "parameters": [{"name": "id", "in": "path", "required": True,
                                                  "schema": {"type": "string"}}],
                                  "responses": {"200": {"description": "the run"}, "404": _ok("no such run", "Error"),
                                                **errors}}},
        "/v1/stats": {"get": {"summary": "Counters and rates of the run and the server",
                              "responses": {"200": {"description": "stats"}, **errors}}},
        "/v1/latency": {"get": {"summary": "The engine's histograms: count, p50, p99, p99.9, non-empty buckets",
                                "responses": {"200": {"description": "histograms by name"}, **errors}}},
        "/metrics": {"get": {"summary": "Prometheus exposition", "responses": {"200": {"description": "text"},
                                                                              **errors}}},
        "/docs": {"get": {"summary": "Swagger UI over this document (served offline; the page and its files "
                                     "need no token, the page asks for it and sends it itself)", "security": [],
                          "responses": {"200": {"description": "HTML", "content": {"text/html": {
                              "schema": {"type": "string"}}}}}}},
        "/healthz": {"get": {"summary": "The process answers (no token needed)", "security": [],
                             "responses": {"200": {"description": "ok"}}}},
        "/readyz": {"get": {"summary": "The store answers and the run has not failed",
                            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"},
                                          **errors}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "solana-mev-workbench", "version": __version__,
                 "description": "REST over the store and the running engine. WebSocket /ws: send "
                                '{"type":"subscribe","channels":["opportunities"],"from":0}.'},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Opportunity": row,
                "OpportunityPage": {"type": "object", "properties": {
                    "rows": {"type": "array", "items": {"$ref": "#/components/schemas/Opportunity"}},
                    "next_cursor": {"type": ["string", "null"]}}},
                "PostResult": {"type": "object", "properties": {
                    "inserted": {"type": "integer"}, "duplicates": {"type": "integer"},
                    "ids": {"type": "array", "items": {"type": "string"}}}},
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
                "RowError": {"type": "object", "properties": {
                    "error": {"type": "string"}, "row": {"type": ["integer", "null"]},
                    "field": {"type": ["string", "null"]}, "message": {"type": "string"}}},
            },
        },
        **({"security": [{"bearer": []}]} if token else {}),
    }
