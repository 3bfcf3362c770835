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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DatasetLayoutError, UsageError
from . import storage
from .audio import is_audio_path
from .gtzan import fault_filtered_parts
from .layouts import LAYOUTS
from .manifests import (
    ID_COLUMNS,
    CsvFile,
    Problems,
    clips_frame,
    find_manifest,
    finish_clips,
    no_folds,
    parse_fold,
    read_listing,
    read_manifest,
    require_columns,
)
from .ownership import MARKERS, output_kind
from .records import ROW_ERROR, ErrorRecord

__all__ = ["LAYOUTS", "Dataset", "discover", "list_audio"]

_US8K_CSV = "metadata/UrbanSound8K.csv"
_US8K_REQUIRED = ("slice_file_name", "fold", "class")
_GTZAN_DIRS = ("genres", "genres_original")
_SC_LISTS = {"validation": "validation_list.txt", "test": "testing_list.txt"}
_SC_NOISE = "_background_noise_"
_EXPECTED = "; ".join(f"{layout.shape} (layout {name})" for name, layout in LAYOUTS.items())


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
        a speaker in two parts of the split), ``info`` (str list: what was
        decided for the user, e.g. GTZAN's fault-filtered split) and
        ``background_noise`` (the Speech Commands noise files, which are not
        clips).
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
        found = find_manifest(tree, manifest)
        clips, errors = read_manifest(found, storage.redact(os.fspath(manifest)))
        where = found.location if storage.is_url(found.location) else Path(found.location)
        return Dataset(root_path, "manifest", clips, errors, manifest=where, tree=tree)
    if layout is None:
        layout = _detect(tree)
    notes: dict[str, Any] = {}
    clips, errors = _READERS[layout](tree, notes)
    return Dataset(root_path, layout, clips, errors, tree=tree, notes=notes)


def list_audio(root: str | os.PathLike[str]) -> Dataset:
    """Every audio file under ``root`` (recursively, hidden ones skipped, sorted), without labels.

    What ``classify predict ROOT --out DIR`` labels when ``root`` is no
    dataset of a known layout: layout ``files``, ``label`` empty.

    Raises
    ------
    DatasetLayoutError
        ``root`` is not a folder, or holds no audio file.
    """
    tree = storage.tree_for(root)
    root_path: Path | str = tree.root if storage.is_url(tree.root) else Path(tree.root)
    if not tree.is_dir():
        what = "does not exist" if not tree.exists() else "is not a directory"
        raise DatasetLayoutError(f"{storage.redact(root_path)} {what}; pass the folder of audio files")
    errors: list[ErrorRecord] = []
    paths = sorted(_walk_audio(tree, "", True, errors))
    if not paths:
        raise DatasetLayoutError(f"no audio files under {storage.redact(root_path)} (searched recursively "
                                 "by extension)")
    clips = clips_frame(paths, [""] * len(paths), no_folds(len(paths)), [""] * len(paths), {})
    return Dataset(root_path, "files", clips, errors, tree=tree)


def _detect(tree) -> str:
    for name, layout in LAYOUTS.items():
        if layout.detected and _DETECTORS[name](tree):
            return name
    raise DatasetLayoutError(f"no dataset found in {storage.redact(tree.root)}: "
                             f"expected {_EXPECTED}")


# --------------------------------------------------------------- urbansound8k
def _read_urbansound8k(tree, notes: dict) -> tuple[pd.DataFrame, list[ErrorRecord]]:
    csv = CsvFile(tree, _US8K_CSV)
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
    df, rows, errors = read_listing(csv, _US8K_CSV)
    require_columns(df, _US8K_REQUIRED, csv.name, "layout 'urbansound8k'")
    problems = Problems(len(df))
    name = df["slice_file_name"].str.strip()
    problems.add(name == "", "slice_file_name is empty")
    problems.add(
        name.str.contains("/", regex=False) | name.str.contains("\\", regex=False),
        "slice_file_name contains a path separator; it must be a bare file name",
    )
    problems.add(name.isin([".", ".."]), "slice_file_name is not a file name")
    fold, bad_fold = parse_fold(df["fold"], required=True)
    problems.add(bad_fold, lambda i: f"fold {df['fold'].iat[i]!r} is not an integer")
    label = df["class"].str.strip()
    problems.add(label == "", "class is empty")

    fold_text = pd.Series(fold.astype("string").fillna(""), index=df.index, dtype=str)
    path = "audio/fold" + fold_text + "/" + name
    # Rows with a bad fold have no folder; name the file itself in errors.csv.
    error_path = path.where(~bad_fold, name)
    group = df["fsID"].str.strip() if "fsID" in df.columns else ""
    extras = [c for c in df.columns if c not in ("class", "fold")]
    return finish_clips(df, rows, errors, problems, _US8K_CSV, path, error_path, label, fold, group, extras)


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
                errors.append(ErrorRecord(rel, row, "metadata", ROW_ERROR,
                                          f"{name} row {row}: {rel!r} is listed but not in the "
                                          f"dataset. Restore the file or remove the line.",
                                          "listed clip not found"))
            elif listed.setdefault(rel, part) != part:
                listed[rel] = "both"
    keep = []
    for word, rel in found:
        if listed.get(rel) == "both":
            errors.append(ErrorRecord(rel, None, "metadata", ROW_ERROR,
                                      f"{rel!r} is listed in both {_SC_LISTS['validation']} and "
                                      f"{_SC_LISTS['test']}; it was left out. Keep it in one list.",
                                      "listed in two parts of the split"))
        else:
            keep.append((word, rel))
    split = [listed.get(rel, "train") for _, rel in keep]
    speakers = [rel.rsplit("/", 1)[-1].split("_nohash_")[0] for _, rel in keep]
    notes["warnings"] = _speakers_in_two_parts(speakers, split)
    has_lists = any(tree.is_file(name) for name in _SC_LISTS.values())
    clips = clips_frame([rel for _, rel in keep], [w for w, _ in keep], no_folds(len(keep)),
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
            labels = [label for label, _ in found]
            paths = [path for _, path in found]
            split, said = fault_filtered_parts(paths, labels)
            notes["info" if split is not None else "warnings"] = said
            return clips_frame(paths, labels, no_folds(len(found)), [""] * len(found), {}, split), errors
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
                prefix + entry.name, None, "metadata", ROW_ERROR,
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
    return clips_frame(paths, labels, no_folds(len(found)), [""] * len(found), {})


# name -> (does the tree look like it, read it); the manifest layout is read by
# read_manifest, since it needs the manifest's location.
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
