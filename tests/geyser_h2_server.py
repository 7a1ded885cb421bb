"""A Yellowstone ``Subscribe`` server written on the h2 library: it answers with scripted HTTP/2
frames, so tests can cut gRPC messages across DATA frames, end with a non-zero grpc-status,
reset the stream or send garbage, and benchmarks/bench_resync.py can flood a client with
pre-serialized SubscribeUpdate messages in large DATA frames (honouring the client's
flow-control window), faster than a gRPC server library sends them one by one.

In a test: ``with H2GeyserServer(connections) as srv: ... srv.port ... srv.requests``, where
``connections[i]`` is the list of actions of the i-th connection (the last one repeats):
``("data", body_bytes, frame_sz)``, ``("sleep", s)``, ``("trailers", status, message)``,
``("reset", error_code)``, ``("goaway", error_code)``, ``("raw", bytes)`` (written on the
socket as is), ``("flood", seconds, updates[, messages per second])`` (below; 0: as fast as
the client takes them). After its actions a connection stays
open until the client goes.

As a process (benchmarks, inside a network namespace):

    python tests/geyser_h2_server.py SCRIPT.json PORT_FILE

with account_stream_server.py's script: ``{"phases": [...], "flood": {"seconds": s, "updates":
[...], "rate": messages per second (optional)}}``; the flood sends every update round after round, each round one slot later.
"""

from __future__ import annotations

import base64
import json
import select
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.chain.geyser import geyser_pb2  # noqa: E402
from workbench.chain.geyser_wire import grpc_frame  # noqa: E402

FLOOD_ROUNDS_PER_BLOCK = 512        # rounds serialized at once (numpy patches their slots)
SEND_FRAME_SZ = 1 << 20             # DATA frame the flood asks for (the client's max frame size permitting)
SLOT_VARINT_SZ = 5                  # the flood writes every slot as a 5-byte varint (slots in [2^28, 2^35))


def account_update(pubkey: bytes, owner: bytes, data: bytes, slot: int, filters=("workbench_resync",)) -> bytes:
    """One SubscribeUpdate carrying an account update, serialized by the generated stubs."""
    info = geyser_pb2.SubscribeUpdateAccountInfo(pubkey=pubkey, owner=owner, lamports=2_039_280, data=data,
                                                 write_version=1)
    return geyser_pb2.SubscribeUpdate(filters=list(filters), account=geyser_pb2.SubscribeUpdateAccount(
        account=info, slot=slot)).SerializeToString()


def ping() -> bytes:
    return geyser_pb2.SubscribeUpdate(filters=["ping"], ping=geyser_pb2.SubscribeUpdatePing()).SerializeToString()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def flood_round(updates) -> tuple[bytes, list[int]]:
    """One round of gRPC messages (pubkey, owner, data: bytes) with a 5-byte slot placeholder each,
    and the offsets of those placeholders. The wrapper is written field by field (as protobuf
    lays out SubscribeUpdate{filters=1, account=2{account=1, slot=2}}), the account info by the stubs;
    tests/test_geyser_batch.py checks that the stubs parse it back."""
    blob, slots = bytearray(), []
    for pubkey, owner, data in updates:
        info = geyser_pb2.SubscribeUpdateAccountInfo(pubkey=pubkey, owner=owner, lamports=2_039_280, data=data,
                                                     write_version=1).SerializeToString()
        acct = b"\x0a" + _varint(len(info)) + info + b"\x10"
        acct_len = len(acct) + SLOT_VARINT_SZ
        head = b"\x0a\x10workbench_resync" + b"\x12" + _varint(acct_len) + acct
        msg_len = len(head) + SLOT_VARINT_SZ
        blob += b"\x00" + msg_len.to_bytes(4, "big") + head
        slots.append(len(blob))
        blob += bytes(SLOT_VARINT_SZ)
    return bytes(blob), slots


def flood_block(round_blob: bytes, slot_offs: list[int], first_slot: int, rounds: int) -> bytes:
    """``rounds`` copies of a flood round, the r-th carrying slot first_slot + r."""
    n = len(round_blob)
    block = np.tile(np.frombuffer(round_blob, np.uint8), rounds)
    slots = first_slot + np.arange(rounds, dtype=np.int64)
    starts = (np.arange(rounds, dtype=np.int64) * n)[:, None] + np.asarray(slot_offs, np.int64)[None, :]
    for j in range(SLOT_VARINT_SZ):
        b = (slots >> (7 * j)) & 0x7F
        if j < SLOT_VARINT_SZ - 1:
            b |= 0x80
        block[starts + j] = b.astype(np.uint8)[:, None]
    return block.tobytes()


class H2GeyserServer:
    """The scripted server on 127.0.0.1 (port 0), one thread per connection."""

    def __init__(self, connections, host: str = "127.0.0.1", port: int = 0):
        self.connections = connections
        self.requests: list = []        # the SubscribeRequest of each connection, parsed
        self.sent_updates = 0           # flood messages written (all connections)
        self.lsock = socket.create_server((host, port))
        self.port = self.lsock.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._accept.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._stop.set()
        self.lsock.close()
        for t in self._threads:
            t.join(5)

    def _serve(self):
        k = 0
        while not self._stop.is_set():
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            actions = self.connections[min(k, len(self.connections) - 1)]
            k += 1
            t = threading.Thread(target=self._conn, args=(s, actions), daemon=True)
            self._threads.append(t)
            t.start()

    # --- one connection --------------------------------------------------------------------------------
    def _conn(self, sock, actions):
        import h2.config
        import h2.connection
        import h2.events
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)               # writes block while the client is slow (reads poll, _events)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        sid = None
        body = b""
        try:
            sock.sendall(conn.data_to_send())
            while sid is None or len(body) < 5 or len(body) < 5 + int.from_bytes(body[1:5], "big"):
                for ev in self._events(conn, sock):
                    if isinstance(ev, h2.events.RequestReceived):
                        sid = ev.stream_id
                    elif isinstance(ev, h2.events.DataReceived):
                        body += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if self._stop.is_set():
                    return
            self.requests.append(geyser_pb2.SubscribeRequest.FromString(body[5:5 + int.from_bytes(body[1:5], "big")]))
            conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
            sock.sendall(conn.data_to_send())
            for a in actions:
                if not self._act(conn, sock, sid, a):
                    return
            while not self._stop.is_set():              # open until the client goes
                self._events(conn, sock)
        except (OSError, ConnectionError):
            return
        except Exception:
            import traceback
            traceback.print_exc()
            raise
        finally:
            sock.close()

    def _events(self, conn, sock):
        # poll, not select: a test process that has opened many files (embedded stores keep theirs)
        # holds descriptors past 1023, which select() refuses
        ready = select.poll()
        ready.register(sock, select.POLLIN)
        if not ready.poll(200):
            return []
        data = sock.recv(1 << 16)
        if not data:
            raise ConnectionError("client went")
        ev = conn.receive_data(data)
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
        return ev

    def _send(self, conn, sock, sid, data: bytes, frame_sz: int) -> None:
        """``data`` as DATA frames of at most ``frame_sz`` bytes, waiting for window when it is spent."""
        view = memoryview(data)
        off = 0
        while off < len(data):
            window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, frame_sz)
            if window <= 0:
                self._events(conn, sock)
                if self._stop.is_set():
                    raise ConnectionError("server stopping")
                continue
            n = min(window, len(data) - off)
            conn.send_data(sid, view[off:off + n].tobytes())
            off += n
            sock.sendall(conn.data_to_send())

    def _act(self, conn, sock, sid, a) -> bool:
        kind = a[0]
        if kind == "data":
            self._send(conn, sock, sid, a[1], a[2])
        elif kind == "sleep":
            time.sleep(a[1])
        elif kind == "trailers":
            conn.send_headers(sid, [("grpc-status", str(a[1])), ("grpc-message", a[2])], end_stream=True)
            sock.sendall(conn.data_to_send())
        elif kind == "reset":
            conn.reset_stream(sid, a[1])
            sock.sendall(conn.data_to_send())
        elif kind == "goaway":
            conn.close_connection(a[1])
            sock.sendall(conn.data_to_send())
            return False
        elif kind == "raw":
            sock.sendall(a[1])
        elif kind == "flood":
            seconds, updates = a[1], a[2]
            rate = a[3] if len(a) > 3 else 0
            round_blob, offs = flood_round([(u[0], u[1], u[2]) for u in updates])
            slot = max(u[3] for u in updates) + 1
            t0 = time.monotonic()
            end = t0 + seconds
            sent = 0
            while time.monotonic() < end and not self._stop.is_set():
                if rate:                                    # paced: the block leaves at its time
                    time.sleep(max(0.0, t0 + sent / rate - time.monotonic()))
                self._send(conn, sock, sid, flood_block(round_blob, offs, slot, FLOOD_ROUNDS_PER_BLOCK), SEND_FRAME_SZ)
                slot += FLOOD_ROUNDS_PER_BLOCK
                sent += FLOOD_ROUNDS_PER_BLOCK * len(updates)
                self.sent_updates += FLOOD_ROUNDS_PER_BLOCK * len(updates)
        return True


def actions_of_script(script: dict) -> list:
    """account_stream_server.py's script as one connection's actions."""
    import base58
    acts = []
    for phase in script.get("phases", []):
        acts.append(("sleep", phase["delay_s"]))
        body = grpc_frame(ping()) + b"".join(grpc_frame(account_update(
            base58.b58decode(u["pubkey"]), base58.b58decode(u["owner"]), base64.b64decode(u["data"]), u["slot"]))
            for u in phase["updates"])
        acts.append(("data", body, SEND_FRAME_SZ))
    flood = script.get("flood")
    if flood:
        acts.append(("flood", flood["seconds"], [(base58.b58decode(u["pubkey"]), base58.b58decode(u["owner"]),
                                                  base64.b64decode(u["data"]), u["slot"]) for u in flood["updates"]],
                     flood.get("rate", 0)))
    return acts


if __name__ == "__main__":
    script_path, port_file = Path(sys.argv[1]), Path(sys.argv[2])
    srv = H2GeyserServer([actions_of_script(json.loads(script_path.read_text()))])
    srv._accept.start()
    port_file.write_text(str(srv.port))
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        srv.close()
