"""The mirror game over a WebSocket: camera frames in, game state out; results to SQLite.

Protocol (``WS /api/v1/game``): the client sends ``{"player", "difficulty", "rounds",
"expressions"?, "seed"?, "countdown"?}`` as a JSON text message, then image frames as
binary messages; each processed frame gets a JSON game state back. When the game ends the
server stores it and sends ``{"phase": "over", "summary", "leaderboard"}``. A bad set-up,
a text message during play or a bad frame gets ``{"error": {"code", "message"}}`` and the
socket goes on (a bad set-up can be sent again). ``GET /api/v1/leaderboard`` lists the best.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query, Request, WebSocket
from starlette.concurrency import run_in_threadpool

from ferkit.app.api import FrameSocket
from ferkit.app.schemas import ApiError, LeaderboardResult, error_body
from ferkit.game.engine import EXPRESSIONS, LEVELS, GameConfig, MirrorGame

router = APIRouter()


class SetupError(ValueError):
    pass


MAX_SETUP_CHARS = 8192  # a set-up message is a few dozen characters


def parse_setup(text: str, labels: list[str]) -> tuple[str, GameConfig]:
    """(player, config) from the set-up message; ``SetupError`` says what is wrong."""
    if len(text) > MAX_SETUP_CHARS:
        raise SetupError(f"the set-up message is {len(text):,} characters; at most {MAX_SETUP_CHARS:,}")
    try:
        setup = json.loads(text)
    except RecursionError:
        raise SetupError("the set-up message is nested too deeply") from None
    except ValueError as exc:
        if "digits" in str(exc):  # Python's int-size guard: "Exceeds the limit (4300 digits)"
            raise SetupError("the set-up message holds a number too long to read") from None
        raise SetupError("the set-up message is not JSON") from None
    if not isinstance(setup, dict):
        raise SetupError("the set-up message must be a JSON object")
    player = setup.get("player", "")
    if not isinstance(player, str):
        raise SetupError("player must be text")
    # A lone surrogate ("\ud800") is valid JSON but not storable text: replace it, keep the rest.
    player = player.encode("utf-8", "replace").decode("utf-8")
    difficulty = setup.get("difficulty", "normal")
    if not isinstance(difficulty, str) or difficulty not in LEVELS:
        raise SetupError(f"difficulty must be one of {list(LEVELS)}")
    expressions = setup.get("expressions") or list(EXPRESSIONS)
    if not isinstance(expressions, list) or not all(isinstance(e, str) for e in expressions):
        raise SetupError("expressions must be a list of expression names")
    unknown = [e for e in expressions if e not in labels]
    if unknown:
        raise SetupError(f"unknown expressions {unknown}; this model knows {labels}")
    rounds, countdown, seed = (
        setup.get("rounds", 10),
        setup.get("countdown", 3.0),
        setup.get("seed"),
    )
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= 50:
        raise SetupError("rounds must be a whole number from 1 to 50")
    if isinstance(countdown, bool) or not isinstance(countdown, (int, float)) or not 0 <= countdown <= 10:
        raise SetupError("countdown must be a number of seconds from 0 to 10")
    if not math.isfinite(countdown):
        raise SetupError("countdown must be finite")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise SetupError("seed must be a whole number")
    config = GameConfig(tuple(expressions), rounds, float(countdown), difficulty, seed)
    return player.strip()[:40] or "anonymous", config


@router.get("/api/v1/leaderboard", response_model=LeaderboardResult)
async def leaderboard(
    request: Request, limit: int = Query(10, ge=1, le=100), difficulty: str | None = None
) -> dict:
    store = request.app.state.store
    if store is None:
        raise ApiError(503, "no_database", "the game-results database could not be opened (see the log)")
    return {"games": await run_in_threadpool(store.leaderboard, limit, difficulty)}


@router.websocket("/api/v1/game")
async def game_ws(ws: WebSocket) -> None:
    config, pool, store = ws.app.state.config, ws.app.state.pool, ws.app.state.store
    await ws.accept()
    sock = FrameSocket(ws, config.max_upload_bytes, config.ws_idle_timeout)
    game: MirrorGame | None = None
    player = ""
    try:
        while (message := await sock.next_message()) is not None:
            kind, payload = message
            if game is None:  # waiting for the set-up
                if kind != "text":
                    reply = error_body("no_setup", "send the game set-up (JSON) before frames")
                else:
                    try:
                        player, game_config = parse_setup(str(payload), list(pool.labels))
                    except SetupError as exc:
                        reply = error_body("bad_setup", str(exc))
                    else:
                        game = MirrorGame(game_config)
                        level = game.level
                        reply = _state_json(game.start()) | {
                            "rounds": game_config.rounds,
                            "time_limit": level.time_limit,
                            "threshold": level.threshold,
                        }
            elif kind == "text":
                reply = error_body("text_frame", "the game is on: send binary image frames")
            else:
                try:
                    reply = await _play_frame(game, payload, pool, config)
                except ApiError as exc:
                    reply = error_body(exc.code, exc.message)
            if not await sock.send_json(reply):
                break
            if game is not None and game.over:
                summary = game.summary()
                over: dict[str, Any] = {"phase": "over", "game_id": None, "summary": summary}
                try:  # the result reaches the player even when the database does not take it
                    if store is None:
                        raise RuntimeError("the game-results database could not be opened")
                    over["game_id"] = await run_in_threadpool(store.save, player, summary)
                    over["leaderboard"] = await run_in_threadpool(
                        store.leaderboard, 10, game.config.difficulty
                    )
                except Exception as exc:  # noqa: BLE001 - any storage failure, reported to the client
                    over["error"] = {"code": "not_saved", "message": f"the result was not saved: {exc}"}
                await sock.send_json(over)
                break
    finally:
        await sock.close()


async def _play_frame(game: MirrorGame, frame: bytes, pool, config) -> dict[str, Any]:
    _, faces, _, _ = await run_in_threadpool(pool.analyze, frame, config.max_pixels, config.request_timeout)
    probs = faces[0].probs if faces else None  # the largest face plays
    return _state_json(game.update(probs)) | {"box": list(faces[0].box) if faces else None}


def _state_json(state) -> dict:
    out = asdict(state)
    out["time_left"] = round(out["time_left"], 2)
    out["target_prob"] = round(out["target_prob"], 4)
    out["hold_progress"] = round(out["hold_progress"], 3)
    return out
