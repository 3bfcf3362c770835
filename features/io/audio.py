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

import contextlib
import dataclasses
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioReadError, BadAudioError, DecoderRefusedError
from ..params import FeatureParams
from . import storage
from .problems import NON_FINITE, file_problem, no_samples, non_finite_message, undecodable

__all__ = ["AUDIO_EXTENSIONS", "AudioInfo", "LongClip", "is_audio_path", "load_audio",
           "load_channels", "read_clip"]

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


#: Clips holding more source samples than this (frames x channels to read)
#: are analysed block by block, so a worker's memory does not grow with the
#: clip: 2**24 samples is 64 MB of float32, about 3 minutes of 48 kHz stereo.
BLOCKWISE_ABOVE_SAMPLES = 1 << 24
#: Source frames read per block of a long clip.
BLOCK_FRAMES = 1 << 18


@dataclasses.dataclass(frozen=True)
class LongClip:
    """A clip too long to load whole: its samples come as blocks, on demand.

    Parameters
    ----------
    location : str
        Path or URL of the file.
    params : FeatureParams
        ``sr``, ``offset``, ``duration`` and ``fixed_length`` apply as in
        :func:`load_audio`.
    info : AudioInfo
        What the source looks like.

    Notes
    -----
    :meth:`blocks` yields the samples :func:`load_audio` would return, in
    consecutive pieces (the streaming resampler gives the same samples as
    the one-shot one), and can be called again for another pass.
    """

    location: str
    params: FeatureParams
    info: AudioInfo
    # Why libsndfile refused the file, when audioread decodes it instead.
    refused: Exception | None = None

    def blocks(self) -> Iterator[np.ndarray]:
        """Consecutive float32 mono blocks at ``params.sr``."""
        p = self.params
        with _open_source(self.location, self.refused) as source, _read_errors(self.location):
            yield from _resampled(
                _checked(source.blocks(p.offset, p.duration, BLOCK_FRAMES), self.location),
                self.info.orig_sample_rate, p.sr,
                None if p.fixed_length is None else round(p.fixed_length * p.sr),
                self.location, p.offset, self.info,
            )


@contextlib.contextmanager
def _read_errors(name: str) -> Iterator[None]:
    """A decoding failure in the middle of a long clip, as an AudioReadError."""
    try:
        yield
    except DecoderRefusedError as refused:
        message, reason = undecodable(name, name, refused.error)
        raise AudioReadError(message, reason=reason) from None


def read_clip(
    location: str | os.PathLike[str], params: FeatureParams
) -> tuple[np.ndarray | LongClip, AudioInfo]:
    """:func:`load_audio`, except that a long clip comes back as a :class:`LongClip`.

    A clip is long when it holds more than :data:`BLOCKWISE_ABOVE_SAMPLES`
    source samples to read; only its header is read here.

    Raises
    ------
    AudioReadError, BadAudioError
        As :func:`load_audio`.
    """
    name = os.fspath(location)
    try:
        return _read_clip(name, params, None)
    except DecoderRefusedError as refused:
        # Same rule as librosa.load: what libsndfile rejects goes to audioread.
        return _read_clip(name, params, refused.error)


def _read_clip(name: str, params: FeatureParams, refused: Exception | None):
    with _open_source(name, refused) as source:
        info = source.info
        if source.samples_to_read(params.offset, params.duration) > BLOCKWISE_ABOVE_SAMPLES:
            return LongClip(name, params, info, refused), info
        return _load(source, name, params), info


def load_audio(path: str | os.PathLike[str], params: FeatureParams) -> tuple[np.ndarray, AudioInfo]:
    """Load one clip as mono float32 at ``params.sr``, exactly like ``librosa.load``.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file: a local path or an fsspec URL (``s3://...``).
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
        The file is missing, empty, a directory or another non-regular file
        (a FIFO is never opened), truncated, not audio or cannot be decoded.
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
    y, info = read_clip(path, params)
    if isinstance(y, LongClip):
        y = np.concatenate(list(y.blocks()))
    return y, info


def load_channels(path: str | os.PathLike[str], params: FeatureParams) -> np.ndarray | None:
    """Each channel of a multi-channel clip, resampled, cut or padded like :func:`load_audio`.

    For the stereo-split augmentation (each channel as its own example).

    Returns
    -------
    np.ndarray [shape=(channels, n), dtype=float32] or None
        None for a mono clip, or one that libsndfile cannot read.
    """
    name = os.fspath(path)
    try:
        with _open_source(name) as source:
            if not isinstance(source, _SoundFileSource) or source.info.orig_channels < 2:
                return None
            f = source.f
            start, n = source._span(params.offset, params.duration)
            if start >= f.frames:
                return None
            f.seek(start)
            x = f.read(frames=n, dtype="float32", always_2d=True)
    except (DecoderRefusedError, sf.SoundFileError):
        return None
    if x.size == 0 or not np.isfinite(x).all():
        return None
    channels = [_resample(np.ascontiguousarray(x[:, c]), source.info.orig_sample_rate, params.sr)
                for c in range(x.shape[1])]
    if params.fixed_length is not None:
        channels = [_fix_length(c, round(params.fixed_length * params.sr)) for c in channels]
    return np.stack(channels)


def _load(source: _Source, name: str, params: FeatureParams) -> np.ndarray:
    y = source.read(params.offset, params.duration)
    if y.size == 0:
        message, reason = no_samples(name, params.offset, source.info)
        raise BadAudioError(message, reason=reason)
    if not np.isfinite(y).all():
        raise BadAudioError(non_finite_message(name), reason=NON_FINITE)
    y = _resample(y, source.info.orig_sample_rate, params.sr)
    if params.fixed_length is not None:
        y = _fix_length(y, round(params.fixed_length * params.sr))
    return y


# ------------------------------------------------------------------ sources


class _Source:
    """An open audio file: its header, and its samples whole or in blocks."""

    info: AudioInfo

    def samples_to_read(self, offset: float, duration: float | None) -> float:
        raise NotImplementedError

    def blocks(self, offset: float, duration: float | None, frames: int) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def read(self, offset: float, duration: float | None) -> np.ndarray:
        parts = list(self.blocks(offset, duration, -1))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)


class _SoundFileSource(_Source):
    """libsndfile: reads just the frames needed, as float32 (or int16) mixed to mono."""

    def __init__(self, f: sf.SoundFile) -> None:
        self.f = f
        sr, channels, frames = f.samplerate, f.channels, f.frames
        self.info = AudioInfo(int(sr), int(channels), frames / sr)

    def _span(self, offset: float, duration: float | None) -> tuple[int, int]:
        sr, frames = self.f.samplerate, self.f.frames
        start = int(offset * sr) if offset else 0
        n = frames - start if duration is None else min(int(duration * sr), frames - start)
        return start, max(0, n)

    def samples_to_read(self, offset: float, duration: float | None) -> float:
        return self._span(offset, duration)[1] * self.f.channels

    def blocks(self, offset: float, duration: float | None, frames: int) -> Iterator[np.ndarray]:
        f = self.f
        start, n = self._span(offset, duration)
        if start and start >= f.frames:
            return  # libsndfile refuses to seek past the end; the caller reports "no samples"
        if start:
            f.seek(start)
        pcm16 = f.subtype == "PCM_16"
        remaining = n if duration is not None else -1
        while remaining != 0:
            want = remaining if frames < 0 or 0 <= remaining < frames else frames
            try:
                x = f.read(frames=want, dtype="int16" if pcm16 else "float32", always_2d=True)
            except sf.SoundFileError as exc:
                raise DecoderRefusedError(exc) from None
            if len(x) == 0:
                return
            yield _pcm16_to_mono(x) if pcm16 else _to_mono(x)
            if remaining > 0:
                remaining -= len(x)
            if frames < 0:
                return


class _AudioreadSource(_Source):
    """audioread (ffmpeg, GStreamer): for what libsndfile cannot decode."""

    def __init__(self, name: str, backends: list) -> None:
        self.name, self.backends = name, backends
        with self._open() as f:
            self.info = AudioInfo(int(f.samplerate), int(f.channels), float(f.duration))

    def _open(self):
        import audioread

        return audioread.audio_open(self.name, backends=self.backends)

    def samples_to_read(self, offset: float, duration: float | None) -> float:
        left = max(0.0, self.info.duration_s - offset)
        seconds = left if duration is None else min(duration, left)
        return seconds * self.info.orig_sample_rate * self.info.orig_channels

    def blocks(self, offset: float, duration: float | None, frames: int) -> Iterator[np.ndarray]:
        with self._open() as f:
            yield from _decode_audioread(f, offset, duration)


@contextlib.contextmanager
def _open_source(name: str, refused: Exception | None = None) -> Iterator[_Source]:
    """Open ``name`` (path or URL) with libsndfile, or with audioread once libsndfile ``refused``.

    A local path is checked with ``stat`` first: a missing file, a folder or
    a FIFO, socket or device is reported without being opened (opening a
    FIFO would wait forever for a writer).

    Raises
    ------
    DecoderRefusedError
        libsndfile cannot open or decode the file (only without ``refused``).
    """
    remote = storage.is_url(name)
    if not remote:
        problem = file_problem(name)
        if problem is not None:
            raise AudioReadError(problem[0], reason=problem[1])
    with contextlib.ExitStack() as stack:
        if refused is not None:
            path = stack.enter_context(_local_copy(name)) if remote else name
            yield _audioread_source(path, name, refused)
            return
        try:
            handle = stack.enter_context(_open_remote(name)) if remote else name
            f = stack.enter_context(sf.SoundFile(handle))
        except sf.SoundFileError as exc:
            raise DecoderRefusedError(exc) from None
        yield _SoundFileSource(f)


@contextlib.contextmanager
def _open_remote(name: str) -> Iterator[Any]:
    try:
        f = storage.open_binary(name)
    except FileNotFoundError:
        raise AudioReadError(
            f"audio file {name!r} does not exist. Check the path in the metadata or restore the file.",
            reason="file does not exist",
        ) from None
    except PermissionError as exc:
        raise AudioReadError(f"audio file {name!r} cannot be opened: permission denied ({exc}). "
                             f"Check the credentials.", reason="permission denied") from None
    except OSError as exc:
        raise AudioReadError(f"audio file {name!r} cannot be opened: {exc}",
                             reason=f"cannot open: {type(exc).__name__}") from None
    with f:
        yield f


@contextlib.contextmanager
def _local_copy(name: str) -> Iterator[str]:
    """A temporary local copy of a remote file, for decoders that need a path."""
    suffix = os.path.splitext(name)[1]
    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="features-")
    try:
        with os.fdopen(fd, "wb") as out, _open_remote(name) as src:
            shutil.copyfileobj(src, out, 1 << 20)
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _audioread_source(path: str, shown: str, sf_error: Exception) -> _Source:
    backends = _external_decoders()
    if not backends:
        ext = os.path.splitext(shown)[1].lower()
        if ext in _FFMPEG_ONLY_EXTENSIONS:
            raise AudioReadError(
                f"cannot read audio file {shown!r}: libsndfile cannot decode {ext} files and no "
                f"audioread backend (ffmpeg or GStreamer) is installed. Install ffmpeg, or "
                f"convert the file to WAV or FLAC.",
                reason=f"cannot decode {ext} files: install ffmpeg",
            ) from None
        message, reason = undecodable(path, shown, sf_error)
        raise AudioReadError(message, reason=reason) from None
    try:
        return _AudioreadSource(path, backends)
    except Exception:  # noqa: BLE001 - any backend failure means "cannot decode"
        # The libsndfile reason is the informative one; audioread only adds
        # "no backend could read it".
        message, reason = undecodable(path, shown, sf_error)
        raise AudioReadError(message, reason=reason) from None


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


def _decode_audioread(f, offset: float, duration: float | None) -> Iterator[np.ndarray]:
    """Decode block by block, cropped exactly as librosa's ``__audioread_load``; mono blocks."""
    sr, channels = int(f.samplerate), int(f.channels)
    s_start = int(sr * offset) * channels
    s_end = math.inf if duration is None else s_start + int(sr * duration) * channels
    n = 0
    carry = np.empty(0, dtype=np.float32)  # samples of a frame split between buffers
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
        if carry.size:
            block = np.concatenate([carry, block])
        whole = len(block) - len(block) % channels
        carry = block[whole:]
        if whole:
            yield _to_mono(block[:whole].reshape((-1, channels)))


def _checked(blocks: Iterator[np.ndarray], name: str) -> Iterator[np.ndarray]:
    for block in blocks:
        if not np.isfinite(block).all():
            raise BadAudioError(non_finite_message(name), reason=NON_FINITE)
        yield block


def _resampled(
    blocks: Iterator[np.ndarray], orig_sr: int, target_sr: int, fixed: int | None,
    name: str, offset: float, info: AudioInfo,
) -> Iterator[np.ndarray]:
    """Resample a stream of blocks to exactly the samples :func:`_resample` gives.

    soxr's stream yields the one-shot samples; the last few are held back
    until the end, where the total is cut or padded to librosa's length
    (``ceil(n * target / orig)``, or ``fixed``).
    """
    stream = None
    if orig_sr != target_sr:
        stream = soxr.ResampleStream(orig_sr, target_sr, 1, dtype="float32", quality=_RES_TYPE)
    held = np.empty(0, dtype=np.float32)
    n_in = sent = 0
    for block in blocks:
        n_in += block.size
        out = block if stream is None else stream.resample_chunk(block, last=False)
        held = np.concatenate([held, out]) if held.size else np.asarray(out, dtype=np.float32)
        ready = held.size - _HOLD_BACK
        if fixed is not None:
            ready = min(ready, fixed - sent)
        if ready > 0:
            yield held[:ready]
            sent += ready
            held = held[ready:]
        if fixed is not None and sent >= fixed:
            return
    if n_in == 0:
        message, reason = no_samples(name, offset, info)
        raise BadAudioError(message, reason=reason)
    if stream is not None:
        tail = stream.resample_chunk(np.empty(0, dtype=np.float32), last=True)
        held = np.concatenate([held, tail])
    total = fixed if fixed is not None else int(np.ceil(n_in * (float(target_sr) / orig_sr)))
    yield _fix_length(held, max(0, total - sent))


# Samples of resampler output kept back until the end (the final length is
# only known then); far more than soxr's rounding of the length can differ.
_HOLD_BACK = 256


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


