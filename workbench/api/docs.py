"""GET /docs: Swagger UI over /openapi.json, served offline from the files of a pip package.

The UI's files come from ``swagger-ui-bundle-v2`` (Swagger UI 5, Apache-2.0; version 5 is the
first to render OpenAPI 3.1): nothing is fetched from a CDN, so the page works on a host with no
internet. The page and its files carry no data, and a browser cannot attach a bearer header to
a navigation, so they need no token (security.py ``TOKEN_FREE``). Everything the page reads
(/openapi.json, and every "Try it out") goes through the token rules like any client: when the
server has a token, the page asks for it in a field and sends it as ``Authorization: Bearer``
from the browser. The token is never written into the page.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

DOCS_PATH = "/docs"
ASSETS_PREFIX = "/docs/assets/"
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>solana-mev-workbench API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
<style>#token-form{font-family:sans-serif;margin:12px 20px}#token-form[hidden]{display:none}</style>
</head>
<body>
<form id="token-form" hidden>
  <label>This server needs a bearer token: <input id="token" type="password" autocomplete="off"></label>
  <button type="submit">Load</button> <span id="token-error"></span>
</form>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
<script>
(function () {
  var form = document.getElementById("token-form");
  function start(token) {
    window.ui = SwaggerUIBundle({
      url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "BaseLayout",
      requestInterceptor: function (req) {
        if (token) { req.headers["Authorization"] = "Bearer " + token; }
        return req;
      }
    });
  }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var token = document.getElementById("token").value;
    fetch("/openapi.json", {headers: {"Authorization": "Bearer " + token}}).then(function (r) {
      if (r.ok) { form.hidden = true; start(token); }
      else { document.getElementById("token-error").textContent = "refused (" + r.status + ")"; }
    });
  });
  fetch("/openapi.json").then(function (r) {
    if (r.status === 401) { form.hidden = false; } else { start(null); }
  });
})();
</script>
</body>
</html>
""".encode()


def _assets_dir() -> Path:
    import swagger_ui_bundle
    return Path(swagger_ui_bundle.swagger_ui_path)


def docs_routes():
    """(path, handler) pairs: the page and its files, read once at start."""
    folder = _assets_dir()
    files = {name: ((folder / name).read_bytes(), mimetypes.guess_type(name)[0] or "application/octet-stream")
             for name in ASSETS}

    async def page(request: Request) -> Response:
        return Response(PAGE, media_type="text/html; charset=utf-8")

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        got = files.get(name)
        if got is None:
            return Response(b'{"error":"no such file"}', status_code=404, media_type="application/json")
        body, kind = got
        return Response(body, media_type=kind, headers={"cache-control": "public, max-age=86400"})

    return page, asset
