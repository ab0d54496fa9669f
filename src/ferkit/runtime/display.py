"""Windows on the desktop: an OpenCV window where the build has one, else a browser app window.

Usage::

    window = open_frame_window("ferkit")     # shows BGR frames; q (or closing it) stops
    while window.show(bgr):                  # False once the user quit or closed the window
        ...
    window.close()

    proc = open_app_window(url, kiosk=True)  # a page in its own browser window (no tabs, no bar)

ferkit installs the headless OpenCV build (no windows), so the usual window is a Chromium-
family browser in app mode (``--app=URL``; ``--kiosk`` full-screen for a mirror): found on
PATH (chromium, google-chrome, microsoft-edge, brave) or named by ``$FERKIT_BROWSER``, with
extra flags from ``$FERKIT_BROWSER_ARGS``, in its own profile under ``~/.cache/ferkit/browser``
(so the camera permission is asked once). Without one, the default browser opens the URL.
Frames reach the page as an MJPEG stream from a server on 127.0.0.1 whose paths carry a
random token: no other host can connect, and no other local user can guess the address.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

BROWSERS = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "microsoft-edge",
    "brave-browser",
)
_MAC_APPS = (
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge",
)
_WINDOWS_APPS = (
    r"%ProgramFiles%\Google\Chrome\Application\chrome.exe",
    r"%ProgramFiles(x86)%\Microsoft\Edge\Application\msedge.exe",
)


def gui_available() -> tuple[bool, str]:
    """``(True, "")`` when OpenCV windows can open, else ``(False, reason with what to do)``."""
    gui = next(
        (
            line.split(":", 1)[1].strip()
            for line in cv2.getBuildInformation().splitlines()
            if line.strip().startswith("GUI:")
        ),
        "",
    )
    if gui.upper() in ("", "NONE"):
        return False, "this OpenCV build has no window support (opencv-python-headless)"
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False, "no display found (headless session)"
    return True, ""


def find_browser() -> str | None:
    """A Chromium-family browser that can open app windows: ``$FERKIT_BROWSER`` or one found."""
    named = os.environ.get("FERKIT_BROWSER")
    if named:
        return shutil.which(named) or named
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    candidates = _MAC_APPS if sys.platform == "darwin" else _WINDOWS_APPS if os.name == "nt" else ()
    return next((p for p in map(os.path.expandvars, candidates) if os.path.exists(p)), None)


def open_app_window(url: str, kiosk: bool = False) -> subprocess.Popen | None:
    """Open ``url`` in its own browser window; the process, or None if the default browser took it."""
    browser = find_browser()
    if browser is None:
        webbrowser.open(url)
        return None
    profile = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ferkit" / "browser"
    profile.mkdir(parents=True, exist_ok=True)
    args = [
        browser,
        f"--app={url}",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
    ]
    if kiosk:
        args.append("--kiosk")
    args += shlex.split(os.environ.get("FERKIT_BROWSER_ARGS", ""))
    return subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


class CvWindow:
    """An OpenCV window (needs an OpenCV build with a GUI and a display)."""

    def __init__(self, title: str):
        self.title = title

    def show(self, bgr: np.ndarray) -> bool:
        cv2.imshow(self.title, bgr)
        return cv2.waitKey(1) & 0xFF != ord("q")

    def close(self) -> None:
        cv2.destroyAllWindows()


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>html,body{{margin:0;height:100%;background:#000}}img{{width:100%;height:100%;object-fit:contain}}</style>
</head><body><img src="stream.mjpg" alt="{title}">
<script>document.onkeydown=(e)=>{{if(e.key==="q"||e.key==="Escape")fetch("quit",{{method:"POST"}}).then(()=>window.close())}};</script>
</body></html>"""


class BrowserWindow:
    """Frames as an MJPEG stream in a browser app window; q or Esc there, or closing it, stops."""

    def __init__(self, title: str, quality: int = 85, open_window: bool = True):
        self.title, self.quality = title, quality
        self.token = secrets.token_urlsafe(16)
        self._frame: bytes | None = None
        self._changed = threading.Condition()
        self.quit = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{self.token}/"
        self.process = open_app_window(self.url) if open_window else None

    def show(self, bgr: np.ndarray) -> bool:
        ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        with self._changed:
            self._frame = jpeg.tobytes() if ok else self._frame
            self._changed.notify_all()
        closed = self.process is not None and self.process.poll() is not None
        return not (self.quit.is_set() or closed)

    def close(self) -> None:
        self.quit.set()
        with self._changed:
            self._changed.notify_all()
        self.server.shutdown()
        self.server.server_close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def _next_frame(self, last: bytes | None, timeout: float = 1.0) -> bytes | None:
        with self._changed:
            self._changed.wait_for(lambda: self._frame is not last or self.quit.is_set(), timeout)
            return None if self.quit.is_set() else self._frame

    def _handler(self):
        window = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # no access log on the terminal
                pass

            def _path(self) -> str | None:
                prefix = f"/{window.token}/"
                return self.path[len(prefix) :] if self.path.startswith(prefix) else None

            def do_GET(self) -> None:
                path = self._path()
                if path == "":
                    body = _PAGE.format(title=window.title).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif path == "stream.mjpg":
                    self.send_response(200)
                    self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    frame = None
                    try:
                        while (frame := window._next_frame(frame)) is not None:
                            head = (
                                f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame)}\r\n\r\n"
                            )
                            self.wfile.write(head.encode() + frame + b"\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                if self._path() == "quit":
                    window.quit.set()
                    self.send_response(204)
                    self.end_headers()
                else:
                    self.send_error(404)

        return Handler


def open_frame_window(title: str = "ferkit") -> CvWindow | BrowserWindow:
    """An OpenCV window where possible, else a browser app window fed by a local MJPEG stream."""
    ok, _ = gui_available()
    return CvWindow(title) if ok else BrowserWindow(title)
