"""The data dictionary of a feature table: what every column means, in plain words.

:func:`build_schema` writes one row per column (role, type, unit,
description) for ``features.schema.csv``, so an analyst who never runs
Python can read every column of ``features.csv``.
"""
from __future__ import annotations

import re

import pandas as pd

from . import descriptors
from .families import family_of
from .io.layouts import LAYOUTS
from .params import FeatureParams, Preset
from .table import AUDIO_COLUMNS, SCHEMA_COLUMNS, guard_text

__all__ = ["build_schema"]

_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


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
         "(train, validation or test; excluded: a clip the split leaves out of every part, "
         "as GTZAN's fault-filtered partition does with its faulty excerpts); keep it for the "
         "holdout protocol"),
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
    pd.DataFrame [shape=(n_columns, 8)]
        Columns ``column, role, dtype, unit, description, family,
        descriptor, statistic``; role is one of identifier, metadata,
        audio, feature; the last three are empty but for features.

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
        parts = ((family_of(name), *_descriptor_statistic(name, params)) if role == "feature"
                 else ("", "", ""))
        rows.append((name, role, dtype, unit, text, *parts))
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


def _rich_names(n_mfcc: int) -> frozenset[str]:
    return _RICH_NAMES.get(n_mfcc) or _RICH_NAMES.setdefault(
        n_mfcc, frozenset(descriptors.rich_columns(n_mfcc)))


_RICH_NAMES: dict[int, frozenset[str]] = {}


def _descriptor_statistic(name: str, params: FeatureParams) -> tuple[str, str]:
    """(frame-level descriptor, statistic over frames) of a feature column."""
    if params.preset is Preset.RICH:
        descriptor, _, stat = name.rpartition("_")
        return descriptor, stat
    if params.preset is Preset.GTZAN:
        m = re.fullmatch(r"mfcc(\d+)", name)
        if m:
            return f"mfcc_{m.group(1)}", "mean"
        return _GTZAN_DESCRIPTORS.get(name, name), "mean"
    m = re.fullmatch(r"(mfcc|chroma)_(mean|std)_(\d+)", name)
    if m:
        return f"{m.group(1)}_{m.group(3)}", m.group(2)
    descriptor, _, stat = name.rpartition("_")
    return descriptor, stat


_GTZAN_DESCRIPTORS = {"chroma_stft": "chroma (all 12 pitch classes)", "rmse": "rms",
                      "rolloff": "spectral_rolloff", "zero_crossing_rate": "zcr"}


# (unit, what it measures) of the rich preset's descriptors, by the name before "_<k>".
_RICH = {
    "mfcc": ("dB-scaled", "{k} Mel-frequency cepstral coefficient (librosa.feature.mfcc, {n_mfcc} "
             "coefficients, 128 mel bands, top_db 80)"),
    "mfcc_delta": ("dB-scaled per frame", "first difference (delta) of the {k} MFCC, a 9-frame "
                   "Savitzky-Golay slope (librosa.feature.delta, width 9, order 1)"),
    "mfcc_delta2": ("dB-scaled per frame squared", "second difference (delta-delta) of the {k} MFCC "
                    "(librosa.feature.delta, width 9, order 2)"),
    "logmel": ("dB", "energy of the {k} of 64 mel bands, low to high "
               "(librosa.power_to_db(librosa.feature.melspectrogram(n_mels=64)), top_db 80)"),
    "spectral_contrast": ("dB", "spectral contrast of the {k} of 7 octave bands (0-200 Hz, then octaves "
                          "from 200 Hz; the last runs to Nyquist): peak minus valley level "
                          "(librosa.feature.spectral_contrast, fmin 200, 6 bands, quantile 0.02)"),
    "spectral_flatness": ("unitless (0-1)", "spectral flatness, geometric over arithmetic mean of "
                          "the power spectrum (1 = white noise, near 0 = tonal; "
                          "librosa.feature.spectral_flatness)"),
    "spectral_flux": ("dB", "spectral flux: the mean rise over 128 mel bands in dB since the "
                      "previous frame, the onset strength (librosa.onset.onset_strength)"),
    "spectral_centroid": _SPECTRAL["spectral_centroid"],
    "spectral_bandwidth": _SPECTRAL["spectral_bandwidth"],
    "spectral_rolloff85": ("Hz", "roll-off frequency below which 85% of the spectral magnitude lies "
                           "(librosa.feature.spectral_rolloff, roll_percent 0.85)"),
    "spectral_rolloff95": ("Hz", "roll-off frequency below which 95% of the spectral magnitude lies "
                           "(librosa.feature.spectral_rolloff, roll_percent 0.95)"),
    "chroma": ("unitless (0-1)", "chroma energy of pitch class {pitch} (librosa.feature.chroma_stft, "
               "each frame scaled so its largest bin is 1)"),
    "zcr": _SPECTRAL["zcr"],
    "rms": _SPECTRAL["rms"],
}

_RICH_STAT = {
    "mean": "mean over frames",
    "std": "population standard deviation (ddof 0) over frames",
    "min": "smallest value over frames",
    "max": "largest value over frames",
    "p10": "10th percentile over frames (linear interpolation between the two nearest frames)",
    "p50": "median over frames (50th percentile, linear interpolation)",
    "p90": "90th percentile over frames (linear interpolation between the two nearest frames)",
    "skew": ("skewness over frames, Fisher-Pearson, biased (m3 / m2^1.5; 0 when the value is "
             "constant over the clip)"),
    "kurt": ("excess kurtosis over frames, biased (m4 / m2^2 - 3; 0 when the value is constant "
             "over the clip)"),
    "slope": ("least-squares slope of the value against the frame's time in seconds (rising > 0; "
              "0 for a one-frame clip)"),
}


def _rich_text(name: str, params: FeatureParams) -> tuple[str, str] | None:
    descriptor, _, stat = name.rpartition("_")
    if stat not in _RICH_STAT:
        return None
    m = re.fullmatch(r"(.+?)_(\d+)", descriptor)
    base, k = (m.group(1), int(m.group(2))) if m else (descriptor, 0)
    if base not in _RICH or (k == 0) != ("{k}" not in _RICH[base][1] and "{pitch}" not in _RICH[base][1]):
        return None
    unit, what = _RICH[base]
    pitch = _PITCH_CLASSES[k - 1] if 1 <= k <= 12 else f"bin {k}"
    what = what.format(k=_ordinal(k) if k else "", n_mfcc=params.n_mfcc, pitch=pitch)
    if stat in ("skew", "kurt"):
        unit = "unitless"
    elif stat == "slope":
        unit = "per second" if unit.startswith("unitless") else f"{unit} per second"
    return unit, f"{_RICH_STAT[stat]} of the {what}; {_framing(params)}"


def _feature_text(name: str, params: FeatureParams) -> tuple[str, str] | None:
    """(unit, description) of a feature column, or None if ``name`` is not one."""
    if params.preset is Preset.RICH:
        return _rich_text(name, params) if name in _rich_names(params.n_mfcc) else None
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
