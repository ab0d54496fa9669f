"""The mirror game over a WebSocket: camera frames in, game state out; results to SQLite.

Protocol (``WS /api/v1/game``): the client sends ``{"player", "difficulty", "rounds",
"expressions"?, "seed"?}`` as JSON, then JPEG frames as binary messages; each processed frame
gets a JSON game state back. When the game ends the server stores it and sends
``{"phase": "over", "summary", "leaderboard"}``. ``GET /api/v1/leaderboard`` lists the best.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import FastAPI, Query, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ferkit.errors import DataError
from ferkit.game.engine import EXPRESSIONS, LEVELS, GameConfig, MirrorGame
from ferkit.game.store import ResultStore
from ferkit.imageio import decode_image


def add_game_routes(app: FastAPI, pool, config) -> None:
    store = ResultStore(config.game_db)

    @app.get("/api/v1/leaderboard")
    async def leaderboard(limit: int = Query(10, ge=1, le=100), difficulty: str | None = None) -> dict:
        return {"games": await run_in_threadpool(store.leaderboard, limit, difficulty)}

    @app.websocket("/api/v1/game")
    async def game_ws(ws: WebSocket) -> None:
        await ws.accept()
        try:
            setup = await ws.receive_json()
            player = str(setup.get("player", "")).strip()[:40] or "anonymous"
            difficulty = setup.get("difficulty", "normal")
            expressions = tuple(setup.get("expressions") or EXPRESSIONS)
            unknown = [e for e in expressions if e not in pool.labels]
            if difficulty not in LEVELS or unknown:
                await ws.send_json(
                    {"error": f"difficulty must be one of {list(LEVELS)}; unknown expressions {unknown}"}
                )
                await ws.close()
                return
            rounds = max(1, min(int(setup.get("rounds", 10)), 50))
            game = MirrorGame(
                GameConfig(
                    expressions, rounds, float(setup.get("countdown", 3.0)), difficulty, setup.get("seed")
                )
            )
            state = game.start()
            await ws.send_json(_state_json(state))
            while not game.over:
                frame = await ws.receive_bytes()
                try:
                    rgb = decode_image(frame, "frame", "rgb")
                except DataError:
                    continue  # a bad frame is skipped, not fatal
                faces = await run_in_threadpool(pool.recognize, rgb, config.request_timeout)
                probs = faces[0].probs if faces else None  # the largest face plays
                state = game.update(probs)
                await ws.send_json(_state_json(state) | {"box": list(faces[0].box) if faces else None})
            summary = game.summary()
            game_id = await run_in_threadpool(store.save, player, summary)
            board = await run_in_threadpool(store.leaderboard, 10, difficulty)
            await ws.send_json(
                {"phase": "over", "game_id": game_id, "summary": summary, "leaderboard": board}
            )
        except WebSocketDisconnect:
            return


def _state_json(state) -> dict:
    out = asdict(state)
    out["time_left"] = round(out["time_left"], 2)
    out["target_prob"] = round(out["target_prob"], 4)
    out["hold_progress"] = round(out["hold_progress"], 3)
    return out
