"""Load a feature table and check that it is fit for training.

:func:`load_table` reads ``features.csv`` or ``features.parquet`` (either
preset, or a tutorial CSV such as GTZAN's ``features_30_sec.csv``), decides
which columns are features, converts them to float64 and refuses, with one
message naming the column and row, anything a model cannot learn from. No
row is ever dropped: a bad row is an error the user fixes at the source.

Feature columns come from the data dictionary ``<stem>.schema.csv`` beside
the table (``role == "feature"``) when present; otherwise every numeric
column that does not identify or describe the clip is a feature. Either
way, a column that identifies or describes the clip
(:func:`is_metadata_column`: ``path``, ``fold``, ``group``, ``split``,
``classID``, ``fsID``, ``start``, ``end``, ``salience``, ``duration_s``,
``segment*``, ...) is never a feature: a data dictionary that calls one a
feature is refused.

Two kinds of tables get extra checks:

* A **segment table** (``features extract --segment``) has one row per
  window of a clip, with ``segment`` (0-based window index),
  ``segment_start_s`` and ``segment_end_s`` after the identifier columns.
  All windows of a clip share its ``path``, label, fold, group and split;
  a table where they do not is refused. Its :attr:`FeatureTable.groups`
  falls back to the clip's path where ``group`` is empty, so no
  group-aware split ever separates the windows of one clip.
* A table with a ``split`` column (``train`` / ``validation`` / ``test``,
  shipped by datasets such as Speech Commands) offers the ``holdout``
  protocol; its values are checked when that protocol is used
  (:mod:`classify.splits`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.engine.outputs import verify_outputs
from features.errors import OutputMismatchError
from features.table import (
    SEGMENT_COLUMNS,
    fold_values,
    missing_cells,
    read_csv,
    read_table_meta,
    restore_formulas,
    table_meta_path,
)

from .errors import TableError

LABEL_COLUMN = "label"
PATH_COLUMNS = ("path", "filename")
FOLD_COLUMN = "fold"
GROUP_COLUMN = "group"
SPLIT_COLUMN = "split"
#: The window columns of a segment table, in table order.

# Columns that identify or describe a clip rather than its sound. classID is
# the label as a number and fold/fsID/split give the split away: as features
# they would be perfect, useless leaks. ``length`` is the GTZAN CSV's sample
# count; ``class`` is UrbanSound8K's label column.
NON_FEATURE_COLUMNS = frozenset(
    {
        "path", "filename", "label", "fold", "group", "split", "fsid", "classid", "class",
        "start", "end", "salience", "duration_s", "orig_sample_rate", "orig_channels",
        "length", "slice_file_name", *SEGMENT_COLUMNS,
    }
)


def is_metadata_column(name: str) -> bool:
    """True for a column that identifies or describes a clip, never a feature.

    The names of :data:`NON_FEATURE_COLUMNS` in any case, and every
    ``segment*`` column.

    Examples
    --------
    >>> [is_metadata_column(c) for c in ("classID", "segment_start_s", "mfcc_mean_1")]
    [True, True, False]
    """
    lower = str(name).strip().lower()
    return lower in NON_FEATURE_COLUMNS or lower.startswith("segment")


# Cell texts that mean "no value" rather than "not a number".


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureTable:
    """A validated feature table.

    Attributes
    ----------
    path : Path
        The file it was read from.
    df : pd.DataFrame [shape=(n_rows, n_columns)]
        All columns; feature columns as float64 (all finite), ``label`` as
        non-empty str, ``fold`` as nullable Int64 (or str for non-numeric
        folds), ``group`` as str ("" when unknown), CSV text un-neutralised.
    feature_columns : tuple of str
        Names of the feature columns, in table order.
    feature_source : str
        Where ``feature_columns`` came from (the schema file or inference).
    label_col : str
        Always ``"label"``.
    path_col : str or None
        ``"path"`` (default preset), ``"filename"`` (gtzan) or None.
    fold_col, group_col : str or None
        ``"fold"`` / ``"group"`` if the column exists with at least one value.
    split_col : str or None
        ``"split"`` if the column exists with at least one value (the
        dataset's own train/validation/test parts).
    segment_col : str or None
        ``"segment"`` for a segment table (one row per window of a clip).
    schema : pd.DataFrame or None
        The data dictionary, if one sits beside the table.
    features_meta : dict or None
        The extraction's ``features.json``, if one sits beside the table.
    ignored_columns : tuple of str
        Columns that are neither identifying nor features (e.g. free text).
    """

    path: Path
    df: pd.DataFrame
    feature_columns: tuple[str, ...]
    feature_source: str
    label_col: str = LABEL_COLUMN
    path_col: str | None = None
    fold_col: str | None = None
    group_col: str | None = None
    split_col: str | None = None
    segment_col: str | None = None
    schema: pd.DataFrame | None = None
    features_meta: dict[str, Any] | None = None
    ignored_columns: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return len(self.df)

    @property
    def n_features(self) -> int:
        return len(self.feature_columns)

    @property
    def X(self) -> np.ndarray:
        """np.ndarray [shape=(n_rows, n_features), dtype=float64]"""
        return self.df[list(self.feature_columns)].to_numpy(dtype=np.float64)

    @property
    def y(self) -> np.ndarray:
        """np.ndarray [shape=(n_rows,), dtype=object] of str labels."""
        return self.df[self.label_col].to_numpy(dtype=object)

    @property
    def classes(self) -> np.ndarray:
        """Sorted distinct labels (the column order of every probability output)."""
        return np.unique(self.y)

    @property
    def folds(self) -> pd.Series:
        """pd.Series [shape=(n_rows,)]: each row's predefined fold, nullable Int64 (or text).

        All missing when the table has no ``fold`` column.
        """
        if self.fold_col is None:
            return pd.Series(pd.NA, index=range(self.n_rows), dtype="Int64")
        return self.df[self.fold_col].reset_index(drop=True)

    @property
    def groups(self) -> np.ndarray | None:
        """np.ndarray [shape=(n_rows,), dtype=object] of str, or None without groups.

        In a segment table a window without a group gets its clip's path,
        so the windows of one clip always form one group.
        """
        if self.segment_col is not None:
            clips = self.clips
            if self.group_col is None:
                return clips
            groups = self.df[self.group_col].to_numpy(dtype=object)
            return np.where(groups == "", clips, groups)
        if self.group_col is None:
            return None
        return self.df[self.group_col].to_numpy(dtype=object)

    @property
    def is_segmented(self) -> bool:
        """True for a segment table: one row per window, several rows per clip."""
        return self.segment_col is not None

    @property
    def clips(self) -> np.ndarray | None:
        """np.ndarray [shape=(n_rows,), dtype=object]: each window's clip (its path); None unless segmented."""
        if self.segment_col is None:
            return None
        return self.df[self.path_col].astype(str).to_numpy(dtype=object)

    @property
    def parts(self) -> np.ndarray | None:
        """np.ndarray [shape=(n_rows,), dtype=object]: the ``split`` column stripped and lower-cased ("" if blank).

        None when the table has no ``split`` values.
        """
        if self.split_col is None:
            return None
        return self.df[self.split_col].str.strip().str.lower().to_numpy(dtype=object)

    @property
    def n_clips(self) -> int:
        """Distinct clips: the rows, or the distinct paths of a segment table."""
        return self.n_rows if self.clips is None else len(pd.unique(self.clips))

    @property
    def row_names(self) -> np.ndarray:
        """What identifies each row to a person: its path/filename, else ``row N``."""
        if self.path_col is not None:
            return self.df[self.path_col].astype(str).to_numpy(dtype=object)
        return np.array([f"row {i + 1}" for i in range(self.n_rows)], dtype=object)

    def describe(self) -> str:
        """One line: rows, classes and features, and where the features came from."""
        counts = self.df[self.label_col].value_counts()
        rows = f"{self.n_rows} rows" + (f" (windows of {self.n_clips} clips)" if self.is_segmented else "")
        return (
            f"{self.path}: {rows}, {len(counts)} classes "
            f"({counts.min()}-{counts.max()} rows each), {self.n_features} features "
            f"({self.feature_source})"
        )


def load_table(path: str | Path) -> FeatureTable:
    """Read and validate a feature table.

    Parameters
    ----------
    path : str or Path
        ``.csv`` or ``.parquet`` file with a ``label`` column and numeric
        feature columns; ``<stem>.schema.csv`` and ``<stem>.json`` beside it
        are read when present. A table written by ``features extract`` must
        be exactly the file its ``features.json`` describes (SHA-256).

    Returns
    -------
    FeatureTable

    Raises
    ------
    TableError
        The table does not match its ``features.json`` (changed since, from
        another run, or an interrupted write); missing or unreadable file,
        no ``label`` column, no rows, empty
        labels, fewer than two classes, no feature column, a non-numeric
        feature value (names the column and the first bad row) or non-finite
        feature values (names the columns and how many rows).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "t.csv").write_text("path,label,a,b\\nx.wav,dog,1,2\\ny.wav,cat,3,4\\n")
    >>> t = load_table(d / "t.csv")
    >>> t.feature_columns, t.n_rows
    (('a', 'b'), 2)
    """
    path = Path(path)
    meta = _read_meta(path)
    _check_provenance(path, meta)
    raw = _read(path)
    if LABEL_COLUMN not in raw.columns:
        shown = ", ".join(map(str, raw.columns[:12])) + (" ..." if raw.shape[1] > 12 else "")
        raise TableError(
            f"{path} has no 'label' column (its columns: {shown}); the table needs one "
            "class label per row"
        )
    if raw.empty:
        raise TableError(f"{path} has no rows; extract features from at least a few clips first")
    schema = _read_schema(path)
    features, source, ignored = _choose_feature_columns(raw, schema, path)
    df = raw.copy()
    if path.suffix.lower() == ".csv":
        restore_formulas(df, [c for c in df.columns if c not in set(features)], names=False)
    path_col = next((c for c in PATH_COLUMNS if c in df.columns), None)
    names = None if path_col is None else df[path_col].astype(str).to_numpy(dtype=object)
    df[LABEL_COLUMN] = _labels(df[LABEL_COLUMN], path, names)
    converted = pd.DataFrame(
        {c: _to_float(df[c], c, path, names) for c in features}, index=df.index
    )
    df = pd.concat([df.drop(columns=features), converted], axis=1)[list(raw.columns)]
    _check_finite(df, features, path, names)
    fold_col = group_col = split_col = segment_col = None
    if FOLD_COLUMN in df.columns:
        df[FOLD_COLUMN] = fold_values(df[FOLD_COLUMN])
        fold_col = FOLD_COLUMN if df[FOLD_COLUMN].notna().any() else None
    if GROUP_COLUMN in df.columns:
        df[GROUP_COLUMN] = _text(df[GROUP_COLUMN])
        group_col = GROUP_COLUMN if (df[GROUP_COLUMN] != "").any() else None
    if SPLIT_COLUMN in df.columns:
        df[SPLIT_COLUMN] = _text(df[SPLIT_COLUMN])
        split_col = SPLIT_COLUMN if (df[SPLIT_COLUMN].str.strip() != "").any() else None
    if SEGMENT_COLUMNS[0] in df.columns:
        _check_segments(df, path, path_col, names)
        segment_col = SEGMENT_COLUMNS[0]
    return FeatureTable(
        path=path, df=df, feature_columns=tuple(features), feature_source=source,
        path_col=path_col, fold_col=fold_col, group_col=group_col, split_col=split_col,
        segment_col=segment_col, schema=schema, features_meta=meta,
        ignored_columns=tuple(ignored),
    )


# ------------------------------------------------------------------- reading


def _read(path: Path) -> pd.DataFrame:
    """The table as read; CSV cells all as str so nothing is guessed or lost."""
    if not path.is_file():
        raise TableError(
            f"table {path} does not exist (or is not a file); run `make features` first "
            "or pass the path of a features.csv or features.parquet"
        )
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # Column names as written (the CSV guards formula-like ones); cells later.
            return read_csv(path, [], dtype=str, keep_default_na=False, na_filter=False)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise TableError(f"cannot read table {path}: {_one_line(e)}") from None
    raise TableError(f"table {path} must be a .csv or .parquet file, not {suffix or 'no suffix'!r}")


def _read_schema(path: Path) -> pd.DataFrame | None:
    schema_path = path.with_name(f"{path.stem}.schema.csv")
    if not schema_path.is_file():
        return None
    try:
        schema = read_csv(schema_path, dtype=str, keep_default_na=False)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise TableError(f"cannot read data dictionary {schema_path}: {_one_line(e)}") from None
    missing = {"column", "role"} - set(schema.columns)
    if missing:
        raise TableError(
            f"data dictionary {schema_path} lacks column(s) {sorted(missing)}; re-extract "
            "the table or delete the file to infer feature columns"
        )
    return schema


def _read_meta(path: Path) -> dict[str, Any] | None:
    """The table's ``<stem>.json`` (read once per load), or None."""
    try:
        return read_table_meta(path)
    except ValueError as exc:
        raise TableError(str(exc)) from None


def _check_provenance(path: Path, meta: dict[str, Any] | None) -> None:
    """Refuse a table that is not the one its ``features.json`` describes.

    Only outputs of ``features extract`` carry the SHA-256 of their files
    (``files``); a table from elsewhere, or an older extraction, has
    nothing to check against.
    """
    listed = isinstance(meta, dict) and isinstance(meta.get("files"), dict)
    if listed and path.name not in meta["files"]:
        raise TableError(f"{table_meta_path(path)} does not list {path.name}, "
                         f"so the table comes from another run: re-extract it")
    if listed or any(path.parent.glob(".committing-*")):  # a set being replaced: verify says so
        try:
            verify_outputs(path, meta=meta if listed else None)
        except OutputMismatchError as exc:
            raise TableError(f"cannot use {path}: {exc}") from None


# ----------------------------------------------------------- feature columns


def _choose_feature_columns(
    raw: pd.DataFrame, schema: pd.DataFrame | None, path: Path
) -> tuple[list[str], str, list[str]]:
    """(feature columns, where they came from, ignored non-feature columns)."""
    if schema is not None:
        schema_name = f"{path.stem}.schema.csv"
        features = schema.loc[schema["role"].str.strip() == "feature", "column"].tolist()
        if not features:
            raise TableError(f"data dictionary {schema_name} beside {path} lists no feature column")
        described = [c for c in features if is_metadata_column(c)]
        if described:
            raise TableError(
                f"data dictionary {schema_name} beside {path} lists {described[:5]} as feature "
                "column(s), but they identify or describe the clip (classID is the label as a "
                "number; fold, group, split and segment columns give the split away): give them "
                "role 'identifier' or 'metadata', or delete the schema to infer feature columns"
            )
        missing = [c for c in features if c not in raw.columns]
        if missing:
            raise TableError(
                f"data dictionary {schema_name} lists feature column(s) {missing[:5]} that "
                f"{path} does not have; the two files do not belong together (re-extract, "
                "or delete the schema to infer feature columns)"
            )
        return features, f"feature columns from {schema_name}", []
    features, ignored = [], []
    for name in raw.columns:
        if is_metadata_column(name):
            continue
        (features if _looks_numeric(raw[name]) else ignored).append(name)
    if not features:
        raise TableError(
            f"{path} has no numeric feature column (and no {path.stem}.schema.csv beside it); "
            "columns such as path, label, fold, group are never features"
        )
    return features, "numeric non-identifying columns; no schema beside the table", ignored


def _looks_numeric(s: pd.Series) -> bool:
    """Numeric dtype, or text of which most non-empty cells are numbers.

    "Most" rather than "all" so that a feature column with one typo is
    reported as a bad value instead of silently leaving the feature set.
    """
    if pd.api.types.is_bool_dtype(s):
        return False
    if pd.api.types.is_numeric_dtype(s):
        return True
    present = s[~missing_cells(s)]
    if present.empty:
        return False
    return pd.to_numeric(present, errors="coerce").notna().mean() >= 0.5


# ----------------------------------------------------------- cell conversion


def _blank(s: pd.Series) -> pd.Series:
    """Boolean mask of text cells that are NA or only whitespace."""
    return s.isna() | (s.astype(str).str.strip() == "")


def _text(s: pd.Series) -> pd.Series:
    """Column as str ("" where blank); whole floats lose their ``.0`` (Parquet ints with NA)."""
    if pd.api.types.is_float_dtype(s):
        present = s.dropna()
        if (present == present.round()).all():
            s = s.astype("Int64")
    return s.astype(object).map(str).where(~_blank(s), "")


def _labels(s: pd.Series, path: Path, names: np.ndarray | None) -> pd.Series:
    labels = _text(s)
    empty = (labels.str.strip() == "").to_numpy()
    if empty.any():
        first = int(np.argmax(empty))
        raise TableError(
            f"{path}: {int(empty.sum())} row(s) have an empty label, first at "
            f"{_where(first, names)}; every row needs its class"
        )
    n_classes = labels.nunique()
    if n_classes < 2:
        raise TableError(
            f"{path}: every row has the label {labels.iloc[0]!r}; classification needs at "
            "least two classes"
        )
    return labels


def _to_float(s: pd.Series, name: str, path: Path, names: np.ndarray | None) -> np.ndarray:
    """Column as float64; non-numeric text is an error naming the first bad row."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    numbers = pd.to_numeric(s, errors="coerce")
    bad = (numbers.isna() & ~missing_cells(s)).to_numpy()
    if bad.any():
        first = int(np.argmax(bad))
        raise TableError(
            f"{path}: feature column {name!r} has a non-numeric value {s.iloc[first]!r} at "
            f"{_where(first, names)} ({int(bad.sum())} bad row(s) in all); "
            "feature values must be numbers: fix or re-extract the table"
        )
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def _check_finite(
    df: pd.DataFrame, features: list[str], path: Path, names: np.ndarray | None
) -> None:
    finite = np.isfinite(df[list(features)].to_numpy(dtype=np.float64))
    if finite.all():
        return
    bad_rows = ~finite.all(axis=1)
    parts = []
    for j in np.flatnonzero(~finite.all(axis=0))[:3]:
        rows = np.flatnonzero(~finite[:, j])
        parts.append(
            f"{features[j]!r} ({len(rows)} row(s), first at {_where(rows[0], names)})"
        )
    n_cols = int((~finite.all(axis=0)).sum())
    more = f" and {n_cols - 3} more column(s)" if n_cols > 3 else ""
    raise TableError(
        f"{path}: {int(bad_rows.sum())} row(s) have non-finite feature values (empty, NaN or "
        f"inf): columns {', '.join(parts)}{more}; re-extract the table or remove those clips "
        "from the dataset"
    )


def _check_segments(df: pd.DataFrame, path: Path, path_col: str | None, names: np.ndarray | None) -> None:
    """A segment table: windows numbered 0, 1, ... per clip, sharing the clip's label, fold, group, split.

    Converts ``segment`` to Int64 and the start/end columns to float in place.
    """
    if path_col != "path":
        raise TableError(
            f"{path} has a 'segment' column but no 'path' column: the windows of a clip are "
            "recognised by their shared path; re-extract with `features extract --segment`"
        )
    missing = [c for c in SEGMENT_COLUMNS if c not in df.columns]
    if missing:
        raise TableError(f"{path} has a 'segment' column but not {missing}; a segment table "
                         f"needs all of {list(SEGMENT_COLUMNS)}: re-extract it")
    for name in SEGMENT_COLUMNS:
        df[name] = _to_float(df[name], name, path, names)
        bad = ~np.isfinite(df[name].to_numpy()) | (df[name].to_numpy() < 0)
        if name == "segment":
            bad |= df[name].to_numpy() % 1 != 0
        if bad.any():
            first = int(np.argmax(bad))
            raise TableError(f"{path}: column {name!r} must hold numbers >= 0"
                             f"{' (whole window indices)' if name == 'segment' else ''}; "
                             f"{int(bad.sum())} row(s) do not, first at {_where(first, names)}")
    df["segment"] = df["segment"].astype("Int64")
    clips = df["path"].astype(str)
    repeated = pd.DataFrame({"clip": clips, "segment": df["segment"]}).duplicated()
    if repeated.any():
        first = int(np.argmax(repeated.to_numpy()))
        raise TableError(f"{path}: window {df['segment'].iloc[first]} of clip {clips.iloc[first]} "
                         f"appears twice (first repeat at data row {first + 1}); re-extract the table")
    shared = [c for c in (LABEL_COLUMN, FOLD_COLUMN, GROUP_COLUMN, SPLIT_COLUMN) if c in df.columns]
    for name in shared:
        values = df[name].astype(object).where(df[name].notna(), "")
        spread = values.astype(str).groupby(clips.to_numpy()).nunique()
        if (spread > 1).any():
            clip = spread.index[np.argmax(spread.to_numpy() > 1)]
            found = sorted(set(values[clips == clip].astype(str)))
            raise TableError(
                f"{path}: the windows of clip {clip} have different {name!r} values {found[:4]}; "
                f"all windows of a clip must share its {name} (a split by window would put one "
                "clip on both sides): fix the table or re-extract it"
            )


def _where(i: int, names: np.ndarray | None) -> str:
    """``data row 7 (fold1/x.wav)``: 1-based like a spreadsheet without its header."""
    return f"data row {i + 1}" + ("" if names is None else f" ({names[i]})")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
