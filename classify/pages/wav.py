"""Write audio for listening: mono 16-bit PCM WAV, the one format every browser plays."""
from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from features.io.atomic import atomic_path

__all__ = ["write_wav"]


def write_wav(path: str | os.PathLike[str], y: np.ndarray, sr: int) -> None:
    """Write mono samples as 16-bit PCM WAV, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; its folder is created if needed.
    y : np.ndarray [shape=(n,)]
        Samples in [-1, 1]. Values beyond full scale (resampling can
        overshoot a little) are clipped rather than left to wrap around.
    sr : int
        Sample rate in Hz.

    Examples
    --------
    >>> import tempfile, pathlib, soundfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.wav"
    >>> write_wav(path, np.zeros(100, dtype="float32"), 22050)
    >>> soundfile.info(str(path)).subtype
    'PCM_16'
    """
    samples = np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), samples, sr, subtype="PCM_16", format="WAV")
