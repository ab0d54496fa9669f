"""Can this process open an OpenCV window? A display, and an OpenCV build with a GUI backend.

Usage::

    ok, why = gui_available()
"""

from __future__ import annotations

import os
import sys

import cv2


def gui_available() -> tuple[bool, str]:
    """``(True, "")`` when windows can open, else ``(False, reason with what to do)``."""
    gui = next(
        (
            line.split(":", 1)[1].strip()
            for line in cv2.getBuildInformation().splitlines()
            if line.strip().startswith("GUI:")
        ),
        "",
    )
    if gui.upper() in ("", "NONE"):
        return False, (
            "this OpenCV build has no window support (opencv-python-headless); "
            "use the web pages (ferkit serve) or install opencv-python in place of the headless build"
        )
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False, "no display found (headless session); use the web pages: ferkit serve"
    return True, ""
