"""Atomic writes: a reader sees the old file (or folder) or the whole new one.

Every writer of the project goes through this module:

- :func:`atomic_path` for one file: write to a temporary name beside it,
  fsync, then :func:`os.replace` it into place;
- :func:`atomic_dir` for a folder (a model bundle, a generated dataset):
  fill a staging folder beside it, then swap it into place;
- :func:`write_text` / :func:`write_bytes` for the common one-call case.

Temporary names start with ``.`` and live in the same folder as the target,
so the final rename never crosses a file system.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_dir", "atomic_path", "file_sha256", "fsync_dir", "write_bytes", "write_json",
           "write_text"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place on success.

    On an exception the temporary file is removed and ``path`` is left as
    it was.

    Parameters
    ----------
    path : str or os.PathLike
        Final file name; its folder is created if needed.

    Yields
    ------
    Path
        Where to write.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp makes the file private (0600); give it the usual umask permissions.
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync_file(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks (provenance of tables and models)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextlib.contextmanager
def atomic_dir(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``directory``.

    ``rename`` cannot replace a non-empty folder, so an existing
    ``directory`` is first moved aside, and moved back if the swap fails;
    it is deleted only once the new folder is in place. On an exception the
    staging folder is removed and ``directory`` is untouched.

    Parameters
    ----------
    directory : str or os.PathLike
        Final folder; its parent is created if needed.

    Yields
    ------
    Path
        The staging folder to fill.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".partial",
                                dir=directory.parent))
    # mkdtemp makes it private (0700); the result is meant to be shared.
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
        if directory.exists():
            os.replace(directory, old)
        try:
            os.replace(tmp, directory)
        except OSError:
            if old.exists():
                os.replace(old, directory)
            raise
        fsync_dir(directory.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (renames into it) to disk, where the OS allows."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    # Without it a power cut right after the rename can leave an empty file.
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
