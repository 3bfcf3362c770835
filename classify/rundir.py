"""The run folder: what ``classify train`` writes and ``classify report`` reads.

This module owns its one schema: the file names, the columns of every CSV
and the keys of ``run.json``. Training writes the folder through
:func:`write_tables` and :func:`write_run_info`; the report reads it with
:func:`load_run`, which checks it against the same definitions, so the two
sides cannot drift apart. Layout::

    leaderboard.csv  folds.csv  per_class.csv  predictions.csv
    [clip_predictions.csv]  [importance.csv  importance.png]  [unmatched.csv]
    confusion/<model>_{counts,normalized}.{csv,png}  folds.png
    report.md  run.json  model/ (the bundle, written by classify.bundle)

The folder is written as a set (staged, then moved into place, ``run.json``
last, which lists every other file with its SHA-256 under ``files``): a
later run into the folder replaces those files and no others, and a
folder holding anything else is refused (:mod:`features.io.ownership`).

A column named ``fold`` is always the dataset's predefined fold, with the
feature table's values (an integer, empty when there is none), so files can
be joined on it; the held-out part of a split is named in ``split``
(``fold7``, ``split3``, ``holdout`` for the dataset's test part,
``holdout (leaky)`` for ``random``).

Columns beyond :data:`COLUMNS` appear in some runs: with ``--tune``,
``folds.csv`` ends with ``params`` (the parameters chosen in that split,
JSON); on a segment table the leaderboard has ``window_accuracy_mean``,
``folds.csv`` ``n_test_clips`` and ``window_accuracy`` (the other scores
are per clip), ``predictions.csv`` the window columns ``segment,
segment_start_s, segment_end_s`` after ``path``, and
``clip_predictions.csv`` one row per clip. ``importance.csv`` is
described in :mod:`classify.importance`; the CNN models have no rows in
it (they see no feature column; ``run.json``'s ``importance.skipped``
says so).

A run with a CNN model learns from patches as well as the table; the
clips on one side only are left out of the whole run and listed in
``unmatched.csv`` (``path, label, missing_from, reason``: ``missing_from``
is ``patches`` for a table row without a patch, ``features`` for a patch
without a table row; ``reason`` is the failure recorded in the other
side's ``errors.csv``, if any). ``run.json``'s ``patches`` records the
patches folder, its parameters and the counts.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd

from features.io.atomic import write_json, write_text
from features.table import fold_values, read_csv, write_csv

from .bundle import BUNDLE_JSON
from .errors import RunDirError
from .evaluation import FOLDS_COLUMNS, LEADERBOARD_COLUMNS, PER_CLASS_COLUMNS
from .importance import IMPORTANCE_COLUMNS

__all__ = [
    "BUNDLE_DIR",
    "CLIP_PREDICTIONS",
    "COLUMNS",
    "CONFUSION_KINDS",
    "FOLDS",
    "FOLDS_FIGURE",
    "IMPORTANCE",
    "IMPORTANCE_FIGURE",
    "LEADERBOARD",
    "PER_CLASS",
    "PREDICTIONS",
    "REPORT_MD",
    "RUN_JSON",
    "RUN_NAMES",
    "UNMATCHED",
    "Run",
    "RunInfo",
    "confusion_file",
    "load_run",
    "probability_column",
    "write_report_md",
    "write_run_info",
    "write_tables",
]

LEADERBOARD = "leaderboard.csv"
FOLDS = "folds.csv"
PER_CLASS = "per_class.csv"
PREDICTIONS = "predictions.csv"
CLIP_PREDICTIONS = "clip_predictions.csv"
IMPORTANCE = "importance.csv"
IMPORTANCE_FIGURE = "importance.png"
UNMATCHED = "unmatched.csv"
CONFUSION_DIR = "confusion"
CONFUSION_KINDS = ("counts", "normalized")
FOLDS_FIGURE = "folds.png"
REPORT_MD = "report.md"
RUN_JSON = "run.json"
BUNDLE_DIR = "model"
#: The leaderboard row of ``--select nested``: the procedure "pick the best, then fit it", not a model.
NESTED = "nested"
#: Every name a run may write at its top level (``--force`` never replaces one it did not write).
RUN_NAMES = (LEADERBOARD, FOLDS, PER_CLASS, PREDICTIONS, CLIP_PREDICTIONS, IMPORTANCE,
             IMPORTANCE_FIGURE, UNMATCHED, CONFUSION_DIR, FOLDS_FIGURE, REPORT_MD, RUN_JSON,
             BUNDLE_DIR)

#: Columns every CSV has, in this order (other columns may sit between or
#: after them, see above). ``predictions.csv`` then has one
#: ``prob_<class>`` column per class (:func:`probability_column`); the
#: leaderboard and per-class tables say which protocol made them.
COLUMNS = {
    LEADERBOARD: (*LEADERBOARD_COLUMNS, "protocol"),
    FOLDS: FOLDS_COLUMNS,
    PER_CLASS: (*PER_CLASS_COLUMNS, "protocol"),
    PREDICTIONS: ("path", "label", "fold", "split", "model", "predicted", "confidence"),
}
#: The files only some runs have: segment tables, importance.
OPTIONAL_COLUMNS = {
    CLIP_PREDICTIONS: ("path", "label", "fold", "split", "model", "n_segments", "predicted",
                       "confidence"),
    IMPORTANCE: IMPORTANCE_COLUMNS,
    UNMATCHED: ("path", "label", "missing_from", "reason"),
}
# Text that must stay text when read back: class names and paths such as "007".
_TEXT_COLUMNS = ("model", "class", "label", "predicted", "path", "split", "protocol", "selection", "family",
                 "metric", "params", "missing_from", "reason")


def probability_column(label: str) -> str:
    """``prob_<label>``: the column of ``predictions.csv`` holding that class's probability."""
    return f"prob_{label}"


def confusion_file(model: str, kind: str, suffix: str = ".csv") -> str:
    """``confusion/<model>_<kind><suffix>``, relative to the run folder."""
    if kind not in CONFUSION_KINDS:
        raise ValueError(f"kind={kind!r} must be one of {CONFUSION_KINDS}")
    return f"{CONFUSION_DIR}/{model}_{kind}{suffix}"


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """``run.json``: provenance, protocol, parameters, versions and timings of a run.

    Attributes
    ----------
    table, table_sha256 : str
        The feature table trained on (absolute path) and its checksum.
    features_json : dict or None
        The table's ``features.json`` (extraction parameters, dataset root),
        None when the table had none.
    protocol : dict
        :meth:`classify.splits.Protocol.to_dict` plus its ``label``.
    params : dict
        The training options, the output folder and every model's parameters.
    models : list of str
        Models cross-validated, in ``--models`` order.
    best_model : str
        Best mean accuracy (first row of the leaderboard).
    final_model : str
        The model refitted on all rows: ``--final``, else ``best_model``.
    model_bundle : str or None
        Where the final model was saved; None when no bundle was saved.
    classes, feature_columns : list of str
    feature_source : str
        Where the feature columns came from.
    path_column : str or None
        The table column copied into ``predictions.csv``'s ``path``:
        ``"path"`` (relative to the dataset root), ``"filename"`` (a file
        name only, as in GTZAN-style tables) or None (rows are named
        ``row N``).
    versions, timings : dict
    n_rows, n_features : int
    created : str
        ISO 8601 time, UTC.
    tuning : dict or None
        With ``--tune``: the search, the spaces, the parameters ``chosen``
        per model and split, and those of the ``final`` model.
    segment : dict or None
        On a segment table: the window ``settings`` from features.json,
        the number of clips, how scores are pooled.
    importance : dict or None
        The importance file, repeats and the columns of every family;
        ``skipped``: the models it does not apply to, and why.
    patches : dict or None
        With a CNN model: the patches folder, the SHA-256 of its
        ``patches.json``, the patch parameters and shape, the table's rows
        before the join and the clips left out (``unmatched``).
    files : dict or None
        Every other file of the run (relative path -> ``sha256``, ``bytes``):
        what a later run into the folder replaces, and nothing else.
    selection : dict or None
        How the final model was chosen (``rule``), which number is the honest
        estimate (``honest``: one sentence, and ``honest_model`` /
        ``honest_accuracy`` when there is one) and, with ``--select nested``,
        the model ``chosen`` inside each training part and the
        ``inner_accuracy`` it was chosen on.
    excluded_columns : dict or None
        Feature columns left out as the label in disguise, and why.
    restarts : dict or None
        Model -> split -> the attempts of a Keras fit that ended at chance
        and was restarted (seed, learning rate, epochs, held-out balanced
        accuracy); ``final`` for the final refit.
    final_fallback : dict or None
        When the best model's final refit stayed at chance and was not
        saved: that model, why, and the model saved instead.
    """

    table: str
    table_sha256: str
    features_json: dict[str, Any] | None
    protocol: dict[str, Any]
    params: dict[str, Any]
    models: list[str]
    best_model: str
    final_model: str
    model_bundle: str | None
    classes: list[str]
    feature_columns: list[str]
    feature_source: str
    path_column: str | None
    versions: dict[str, str]
    timings: dict[str, Any]
    n_rows: int
    n_features: int
    created: str
    tuning: dict[str, Any] | None = None
    segment: dict[str, Any] | None = None
    importance: dict[str, Any] | None = None
    patches: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    excluded_columns: dict[str, str] | None = None
    restarts: dict[str, Any] | None = None
    final_fallback: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str | Path = RUN_JSON) -> RunInfo:
        """Check ``data`` (read from ``run.json``) against the fields; RunDirError names what is wrong."""
        if not isinstance(data, dict):
            raise RunDirError(f"{where} must hold a JSON object; re-run training to rewrite it.")
        required = [f for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [f.name for f in required if f.name not in data]
        if missing:
            raise RunDirError(f"{where} lacks key(s) {missing}; it was written by another version: "
                              "re-run training.")
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A run folder as read by :func:`load_run`: run.json, the four tables and the optional ones."""

    path: Path
    info: RunInfo
    leaderboard: pd.DataFrame
    folds: pd.DataFrame
    per_class: pd.DataFrame
    predictions: pd.DataFrame
    clip_predictions: pd.DataFrame | None = None
    importance: pd.DataFrame | None = None
    unmatched: pd.DataFrame | None = None

    @property
    def bundle_dir(self) -> Path | None:
        """The saved model bundle of :attr:`RunInfo.final_model`, None when none was saved."""
        bundle = self.path / BUNDLE_DIR
        return bundle if self.info.model_bundle and (bundle / BUNDLE_JSON).is_file() else None

    def confusion(self, model: str, kind: str) -> pd.DataFrame:
        """A confusion matrix: true classes as rows, predicted ones as columns."""
        path = self.path / confusion_file(model, kind)
        if not path.is_file():
            raise RunDirError(f"{path} is missing; re-run 'python -m classify train' to write the "
                              "confusion matrices.")
        try:
            matrix = read_csv(path, dtype=str, keep_default_na=False)
            matrix = matrix.set_index(matrix.columns[0])
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise RunDirError(f"{path} cannot be read as CSV ({exc}); re-run training.") from None
        matrix.index = matrix.index.astype(str)
        matrix.columns = matrix.columns.astype(str)
        values = matrix.apply(pd.to_numeric, errors="coerce")
        if values.shape[0] != values.shape[1] or list(values.index) != list(values.columns):
            raise RunDirError(f"{path} must be a square matrix with the same classes as rows and "
                              f"columns; rows {list(values.index)}, columns {list(values.columns)}.")
        if kind == "counts" and values.isna().to_numpy().any():
            raise RunDirError(f"{path} has empty or non-numeric cells; re-run training.")
        return values


# ------------------------------------------------------------------ writing


def write_tables(
    run_dir: Path,
    *,
    leaderboard: pd.DataFrame,
    folds: pd.DataFrame,
    per_class: pd.DataFrame,
    predictions: pd.DataFrame,
    confusions: dict[str, dict[str, pd.DataFrame]],
    clip_predictions: pd.DataFrame | None = None,
    importance: pd.DataFrame | None = None,
    unmatched: pd.DataFrame | None = None,
) -> None:
    """Write the CSVs and the confusion matrices into a new run folder.

    Parameters
    ----------
    run_dir : Path
    leaderboard, folds, per_class, predictions : pd.DataFrame
        With the columns of :data:`COLUMNS` (``predictions`` then ``prob_<class>``).
    confusions : dict
        ``{model: {"counts": matrix, "normalized": matrix}}``; a matrix has
        the true classes as index and the predicted ones as columns.
    clip_predictions, importance, unmatched : pd.DataFrame or None
        With the columns of :data:`OPTIONAL_COLUMNS`; None writes no file.
    """
    frames = {LEADERBOARD: leaderboard, FOLDS: folds, PER_CLASS: per_class, PREDICTIONS: predictions,
              CLIP_PREDICTIONS: clip_predictions, IMPORTANCE: importance, UNMATCHED: unmatched}
    for name, frame in frames.items():
        expected = list({**COLUMNS, **OPTIONAL_COLUMNS}[name])
        if frame is not None and not _in_order(expected, list(frame.columns)):
            raise ValueError(f"{name}: columns {list(frame.columns)} do not hold {expected} in order")
    for name, frame in frames.items():
        if frame is not None:
            write_csv(frame, run_dir / name)
    for model, kinds in confusions.items():
        for kind, matrix in kinds.items():
            # "true" would read as the boolean TRUE in a spreadsheet.
            table = matrix.rename_axis(index="true_label", columns=None).reset_index()
            write_csv(table, run_dir / confusion_file(model, kind))


def _in_order(expected: list[str], columns: list[str]) -> bool:
    """Whether ``columns`` holds every name of ``expected``, in that order."""
    found = iter(columns)
    return all(name in found for name in expected)


def write_run_info(run_dir: Path, info: RunInfo) -> Path:
    """Write ``run.json``."""
    return write_json(dataclasses.asdict(info), run_dir / RUN_JSON)


def write_report_md(run_dir: Path, text: str) -> Path:
    """Write ``report.md``."""
    return write_text(run_dir / REPORT_MD, text)


# ------------------------------------------------------------------ reading


def load_run(run_dir: str | Path) -> Run:
    """Read and check a run folder written by ``python -m classify train``.

    Raises
    ------
    RunDirError
        The folder, ``run.json`` or a table is missing or lacks what the
        schema promises; the message names the file.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"run folder {path} does not exist; train first with 'python -m classify "
                          f"train TABLE --out {path}' (or 'make train').")
    if any(path.glob(".committing-*")):
        raise RunDirError(f"the run in {path} was being replaced when training stopped, so its "
                          "files are not one run's; train again into that folder")
    meta_path = path / RUN_JSON
    if not meta_path.is_file():
        raise RunDirError(f"{meta_path} is missing; is {path} a folder written by "
                          "'python -m classify train'?")
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{meta_path} is not valid JSON ({exc}); re-run training to rewrite it.") from None
    info = RunInfo.from_dict(data, meta_path)
    tables = {name: _read_csv(path / name, columns) for name, columns in COLUMNS.items()}
    if tables[LEADERBOARD].empty:
        raise RunDirError(f"{path / LEADERBOARD} has no rows; re-run training.")
    optional = {name: _read_csv(path / name, columns) if (path / name).is_file() else None
                for name, columns in OPTIONAL_COLUMNS.items()}
    return Run(path, info, tables[LEADERBOARD], tables[FOLDS], tables[PER_CLASS], tables[PREDICTIONS],
               clip_predictions=optional[CLIP_PREDICTIONS], importance=optional[IMPORTANCE],
               unmatched=optional[UNMATCHED])


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise RunDirError(f"{path} is missing; re-run 'python -m classify train' to write the whole "
                          "run folder.")
    try:
        df = read_csv(path, _TEXT_COLUMNS, dtype={c: str for c in _TEXT_COLUMNS},
                      keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise RunDirError(f"{path} cannot be read as CSV ({exc}); re-run training to rewrite it.") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RunDirError(f"{path} lacks column(s) {missing}; it has {list(df.columns)}. Re-run training.")
    if "fold" in df.columns:
        df["fold"] = fold_values(df["fold"])
    return df


