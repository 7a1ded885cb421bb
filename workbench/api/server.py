"""The ``workbench serve`` process: the service (service.py), its routes (app.py), uvicorn."""

from __future__ import annotations

from .app import build_app
from .service import ServeOptions, make_service

__all__ = ["ServeOptions", "serve"]


def serve(opts: ServeOptions, announce=None) -> None:
    """Run the server until interrupted (uvicorn handles SIGINT / SIGTERM); ``announce(text)`` is
    called once the store is open, just before the socket is bound."""
    import uvicorn    # deferred: the CLI imports this module for every command

    from .post_protocol import post_protocol
    from .ws_protocol import SharedFrameProtocol

    opts.checked()
    service = make_service(opts)
    app = build_app(service)
    if announce is not None:
        announce(f"serving on http://{opts.host}:{opts.port} (store {service.store.writer.dsn.redacted()})")
    config = uvicorn.Config(app, host=opts.host, port=opts.port, loop="uvloop", http=post_protocol(app),
                            ws=SharedFrameProtocol,
                            log_level="warning", access_log=False, lifespan="on", ws_max_size=1 << 20,
                            # a frame is encoded and framed once for every client (websockets-sansio,
                            # taking shared frames); per-client deflate would undo that
                            ws_per_message_deflate=False)
    uvicorn.Server(config).run()
