"""JSON-RPC ``accountSubscribe`` over a WebSocket: account updates of named addresses.

One subscription per address (``{"encoding": "base64", "commitment": "processed"}``) on one
connection to ``ws://`` or ``wss://``; every ``accountNotification`` goes to
``on_account(address, owner, data, slot)`` (slot: the notification's context slot) until
``stop`` is set. A refused or dropped connection is reopened (and every account subscribed
again) with exponential backoff, each failure told to ``on_note`` with the endpoint. A
notification that is not an account object with base64 data is told to ``on_note`` naming
the account, and skipped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import threading

from ..errors import ChainError

BACKOFF_S = 0.1
BACKOFF_MAX_S = 5.0
RECV_POLL_S = 0.2           # the reader wakes this often to see ``stop``


def check_ws_url(url: str) -> None:
    if not (url.startswith("ws://") or url.startswith("wss://")):
        raise ChainError(f"--accounts {url!r}", "expected ws://HOST:PORT/... or wss://...")


def stream_accounts(url: str, addresses: list[str], on_account, stop: threading.Event, on_note) -> None:
    """Account updates of ``addresses`` until ``stop`` (reconnecting); runs its own event loop."""
    check_ws_url(url)
    asyncio.run(_run(url, addresses, on_account, stop, on_note))


async def _run(url, addresses, on_account, stop, on_note):
    import websockets
    backoff = BACKOFF_S
    while not stop.is_set():
        try:
            async with websockets.connect(url, max_size=None, open_timeout=5) as ws:
                for i, a in enumerate(addresses):
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": i, "method": "accountSubscribe",
                                              "params": [a, {"encoding": "base64", "commitment": "processed"}]}))
                sub_of: dict[int, str] = {}
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), RECV_POLL_S)
                    except asyncio.TimeoutError:
                        continue
                    backoff = BACKOFF_S
                    _take(raw, addresses, sub_of, on_account, on_note, url)
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
            if stop.is_set():
                break
            on_note(f"{url}: {type(e).__name__} ({e}); reconnecting in {backoff:g} s")
        await asyncio.get_running_loop().run_in_executor(None, stop.wait, backoff)
        backoff = min(BACKOFF_MAX_S, backoff * 2)


def _take(raw, addresses, sub_of, on_account, on_note, url) -> None:
    try:
        msg = json.loads(raw)
    except ValueError:
        on_note(f"{url}: a message that is not JSON ({raw[:60]!r}); skipped")
        return
    if not isinstance(msg, dict):
        on_note(f"{url}: a message that is not a JSON object; skipped")
        return
    if "id" in msg:                          # a subscription's answer
        i = msg.get("id")
        if isinstance(i, int) and 0 <= i < len(addresses):
            if "error" in msg or not isinstance(msg.get("result"), int):
                on_note(f"{url}: accountSubscribe of account {addresses[i]} refused: {msg.get('error')}")
            else:
                sub_of[msg["result"]] = addresses[i]
        return
    if msg.get("method") != "accountNotification":
        return
    params = msg.get("params")
    sub = params.get("subscription") if isinstance(params, dict) else None
    address = sub_of.get(sub) if isinstance(sub, int) else None
    if address is None:
        on_note(f"{url}: an accountNotification of unknown subscription {sub!r}; skipped")
        return
    try:
        result = params["result"]
        slot = int(result["context"]["slot"])
        value = result["value"]
        blob, enc = value["data"]
        if enc != "base64":
            raise ValueError(f"encoding {enc!r}, expected base64")
        data = base64.b64decode(blob, validate=True)
        owner = value["owner"]
        if not isinstance(owner, str):
            raise ValueError("owner is not a string")
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        on_note(f"account {address}: a malformed accountNotification ({e}); skipped")
        return
    on_account(address, owner, data, slot)
