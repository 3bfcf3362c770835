"""Which folders a command may write into, and which files in them it may delete.

Every command writes an *output set*: a folder whose description file
names the files it wrote (``features.json``, ``patches.json``, ``run.json``,
``page.json``; :data:`MARKERS`). The rules, the same for every command:

- A command writes into a folder that is missing or empty, or that holds a
  previous set of its own kind; then it deletes only files that set lists.
- A folder holding files of someone else is refused, with a message naming
  the folder and ``--force``. With ``--force`` the set is written beside
  those files, which are kept; a file of theirs with one of our names is
  never overwritten.
- A folder holding a set of another kind is refused even with ``--force``
  (two sets would share ``errors.csv`` and ``.checkpoint/``).
- An output folder inside the dataset it describes is refused: the next
  run would take its files for clips.

Light to import (standard library only): ``make clean`` runs
``python -m features.io.ownership clean DIR...`` (:func:`remove_output_sets`),
which removes the output sets under a folder and nothing else.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import OutputFolderError

__all__ = ["MARKERS", "OutputFolderError", "claim", "inside", "listed_files", "output_kind",
           "remove_output_sets"]

#: Description file of each kind of output set -> what made it (for messages).
MARKERS = {
    "features.json": "the feature table of 'features extract'",
    "patches.json": "the patches of 'features patches'",
    "run.json": "a training run of 'classify train'",
    "page.json": "a page of 'classify eda' or 'classify report'",
    "predictions.json": "the predictions of 'classify predict ROOT --out DIR'",
}
#: Entries every output folder may hold that belong to the run writing it:
#: the lock, the checkpoint, staging folders of a run that died.
INTERNAL_PREFIXES = (".lock", ".checkpoint", ".staging-", ".committing-")
# A memo of the Makefile's (which arguments the last `make train` used).
_MAKE_MEMO = ".make"
#: Marker of a folder that our tools generated whole (the demo dataset, benchmark clips).
GENERATED = ".generated"


def _read_marker(path: Path) -> dict[str, Any] | None:
    """The JSON object in an output set's description file, or None if it is not one of ours."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if path.name == "page.json":
        return data if data.get("format") == "soundfeatures-page" else None
    if path.name == "run.json":
        return data if "table_sha256" in data and "models" in data else None
    return data if isinstance(data.get("files"), dict) and "param_key" in data else None


def output_kind(folder: str | os.PathLike[str]) -> str | None:
    """The description file of the output set in ``folder`` (``features.json``, ...), or None."""
    folder = Path(folder)
    for name in MARKERS:
        if (folder / name).is_file() and _read_marker(folder / name) is not None:
            return name
    return None


def listed_files(folder: str | os.PathLike[str], marker: str) -> list[str]:
    """The files (relative paths) the set in ``folder`` says it wrote, the description file last.

    A ``run.json`` of an older version lists no files: its files are then
    the run folder's fixed names (``extra`` of :func:`claim`).
    """
    folder = Path(folder)
    data = _read_marker(folder / marker) or {}
    files = data.get("files")
    if files is None and marker == "run.json":
        return _legacy_run_files(folder) + [marker]
    names = list(files) if isinstance(files, (dict, list)) else []
    return [n for n in names if _safe_relative(n)] + [marker]


# What a run folder held before run.json listed its files.
_LEGACY_RUN_FILES = ("leaderboard.csv", "folds.csv", "per_class.csv", "predictions.csv",
                     "clip_predictions.csv", "importance.csv", "importance.png", "unmatched.csv",
                     "folds.png", "report.md")


def _legacy_run_files(folder: Path) -> list[str]:
    """The files of a run written before ``run.json`` listed them: the run folder's fixed names."""
    names = [n for n in _LEGACY_RUN_FILES if (folder / n).is_file()]
    confusion = folder / "confusion"
    if confusion.is_dir():
        names += sorted(f"confusion/{p.name}" for p in confusion.iterdir()
                        if p.is_file() and p.stem.endswith(("_counts", "_normalized")))
    model = folder / "model"
    if (model / "bundle.json").is_file():
        names += sorted(f"model/{p.name}" for p in model.iterdir() if p.is_file())
    return names


def _safe_relative(name: Any) -> bool:
    """A relative path that stays inside its folder (a description file is not trusted blindly)."""
    if not isinstance(name, str) or not name:
        return False
    parts = Path(name).parts
    return not Path(name).is_absolute() and ".." not in parts


def inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is ``root`` or lies under it (both resolved; ``path`` need not exist)."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):
        return False


def _foreign(folder: Path) -> list[str]:
    """Names of the entries of ``folder`` that no run of ours made."""
    return sorted(e.name for e in os.scandir(folder)
                  if not e.name.startswith(INTERNAL_PREFIXES))


def claim(out: str | os.PathLike[str], marker: str, names: Sequence[str], *, force: bool = False,
          dataset_root: str | os.PathLike[str] | None = None, command: str = "") -> list[str]:
    """Check that a command may write its output set into ``out``; what it may then delete.

    Parameters
    ----------
    out : path
        The output folder (need not exist).
    marker : str
        The set's description file, a key of :data:`MARKERS`.
    names : sequence of str
        Every file (relative path) the command is about to write.
    force : bool
        Write beside files that are not ours (they are kept).
    dataset_root : path, optional
        The local dataset the outputs describe: ``out`` may not lie inside it.
    command : str
        How the user runs the command, for messages (``features extract``).

    Returns
    -------
    list of str
        The files of the previous set in ``out`` (relative paths): the only
        files the command may delete or replace. Empty for a new folder.

    Raises
    ------
    OutputFolderError
        The message names the folder, what is in it, and what to do.
    """
    out = Path(out)
    if dataset_root is not None and inside(out, dataset_root):
        raise OutputFolderError(
            f"the output folder {out} is inside the dataset {dataset_root}: its files would be "
            f"taken for clips (or a class) by the next run; choose a folder outside the dataset")
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"the output folder {out} is a file; choose a folder")
    if not out.is_dir():
        return []
    kind = output_kind(out)
    if kind is not None and kind != marker:
        raise OutputFolderError(
            f"{out} holds {MARKERS[kind]} ({kind}); {command or 'this command'} needs a folder "
            f"of its own (the two sets would share file names): choose another output folder")
    if kind == marker:
        return listed_files(out, marker)
    others = _foreign(out)
    if not others:
        return []
    shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    if not force:
        raise OutputFolderError(
            f"the output folder {out} is not empty and holds no output of {command or 'this command'} "
            f"({shown}); choose a new or empty folder, or pass --force to write beside those "
            f"files (they are kept)")
    clash = [n for n in names if (out / n).exists() or (out / n).is_symlink()]
    if clash:
        raise OutputFolderError(
            f"{out} already holds {', '.join(clash[:5])}, which {command or 'this command'} did "
            f"not write; --force never replaces a file it did not write: move "
            f"{'it' if len(clash) == 1 else 'them'} away or choose another folder")
    return []


def remove_listed(out: Path, previous: Iterable[str], keep: Iterable[str]) -> None:
    """Delete the files of the previous set that the new one does not replace (and empty folders)."""
    keep = set(keep)
    for name in previous:
        if name in keep:
            continue
        path = out / name
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            path.unlink()
        _prune(path.parent, out)


def _prune(folder: Path, top: Path) -> None:
    """Remove ``folder`` and its parents up to ``top`` (excluded) while they are empty."""
    while folder != top and inside(folder, top):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


# --------------------------------------------------------------- make clean


def remove_output_sets(top: str | os.PathLike[str]) -> list[Path]:
    """Remove every output set under ``top`` (what our commands wrote), and nothing else.

    A set's listed files, its lock, checkpoint and staging folders, the
    Makefile's memo (``.make/``), a folder generated whole (marked
    ``.generated``: the demo data, benchmark clips), and the folders that
    left empty (``top`` included); a file we did not write keeps its
    folder, and a folder that held no set is not touched. Returns the
    folders whose sets were removed.
    """
    top = Path(top)
    removed: list[Path] = []
    if not top.is_dir():
        return removed
    for folder, _dirs, _files in os.walk(top, topdown=False):
        here = Path(folder)
        if not here.exists():
            continue  # inside a generated dataset removed below it
        if here.name == _MAKE_MEMO or (here / GENERATED).is_file():
            shutil.rmtree(here, ignore_errors=True)
            removed.append(here)
            _prune(here.parent, top.parent)
            continue
        kind = output_kind(here)
        if kind is None:
            continue
        for name in listed_files(here, kind):
            with contextlib.suppress(OSError):
                (here / name).unlink()
        for entry in list(here.iterdir()):
            if entry.name.startswith(INTERNAL_PREFIXES):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        # Folders the listed files were in (confusion/, audio/), deepest first.
        for sub in sorted((p for p in here.rglob("*") if p.is_dir() and not p.is_symlink()),
                          key=lambda p: len(p.parts), reverse=True):
            _rmdir(sub)
        removed.append(here)
        _prune(here, top.parent)
    return removed


def _rmdir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m features.io.ownership clean DIR...``: what ``make clean`` runs."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "clean":
        print("usage: python -m features.io.ownership clean DIR...", file=sys.stderr)
        return 2
    for top in args[1:]:
        for folder in remove_output_sets(top):
            print(f"removed the outputs in {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
