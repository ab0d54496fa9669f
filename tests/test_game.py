import threading

import pytest

from ferkit.game.engine import LEVELS, GameConfig, MirrorGame
from ferkit.game.store import ResultStore


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def play(game, clock, frames):
    """frames: list of (seconds to advance, probs or None); returns the states."""
    states = []
    for dt, probs in frames:
        clock.t += dt
        states.append(game.update(probs))
    return states


def showing(label, p):
    return {label: p, "other": 1 - p}


def new_game(**kw):
    clock = FakeClock()
    cfg = GameConfig(**{"rounds": 3, "countdown": 1.0, "difficulty": "normal", "seed": 1, **kw})
    game = MirrorGame(cfg, clock)
    game.start()
    return game, clock


def test_countdown_then_hit_with_exact_response_time():
    game, clock = new_game()
    target = game.target
    states = play(game, clock, [(0.5, None)])
    assert states[0].phase == "countdown"  # a missing face during the countdown does not matter
    play(game, clock, [(0.5, showing(target, 0.1))])  # countdown over: play starts at t=1.0
    # Not showing it for 1.2 s, then showing it (p=0.9) from active time 1.2; hold is 0.8 s.
    play(game, clock, [(0.6, showing(target, 0.2)), (0.6, showing(target, 0.9))])
    states = play(game, clock, [(0.4, showing(target, 0.9)), (0.4, showing(target, 0.9))])
    result = game.results[0]
    assert (result.outcome, result.target) == ("hit", target)
    assert result.response_time == pytest.approx(1.2)
    assert result.points == 100 + round(100 * (1 - 1.2 / 5.0))  # 176
    assert states[-1].phase == "countdown" and game.target != target  # next round, no immediate repeat


def test_flicker_below_threshold_resets_the_hold_and_time_limit_misses():
    game, clock = new_game()
    target = game.target
    play(game, clock, [(1.0, showing(target, 0.0))])
    frames = [(0.5, showing(target, 0.9)), (0.5, showing(target, 0.3))] * 5  # never held 0.8 s
    play(game, clock, frames)
    assert game.results[0].outcome == "miss" and game.results[0].response_time is None
    assert game.results[0].points == 0 and game.streak == 0


def test_no_face_pauses_without_using_the_time_limit():
    game, clock = new_game()
    target = game.target
    play(game, clock, [(1.0, showing(target, 0.0)), (4.0, showing(target, 0.0))])  # 4 s of 5 used
    states = play(game, clock, [(0.1, None), (30.0, None)])  # player walks away for 30 s
    assert states[-1].phase == "paused" and "no face" in states[-1].message and not game.results
    states = play(game, clock, [(0.1, showing(target, 0.0))])  # back: resumes where it was
    assert states[-1].phase == "playing" and states[-1].time_left == pytest.approx(1.0)
    play(game, clock, [(1.1, showing(target, 0.0))])
    assert game.results[0].outcome == "miss"


def test_streaks_score_summary_and_difficulty():
    game, clock = new_game(difficulty="easy", rounds=4)
    level = LEVELS["easy"]
    for k in range(4):
        target = game.target
        play(game, clock, [(1.0, showing(target, 0.0))])  # countdown
        if k == 2:
            play(game, clock, [(level.time_limit + 0.1, showing(target, 0.0))])  # a miss in round 3
        else:
            play(game, clock, [(0.5, showing(target, 0.9)), (level.hold, showing(target, 0.9))])
    s = game.summary()
    assert (s["rounds"], s["hits"], s["misses"], s["best_streak"]) == (4, 3, 1, 2)
    assert s["hit_rate"] == 0.75 and s["mean_response"] == pytest.approx(0.5)
    # 0.5 s responses of 8 s: 100 + 94; the second hit of a streak earns +10.
    assert [r.points for r in game.results] == [194, 204, 0, 194] and s["score"] == 592
    assert game.over and game.update(showing("happy", 1.0)).phase == "over"
    assert sum(v["rounds"] for v in s["per_expression"].values()) == 4
    with pytest.raises(ValueError, match="unknown difficulty"):
        MirrorGame(GameConfig(difficulty="nightmare"))


def test_store_persists_and_ranks(tmp_path):
    store = ResultStore(tmp_path / "sub" / "mirror.db")  # created on first use
    games = []
    for player, score in (("ada", 300), ("bob", 500), ("cyd", 400)):
        game, clock = new_game(rounds=1)
        play(
            game,
            clock,
            [
                (1.0, showing(game.target, 0.0)),
                (0.2, showing(game.target, 0.9)),
                (0.9, showing(game.target, 0.9)),
            ],
        )
        summary = game.summary() | {"score": score}
        games.append(store.save(player, summary))
    assert [row["player"] for row in ResultStore(tmp_path / "sub" / "mirror.db").leaderboard()] == [
        "bob",
        "cyd",
        "ada",
    ]
    assert store.rounds(games[0])[0]["outcome"] == "hit"
    assert store.leaderboard(difficulty="hard") == []
    with pytest.raises(ValueError, match="player name"):
        store.save("  ", summary)


def test_concurrent_writes(tmp_path):
    store = ResultStore(tmp_path / "m.db")
    game, clock = new_game(rounds=1)
    play(game, clock, [(1.0, None), (6.0, showing(game.target, 0.0))])
    summary = game.summary()
    errors = []

    def writer(i):
        try:
            for k in range(10):
                ResultStore(tmp_path / "m.db").save(f"p{i}", summary | {"score": i * 100 + k})
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(store.leaderboard(limit=1000)) == 80
    assert store.leaderboard(limit=1)[0]["score"] == 709
