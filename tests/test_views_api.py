"""The live page reading a running `workbench serve` (``--api URL``) instead of an engine of its own.

A real ``workbench serve --replay`` on a free loopback port; its clients are the page's feed
(panel_apps/_api_feed.py) on its own, then the page served by ``panel serve`` and read by
Debian's chromium under Playwright. What the page and the feed show is compared with the run's
own files (opportunities.parquet, tx_features.parquet, summary.json). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from views_helpers import APPS, app_log, launched_browser, new_page, served, text, wait_for

sys.path.insert(0, str(APPS))
import _api_feed as F  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CAPTURE = REPO / "captures" / "market.pcapng"
MARKET = REPO / "captures" / "market.pcapng.market"
START_S = 300           # the server answering /healthz (the engine may compile on a cold cache)
RUN_S = 300             # the replay done
FEED_S = 60             # the feed holding every row after the run is done
TOKEN = "a-test-token-of-24-chars"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """``workbench serve`` in a subprocess on a free loopback port."""

    def __init__(self, tmp: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = tmp / "out"
        self.log_path = tmp / "serve.log"
        self.log = open(self.log_path, "wb")
        self.http = httpx.Client(timeout=30)        # one client: each httpx.get builds a TLS context
        env = {**os.environ, "WORKBENCH_DATA_DIR": str(tmp / "data")}
        env.pop("WORKBENCH_API_TOKEN", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--db", f"chdb://{tmp / 'db'}",
                                      "-o", str(self.out), "--port", str(self.port), *extra],
                                     cwd=tmp, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_S
        while True:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            try:
                if self.http.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /healthz in time"
            time.sleep(0.2)

    def stats(self, token: str | None = None) -> dict:
        h = {"authorization": f"Bearer {token}"} if token else {}
        return self.http.get(self.url + "/v1/stats", headers=h).json()

    def wait_done(self) -> dict:
        st = wait_for(lambda: (s := self.stats())["run"]["phase"] in ("done", "failed") and s, RUN_S, "the replay")
        assert st["run"]["phase"] == "done", st
        return st

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        self.http.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Serve(tmp_path_factory.mktemp("serve"), "--replay", str(CAPTURE), "--market", str(MARKET), "--speed", "2")
    yield s
    s.stop()


def run_ids(out: Path) -> list[str]:
    return [str(x) for x in pq.read_table(out / "opportunities.parquet").column("opportunity_id").to_pylist()]


def test_feed_streams_every_row_of_the_run_with_its_stats_and_latency(server):
    feed = F.ApiFeed(server.url).start()            # while the replay runs: history, then the stream
    try:
        summary_stats = server.wait_done()
        want = run_ids(server.out)
        n_tx = pq.read_table(server.out / "tx_features.parquet").num_rows
        assert want, "the market capture's replay found opportunities"

        def rows(name):
            tabs, _ = feed.tables(name)
            return [x for t in tabs for x in t.column("opportunity_id" if name == "opportunities" else "ts_ns")
                    .to_pylist()]
        wait_for(lambda: len(rows("opportunities")) == len(want) and len(rows("tx_features")) == n_tx, FEED_S,
                 "every opportunity and transaction of the run in the feed")
        got = rows("opportunities")
        assert sorted(got) == sorted(want) and len(set(got)) == len(got)        # each once
        tabs, _ = feed.tables("opportunities")
        assert all("ts_ns" in t.column_names for t in tabs)                    # what the page's tables read
        summary = json.loads((server.out / "summary.json").read_text())
        wait_for(lambda: feed.phase == "server: replay done", FEED_S, "the server's phase polled")
        r = feed.update_rates()
        assert (r.packets, r.transactions, r.opportunities) == (summary["packets"], summary["transactions"], len(want))
        assert feed.error is None
        lat = server.http.get(server.url + "/v1/latency").json()
        hists = feed.histograms()
        assert "packet_processing_ns" in hists
        lows, highs, counts, marks = hists["packet_processing_ns"]
        assert int(counts.sum()) == lat["packet_processing_ns"]["count"] > 0
        assert marks["p50"] <= marks["p99"] <= marks["p99.9"]
        assert summary_stats["ws"]["clients"] >= 1
    finally:
        feed.stop()


def test_a_feed_started_after_the_run_gets_it_from_the_store(server):
    server.wait_done()
    feed = F.ApiFeed(server.url).start()
    try:
        want = run_ids(server.out)
        wait_for(lambda: feed.history_rows == len(want), FEED_S, "the stored opportunities over REST")
        time.sleep(1.0)                                 # the stream's catch-up repeats none of them
        tabs, _ = feed.tables("opportunities")
        got = [x for t in tabs for x in t.column("opportunity_id").to_pylist()]
        assert sorted(got) == sorted(want)
    finally:
        feed.stop()


def test_a_server_with_a_token_is_read_with_it_and_refuses_the_feed_without(tmp_path):
    s = Serve(tmp_path, "--token", TOKEN)
    try:
        without = F.ApiFeed(s.url).start()
        wait_for(lambda: without.error, FEED_S, "the refusal said")
        assert "token" in without.error and ("401" in without.error or "403" in without.error), without.error
        without.stop()
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        token, problem = F.api_token(str(token_file))
        assert (token, problem) == (TOKEN, None)
        feed = F.ApiFeed(s.url, token).start()
        wait_for(lambda: feed.phase == "server: no run (store only)", FEED_S, "the stats read with the token")
        assert feed.error is None and feed.history_rows == 0
        feed.stop()
    finally:
        s.stop()


def test_bad_api_arguments_are_named():
    assert "expected the server's base URL" in F.api_problem("127.0.0.1:8000")
    assert F.api_problem("http://127.0.0.1:8000") is None
    token, problem = F.api_token("/nonexistent/token")
    assert token is None and "--api-token-file /nonexistent/token" in problem
    api, rest = F.parse_api_args(["--api", "http://h:1", "--market", "M"])
    assert api.api == "http://h:1" and rest == ["--market", "M"]
    assert F.ws_url("https://h:1/base/") == "wss://h:1/base/ws"


def test_live_page_shows_the_servers_opportunities_and_stats(server, tmp_path):
    summary_stats = server.wait_done()
    want = run_ids(server.out)
    log = tmp_path / "panel.log"
    with served("live", args=("--api", server.url), log=log) as url, launched_browser() as browser:
        ctx, page = new_page(browser)
        try:
            page.goto(url)
            page.locator(".wb-status").wait_for()
            wait_for(lambda: "server: replay done" in text(page, ".wb-status"), FEED_S, "the server's phase")

            def total():
                import re
                m = re.search(r"([\d,]+)\s+of\s+([\d,]+)", text(page, ".wb-opp-count"))
                return int(m.group(2).replace(",", "")) if m else -1
            wait_for(lambda: total() == len(want), FEED_S, "every opportunity of the server in the table")
            packets = f"{summary_stats['run']['packets']:,}"
            wait_for(lambda: packets in text(page, ".wb-totals"), FEED_S, "the server's packet count")
            assert f"{len(want):,}" in text(page, ".wb-totals")
            # the table shows the server's rows: the first page's ids are among the run's
            ids = [c.text_content() for c in
                   page.locator('.wb-opp-table .tabulator-cell[tabulator-field="opportunity_id"]').all()[:10]]
            assert ids and all(i in want for i in ids), ids
            page.screenshot(path=str(tmp_path / "live-api.png"), full_page=True)
        finally:
            ctx.close()
    assert "Traceback" not in app_log(log), app_log(log)[-4000:]
