"""GET /docs: Swagger UI served offline from the swagger-ui-bundle-v2 package, rendered in Debian's
chromium (Playwright, no downloaded browser, no network beyond loopback): every operation of
/openapi.json shows. With a token the page and its files need none, never contain it, and the
page loads the document only once the user types the token."""

from __future__ import annotations

import pytest

from test_api_serve import Server
from views_helpers import launched_browser, new_page, wait_for

pytestmark = pytest.mark.timeout(300)

TOKEN = "docs-test-token-7f3a"


def test_docs_render_every_operation_offline_and_the_token_stays_out_of_the_page(tmp_path):
    s = Server(tmp_path, token=TOKEN)
    try:
        page = s.http.get(s.base + "/docs", timeout=30)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert TOKEN not in page.text and "http://" not in page.text and "https://" not in page.text
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            r = s.http.get(f"{s.base}/docs/assets/{asset}", timeout=30)
            assert r.status_code == 200 and len(r.content) > 10_000 and TOKEN.encode() not in r.content
        assert s.http.get(s.base + "/docs/assets/../openapi.json", timeout=30).status_code in (401, 404)
        assert s.http.get(s.base + "/openapi.json", timeout=30).status_code == 401
        spec = s.get("/openapi.json").json()
        want = sorted((m.upper(), p) for p, ops in spec["paths"].items() for m in ops)
        outside = []
        with launched_browser() as b:
            ctx, pg = new_page(b)
            # loopback only: a request anywhere else fails the test rather than reaching out
            ctx.route("**/*", lambda route: route.continue_() if route.request.url.startswith(s.base)
                      else (outside.append(route.request.url), route.abort()))
            pg.goto(s.base + "/docs")
            pg.locator("#token-form").wait_for(state="visible")
            pg.fill("#token", "wrong")
            pg.click("#token-form button")
            wait_for(lambda: "403" in pg.inner_text("#token-error"), 20, "the wrong token refused")
            pg.fill("#token", TOKEN)
            pg.click("#token-form button")
            pg.locator(".opblock").first.wait_for()

            def shown():
                return sorted(pg.eval_on_selector_all(".opblock-summary", """els => els.map(e => [
                    e.querySelector('.opblock-summary-method').textContent.trim(),
                    e.querySelector('.opblock-summary-path').getAttribute('data-path')])"""))
            got = wait_for(lambda: [tuple(x) for x in shown()] if len(shown()) >= len(want) else None, 20,
                           "every operation rendered")
            assert got == want
            assert TOKEN not in pg.content()
            ctx.close()
        assert outside == []
    finally:
        s.stop()
