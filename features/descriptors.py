"""The rich preset's frame-level descriptors and the statistics that summarise them.

:mod:`features.compute` computes every descriptor frame by frame from one
STFT per clip; this module names them, defines the ten statistics taken
over a clip's frames, and holds the pure-numpy pieces of librosa that the
rich preset adds (``librosa.feature.delta``, the octave bands of
``spectral_contrast``).

Frame-level descriptors, in row order (``n_mfcc`` = 40 by default):

=====================  ======================================================
descriptor             librosa function (parameters beyond sr, n_fft, hop)
=====================  ======================================================
mfcc_<k>               ``feature.mfcc`` (128 mel bands, top_db 80)
mfcc_delta_<k>         ``feature.delta(mfcc, width=9, order=1)``
mfcc_delta2_<k>        ``feature.delta(mfcc, width=9, order=2)``
logmel_<k>             ``power_to_db(feature.melspectrogram(n_mels=64))``
spectral_contrast_<k>  ``feature.spectral_contrast`` (fmin 200, 6 bands + 1)
spectral_flatness      ``feature.spectral_flatness`` (power 2, amin 1e-10)
spectral_flux          ``onset.onset_strength`` (mean over 128 mel bands of
                       the rise in dB since the previous frame)
spectral_centroid      ``feature.spectral_centroid``
spectral_bandwidth     ``feature.spectral_bandwidth``
spectral_rolloff85     ``feature.spectral_rolloff(roll_percent=0.85)``
spectral_rolloff95     ``feature.spectral_rolloff(roll_percent=0.95)``
chroma_<k>             ``feature.chroma_stft`` (pitch classes C..B)
zcr                    ``feature.zero_crossing_rate``
rms                    ``feature.rms``
=====================  ======================================================

One extra piece of work beyond the default preset's STFT: a 64-band mel
product for ``logmel`` (the MFCCs keep librosa's 128 bands) and one sort
of each octave band for the contrast. Deltas need at least 9 frames in
librosa (it raises below that); here a clip with 3-8 frames uses the
largest odd window that fits, and one with fewer than 3 frames gets
deltas of 0.

Statistics over the frames of a clip (column ``<descriptor>_<statistic>``):
``mean``; ``std`` (population, ddof 0); ``min``; ``max``; ``p10``, ``p50``,
``p90`` (percentiles, linear interpolation between the two nearest frames,
numpy's default); ``skew`` (Fisher-Pearson, biased: m3 / m2**1.5) and
``kurt`` (excess kurtosis, biased: m4 / m2**2 - 3), both 0 for a descriptor
that is constant over the clip (its std at most 1e-9 of its largest
|value|); ``slope`` (least-squares slope of the value against the frame's
time in seconds: units per second; 0 for a one-frame clip).

>>> len(rich_descriptors(40)), len(STATISTICS), len(rich_columns(40))
(211, 10, 2110)
>>> rich_columns(40)[:3]
['mfcc_1_mean', 'mfcc_1_std', 'mfcc_1_min']
"""
from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["CONTRAST_BANDS", "CONTRAST_FMIN", "DELTA_WIDTH", "N_LOGMEL", "STATISTICS", "band_rows",
           "contrast_bands", "delta", "rich_columns", "rich_descriptors", "summarise"]

#: Mel bands of the ``logmel_<k>`` descriptors.
N_LOGMEL = 64
#: Frames in the window of ``librosa.feature.delta``.
DELTA_WIDTH = 9
#: ``spectral_contrast``: lowest band edge (Hz), octave bands above it, bin quantile.
CONTRAST_FMIN = 200.0
CONTRAST_BANDS = 6
CONTRAST_QUANTILE = 0.02
N_CHROMA = 12
STATISTICS = ("mean", "std", "min", "max", "p10", "p50", "p90", "skew", "kurt", "slope")
_PERCENTILES = (10, 50, 90)
# A descriptor whose std is at most this fraction of its largest |value| is constant.
_CONSTANT = 1e-9


def rich_descriptors(n_mfcc: int) -> list[str]:
    """Names of the frame-level descriptors, in row order (see the module's table)."""
    names = [f"mfcc_{k}" for k in range(1, n_mfcc + 1)]
    names += [f"mfcc_delta_{k}" for k in range(1, n_mfcc + 1)]
    names += [f"mfcc_delta2_{k}" for k in range(1, n_mfcc + 1)]
    names += [f"logmel_{k}" for k in range(1, N_LOGMEL + 1)]
    names += [f"spectral_contrast_{k}" for k in range(1, CONTRAST_BANDS + 2)]
    names += ["spectral_flatness", "spectral_flux", "spectral_centroid", "spectral_bandwidth",
              "spectral_rolloff85", "spectral_rolloff95"]
    names += [f"chroma_{k}" for k in range(1, N_CHROMA + 1)]
    return [*names, "zcr", "rms"]


def rich_columns(n_mfcc: int) -> list[str]:
    """Feature columns of the rich preset: every descriptor's ten statistics, descriptor by descriptor."""
    return [f"{name}_{stat}" for name in rich_descriptors(n_mfcc) for stat in STATISTICS]


def summarise(per_frame: np.ndarray, seconds_per_frame: float) -> np.ndarray:
    """The ten statistics of every row of ``per_frame``, in :func:`rich_columns` order.

    Parameters
    ----------
    per_frame : np.ndarray [shape=(n_descriptors, n_frames)]
    seconds_per_frame : float
        ``hop_length / sr``: the slope is per second.

    Returns
    -------
    np.ndarray [shape=(n_descriptors * 10,), dtype=float64]

    Examples
    --------
    >>> x = np.array([[0.0, 1.0, 2.0, 3.0]])
    >>> dict(zip(STATISTICS, summarise(x, 0.5).round(3).tolist()))["slope"]
    2.0
    """
    x = np.asarray(per_frame, dtype=np.float64)
    n = x.shape[1]
    mean = x.mean(axis=1)
    centred = x - mean[:, None]
    squared = centred * centred
    m2 = squared.mean(axis=1)
    m3 = np.einsum("ij,ij->i", squared, centred) / n
    m4 = np.einsum("ij,ij->i", squared, squared) / n
    std = np.sqrt(m2)
    ordered = np.sort(x, axis=1)
    constant = std <= _CONSTANT * np.maximum(np.abs(ordered[:, 0]), np.abs(ordered[:, -1]))
    safe = np.where(constant, 1.0, m2)
    skew = np.where(constant, 0.0, m3 / (safe * np.sqrt(safe)))
    kurt = np.where(constant, 0.0, m4 / (safe * safe) - 3.0)
    lo, mid, hi = (_percentile(ordered, q) for q in _PERCENTILES)
    if n > 1:
        t = (np.arange(n) - (n - 1) / 2.0) * seconds_per_frame
        slope = centred @ t / float(t @ t)
    else:
        slope = np.zeros(x.shape[0])
    stats = (mean, std, ordered[:, 0], ordered[:, -1], lo, mid, hi, skew, kurt, slope)
    return np.stack(stats, axis=1).ravel()


def _percentile(ordered: np.ndarray, q: float) -> np.ndarray:
    """``np.percentile(x, q, axis=1)`` (linear method) of rows already sorted."""
    n = ordered.shape[1]
    position = q / 100.0 * (n - 1)
    below = int(math.floor(position))
    above = min(below + 1, n - 1)
    fraction = position - below
    a, b = ordered[:, below], ordered[:, above]
    # numpy's lerp: from the nearer end, so that equal neighbours give their value exactly.
    return np.where(fraction >= 0.5, b - (b - a) * (1 - fraction), a + (b - a) * fraction)


def delta(data: np.ndarray, order: int) -> np.ndarray:
    """``librosa.feature.delta(data, width=9, order=order, axis=-1)`` (Savitzky-Golay, ``interp`` ends).

    A polynomial of degree ``order`` is fitted by least squares to each
    window of frames; its ``order``-th derivative at the centre is the
    delta. In the first and last half-windows the fit of the first (last)
    window is used, whose derivative of that degree is constant. Clips
    shorter than 9 frames use the largest odd window that fits (librosa
    raises); fewer than ``order + 1`` frames give 0.

    Examples
    --------
    >>> delta(np.arange(12.0)[None, :] ** 2, 2)[0, :3]
    array([2., 2., 2.])
    """
    data = np.asarray(data, dtype=np.float64)
    n = data.shape[-1]
    width = min(DELTA_WIDTH, n if n % 2 else n - 1)
    if width <= order:
        return np.zeros_like(data)
    coeffs = _savgol_coefficients(width, order)
    half = width // 2
    out = np.empty_like(data)
    windows = np.lib.stride_tricks.sliding_window_view(data, width, axis=-1)
    out[..., half:n - half] = windows @ coeffs
    out[..., :half] = out[..., half:half + 1]
    out[..., n - half:] = out[..., n - half - 1:n - half]
    return out


@functools.lru_cache(maxsize=16)
def _savgol_coefficients(width: int, order: int) -> np.ndarray:
    """Weights of a window's samples giving the ``order``-th derivative of its degree-``order`` fit."""
    half = width // 2
    k = np.arange(-half, half + 1, dtype=np.float64)
    vander = k[:, None] ** np.arange(order + 1)
    return np.linalg.pinv(vander)[order] * math.factorial(order)


@functools.lru_cache(maxsize=16)
def contrast_bands(sr: int, n_fft: int) -> tuple[tuple[int, int, int], ...]:
    """``spectral_contrast``'s octave bands as FFT bin ranges: (first, stop, bins per quantile).

    Band 0 spans 0-200 Hz, band k the octave above; every band but the
    first also takes the bin just below it, the last runs to Nyquist, and
    every band but the last leaves out its top bin (librosa's rules).

    Raises
    ------
    ValueError
        A band edge is at or above Nyquist, or a band holds no FFT bin.
    """
    freq = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = np.zeros(CONTRAST_BANDS + 2)
    edges[1:] = CONTRAST_FMIN * 2.0 ** np.arange(CONTRAST_BANDS + 1)
    if np.any(edges[:-1] >= 0.5 * sr):
        raise ValueError(f"the spectral contrast's octave bands reach {edges[-2]:g} Hz, at or "
                         f"above the Nyquist frequency of sr={sr}")
    bands = []
    for k, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        inside = np.flatnonzero((freq >= low) & (freq <= high))
        if inside.size == 0:
            raise ValueError(f"the spectral contrast's band {low:g}-{high:g} Hz holds no FFT bin "
                             f"at n_fft={n_fft}, sr={sr}")
        first = int(inside[0]) - (1 if k > 0 else 0)
        last = int(inside[-1]) + 1 if k < CONTRAST_BANDS else freq.size
        selected = last - first  # bins librosa marks in the band
        stop = last - 1 if k < CONTRAST_BANDS else last
        bands.append((first, stop, max(int(np.rint(CONTRAST_QUANTILE * selected)), 1)))
    return tuple(bands)


def band_rows(mag: np.ndarray, bands: tuple[tuple[int, int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Peak and valley of each contrast band for a block of frames [shape=(B, n_bins)].

    Returns (peak, valley), each [shape=(n_bands, B)], float64: the mean of
    the band's ``q`` largest and ``q`` smallest magnitudes.
    """
    peak = np.empty((len(bands), mag.shape[0]))
    valley = np.empty_like(peak)
    for k, (first, stop, q) in enumerate(bands):
        ordered = np.sort(mag[:, first:stop], axis=1)
        valley[k] = ordered[:, :q].mean(axis=1)
        peak[k] = ordered[:, -q:].mean(axis=1)
    return peak, valley
