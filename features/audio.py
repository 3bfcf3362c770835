"""Read one audio clip exactly as ``librosa.load`` does, only faster.

:func:`load_audio` returns the same float32 samples as
``librosa.load(path, sr=params.sr, mono=True, offset=params.offset,
duration=params.duration)``: soundfile reads just the frames needed as
float32, channels are averaged with ``np.mean`` (``librosa.to_mono``) and the
result is resampled with soxr's HQ mode (``librosa.resample(res_type="soxr_hq")``).
It skips librosa's per-call overhead (two finiteness scans, ``apply_along_axis``,
extra copies) and never imports librosa, so worker processes start fast.

Every failure is one of two errors whose message names the file:
:class:`~features.errors.AudioReadError` (the file cannot be read or decoded)
and :class:`~features.errors.BadAudioError` (it decoded, but the samples
cannot be analysed).
"""
from __future__ import annotations

import dataclasses
import math
import os
import stat
import warnings

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioReadError, BadAudioError
from .params import FeatureParams

__all__ = ["AUDIO_EXTENSIONS", "AudioInfo", "is_audio_path", "load_audio"]

#: File extensions (lower case, with the dot) treated as audio. libsndfile
#: decodes all but the last group; those need an audioread backend (ffmpeg)
#: and otherwise end up in errors.csv with a message saying so.
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".mp2", ".mpga",
    ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64", ".voc",
    ".m4a", ".aac", ".wma",
})
_FFMPEG_ONLY_EXTENSIONS = frozenset({".m4a", ".aac", ".wma"})

# librosa's resampler name; soxr maps it to its "HQ" quality.
_RES_TYPE = "soxr_hq"
# From this many channels on, np.mean sums pairwise (see _to_mono).
_PAIRWISE_CHANNELS = 8
_ADVICE = "Replace or re-export the file, or remove it from the dataset."


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What the source file looked like before loading.

    Parameters
    ----------
    orig_sample_rate : int
        Sample rate of the file, Hz.
    orig_channels : int
        Channel count of the file.
    duration_s : float
        Duration of the whole source file in seconds (not of the part read).
    """

    orig_sample_rate: int
    orig_channels: int
    duration_s: float


def is_audio_path(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` has an audio extension (case-insensitive).

    Examples
    --------
    >>> is_audio_path("dog/bark.WAV"), is_audio_path("notes.txt")
    (True, False)
    """
    return os.path.splitext(os.fspath(path))[1].lower() in AUDIO_EXTENSIONS


def load_audio(path: str | os.PathLike[str], params: FeatureParams) -> tuple[np.ndarray, AudioInfo]:
    """Load one clip as mono float32 at ``params.sr``, exactly like ``librosa.load``.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.
    params : FeatureParams
        Uses ``sr``, ``offset``, ``duration`` and ``fixed_length``.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        The samples; ``n = round(params.fixed_length * params.sr)`` when
        ``fixed_length`` is set (cut, or zero-padded at the end).
    info : AudioInfo
        Sample rate, channel count and duration of the source file.

    Raises
    ------
    AudioReadError
        The file is missing, empty, a directory, truncated, not audio or
        cannot be decoded.
    BadAudioError
        The samples contain NaN or inf, or nothing is left after ``offset``.

    Examples
    --------
    >>> import numpy as np, soundfile as sf, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "tone.wav")
    >>> sf.write(f, np.zeros((44100, 2), dtype="float32"), 44100)
    >>> y, info = load_audio(f, FeatureParams())
    >>> y.shape, y.dtype, info
    ((22050,), dtype('float32'), AudioInfo(orig_sample_rate=44100, orig_channels=2, duration_s=1.0))
    """
    name = os.fspath(path)
    try:
        y, info = _read_soundfile(name, params.offset, params.duration)
    except sf.SoundFileError as exc:
        # Same rule as librosa.load: whatever libsndfile rejects goes to audioread.
        y, info = _read_audioread(name, params.offset, params.duration, exc)
    if y.size == 0:
        raise BadAudioError(_no_samples_message(name, params.offset, info))
    if not np.isfinite(y).all():
        raise BadAudioError(
            f"audio file {name!r} contains NaN or infinite sample values, which no "
            f"feature can be computed from. {_ADVICE}"
        )
    y = _resample(y, info.orig_sample_rate, params.sr)
    if params.fixed_length is not None:
        y = _fix_length(y, round(params.fixed_length * params.sr))
    return y, info


def _read_soundfile(name: str, offset: float, duration: float | None) -> tuple[np.ndarray, AudioInfo]:
    """Read only the wanted frames and mix them down; returns (mono float32, info)."""
    with sf.SoundFile(name) as f:
        sr, channels, frames = f.samplerate, f.channels, f.frames
        info = AudioInfo(int(sr), int(channels), frames / sr)
        start = int(offset * sr) if offset else 0
        if start and start >= frames:
            # libsndfile refuses to seek past the end; the caller reports "no samples".
            return np.empty(0, dtype=np.float32), info
        if start:
            f.seek(start)
        n = int(duration * sr) if duration is not None else -1
        if f.subtype == "PCM_16":
            return _pcm16_to_mono(f.read(frames=n, dtype="int16", always_2d=True)), info
        return _to_mono(f.read(frames=n, dtype="float32", always_2d=True)), info


def _read_audioread(
    name: str, offset: float, duration: float | None, sf_error: Exception
) -> tuple[np.ndarray, AudioInfo]:
    """librosa's audioread fallback for formats libsndfile cannot decode."""
    problem = _file_problem(name)
    if problem is not None:
        raise AudioReadError(problem) from None
    backends = _external_decoders()
    if not backends:
        ext = os.path.splitext(name)[1].lower()
        if ext in _FFMPEG_ONLY_EXTENSIONS:
            raise AudioReadError(
                f"cannot read audio file {name!r}: libsndfile cannot decode {ext} files and no "
                f"audioread backend (ffmpeg or GStreamer) is installed. Install ffmpeg, or "
                f"convert the file to WAV or FLAC."
            ) from None
        raise AudioReadError(_undecodable_message(name, sf_error)) from None
    import audioread

    try:
        with audioread.audio_open(name, backends=backends) as f:
            return _decode_audioread(f, offset, duration)
    except Exception:  # noqa: BLE001 - any backend failure means "cannot decode"
        # The libsndfile reason is the informative one; audioread only adds
        # "no backend could read it".
        raise AudioReadError(_undecodable_message(name, sf_error)) from None


def _external_decoders() -> list:
    """audioread backends that can decode what libsndfile cannot (ffmpeg, GStreamer, ...).

    audioread's stdlib backend is left out: it reads only WAV/AIFF/AU, which
    libsndfile handles better, and it leaks an open file when it fails.
    """
    import audioread

    with warnings.catch_warnings():
        # The stdlib backend imports aifc/sunau, deprecated since Python 3.11.
        warnings.simplefilter("ignore", DeprecationWarning)
        from audioread import rawread

        return [b for b in audioread.available_backends() if b is not rawread.RawAudioFile]


def _decode_audioread(f, offset: float, duration: float | None) -> tuple[np.ndarray, AudioInfo]:
    """Block-by-block decode, cropped exactly as librosa's ``__audioread_load``."""
    sr, channels = int(f.samplerate), int(f.channels)
    info = AudioInfo(sr, channels, float(f.duration))
    s_start = int(sr * offset) * channels
    s_end = math.inf if duration is None else s_start + int(sr * duration) * channels
    blocks, n = [], 0
    for buf in f:
        # audioread yields 16-bit little-endian PCM; librosa.util.buf_to_float.
        block = (1.0 / 32768) * np.frombuffer(buf, "<i2").astype(np.float32)
        n_prev, n = n, n + len(block)
        if n < s_start:
            continue
        if s_end < n_prev:
            break
        if s_end < n:
            block = block[: int(s_end - n_prev)]
        if n_prev <= s_start <= n:
            block = block[s_start - n_prev:]
        blocks.append(block)
    y = np.concatenate(blocks) if blocks else np.empty(0, dtype=np.float32)
    return _to_mono(y.reshape((-1, channels))), info


def _to_mono(x: np.ndarray) -> np.ndarray:
    """Channel mean of float32 frames ``x`` [shape=(n, channels)], bit-identical to librosa.

    ``librosa.to_mono`` runs ``np.mean`` over the channel axis of the transposed
    buffer. For fewer than 8 channels numpy adds the channels one after the
    other, which vectorised adds reproduce ~30x faster; from 8 channels on it
    switches to pairwise summation, so we call the same ``np.mean``.
    """
    channels = x.shape[1]
    if channels == 1:
        return x[:, 0]
    if channels >= _PAIRWISE_CHANNELS:
        return np.mean(x.T, axis=0)
    acc = x[:, 0].copy()
    for c in range(1, channels):
        acc += x[:, c]
    acc /= np.float32(channels)
    return acc


def _pcm16_to_mono(x: np.ndarray) -> np.ndarray:
    """Channel mean of 16-bit frames [shape=(n, channels)], equal to decoding to float first.

    libsndfile decodes PCM_16 as ``k / 32768`` (exact in float32) and a sum of
    up to 256 such values is exact too, so summing the integers and scaling
    once gives the same floats as ``np.mean`` over the decoded channels, but
    skips the slow float conversion inside libsndfile.
    """
    channels = x.shape[1]
    acc = x[:, 0].astype(np.int32)
    for c in range(1, channels):
        acc += x[:, c]
    y = acc.astype(np.float32)
    y *= np.float32(1.0 / 32768)
    if channels > 1:
        y /= np.float32(channels)
    return y


def _resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``librosa.resample(y, orig_sr, target_sr, res_type="soxr_hq")`` without its overhead."""
    if orig_sr == target_sr:
        return y
    n_samples = int(np.ceil(y.shape[-1] * (float(target_sr) / orig_sr)))
    y_hat = soxr.resample(np.ascontiguousarray(y), orig_sr, target_sr, quality=_RES_TYPE)
    return _fix_length(y_hat.astype(np.float32, copy=False), n_samples)


def _fix_length(y: np.ndarray, size: int) -> np.ndarray:
    """Cut ``y`` to ``size`` samples or zero-pad it at the end."""
    if len(y) >= size:
        return y[:size]
    out = np.zeros(size, dtype=y.dtype)
    out[: len(y)] = y
    return out


def _file_problem(name: str) -> str | None:
    """A plain-words message if the path is not a readable non-empty file, else None."""
    try:
        st = os.stat(name)
    except FileNotFoundError:
        return f"audio file {name!r} does not exist. Check the path in the metadata or restore the file."
    except PermissionError:
        return f"audio file {name!r} cannot be opened: permission denied. Fix its permissions."
    except OSError as exc:
        return f"audio file {name!r} cannot be opened: {exc.strerror}."
    if stat.S_ISDIR(st.st_mode):
        return (
            f"{name!r} is a directory, not an audio file. Rename or move it out of the dataset."
        )
    if not stat.S_ISREG(st.st_mode):
        return f"{name!r} is not a regular file. Replace it with an audio file."
    if st.st_size == 0:
        return f"audio file {name!r} is empty (0 bytes). {_ADVICE}"
    if not os.access(name, os.R_OK):
        return f"audio file {name!r} cannot be opened: permission denied. Fix its permissions."
    return None


def _undecodable_message(name: str, sf_error: Exception) -> str:
    """Explain in plain words why libsndfile (and audioread) could not decode ``name``."""
    detail = getattr(sf_error, "error_string", None) or str(sf_error)
    detail = detail.strip().rstrip(".")
    if "not recognised" in detail.lower():
        if _looks_like_text(name):
            reason = "it contains text, not audio (is it a renamed text or HTML file?)"
        else:
            reason = "it is not in a recognised audio format, or its header is damaged"
    elif "opening" in str(sf_error).lower():
        reason = "its header is damaged or truncated"
    else:
        reason = "its audio data is damaged or truncated"
    return f"cannot read audio file {name!r}: {reason} (decoder said: {detail}). {_ADVICE}"


def _looks_like_text(name: str) -> bool:
    try:
        with open(name, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _no_samples_message(name: str, offset: float, info: AudioInfo) -> str:
    if offset:
        return (
            f"audio file {name!r} has no samples after offset={offset} s (the file lasts "
            f"{info.duration_s:.3f} s). Use a smaller offset or remove the clip."
        )
    return f"audio file {name!r} contains no audio samples. {_ADVICE}"
