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

import errno
import importlib.util
import logging
import queue
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from ferkit import __version__
from ferkit.app import api, game
from ferkit.app.guard import RequestGuard, allowed_hosts_for
from ferkit.app.schemas import ApiError, install_error_handlers
from ferkit.errors import FerkitError
from ferkit.runtime.recognize import Recognizer

STATIC = Path(__file__).resolve().parent / "static"
MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and headers around the file


@dataclass
class AppConfig:
    model: str = "default"
    detector: str = "auto"
    align: str = "none"  # face alignment: none, level, eyes (ferkit.runtime.recognize.check_align)
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int | None = None  # default: $FERKIT_MAX_PIXELS or 50 Mpx
    workers: int = 2
    request_timeout: float = 15.0  # seconds for one inference, queueing included
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are given
    allow_origins: tuple[str, ...] = ()  # other sites allowed to POST / open sockets (no CORS headers)
    bind: str = "127.0.0.1"  # the address served: its names are the allowed Hosts
    allowed_hosts: tuple[str, ...] = ()  # more Host names (a domain behind a proxy); "*" = any
    game_db: str | None = None  # SQLite file for mirror-game results (default ~/.local/share/ferkit)
    ws_idle_timeout: float = 60.0  # seconds a WebSocket may stay silent before it is closed
    max_connections: int = 200  # open connections (HTTP and WebSocket) before new ones get 503
    header_timeout: float = 10.0  # seconds for a client to send a request's line and headers
    body_timeout: float = 30.0  # seconds a request body may pause between two pieces


class RecognizerPool:
    """N recognizers, one per worker thread at a time (LiteRT/dlib detectors are not thread-safe)."""

    def __init__(self, config: AppConfig):
        self.items: queue.Queue[Recognizer] = queue.Queue()
        for _ in range(max(1, config.workers)):
            self.items.put(Recognizer(config.model, detector=config.detector, align=config.align, threads=1))
        first = self.items.queue[0]
        self.labels, self.detector_name = list(first.labels), first.detector.name
        self.model_path = str(first.classifier.path)
        self.model_name = Path(self.model_path).stem

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

    def analyze(
        self, data: bytes, max_pixels: int | None, timeout: float, annotate: bool = False
    ) -> tuple[tuple[int, int], list, float, str | None]:
        """Decode, recognise and (asked) annotate one upload, all while holding one worker.

        Decoding inside the worker bounds the memory in flight by the number of workers: six
        7000x7000 JPEGs at once no longer decode side by side in the server's thread pool.
        Returns ((height, width), faces, milliseconds of inference, annotated PNG in base64).
        """
        from ferkit.app.api import annotated_png, decode_upload

        with self.take(timeout) as rec:
            rgb = decode_upload(data, max_pixels)
            start = time.perf_counter()
            faces = rec.recognize(rgb)
            ms = (time.perf_counter() - start) * 1000
            png = annotated_png(rgb, faces) if annotate else None
            return rgb.shape[:2], faces, ms, png


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


def open_store(path: str | None):
    """The game-results database, or None with a warning when it cannot be opened (a corrupt
    file, a read-only folder): photo analysis needs no database, so the server still starts."""
    from ferkit.game.store import ResultStore, default_path

    try:
        return ResultStore(path)
    except Exception as exc:  # noqa: BLE001 - sqlite3 and OS errors alike
        where = path or default_path()
        logging.getLogger("ferkit").warning(
            "mirror-game results will not be saved: %s: %s (choose another file with --game-db)", where, exc
        )
        return None


def websocket_library() -> str:
    """The WebSocket library uvicorn will run: wsproto (what the app extra installs) or else
    websockets; without one the live pages and the game could not work, so the server
    refuses to start."""
    for name in ("wsproto", "websockets"):
        if importlib.util.find_spec(name) is not None:
            return name
    raise FerkitError(
        'the web app needs a WebSocket library for its live and game pages: pip install "ferkit[app]" '
        "(it brings wsproto)"
    )


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (0: any free port), so a busy port is a clear error before
    any model loads or anything says the server started."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # connections whose socket says TCP; with 0, each response on a kept-alive connection
    # waited ~40 ms for the client's delayed ACK (12 -> 52 ms a request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only, never a live listener
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise FerkitError(
                f"{host}:{port}: the port is already in use (another server?); "
                "choose another with --port, or --port 0 for any free port"
            ) from None
        raise FerkitError(f"{host}:{port}: cannot listen there: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def make_server(app: FastAPI, sock: socket.socket, verbose: bool = False, ready_line: str | None = None):
    """A uvicorn server for ``app`` on the bound ``sock``, with the config's limits.

    Only ferkit's lines are printed unless ``verbose`` (uvicorn's INFO lines, access log);
    ``ready_line`` goes to stderr once the server accepts connections: the readiness signal
    scripts and tests wait for.
    """
    import uvicorn

    config = app.state.config

    class _Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started and ready_line:
                print(ready_line, file=sys.stderr, flush=True)

    return _Server(
        uvicorn.Config(
            app,
            http=header_timeout_protocol(config.header_timeout),
            log_level="info" if verbose else "warning",
            access_log=verbose,
            ws=websocket_library(),
            **uvicorn_limits(config),
        )
    )


def header_timeout_protocol(timeout: float):
    """uvicorn's h11 protocol with a deadline for request headers: a client that opens a
    connection and sends its request line and headers slowly (slowloris) is disconnected
    after ``timeout`` seconds instead of holding the connection for ever."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11(H11Protocol):
        _header_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:  # a request's headers are still incomplete
                if self._header_timer is None:
                    self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutH11


def uvicorn_limits(config: AppConfig) -> dict:
    """Server-level limits: WebSocket messages a little over the frame limit (bigger ones are
    closed with 1009 by the protocol layer; smaller oversized ones get a JSON error), a cap on
    open connections, idle keep-alive connections closed after 5 s, and at most 1.5 s for open
    connections to finish on SIGTERM."""
    return {
        "ws_max_size": 2 * config.max_upload_bytes,
        "limit_concurrency": config.max_connections,
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 1.5,
    }


def _new_app() -> FastAPI:
    kwargs = dict(title="ferkit", version=__version__, description="Facial expression recognition API")
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:  # docs pages then load Swagger UI from its CDN
        return FastAPI(**kwargs)
    return FastAPIOffline(static_url="/_docs-static", **kwargs)


def create_app(config: AppConfig | None = None) -> FastAPI:
    config = config or AppConfig()
    app = _new_app()
    app.state.config, app.state.pool = config, RecognizerPool(config)
    app.state.models, app.state.default_model = shipped_model_infos()
    app.state.store = open_store(config.game_db)
    install_error_handlers(app)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"]
        )
    app.add_middleware(
        RequestGuard,
        max_body=config.max_upload_bytes + MULTIPART_OVERHEAD,
        body_timeout=config.body_timeout,
        allowed_hosts=allowed_hosts_for(config.bind, config.allowed_hosts),
        allowed_origins=[*config.cors_origins, *config.allow_origins],
    )
    app.include_router(api.router)
    app.include_router(game.router)
    if STATIC.exists():
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=STATIC, html=True), name="pages")  # no path traversal
    return app
