"""uvicorn's sans-I/O WebSocket protocol, taking frames built once for many sockets (shared_frame.py).

Imported by server.py only when it starts uvicorn (the CLI imports the server module for
every command). Everything but one kind of message is uvicorn's own: a ``websocket.send``
holding ``WIRE_KEY`` is written to the transport as it is, after the same checks uvicorn's
own send makes (wait while the transport's buffer is over its high-water mark; the
connection still open); ``write_now``, offered in the scope's extension, writes one at once
when nothing would make that send wait. Depends on uvicorn's ``websockets_sansio_impl`` (uvicorn >= 0.35).
"""

from __future__ import annotations

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from .shared_frame import WIRE_EXTENSION, WIRE_KEY


class SharedFrameProtocol(WebSocketsSansIOProtocol):
    """``ws=`` of uvicorn.Config: the websockets-sansio protocol, offering ``WIRE_EXTENSION``."""

    async def run_asgi(self) -> None:
        # the scope is made when the handshake request is read, before the app runs
        self.scope["extensions"][WIRE_EXTENSION] = {"write_now": self.write_now}
        await super().run_asgi()

    def write_now(self, wire: bytes) -> bool:
        """Write a built frame at once, from the event loop, when nothing would hold it back (the
        transport below its high-water mark, the connection open). False: it was not written (the
        caller queues it for the socket's writer, whose ``send`` waits or raises)."""
        if not self.writable.is_set() or self.disconnected or self.close_sent or self.conn.state is not State.OPEN:
            return False
        self.transport.write(wire)
        return True

    async def send(self, message) -> None:
        wire = message.get(WIRE_KEY) if message["type"] == "websocket.send" else None
        if wire is None:
            await super().send(message)
            return
        await self.writable.wait()          # a slow reader holds back its own writer, as uvicorn's send does
        if self.disconnected or self.close_sent or self.conn.state is not State.OPEN:
            raise ClientDisconnected()
        self.transport.write(wire)
