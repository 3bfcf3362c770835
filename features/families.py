"""Which family a feature column belongs to: one rule for the dictionary and for importance.

Neighbouring columns carry the same information (one MFCC alone tells
little while its neighbours stay), so the data dictionary
(``features.schema.csv``, column ``family``) and grouped permutation
importance (:mod:`classify.importance`) both group columns by family:

==============  ============================================================
family          columns
==============  ============================================================
mfcc            rich preset: ``mfcc_<k>_<statistic>``
mfcc_delta      rich preset: ``mfcc_delta_<k>_<statistic>``
mfcc_delta2     rich preset: ``mfcc_delta2_<k>_<statistic>``
mfcc_mean       ``mfcc_mean_<k>``; GTZAN ``mfcc<k>``; Kaggle ``mfcc<k>_mean``
mfcc_std        ``mfcc_std_<k>``; Kaggle ``mfcc<k>_var``
logmel          rich preset: ``logmel_<k>_<statistic>``
contrast        rich preset: ``spectral_contrast_<k>_<statistic>``
flatness        rich preset: ``spectral_flatness_<statistic>``
flux            rich preset: ``spectral_flux_<statistic>``
chroma          ``chroma_*``; ``chroma_stft*``
spectral_shape  spectral centroid, bandwidth and roll-off (``spectral_*``,
                ``rolloff*``)
zcr             ``zcr_*``; ``zero_crossing_rate*``
rms             ``rms_*``; ``rmse``
other           any other feature column (e.g. Kaggle's harmony, tempo)
==============  ============================================================

>>> [family_of(c) for c in ("mfcc_std_3", "mfcc_delta_2_p90", "rolloff", "tempo")]
['mfcc_std', 'mfcc_delta', 'spectral_shape', 'other']
"""
from __future__ import annotations

import re

__all__ = ["FAMILIES", "family_of"]

_STAT = r"_[a-z0-9]+"
# (family, pattern) in order: the first pattern a column matches decides.
_FAMILY_RULES = (
    ("mfcc_delta2", rf"mfcc_delta2_\d+{_STAT}"),
    ("mfcc_delta", rf"mfcc_delta_\d+{_STAT}"),
    ("mfcc", rf"mfcc_\d+{_STAT}"),
    ("mfcc_mean", r"mfcc_mean_\d+|mfcc\d+|mfcc\d+_mean"),
    ("mfcc_std", r"mfcc_std_\d+|mfcc\d+_(std|var)"),
    ("logmel", rf"logmel_\d+{_STAT}"),
    ("contrast", rf"spectral_contrast_\d+{_STAT}"),
    ("flatness", rf"spectral_flatness{_STAT}"),
    ("flux", rf"spectral_flux{_STAT}"),
    ("chroma", r"chroma(_.*)?"),
    ("spectral_shape", r"(spectral_(centroid|bandwidth|rolloff\d*)|rolloff)(_.*)?"),
    ("zcr", r"(zcr|zero_crossing_rate)(_.*)?"),
    ("rms", r"(rms|rmse)(_.*)?"),
)
#: Every family, in the order tables and plots list them.
FAMILIES = ("mfcc", "mfcc_delta", "mfcc_delta2", "mfcc_mean", "mfcc_std", "logmel", "contrast", "flatness",
            "flux", "chroma", "spectral_shape", "zcr", "rms", "other")


def family_of(column: str) -> str:
    """The family of a feature column (see the module's table)."""
    name = str(column).strip().lower()
    for family, pattern in _FAMILY_RULES:
        if re.fullmatch(pattern, name):
            return family
    return "other"
