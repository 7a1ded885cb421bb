"""Does a binary WebSocket frame pay? One 1,000-row frame of each channel's rows, encoded as the
server sends it (JSON: rows encoded one by one and joined), as msgpack (msgspec) and as an
Arrow IPC stream (api/frames.py arrow_frame); the server's encode time, the client's decode
time (to a table, and to Python dicts) and the bytes on the wire. Peer: the JSON frame.

    python benchmarks/bench_ws_frames.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import REPO, median_time, table

CAPTURE = REPO / "captures" / "market.pcapng"
ROWS = 1_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    import msgspec
    import orjson
    import pyarrow as pa
    import pyarrow.parquet as pq

    from workbench.api.frames import arrow_frame, frame_bytes
    from workbench.config import Settings
    from workbench.engine.tables import read_tx_features
    from workbench.runner import replay
    from workbench.store.columns import mev_opportunities_table

    out = Path(tempfile.mkdtemp(prefix="bench_ws_frames-"))
    replay(CAPTURE, out, Settings(market=str(CAPTURE) + ".market", progress=False))
    channels = (("opportunities", mev_opportunities_table(pq.read_table(out / "opportunities.parquet"), "replay")),
                ("transactions", read_tx_features(out / "tx_features.parquet")))
    enc = msgspec.msgpack.Encoder()
    rows = []
    for channel, t in channels:
        t = pa.concat_tables([t] * -(-ROWS // t.num_rows)).slice(0, ROWS).combine_chunks()
        cases = (
            ("json (served today)", lambda: frame_bytes(channel, 0, [orjson.dumps(r) for r in t.to_pylist()], 1),
             None, lambda b: orjson.loads(b)["rows"]),
            ("msgpack", lambda: enc.encode({"rows": t.to_pylist()}), None,
             lambda b: msgspec.msgpack.decode(b)["rows"]),
            ("arrow ipc", lambda: arrow_frame(channel, t, 0, 1), lambda b: pa.ipc.open_stream(b).read_all(),
             lambda b: pa.ipc.open_stream(b).read_all().to_pylist()),
        )
        peer = None
        for name, encode, to_table, to_dicts in cases:
            body = encode()
            size = len(body if isinstance(body, bytes) else body.encode())
            enc_s = median_time(encode, args.repeat)
            dicts_s = median_time(lambda: to_dicts(body), args.repeat)
            table_s = median_time(lambda: to_table(body), args.repeat) if to_table else None
            peer = peer or (enc_s, size)
            rows.append((channel, name, f"{enc_s * 1e6:,.0f}", f"{peer[0] / enc_s:.1f}x",
                         f"{table_s * 1e6:,.0f}" if table_s else "-", f"{dicts_s * 1e6:,.0f}",
                         f"{size / 1000:,.1f}", f"{size / peer[1]:.2f}"))
    table(f"one {ROWS:,}-row frame (median of {args.repeat})", rows,
          ("channel", "encoding", "server us", "vs json", "client->table us", "client->dicts us", "kB", "size vs json"))


if __name__ == "__main__":
    main()
