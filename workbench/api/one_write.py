"""uvicorn's httptools protocol, writing a response's head and its first body part in one write.

uvicorn writes a response's status line and headers when the app sends ``http.response.start``,
and the body when it sends ``http.response.body``: two writes, and uvloop sends each at once
when the socket's buffer is empty, so a small answer (every POST, most GETs) costs two send
system calls and two TCP segments. Here the cycle keeps the head's bytes and writes them with
the first body part, in one write. uvicorn still makes the head (its header checks, keep-alive
and Content-Length rules): the cycle lends it a stand-in transport for each of those two sends.
A response whose body part never comes (the app failed, or the client left) loses only its
head, which alone was an incomplete answer all the same.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _KeepHead:
    """Stands in for the transport while uvicorn writes a head: keeps it."""

    __slots__ = ("head",)

    def __init__(self):
        self.head = None

    def write(self, data: bytes) -> None:
        self.head = data


class _HeadFirst:
    """Stands in for the transport while uvicorn writes the first body part: the head goes with it."""

    __slots__ = ("transport", "head")

    def __init__(self, transport, head: bytes):
        self.transport, self.head = transport, head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, None
        self.transport.write(head + data if head is not None else data)

    def flush(self) -> None:
        """Write the head if no body part took it (a HEAD request's answer)."""
        if self.head is not None:
            self.write(b"")

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name):
        return getattr(self.transport, name)


class OneWriteCycle(RequestResponseCycle):
    _head = None

    async def send(self, message) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self.response_started:
            real, keep = self.transport, _KeepHead()
            self.transport = keep
            try:
                await super().send(message)
            finally:
                self.transport = real
            self._head = keep.head
            return
        if self._head is not None and kind == "http.response.body":
            real, first = self.transport, _HeadFirst(self.transport, self._head)
            self._head = None
            self.transport = first
            try:
                await super().send(message)
            finally:
                self.transport = real
                if not real.is_closing():
                    first.flush()
            return
        await super().send(message)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``http="httptools"`` protocol, its responses written by ``OneWriteCycle``."""

    def _start_asgi_task(self, cycle, app) -> None:
        if type(cycle) is RequestResponseCycle:
            cycle.__class__ = OneWriteCycle
        super()._start_asgi_task(cycle, app)
