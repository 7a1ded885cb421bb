"""``workbench serve`` (issue #19): REST /v1, WebSocket /ws and Prometheus /metrics.

A thin face over workbench/api/server.py; ``register(app)`` adds the command to the main app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..api.defaults import DEFAULT_HOST, DEFAULT_OUT_DIR, DEFAULT_PORT, HISTORY_ITEMS, QUEUE_FRAMES
from ..capture.pace import check_speed
from ..errors import ConfigError, WorkbenchError
from .output import err_console, fail as _fail


def serve(
    replay: Optional[Path] = typer.Option(None, "--replay", help="capture to replay on the engine thread; its "
                                                                 "opportunities stream on /ws as they are found"),
    live: bool = typer.Option(False, "--live", help="capture live on the engine thread (--iface IF, or --source udp "
                                                    "--ports P), as `workbench live` does"),
    iface: Optional[str] = typer.Option(None, "--iface", "-i", help="--live: interface to capture on (afpacket)"),
    source: str = typer.Option("afpacket", "--source", help="--live: afpacket (TPACKET_V3 ring, root) or udp "
                                                            "(plain sockets)"),
    ports: Optional[str] = typer.Option(None, "--ports", help="--live: UDP ports, e.g. 8001,8003-8009 (udp: the "
                                                              "ports to bind; afpacket: a capture filter)"),
    market: Optional[Path] = typer.Option(None, "--market", help="market snapshot folder for the run"),
    model: Optional[Path] = typer.Option(None, "--model", help="compiled model folder for the run"),
    db: Optional[str] = typer.Option(None, "--db", help="store DSN the server owns (default: WORKBENCH_DB, the "
                                                        "config's db, or <data_dir>/clickhouse)"),
    out: Path = typer.Option(Path(DEFAULT_OUT_DIR), "--out", "-o", help="folder for the run's Parquet outputs"),
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
    ws_history_items: int = typer.Option(HISTORY_ITEMS, "--ws-history-items", help="items each channel keeps in "
                                                                          "memory for resumes; older opportunities "
                                                                          "are read from the store"),
    cpu: Optional[int] = typer.Option(None, "--cpu", help="pin the engine thread to this CPU (the server's other "
                                                          "threads stay off it), as `workbench live --cpu`"),
    rt: bool = typer.Option(False, "--rt", help="ask for SCHED_FIFO for the engine thread (reported if the host "
                                                "refuses), as `workbench live --rt`"),
    loop_rt: bool = typer.Option(False, "--loop-rt", help="ask for SCHED_FIFO for the event loop thread, one below "
                                                          "the engine's priority: frames and answers do not wait for "
                                                          "a CPU behind the run's bulk threads (reported if refused)"),
):
    """Serve the store and (with --replay or --live) a running engine: REST /v1, WebSocket /ws, /metrics."""
    from ..api.server import ServeOptions, serve as run_server
    from ..config import load_settings, parse_ports
    try:
        settings = load_settings()
        if ports is not None:
            parse_ports(ports, "--ports")        # checked here: the engine thread could only log it
        opts = ServeOptions(db=db or settings.db_dsn, replay=str(replay) if replay else None,
                            live=live, iface=iface, source=source, ports=ports,
                            market=str(market) if market else None, model=str(model) if model else None,
                            out_dir=str(out), speed=speed, host=host, port=port, token=token,
                            rate_limit=rate_limit, queue_frames=ws_queue_frames,
                            history_items=ws_history_items, settings=settings, cpu=cpu, rt=rt, loop_rt=loop_rt).checked()
        # checked here, where a mistake is a message: the engine thread could only log a traceback
        if replay is not None and not replay.is_file():
            raise ConfigError(f"--replay {replay}: no such capture file")
        if live and iface and source == "afpacket" and not Path("/sys/class/net", iface).exists():
            raise ConfigError(f"--iface {iface}: no such network interface (ip link lists them)")
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
