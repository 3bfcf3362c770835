"""classify.importance: feature families, permutations, and score drops that mean something."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from classify.evaluation import aggregate_clips
from classify.importance import (
    ALL_CLASSES,
    IMPORTANCE_COLUMNS,
    feature_families,
    importance_table,
    permuted_rows,
)
from features.compute import feature_columns
from features.descriptors import STATISTICS
from features.families import family_of
from features.params import FeatureParams


def test_every_preset_column_has_its_family():
    default = feature_columns(FeatureParams())
    families = {name: [default[i] for i in cols] for name, cols in feature_families(default).items()}
    assert list(families) == ["mfcc_mean", "mfcc_std", "chroma", "spectral_shape", "zcr", "rms"]
    assert families["mfcc_mean"] == [f"mfcc_mean_{i}" for i in range(1, 41)]
    assert len(families["chroma"]) == 24 and families["zcr"] == ["zcr_mean", "zcr_std"]
    assert families["spectral_shape"] == [f"spectral_{n}_{s}" for n in ("centroid", "bandwidth", "rolloff")
                                          for s in ("mean", "std")]
    gtzan = feature_columns(FeatureParams(preset="gtzan"))
    assert {c: family_of(c) for c in gtzan[:6]} == {
        "chroma_stft": "chroma", "rmse": "rms", "spectral_centroid": "spectral_shape",
        "spectral_bandwidth": "spectral_shape", "rolloff": "spectral_shape", "zero_crossing_rate": "zcr"}
    assert {family_of(c) for c in gtzan[6:]} == {"mfcc_mean"}
    # The Kaggle GTZAN CSV's names.
    assert [family_of(c) for c in ("mfcc3_mean", "mfcc3_var", "chroma_stft_var", "rms_mean", "rolloff_var",
                                   "harmony_mean", "tempo")] == [
        "mfcc_mean", "mfcc_std", "chroma", "rms", "spectral_shape", "other", "other"]


def test_rich_columns_group_by_descriptor_family_not_by_statistic():
    rich = feature_columns(FeatureParams(preset="rich"))
    families = {name: [rich[i] for i in cols] for name, cols in feature_families(rich).items()}
    assert list(families) == ["mfcc", "mfcc_delta", "mfcc_delta2", "logmel", "contrast", "flatness", "flux",
                              "chroma", "spectral_shape", "zcr", "rms"]
    assert len(families["mfcc"]) == len(families["mfcc_delta"]) == len(families["mfcc_delta2"]) == 40 * 10
    assert len(families["logmel"]) == 64 * 10 and len(families["contrast"]) == 7 * 10
    assert families["spectral_shape"] == [f"spectral_{n}_{s}" for n in ("centroid", "bandwidth", "rolloff85",
                                                                         "rolloff95") for s in STATISTICS]
    assert "other" not in families and sum(map(len, families.values())) == len(rich)


def test_permuted_rows_shuffle_one_family_together_and_nothing_else():
    rng = np.random.default_rng(0)
    X = np.arange(40.0).reshape(10, 4)
    families = [np.array([0, 1]), np.array([3])]
    out = permuted_rows(X, families, 3, rng).reshape(2, 3, 10, 4)
    for r in range(3):
        block = out[0, r]
        np.testing.assert_array_equal(block[:, 2:], X[:, 2:])
        order = (block[:, 0] / 4).astype(int)  # row each shuffled value came from
        assert sorted(order) == list(range(10))
        np.testing.assert_array_equal(block[:, 1], X[order, 1])  # the family moves as one
        np.testing.assert_array_equal(out[1, r][:, :3], X[:, :3])
    assert not (out[0, 0] == X).all()


def test_importance_table_on_a_hand_made_example():
    classes = np.array(["a", "b"])
    y = np.array(["a", "a", "b", "b"], dtype=object)
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])  # all right
    wrong_b = proba.copy()
    wrong_b[2:] = [[0.6, 0.4], [0.6, 0.4]]  # permuting "loud" breaks class b
    permuted = np.stack([np.stack([proba, proba]), np.stack([wrong_b, proba])])  # (2 families, 2 repeats)
    families = {"quiet": np.array([0]), "loud": np.array([1, 2])}
    table = importance_table("m", y, proba, permuted, families, classes)
    assert list(table.columns) == list(IMPORTANCE_COLUMNS)
    got = table.set_index(["family", "class"])["importance_mean"]
    assert got[("quiet", ALL_CLASSES)] == 0.0
    assert got[("loud", ALL_CLASSES)] == pytest.approx(0.25)  # accuracy 1 -> 0.5 in one of 2 repeats
    assert got[("loud", "b")] == pytest.approx(0.5) and got[("loud", "a")] == 0.0
    assert table.loc[(table.family == "loud") & (table["class"] == "b"), "importance_std"].item() == 0.5
    assert set(table["metric"]) == {"accuracy", "recall"} and (table["n_repeats"] == 2).all()
    assert table.loc[table.family == "loud", "n_columns"].unique().tolist() == [2]


def test_importance_table_scores_clips_on_a_segment_table():
    classes = np.array(["a", "b"])
    clips = np.array(["c1", "c1", "c2", "c2"])
    y = np.array(["a", "a", "b", "b"], dtype=object)
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.4, 0.6]])  # window 2 wrong, clips right
    permuted = proba[None, None]
    table = importance_table("m", y, proba, permuted, {"f": np.array([0])}, classes, clips=clips)
    assert set(table["metric"]) == {"clip_accuracy", "clip_recall"}
    assert (table["importance_mean"] == 0).all()


def test_aggregate_clips_on_a_hand_made_example():
    """A clip's probabilities are the mean of its windows'; its label their argmax."""
    clips = np.array(["x.wav", "y.wav", "x.wav", "x.wav", "y.wav"])
    proba = np.array([[0.6, 0.4, 0.0], [0.1, 0.1, 0.8], [0.0, 0.9, 0.1], [0.0, 0.8, 0.2], [0.5, 0.4, 0.1]])
    ids, mean, first, counts = aggregate_clips(clips, proba)
    assert ids.tolist() == ["x.wav", "y.wav"] and first.tolist() == [0, 1] and counts.tolist() == [3, 2]
    np.testing.assert_allclose(mean, [[0.2, 0.7, 0.1], [0.3, 0.25, 0.45]])
    # x: one window says class 0, two say class 1 -> 1; y: windows disagree, the mean picks 2.
    assert np.argmax(mean, axis=1).tolist() == [1, 2]
    frame = pd.DataFrame(proba).groupby(clips).mean()
    np.testing.assert_allclose(frame.loc[ids].to_numpy(), mean)


# ------------------------------------------------------------- through train


def signal_and_noise_table(folder, n: int = 120, seed: int = 0):
    """The GTZAN preset's columns: the MFCCs carry the class, every other family is pure noise."""
    import synth

    rng = np.random.default_rng(seed)
    y = np.array(synth.CLASSES)[np.arange(n) % 3]
    values = rng.normal(size=(n, len(synth.FEATURES)))
    mfcc = [i for i, c in enumerate(synth.FEATURES) if c.startswith("mfcc")]
    centres = rng.normal(0, 1.5, (3, len(mfcc)))
    values[:, mfcc] += centres[np.arange(n) % 3]
    df = pd.DataFrame(values, columns=synth.FEATURES)
    df.insert(0, "path", [f"c{i}.wav" for i in range(n)])
    df.insert(1, "label", y)
    df.insert(2, "fold", pd.array(np.arange(n) // 3 % 4 + 1, dtype="Int64"))
    return synth.write(df, folder)


def test_importance_is_large_for_the_family_that_carries_the_label_and_about_zero_for_noise(tmp_path):
    import synth

    from classify.options import TrainOptions
    from classify.training import train

    table = signal_and_noise_table(tmp_path / "features")
    result = train(table, tmp_path / "run", TrainOptions(models="logreg,knn", jobs=1, quiet=True),
                   log=synth.quiet, warn=synth.quiet)
    written = pd.read_csv(tmp_path / "run" / "importance.csv")
    assert list(written.columns) == list(IMPORTANCE_COLUMNS)
    assert len(written) == 2 * 5 * (1 + 3)  # models x families x (all + classes)
    overall = written[written["class"] == ALL_CLASSES].set_index(["model", "family"])["importance_mean"]
    for model in ("logreg", "knn"):
        assert overall[(model, "mfcc_mean")] > 0.3, model
        for noise in ("chroma", "rms", "spectral_shape", "zcr"):
            assert abs(overall[(model, noise)]) < 0.05, (model, noise)
    per_class = written[(written["family"] == "mfcc_mean") & (written["class"] != ALL_CLASSES)]
    assert (per_class["importance_mean"] > 0.1).all()
    assert (tmp_path / "run" / "importance.png").is_file()
    assert "## Which features matter" in (tmp_path / "run" / "report.md").read_text()
    assert result.timings["importance_seconds"]["logreg"] >= 0


def test_no_importance_writes_none_and_removes_an_old_one(tmp_path, capsys):
    from classify import cli

    table = signal_and_noise_table(tmp_path / "features")
    run = ["train", str(table), "--out", str(tmp_path / "run"), "--models", "knn", "--jobs", "1",
           "--quiet"]
    assert cli.main(run) == 0
    assert (tmp_path / "run" / "importance.csv").is_file()  # the earlier run's
    assert cli.main([*run, "--no-importance"]) == 0
    assert not (tmp_path / "run" / "importance.csv").exists()
    assert not (tmp_path / "run" / "importance.png").exists()
    info = pd.read_json(tmp_path / "run" / "run.json", typ="series")
    assert info["importance"] is None and "importance_seconds" not in info["timings"]
