"""The output table, its data dictionary, and atomic writers.

:func:`build_table` lays out one row per clip (identifying columns, the
source's other metadata, three facts about the source audio, then the
features; or, for the ``gtzan`` preset, the GTZAN tutorial's exact header).
:func:`build_schema` writes down, in plain words, what every column means.
Writers never leave a half-written file under the final name: they write a
temporary file in the same folder and :func:`os.replace` it into place.

In CSV files, text cells and column names that a spreadsheet would run as
a formula (leading ``=``, ``+``, ``-``, ``@``, tab or carriage return) get a
leading ``'``; numbers are never touched and Parquet keeps the raw text.
:func:`read_csv` undoes it exactly: every reader of our CSV files uses it.
"""
from __future__ import annotations

import contextlib
import csv
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import UsageError
from .io.atomic import atomic_path
from .io.layouts import LAYOUTS
from .params import FeatureParams, Preset

IDENTIFIER_COLUMNS = ("path", "label", "fold", "group")
AUDIO_COLUMNS = ("duration_s", "orig_sample_rate", "orig_channels")
SEGMENT_COLUMNS = ("segment", "segment_start_s", "segment_end_s")
SCHEMA_COLUMNS = ("column", "role", "dtype", "unit", "description")
ERROR_COLUMNS = ("path", "row", "stage", "reason", "error_type", "message")
FORMATS = ("csv", "parquet")

# Leading characters that make Excel/LibreOffice/Sheets evaluate a cell (OWASP
# "CSV injection"); the tab and CR variants slip past naive checks.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


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

_IDENTIFIER_TEXT = {
    "path": ("", "clip file path relative to the dataset root, with forward slashes"),
    "filename": ("", "file name of the clip (no folder), as in the GTZAN tutorial's table"),
    "fold": (
        "",
        ("cross-validation fold the dataset assigns the clip to; keep folds apart when "
        "testing (empty when the dataset defines none)"),
    ),
    "group": (
        "",
        ("recording the clip was cut from: clips with the same group must stay on the "
        "same side of a train/test split (empty when unknown; in a table of windows, the "
        "clip's path when the dataset has no group)"),
    ),
    "split": (
        "",
        ("part of the dataset's own train/validation/test split the clip belongs to "
         "(train, validation or test); keep it for the holdout protocol"),
    ),
    "segment": ("", "0-based position of this window within its clip (one row per window)"),
    "segment_start_s": ("s", "where this window's audio starts, from the start of the file"),
    "segment_end_s": (
        "s",
        ("where this window's audio ends, from the start of the file; a last window that "
         "was zero-padded ends where the clip's audio ends"),
    ),
}

_US8K_TEXT = {
    "slice_file_name": ("", "file name of the slice as listed in UrbanSound8K.csv"),
    "fsID": (
        "",
        ("Freesound id of the source recording the slice was cut from; slices with the "
        "same fsID come from one recording"),
    ),
    "start": ("s", "start time of the slice within its source Freesound recording"),
    "end": ("s", "end time of the slice within its source Freesound recording"),
    "salience": (
        "",
        ("UrbanSound8K's salience rating: 1 = the sound is in the foreground, "
        "2 = in the background"),
    ),
    "classID": ("", "UrbanSound8K's numeric id (0-9) of the class in 'label'"),
}


def build_schema(
    table: pd.DataFrame, params: FeatureParams, *, layout: str | None = None
) -> pd.DataFrame:
    """The data dictionary of a feature table: one plain-words row per column.

    Parameters
    ----------
    table : pd.DataFrame
        A table from :func:`build_table`.
    params : FeatureParams
        Parameters the features were computed with (quoted in descriptions).
    layout : str or None
        Dataset layout (``urbansound8k``, ``gtzan``, ``folders``, ``manifest``);
        it decides how ``label`` and known metadata columns are described.

    Returns
    -------
    pd.DataFrame [shape=(n_columns, 5)]
        Columns ``column, role, dtype, unit, description``; role is one of
        identifier, metadata, audio, feature.

    Examples
    --------
    >>> t = pd.DataFrame({"path": ["x.wav"], "rms_mean": [0.1]})
    >>> build_schema(t, FeatureParams()).loc[1, "unit"]
    'amplitude (full scale = 1)'
    """
    rows = []
    for name in table.columns:
        role, unit, text = _describe(name, params, layout)
        dtype = _dtype_words(table[name])
        if dtype == "text":
            text = f"{text}. {_FORMULA_NOTE}"
        if guard_text(name) != name:
            text = f"{text}. {_HEADER_NOTE}"
        rows.append((name, role, dtype, unit, text))
    return pd.DataFrame(rows, columns=list(SCHEMA_COLUMNS))


_FORMULA_NOTE = (
    "In features.csv a value that starts with =, +, -, @, a tab or a carriage return (or "
    "with ' then one of them) is written with one more leading ' so that spreadsheets show "
    "it instead of running it as a formula; features.parquet keeps the value as it is"
)
_HEADER_NOTE = (
    "Its name starts with =, +, -, @, a tab or a carriage return, so features.csv and this "
    "dictionary write it with a leading ' (spreadsheets would run it as a formula); "
    "features.parquet keeps the name as it is"
)


def _dtype_words(s: pd.Series) -> str:
    if isinstance(s.dtype, pd.Int64Dtype):
        return "integer (empty when missing)"
    if pd.api.types.is_bool_dtype(s):
        return "boolean"
    if pd.api.types.is_integer_dtype(s):
        return "integer"
    if pd.api.types.is_float_dtype(s):
        return "float"
    return "text"


def _describe(name: str, params: FeatureParams, layout: str | None) -> tuple[str, str, str]:
    """(role, unit, description) of one column."""
    if name == "label":
        source = LAYOUTS[layout].label_source if layout in LAYOUTS else "the dataset"
        return "identifier", "", f"class label of the clip, taken from {source}"
    if name in _IDENTIFIER_TEXT:
        unit, text = _IDENTIFIER_TEXT[name]
        return "identifier", unit, text
    if name in AUDIO_COLUMNS:
        return ("audio", *_audio_text(name, params))
    feature = _feature_text(name, params)
    if feature is not None:
        return ("feature", *feature)
    if layout == "urbansound8k" and name in _US8K_TEXT:
        unit, text = _US8K_TEXT[name]
        return "metadata", unit, f"{text} (from the metadata CSV)"
    return "metadata", "", ("carried through from the source metadata; a column whose every "
                            "value is a number is stored as numbers, any other as text")


def _audio_text(name: str, params: FeatureParams) -> tuple[str, str]:
    return {
        "duration_s": (
            "s",
            ("length of the source audio file in seconds (before any offset, duration "
            "or fixed-length cut)"),
        ),
        "orig_sample_rate": (
            "Hz",
            (f"sample rate of the source file; the audio was resampled to {params.sr} Hz "
            "for analysis"),
        ),
        "orig_channels": (
            "count",
            "number of channels in the source file; they were averaged to mono for analysis",
        ),
    }[name]


def _framing(params: FeatureParams) -> str:
    return (
        f"frames of {params.n_fft} samples every {params.hop_length} samples "
        f"at {params.sr} Hz"
    )


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


# (unit, what the librosa function measures) of the default preset's spectral columns
_SPECTRAL = {
    "spectral_centroid": (
        "Hz",
        ("spectral centroid, the spectrum's centre of mass (higher = brighter sound; "
        "librosa.feature.spectral_centroid)"),
    ),
    "spectral_bandwidth": (
        "Hz",
        ("spectral bandwidth, the spread of the spectrum around its centroid "
        "(librosa.feature.spectral_bandwidth)"),
    ),
    "spectral_rolloff": (
        "Hz",
        ("roll-off frequency below which 85% of the spectral energy lies "
        "(librosa.feature.spectral_rolloff)"),
    ),
    "zcr": (
        "unitless (fraction 0-1)",
        ("zero-crossing rate, the fraction of neighbouring samples that change sign "
        "(librosa.feature.zero_crossing_rate)"),
    ),
    "rms": (
        "amplitude (full scale = 1)",
        "root-mean-square amplitude of each frame (librosa.feature.rms)",
    ),
}

_GTZAN = {
    "chroma_stft": (
        "unitless (0-1)",
        ("mean over frames and the 12 pitch classes of the chromagram "
        "(librosa.feature.chroma_stft)"),
    ),
    "rmse": ("amplitude (full scale = 1)", "mean over frames of the RMS amplitude (librosa.feature.rms)"),
    "spectral_centroid": ("Hz", "mean over frames of the spectral centroid (librosa.feature.spectral_centroid)"),
    "spectral_bandwidth": ("Hz", "mean over frames of the spectral bandwidth (librosa.feature.spectral_bandwidth)"),
    "rolloff": (
        "Hz",
        "mean over frames of the 85% spectral roll-off frequency (librosa.feature.spectral_rolloff)",
    ),
    "zero_crossing_rate": (
        "unitless (fraction 0-1)",
        "mean over frames of the zero-crossing rate (librosa.feature.zero_crossing_rate)",
    ),
}

_STAT = {"mean": "mean", "std": "population standard deviation"}


def _feature_text(name: str, params: FeatureParams) -> tuple[str, str] | None:
    """(unit, description) of a feature column, or None if ``name`` is not one."""
    frames = _framing(params)
    m = re.fullmatch(r"mfcc_(mean|std)_(\d+)", name)
    if m:
        k = int(m.group(2))
        return (
            "dB-scaled",
            (f"{_STAT[m.group(1)]} over frames of the {_ordinal(k)} Mel-frequency cepstral "
            f"coefficient (librosa.feature.mfcc, {params.n_mfcc} coefficients, 128 mel "
            f"bands; {frames})"),
        )
    m = re.fullmatch(r"chroma_(mean|std)_(\d+)", name)
    if m:
        k = int(m.group(2))
        pitch = _PITCH_CLASSES[k - 1] if 1 <= k <= 12 else f"bin {k}"
        return (
            "unitless (0-1)",
            (f"{_STAT[m.group(1)]} over frames of the chroma energy of pitch class {pitch} "
            f"(bin {k} of 12; librosa.feature.chroma_stft, each frame scaled so its "
            f"largest bin is 1; {frames})"),
        )
    m = re.fullmatch(r"(spectral_centroid|spectral_bandwidth|spectral_rolloff|zcr|rms)_(mean|std)", name)
    if m:
        unit, what = _SPECTRAL[m.group(1)]
        return unit, f"{_STAT[m.group(2)]} over frames of the {what}; {frames}"
    m = re.fullmatch(r"mfcc(\d+)", name)
    if m and params.preset is Preset.GTZAN:
        k = int(m.group(1))
        return (
            "dB-scaled",
            (f"mean over frames of the {_ordinal(k)} Mel-frequency cepstral coefficient "
            f"(librosa.feature.mfcc, {params.n_mfcc} coefficients; {frames})"),
        )
    if name in _GTZAN and params.preset is Preset.GTZAN:
        unit, text = _GTZAN[name]
        return unit, f"{text}; {frames}"
    return None


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
