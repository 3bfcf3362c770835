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
from typing import Any

from .errors import UsageError


class Preset(str, enum.Enum):
    """Which set of features to compute."""

    DEFAULT = "default"
    GTZAN = "gtzan"


@dataclasses.dataclass(frozen=True)
class FeatureParams:
    """Everything that defines the feature values of a table.

    Parameters
    ----------
    preset : Preset
        ``default`` (MFCC/chroma/spectral means and stds) or ``gtzan``
        (the GTZAN tutorial's table).
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
        MFCC count; ``None`` picks the preset's (40 default, 20 gtzan).

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

    def __post_init__(self) -> None:
        object.__setattr__(self, "preset", _preset(self.preset))
        if self.n_mfcc is None:
            default = 40 if self.preset is Preset.DEFAULT else 20
            object.__setattr__(self, "n_mfcc", default)
        _positive_int("sr", self.sr)
        _positive_int("n_fft", self.n_fft)
        _positive_int("hop_length", self.hop_length)
        _positive_int("n_mfcc", self.n_mfcc)
        if self.offset < 0:
            raise UsageError(f"offset={self.offset} must be >= 0 seconds")
        for name in ("duration", "fixed_length"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UsageError(f"{name}={value} must be a positive number of seconds")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the preset as its string value)."""
        d = dataclasses.asdict(self)
        d["preset"] = self.preset.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureParams:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UsageError(f"unknown feature parameter(s) {unknown}; known: {sorted(names)}")
        return cls(**d)

    def key(self) -> str:
        """Short stable hash of the parameters (keys checkpoints and caches)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _preset(value: Any) -> Preset:
    try:
        return Preset(value)
    except ValueError:
        choices = ", ".join(p.value for p in Preset)
        raise UsageError(f"preset={value!r} is not one of: {choices}") from None


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"{name}={value!r} must be a positive integer")
