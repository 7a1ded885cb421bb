"""The JSON-RPC client's limits (chain/rpc.py), in a module light enough for the CLI to import
for its --help: rpc.py itself loads httpx and asyncio, which a `workbench replay` never needs."""

CONCURRENCY = 8                 # requests in flight at once
TIMEOUT_S = 15.0                # per request (connect, read, write)
RETRIES = 5                     # attempts after the first
BACKOFF_S = 0.25                # first retry's wait; doubles each retry
BACKOFF_MAX_S = 10.0            # cap of one wait (Retry-After too)
