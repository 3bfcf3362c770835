"""Run the feature extractor over a dataset: parallel, resumable, fault-isolated.

:func:`extract_dataset` discovers the clips, takes the output folder's lock,
and hands the unfinished clips to the driver (:mod:`features.runner`),
which runs them in batches on an executor: local worker processes, or a
Dask cluster (:mod:`features.executors`). Every finished batch is saved
under ``OUT/.checkpoint/`` at once, so a run stopped by Ctrl-C, ``kill -9``
or a lost cluster resumes with the same command; the checkpoint is keyed by
the feature parameters and the clip list, so changing either starts afresh.
A clip that cannot be read, crashes its worker or hangs becomes one row of
``errors.csv``; the run goes on. The outputs are streamed from the
checkpoint and appear together (:mod:`features.outputs`); the table is in
dataset order and byte-identical whatever the backend and worker count.

:func:`extract_files` computes features of loose files (used by predict).
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UsageError
from .ownership import claim
from .params import FeatureParams

# pandas and the table writers are imported inside the functions that run in
# the parent process: worker processes then start without them (faster start-up).
if TYPE_CHECKING:
    import pandas as pd

BACKENDS = ("local", "dask")
#: Exit status when not a single clip could be analysed: something systemic
#: (a missing codec, a wrong option, an unreachable store), not bad luck.
EXIT_NO_CLIPS = 4

@dataclasses.dataclass(frozen=True)
class ExtractResult:
    """What :func:`extract_dataset` wrote and how it went.

    Attributes
    ----------
    out : Path
        Output folder.
    tables : dict of str -> Path
        Written tables by format (``csv``, ``parquet``).
    schema, metadata, errors_csv : Path
        ``features.schema.csv``, ``features.json`` and ``errors.csv``.
    n_total, n_ok, n_failed : int
        Clips (plus unusable metadata rows) seen, in the table, in errors.csv
        (a clip cut into windows counts once).
    n_reused : int
        Clips taken from the checkpoint of an interrupted run.
    errors : list of ErrorRecord
        Everything in errors.csv.
    wall_seconds : float
        Wall time of the whole call.
    strict : bool
        Whether any failure should fail the run (see :attr:`exit_code`).
    notes : list of str
        Things the user should know (a stale lock taken over).
    up_to_date : bool
        True when ``out`` already held these outputs and nothing was computed.
    n_rows : int or None
        Rows of the table, when clips were cut into windows (``segment``).
    """

    out: Path
    tables: dict[str, Path]
    schema: Path
    metadata: Path
    errors_csv: Path
    n_total: int
    n_ok: int
    n_failed: int
    n_reused: int
    errors: list[Any]
    wall_seconds: float
    strict: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)
    up_to_date: bool = False
    n_rows: int | None = None

    @property
    def table(self) -> Path:
        """The first written table (CSV if written)."""
        return next(iter(self.tables.values()))

    @property
    def exit_code(self) -> int:
        """0; 4 when no clip succeeded; 3 when ``strict`` and any clip failed."""
        return exit_code(self.n_ok, self.n_total, self.n_failed, self.strict)

    def summary(self) -> str:
        """Counts, where the table and the errors are, and the failures by reason."""
        windows = "" if self.n_rows is None else f" ({self.n_rows} windows)"
        lines = [(f"{self.n_ok} clips ok{windows}, {self.n_failed} failed; "
                 f"table: {self.table}; errors: {self.errors_csv}")]
        lines += [f"  {line}" for line in failure_lines(self.errors)]
        if self.n_ok == 0 and self.n_total > 0:
            lines.append("no clip could be analysed: fix the cause above, then run again")
        return "\n".join(lines)


def exit_code(n_ok: int, n_total: int, n_failed: int, strict: bool) -> int:
    """The command's exit status: 4 when no clip succeeded (something systemic),
    3 with ``strict`` when any failed, else 0."""
    if n_ok == 0 and n_total > 0:
        return EXIT_NO_CLIPS
    return 3 if strict and n_failed else 0


def failure_lines(errors: Sequence[Any], limit: int = 8) -> list[str]:
    """Failures counted by reason, most common first (``412 clips: file does not exist``).

    Examples
    --------
    >>> from features.datasets import ErrorRecord
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


def _resolve_jobs(jobs: int | None) -> int:
    if jobs is None or jobs == 0:
        from joblib import cpu_count

        return max(1, cpu_count())
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise UsageError(f"jobs={jobs!r} must be 0 (all cores) or a positive number of workers")
    return jobs


def _check_batch_size(batch_size: int | None) -> None:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise UsageError(f"batch_size={batch_size!r} must be a positive integer")


def _check_clip_timeout(clip_timeout: float | None) -> None:
    if clip_timeout is not None and not (0 < clip_timeout < float("inf")):
        raise UsageError(f"clip_timeout={clip_timeout!r} must be a positive number of seconds")


def _versions() -> dict[str, str]:
    """Versions recorded in features.json: the arithmetic's libraries and the writers'."""
    from .runner import library_versions

    extra = ("librosa", "pandas", "pyarrow", "joblib", "distributed")
    return {**library_versions(extra), "python": platform.python_version()}


def _check_columns(clips: pd.DataFrame, feature_names: Sequence[str]) -> None:
    from . import table as _table

    taken = set(_table.AUDIO_COLUMNS) | set(feature_names)
    clash = [c for c in clips.columns[len(_table.IDENTIFIER_COLUMNS):] if c in taken]
    if clash:
        raise UsageError(
            f"metadata column(s) {clash} clash with columns the extractor adds; "
            "rename them in the metadata/manifest CSV"
        )


def extract_dataset(
    root: str | os.PathLike,
    out: str | os.PathLike,
    params: FeatureParams | None = None,
    *,
    layout: str | None = None,
    manifest: str | os.PathLike | None = None,
    jobs: int | None = 0,
    formats: Sequence[str] | str = ("csv", "parquet"),
    strict: bool = False,
    quiet: bool = False,
    batch_size: int | None = None,
    backend: str = "local",
    scheduler: str | None = None,
    clip_timeout: float | None = None,
    force: bool = False,
) -> ExtractResult:
    """Extract one row of features per clip of a dataset and write the outputs.

    Writes, in ``out``: ``features.csv`` and/or ``features.parquet``,
    ``features.schema.csv`` (data dictionary), ``errors.csv`` (always;
    header only when clean) and, last, ``features.json`` (provenance, and
    the SHA-256 of every other file).

    Parameters
    ----------
    root : path or URL
        Dataset folder, or an fsspec URL such as ``s3://bucket/prefix``.
    out : path
        Output folder (created if needed; one run at a time).
    params : FeatureParams, optional
        Feature parameters (default ``FeatureParams()``).
    layout : str, optional
        ``urbansound8k``, ``gtzan``, ``folders`` or ``manifest``; None detects it.
    manifest : path or URL, optional
        Manifest CSV (``path,label[,fold,group,...]``) for the manifest layout.
    jobs : int, optional
        Worker processes of the local backend; 0 or None uses every core.
    formats : sequence of str or str
        Table formats, ``("csv", "parquet")`` or ``"csv,parquet"``.
    strict : bool
        If True, :attr:`ExtractResult.exit_code` is 3 when any clip failed
        (the outputs are written all the same).
    quiet : bool
        Hide the progress bar (it is also hidden when stderr is not a terminal).
    batch_size : int, optional
        Clips per task (default: sized from the clip count and the workers).
    backend : {"local", "dask"}
        Where batches run: worker processes on this machine, or a Dask cluster.
    scheduler : str, optional
        For ``backend="dask"``: ``tcp://host:port`` of a running scheduler,
        or ``local:N`` for N worker processes started for this run.
    clip_timeout : float, optional
        Seconds a clip may take, plus 2 s per MB of file, before it counts
        as hung (default 60).
    force : bool
        Compute everything again even when ``out`` already holds the
        outputs of these parameters on this very dataset (otherwise they
        are kept, and the call takes a second).

    Returns
    -------
    ExtractResult

    Raises
    ------
    UsageError, DatasetLayoutError
        Bad option values; no recognisable dataset at ``root``.
    OutputBusyError
        Another live run holds ``out``.
    ExtractionInterrupted
        On Ctrl-C; finished batches stay in ``out/.checkpoint`` for the next run.

    Examples
    --------
    >>> from features.demo import make_demo_dataset  # doctest: +SKIP
    >>> res = extract_dataset(make_demo_dataset("/tmp/demo", n_clips=20), "/tmp/out")  # doctest: +SKIP
    >>> print(res.summary())  # doctest: +SKIP
    20 clips ok, 0 failed; table: /tmp/out/features.csv; errors: /tmp/out/errors.csv
    """
    from . import outputs
    from .executors import open_executor

    start = time.perf_counter()
    params = FeatureParams() if params is None else params
    if not isinstance(params, FeatureParams):
        raise UsageError(f"params={params!r} must be a FeatureParams")
    from . import table as _table

    formats = _table.check_formats(formats)
    jobs = _resolve_jobs(jobs)
    _check_batch_size(batch_size)
    _check_clip_timeout(clip_timeout)
    if backend not in BACKENDS:
        raise UsageError(f"backend={backend!r} is not one of: {', '.join(BACKENDS)}")
    out = Path(out)
    progress_dir = tempfile.mkdtemp(prefix="features-running-")
    # Workers start while the dataset is being listed.
    executor = open_executor(params, backend, jobs, scheduler, progress_dir)
    try:
        from .datasets import discover

        dataset = discover(root, layout=layout, manifest=manifest)
        previous = claim(out, outputs.METADATA, output_names(formats), force=force,
                         dataset_root=local_root(dataset), command="features extract")
        with outputs.OutputLock(out) as lock:
            outputs.clean_leftovers(out)
            return _extract(dataset, out, params, executor, start=start, jobs=jobs,
                            formats=formats, strict=strict, quiet=quiet, batch_size=batch_size,
                            clip_timeout=clip_timeout, force=force, previous=previous,
                            notes=[m for m in [lock.message()] if m])
    finally:
        executor.close()
        shutil.rmtree(progress_dir, ignore_errors=True)


def output_names(formats: Sequence[str]) -> list[str]:
    """The files of a feature output set: the tables, the dictionary, the errors, features.json."""
    return [*(f"features.{f}" for f in formats), "features.schema.csv", "errors.csv",
            "features.json"]


def local_root(dataset: Any) -> Path | None:
    """The dataset's root folder, None for a URL (no output folder can lie inside one)."""
    return None if isinstance(dataset.root, str) else Path(dataset.root)


def _extract(dataset, out: Path, params: FeatureParams, executor, *, start: float, jobs: int,
             formats, strict: bool, quiet: bool, batch_size, clip_timeout, force: bool,
             previous: Sequence[str], notes: list[str]) -> ExtractResult:
    from . import outputs
    from . import table as _table
    from .checkpoint import clips_key
    from .compute import feature_columns
    from .datasets import ErrorRecord
    from .runner import run_dataset

    names = list(feature_columns(params))
    _check_columns(dataset.clips, names)
    paths = dataset.clips["path"].astype(str).tolist()
    stamps = dataset.stamps()
    dkey = _dataset_key(dataset, clips_key(paths, stamps))
    if not force:
        current = _up_to_date(out, params, dkey, formats, start, strict, notes)
        if current is not None:
            return current
    checkpoint, n_items, n_reused = run_dataset(
        dataset, out, params, executor, n_features=len(names), kind="features", quiet=quiet,
        batch_size=batch_size, clip_timeout=clip_timeout, stamps=stamps)

    clip_errors = [ErrorRecord(*fields) for _, fields in checkpoint.errors()]
    errors = [*dataset.errors, *clip_errors]
    n_ok = n_items - len(clip_errors)
    clips = dataset.clips
    if params.segment is not None:
        # Windows of a clip share its group, so that no split separates them.
        clips = clips.assign(group=clips["group"].where(clips["group"] != "", clips["path"]))
    clips = _table.typed_metadata(clips)
    windowed = params.segment is not None
    empty = _table.build_table(
        clips.iloc[:0], _table.empty_audio(), np.empty((0, len(names))), names, params.preset,
        _table.empty_segments() if windowed else None)

    def chunks() -> Iterator[pd.DataFrame]:
        import pandas as pd

        for rows in checkpoint.iter_rows(outputs.CHUNK_ROWS):
            audio = pd.DataFrame({c: getattr(rows, c) for c in _table.AUDIO_COLUMNS})
            segments = (pd.DataFrame({c: getattr(rows, c) for c in _table.SEGMENT_COLUMNS})
                        if windowed else None)
            yield _table.build_table(clips.iloc[rows.indices], audio, rows.features, names,
                                     params.preset, segments)

    wall = time.perf_counter() - start
    n_new = n_items - n_reused
    meta = {
        "params": params.to_dict(),
        "param_key": params.key(),
        "root": dataset.shown_root,
        "layout": dataset.layout,
        "manifest": dataset.shown_manifest,
        "versions": _versions(),
        "clips": {
            "total": n_items + len(dataset.errors),
            "ok": n_ok,
            "failed": len(errors),
            "reused_from_checkpoint": n_reused,
            "failed_by_stage": {s: sum(e.stage == s for e in errors) for s in _stages()},
            "failed_by_reason": dict(collections.Counter(e.reason for e in errors).most_common()),
        },
        "n_features": len(names),
        "warnings": dataset.notes.get("warnings", []),
        **({"background_noise": dataset.notes["background_noise"]}
           if "background_noise" in dataset.notes else {}),
        "segment": None if params.segment is None else {
            "seconds": params.segment, "hop": params.segment_hop, "last": params.segment_last},
        "dataset_key": dkey,
        "wall_seconds": round(wall, 3),
        "clips_per_second": round(n_new / wall, 2) if wall > 0 else None,
        "jobs": jobs,
        "runner": executor.describe(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
    }
    written, n_rows = outputs.write_outputs(
        out, clips=clips, chunks=chunks(), empty=empty,
        schema=_table.build_schema(empty, params, layout=dataset.layout),
        errors=_table.errors_frame(errors), formats=formats, meta=meta, previous=previous,
    )
    checkpoint.remove()
    return ExtractResult(
        out=out, tables=written, schema=out / "features.schema.csv",
        metadata=out / outputs.METADATA, errors_csv=out / "errors.csv",
        n_total=meta["clips"]["total"], n_ok=n_ok, n_failed=len(errors),
        n_reused=n_reused, errors=errors, wall_seconds=time.perf_counter() - start,
        strict=strict, notes=[*notes, *(f"warning: {w}" for w in meta["warnings"])],
        n_rows=None if params.segment is None else n_rows,
    )


def _dataset_key(dataset: Any, clips_key: str) -> str:
    """Hash of everything the outputs are made of but the parameters: the clip
    table (paths, labels, folds, metadata), its metadata errors, and each file's
    size and change stamp (``clips_key``)."""
    import hashlib

    h = hashlib.sha256(clips_key.encode())
    h.update(dataset.clips.to_csv(index=False).encode("utf-8", "surrogateescape"))
    h.update(repr([dataclasses.astuple(e) for e in dataset.errors]).encode("utf-8", "surrogateescape"))
    # The root as stored: a rotated password or token is the same data.
    h.update(f"{dataset.layout}\n{dataset.shown_root}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def saved_errors(out: Path) -> list[Any]:
    """The error rows of the ``errors.csv`` in an output folder, as ErrorRecords."""
    from . import table as _table
    from .datasets import ErrorRecord

    rows = _table.read_csv(out / "errors.csv", dtype=str, keep_default_na=False)
    return [ErrorRecord(r["path"], int(r["row"]) if r["row"] else None, r["stage"],
                        r["error_type"], r["message"], r["reason"])
            for r in rows.to_dict("records")]


def same_run(meta: dict[str, Any], params: Any, dataset_key: str) -> bool:
    """Whether the outputs described by ``meta`` came from these parameters, this dataset and this version."""
    return (meta.get("param_key") == params.key() and meta.get("dataset_key") == dataset_key
            and meta.get("versions", {}).get("soundfeatures") == _versions()["soundfeatures"])


def _up_to_date(out: Path, params: FeatureParams, dataset_key: str, formats: Sequence[str],
                start: float, strict: bool, notes: list[str]) -> ExtractResult | None:
    """The result of the run that already wrote ``out``, if it is this very run."""
    from . import outputs
    from .errors import OutputMismatchError

    try:
        meta = outputs.verify_outputs(out)
    except OutputMismatchError:
        return None
    if not same_run(meta, params, dataset_key) or list(meta.get("outputs", {})) != list(formats):
        return None
    errors = saved_errors(out)
    clips = meta["clips"]
    return ExtractResult(
        out=out, tables={f: out / name for f, name in meta["outputs"].items()},
        schema=out / "features.schema.csv", metadata=out / outputs.METADATA,
        errors_csv=out / "errors.csv", n_total=clips["total"], n_ok=clips["ok"],
        n_failed=clips["failed"], n_reused=clips["total"], errors=errors,
        wall_seconds=time.perf_counter() - start, strict=strict,
        notes=[*notes, (f"up to date: {out} already holds these features of this dataset "
                       f"(--force computes them again)")], up_to_date=True,
        n_rows=meta.get("rows") if meta.get("segment") else None,
    )


def _stages() -> tuple[str, ...]:
    from .datasets import STAGES

    return STAGES


def extract_files(
    paths: Iterable[str | os.PathLike], params: FeatureParams | None = None, *, jobs: int | None = 1
) -> tuple[pd.DataFrame, list[Any]]:
    """Features of loose audio files (no dataset, no output folder, no bar).

    Each file is analysed in a worker process, so a file that crashes the
    decoder becomes an error, not the end of the caller.

    Parameters
    ----------
    paths : iterable of path
        Audio files; relative paths are relative to the current folder.
    params : FeatureParams, optional
        Feature parameters (default ``FeatureParams()``).
    jobs : int, optional
        Worker processes (0 or None: every core).

    Returns
    -------
    table : pd.DataFrame [shape=(n_rows, 1 + n_features)]
        Column ``path`` (as given) then the feature columns, one row per
        readable file, in input order; with ``params.segment``, one row per
        window, and ``segment, segment_start_s, segment_end_s`` after ``path``.
    errors : list of ErrorRecord
        One per file that could not be read or analysed.

    Examples
    --------
    >>> df, errors = extract_files(["dog.wav"])  # doctest: +SKIP
    """
    import pandas as pd

    from .compute import feature_columns
    from .datasets import ErrorRecord
    from .runner import run_files
    from .table import SEGMENT_COLUMNS

    params = FeatureParams() if params is None else params
    if not isinstance(params, FeatureParams):
        raise UsageError(f"params={params!r} must be a FeatureParams")
    names = list(feature_columns(params))
    shown = [str(p) for p in paths]
    parts, failed = run_files(shown, params, n_features=len(names), jobs=_resolve_jobs(jobs))
    errors = [ErrorRecord(*fields) for fields in failed]
    indices = np.concatenate([p.indices for p in parts]) if parts else np.empty(0, np.int64)
    features = np.vstack([p.features for p in parts]) if parts else np.empty((0, len(names)))
    df = pd.DataFrame(features, columns=names)
    if params.segment is not None:
        for position, column in enumerate(SEGMENT_COLUMNS, start=0):
            values = np.concatenate([getattr(p, column) for p in parts]) if parts else []
            df.insert(position, column, values)
    df.insert(0, "path", [shown[i] for i in indices])
    return df, errors
