"""A Solana JSON-RPC client for snapshots: getMultipleAccounts in batches, getProgramAccounts.

Why this shape: a snapshot of N accounts costs ceil(N / 100) requests (100 keys is the RPC's
limit per getMultipleAccounts), run ``concurrency`` at a time. Each request is retried on what
passes (timeouts, connection errors, HTTP 429 and 5xx, a body that is not complete JSON, the
node errors "behind" / "min context slot not reached") with exponential backoff; a 429's
``Retry-After`` (seconds or an HTTP date) is waited instead when it says longer. Any other
JSON-RPC error fails at once, with the URL, method and the node's message. Every batch after
the first asks for ``minContextSlot`` = the first batch's slot, so no account is older than it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import json
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from ..errors import ChainError
from .rpc_limits import BACKOFF_MAX_S, BACKOFF_S, CONCURRENCY, RETRIES, TIMEOUT_S

KEYS_PER_REQUEST = 100          # getMultipleAccounts accepts at most 100 keys
RETRYABLE_RPC_CODES = {-32004, -32005, -32014, -32016}  # block not available, node behind, status not yet, min slot


def run_sync(coro):
    """``asyncio.run(coro)``, also from a caller whose thread already runs an event loop (a Jupyter
    kernel): there the coroutine runs on a loop of its own in a worker thread, and this waits."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="workbench-rpc") as pool:
        return pool.submit(asyncio.run, coro).result()


def public_url(url: str) -> str:
    """``url`` without query and credentials (providers put API keys there): what messages and
    meta.json show."""
    p = urlsplit(url)
    host = p.hostname or ""
    if p.port:
        host += f":{p.port}"
    return urlunsplit((p.scheme, host, p.path, "", ""))


@dataclass(frozen=True)
class RpcFailure:
    """A JSON-RPC error the caller asked to get back (``call(give_back=...)``) instead of an exception:
    for getBlock, a slot that has no block."""
    code: int
    message: str


@dataclass
class RpcStats:
    """What a client did: requests sent (retries included), retries, 429s, context slots seen."""
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    slots: list[int] = field(default_factory=list)


class RpcClient:
    """Async JSON-RPC over one httpx connection pool. Use as ``async with RpcClient(url) as c``."""

    def __init__(self, url: str, *, concurrency: int = CONCURRENCY, timeout_s: float = TIMEOUT_S,
                 retries: int = RETRIES, backoff_s: float = BACKOFF_S, backoff_max_s: float = BACKOFF_MAX_S,
                 commitment: str = "confirmed"):
        if not url.startswith(("http://", "https://")):
            raise ChainError(f"--rpc {public_url(url)}", "not an http:// or https:// URL")
        if concurrency < 1 or retries < 0 or timeout_s <= 0:
            raise ChainError(f"--rpc {public_url(url)}", f"concurrency {concurrency} must be >= 1, retries {retries} >= 0, "
                                             f"timeout {timeout_s} > 0")
        self.url, self.retries, self.backoff_s, self.backoff_max_s = url, retries, backoff_s, backoff_max_s
        self.shown = public_url(url)    # the URL in messages: never the API key of its query
        self.commitment = commitment
        self.stats = RpcStats()
        self._limit = asyncio.Semaphore(concurrency)
        self._http = httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=concurrency),
                                       headers={"content-type": "application/json"})
        self._id = 0
        self.min_context_slot: int | None = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self._http.aclose()

    # -- one call ------------------------------------------------------------------------------

    def _wait_s(self, attempt: int, retry_after: str | None) -> float:
        wait = min(self.backoff_s * (2 ** attempt), self.backoff_max_s)
        if retry_after:
            try:
                told = float(retry_after)
            except ValueError:
                when = email.utils.parsedate_to_datetime(retry_after) if retry_after else None
                told = when.timestamp() - time.time() if when else 0.0
            wait = max(wait, min(told, self.backoff_max_s))
        return max(wait, 0.0)

    async def call(self, method: str, params: list, give_back: frozenset = frozenset()):
        """The ``result`` of one JSON-RPC call, retried as the module says; ChainError otherwise.
        A JSON-RPC error whose code is in ``give_back`` is returned as an RpcFailure (once its
        retries are spent, if the code is also a retryable one)."""
        where = f"{self.shown} {method}"
        last = "no attempt"
        async with self._limit:
            for attempt in range(self.retries + 1):
                self._id += 1
                body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}
                retry_after = None
                self.stats.requests += 1
                try:
                    r = await self._http.post(self.url, content=json.dumps(body))
                except httpx.TimeoutException:
                    last = f"timed out after {self._http.timeout.read:g} s"
                except httpx.HTTPError as e:
                    last = f"connection failed ({type(e).__name__}: {e})"
                else:
                    if r.status_code == 429:
                        self.stats.rate_limited += 1
                        retry_after = r.headers.get("retry-after")
                        last = f"HTTP 429 Too Many Requests (Retry-After {retry_after or 'not given'})"
                    elif r.status_code >= 500:
                        last = f"HTTP {r.status_code}"
                    elif r.status_code != 200:
                        raise ChainError(where, f"HTTP {r.status_code}: {r.text[:200]}")
                    else:
                        try:
                            reply = orjson.loads(r.content)    # a getBlock answer is megabytes: orjson's C parser
                        except ValueError as e:
                            last = f"the response is not complete JSON ({len(r.content)} bytes: {e})"
                        else:
                            if not isinstance(reply, dict):
                                raise ChainError(where, f"the response is not a JSON-RPC object: {r.text[:200]}")
                            err = reply.get("error")
                            if err is not None:
                                code = err.get("code") if isinstance(err, dict) else None
                                msg = err.get("message") if isinstance(err, dict) else err
                                if code in give_back and (code not in RETRYABLE_RPC_CODES
                                                          or attempt == self.retries):
                                    return RpcFailure(code, str(msg))
                                if code not in RETRYABLE_RPC_CODES:
                                    raise ChainError(where, f"JSON-RPC error {code}: {msg}")
                                last = f"JSON-RPC error {code}: {msg}"
                            elif "result" not in reply:
                                raise ChainError(where, f"the response has neither result nor error: {r.text[:200]}")
                            else:
                                return reply["result"]
                if attempt < self.retries:
                    self.stats.retries += 1
                    await asyncio.sleep(self._wait_s(attempt, retry_after))
        raise ChainError(where, f"{last}; gave up after {self.retries + 1} attempts")

    # -- accounts ------------------------------------------------------------------------------

    def _context(self, extra: dict | None = None) -> dict:
        cfg = {"encoding": "base64", "commitment": self.commitment}
        if self.min_context_slot is not None:
            cfg["minContextSlot"] = self.min_context_slot
        return cfg | (extra or {})

    async def _batch(self, keys: list[str]) -> tuple[int, list]:
        result = await self.call("getMultipleAccounts", [keys, self._context()])
        try:
            slot, values = int(result["context"]["slot"]), result["value"]
        except (KeyError, TypeError, ValueError):
            raise ChainError(f"{self.shown} getMultipleAccounts", f"no context.slot / value in {str(result)[:200]}") \
                from None
        if not isinstance(values, list) or len(values) != len(keys):
            raise ChainError(f"{self.shown} getMultipleAccounts",
                             f"{len(values) if isinstance(values, list) else 'no'} values for {len(keys)} keys "
                             f"(first key {keys[0]})")
        self.stats.slots.append(slot)
        return slot, values

    async def get_multiple_accounts(self, keys, progress: Callable[[int, int], None] | None = None) -> dict:
        """{address: account value or None} of ``keys`` (duplicates fetched once), in batches
        of KEYS_PER_REQUEST. ``progress(done, more)`` is called with ``more`` = the key count
        first (the total grows with each round), then with each batch's key count as it lands."""
        keys = list(dict.fromkeys(keys))
        out: dict = {}
        if keys and progress:
            progress(0, len(keys))

        async def one(batch):
            _, values = await self._batch(batch)
            out.update(zip(batch, values))
            if progress:
                progress(len(batch), 0)

        await self.each_batch(keys, one)
        return out

    async def each_batch(self, keys: list[str], one) -> None:
        """``await one(batch)`` for ``keys`` in batches of KEYS_PER_REQUEST: the first alone (its context
        slot becomes every later batch's minContextSlot, so no answer is older than it), the rest
        concurrently (within the client's limit); the first failure cancels what is still running."""
        batches = [keys[i:i + KEYS_PER_REQUEST] for i in range(0, len(keys), KEYS_PER_REQUEST)]
        if not batches:
            return
        await one(batches[0])
        if self.min_context_slot is None:
            self.min_context_slot = self.stats.slots[-1]
        tasks = [asyncio.ensure_future(one(b)) for b in batches[1:]]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    async def get_program_account_keys(self, program: str, filters: list) -> list[str]:
        """Addresses of ``program``'s accounts matching ``filters`` (dataSize / memcmp), without
        their data (dataSlice of length 0): getMultipleAccounts reads them at one context slot."""
        result = await self.call("getProgramAccounts", [program, self._context(
            {"filters": filters, "dataSlice": {"offset": 0, "length": 0}, "withContext": True})])
        rows = result["value"] if isinstance(result, dict) and "value" in result else result
        try:
            return [row["pubkey"] for row in rows]
        except (KeyError, TypeError):
            raise ChainError(f"{self.shown} getProgramAccounts", f"not a list of accounts: {str(result)[:200]}") \
                from None
