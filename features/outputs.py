"""The output folder: one run at a time, and files that appear as a set.

- :class:`OutputLock` makes a second run into a folder that a live run holds
  fail at once with a message naming the holder. The lock is an ``flock``
  on ``OUT/.lock``: the kernel releases it when its process dies, so a run
  killed with ``kill -9`` never blocks the next one.
- :func:`write_outputs` streams the table from the checkpoint into a
  staging folder (CSV in chunks, Parquet in row groups), writes the data
  dictionary and errors beside it, and ``features.json`` last, with the
  SHA-256 of every other file. It then renames the staging folder to
  ``.committing-*`` and moves the files into place, ``features.json``
  last. A crash in between leaves that folder behind, which
  :func:`verify_outputs` takes as "not a complete set".
- :func:`verify_outputs` is what readers (``classify train``) call: the
  files must be exactly the ones ``features.json`` describes.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import stat
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import pandas as pd

from . import table as T
from .atomic import fsync_dir
from .errors import OutputBusyError, OutputFolderError, OutputMismatchError
from .ownership import remove_listed
from .storage import redact_text

__all__ = ["OutputBusyError", "OutputFolderError", "OutputLock", "OutputMismatchError",
           "verify_outputs", "write_outputs"]

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


def write_outputs(
    out: Path,
    *,
    clips: pd.DataFrame,
    chunks: Iterator[pd.DataFrame],
    empty: pd.DataFrame,
    schema: pd.DataFrame,
    errors: pd.DataFrame,
    formats: Sequence[str],
    meta: dict[str, Any],
    previous: Sequence[str] = (),
) -> tuple[dict[str, Path], int]:
    """Write the output set of a run and move it into place.

    Parameters
    ----------
    out : Path
        Output folder (held with :class:`OutputLock`).
    clips : pd.DataFrame
        Every clip's identifying and metadata columns (decides CSV quoting).
    chunks : iterator of pd.DataFrame
        The table in order, a chunk of rows at a time.
    empty : pd.DataFrame
        A zero-row table with the final columns and dtypes (every chunk is
        cast to them, so both files have one schema).
    schema, errors : pd.DataFrame
        The data dictionary and the error rows.
    formats : sequence of str
        ``csv`` and/or ``parquet``.
    meta : dict
        Content of ``features.json``; ``files`` and ``outputs`` are added.
    previous : sequence of str
        Files of the set ``out`` held before (:func:`features.ownership.claim`):
        those the new set does not replace are deleted, and no others.

    Returns
    -------
    tables : dict
        Format -> path of the written tables.
    n_rows : int
        Rows in the table.
    """
    staging = out / f"{STAGING}{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        n_rows = write_tables(staging, chunks, empty, clips, formats)
        T.write_csv(schema, staging / "features.schema.csv")
        T.write_csv(errors, staging / "errors.csv")
        names = [f"features.{f}" for f in formats] + ["features.schema.csv", "errors.csv"]
        meta = {**meta, "rows": n_rows,
                "outputs": {f: f"features.{f}" for f in formats},
                "files": {n: {"sha256": T.file_sha256(staging / n),
                              "bytes": (staging / n).stat().st_size} for n in names}}
        T.write_json(meta, staging / METADATA)
        commit(out, staging, names, METADATA, previous=previous)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {f: out / f"features.{f}" for f in formats}, n_rows


def write_tables(folder: Path, chunks: Iterator[pd.DataFrame], empty: pd.DataFrame,
                 clips: pd.DataFrame, formats: Sequence[str], *, stem: str = "features") -> int:
    """Stream a table, chunk by chunk, into ``<stem>.csv`` and/or ``<stem>.parquet``.

    Returns the number of rows written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow_schema = _arrow_schema(empty)
    quoting = csv.QUOTE_NONNUMERIC if T.has_carriage_return(clips) else csv.QUOTE_MINIMAL
    n = 0
    with contextlib.ExitStack() as stack:
        writer = None
        if "parquet" in formats:
            writer = stack.enter_context(pq.ParquetWriter(folder / f"{stem}.parquet", arrow_schema))
        text = None
        if "csv" in formats:
            text = stack.enter_context(open(folder / f"{stem}.csv", "w", encoding="utf-8",
                                            newline=""))
        first = True
        for part in _frames(chunks, empty):
            if writer is not None:
                writer.write_table(pa.Table.from_pandas(part, schema=arrow_schema,
                                                        preserve_index=False))
            if text is not None and (len(part) or first):
                T.neutralise_formulas(part).to_csv(text, index=False, header=first,
                                                   lineterminator="\n", quoting=quoting)
                first = False
            n += len(part)
        if text is not None:
            text.flush()
            os.fsync(text.fileno())
    return n


def _frames(chunks: Iterator[pd.DataFrame], empty: pd.DataFrame) -> Iterator[pd.DataFrame]:
    yielded = False
    for part in chunks:
        yield part.astype(empty.dtypes.to_dict())
        yielded = True
    if not yielded:
        yield empty


def _arrow_schema(empty: pd.DataFrame):
    """Arrow schema of the table; text columns are strings even with no rows to show it."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(empty, preserve_index=False)
    for i, field in enumerate(schema):
        if pa.types.is_null(field.type):
            schema = schema.set(i, field.with_type(pa.string()))
    return schema


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
    from .work import injected_faults

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
    crash_after = (injected_faults() or {}).get("commit_crash_after")
    for unit in units:
        if (committing / unit).is_dir():
            _swap_in(committing / unit, out / unit, committing)
    moved = [n for n in names if n.split("/", 1)[0] not in units]
    for i, name in enumerate(moved):
        if crash_after is not None and i >= int(crash_after):
            os.kill(os.getpid(), signal.SIGKILL)  # tests only: a crash between two writes
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


def verify_outputs(path: str | os.PathLike[str], metadata: str = METADATA) -> dict[str, Any]:
    """Check an output folder (or a table in it) against its ``features.json``.

    Parameters
    ----------
    path : path
        The output folder, or one of the files in it.
    metadata : str
        The file that describes the set (``patches.json`` for patches).

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
        if T.file_sha256(f) != facts.get("sha256"):
            raise OutputMismatchError(
                f"{f} is not the file {meta_path} describes (its SHA-256 differs): it was "
                f"changed or comes from another run; {rerun}")
    return meta
