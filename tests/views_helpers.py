"""Serving the Panel apps for tests: a real ``panel serve`` on a free port (loopback, or an
address inside a network namespace the test made), every wait bounded; reading a page
either through Debian's chromium (Playwright) or as a Bokeh client session (what a script
on another host could open)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APPS = REPO / "panel_apps"
SERVE_TIMEOUT_S = 90          # panel serve answering HTTP
SESSION_TIMEOUT_S = 60        # a Bokeh client session made and its document pulled


# tornado's write to a browser's WebSocket that closed meanwhile fails in a task nobody awaits, and
# asyncio logs it with its traceback (tornadoweb/tornado#3565, holoviz/panel#3341): closing the
# page while the app pushes an update can print it. Not the app's error, so a log check leaves it out.
_CLOSED_WRITE = re.compile(r"[^\n]*Task exception was never retrieved\nfuture: <Task finished [^\n]*"
                           r"WebSocketProtocol13\.write_message[^\n]*exception=WebSocketClosedError\(\)>\n.*?"
                           r"\ntornado\.websocket\.WebSocketClosedError\n", re.S)


# The libraries Panel serves (Tabulator's, Bokeh's) threw this in the page once (CI of session 29, a
# page that showed every row right all the same): a measurement of an element no longer there, most
# likely a redraw racing a layout pass (its stack was not kept then; six runs of the same test did not
# bring it back). The app's own JavaScript is a tick formatter that runs from an eval, so a page error
# is left out only when it is this message and every frame of its stack lies in what Panel and Bokeh
# serve under /static/.
VENDOR_RACES = ("Cannot read properties of null (reading 'offsetWidth')",)
_FRAME_URL = re.compile(r"^\s*at .*?\(?(\S+?):\d+:\d+\)?$", re.M)


def page_error(error) -> str | None:
    """A Playwright ``pageerror`` as the text a test keeps (its message and stack), or None for the
    served libraries' race above, which is printed instead."""
    frames = _FRAME_URL.findall(error.stack or "")
    if error.message in VENDOR_RACES and frames and all("/static/" in url for url in frames):
        print(f"left out, the served libraries' own race: {error.stack}")
        return None
    return f"{error.message}\n{error.stack}"


def app_log(log: Path) -> str:
    """The text of a ``served`` app's log, without tornado's failed writes to a closed browser socket."""
    return _CLOSED_WRITE.sub("", log.read_text())


def free_port(host: str = "127.0.0.1", netns: str | None = None) -> int:
    if netns is None:
        with socket.socket() as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    code = f"import socket; s = socket.socket(); s.bind(({host!r}, 0)); print(s.getsockname()[1])"
    return int(subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code], capture_output=True,
                              text=True, timeout=30, check=True).stdout)


@contextmanager
def served(*apps: str, args: tuple[str, ...] = (), log: Path, address: str = "127.0.0.1", env: dict | None = None,
           cwd: Path | None = None, netns: str | None = None, listen_all: bool = False):
    """``panel serve panel_apps/<app>.py ... --address ADDRESS --args ARGS`` (``listen_all``: no
    --address, panel serve's default of every interface); yields the first app's URL at ADDRESS."""
    port = free_port(address, netns)
    cmd = [sys.executable, "-m", "panel", "serve", *[str(APPS / f"{a}.py") for a in apps], "--port", str(port),
           *(["--allow-websocket-origin", f"127.0.0.1:{port}"] if listen_all else ["--address", address]),
           "--allow-websocket-origin", f"{address}:{port}", "--num-procs", "1"]
    if args:
        cmd += ["--args", *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd or REPO, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
        url = f"http://{address}:{port}/{apps[0]}"
        try:
            deadline = time.monotonic() + SERVE_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"panel serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=5) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"panel serve did not answer in {SERVE_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


@contextmanager
def veth_namespace(tag: str):
    """A network namespace holding one end of a veth pair: yields (namespace, its address); the
    other end, in this namespace, reaches it. Root only; removed on exit (the veth goes with it)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        import pytest
        pytest.skip("a network namespace needs root and iproute2's ip")
    ns = f"wbv{tag}{os.getpid() % 100000}"
    host_if, ns_if = f"{ns}a"[:15], f"{ns}b"[:15]
    octet = 16 + os.getpid() % 200
    host_ip, ns_ip = f"10.213.{octet}.1", f"10.213.{octet}.2"

    def ip(*a, inside=False):
        cmd = ["ip", "netns", "exec", ns, "ip", *a] if inside else ["ip", *a]
        subprocess.run(cmd, check=True, capture_output=True, timeout=20)

    ip("netns", "add", ns)
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", ns)
        ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("addr", "add", f"{ns_ip}/30", "dev", ns_if, inside=True)
        ip("link", "set", ns_if, "up", inside=True)
        ip("link", "set", "lo", "up", inside=True)
        yield ns, ns_ip
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=20)   # gone with the ns, normally


def session_document(url: str, arguments: dict | None = None):
    """The document a Bokeh client session gets from ``url`` (as a script on any host could open
    one), pulled within SESSION_TIMEOUT_S."""
    import importlib
    import pkgutil

    import panel.models
    from bokeh.client import pull_session
    for m in pkgutil.iter_modules(panel.models.__path__):     # Panel's models, known to the client
        try:
            importlib.import_module(f"panel.models.{m.name}")
        except ImportError:                                    # an optional dependency's model
            pass
    import concurrent.futures as cf
    with cf.ThreadPoolExecutor(1) as ex:        # the session's loop is the worker's: opened and closed there
        session = ex.submit(pull_session, url=url, arguments=arguments or {}).result(timeout=SESSION_TIMEOUT_S)
        doc = session.document
        ex.submit(session.close).result(timeout=SESSION_TIMEOUT_S)
    return doc


def document_texts(doc) -> str:
    """Every text a document's models carry (markup panes, labels, titles, select options)."""
    parts = []
    for m in doc.models:
        for prop in ("text", "label", "title", "name"):
            v = getattr(m, prop, None) if prop in m.properties() else None
            if isinstance(v, str):
                parts.append(v)
        if "options" in m.properties():
            parts += [str(o) for o in (m.options or [])]
    return "\n".join(parts)


def select_options(doc, title: str) -> list[str]:
    """The options of the Select titled ``title``."""
    for m in doc.models:
        if type(m).__name__.endswith("Select") and getattr(m, "title", None) == title:
            return [o if isinstance(o, str) else o[0] for o in m.options]
    raise AssertionError(f"no Select titled {title!r}")


# --- the browser ----------------------------------------------------------------------------------
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
UI_TIMEOUT_S = 20             # a filter or a click showing its effect


def chromium() -> str:
    import pytest
    if Path(CHROMIUM).exists():
        return CHROMIUM
    msg = f"Debian's chromium is not at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@contextmanager
def launched_browser():
    """Debian's headless chromium under Playwright (never a downloaded browser)."""
    exe = chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


def new_page(browser):
    """A fresh browser context and its page, with the views' UI timeout: (context, page)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1500})
    pg = ctx.new_page()
    pg.set_default_timeout(UI_TIMEOUT_S * 1000)
    return ctx, pg


def wait_for(pred, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def text(pg, sel: str) -> str:
    """Text of a Panel pane (its content lives in the element's shadow root)."""
    loc = pg.locator(sel)
    if not loc.count():
        return ""
    return loc.first.evaluate("""el => {
        const parts = [el.textContent || ''];
        if (el.shadowRoot) for (const c of el.shadowRoot.children)
            if (c.tagName !== 'STYLE' && c.tagName !== 'LINK') parts.push(c.textContent || '');
        return parts.join(' '); }""")


def deep_text(pg) -> str:
    """All text of the page, shadow roots included."""
    return pg.evaluate("""() => { const parts = [];
        const walk = (root) => { for (const el of root.querySelectorAll('*')) {
            if (el.tagName === 'STYLE' || el.tagName === 'SCRIPT') continue;
            for (const n of el.childNodes) if (n.nodeType === 3) parts.push(n.textContent);
            if (el.shadowRoot) walk(el.shadowRoot); } };
        walk(document); return parts.join(' '); }""")


def elements_with_id_prefix(pg, prefix: str) -> list[str]:
    """outerHTML of every element (shadow roots included) whose id starts with ``prefix``."""
    return pg.evaluate("""(prefix) => { const found = [];
        const walk = (root) => { for (const el of root.querySelectorAll('*')) {
            if (el.id && el.id.startsWith(prefix)) found.push(el.outerHTML);
            if (el.shadowRoot) walk(el.shadowRoot); } };
        walk(document); return found; }""", prefix)
