"""load_audio: sample-exact parity with librosa.load, and clear errors for bad files."""
from __future__ import annotations

import re
import shutil
import warnings

import librosa
import numpy as np
import pytest
import soundfile as sf

from features.errors import AudioReadError, BadAudioError
from features.io import audio
from features.io.audio import AUDIO_EXTENSIONS, AudioInfo, is_audio_path, load_audio
from features.params import FeatureParams

# (file name, sample rate, channels, soundfile subtype, container format)
FORMATS = [
    ("stereo16.wav", 44100, 2, "PCM_16", "WAV"),
    ("mono24.wav", 48000, 1, "PCM_24", "WAV"),
    ("mono16_22k.wav", 22050, 1, "PCM_16", "WAV"),
    ("u8.wav", 8000, 1, "PCM_U8", "WAV"),
    ("float32.wav", 32000, 2, "FLOAT", "WAV"),
    ("six.wav", 44100, 6, "PCM_16", "WAV"),
    ("pcm32.wav", 16000, 3, "PCM_32", "WAV"),
    ("stereo.flac", 44100, 2, "PCM_16", "FLAC"),
    ("stereo.ogg", 44100, 2, "VORBIS", "OGG"),
    ("stereo.mp3", 44100, 2, "MPEG_LAYER_III", "MP3"),
    ("UPPER.WAV", 11025, 2, "PCM_16", "WAV"),
    ("bigendian.aiff", 44100, 2, "PCM_16", "AIFF"),
]
PARAMS = [
    FeatureParams(),
    FeatureParams(offset=0.25, duration=0.5),
    FeatureParams(sr=16000, offset=0.1),
    FeatureParams(sr=44100, duration=0.3),
]


def _noise(n: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((n, channels))).clip(-1, 1).astype(np.float32)


def _write(path, sr, channels, subtype="PCM_16", fmt="WAV", seconds=1.0, data=None):
    data = _noise(int(sr * seconds), channels) if data is None else data
    sf.write(path, data, sr, subtype=subtype, format=fmt)
    return path


def _librosa(path, p: FeatureParams) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y, _ = librosa.load(path, sr=p.sr, mono=True, offset=p.offset, duration=p.duration)
    return y


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {name: _write(folder / name, sr, ch, st, fmt) for name, sr, ch, st, fmt in FORMATS}


@pytest.mark.parametrize("name", [f[0] for f in FORMATS])
@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"sr{p.sr}-off{p.offset}-dur{p.duration}")
def test_samples_equal_librosa_load(clips, name, params):
    y, _ = load_audio(clips[name], params)
    ref = _librosa(clips[name], params)
    assert y.dtype == np.float32 and y.ndim == 1
    assert y.shape == ref.shape
    np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("channels", range(1, 11))
@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_16"])
def test_channel_mean_is_bit_identical_for_any_channel_count(tmp_path, channels, subtype):
    # numpy switches from sequential to pairwise sums at 8 channels; both must match.
    rng = np.random.default_rng(channels)
    data = (rng.uniform(-1, 1, (3001, channels)) * rng.uniform(1e-3, 1, channels)).astype(np.float32)
    data[0] = 1.0 if subtype == "FLOAT" else 32767 / 32768  # full scale
    data[1] = -1.0
    path = _write(tmp_path / "multi.wav", 8000, channels, subtype, data=data)
    params = FeatureParams(sr=8000)
    y, info = load_audio(path, params)
    decoded, _ = sf.read(path, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(y, np.mean(decoded.T, axis=0))
    np.testing.assert_array_equal(y, _librosa(path, params))
    assert info.orig_channels == channels


def test_audio_info_describes_the_source_file(clips):
    _, info = load_audio(clips["six.wav"], FeatureParams(offset=0.5, duration=0.2))
    assert info == AudioInfo(orig_sample_rate=44100, orig_channels=6, duration_s=1.0)
    assert isinstance(info.orig_sample_rate, int) and isinstance(info.orig_channels, int)
    with pytest.raises(AttributeError):
        info.duration_s = 2.0  # frozen


@pytest.mark.parametrize("fixed, expected", [(0.5, 11025), (2.0, 44100), (1.0, 22050)])
def test_fixed_length_cuts_or_zero_pads(clips, fixed, expected):
    params = FeatureParams(fixed_length=fixed)
    y, _ = load_audio(clips["stereo16.wav"], params)
    ref = _librosa(clips["stereo16.wav"], params)
    assert y.shape == (expected,) and y.dtype == np.float32
    np.testing.assert_array_equal(y, librosa.util.fix_length(ref, size=expected))
    if fixed > 1:
        assert not y[len(ref):].any()


def test_fixed_length_after_offset_and_duration(clips):
    params = FeatureParams(offset=0.2, duration=0.3, fixed_length=0.5)
    y, _ = load_audio(clips["mono24.wav"], params)
    ref = _librosa(clips["mono24.wav"], params)
    np.testing.assert_array_equal(y, librosa.util.fix_length(ref, size=round(0.5 * 22050)))


def test_audioread_fallback_matches_librosa(tmp_path, monkeypatch):
    # Force the rare path: libsndfile "fails", audioread's stdlib reader decodes.
    import audioread.rawread

    path = _write(tmp_path / "fallback.wav", 44100, 2, seconds=0.6)
    params = FeatureParams(offset=0.1, duration=0.3)

    def refuse(*args, **kwargs):
        raise sf.LibsndfileError(1, prefix=f"Error opening {str(path)!r}: ")

    monkeypatch.setattr(audio.sf, "SoundFile", refuse)
    monkeypatch.setattr(audio, "_external_decoders", lambda: [audioread.rawread.RawAudioFile])
    y, info = load_audio(path, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = audioread.rawread.RawAudioFile(str(path))
        ref, _ = librosa.load(reader, sr=params.sr, offset=params.offset, duration=params.duration)
    np.testing.assert_array_equal(y, ref)
    assert (info.orig_sample_rate, info.orig_channels) == (44100, 2)
    assert info.duration_s == pytest.approx(0.6)


def test_is_audio_path_ignores_case():
    assert is_audio_path("a/b/c.WAV") and is_audio_path("x.Flac") and is_audio_path("y.ogg")
    assert not is_audio_path("notes.txt") and not is_audio_path("wav") and not is_audio_path(".wav")
    assert {".wav", ".flac", ".ogg", ".mp3", ".aiff"} <= AUDIO_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in AUDIO_EXTENSIONS)


# ----------------------------------------------------------------- bad files
def _bad_files(tmp_path):
    good = _write(tmp_path / "good.wav", 44100, 2, seconds=0.5)
    raw = good.read_bytes()
    flac = _write(tmp_path / "good.flac", 44100, 2, fmt="FLAC", seconds=0.5)
    files = {
        "missing": tmp_path / "missing.wav",
        "directory": tmp_path / "folder.wav",
        "empty": tmp_path / "empty.wav",
        "truncated header": tmp_path / "trunc_header.wav",
        "corrupted header": tmp_path / "corrupt.wav",
        "text": tmp_path / "readme.wav",
        "truncated flac": tmp_path / "trunc.flac",
    }
    files["directory"].mkdir()
    files["empty"].write_bytes(b"")
    files["truncated header"].write_bytes(raw[:20])
    files["corrupted header"].write_bytes(b"RIFX" + raw[4:8] + b"JUNK" + raw[12:])
    files["text"].write_text("this is not audio, just a text file\n")
    files["truncated flac"].write_bytes(flac.read_bytes()[: len(flac.read_bytes()) // 2])
    return files


@pytest.mark.parametrize("kind, words", [
    ("missing", "does not exist"),
    ("directory", "is a directory"),
    ("empty", "empty"),
    ("truncated header", "damaged or truncated"),
    ("corrupted header", "not in a recognised audio format"),
    ("text", "contains text"),
    ("truncated flac", "damaged or truncated"),
])
def test_unreadable_files_raise_audio_read_error_naming_the_path(tmp_path, kind, words):
    path = _bad_files(tmp_path)[kind]
    with pytest.raises(AudioReadError, match=re.escape(str(path))) as caught:
        load_audio(path, FeatureParams())
    assert words in str(caught.value)
    assert isinstance(caught.value, OSError)
    assert not isinstance(caught.value, RuntimeError)  # no raw LibsndfileError
    assert caught.value.__cause__ is None or not isinstance(caught.value.__cause__, RuntimeError)


def test_format_without_any_decoder_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "_external_decoders", list)
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    with pytest.raises(AudioReadError, match="ffmpeg") as caught:
        load_audio(path, FeatureParams())
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_raise_bad_audio_error(tmp_path, bad):
    data = _noise(4000, 2)
    data[100, 1] = bad
    path = _write(tmp_path / "nonfinite.wav", 8000, 2, "FLOAT", data=data)
    with pytest.raises(BadAudioError, match=re.escape(str(path)) + ".*NaN or infinite"):
        load_audio(path, FeatureParams())


def test_offset_past_the_end_raises_bad_audio_error(clips):
    path = clips["stereo16.wav"]
    with pytest.raises(BadAudioError, match=re.escape(str(path)) + ".*no samples after offset"):
        load_audio(path, FeatureParams(offset=5.0))


def test_header_only_file_raises_bad_audio_error(tmp_path):
    path = _write(tmp_path / "nothing.wav", 8000, 1, data=np.zeros((0, 1), np.float32))
    with pytest.raises(BadAudioError, match=re.escape(str(path)) + ".*no audio samples"):
        load_audio(path, FeatureParams())


def test_truncated_data_loads_what_is_there_like_librosa(tmp_path):
    path = _write(tmp_path / "cut.wav", 44100, 2, seconds=1.0)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    y, info = load_audio(path, FeatureParams())
    np.testing.assert_array_equal(y, _librosa(path, FeatureParams()))
    assert 0.4 < info.duration_s < 0.6


@pytest.mark.skipif(shutil.which("ffmpeg") is not None, reason="ffmpeg could decode it")
def test_error_is_raised_quickly_for_unknown_extension(tmp_path):
    path = tmp_path / "clip.wma"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(AudioReadError, match=re.escape(str(path))):
        load_audio(path, FeatureParams())
