"""Label new clips with a trained model bundle: ``python -m classify predict``.

Features are computed with the bundle's own extraction parameters through
the ``features`` package, so a model only ever sees numbers made the way
its training table was made. Unreadable files are reported and skipped.

A CNN bundle (kind ``keras-cnn``) gets the log-mel patch of every file,
computed with the bundle's patch parameters by
:func:`features.patches.patch_files` (crash-isolated workers, as for
features), exactly as ``features patches`` made the training patches.

A model trained on windows (a bundle with ``segment``) gets every file cut
into the same windows (its feature parameters carry them, so
:func:`features.extract.extract_files` cuts them); a clip's label is the
class of highest mean probability over its windows, as in training
(:func:`predict_segments` also returns the label of every window).

Example::

    python -m classify predict --model data/output/demo/run/model clip.wav folder/ --out preds.csv
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.extract import extract_files
from features.io.audio import is_audio_path
from features.io.records import ErrorRecord
from features.params import FeatureParams

from .bundle import Bundle
from .errors import UsageError
from .evaluation import aggregate_clips
from .tables import SEGMENT_COLUMNS

DEFAULT_TOP = 3


def predict_files(
    bundle: Bundle,
    paths: Sequence[str | os.PathLike],
    *,
    jobs: int = 1,
    top: int = DEFAULT_TOP,
) -> tuple[pd.DataFrame, list[ErrorRecord]]:
    """Predict the class of every audio file in ``paths``.

    Parameters
    ----------
    bundle : Bundle
        From :func:`classify.bundle.load_bundle`.
    paths : sequence of path
        Files and folders; folders are searched recursively for audio files
        (by extension, hidden files skipped), sorted. Files given explicitly
        are used whatever their extension.
    jobs : int
        Worker processes for feature extraction (1: this process; 0: every core).
    top : int
        How many ranked ``topK_label``/``topK_prob`` pairs to report
        (capped at the number of classes).

    Returns
    -------
    predictions : pd.DataFrame [shape=(n_ok, 3 + 2 * top + n_classes)]
        ``path, predicted, confidence, top1_label, top1_prob, ...,
        prob_<class>...`` (one probability column per class, in
        ``bundle.class_names`` order); one row per readable file, in input
        order. For a model trained on windows, the clips of
        :func:`predict_segments` (with ``n_segments`` after ``path``).
    errors : list of ErrorRecord
        One per path that could not be read or analysed.

    Notes
    -----
    The probabilities are those of ``bundle.estimator.predict_proba`` on
    the features ``bundle.feature_params`` produce, up to floating-point
    rounding: BLAS may sum in another order for another batch of files,
    memory layout or thread count, so the same clip can get probabilities
    that differ by about 1e-16 from one call to the next. Labels differ
    only where two classes tie to that precision.

    Examples
    --------
    Usage::

        preds, errors = predict_files(load_bundle("run/model"), ["clip.wav"])
        preds.loc[0, "predicted"]
        # -> 'dog_bark'
    """
    if bundle.segment is not None:
        clips, _, errors = predict_segments(bundle, paths, jobs=jobs, top=top)
        return clips, errors
    _check_top(top)
    files, errors = _expand_paths(paths)
    if bundle.patch_params is not None:
        found, proba, bad = _patch_probabilities(bundle, files, jobs=jobs)
        return predictions_frame(found, proba, bundle.class_names, top=top), errors + bad
    features = pd.DataFrame(columns=["path"])
    if files:
        features, extract_errors = extract_files(files, bundle.feature_params, jobs=jobs)
        errors += extract_errors
    features, proba, bad = _probabilities(bundle, features)
    return predictions_frame(features["path"].astype(str).tolist(), proba, bundle.class_names,
                              top=top), errors + bad


def predict_segments(
    bundle: Bundle,
    paths: Sequence[str | os.PathLike],
    *,
    jobs: int = 1,
    top: int = DEFAULT_TOP,
) -> tuple[pd.DataFrame, pd.DataFrame, list[ErrorRecord]]:
    """Predict every file with a model trained on windows: per clip and per window.

    Parameters
    ----------
    bundle : Bundle
        A bundle with ``segment`` (trained on a segment table).
    paths, jobs, top
        As for :func:`predict_files`.

    Returns
    -------
    clips : pd.DataFrame
        One row per readable file: ``path, n_segments, predicted,
        confidence, top1_label, top1_prob, ..., prob_<class>...``; the
        probabilities are the means over the file's windows.
    windows : pd.DataFrame
        One row per window: ``path, segment, segment_start_s,
        segment_end_s, predicted, confidence, top..., prob_<class>...``.
    errors : list of ErrorRecord
        Files that could not be read, or gave no window (a clip shorter
        than one window when the last partial window is dropped).

    Raises
    ------
    UsageError
        The bundle's model was trained on whole clips.
    """
    if bundle.segment is None:
        raise UsageError(f"the model in {bundle.path} was trained on whole clips, not windows; "
                         "per-window labels need a model trained on a table from "
                         "`features extract --segment`")
    _check_top(top)
    files, errors = _expand_paths(paths)
    features = pd.DataFrame(columns=["path", *SEGMENT_COLUMNS])
    if files:
        features, extract_errors = extract_files(files, window_params(bundle), jobs=jobs)
        errors += extract_errors
    features, proba, bad = _probabilities(bundle, features)
    errors += bad
    # A file with one unusable window is not labelled from the others.
    broken = {e.path for e in bad}
    keep = ~features["path"].astype(str).isin(broken).to_numpy()
    features, proba = features[keep].reset_index(drop=True), proba[keep]
    windows = predictions_frame(features["path"].astype(str).tolist(), proba, bundle.class_names, top=top)
    for k, column in enumerate(SEGMENT_COLUMNS, start=1):
        windows.insert(k, column, features[column].to_numpy())
    ids, mean, _, counts = aggregate_clips(features["path"].astype(str).to_numpy(), proba)
    clips = predictions_frame(list(ids), mean, bundle.class_names, top=top)
    clips.insert(1, "n_segments", counts)
    return clips, windows, errors


def window_params(bundle: Bundle) -> FeatureParams:
    """The bundle's feature parameters with its windows, so that :func:`extract_files`
    cuts new files as ``features extract --segment`` cut the training clips."""
    params, segment = bundle.feature_params, bundle.segment
    if params.segment is not None:
        return params
    return dataclasses.replace(params, segment=segment["seconds"], segment_hop=segment["hop"],
                               segment_last=segment["last"])


def _check_top(top: Any) -> None:
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top={top!r} must be a positive integer")


def _probabilities(bundle: Bundle, features: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, list[ErrorRecord]]:
    """(rows with finite features, their probabilities, errors of the others)."""
    if features.empty:
        return features, np.empty((0, len(bundle.class_names))), []
    # load_bundle checked that these are the columns bundle.feature_params produce.
    X = features[bundle.feature_columns].to_numpy(dtype=np.float64)
    finite = np.isfinite(X).all(axis=1)
    errors = [_non_finite_error(path, bundle.feature_columns, x)
              for path, x in zip(features["path"][~finite], X[~finite])]
    proba = np.empty((0, len(bundle.class_names)))
    if finite.any():
        proba = np.asarray(bundle.estimator.predict_proba(X[finite]), dtype=np.float64)
    return features[finite].reset_index(drop=True), proba, errors


def _patch_probabilities(bundle: Bundle, files: list[str], *, jobs: int
                         ) -> tuple[list[str], np.ndarray, list[ErrorRecord]]:
    """(files with a usable patch, the CNN's probabilities, errors of the others)."""
    from features.patches import patch_files

    empty = np.empty((0, len(bundle.class_names)))
    if not files:
        return [], empty, []
    patches, found, errors = patch_files(files, bundle.patch_params, jobs=jobs)
    finite = np.isfinite(patches).all(axis=(1, 2))
    errors += [ErrorRecord(path, None, "features", "BadAudioError",
                           "non-finite values in the log-mel patch; the clip cannot be classified")
               for path, ok in zip(found, finite) if not ok]
    proba = empty
    if finite.any():
        proba = np.asarray(bundle.estimator.predict_proba(patches[finite]), dtype=np.float64)
    return [p for p, ok in zip(found, finite) if ok], proba, errors


def _expand_paths(paths: Sequence[str | os.PathLike]) -> tuple[list[str], list[ErrorRecord]]:
    """Resolve files and folders into the list of files to analyse.

    Parameters
    ----------
    paths : sequence of path
        Files (kept as given, any extension) and folders (searched
        recursively for audio files by extension; hidden names such as
        macOS ``._x.wav`` skipped; sorted).

    Returns
    -------
    files : list of str
        Without duplicates, in input order.
    errors : list of ErrorRecord
        For paths that do not exist and folders without audio files.
    """
    files: list[str] = []
    errors: list[ErrorRecord] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(
                str(p) for p in path.rglob("*")
                if p.is_file() and is_audio_path(p)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                errors.append(ErrorRecord(str(given), None, "load", "AudioReadError",
                                          f"folder {given} contains no audio files "
                                          "(searched recursively by extension)"))
            files += found
        elif path.exists():
            files.append(str(given))
        else:
            errors.append(ErrorRecord(str(given), None, "load", "AudioReadError",
                                      f"{given} does not exist; check the path"))
    return list(dict.fromkeys(files)), errors


def predictions_frame(
    paths: Sequence[str], proba: np.ndarray, class_names: Sequence[str], *, top: int = DEFAULT_TOP
) -> pd.DataFrame:
    """Lay out class probabilities as the predictions table.

    Parameters
    ----------
    paths : sequence of str [length n]
    proba : np.ndarray [shape=(n, n_classes)]
        Columns in ``class_names`` order.
    class_names : sequence of str [length n_classes]
    top : int
        Ranked pairs to include (capped at ``n_classes``); ties keep class order.

    Returns
    -------
    pd.DataFrame
        ``path, predicted, confidence, top1_label, top1_prob, ...,
        prob_<class>...``.
    """
    names = np.asarray(class_names, dtype=object)
    order = np.argsort(-proba, axis=1, kind="stable")[:, :min(top, len(names))]
    ranked = np.take_along_axis(proba, order, axis=1)
    columns: dict[str, object] = {
        "path": np.asarray(list(paths), dtype=object),
        "predicted": names[order[:, 0]],
        "confidence": ranked[:, 0],
    }
    for k in range(order.shape[1]):
        columns[f"top{k + 1}_label"] = names[order[:, k]]
        columns[f"top{k + 1}_prob"] = ranked[:, k]
    for j, name in enumerate(names):
        columns[f"prob_{name}"] = proba[:, j]
    return pd.DataFrame(columns)


def format_line(row: pd.Series) -> str:
    """One human-readable line: ``path  predicted (0.81)  top-3: a 0.81, b 0.12, c 0.04``.

    A window's line starts with its span instead (``  [3.0-6.0 s]``), a
    clip of windows ends with their number.
    """
    k = 1
    ranked = []
    while f"top{k}_label" in row.index:
        ranked.append(f"{row[f'top{k}_label']} {row[f'top{k}_prob']:.2f}")
        k += 1
    where = str(row["path"])
    if "segment_start_s" in row.index:
        where = f"  [{row['segment_start_s']:.1f}-{row['segment_end_s']:.1f} s]"
    windows = f"  ({row['n_segments']} windows)" if "n_segments" in row.index else ""
    return (f"{where}  {row['predicted']} ({row['confidence']:.2f})"
            f"  top-{k - 1}: {', '.join(ranked)}{windows}")


def _non_finite_error(path: str, columns: Sequence[str], x: np.ndarray) -> ErrorRecord:
    bad = [c for c, v in zip(columns, x) if not np.isfinite(v)]
    return ErrorRecord(str(path), None, "features", "BadAudioError",
                       f"non-finite feature values in {', '.join(bad[:5])}"
                       f"{' ...' if len(bad) > 5 else ''}; the clip cannot be classified")
