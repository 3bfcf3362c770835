"""The output folder: one run at a time, and files that appear as a set.

- :class:`OutputLock` makes a second run into a folder that a live run holds
  fail at once with a message naming the holder. The lock is an ``flock``
  on ``OUT/.lock``: the kernel releases it when its process dies, so a run
  killed with ``kill -9`` never blocks the next one.
- A command writes its files into a :func:`staging_folder` inside the
  output folder, then :func:`seal` lists them (SHA-256 and size) in the
  set's description file (``features.json``, ``patches.json``,
  ``run.json``, ``page.json``) and :func:`commit` moves them into place,
  the description last. The staging folder is first renamed to
  ``.committing-*``; a crash in between leaves that folder behind, which
  :func:`verify_outputs` takes as "not a complete set".
- :func:`verify_outputs` is what readers (``classify train``) call: the
  files must be exactly the ones the description lists.

Which folders may be written, and which files deleted, is
:mod:`features.io.ownership`'s rule.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import shutil
import socket
import stat
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

from ..errors import OutputBusyError, OutputFolderError, OutputMismatchError
from ..io.atomic import file_sha256, fsync_dir, write_json
from ..io.ownership import remove_listed
from ..io.storage import redact_text

__all__ = ["OutputBusyError", "OutputFolderError", "OutputLock", "OutputMismatchError", "commit",
           "seal", "staging_folder", "verify_outputs"]

LOCK_NAME = ".lock"
METADATA = "features.json"
#: Rows per Parquet row group and per CSV chunk.
CHUNK_ROWS = 10_000
STAGING = ".staging-"
_COMMITTING = ".committing-"


# ------------------------------------------------------------------------- lock


class OutputLock:
    """Exclusive hold on an output folder for the length of a run.

    Parameters
    ----------
    out : Path
        The output folder (created if needed).

    Attributes
    ----------
    taken_over : dict or None
        Who held the lock before, when it was left behind by a run that died.
    """

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / LOCK_NAME
        self.taken_over: dict[str, Any] | None = None
        self._fd: int | None = None

    def __enter__(self) -> Self:
        self._created = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_lock(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise OutputBusyError(
                f"the output folder {self.path.parent} is in use by another run "
                f"({_describe(holder)}); wait for it to finish, or choose another --out"
            ) from None
        previous = _read_holder(fd)
        if previous and previous.get("running"):
            self.taken_over = previous  # its owner died without releasing it
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "running": True,
                "started": _now(), "command": redact_text(" ".join(sys.argv))}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(mine) + "\n").encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, b'{"running": false}\n', 0)
        os.close(self._fd)  # releases the flock
        self._fd = None
        if self._created:
            # A run that failed before writing anything leaves no trace of itself.
            with contextlib.suppress(OSError):
                if [e.name for e in os.scandir(self.path.parent)] == [LOCK_NAME]:
                    self.path.unlink()
                    self.path.parent.rmdir()

    def message(self) -> str | None:
        """One line for the user when a dead run's lock was taken over, else None."""
        if not self.taken_over:
            return None
        return (f"note: took over the lock of {self.path.parent} left by a run that "
                f"stopped without finishing ({_describe(self.taken_over)})")


def _open_lock(path: Path) -> int:
    """Open (or create) the lock file itself: never through a symlink, never a non-file."""
    refuse = (f"{path} is not a regular file (a symbolic link, a folder or a device); a lock "
              f"is only ever a small file of ours, and writing through it would change another "
              f"file: remove it, then run again")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise OutputFolderError(refuse) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OutputFolderError(refuse)
    return fd


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder.get("pid"):
        return "owner unknown"
    return f"pid {holder['pid']} on {holder.get('host', '?')}, started {holder.get('started', '?')}"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ----------------------------------------------------------------------- writing


def clean_leftovers(out: Path) -> None:
    """Remove staging folders of runs that died (call while holding the lock)."""
    for leftover in [*out.glob(STAGING + "*"), *out.glob(_COMMITTING + "*")]:
        shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A fresh staging folder inside ``out`` (held with :class:`OutputLock`), removed at the end."""
    staging = out / f"{STAGING}{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def seal(out: Path, staging: Path, marker: str, meta: dict[str, Any], *,
         names: Sequence[str] | None = None, previous: Sequence[str] = (),
         units: Sequence[str] = ()) -> dict[str, Any]:
    """Describe the staged files in ``marker`` and move the set into ``out``, ``marker`` last.

    Parameters
    ----------
    out, staging : Path
        The output folder and the staging folder inside it.
    marker : str
        The set's description file (``features.json``, ``run.json``, ...).
    meta : dict
        Its content; ``files`` (relative path -> ``sha256``, ``bytes``) is added.
    names : sequence of str, optional
        The staged files in the order they are moved in (default: every
        file in ``staging``, sorted).
    previous, units
        As :func:`commit`.

    Returns
    -------
    dict
        ``meta`` as written.
    """
    if names is None:
        names = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")
                       if p.is_file())
    meta = {**meta, "files": {n: {"sha256": file_sha256(staging / n),
                                  "bytes": (staging / n).stat().st_size} for n in names}}
    write_json(meta, staging / marker)
    commit(out, staging, names, marker, previous=previous, units=units)
    return meta


def commit(out: Path, staging: Path, names: Sequence[str], metadata: str,
           previous: Sequence[str] = (), units: Sequence[str] = ()) -> None:
    """Move the staged files into ``out``, the ``metadata`` file last.

    ``names`` are relative paths (``confusion/x.csv``); a folder named in
    ``units`` (a model bundle) is swapped in whole instead of file by file.
    Files of the ``previous`` set that the new one does not replace are
    removed (a table of another ``--format``), and nothing else.

    The staging folder is first renamed to ``.committing-*``: while it
    exists, :func:`verify_outputs` refuses the folder, so a crash between
    two renames never passes for a complete set.
    """
    replaced = set(previous)
    clash = [n for n in [*names, metadata] if n not in replaced and n.split("/", 1)[0] not in units
             and ((out / n).exists() or (out / n).is_symlink())]
    clash += [u for u in units if (staging / u).is_dir() and (out / u).exists()
              and not any(n.startswith(f"{u}/") for n in replaced)]
    if clash:
        raise OutputFolderError(
            f"{out} holds {', '.join(clash[:5])}, which this run did not write and would "
            f"replace; move {'it' if len(clash) == 1 else 'them'} away or choose another folder")
    committing = out / f"{_COMMITTING}{staging.name[len(STAGING):]}"
    os.replace(staging, committing)
    fsync_dir(out)
    for unit in units:
        if (committing / unit).is_dir():
            _swap_in(committing / unit, out / unit, committing)
    moved = [n for n in names if n.split("/", 1)[0] not in units]
    for name in moved:
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(committing / name, target)
    remove_listed(out, previous, keep=[*names, metadata])
    os.replace(committing / metadata, out / metadata)
    fsync_dir(out)
    shutil.rmtree(committing, ignore_errors=True)


def _swap_in(new: Path, target: Path, scratch: Path) -> None:
    """Put folder ``new`` where ``target`` is, keeping the old one until the new one is in."""
    old = scratch / f".old-{target.name}"
    if target.is_dir() and not target.is_symlink():
        os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError:
        if old.exists():
            os.replace(old, target)
        raise


# --------------------------------------------------------------------- verifying


def verify_outputs(path: str | os.PathLike[str], metadata: str = METADATA, *,
                   meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check an output folder (or a table in it) against its ``features.json``.

    Parameters
    ----------
    path : path
        The output folder, or one of the files in it.
    metadata : str
        The file that describes the set (``patches.json`` for patches).
    meta : dict, optional
        Its content, when the caller has already read it (it is not read again).

    Returns
    -------
    dict
        The content of ``features.json``.

    Raises
    ------
    OutputMismatchError
        ``features.json`` is missing or unreadable, a write was interrupted,
        or a file is missing or differs from the SHA-256 recorded for it.
    """
    folder = Path(path)
    if not folder.is_dir():
        folder = folder.parent
    rerun = "run the same 'features extract' command again to rewrite the set"
    if any(folder.glob(_COMMITTING + "*")):
        raise OutputMismatchError(
            f"the outputs in {folder} were being replaced when a run stopped, so they are "
            f"not a complete set; {rerun}")
    meta_path = folder / metadata
    try:
        if meta is None:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputMismatchError(f"{meta_path} is missing, so the table cannot be checked; "
                                  f"{rerun}") from None
    except (OSError, ValueError) as exc:
        raise OutputMismatchError(f"{meta_path} cannot be read ({exc}); {rerun}") from None
    for name, facts in (meta.get("files") or {}).items():
        f = folder / name
        if not f.is_file():
            raise OutputMismatchError(f"{f} is missing but {meta_path} lists it; {rerun}")
        if file_sha256(f) != facts.get("sha256"):
            raise OutputMismatchError(
                f"{f} is not the file {meta_path} describes (its SHA-256 differs): it was "
                f"changed or comes from another run; {rerun}")
    return meta
