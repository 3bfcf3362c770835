"""Model bundles: round trips, no pickle, refusal of foreign code, bad bundles."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from classify.bundle import (
    BUNDLE_JSON,
    FORMAT_VERSION,
    PIPELINE_FILE,
    Bundle,
    load_bundle,
    save_bundle,
)
from classify.errors import BundleError, ClassifyError
from features.compute import feature_columns
from features.params import FeatureParams

CLASSES = ["dog_bark", "siren", "street_music"]
META = {"params": FeatureParams().to_dict(), "param_key": FeatureParams().key()}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def columns():
    return list(feature_columns(FeatureParams()))


@pytest.fixture(scope="module")
def data(columns):
    rng = np.random.default_rng(0)
    y = np.repeat(CLASSES, 20)
    shift = np.searchsorted(CLASSES, y)[:, None] * 0.7
    X = rng.normal(size=(len(y), len(columns))) + shift
    return X, y


@pytest.fixture(scope="module")
def logreg(data):
    X, y = data
    return Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)


def _save(directory, estimator, columns, *, model_name="logreg", features_meta=META):
    return save_bundle(directory, model_name=model_name, estimator=estimator,
                       class_names=[str(c) for c in estimator.classes_],
                       feature_columns=columns, features_meta=features_meta)


def _edit_meta(directory, **changes):
    path = Path(directory) / BUNDLE_JSON
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


@pytest.fixture
def saved(tmp_path, logreg, columns):
    return _save(tmp_path / "model", logreg, columns)


# ------------------------------------------------------------------ round trips


def test_sklearn_round_trip_gives_identical_probabilities(saved, logreg, data, columns):
    X, _ = data
    bundle = load_bundle(saved)
    assert isinstance(bundle, Bundle)
    np.testing.assert_array_equal(bundle.estimator.predict_proba(X), logreg.predict_proba(X))
    assert bundle.model_name == "logreg"
    assert bundle.class_names == CLASSES
    assert bundle.feature_columns == columns
    assert bundle.feature_params == FeatureParams()
    assert bundle.features_meta == META
    assert sorted(p.name for p in saved.iterdir()) == [BUNDLE_JSON, PIPELINE_FILE]
    meta = bundle.meta
    assert meta["format_version"] == 1 and FORMAT_VERSION == 2  # 2 only for window models
    assert {"sklearn", "keras", "tensorflow", "skops"} <= set(meta["versions"])
    assert {"format", "package_version", "created", "class_names"} <= set(meta)


# Smaller forests keep the test fast; the stored types are the same.
FAST = {"rf": {"rf__n_estimators": 10}, "hgb": {"hgb__max_iter": 10}}


@pytest.mark.parametrize(
    ("name", "class_weight"),
    [(name, weight) for name in ("logreg", "svm", "rf", "knn", "hgb")
     for weight in (None, "balanced") if not (name == "knn" and weight)],
)
def test_every_baseline_round_trips_through_the_allow_list(tmp_path, data, columns, name,
                                                          class_weight):
    from classify.models import make_pipeline

    X, y = data
    pipe = make_pipeline(name, seed=0, class_weight=class_weight)
    pipe.set_params(**FAST.get(name, {})).fit(X, y)
    bundle = load_bundle(_save(tmp_path / "model", pipe, columns, model_name=name))
    np.testing.assert_array_equal(bundle.estimator.predict_proba(X), pipe.predict_proba(X))


@pytest.mark.parametrize("algorithm", ["kd_tree", "ball_tree"])
def test_knn_tree_indexes_round_trip(tmp_path, data, columns, algorithm):
    from classify.models import make_pipeline

    X, y = data
    pipe = make_pipeline("knn").set_params(knn__algorithm=algorithm).fit(X, y)
    bundle = load_bundle(_save(tmp_path / "model", pipe, columns, model_name="knn"))
    np.testing.assert_array_equal(bundle.estimator.predict_proba(X), pipe.predict_proba(X))


def test_bundle_holds_no_pickle(saved):
    names = [p.name for p in saved.rglob("*")]
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".joblib"))]


def test_saving_replaces_an_old_bundle_and_leaves_no_temporary_folder(tmp_path, logreg, columns):
    target = tmp_path / "model"
    _save(target, logreg, columns, model_name="first")
    _save(target, logreg, columns, model_name="second")
    assert load_bundle(target).model_name == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask


def test_a_failed_save_keeps_the_old_bundle_whole(tmp_path, logreg, columns, monkeypatch):
    import classify.bundle

    target = tmp_path / "model"
    _save(target, logreg, columns, model_name="first")

    def disk_full(obj, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(classify.bundle.save.sio, "dump", disk_full)
    with pytest.raises(BundleError, match=f"cannot write the bundle {target}: .*No space left"):
        _save(target, logreg, columns, model_name="second")
    assert load_bundle(target).model_name == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["model"], "the staging folder is removed"


@pytest.mark.slow
def test_mlp_round_trip_gives_identical_probabilities(tmp_path, data, columns):
    from classify.models import make_pipeline

    X, y = data
    pipe = make_pipeline("mlp", seed=0, epochs=3).fit(X, y)
    directory = _save(tmp_path / "model", pipe, columns, model_name="mlp")
    assert sorted(p.name for p in directory.iterdir()) == [BUNDLE_JSON, "mlp.keras", "scaler.skops"]
    bundle = load_bundle(directory)
    np.testing.assert_allclose(bundle.estimator.predict_proba(X), pipe.predict_proba(X),
                               rtol=0, atol=1e-6)
    assert list(bundle.estimator.classes_) == CLASSES


def test_importing_bundle_and_loading_sklearn_bundle_does_not_import_tensorflow(saved):
    code = ("import sys; import classify.bundle as b, classify.predict; "
            f"b.load_bundle({str(saved)!r}); "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
            "sys.exit(f'imported {bad}' if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------ foreign code refused

_ran_foreign_code = []


class SneakyClassifier(ClassifierMixin, BaseEstimator):
    """Stands in for a type a malicious bundle could smuggle into a .skops file."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X):
        return np.full((len(X), len(self.classes_)), 1 / len(self.classes_))

    def __setstate__(self, state):
        _ran_foreign_code.append(True)
        self.__dict__.update(state)


def test_untrusted_type_in_skops_file_is_refused_before_loading(tmp_path, data, columns):
    X, y = data
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", SneakyClassifier())]).fit(X, y)
    directory = _save(tmp_path / "model", pipe, columns)
    with pytest.raises(BundleError, match=r"outside the allow-list: .*SneakyClassifier"):
        load_bundle(directory)
    assert not _ran_foreign_code


@pytest.mark.slow
def test_keras_lambda_layer_is_refused_by_safe_mode(tmp_path, data, columns):
    import hashlib

    import keras

    from classify.models import make_pipeline

    X, y = data
    pipe = make_pipeline("mlp", seed=0, epochs=1).fit(X, y)
    directory = _save(tmp_path / "model", pipe, columns, model_name="mlp")
    sneaky = keras.Sequential([keras.Input((len(columns),)),
                               keras.layers.Lambda(lambda t: t[:, :3] * 0)])
    sneaky.save(str(directory / "mlp.keras"))
    meta = json.loads((directory / BUNDLE_JSON).read_text())
    files = dict(meta["files"])
    files["mlp.keras"] = hashlib.sha256((directory / "mlp.keras").read_bytes()).hexdigest()
    _edit_meta(directory, files=files)
    with pytest.raises(BundleError, match=r"mlp\.keras names class\(es\) Lambda"):
        load_bundle(directory)


def _rewrite_archive(path, edit) -> None:
    """Rewrite a .keras archive: ``edit(config)`` changes config.json in place; other files copied."""
    import zipfile

    with zipfile.ZipFile(path) as old:
        files = {name: old.read(name) for name in old.namelist()}
    config = json.loads(files["config.json"])
    extra = edit(config) or {}
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as new:
        for name, data in {**files, **extra}.items():
            new.writestr(name, data)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_a_crafted_keras_archive_is_refused_before_keras_reads_it(tmp_path, data, columns, kind,
                                                                  monkeypatch):
    """A foreign class in config.json is named and refused without any deserialisation."""
    import keras

    from classify.bundle import CNN_FILE, load_cnn, save_cnn
    from classify.cnn import KerasCNNClassifier
    from classify.models import make_pipeline
    from features.params import PatchParams

    if kind == "mlp":
        X, y = data
        directory = _save(tmp_path / "model", make_pipeline("mlp", seed=0, epochs=1).fit(X, y),
                          columns, model_name="mlp")
        path, load = directory / "mlp.keras", lambda: load_bundle(directory)
    else:
        params = PatchParams(duration=0.3, sr=8000, n_mels=8, n_fft=256, hop_length=128)
        rng = np.random.default_rng(0)
        X = rng.normal(-40, 5, (20, *params.shape)).astype(np.float32)
        clf = KerasCNNClassifier(filters=(2,), dense_units=4, epochs=1).fit(X, ["a", "b"] * 10)
        save_cnn(clf, tmp_path / "model", patch_params=params)
        path, load = tmp_path / "model" / CNN_FILE, lambda: load_cnn(tmp_path / "model")

    def add_layer(config):
        layers = config["config"]["layers"]
        layers.insert(1, {"module": "evil.layers", "class_name": "Backdoor", "config": {},
                          "registered_name": "evil>Backdoor"})

    def refresh_checksum():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if kind == "mlp":
            meta = json.loads((path.parent / BUNDLE_JSON).read_text())
            _edit_meta(path.parent, files={**meta["files"], "mlp.keras": digest})
        else:
            cnn_json = path.parent / "cnn.json"
            meta = json.loads(cnn_json.read_text())
            meta["sha256"][CNN_FILE] = digest
            cnn_json.write_text(json.dumps(meta))

    def never(*args, **kwargs):
        raise AssertionError("Keras was asked to deserialise a refused archive")

    monkeypatch.setattr(keras.saving, "load_model", never)
    _rewrite_archive(path, add_layer)
    refresh_checksum()
    with pytest.raises(BundleError, match=r"names class\(es\) Backdoor \(evil.layers\)"):
        load()
    # An archive carrying another file (code in an assets folder) is refused too.
    _rewrite_archive(path, lambda config: (config["config"]["layers"].pop(1),
                                           {"assets/run.py": b"import os"})[1])
    refresh_checksum()
    with pytest.raises(BundleError, match=r"holds file\(s\) \['assets/run.py'\]"):
        load()


# ---------------------------------------------------------------- bad bundles


def test_bundle_error_is_a_classify_error_and_value_error():
    assert issubclass(BundleError, ClassifyError)
    assert issubclass(BundleError, ValueError)


def test_missing_directory(tmp_path):
    with pytest.raises(BundleError, match=r"nope does not exist.*--model"):
        load_bundle(tmp_path / "nope")


def test_missing_bundle_json(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(BundleError, match="not a model bundle: bundle.json is missing"):
        load_bundle(tmp_path / "model")


def test_newer_format_version_asks_for_an_upgrade(saved):
    _edit_meta(saved, format_version=FORMAT_VERSION + 1)
    with pytest.raises(BundleError, match=rf"bundle format {FORMAT_VERSION + 1} was written by a newer "
                                          r"version.*upgrade the package"):
        load_bundle(saved)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"format": "something-else"}, "unknown format 'something-else'"),
        ({"format_version": "1"}, "unknown format_version '1'"),
        ({"format_version": 0}, "unknown format_version 0"),
        ({"kind": "torch"}, "unknown model kind 'torch'"),
        ({"class_names": None}, "'class_names' is missing"),
        ({"features_meta": {"params": {"preset": "mel"}}}, "invalid extraction parameters"),
    ],
)
def test_malformed_bundle_json(saved, changes, match):
    _edit_meta(saved, **changes)
    with pytest.raises(BundleError, match=match):
        load_bundle(saved)


def test_unparseable_bundle_json(saved):
    (saved / BUNDLE_JSON).write_text("{not json")
    with pytest.raises(BundleError, match="cannot read .*bundle.json"):
        load_bundle(saved)


def test_missing_model_file(saved):
    (saved / PIPELINE_FILE).unlink()
    with pytest.raises(BundleError, match="incomplete: pipeline.skops is missing"):
        load_bundle(saved)


def test_modified_model_file(saved):
    with open(saved / PIPELINE_FILE, "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="does not match its checksum"):
        load_bundle(saved)


def test_feature_columns_must_match_the_extraction_parameters(saved, columns):
    _edit_meta(saved, feature_columns=[columns[1], columns[0], *columns[2:]])
    with pytest.raises(BundleError, match="feature columns do not match"):
        load_bundle(saved)
    gtzan = {"params": FeatureParams(preset="gtzan").to_dict()}
    _edit_meta(saved, feature_columns=columns, features_meta=gtzan)
    with pytest.raises(BundleError, match=r"preset gtzan"):
        load_bundle(saved)


def test_library_version_drift_warns(saved):
    meta = json.loads((saved / BUNDLE_JSON).read_text())
    _edit_meta(saved, versions={**meta["versions"], "sklearn": "0.1.0"})
    with pytest.warns(UserWarning, match="scikit-learn 0.1.0"):
        load_bundle(saved)


# ------------------------------------------------------------------ bad saves


def test_save_refuses_inconsistent_arguments(tmp_path, logreg, columns):
    target = tmp_path / "model"
    kwargs = {"model_name": "logreg", "estimator": logreg, "class_names": CLASSES,
              "feature_columns": columns, "features_meta": META}
    with pytest.raises(BundleError, match="do not match the estimator's classes_"):
        save_bundle(target, **{**kwargs, "class_names": CLASSES[::-1]})
    n = len(columns)
    with pytest.raises(BundleError, match=f"fitted on {n} features but feature_columns has {n - 1}"):
        save_bundle(target, **{**kwargs, "feature_columns": columns[:-1]})
    with pytest.raises(BundleError, match="features_meta must be the features.json dict"):
        save_bundle(target, **{**kwargs, "features_meta": {}})
    gtzan = {"params": FeatureParams(preset="gtzan").to_dict()}
    with pytest.raises(BundleError, match="feature columns do not match"):
        save_bundle(target, **{**kwargs, "features_meta": gtzan})
    assert not target.exists()


def test_save_refuses_to_replace_a_folder_that_is_not_a_bundle(tmp_path, logreg, columns):
    target = tmp_path / "results"
    target.mkdir()
    (target / "precious.csv").write_text("keep me")
    with pytest.raises(BundleError, match="is not a model bundle.*refusing to replace"):
        _save(target, logreg, columns)
    assert (target / "precious.csv").read_text() == "keep me"


def test_a_known_model_name_must_name_its_kind_of_estimator(tmp_path, logreg, columns):
    # The registry says "mlp" is saved as a Keras MLP: a scikit-learn pipeline under that
    # name would load as something else than the run says it trained.
    with pytest.raises(BundleError, match="'mlp' is saved as a keras-mlp bundle"):
        _save(tmp_path / "model", logreg, columns, model_name="mlp")
    assert not (tmp_path / "model").exists()
    # A name of the user's own is saved by what the estimator is.
    assert (_save(tmp_path / "mine", logreg, columns, model_name="my_model") / "bundle.json").is_file()
