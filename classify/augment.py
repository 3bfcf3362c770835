"""Augmentation of log-mel training patches: more training examples, never from held-out clips.

Five transforms work on a patch in dB (what :mod:`features.patches` writes),
Salamon & Bello style: :func:`time_shift`, :func:`gain`, :func:`mix_noise`
(in the power domain), :func:`pitch_shift` (along the mel bands) and
:func:`time_stretch` (along the frames). The stereo split adds each channel
of a stereo clip (``channels.npy``) as an example of its own.

:func:`augment` takes the row indices of the training clips and nothing
else: it cannot produce a version of a validation or test clip, because it
is never told which they are. Every example it returns records its
``source`` row, and its group is its source clip's group, so a group-aware
split downstream keeps a clip and its versions together.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> patches = rng.uniform(-80, 0, (6, 16, 40)).astype(np.float32)
>>> index = pd.DataFrame({"label": list("aabbcc"), "group": [0, 0, 1, 1, 2, 2]})
>>> extra = augment([0, 2, 4], patches, index, augmentation=Augmentation(copies=2), rng=0)
>>> extra.X.shape, sorted(set(extra.source.tolist()))
((6, 16, 40), [0, 2, 4])
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .values import is_int, is_real

__all__ = [
    "TRANSFORMS", "Augmentation", "Augmented", "augment", "gain", "mix_noise",
    "pitch_shift", "synthetic_noise", "time_shift", "time_stretch",
]

#: Transform names, in the order :class:`Augmentation` lists them.
TRANSFORMS = ("shift", "gain", "noise", "pitch", "stretch")
STEREO = "stereo"
_DEFAULT_SR = 22050


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Which transforms make the extra training examples, and how strong they are.

    Each of the ``copies`` versions of a training clip applies one transform,
    drawn at random from ``transforms``, with a random strength drawn from its
    range (Salamon & Bello: one deformation per example). With
    ``stereo_split`` each channel of a stereo training clip is added too.
    Build it with :meth:`for_patches` so ``sr`` and ``top_db`` are the
    patches' own.

    Parameters
    ----------
    transforms : sequence of str
        Names from :data:`TRANSFORMS`; empty: only the stereo split.
    copies : int
        Transformed versions per training clip (0: none).
    stereo_split : bool
        Add both channels of every stereo training clip. Off by default: on
        the demo (three clips in four stereo) it multiplies the training set
        by 2.5, and the cost of a fit with it, for no gain in accuracy.
    max_shift : float
        Largest time shift, as a share of the patch's frames (rolled round).
    max_gain_db : float
        Largest gain change, in dB either way.
    snr_db : (float, float)
        Range of the signal-to-noise ratio of the added noise, in dB.
    max_semitones : float
        Largest pitch shift, in semitones either way.
    max_stretch : float
        Largest time stretch: the rate is log-uniform in
        ``[1 / (1 + max_stretch), 1 + max_stretch]``.
    sr : int
        Sample rate of the patches (``PatchParams.sr``); the mel bands span
        0 to ``sr / 2`` Hz, which the pitch shift needs to map semitones to bands.
    top_db : float or None
        Floor of the patches below their loudest bin (``PatchParams.top_db``),
        re-applied after mixing noise.
    """

    transforms: tuple[str, ...] = TRANSFORMS
    copies: int = 1
    stereo_split: bool = False
    max_shift: float = 0.25
    max_gain_db: float = 6.0
    snr_db: tuple[float, float] = (6.0, 24.0)
    max_semitones: float = 2.0
    max_stretch: float = 0.2
    sr: int = _DEFAULT_SR
    top_db: float | None = 80.0

    def __post_init__(self) -> None:
        names = self.transforms
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise TypeError(f"transforms={names!r} must be a sequence of names from {TRANSFORMS}")
        unknown = [n for n in names if n not in TRANSFORMS]
        if unknown:
            raise ValueError(f"unknown transform(s) {unknown}; choose from {', '.join(TRANSFORMS)}")
        object.__setattr__(self, "transforms", tuple(dict.fromkeys(names)))
        object.__setattr__(self, "snr_db", tuple(float(v) for v in self.snr_db))
        checks = [
            ("copies", is_int(self.copies) and self.copies >= 0, "an integer >= 0"),
            ("stereo_split", isinstance(self.stereo_split, bool), "True or False"),
            ("max_shift", is_real(self.max_shift) and 0 <= self.max_shift <= 1, "a number in [0, 1]"),
            ("max_gain_db", is_real(self.max_gain_db) and self.max_gain_db >= 0, "a number >= 0"),
            ("snr_db", len(self.snr_db) == 2 and self.snr_db[0] <= self.snr_db[1],
             "a (low, high) pair of dB"),
            ("max_semitones", is_real(self.max_semitones) and 0 <= self.max_semitones <= 12,
             "a number in [0, 12]"),
            ("max_stretch", is_real(self.max_stretch) and 0 <= self.max_stretch < 1,
             "a number in [0, 1)"),
            ("sr", is_int(self.sr) and self.sr > 0, "a positive integer"),
            ("top_db", self.top_db is None or (is_real(self.top_db) and self.top_db > 0),
             "None or a positive number"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"Augmentation {name}={getattr(self, name)!r} must be {what}")

    @classmethod
    def for_patches(cls, params: Any, **settings: Any) -> Augmentation:
        """The augmentation of patches made with ``params`` (a PatchParams).

        >>> from features.params import PatchParams
        >>> Augmentation.for_patches(PatchParams(duration=1.0, sr=16000), copies=2).sr
        16000
        """
        return cls(**{"sr": params.sr, "top_db": params.top_db, **settings})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (lists for tuples)."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Augmentation:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown Augmentation field(s) {unknown}")
        d = dict(d)
        for key in ("transforms", "snr_db"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


class Augmented(NamedTuple):
    """Extra training examples made by :func:`augment`.

    Attributes
    ----------
    X : np.ndarray [shape=(m, n_mels, n_frames), dtype=float32]
    labels : np.ndarray [shape=(m,)]
        The source clips' labels.
    groups : np.ndarray [shape=(m,)] or None
        The source clips' groups (None when the index has no ``group``).
    source : np.ndarray [shape=(m,), dtype=int]
        Row of ``patches`` each example was made from.
    kind : np.ndarray [shape=(m,), dtype=str]
        A name from :data:`TRANSFORMS`, or ``"stereo"`` for a channel.
    """

    X: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None
    source: np.ndarray
    kind: np.ndarray


def augment(
    train_rows: Sequence[int] | np.ndarray,
    patches: np.ndarray,
    index: pd.DataFrame,
    *,
    augmentation: Augmentation | None = None,
    channels: np.ndarray | None = None,
    noise: np.ndarray | None = None,
    rng: np.random.Generator | int | None = 0,
) -> Augmented:
    """Make extra examples from the training clips ``train_rows`` only.

    Parameters
    ----------
    train_rows : sequence of int
        Rows of ``patches`` (and ``index``) that are training clips.
    patches : np.ndarray [shape=(n, n_mels, n_frames)]
        All patches (may be a memory map; only ``train_rows`` are read).
    index : pd.DataFrame
        Row ``i`` describes patch ``i``: ``label``, and optionally ``group``
        and ``stereo_row`` (row of ``channels``, -1 for mono clips), as in
        ``patches.parquet``.
    augmentation : Augmentation or None
        What to do; None: ``Augmentation()``.
    channels : np.ndarray [shape=(n_stereo, 2, n_mels, n_frames)] or None
        ``channels.npy``; without it (or without a ``stereo_row`` column) no
        stereo split is made.
    noise : np.ndarray [shape=(n_noise, n_mels, n_frames)] or None
        The dataset's own background-noise patches (``noise.npy``); when
        empty or None, seeded synthetic noise is mixed in instead.
    rng : np.random.Generator, int or None
        Random source or seed; the same seed gives the same examples.

    Returns
    -------
    Augmented
        Transformed copies first (clip by clip), then the stereo channels.

    Raises
    ------
    TypeError
        ``augmentation`` is not an Augmentation.
    ValueError
        A row is out of range, ``index`` lacks ``label`` or does not match
        ``patches``, or a shape does not match the patches'.
    """
    aug = Augmentation() if augmentation is None else augmentation
    if not isinstance(aug, Augmentation):
        raise TypeError(f"augmentation={aug!r} must be an Augmentation or None")
    rng = np.random.default_rng(rng)
    rows = _check_rows(train_rows, len(patches))
    if len(index) != len(patches):
        raise ValueError(f"index has {len(index)} rows but there are {len(patches)} patches")
    if "label" not in index.columns:
        raise ValueError("index has no 'label' column (row i must describe patch i)")
    shape = tuple(patches.shape[1:])
    noise = _check_noise(noise, shape)
    if channels is not None and tuple(channels.shape[1:]) != (2, *shape):
        raise ValueError(f"channels have shape {tuple(channels.shape)}; expected (n_stereo, 2, "
                         f"{shape[0]}, {shape[1]}) like the patches (both from one `features "
                         "patches` run)")

    parts, sources, kinds = [], [], []
    if aug.copies and aug.transforms:
        for row in rows:
            patch = np.asarray(patches[row], dtype=np.float32)
            for _ in range(aug.copies):
                name = aug.transforms[rng.integers(len(aug.transforms))]
                parts.append(_apply(name, patch, aug, rng, noise))
                sources.append(row)
                kinds.append(name)
    if aug.stereo_split and channels is not None and "stereo_row" in index.columns:
        stereo = np.asarray(index["stereo_row"], dtype=np.int64)[rows]
        for row, s in zip(rows, stereo):
            if s < 0:
                continue
            if s >= len(channels):
                raise ValueError(f"index row {row} has stereo_row {s} but channels holds {len(channels)}")
            parts += [np.asarray(channels[s, 0], np.float32), np.asarray(channels[s, 1], np.float32)]
            sources += [row, row]
            kinds += [STEREO, STEREO]

    source = np.asarray(sources, dtype=np.int64)
    X = np.stack(parts).astype(np.float32, copy=False) if parts else np.empty((0, *shape), np.float32)
    labels = np.asarray(index["label"])[source]
    groups = np.asarray(index["group"])[source] if "group" in index.columns else None
    return Augmented(X, labels, groups, source, np.asarray(kinds, dtype=str))


def _apply(name: str, patch: np.ndarray, aug: Augmentation, rng: np.random.Generator,
           noise: np.ndarray | None) -> np.ndarray:
    if name == "shift":
        limit = round(aug.max_shift * patch.shape[-1])
        return time_shift(patch, int(rng.integers(-limit, limit + 1)))
    if name == "gain":
        return gain(patch, rng.uniform(-aug.max_gain_db, aug.max_gain_db))
    if name == "noise":
        if noise is not None:
            background = np.asarray(noise[rng.integers(len(noise))], dtype=np.float32)
            background = time_shift(background, int(rng.integers(patch.shape[-1])))
        else:
            background = synthetic_noise(patch.shape, rng)
        return mix_noise(patch, background, rng.uniform(*aug.snr_db), top_db=aug.top_db)
    if name == "pitch":
        return pitch_shift(patch, rng.uniform(-aug.max_semitones, aug.max_semitones), sr=aug.sr)
    rate = float(np.exp(rng.uniform(-1.0, 1.0) * np.log1p(aug.max_stretch)))
    return time_stretch(patch, rate)


# ------------------------------------------------------------- transforms


def time_shift(patch: np.ndarray, frames: int, *, wrap: bool = True) -> np.ndarray:
    """Move a patch ``frames`` frames later in time (earlier when negative).

    Parameters
    ----------
    patch : np.ndarray [shape=(..., n_mels, n_frames)]
    frames : int
    wrap : bool
        Roll the frames that fall off one end back in at the other (the
        background of a clip goes on); False fills them with the patch's
        minimum (silence at its floor).

    Returns
    -------
    np.ndarray, same shape and dtype

    Examples
    --------
    >>> p = np.zeros((2, 5), np.float32); p[:, 0] = 1
    >>> time_shift(p, 2)[0].tolist()
    [0.0, 0.0, 1.0, 0.0, 0.0]
    """
    frames = int(frames)
    if wrap:
        return np.roll(patch, frames, axis=-1)
    out = np.full_like(patch, patch.min())
    n = patch.shape[-1]
    if abs(frames) < n:
        if frames >= 0:
            out[..., frames:] = patch[..., :n - frames]
        else:
            out[..., :n + frames] = patch[..., -frames:]
    return out


def gain(patch: np.ndarray, db: float) -> np.ndarray:
    """The patch of the clip made ``db`` dB louder: ``patch + db`` (patches are ``ref=1`` dB).

    Examples
    --------
    >>> gain(np.array([[-40.0, -20.0]], np.float32), 6.0).tolist()
    [[-34.0, -14.0]]
    """
    return (patch + np.float32(db)).astype(patch.dtype, copy=False)


def mix_noise(patch: np.ndarray, noise: np.ndarray, snr_db: float, *,
              top_db: float | None = 80.0) -> np.ndarray:
    """Add noise in the power domain at a signal-to-noise ratio, back in dB.

    The noise is scaled so that its mean power is ``snr_db`` below the
    patch's; the sum of powers is turned back to dB, and the ``top_db``
    floor below the new maximum is applied again, as extraction would.

    Parameters
    ----------
    patch, noise : np.ndarray [shape=(n_mels, n_frames)]
        dB log-mel patches of one shape.
    snr_db : float
    top_db : float or None

    Returns
    -------
    np.ndarray [shape=(n_mels, n_frames), dtype=float32]

    Examples
    --------
    >>> quiet = np.full((4, 8), -80.0, np.float32); quiet[:, 4] = 0.0
    >>> bool(mix_noise(quiet, np.zeros((4, 8), np.float32), 10.0).min() > -80)
    True
    """
    if noise.shape != patch.shape:
        raise ValueError(f"noise has shape {noise.shape}; expected {patch.shape} like the patch")
    power = np.power(10.0, patch.astype(np.float64) / 10.0)
    noise_power = np.power(10.0, noise.astype(np.float64) / 10.0)
    scale = power.mean() / max(noise_power.mean(), 1e-30) / 10.0 ** (snr_db / 10.0)
    out = 10.0 * np.log10(np.maximum(power + scale * noise_power, 1e-10))
    if top_db is not None:
        out = np.maximum(out, out.max() - top_db)
    return out.astype(np.float32)


def synthetic_noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A dB patch of white noise: exponentially distributed power in every bin."""
    return (10.0 * np.log10(rng.exponential(1.0, shape) + 1e-10)).astype(np.float32)


def pitch_shift(patch: np.ndarray, semitones: float, *, sr: int = _DEFAULT_SR) -> np.ndarray:
    """Move the content of a patch ``semitones`` up (down when negative) along its mel bands.

    The output band centred on ``f`` Hz takes the (interpolated) value at
    ``f / 2 ** (semitones / 12)`` on the patch's Slaney mel scale (0 to
    ``sr / 2``, as :func:`features.compute.log_mel` builds it): near-constant
    bands per semitone above 1 kHz, fewer below. Bands whose source lies
    outside the patch get its minimum.

    Parameters
    ----------
    patch : np.ndarray [shape=(n_mels, n_frames)]
    semitones : float
    sr : int
        Sample rate the patch was computed at.

    Returns
    -------
    np.ndarray [shape=(n_mels, n_frames), dtype=float32]
    """
    n_mels = patch.shape[-2]
    top = _hz_to_mel(sr / 2.0)
    step = top / (n_mels + 1)
    centres = _mel_to_hz(step * np.arange(1, n_mels + 1))
    position = _hz_to_mel(centres / 2.0 ** (semitones / 12.0)) / step - 1.0
    return _resample(patch, position, axis=-2)


def time_stretch(patch: np.ndarray, rate: float) -> np.ndarray:
    """Play a patch ``rate`` times faster, keeping its frame count.

    Output frame ``t`` is the (interpolated) input at ``t * rate``: with
    ``rate > 1`` the content ends early and the tail gets the patch's
    minimum; with ``rate < 1`` it is slowed down and its end is cut off.

    Parameters
    ----------
    patch : np.ndarray [shape=(n_mels, n_frames)]
    rate : float
        Positive speed factor.

    Returns
    -------
    np.ndarray [shape=(n_mels, n_frames), dtype=float32]

    Examples
    --------
    >>> p = np.zeros((1, 9), np.float32); p[0, 8] = 1.0
    >>> int(np.argmax(time_stretch(p, 2.0)[0]))
    4
    """
    if not rate > 0:
        raise ValueError(f"rate={rate} must be positive")
    return _resample(patch, np.arange(patch.shape[-1]) * float(rate), axis=-1)


def _resample(patch: np.ndarray, position: np.ndarray, *, axis: int) -> np.ndarray:
    """Linear interpolation of ``patch`` at fractional ``position`` along ``axis``; floor outside."""
    moved = np.moveaxis(np.asarray(patch, dtype=np.float32), axis, 0)
    n = moved.shape[0]
    inside = (position >= 0) & (position <= n - 1)
    low = np.clip(np.floor(position).astype(np.int64), 0, n - 1)
    high = np.minimum(low + 1, n - 1)
    weight = (position - low).reshape((-1,) + (1,) * (moved.ndim - 1)).astype(np.float32)
    out = moved[low] * (1 - weight) + moved[high] * weight
    out[~inside] = moved.min()
    return np.moveaxis(out, 0, axis).astype(np.float32, copy=False)


# The Slaney mel scale (librosa's default, htk=False): linear below 1 kHz, log above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, _F_SP * mel)


# ------------------------------------------------------------------ checks


def _check_rows(rows: Any, n: int) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise ValueError("train_rows must be a 1-D sequence of integer row positions")
    rows = rows.astype(np.int64)
    bad = rows[(rows < 0) | (rows >= n)]
    if bad.size:
        raise ValueError(f"train_rows holds {bad[0]}, outside the {n} patches")
    return rows


def _check_noise(noise: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if noise is None or len(noise) == 0:
        return None
    if tuple(noise.shape[1:]) != shape:
        raise ValueError(f"noise patches have shape {tuple(noise.shape[1:])}; expected {shape} "
                         "like the patches (both from one `features patches` run)")
    return noise
