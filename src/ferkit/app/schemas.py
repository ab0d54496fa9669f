"""The API's response models and its one error shape, ``{"error": {"code", "message"}}``.

Usage::

    raise ApiError(413, "too_large", "upload exceeds the limit of 10485760 bytes")
    install_error_handlers(app)      # FastAPI's own errors (404, 405, 422) take the same shape

WebSocket errors are the same object sent as a JSON text message.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. too_large, unsupported_type")
    message: str = Field(description="What was wrong, for a person")


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_body(code, message), headers=headers)


def _code_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def install_error_handlers(app: FastAPI) -> None:
    """Our errors, Starlette's HTTP errors and validation errors all answer ``ErrorBody``."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, _code_for(exc.status_code), str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
        ]
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries saying these statuses answer ``ErrorBody``."""
    return {s: {"model": ErrorBody, "description": HTTPStatus(s).phrase} for s in statuses}


class FaceOut(BaseModel):
    box: list[int] = Field(description="x, y, width, height in pixels of the input image")
    score: float = Field(description="Detector confidence")
    label: str
    probs: dict[str, float] = Field(description="Probability of each expression")


class AnalyzeResult(BaseModel):
    width: int
    height: int
    faces: list[FaceOut]
    ms: float = Field(description="Detection and recognition time")
    annotated_png_base64: str | None = None


class Health(BaseModel):
    status: str
    version: str
    detector: str


class ServingInfo(BaseModel):
    model: str
    labels: list[str]
    detector: str


class ModelInfo(BaseModel):
    name: str
    labels: list[str]
    architecture: str
    input_size: int
    metrics: dict[str, Any]


class ModelsResult(BaseModel):
    serving: ServingInfo
    default: str | None
    models: list[ModelInfo]


class LeaderboardResult(BaseModel):
    games: list[dict[str, Any]]


def faces_out(faces) -> list[dict[str, Any]]:
    """Recognised faces as the API sends them (rounded)."""
    return [{k: v for k, v in f.to_dict(digits=5).items() if k != "landmarks"} for f in faces]
