"""classify.models and classify.mlp: pipelines, and a Keras MLP that obeys sklearn's rules."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from classify.errors import UsageError
from classify.mlp import KerasMLPClassifier
from classify.models import (
    GroupCalibratedClassifierCV,
    GroupHistGradientBoostingClassifier,
    group_fit_params,
    make_pipeline,
    parse_layers,
    parse_models,
)
from classify.registry import MODEL_NAMES

REPO = Path(__file__).resolve().parents[1]
FAST_MLP = {"hidden_layers": (16, 8), "epochs": 6, "batch_size": 32, "patience": 3}


@pytest.fixture(autouse=True)
def _one_thread():
    # As in training: BLAS/OpenMP threads only spin on problems this small.
    with threadpool_limits(limits=1):
        yield


def blobs(n_per_class: int = 40, n_features: int = 10, seed: int = 0):
    """Three Gaussian classes with string labels, plus a group per 4 rows."""
    rng = np.random.default_rng(seed)
    labels = np.array(["car_horn", "dog_bark", "siren"])
    centres = rng.normal(0, 2.0, (3, n_features))
    y = np.repeat(labels, n_per_class).astype(object)
    X = centres[np.repeat(np.arange(3), n_per_class)] + rng.normal(0, 1.0, (len(y), n_features))
    X *= 10.0 ** rng.uniform(-2, 2, n_features)  # wildly different scales, like real features
    groups = np.array([f"rec{i // 4}" for i in range(len(y))])
    return X, y, groups


# ------------------------------------------------------------------ baselines


@pytest.mark.parametrize("name", [m for m in MODEL_NAMES if m != "mlp"])
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_baseline_pipelines_give_probabilities(name, class_weight):
    X, y, _ = blobs()
    pipe = make_pipeline(name, seed=0, n_classes=3, class_weight=class_weight)
    assert [step for step, _ in pipe.steps] == ["scaler", name]
    assert isinstance(pipe.steps[0][1], StandardScaler)
    pipe.fit(X[::2], y[::2])
    proba = pipe.predict_proba(X[1::2])
    assert proba.shape == (len(y) // 2, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert list(pipe.classes_) == ["car_horn", "dog_bark", "siren"]
    assert (pipe.predict(X[1::2]) == y[1::2]).mean() > 0.8


def test_baselines_are_seeded():
    X, y, _ = blobs()
    for name in ("rf", "hgb", "svm"):
        a = make_pipeline(name, seed=3).fit(X, y).predict_proba(X)
        b = make_pipeline(name, seed=3).fit(X, y).predict_proba(X)
        np.testing.assert_array_equal(a, b)


def test_option_parsing_and_bad_names():
    assert parse_models("mlp, logreg,mlp") == ["mlp", "logreg"]
    assert parse_layers("256,128,64") == (256, 128, 64)
    with pytest.raises(UsageError, match=r"unknown model\(s\) 'xgb'; choose from mlp,logreg,svm,rf,knn,hgb"):
        parse_models("rf,xgb")
    with pytest.raises(UsageError, match="no model given"):
        parse_models(" , ")
    for bad in ("", "100,abc", "100,0", "-5"):
        with pytest.raises(UsageError, match="--mlp-layers .* must be comma-separated positive integers"):
            parse_layers(bad)
    with pytest.raises(UsageError, match="unknown model 'tree'"):
        make_pipeline("tree")
    with pytest.raises(UsageError, match="--class-weight 'auto'"):
        make_pipeline("rf", class_weight="auto")
    with pytest.raises(UsageError, match="n_classes=1"):
        make_pipeline("rf", n_classes=1)


def test_mlp_pipeline_options_reach_the_estimator():
    pipe = make_pipeline("mlp", seed=7, mlp_layers=(256, 128, 64), class_weight="balanced", epochs=9)
    mlp = pipe.named_steps["mlp"]
    assert isinstance(mlp, KerasMLPClassifier)
    assert (mlp.hidden_layers, mlp.random_state, mlp.class_weight, mlp.epochs) == (
        (256, 128, 64), 7, "balanced", 9)
    assert make_pipeline("mlp").named_steps["mlp"].get_params()["hidden_layers"] == (100, 200, 100)


# ------------------------------------------------------------------ the MLP


def test_mlp_constructor_stores_parameters_only():
    clf = KerasMLPClassifier(hidden_layers=(5,), dropout=0.1, epochs=3)
    params = clf.get_params()
    assert params == {
        "hidden_layers": (5,), "dropout": 0.1, "epochs": 3, "batch_size": 64,
        "learning_rate": 1e-3, "patience": 15, "min_epochs": 0, "restarts": 2,
        "validation_fraction": 0.15, "class_weight": None, "random_state": 0, "verbose": 0,
    }
    assert not hasattr(clf, "model_") and not hasattr(clf, "classes_")
    twin = clone(clf)
    assert twin is not clf and twin.get_params() == params
    assert clone(clf.set_params(epochs=4)).epochs == 4


def test_mlp_fit_predict_follow_sklearn_conventions():
    X, y, groups = blobs()
    clf = KerasMLPClassifier(**{**FAST_MLP, "epochs": 15, "learning_rate": 0.01, "dropout": 0.1})
    assert clf.fit(X / X.std(axis=0), y, groups=groups) is clf
    assert list(clf.classes_) == ["car_horn", "dog_bark", "siren"]
    assert clf.n_features_in_ == X.shape[1]
    assert 1 <= clf.n_epochs_ <= 15 and 1 <= clf.best_epoch_ <= clf.n_epochs_
    assert set(clf.history_) >= {"loss", "val_loss"}
    proba = clf.predict_proba(X / X.std(axis=0))
    assert proba.shape == (len(y), 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    pred = clf.predict(X / X.std(axis=0))
    assert set(pred) <= set(clf.classes_)
    assert (pred == y).mean() > 0.8
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])


def test_mlp_in_a_pipeline_with_groups_is_deterministic():
    X, y, groups = blobs()
    pipe = make_pipeline("mlp", seed=1, mlp_layers=(16, 8), epochs=5)
    a = clone(pipe).fit(X, y, mlp__groups=groups).predict_proba(X)
    b = clone(pipe).fit(X, y, mlp__groups=groups).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    c = make_pipeline("mlp", seed=2, mlp_layers=(16, 8), epochs=5).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, c)


def test_mlp_validation_part_keeps_groups_whole():
    _, y, groups = blobs(n_per_class=60)
    clf = KerasMLPClassifier(validation_fraction=0.2)
    y_idx = np.unique(y, return_inverse=True)[1]
    train, val = clf._validation_split(y_idx, groups)
    assert len(val) > 0 and not set(groups[train]) & set(groups[val])
    train, val = clf._validation_split(y_idx, None)  # stratified without groups
    assert sorted(np.r_[train, val]) == list(range(len(y)))
    assert set(y[val]) == set(y)
    assert KerasMLPClassifier(validation_fraction=0.0)._validation_split(y_idx, groups)[1] is None


def test_mlp_balanced_class_weight_and_bad_parameters():
    X, y, _ = blobs()
    keep = np.r_[0:40, 40:50, 80:120]  # dog_bark is rare
    clf = KerasMLPClassifier(**FAST_MLP, class_weight="balanced").fit(X[keep], y[keep])
    weights = clf._loss_weights(np.unique(y[keep], return_inverse=True)[1])
    assert weights[1] > weights[0] and weights[1] > weights[2]
    for bad, pattern in [({"hidden_layers": "100"}, "hidden_layers"), ({"dropout": 1.0}, "dropout"),
                         ({"epochs": 0}, "epochs"), ({"class_weight": "auto"}, "class_weight")]:
        with pytest.raises(ValueError, match=pattern):
            KerasMLPClassifier(**bad).fit(X, y)
    with pytest.raises(ValueError, match="at least two classes"):
        KerasMLPClassifier(**FAST_MLP).fit(X[:10], y[:10])


def test_mlp_round_trips_through_a_keras_file(tmp_path):
    import keras

    X, y, _ = blobs()
    clf = KerasMLPClassifier(**FAST_MLP, dropout=0.25).fit(X, y)
    path = tmp_path / "mlp.keras"
    clf.model_.save(path)
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    loaded = KerasMLPClassifier.from_keras_model(model, list(clf.classes_))
    assert loaded.hidden_layers == (16, 8) and loaded.dropout == 0.25
    assert loaded.n_features_in_ == X.shape[1]
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    assert list(loaded.predict(X)) == list(clf.predict(X))
    pipe = Pipeline([("scaler", StandardScaler().fit(X)), ("mlp", loaded)])
    assert pipe.predict_proba(X).shape == (len(y), 3)
    with pytest.raises(ValueError, match="4 classes were given"):
        KerasMLPClassifier.from_keras_model(model, ["a", "b", "c", "d"])


def test_importing_classify_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "import classify, classify.cli, classify.training, classify.models, classify.mlp\n"
        "import classify.splits, classify.tables, classify.evaluation\n"
        "from classify import KerasMLPClassifier, make_pipeline, load_table\n"
        "make_pipeline('mlp')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------- inner splits keep groups


class _RecordingSVC(SVC):
    """An SVC that remembers which rows (ids in column 0) each of its fits saw."""

    fits: ClassVar[list[np.ndarray]] = []

    def fit(self, X, y, sample_weight=None):
        _RecordingSVC.fits.append(X[:, 0].astype(int))
        return super().fit(X[:, 1:], y, sample_weight=sample_weight)

    def decision_function(self, X):
        return super().decision_function(X[:, 1:])


def _grouped_blobs():
    X, y, groups = blobs(n_per_class=40)
    return np.c_[np.arange(len(y)), X], y, groups


def test_svm_calibration_folds_never_put_a_group_on_both_sides():
    X, y, groups = _grouped_blobs()
    _RecordingSVC.fits = []
    clf = GroupCalibratedClassifierCV(_RecordingSVC(), method="temperature", cv=3, ensemble=False)
    clf.fit(X, y, groups=groups)
    *folds, final = _RecordingSVC.fits
    assert len(folds) == 3 and len(final) == len(y)
    for train in folds:
        test = np.setdiff1d(np.arange(len(y)), train)
        assert len(test) and not set(groups[train]) & set(groups[test])
    assert clf.predict_proba(X).shape == (len(y), 3)
    assert not hasattr(clf, "folds_") and clf.cv == 3, "the folds are not stored in the model"


def test_hgb_early_stopping_never_puts_a_group_on_both_sides(monkeypatch):
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y, groups = _grouped_blobs()
    seen = {}
    real_fit = HistGradientBoostingClassifier.fit

    def spy(self, X, y, sample_weight=None, **kwargs):
        seen.update(train=X[:, 0].astype(int), val=kwargs["X_val"][:, 0].astype(int))
        return real_fit(self, X, y, sample_weight=sample_weight, **kwargs)

    monkeypatch.setattr(HistGradientBoostingClassifier, "fit", spy)
    clf = GroupHistGradientBoostingClassifier(early_stopping=True, random_state=0, max_iter=20)
    clf.fit(X, y, groups=groups)
    assert len(seen["val"]) and not set(groups[seen["train"]]) & set(groups[seen["val"]])
    assert sorted(np.r_[seen["train"], seen["val"]]) == list(range(len(y)))


def test_group_fit_params_reach_the_models_with_inner_splits():
    groups = np.array(["r1", "r2"])
    routed = {name: list(group_fit_params(make_pipeline(name), groups)) for name in MODEL_NAMES}
    assert routed == {"mlp": ["mlp__groups"], "logreg": [], "svm": ["svm__groups"], "rf": [], "knn": [],
                      "hgb": ["hgb__groups"]}
    assert group_fit_params(make_pipeline("svm"), None) == {}


def test_hgb_says_when_it_cannot_hold_out_whole_groups():
    X, y, _ = blobs(n_per_class=20)
    groups = y.copy()  # one recording per class: holding one out would lose its class
    clf = GroupHistGradientBoostingClassifier(early_stopping=True, random_state=0, max_iter=10)
    with pytest.warns(UserWarning, match="early stopping could not hold out whole recording groups"):
        clf.fit(X, y, groups=groups)
    assert clf.predict_proba(X).shape == (len(y), 3)


def test_a_given_validation_part_drives_early_stopping_and_every_row_is_trained_on(monkeypatch):
    """The holdout protocol's validation rows: HGB and the MLP stop on them, never train on them."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y, groups = blobs()
    X_val, y_val = X[::4], y[::4]
    seen = {}
    real_fit = HistGradientBoostingClassifier.fit

    def spy(self, X, y, sample_weight=None, **kwargs):
        seen.update(n_train=len(X), n_val=len(kwargs["X_val"]))
        return real_fit(self, X, y, sample_weight=sample_weight, **kwargs)

    monkeypatch.setattr(HistGradientBoostingClassifier, "fit", spy)
    GroupHistGradientBoostingClassifier(early_stopping=True, max_iter=10).fit(
        X, y, groups=groups, X_val=X_val, y_val=np.r_[y_val[:-1], ["unseen"]])
    assert seen == {"n_train": len(y), "n_val": len(y_val) - 1}, "unknown classes leave the validation part"

    mlp = KerasMLPClassifier(**{**FAST_MLP, "batch_size": 16}, random_state=0)
    mlp.fit(X, y, groups=groups, X_val=X_val, y_val=y_val)
    assert len(mlp.history_["val_loss"]) == mlp.n_epochs_
    # 120 rows make 8 batches an epoch; an inner 15% validation split would leave 7.
    assert mlp.model_.optimizer.iterations.numpy() == 8 * mlp.n_epochs_


def test_a_visible_gpu_is_used_and_takes_memory_as_it_needs_it(monkeypatch):
    # No GPU here: one is faked. Several training workers may share a GPU,
    # so each must not claim all its memory at start (TensorFlow's default).
    import tensorflow as tf

    from classify import keras_base

    gpus, grown = ["GPU:0", "GPU:1"], []
    monkeypatch.setattr(keras_base, "_tf_configured", False)
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth",
                        lambda device, enable: grown.append((device, enable)))
    keras_base.import_keras(threads=1)
    assert grown == [("GPU:0", True), ("GPU:1", True)]


def test_hgb_bins_wide_tables_coarser_and_the_options_pass_the_width():
    from classify.models import WIDE_COLUMNS, WIDE_HGB_BINS
    from classify.options import TrainOptions

    assert make_pipeline("hgb").steps[-1][1].max_bins == 255
    assert make_pipeline("hgb", n_features=114).steps[-1][1].max_bins == 255
    assert make_pipeline("hgb", n_features=WIDE_COLUMNS + 1).steps[-1][1].max_bins == WIDE_HGB_BINS == 63
    options = TrainOptions(models="hgb", jobs=1, quiet=True)
    assert options.pipeline("hgb", n_classes=3, n_features=2110).steps[-1][1].max_bins == 63
