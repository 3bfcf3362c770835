"""Per-clip feature vectors: one fast STFT, every feature derived from it.

:class:`FeatureComputer` returns the same numbers as calling librosa's
feature functions one by one (``tests/reference.py`` checks it to ~1e-6), but computes the
STFT once per clip, builds its filter banks once per process and takes all
frame statistics in one pass. It imports only numpy (scipy.signal and
librosa take seconds to import per worker).

Where the time goes (4 s clip at 22050 Hz, 173 frames): the float64 FFT
and the float32 running sum of the rolloff, both kept to reproduce librosa's
rounding, are about 40%; the spectrogram is processed in blocks of frames
and the big work arrays are recycled because page faults on fresh
whole-clip arrays used to cost more than the FFT.

Replicated librosa 0.11 behaviour, so that the numbers match:

- STFT: ``center=True`` with zero padding, periodic Hann window built in
  float64 exactly as ``scipy.signal.get_window``; frames are windowed in
  float64 and the spectrum is stored as complex64 for float32 audio, which
  makes the spectrogram bit-identical to ``librosa.stft``.
- MFCC: orthonormal DCT-II of ``power_to_db`` (ref 1, amin 1e-10, top_db 80
  over the whole clip) of a 128-band Slaney mel power spectrogram.
- chroma_stft: power spectrogram, tuning estimated with ``piptrack`` +
  ``pitch_tuning`` (0.01-bin histogram; piptrack re-infers an even
  ``n_fft = 2 * (n_bins - 1)`` from the spectrogram), per-frame max
  normalisation that leaves near-zero frames untouched.
- spectral centroid / bandwidth / rolloff: magnitude spectrogram.
- zero_crossing_rate: ``edge`` padding, crossings below 1e-10 ignored.
- rms: zero-padded frames of the waveform (not of the spectrogram).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import descriptors
from .errors import BadAudioError, UsageError
from .params import FeatureParams, Preset

__all__ = ["FeatureComputer", "check_params", "feature_columns", "frame_names", "log_mel"]

# librosa's defaults for the features we replicate.
N_MELS = 128
N_CHROMA = 12
AMIN = 1e-10
TOP_DB = 80.0
ROLL_PERCENT = 0.85
ZCR_THRESHOLD = 1e-10
PIP_FMIN = 150.0
PIP_FMAX = 4000.0
PIP_THRESHOLD = 0.1
TUNING_RESOLUTION = 0.01

# Mel bands are multiplied in groups restricted to the FFT bins they touch:
# the bank is ~98% zeros, so this skips most of a dense product.
_MEL_GROUP = 16
# Frames per block of spectrogram work (see _frame_features).
_BLOCK = 64
# From this many frames on, the rolloff's running sum goes row by row.
_ROW_SUM_FRAMES = 256

_SPECTRAL_NAMES = ("spectral_centroid", "spectral_bandwidth", "spectral_rolloff", "zcr", "rms")
_GTZAN_SCALARS = (
    "chroma_stft",
    "rmse",
    "spectral_centroid",
    "spectral_bandwidth",
    "rolloff",
    "zero_crossing_rate",
)


def feature_columns(params: FeatureParams) -> list[str]:
    """Names of the feature columns, in table order.

    Parameters
    ----------
    params : FeatureParams
        The preset and ``n_mfcc`` decide the columns.

    Returns
    -------
    list of str
        Rich preset: ``<descriptor>_<statistic>`` (:mod:`features.descriptors`).
        Default preset: ``mfcc_mean_1..n``, ``mfcc_std_1..n``,
        ``chroma_mean_1..12``, ``chroma_std_1..12`` then ``<name>_mean``,
        ``<name>_std`` for spectral_centroid, spectral_bandwidth,
        spectral_rolloff, zcr and rms. GTZAN preset: ``chroma_stft, rmse,
        spectral_centroid, spectral_bandwidth, rolloff, zero_crossing_rate,
        mfcc1..n`` (no ``filename`` / ``label``).

    Examples
    --------
    >>> feature_columns(FeatureParams(preset="gtzan"))[:3]
    ['chroma_stft', 'rmse', 'spectral_centroid']
    >>> len(feature_columns(FeatureParams()))
    114
    >>> len(feature_columns(FeatureParams(preset="rich")))
    2110
    """
    check_params(params)
    n = params.n_mfcc
    if params.preset is Preset.RICH:
        return descriptors.rich_columns(n)
    if params.preset is Preset.GTZAN:
        return [*_GTZAN_SCALARS, *(f"mfcc{i}" for i in range(1, n + 1))]
    columns = [f"mfcc_{stat}_{i}" for stat in ("mean", "std") for i in range(1, n + 1)]
    columns += [f"chroma_{stat}_{i}" for stat in ("mean", "std") for i in range(1, N_CHROMA + 1)]
    columns += [f"{name}_{stat}" for name in _SPECTRAL_NAMES for stat in ("mean", "std")]
    return columns


class FeatureComputer:
    """Compute one clip's feature vector, fast and equal to librosa's numbers.

    Parameters
    ----------
    params : FeatureParams
        ``sr``, ``n_fft``, ``hop_length``, ``n_mfcc`` and ``preset`` are used.

    Attributes
    ----------
    params : FeatureParams
    columns : list of str
        Names of the values :meth:`compute` returns, in order.

    Notes
    -----
    Picklable: only ``params`` travels; window, FFT frequencies, mel, DCT and
    chroma banks are built on first use and shared by every computer with
    the same parameters in the process. Work arrays are reused per thread.

    Run it with one BLAS thread per process (``threadpoolctl``, as
    ``features.extract`` does): its matrix products are small, and on a
    busy machine OpenBLAS threads make them several times slower.

    Examples
    --------
    >>> computer = FeatureComputer(FeatureParams())
    >>> y = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
    >>> computer.compute(y).shape
    (114,)
    """

    def __init__(self, params: FeatureParams) -> None:
        check_params(params)
        self.params = params
        self._tables: _Tables | None = None

    @property
    def columns(self) -> list[str]:
        """Feature names, in the order of :meth:`compute`'s output."""
        return feature_columns(self.params)

    @property
    def frame_names(self) -> list[str]:
        """Names of the frame-level values summarised into :attr:`columns` (the rows a ``sink`` gets)."""
        return frame_names(self.params)

    def compute(self, y: np.ndarray, sink: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
        """Feature vector of one clip.

        Parameters
        ----------
        y : np.ndarray [shape=(n_samples,), dtype=float32 or float64]
            Mono audio at ``params.sr`` (the output of ``load_audio``).

        Returns
        -------
        np.ndarray [shape=(len(self.columns),), dtype=float64]

        ``sink``, if given, is called with the frame-level values before
        they are summarised [shape=(len(self.frame_names), n_frames)]
        (a work array: copy or write it out before returning).

        Raises
        ------
        UsageError
            ``y`` is not a 1-D floating-point array.
        BadAudioError
            ``y`` is empty or holds NaN / inf samples.
        """
        y = _check_audio(y)
        if self.params.preset is Preset.RICH:
            p = self.params
            per_frame = self.frame_descriptors(y)
            if sink is not None:
                sink(per_frame)
            return descriptors.summarise(per_frame, p.hop_length / p.sr)
        per_frame = _frame_features(y, self._get_tables())
        if sink is not None:
            sink(per_frame)
        return _summarise(per_frame, self.params)

    def frame_descriptors(self, y: np.ndarray) -> np.ndarray:
        """The rich preset's frame-level descriptors of one clip, before summarising.

        Parameters
        ----------
        y : np.ndarray [shape=(n_samples,), dtype=float32 or float64]
            Mono audio at ``params.sr``.

        Returns
        -------
        np.ndarray [shape=(211, n_frames), dtype=float64]
            Rows in :func:`features.descriptors.rich_descriptors` order
            (211 with 40 MFCCs); frame ``t`` is centred at ``t * hop_length``.
        """
        return _rich_frame_features(_check_audio(y), self._get_tables())

    def _get_tables(self) -> _Tables:
        if self._tables is None:
            p = self.params
            self._tables = _tables(p.sr, p.n_fft, p.hop_length, p.n_mfcc)
        return self._tables

    def compute_blocks(self, open_blocks: Callable[[], Iterable[np.ndarray]],
                       sink: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
        """Feature vector of a clip too long to hold in memory, read in blocks.

        Two or three passes: the first finds the loudest mel bin (MFCC
        ``top_db``) and the tuning (chroma), the last computes the frame
        statistics. Results agree with :meth:`compute` on the whole clip
        to about 1e-5 relative: float32 matrix products round differently
        on other block shapes, and means and variances are merged block by
        block.

        Parameters
        ----------
        open_blocks : callable
            Returns a fresh iterable of consecutive 1-D float32 blocks of
            the clip's mono samples at ``params.sr``; called once per pass.
        sink : callable, optional
            Called with the frame-level values of consecutive chunks of
            frames, in order, as :meth:`compute` calls it once (default
            preset: chunks of :data:`STREAM_FRAMES` frames, so a day-long
            clip's frames never sit in memory together).

        Returns
        -------
        np.ndarray [shape=(len(self.columns),), dtype=float64]

        Raises
        ------
        BadAudioError
            Rich preset, and the clip is longer than :data:`RICH_MAX_SECONDS`:
            its percentiles need every frame at once.
        """
        if self.params.preset is Preset.RICH:
            return self.compute(_whole(open_blocks, self.params), sink)
        return _stream_features(open_blocks, self._get_tables(), self.params, sink)

    def __getstate__(self) -> dict[str, Any]:
        # The tables are cheap to rebuild and cached per process; do not ship them.
        return {"params": self.params}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["params"])

    def __repr__(self) -> str:
        return f"FeatureComputer({self.params!r})"


def frame_names(params: FeatureParams) -> list[str]:
    """Names of a preset's frame-level values, in the order a :meth:`FeatureComputer.compute` sink gets them.

    >>> frame_names(FeatureParams())[-3:]
    ['spectral_rolloff', 'zcr', 'rms']
    """
    check_params(params)
    if params.preset is Preset.RICH:
        return descriptors.rich_descriptors(params.n_mfcc)
    return [*(f"mfcc_{k}" for k in range(1, params.n_mfcc + 1)),
            *(f"chroma_{k}" for k in range(1, N_CHROMA + 1)), *_SPECTRAL_NAMES]


def log_mel(y: np.ndarray, *, sr: int, n_fft: int, hop_length: int, n_mels: int,
            top_db: float | None = TOP_DB) -> np.ndarray:
    """Log-mel spectrogram: ``power_to_db(melspectrogram(y=y, ...), top_db=top_db)``.

    The same numbers as librosa (Slaney mel bank, power 2, ``center=True``
    with zero padding, ``ref=1``, ``amin=1e-10``), from this module's STFT.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float32]
        Mono audio at ``sr``.
    sr, n_fft, hop_length, n_mels : int
    top_db : float or None
        Floor relative to the loudest bin (None: no floor).

    Returns
    -------
    np.ndarray [shape=(n_mels, 1 + n // hop_length), dtype=float32]

    Examples
    --------
    >>> y = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
    >>> log_mel(y, sr=22050, n_fft=2048, hop_length=512, n_mels=64).shape
    (64, 44)
    """
    y = _check_audio(y)
    frames = _frames(y, n_fft, hop_length)
    window = _hann(n_fft)
    power = np.empty((frames.shape[0], n_fft // 2 + 1), dtype=y.dtype)
    for start in range(0, frames.shape[0], _BLOCK):
        block = slice(start, start + _BLOCK)
        mag = _magnitude(frames[block], window, y.dtype)
        np.multiply(mag, mag, out=power[block])
    mel = _mel_bank_cached(sr, n_fft, n_mels) @ power.T
    db = 10.0 * np.log10(np.maximum(AMIN, mel))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db.astype(np.float32, copy=False)


@functools.lru_cache(maxsize=8)
def _mel_bank_cached(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    return _mel_bank(sr, n_fft, n_mels)


# ---------------------------------------------------------------- validation


def check_params(params: Any) -> None:
    """Refuse anything but a FeatureParams whose settings the computer supports."""
    if not isinstance(params, FeatureParams):
        raise UsageError(f"params={params!r} must be a features.params.FeatureParams")
    if params.n_mfcc > N_MELS:
        raise UsageError(
            f"n_mfcc={params.n_mfcc} must be at most {N_MELS} (the number of mel bands)"
        )
    if params.preset is Preset.RICH:
        try:
            descriptors.contrast_bands(params.sr, params.n_fft)
        except ValueError as exc:
            raise UsageError(f"preset rich: {exc}; use sr of at least 16000 Hz (and n_fft of at "
                             f"least sr / 200) for the rich preset") from None


def _check_audio(y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype not in (np.float32, np.float64):
        raise UsageError(
            f"audio dtype {y.dtype} is not float32/float64; "
            "load clips with features.io.audio.load_audio"
        )
    if y.ndim != 1:
        raise UsageError(f"audio of shape {y.shape} must be 1-D mono samples")
    if y.size == 0:
        raise BadAudioError("audio has no samples; check the file, offset and duration")
    if not np.isfinite(y).all():
        raise BadAudioError("audio contains NaN or infinite samples; the file is corrupt")
    return y


# ------------------------------------------------------------ per-process tables


@dataclasses.dataclass(frozen=True)
class _Tables:
    """Everything that depends only on (sr, n_fft, hop_length, n_mfcc)."""

    sr: int
    n_fft: int
    hop_length: int
    window: np.ndarray  # (n_fft,) float64
    freqs: np.ndarray  # (n_bins,) float64
    freq_moments: np.ndarray  # (n_bins, 3) float64: 1, f, f**2
    mel_groups: tuple[tuple[int, int, int, int, np.ndarray], ...]
    dct: np.ndarray  # (N_MELS, n_mfcc) float64
    pip_bins: tuple[int, int]  # FFT bins [lo, hi) searched for pitches
    pip_n_fft: int  # the n_fft piptrack assumes (even)


@functools.lru_cache(maxsize=16)
def _tables(sr: int, n_fft: int, hop_length: int, n_mfcc: int) -> _Tables:
    freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    dct = _dct_matrix(N_MELS)[:n_mfcc]
    # piptrack is handed the spectrogram without n_fft and infers the even
    # 2 * (n_bins - 1), which differs from an odd n_fft; its bins follow suit.
    pip_n_fft = 2 * (freqs.size - 1)
    pip_freqs = np.fft.rfftfreq(n=pip_n_fft, d=1.0 / sr) if pip_n_fft else freqs
    in_band = np.flatnonzero((pip_freqs >= PIP_FMIN) & (pip_freqs < min(PIP_FMAX, sr / 2)))
    pip_bins = (int(in_band[0]), int(in_band[-1]) + 1) if in_band.size else (1, 1)
    return _Tables(
        sr=sr,
        n_fft=n_fft,
        hop_length=hop_length,
        window=_hann(n_fft),
        freqs=freqs,
        freq_moments=np.stack([np.ones_like(freqs), freqs, freqs**2], axis=1),
        mel_groups=_mel_groups(_mel_bank(sr, n_fft)),
        dct=np.ascontiguousarray(dct.T),
        pip_bins=pip_bins,
        pip_n_fft=pip_n_fft,
    )


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix [shape=(n, n)]: ``dct(x, type=2, norm="ortho") == M @ x``."""
    k = np.arange(n)[:, None]
    m = np.sqrt(2.0 / n) * np.cos(np.pi * k * (2 * np.arange(n) + 1) / (2 * n))
    m[0] /= np.sqrt(2.0)
    return m


def _hann(n: int) -> np.ndarray:
    """Periodic Hann window, bit-identical to ``scipy.signal.get_window('hann', n)``."""
    if n <= 1:
        return np.ones(n)
    # scipy builds the symmetric window of n + 1 points and drops the last.
    fac = np.linspace(-np.pi, np.pi, n + 1)
    w = np.zeros(n + 1)
    w += 0.5 * np.cos(0 * fac)
    w += 0.5 * np.cos(fac)
    return w[:-1]


# Slaney mel scale constants, spelled as librosa computes them.
_MEL_F_SP = 200.0 / 3
_MEL_MIN_LOG_HZ = 1000.0
_MEL_MIN_LOG_MEL = _MEL_MIN_LOG_HZ / _MEL_F_SP
_MEL_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa ``hz_to_mel(htk=False)``)."""
    f = np.asarray(f, dtype=np.float64)
    mels = f / _MEL_F_SP
    log_t = f >= _MEL_MIN_LOG_HZ
    mels[log_t] = _MEL_MIN_LOG_MEL + np.log(f[log_t] / _MEL_MIN_LOG_HZ) / _MEL_LOGSTEP
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel` (librosa ``mel_to_hz(htk=False)``)."""
    freqs = _MEL_F_SP * mels
    log_t = mels >= _MEL_MIN_LOG_MEL
    freqs[log_t] = _MEL_MIN_LOG_HZ * np.exp(_MEL_LOGSTEP * (mels[log_t] - _MEL_MIN_LOG_MEL))
    return freqs


def _mel_bank(sr: int, n_fft: int, n_mels: int = N_MELS) -> np.ndarray:
    """librosa ``filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)``: [shape=(n_mels, 1 + n_fft // 2)] float32."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    max_mel = _hz_to_mel(np.array([sr / 2.0]))[0]
    mel_f = _mel_to_hz(np.linspace(0.0, max_mel, n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    # librosa stores the triangles as float32 before the Slaney scaling.
    weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights


def _mel_groups(bank: np.ndarray) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """Split the mel bank into (band0, band1, bin0, bin1, weights.T) blocks."""
    groups = []
    for b0 in range(0, bank.shape[0], _MEL_GROUP):
        b1 = min(b0 + _MEL_GROUP, bank.shape[0])
        used = np.flatnonzero(bank[b0:b1].any(axis=0))
        f0, f1 = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
        groups.append((b0, b1, f0, f1, np.ascontiguousarray(bank[b0:b1, f0:f1].T)))
    return tuple(groups)


@functools.lru_cache(maxsize=256)
def _chroma_bank_t(sr: int, n_fft: int, tuning: float) -> np.ndarray:
    """librosa ``filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning)``, transposed.

    Returns
    -------
    np.ndarray [shape=(1 + n_fft // 2, 12), dtype=float32]
    """
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (tuning / N_CHROMA)
    frqbins = N_CHROMA * np.log2(frequencies / (float(a440) / 16))
    # The 0 Hz bin is placed 1.5 octaves below bin 1 (librosa's choice).
    frqbins = np.concatenate(([frqbins[0] - 1.5 * N_CHROMA], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    d = np.subtract.outer(frqbins, np.arange(0, N_CHROMA, dtype="d")).T
    half = np.round(float(N_CHROMA) / 2)
    d = np.remainder(d + half + 10 * N_CHROMA, N_CHROMA) - half
    wts = np.exp(-0.5 * (2 * d / np.tile(binwidthbins, (N_CHROMA, 1))) ** 2)
    norm = np.sum(np.abs(wts) ** 2, axis=0, keepdims=True) ** 0.5
    norm[norm < np.finfo(wts.dtype).tiny] = 1.0
    wts = wts / norm
    wts *= np.tile(np.exp(-0.5 * (((frqbins / N_CHROMA - 5.0) / 2) ** 2)), (N_CHROMA, 1))
    wts = np.roll(wts, -3 * (N_CHROMA // 12), axis=0)
    return np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)].T, dtype=np.float32)


# ------------------------------------------------------------------ scratch


class _Scratch(threading.local):
    """Per-thread reusable work arrays.

    A fresh array of a few hundred kB is page-faulted in on every clip; that
    cost more than the FFT, so the big per-clip arrays are recycled. Arrays
    over ``_SCRATCH_MAX_BYTES`` (very long clips) are not kept.
    """

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, np.dtype], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        dtype = np.dtype(dtype)
        size = math.prod(shape)
        if size * dtype.itemsize > _SCRATCH_MAX_BYTES:
            return np.empty(shape, dtype=dtype)
        buffer = self.buffers.get((name, dtype))
        if buffer is None or buffer.size < size:
            buffer = self.buffers[(name, dtype)] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)


_SCRATCH_MAX_BYTES = 8 * 2**20
_scratch = _Scratch()


# --------------------------------------------------------------- frame features

# Rows of the per-frame matrix after the n_mfcc MFCC rows and 12 chroma rows.
_N_SCALARS = len(_SPECTRAL_NAMES)


def _frame_features(y: np.ndarray, t: _Tables) -> np.ndarray:
    """Per-frame features of one clip.

    The spectrogram is produced and consumed in blocks of frames: whole-clip
    float64 temporaries cost more in page faults and cache misses than the
    arithmetic. Only the power spectrogram is kept whole, because chroma
    needs the tuning, which depends on every frame.

    Returns
    -------
    np.ndarray [shape=(n_mfcc + 12 + 5, n_frames), dtype=float64]
        Rows: MFCCs, chroma, centroid, bandwidth, rolloff, zcr, rms.
    """
    frames = _frames(y, t.n_fft, t.hop_length)
    n_frames = frames.shape[0]
    n_mfcc = t.dct.shape[1]
    out = _scratch.get("per_frame", (n_mfcc + N_CHROMA + _N_SCALARS, n_frames), np.float64)
    power, peaks = _spectra(frames, t, y.dtype, out[-5:-2])
    mel = _mel_power(power, t)
    out[:n_mfcc] = _mfcc(_db(mel), t).T
    out[n_mfcc : n_mfcc + N_CHROMA] = _chroma(power, t, _tuning(peaks)).T
    out[-2] = _zero_crossing_rate(y, t.n_fft, t.hop_length, n_frames)
    out[-1] = _rms(frames)
    return out


def _spectra(
    frames: np.ndarray, t: _Tables, dtype: np.dtype, shape_rows: np.ndarray
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Power spectrogram of ``frames`` and what is taken from the magnitudes on the way.

    Writes centroid, bandwidth and rolloff into ``shape_rows``
    [shape=(3, n_frames)] and returns the power spectrogram
    [shape=(n_frames, n_bins)] (a scratch array) and the pitch peaks of
    every block of frames.
    """
    n_frames, n_bins = frames.shape[0], t.freqs.size
    power = _scratch.get("power", (n_frames, n_bins), dtype)
    # Long clips keep the magnitudes bin-major for the rolloff's running sum.
    mag_t = None
    if n_frames >= _ROW_SUM_FRAMES:
        mag_t = _scratch.get("mag_t", (n_bins, n_frames), dtype)
    peaks = []
    for start in range(0, n_frames, _BLOCK):
        block = slice(start, start + _BLOCK)
        mag = _magnitude(frames[block], t.window, dtype)
        block_power = np.multiply(mag, mag, out=power[block])
        shape_rows[0:2, block] = _centroid_bandwidth(mag, t)
        if mag_t is None:
            shape_rows[2, block] = t.freqs[_rolloff_bins(np.cumsum(mag, axis=1), axis=1)]
        else:
            mag_t[:, block] = mag.T
        peaks.append(_pitch_peaks(block_power, t))
    if mag_t is not None:
        shape_rows[2] = t.freqs[_rolloff_bins(_running_sum_by_rows(mag_t), axis=0)]
    return power, peaks


def _frames(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred frames of ``y`` zero-padded by n_fft // 2 per side: [shape=(T, n_fft)] view."""
    pad = n_fft // 2
    padded = _scratch.get("padded", (y.size + 2 * pad,), y.dtype)
    padded[:pad] = 0
    padded[pad : pad + y.size] = y
    padded[pad + y.size :] = 0
    return sliding_window_view(padded, n_fft)[::hop_length]


def _magnitude(frames: np.ndarray, window: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """|STFT| [shape=(B, 1 + n_fft // 2)] of a block of frames, with librosa's rounding.

    librosa's window is float64, so frames are windowed and transformed in
    float64, then the spectrum is stored in complex64 for float32 audio;
    doing the same makes the magnitudes bit-identical to librosa's.
    """
    windowed = np.multiply(frames, window, out=_scratch.get("windowed", frames.shape, np.float64))
    spectrum = np.fft.rfft(windowed, axis=-1)
    if dtype == np.float32:
        narrow = _scratch.get("spectrum", spectrum.shape, np.complex64)
        np.copyto(narrow, spectrum, casting="same_kind")
        spectrum = narrow
    return np.abs(spectrum, out=_scratch.get("magnitude", spectrum.shape, dtype))


def _mel_power(power: np.ndarray, t: _Tables) -> np.ndarray:
    """Mel power spectrogram [shape=(T, 128)] (a scratch array)."""
    out = _scratch.get("mel", (power.shape[0], N_MELS), power.dtype)
    for b0, b1, f0, f1, weights in t.mel_groups:
        np.matmul(power[:, f0:f1], weights, out=out[:, b0:b1])
    return out


def _db(mel: np.ndarray) -> np.ndarray:
    """``power_to_db(mel, ref=1, amin=1e-10, top_db=None)``."""
    return 10.0 * np.log10(np.maximum(AMIN, mel))


def _mfcc(db: np.ndarray, t: _Tables, loudest: Any = None) -> np.ndarray:
    """MFCCs [shape=(T, n_mfcc)] from the mel spectrogram in dB [shape=(T, 128)].

    ``top_db`` clamps relative to the loudest mel bin of the whole clip:
    ``db.max()`` unless the caller knows it from an earlier pass (``loudest``).
    """
    if loudest is None:
        loudest = db.max()
    return np.maximum(db, loudest - TOP_DB) @ t.dct


def _chroma(power: np.ndarray, t: _Tables, tuning: float) -> np.ndarray:
    """Max-normalised chroma [shape=(T, 12)] from the power spectrogram."""
    raw = power @ _chroma_bank_t(t.sr, t.n_fft, tuning)
    peak = raw.max(axis=1).astype(np.float64)
    # librosa.util.normalize leaves frames whose max is below "tiny" as they are.
    peak[peak < np.finfo(raw.dtype).tiny] = 1.0
    return raw / peak[:, None]


def _pitch_peaks(power: np.ndarray, t: _Tables) -> tuple[np.ndarray, np.ndarray]:
    """librosa ``piptrack(S=power)`` for a block: (pitches, magnitudes) of its peaks.

    Only the bins in [150, 4000) Hz and their neighbours are examined, and
    interpolation is done only at the peaks; the arithmetic (and its mix of
    float32 and float64) mirrors librosa's numba kernels bit for bit.
    """
    lo, hi = t.pip_bins
    empty = np.empty(0, dtype=power.dtype)
    if hi <= lo:
        return empty, empty
    # The band plus one neighbour bin per side, contiguous so that flat
    # indices address peaks and their neighbours directly.
    band = np.ascontiguousarray(power[:, lo - 1 : hi + 1])
    ref = PIP_THRESHOLD * power.max(axis=1, keepdims=True)
    # librosa finds local maxima of S * (S > ref). A bin above ref beats any
    # neighbour zeroed by that gate, so only ungated neighbours need comparing.
    peak = np.zeros(band.shape, dtype=bool)
    centre = band[:, 1:-1]
    np.greater(centre, ref, out=peak[:, 1:-1])
    peak[:, 1:-1] &= centre > band[:, :-2]
    peak[:, 1:-1] &= centre >= band[:, 2:]
    at = np.flatnonzero(peak)
    if at.size == 0:
        return empty, empty
    flat = band.ravel()
    s_prev, s, s_next = flat[at - 1], flat[at], flat[at + 1]
    k = at % band.shape[1] + (lo - 1)
    shift = _parabolic_shift(s_prev, s, s_next)
    avg = (s_next - s_prev) / 2.0
    mags = s + 0.5 * avg * shift
    pitches = ((k + shift) * float(t.sr) / t.pip_n_fft).astype(power.dtype)
    return pitches, mags


def _tuning(peaks: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """librosa ``estimate_tuning``: keep peaks at least as loud as the median."""
    pitches = np.concatenate([p for p, _ in peaks])
    mags = np.concatenate([m for _, m in peaks])
    voiced = pitches > 0
    threshold = np.median(mags[voiced]) if voiced.any() else 0.0
    return _pitch_tuning(pitches[(mags >= threshold) & voiced])


def _parabolic_shift(s_prev: np.ndarray, s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
    """librosa's ``_pi_stencil``: vertex offset of the parabola through 3 bins.

    In numba ``2 * x`` and ``x / 2`` promote float32 to float64, hence the casts.
    """
    a = (s_next + s_prev).astype(np.float64) - 2 * s.astype(np.float64)
    b = (s_next - s_prev).astype(np.float64) / 2
    shift = np.zeros_like(a)
    ok = np.abs(b) < np.abs(a)
    shift[ok] = -b[ok] / a[ok]
    return shift.astype(s.dtype)


def _pitch_tuning(frequencies: np.ndarray) -> float:
    """librosa ``pitch_tuning``: most common deviation from A440, in bins."""
    frequencies = frequencies[frequencies > 0]
    if not frequencies.size:
        return 0.0
    residual = np.mod(N_CHROMA * np.log2(frequencies / (440.0 / 16)), 1.0)
    residual[residual >= 0.5] -= 1.0
    edges = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / TUNING_RESOLUTION)) + 1)
    counts, edges = np.histogram(residual, edges)
    return float(edges[np.argmax(counts)])


def _centroid_bandwidth(mag: np.ndarray, t: _Tables) -> tuple[np.ndarray, np.ndarray]:
    """Spectral centroid and bandwidth (p=2) of each frame [shape=(B, n_bins)], in Hz."""
    total, first, second = (mag.astype(np.float64) @ t.freq_moments).T
    # librosa's L1 normalisation skips frames whose sum is below float "tiny".
    norm = np.where(total < np.finfo(mag.dtype).tiny, 1.0, total)
    centroid = first / norm
    # sum(S/norm * (f - c)**2), expanded into the moments of S.
    spread = (second - 2 * centroid * first + centroid**2 * total) / norm
    return centroid, np.sqrt(np.maximum(spread, 0.0))


def _rolloff_bins(cumulative: np.ndarray, axis: int, percent: float = ROLL_PERCENT) -> np.ndarray:
    """Index of the first bin whose running sum reaches ``percent`` of the frame's total.

    ``cumulative`` must be the running sum in the magnitude's own dtype, as
    librosa's ``np.cumsum``: float32 rounding decides the bin in close calls.
    """
    total = np.take(cumulative, [-1], axis=axis)
    below = _scratch.get("below", cumulative.shape, bool)
    np.less(cumulative, percent * total, out=below)
    # Running sums of magnitudes never decrease, so the number of bins below
    # the threshold is the index of the first one reaching it.
    return below.sum(axis=axis, dtype=np.intp)


def _running_sum_by_rows(mag_t: np.ndarray) -> np.ndarray:
    """``np.cumsum(mag_t, axis=0)`` [shape=(n_bins, T)], same float32 additions.

    ``np.cumsum`` runs one dependent chain of additions per frame (~3 ns per
    bin); adding whole rows vectorises across frames, which wins once a clip
    has a few hundred frames.
    """
    out = _scratch.get("running_sum", mag_t.shape, mag_t.dtype)
    out[0] = mag_t[0]
    for i in range(1, out.shape[0]):
        np.add(out[i - 1], mag_t[i], out=out[i])
    return out


def _zero_crossing_rate(y: np.ndarray, n_fft: int, hop_length: int, n_frames: int) -> np.ndarray:
    """Fraction of zero crossings per centred, edge-padded frame.

    A crossing at sample i is a sign change between i - 1 and i, with
    samples within 1e-10 of zero counted as positive; a frame's first sample
    never counts (librosa's ``pad=False``).
    """
    n = y.size
    negative = np.less(y, -y.dtype.type(ZCR_THRESHOLD), out=_scratch.get("negative", (n,), bool))
    # counted[i] = crossings at samples 1..i; edge padding adds none.
    counted = _scratch.get("crossings", (n,), np.int32)
    counted[0] = 0
    np.cumsum(negative[1:] != negative[:-1], dtype=np.int32, out=counted[1:])
    # Frame t holds padded samples [t*hop, t*hop + n_fft), i.e. y samples from
    # t*hop - pad; its first sample's crossing is not counted.
    first = np.arange(n_frames) * hop_length - n_fft // 2
    last = np.clip(first + n_fft - 1, 0, n - 1)
    return (counted[last] - counted[np.clip(first, 0, n - 1)]) / n_fft


def _rms(frames: np.ndarray) -> np.ndarray:
    """Root mean square of each zero-padded (unwindowed) frame."""
    energy = np.einsum("ij,ij->i", frames, frames)
    return np.sqrt(energy.astype(np.float64) / frames.shape[1])


# ------------------------------------------------------------- rich preset

#: The rich preset's second roll-off.
ROLL_PERCENT_HIGH = 0.95
#: Longest clip (after offset and duration) the rich preset summarises: its
#: percentiles need every frame, and the clip is held whole to compute them.
RICH_MAX_SECONDS = 600.0


@functools.lru_cache(maxsize=8)
def _rich_banks(sr: int, n_fft: int) -> tuple[Any, Any]:
    """The 64-band mel groups (logmel) and the contrast's octave bands."""
    return (_mel_groups(_mel_bank(sr, n_fft, descriptors.N_LOGMEL)),
            descriptors.contrast_bands(sr, n_fft))


def _rich_frame_features(y: np.ndarray, t: _Tables) -> np.ndarray:
    """Every frame-level descriptor of the rich preset (see :mod:`features.descriptors`).

    One STFT, consumed block by block as in :func:`_frame_features`; the
    magnitudes of each block also give the contrast bands, the flatness and
    both roll-offs before the next block overwrites them.
    """
    frames = _frames(y, t.n_fft, t.hop_length)
    n_frames, n_bins = frames.shape[0], t.freqs.size
    logmel_groups, bands = _rich_banks(t.sr, t.n_fft)
    power = _scratch.get("power", (n_frames, n_bins), y.dtype)
    shape = np.empty((4, n_frames))
    peak = np.empty((len(bands), n_frames))
    valley = np.empty_like(peak)
    flatness = np.empty(n_frames)
    peaks = []
    for start in range(0, n_frames, _BLOCK):
        block = slice(start, start + _BLOCK)
        mag = _magnitude(frames[block], t.window, y.dtype)
        block_power = np.multiply(mag, mag, out=power[block])
        shape[0:2, block] = _centroid_bandwidth(mag, t)
        running = np.cumsum(mag, axis=1)
        shape[2, block] = t.freqs[_rolloff_bins(running, axis=1)]
        shape[3, block] = t.freqs[_rolloff_bins(running, axis=1, percent=ROLL_PERCENT_HIGH)]
        peak[:, block], valley[:, block] = descriptors.band_rows(mag, bands)
        floored = np.maximum(block_power.dtype.type(AMIN), block_power)
        flatness[block] = (np.exp(np.log(floored).mean(axis=1, dtype=np.float64))
                           / floored.mean(axis=1, dtype=np.float64))
        peaks.append(_pitch_peaks(block_power, t))
    db = _db(_mel_power(power, t))
    clamped = np.maximum(db, db.max() - TOP_DB)
    mfcc = (clamped @ t.dct).T
    logmel = np.empty((n_frames, descriptors.N_LOGMEL), dtype=power.dtype)
    for b0, b1, f0, f1, weights in logmel_groups:
        np.matmul(power[:, f0:f1], weights, out=logmel[:, b0:b1])
    logmel = _db(logmel)
    rows = [
        mfcc, descriptors.delta(mfcc, 1), descriptors.delta(mfcc, 2),
        np.maximum(logmel, logmel.max() - TOP_DB).T,
        _clamped_db(peak) - _clamped_db(valley),
        flatness[None, :], _flux(clamped, t)[None, :], shape,
        _chroma(power, t, _tuning(peaks)).T,
        _zero_crossing_rate(y, t.n_fft, t.hop_length, n_frames)[None, :],
        _rms(frames)[None, :],
    ]
    return np.concatenate(rows, axis=0)


def _clamped_db(x: np.ndarray) -> np.ndarray:
    """``power_to_db(x)`` (ref 1, amin 1e-10, top_db 80 over the whole array)."""
    db = 10.0 * np.log10(np.maximum(AMIN, x))
    return np.maximum(db, db.max() - TOP_DB)


def _flux(db: np.ndarray, t: _Tables) -> np.ndarray:
    """``onset_strength``: mean rise over mel bands [shape=(T, 128)] since the last frame, in dB.

    Shifted as librosa does for centred frames: the rise into frame ``j``
    lands on frame ``j + n_fft // (2 * hop)``; the first frames are 0.
    """
    n_frames = db.shape[0]
    rise = np.maximum(0.0, db[1:] - db[:-1]).mean(axis=1)
    out = np.zeros(n_frames)
    pad = 1 + t.n_fft // (2 * t.hop_length)
    kept = rise[: max(n_frames - pad, 0)]
    out[pad : pad + kept.size] = kept
    return out


def _whole(open_blocks: Callable[[], Iterable[np.ndarray]], params: FeatureParams) -> np.ndarray:
    """A long clip's samples in one array, when the rich preset may hold them."""
    limit = int(RICH_MAX_SECONDS * params.sr)
    parts, n = [], 0
    for block in open_blocks():
        n += block.size
        if n > limit:
            raise BadAudioError(
                f"the clip is longer than {RICH_MAX_SECONDS / 60:g} minutes, the longest the rich "
                "preset summarises (its percentiles need every frame at once); cut it into "
                "windows with --segment, or read a part with --duration",
                reason="too long for the rich preset")
        parts.append(block)
    return np.concatenate(parts) if parts else np.empty(0, np.float32)


# ---------------------------------------------------------------- statistics


def _summarise(per_frame: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Frame statistics in :func:`feature_columns` order: [shape=(n_features,)] float64."""
    means = per_frame.mean(axis=1)
    chroma = slice(params.n_mfcc, params.n_mfcc + N_CHROMA)
    if params.preset is Preset.GTZAN:
        return _vector(means, None, per_frame[chroma].mean(), params)
    return _vector(means, per_frame.std(axis=1), None, params)


def _vector(means: np.ndarray, stds: np.ndarray | None, chroma_mean: Any,
            params: FeatureParams) -> np.ndarray:
    """Lay out per-row means (and stds) in :func:`feature_columns` order."""
    n_mfcc = params.n_mfcc
    chroma = slice(n_mfcc, n_mfcc + N_CHROMA)
    if params.preset is Preset.GTZAN:
        scalars = [chroma_mean, means[-1], *means[-5:-1]]
        return np.concatenate([scalars, means[:n_mfcc]])
    spectral = np.stack([means[-5:], stds[-5:]], axis=1).ravel()
    return np.concatenate(
        [means[:n_mfcc], stds[:n_mfcc], means[chroma], stds[chroma], spectral]
    )


# ------------------------------------------------------------- long clips

# Frames per chunk of a clip analysed block by block (about 4 MB of power
# spectrogram at n_fft=2048).
STREAM_FRAMES = 1024
# Magnitudes of pitch peaks are binned by the top 16 bits of their float32
# pattern (relative width 2**-7) to find their median without keeping them.
_MAG_BINS = 1 << 16
_TUNING_BINS = int(np.ceil(1.0 / TUNING_RESOLUTION))


def _stream_features(open_blocks: Any, t: _Tables, params: FeatureParams, sink: Any = None) -> np.ndarray:
    """Feature vector of a clip that arrives as blocks of samples: two passes.

    The first pass finds the two whole-clip quantities, the loudest mel bin
    (MFCC ``top_db``) and the tuning (chroma; sometimes a pass more, see
    :class:`_TuningSummary`); the last computes every per-frame feature and
    keeps only running means and variances. Memory is
    bounded by the chunk size, whatever the clip's length.
    """
    loudest = None
    tuning = _TuningSummary()
    for frames, _ in _framed(open_blocks(), t):
        rows = _scratch.get("shape_rows", (3, frames.shape[0]), np.float64)
        power, peaks = _spectra(frames, t, np.dtype(np.float32), rows)
        chunk_loudest = _db(_mel_power(power, t)).max()
        loudest = chunk_loudest if loudest is None else max(loudest, chunk_loudest)
        tuning.add(peaks)
    if loudest is None:
        raise BadAudioError("audio has no samples; check the file, offset and duration")
    bins = tuning.settled()
    if bins is None:
        for frames, _ in _framed(open_blocks(), t):
            rows = _scratch.get("shape_rows", (3, frames.shape[0]), np.float64)
            tuning.add_fine(_spectra(frames, t, np.dtype(np.float32), rows)[1])
        bins = tuning.refined()
    n_mfcc = t.dct.shape[1]
    moments = _RunningMoments(n_mfcc + N_CHROMA + _N_SCALARS)
    for frames, zcr in _framed(open_blocks(), t):
        rows = np.empty((n_mfcc + N_CHROMA + _N_SCALARS, frames.shape[0]))
        power, _ = _spectra(frames, t, np.dtype(np.float32), rows[-5:-2])
        rows[:n_mfcc] = _mfcc(_db(_mel_power(power, t)), t, loudest).T
        rows[n_mfcc : n_mfcc + N_CHROMA] = _chroma(power, t, bins).T
        rows[-2] = zcr
        rows[-1] = _rms(frames)
        moments.add(rows)
        if sink is not None:
            sink(rows)
    chroma = slice(n_mfcc, n_mfcc + N_CHROMA)
    return _vector(moments.mean, moments.std(), moments.mean[chroma].mean(), params)


def _framed(blocks: Any, t: _Tables) -> Any:
    """Yield (frames, zero-crossing rates) chunks of a signal given in blocks.

    Frame ``i`` holds samples ``[i*hop - n_fft//2, i*hop - n_fft//2 + n_fft)``
    of the clip, zeros outside it (``center=True``), exactly the rows of
    :func:`_frames` on the whole clip. Zero-crossing rates follow
    :func:`_zero_crossing_rate` (edge padding) from a running count of
    crossings, so no frame needs the whole clip.
    """
    n_fft, hop = t.n_fft, t.hop_length
    pad = n_fft // 2
    threshold = np.float32(-ZCR_THRESHOLD)
    buf = np.empty(0, dtype=np.float32)  # samples [start, start + len(buf)) of the clip
    counted = np.empty(0, dtype=np.int64)  # crossings at samples 1..i, for i in the buffer
    start, seen, nxt = 0, 0, 0
    last_negative = None

    def emit(a: int, b: int, n_total: int | None) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = a * hop - pad, (b - 1) * hop - pad + n_fft
        seg = np.zeros(hi - lo, dtype=np.float32)
        s0, s1 = max(lo, start), min(hi, seen)
        if s1 > s0:
            seg[s0 - lo : s1 - lo] = buf[s0 - start : s1 - start]
        frames = sliding_window_view(seg, n_fft)[::hop]
        first = np.arange(a, b) * hop - pad
        last = first + n_fft - 1
        if n_total is not None:
            last = np.minimum(last, n_total - 1)
        first = np.clip(first, 0, None)
        zcr = (counted[last - start] - counted[np.minimum(first, last) - start]) / n_fft
        return frames, zcr

    for block in blocks:
        block = np.asarray(block, dtype=np.float32)
        if block.size == 0:
            continue
        negative = block < threshold
        flips = np.empty(block.size, dtype=np.int64)
        flips[0] = 0 if last_negative is None else int(negative[0] != last_negative)
        flips[1:] = negative[1:] != negative[:-1]
        carry = counted[-1] if counted.size else 0
        last_negative = bool(negative[-1])
        buf = np.concatenate([buf, block])
        counted = np.concatenate([counted, carry + np.cumsum(flips)])
        seen += block.size
        # Frames whose samples are all known can go now.
        ready = (seen + pad - n_fft) // hop + 1 if seen + pad >= n_fft else 0
        while ready - nxt > 0:
            b = min(ready, nxt + STREAM_FRAMES)
            yield emit(nxt, b, None)
            nxt = b
        keep = max(0, nxt * hop - pad)
        if keep > start:
            buf, counted = buf[keep - start :], counted[keep - start :]
            start = keep
    if seen == 0:
        return
    n_frames = 1 + (seen + 2 * pad - n_fft) // hop
    while nxt < n_frames:
        b = min(n_frames, nxt + STREAM_FRAMES)
        yield emit(nxt, b, seen)
        nxt = b


class _TuningSummary:
    """Pitch peaks of a whole clip, summarised in fixed-size histograms.

    librosa's ``estimate_tuning`` keeps the peaks at least as loud as their
    median, then takes the most common deviation from A440. Here peaks are
    counted by (magnitude bin, deviation bin), the magnitude bin being the
    top 16 bits of the float32 pattern. That settles the answer unless the
    peaks sharing the median's magnitude bin could change which deviation
    wins; then one more pass (:meth:`add_fine`) counts that bin's peaks by
    their low 16 bits, which orders them exactly.
    """

    def __init__(self) -> None:
        self.coarse = np.zeros((_MAG_BINS, _TUNING_BINS), dtype=np.int64)
        self.fine: np.ndarray | None = None
        self.edges = np.linspace(-0.5, 0.5, _TUNING_BINS + 1)

    def _keys(self, peaks: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """(magnitude key, deviation bin) of the voiced peaks, as librosa bins them."""
        pitches = np.concatenate([p for p, _ in peaks])
        mags = np.concatenate([m for _, m in peaks]).astype(np.float32)
        voiced = pitches > 0
        pitches, mags = pitches[voiced], mags[voiced]
        residual = np.mod(N_CHROMA * np.log2(pitches / (440.0 / 16)), 1.0)
        residual[residual >= 0.5] -= 1.0
        dev = np.searchsorted(self.edges, residual.astype(np.float64), side="right") - 1
        bits = mags.view(np.uint32)
        # Order-preserving key of a float32: flip negatives, set the sign bit of positives.
        key = np.where(bits >> 31, ~bits, bits | np.uint32(1 << 31))
        return key, np.clip(dev, 0, _TUNING_BINS - 1)

    def add(self, peaks: list[tuple[np.ndarray, np.ndarray]]) -> None:
        key, dev = self._keys(peaks)
        np.add.at(self.coarse, ((key >> 16).astype(np.intp), dev), 1)

    def _median_bin(self) -> tuple[int, int]:
        """(coarse bin holding the median, how many of its peaks rank below it)."""
        per_mag = self.coarse.sum(axis=1)
        rank = int(per_mag.sum()) // 2  # peaks from this rank up are >= the median
        cumulative = np.cumsum(per_mag)
        b = int(np.searchsorted(cumulative, rank, side="right"))
        return b, rank - int(cumulative[b] - per_mag[b])

    def settled(self) -> float | None:
        """The tuning if the coarse counts decide it, else None (call :meth:`add_fine`)."""
        if not self.coarse.any():
            return 0.0
        b, below = self._median_bin()
        surely = self.coarse[b + 1 :].sum(axis=0)
        maybe = self.coarse[b]
        if below == 0:
            return self._winner(surely + maybe)
        if np.count_nonzero(maybe) <= 1 and below < maybe.sum():
            # All of the bin's kept peaks share one deviation bin.
            kept = surely.copy()
            kept[np.argmax(maybe)] += maybe.sum() - below
            return self._winner(kept)
        w = int(np.argmax(surely))
        rivals = np.delete(surely + maybe, w)
        if surely[w] > rivals.max():
            return self._winner(surely)
        return None

    def add_fine(self, peaks: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Count the peaks of the median's magnitude bin by their low 16 bits."""
        if self.fine is None:
            self.fine = np.zeros((_MAG_BINS, _TUNING_BINS), dtype=np.int64)
        b, _ = self._median_bin()
        key, dev = self._keys(peaks)
        inside = (key >> 16) == b
        np.add.at(self.fine, ((key[inside] & 0xFFFF).astype(np.intp), dev[inside]), 1)

    def refined(self) -> float:
        """The exact tuning, once :meth:`add_fine` has seen every peak again."""
        b, below = self._median_bin()
        per_key = self.fine.sum(axis=1)
        k = int(np.searchsorted(np.cumsum(per_key), below, side="right"))
        return self._winner(self.coarse[b + 1 :].sum(axis=0) + self.fine[k:].sum(axis=0))

    def _winner(self, counts: np.ndarray) -> float:
        return float(self.edges[np.argmax(counts)])


class _RunningMoments:
    """Running mean and variance of each row over columns (Chan et al.'s merge)."""

    def __init__(self, n_rows: int) -> None:
        self.n = 0
        self.mean = np.zeros(n_rows)
        self.m2 = np.zeros(n_rows)

    def add(self, rows: np.ndarray) -> None:
        k = rows.shape[1]
        mean = rows.mean(axis=1)
        m2 = np.square(rows - mean[:, None]).sum(axis=1)
        delta = mean - self.mean
        n = self.n + k
        self.mean = self.mean + delta * (k / n)
        self.m2 = self.m2 + m2 + np.square(delta) * (self.n * k / n)
        self.n = n

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.n)
