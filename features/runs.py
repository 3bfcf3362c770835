"""What ``features extract`` and ``features patches`` share: a dataset's run into an output set.

Both commands list a dataset, claim and lock their output folder, keep an
up-to-date set as it is, run the unfinished clips through the engine
(:mod:`features.engine`) with their analyser (:mod:`features.analysers`),
and write a set whose description records the same provenance. The pieces
are here, once: :func:`executing` (the executor, started early so workers
start while the dataset is listed), :func:`claimed` (the folder rules and
the lock), :func:`dataset_key` / :func:`same_run` (is the folder already
this very run?), the exit status and the failure summary.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .engine.checkpoint import clips_key
from .engine.executors import Executor, open_executor
from .engine.options import RunOptions
from .engine.outputs import OutputLock, clean_leftovers
from .engine.versions import ARITHMETIC, library_versions
from .io.ownership import claim
from .io.records import STAGES, ErrorRecord
from .table import read_csv

__all__ = ["EXIT_NO_CLIPS", "claimed", "created_now", "dataset_key", "describe_run", "executing", "exit_code",
           "failure_lines", "local_root", "run_versions", "same_run", "saved_errors"]

#: Exit status when not a single clip could be analysed: something systemic
#: (a missing codec, a wrong option, an unreachable store), not bad luck.
EXIT_NO_CLIPS = 4
#: Libraries recorded in a set's description besides the arithmetic's: the writers'.
_RECORDED = ("librosa", "pandas", "pyarrow", "joblib", "distributed")


def exit_code(n_ok: int, n_total: int, n_failed: int, strict: bool) -> int:
    """The command's exit status: 4 when no clip succeeded (something systemic),
    3 with ``strict`` when any failed, else 0."""
    if n_ok == 0 and n_total > 0:
        return EXIT_NO_CLIPS
    return 3 if strict and n_failed else 0


def describe_run(dataset: Any, executor: Executor, options: RunOptions, *, n_items: int, n_reused: int,
                 n_clip_errors: int, errors: Sequence[Any], start: float) -> dict[str, Any]:
    """What every output set's description says of its run: the dataset, the counts, the runner.

    ``errors`` are all of the set's error rows (the dataset's listing
    problems first); ``n_clip_errors`` of them are clips that failed.
    """
    return {
        "root": dataset.shown_root,
        "layout": dataset.layout,
        "manifest": dataset.shown_manifest,
        "versions": run_versions(),
        "clips": {
            "total": n_items + len(dataset.errors),
            "ok": n_items - n_clip_errors,
            "failed": len(errors),
            "reused_from_checkpoint": n_reused,
            "failed_by_stage": {s: sum(e.stage == s for e in errors) for s in STAGES},
            "failed_by_reason": dict(collections.Counter(e.reason for e in errors).most_common()),
        },
        "warnings": dataset.notes.get("warnings", []),
        "dataset_notes": dataset.notes.get("info", []),
        "wall_seconds": round(time.perf_counter() - start, 3),
        "jobs": options.workers,
        "runner": executor.describe(),
        "created": created_now(),
    }


def failure_lines(errors: Sequence[Any], limit: int = 8) -> list[str]:
    """Failures counted by reason, most common first (``412 clips: file does not exist``).

    Examples
    --------
    >>> from features.io.records import ErrorRecord
    >>> e = ErrorRecord("a.m4a", None, "load", "AudioReadError", "...", "cannot decode .m4a files")
    >>> failure_lines([e, e])
    ['2 clips: cannot decode .m4a files (stage load)']
    """
    counts = collections.Counter((e.reason or e.error_type, e.stage) for e in errors)
    ranked = counts.most_common()
    lines = [f"{n} clip{'s' if n != 1 else ''}: {reason} (stage {stage})"
             for (reason, stage), n in ranked[:limit]]
    if len(ranked) > limit:
        rest = sum(n for _, n in ranked[limit:])
        lines.append(f"{rest} more in {len(ranked) - limit} other reasons (see errors.csv)")
    return lines


def local_root(dataset: Any) -> Path | None:
    """The dataset's root folder, None for a URL (no output folder can lie inside one)."""
    return None if isinstance(dataset.root, str) else Path(dataset.root)


def run_versions() -> dict[str, str]:
    """Versions recorded in a set's description: the arithmetic's libraries and the writers'."""
    return {**library_versions((*ARITHMETIC, *_RECORDED)),
            "python": platform.python_version()}


def created_now() -> str:
    """The current UTC time as a set's description records it."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def dataset_key(dataset: Any, stamps: Sequence[tuple[int, str]], extra: Sequence[str] = ()) -> str:
    """Hash of everything the outputs are made of but the parameters.

    The clip table (paths, labels, folds, metadata), its metadata errors,
    the layout and root as stored (a rotated password or token is the same
    data), each file's size and change stamp, and those of ``extra`` files
    (the background noise that patches also hold).
    """
    paths = dataset.clips["path"].astype(str).tolist()
    h = hashlib.sha256(clips_key(paths, stamps).encode())
    h.update(dataset.clips.to_csv(index=False).encode("utf-8", "surrogateescape"))
    h.update(repr([dataclasses.astuple(e) for e in dataset.errors]).encode("utf-8", "surrogateescape"))
    h.update(f"{dataset.layout}\n{dataset.shown_root}".encode("utf-8", "surrogateescape"))
    key = h.hexdigest()[:16]
    if extra:
        key = f"{key}-{clips_key(list(extra), dataset.stamps(list(extra)))}"
    return key


def same_run(meta: dict[str, Any], param_key: str, key: str) -> bool:
    """Whether the set described by ``meta`` came from these parameters, this dataset and this version."""
    return (meta.get("param_key") == param_key and meta.get("dataset_key") == key
            and meta.get("versions", {}).get("soundfeatures") == run_versions()["soundfeatures"])


def saved_errors(out: Path) -> list[Any]:
    """The error rows of the ``errors.csv`` in an output folder, as ErrorRecords."""

    rows = read_csv(out / "errors.csv", dtype=str, keep_default_na=False)
    return [ErrorRecord(r["path"], int(r["row"]) if r["row"] else None, r["stage"],
                        r["error_type"], r["message"], r["reason"])
            for r in rows.to_dict("records")]


@contextlib.contextmanager
def executing(analyser: Any, options: RunOptions) -> Iterator[Executor]:
    """The executor of ``options`` running ``analyser``, closed (workers and all) at the end."""
    progress_dir = tempfile.mkdtemp(prefix="features-running-")
    executor = open_executor(analyser, options, progress_dir)
    try:
        yield executor
    finally:
        executor.close()
        shutil.rmtree(progress_dir, ignore_errors=True)


@contextlib.contextmanager
def claimed(out: Path, marker: str, names: Sequence[str], options: RunOptions, dataset: Any,
            command: str) -> Iterator[tuple[list[str], list[str]]]:
    """Claim ``out`` by the folder rules and hold its lock; yields (previous set's files, notes)."""
    previous = claim(out, marker, names, force=options.force, dataset_root=local_root(dataset),
                     command=command)
    with OutputLock(out) as lock:
        clean_leftovers(out)
        yield previous, [m for m in [lock.message()] if m]
