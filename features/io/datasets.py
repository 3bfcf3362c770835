"""Find the clips of a dataset folder: one table of paths, labels, folds and metadata.

:func:`discover` recognises four layouts (:data:`LAYOUTS`) and returns a
:class:`Dataset` whose ``clips`` table has the identifying columns ``path``,
``label``, ``fold``, ``group`` followed by the source's own metadata columns.
Metadata rows that cannot become a clip (malformed, or pointing outside the
dataset root) are returned as :class:`ErrorRecord` objects instead of
stopping the run; a folder that fits no layout raises
:class:`~features.errors.DatasetLayoutError`.

Files are not opened here: a listed clip whose file is missing or broken is
reported later, when it is loaded.
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DatasetLayoutError, UsageError
from . import storage
from .audio import is_audio_path
from .layouts import LAYOUTS
from .ownership import MARKERS, output_kind

__all__ = ["LAYOUTS", "STAGES", "Dataset", "ErrorRecord", "discover"]

#: Where an error happened: reading metadata, loading audio, computing
#: features, or the clip's worker process died (``crash``) or overran its
#: time limit (``timeout``).
STAGES = ("metadata", "load", "features", "crash", "timeout")

ID_COLUMNS = ("path", "label", "fold", "group")
_US8K_CSV = "metadata/UrbanSound8K.csv"
_US8K_REQUIRED = ("slice_file_name", "fold", "class")
_GTZAN_DIRS = ("genres", "genres_original")
_MANIFEST_REQUIRED = ("path", "label")
#: The parts of a dataset's own train/validation/test split (column ``split``).
SPLITS = ("train", "validation", "test")
_SPLIT_NAMES = {"training": "train", "val": "validation", "valid": "validation",
                "dev": "validation", "testing": "test"}
_SC_LISTS = {"validation": "validation_list.txt", "test": "testing_list.txt"}
_SC_NOISE = "_background_noise_"
_ROW_ERROR = DatasetLayoutError.__name__
_INT_RE = r"[+-]?\d{1,18}(?:\.0*)?"  # "3" or "3.0" (spreadsheets write integers as floats)
_EXPECTED = "; ".join(f"{layout.shape} (layout {name})" for name, layout in LAYOUTS.items())


@dataclasses.dataclass(frozen=True)
class ErrorRecord:
    """One clip or metadata row that could not be used; a row of ``errors.csv``.

    Parameters
    ----------
    path : str
        Clip path relative to the dataset root, as far as known ("" if unknown).
    row : int or None
        1-based data row of the metadata CSV (header not counted), or None.
    stage : str
        One of :data:`STAGES`.
    error_type : str
        Class name of the exception, e.g. ``"AudioReadError"``.
    message : str
        What went wrong and what to do about it.
    reason : str
        The cause in a few words, without the file name, so that failures
        can be counted by cause (``"file does not exist"``).
    """

    path: str
    row: int | None
    stage: str
    error_type: str
    message: str
    reason: str = ""

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise UsageError(f"stage={self.stage!r} is not one of: {', '.join(STAGES)}")
        # errors.csv is shared: no URL in it keeps its password or token.
        object.__setattr__(self, "path", storage.redact_text(str(self.path)))
        object.__setattr__(self, "message", storage.redact_text(str(self.message)))

    @classmethod
    def from_exception(
        cls, exc: BaseException, *, path: str = "", row: int | None = None, stage: str = "load"
    ) -> ErrorRecord:
        """Record ``exc`` for one clip.

        Examples
        --------
        >>> ErrorRecord.from_exception(OSError("gone"), path="a.wav").error_type
        'OSError'
        """
        reason = getattr(exc, "reason", None) or f"unexpected {type(exc).__name__}"
        return cls(path, row, stage, type(exc).__name__, str(exc) or repr(exc), reason)


@dataclasses.dataclass
class Dataset:
    """The clips of one dataset, in dataset order.

    Parameters
    ----------
    root : Path or str
        Absolute dataset root (a str when it is a URL); every ``clips.path``
        is relative to it.
    layout : str
        One of :data:`LAYOUTS`.
    clips : pd.DataFrame
        Columns ``path`` (str, forward slashes), ``label`` (str), ``fold``
        (Int64, <NA> if none), ``group`` (str, "" if none), then the source's
        other metadata columns, unchanged strings.
    errors : list of ErrorRecord
        Metadata rows that did not become clips (stage ``"metadata"``).
    manifest : Path or str or None
        The manifest CSV actually read (layout manifest only).
    tree : LocalTree or RemoteTree
        How the root is read (see :mod:`features.io.storage`).
    notes : dict
        What the layout found beside the clips: ``warnings`` (str list, e.g.
        a speaker in two parts of the split) and ``background_noise`` (the
        Speech Commands noise files, which are not clips).
    """

    root: Path | str
    layout: str
    clips: pd.DataFrame
    errors: list[ErrorRecord] = dataclasses.field(default_factory=list)
    manifest: Path | str | None = None
    tree: Any = dataclasses.field(default=None, repr=False, compare=False)
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def extra_columns(self) -> list[str]:
        """Names of the source's own metadata columns (after ``group``)."""
        return list(self.clips.columns[len(ID_COLUMNS):])

    def location(self, rel: str) -> str:
        """Where a worker opens the clip at ``rel``: a local path or a URL (with its credentials)."""
        return storage.join(str(self.root), rel)

    @property
    def shown_root(self) -> str:
        """The root as it may be stored or shown: a URL without user-info or query string."""
        return storage.redact(str(self.root))

    @property
    def shown_manifest(self) -> str | None:
        """The manifest as it may be stored or shown (see :attr:`shown_root`), or None."""
        return None if self.manifest is None else storage.redact(str(self.manifest))

    def stamps(self, paths: Sequence[str] | None = None) -> list[tuple[int, str]]:
        """(size in bytes, change stamp) of every clip in table order, or of ``paths`` (relative to the root)."""
        tree = self.tree or storage.tree_for(self.root)
        return [tree.stamp(rel) for rel in (self.clips["path"].tolist() if paths is None else paths)]


def discover(
    root: str | os.PathLike[str],
    *,
    layout: str | None = None,
    manifest: str | os.PathLike[str] | None = None,
) -> Dataset:
    """List the clips of the dataset in ``root``.

    Parameters
    ----------
    root : str or os.PathLike
        The dataset folder, or an fsspec URL (``s3://bucket/prefix``).
    layout : str or None
        One of :data:`LAYOUTS`; None detects it: a given ``manifest`` wins, then
        ``metadata/UrbanSound8K.csv`` (urbansound8k), then ``genres/`` or
        ``genres_original/`` (gtzan), then class subfolders with audio (folders).
    manifest : str or os.PathLike or None
        CSV with columns ``path,label`` and optional ``fold``, ``group`` (any
        other columns are carried through). A relative path is looked up from
        the working directory first, then from ``root``.

    Returns
    -------
    Dataset

    Raises
    ------
    UsageError
        Unknown ``layout``, or ``manifest`` given with a layout other than manifest
        (or missing for layout manifest).
    DatasetLayoutError
        ``root`` is not a folder, or the layout does not fit it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "dog").mkdir(); (root / "dog" / "bark.wav").touch()
    >>> ds = discover(root)
    >>> ds.layout, ds.clips["path"].tolist(), ds.clips["label"].tolist()
    ('folders', ['dog/bark.wav'], ['dog'])
    """
    if layout is not None and layout not in LAYOUTS:
        raise UsageError(f"layout={layout!r} is not one of: {', '.join(LAYOUTS)}")
    if manifest is not None and layout not in (None, "manifest"):
        raise UsageError(
            f"a manifest was given with layout={layout!r}; use layout 'manifest' or drop the manifest"
        )
    if layout == "manifest" and manifest is None:
        raise UsageError("layout 'manifest' needs a manifest CSV file (--manifest FILE.csv)")
    tree = storage.tree_for(root)
    root_path: Path | str = tree.root if storage.is_url(tree.root) else Path(tree.root)
    # A web server cannot be listed: with a manifest, a URL root need not be.
    listable = manifest is None or not storage.is_url(tree.root)
    if listable and not tree.is_dir():
        what = "does not exist" if not tree.exists() else "is not a directory"
        raise DatasetLayoutError(f"dataset root {storage.redact(root_path)} {what}; "
                                 f"pass the dataset folder")

    if manifest is not None:
        found = _find_manifest(tree, manifest)
        clips, errors = _read_manifest(found, storage.redact(os.fspath(manifest)))
        where = found.location if storage.is_url(found.location) else Path(found.location)
        return Dataset(root_path, "manifest", clips, errors, manifest=where, tree=tree)
    if layout is None:
        layout = _detect(tree)
    notes: dict[str, Any] = {}
    clips, errors = _READERS[layout](tree, notes)
    return Dataset(root_path, layout, clips, errors, tree=tree, notes=notes)


def _detect(tree) -> str:
    for name, layout in LAYOUTS.items():
        if layout.detected and _DETECTORS[name](tree):
            return name
    raise DatasetLayoutError(f"no dataset found in {storage.redact(tree.root)}: "
                             f"expected {_EXPECTED}")


# --------------------------------------------------------------- urbansound8k
def _read_urbansound8k(tree, notes: dict) -> tuple[pd.DataFrame, list[ErrorRecord]]:
    csv = _CsvFile(tree, _US8K_CSV)
    if not tree.is_file(_US8K_CSV):
        raise DatasetLayoutError(
            f"layout 'urbansound8k' expects {csv.name}, which does not exist; "
            f"point ROOT at the UrbanSound8K folder (it holds metadata/ and audio/)"
        )
    if not tree.is_dir("audio"):
        raise DatasetLayoutError(
            f"layout 'urbansound8k' expects the clips under {storage.redact(tree.location('audio'))}/fold<N>/, "
            f"which does not exist; point ROOT at the UrbanSound8K folder"
        )
    df, rows, errors = _read_csv(csv, _US8K_CSV)
    _require_columns(df, _US8K_REQUIRED, csv.name, "layout 'urbansound8k'")
    problems = _Problems(len(df))
    name = df["slice_file_name"].str.strip()
    problems.add(name == "", "slice_file_name is empty")
    problems.add(
        name.str.contains("/", regex=False) | name.str.contains("\\", regex=False),
        "slice_file_name contains a path separator; it must be a bare file name",
    )
    problems.add(name.isin([".", ".."]), "slice_file_name is not a file name")
    fold, bad_fold = _parse_fold(df["fold"], required=True)
    problems.add(bad_fold, lambda i: f"fold {df['fold'].iat[i]!r} is not an integer")
    label = df["class"].str.strip()
    problems.add(label == "", "class is empty")

    fold_text = pd.Series(fold.astype("string").fillna(""), index=df.index, dtype=str)
    path = "audio/fold" + fold_text + "/" + name
    # Rows with a bad fold have no folder; name the file itself in errors.csv.
    error_path = path.where(~bad_fold, name)
    group = df["fsID"].str.strip() if "fsID" in df.columns else ""
    extras = [c for c in df.columns if c not in ("class", "fold")]
    return _finish(df, rows, errors, problems, _US8K_CSV, path, error_path, label, fold, group, extras)


# ------------------------------------------------------------ speech commands
def _read_speechcommands(tree, notes: dict) -> tuple[pd.DataFrame, list[ErrorRecord]]:
    """``ROOT/<word>/<speaker>_nohash_<n>.wav`` plus the official split lists.

    label = the word folder; group = the speaker (the file name before
    ``_nohash_``); split = validation or test when ``validation_list.txt``
    or ``testing_list.txt`` lists the clip, else train. ``_background_noise_``
    holds noise for augmentation, not clips: its files go to ``notes``.
    """
    errors: list[ErrorRecord] = []
    found = []
    for word in _subdirs(tree, "", errors):
        if word.startswith("_"):
            continue
        found.extend((word, p) for p in _walk_audio(tree, f"{word}/", False, errors))
    found.sort()
    if not found:
        raise DatasetLayoutError(
            f"layout 'speechcommands' expects {storage.redact(tree.root)}/<word>/<speaker>_nohash_<n>.wav; "
            f"no word folder holds an audio file")
    notes["background_noise"] = sorted(_walk_audio(tree, f"{_SC_NOISE}/", False, []))
    listed: dict[str, str] = {}
    present = {p for _, p in found}
    for part, name in _SC_LISTS.items():
        if not tree.is_file(name):
            continue
        with tree.open(name) as f:
            lines = f.read().decode("utf-8-sig").splitlines()
        for row, line in enumerate(lines, start=1):
            rel = line.strip().replace("\\", "/")
            if not rel:
                continue
            if rel not in present:
                errors.append(ErrorRecord(rel, row, "metadata", _ROW_ERROR,
                                          f"{name} row {row}: {rel!r} is listed but not in the "
                                          f"dataset. Restore the file or remove the line.",
                                          "listed clip not found"))
            elif listed.setdefault(rel, part) != part:
                listed[rel] = "both"
    keep = []
    for word, rel in found:
        if listed.get(rel) == "both":
            errors.append(ErrorRecord(rel, None, "metadata", _ROW_ERROR,
                                      f"{rel!r} is listed in both {_SC_LISTS['validation']} and "
                                      f"{_SC_LISTS['test']}; it was left out. Keep it in one list.",
                                      "listed in two parts of the split"))
        else:
            keep.append((word, rel))
    split = [listed.get(rel, "train") for _, rel in keep]
    speakers = [rel.rsplit("/", 1)[-1].split("_nohash_")[0] for _, rel in keep]
    notes["warnings"] = _speakers_in_two_parts(speakers, split)
    has_lists = any(tree.is_file(name) for name in _SC_LISTS.values())
    clips = _clips_frame([rel for _, rel in keep], [w for w, _ in keep], _no_folds(len(keep)),
                         speakers, {}, split if has_lists else None)
    return clips, errors


def _speakers_in_two_parts(speakers: list[str], split: list[str]) -> list[str]:
    parts: dict[str, set[str]] = {}
    for speaker, part in zip(speakers, split, strict=True):
        parts.setdefault(speaker, set()).add(part)
    crossing = {s: p for s, p in parts.items() if len(p) > 1}
    if not crossing:
        return []
    shown = ", ".join(f"{s} ({'/'.join(sorted(p))})" for s, p in sorted(crossing.items())[:10])
    more = f" and {len(crossing) - 10} more" if len(crossing) > 10 else ""
    return [(f"{len(crossing)} speaker(s) have clips in more than one part of the split: "
            f"{shown}{more}. The holdout scores leak across those speakers; the official "
            f"lists keep every speaker in one part.")]


# ------------------------------------------------------------------ manifest
def _read_manifest(csv: _CsvFile, shown: str) -> tuple[pd.DataFrame, list[ErrorRecord]]:
    df, rows, errors = _read_csv(csv, shown)
    _require_columns(df, _MANIFEST_REQUIRED, csv.name, "manifest")
    problems = _Problems(len(df))
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
        fold, bad_fold = _parse_fold(df["fold"], required=False)
        problems.add(bad_fold, lambda i: f"fold {df['fold'].iat[i]!r} is not an integer")
    else:
        fold = _no_folds(len(df))
    group = df["group"].str.strip() if "group" in df.columns else ""
    split = None
    if "split" in df.columns:
        split = df["split"].str.strip().str.lower().map(lambda v: _SPLIT_NAMES.get(v, v))
        problems.add(~split.isin(SPLITS), lambda i: (
            f"split {df['split'].iat[i]!r} is not one of: {', '.join(SPLITS)}"))
    extras = [c for c in df.columns if c not in (*ID_COLUMNS, "split")]
    return _finish(df, rows, errors, problems, shown, path, error_path, label, fold, group, extras,
                   split)


class _CsvFile:
    """A metadata CSV in a tree (local or remote), named as the user would write it."""

    def __init__(self, tree, rel: str) -> None:
        self.tree, self.rel = tree, rel
        self.location = tree.location(rel)
        self.name = storage.redact(self.location)  # for messages

    def open(self):
        return self.tree.open(self.rel)


def _find_manifest(tree, manifest: str | os.PathLike[str]) -> _CsvFile:
    text = os.fspath(manifest)
    if storage.is_url(text):
        parent, _, name = text.rstrip("/").rpartition("/")
        remote = storage.RemoteTree(parent)
        if remote.is_file(name):
            return _CsvFile(remote, name)
        raise DatasetLayoutError(f"manifest {storage.redact(text)!r} cannot be read "
                                 f"({remote.why_not(name)}); pass the URL of an existing CSV "
                                 f"file, with the credentials it needs")
    given = Path(storage.local_path(text))
    if given.is_file():
        return _CsvFile(storage.LocalTree(str(given.parent)), given.name)
    rel = given.as_posix()
    if not given.is_absolute() and tree.is_file(rel):
        return _CsvFile(tree, rel)
    places = str(given) if given.is_absolute() else f"{Path.cwd() / given} or {storage.redact(tree.location(rel))}"
    raise DatasetLayoutError(f"manifest {text!r} not found (looked for {places}); "
                             f"pass the path of an existing CSV file")


# ------------------------------------------------------------ folder layouts
def _read_gtzan(tree, notes: dict) -> tuple[pd.DataFrame, list[ErrorRecord]]:
    bases = [d for d in _GTZAN_DIRS if tree.is_dir(d)]
    if not bases:
        raise DatasetLayoutError(
            f"layout 'gtzan' expects {storage.redact(tree.location('genres'))}/<label>/ or "
            f"{storage.redact(tree.location('genres_original'))}/<label>/; neither folder exists"
        )
    for base in bases:
        found, errors = _scan_classes(tree, base + "/", recursive=False)
        if found:
            return _folder_clips(found), errors
    raise DatasetLayoutError(
        f"layout 'gtzan': no audio files in the genre subfolders of "
        f"{' or '.join(storage.redact(tree.location(b)) for b in bases)}; expected e.g. genres/blues/blues.00000.wav"
    )


def _read_folders(tree, notes: dict) -> tuple[pd.DataFrame, list[ErrorRecord]]:
    found, errors = _scan_classes(tree, "", recursive=True)
    if not found:
        raise DatasetLayoutError(
            f"layout 'folders' expects {storage.redact(tree.root)}/<label>/<audio files>, but no class subfolder "
            f"holds an audio file"
        )
    return _folder_clips(found), errors


def _has_class_folders_with_audio(tree) -> bool:
    """Stop at the first audio file, so detection stays cheap on huge trees."""
    for label in _subdirs(tree, "", []):
        for _ in _walk_audio(tree, f"{label}/", True, [], stop_after_first=True):
            return True
    return False


def _scan_classes(tree, prefix: str, *, recursive: bool) -> tuple[list[tuple[str, str]], list[ErrorRecord]]:
    """(label, path) of every audio entry below ``<prefix><label>/``, plus listing errors."""
    errors: list[ErrorRecord] = []
    found: list[tuple[str, str]] = []
    for label in _subdirs(tree, prefix, errors):
        rel = f"{prefix}{label}/"
        found.extend((label, p) for p in _walk_audio(tree, rel, recursive, errors))
    found.sort()
    return found, errors


def _subdirs(tree, prefix: str, errors: list[ErrorRecord]) -> list[str]:
    """Names of the visible subfolders of ``prefix``; stray audio files there become errors."""
    dirs = []
    for entry in _scan(tree, prefix, errors):
        if entry.name.startswith("."):
            continue
        if is_audio_path(entry.name):
            errors.append(ErrorRecord(
                prefix + entry.name, None, "metadata", _ROW_ERROR,
                f"{prefix + entry.name!r} is not inside a class folder, so it has no label; "
                f"move it into a <label>/ subfolder", "audio file outside the class folders",
            ))
        elif entry.is_dir:
            dirs.append(entry.name)
    return dirs


def _walk_audio(tree, top: str, recursive: bool, errors: list[ErrorRecord], *, stop_after_first: bool = False):
    """Yield the paths of audio entries under folder ``top`` (ending in /), skipping hidden ones.

    Entries named like audio are yielded even if they are directories, so the
    loader reports them instead of the dataset silently shrinking. A folder
    reached twice through symlinks is walked once (no endless loops). A
    folder holding an output set of ours (an EDA page with its example
    clips, features written into the dataset by an older version) is
    skipped: its clips are copies, not data.
    """
    stack = [top]
    first = tree.identity(top.rstrip("/"))
    seen = {first} if first is not None else set()
    while stack:
        prefix = stack.pop()
        entries = _scan(tree, prefix, errors)
        if _holds_output_set(tree, prefix, entries):
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            if is_audio_path(name):
                yield prefix + name
                if stop_after_first:
                    return
            elif recursive and entry.is_dir and entry.identity not in seen:
                if entry.identity is not None:
                    seen.add(entry.identity)
                stack.append(f"{prefix}{name}/")


def _holds_output_set(tree, prefix: str, entries: list) -> bool:
    """Whether a listed folder holds an output set of ours (its description file, checked)."""
    for entry in entries:
        if entry.is_dir or entry.name not in MARKERS:
            continue
        if isinstance(tree, storage.LocalTree):
            if output_kind(tree.location(prefix.rstrip("/"))) is not None:
                return True
            continue
        return True  # a remote tree: the name alone (reading it would cost a request)
    return False


def _scan(tree, prefix: str, errors: list[ErrorRecord]) -> list:
    folder = prefix.rstrip("/")
    try:
        return tree.scan(folder)
    except OSError as exc:
        errors.append(ErrorRecord(
            folder, None, "metadata", type(exc).__name__,
            f"cannot list folder {storage.redact(tree.location(folder))}: {exc.strerror or exc}; its clips were "
            f"skipped. Fix its permissions.", "cannot list a folder",
        ))
        return []


def _folder_clips(found: list[tuple[str, str]]) -> pd.DataFrame:
    labels = [label for label, _ in found]
    paths = [path for _, path in found]
    return _clips_frame(paths, labels, _no_folds(len(found)), [""] * len(found), {})


# --------------------------------------------------------------- CSV helpers
class _Problems:
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


def _read_csv(csv: _CsvFile, shown: str) -> tuple[pd.DataFrame, np.ndarray, list[ErrorRecord]]:
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
        ErrorRecord("", row, "metadata", _ROW_ERROR,
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


def _require_columns(df: pd.DataFrame, required: tuple[str, ...], csv: str, what: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetLayoutError(
            f"{what}: {csv} is missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(df.columns) or 'none'}); fix the header row"
        )


def _parse_fold(raw: pd.Series, *, required: bool) -> tuple[pd.Series, np.ndarray]:
    """Integer folds as Int64 (<NA> where empty or bad) and a mask of bad values."""
    text = raw.str.strip()
    ok = text.str.fullmatch(_INT_RE).to_numpy(dtype=bool)
    empty = (text == "").to_numpy()
    bad = ~ok if required else ~(ok | empty)
    values = pd.to_numeric(text.where(ok, None), errors="coerce")
    return values.astype("Int64").reset_index(drop=True), bad


def _no_folds(n: int) -> pd.Series:
    return pd.Series(pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool)))


def _finish(df, rows, errors, problems, shown, path, error_path, label, fold, group, extras,
            split=None):
    """Turn the checked metadata into (clips, errors), dropping bad and duplicate rows."""
    good = np.flatnonzero(~problems.bad)
    for pos, first in _duplicates(path.iloc[good].tolist()).items():
        i = good[pos]
        problems.flag(i, f"path {path.iat[i]!r} is already listed in row "
                         f"{rows[good[first]]}; each clip must appear once")
    for i in sorted(problems.reasons):
        reason = "; ".join(problems.reasons[i])
        errors.append(ErrorRecord(error_path.iat[i], int(rows[i]), "metadata", _ROW_ERROR,
                                  f"{shown} row {rows[i]}: {reason}. Fix or remove the row.",
                                  "unusable metadata row"))
    errors.sort(key=lambda e: e.row or 0)
    keep = ~problems.bad
    group_col = group[keep] if isinstance(group, pd.Series) else [group] * int(keep.sum())
    extra_cols = {_extra_name(c): df[c][keep] for c in extras}
    clips = _clips_frame(path[keep], label[keep], fold[keep], group_col, extra_cols,
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


def _clips_frame(path, label, fold, group, extras: dict, split=None) -> pd.DataFrame:
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


# name -> (does the tree look like it, read it); the manifest layout is read by
# _read_manifest, since it needs the manifest's location.
_DETECTORS = {
    "urbansound8k": lambda tree: tree.is_file(_US8K_CSV),
    "speechcommands": lambda tree: (any(tree.is_file(n) for n in _SC_LISTS.values())
                                    or tree.is_dir(_SC_NOISE)),
    "gtzan": lambda tree: any(tree.is_dir(d) for d in _GTZAN_DIRS),
    "folders": _has_class_folders_with_audio,
}
_READERS = {
    "urbansound8k": _read_urbansound8k,
    "speechcommands": _read_speechcommands,
    "gtzan": _read_gtzan,
    "folders": _read_folders,
}
