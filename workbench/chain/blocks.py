"""Landed blocks from a JSON-RPC endpoint: ``getBlock`` per slot, turned into container rows.

``getBlock`` is asked with encoding base64 (the transaction's wire bytes, which the engine
decodes itself), ``maxSupportedTransactionVersion`` 0 (else a node refuses any block holding
a v0 transaction), ``transactionDetails`` full and ``rewards`` false. A slot without a block
is answered with a JSON-RPC error: those in SLOT_EMPTY_CODES are recorded as skipped with
the node's code and message (the leader skipped it, or the node's ledger does not hold it),
never guessed; -32004 "block not available" is retried first (the client's retryable codes)
and recorded only once the retries are spent. Any other error fails the backfill.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Callable

import orjson
from solders.transaction import VersionedTransaction

from ..errors import ChainError
from .rpc import RpcClient, RpcFailure

# JSON-RPC codes of a slot that has no block to give
SLOT_SKIPPED = -32007             # "Slot N was skipped, or missing due to ledger jump to recent snapshot"
SLOT_SKIPPED_LONG_TERM = -32009   # "Slot N was skipped, or missing in long-term storage"
BLOCK_NOT_AVAILABLE = -32004      # "Block not available for slot N" (retried first)
BLOCK_CLEANED_UP = -32001         # "Block N cleaned up, does not exist on node"
SLOT_EMPTY_CODES = frozenset({SLOT_SKIPPED, SLOT_SKIPPED_LONG_TERM, BLOCK_NOT_AVAILABLE, BLOCK_CLEANED_UP})
SLOTS_AHEAD = 32                  # slots asked ahead of the next one written (the client limits those in flight)
ROWS_PER_WRITE = 16_384           # rows handed on together (a record batch of the file: one engine batch on replay)
NO_BALANCES = "[]"


def block_config(commitment: str) -> dict:
    return {"encoding": "base64", "maxSupportedTransactionVersion": 0, "transactionDetails": "full",
            "rewards": False, "commitment": commitment}


def block_rows(slot: int, block: dict, where: str, vaults: frozenset | None = None) -> list[dict]:
    """One row per transaction of ``block`` (a getBlock result), in block order; ChainError naming
    the slot and index when a transaction is missing, not base64, or does not decode."""
    if not isinstance(block, dict) or not isinstance(block.get("transactions"), list):
        raise ChainError(where, f"slot {slot}: the block has no transactions list: {str(block)[:200]}")
    block_time = block.get("blockTime")
    rows = []
    for i, t in enumerate(block["transactions"]):
        try:
            enc = t["transaction"]
            if not (isinstance(enc, list) and len(enc) == 2 and enc[1] == "base64"):
                raise ValueError(f"transaction is not [data, 'base64'] ({str(enc)[:60]})")
            raw = base64.b64decode(enc[0], validate=True)
            parsed = VersionedTransaction.from_bytes(raw)   # an independent decoder: refuse what no node sends
            meta = t.get("meta") or {}
            if not isinstance(meta, dict):
                raise ValueError("meta is not an object")
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise ChainError(where, f"slot {slot} transaction {i}: does not decode ({e})") from None
        err = meta.get("err")
        rows.append({
            "tx": raw, "slot": slot, "index_in_block": i, "block_time_s": block_time,
            "err": None if err is None else _json(err),
            "fee_lamports": meta.get("fee", 0), "compute_units_consumed": meta.get("computeUnitsConsumed"),
            "pre_token_balances": _token_balances(meta, "preTokenBalances", parsed, vaults),
            "post_token_balances": _token_balances(meta, "postTokenBalances", parsed, vaults),
        })
    return rows


def _token_balances(meta: dict, key: str, tx: VersionedTransaction, vaults: frozenset | None) -> str:
    """meta's token balances as JSON text; with ``vaults``, only the entries whose account (the
    transaction's key at accountIndex: static keys, then meta.loadedAddresses) is one of them."""
    rows = meta.get(key) or []
    if not rows:
        return NO_BALANCES
    if vaults is not None:
        keys = [str(k) for k in tx.message.account_keys]
        loaded = meta.get("loadedAddresses") or {}
        keys += list(loaded.get("writable", [])) + list(loaded.get("readonly", []))
        rows = [r for r in rows if 0 <= r.get("accountIndex", -1) < len(keys) and keys[r["accountIndex"]] in vaults]
    return _json(rows) if rows else NO_BALANCES


def _json(obj) -> str:
    """Compact JSON text (what json.dumps with separators (",", ":") writes), by orjson."""
    return orjson.dumps(obj).decode()


async def fetch_blocks(client: RpcClient, first: int, last: int, on_window: Callable[[list, list], None],
                       vaults: frozenset | None = None, progress: Callable[[int], None] | None = None) -> None:
    """getBlock for every slot of [first, last]; ``on_window(rows, skipped)`` gets the rows in landed
    order, about ROWS_PER_WRITE at a time, and the skipped slots among them ({slot, code, message}).

    Slots are asked at most SLOTS_AHEAD ahead of the next one to hand on, and each answer becomes
    rows as it lands: memory holds that many blocks' rows and one write, whatever the range."""
    cfg = block_config(client.commitment)

    async def one(slot):
        res = await client.call("getBlock", [slot, cfg], give_back=SLOT_EMPTY_CODES)
        if progress:
            progress(1)
        if isinstance(res, dict):       # rows now: the parsed answer (several times their size) is freed at once
            res = block_rows(slot, res, f"{client.shown} getBlock", vaults)
        return slot, res

    pending: dict[int, asyncio.Future] = {}
    asked = first
    rows, skipped = [], []
    try:
        for slot in range(first, last + 1):
            while asked <= last and asked - slot < SLOTS_AHEAD:
                pending[asked] = asyncio.ensure_future(one(asked))
                asked += 1
            _, res = await pending.pop(slot)
            if isinstance(res, RpcFailure):
                skipped.append({"slot": slot, "code": res.code, "message": res.message})
            elif res is None:         # some nodes answer a skipped slot with a null result
                skipped.append({"slot": slot, "code": None, "message": "null result"})
            elif isinstance(res, list):
                rows += res
            else:
                rows += block_rows(slot, res, f"{client.shown} getBlock", vaults)     # refuses what is no block
            if len(rows) >= ROWS_PER_WRITE:
                on_window(rows, skipped)
                rows, skipped = [], []
        if rows or skipped:
            on_window(rows, skipped)
    finally:
        for t in pending.values():
            t.cancel()
            if t.done() and not t.cancelled():
                t.exception()           # retrieved: a later slot's failure is not logged once the first one stops us
