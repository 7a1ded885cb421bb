"""A Yellowstone Geyser ``Subscribe`` server (grpcio, the committed stubs) or a JSON-RPC
``accountSubscribe`` WebSocket server on 127.0.0.1, pushing a scripted sequence of account
updates to each client that subscribes. Run as a process (inside a test's network namespace):

    python tests/account_stream_server.py grpc|ws SCRIPT.json PORT_FILE

SCRIPT.json: {"phases": [{"delay_s": s, "updates": [{"pubkey", "owner", "data" (base64),
"slot"} | {"raw": text} (ws: sent as is, a malformed message)]}]}. The server binds port 0,
writes the port to PORT_FILE, pushes each phase ``delay_s`` after the previous one (the first
after the client subscribed), then keeps the stream open until the client goes. With
``"flood": {"seconds": s, "updates": [...]}`` (grpc; benchmarks/bench_resync.py) it then sends
those updates round after round for ``s`` seconds, each round one slot later, as fast as it can.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from concurrent import futures
from pathlib import Path

import base58

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def serve_grpc(script: dict, port_file: Path) -> None:
    import grpc

    from workbench.chain.geyser import geyser_pb2, geyser_pb2_grpc

    class Geyser(geyser_pb2_grpc.GeyserServicer):
        def Subscribe(self, request_iterator, context):
            first = next(request_iterator)
            wanted = {a for f in first.accounts.values() for a in f.account}
            for phase in script["phases"]:
                time.sleep(phase["delay_s"])
                yield geyser_pb2.SubscribeUpdate(filters=["ping"], ping=geyser_pb2.SubscribeUpdatePing())
                for u in phase["updates"]:
                    if u["pubkey"] not in wanted and not u.get("unasked"):
                        continue
                    pk = base58.b58decode(u["pubkey"]) if not u.get("bad_pubkey") else b"\x01\x02\x03"
                    info = geyser_pb2.SubscribeUpdateAccountInfo(
                        pubkey=pk, owner=base58.b58decode(u["owner"]), lamports=2_039_280,
                        data=base64.b64decode(u["data"]), write_version=1)
                    yield geyser_pb2.SubscribeUpdate(
                        filters=list(first.accounts), account=geyser_pb2.SubscribeUpdateAccount(account=info,
                                                                                               slot=u["slot"]))
            flood = script.get("flood")
            if flood:
                infos = [geyser_pb2.SubscribeUpdateAccountInfo(
                    pubkey=base58.b58decode(u["pubkey"]), owner=base58.b58decode(u["owner"]), lamports=2_039_280,
                    data=base64.b64decode(u["data"]), write_version=1) for u in flood["updates"]]
                names = list(first.accounts)
                slot = max(u["slot"] for u in flood["updates"])
                end = time.monotonic() + flood["seconds"]
                while time.monotonic() < end and context.is_active():
                    slot += 1
                    for info in infos:
                        yield geyser_pb2.SubscribeUpdate(
                            filters=names, account=geyser_pb2.SubscribeUpdateAccount(account=info, slot=slot))
            while context.is_active():
                time.sleep(0.05)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    geyser_pb2_grpc.add_GeyserServicer_to_server(Geyser(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_file.write_text(str(port))
    server.wait_for_termination()


def serve_ws(script: dict, port_file: Path) -> None:
    import websockets

    async def handler(ws):
        sub_of = {}
        n = len({u["pubkey"] for p in script["phases"] for u in p["updates"] if "pubkey" in u})
        try:
            while len(sub_of) < n:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                sub = 1000 + msg["id"]
                sub_of[msg["params"][0]] = sub
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": sub}))
        except (asyncio.TimeoutError, KeyError):
            pass
        for phase in script["phases"]:
            await asyncio.sleep(phase["delay_s"])
            for u in phase["updates"]:
                if "raw" in u:
                    await ws.send(u["raw"])
                    continue
                if u["pubkey"] not in sub_of:
                    continue
                await ws.send(json.dumps({"jsonrpc": "2.0", "method": "accountNotification", "params": {
                    "subscription": sub_of[u["pubkey"]],
                    "result": {"context": {"slot": u["slot"]},
                               "value": {"lamports": 2_039_280, "owner": u["owner"], "executable": False,
                                         "rentEpoch": 0, "data": [u["data"], "base64"]}}}}))
        await ws.wait_closed()

    async def main():
        async with websockets.serve(handler, "127.0.0.1", 0) as server:
            port_file.write_text(str(server.sockets[0].getsockname()[1]))
            await asyncio.Future()

    asyncio.run(main())


if __name__ == "__main__":
    kind, script_path, port_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    script = json.loads(script_path.read_text())
    (serve_grpc if kind == "grpc" else serve_ws)(script, port_file)
