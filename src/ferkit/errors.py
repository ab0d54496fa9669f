"""Errors that name the input and the problem, and the skip-and-report policy for batch jobs.

Usage::

    from ferkit.errors import DataError, ErrorLog
    log = ErrorLog(on_error="skip")
    log.fail("fer2013.csv", "line 12", "expected 2304 pixel values, found 2303")
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

OnError = Literal["raise", "skip"]


class FerkitError(Exception):
    """Base class of every error ferkit raises on purpose."""


class UnknownNameError(FerkitError, KeyError):
    """A name (model, detector, TTA mode, label set) that is not known; suggests close ones."""

    def __init__(self, kind: str, name: object, known: Iterable[str]) -> None:
        known = list(known)
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        self.name, self.known = name, known
        super().__init__(f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class ModelError(FerkitError, ValueError):
    """A model file, name or card that cannot be used (missing, not ferkit's, malformed)."""


class ConfigError(FerkitError, ValueError):
    """A training or GAN configuration value that is unknown or out of range."""


class CheckpointError(FerkitError, ValueError):
    """A checkpoint that cannot be loaded or resumed (missing, corrupt, another run's)."""


class LabelMismatchError(FerkitError, ValueError):
    """Two label sets that cannot be matched (a model's classes vs the data's, a teacher's)."""


class DataError(FerkitError, ValueError):
    """Bad input data: names the source, the place in it (line, row, member) and the problem."""

    def __init__(self, source: str, problem: str, location: str | None = None) -> None:
        self.source = str(source)
        self.location = location
        self.problem = problem
        where = f"{self.source}, {location}" if location else self.source
        super().__init__(f"{where}: {problem}")


class SplitError(DataError, KeyError):
    """A split (``PrivateTest``) or role (``test``) the dataset does not have; lists those it has."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class Skipped:
    """One input item left out under ``on_error='skip'``, and why."""

    source: str
    location: str | None
    problem: str

    def __str__(self) -> str:
        where = f"{self.source}, {self.location}" if self.location else self.source
        return f"{where}: {self.problem}"


@dataclass
class ErrorLog:
    """Collects bad items: raises on the first under ``raise``, records all under ``skip``."""

    on_error: OnError = "raise"
    skipped: list[Skipped] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {self.on_error!r}")

    def fail(self, source: str, problem: str, location: str | None = None) -> None:
        if self.on_error == "raise":
            raise DataError(source, problem, location)
        self.skipped.append(Skipped(str(source), location, problem))
