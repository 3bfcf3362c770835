"""Label a whole collection with a model bundle, on the extraction engine: ``classify predict ROOT --out DIR``.

The clips of a dataset (any layout ``features extract`` reads, or every
audio file under ROOT when none fits) go through :mod:`features.engine`
exactly as extraction does: worker processes or a Dask cluster, a time
limit per clip, crash isolation, a checkpoint that a rerun resumes from,
``errors.csv``, and a locked output folder whose files appear together:

``predictions.csv`` / ``predictions.parquet``
    One row per clip that could be labelled: ``path`` (and ``label``, the
    dataset's own, when its layout has one), ``predicted``, ``confidence``,
    the ranked ``top<k>_label`` / ``top<k>_prob`` pairs, ``prob_<class>``
    per class, and ``n_segments`` for a model trained on windows (the
    clip's probabilities are the means over its windows, as in training).
``predictions.json``
    The bundle (its folder, model, classes and checksum), the dataset, the
    counts and the run, with the SHA-256 of every other file.
``errors.csv``
    One row per clip that could not be labelled, as ``features extract``.

Each worker loads the bundle once (checked against its checksum) and sends
back only the probabilities of a clip, never its features, and the parent
writes the tables in chunks: memory stays flat however large the
collection.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import table as _table
from features.analysers import FeatureAnalyser, patch_row
from features.compute import feature_columns
from features.engine.options import RunOptions
from features.engine.outputs import seal, staging_folder
from features.engine.runner import run_dataset
from features.errors import BadAudioError, DatasetLayoutError
from features.io.atomic import file_sha256
from features.io.datasets import Dataset, discover, list_audio
from features.io.records import ErrorRecord
from features.runs import claimed, describe_run, executing, exit_code, failure_lines

from .bundle import Bundle, load_bundle
from .predict import DEFAULT_TOP, predictions_frame, window_params

__all__ = ["METADATA", "CollectionResult", "ProbabilityAnalyser", "bundle_digest", "predict_collection"]

#: The description file of a predictions output set.
METADATA = "predictions.json"
FORMATS = ("csv", "parquet")
CHUNK_ROWS = 20_000


def output_names() -> list[str]:
    """Every file of a predictions set, its description last."""
    return [*(f"predictions.{f}" for f in FORMATS), "errors.csv", METADATA]


def bundle_digest(folder: Path) -> str:
    """SHA-256 over the bundle folder's files (names and contents): which model labelled the clips."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(folder).as_posix()}:{file_sha256(path)}\n".encode())
    return h.hexdigest()


@functools.cache
def _loaded(folder: str, digest: str) -> Bundle:
    """This process's copy of the bundle, refused if its files changed since the run began."""
    if bundle_digest(Path(folder)) != digest:
        raise BadAudioError(f"the model bundle {folder} changed while the collection was being "
                            "labelled; run the command again", reason="model bundle changed")
    return load_bundle(folder)


@functools.cache
def _model_columns(folder: str, digest: str) -> tuple[Any, np.ndarray]:
    """The feature parameters a clip is analysed with, and where the model's columns sit in a row."""
    bundle = _loaded(folder, digest)
    params = window_params(bundle) if bundle.segment is not None else bundle.feature_params
    position = {name: i for i, name in enumerate(feature_columns(params))}
    return params, np.array([position[c] for c in bundle.feature_columns], dtype=np.intp)


@dataclasses.dataclass(frozen=True)
class ProbabilityAnalyser:
    """The class probabilities of a clip under a bundle: what the engine runs per clip.

    Parameters
    ----------
    folder : str
        The bundle folder (absolute).
    digest : str
        Its :func:`bundle_digest`; a worker refuses a bundle that differs.
    n_classes : int
    windows : bool
        The model was trained on windows: the row ends with their number.
    """

    folder: str
    digest: str
    n_classes: int
    windows: bool

    @property
    def key(self) -> str:
        return f"predict-{self.digest[:16]}"

    @property
    def width(self) -> int:
        return self.n_classes + (1 if self.windows else 0)

    def warm_up(self) -> None:
        from features.io import audio  # noqa: F401 - imported now, not on the first clip

        _loaded(self.folder, self.digest)

    def analyse(self, location: str, shown: str, stage: list[str]) -> tuple[list[tuple[np.ndarray, Any]], Any]:
        bundle = _loaded(self.folder, self.digest)
        if bundle.patch_params is not None:
            row, info = patch_row(location, bundle.patch_params, stage)
            n_mels, n_frames = bundle.patch_params.shape
            patch = row[: n_mels * n_frames].reshape(1, n_mels, n_frames)
            if not np.isfinite(patch).all():
                raise BadAudioError(f"{shown}: non-finite values in the log-mel patch; the clip cannot "
                                    "be classified")
            proba = np.asarray(bundle.estimator.predict_proba(patch), dtype=np.float64)[0]
            return [(proba, None)], info
        params, take = _model_columns(self.folder, self.digest)
        rows, info = FeatureAnalyser(params).analyse(location, shown, stage)
        if not rows:
            raise BadAudioError(f"{shown}: the clip gave no window of {params.segment:g} s",
                                reason="no window")
        X = np.stack([values for values, _ in rows])[:, take]
        proba = np.asarray(bundle.estimator.predict_proba(X), dtype=np.float64)
        if self.windows:
            return [(np.append(proba.mean(axis=0), len(rows)), None)], info
        return [(proba[0], None)], info


@dataclasses.dataclass
class CollectionResult:
    """What :func:`predict_collection` wrote."""

    out: Path
    n_total: int
    n_ok: int
    n_failed: int
    n_reused: int
    errors: list[ErrorRecord]
    strict: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """As ``features extract``: 4 when no clip was labelled, 3 with ``strict`` when any failed, else 0."""
        return exit_code(self.n_ok, self.n_total, self.n_failed, self.strict)

    def summary(self) -> str:
        lines = [f"{self.n_ok} clips labelled, {self.n_failed} failed; predictions: "
                 f"{self.out / 'predictions.csv'}; errors: {self.out / 'errors.csv'}"]
        return "\n".join(lines + [f"  {line}" for line in failure_lines(self.errors)])


def collection_dataset(root: str, *, layout: str | None = None, manifest: str | None = None) -> Dataset:
    """The clips to label: the dataset's, or every audio file under ``root`` when no layout fits
    (or when class folders would leave loose files out)."""
    if layout is not None or manifest is not None:
        return discover(root, layout=layout, manifest=manifest)
    try:
        dataset = discover(root)
    except DatasetLayoutError as exc:
        if "no dataset found" not in str(exc):
            raise
        return list_audio(root)
    if dataset.layout == "folders":
        # Class folders beside loose files: the folders are no labelling, and no file is skipped.
        every = list_audio(root)
        if len(every.clips) > len(dataset.clips):
            return every
    return dataset


def predict_collection(
    model: str | Path,
    root: str,
    out: str | Path,
    *,
    layout: str | None = None,
    manifest: str | None = None,
    options: RunOptions | None = None,
    top: int = DEFAULT_TOP,
) -> CollectionResult:
    """Label every clip of a collection with the bundle in ``model``; write the predictions set ``out``.

    Parameters
    ----------
    model : path
        The bundle folder (``RUN/model``).
    root : str
        The collection: a folder or URL in any layout ``features extract``
        reads, or any folder of audio files (searched recursively).
    out : path
        The output folder (the folder rules of ``features extract``).
    layout, manifest
        As ``features extract``.
    options : RunOptions
        Workers, backend, time limit, strictness, ``force``, ``quiet``.
    top : int
        Ranked ``top<k>`` pairs per row.

    Returns
    -------
    CollectionResult
    """
    start = time.perf_counter()
    options = options or RunOptions()
    bundle = load_bundle(model)
    folder = Path(model).resolve()
    digest = bundle_digest(folder)
    analyser = ProbabilityAnalyser(str(folder), digest, len(bundle.class_names), bundle.segment is not None)
    out = Path(out)
    with executing(analyser, options) as executor:
        dataset = collection_dataset(root, layout=layout, manifest=manifest)
        with claimed(out, METADATA, output_names(), options, dataset,
                     "classify predict") as (previous, notes):
            checkpoint, n_items, n_reused = run_dataset(dataset, out, analyser, executor,
                                                        kind="predict", options=options)
            clip_errors = [ErrorRecord(*fields) for _, fields in checkpoint.errors()]
            errors = [*dataset.errors, *clip_errors]
            labelled = (dataset.clips["label"] != "").any()

            def chunks() -> Iterator[pd.DataFrame]:
                for rows in checkpoint.iter_rows(CHUNK_ROWS):
                    yield _frame(dataset, rows.indices, rows.features, bundle, top, labelled)

            empty = _frame(dataset, np.empty(0, np.intp), np.empty((0, analyser.width)), bundle, top,
                           labelled)
            meta = {
                "model": {"folder": str(folder), "name": bundle.model_name, "classes": bundle.class_names,
                          "sha256": digest, "kind": bundle.meta.get("kind"),
                          "windows": bundle.segment},
                **describe_run(dataset, executor, options, n_items=n_items, n_reused=n_reused,
                               n_clip_errors=len(clip_errors), errors=errors, start=start),
            }
            with staging_folder(out) as staging:
                n_rows = _table.write_tables(staging, chunks(), empty, dataset.clips, FORMATS, stem="predictions")
                _table.write_csv(_table.errors_frame(errors), staging / "errors.csv")
                seal(out, staging, METADATA, {**meta, "rows": n_rows}, names=output_names()[:-1],
                     previous=previous)
            checkpoint.remove()
    return CollectionResult(out=out, n_total=meta["clips"]["total"], n_ok=meta["clips"]["ok"],
                            n_failed=len(errors), n_reused=n_reused, errors=errors, strict=options.strict,
                            notes=notes)


def _frame(dataset: Dataset, indices: np.ndarray, values: np.ndarray, bundle: Bundle, top: int,
           labelled: bool) -> pd.DataFrame:
    n_classes = len(bundle.class_names)
    clips = dataset.clips.iloc[indices]
    frame = predictions_frame(clips["path"].astype(str).tolist(), values[:, :n_classes], bundle.class_names,
                              top=top)
    if labelled:
        frame.insert(1, "label", clips["label"].astype(str).to_numpy())
    if bundle.segment is not None:
        frame.insert(1, "n_segments", values[:, n_classes].astype(np.int64))
    return frame
