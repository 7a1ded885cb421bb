"""Loopback servers that break the way a store can break, made by the tests that use them:
one that accepts TCP and never answers, one that answers HTTP 500 (no ClickHouse error), one
that sends bytes that are not HTTP, one that closes the connection in the middle of its answer.
Each runs on daemon threads and is closed by its context manager; nothing lingers."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading

_ACCEPT_POLL_S = 0.1


class _Listener:
    """A loopback TCP listener; ``serve(conn)`` handles each accepted connection on its own thread."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(_ACCEPT_POLL_S)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._conns.append(conn)
            threading.Thread(target=self._serve_safely, args=(conn,), daemon=True).start()

    def _serve_safely(self, conn):
        try:
            self.serve(conn)
        except OSError:
            pass

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self):
        self._stop.set()
        self._thread.join(2)
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.close()
        self.sock.close()


class SilentServer(_Listener):
    """Accepts every connection, reads what is sent and never answers (the connection stays open)."""

    def serve(self, conn):
        conn.settimeout(_ACCEPT_POLL_S)
        while not self._stop.is_set():
            try:
                if not conn.recv(65536):
                    return
            except socket.timeout:
                continue


class RawReplyServer(_Listener):
    """Reads the request, sends ``reply`` as it is, then closes the connection."""

    def __init__(self, reply: bytes):
        self.reply = reply
        super().__init__()

    def serve(self, conn):
        conn.settimeout(2)
        conn.recv(65536)
        conn.sendall(self.reply)
        conn.close()


def garbage_server() -> RawReplyServer:
    """Bytes that are not HTTP at all (another protocol on the port)."""
    return RawReplyServer(b"\x00\xff\x13\x37 this is not HTTP\r\n\r\n")


def closes_mid_response_server() -> RawReplyServer:
    """A 200 that promises 1000 bytes, sends 7 and closes."""
    return RawReplyServer(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")


class _Error500(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = b"Internal Server Error"
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *a):
        pass


class Http500Server:
    """An http.server answering every request with HTTP 500 and no ClickHouse exception code."""

    def __init__(self):
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Error500)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": _ACCEPT_POLL_S},
                         daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


FAULTS = {
    "silent": SilentServer,
    "http500": Http500Server,
    "garbage": garbage_server,
    "closes_mid_response": closes_mid_response_server,
}


@contextlib.contextmanager
def fault_server(kind: str):
    srv = FAULTS[kind]()
    try:
        yield srv
    finally:
        srv.close()
