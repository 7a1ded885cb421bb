"""A WebSocket client for benchmarks that costs little per byte: RFC 6455 over an asyncio Protocol.

The `websockets` client copies each message several times on its way up (a stream buffer, a
frame, a message assembler) and hands it to a task; with many clients on the cores the server
and the engine use, that cost is what a benchmark would measure. This one parses server frames
where they land in one buffer and calls ``on_message(opcode, payload)`` from ``data_received``:
one copy per message (the payload) and no task switch. It speaks what a benchmark needs: the
opening handshake (status 101 checked), unfragmented text/binary messages (a fragmented one is
an error: uvicorn does not fragment), pings answered with pongs, masked client text frames, a
close. No extensions are offered, so permessage-deflate stays off.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
HANDSHAKE_MAX = 16 * 1024        # bytes of the server's handshake answer before giving up


class LeanProtocolError(Exception):
    """The server sent something this client does not speak."""


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked, final client frame (RFC 6455 5.2: a client masks every frame)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4)
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return head + key + masked


class LeanClient(asyncio.Protocol):
    """One connection; ``on_message(opcode, payload)`` gets each text or binary message."""

    def __init__(self, host: str, port: int, path: str, on_message):
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        self.on_message = on_message
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.open = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self._handshaken = False

    # -- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError("the server closed the connection"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self._handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > HANDSHAKE_MAX:
                    self._fail(LeanProtocolError("no end of the handshake answer"))
                return
            status = bytes(buf[:buf.find(b"\r\n")])
            if b" 101 " not in status + b" ":
                self._fail(LeanProtocolError(f"handshake refused: {status[:200]!r}"))
                return
            del buf[:end + 4]
            self._handshaken = True
            self.open.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, at = b1 & 0x7F, pos + 2
            if n == 126:
                if size - at < 2:
                    break
                n, at = int.from_bytes(buf[at:at + 2], "big"), at + 2
            elif n == 127:
                if size - at < 8:
                    break
                n, at = int.from_bytes(buf[at:at + 8], "big"), at + 8
            if b1 & 0x80:
                self._fail(LeanProtocolError("a masked server frame"))
                return
            if size - at < n:
                break
            with memoryview(buf) as view:
                payload = bytes(view[at:at + n])
            pos = at + n
            op = b0 & 0x0F
            if not b0 & 0x80 or op == OP_CONT:
                self._fail(LeanProtocolError("a fragmented message"))
                return
            if op in (OP_TEXT, OP_BINARY):
                self.on_message(op, payload)
            elif op == OP_PING:
                self.transport.write(client_frame(OP_PONG, payload))
            elif op == OP_CLOSE:
                self.transport.write(client_frame(OP_CLOSE, payload[:2]))
                self.transport.close()
                break
        if pos:
            del buf[:pos]

    # -- use
    def send_text(self, text: str) -> None:
        self.transport.write(client_frame(OP_TEXT, text.encode()))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(OP_CLOSE, struct.pack("!H", 1000)))
            self.transport.close()

    def _fail(self, e: Exception) -> None:
        if not self.open.done():
            self.open.set_exception(e)
        if not self.closed.done():
            self.closed.set_exception(e)
        self.transport.close()


async def connect(host: str, port: int, path: str, on_message, timeout_s: float = 30.0) -> LeanClient:
    """An open connection (the handshake done)."""
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: LeanClient(host, port, path, on_message), host, port)
    await asyncio.wait_for(proto.open, timeout_s)
    return proto
