"""The REST API (analyze a photo, models, health) and the live-camera WebSocket, as one router.

Usage::

    app.include_router(api.router)     # needs app.state.pool, .config, .models (see server.py)

Uploads are never stored under the client's file name (Starlette keeps up to 1 MB in memory
and spools larger ones to an anonymous temporary file), are type-checked by their bytes
(415), checked against the pixel limit from their header and decoded inside a worker slot
(422), so the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib

import cv2
from fastapi import APIRouter, File, Query, Request, UploadFile, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ferkit import __version__
from ferkit.app.schemas import (
    AnalyzeResult,
    ApiError,
    Health,
    ModelsResult,
    error_body,
    error_responses,
    faces_out,
)
from ferkit.errors import DataError
from ferkit.imageio import decode_image

router = APIRouter()

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


def check_image_bytes(data: bytes, limit: int) -> None:
    """Size and type of an uploaded image or frame, from its bytes; ``ApiError`` otherwise."""
    if len(data) > limit:
        raise ApiError(413, "too_large", f"image is {len(data):,} bytes; the limit is {limit:,}")
    if not data:
        raise ApiError(422, "empty", "the uploaded file is empty")
    if sniff_image_type(data[:16]) is None:
        raise ApiError(415, "unsupported_type", "not an image ferkit reads (JPEG, PNG, WebP, BMP, TIFF, GIF)")


def decode_upload(data: bytes, max_pixels: int | None):
    """Runs in a worker thread: the header check and the decode never block the event loop."""
    try:
        return decode_image(data, "upload", "rgb", max_pixels=max_pixels)  # never the client's name
    except DataError as exc:
        code = "too_many_pixels" if "pixel limit" in exc.problem else "undecodable"
        raise ApiError(422, code, f"the image could not be decoded: {exc.problem}") from exc


@router.get("/healthz", response_model=Health)
async def healthz(request: Request) -> dict:
    return {"status": "ok", "version": __version__, "detector": request.app.state.pool.detector_name}


@router.get("/api/v1/models", response_model=ModelsResult)
async def models(request: Request) -> dict:
    """The shipped models (read once from their cards) and the one being served."""
    pool = request.app.state.pool
    listed = request.app.state.models
    return {
        "serving": {"model": pool.model_path, "labels": pool.labels, "detector": pool.detector_name},
        "default": request.app.state.default_model,
        "models": listed,
    }


@router.post(
    "/api/v1/analyze",
    response_model=AnalyzeResult,
    response_model_exclude_none=True,
    responses=error_responses(400, 403, 413, 415, 422, 503, 504),
)
async def analyze(
    request: Request,
    image: UploadFile = File(..., description="JPEG, PNG, WebP, BMP, TIFF or GIF"),
    annotate: bool = Query(False, description="Also return the annotated image (PNG, base64)."),
) -> dict:
    """Faces and their expressions in one photo."""
    config, pool = request.app.state.config, request.app.state.pool
    data = await image.read(config.max_upload_bytes + 1)
    check_image_bytes(data, config.max_upload_bytes)
    try:
        (height, width), faces, ms, png = await asyncio.wait_for(
            run_in_threadpool(pool.analyze, data, config.max_pixels, config.request_timeout, annotate),
            timeout=config.request_timeout,
        )
    except asyncio.TimeoutError:
        raise ApiError(504, "timeout", f"inference took longer than {config.request_timeout:g} s") from None
    result = {"width": width, "height": height, "faces": faces_out(faces), "ms": round(ms, 2)}
    if png is not None:
        result["annotated_png_base64"] = png
    return result


# The annotated copy a response carries is at most this many pixels on its long side: a
# 4.1 MB upload once came back as a 147.6 MB response. Boxes are drawn at full size first.
ANNOTATED_MAX_SIDE = 1600


def annotated_png(rgb, faces) -> str:
    """The annotated image as base64 PNG, shrunk to ANNOTATED_MAX_SIDE on its long side."""
    from ferkit.runtime.draw import annotate as draw

    drawn = draw(rgb, faces)
    long = max(drawn.shape[:2])
    if long > ANNOTATED_MAX_SIDE:
        f = ANNOTATED_MAX_SIDE / long
        size = (max(1, round(drawn.shape[1] * f)), max(1, round(drawn.shape[0] * f)))
        drawn = cv2.resize(drawn, size, interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    return base64.b64encode(png.tobytes()).decode()


class FrameSocket:
    """A WebSocket that takes binary image frames (and a few text messages): junk gets a
    JSON error, never silence.

    ``next_message()`` returns ``("text", str)``, ``("frame", bytes)`` for the newest frame
    (frames that arrived meanwhile are dropped and counted), or None when the client has
    gone. Empty, oversized or non-image frames are answered with ``{"error": {"code",
    "message"}}`` by the reader and the connection goes on. ``close()`` ends the reader
    task with the connection.
    """

    def __init__(self, ws: WebSocket, limit: int, idle_timeout: float = 60.0, max_texts: int = 16) -> None:
        self.ws, self.limit, self.idle_timeout = ws, limit, idle_timeout
        self.counters = {"received": 0, "dropped": 0, "processed": 0}
        self._latest: bytes | None = None
        self._arrived = asyncio.Event()
        self._closed = False
        self._send_lock = asyncio.Lock()
        self._texts: asyncio.Queue[str] = asyncio.Queue(maxsize=max_texts)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                try:
                    message = await asyncio.wait_for(self.ws.receive(), self.idle_timeout)
                except asyncio.TimeoutError:  # a silent client holds a connection: end it
                    await self.send_error("idle", f"no message for {self.idle_timeout:g} s; closing")
                    with contextlib.suppress(Exception):
                        await self.ws.close(code=1001)
                    break
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:  # a text message
                    if self._texts.full():  # a flood of text: answer here, keep nothing
                        await self.send_error("too_many_messages", "text messages are arriving too fast")
                    else:
                        self._texts.put_nowait(message.get("text") or "")
                        self._arrived.set()
                    continue
                try:
                    check_image_bytes(data, self.limit)
                except ApiError as exc:
                    await self.send_error(exc.code, exc.message)
                    continue
                self.counters["received"] += 1
                if self._latest is not None:
                    self.counters["dropped"] += 1  # replaced before it was processed
                self._latest = data
                self._arrived.set()
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            self._closed = True
            self._arrived.set()

    async def next_message(self) -> tuple[str, str | bytes] | None:
        while True:
            if not self._texts.empty():
                return "text", self._texts.get_nowait()
            if self._latest is not None:
                frame, self._latest = self._latest, None
                return "frame", frame
            if self._closed:
                return None
            self._arrived.clear()
            await self._arrived.wait()

    async def send_json(self, data: dict) -> bool:
        """False when the client has gone."""
        try:
            async with self._send_lock:
                await self.ws.send_json(data)
            return True
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._closed = True
            return False

    async def send_error(self, code: str, message: str) -> bool:
        return await self.send_json(error_body(code, message) | self.counters)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


@router.websocket("/api/v1/stream")
async def stream(ws: WebSocket) -> None:
    """Binary image frames in, one JSON result per processed frame out. Stale frames are
    dropped: while a frame is being processed only the newest arrival is kept."""
    config, pool = ws.app.state.config, ws.app.state.pool
    await ws.accept()
    sock = FrameSocket(ws, config.max_upload_bytes, config.ws_idle_timeout)
    try:
        while (message := await sock.next_message()) is not None:
            kind, frame = message
            if kind == "text":
                reply = error_body("text_frame", "this socket takes binary image frames, not text")
            else:
                try:
                    (height, width), faces, _, _ = await run_in_threadpool(
                        pool.analyze, frame, config.max_pixels, config.request_timeout
                    )
                    sock.counters["processed"] += 1
                    reply = {"faces": faces_out(faces), "width": width, "height": height}
                except ApiError as exc:
                    reply = error_body(exc.code, exc.message)
            if not await sock.send_json(reply | sock.counters):
                break
    finally:
        await sock.close()
