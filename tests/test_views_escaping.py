"""Values from files reach the Panel pages as text, never as markup (issue 15 item 15), and a
snapshot the engine would refuse is refused by the pages with the loader's message.

A real run folder and market snapshot are rewritten with hostile strings where strings may
be (a token symbol, a victim signature, a profit mint, a program list, a transaction
signature) and, in a second snapshot, where the engine's checks refuse them (a program
name). Debian's chromium opens the live page and the explorer's detail over them: each
string shows as its own text, no element it spells is created, no script it carries runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.engine.tables import readable_tx_table
from views_helpers import (REPO, UI_TIMEOUT_S, app_log, deep_text, elements_with_id_prefix, launched_browser, new_page,  # noqa: F401
                           served, text, wait_for)

MARKET_CAPTURE = REPO / "captures" / "market.pcapng"
MARKET = REPO / "captures" / "market.pcapng.market"
DATA_TIMEOUT_S = 180
# HTML that would make an element and run a script; Markdown that would close a code span first
HOSTILE = '<img src=x id=wbxss1 onerror="window.__wbxss=1">'
HOSTILE_MD = "`</code><img src=x id=wbxss2 onerror=window.__wbxss=2>` **bold** [a](javascript:x) $x$"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    with launched_browser() as b:
        yield b


@pytest.fixture
def page(browser):
    ctx, pg = new_page(browser)
    yield pg
    ctx.close()


def _rewrite(path, **columns):
    # tx_features as text (base58 signatures): a file of that form (written before the raw-byte
    # signatures) must still show escaped
    t = readable_tx_table(pq.read_table(path))
    for name, fn in columns.items():
        i = t.schema.get_field_index(name)
        t = t.set_column(i, t.schema.field(i), pa.array(fn(t.column(name).to_pylist()), t.schema.field(i).type))
    pq.write_table(t, path)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """(run folder, market with a hostile symbol, market with a hostile program name)."""
    d = tmp_path_factory.mktemp("hostile")
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "replay", str(MARKET_CAPTURE), "--market", str(MARKET),
                        "--out", str(d / "run"), "--no-db", "-q"], cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run = d / "run"
    _rewrite(run / "opportunities.parquet",
             victim_signature=lambda v: [HOSTILE] * len(v), profit_mint=lambda v: [HOSTILE_MD] * len(v))
    _rewrite(run / "tx_features.parquet",
             signature=lambda v: [HOSTILE_MD] + v[1:], programs=lambda v: [[*v[0], HOSTILE]] + v[1:])
    for name in ("tx_features", "opportunities"):          # a column NAME is a string from a file too
        t = pq.read_table(run / f"{name}.parquet")
        pq.write_table(t.append_column(HOSTILE.replace("1", "3"), pa.array(["x"] * t.num_rows)),
                       run / f"{name}.parquet")
    market = d / "market"
    shutil.copytree(MARKET, market)
    _rewrite(market / "tokens.parquet", symbol=lambda v: [HOSTILE] + v[1:])
    bad = d / "bad-market"
    shutil.copytree(MARKET, bad)
    _rewrite(bad / "pools.parquet", program=lambda v: [HOSTILE] + v[1:])
    return run, market, bad


def assert_inert(pg):
    assert elements_with_id_prefix(pg, "wbxss") == [], "a hostile string became an element"
    assert pg.evaluate("() => window.__wbxss === undefined"), "a hostile string ran a script"


def test_live_page_shows_hostile_strings_as_text(page, tmp_path, hostile):
    run, market, _bad = hostile
    log = tmp_path / "serve.log"
    with served("live", args=("--run", str(run), "--market", str(market)), log=log) as url:
        page.goto(url)
        wait_for(lambda: "of" in text(page, ".wb-opp-count") and not text(page, ".wb-opp-count").startswith("**0"),
                 DATA_TIMEOUT_S, "opportunities")
        page.locator(".wb-opp-table").scroll_into_view_if_needed()
        # the symbol names the pools, the victim signature is a column: both as their text
        wait_for(lambda: HOSTILE in deep_text(page), UI_TIMEOUT_S, "the hostile symbol shown as text")
        cells = [c.text_content() for c in page.locator('.wb-opp-table .tabulator-cell[tabulator-field="pools"]').all()]
        assert any(f"{HOSTILE}/" in c or f"/{HOSTILE}" in c for c in cells), cells[:3]
        page.locator(".bk-tab", has_text="Transactions").first.click()
        wait_for(lambda: HOSTILE_MD in deep_text(page), UI_TIMEOUT_S, "the hostile signature shown as text")
        page.screenshot(path=str(tmp_path / "live-hostile.png"), full_page=True)
        assert_inert(page)
    assert "Traceback" not in app_log(log)


def test_explorer_detail_shows_hostile_strings_as_text(page, tmp_path, hostile):
    run, market, _bad = hostile
    oid = pq.read_table(run / "opportunities.parquet").column("opportunity_id")[0].as_py()
    log = tmp_path / "serve.log"
    with served("explorer", log=log) as url:
        from urllib.parse import urlencode
        page.goto(f"{url}?{urlencode({'run': str(run), 'opportunity': oid, 'market': str(market)})}")
        wait_for(lambda: oid in text(page, ".wb-detail"), DATA_TIMEOUT_S, "the linked opportunity's detail")
        detail = " ".join(text(page, ".wb-detail") for _ in range(1))
        assert HOSTILE in deep_text(page) and HOSTILE_MD in deep_text(page), detail
        page.screenshot(path=str(tmp_path / "explorer-hostile.png"), full_page=True)
        assert_inert(page)
    assert "Traceback" not in app_log(log)


@pytest.mark.parametrize("app", ["live", "explorer"])
def test_snapshot_refused_by_the_loader_is_said_as_text(page, tmp_path, hostile, app):
    """A program name the engine refuses: the page names file, row and column with the loader's
    message (before any replay), the name shown as text."""
    _run, _market, bad = hostile
    log = tmp_path / "serve.log"
    with served(app, args=("--capture", str(MARKET_CAPTURE), "--market", str(bad), "--out", str(tmp_path / "out")),
                log=log) as url:
        page.goto(url)
        page.locator(".wb-message").first.wait_for(timeout=UI_TIMEOUT_S * 1000)
        body = wait_for(lambda: (lambda t: t if "pools.parquet row 0 column program" in t else None)(deep_text(page)),
                        UI_TIMEOUT_S, "the loader's message")
        assert HOSTILE in body
        page.screenshot(path=str(tmp_path / f"{app}-bad-market.png"), full_page=True)
        assert_inert(page)
        assert not (tmp_path / "out").exists()
    assert "Traceback" not in app_log(log)
