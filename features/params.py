"""The parameters that define a feature table.

One frozen dataclass holds everything that changes the numbers in a table;
its :meth:`FeatureParams.key` keys checkpoints and travels with every table
and model. Runtime options (workers, verbosity) are deliberately not here.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import numbers
from typing import Any

from .errors import UsageError

#: What happens to the last window of a clip when it is shorter than ``segment``.
SEGMENT_LAST = ("drop", "pad")


class Preset(str, enum.Enum):
    """Which set of features to compute."""

    DEFAULT = "default"
    GTZAN = "gtzan"
    RICH = "rich"


@dataclasses.dataclass(frozen=True)
class FeatureParams:
    """Everything that defines the feature values of a table.

    Parameters
    ----------
    preset : Preset
        ``default`` (MFCC/chroma/spectral means and stds), ``gtzan``
        (the GTZAN tutorial's table) or ``rich`` (211 frame-level
        descriptors x 10 statistics; :mod:`features.descriptors`).
    sr : int
        Sample rate the audio is resampled to before analysis.
    offset : float
        Seconds skipped at the start of every clip.
    duration : float or None
        Seconds read after ``offset`` (None: to the end).
    fixed_length : float or None
        If set, every clip is cut or zero-padded to this many seconds.
    n_fft, hop_length : int
        STFT frame and hop length in samples (librosa's defaults).
    n_mfcc : int
        MFCC count; ``None`` picks the preset's (40 default and rich, 20 gtzan).
    segment : float or None
        If set, every clip is cut into windows of this many seconds and the
        table has one row per window (columns ``segment``,
        ``segment_start_s``, ``segment_end_s``); None: one row per clip.
    segment_hop : float or None
        Seconds from one window's start to the next (default: ``segment``,
        windows side by side; smaller values overlap them).
    segment_last : {"drop", "pad"}
        The last window of a clip, when shorter than ``segment``: ``drop``
        it, or zero-``pad`` it to full length. Either way a clip shorter
        than one window keeps one window, zero-padded, so no clip vanishes.

    Examples
    --------
    >>> p = FeatureParams(sr=16000)
    >>> p.n_mfcc
    40
    >>> FeatureParams.from_dict(p.to_dict()) == p
    True
    """

    preset: Preset = Preset.DEFAULT
    sr: int = 22050
    offset: float = 0.0
    duration: float | None = None
    fixed_length: float | None = None
    n_fft: int = 2048
    hop_length: int = 512
    n_mfcc: int | None = None
    segment: float | None = None
    segment_hop: float | None = None
    segment_last: str = "drop"

    def __post_init__(self) -> None:
        # Values are normalised here (3 and 3.0 are one duration, numpy ints
        # are ints), so equal parameters have one key.
        object.__setattr__(self, "preset", _preset(self.preset))
        if self.n_mfcc is None:
            default = 20 if self.preset is Preset.GTZAN else 40
            object.__setattr__(self, "n_mfcc", default)
        for name in ("sr", "n_fft", "hop_length", "n_mfcc"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        offset = _seconds("offset", self.offset)
        if offset < 0:
            raise UsageError(f"offset={self.offset} must be >= 0 seconds")
        object.__setattr__(self, "offset", offset)
        self._check_segments()
        for name in ("duration", "fixed_length"):
            value = getattr(self, name)
            if value is None:
                continue
            value = _seconds(name, value)
            if not value > 0:
                raise UsageError(f"{name}={getattr(self, name)} must be a positive number of seconds")
            object.__setattr__(self, name, value)

    def _check_segments(self) -> None:
        if self.segment is None:
            if self.segment_hop is not None or self.segment_last != "drop":
                raise UsageError("segment_hop and segment_last need segment (the window length)")
            return
        for name in ("segment", "segment_hop"):
            value = getattr(self, name)
            if value is None:
                continue
            value = _seconds(name, value)
            if not value > 0:
                raise UsageError(f"{name}={getattr(self, name)} must be a positive number of seconds")
            object.__setattr__(self, name, value)
        if self.segment_hop is None:
            object.__setattr__(self, "segment_hop", self.segment)
        if self.segment_last not in SEGMENT_LAST:
            raise UsageError(f"segment_last={self.segment_last!r} is not one of: "
                             f"{', '.join(SEGMENT_LAST)}")
        if round(self.segment * self.sr) < 1 or round(self.segment_hop * self.sr) < 1:
            raise UsageError(f"segment={self.segment} s and segment_hop={self.segment_hop} s "
                             f"must each hold at least one sample at sr={self.sr}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the preset as its string value)."""
        d = dataclasses.asdict(self)
        d["preset"] = self.preset.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureParams:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return _from_dict(cls, d, "feature")

    def key(self) -> str:
        """Short stable hash of the parameters (keys checkpoints, tables and models).

        Equal parameters have equal keys however they were written:

        >>> FeatureParams(duration=3).key() == FeatureParams(duration=3.0).key()
        True
        """
        d = self.to_dict()
        if self.segment is None:
            # Off, the window fields are left out: tables and models made before
            # they existed keep their keys.
            for name in ("segment", "segment_hop", "segment_last"):
                del d[name]
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _from_dict(cls: Any, d: dict[str, Any], what: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise UsageError(f"unknown {what} parameter(s) {unknown}; known: {sorted(names)}")
    return cls(**d)


def _preset(value: Any) -> Preset:
    try:
        return Preset(value)
    except ValueError:
        choices = ", ".join(p.value for p in Preset)
        raise UsageError(f"preset={value!r} is not one of: {choices}") from None


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise UsageError(f"{name}={value!r} must be a positive integer")
    return int(value)


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UsageError(f"{name}={value!r} must be a number of seconds")
    if not math.isfinite(value):
        raise UsageError(f"{name}={value!r} must be a finite number of seconds "
                         f"(leave it unset to read whole clips)")
    return float(value)


@dataclasses.dataclass(frozen=True)
class PatchParams:
    """Everything that defines an array of log-mel patches (the CNN's input).

    Every clip becomes one patch: mono, resampled to ``sr``, cut or
    zero-padded to ``duration`` seconds (from ``offset``), then
    ``power_to_db(melspectrogram(...), top_db=top_db)`` as librosa computes
    it.

    Parameters
    ----------
    duration : float
        Seconds per patch (the CLI picks the dataset's usual length).
    sr : int
        Sample rate before analysis.
    n_mels, n_fft, hop_length : int
        Mel bands, STFT frame and hop, in samples.
    top_db : float or None
        Floor of each patch relative to its loudest bin (None: none).
    offset : float
        Seconds skipped at the start of every clip.
    stereo : bool
        Also keep a patch per channel of stereo clips (for the stereo-split
        augmentation of training clips).

    Examples
    --------
    >>> PatchParams(duration=4.0).shape
    (64, 173)
    """

    duration: float
    sr: int = 22050
    n_mels: int = 64
    n_fft: int = 1024
    hop_length: int = 512
    top_db: float | None = 80.0
    offset: float = 0.0
    stereo: bool = True

    def __post_init__(self) -> None:
        for name in ("sr", "n_mels", "n_fft", "hop_length"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        duration = _seconds("duration", self.duration)
        if not duration > 0:
            raise UsageError(f"duration={self.duration} must be a positive number of seconds")
        object.__setattr__(self, "duration", duration)
        offset = _seconds("offset", self.offset)
        if offset < 0:
            raise UsageError(f"offset={self.offset} must be >= 0 seconds")
        object.__setattr__(self, "offset", offset)
        if self.top_db is not None:
            top_db = _seconds("top_db", self.top_db)
            if not top_db > 0:
                raise UsageError(f"top_db={self.top_db} must be a positive number of dB")
            object.__setattr__(self, "top_db", top_db)
        if not isinstance(self.stereo, bool):
            raise UsageError(f"stereo={self.stereo!r} must be True or False")
        if self.n_mels > self.n_fft // 2 + 1:
            raise UsageError(f"n_mels={self.n_mels} is more than the {self.n_fft // 2 + 1} FFT "
                             f"bins of n_fft={self.n_fft}; lower n_mels or raise n_fft")

    @property
    def shape(self) -> tuple[int, int]:
        """(mel bands, frames) of one patch."""
        return self.n_mels, 1 + round(self.duration * self.sr) // self.hop_length

    def audio_params(self) -> FeatureParams:
        """How clips are loaded for this patch: mono, resampled, cut or padded."""
        return FeatureParams(sr=self.sr, offset=self.offset, duration=self.duration,
                             fixed_length=self.duration)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PatchParams:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return _from_dict(cls, d, "patch")

    def key(self) -> str:
        """Short stable hash (keys checkpoints, arrays and models)."""
        blob = json.dumps({"kind": "patches", **self.to_dict()}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
