"""Yellowstone gRPC ``Subscribe`` with an accounts filter, read in large chunks over HTTP/2.

``stream_account_chunks`` opens ``grpc://HOST:PORT`` (plaintext, HTTP/2 with prior knowledge)
or ``grpcs://HOST:PORT`` (TLS, ALPN "h2"), sends one SubscribeRequest (geyser_pb2) whose
accounts filter names the addresses (commitment processed, the earliest a change is
visible), and hands the response body to ``on_chunk`` as large numpy byte views: every
HTTP/2 DATA frame of one socket read, appended to what the last call left. A gRPC client
library hands over one message per Python iteration, and a busy market sends hundreds of
thousands a second; here Python runs once per socket read, and the caller walks the gRPC
messages of a chunk in one jitted call (chain/geyser_wire.py). The client asks for large
frames and windows (``FRAME_MAX_SZ``, ``WINDOW_SZ``) so a server can put many messages in
one DATA frame, and gives flow-control credit back in bulk (``WINDOW_CREDIT_SZ``). Messages
come as they are (``grpc-accept-encoding: identity``); a compressed one is refused.

The h2 library runs the connection (preface, settings, HPACK headers and trailers, pings,
RST_STREAM, GOAWAY), but the plain DATA frames of the stream, nearly every byte, are copied
into the body buffer by a jitted walk of the socket bytes (``take_data_frames``) with the GIL
released: parsed by h2 in Python, they were the client's limit (README, Live resync). Any
other frame goes to h2 whole.

A stream that fails (refused connection, TLS, an HTTP status or a gRPC status other than OK
in the trailers, RST_STREAM, GOAWAY, a closed socket, bytes that are not HTTP/2 or not gRPC
messages) is reopened with exponential backoff (``BACKOFF_S`` doubling to ``BACKOFF_MAX_S``,
back to ``BACKOFF_S`` once updates flow), each failure told to ``on_note`` with the endpoint
and the gRPC status name; nothing here blocks the engine, which reads what the caller queued.
An ``x-token`` (Triton's and most providers' access header) is taken from the URL's query:
``grpc://host:port?x-token=...``.
"""

from __future__ import annotations

import socket
import ssl
import threading
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from ..errors import ChainError
from .geyser_wire import H2_HEADER_SZ, TAKE_FULL, TAKE_NEED_MORE, take_data_frames, window_update

BACKOFF_S = 0.1
BACKOFF_MAX_S = 5.0
FILTER_NAME = "workbench_resync"
SUBSCRIBE_PATH = "/geyser.Geyser/Subscribe"
CONNECT_TIMEOUT_S = 5.0
POLL_S = 0.2                    # socket read timeout: how soon a stop request is seen
RECV_SZ = 4 << 20               # bytes asked of one socket read
FRAME_MAX_SZ = (1 << 24) - 1    # SETTINGS_MAX_FRAME_SIZE: the largest HTTP/2 allows
WINDOW_SZ = 64 << 20            # stream and connection receive windows, bytes
WINDOW_CREDIT_SZ = 16 << 20     # taken bytes given back to both windows at once (WINDOW_UPDATE)
CHUNK_MIN_SZ = 8 << 20          # the reassembly buffer's first size; it grows to hold the longest message
# gRPC status codes (grpc/doc/statuscodes.md), by number
GRPC_STATUS = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
               "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
               "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")


class StreamFailure(Exception):
    """Why one Subscribe stream ended: a gRPC status name and a detail."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code} ({detail})")
        self.code, self.detail = code, detail


def parse_grpc_url(url: str) -> tuple[str, bool, list[tuple[str, str]]]:
    """(host:port, tls, metadata) of a grpc:// or grpcs:// URL; ChainError naming it otherwise."""
    u = urlsplit(url)
    if u.scheme not in ("grpc", "grpcs") or not u.hostname or u.port is None:
        raise ChainError(f"--accounts {url!r}", "expected grpc://HOST:PORT or grpcs://HOST:PORT")
    meta = [(k, v[0]) for k, v in parse_qs(u.query).items() if k == "x-token"]
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return f"{host}:{u.port}", u.scheme == "grpcs", meta


def subscribe_request(addresses):
    from .geyser import geyser_pb2
    req = geyser_pb2.SubscribeRequest(commitment=geyser_pb2.CommitmentLevel.PROCESSED)
    req.accounts[FILTER_NAME].account.extend(addresses)
    return req


def account_message(pubkey: bytes, owner: bytes, data: bytes, slot: int) -> bytes:
    """An account as the SubscribeUpdate a Geyser server sends for it (a seed taken through the
    stream's own decoder, runner/geyser_feed.py)."""
    from .geyser import geyser_pb2
    info = geyser_pb2.SubscribeUpdateAccountInfo(pubkey=pubkey, owner=owner, data=data)
    return geyser_pb2.SubscribeUpdate(filters=[FILTER_NAME], account=geyser_pb2.SubscribeUpdateAccount(
        account=info, slot=slot)).SerializeToString()


def status_name(code: str | None) -> str:
    try:
        return GRPC_STATUS[int(code)]
    except (TypeError, ValueError, IndexError):
        return f"status {code}"


class ChunkBuffer:
    """The bytes of the response body not walked yet: a numpy buffer the caller views, with the
    carry-over (a message cut by a DATA frame) moved to its front after each walk."""

    def __init__(self, size: int = CHUNK_MIN_SZ):
        self.buf = np.empty(size, np.uint8)
        self.end = 0            # bytes held
        self.base = 0           # stream offset of buf[0]

    def append(self, data: bytes) -> None:
        n = len(data)
        self.reserve(n)
        self.buf[self.end:self.end + n] = np.frombuffer(data, np.uint8)
        self.end += n

    def reserve(self, n: int) -> None:
        """Room for ``n`` more bytes."""
        if self.end + n > self.buf.shape[0]:
            grown = np.empty(max(2 * self.buf.shape[0], self.end + n), np.uint8)
            grown[:self.end] = self.buf[:self.end]
            self.buf = grown

    def consume(self, n: int) -> None:
        rest = self.end - n
        if rest:
            self.buf[:rest] = self.buf[n:self.end]
        self.end = rest
        self.base += n


def _open(target: str, tls: bool):
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    try:
        sock = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S)
    except OSError as e:
        raise StreamFailure("UNAVAILABLE", f"cannot connect: {e.strerror or e}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        ctx = ssl.create_default_context()
        ctx.set_alpn_protocols(["h2"])
        try:
            sock = ctx.wrap_socket(sock, server_hostname=host)
        except (ssl.SSLError, OSError) as e:
            sock.close()
            raise StreamFailure("UNAVAILABLE", f"TLS: {e}") from None
        if sock.selected_alpn_protocol() != "h2":
            sock.close()
            raise StreamFailure("UNAVAILABLE", "the server did not agree to HTTP/2 (ALPN h2)")
    sock.settimeout(POLL_S)
    return sock


def _connection():
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.settings import SettingCodes, Settings
    conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.local_settings = Settings(client=True, initial_values={
        SettingCodes.MAX_CONCURRENT_STREAMS: 100, SettingCodes.MAX_HEADER_LIST_SIZE: conn.DEFAULT_MAX_HEADER_LIST_SIZE,
        SettingCodes.ENABLE_PUSH: 0, SettingCodes.INITIAL_WINDOW_SIZE: WINDOW_SZ,
        SettingCodes.MAX_FRAME_SIZE: FRAME_MAX_SZ})
    conn.max_inbound_frame_size = FRAME_MAX_SZ
    conn.incoming_buffer.max_frame_size = FRAME_MAX_SZ
    conn.initiate_connection()
    conn.increment_flow_control_window(WINDOW_SZ - 65_535)     # the connection window starts at 64 KiB - 1
    return conn


def _take(on_chunk, chunk: ChunkBuffer) -> int:
    """Walk what the body buffer holds (``on_chunk``); the account updates it took. StreamFailure
    when the bytes are not gRPC messages of SubscribeUpdate."""
    used, n, err = on_chunk(chunk.buf, chunk.end, chunk.base)
    chunk.consume(used)
    if err:
        raise StreamFailure("INTERNAL", err)
    return n


def _one_stream(target, tls, meta, request: bytes, on_chunk, stop, chunk: ChunkBuffer, got: list) -> None:
    """Run one Subscribe stream until it ends or ``stop``, counting the account updates it brings
    in ``got[0]``. StreamFailure when it fails."""
    import h2.events
    import h2.exceptions
    sock = _open(target, tls)
    try:
        conn = _connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "https" if tls else "http"), (":path", SUBSCRIBE_PATH),
                                (":authority", target), ("content-type", "application/grpc"), ("te", "trailers"),
                                ("grpc-accept-encoding", "identity"), ("user-agent", "workbench-geyser/h2"), *meta])
        conn.send_data(sid, request)        # the request stream stays open, as Yellowstone expects
        sock.sendall(conn.data_to_send())
        headers: dict = {}
        trailers: dict = {}
        ended = False
        raw = np.empty(RECV_SZ, np.uint8)      # socket bytes not taken yet (a frame may span reads)
        raw_end = 0
        owed = 0                                # flow-controlled bytes taken past h2, not given back yet
        while not stop.is_set() and not ended:
            if raw_end == raw.shape[0]:         # a frame longer than the buffer: make room for it
                raw = np.concatenate([raw, np.empty(raw.shape[0], np.uint8)])
            try:
                n = sock.recv_into(memoryview(raw)[raw_end:])
            except socket.timeout:
                continue
            except OSError as e:
                raise StreamFailure("UNAVAILABLE", f"connection lost: {e.strerror or e}") from None
            if not n:
                raise StreamFailure("UNAVAILABLE", "the server closed the connection")
            raw_end += n
            pos = 0
            failure = None          # raised once the data before it is taken: nothing received is lost
            while failure is None and not ended:
                used, chunk.end, flow, why = take_data_frames(raw[pos:raw_end], raw_end - pos, sid, chunk.buf,
                                                              chunk.end)
                pos += used
                owed += flow
                if why == TAKE_NEED_MORE:
                    break
                ln = int.from_bytes(raw[pos:pos + 3].tobytes(), "big")
                if why == TAKE_FULL:
                    if chunk.end:
                        got[0] += _take(on_chunk, chunk)
                    chunk.reserve(ln)
                    continue
                if raw_end - pos < H2_HEADER_SZ + ln:
                    break
                frame = raw[pos:pos + H2_HEADER_SZ + ln].tobytes()
                pos += H2_HEADER_SZ + ln
                try:
                    events = conn.receive_data(frame)
                except h2.exceptions.H2Error as e:
                    failure = StreamFailure("INTERNAL", f"not HTTP/2 after byte {chunk.base + chunk.end} of the "
                                                        f"stream: {type(e).__name__}: {e}")
                    break
                for ev in events:
                    if isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                        chunk.append(ev.data)
                        conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                    elif isinstance(ev, h2.events.ResponseReceived):
                        headers = dict(ev.headers)
                        if headers.get(":status") != "200":
                            raise StreamFailure("UNAVAILABLE", f"HTTP status {headers.get(':status')}")
                    elif isinstance(ev, h2.events.TrailersReceived):
                        trailers = dict(ev.headers)
                    elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                        ended = True
                    elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                        failure = failure or StreamFailure("CANCELLED" if ev.error_code == 8 else "INTERNAL",
                                                           f"the server reset the stream (RST_STREAM error "
                                                           f"{ev.error_code})")
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        extra = f": {ev.additional_data.decode(errors='replace')}" if ev.additional_data else ""
                        failure = failure or StreamFailure("UNAVAILABLE",
                                                           f"the server sent GOAWAY (error {ev.error_code}){extra}")
            if pos:
                raw[:raw_end - pos] = raw[pos:raw_end]
                raw_end -= pos
            out = conn.data_to_send()
            if owed >= WINDOW_CREDIT_SZ:        # flow-control credit in bulk: connection and stream
                out += window_update(0, owed) + window_update(sid, owed)
                owed = 0
            if out:
                sock.sendall(out)
            if chunk.end:
                got[0] += _take(on_chunk, chunk)
            if failure is not None:
                raise failure
        if ended:
            st = trailers.get("grpc-status", headers.get("grpc-status"))
            if st != "0":
                msg = unquote(trailers.get("grpc-message", headers.get("grpc-message", "")))
                raise StreamFailure(status_name(st), msg or "no grpc-message")
    finally:
        sock.close()


def stream_account_chunks(url: str, addresses: list[str], on_chunk, stop: threading.Event, on_note) -> None:
    """Account updates of ``addresses`` from a Geyser endpoint until ``stop`` (reconnecting).

    ``on_chunk(buf, end, base)``: the response body bytes ``buf[:end]`` (a numpy uint8 buffer
    whose first byte is byte ``base`` of the stream); returns (bytes consumed: whole gRPC
    messages read, account updates taken, error text or None). The bytes not consumed come back
    at the front of the next call. An error closes the stream, which is reopened."""
    from .geyser_wire import grpc_frame
    target, tls, meta = parse_grpc_url(url)
    request = grpc_frame(subscribe_request(addresses).SerializeToString())
    backoff = BACKOFF_S
    while not stop.is_set():
        got = [0]
        try:
            _one_stream(target, tls, meta, request, on_chunk, stop, ChunkBuffer(), got)
            if got[0]:
                backoff = BACKOFF_S
            if not stop.is_set():
                on_note(f"{url}: the Subscribe stream ended; reopening in {backoff:g} s")
        except StreamFailure as e:
            if stop.is_set():
                break
            if got[0]:
                backoff = BACKOFF_S
            on_note(f"{url}: {e.code} ({e.detail}); reconnecting in {backoff:g} s")
        stop.wait(backoff)
        backoff = min(BACKOFF_MAX_S, backoff * 2)
