"""``classify train --tune``: the search sees training rows only, by the outer protocol's rules."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import synth
from sklearn.model_selection import ParameterGrid

from classify import cli, final, registry, tuning, validation
from classify.bundle import load_bundle
from classify.evaluation import FOLDS_COLUMNS
from classify.models import make_pipeline
from classify.options import TrainOptions
from classify.registry import MODEL_NAMES
from classify.training import train


@pytest.fixture
def searches(monkeypatch):
    """Every search run in this process: (rows of X it was given as table rows, its inner splits)."""
    calls = []

    class Spy(tuning.HalvingGridSearchCV):
        def fit(self, X, y=None, **params):
            calls.append((np.array(X, copy=True), list(self.cv)))
            return super().fit(X, y, **params)

    monkeypatch.setattr(tuning, "HalvingGridSearchCV", Spy)
    return calls


def rows_of(X: np.ndarray, table) -> np.ndarray:
    where = {row.tobytes(): i for i, row in enumerate(table.X)}
    return np.array([where[row.tobytes()] for row in X])


def test_every_space_holds_the_default_and_is_small():
    for name in MODEL_NAMES:
        space = registry.search_space(name, n_features=26, mlp_layers=(100, 200, 100))
        grid = list(ParameterGrid(space))
        assert 3 <= len(grid) <= 9, name
        defaults = make_pipeline(name, n_classes=3).get_params()
        if name == "svm":  # "scale" is 1 / n_features on standardised features
            defaults = {**defaults, "svm__estimator__gamma": 1 / 26}
        assert any(all(defaults[k] == v for k, v in candidate.items()) for candidate in grid), name


def test_the_search_never_sees_the_outer_test_rows(tmp_path, searches):
    table = synth.write(synth.clips_frame(), tmp_path / "features")
    options = TrainOptions(models="logreg,svm", tune=True, jobs=1, quiet=True, importance=False)
    result = train(table, tmp_path / "run", options, log=synth.quiet, warn=synth.quiet)
    t, splits = result.table, result.protocol.splits
    assert result.protocol.name == "folds"
    assert len(searches) == 2 * len(splits) + 1, "one per split and model, one for the final model"
    folds = t.folds.to_numpy()
    for k, (X, cv) in enumerate(searches):
        rows = rows_of(X, t)
        if k < 2 * len(splits):
            split = splits[k % len(splits)]
            assert sorted(rows) == sorted(split.train), split.name
            assert not set(rows) & set(split.test)
        else:
            assert sorted(rows) == list(range(t.n_rows)), "the final model is tuned on all rows"
        for inner_train, inner_test in cv:  # inner folds hold whole predefined folds
            assert not set(folds[rows[inner_train]]) & set(folds[rows[inner_test]])


def test_chosen_parameters_are_recorded_per_split_and_for_the_final_model(tmp_path, capsys):
    table = synth.write(synth.clips_frame(), tmp_path / "features")
    assert cli.main(["train", str(table), "--tune", "--models", "knn", "--jobs", "1", "--no-importance"]) == 0
    out = capsys.readouterr().out
    assert "leaderboard (folds, 4 split(s), tuned with --tune):" in out
    assert "final model knn: --tune chose {" in out and '"n_neighbors": ' in out
    folds = pd.read_csv(tmp_path / "run" / "folds.csv")
    assert list(folds.columns) == [*FOLDS_COLUMNS, "restarts", "params"]
    chosen = [json.loads(text) for text in folds["params"]]
    space = registry.search_space("knn", n_features=26, mlp_layers=(8,))
    assert all(set(c) == {"n_neighbors", "weights"} for c in chosen)
    assert all(c["n_neighbors"] in space["knn__n_neighbors"] for c in chosen)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["tuning"]["chosen"]["knn"] == dict(zip(folds["split"], chosen))
    assert info["tuning"]["spaces"]["knn"]["knn__n_neighbors"] == space["knn__n_neighbors"]
    final = info["tuning"]["final"]
    model = load_bundle(tmp_path / "run" / "model").estimator[-1]
    assert (model.n_neighbors, model.weights) == (final["n_neighbors"], final["weights"])
    assert "Tuned with `--tune`" in (tmp_path / "run" / "report.md").read_text()


def test_holdout_fits_on_train_chooses_on_validation_and_scores_on_test(tmp_path, searches, monkeypatch):
    fits = []
    real = validation.fit_pipeline

    def spy(pipe, X, y, fit_params, *, where, validation=None):
        fits.append((np.array(X, copy=True), None if validation is None else np.array(validation[0])))
        return real(pipe, X, y, fit_params, where=where, validation=validation)

    monkeypatch.setattr(validation, "fit_pipeline", spy)
    monkeypatch.setattr(final, "fit_pipeline", spy)     # the final fit on all rows
    df = synth.clips_frame(n_groups=36, parts=True)
    table = synth.write(df, tmp_path / "features")
    options = TrainOptions(models="hgb", tune=True, jobs=1, quiet=True, importance=False)
    result = train(table, tmp_path / "run", options, log=synth.quiet, warn=synth.quiet)
    t = result.table
    assert result.protocol.name == "holdout", "auto picks the dataset's parts"
    parts = df["split"].to_numpy()
    train_rows, val_rows, test_rows = (np.flatnonzero(parts == p) for p in ("train", "validation", "test"))
    # Select: the split's search sees train + validation and scores on validation only.
    X, cv = searches[0]
    rows = rows_of(X, t)
    assert sorted(rows) == sorted(np.r_[train_rows, val_rows])
    (inner_train, inner_test), = cv
    assert sorted(rows[inner_train]) == list(train_rows) and sorted(rows[inner_test]) == list(val_rows)
    # Fit: on the train rows, early-stopping on the validation rows.
    X, X_val = fits[0]
    assert sorted(rows_of(X, t)) == list(train_rows) and sorted(rows_of(X_val, t)) == list(val_rows)
    # Report: on the test rows only, named as such everywhere.
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert sorted(preds["path"]) == sorted(df["path"].iloc[test_rows]) and (preds["split"] == "holdout").all()
    folds = pd.read_csv(tmp_path / "run" / "folds.csv")
    assert folds[["split", "n_train", "n_test"]].values.tolist() == [["holdout", len(train_rows), len(test_rows)]]
    assert (pd.read_csv(tmp_path / "run" / "leaderboard.csv")["protocol"] == "holdout").all()
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["protocol"]["name"] == "holdout"
    assert info["protocol"]["rows"] == {"train": len(train_rows), "validation": len(val_rows),
                                        "test": len(test_rows)}
    assert "Protocol: **holdout**" in (tmp_path / "run" / "report.md").read_text()
    # The final model: chosen on the validation rows, fitted on all.
    X, cv = searches[-1]
    rows = rows_of(X, t)
    (_, inner_test), = cv
    assert sorted(rows[inner_test]) == list(val_rows)
    assert sorted(rows_of(fits[-1][0], t)) == list(range(t.n_rows))


def test_first_halving_step_keeps_enough_rows_of_the_rarest_class():
    y = np.array(["a"] * 950 + ["b"] * 50)
    cv = [(np.arange(500), np.arange(500, 1000))] * 2
    # 6 rows of "b" in an inner training half need 240 rows: 9 candidates get 2 steps, not 3.
    assert tuning.first_resources(y, cv, 9) == 333
    assert tuning.first_resources(y, cv, 9, least=2000) == 1000, "the MLP's floor: a plain grid"
    assert tuning.first_resources(np.array(["a", "b"] * 5000), cv, 9) == 10000 // 9


@pytest.mark.parametrize("name", ["rf", "svm"])
def test_the_chosen_parameters_are_those_of_the_space_only(name):
    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b", "c"], 30)
    X = rng.normal(size=(90, 6)) + (y == "b")[:, None]
    template = make_pipeline(name, n_classes=3).set_params(**({"rf__n_estimators": 30} if name == "rf" else {}))
    space = registry.search_space(name, n_features=6, mlp_layers=(8,))
    cv = [(np.arange(45), np.arange(45, 90)), (np.arange(45, 90), np.arange(45))]
    chosen = tuning.choose_params(template, X, y, space=space, cv=cv, fit_params={}).params
    assert set(chosen) == set(space), "the halving resource (trees) is not a choice"
    template.set_params(**chosen)  # names the real, calibrated model's parameters


def test_candidates_that_fail_to_fit_are_counted_never_chosen(tmp_path, monkeypatch, capsys):
    real = registry.search_space

    def with_a_broken_candidate(name, **kwargs):
        if name == "logreg":  # C must be positive: this candidate's every fit raises
            return {"logreg__C": [1.0, -1.0]}
        return real(name, **kwargs)

    monkeypatch.setattr(registry, "search_space", with_a_broken_candidate)
    table = synth.write(synth.clips_frame(), tmp_path / "features")
    assert cli.main(["train", str(table), "--tune", "--models", "logreg", "--jobs", "1",
                     "--no-importance", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "logreg: --tune: 4 of 8 candidates failed to fit in 4 of 4 search(es)" in err
    assert "InvalidParameterError" in err or "C" in err
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    failed = info["tuning"]["failed_candidates"]["logreg"]
    assert failed == {"fold1": 1, "fold2": 1, "fold3": 1, "fold4": 1, "final": 1}
    chosen = pd.read_csv(tmp_path / "run" / "folds.csv")["params"].map(json.loads)
    assert all(c["C"] == 1.0 for c in chosen), "a failed candidate is never the choice"
