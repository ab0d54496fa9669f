"""The mirror game: imitate the expression shown; hits, misses and response times. No UI in here.

Usage::

    game = MirrorGame(GameConfig(rounds=5, difficulty="normal"), clock=time.monotonic)
    game.start()
    while not game.over:
        state = game.update(probs)      # probs: {label: p} of the player's face, or None (no face)
        show(state)                     # target, countdown, target probability, hold progress, score
    game.summary()

The engine is driven by a stream of per-frame recognition results and a clock; tests use
a fake clock and scripted probabilities. Paused time (no face) never counts against the
player: the time limit and the response time are measured in active play time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

_EPS = 1e-9  # sums of frame intervals are floats: 2.0 - 1.2 < 0.8
EXPRESSIONS = ("happy", "surprise", "sad", "angry", "neutral")  # fear and disgust are hard to pose: opt-in


@dataclass(frozen=True)
class Difficulty:
    time_limit: float  # seconds of active play per round
    threshold: float  # probability of the target that counts as showing it
    hold: float  # seconds the target must stay above the threshold


LEVELS = {
    "easy": Difficulty(time_limit=8.0, threshold=0.45, hold=0.5),
    "normal": Difficulty(time_limit=5.0, threshold=0.6, hold=0.8),
    "hard": Difficulty(time_limit=3.0, threshold=0.75, hold=1.0),
}


@dataclass
class GameConfig:
    expressions: tuple[str, ...] = EXPRESSIONS
    rounds: int = 10
    countdown: float = 3.0
    difficulty: str = "normal"
    seed: int | None = None

    def level(self) -> Difficulty:
        try:
            return LEVELS[self.difficulty]
        except KeyError:
            raise ValueError(f"unknown difficulty {self.difficulty!r}; choose {', '.join(LEVELS)}") from None


@dataclass
class RoundResult:
    index: int
    target: str
    outcome: str  # "hit" or "miss"
    response_time: float | None  # active seconds from round start to the start of the held expression
    points: int


@dataclass
class GameState:
    phase: str  # "countdown", "playing", "paused", "over"
    round: int  # 1-based; 0 before the first
    target: str | None
    time_left: float  # countdown seconds in "countdown", play seconds otherwise
    target_prob: float
    hold_progress: float  # 0..1 of the hold time
    score: int
    streak: int
    message: str
    last_result: RoundResult | None = None


@dataclass
class MirrorGame:
    config: GameConfig = field(default_factory=GameConfig)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if not self.config.expressions:
            raise ValueError("the game needs at least one expression")
        self.level = self.config.level()
        self.rng = random.Random(self.config.seed)
        self.results: list[RoundResult] = []
        self.score = self.streak = self.best_streak = 0
        self.phase = "idle"
        self.target: str | None = None
        self._phase_start = 0.0
        self._active = 0.0  # active play seconds in this round
        self._last_tick: float | None = None
        self._hold_start: float | None = None  # active time at which the current hold began
        self._last_result: RoundResult | None = None

    @property
    def over(self) -> bool:
        return self.phase == "over"

    def start(self) -> GameState:
        self._next_round(self.clock())
        return self.state(0.0, "get ready")

    def _next_round(self, now: float) -> None:
        if len(self.results) >= self.config.rounds:
            self.phase = "over"
            return
        choices = [e for e in self.config.expressions if e != self.target] or list(self.config.expressions)
        self.target = self.rng.choice(choices)  # random order, never the same twice in a row
        self.phase = "countdown"
        self._phase_start = now
        self._active = 0.0
        self._hold_start = None
        self._last_tick = None

    def update(self, probs: dict[str, float] | None, now: float | None = None) -> GameState:
        """Advance the game with one frame's probabilities (``None``: no face in view)."""
        now = self.clock() if now is None else now
        if self.phase in ("idle", "over"):
            return self.state(0.0, "game over" if self.over else "press start")
        if self.phase == "countdown":
            left = self.config.countdown - (now - self._phase_start)
            if left > 0:
                return self.state(0.0, f"show {self.target} in {left:.0f}…", time_left=left)
            self.phase = "playing"
            self._last_tick = now
        assert self.target is not None
        if probs is None:  # no face: pause, without the clock running against the player
            self.phase = "paused"
            self._last_tick = now
            self._hold_start = None
            return self.state(0.0, "no face in view: the round is paused")
        if self.phase == "paused":
            self.phase = "playing"
            self._last_tick = now
        self._active += max(0.0, now - (self._last_tick if self._last_tick is not None else now))
        self._last_tick = now
        p = float(probs.get(self.target, 0.0))
        if p >= self.level.threshold:
            if self._hold_start is None:
                self._hold_start = self._active
            if self._active - self._hold_start >= self.level.hold - _EPS:
                return self._finish("hit", now, p)
        else:
            self._hold_start = None
        if self._active >= self.level.time_limit - _EPS:
            return self._finish("miss", now, p)
        return self.state(p, f"show {self.target}!")

    def _finish(self, outcome: str, now: float, p: float) -> GameState:
        response = self._hold_start if outcome == "hit" else None
        points = 0
        if outcome == "hit":
            self.streak += 1
            self.best_streak = max(self.best_streak, self.streak)
            speed = max(0.0, 1.0 - (response or 0.0) / self.level.time_limit)
            points = 100 + int(round(100 * speed)) + 10 * (self.streak - 1)
        else:
            self.streak = 0
        self.score += points
        result = RoundResult(len(self.results) + 1, self.target or "", outcome, response, points)
        self.results.append(result)
        self._last_result = result
        self._next_round(now)
        message = f"{outcome}! " + (f"{response:.2f} s" if response is not None else "time is up")
        return self.state(p, message)

    def state(self, target_prob: float, message: str, time_left: float | None = None) -> GameState:
        hold = 0.0
        if self._hold_start is not None and self.phase == "playing":
            hold = min(1.0, (self._active - self._hold_start) / self.level.hold)
        if time_left is None:
            time_left = (
                max(0.0, self.level.time_limit - self._active) if self.phase in ("playing", "paused") else 0.0
            )
        return GameState(
            self.phase,
            len(self.results) + (0 if self.over else 1),
            self.target if not self.over else None,
            time_left,
            target_prob,
            hold,
            self.score,
            self.streak,
            message,
            self._last_result,
        )

    def summary(self) -> dict:
        hits = [r for r in self.results if r.outcome == "hit"]
        per: dict[str, dict[str, float | int | None]] = {}
        for e in sorted({r.target for r in self.results}):
            rs = [r for r in self.results if r.target == e]
            hs = [r for r in rs if r.outcome == "hit"]
            per[e] = {
                "rounds": len(rs),
                "hits": len(hs),
                "mean_response": sum(r.response_time for r in hs) / len(hs) if hs else None,
            }  # type: ignore[misc]
        return {
            "rounds": len(self.results),
            "hits": len(hits),
            "misses": len(self.results) - len(hits),
            "hit_rate": len(hits) / len(self.results) if self.results else 0.0,
            "mean_response": sum(r.response_time for r in hits) / len(hits) if hits else None,  # type: ignore[misc]
            "score": self.score,
            "best_streak": self.best_streak,
            "difficulty": self.config.difficulty,
            "per_expression": per,
            "results": [asdict(r) for r in self.results],
        }
