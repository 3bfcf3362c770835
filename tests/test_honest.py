"""Honest numbers: choices never see a test part, no label in disguise, no collapsed fit is kept.

- holdout: every model is scored on the validation part too; the leaderboard
  ranks by it and the saved model is the validation winner, even when
  another model wins on test;
- ``--select nested``: the choice of model is made inside each training part,
  and its inner fits never see the outer test rows;
- a feature column that is the label in disguise (ESC-50's ``target``, a
  class id under another name) is left out; a merely predictive one stays;
- a Keras fit that ends at chance is restarted and recorded, and a final
  refit at chance is never saved;
- predict computes what training saw, from the audio.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import synth

from classify import final, keras_base, options, validation
from classify.bundle import load_bundle
from classify.mlp import KerasMLPClassifier
from classify.options import TrainOptions
from classify.predict import predict_files
from classify.rundir import NESTED
from classify.tables import load_table
from classify.training import train
from features import extract as X
from features.table import write_csv, write_table

QUIET = {"log": synth.quiet, "warn": synth.quiet}


# --------------------------------------------------------------------- holdout


def _two_regions(folder: Path) -> Path:
    """A table where knn wins on the validation part and logreg on the test part.

    Region A (every test row): the label is the sign of ``a``, and 20 noise
    columns make neighbours meaningless there, which a linear model ignores.
    Region B (every validation row): the label is the XOR of the signs of
    ``a`` and ``b``, noise-free: neighbours get it, a linear model cannot.
    """
    rng = np.random.default_rng(0)
    rows = []
    for part, region, n in (("train", "A", 160), ("train", "B", 160), ("validation", "B", 80),
                             ("test", "A", 80)):
        a, b = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
        if region == "A":
            label = np.where(a > 0, "up", "down")
            noise = rng.normal(0, 3, (n, 20))
        else:
            label = np.where((a > 0) ^ (b > 0), "up", "down")
            noise = np.zeros((n, 20))
        for i in range(n):
            rows.append({"path": f"{part}{region}{i}.wav", "label": label[i], "split": part,
                         "a": a[i] * 3, "b": b[i] * 3, "region": 0.0 if region == "A" else 1.0,
                         **{f"n{k}": noise[i, k] for k in range(20)}})
    df = pd.DataFrame(rows)
    write_table(df, folder, ["parquet"])
    return folder / "features.parquet"


def test_holdout_selects_on_validation_never_on_test(tmp_path):
    table = _two_regions(tmp_path / "t")
    result = train(table, tmp_path / "run", TrainOptions(models="logreg,knn", jobs=1, quiet=True),
                   **QUIET)
    board = result.leaderboard.set_index("model")
    assert result.protocol.name == "holdout"
    assert board.loc["logreg", "accuracy_mean"] > board.loc["knn", "accuracy_mean"], \
        "the data makes logreg the test winner"
    assert board.loc["knn", "validation_accuracy"] > board.loc["logreg", "validation_accuracy"]
    assert list(result.leaderboard["model"]) == ["knn", "logreg"], "ranked by validation"
    assert result.final_model == "knn", "the saved model is the validation winner"
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "validation accuracy" in info["selection"]["rule"]
    assert info["selection"]["honest_model"] == "knn"
    assert "test accuracy of knn" in info["selection"]["honest"]
    folds = pd.read_csv(tmp_path / "run" / "folds.csv")
    assert {"validation_accuracy", "accuracy"} <= set(folds.columns) and len(folds) == 2
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## The number to quote" in report and "test accuracy of knn" in report


# ---------------------------------------------------------------------- nested


def test_nested_selection_chooses_inside_each_training_part(tmp_path, monkeypatch):
    seen = []
    real = validation.fit_split

    def spy(template, X, y, classes, task, **kwargs):
        seen.append((task.name, np.asarray(task.train), np.asarray(task.test)))
        return real(template, X, y, classes, task, **kwargs)

    monkeypatch.setattr(validation, "fit_split", spy)
    table = synth.write(synth.clips_frame(), tmp_path / "features")
    options = TrainOptions(models="logreg,knn", select="nested", jobs=1, quiet=True,
                           importance=False)
    result = train(table, tmp_path / "run", options, **QUIET)
    assert result.protocol.name == "folds"
    splits = {s.name: s for s in result.protocol.splits}
    inner = [(name, train_rows, test_rows) for name, train_rows, test_rows in seen if " inner " in name]
    assert len(inner) == 2 * len(splits) * 2, "two inner splits per outer split and model"
    for name, train_rows, test_rows in inner:
        outer = splits[name.split(" inner ")[0]]
        assert not set(train_rows) & set(outer.test) and not set(test_rows) & set(outer.test)
        assert set(train_rows) | set(test_rows) <= set(outer.train)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    chosen = info["selection"]["chosen"]
    assert set(chosen) == set(splits) and set(chosen.values()) <= {"logreg", "knn"}
    folds = result.folds.set_index(["model", "split"])
    for split_name, model in chosen.items():
        assert folds.loc[(NESTED, split_name), "accuracy"] == folds.loc[(model, split_name), "accuracy"]
    board = result.leaderboard
    assert NESTED in set(board["model"]) and result.final_model != NESTED
    assert info["selection"]["honest_model"] == NESTED and info["best_model"] != NESTED
    assert "the nested row" in (tmp_path / "run" / "report.md").read_text()


# ---------------------------------------------------------- label in disguise


def test_the_label_in_disguise_is_never_a_feature(tmp_path, capsys):
    from classify import cli

    rng = np.random.default_rng(1)
    classes = ["dog", "rain", "sea", "wind"]
    y = np.repeat(classes, 20)
    code = np.searchsorted(classes, y)
    df = pd.DataFrame({
        "filename": [f"{i}.wav" for i in range(len(y))], "label": y,
        "fold": np.tile(np.arange(1, 6), 16),
        "target": code,                                  # ESC-50's class index
        "kind": code * 7 + 100,                          # a classID under a name of its own
        "loudness": code + rng.normal(0, 0.6, len(y)),   # predictive, not one-to-one: stays
        "pitch": rng.normal(0, 1, len(y)),
    })
    write_csv(df, tmp_path / "esc.csv")
    args = ["train", str(tmp_path / "esc.csv"), "--out", str(tmp_path / "run"), "--models",
            "logreg", "--jobs", "1", "--quiet"]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "column 'target' is not used as a feature: it is named like an id of the class" in err
    assert "column 'kind' is not used as a feature: its values map one-to-one" in err
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["feature_columns"] == ["loudness", "pitch"]
    assert set(info["excluded_columns"]) == {"target", "kind"}
    assert pd.read_csv(tmp_path / "run" / "leaderboard.csv")["accuracy_mean"].iloc[0] < 1.0
    # --keep-column overrides it, for a column that really is a feature.
    assert cli.main([*args[:3], str(tmp_path / "kept"), *args[4:], "--keep-column", "kind"]) == 0
    kept = json.loads((tmp_path / "kept" / "run.json").read_text())
    assert "kind" in kept["feature_columns"] and "target" not in kept["feature_columns"]


def test_our_own_feature_table_loses_no_column(demo_root, tmp_path):
    from classify.leaks import label_leaks

    res = X.extract_dataset(demo_root, tmp_path / "features", jobs=1, quiet=True)
    assert label_leaks(load_table(res.tables["parquet"])) == {}


# ----------------------------------------------------------- collapsed fits


def _separable(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (np.r_[rng.normal(0, 1, (n, 4)), rng.normal(3, 1, (n, 4))],
            np.array(["a"] * n + ["b"] * n))


def test_a_fit_that_diverges_is_caught_and_restarted_with_a_sane_rate():
    X_, y = _separable()
    clf = KerasMLPClassifier(hidden_layers=(32,), epochs=40, batch_size=16,
                             learning_rate=1e30).fit(X_, y)
    first, *rest = clf.attempts_
    assert first["collapsed"] and first["balanced_accuracy"] == 0.5
    assert rest and rest[0]["learning_rate"] == keras_base.SAFE_RATE
    assert rest[0]["seed"] != first["seed"]
    assert not clf.collapsed_ and (clf.predict(X_) == y).mean() > 0.9


@pytest.mark.slow
def test_a_cnn_fit_that_diverges_is_caught_and_restarted():
    from classify.cnn import KerasCNNClassifier

    rng = np.random.default_rng(0)
    y = np.repeat(["low", "high"], 30)
    patches = rng.normal(-50, 4, (60, 16, 20)).astype(np.float32)
    patches[y == "high", 8:] += 25
    clf = KerasCNNClassifier(filters=(4,), dense_units=8, epochs=15, batch_size=16,
                             learning_rate=1e30).fit(patches, y)
    assert clf.attempts_[0]["collapsed"], "a learning rate of 1e30 diverges"
    assert len(clf.attempts_) >= 2 and not clf.collapsed_
    assert (clf.predict(patches) == y).mean() > 0.7, "well above chance (0.5)"


def test_restarts_are_recorded_and_a_final_fit_at_chance_is_never_saved(tmp_path, monkeypatch,
                                                                         capsys):
    from classify import cli

    real = options.make_pipeline

    def diverging_mlp(name, **kwargs):
        pipe = real(name, **kwargs)
        return pipe.set_params(mlp__learning_rate=1e30) if name == "mlp" else pipe

    monkeypatch.setattr(options, "make_pipeline", diverging_mlp)
    fit_pipeline = final.fit_pipeline

    def final_at_chance(pipe, X_, y, fit_params, *, where, validation=None):
        if where.startswith("all rows") and pipe.steps[-1][0] == "mlp":
            monkeypatch.setattr(keras_base, "at_chance", lambda score, n: True)
        return fit_pipeline(pipe, X_, y, fit_params, where=where, validation=validation)

    monkeypatch.setattr(final, "fit_pipeline", final_at_chance)
    table = synth.write(synth.clips_frame(), tmp_path / "features")
    assert cli.main(["train", str(table), "--models", "mlp,knn", "--final", "mlp", "--epochs", "10",
                     "--jobs", "1", "--quiet", "--no-importance"]) == 0
    err = capsys.readouterr().err
    assert "stayed at chance" in err and "restarted" in err
    folds = pd.read_csv(tmp_path / "run" / "folds.csv")
    assert (folds.loc[folds["model"] == "mlp", "restarts"] >= 1).all()
    assert (folds.loc[folds["model"] == "knn", "restarts"] == 0).all()
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert set(info["restarts"]["mlp"]) >= {"fold1", "final"}
    assert info["restarts"]["mlp"]["fold1"][0]["collapsed"] is True
    # --final named the model: it is not replaced, and not saved either.
    assert info["final_fallback"]["model"] == "mlp" and info["final_fallback"]["saved_instead"] is None
    assert not (tmp_path / "run" / "model").exists()
    assert "no bundle of mlp: its refit on all rows stayed at chance" in err


# ------------------------------------------------------------------- predict


def test_predict_computes_what_training_saw(demo_root, tmp_path):
    res = X.extract_dataset(demo_root, tmp_path / "features", jobs=1, quiet=True)
    result = train(res.tables["parquet"], tmp_path / "run",
                   TrainOptions(models="logreg", cv="stratified", k=2, jobs=1, quiet=True,
                                importance=False), **QUIET)
    bundle = load_bundle(tmp_path / "run" / "model")
    table = result.table
    files = [str(Path(demo_root) / p) for p in table.df["path"]]
    predictions, errors = predict_files(bundle, files, jobs=1)
    assert not errors and predictions["path"].tolist() == files
    from features.extract import extract_files

    features, _ = extract_files(files, bundle.feature_params, jobs=1)
    np.testing.assert_allclose(features[list(table.feature_columns)].to_numpy(), table.X,
                               rtol=1e-6, atol=1e-9)
    expected = bundle.estimator.predict_proba(table.X)
    got = predictions[[f"prob_{c}" for c in bundle.class_names]].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert (predictions["predicted"].to_numpy() == bundle.estimator.predict(table.X)).all()
