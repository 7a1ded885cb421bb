"""``backfill_blocks``: landed blocks of a slot range from JSON-RPC into a blocks file (``workbench blocks``).

Rows go, in slot order and a record batch of about 16k at a time (chain/blocks.py), into an
Arrow stream in a temporary file beside ``out`` (memory holds the blocks fetched ahead and one
batch, not the range); once every slot is answered, the stream
is copied into the final Arrow IPC file whose schema metadata lists the skipped slots
(capture/block_file.py), and that file is renamed to ``out``. Any failure removes the
temporary files: ``out`` is whole, or untouched.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..capture.block_file import FORMAT, SCHEMA, frame_bytes, schema_with
from ..chain.blocks import fetch_blocks
from ..chain.rpc import CONCURRENCY, RETRIES, TIMEOUT_S, RpcClient, public_url, run_sync
from ..errors import ChainError, ConfigError

COMMITMENTS = ("confirmed", "finalized")      # getBlock refuses "processed"


@dataclass
class BackfillResult:
    """What ``backfill_blocks`` wrote and what it cost."""
    out: Path
    slots: int
    blocks: int
    skipped: list
    transactions: int
    failed: int
    requests: int
    retries: int
    rate_limited: int
    seconds: float


def _vaults(market) -> frozenset | None:
    """The vault addresses of a snapshot folder (pools.parquet vault_a / vault_b), or None."""
    if market is None:
        return None
    p = Path(market) / "pools.parquet"
    try:
        t = pq.read_table(p, columns=["vault_a", "vault_b"])
    except (OSError, pa.ArrowInvalid, KeyError) as e:
        raise ConfigError(f"--market {market}: cannot read the vaults of {p} ({e})") from None
    return frozenset(t.column("vault_a").to_pylist() + t.column("vault_b").to_pylist())


def _batch(rows: list[dict]) -> pa.RecordBatch:
    cols = {"frame": [frame_bytes(r["slot"], r["index_in_block"], r["err"] is not None, r["tx"]) for r in rows]}
    for f in SCHEMA.names[1:]:
        cols[f] = [r[f] for r in rows]
    return pa.RecordBatch.from_pydict(cols, schema=SCHEMA)


def backfill_blocks(rpc: str, first: int, last: int, out, *, market=None, commitment: str = "confirmed",
                    concurrency: int = CONCURRENCY, timeout_s: float = TIMEOUT_S, retries: int = RETRIES,
                    progress: Callable[[int], None] | None = None) -> BackfillResult:
    """getBlock for every slot of [first, last] into the blocks file ``out`` (see the module)."""
    if first < 0 or last < first:
        raise ConfigError(f"--from {first} --to {last}: need 0 <= --from <= --to")
    if commitment not in COMMITMENTS:
        raise ConfigError(f"--commitment {commitment}: getBlock takes one of {', '.join(COMMITMENTS)}")
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; name a file, e.g. {out / 'blocks.arrow'}")
    vaults = _vaults(market)
    out.parent.mkdir(parents=True, exist_ok=True)
    stream_tmp = out.with_name(f".{out.name}.{os.getpid()}.stream")
    file_tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    t0 = time.perf_counter()
    skipped: list = []
    counts = {"tx": 0, "failed": 0}
    try:
        with ipc.new_stream(str(stream_tmp), SCHEMA) as w:
            def on_window(rows, skip):
                skipped.extend(skip)
                if rows:
                    w.write_batch(_batch(rows))
                    counts["tx"] += len(rows)
                    counts["failed"] += sum(r["err"] is not None for r in rows)

            async def run():
                async with RpcClient(rpc, concurrency=concurrency, timeout_s=timeout_s, retries=retries,
                                     commitment=commitment) as client:
                    await fetch_blocks(client, first, last, on_window, vaults, progress)
                    return client.stats
            stats = run_sync(run())
        meta = {"format": FORMAT, "rpc": public_url(rpc), "commitment": commitment, "from_slot": first,
                "to_slot": last, "fetched_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "vaults_only": vaults is not None, "skipped": skipped}
        # read a batch at a time through a plain file (a path would be memory-mapped: the whole stream
        # would count in the process's resident memory by the end of the copy)
        with pa.OSFile(str(stream_tmp)) as src, ipc.open_stream(src) as r, \
                ipc.new_file(str(file_tmp), schema_with(meta)) as w:
            for rb in r:
                w.write_batch(rb)
        os.replace(file_tmp, out)
    except OSError as e:
        raise ChainError(f"--out {out}", f"cannot write ({e.strerror or e})") from None
    finally:
        for p in (stream_tmp, file_tmp):
            p.unlink(missing_ok=True)
    slots = last - first + 1
    return BackfillResult(out, slots, slots - len(skipped), skipped, counts["tx"], counts["failed"],
                          stats.requests, stats.retries, stats.rate_limited, time.perf_counter() - t0)
