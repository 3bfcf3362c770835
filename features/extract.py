"""Run the feature extractor over a dataset: parallel, resumable, fault-isolated.

:func:`extract_dataset` discovers the clips, takes the output folder's lock,
and hands the unfinished clips to the driver (:mod:`features.engine.runner`),
which runs them in batches on an executor: local worker processes, or a
Dask cluster (:mod:`features.engine.executors`). Every finished batch is saved
under ``OUT/.checkpoint/`` at once, so a run stopped by Ctrl-C, ``kill -9``
or a lost cluster resumes with the same command; the checkpoint is keyed by
the feature parameters and the clip list, so changing either starts afresh.
A clip that cannot be read, crashes its worker or hangs becomes one row of
``errors.csv``; the run goes on. The outputs are streamed from the
checkpoint and appear together (:mod:`features.engine.outputs`); the table is in
dataset order and byte-identical whatever the backend and worker count.

:func:`extract_files` computes features of loose files (used by predict).
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import table as _table
from .analysers import FeatureAnalyser
from .compute import feature_columns, frame_names
from .engine.options import RunOptions
from .engine.outputs import seal, staging_folder, verify_outputs
from .engine.runner import run_dataset, run_files
from .errors import OutputMismatchError, UsageError
from .frames import FRAMES_CHECKPOINT, FRAMES_DIR, clip_file, write_parts
from .io.datasets import discover
from .io.records import ErrorRecord
from .params import FeatureParams
from .runs import (
    claimed,
    dataset_key,
    describe_run,
    executing,
    exit_code,
    failure_lines,
    same_run,
    saved_errors,
)
from .schema import build_schema

#: The description file of a feature output set.
METADATA = "features.json"
#: Rows per Parquet row group and per CSV chunk.
CHUNK_ROWS = 10_000


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
    frames : list of Path
        With ``frames``: the parts of the frame-level output (``frames/part-*.parquet``).
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
    frames: list[Path] = dataclasses.field(default_factory=list)

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


def output_names(formats: Sequence[str]) -> list[str]:
    """The files of a feature output set: the tables, the dictionary, the errors, features.json."""
    return [*(f"features.{f}" for f in formats), "features.schema.csv", "errors.csv", METADATA]


def _check_columns(clips: pd.DataFrame, feature_names: Sequence[str]) -> None:
    taken = set(_table.AUDIO_COLUMNS) | set(feature_names)
    clash = [c for c in clips.columns[len(_table.IDENTIFIER_COLUMNS):] if c in taken]
    if clash:
        raise UsageError(
            f"metadata column(s) {clash} clash with columns the extractor adds; "
            "rename them in the metadata/manifest CSV"
        )


def extract_dataset(
    root: str | Path,
    out: str | Path,
    params: FeatureParams | None = None,
    *,
    layout: str | None = None,
    manifest: str | Path | None = None,
    formats: Sequence[str] | str = ("csv", "parquet"),
    frames: bool = False,
    options: RunOptions | None = None,
    **run: Any,
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
    formats : sequence of str or str
        Table formats, ``("csv", "parquet")`` or ``"csv,parquet"``.
    frames : bool
        Also write the frame-level values before summarising, as the Parquet
        parts ``frames/part-*.parquet`` of the set (:mod:`features.frames`).
    options : RunOptions, optional
        How the run runs (workers, backend, batches, time limits, strict,
        force, quiet: :class:`features.engine.options.RunOptions`); or give
        its fields as keywords (``jobs=2, quiet=True``). With ``force`` the
        features are computed again even when ``out`` already holds those of
        these parameters on this very dataset (otherwise they are kept, and
        the call takes a second).

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
    Usage::

        from features.demo import make_demo_dataset
        res = extract_dataset(make_demo_dataset("/tmp/demo", n_clips=20), "/tmp/out")
        print(res.summary())
        # -> 20 clips ok, 0 failed; table: /tmp/out/features.csv; errors: /tmp/out/errors.csv
    """
    start = time.perf_counter()
    params = FeatureParams() if params is None else params
    if not isinstance(params, FeatureParams):
        raise UsageError(f"params={params!r} must be a FeatureParams")
    formats = _table.check_formats(formats)
    options = options or RunOptions(**run)
    out = Path(out)
    if frames and params.segment is not None:
        raise UsageError("--frames writes the frames of whole clips; it cannot be combined with "
                         "--segment (the frames already say where in the clip each value is)")
    frames_dir = str((out / FRAMES_CHECKPOINT / params.key()[:16]).resolve()) if frames else None
    analyser = FeatureAnalyser(params, frames_dir)
    names = [*output_names(formats)[:-1], *([f"{FRAMES_DIR}/part-00000.parquet"] if frames else []), METADATA]
    # Workers start while the dataset is being listed.
    with executing(analyser, options) as executor:
        dataset = discover(root, layout=layout, manifest=manifest)
        with claimed(out, METADATA, names, options, dataset,
                     "features extract") as (previous, notes):
            return _extract(dataset, out, params, executor, options, start=start,
                            formats=formats, previous=previous, notes=notes, analyser=analyser)


def _extract(dataset, out: Path, params: FeatureParams, executor, options: RunOptions, *,
             start: float, formats, previous: Sequence[str], notes: list[str],
             analyser: FeatureAnalyser) -> ExtractResult:
    names = list(feature_columns(params))
    _check_columns(dataset.clips, names)
    stamps = dataset.stamps()
    dkey = dataset_key(dataset, stamps)
    if not options.force:
        current = _up_to_date(out, params, dkey, formats, start, options.strict, notes,
                              frames=analyser.frames is not None)
        if current is not None:
            return current
    checkpoint, n_items, n_reused = run_dataset(dataset, out, analyser, executor,
                                                kind="features", options=options, stamps=stamps)

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
        for rows in checkpoint.iter_rows(CHUNK_ROWS):
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
        **describe_run(dataset, executor, options, n_items=n_items, n_reused=n_reused,
                       n_clip_errors=len(clip_errors), errors=errors, start=start),
        "n_features": len(names),
        **({"background_noise": dataset.notes["background_noise"]}
           if "background_noise" in dataset.notes else {}),
        "segment": None if params.segment is None else {
            "seconds": params.segment, "hop": params.segment_hop, "last": params.segment_last},
        "dataset_key": dkey,
        "clips_per_second": round(n_new / wall, 2) if wall > 0 else None,
    }
    with staging_folder(out) as staging:
        n_rows = _table.write_tables(staging, chunks(), empty, clips, formats)
        _table.write_csv(build_schema(empty, params, layout=dataset.layout),
                         staging / "features.schema.csv")
        _table.write_csv(_table.errors_frame(errors), staging / "errors.csv")
        parts = []
        if analyser.frames is not None:
            shown = dataset.clips["path"].astype(str).tolist()
            labels, groups = clips["label"].astype(str).tolist(), clips["group"].astype(str).tolist()
            folds = [None if pd.isna(f) else int(f) for f in clips["fold"]]

            def clip_frames() -> Iterator[tuple[dict[str, Any], Path]]:
                for rows in checkpoint.iter_rows(CHUNK_ROWS):
                    for i in rows.indices:
                        yield ({"path": shown[i], "label": labels[i], "fold": folds[i], "group": groups[i]},
                               clip_file(analyser.frames, shown[i]))

            parts = write_parts(staging, clip_frames(), frame_names(params))
            meta["frames"] = {"parts": parts, "columns": ["path", "label", "fold", "group", "frame", "time_s",
                                                          *frame_names(params)],
                              "seconds_per_frame": params.hop_length / params.sr}
        seal(out, staging, METADATA,
             {**meta, "rows": n_rows, "outputs": {f: f"features.{f}" for f in formats}},
             names=[*output_names(formats)[:-1], *parts], previous=previous)
    if analyser.frames is not None:
        shutil.rmtree(out / FRAMES_CHECKPOINT, ignore_errors=True)
    checkpoint.remove()
    return ExtractResult(
        out=out, tables={f: out / f"features.{f}" for f in formats},
        schema=out / "features.schema.csv", metadata=out / METADATA, errors_csv=out / "errors.csv",
        n_total=meta["clips"]["total"], n_ok=n_ok, n_failed=len(errors),
        n_reused=n_reused, errors=errors, wall_seconds=time.perf_counter() - start,
        strict=options.strict, notes=[*notes, *(f"note: {n}" for n in meta["dataset_notes"]),
                                      *(f"warning: {w}" for w in meta["warnings"])],
        n_rows=None if params.segment is None else n_rows, frames=[out / p for p in parts],
    )


def _up_to_date(out: Path, params: FeatureParams, key: str, formats: Sequence[str],
                start: float, strict: bool, notes: list[str], *, frames: bool) -> ExtractResult | None:
    """The result of the run that already wrote ``out``, if it is this very run."""
    try:
        meta = verify_outputs(out)
    except OutputMismatchError:
        return None
    if not same_run(meta, params.key(), key) or list(meta.get("outputs", {})) != list(formats):
        return None
    if bool(meta.get("frames")) != frames:
        return None
    errors = saved_errors(out)
    clips = meta["clips"]
    return ExtractResult(
        out=out, tables={f: out / name for f, name in meta["outputs"].items()},
        schema=out / "features.schema.csv", metadata=out / METADATA,
        errors_csv=out / "errors.csv", n_total=clips["total"], n_ok=clips["ok"],
        n_failed=clips["failed"], n_reused=clips["total"], errors=errors,
        wall_seconds=time.perf_counter() - start, strict=strict,
        notes=[*notes, (f"up to date: {out} already holds these features of this dataset "
                       f"(--force computes them again)")], up_to_date=True,
        n_rows=meta.get("rows") if meta.get("segment") else None,
        frames=[out / p for p in (meta.get("frames") or {}).get("parts", [])],
    )


def extract_files(
    paths: Iterable[str | Path], params: FeatureParams | None = None, *, jobs: int | None = 1
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
    Usage::

        df, errors = extract_files(["dog.wav"])
    """
    params = FeatureParams() if params is None else params
    if not isinstance(params, FeatureParams):
        raise UsageError(f"params={params!r} must be a FeatureParams")
    names = list(feature_columns(params))
    shown = [str(p) for p in paths]
    parts, failed = run_files(shown, FeatureAnalyser(params),
                              jobs=RunOptions(jobs=jobs or 0).workers)
    errors = [ErrorRecord(*fields) for fields in failed]
    indices = np.concatenate([p.indices for p in parts]) if parts else np.empty(0, np.int64)
    features = np.vstack([p.features for p in parts]) if parts else np.empty((0, len(names)))
    df = pd.DataFrame(features, columns=names)
    if params.segment is not None:
        for position, column in enumerate(_table.SEGMENT_COLUMNS, start=0):
            values = np.concatenate([getattr(p, column) for p in parts]) if parts else []
            df.insert(position, column, values)
    df.insert(0, "path", [shown[i] for i in indices])
    return df, errors
