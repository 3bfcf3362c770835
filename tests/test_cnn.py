"""classify.cnn: a Keras CNN on patches that obeys sklearn's rules, augments training clips only, saves safely."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from sklearn.base import clone
from threadpoolctl import threadpool_limits

import classify.cnn as cnn_module
from classify.augment import Augmentation
from classify.bundle import CNN_FILE, CNN_JSON, load_cnn, save_cnn
from classify.cnn import KerasCNNClassifier
from classify.errors import BundleError
from features.params import PatchParams

# Patches of 0.2 s at 8 kHz, 16 bands: shape (16, 13). Tiny, so a fit takes a second.
PARAMS = PatchParams(duration=0.2, sr=8000, n_mels=16, n_fft=256, hop_length=128)
FAST = {"filters": (4, 8), "dense_units": 8, "epochs": 2, "batch_size": 16, "patience": 2}


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def patches(n_per_class: int = 24, seed: int = 0):
    """Three classes loud in different bands, a group per 3 clips, every second clip stereo."""
    rng = np.random.default_rng(seed)
    labels = np.array(["car_horn", "dog_bark", "siren"])
    y = np.repeat(labels, n_per_class)
    X = rng.normal(-50, 4, (len(y), *PARAMS.shape)).astype(np.float32)
    for k in range(3):
        X[y == labels[k], 5 * k:5 * k + 4] += 30
    groups = np.arange(len(y)) // 3
    stereo_rows = np.full(len(y), -1)
    stereo_rows[::2] = np.arange(len(y[::2]))
    channels = np.stack([X[::2], X[::2] - 3], axis=1)
    return X, y, groups, stereo_rows, channels


def test_constructor_stores_parameters_only_and_clones():
    aug = Augmentation(copies=2)
    clf = KerasCNNClassifier(filters=(4,), dropout=0.1, augment=aug, epochs=3)
    params = clf.get_params()
    assert (params["filters"], params["dropout"], params["augment"], params["epochs"]) == ((4,), 0.1, aug, 3)
    assert not [k for k in vars(clf) if k.endswith("_")]
    copy = clone(clf)
    assert copy.get_params() == params and copy is not clf


def test_fit_predict_follow_sklearn_conventions():
    X, y, groups, _, _ = patches()
    clf = KerasCNNClassifier(**{**FAST, "epochs": 8, "learning_rate": 0.01})
    assert clf.fit(X, y, groups=groups) is clf
    assert clf.classes_.tolist() == ["car_horn", "dog_bark", "siren"]
    assert clf.input_shape_ == PARAMS.shape
    proba = clf.predict_proba(X)
    assert proba.shape == (len(y), 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert set(clf.predict(X)) <= set(clf.classes_)
    assert (clf.predict(X) == y).mean() > 0.6     # three clearly different classes
    assert 1 <= clf.n_epochs_ <= 8 and len(clf.history_["val_loss"]) == clf.n_epochs_
    assert clf.augmented_ == {}
    with pytest.raises(ValueError, match=r"patches have shape \(16, 12\) but the network was fitted on \(16, 13\)"):
        clf.predict_proba(X[:, :, :12])


def test_same_seed_same_probabilities_other_seed_others():
    X, y, groups, _, _ = patches()
    a = KerasCNNClassifier(**FAST, random_state=3).fit(X, y, groups).predict_proba(X)
    b = KerasCNNClassifier(**FAST, random_state=3).fit(X, y, groups).predict_proba(X)
    c = KerasCNNClassifier(**FAST, random_state=4).fit(X, y, groups).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_bad_inputs_and_parameters_are_refused():
    X, y, _, _, _ = patches()
    with pytest.raises(ValueError, match=r"X has shape \(72, 208\); expected \(n_clips, n_mels, n_frames\)"):
        KerasCNNClassifier(**FAST).fit(X.reshape(len(X), -1), y)
    with pytest.raises(ValueError, match="at least two classes"):
        KerasCNNClassifier(**FAST).fit(X[:5], y[:5])
    with pytest.raises(ValueError, match=r"groups has shape \(3,\)"):
        KerasCNNClassifier(**FAST).fit(X, y, groups=[1, 2, 3])
    for bad, match in [({"filters": ()}, "filters=()"), ({"input_pool": (0, 2)}, "input_pool"),
                       ({"dropout": 1.0}, "dropout=1.0"), ({"augment": "yes"}, "augment='yes'")]:
        with pytest.raises(ValueError, match=match):
            KerasCNNClassifier(**{**FAST, **bad}).fit(X, y)


@pytest.fixture
def augment_calls(monkeypatch):
    """Every call of classify.cnn.augment: the training rows it got, the source row of each example."""
    calls = []
    real = cnn_module.augment

    def spy(train_rows, *args, **kwargs):
        out = real(train_rows, *args, **kwargs)
        calls.append({"rows": np.asarray(train_rows), "source": out.source})
        return out

    monkeypatch.setattr(cnn_module, "augment", spy)
    return calls


def test_augmentation_sees_the_training_part_only_never_the_validation_part(augment_calls):
    X, y, groups, stereo_rows, channels = patches()
    clf = KerasCNNClassifier(**{**FAST, "epochs": 1}, augment=Augmentation(stereo_split=True), validation_fraction=0.25)
    clf.fit(X, y, groups, stereo_rows=stereo_rows, channels=channels)
    seen = augment_calls[0]
    _, val = clf._validation_split(np.unique(y, return_inverse=True)[1], groups)
    assert len(val) > 0 and len(seen["rows"]) + len(val) == len(y)
    assert not set(groups[seen["source"]]) & set(groups[val])
    n_stereo = int((stereo_rows[seen["rows"]] >= 0).sum())
    assert clf.augmented_.get("stereo") == 2 * n_stereo
    assert sum(clf.augmented_.values()) == len(seen["rows"]) + 2 * n_stereo
    with pytest.warns(UserWarning, match="stereo_split is on but fit got no channels"):
        clone(clf).fit(X, y, groups)


def test_save_load_round_trip_gives_identical_probabilities(tmp_path):
    X, y, groups, stereo_rows, channels = patches()
    clf = KerasCNNClassifier(**FAST, augment=Augmentation.for_patches(PARAMS, stereo_split=True)).fit(
        X, y, groups, stereo_rows=stereo_rows, channels=channels)
    names = save_cnn(clf, tmp_path / "model", patch_params=PARAMS)
    assert sorted(names) == sorted(p.name for p in (tmp_path / "model").iterdir()) == [CNN_JSON, CNN_FILE]
    loaded = load_cnn(tmp_path / "model")
    assert loaded.patch_params == PARAMS
    np.testing.assert_array_equal(loaded.estimator.classes_, clf.classes_)
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), clf.predict_proba(X))
    got = loaded.estimator.get_params()
    assert got == clf.get_params()
    meta = json.loads((tmp_path / "model" / CNN_JSON).read_text())
    assert meta["input_shape"] == list(PARAMS.shape) and meta["patch_key"] == PARAMS.key()
    with pytest.raises(BundleError, match=r"patch_params make patches of shape \(16, 32\)"):
        save_cnn(clf, tmp_path / "other", patch_params=PatchParams(duration=0.5, sr=8000, n_mels=16,
                                                                   n_fft=256, hop_length=128))


def _replace_model(folder, model):
    model.save(str(folder / CNN_FILE))
    meta = json.loads((folder / CNN_JSON).read_text())
    meta["sha256"][CNN_FILE] = hashlib.sha256((folder / CNN_FILE).read_bytes()).hexdigest()
    (folder / CNN_JSON).write_text(json.dumps(meta))


def test_a_model_file_with_a_lambda_layer_is_refused(tmp_path):
    import keras

    X, y, _, _, _ = patches()
    clf = KerasCNNClassifier(**{**FAST, "epochs": 1}).fit(X, y)
    folder = tmp_path / "model"
    save_cnn(clf, folder, patch_params=PARAMS)
    sneaky = keras.Sequential([keras.Input(PARAMS.shape), keras.layers.Flatten(),
                               keras.layers.Lambda(lambda t: t[:, :3] * 0)])
    _replace_model(folder, sneaky)
    with pytest.raises(BundleError, match=r"cnn\.keras names class\(es\) Lambda"):
        load_cnn(folder)
    # a file changed behind cnn.json's back is refused before Keras reads it
    (folder / CNN_FILE).write_bytes(b"PK not a model")
    with pytest.raises(BundleError, match=r"cnn\.keras does not match its checksum"):
        load_cnn(folder)
    with pytest.raises(BundleError, match=r"cnn\.json is missing"):
        load_cnn(tmp_path)


def test_a_given_validation_part_stops_training_and_every_training_row_is_augmented(augment_calls):
    X, y, groups, _, _ = patches()
    val = groups % 4 == 0
    clf = KerasCNNClassifier(**FAST, augment=Augmentation(transforms=("gain",)))
    clf.fit(X[~val], y[~val], groups[~val], X_val=X[val], y_val=y[val])
    assert augment_calls[0]["rows"].tolist() == list(range(int((~val).sum())))   # no part held out of X
    assert len(clf.history_["val_loss"]) == clf.n_epochs_
    assert clf.augmented_ == {"gain": int((~val).sum())}
    with pytest.raises(ValueError, match=r"X_val has patches of shape \(16, 12\)"):
        clone(clf).fit(X, y, X_val=X[:4, :, :12], y_val=y[:4])
