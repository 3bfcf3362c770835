"""Spectrograms for display: what the pages draw for an example clip.

Not features: these are dB images, 0 dB at the clip's peak and floored at
-80 dB, meant to be looked at. :func:`log_stft_spectrogram` puts the STFT on
a log-frequency axis (octaves equally tall, as the ear hears them),
:func:`mel_spectrogram` uses librosa's mel scale. Drawing them is
:mod:`classify.plots`' job; nothing here draws.
"""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Spectrogram", "log_stft_spectrogram", "mel_spectrogram"]


@dataclasses.dataclass(frozen=True)
class Spectrogram:
    """A dB-scaled spectrogram, ready to draw.

    Parameters
    ----------
    db : np.ndarray [shape=(n_bins, n_frames)]
        Levels in dB relative to the clip's peak (0 dB = loudest bin); row 0 is
        the lowest frequency and rows are evenly spaced on the ``scale`` axis
        (log2 Hz for ``"log"``, mel for ``"mel"``).
    duration_s : float
        Seconds covered by the frames.
    f_min, f_max : float
        Frequencies in Hz at the bottom and top edge of the image.
    scale : {"log", "mel"}
        Frequency axis the rows are spaced on.
    name : str
        Short caption (usually the file name).
    """

    db: np.ndarray
    duration_s: float
    f_min: float
    f_max: float
    scale: str
    name: str = ""

    def __post_init__(self) -> None:
        if self.scale not in ("log", "mel"):
            raise ValueError(f"scale={self.scale!r} must be 'log' or 'mel'")
        if np.ndim(self.db) != 2:
            raise ValueError(f"db has shape {np.shape(self.db)}; expected (n_bins, n_frames)")
        if self.scale == "log" and not self.f_min > 0:
            raise ValueError(f"f_min={self.f_min} must be > 0 Hz on a log frequency axis")
        if not self.f_max > self.f_min:
            raise ValueError(f"f_max={self.f_max} must be above f_min={self.f_min}")


def log_stft_spectrogram(y: np.ndarray, sr: int, *, name: str = "", n_fft: int = 2048, hop_length: int = 512,
                         n_bins: int = 256, f_min: float = 32.0) -> Spectrogram:
    """STFT power in dB, re-sampled onto log-spaced frequencies for drawing.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono samples.
    sr : int
        Sample rate in Hz.
    name : str
        Caption carried to the figure.
    n_fft, hop_length : int
        STFT frame and hop in samples.
    n_bins : int
        Rows of the output, evenly spaced in log2 frequency from ``f_min`` to ``sr/2``.
    f_min : float
        Lowest frequency drawn (raised to the first FFT bin for short frames).

    Returns
    -------
    Spectrogram
        ``db`` has shape ``(n_bins, n_frames)``, 0 dB at the clip's peak, floor -80 dB.

    Examples
    --------
    >>> spec = log_stft_spectrogram(np.zeros(22050, dtype="float32"), 22050)
    >>> spec.db.shape, spec.scale
    ((256, 44), 'log')
    """
    import librosa

    n_fft = _n_fft(len(y), n_fft)
    power = np.abs(librosa.stft(np.asarray(y, dtype=np.float32), n_fft=n_fft, hop_length=hop_length)) ** 2
    db = _to_db(power)
    f_min = max(f_min, sr / n_fft)
    # Linear interpolation between FFT bins in dB: the low end is coarse, as in any STFT.
    position = np.geomspace(f_min, sr / 2, n_bins) * n_fft / sr
    lo = np.minimum(np.floor(position).astype(int), db.shape[0] - 2)
    weight = (position - lo)[:, None]
    log_db = db[lo] * (1 - weight) + db[lo + 1] * weight
    return Spectrogram(log_db, len(y) / sr, f_min, sr / 2, "log", name)


def mel_spectrogram(y: np.ndarray, sr: int, *, name: str = "", n_fft: int = 2048, hop_length: int = 512,
                    n_mels: int = 128) -> Spectrogram:
    """Mel power spectrogram in dB (librosa's defaults: Slaney mel scale, 0 Hz to sr/2).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono samples.
    sr : int
        Sample rate in Hz.
    name : str
        Caption carried to the figure.
    n_fft, hop_length, n_mels : int
        STFT frame, hop and number of mel bands.

    Returns
    -------
    Spectrogram
        ``db`` has shape ``(n_mels, n_frames)``, 0 dB at the clip's peak, floor -80 dB.

    Examples
    --------
    >>> mel_spectrogram(np.zeros(22050, dtype="float32"), 22050).db.shape
    (128, 44)
    """
    import librosa

    n_fft = _n_fft(len(y), n_fft)
    power = librosa.feature.melspectrogram(y=np.asarray(y, dtype=np.float32), sr=sr, n_fft=n_fft,
                                           hop_length=hop_length, n_mels=n_mels)
    return Spectrogram(_to_db(power), len(y) / sr, 0.0, sr / 2, "mel", name)


# ----------------------------------------------------------------- helpers


def _n_fft(n_samples: int, n_fft: int) -> int:
    """Shrink the FFT for clips shorter than one frame (power of two, at least 64)."""
    while n_fft > 64 and n_fft > n_samples:
        n_fft //= 2
    return n_fft


def _to_db(power: np.ndarray) -> np.ndarray:
    import librosa

    if not np.any(power > 0):
        return np.full(power.shape, -80.0)  # silence: the floor, not "0 dB = loudest"
    return librosa.power_to_db(power, ref=np.max, top_db=80.0)
