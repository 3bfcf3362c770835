"""FeatureComputer must give librosa's numbers, column by column.

Tolerance: a column passes when ``|ours - librosa| <= 1e-5 * |librosa| +
1e-7 * scale``, where ``scale`` is the largest |value| among the columns of
the same feature (all MFCC columns, all chroma columns, the mean and std of
the centroid, ...). 1e-5 relative is the precision reached (measured: the
largest relative difference of a column that is not ~0 is 1e-5, the median
6e-8). The floor only matters for values that are ~0 by nature (a high MFCC
coefficient of a flat spectrum, the mean of a symmetric MFCC), where both
sides are float32 rounding noise: 1e-7 of an MFCC scale of 500 is 5e-5 dB.
A silent clip has scale 0 for every non-MFCC feature, so there the match
must be exact. Zero-crossing rates are counts and must match exactly.
"""
from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf
from reference import reference_features

from features.compute import FeatureComputer, feature_columns
from features.errors import BadAudioError, UsageError
from features.params import FeatureParams

librosa = pytest.importorskip("librosa")

SR = 22050
RTOL = 1e-5
FLOOR = 1e-7


def _music(sr: int, seconds: float, seed: int) -> np.ndarray:
    """A harmonic tone with tremolo and a little noise, peak 0.8."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = rng.uniform(110, 600)
    partials = (rng.uniform(0.05, 0.25) * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) for h in range(1, 6))
    y = sum(partials)
    y = y * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(t.size)
    return 0.8 * y / np.max(np.abs(y))


# name -> (source rate, channels, soundfile subtype)
FILES = {
    "44k1_stereo_pcm16": (44100, 2, "PCM_16"),
    "48k_pcm24": (48000, 1, "PCM_24"),
    "22k05_mono_pcm16": (22050, 1, "PCM_16"),
    "8k_float": (8000, 1, "FLOAT"),
    "11k_u8": (11025, 1, "PCM_U8"),
}


@pytest.fixture(scope="session")
def wav_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compute_wavs")
    for i, (name, (sr, channels, subtype)) in enumerate(FILES.items()):
        y = np.stack([_music(sr, 1.5, seed=10 * i + c) for c in range(channels)], axis=1)
        sf.write(folder / f"{name}.wav", y, sr, subtype=subtype)
    return folder


def _synthetic(name: str, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(sr) / sr
    clips = {
        "short_500": lambda: 0.3 * rng.standard_normal(500),
        "silent": lambda: np.zeros(sr),
        "very_quiet": lambda: 1e-5 * (rng.standard_normal(sr) + np.sin(2 * np.pi * 330 * t)),
        "white_noise": lambda: 0.2 * rng.standard_normal(sr),
        "pure_tone": lambda: 0.5 * np.sin(2 * np.pi * 440 * t),
        "detuned_tone": lambda: 0.5 * np.sin(2 * np.pi * 452 * t),
        "chirp": lambda: 0.5 * np.sin(2 * np.pi * (50 * t + 0.5 * 4000 * t**2)),
    }
    return clips[name]().astype(np.float32)


def _reference(y: np.ndarray, params: FeatureParams) -> np.ndarray:
    # librosa warns about n_fft > len(y) and about tuning from an empty set.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return reference_features(y, params)


def _feature_of(column: str) -> str:
    for prefix in ("mfcc", "chroma_stft", "chroma"):
        if column.startswith(prefix):
            return prefix
    return column.removesuffix("_mean").removesuffix("_std")


def assert_matches_librosa(y: np.ndarray, params: FeatureParams, got: np.ndarray | None = None) -> None:
    ref = _reference(y, params)
    got = FeatureComputer(params).compute(y) if got is None else got
    columns = feature_columns(params)
    assert got.dtype == np.float64
    assert got.shape == ref.shape == (len(columns),)
    assert np.isfinite(got).all()
    families = np.array([_feature_of(c) for c in columns])
    scale = np.zeros(len(columns))
    for family in set(families):
        member = families == family
        scale[member] = np.max(np.abs(ref[member]))
    allowed = RTOL * np.abs(ref) + FLOOR * scale
    bad = np.abs(got - ref) > allowed
    names = np.array(columns)[bad]
    report = [f"{c}: ours={g!r} librosa={r!r}" for c, g, r in zip(names, got[bad], ref[bad])]
    assert not bad.any(), "columns differ from librosa:\n" + "\n".join(report)
    # Zero crossings are counts of time-domain sign changes: they must agree
    # exactly (up to float64 summation), which also catches off-by-one frames.
    zcr = np.isin(families, ["zcr", "zero_crossing_rate"])
    np.testing.assert_allclose(got[zcr], ref[zcr], rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", list(FILES))
def test_parity_on_decoded_files(wav_dir, name):
    y, _ = librosa.load(wav_dir / f"{name}.wav", sr=SR, mono=True)
    assert y.dtype == np.float32
    assert_matches_librosa(y, FeatureParams())


@pytest.mark.parametrize(
    "name",
    ["short_500", "silent", "very_quiet", "white_noise", "pure_tone", "detuned_tone", "chirp"],
)
def test_parity_on_synthetic_clips(name):
    assert_matches_librosa(_synthetic(name), FeatureParams())


@pytest.mark.parametrize("name", ["22k05_mono_pcm16", "44k1_stereo_pcm16"])
def test_parity_gtzan_preset(wav_dir, name):
    y, _ = librosa.load(wav_dir / f"{name}.wav", sr=SR, mono=True)
    assert_matches_librosa(y, FeatureParams(preset="gtzan"))


@pytest.mark.parametrize(
    "params",
    [
        FeatureParams(sr=16000, n_mfcc=13),
        FeatureParams(n_fft=1024, hop_length=256, n_mfcc=20),
        FeatureParams(n_fft=2047, hop_length=333),  # odd n_fft: piptrack infers 2046
        FeatureParams(preset="gtzan", sr=16000, n_mfcc=30),
    ],
    ids=["sr16000_mfcc13", "nfft1024", "odd_nfft", "gtzan_sr16000_mfcc30"],
)
def test_parity_non_default_params(wav_dir, params):
    y, _ = librosa.load(wav_dir / "48k_pcm24.wav", sr=params.sr, mono=True)
    assert_matches_librosa(y, params)


def test_parity_long_clip():
    # >= 256 frames: the rolloff's running sum takes the row-by-row path.
    y = np.concatenate([_music(SR, 4.5, seed=3), _synthetic("chirp"), _synthetic("white_noise")])
    assert 1 + y.size // 512 >= 256
    assert_matches_librosa(y.astype(np.float32), FeatureParams())


@pytest.mark.parametrize("params", [FeatureParams(), FeatureParams(preset="gtzan", offset=1.25,
                                                                   duration=30.0)],
                         ids=["default", "gtzan_offset_duration"])
def test_long_file_analysed_in_blocks_matches_librosa(tmp_path, monkeypatch, params):
    from features.analysers import FeatureAnalyser
    from features.engine.work import Item, run_batch
    from features.io import audio

    # 40 s of 48 kHz stereo: analysed in ~30 blocks once the threshold is lowered.
    monkeypatch.setattr(audio, "BLOCKWISE_ABOVE_SAMPLES", 1 << 20)
    monkeypatch.setattr(audio, "BLOCK_FRAMES", 1 << 16)
    sr = 48000
    y = np.stack([_music(sr, 40.0, seed=5), _music(sr, 40.0, seed=6)], axis=1)
    path = tmp_path / "long.flac"
    sf.write(path, y, sr, subtype="PCM_24")
    clip, info = audio.read_clip(path, params)
    assert isinstance(clip, audio.LongClip) and info.orig_channels == 2
    blocks = list(clip.blocks())
    assert len(blocks) > 20
    whole, _ = librosa.load(path, sr=SR, offset=params.offset, duration=params.duration)
    np.testing.assert_array_equal(np.concatenate(blocks), whole)  # streaming soxr: same samples
    got = FeatureComputer(params).compute_blocks(clip.blocks)
    assert_matches_librosa(whole, params, got)
    np.testing.assert_allclose(got, FeatureComputer(params).compute(whole), rtol=1e-5, atol=1e-7)
    batch = run_batch(FeatureAnalyser(params), [Item(0, str(path), "long.flac")])
    np.testing.assert_array_equal(batch.features[0], got)


def test_rolloff_paths_agree_exactly(monkeypatch):
    from features import compute as c

    y = _music(SR, 2.0, seed=5).astype(np.float32)
    computer = FeatureComputer(FeatureParams())
    monkeypatch.setattr(c, "_ROW_SUM_FRAMES", 10**9)
    per_frame_cumsum = computer.compute(y)
    monkeypatch.setattr(c, "_ROW_SUM_FRAMES", 1)
    np.testing.assert_array_equal(computer.compute(y), per_frame_cumsum)
    # The row-by-row running sum must round exactly like np.cumsum.
    mag_t = np.random.default_rng(0).random((1025, 40)).astype(np.float32) ** 4
    np.testing.assert_array_equal(c._running_sum_by_rows(mag_t), np.cumsum(mag_t, axis=0))


def test_parity_float64_input():
    assert_matches_librosa(_synthetic("chirp").astype(np.float64), FeatureParams())


def test_filter_banks_and_tuning_equal_librosa():
    from features import compute as c

    for sr, n_fft in [(22050, 2048), (16000, 1024), (8000, 512)]:
        mel = librosa.filters.mel(sr=sr, n_fft=n_fft)
        np.testing.assert_array_equal(c._mel_bank(sr, n_fft), mel)
        np.testing.assert_array_equal(c._hann(n_fft), librosa.filters.get_window("hann", n_fft))
        for tuning in (0.0, -0.5, 0.23):
            np.testing.assert_array_equal(
                c._chroma_bank_t(sr, n_fft, tuning).T,
                librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning),
            )
    y = _synthetic("detuned_tone") + 0.01 * _synthetic("white_noise")
    power = np.abs(librosa.stft(y)) ** 2
    tables = c._tables(SR, 2048, 512, 40)
    ours = c._tuning([c._pitch_peaks(np.ascontiguousarray(power.T), tables)])
    assert ours == librosa.estimate_tuning(S=power, sr=SR) != 0.0


def test_columns_default_preset():
    cols = feature_columns(FeatureParams())
    assert len(cols) == 114 == len(set(cols))
    assert cols[:2] == ["mfcc_mean_1", "mfcc_mean_2"]
    assert cols[39:41] == ["mfcc_mean_40", "mfcc_std_1"]
    assert cols[80:82] == ["chroma_mean_1", "chroma_mean_2"]
    assert cols[92] == "chroma_std_1"
    assert cols[104:] == [
        "spectral_centroid_mean", "spectral_centroid_std",
        "spectral_bandwidth_mean", "spectral_bandwidth_std",
        "spectral_rolloff_mean", "spectral_rolloff_std",
        "zcr_mean", "zcr_std", "rms_mean", "rms_std",
    ]
    assert len(feature_columns(FeatureParams(n_mfcc=13))) == 13 * 2 + 24 + 10


def test_columns_gtzan_preset():
    cols = feature_columns(FeatureParams(preset="gtzan"))
    assert cols == [
        "chroma_stft", "rmse", "spectral_centroid", "spectral_bandwidth", "rolloff",
        "zero_crossing_rate", *(f"mfcc{i}" for i in range(1, 21)),
    ]
    assert FeatureComputer(FeatureParams(preset="gtzan")).columns == cols


@pytest.mark.parametrize("name", ["silent", "short_500"])
def test_degenerate_clips_give_finite_values(name):
    for params in (FeatureParams(), FeatureParams(preset="gtzan")):
        out = FeatureComputer(params).compute(_synthetic(name))
        assert out.shape == (len(feature_columns(params)),)
        assert np.isfinite(out).all()
    silent = FeatureComputer(FeatureParams()).compute(_synthetic("silent"))
    assert silent[feature_columns(FeatureParams()).index("rms_mean")] == 0.0


def test_single_sample_clip():
    out = FeatureComputer(FeatureParams()).compute(np.array([0.5], dtype=np.float32))
    assert np.isfinite(out).all()


def test_repeatable_and_picklable():
    y = _synthetic("chirp")
    computer = FeatureComputer(FeatureParams())
    first = computer.compute(y)
    computer.compute(_synthetic("white_noise"))  # reuses scratch buffers in between
    np.testing.assert_array_equal(computer.compute(y), first)
    clone = pickle.loads(pickle.dumps(computer))
    assert clone.params == computer.params and clone.columns == computer.columns
    np.testing.assert_array_equal(clone.compute(y), first)
    fresh = pickle.loads(pickle.dumps(FeatureComputer(FeatureParams())))
    np.testing.assert_array_equal(fresh.compute(y), first)


@pytest.mark.parametrize(
    ("y", "error", "match"),
    [
        (np.array([0.0, np.nan], dtype=np.float32), BadAudioError, "NaN or infinite"),
        (np.zeros(0, dtype=np.float32), BadAudioError, "no samples"),
        (np.zeros((2, 100), dtype=np.float32), UsageError, r"shape \(2, 100\) must be 1-D"),
        (np.zeros(100, dtype=np.int16), UsageError, "dtype int16 is not float32/float64"),
    ],
)
def test_bad_audio_is_rejected(y, error, match):
    with pytest.raises(error, match=match):
        FeatureComputer(FeatureParams()).compute(y)


def test_bad_params_are_rejected():
    with pytest.raises(UsageError, match="n_mfcc=129 must be at most 128"):
        FeatureComputer(FeatureParams(n_mfcc=129))
    with pytest.raises(UsageError, match="must be a features.params.FeatureParams"):
        feature_columns({"sr": 22050})


def test_import_is_light():
    # Workers import this module; librosa / scipy.signal cost seconds each.
    code = (
        "import sys, features.compute\n"
        "heavy = [m for m in ('librosa', 'scipy.signal', 'tensorflow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
