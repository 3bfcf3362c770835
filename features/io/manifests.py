"""Reading the CSV files that list a dataset's clips: manifests and metadata tables.

A row that cannot become a clip (a missing path or label, a fold that is
not a whole number, a path outside the dataset, a duplicate) becomes an
:class:`~features.io.records.ErrorRecord` naming its data row; the good
rows are kept. :func:`read_manifest` reads a ``manifest.csv``;
:func:`read_listing`, :func:`parse_fold` and :func:`finish_clips` are
shared with the layouts that ship their own metadata (UrbanSound8K).
"""
from __future__ import annotations

import os
import posixpath
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetLayoutError
from . import storage
from .records import ROW_ERROR, ErrorRecord

__all__ = ["ID_COLUMNS", "SPLITS", "CsvFile", "Problems", "clips_frame", "find_manifest",
           "finish_clips", "no_folds", "parse_fold", "read_listing", "read_manifest",
           "require_columns"]

#: The identifying columns of every clips table, first and in this order.
ID_COLUMNS = ("path", "label", "fold", "group")
#: The parts of a dataset's own train/validation/test split (column ``split``).
SPLITS = ("train", "validation", "test")
SPLIT_NAMES = {"training": "train", "val": "validation", "valid": "validation",
                "dev": "validation", "testing": "test"}
MANIFEST_REQUIRED = ("path", "label")
INT_RE = r"[+-]?\d{1,18}(?:\.0*)?"  # "3" or "3.0" (spreadsheets write integers as floats)


# ------------------------------------------------------------------ manifest
def read_manifest(csv: CsvFile, shown: str) -> tuple[pd.DataFrame, list[ErrorRecord]]:
    df, rows, errors = read_listing(csv, shown)
    require_columns(df, MANIFEST_REQUIRED, csv.name, "manifest")
    problems = Problems(len(df))
    raw = df["path"].str.strip().str.replace("\\", "/", regex=False)
    problems.add(raw == "", "path is empty")
    absolute = raw.str.startswith("/") | raw.str.match(r"[A-Za-z]:")
    problems.add(absolute, lambda i: f"path {raw.iat[i]!r} is absolute; write it relative to ROOT")
    path = pd.Series([posixpath.normpath(p) if p else p for p in raw.tolist()], index=df.index, dtype=str)
    escapes = ~absolute & ((path == "..") | path.str.startswith("../"))
    problems.add(escapes, lambda i: f"path {raw.iat[i]!r} points outside ROOT (uses ..)")
    at_root = (path == ".").to_numpy()
    problems.add(at_root, "path points at ROOT itself, not at a file")
    # errors.csv shows a usable path where there is one, else the text as written.
    error_path = path.where(~(absolute | escapes | at_root | (raw == "")), df["path"].str.strip())
    label = df["label"].str.strip()
    problems.add(label == "", "label is empty")
    if "fold" in df.columns:
        fold, bad_fold = parse_fold(df["fold"], required=False)
        problems.add(bad_fold, lambda i: f"fold {df['fold'].iat[i]!r} is not an integer")
    else:
        fold = no_folds(len(df))
    group = df["group"].str.strip() if "group" in df.columns else ""
    split = None
    if "split" in df.columns:
        split = df["split"].str.strip().str.lower().map(lambda v: SPLIT_NAMES.get(v, v))
        problems.add(~split.isin(SPLITS), lambda i: (
            f"split {df['split'].iat[i]!r} is not one of: {', '.join(SPLITS)}"))
    extras = [c for c in df.columns if c not in (*ID_COLUMNS, "split")]
    return finish_clips(df, rows, errors, problems, shown, path, error_path, label, fold, group, extras,
                   split)


class CsvFile:
    """A metadata CSV in a tree (local or remote), named as the user would write it."""

    def __init__(self, tree, rel: str) -> None:
        self.tree, self.rel = tree, rel
        self.location = tree.location(rel)
        self.name = storage.redact(self.location)  # for messages

    def open(self):
        return self.tree.open(self.rel)


def find_manifest(tree, manifest: str | os.PathLike[str]) -> CsvFile:
    text = os.fspath(manifest)
    if storage.is_url(text):
        parent, _, name = text.rstrip("/").rpartition("/")
        remote = storage.RemoteTree(parent)
        if remote.is_file(name):
            return CsvFile(remote, name)
        raise DatasetLayoutError(f"manifest {storage.redact(text)!r} cannot be read "
                                 f"({remote.why_not(name)}); pass the URL of an existing CSV "
                                 f"file, with the credentials it needs")
    given = Path(storage.local_path(text))
    if given.is_file():
        return CsvFile(storage.LocalTree(str(given.parent)), given.name)
    rel = given.as_posix()
    if not given.is_absolute() and tree.is_file(rel):
        return CsvFile(tree, rel)
    places = str(given) if given.is_absolute() else f"{Path.cwd() / given} or {storage.redact(tree.location(rel))}"
    raise DatasetLayoutError(f"manifest {text!r} not found (looked for {places}); "
                             f"pass the path of an existing CSV file")


# --------------------------------------------------------------- CSV helpers
class Problems:
    """Collects, per metadata row, every reason it cannot become a clip."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.reasons: dict[int, list[str]] = {}

    def add(self, mask: pd.Series, reason) -> None:
        """``reason`` is a message or a function of the row position giving one."""
        where = np.flatnonzero(np.asarray(mask, dtype=bool))
        for i in where.tolist():
            self.flag(i, reason(i) if callable(reason) else reason)

    def flag(self, i: int, reason: str) -> None:
        """Mark the row at position ``i`` bad for ``reason``."""
        self.bad[i] = True
        self.reasons.setdefault(i, []).append(reason)


def read_listing(csv: CsvFile, shown: str) -> tuple[pd.DataFrame, np.ndarray, list[ErrorRecord]]:
    """Read every cell as an unchanged string; return (frame, 1-based row numbers, errors)."""
    try:
        with warnings.catch_warnings(record=True) as caught, csv.open() as f:
            warnings.simplefilter("always")
            df = pd.read_csv(
                f, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                skip_blank_lines=False, on_bad_lines="warn",
            )
    except UnicodeDecodeError:
        raise DatasetLayoutError(f"{csv.name} is not UTF-8 text; re-save it as a UTF-8 CSV file") from None
    except pd.errors.EmptyDataError:
        raise DatasetLayoutError(f"{csv.name} is empty; it needs a header row and one row per clip") from None
    except pd.errors.ParserError as exc:
        raise DatasetLayoutError(f"{csv.name} is not a readable CSV file ({exc}); fix the file") from None
    except OSError as exc:
        raise DatasetLayoutError(f"cannot read {csv.name}: {exc.strerror or exc}") from None
    skipped = _skipped_lines(caught)
    df.columns = [str(c).strip() for c in df.columns]
    df = df.fillna("")
    rows = _row_numbers(len(df), [row for row, _ in skipped])
    errors = [
        ErrorRecord("", row, "metadata", ROW_ERROR,
                    f"{shown} row {row}: {reason}; quote fields that contain commas, or fix the row",
                    "malformed metadata row")
        for row, reason in skipped
    ]
    # Blank lines keep their row number but are no clip and no error.
    blank = (df == "").all(axis=1).to_numpy() if len(df.columns) else np.zeros(len(df), bool)
    if blank.any():
        df, rows = df[~blank].reset_index(drop=True), rows[~blank]
    if len(df) == 0 and not errors:
        raise DatasetLayoutError(f"{csv.name} has a header but no data rows; add one row per clip")
    return df, rows, errors


def _skipped_lines(caught: list[warnings.WarningMessage]) -> list[tuple[int, str]]:
    """(data row, reason) for lines pandas skipped; other warnings are re-issued."""
    skipped = []
    for w in caught:
        if issubclass(w.category, pd.errors.ParserWarning):
            for line, reason in re.findall(r"Skipping line (\d+): ([^\n]*)", str(w.message)):
                skipped.append((int(line) - 1, reason.strip()))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return skipped


def _row_numbers(n_kept: int, skipped: list[int]) -> np.ndarray:
    total = n_kept + len(skipped)
    keep = np.ones(total, dtype=bool)
    inside = [r - 1 for r in skipped if 1 <= r <= total]
    keep[inside] = False
    # Quoted line breaks make pandas' line numbers drift; never misnumber the rest.
    if keep.sum() != n_kept:
        return np.arange(1, n_kept + 1)
    return np.flatnonzero(keep) + 1


def require_columns(df: pd.DataFrame, required: tuple[str, ...], csv: str, what: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetLayoutError(
            f"{what}: {csv} is missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(df.columns) or 'none'}); fix the header row"
        )


def parse_fold(raw: pd.Series, *, required: bool) -> tuple[pd.Series, np.ndarray]:
    """Integer folds as Int64 (<NA> where empty or bad) and a mask of bad values."""
    text = raw.str.strip()
    ok = text.str.fullmatch(INT_RE).to_numpy(dtype=bool)
    empty = (text == "").to_numpy()
    bad = ~ok if required else ~(ok | empty)
    values = pd.to_numeric(text.where(ok, None), errors="coerce")
    return values.astype("Int64").reset_index(drop=True), bad


def no_folds(n: int) -> pd.Series:
    return pd.Series(pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool)))


def finish_clips(df, rows, errors, problems, shown, path, error_path, label, fold, group, extras,
            split=None):
    """Turn the checked metadata into (clips, errors), dropping bad and duplicate rows."""
    good = np.flatnonzero(~problems.bad)
    for pos, first in _duplicates(path.iloc[good].tolist()).items():
        i = good[pos]
        problems.flag(i, f"path {path.iat[i]!r} is already listed in row "
                         f"{rows[good[first]]}; each clip must appear once")
    for i in sorted(problems.reasons):
        reason = "; ".join(problems.reasons[i])
        errors.append(ErrorRecord(error_path.iat[i], int(rows[i]), "metadata", ROW_ERROR,
                                  f"{shown} row {rows[i]}: {reason}. Fix or remove the row.",
                                  "unusable metadata row"))
    errors.sort(key=lambda e: e.row or 0)
    keep = ~problems.bad
    group_col = group[keep] if isinstance(group, pd.Series) else [group] * int(keep.sum())
    extra_cols = {_extra_name(c): df[c][keep] for c in extras}
    clips = clips_frame(path[keep], label[keep], fold[keep], group_col, extra_cols,
                         None if split is None else split[keep])
    return clips, errors


def _duplicates(paths: list[str]) -> dict[int, int]:
    """Position of every repeated path -> position of its first occurrence."""
    if len(set(paths)) == len(paths):  # the usual case, and ~3x faster than pandas
        return {}
    first: dict[str, int] = {}
    repeats = {}
    for i, p in enumerate(paths):
        j = first.setdefault(p, i)
        if j != i:
            repeats[i] = j
    return repeats


def _extra_name(column: str) -> str:
    # A metadata column may not shadow an identifying column of the table.
    return f"source_{column}" if column in ID_COLUMNS else column


def clips_frame(path, label, fold, group, extras: dict, split=None) -> pd.DataFrame:
    columns = {
        "path": _str_column(path),
        "label": _str_column(label),
        "fold": pd.Series(pd.array(fold, dtype="Int64")),
        "group": _str_column(group),
    }
    if split is not None:
        columns["split"] = _str_column(split)
    for name, values in extras.items():
        columns[name] = _str_column(values)
    return pd.DataFrame(columns)


def _str_column(values) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True).astype(str)
    return pd.Series(values, dtype=str)
