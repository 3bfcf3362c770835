"""The feature table's format: its columns, how its cells are written and read back, atomically.

This module owns the table format that ``features extract`` writes and
``classify`` reads: the column roles (:data:`IDENTIFIER_COLUMNS`,
:data:`AUDIO_COLUMNS`, :data:`SEGMENT_COLUMNS`), how folds are typed
(:func:`fold_values`), the formula guard both ways, and reading the
``features.json`` beside a table (:func:`read_table_meta`).

:func:`build_table` lays out one row per clip (identifying columns, the
source's other metadata, three facts about the source audio, then the
features; or, for the ``gtzan`` preset, the GTZAN tutorial's exact header).
The data dictionary beside it is :mod:`features.schema`'s. Writers never leave a half-written file under the final name: they write a
temporary file in the same folder and :func:`os.replace` it into place.

In CSV files, text cells and column names that a spreadsheet would run as
a formula (leading ``=``, ``+``, ``-``, ``@``, tab or carriage return) get a
leading ``'``; numbers are never touched and Parquet keeps the raw text.
:func:`read_csv` undoes it exactly: every reader of our CSV files uses it.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import UsageError
from .io.atomic import atomic_path
from .params import Preset

IDENTIFIER_COLUMNS = ("path", "label", "fold", "group")
AUDIO_COLUMNS = ("duration_s", "orig_sample_rate", "orig_channels")
SEGMENT_COLUMNS = ("segment", "segment_start_s", "segment_end_s")
SCHEMA_COLUMNS = ("column", "role", "dtype", "unit", "description", "family", "descriptor", "statistic")
ERROR_COLUMNS = ("path", "row", "stage", "reason", "error_type", "message")
FORMATS = ("csv", "parquet")
#: Cell values that mean "no value" when a table is read back (case and spaces ignored).
MISSING_TOKENS = frozenset({"", "nan", "-nan", "+nan", "na", "n/a", "null", "none", "<na>"})

# Leading characters that make Excel/LibreOffice/Sheets evaluate a cell (OWASP
# "CSV injection"); the tab and CR variants slip past naive checks.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")



# --------------------------------------------------------------------------- table


def build_table(
    clips: pd.DataFrame,
    audio: pd.DataFrame,
    features: np.ndarray,
    feature_names: Sequence[str],
    preset: Preset | str = Preset.DEFAULT,
    segments: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Assemble the feature table, one row per successful clip.

    Parameters
    ----------
    clips : pd.DataFrame [shape=(n, 4 + n_metadata)]
        Rows of :attr:`features.io.datasets.Dataset.clips` for the clips that
        succeeded, in dataset order (``path, label, fold, group, ...``).
    audio : pd.DataFrame [shape=(n, 3)]
        ``duration_s, orig_sample_rate, orig_channels`` of the same clips.
    features : np.ndarray [shape=(n, n_features), dtype=float64]
        Feature vectors, row ``i`` belonging to ``clips.iloc[i]``.
    feature_names : sequence of str [length n_features]
        Column names of ``features`` (``compute.feature_columns(params)``).
    preset : Preset or str
        ``gtzan`` gives the tutorial's header ``filename,<features>,label``.
    segments : pd.DataFrame, optional
        ``segment, segment_start_s, segment_end_s`` of each row, for a table
        of windows: they follow the identifying columns (``filename`` for
        ``gtzan``).

    Returns
    -------
    pd.DataFrame
        The table; ``fold`` is a nullable integer column.

    Examples
    --------
    >>> clips = pd.DataFrame({"path": ["a/x.wav"], "label": ["a"],
    ...                       "fold": pd.array([None], dtype="Int64"), "group": [""]})
    >>> audio = pd.DataFrame({"duration_s": [1.0], "orig_sample_rate": [8000],
    ...                       "orig_channels": [1]})
    >>> list(build_table(clips, audio, np.zeros((1, 1)), ["zcr_mean"]).columns)
    ['path', 'label', 'fold', 'group', 'duration_s', 'orig_sample_rate', 'orig_channels', 'zcr_mean']
    """
    features = np.asarray(features, dtype=np.float64)
    if len(audio) != len(clips):
        raise ValueError(f"audio has {len(audio)} rows but clips has {len(clips)}")
    if features.shape != (len(clips), len(feature_names)):
        raise ValueError(
            f"features has shape {features.shape}, expected ({len(clips)}, {len(feature_names)})"
        )
    missing = [c for c in IDENTIFIER_COLUMNS if c not in clips.columns]
    if missing:
        raise ValueError(f"clips lacks identifying column(s) {missing}")
    feats = pd.DataFrame(features, columns=list(feature_names))
    clips = clips.reset_index(drop=True)
    windows = []
    if segments is not None:
        if len(segments) != len(clips):
            raise ValueError(f"segments has {len(segments)} rows but clips has {len(clips)}")
        windows = [pd.DataFrame({
            "segment": segments["segment"].to_numpy(dtype=np.int64),
            "segment_start_s": segments["segment_start_s"].to_numpy(dtype=np.float64),
            "segment_end_s": segments["segment_end_s"].to_numpy(dtype=np.float64),
        })]
    if Preset(preset) is Preset.GTZAN:
        filename = clips["path"].astype(str).str.rsplit("/", n=1).str[-1]
        return pd.concat(
            [filename.rename("filename"), *windows, feats, clips["label"].astype(str)], axis=1
        )
    ids = clips.copy()
    ids["fold"] = ids["fold"].astype("Int64")
    if windows:
        n_ids = len(IDENTIFIER_COLUMNS) + ("split" in ids.columns)
        ids = pd.concat([ids.iloc[:, :n_ids], windows[0], ids.iloc[:, n_ids:]], axis=1)
    audio = pd.DataFrame(
        {
            "duration_s": audio["duration_s"].to_numpy(dtype=np.float64),
            "orig_sample_rate": audio["orig_sample_rate"].to_numpy(dtype=np.int64),
            "orig_channels": audio["orig_channels"].to_numpy(dtype=np.int64),
        }
    )
    return pd.concat([ids, audio, feats], axis=1)


# An integer written the one way a number reader writes it back: no "+", no leading zero
# ("007" and "+1" stay text), so that typing a column never changes a value.
_INTEGER = re.compile(r"-?(?:0|[1-9]\d{0,17})")
_DECIMAL = re.compile(r"-?(?:0|[1-9]\d*)\.\d+")


def typed_metadata(clips: pd.DataFrame) -> pd.DataFrame:
    """The clips' text columns, typed as the CSV will be read back, when no value changes.

    Spreadsheets, DuckDB and pandas turn a CSV column of numbers into
    numbers; so that ``features.parquet`` and the data dictionary say the
    same, a metadata column (``group`` and the source's own columns; never
    ``path``, and never ``label``, which is always the text the user wrote)
    whose every non-empty value is an integer becomes a nullable integer,
    and one of decimals a float. A column is typed only when every value is
    the number's own spelling (``17``, ``0.5``): ``007``, ``+1`` or ``1.50``
    keep it text, so ``1`` and ``1.0`` never merge and nothing is lost.
    Empty cells are missing values.

    Examples
    --------
    >>> df = pd.DataFrame({"path": ["1"], "label": ["2"], "fsID": ["17"], "start": ["0.5"],
    ...                    "id": ["007"], "sign": ["+1"]})
    >>> typed_metadata(df).dtypes.astype(str).tolist()
    ['str', 'str', 'Int64', 'float64', 'str', 'str']
    """
    out = clips.copy()
    for name in clips.columns:
        if name in ("path", "label", "fold") or pd.api.types.is_numeric_dtype(clips[name]):
            continue
        text = clips[name].astype(str).str.strip()
        filled = text[text != ""]
        if filled.empty:
            continue
        if filled.str.fullmatch(_INTEGER).all():
            out[name] = pd.array(pd.to_numeric(text.where(text != "")), dtype="Int64")
        elif filled.str.fullmatch(_DECIMAL).all() and _spelled_as_floats(filled):
            out[name] = pd.to_numeric(text.where(text != "")).astype("float64")
    return out


def _spelled_as_floats(values: pd.Series) -> bool:
    """Whether every value is how a float is written back (``0.5``, not ``0.50``)."""
    return bool((values.astype(float).map(repr) == values).all())


def empty_segments() -> pd.DataFrame:
    """The window columns of a table with no rows, with their dtypes."""
    return pd.DataFrame({"segment": np.empty(0, np.int64), "segment_start_s": np.empty(0),
                         "segment_end_s": np.empty(0)})


def empty_audio() -> pd.DataFrame:
    """The audio columns of a table with no rows, with their dtypes."""
    return pd.DataFrame({
        "duration_s": np.empty(0, np.float64),
        "orig_sample_rate": np.empty(0, np.int64),
        "orig_channels": np.empty(0, np.int64),
    })


def errors_frame(errors: Sequence[Any]) -> pd.DataFrame:
    """Errors as a DataFrame with columns ``path,row,stage,reason,error_type,message``.

    Parameters
    ----------
    errors : sequence of ErrorRecord
        Anything with those six attributes; ``row`` may be None.

    Returns
    -------
    pd.DataFrame [shape=(len(errors), 6)]
        ``row`` is a nullable integer (empty in the CSV when unknown).
    """
    df = pd.DataFrame(
        {name: [getattr(e, name) for e in errors] for name in ERROR_COLUMNS},
        columns=list(ERROR_COLUMNS),
    )
    df["row"] = pd.array(df["row"].tolist(), dtype="Int64")
    for name in ("path", "stage", "reason", "error_type", "message"):
        df[name] = df[name].astype(str)
    return df


# -------------------------------------------------------------------------- schema


# ------------------------------------------------------------------------- writers


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` whose text cells and column names cannot run as spreadsheet formulas.

    Text starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return
    (after any ``'``) gets one more leading ``'``; so does a column name.
    Numeric columns are left alone (a negative number is not text).
    :func:`restore_formulas` undoes it exactly, so every value, ``'=x``
    included, round-trips.

    Parameters
    ----------
    df : pd.DataFrame
        Any table.

    Returns
    -------
    pd.DataFrame
        Same shape and dtypes as ``df``.

    Examples
    --------
    >>> neutralise_formulas(pd.DataFrame({"a": ["=1+1", "ok"], "b": [-1, 2]}))["a"].tolist()
    ["'=1+1", 'ok']
    >>> list(neutralise_formulas(pd.DataFrame({"=2+2": [1]})).columns)
    ["'=2+2"]
    """
    out = df.copy()
    for name in out.columns:
        s = out[name]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        out[name] = s.map(guard_text)
    out.columns = [guard_text(c) for c in out.columns]
    return out


# Text a spreadsheet would run, behind any number of guard quotes.
_GUARDED = re.compile("'*[" + re.escape("".join(FORMULA_PREFIXES)) + "]")


def guard_text(value: Any) -> Any:
    """One cell or column name as written to CSV: ``'`` before formula-like text.

    Examples
    --------
    >>> [guard_text(v) for v in ("-1", "'=x", "a-b", 3)]
    ["'-1", "''=x", 'a-b', 3]
    """
    if isinstance(value, str) and _GUARDED.match(value):
        return "'" + value
    return value


def unguard_text(value: Any) -> Any:
    """Undo :func:`guard_text`.

    Examples
    --------
    >>> [unguard_text(v) for v in ("'-1", "''=x", "'plain", "a-b")]
    ['-1', "'=x", "'plain", 'a-b']
    """
    if isinstance(value, str) and value.startswith("'") and _GUARDED.match(value, 1):
        return value[1:]
    return value


def restore_formulas(df: pd.DataFrame, text_columns: Sequence[str] | None = None, *,
                     names: bool = True) -> pd.DataFrame:
    """Undo :func:`neutralise_formulas` on a table read back from CSV (in place; returned).

    Column names are restored (unless ``names`` is False: done already),
    then the cells of ``text_columns`` (names as restored; None: every
    column that is not numeric).
    """
    if names:
        df.columns = [unguard_text(c) for c in df.columns]
    names = df.columns if text_columns is None else [c for c in text_columns if c in df.columns]
    for name in names:
        s = df[name]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        df[name] = s.map(unguard_text)
    return df


def read_csv(path: str | os.PathLike, text_columns: Sequence[str] | None = None,
             **kwargs: Any) -> pd.DataFrame:
    """Read a CSV file written by :func:`write_csv` back as it was meant: guards undone.

    Keyword arguments go to :func:`pandas.read_csv`; ``text_columns`` as in
    :func:`restore_formulas`.
    """
    return restore_formulas(pd.read_csv(path, **kwargs), text_columns)


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as UTF-8 CSV atomically, neutralising formula-like text.

    Missing values (e.g. an empty ``fold``) become empty cells; floats are
    written with full round-trip precision.
    """
    path = Path(path)
    safe = neutralise_formulas(df)
    # With "\n" line ends the csv module leaves a bare CR inside a cell unquoted,
    # which readers take for a line break; quote all text then (rare: odd paths).
    quoting = csv.QUOTE_NONNUMERIC if has_carriage_return(safe) else csv.QUOTE_MINIMAL
    with atomic_path(path) as tmp:
        safe.to_csv(tmp, index=False, lineterminator="\n", encoding="utf-8", quoting=quoting)
    return path


def has_carriage_return(df: pd.DataFrame) -> bool:
    """True if a text cell holds a carriage return (then CSV writers quote all text)."""
    return any(
        isinstance(v, str) and "\r" in v
        for name in df.columns
        if not pd.api.types.is_numeric_dtype(df[name])
        for v in df[name].tolist()
    )


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as Parquet (pyarrow) atomically; text is kept raw."""
    path = Path(path)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")
    return path


def write_tables(folder: Path, chunks: Iterator[pd.DataFrame], empty: pd.DataFrame,
                 clips: pd.DataFrame, formats: Sequence[str], *, stem: str = "features") -> int:
    """Stream a table, chunk by chunk, into ``<stem>.csv`` and/or ``<stem>.parquet``.

    Returns the number of rows written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow_schema = _arrow_schema(empty)
    quoting = csv.QUOTE_NONNUMERIC if has_carriage_return(clips) else csv.QUOTE_MINIMAL
    n = 0
    with contextlib.ExitStack() as stack:
        writer = None
        if "parquet" in formats:
            writer = stack.enter_context(pq.ParquetWriter(folder / f"{stem}.parquet", arrow_schema))
        text = None
        if "csv" in formats:
            text = stack.enter_context(open(folder / f"{stem}.csv", "w", encoding="utf-8",
                                            newline=""))
        first = True
        for part in _frames(chunks, empty):
            if writer is not None:
                writer.write_table(pa.Table.from_pandas(part, schema=arrow_schema,
                                                        preserve_index=False))
            if text is not None and (len(part) or first):
                neutralise_formulas(part).to_csv(text, index=False, header=first,
                                                   lineterminator="\n", quoting=quoting)
                first = False
            n += len(part)
        if text is not None:
            text.flush()
            os.fsync(text.fileno())
    return n


def _frames(chunks: Iterator[pd.DataFrame], empty: pd.DataFrame) -> Iterator[pd.DataFrame]:
    yielded = False
    for part in chunks:
        yield part.astype(empty.dtypes.to_dict())
        yielded = True
    if not yielded:
        yield empty


def _arrow_schema(empty: pd.DataFrame):
    """Arrow schema of the table; text columns are strings even with no rows to show it."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(empty, preserve_index=False)
    for i, field in enumerate(schema):
        if pa.types.is_null(field.type):
            schema = schema.set(i, field.with_type(pa.string()))
    return schema


def check_formats(formats: Sequence[str] | str) -> tuple[str, ...]:
    """Validate a table format list (``"csv,parquet"`` or a sequence).

    Returns
    -------
    tuple of str
        Distinct formats in the order given.
    """
    if isinstance(formats, str):
        formats = [f for f in formats.split(",")]
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in formats))
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise UsageError(
            f"format={','.join(formats)!r} is not valid; use csv, parquet or csv,parquet"
        )
    return chosen


def write_table(
    df: pd.DataFrame, out_dir: str | os.PathLike, formats: Sequence[str] = FORMATS,
    *, stem: str = "features",
) -> dict[str, Path]:
    """Write the table as ``<stem>.csv`` and/or ``<stem>.parquet`` in ``out_dir``.

    Returns
    -------
    dict
        Format name -> written path, in the order of ``formats``.
    """
    writers = {"csv": write_csv, "parquet": write_parquet}
    out_dir = Path(out_dir)
    return {f: writers[f](df, out_dir / f"{stem}.{f}") for f in check_formats(formats)}


# ------------------------------------------------------------------ reading back


def missing_cells(s: pd.Series) -> pd.Series:
    """Boolean mask of the cells of ``s`` that hold no value (NA, empty, 'nan', ...).

    >>> missing_cells(pd.Series(["1", " NaN", None, "x"])).tolist()
    [False, True, True, False]
    """
    return s.isna() | s.astype(str).str.strip().str.lower().isin(MISSING_TOKENS)


def fold_values(s: pd.Series) -> pd.Series:
    """A ``fold`` column as it was written: nullable integers when whole numbers, else text.

    Every reader of a table or a run folder types its folds with this, so
    ``fold1`` and ``1`` mean the same thing to all of them.

    >>> fold_values(pd.Series(["1", "10", ""])).tolist()
    [1, 10, <NA>]
    >>> fold_values(pd.Series(["fold1", ""])).tolist()[0]
    'fold1'
    """
    missing = missing_cells(s)
    numbers = pd.to_numeric(s.where(~missing), errors="coerce")
    if numbers[~missing].notna().all() and (numbers.dropna() == numbers.dropna().round()).all():
        return numbers.astype("Int64")
    return s.astype(object).map(str).where(~missing, None)


def table_meta_path(table: str | os.PathLike) -> Path:
    """The ``<stem>.json`` that describes a table (``features.json`` beside ``features.csv``)."""
    table = Path(table)
    return table.with_name(f"{table.stem}.json")


def read_table_meta(table: str | os.PathLike) -> dict[str, Any] | None:
    """The ``<stem>.json`` beside a table, read once; None when there is none.

    Raises
    ------
    ValueError
        The file is not JSON or not a JSON object; the message names it.
    """
    path = table_meta_path(table)
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path} is not valid JSON ({' '.join(str(exc).split())}); re-extract "
                         "the table or delete the file") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} must hold a JSON object, not {type(meta).__name__}")
    return meta
