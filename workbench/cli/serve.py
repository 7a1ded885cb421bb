"""``workbench serve`` (issue #19): REST /v1, WebSocket /ws and Prometheus /metrics.

A thin face over workbench/api/server.py; ``register(app)`` adds the command to the main app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..api.defaults import DEFAULT_HOST, DEFAULT_OUT_DIR, DEFAULT_PORT
from ..api.hub import QUEUE_FRAMES
from ..capture.pace import check_speed
from ..errors import ConfigError, WorkbenchError
from .output import err_console, fail as _fail


def serve(
    replay: Optional[Path] = typer.Option(None, "--replay", help="capture to replay on the engine thread; its "
                                                                 "opportunities stream on /ws as they are found"),
    market: Optional[Path] = typer.Option(None, "--market", help="market snapshot folder for the replay"),
    model: Optional[Path] = typer.Option(None, "--model", help="compiled model folder for the replay"),
    db: Optional[str] = typer.Option(None, "--db", help="store DSN the server owns (default: WORKBENCH_DB, the "
                                                        "config's db, or <data_dir>/clickhouse)"),
    out: Path = typer.Option(Path(DEFAULT_OUT_DIR), "--out", "-o", help="folder for the replay's Parquet outputs"),
    speed: Optional[float] = typer.Option(None, "--speed", help="pace the replay (1.0 = as captured); unset: "
                                                                "as fast as the machine allows"),
    host: str = typer.Option(DEFAULT_HOST, "--host", help="address to bind; any non-loopback address needs "
                                                         "--token"),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="TCP port (0: any free port)"),
    token: Optional[str] = typer.Option(None, "--token", help="bearer token every route but /healthz then "
                                                              "needs (default: WORKBENCH_API_TOKEN)"),
    rate_limit: Optional[float] = typer.Option(None, "--rate-limit", help="requests per second each client address "
                                                                          "may make (429 with Retry-After past it); "
                                                                          "unset: no limit"),
    ws_queue_frames: int = typer.Option(QUEUE_FRAMES, "--ws-queue-frames", help="frames a WebSocket client may have "
                                                                        "waiting; past it the client gets a counted "
                                                                        "gap message"),
):
    """Serve the store and (with --replay) a running engine: REST /v1, WebSocket /ws, /metrics."""
    from ..api.server import ServeOptions, serve as run_server
    from ..config import load_settings
    try:
        settings = load_settings()
        opts = ServeOptions(db=db or settings.db_dsn, replay=str(replay) if replay else None,
                            market=str(market) if market else None, model=str(model) if model else None,
                            out_dir=str(out), speed=speed, host=host, port=port, token=token,
                            rate_limit=rate_limit, queue_frames=ws_queue_frames).checked()
        # checked here, where a mistake is a message: the engine thread could only log a traceback
        if replay is not None and not replay.is_file():
            raise ConfigError(f"--replay {replay}: no such capture file")
        for flag, folder in (("--market", market), ("--model", model)):
            if folder is not None and not folder.is_dir():
                raise ConfigError(f"{flag} {folder}: no such folder")
        if speed is not None:
            check_speed(speed, "leave --speed unset to replay unpaced")
        run_server(opts, announce=lambda text: err_console.print(text, highlight=False))
    except WorkbenchError as e:
        _fail(e)


def register(app: typer.Typer) -> None:
    app.command(name="serve")(serve)
