"""``ferkit serve``: the web app (REST API, live stream, pages) on uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ferkit.cli.options import ALIGN_HELP


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (localhost by default)."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port (0: any free port)."),
    model: str = typer.Option("default", help="Shipped model name or .onnx file."),
    detector: str = typer.Option(
        "auto",
        help="Face detector: auto (= blazeface), blazeface, blazeface-short (faces near the camera), "
        "hog, haar.",
    ),
    align: str = typer.Option("none", help=ALIGN_HELP),
    workers: int = typer.Option(2, min=1, help="Inference worker threads."),
    max_upload_mb: float = typer.Option(10.0, min=0.01, help="Largest accepted upload or frame (MB)."),
    max_pixels: Optional[int] = typer.Option(
        None, min=1, help="Refuse images over this many pixels (default $FERKIT_MAX_PIXELS or 50M)."
    ),
    cors: list[str] = typer.Option([], help="Allowed CORS origin (repeatable); CORS is off by default."),
    allow_origin: list[str] = typer.Option(
        [], help="Another site allowed to POST and open sockets (repeatable; '*' = any)."
    ),
    allowed_hosts: list[str] = typer.Option(
        [],
        help="Host names this server answers to besides the bind address (repeatable; '*' = any). "
        "Loopback binds answer to loopback names only (DNS rebinding).",
    ),
    game_db: Optional[Path] = typer.Option(
        None,
        "--game-db",
        help="SQLite file for mirror-game results (default ~/.local/share/ferkit/mirror.db); "
        "photo analysis works without it.",
    ),
    ws_idle_timeout: float = typer.Option(
        60.0, min=1.0, help="Seconds a WebSocket may stay silent before the server closes it."
    ),
    max_connections: int = typer.Option(
        200, min=1, help="Open connections (HTTP and WebSocket) before new ones are answered 503."
    ),
    header_timeout: float = typer.Option(
        10.0, min=0.1, help="Seconds a client has to send a request's line and headers."
    ),
    body_timeout: float = typer.Option(
        30.0, min=0.1, help="Seconds a request body may pause before the request is answered 408."
    ),
) -> None:
    """Serve the API (docs at /docs) and the pages."""
    import os

    from ferkit.errors import FerkitError

    try:
        from ferkit.app.server import AppConfig, create_app, listen_socket, make_server, websocket_library
    except ImportError as exc:
        hint = 'pip install "ferkit[app]"'
        raise FerkitError(f"the web app needs its extra: {hint} ({exc.name} missing)") from exc
    from ferkit.runtime.recognize import check_align

    align = check_align(align)  # a wrong value fails before the port is taken
    websocket = websocket_library()  # before anything loads: the live pages need one
    sock = listen_socket(host, port)  # a busy port fails here, before "serving"
    config = AppConfig(
        model=model,
        detector=detector,
        align=align,
        workers=workers,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_pixels=max_pixels,
        cors_origins=tuple(cors),
        allow_origins=tuple(allow_origin),
        bind=host,
        allowed_hosts=tuple(allowed_hosts),
        game_db=str(game_db) if game_db else None,
        ws_idle_timeout=ws_idle_timeout,
        max_connections=max_connections,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
    )
    app = create_app(config)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    line = (
        f"ferkit: serving http://{shown}:{bound} (model {app.state.pool.model_name}, "
        f"detector {app.state.pool.detector_name}, WebSocket {websocket}); Ctrl-C stops"
    )
    verbose = bool(os.environ.get("FERKIT_VERBOSE"))
    make_server(app, sock, verbose=verbose, ready_line=line).run(sockets=[sock])


def register(root: typer.Typer) -> None:
    root.command()(serve)
