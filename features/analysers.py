"""What the run engine runs on every clip: a frozen function of the clip's audio.

The engine (:mod:`features.engine`) knows nothing of MFCCs or patches: it
hands each clip's location to an *analyser* and keeps what comes back. An
analyser is a small frozen (picklable) object holding the parameters that
define its numbers:

- :class:`FeatureAnalyser`: one feature vector per clip, or one per window
  (:class:`~features.params.FeatureParams`);
- :class:`PatchAnalyser`: one log-mel patch per clip, with its two
  channels' for stereo clips (:class:`~features.params.PatchParams`).

Every analyser has ``key`` (its parameters' key: checkpoints and task keys),
``width`` (values per row), ``warm_up()`` (import what a clip needs, before
the first one) and ``analyse(location, shown, stage)``, which returns the
rows of one clip (opened at ``location``; ``shown`` is how messages name
it) and the facts of its source audio, and sets ``stage[0]`` to
``"features"`` once the audio is read (so a failure is reported at the
right stage).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any

import numpy as np

from .errors import BadAudioError
from .params import FeatureParams, PatchParams

__all__ = ["FeatureAnalyser", "PatchAnalyser", "analyser_for", "patch_row", "patch_width"]

#: One row of a clip: its values, and for a window (index, start s, end s), else None.
Row = tuple[np.ndarray, Any]


@functools.cache
def _computer(params: FeatureParams) -> Any:
    """This process's FeatureComputer for ``params`` (filter banks built once)."""
    from .compute import FeatureComputer

    return FeatureComputer(params)


@dataclasses.dataclass(frozen=True)
class FeatureAnalyser:
    """Feature vectors of a clip: one row, or one per window (``params.segment``).

    With ``frames`` (a folder, absolute), the clip's frame-level values are
    also written there as they are computed (:class:`features.frames.ClipFrames`).
    """

    params: FeatureParams
    frames: str | None = None

    @property
    def key(self) -> str:
        return self.params.key() + ("-frames" if self.frames else "")

    @property
    def width(self) -> int:
        return len(_computer(self.params).columns)

    def warm_up(self) -> None:
        from .io import audio  # noqa: F401 - imported now, not on the first clip

        _computer(self.params)

    def _frames_of(self, shown: str, computer: Any) -> Any:
        """A context whose value is the computer's sink for the clip's frames (None without ``frames``)."""
        if not self.frames:
            return contextlib.nullcontext(None)
        from .frames import ClipFrames, clip_file

        return ClipFrames(clip_file(self.frames, shown), computer.frame_names,
                          self.params.hop_length / self.params.sr)

    def analyse(self, location: str, shown: str, stage: list[str]) -> tuple[list[Row], Any]:
        from .io.audio import LongClip, read_clip
        from .segments import windows

        computer = _computer(self.params)
        y, info = read_clip(location, self.params)
        stage[0] = "features"
        if self.params.segment is None:
            with self._frames_of(shown, computer) as sink:
                vec = computer.compute_blocks(y.blocks, sink) if isinstance(y, LongClip) else computer.compute(y, sink)
                vec = finite(vec, shown)  # inside: a clip with non-finite values leaves no frames
            return [(vec, None)], info
        blocks = y.blocks() if isinstance(y, LongClip) else [y]
        return [(finite(computer.compute(w.samples), shown), (w.index, w.start_s, w.end_s))
                for w in windows(blocks, self.params)], info


def patch_width(params: PatchParams) -> int:
    """Values per clip in a batch row: the patch, and both channels' with ``stereo``."""
    n_mels, n_frames = params.shape
    return n_mels * n_frames * (3 if params.stereo else 1)


def patch_row(location: str, params: PatchParams, stage: list[str] | None = None
              ) -> tuple[np.ndarray, Any]:
    """One clip's patch, and with ``params.stereo`` its two channels' (flattened, float32).

    A patch is the clip, mono, resampled, cut or zero-padded to
    ``params.duration`` seconds, then ``librosa.power_to_db(melspectrogram,
    top_db)``. A mono clip repeats its patch for both channels, so every
    row has one width; ``features patches`` keeps channels only for stereo
    clips.

    Returns
    -------
    row : np.ndarray [shape=(patch_width(params),), dtype=float32]
    info : AudioInfo
    """
    from .compute import log_mel
    from .io.audio import load_audio, load_channels

    audio = params.audio_params()
    y, info = load_audio(location, audio)
    if stage is not None:
        stage[0] = "features"
    mel = {"sr": params.sr, "n_fft": params.n_fft, "hop_length": params.hop_length,
           "n_mels": params.n_mels, "top_db": params.top_db}
    patch = log_mel(y, **mel)
    parts = [patch]
    if params.stereo:
        channels = load_channels(location, audio) if info.orig_channels >= 2 else None
        if channels is not None:
            parts += [log_mel(channels[0], **mel), log_mel(channels[1], **mel)]
        else:
            parts += [patch, patch]
    return np.concatenate([p.ravel() for p in parts]).astype(np.float32), info


@dataclasses.dataclass(frozen=True)
class PatchAnalyser:
    """The log-mel patch of a clip (flattened; with both channels' for ``params.stereo``)."""

    params: PatchParams

    @property
    def key(self) -> str:
        return self.params.key()

    @property
    def width(self) -> int:
        return patch_width(self.params)

    def warm_up(self) -> None:
        from . import compute  # noqa: F401 - imported now, not on the first clip
        from .io import audio  # noqa: F401

    def analyse(self, location: str, shown: str, stage: list[str]) -> tuple[list[Row], Any]:
        vec, info = patch_row(location, self.params, stage)
        return [(finite(vec, shown).astype(np.float32), None)], info


def analyser_for(params: FeatureParams | PatchParams) -> FeatureAnalyser | PatchAnalyser:
    """The analyser of a set of parameters."""
    if isinstance(params, PatchParams):
        return PatchAnalyser(params)
    if isinstance(params, FeatureParams):
        return FeatureAnalyser(params)
    raise TypeError(f"params={params!r} must be FeatureParams or PatchParams")


def finite(vec: np.ndarray, shown: str) -> np.ndarray:
    """``vec`` (float64, or float32 kept), refused when any value is NaN or inf."""
    vec = np.asarray(vec)
    vec = vec if vec.dtype == np.float32 else vec.astype(np.float64)
    if not np.all(np.isfinite(vec)):
        raise BadAudioError(f"{shown}: features are not finite (NaN or inf)",
                            reason="features are not finite")
    return vec
