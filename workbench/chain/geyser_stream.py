"""Yellowstone gRPC ``Subscribe`` with an accounts filter: account updates of named addresses.

``stream_accounts`` opens ``grpc://HOST:PORT`` (plaintext) or ``grpcs://HOST:PORT`` (TLS),
sends one SubscribeRequest whose accounts filter names the addresses (commitment
processed, the earliest a change is visible), and hands every account update to
``on_account(address, owner, data, slot)`` until ``stop`` is set. A broken or refused
stream is reopened with exponential backoff (``BACKOFF_S`` doubling to ``BACKOFF_MAX_S``),
each failure told to ``on_note`` with the endpoint; nothing here ever blocks the engine,
which reads what the caller queued. An ``x-token`` (Triton's and most providers' access
header) is taken from the URL's query: ``grpc://host:port?x-token=...``.
"""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

from ..errors import ChainError

BACKOFF_S = 0.1
BACKOFF_MAX_S = 5.0
FILTER_NAME = "workbench_resync"


def parse_grpc_url(url: str) -> tuple[str, bool, list[tuple[str, str]]]:
    """(host:port, tls, metadata) of a grpc:// or grpcs:// URL; ChainError naming it otherwise."""
    u = urlsplit(url)
    if u.scheme not in ("grpc", "grpcs") or not u.hostname or u.port is None:
        raise ChainError(f"--accounts {url!r}", "expected grpc://HOST:PORT or grpcs://HOST:PORT")
    meta = [(k, v[0]) for k, v in parse_qs(u.query).items() if k == "x-token"]
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return f"{host}:{u.port}", u.scheme == "grpcs", meta


def _text(raw: bytes) -> str:
    """An address field as base58 (hex when it is not 32 bytes: the tracker then names it as unknown)."""
    from solders.pubkey import Pubkey
    return str(Pubkey.from_bytes(raw)) if len(raw) == 32 else raw.hex()


def subscribe_request(addresses):
    from .geyser import geyser_pb2
    req = geyser_pb2.SubscribeRequest(commitment=geyser_pb2.CommitmentLevel.PROCESSED)
    req.accounts[FILTER_NAME].account.extend(addresses)
    return req


def stream_accounts(url: str, addresses: list[str], on_account, stop: threading.Event, on_note) -> None:
    """Account updates of ``addresses`` from a Geyser endpoint until ``stop`` (reconnecting)."""
    import grpc

    from .geyser import geyser_pb2_grpc
    target, tls, meta = parse_grpc_url(url)
    req = subscribe_request(addresses)
    backoff = BACKOFF_S
    while not stop.is_set():
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if tls else grpc.insecure_channel(target)
        call = None
        try:
            stub = geyser_pb2_grpc.GeyserStub(channel)

            def requests():
                yield req
                stop.wait()             # the stream stays open (a ping could go here) until the run ends

            call = stub.Subscribe(requests(), metadata=meta or None)
            canceller = threading.Thread(target=lambda c=call: (stop.wait(), c.cancel()), daemon=True)
            canceller.start()
            for upd in call:
                if upd.WhichOneof("update_oneof") != "account":
                    continue
                a = upd.account.account
                on_account(_text(a.pubkey), _text(a.owner), a.data, int(upd.account.slot))
                backoff = BACKOFF_S
            if not stop.is_set():
                on_note(f"{url}: the Subscribe stream ended; reopening in {backoff:g} s")
        except grpc.RpcError as e:
            if stop.is_set():
                break
            code = e.code() if hasattr(e, "code") else None
            detail = e.details() if hasattr(e, "details") else str(e)
            on_note(f"{url}: {getattr(code, 'name', code)} ({detail}); reconnecting in {backoff:g} s")
        finally:
            if call is not None:
                call.cancel()
            channel.close()
        stop.wait(backoff)
        backoff = min(BACKOFF_MAX_S, backoff * 2)
