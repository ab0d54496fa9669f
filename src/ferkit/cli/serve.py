"""``ferkit serve``: the web app (REST API, live stream, pages) on uvicorn."""

from __future__ import annotations

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (localhost by default)."),
    port: int = typer.Option(8000, help="Port."),
    model: str = typer.Option("default", help="Shipped model name or .onnx file."),
    detector: str = typer.Option("auto", help="Face detector."),
    workers: int = typer.Option(2, help="Inference worker threads."),
    max_upload_mb: float = typer.Option(10.0, help="Largest accepted upload (MB)."),
    cors: list[str] = typer.Option([], help="Allowed CORS origin (repeatable); CORS is off by default."),
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
        cors_origins=tuple(cors),
    )
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")


def register(root: typer.Typer) -> None:
    root.command()(serve)
