"""``ferkit mirror``: the mirror game in a desktop window (OpenCV), camera in front of the player."""

from __future__ import annotations

import typer


def mirror(
    camera: str = typer.Option("0", help="Camera index, or a video file to play against."),
    player: str = typer.Option("player", help="Name for the leaderboard."),
    difficulty: str = typer.Option("normal", help="easy, normal or hard."),
    rounds: int = typer.Option(8, help="Rounds in a game."),
    model: str = typer.Option("default", help="Shipped model name or .onnx file."),
) -> None:
    """Play in a window: imitate the expression shown; q quits. Without a display, use the web page."""
    import cv2

    from ferkit.errors import FerkitError
    from ferkit.game.engine import GameConfig, MirrorGame
    from ferkit.game.store import ResultStore
    from ferkit.runtime.display import gui_available
    from ferkit.runtime.recognize import Recognizer
    from ferkit.runtime.video import read_frames

    ok, why = gui_available()
    if not ok:
        raise FerkitError(f"ferkit mirror needs a window: {why} (then open /mirror.html)")
    recognizer = Recognizer(model)
    game = MirrorGame(GameConfig(rounds=rounds, difficulty=difficulty))
    state = game.start()
    for _, _, rgb in read_frames(camera):
        faces = recognizer.recognize(rgb)
        state = game.update(faces[0].probs if faces else None)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for face in faces[:1]:
            x, y, w, h = face.box
            cv2.rectangle(bgr, (x, y), (x + w, y + h), (235, 99, 37), 2)
        lines = [
            f"show: {state.target or '-'}   time {state.time_left:.1f}s",
            f"score {state.score}   streak {state.streak}",
            f"target {state.target_prob:.0%}   hold {state.hold_progress:.0%}   {state.message}",
        ]
        for i, text in enumerate(lines):
            cv2.putText(
                bgr, text, (10, 28 + 28 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA
            )
        cv2.imshow("ferkit mirror", bgr)
        if cv2.waitKey(1) & 0xFF == ord("q") or game.over:
            break
    cv2.destroyAllWindows()
    summary = game.summary()
    if summary["rounds"]:
        ResultStore().save(player, summary)
    typer.echo(f"{summary['hits']} hits, {summary['misses']} misses, score {summary['score']}")


def register(root: typer.Typer) -> None:
    root.command()(mirror)
