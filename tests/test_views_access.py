"""Who may use the Panel apps (issue 15 item 14) and where they list and write data (issue 17
item 8), with real ``panel serve`` processes read as Bokeh client sessions: the kind of
session a script on another host opened to drive the explorer's replays.

A server on loopback serves without a token; a server listening on an address another host
can reach (a veth end in a network namespace the test makes) refuses every session that
does not bring the token, before it lists, reads or runs anything.
"""

from __future__ import annotations

import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

from views_helpers import (REPO, document_texts, select_options, served, session_document,  # noqa: F401
                           veth_namespace)

CAPTURE = REPO / "captures" / "demo.pcapng"
TOKEN = "wb-test-token-5c1d2f0e9a7b"
RUN_TIMEOUT_S = 180          # a replay's first rows (a cold numba cache compiles the engine)

pytestmark = pytest.mark.slow

sys.path.insert(0, str(REPO / "panel_apps"))


# --- the address check, as a unit --------------------------------------------------------------
def test_listening_addresses_sees_this_process_sockets():
    import _access as A
    with socket.socket() as lo, socket.socket(socket.AF_INET6) as any6:
        lo.bind(("127.0.0.1", 0))
        lo.listen()
        any6.bind(("::", 0))
        any6.listen()
        socks = A.listening_addresses()
        assert ("127.0.0.1", lo.getsockname()[1]) in socks
        assert ("::", any6.getsockname()[1]) in socks
        exposed = A.exposed_addresses()
        assert f":::{any6.getsockname()[1]}" in exposed
        assert not any(e.endswith(f":{lo.getsockname()[1]}") and e.startswith("127.") for e in exposed)
    assert A.is_loopback("::ffff:127.0.0.1") and A.is_loopback("::1") and not A.is_loopback("0.0.0.0")


def test_token_rules(tmp_path, monkeypatch):
    import _access as A
    monkeypatch.delenv(A.TOKEN_ENV, raising=False)
    assert A.configured_token(None) == (None, None)
    monkeypatch.setenv(A.TOKEN_ENV, "short")
    tok, problem = A.configured_token(None)
    assert tok is None and "shorter than" in problem
    f = tmp_path / "token"
    f.write_text(TOKEN + "\nignored\n")
    assert A.configured_token(str(f)) == (TOKEN, None)
    tok, problem = A.configured_token(str(tmp_path / "missing"))
    assert tok is None and "cannot be read" in problem


# --- real servers --------------------------------------------------------------------------------
def _closed(doc) -> bool:
    return "This page is closed" in document_texts(doc)


def _has_replay_button(doc) -> bool:
    return any(type(m).__name__ == "Button" and m.label == "Replay" for m in doc.models)


def test_loopback_serves_without_token(tmp_path):
    with served("explorer", log=tmp_path / "serve.log") as url:
        doc = session_document(url)
        assert not _closed(doc) and _has_replay_button(doc)


def test_non_loopback_without_token_runs_nothing(tmp_path):
    """The issue's attack: a client session from another host. The live app with a capture would
    replay it at the first session; here it refuses, and no run folder appears."""
    out = tmp_path / "run"
    with veth_namespace("a") as (ns, addr):
        with served("live", "explorer", args=("--capture", str(CAPTURE), "--out", str(out)), address=addr,
                    netns=ns, log=tmp_path / "serve.log", env={"WORKBENCH_VIEWS_TOKEN": ""}) as url:
            doc = session_document(url)
            texts = document_texts(doc)
            assert _closed(doc), texts
            assert f"listens on {addr}:" in texts.replace("&#58;", ":").replace("&#46;", "."), texts
            explorer = session_document(url.replace("/live", "/explorer"))
            assert _closed(explorer) and not _has_replay_button(explorer)
            time.sleep(2)
            assert not out.exists(), "a refused session started a run"
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_panel_serve_default_address_refuses(tmp_path):
    """``panel serve`` without --address (as the README once showed it) listens on every interface:
    refused too, even for a client on loopback, since the server is reachable from elsewhere."""
    with veth_namespace("c") as (ns, addr):
        with served("explorer", address=addr, listen_all=True, netns=ns, log=tmp_path / "serve.log",
                    env={"WORKBENCH_VIEWS_TOKEN": ""}) as url:
            local = url.replace(addr, "127.0.0.1")           # a client on the server's own loopback
            code = (f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r}); from views_helpers import *; "
                    f"print('CLOSED' if 'This page is closed' in document_texts(session_document({local!r})) else 'OPEN')")
            import subprocess
            r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=120)
            assert r.stdout.strip().endswith("CLOSED"), (r.stdout, r.stderr[-2000:])
            doc = session_document(url)                                     # and from the other host
            assert _closed(doc) and not _has_replay_button(doc)


def test_non_loopback_with_token(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with veth_namespace("b") as (ns, addr):
        with served("explorer", args=("--token-file", str(token_file)), address=addr, netns=ns,
                    log=tmp_path / "serve.log") as url:
            assert _closed(session_document(url))
            assert _closed(session_document(url, {"token": "wb-test-token-wrong-guess"}))
            assert _closed(session_document(url, {"token": TOKEN[:-1]}))
            doc = session_document(url, {"token": TOKEN})
            assert not _closed(doc) and _has_replay_button(doc)


def test_token_set_is_required_on_loopback_too(tmp_path):
    with served("explorer", log=tmp_path / "serve.log", env={"WORKBENCH_VIEWS_TOKEN": TOKEN}) as url:
        assert _closed(session_document(url))
        assert not _closed(session_document(url, {"token": TOKEN}))


def test_short_token_refuses_everything(tmp_path):
    with served("explorer", log=tmp_path / "serve.log", env={"WORKBENCH_VIEWS_TOKEN": "abc"}) as url:
        doc = session_document(url, {"token": "abc"})
        assert _closed(doc) and "shorter than" in document_texts(doc)


# --- where the apps list and write (issue 17 item 8) --------------------------------------------
def _user_folder(root: Path) -> Path:
    (root / "captures").mkdir(parents=True)
    shutil.copy(CAPTURE, root / "captures" / "mine.pcapng")
    shutil.copy(CAPTURE, root / "loose.pcap")        # a capture beside the user's files (pcapng inside; listed)
    (root / "models" / "x").mkdir(parents=True)
    return root


@pytest.mark.parametrize("how", ["cwd", "arg", "env"])
def test_explorer_lists_the_users_folder_and_the_repository(tmp_path, how):
    user = _user_folder(tmp_path / "user")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    kw = {"cwd": user} if how == "cwd" else {"cwd": elsewhere}
    args = ("--data-dir", str(user)) if how == "arg" else ()
    env = {"WORKBENCH_DATA_DIR": str(user)} if how == "env" else {}
    with served("explorer", args=args, env=env, log=tmp_path / "serve.log", **kw) as url:
        doc = session_document(url)
        caps = select_options(doc, "capture")
        assert "captures/mine.pcapng" in caps and "loose.pcap" in caps, caps
        assert "captures/demo.pcapng" in caps, caps                      # the repository's, listed too
        assert "models/x" in select_options(doc, "model")
        assert "captures/market.pcapng.market" in select_options(doc, "market snapshot")


def test_live_writes_its_run_under_the_users_folder(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    with served("live", args=("--capture", str(CAPTURE)), cwd=user, log=tmp_path / "serve.log") as url:
        session_document(url)                     # the first session starts the server's run
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not list((user / "runs" / "views").glob("*/summary.json")):
            assert time.monotonic() < deadline, f"no run under {user}/runs/views"
            time.sleep(0.5)


def test_non_loopback_with_panel_basic_auth(tmp_path):
    """Panel's own authentication stands in for the token: a signed-in user gets the app."""
    from views_helpers import UI_TIMEOUT_S, chromium, wait_for
    from playwright.sync_api import sync_playwright
    with veth_namespace("d") as (ns, addr):
        with served("explorer", address=addr, netns=ns, log=tmp_path / "serve.log",
                    env={"WORKBENCH_VIEWS_TOKEN": "", "PANEL_BASIC_AUTH": "wb-basic-auth-password-3e1",
                         "PANEL_COOKIE_SECRET": "wb-cookie-secret-for-this-test-only-7a9c"}) as url:
            try:
                doc = session_document(url)      # no login: Panel's auth refuses the session, or the app does
            except Exception:
                doc = None
            assert doc is None or (_closed(doc) and not _has_replay_button(doc))
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-dev-shm-usage"])
                try:
                    pg = b.new_page()
                    pg.goto(url)
                    pg.fill("input[name=username]", "researcher")
                    pg.fill("input[name=password]", "wb-basic-auth-password-3e1")
                    pg.locator("button, input[type=submit]").first.click()
                    wait_for(lambda: pg.locator(".wb-run button").count() > 0, UI_TIMEOUT_S * 3, "the app after login")
                    assert "This page is closed" not in pg.content()
                finally:
                    b.close()

