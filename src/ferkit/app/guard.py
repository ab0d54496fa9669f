"""What every request passes before the app sees it: Host, Origin and body-size checks (ASGI).

Usage::

    app.add_middleware(RequestGuard, max_body=10 * 2**20, allowed_hosts=["localhost"], allowed_origins=[])

- **Host** must be one of ``allowed_hosts`` (``*`` allows any): a page on another site
  that rebinds its DNS name to 127.0.0.1 sends its own name and is refused (400).
- **Origin**, when a browser sends one with a POST/PUT/PATCH/DELETE or a WebSocket
  handshake, must be this server's own origin or one of ``allowed_origins``; a cross-site
  form post or socket is refused (403). Clients that send no Origin (curl, scripts) pass.
- **Body pace**: a body that pauses longer than ``body_timeout`` between two pieces is
  answered 408 and the connection closed.
- **Body size**: a declared ``Content-Length`` over ``max_body`` is refused (413); a chunked
  body is counted as it streams and cut off at the limit, so nothing above the limit is
  buffered or reaches the disk. The 413 goes out at once; then, before the connection
  closes, up to ``DRAIN_BYTES`` more of the body (for at most ``DRAIN_SECONDS``) are read
  and discarded, as established servers do (a "lingering close"): a client still sending
  would otherwise see its connection reset instead of the answer. A client that asked
  ``Expect: 100-continue`` has sent nothing and is not waited for.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from ferkit.app.schemas import error_body

_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
DRAIN_BYTES = 32 * 1024 * 1024
DRAIN_SECONDS = 5.0
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def host_name(value: str) -> str:
    """``"[::1]:8000"`` -> ``"::1"``; ``"Example.org:80"`` -> ``"example.org"``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def allowed_hosts_for(bind: str, extra: Iterable[str] = ()) -> list[str]:
    """Host names to answer: a loopback bind answers loopback names; a wildcard bind (0.0.0.0,
    ::) any name unless ``extra`` names some; plus ``extra``."""
    extra = list(extra)
    if bind in ("0.0.0.0", "::", ""):
        return [*LOCAL_HOSTS, *extra] if extra else ["*"]
    if bind in LOCAL_HOSTS or bind.startswith("127."):
        return [*LOCAL_HOSTS, bind, *extra]
    return [bind, *extra]


class RequestGuard:
    def __init__(
        self,
        app,
        *,
        max_body: int,
        allowed_hosts: Iterable[str] = ("*",),
        allowed_origins: Iterable[str] = (),
        body_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.hosts = {host_name(h) if h != "*" else "*" for h in allowed_hosts}
        self.origins = {o.rstrip("/").lower() for o in allowed_origins}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        problem = self._check_host_and_origin(scope, headers)
        if problem is not None:
            status, code, message = problem
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
                return
            return await _respond(send, status, code, message)
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        waits = headers.get("expect", "").lower() == "100-continue"
        return await self._limit_body(scope, receive, send, headers.get("content-length"), waits)

    def _check_host_and_origin(self, scope, headers: dict[str, str]) -> tuple[int, str, str] | None:
        host = headers.get("host", "")
        if "*" not in self.hosts and host_name(host) not in self.hosts:
            return (
                400,
                "bad_host",
                f"Host {host!r} is not served here (allowed: {', '.join(sorted(self.hosts))})",
            )
        origin = headers.get("origin")
        unsafe = scope["type"] == "websocket" or scope.get("method", "GET") in _UNSAFE_METHODS
        if origin is None or not unsafe or "*" in self.origins:
            return None
        origin = origin.rstrip("/").lower()
        parts = urlsplit(origin)
        same_origin = parts.scheme in ("http", "https", "ws", "wss") and parts.netloc == host.lower()
        if same_origin or origin in self.origins:
            return None
        return 403, "bad_origin", f"requests from origin {origin!r} are not allowed (see --allow-origin)"

    async def _limit_body(self, scope, receive, send, declared: str | None, waits: bool = False) -> None:
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                return await _respond(send, 400, "bad_request", "Content-Length is not a number")
            if length > self.max_body:
                return await _respond(
                    send,
                    413,
                    "too_large",
                    f"request body is {length:,} bytes; the limit is {self.max_body:,}",
                    drain=None if waits else receive,
                )
        received = 0
        state = {"started": False, "refused": False}

        async def limited_receive():
            nonlocal received
            if state["refused"]:
                return {"type": "http.disconnect"}
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except asyncio.TimeoutError:  # a body that stalls holds a connection: answer, end it
                state["refused"] = True
                if not state["started"]:
                    state["started"] = True
                    await _respond(send, 408, "body_timeout", f"no request body for {self.body_timeout:g} s")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    state["refused"] = True
                    if not state["started"]:
                        state["started"] = True
                        await _respond(
                            send,
                            413,
                            "too_large",
                            f"request body is over the {self.max_body:,}-byte limit",
                            drain=receive if message.get("more_body", False) else None,
                            already=received,
                        )
                    return {"type": "http.disconnect"}  # the app stops reading here
            return message

        async def guarded_send(message) -> None:
            if state["refused"]:
                return  # we have answered already
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["refused"]:
                raise


async def _drain(receive, already: int) -> None:
    """Read and discard the rest of a refused body, up to DRAIN_BYTES in all and DRAIN_SECONDS."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while already < DRAIN_BYTES:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), left)
        except asyncio.TimeoutError:
            return
        if message["type"] != "http.request":
            return
        already += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _respond(send, status: int, code: str, message: str, drain=None, already: int = 0) -> None:
    """The JSON error; with ``drain`` (the request's receive), the rest of the request body is
    read and discarded (bounded) after the answer is sent and before the connection closes."""
    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    if drain is None:
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.body", "body": body, "more_body": True})  # the client has it
    await _drain(drain, already)
    await send({"type": "http.response.body", "body": b""})
