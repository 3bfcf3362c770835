"""The log-mel patches of a feature table's rows: the CNN's input, joined by ``path``.

``features extract`` (the table) and ``features patches`` (the patches) run
separately over one dataset, so a clip that failed in one and not in the
other is a row on one side only. :func:`attach_patches` joins the patch
index (``patches.parquet``) to the table's rows by ``path`` and keeps the
clips present on both sides: every model of the run, on feature columns or
on patches, is then trained and scored on exactly those clips, under one
set of splits. The clips it leaves out are returned (one row each, with
the side they are missing from and, when that side's ``errors.csv`` says,
why), so that ``train`` reports them; none is dropped silently.

:class:`TablePatches` is what a training worker receives: the folder and
the patch row of every table row (small integer arrays), never the
patches. The worker opens the memory-mapped arrays itself and reads only
the rows it fits on or predicts.

Where the patches are: ``--patches DIR``, else by convention the folder
``patches`` beside the table's folder (``data/output/<name>/patches`` for
``data/output/<name>/features/features.parquet``, where ``make patches``
writes them): :func:`default_patches_dir`.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.patches import PATCHES_JSON, read_patches
from features.table import read_csv

from .errors import TableError, UsageError
from .tables import FeatureTable

__all__ = ["UNMATCHED_COLUMNS", "TablePatches", "attach_patches", "default_patches_dir",
           "find_patches"]

#: Columns of the clips left out of a run (``unmatched.csv``).
UNMATCHED_COLUMNS = ("path", "label", "missing_from", "reason")
_HOW_TO_MAKE = ("run `python -m features patches DATASET --out DIR` on the table's dataset "
                "(`make patches`)")


@dataclasses.dataclass(frozen=True, eq=False)
class TablePatches:
    """Where the patch of every table row is; opened lazily, cheap to send to a worker.

    Indexing (``patches[rows]``) reads the patches of those table rows from
    the memory-mapped ``patches.npy`` into memory, so a :class:`TablePatches`
    stands where a feature matrix ``X`` stands in :func:`classify.validation.fit_split`.

    Attributes
    ----------
    folder : Path
        The output folder of ``features patches``.
    params : features.params.PatchParams
        How the patches were made (their shape is ``params.shape``).
    rows : np.ndarray [shape=(n_table_rows,), dtype=int64]
        Row of ``patches.npy`` of each table row.
    stereo_rows : np.ndarray [shape=(n_table_rows,), dtype=int64]
        Row of ``channels.npy`` of each table row, -1 for a mono clip.
    n_noise : int
        Background-noise patches in ``noise.npy`` (0: none).
    root : str or None
        The dataset the patches were made from (``patches.json``'s ``root``).
    """

    folder: Path
    params: Any
    rows: np.ndarray
    stereo_rows: np.ndarray
    n_noise: int = 0
    root: str | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_table_rows, n_mels, n_frames)``."""
        return (len(self.rows), *self.params.shape)

    def __getitem__(self, rows) -> np.ndarray:
        """np.ndarray [shape=(len(rows), n_mels, n_frames), dtype=float32] of those table rows."""
        patch_rows = self.rows[np.asarray(rows)]
        # Sorted reads touch each page of the memory map once.
        order = np.argsort(patch_rows, kind="stable")
        out = np.empty((len(patch_rows), *self.params.shape), dtype=np.float32)
        out[order] = self.arrays()["patches"][patch_rows[order]]
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """``patches``, ``channels`` and ``noise``, memory-mapped read-only (checked when attached)."""
        return {name: np.load(self.folder / f"{name}.npy", mmap_mode="r")
                for name in ("patches", "channels", "noise")}

    def fit_params(self, step: str, rows: np.ndarray) -> dict[str, Any]:
        """What the augmentation of pipeline step ``step`` needs when fitted on table ``rows``.

        ``<step>__stereo_rows`` (the stereo row of each), ``<step>__channels``
        and ``<step>__noise`` (the whole memory maps; only rows of training
        clips are read), as :meth:`classify.cnn.KerasCNNClassifier.fit` takes them.
        """
        arrays = self.arrays()
        return {f"{step}__stereo_rows": self.stereo_rows[np.asarray(rows)],
                f"{step}__channels": arrays["channels"],
                f"{step}__noise": arrays["noise"] if len(arrays["noise"]) else None}

    def describe(self) -> str:
        """One line: how many patches, their shape, from where."""
        shape = "x".join(map(str, self.params.shape))
        noise = f", {self.n_noise} noise patches" if self.n_noise else ""
        return f"patches: {len(self)} of {shape} ({self.params.duration:g} s) from {self.folder}{noise}"


def default_patches_dir(table_path: str | os.PathLike) -> Path:
    """``data/output/<name>/features/features.parquet`` -> ``data/output/<name>/patches``."""
    return Path(table_path).resolve().parent.parent / "patches"


def find_patches(table_path: str | os.PathLike, given: str | os.PathLike | None) -> Path:
    """The patches folder: ``given``, else :func:`default_patches_dir` if it holds patches.

    Raises
    ------
    UsageError
        No ``patches.json`` in the folder; the message says how to make one.
    """
    folder = Path(given) if given is not None else default_patches_dir(table_path)
    if not (folder / PATCHES_JSON).is_file():
        where = "--patches" if given is not None else "the default, beside the table's folder"
        raise UsageError(f"the CNN models need the clips' log-mel patches, but {folder} ({where}) "
                         f"holds no {PATCHES_JSON}: {_HOW_TO_MAKE} and pass --patches DIR")
    return folder


def attach_patches(table: FeatureTable, folder: str | os.PathLike
                   ) -> tuple[FeatureTable, TablePatches, pd.DataFrame, list[str]]:
    """Join the patches in ``folder`` to the table's rows by ``path``; keep the clips on both sides.

    Parameters
    ----------
    table : FeatureTable
        A table of clips (one row per clip) with a ``path`` column.
    folder : path
        Output folder of ``features patches`` for the same dataset; its
        files are checked against ``patches.json`` first.

    Returns
    -------
    table : FeatureTable
        The rows that have a patch, in table order (the input table when
        all have one).
    patches : TablePatches
        The patch of each of those rows.
    unmatched : pd.DataFrame
        Columns :data:`UNMATCHED_COLUMNS`: every clip left out, ``missing_from``
        ``"patches"`` (a table row without a patch) or ``"features"`` (a
        patch without a table row), table rows first.
    notes : list of str
        Warnings (the two were made from different dataset folders).

    Raises
    ------
    UsageError
        A segment table, a table without ``path``, or no clip in common.
    TableError
        A path appears twice, or a clip has another label in the patches.
    features.errors.OutputMismatchError
        The patch files are not the set ``patches.json`` describes.
    """
    folder = Path(folder)
    if table.is_segmented:
        raise UsageError(
            f"{table.path} has one row per window (features extract --segment) but the CNN "
            "models take one patch per clip: train cnn/cnn_aug on a table of whole clips "
            "(extract without --segment), or leave them out of --models")
    if table.path_col != "path":
        raise UsageError(f"{table.path} has no 'path' column to join the patches on (the "
                         "gtzan preset keeps file names only): train cnn/cnn_aug on a table of "
                         "the default preset")
    data = read_patches(folder)
    index = data["index"]
    paths = table.df["path"].astype(str).to_numpy(dtype=object)
    patch_paths = index["path"].astype(str).to_numpy(dtype=object)
    for where, values in ((table.path, paths), (folder / "patches.parquet", patch_paths)):
        repeated = pd.Series(values).duplicated()
        if repeated.any():
            raise TableError(f"{where}: clip {values[int(np.argmax(repeated))]} appears twice, so "
                             "its patch cannot be told apart; re-extract it")
    position = pd.Series(np.arange(len(patch_paths)), index=patch_paths)
    found = np.isin(paths, patch_paths)
    if not found.any():
        raise UsageError(
            f"none of the {len(paths)} clips of {table.path} has a patch in {folder} (table paths "
            f"like {paths[0]!r}, patch paths like {patch_paths[0] if len(patch_paths) else None!r}): "
            f"the patches come from another dataset; {_HOW_TO_MAKE}")
    rows = position[paths[found]].to_numpy(dtype=np.int64)
    labels = table.y[found]
    patch_labels = index["label"].astype(str).to_numpy(dtype=object)[rows]
    differ = labels != patch_labels
    if differ.any():
        k = int(np.argmax(differ))
        raise TableError(
            f"clip {paths[found][k]} is labelled {labels[k]!r} in {table.path} but "
            f"{patch_labels[k]!r} in {folder / 'patches.parquet'} ({int(differ.sum())} clip(s) "
            "differ): the table and the patches were made from different metadata; "
            "re-extract both from one dataset")
    stereo = (index["stereo_row"].to_numpy(dtype=np.int64)[rows] if "stereo_row" in index.columns
              else np.full(len(rows), -1, np.int64))
    unmatched = _unmatched(table, folder, paths[~found], table.y[~found],
                           np.setdiff1d(np.arange(len(patch_paths)), rows), index)
    if not found.all():
        table = dataclasses.replace(table, df=table.df[found].reset_index(drop=True))
    patches = TablePatches(folder=folder, params=data["params"], rows=rows, stereo_rows=stereo,
                           n_noise=len(data["noise"]), root=data["meta"].get("root"))
    notes = []
    table_root = (table.features_meta or {}).get("root")
    patch_root = data["meta"].get("root")
    if table_root and patch_root and Path(table_root) != Path(patch_root):
        notes.append(f"the table was extracted from {table_root} but the patches from "
                     f"{patch_root}; they are joined by path")
    return table, patches, unmatched, notes


def _unmatched(table: FeatureTable, folder: Path, no_patch: np.ndarray, labels: np.ndarray,
               patch_only: np.ndarray, index: pd.DataFrame) -> pd.DataFrame:
    """The clips on one side only, with the other side's reason when its errors.csv has one."""
    patch_reasons = _reasons(folder) if len(no_patch) else {}
    table_reasons = _reasons(table.path.parent) if len(patch_only) else {}
    extra = index["path"].astype(str).to_numpy(dtype=object)[patch_only]
    frames = [
        pd.DataFrame({"path": no_patch, "label": labels, "missing_from": "patches",
                      "reason": [patch_reasons.get(p, "") for p in no_patch]}),
        pd.DataFrame({"path": extra,
                      "label": index["label"].astype(str).to_numpy(dtype=object)[patch_only],
                      "missing_from": "features",
                      "reason": [table_reasons.get(p, "") for p in extra]}),
    ]
    return pd.concat(frames, ignore_index=True)[list(UNMATCHED_COLUMNS)]


def _reasons(folder: Path) -> dict[str, str]:
    """path -> why it failed, from the ``errors.csv`` of an output folder ({} without one)."""
    try:
        errors = read_csv(folder / "errors.csv", dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError):
        return {}
    if not {"path", "message"} <= set(errors.columns):
        return {}
    return dict(zip(errors["path"], errors["message"]))
