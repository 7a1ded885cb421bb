"""``workbench serve``: REST /v1, WebSocket /ws and Prometheus /metrics over a run and the store.

Above the runner (it may import runner, store, sinks and below; never cli or panel_apps).
The engine runs on a thread of its own (runner/background.py ``BackgroundRun``); the server's
event loop only reads what the run collected, so the engine never waits on a socket.

* ``opportunity_rows``: the one JSON shape of an opportunity (the store's column names), from
  engine tables and from store queries, and a posted batch checked against the table's columns.
* ``store_access``: the store connections the server owns (a read-only session for reads, one
  writer for posted batches) and the queries behind the routes.
* ``hub``: WebSocket channels, per-channel sequence numbers, memory for resumes, bounded
  per-client queues with counted gaps; ``frames``: the text (or Arrow) of what a channel sends;
  ``tx_channel``: the transactions channel and its per-subscription filters; ``seq_index``: every
  opportunity numbered, sequence -> (time, id); ``resume``: where a subscription starts and what
  memory no longer holds, from the store; ``ws``: the /ws route (a socket's reader and writer).
* ``prometheus``: /metrics from the engine's own histogram buckets and counters.
* ``security``: the bearer token and the body size limit (plain ASGI middleware).
* ``app``: the routes; ``server``: the process (store, engine thread, uvicorn).

Nothing is imported here: the CLI reads ``defaults`` for its --help, and a ``replay`` must not
pay for Starlette, uvicorn and the runner's live path at start-up.
"""
