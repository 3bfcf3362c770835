"""Log-mel patches: shapes, the cut/pad rule, parity with librosa, the stereo and noise arrays."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import UsageError
from features.params import PatchParams
from features.patches import extract_patches, patch_files, read_patches

librosa = pytest.importorskip("librosa")
REPO = Path(__file__).resolve().parents[1]


def _librosa_patch(path, params: PatchParams, channel: int | None = None) -> np.ndarray:
    y, _ = librosa.load(path, sr=params.sr, mono=channel is None, offset=params.offset,
                        duration=params.duration)
    if channel is not None:
        y = y[channel]
    y = librosa.util.fix_length(y, size=round(params.duration * params.sr))
    mel = librosa.feature.melspectrogram(y=y, sr=params.sr, n_fft=params.n_fft,
                                         hop_length=params.hop_length, n_mels=params.n_mels)
    return librosa.power_to_db(mel, top_db=params.top_db)


@pytest.fixture
def clips(tmp_path, write_wav):
    root = tmp_path / "ds"
    sr = 22050
    t = np.arange(int(1.3 * sr)) / sr
    left = 0.4 * np.sin(2 * np.pi * 330 * t)
    right = 0.2 * np.sin(2 * np.pi * 880 * t) + 0.01 * np.cos(2 * np.pi * 5000 * t)
    write_wav(root / "a" / "stereo.wav", np.stack([left, right], axis=1), sr)
    write_wav(root / "a" / "short.wav", left[: sr // 2], sr)       # padded to 1 s
    write_wav(root / "b" / "long.wav", right, 44100)              # cut to 1 s
    (root / "b" / "broken.wav").write_text("not audio")
    return root


def test_patches_equal_librosa_and_keep_the_cut_pad_rule(clips, tmp_path):
    params = PatchParams(duration=1.0, n_mels=40, n_fft=1024, hop_length=256)
    res = extract_patches(clips, tmp_path / "out", params, jobs=2, quiet=True)
    assert (res.n_ok, res.n_failed, res.n_stereo) == (3, 1, 1)
    got = read_patches(tmp_path / "out")
    index, patches = got["index"], got["patches"]
    assert patches.shape == (3, 40, 1 + 22050 // 256) and patches.dtype == np.float32
    assert index["path"].tolist() == ["a/short.wav", "a/stereo.wav", "b/long.wav"]
    for i, rel in enumerate(index["path"]):
        np.testing.assert_allclose(patches[i], _librosa_patch(clips / rel, params), atol=1e-4)
    # the short clip is zero-padded: its last frames are at the floor (max - 80 dB)
    assert np.allclose(patches[0][:, -5:], patches[0].max() - 80)
    # each channel of the stereo clip, as librosa.load(mono=False) gives them
    row = int(index.loc[1, "stereo_row"])
    assert index["stereo_row"].tolist() == [-1, 0, -1]
    for channel in (0, 1):
        np.testing.assert_allclose(got["channels"][row, channel],
                                   _librosa_patch(clips / "a" / "stereo.wav", params, channel),
                                   atol=1e-4)
    assert got["noise"].shape == (0, 40, 87)
    errors = pd.read_csv(tmp_path / "out" / "errors.csv")
    assert errors["path"].tolist() == ["b/broken.wav"]
    meta = json.loads((tmp_path / "out" / "patches.json").read_text())
    assert meta["param_key"] == params.key() and meta["shape"] == [40, 87]
    assert PatchParams.from_dict(meta["params"]) == params


def test_default_length_fits_the_dataset_and_noise_is_cut_from_its_recordings(tmp_path,
                                                                               write_wav):
    root = tmp_path / "sc"
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    for word in ("yes", "no"):
        write_wav(root / word / "aa_nohash_0.wav", tone, 16000)
    write_wav(root / "_background_noise_" / "white.wav",
              0.1 * np.random.default_rng(0).standard_normal(16000 * 3 + 100), 16000)
    (root / "validation_list.txt").write_text("no/aa_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("")
    res = extract_patches(root, tmp_path / "out", {"sr": 16000}, jobs=1, quiet=True)
    assert res.params.duration == 1.0  # Speech Commands' length
    got = read_patches(tmp_path / "out")
    assert got["noise"].shape == (3, 64, 32)  # three whole seconds of noise
    assert got["index"]["split"].tolist() == ["validation", "train"]
    assert got["meta"]["noise_sources"] == ["_background_noise_/white.wav"]
    # kept while nothing changes; a changed noise recording makes them again
    assert "up to date" in extract_patches(root, tmp_path / "out", {"sr": 16000}, jobs=1,
                                           quiet=True).notes[-1]
    write_wav(root / "_background_noise_" / "white.wav",
              0.1 * np.random.default_rng(1).standard_normal(16000 * 2 + 100), 16000)
    again = extract_patches(root, tmp_path / "out", {"sr": 16000}, jobs=1, quiet=True)
    assert not any("up to date" in n for n in again.notes) and again.n_noise == 2


def test_patch_files_for_predict_and_the_command_line(clips, tmp_path):
    params = PatchParams(duration=1.0)
    patches, paths, errors = patch_files([clips / "a" / "short.wav", clips / "b" / "broken.wav"],
                                         params)
    assert patches.shape == (1, 64, 44) and paths == [str(clips / "a" / "short.wav")]
    assert [e.path for e in errors] == [str(clips / "b" / "broken.wav")]
    np.testing.assert_allclose(patches[0], _librosa_patch(clips / "a" / "short.wav", params),
                               atol=1e-4)
    proc = subprocess.run([sys.executable, "-m", "features", "patches", str(clips), "--out",
                           str(tmp_path / "cli"), "--duration", "0.5", "--jobs", "1",
                           "--no-stereo"], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "3 patches of 64x22 (0.5 s), 1 failed" in proc.stdout
    assert np.load(tmp_path / "cli" / "channels.npy").shape[0] == 0


def test_bad_patch_parameters_are_named():
    with pytest.raises(UsageError, match="duration=0 must be a positive number"):
        PatchParams(duration=0)
    with pytest.raises(UsageError, match="n_mels=600 is more than the 513 FFT bins"):
        PatchParams(duration=1.0, n_mels=600)


def test_unchanged_patches_are_kept_unless_forced_and_any_change_recomputes(clips, tmp_path):
    params = PatchParams(duration=1.0, n_mels=32)
    out = tmp_path / "out"
    first = extract_patches(clips, out, params, jobs=1, quiet=True)
    stamp = (out / "patches.npy").stat().st_mtime_ns
    again = extract_patches(clips, out, params, jobs=1, quiet=True)
    assert "up to date" in again.notes[-1]
    assert (again.n_ok, again.n_failed, again.n_stereo) == (first.n_ok, first.n_failed, 1)
    assert [e.path for e in again.errors] == ["b/broken.wav"] and again.exit_code == 0
    assert (out / "patches.npy").stat().st_mtime_ns == stamp  # not rewritten
    forced = extract_patches(clips, out, params, jobs=1, quiet=True, force=True)
    assert not any("up to date" in n for n in forced.notes)
    assert (out / "patches.npy").stat().st_mtime_ns != stamp
    # other parameters, another clip, or an edited output: computed again
    other = extract_patches(clips, out, PatchParams(duration=1.0, n_mels=16), jobs=1, quiet=True)
    assert not any("up to date" in n for n in other.notes) and read_patches(out)["patches"].shape[1] == 16
    (clips / "a" / "short.wav").rename(clips / "a" / "short2.wav")
    moved = extract_patches(clips, out, PatchParams(duration=1.0, n_mels=16), jobs=1, quiet=True)
    assert not any("up to date" in n for n in moved.notes)
    assert "a/short2.wav" in read_patches(out)["index"]["path"].tolist()
    (out / "patches.csv").write_text("edited\n")
    edited = extract_patches(clips, out, PatchParams(duration=1.0, n_mels=16), jobs=1, quiet=True)
    assert not any("up to date" in n for n in edited.notes)
