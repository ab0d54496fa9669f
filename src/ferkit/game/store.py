"""Game results in a local SQLite database: per-game and per-round rows, and a leaderboard.

Usage::

    store = ResultStore("~/.local/share/ferkit/mirror.db")     # created on first use
    game_id = store.save("ada", game.summary())
    store.leaderboard(limit=10, difficulty="normal")

Each game is written in one transaction (all of it or nothing, also after a crash); WAL
mode and a busy timeout let several players' sessions write at once.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS games (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    player TEXT NOT NULL,
    played_at REAL NOT NULL,
    difficulty TEXT NOT NULL,
    score INTEGER NOT NULL,
    hits INTEGER NOT NULL,
    misses INTEGER NOT NULL,
    mean_response REAL,
    best_streak INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    game_id INTEGER NOT NULL REFERENCES games(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('hit', 'miss')),
    response_time REAL,
    points INTEGER NOT NULL,
    PRIMARY KEY (game_id, idx)
);
CREATE INDEX IF NOT EXISTS games_by_score ON games (difficulty, score DESC);
"""


def default_path() -> Path:
    root = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(root, "ferkit", "mirror.db")


class ResultStore:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path).expanduser() if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def save(self, player: str, summary: dict, played_at: float | None = None) -> int:
        player = (player or "").strip()[:40]
        if not player:
            raise ValueError("a player name is required")
        db = self._connect()
        try:
            with db:  # one transaction: the game and its rounds, or nothing
                cur = db.execute(
                    "INSERT INTO games (player, played_at, difficulty, score, hits, misses, mean_response,"
                    " best_streak) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        player,
                        played_at or time.time(),
                        summary["difficulty"],
                        summary["score"],
                        summary["hits"],
                        summary["misses"],
                        summary["mean_response"],
                        summary["best_streak"],
                    ),
                )
                game_id = int(cur.lastrowid)
                db.executemany(
                    "INSERT INTO rounds (game_id, idx, target, outcome, response_time, points)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (game_id, r["index"], r["target"], r["outcome"], r["response_time"], r["points"])
                        for r in summary["results"]
                    ],
                )
            return game_id
        finally:
            db.close()

    def leaderboard(self, limit: int = 10, difficulty: str | None = None) -> list[dict]:
        """Best games first: score, then more hits, then faster mean response, then earlier."""
        query = (
            "SELECT id, player, played_at, difficulty, score, hits, misses, mean_response, best_streak "
            "FROM games {} ORDER BY score DESC, hits DESC, COALESCE(mean_response, 1e9) ASC, played_at ASC "
            "LIMIT ?"
        )
        where, params = ("WHERE difficulty = ?", [difficulty]) if difficulty else ("", [])
        db = self._connect()
        try:
            rows = db.execute(query.format(where), (*params, limit)).fetchall()
        finally:
            db.close()
        keys = (
            "id",
            "player",
            "played_at",
            "difficulty",
            "score",
            "hits",
            "misses",
            "mean_response",
            "best_streak",
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def rounds(self, game_id: int) -> list[dict]:
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT idx, target, outcome, response_time, points FROM rounds WHERE game_id = ? "
                "ORDER BY idx",
                (game_id,),
            ).fetchall()
        finally:
            db.close()
        return [
            dict(zip(("index", "target", "outcome", "response_time", "points"), r, strict=True)) for r in rows
        ]
