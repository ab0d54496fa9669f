"""``ferkit mirror``: the mirror game full-screen on this computer (the web page in a kiosk window)."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlencode

import typer


def mirror(
    player: str = typer.Option("player", help="Name for the leaderboard (editable on the page)."),
    difficulty: str = typer.Option("normal", help="easy, normal or hard."),
    rounds: int = typer.Option(8, min=1, max=50, help="Rounds in a game."),
    model: str = typer.Option("default", help="Shipped model name or .onnx file."),
    kiosk: bool = typer.Option(True, help="Full screen with no browser controls (--no-kiosk: a window)."),
    port: int = typer.Option(0, help="Port on 127.0.0.1 (0: any free port)."),
    open_window: bool = typer.Option(
        True, "--open/--no-open", help="Open the window (--no-open: print the URL)."
    ),
) -> None:
    """Play the mirror game on this computer's camera, keyboard only: Enter starts, Esc stops, F toggles
    full screen. The page is ferkit's own web app, served on 127.0.0.1 while the window is open;
    closing the window (or Ctrl-C) ends it. Needs the app extra: pip install "ferkit[app]"."""
    from ferkit.errors import FerkitError

    if difficulty not in ("easy", "normal", "hard"):
        raise typer.BadParameter(f"{difficulty!r}: use easy, normal or hard", param_hint="--difficulty")
    try:
        from ferkit.app.server import AppConfig, create_app, listen_socket, make_server
    except ImportError as exc:
        raise FerkitError(f'ferkit mirror serves the web app: pip install "ferkit[app]" ({exc})') from exc
    from ferkit.runtime.display import open_app_window

    sock = listen_socket("127.0.0.1", port)  # 0: any free port, held from here on (no race)
    port = sock.getsockname()[1]
    app = create_app(AppConfig(model=model, bind="127.0.0.1"))
    server = make_server(app, sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():  # readiness, not a clock
        time.sleep(0.05)
    if not server.started:
        raise FerkitError(f"the mirror's server did not start on 127.0.0.1:{port}")
    query = urlencode({"camera": "on", "player": player, "difficulty": difficulty, "rounds": rounds})
    url = f"http://127.0.0.1:{port}/mirror.html?{query}"
    typer.echo(f"mirror: {url}  (Ctrl-C ends it)")
    process = open_app_window(url, kiosk=kiosk) if open_window else None
    try:
        while thread.is_alive() and (process is None or process.poll() is None):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
        server.should_exit = True
        thread.join(10)


def register(root: typer.Typer) -> None:
    root.command()(mirror)
