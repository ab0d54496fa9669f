"""The web app: the API router, the game router and the pages, behind the request guard.

Usage::

    app = create_app(AppConfig(model="default", detector="auto"))
    # uvicorn: ferkit serve --host 127.0.0.1 --port 8000

Every request first passes :class:`~ferkit.app.guard.RequestGuard` (Host, Origin, body
size while it streams). Uploads stay in memory; decoding and inference run in worker
threads, each inference with its own recognizer (detectors are not thread-safe), so the
event loop stays responsive; a request that waits too long gets 503/504 instead of hanging.
Every error is ``{"error": {"code", "message"}}``. ``/docs`` and ``/redoc`` are served from
a Python package (fastapi-offline), so they work offline.
"""

from __future__ import annotations

import queue
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI

from ferkit import __version__
from ferkit.app import api, game
from ferkit.app.guard import RequestGuard, allowed_hosts_for
from ferkit.app.schemas import ApiError, install_error_handlers
from ferkit.runtime.recognize import Recognizer

STATIC = Path(__file__).resolve().parent / "static"
MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and headers around the file


@dataclass
class AppConfig:
    model: str = "default"
    detector: str = "auto"
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int | None = None  # default: $FERKIT_MAX_PIXELS or 50 Mpx
    workers: int = 2
    request_timeout: float = 15.0  # seconds for one inference, queueing included
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are given
    allow_origins: tuple[str, ...] = ()  # other sites allowed to POST / open sockets (no CORS headers)
    bind: str = "127.0.0.1"  # the address served: its names are the allowed Hosts
    allowed_hosts: tuple[str, ...] = ()  # more Host names (a domain behind a proxy); "*" = any
    game_db: str | None = None  # SQLite file for mirror-game results (default ~/.local/share/ferkit)


class RecognizerPool:
    """N recognizers, one per worker thread at a time (LiteRT/dlib detectors are not thread-safe)."""

    def __init__(self, config: AppConfig):
        self.items: queue.Queue[Recognizer] = queue.Queue()
        for _ in range(max(1, config.workers)):
            self.items.put(Recognizer(config.model, detector=config.detector, threads=1))
        first = self.items.queue[0]
        self.labels, self.detector_name = list(first.labels), first.detector.name
        self.model_path = str(first.classifier.path)

    @contextmanager
    def take(self, timeout: float):
        try:
            rec = self.items.get(timeout=timeout)
        except queue.Empty:
            raise ApiError(503, "busy", "all workers are busy; try again") from None
        try:
            yield rec
        finally:
            self.items.put(rec)

    def recognize(self, image: np.ndarray, timeout: float) -> list:
        with self.take(timeout) as rec:
            return rec.recognize(image)


def shipped_model_infos() -> tuple[list[dict], str | None]:
    """Each shipped model as the API lists it, from its card (read from the file: no ONNX session)."""
    from ferkit.card import ModelCard
    from ferkit.runtime.catalog import default_model_name, resolve_model, shipped_models

    out = []
    for name in shipped_models():
        card = ModelCard.read(resolve_model(name))
        out.append(
            {
                "name": name,
                "labels": list(card.labels),
                "architecture": card.architecture,
                "input_size": card.input_size,
                "metrics": card.metrics,
            }
        )
    return out, default_model_name() if out else None


def _new_app() -> FastAPI:
    kwargs = dict(title="ferkit", version=__version__, description="Facial expression recognition API")
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:  # docs pages then load Swagger UI from its CDN
        return FastAPI(**kwargs)
    return FastAPIOffline(static_url="/_docs-static", **kwargs)


def create_app(config: AppConfig | None = None) -> FastAPI:
    from ferkit.game.store import ResultStore

    config = config or AppConfig()
    app = _new_app()
    app.state.config, app.state.pool = config, RecognizerPool(config)
    app.state.models, app.state.default_model = shipped_model_infos()
    app.state.store = ResultStore(config.game_db)
    install_error_handlers(app)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"]
        )
    app.add_middleware(
        RequestGuard,
        max_body=config.max_upload_bytes + MULTIPART_OVERHEAD,
        allowed_hosts=allowed_hosts_for(config.bind, config.allowed_hosts),
        allowed_origins=[*config.cors_origins, *config.allow_origins],
    )
    app.include_router(api.router)
    app.include_router(game.router)
    if STATIC.exists():
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=STATIC, html=True), name="pages")  # no path traversal
    return app
