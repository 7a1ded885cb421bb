"""``snapshot_from_rpc``: a market snapshot folder built from a JSON-RPC endpoint (``workbench snapshot``).

The rows come from chain/market.py; the files are written by the engine's own
``write_snapshot`` into a temporary folder beside ``out``, read back with the engine's
validating ``load_market`` (so a snapshot that the engine would refuse is never published),
and only then renamed to ``out``: a failure at any step leaves no folder, or the old one
untouched. ``meta.json`` records the RPC URL (without its query string, where keys live),
the UTC time and the context slots, so that a replay knows the state it starts from.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..chain.account import address_bytes
from ..chain.market import discover_pools, fetch_market
from ..chain.rpc import CONCURRENCY, RETRIES, TIMEOUT_S, RpcClient, public_url, run_sync
from ..engine.market.snapshot import load_market, write_snapshot
from ..errors import ChainError, ConfigError
from ..wire.keys import new_key_table

META_FILE = "meta.json"
KEY_CAPACITY = 1 << 20          # key table of the validating load (every address of the snapshot once)


@dataclass
class SnapshotResult:
    """What ``snapshot_from_rpc`` wrote and what it cost."""
    out: Path
    pools: int
    pools_by_program: dict
    tokens: int
    slot_min: int
    slot_max: int
    accounts: int
    requests: int
    retries: int
    rate_limited: int
    seconds: float              # all of it: fetch, decode, write, the engine's validating load, rename
    fetch_s: float              # fetch and decode only


def read_pool_file(path: Path) -> list[str]:
    """Addresses in ``path``: one per line, blank lines and '#' comments skipped."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"--pools {path}: cannot read ({e.strerror or e})") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append((n, line))
    if not out:
        raise ConfigError(f"--pools {path}: no addresses (one base58 address per line)")
    for n, a in out:
        try:
            address_bytes(a)
        except ChainError:
            raise ConfigError(f"--pools {path} line {n}: {a!r} is not a base58 32-byte address") from None
    return [a for _, a in out]


async def _fetch(rpc, pools, mints, lookup_tables, token_accounts, client_opts, progress):
    async with RpcClient(rpc, **client_opts) as client:
        addresses = list(pools or [])
        if mints:
            addresses += await discover_pools(client, mints)
            if not addresses:
                raise ChainError(f"{public_url(rpc)} getProgramAccounts", f"no Raydium v4, CPMM or Whirlpool pool trades two of "
                                                              f"{', '.join(mints)}")
        rows = await fetch_market(client, addresses, lookup_tables, token_accounts, progress)
        return rows, client.stats


def snapshot_from_rpc(rpc: str, out, pools: list[str] | None = None, mints: list[str] | None = None,
                      lookup_tables=(), token_accounts=(), *, concurrency: int = CONCURRENCY,
                      timeout_s: float = TIMEOUT_S, retries: int = RETRIES, backoff_s: float | None = None,
                      replace: bool = False, progress: Callable[[int, int], None] | None = None) -> SnapshotResult:
    """Build the snapshot folder ``out`` from ``rpc``: the ``pools`` given and/or those found for
    ``mints``. ``progress(done, more)`` counts fetched account keys (``more`` grows the total).
    An existing ``out`` is refused unless ``replace``; then it is swapped for the new one only
    once that one has loaded."""
    out = Path(out)
    if not pools and not mints:
        raise ConfigError("snapshot: give --pools FILE or --mints A,B")
    if out.exists() and not replace:
        raise ConfigError(f"--out {out}: already exists; pass --replace to overwrite it, or name a new folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a snapshot folder")
    for flag, group in (("--mints", mints or ()), ("--lookup-tables", lookup_tables),
                        ("--token-accounts", token_accounts)):
        for a in group:
            try:
                address_bytes(a, flag)
            except ChainError as e:
                raise ConfigError(str(e)) from None
    if mints and len(set(mints)) < 2:
        raise ConfigError(f"--mints {','.join(mints)}: name at least two mints (pools trading two of them are found)")
    opts = {"concurrency": concurrency, "timeout_s": timeout_s, "retries": retries}
    if backoff_s is not None:
        opts["backoff_s"] = backoff_s
    t0 = time.perf_counter()
    rows, stats = run_sync(_fetch(rpc, pools, mints, list(lookup_tables), list(token_accounts), opts, progress))
    fetch_s = time.perf_counter() - t0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create a folder beside it ({e.strerror or e})") from None
    try:
        write_snapshot(tmp, rows.tokens, rows.pools, rows.lookup_tables if rows.lookup_tables["address"] else None,
                       rows.token_accounts if rows.token_accounts["address"] else None)
        meta = {"source": "rpc", "rpc_url": public_url(rpc),
                "fetched_at_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "context_slot": rows.slot_max, "context_slot_min": rows.slot_min, "context_slot_max": rows.slot_max,
                "commitment": "confirmed", "pools": len(rows.pools["address"]),
                "pools_by_program": rows.pools_by_program, "accounts_fetched": rows.accounts_fetched,
                "transfer_fee_mints": rows.transfer_fee_mints,
                "requests": stats.requests}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        keys, slots, key_meta = new_key_table(KEY_CAPACITY)
        load_market(tmp, keys, slots, key_meta)         # the engine's checks: refuse before publishing
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SnapshotResult(out, len(rows.pools["address"]), rows.pools_by_program, len(rows.tokens["mint"]),
                          rows.slot_min, rows.slot_max, rows.accounts_fetched, stats.requests, stats.retries,
                          stats.rate_limited, time.perf_counter() - t0, fetch_s)
