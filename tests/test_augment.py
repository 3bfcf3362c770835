"""classify.augment: each transform does what it says; augmented examples come from training clips only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupShuffleSplit

from classify.augment import (
    TRANSFORMS,
    Augmentation,
    augment,
    gain,
    mix_noise,
    pitch_shift,
    time_shift,
    time_stretch,
)

N_MELS, N_FRAMES, SR = 64, 60, 22050


def floor_patch(value: float = -80.0) -> np.ndarray:
    return np.full((N_MELS, N_FRAMES), value, dtype=np.float32)


# ------------------------------------------------------------- transforms


def test_time_shift_moves_frames_later_or_earlier():
    p = floor_patch()
    p[:, 3] = 0.0
    assert np.flatnonzero(time_shift(p, 5)[0] == 0.0).tolist() == [8]
    assert np.flatnonzero(time_shift(p, -2)[0] == 0.0).tolist() == [1]
    # wrapped round by default; filled with the floor without wrap
    assert np.flatnonzero(time_shift(p, -5)[0] == 0.0).tolist() == [N_FRAMES - 2]
    assert (time_shift(p, -5, wrap=False) == -80.0).all()
    assert time_shift(p, 7).shape == p.shape


def test_gain_adds_decibels():
    p = np.linspace(-80, 0, N_MELS * N_FRAMES, dtype=np.float32).reshape(N_MELS, N_FRAMES)
    np.testing.assert_allclose(gain(p, 6.0) - p, 6.0, atol=1e-5)
    np.testing.assert_allclose(gain(p, -3.5) - p, -3.5, atol=1e-5)
    assert gain(p, 1.0).dtype == np.float32


def test_time_stretch_changes_the_time_scale_and_keeps_the_frame_count():
    p = floor_patch()
    p[:, 20] = 0.0
    faster, slower = time_stretch(p, 2.0), time_stretch(p, 0.5)
    assert faster.shape == slower.shape == p.shape
    assert int(np.argmax(faster[10])) == 10       # frame 20 now plays at frame 10
    assert int(np.argmax(slower[10])) == 40       # ... and at frame 40 slowed down
    # a 20-frame event lasts 10 frames twice as fast, 40 half as fast
    event = floor_patch()
    event[:, 10:30] = 0.0

    def duration(x):  # frames at full level, a frame half-way counting half
        return float(((x[0] + 80) / 80).sum())

    assert duration(time_stretch(event, 2.0)) == pytest.approx(10.0)
    assert duration(time_stretch(event, 0.5)) == pytest.approx(40.0)
    np.testing.assert_array_equal(time_stretch(p, 1.0), p)
    with pytest.raises(ValueError, match="rate=0"):
        time_stretch(p, 0)


def test_pitch_shift_moves_bands_by_the_mel_distance_of_the_interval():
    librosa = pytest.importorskip("librosa")
    centres = librosa.mel_frequencies(N_MELS + 2, fmin=0.0, fmax=SR / 2)[1:-1]
    band = 30                                       # about 2 kHz: the log part of the mel scale
    p = floor_patch()
    p[band] = 0.0
    for semitones in (12, -12, 5):
        moved = int(np.argmax(pitch_shift(p, semitones, sr=SR)[:, 0]))
        target = centres[band] * 2 ** (semitones / 12)
        assert moved == int(np.argmin(np.abs(centres - target))), semitones
        assert moved != band
    np.testing.assert_allclose(pitch_shift(p, 0.0, sr=SR), p, atol=1e-4)
    # bands whose source lies above the top of the patch get its floor
    high = floor_patch(0.0)
    assert (pitch_shift(high, -12, sr=SR)[-3:] == 0.0).all()
    up = pitch_shift(np.linspace(-80, 0, N_MELS)[:, None].repeat(N_FRAMES, 1).astype(np.float32), 12)
    assert up.shape == (N_MELS, N_FRAMES) and up.dtype == np.float32


def test_mix_noise_adds_power_at_the_signal_to_noise_ratio_and_raises_the_floor():
    p = floor_patch(-40.0)
    mixed = mix_noise(p, floor_patch(0.0), 10.0)
    # power 1e-4 plus noise scaled 10 dB below it: 1.1e-4
    np.testing.assert_allclose(mixed, 10 * np.log10(1.1e-4), atol=1e-4)
    quiet = floor_patch(-80.0)
    quiet[:, 10] = 0.0
    rng = np.random.default_rng(0)
    noisy = mix_noise(quiet, 10 * np.log10(rng.exponential(1.0, quiet.shape)).astype(np.float32), 20.0)
    assert np.median(noisy[:, 20:]) > -80 + 20     # the floor rose
    assert abs(noisy[:, 10].mean()) < 1.0          # the loud frame barely moved
    assert noisy.max() - noisy.min() <= 80.0 + 1e-4  # top_db floor re-applied
    with pytest.raises(ValueError, match="noise has shape"):
        mix_noise(quiet, quiet[:, :5], 10.0)


# ------------------------------------------------------------------ augment


def dataset(n: int = 40, seed: int = 0):
    """Patches, an index like patches.parquet (every third clip stereo), channels."""
    rng = np.random.default_rng(seed)
    patches = rng.uniform(-80, 0, (n, 16, 24)).astype(np.float32)
    stereo_row = np.full(n, -1)
    stereo = np.arange(0, n, 3)
    stereo_row[stereo] = np.arange(len(stereo))
    index = pd.DataFrame({
        "label": np.array(["a", "b", "c", "d"])[np.arange(n) % 4],
        "group": np.arange(n) // 2,
        "stereo_row": stereo_row,
    })
    channels = rng.uniform(-80, 0, (len(stereo), 2, 16, 24)).astype(np.float32)
    return patches, index, channels


def test_no_augmented_example_comes_from_a_validation_or_test_clip():
    patches, index, channels = dataset()
    rows, groups = np.arange(len(index)), index["group"].to_numpy()
    rest, test = next(GroupShuffleSplit(1, test_size=0.25, random_state=0).split(rows, groups=groups))
    fit, val = next(GroupShuffleSplit(1, test_size=0.25, random_state=1).split(rest, groups=groups[rest]))
    train, val = rest[fit], rest[val]
    held_out = set(val) | set(test)
    assert held_out and not held_out & set(train)

    extra = augment(train, patches, index, augmentation=Augmentation(copies=3, stereo_split=True),
                    channels=channels, noise=None, rng=0)
    assert set(extra.source.tolist()) <= set(train.tolist())
    assert not set(extra.source.tolist()) & held_out
    stereo_train = [r for r in train if index.loc[r, "stereo_row"] >= 0]
    assert len(extra.X) == 3 * len(train) + 2 * len(stereo_train)
    is_stereo = extra.kind == "stereo"
    assert sorted(extra.source[is_stereo].tolist()) == sorted(stereo_train * 2)
    # each channel example is a channel of its own source clip, never a held-out clip's
    for x, row in zip(extra.X[is_stereo], extra.source[is_stereo]):
        pair = channels[index.loc[row, "stereo_row"]]
        assert np.array_equal(x, pair[0]) or np.array_equal(x, pair[1])
    # labels and groups are the source clip's
    np.testing.assert_array_equal(extra.labels, index["label"].to_numpy()[extra.source])
    np.testing.assert_array_equal(extra.groups, groups[extra.source])
    assert set(extra.kind[~is_stereo].tolist()) == set(TRANSFORMS)


def test_augment_is_seeded_and_keeps_shapes():
    patches, index, channels = dataset()
    train = np.arange(0, 40, 2)
    a = augment(train, patches, index, channels=channels, rng=7)
    b = augment(train, patches, index, channels=channels, rng=7)
    c = augment(train, patches, index, channels=channels, rng=8)
    assert "stereo" not in a.kind and len(a.X) == len(train)  # the default: one copy, no split
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)
    assert a.X.dtype == np.float32 and a.X.shape[1:] == patches.shape[1:]
    # only the stereo split, or nothing at all
    only_stereo = augment(train, patches, index, channels=channels,
                          augmentation=Augmentation(transforms=(), stereo_split=True), rng=0)
    assert set(only_stereo.kind.tolist()) == {"stereo"}
    nothing = augment(train, patches, index, augmentation=Augmentation(copies=0, stereo_split=False))
    assert nothing.X.shape == (0, 16, 24) and nothing.source.size == 0


def test_noise_comes_from_the_datasets_noise_patches_when_there_are_any():
    patches, index, _ = dataset()
    patches[:] = -60.0
    noise = np.full((2, 16, 24), -100.0, np.float32)
    noise[:, 5] = 0.0                               # the dataset's noise lives in band 5
    only_noise = Augmentation(transforms=("noise",), snr_db=(0.0, 0.0), stereo_split=False)
    extra = augment([0, 1, 2], patches, index, augmentation=only_noise, noise=noise, rng=0)
    raised = extra.X.mean(axis=(0, 2)) + 60.0
    assert int(np.argmax(raised)) == 5 and raised[5] > 10
    synthetic = augment([0, 1, 2], patches, index, augmentation=only_noise, noise=noise[:0], rng=0)
    assert (synthetic.X.mean(axis=(0, 2)) > -60.0 + 1).all()  # white: every band rose


def test_augment_rejects_bad_rows_and_settings():
    patches, index, channels = dataset()
    with pytest.raises(ValueError, match="train_rows holds 40, outside the 40 patches"):
        augment([0, 40], patches, index)
    with pytest.raises(ValueError, match="integer row positions"):
        augment([0.5], patches, index)
    with pytest.raises(ValueError, match="index has 39 rows but there are 40 patches"):
        augment([0], patches, index.iloc[:-1])
    with pytest.raises(ValueError, match=r"unknown transform\(s\) \['reverb'\]"):
        Augmentation(transforms=("shift", "reverb"))
    with pytest.raises(ValueError, match="Augmentation copies=-1 must be an integer >= 0"):
        Augmentation(copies=-1)
    with pytest.raises(ValueError, match="noise patches have shape"):
        augment([0], patches, index, noise=np.zeros((1, 8, 24), np.float32))
    with pytest.raises(ValueError, match=r"channels have shape \(14, 2, 8, 24\)"):
        augment([0], patches, index, channels=channels[:, :, :8])
    aug = Augmentation(transforms=["gain", "shift"], snr_db=[3, 9])
    assert Augmentation.from_dict(aug.to_dict()) == aug
    from features.params import PatchParams

    made = Augmentation.for_patches(PatchParams(duration=1.0, sr=16000, top_db=60), copies=2)
    assert (made.sr, made.top_db, made.copies) == (16000, 60.0, 2)
