"""What a Ray job reads: inputs expanded to files (local paths, folders, globs, URIs), partitions.

Usage::

    paths, missing = expand_sources(["photos/", "s3://bucket/faces/*.jpg"])
    parts = plan_partitions(paths, previous=None, size=1000)
    data = read_bytes("s3://bucket/faces/a.jpg")     # size limit and special files checked
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ferkit.errors import DataError, FerkitError
from ferkit.imageio import is_image_name, max_bytes_limit
from ferkit.imageio import read_bytes as read_local_bytes

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".y4m", ".wmv")


def is_video_name(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS)


def is_media_name(name: str) -> bool:
    return is_image_name(name) or is_video_name(name)


def is_uri(path: str) -> bool:
    return "://" in path


def filesystem(path: str):
    """(pyarrow filesystem, path inside it) for a local path or a URI."""
    import pyarrow.fs as pafs

    if is_uri(path):
        try:
            return pafs.FileSystem.from_uri(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for bad URIs
            raise FerkitError(f"{path}: cannot open this location ({exc})") from exc
    return pafs.LocalFileSystem(), os.path.abspath(path)


def join_uri(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def expand_sources(inputs: Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Inputs -> (sorted file paths or URIs, [(input, problem)] for those that matched nothing).

    Local inputs behave as in ``ferkit predict`` (files, recursive folders, globs); a URI names a
    file or a folder prefix on its filesystem. Only image and video names are taken from folders.
    """
    import pyarrow.fs as pafs

    from ferkit.runtime.batch import expand_inputs

    paths: list[str] = []
    missing: list[tuple[str, str]] = []
    for item in inputs:
        if not is_uri(item):
            found, bad = expand_inputs([item], accept=is_media_name)
            paths += found
            missing += [(r.path, r.error or "not found") for r in bad]
            continue
        fs, inner = filesystem(item)
        scheme = item.split("://", 1)[0]
        info = fs.get_file_info(inner)
        if info.type == pafs.FileType.File:
            paths.append(item)
        elif info.type == pafs.FileType.Directory:
            selector = pafs.FileSelector(inner, recursive=True)
            names = sorted(
                f.path
                for f in fs.get_file_info(selector)
                if f.type == pafs.FileType.File
                and is_media_name(f.base_name)
                and not f.base_name.startswith(".")
            )
            paths += [f"{scheme}://{n.lstrip('/')}" if scheme != "file" else f"file://{n}" for n in names]
        else:
            missing.append((item, "no such file or folder"))
    return sorted(dict.fromkeys(paths)), missing


def plan_partitions(paths: list[str], previous: list[list[str]] | None, size: int) -> list[list[str]]:
    """Keep earlier partitions as they were; put files not seen before into new partitions."""
    parts = [list(p) for p in previous] if previous else []
    seen = {p for part in parts for p in part}
    new = [p for p in paths if p not in seen]
    parts += [new[i : i + size] for i in range(0, len(new), size)]
    return parts


def read_bytes(path: str) -> bytes:
    """A file's bytes from the local disk or any pyarrow filesystem; errors name the file."""
    if not is_uri(path):
        return read_local_bytes(path)  # special files and the size limit are checked first
    limit = max_bytes_limit()
    try:
        fs, inner = filesystem(path)
        with fs.open_input_stream(inner) as f:
            data = f.read(limit + 1)
    except (OSError, FerkitError) as exc:
        raise DataError(path, f"cannot read file ({exc})") from exc
    if len(data) > limit:
        raise DataError(path, f"file is over the {limit:,}-byte limit")
    return data
