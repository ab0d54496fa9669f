"""``ferkit serve``: the web app (REST API, live stream, pages) on uvicorn."""

from __future__ import annotations

from typing import Optional

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (localhost by default)."),
    port: int = typer.Option(8000, help="Port."),
    model: str = typer.Option("default", help="Shipped model name or .onnx file."),
    detector: str = typer.Option("auto", help="Face detector."),
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
) -> None:
    """Serve the API (docs at /docs) and the pages."""
    try:
        import uvicorn

        from ferkit.app.server import AppConfig, create_app
    except ImportError as exc:
        raise typer.BadParameter(
            f'the web app needs its extra: pip install "ferkit[app]" ({exc.name} missing)'
        ) from exc
    config = AppConfig(
        model=model,
        detector=detector,
        workers=workers,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_pixels=max_pixels,
        cors_origins=tuple(cors),
        allow_origins=tuple(allow_origin),
        bind=host,
        allowed_hosts=tuple(allowed_hosts),
    )
    uvicorn.run(create_app(config), host=host, port=port, log_level="info", **uvicorn_limits(config))


def uvicorn_limits(config) -> dict:
    """Server-level limits: WebSocket messages a little over the frame limit (bigger ones are
    closed with 1009 by the protocol layer; smaller oversized ones get a JSON error), and
    at most 1.5 s for open connections to finish on SIGTERM."""
    return {"ws_max_size": 2 * config.max_upload_bytes, "timeout_graceful_shutdown": 1.5}


def register(root: typer.Typer) -> None:
    root.command()(serve)
