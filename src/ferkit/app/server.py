"""The web app: REST API (analyze a photo, models, health) and a WebSocket for live camera frames.

Usage::

    app = create_app(AppConfig(model="default", detector="auto"))
    # uvicorn: ferkit serve --host 127.0.0.1 --port 8000

Uploads stay in memory (no user file name ever reaches the disk), are size-limited (413),
type-checked by their bytes (415) and decoded safely (422); errors are JSON
``{"error": {"code", "message"}}``. Inference runs in a small pool of worker threads, each
with its own recognizer (detectors are not thread-safe), so the event loop stays responsive;
a request that waits too long gets 503/504 instead of hanging.
"""

from __future__ import annotations

import asyncio
import base64
import queue
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ferkit import __version__
from ferkit.errors import DataError
from ferkit.imageio import decode_image
from ferkit.runtime.recognize import Recognizer

STATIC = Path(__file__).resolve().parent / "static"
# Magic bytes of the image formats accepted (what the bytes are, not what the client says).
_SIGNATURES = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
    b"BM": "image/bmp",
    b"II*\x00": "image/tiff",
    b"MM\x00*": "image/tiff",
}


def sniff_image_type(head: bytes) -> str | None:
    for sig, kind in _SIGNATURES.items():
        if head.startswith(sig):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass
class AppConfig:
    model: str = "default"
    detector: str = "auto"
    max_upload_bytes: int = 10 * 1024 * 1024
    workers: int = 2
    request_timeout: float = 15.0  # seconds for one inference, queueing included
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are given
    game_db: str | None = None  # SQLite file for mirror-game results (default ~/.local/share/ferkit)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message


class RecognizerPool:
    """N recognizers, one per worker thread at a time (LiteRT/dlib detectors are not thread-safe)."""

    def __init__(self, config: AppConfig):
        self.items: queue.Queue[Recognizer] = queue.Queue()
        for _ in range(max(1, config.workers)):
            self.items.put(Recognizer(config.model, detector=config.detector, threads=1))
        first = self.items.queue[0]
        self.labels, self.detector_name = list(first.labels), first.detector.name
        self.model_path = str(first.classifier.path)
        self.card = first.classifier.card

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


def _faces_json(faces) -> list[dict]:
    return [
        {
            "box": list(f.box),
            "score": round(f.score, 4),
            "label": f.label,
            "probs": {k: round(v, 5) for k, v in f.probs.items()},
        }
        for f in faces
    ]


def create_app(config: AppConfig | None = None) -> FastAPI:
    config = config or AppConfig()
    pool = RecognizerPool(config)
    app = FastAPI(title="ferkit", version=__version__, description="Facial expression recognition API")
    app.state.pool, app.state.config = pool, config
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"]
        )

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status, content={"error": {"code": exc.code, "message": exc.message}}
        )

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "version": __version__, "detector": pool.detector_name}

    @app.get("/api/v1/models")
    async def models() -> dict:
        from ferkit.runtime.classifier import load_classifier
        from ferkit.runtime.models import default_model_name, resolve_model, shipped_models

        out = []
        for name in shipped_models():
            card = load_classifier(resolve_model(name), threads=1).card
            metrics = card.extra.get("metrics", {})
            out.append(
                {
                    "name": name,
                    "labels": list(card.labels),
                    "architecture": card.architecture,
                    "input_size": card.input_size,
                    "metrics": metrics,
                }
            )
        return {
            "serving": {"model": pool.model_path, "labels": pool.labels, "detector": pool.detector_name},
            "default": default_model_name() if out else None,
            "models": out,
        }

    @app.post("/api/v1/analyze")
    async def analyze(
        request: Request,
        image: UploadFile = File(..., description="JPEG, PNG, WebP, BMP, TIFF or GIF"),
        annotate: bool = Query(False, description="Also return the annotated image (PNG, base64)."),
    ) -> dict:
        declared = int(request.headers.get("content-length") or 0)
        if declared > config.max_upload_bytes + 4096:
            raise ApiError(
                413, "too_large", f"upload is {declared} bytes; the limit is {config.max_upload_bytes}"
            )
        data = await image.read(config.max_upload_bytes + 1)
        if len(data) > config.max_upload_bytes:
            raise ApiError(413, "too_large", f"upload exceeds the limit of {config.max_upload_bytes} bytes")
        if not data:
            raise ApiError(422, "empty", "the uploaded file is empty")
        if sniff_image_type(data[:16]) is None:
            raise ApiError(
                415, "unsupported_type", "not an image ferkit reads (JPEG, PNG, WebP, BMP, TIFF, GIF)"
            )
        try:
            rgb = decode_image(data, "upload", "rgb")  # never the client's file name
        except DataError as exc:
            raise ApiError(422, "undecodable", f"the image could not be decoded: {exc.problem}") from exc
        start = time.perf_counter()
        try:
            faces = await asyncio.wait_for(
                run_in_threadpool(pool.recognize, rgb, config.request_timeout), timeout=config.request_timeout
            )
        except asyncio.TimeoutError:
            raise ApiError(
                504, "timeout", f"inference took longer than {config.request_timeout:.0f} s"
            ) from None
        result = {
            "width": rgb.shape[1],
            "height": rgb.shape[0],
            "faces": _faces_json(faces),
            "ms": round((time.perf_counter() - start) * 1000, 2),
        }
        if annotate:
            from ferkit.runtime.draw import annotate as draw

            ok, png = cv2.imencode(".png", cv2.cvtColor(draw(rgb, faces), cv2.COLOR_RGB2BGR))
            result["annotated_png_base64"] = base64.b64encode(png.tobytes()).decode()
        return result

    @app.websocket("/api/v1/stream")
    async def stream(ws: WebSocket) -> None:
        """Binary JPEG frames in, one JSON result per processed frame out. Stale frames are
        dropped: while a frame is being processed only the newest arrival is kept."""
        await ws.accept()
        latest: dict[str, bytes | None] = {"frame": None}
        arrived = asyncio.Event()
        counters = {"received": 0, "dropped": 0, "processed": 0}
        closed = asyncio.Event()

        async def receive() -> None:
            try:
                while True:
                    message = await ws.receive_bytes()
                    counters["received"] += 1
                    if latest["frame"] is not None:
                        counters["dropped"] += 1  # replaced before it was processed
                    latest["frame"] = message
                    arrived.set()
            except (WebSocketDisconnect, RuntimeError):
                closed.set()
                arrived.set()

        receiver = asyncio.create_task(receive())
        try:
            while not closed.is_set():
                await arrived.wait()
                arrived.clear()
                frame, latest["frame"] = latest["frame"], None
                if frame is None:
                    continue
                try:
                    if len(frame) > config.max_upload_bytes or sniff_image_type(frame[:16]) is None:
                        raise DataError("frame", "not an image within the size limit")
                    rgb = decode_image(frame, "frame", "rgb")
                    faces = await run_in_threadpool(pool.recognize, rgb, config.request_timeout)
                    counters["processed"] += 1
                    await ws.send_json(
                        {
                            "faces": _faces_json(faces),
                            "width": rgb.shape[1],
                            "height": rgb.shape[0],
                            **counters,
                        }
                    )
                except (DataError, ApiError) as exc:
                    await ws.send_json({"error": str(exc), **counters})
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            receiver.cancel()

    from ferkit.app.game import add_game_routes

    add_game_routes(app, pool, config)

    if STATIC.exists():
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=STATIC, html=True), name="pages")  # no path traversal
    return app
