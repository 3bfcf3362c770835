"""The feature vector computed the slow, obvious way with librosa: what the fast computer must equal.

Test-only: :class:`features.compute.FeatureComputer` never imports librosa,
and the product does not need this.
"""
from __future__ import annotations

import librosa
import numpy as np

from features.compute import check_params
from features.params import FeatureParams, Preset


def reference_features(y: np.ndarray, params: FeatureParams) -> np.ndarray:
    """The same feature vector computed the slow, obvious way with librosa.

    Each librosa feature function is called on ``y`` (each recomputes its own
    STFT), then ``np.mean`` / ``np.std`` (population) are taken over frames,
    as the tutorials do. The tests compare :class:`features.compute.FeatureComputer` with it.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
        Mono floating-point audio at ``params.sr``.
    params : FeatureParams

    Returns
    -------
    np.ndarray [shape=(len(feature_columns(params)),), dtype=float64]
    """
    check_params(params)
    spec = {"sr": params.sr, "n_fft": params.n_fft, "hop_length": params.hop_length}
    frames = {"frame_length": params.n_fft, "hop_length": params.hop_length}
    mfcc = librosa.feature.mfcc(y=y, n_mfcc=params.n_mfcc, **spec)
    chroma = librosa.feature.chroma_stft(y=y, **spec)
    centroid = librosa.feature.spectral_centroid(y=y, **spec)
    bandwidth = librosa.feature.spectral_bandwidth(y=y, **spec)
    rolloff = librosa.feature.spectral_rolloff(y=y, **spec)
    zcr = librosa.feature.zero_crossing_rate(y, **frames)
    rms = librosa.feature.rms(y=y, **frames)
    if params.preset is Preset.GTZAN:
        scalars = [np.mean(f) for f in (chroma, rms, centroid, bandwidth, rolloff, zcr)]
        return np.concatenate([scalars, np.mean(mfcc, axis=1)]).astype(np.float64)
    parts = [np.mean(mfcc, axis=1), np.std(mfcc, axis=1)]
    parts += [np.mean(chroma, axis=1), np.std(chroma, axis=1)]
    for f in (centroid, bandwidth, rolloff, zcr, rms):
        parts += [np.mean(f, axis=1), np.std(f, axis=1)]
    return np.concatenate(parts).astype(np.float64)
