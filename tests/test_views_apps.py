"""The Panel apps, served on loopback and driven by Playwright in Debian's headless chromium.

Each test starts ``panel serve`` on a free port (the environment passed through, so the
engine loads from the suite's numba cache), opens the page, waits for data (every wait
bounded), checks what a person would look at and saves a screenshot under ``tmp_path``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from views_helpers import (UI_TIMEOUT_S, app_log, launched_browser, new_page, page_error, served as serve_apps, text,
                           wait_for)

REPO = Path(__file__).resolve().parent.parent
CAPTURE = REPO / "captures" / "demo.pcapng"
MARKET_CAPTURE = REPO / "captures" / "market.pcapng"
MARKET = REPO / "captures" / "market.pcapng.market"
DATA_TIMEOUT_S = 180          # first data on the page (a cold numba cache compiles the engine: ~30 s)

pytestmark = pytest.mark.slow


def served(app: str, *args: str, log: Path, also: tuple[str, ...] = ()):
    """``panel serve`` of ``app`` (and the apps ``also``) on a free loopback port; yields the URL."""
    return serve_apps(app, *also, args=args, log=log)


@pytest.fixture(scope="module")
def browser():
    with launched_browser() as b:
        yield b


@pytest.fixture
def page(browser, request, tmp_path):
    ctx, pg = new_page(browser)
    errors: list[str] = []
    console: list[str] = []

    def keep(e):
        if (kept := page_error(e)) is not None:
            errors.append(kept)
    pg.on("pageerror", keep)
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    pg.errors = errors
    pg.console = console
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:     # what the page showed and said, for a failure seldom seen
        shot = tmp_path / "failed.png"
        try:
            pg.screenshot(path=str(shot), full_page=True)
        except Exception as e:                    # noqa: BLE001 - the page may be gone
            shot = f"no screenshot: {e}"
        print(f"the page at the failure: {shot}; its errors: {errors or 'none'}; its console's errors and "
              f"warnings: {console[-30:] or 'none'}")
    ctx.close()


def match_count(pg, sel: str) -> tuple[int, int]:
    """(matching, total) from the '**N** of M ... match' line of a table."""
    m = re.search(r"([\d,]+)\s+of\s+([\d,]+)", text(pg, sel))
    return (int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))) if m else (-1, -1)


def bokeh_source(pg, name: str) -> dict | None:
    """Columns of the Bokeh ColumnDataSource called ``name`` as the browser holds them."""
    return pg.evaluate("""(name) => {
        for (const d of (window.Bokeh && window.Bokeh.documents) || []) {
            const m = d.get_model_by_name(name);
            if (m) { const o = {}; const e = m.data instanceof Map ? m.data.entries() : Object.entries(m.data);
                     for (const [k, v] of e) o[k] = Array.from(v); return o; }
        }
        return null; }""", name)


def no_traceback(log: Path) -> None:
    body = app_log(log)
    assert "Traceback" not in body, f"the server printed a traceback:\n{body[-4000:]}"


def workbench(*args: str, timeout: float = 600) -> None:
    """The ``workbench`` CLI in a subprocess (the suite's environment: numba cache, bounds checking)."""
    r = subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=REPO, env=dict(os.environ),
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"workbench {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"


@pytest.fixture(scope="module")
def market_run(tmp_path_factory):
    """The market capture replayed with its snapshot, a model trained and compiled on it: (run dir, model dir)."""
    d = tmp_path_factory.mktemp("market")
    workbench("replay", str(MARKET_CAPTURE), "--market", str(MARKET), "--out", str(d / "run"), "--no-db", "-q")
    workbench("train", str(d / "run"), "--out", str(d / "model"), "--trees", "30", "--depth", "4",
              "--market", str(MARKET))
    workbench("compile", str(d / "model"))
    # the engine specialised for a model is other machine code: compile (or load) it here, within
    # this subprocess's timeout, rather than inside a served page's wait
    workbench("replay", str(MARKET_CAPTURE), "--market", str(MARKET), "--model", str(d / "model"), "--out",
              str(d / "scored"), "--no-db", "-q")
    return d / "run", d / "model"


def opportunities_of(run: Path):
    import pyarrow.parquet as pq
    return pq.read_table(run / "opportunities.parquet").to_pandas()


INTEGER = re.compile(r"^\d{1,3}(,\d{3})*$")        # an exact integer as the tables show it


def cells(pg, table: str, field: str, n: int = 10) -> list[str]:
    return [c.text_content() for c in pg.locator(f'{table} .tabulator-cell[tabulator-field="{field}"]').all()[:n]]


def test_live_replay_demo_transactions(page, tmp_path):
    log = tmp_path / "serve.log"
    with served("live", "--capture", str(CAPTURE), "--out", str(tmp_path / "run"), log=log) as url:
        page.goto(url)
        page.locator(".wb-status").wait_for(timeout=UI_TIMEOUT_S * 1000)
        # data: the transaction table fills and the engine's histograms have non-empty bins
        wait_for(lambda: match_count(page, ".wb-tx-count")[1] >= 3900, DATA_TIMEOUT_S, "transactions in the table")
        wait_for(lambda: "done" in text(page, ".wb-status"), DATA_TIMEOUT_S, "the replay to finish")
        hist = wait_for(lambda: bokeh_source(page, "hist_packet_processing_ns"), UI_TIMEOUT_S, "histogram data")
        assert len(hist["top"]) > 0 and sum(hist["top"]) > 0
        batch = bokeh_source(page, "hist_batch_processing_ns")
        assert batch and sum(batch["top"]) > 0
        page.locator(".bk-tab", has_text="Transactions").first.click()
        rows = page.locator(".wb-tx-table .tabulator-row")
        wait_for(lambda: rows.count() > 0, UI_TIMEOUT_S, "rows in the transaction table")
        total = match_count(page, ".wb-tx-count")[1]
        assert total == 3922                      # every transaction of demo.pcapng (captures/PROVENANCE.md)
        # a filter changes the row count, and the rows shown obey it
        page.locator(".wb-tx-table").scroll_into_view_if_needed()
        select = page.locator("select").nth(1)    # type (opportunities tab), then program
        select.select_option("raydium_amm_v4")
        wait_for(lambda: 0 < match_count(page, ".wb-tx-count")[0] < total, UI_TIMEOUT_S, "the program filter")
        n = match_count(page, ".wb-tx-count")[0]
        assert n == 1604                          # raydium_amm_v4 transactions of demo.pcapng (summary)
        wait_for(lambda: all("675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8" in c.text_content()
                             for c in page.locator('.wb-tx-table .tabulator-cell[tabulator-field="programs"]')
                             .all()[:10]) and rows.count() > 0, UI_TIMEOUT_S, "filtered rows")
        page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
        assert (tmp_path / "live.png").stat().st_size > 10_000
        assert not page.errors, page.errors
    no_traceback(log)


@pytest.mark.parametrize("kind, args, expect", [
    ("capture", ["--capture", "/nonexistent/x.pcapng"], "Capture not found"),
    ("market", ["--capture", str(CAPTURE), "--market", "/nonexistent/market"], "Market snapshot not found"),
    ("model", ["--capture", str(CAPTURE), "--model", "/nonexistent/model.json"], "Model not found"),
    ("store", ["--store", "chdb:///nonexistent/clickhouse"], "Store not found"),
    ("run", ["--run", "/nonexistent/run"], "Run directory not found"),
])
def test_live_missing_input_shows_message(page, tmp_path, kind, args, expect):
    log = tmp_path / "serve.log"
    with served("live", *args, log=log) as url:
        page.goto(url)
        msg = page.locator(".wb-message")
        msg.first.wait_for(timeout=UI_TIMEOUT_S * 1000)
        body = " ".join(text(page, ".wb-message") for _ in range(1)) + " ".join(
            m.evaluate("el => el.shadowRoot ? el.shadowRoot.textContent : ''") for m in msg.all())
        assert expect in body, body
        page.screenshot(path=str(tmp_path / f"missing-{kind}.png"))
    no_traceback(log)


def test_live_market_with_model_streams_opportunities(page, tmp_path, market_run):
    run, model = market_run
    want = opportunities_of(run)
    assert len(want) > 0
    log = tmp_path / "serve.log"
    with served("live", "--capture", str(MARKET_CAPTURE), "--market", str(MARKET), "--model", str(model),
                "--speed", "4", "--out", str(tmp_path / "run"), log=log, also=("explorer",)) as url:
        page.goto(url)
        wait_for(lambda: match_count(page, ".wb-opp-count")[1] > 0, DATA_TIMEOUT_S, "opportunities streaming in")
        wait_for(lambda: "done" in text(page, ".wb-status"), DATA_TIMEOUT_S, "the replay to finish")
        wait_for(lambda: match_count(page, ".wb-opp-count")[1] == len(want), UI_TIMEOUT_S, "every opportunity")
        rows = page.locator(".wb-opp-table .tabulator-row")
        wait_for(lambda: rows.count() > 0, UI_TIMEOUT_S, "rows in the opportunity table")
        for name in ("hist_packet_processing_ns", "hist_opportunity_detection_ns", "hist_ml_inference_ns",
                     "hist_score"):
            src = wait_for(lambda: bokeh_source(page, name), UI_TIMEOUT_S, f"{name} in the page")
            assert sum(src["top"]) > 0, name
        scored = opportunities_of(tmp_path / "run")              # this run's, with the model's scores
        assert len(scored) == len(want) and scored["score"].notna().all()
        assert sum(bokeh_source(page, "hist_score")["top"]) == len(scored)
        profit = [bokeh_source(page, f"profit_{t}") for t in want["type"].unique()]
        assert all(p and len(p["sol"]) > 0 for p in profit)
        # the type filter: the count is the run's, and the rows shown are of that type
        page.locator(".wb-opp-table").scroll_into_view_if_needed()
        page.locator("select").first.select_option("sandwich")
        n_sandwich = int((want["type"] == "sandwich").sum())
        wait_for(lambda: match_count(page, ".wb-opp-count")[0] == n_sandwich, UI_TIMEOUT_S, "the type filter")
        assert 0 < n_sandwich < len(want)
        wait_for(lambda: set(cells(page, ".wb-opp-table", "type")) == {"sandwich"}, UI_TIMEOUT_S, "sandwich rows")
        rates = bokeh_source(page, "rates")          # over event time: every transaction and opportunity counted
        assert rates and max(rates["opportunities_per_s"]) > 0, rates
        width_s = rates["t"][1] - rates["t"][0]
        assert round(sum(rates["opportunities_per_s"]) * width_s) == len(want)
        # exact integers (no '.0'), microsecond times, pools named by the snapshot's token symbols
        amounts = {f"{int(v):,}" for v in scored["amount_in"]}
        shown = [c.strip() for c in cells(page, ".wb-opp-table", "amount_in")]
        assert shown and all(INTEGER.match(c) and c in amounts for c in shown), shown
        assert all(re.search(r"\d\d:\d\d:\d\d\.\d{6}$", c) for c in cells(page, ".wb-opp-table", "ts"))
        pools = cells(page, ".wb-opp-table", "pools")
        assert pools and all(re.match(r"^[A-Z]+/[A-Z]+ \w{4}…\w{4}", c) for c in pools), pools
        # a row's link opens the explorer's detail of that opportunity
        link = page.locator('.wb-opp-table .tabulator-cell[tabulator-field="detail"] a').first
        assert link.get_attribute("href").startswith("explorer?run=")
        oid = page.locator('.wb-opp-table .tabulator-cell[tabulator-field="opportunity_id"]').first.text_content()
        with page.context.expect_page(timeout=UI_TIMEOUT_S * 1000) as new:
            link.click()
        detail = new.value
        wait_for(lambda: oid in text(detail, ".wb-detail"), DATA_TIMEOUT_S, "the explorer's detail of the row")
        wait_for(lambda: detail.locator(".wb-pool-table .tabulator-row").count() > 0, UI_TIMEOUT_S, "pool states")
        reserves = [c.text_content().strip() for c in detail.locator(
            '.wb-pool-table .tabulator-cell[tabulator-field="reserve_a after"]').all()]
        assert reserves and all(INTEGER.match(r) for r in reserves), reserves
        detail.screenshot(path=str(tmp_path / "explorer-from-link.png"), full_page=True)
        page.screenshot(path=str(tmp_path / "live-market.png"), full_page=True)
        assert not page.errors, page.errors
    no_traceback(log)


def restart_number(pg) -> int:
    """The page's restart count from its status line (0 before the first)."""
    m = re.search(r"restart (\d+)", text(pg, ".wb-status"))
    return int(m.group(1)) if m else 0


def test_live_restart_and_loop_from_a_later_page(browser, tmp_path):
    """A page opened after the server's run ended restarts it for itself, and loops."""
    log = tmp_path / "serve.log"
    out = tmp_path / "run"
    with served("live", "--capture", str(CAPTURE), "--speed", "0.5", "--out", str(out), log=log) as url:
        first = browser.new_page()
        first.goto(url)
        wait_for(lambda: "done" in text(first, ".wb-status"), DATA_TIMEOUT_S, "the server's run to end")
        later = browser.new_page(viewport={"width": 1400, "height": 1500})
        later.goto(url)
        wait_for(lambda: match_count(later, ".wb-tx-count")[1] == 3922, DATA_TIMEOUT_S, "the ended run's rows")
        assert "done" in text(later, ".wb-status")
        later.locator(".wb-restart button").click()
        wait_for(lambda: "restart 1" in text(later, ".wb-status"), UI_TIMEOUT_S, "the restart")
        # the restarted run's end, not its "replaying": its 4 s may pass between two looks on a loaded machine
        wait_for(lambda: "done" in (s := text(later, ".wb-status")) and "restart 1" in s, DATA_TIMEOUT_S,
                 "the restarted run to end")
        wait_for(lambda: match_count(later, ".wb-tx-count")[1] == 3922, UI_TIMEOUT_S, "every row again, once")
        rates = bokeh_source(later, "rates")
        assert rates and max(rates["transactions_per_s"]) > 0, rates
        restarts = sorted(tmp_path.glob("run-restart-*-1"))
        assert len(restarts) == 1 and (restarts[0] / "summary.json").exists(), list(tmp_path.iterdir())
        assert "restart" not in text(first, ".wb-status")        # the other page still shows the server's run
        # loop: ticked after the end, the page starts again now and at each end. The waits read the
        # restart's number, not one lap's text: a lap shows for about 4 s, which two looks on a
        # loaded machine may straddle
        later.locator(".wb-loop input").check()
        lap = wait_for(lambda: (n := restart_number(later)) >= 2 and n, UI_TIMEOUT_S, "the loop's first restart")
        wait_for(lambda: restart_number(later) > lap, DATA_TIMEOUT_S, "the loop's next lap")
        later.screenshot(path=str(tmp_path / "live-restarted.png"), full_page=True)
        assert match_count(later, ".wb-tx-count")[1] <= 3922
    no_traceback(log)


def test_live_watches_a_store(page, tmp_path, market_run):
    run, _model = market_run
    want = opportunities_of(run)
    store = f"chdb://{tmp_path / 'store'}"
    workbench("replay", str(MARKET_CAPTURE), "--market", str(MARKET), "--out", str(tmp_path / "run"), "--db", store,
              "-q")
    log = tmp_path / "serve.log"
    with served("live", "--store", store, log=log) as url:
        page.goto(url)
        wait_for(lambda: match_count(page, ".wb-opp-count")[1] == len(want), DATA_TIMEOUT_S, "the store's opportunities")
        assert match_count(page, ".wb-tx-count")[1] > 0
        src = wait_for(lambda: bokeh_source(page, "hist_packet_processing_ns"), UI_TIMEOUT_S, "the store's histogram")
        assert sum(src["top"]) > 0
        assert "watching run" in text(page, ".wb-status")
        page.locator("select").first.select_option("arbitrage")
        n = int((want["type"] == "arbitrage").sum())
        wait_for(lambda: match_count(page, ".wb-opp-count")[0] == n, UI_TIMEOUT_S, "the type filter")
        page.screenshot(path=str(tmp_path / "live-store.png"), full_page=True)
    no_traceback(log)


def test_explorer_replays_and_explains_an_opportunity(page, tmp_path, market_run):
    _run, model = market_run
    log = tmp_path / "serve.log"
    with served("explorer", "--capture", str(MARKET_CAPTURE), "--market", str(MARKET), "--model", str(model),
                "--out", str(tmp_path / "runs"), log=log) as url:
        page.goto(url)
        page.locator(".wb-run button").click()
        wait_for(lambda: text(page, ".wb-status").strip().startswith("done"), DATA_TIMEOUT_S, "the replay")
        total = wait_for(lambda: max(0, match_count(page, ".wb-opp-count")[1]), UI_TIMEOUT_S, "the opportunity count")
        assert total == len(opportunities_of(_run))
        hist = bokeh_source(page, "hist_packet_processing_ns")
        assert hist and sum(hist["top"]) > 0
        rows = page.locator(".wb-opp-table .tabulator-row")
        wait_for(lambda: rows.count() > 0, UI_TIMEOUT_S, "opportunity rows")
        page.locator("select").nth(3).select_option("sandwich")       # capture, market, model, then type
        wait_for(lambda: 0 < match_count(page, ".wb-opp-count")[0] < total, UI_TIMEOUT_S, "the type filter")
        wait_for(lambda: set(cells(page, ".wb-opp-table", "type")) == {"sandwich"}, UI_TIMEOUT_S, "sandwich rows")
        rows.first.click()
        scapy = page.locator(".wb-scapy")
        wait_for(lambda: scapy.count() > 0 and "Solana transaction" in text(page, ".wb-scapy"), UI_TIMEOUT_S,
                 "the trigger packet dissected")
        assert "status    = ok" in text(page, ".wb-scapy")
        wait_for(lambda: page.locator(".wb-pool-table .tabulator-row").count() > 0, UI_TIMEOUT_S, "pool states")
        wait_for(lambda: page.locator('.wb-feature-table .tabulator-cell[tabulator-field="contribution"]').count() > 0,
                 UI_TIMEOUT_S, "feature contributions")
        wait_for(lambda: page.locator(".wb-instr-table .tabulator-row").count() > 0, UI_TIMEOUT_S, "instructions")
        page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
        assert not page.errors, page.errors
        _no_table_rebuilt_under_its_rows(page)
    no_traceback(log)


def test_explorer_missing_inputs_show_messages(page, tmp_path):
    log = tmp_path / "serve.log"
    with served("explorer", "--capture", "/nonexistent/x.pcap", "--market", "/nonexistent/m", "--model",
                "/nonexistent/model", log=log) as url:
        page.goto(url)
        page.locator(".wb-message").first.wait_for(timeout=UI_TIMEOUT_S * 1000)
        body = " ".join(m.evaluate("el => el.shadowRoot ? el.shadowRoot.textContent : ''")
                        for m in page.locator(".wb-message").all())
        for expect in ("Capture not found", "Market snapshot not found", "Model not found"):
            assert expect in body, body
        assert page.locator(".wb-run button").is_disabled()
        page.screenshot(path=str(tmp_path / "explorer-missing.png"))
    no_traceback(log)


def test_live_udp_source_streams_what_arrives(page, tmp_path):
    """Live mode on a plain UDP socket (no privilege): the page shows the transactions sent to it."""
    from workbench.capture import open_capture
    from workbench.wire.net import udp_payload
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    payloads = []
    for b in open_capture(CAPTURE):
        for i in range(b.n):
            st, poff, psz, _sp, dport = udp_payload(b.buf, b.off[i], b.caplen[i], b.linktype[i])
            if st == 0 and dport == 8003:
                payloads.append(bytes(b.buf[poff:poff + psz]))
    payloads = payloads[:500]
    log = tmp_path / "serve.log"
    with served("live", "--udp-ports", str(port), "--out", str(tmp_path / "run"), log=log) as url:
        page.goto(url)
        wait_for(lambda: text(page, ".wb-status").strip() == "live", DATA_TIMEOUT_S, "the live loop running")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for k, p in enumerate(payloads):
                tx.sendto(p, ("127.0.0.1", port))
                if k % 50 == 49:
                    time.sleep(0.01)
        # the demo capture's first 500 datagrams to port 8003 hold this many decodable transactions
        from workbench.wire.txn import decode_one
        want = len({p[1:65] for p in payloads if decode_one(p)[0] == 0})
        wait_for(lambda: match_count(page, ".wb-tx-count")[1] == want, UI_TIMEOUT_S, f"{want} transactions")
        assert want > 400
        # the engine's own histograms, read from the live run's state while it runs
        hist = wait_for(lambda: (lambda s: s if s and sum(s["top"]) > 0 else None)(
            bokeh_source(page, "hist_packet_processing_ns")), UI_TIMEOUT_S, "the live packet histogram")
        assert 0 < sum(hist["top"]) <= len(payloads)          # the engine times a sample of the packets
        page.locator(".bk-tab", has_text="Transactions").first.click()
        wait_for(lambda: page.locator(".wb-tx-table .tabulator-row").count() > 0, UI_TIMEOUT_S, "rows")
        page.screenshot(path=str(tmp_path / "live-udp.png"), full_page=True)
        assert not page.errors, page.errors
        _no_table_rebuilt_under_its_rows(page)
    no_traceback(log)


def _no_table_rebuilt_under_its_rows(page) -> None:
    """A table rebuilt by Panel under the rows sent to it (its column types changed) lost them at
    times, and the browser's console said so (panel_apps/_common.py ``retyped_table``)."""
    assert not [m for m in page.console if "Table Not Initialized" in m], page.console
