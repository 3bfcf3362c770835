"""The rich preset: every frame-level descriptor equals its librosa function; the statistics are what the
dictionary says; every column is described; long clips and low sample rates get clear answers.

Tolerance as for the default preset (tests/test_compute.py): ``|ours - librosa| <= 1e-5 * |librosa| +
1e-7 * scale``, ``scale`` being the largest |value| of the family. The MFCC deltas are measured against
the MFCCs' scale: librosa takes them of its float32 MFCCs, so its deltas carry float32 rounding of
values ~100x larger than themselves (ours, from float64 MFCCs, equal librosa's delta of those to 1e-14).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy import stats

from features.compute import FeatureComputer, feature_columns
from features.descriptors import STATISTICS, delta, rich_descriptors, summarise
from features.errors import BadAudioError, UsageError
from features.io.audio import load_audio
from features.params import FeatureParams
from features.schema import build_schema

librosa = pytest.importorskip("librosa")

SR = 22050
RICH = FeatureParams(preset="rich")
RTOL, FLOOR = 1e-5, 1e-7


def _clip(name: str, sr: int = SR, seconds: float = 1.7) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(sr * seconds)) / sr
    clips = {
        "music": lambda: sum(0.2 / h * np.sin(2 * np.pi * 196 * h * t) for h in range(1, 7))
        * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.size),
        "chirp": lambda: 0.5 * np.sin(2 * np.pi * (80 * t + 0.5 * 3000 * t**2)),
        "noise_bursts": lambda: rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.3) * 0.3,
        "very_quiet": lambda: 1e-5 * (rng.standard_normal(t.size) + np.sin(2 * np.pi * 330 * t)),
        "silent": lambda: np.zeros(t.size),
    }
    return clips[name]().astype(np.float32)


def _librosa_frames(y: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Every rich descriptor, each from its own librosa call, in rich_descriptors order."""
    spec = {"sr": params.sr, "n_fft": params.n_fft, "hop_length": params.hop_length}
    frame = {"frame_length": params.n_fft, "hop_length": params.hop_length}
    mag = np.abs(librosa.stft(y, n_fft=params.n_fft, hop_length=params.hop_length))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tuning estimated from no pitch
        mfcc = librosa.feature.mfcc(y=y, n_mfcc=params.n_mfcc, **spec)
        chroma = librosa.feature.chroma_stft(y=y, **spec)
    return np.concatenate([
        mfcc, librosa.feature.delta(mfcc, width=9, order=1), librosa.feature.delta(mfcc, width=9, order=2),
        librosa.power_to_db(librosa.feature.melspectrogram(y=y, n_mels=64, **spec)),
        librosa.feature.spectral_contrast(S=mag, sr=params.sr, n_fft=params.n_fft, fmin=200.0, n_bands=6),
        librosa.feature.spectral_flatness(S=mag),
        librosa.onset.onset_strength(y=y, **spec)[None, :],
        librosa.feature.spectral_centroid(S=mag, sr=params.sr),
        librosa.feature.spectral_bandwidth(S=mag, sr=params.sr),
        librosa.feature.spectral_rolloff(S=mag, sr=params.sr, roll_percent=0.85),
        librosa.feature.spectral_rolloff(S=mag, sr=params.sr, roll_percent=0.95),
        chroma,
        librosa.feature.zero_crossing_rate(y, **frame),
        librosa.feature.rms(y=y, **frame),
    ]).astype(np.float64)


def _family(descriptor: str) -> str:
    return descriptor.rstrip("0123456789").rstrip("_")


def assert_frames_match_librosa(y: np.ndarray, params: FeatureParams) -> None:
    got = FeatureComputer(params).frame_descriptors(y)
    ref = _librosa_frames(y, params)
    names = rich_descriptors(params.n_mfcc)
    assert got.shape == ref.shape == (len(names), ref.shape[1])
    assert np.isfinite(got).all()
    families = np.array([_family(n) for n in names])
    scale = {f: np.max(np.abs(ref[families == f])) for f in set(families)}
    for f in ("mfcc_delta", "mfcc_delta2"):
        scale[f] = scale["mfcc"]
    problems = []
    for family in dict.fromkeys(families):
        rows = families == family
        allowed = RTOL * np.abs(ref[rows]) + FLOOR * scale[family]
        excess = np.abs(got[rows] - ref[rows]) - allowed
        if (excess > 0).any():
            r, t = np.unravel_index(np.argmax(excess), excess.shape)
            problems.append(f"{np.array(names)[rows][r]} frame {t}: ours={got[rows][r, t]!r} "
                            f"librosa={ref[rows][r, t]!r}")
    assert not problems, "descriptors differ from librosa:\n" + "\n".join(problems)
    zcr = names.index("zcr")
    np.testing.assert_allclose(got[zcr], ref[zcr], rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", ["music", "chirp", "noise_bursts", "very_quiet", "silent"])
def test_every_descriptor_equals_librosa_on_synthetic_clips(name):
    assert_frames_match_librosa(_clip(name), RICH)


def test_every_descriptor_equals_librosa_on_a_decoded_stereo_file(tmp_path):
    t = np.arange(int(44100 * 1.3)) / 44100
    stereo = np.stack([0.4 * np.sin(2 * np.pi * 261.6 * t), 0.3 * np.sin(2 * np.pi * 392 * t + 1)], axis=1)
    path = tmp_path / "chord.wav"
    sf.write(path, stereo, 44100, subtype="PCM_16")
    y, _ = load_audio(path, RICH)
    assert_frames_match_librosa(y, RICH)


@pytest.mark.parametrize("params", [FeatureParams(preset="rich", sr=16000, n_fft=1024, hop_length=256),
                                    FeatureParams(preset="rich", n_mfcc=20, hop_length=256)])
def test_every_descriptor_equals_librosa_with_other_parameters(params):
    assert_frames_match_librosa(_clip("music", sr=params.sr), params)


def test_statistics_are_the_ones_the_dictionary_defines():
    y = _clip("noise_bursts")
    computer = FeatureComputer(RICH)
    frames = computer.frame_descriptors(y)
    got = computer.compute(y).reshape(len(frames), len(STATISTICS))
    n = frames.shape[1]
    seconds = np.arange(n) * RICH.hop_length / RICH.sr
    ref = np.stack([
        frames.mean(axis=1), frames.std(axis=1, ddof=0), frames.min(axis=1), frames.max(axis=1),
        *np.percentile(frames, [10, 50, 90], axis=1, method="linear"),
        stats.skew(frames, axis=1, bias=True), stats.kurtosis(frames, axis=1, fisher=True, bias=True),
        np.polyfit(seconds, frames.T, 1)[0],
    ], axis=1)
    varying = frames.std(axis=1) > 1e-9 * np.abs(frames).max(axis=1)
    np.testing.assert_allclose(got[varying], ref[varying], rtol=1e-9, atol=1e-9)
    # A descriptor constant over the clip (the first frames' flux is 0, then rises: not constant;
    # the contrast of silence is): skewness and kurtosis 0, never NaN.
    silent = FeatureComputer(RICH).compute(_clip("silent")).reshape(len(frames), len(STATISTICS))
    assert np.isfinite(silent).all()
    flat = np.array([_family(d) == "spectral_contrast" for d in rich_descriptors(40)])
    assert (silent[flat][:, [STATISTICS.index("skew"), STATISTICS.index("kurt")]] == 0).all()


def test_summaries_of_our_frames_equal_summaries_of_librosas():
    """End to end: the table's value of every column, against the same statistic of librosa's frames."""
    y = _clip("music")
    got = FeatureComputer(RICH).compute(y).reshape(-1, len(STATISTICS))
    ref = summarise(_librosa_frames(y, RICH), RICH.hop_length / RICH.sr).reshape(-1, len(STATISTICS))
    names = rich_descriptors(40)
    families = np.array([_family(n) for n in names])
    for stat in ("mean", "std", "min", "max", "p10", "p50", "p90"):
        i = STATISTICS.index(stat)
        scale = np.array([np.abs(ref[families == _family(n)]).max() for n in names])
        scale[np.isin(families, ["mfcc_delta", "mfcc_delta2"])] = np.abs(ref[families == "mfcc"]).max()
        bad = np.abs(got[:, i] - ref[:, i]) > RTOL * np.abs(ref[:, i]) + FLOOR * scale
        assert not bad.any(), (stat, np.array(names)[bad][:5])


def test_deltas_of_short_clips():
    x = np.arange(12.0)[None, :] ** 2
    np.testing.assert_allclose(delta(x, 1), librosa.feature.delta(x, width=9, order=1), atol=1e-9)
    np.testing.assert_allclose(delta(x, 2), librosa.feature.delta(x, width=9, order=2), atol=1e-9)
    # librosa refuses fewer than 9 frames; the widest odd window that fits is used, and 0 below 3 frames.
    five = np.array([[1.0, 2.0, 4.0, 8.0, 16.0]])
    np.testing.assert_allclose(delta(five, 1), librosa.feature.delta(five, width=5, order=1), atol=1e-9)
    assert (delta(np.array([[1.0, 5.0]]), 1) == 0).all()
    one_frame = FeatureComputer(RICH).compute(_clip("music", seconds=0.02))
    assert np.isfinite(one_frame).all() and one_frame.shape == (2110,)


def test_every_rich_column_has_a_dictionary_row_with_family_descriptor_statistic_and_unit():
    columns = feature_columns(RICH)
    table = pd.DataFrame({"path": ["a.wav"], "label": ["x"], **{c: [0.5] for c in columns}})
    schema = build_schema(table, RICH).set_index("column")
    features = schema[schema["role"] == "feature"]
    assert list(features.index) == columns
    assert (features[["family", "descriptor", "statistic", "unit", "description"]] != "").all().all()
    assert set(features["statistic"]) == set(STATISTICS)
    assert set(features["descriptor"]) == set(rich_descriptors(40))
    # An analyst's filter: every MFCC-delta standard deviation.
    picked = features[(features["family"] == "mfcc_delta") & (features["statistic"] == "std")]
    assert list(picked.index) == [f"mfcc_delta_{k}_std" for k in range(1, 41)]
    assert features.loc["spectral_rolloff95_slope", "unit"] == "Hz per second"
    assert features.loc["chroma_10_p90", "description"].startswith("90th percentile")
    assert "pitch class A " in features.loc["chroma_10_p90", "description"]
    assert schema.loc["path", "family"] == ""


def test_a_sample_rate_too_low_for_the_octave_bands_is_refused_with_the_reason():
    with pytest.raises(UsageError, match="Nyquist.*use sr of at least 16000 Hz"):
        feature_columns(FeatureParams(preset="rich", sr=8000))


def test_a_long_clip_is_summarised_whole_up_to_the_limit_and_refused_beyond(monkeypatch):
    from features import compute

    y = _clip("chirp", seconds=3.0)
    blocks = lambda: iter(np.array_split(y, 7))  # noqa: E731 - a fresh pass each call
    computer = FeatureComputer(RICH)
    np.testing.assert_array_equal(computer.compute_blocks(blocks), computer.compute(y))
    monkeypatch.setattr(compute, "RICH_MAX_SECONDS", 2.0)
    with pytest.raises(BadAudioError, match="longer than .* minutes.*--segment") as caught:
        computer.compute_blocks(blocks)
    assert caught.value.reason == "too long for the rich preset"
