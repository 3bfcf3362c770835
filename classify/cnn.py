"""A Keras CNN on log-mel patches that behaves like a scikit-learn classifier.

:class:`KerasCNNClassifier` takes the patches of :mod:`features.patches`
(float32 [n, n_mels, n_frames]) and follows the same rules as
:class:`~classify.mlp.KerasMLPClassifier`: arguments stored in ``__init__``
only, learned state ending in ``_``, ``fit`` returning ``self``, early
stopping on a group-aware validation part of the training data. The
standardisation (per mel band, statistics of the training part only) is a
Normalization layer inside the network, so the saved ``.keras`` file takes
raw patches and needs nothing else.

:func:`save_cnn` / :func:`load_cnn` write and read the model as
``cnn.keras`` (loaded in Keras safe mode: no Lambda layers, no code) and
``cnn.json`` (classes, the patch parameters, the estimator's parameters,
the model file's checksum).

TensorFlow is imported inside the functions, never at module import.
"""
from __future__ import annotations

import datetime
import functools
import importlib.metadata
import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted

from .augment import Augmentation, augment
from .errors import BundleError
from .keras_base import KerasClassifier, import_keras, load_keras_model
from .values import is_int, is_real

__all__ = ["CNN_FILE", "CNN_JSON", "KerasCNNClassifier", "LoadedCNN", "load_cnn", "save_cnn"]

CNN_FILE = "cnn.keras"
CNN_JSON = "cnn.json"
FORMAT_NAME = "soundfeatures-cnn"
FORMAT_VERSION = 1
_BN_MOMENTUM = 0.9


class KerasCNNClassifier(KerasClassifier):
    """Small convolutional network on log-mel patches, trained with Adam.

    Architecture (Salamon & Bello style, sized for a CPU): the patch is
    standardised per mel band, optionally average-pooled by ``input_pool``,
    then goes through one block per entry of ``filters`` (3x3 convolution,
    batch normalisation, ReLU, 2x2 max-pooling); the maximum over the
    remaining frames of each band and filter (so an event counts wherever
    it happens in the clip) feeds a dense ReLU layer, dropout and a softmax.

    The early-stopping validation part is held out first (whole groups when
    ``groups`` are given); standardisation statistics and augmentation use
    the remaining training part only, so no validation clip is standardised
    into, or augmented.

    Parameters
    ----------
    filters : sequence of int
        Filters of each convolution block.
    dense_units : int
        Units of the dense layer.
    dropout : float
        Dropout rate before and after the dense layer, in [0, 1).
    input_pool : (int, int)
        Average pooling of the standardised patch over (bands, frames)
        before the first block; ``(1, 1)``: none. ``(2, 2)`` (64x173 ->
        32x87) made an epoch 2.6 times cheaper than ``(1, 2)`` on the demo,
        for about 5 points of accuracy on one fold, so ten folds of a
        1000-clip set train in minutes on two cores.
    epochs : int
        Maximum number of passes over the training part.
    batch_size : int
        Patches per gradient step.
    learning_rate : float
        Adam step size.
    patience : int
        Epochs without validation-loss improvement before stopping.
    min_epochs : int
        Epochs before early stopping may stop the fit (and before its best
        weights are tracked). On hard data the validation loss can stay flat
        for the first ten epochs or so; stopping inside that plateau kept a
        network at chance (measured on a noisy variant of the demo: 2 of 6
        folds, 0.16 and 0.21 accuracy, became 0.51 and 0.54 with 10 epochs).
    restarts : int
        Fits again, from another seed and a lower learning rate, when a fit
        still ends at chance on its held-out part (see
        :meth:`~classify.keras_base.KerasClassifier._fit_guarded`); every
        attempt is recorded in ``attempts_``.
    validation_fraction : float
        Share of the training rows (or groups) held out for early stopping,
        in [0, 1); 0 trains for ``epochs`` epochs.
    augment : Augmentation or None
        Extra training examples (:func:`classify.augment.augment`) made from
        the training part only, drawn anew for every epoch (each epoch: the
        training patches plus fresh transformed versions); None: no
        augmentation.
    class_weight : None, "balanced" or dict
        Weights of the classes in the loss, as for the MLP.
    random_state : int or None
        Seed of weights, dropout, shuffling, the validation split and the
        augmentation. None: not reproducible.
    verbose : int
        Keras verbosity (0 = silent).

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
        Class labels, in the column order of :meth:`predict_proba`.
    input_shape_ : tuple of int
        ``(n_mels, n_frames)`` of the patches it was fitted on.
    model_ : keras.Model
        The trained network; it takes float32 [n, n_mels, n_frames] patches.
    history_ : dict of str to list of float
        Keras training history (``loss``, ``val_loss`` per epoch).
    n_epochs_ : int
        Epochs actually run.
    best_epoch_ : int or None
        1-based epoch whose weights were kept (None without validation).
    augmented_ : dict of str to int
        Extra examples made per transform in an epoch (``{}`` without
        augmentation); every epoch draws its own.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(-40, 5, (40, 16, 20)).astype(np.float32)
    >>> X[20:, 8:] += 20  # the second class is loud in the upper bands
    >>> y = np.array(["low"] * 20 + ["high"] * 20)
    >>> clf = KerasCNNClassifier(filters=(4, 8), epochs=3).fit(X, y)  # doctest: +SKIP
    >>> clf.predict_proba(X[:2]).shape  # doctest: +SKIP
    (2, 2)
    """

    #: Patches per call of ``model_.predict`` (each is 64 x 173 floats at 4 s).
    predict_batch = 128
    #: The only layer classes the network has: a saved file naming any other is refused.
    LAYERS = frozenset({
        "InputLayer", "Reshape", "Normalization", "AveragePooling2D", "Conv2D",
        "BatchNormalization", "ReLU", "MaxPooling2D", "Flatten", "Dropout", "Dense",
    })

    def __init__(
        self,
        filters: Sequence[int] = (16, 32, 64),
        dense_units: int = 64,
        dropout: float = 0.3,
        input_pool: tuple[int, int] = (2, 2),
        epochs: int = 30,
        batch_size: int = 32,
        learning_rate: float = 3e-3,
        patience: int = 8,
        min_epochs: int = 10,
        restarts: int = 2,
        validation_fraction: float = 0.15,
        augment: Augmentation | None = None,
        class_weight: str | dict | None = None,
        random_state: int | None = 0,
        verbose: int = 0,
    ) -> None:
        self.filters = filters
        self.dense_units = dense_units
        self.dropout = dropout
        self.input_pool = input_pool
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.min_epochs = min_epochs
        self.restarts = restarts
        self.validation_fraction = validation_fraction
        self.augment = augment
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit

    def fit(self, X, y, groups=None, *, stereo_rows=None, channels=None, noise=None,
            X_val=None, y_val=None) -> KerasCNNClassifier:
        """Train the network.

        Parameters
        ----------
        X : array-like [shape=(n_samples, n_mels, n_frames)]
            dB log-mel patches (``patches.npy`` rows; a memory map is fine).
        y : array-like [shape=(n_samples,)]
            Class labels.
        groups : array-like [shape=(n_samples,)] or None
            Recording of each row: the early-stopping validation part holds
            whole groups. In a Pipeline pass it as ``cnn__groups``.
        stereo_rows : array-like of int [shape=(n_samples,)] or None
            Row of ``channels`` for each row of X (-1: mono); for the
            stereo split of ``augment``.
        channels : np.ndarray [shape=(n_stereo, 2, n_mels, n_frames)] or None
            ``channels.npy``, whole (``stereo_rows`` index it).
        noise : np.ndarray [shape=(n_noise, n_mels, n_frames)] or None
            ``noise.npy``: background noise for the noise transform.
        X_val, y_val : array-like [shape=(n_val, n_mels, n_frames)], [shape=(n_val,)] or None
            A validation part of its own for early stopping (the ``holdout``
            protocol's validation rows); then every row of ``X`` is trained
            on (and augmented), and no row of ``X_val`` ever is. Rows of a
            class absent from ``y`` are left out of it.

        Returns
        -------
        self
        """
        self._check_params()
        X = _check_patches(X)
        y = np.asarray(y)
        if y.shape != (len(X),):
            raise ValueError(f"y has shape {y.shape}; expected ({len(X)},), one label per patch")
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"KerasCNNClassifier needs at least two classes; y holds only {self.classes_[0]!r}")
        groups = _check_aligned("groups", groups, len(y))
        stereo_rows = _check_aligned("stereo_rows", stereo_rows, len(y))
        self.input_shape_ = tuple(int(d) for d in X.shape[1:])

        keras = import_keras()
        if self.random_state is not None:
            keras.utils.set_random_seed(int(self.random_state))
        if X_val is not None:
            train, validation_data = np.arange(len(y_idx)), self._given_validation(X_val, y_val)
        else:
            train, val = (None if rows is None else np.sort(rows)  # sorted reads of a memory map
                          for rows in self._validation_split(y_idx, groups))
            validation_data = None if val is None else (np.ascontiguousarray(X[val]), y_idx[val])
        X_train, y_train = np.ascontiguousarray(X[train]), y_idx[train]
        mean = X_train.mean(axis=(0, 2), dtype=np.float64)
        variance = X_train.var(axis=(0, 2), dtype=np.float64)
        data = self._training_data(keras, X, y_idx, groups, stereo_rows, channels, noise, train,
                                   X_train)
        self._fit_guarded(
            keras, lambda rate: self._build(keras, self.input_shape_, len(self.classes_), mean,
                                            variance, rate),
            data, y_train, validation_data, check=(X_train, y_train))
        return self

    def _training_data(self, keras, X, y_idx, groups, stereo_rows, channels, noise, train, X_train):
        """What the network learns from: the training patches, or a fresh augmentation per epoch.

        With ``augment``, every epoch sees the training patches plus newly
        drawn transformed versions of them (:class:`_FreshEpochs`), so the
        network never sees one fixed copy twice; the stereo channels, which
        are not random, are the same every epoch. Only rows of ``train``
        are ever transformed.
        """
        self.augmented_ = {}
        if self.augment is None:
            return X_train
        index = pd.DataFrame({"label": y_idx})
        if groups is not None:
            index["group"] = groups
        if stereo_rows is not None:
            index["stereo_row"] = np.asarray(stereo_rows, dtype=np.int64)
        if self.augment.stereo_split and (channels is None or stereo_rows is None):
            warnings.warn("augment.stereo_split is on but fit got no channels and stereo_rows "
                          "(channels.npy and the index's stereo_row column): no stereo examples "
                          "were added", UserWarning, stacklevel=3)
        seed = 0 if self.random_state is None else int(self.random_state)

        def draw(epoch: int) -> tuple[np.ndarray, np.ndarray]:
            extra = augment(train, X, index, augmentation=self.augment, channels=channels,
                            noise=noise, rng=np.random.default_rng([seed, epoch]))
            if epoch == 0:
                kinds, counts = np.unique(extra.kind, return_counts=True)
                self.augmented_ = {str(k): int(c) for k, c in zip(kinds, counts)}
            return extra.X, extra.labels.astype(y_idx.dtype)

        return _fresh_epochs(keras)(X_train, y_idx[train], draw, self.batch_size,
                                    np.random.default_rng([seed, 1 << 20]))

    def _given_validation(self, X_val, y_val) -> tuple[np.ndarray, np.ndarray] | None:
        """(patches, class positions) of a given validation part, or None if no row is usable."""
        X_val = _check_patches(X_val)
        if tuple(X_val.shape[1:]) != self.input_shape_:
            raise ValueError(f"X_val has patches of shape {tuple(X_val.shape[1:])}; expected "
                             f"{self.input_shape_} like X")
        y_val = np.asarray(y_val)
        if y_val.shape != (len(X_val),):
            raise ValueError(f"y_val has shape {y_val.shape}; expected ({len(X_val)},)")
        known = self._known_validation(y_val)
        if known is None:
            return None
        return np.ascontiguousarray(X_val[known]), np.searchsorted(self.classes_, y_val[known])

    def _check_params(self) -> None:
        filters, pool = self.filters, self.input_pool
        if (isinstance(filters, (str, bytes)) or not isinstance(filters, Sequence) or not filters
                or not all(is_int(f) and f > 0 for f in filters)):
            raise ValueError(f"filters={filters!r} must be a non-empty sequence of positive "
                             "integers, e.g. (16, 32, 64)")
        if (not isinstance(pool, Sequence) or len(pool) != 2
                or not all(is_int(p) and p >= 1 for p in pool)):
            raise ValueError(f"input_pool={pool!r} must be a pair of integers >= 1, e.g. (1, 2)")
        checks = [
            ("dense_units", self.dense_units, is_int(self.dense_units) and self.dense_units >= 1,
             "an integer >= 1"),
            ("dropout", self.dropout, is_real(self.dropout) and 0 <= self.dropout < 1,
             "a number in [0, 1)"),
            ("epochs", self.epochs, is_int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size, is_int(self.batch_size) and self.batch_size >= 1,
             "an integer >= 1"),
            ("learning_rate", self.learning_rate,
             is_real(self.learning_rate) and self.learning_rate > 0, "a positive number"),
            ("patience", self.patience, is_int(self.patience) and self.patience >= 0,
             "an integer >= 0"),
            ("min_epochs", self.min_epochs, is_int(self.min_epochs) and self.min_epochs >= 0,
             "an integer >= 0"),
            ("restarts", self.restarts, is_int(self.restarts) and self.restarts >= 0,
             "an integer >= 0"),
            ("validation_fraction", self.validation_fraction,
             is_real(self.validation_fraction) and 0 <= self.validation_fraction < 1,
             "a number in [0, 1)"),
            ("augment", self.augment, self.augment is None or isinstance(self.augment, Augmentation),
             "None or a classify.augment.Augmentation"),
            ("class_weight", self.class_weight,
             self.class_weight is None or self.class_weight == "balanced"
             or isinstance(self.class_weight, dict), "None, 'balanced' or a dict"),
        ]
        for name, value, ok, what in checks:
            if not ok:
                raise ValueError(f"{name}={value!r} must be {what}")

    def _build(self, keras, shape, n_classes, mean, variance, learning_rate):
        layers = keras.layers
        n_mels, n_frames = shape
        inputs = keras.Input(shape=(n_mels, n_frames), name="patch")
        x = layers.Reshape((n_mels, n_frames, 1))(inputs)
        # Per-band statistics of the training part, stored as the layer's weights.
        x = layers.Normalization(axis=1, mean=mean.astype(np.float32),
                                 variance=variance.astype(np.float32), name="standardise")(x)
        if tuple(self.input_pool) != (1, 1):
            x = layers.AveragePooling2D(tuple(int(p) for p in self.input_pool), padding="same")(x)
        for n_filters in self.filters:
            x = layers.Conv2D(int(n_filters), 3, padding="same", use_bias=False)(x)
            # Keras' default momentum (0.99) needs hundreds of steps before the
            # moving statistics used at inference settle; with a few dozen
            # steps per epoch the validation loss would lag and stop training early.
            x = layers.BatchNormalization(momentum=_BN_MOMENTUM)(x)
            x = layers.ReLU()(x)
            x = layers.MaxPooling2D(2, padding="same")(x)
        x = layers.MaxPooling2D((1, int(x.shape[2])), name="max_over_time")(x)
        x = layers.Flatten()(x)
        if self.dropout:
            x = layers.Dropout(float(self.dropout))(x)
        x = layers.Dense(int(self.dense_units), activation="relu")(x)
        if self.dropout:
            x = layers.Dropout(float(self.dropout))(x)
        outputs = layers.Dense(n_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs, name="cnn")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(learning_rate)),
                      loss="sparse_categorical_crossentropy")
        return model

    # -------------------------------------------------------------- predict

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like [shape=(n_samples, n_mels, n_frames)]

        Returns
        -------
        np.ndarray [shape=(n_samples, n_classes), dtype=float64]
            Rows sum to 1; columns follow :attr:`classes_`.
        """
        check_is_fitted(self, "model_")
        X = _check_patches(X)
        if tuple(X.shape[1:]) != tuple(self.input_shape_):
            raise ValueError(f"patches have shape {tuple(X.shape[1:])} but the network was fitted "
                             f"on {tuple(self.input_shape_)}; compute them with the model's "
                             "patch parameters")
        return self._probabilities(X)

    # ------------------------------------------------------------ bundles

    @classmethod
    def from_keras_model(cls, model: Any, classes: Sequence[Any], **params: Any
                         ) -> KerasCNNClassifier:
        """A fitted classifier around a trained network (from :func:`load_cnn`).

        The architecture parameters are read back from the layers so
        ``get_params`` tells the truth; ``params`` sets the others.

        Raises
        ------
        ValueError
            The model's outputs do not match ``classes`` or its input is not
            one patch ``(n_mels, n_frames)``.
        """
        classes = np.asarray(list(classes))
        n_out = int(model.output_shape[-1])
        if n_out != len(classes):
            raise ValueError(f"the Keras model has {n_out} outputs but {len(classes)} classes were given")
        shape = tuple(model.input_shape[1:])
        if len(shape) != 2 or not all(isinstance(d, int) for d in shape):
            raise ValueError(f"the Keras model takes inputs of shape {shape}, not (n_mels, n_frames)")
        by_type: dict[str, list] = {}
        for layer in model.layers:
            by_type.setdefault(type(layer).__name__, []).append(layer)
        params.setdefault("filters", tuple(int(layer.filters) for layer in by_type.get("Conv2D", [])))
        params.setdefault("dense_units", int(by_type["Dense"][0].units) if "Dense" in by_type else 64)
        drops = by_type.get("Dropout", [])
        params.setdefault("dropout", float(drops[0].rate) if drops else 0.0)
        pools = by_type.get("AveragePooling2D", [])
        params.setdefault("input_pool", tuple(int(p) for p in pools[0].pool_size) if pools else (1, 1))
        clf = cls(**params)
        clf.model_ = model
        clf.classes_ = classes
        clf.input_shape_ = tuple(int(d) for d in shape)
        return clf


@functools.cache
def _fresh_epochs(keras):
    """:class:`keras.utils.PyDataset` of an augmented training set, drawn anew for every epoch."""

    class FreshEpochs(keras.utils.PyDataset):
        """The training patches plus ``draw(epoch)``'s transformed versions, shuffled, in batches.

        ``draw`` is called once per epoch (before the first, then at every
        epoch's end), so each epoch has fresh transforms; the number of
        examples, and so of batches, is the same every epoch.
        """

        def __init__(self, X_train, y_train, draw, batch_size, rng) -> None:
            super().__init__()
            self.X_train, self.y_train, self.draw = X_train, y_train, draw
            self.batch_size, self.rng, self.epoch = int(batch_size), rng, 0
            self._new_epoch()

        def _new_epoch(self) -> None:
            X_extra, y_extra = self.draw(self.epoch)
            self.X = np.concatenate([self.X_train, X_extra]) if len(X_extra) else self.X_train
            self.y = np.concatenate([self.y_train, y_extra]) if len(y_extra) else self.y_train
            self.order = self.rng.permutation(len(self.y))

        def __len__(self) -> int:
            return math.ceil(len(self.y) / self.batch_size)

        def __getitem__(self, i: int):
            rows = self.order[i * self.batch_size:(i + 1) * self.batch_size]
            return self.X[rows], self.y[rows]

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self._new_epoch()

    return FreshEpochs


# ---------------------------------------------------------------- bundles


class LoadedCNN(NamedTuple):
    """What :func:`load_cnn` returns.

    Attributes
    ----------
    estimator : KerasCNNClassifier
        Fitted; ``predict_proba`` takes patches of ``patch_params.shape``.
    patch_params : features.params.PatchParams
        How to compute patches for new clips (``features.patches.patch_files``).
    meta : dict
        The whole ``cnn.json``.
    """

    estimator: KerasCNNClassifier
    patch_params: Any
    meta: dict[str, Any]


def save_cnn(estimator: KerasCNNClassifier, folder: str | os.PathLike, *, patch_params: Any
             ) -> list[str]:
    """Write a fitted CNN as ``cnn.keras`` + ``cnn.json`` into ``folder``.

    Files are written in place (``cnn.json`` last); to make the folder
    appear whole, call this inside :func:`features.io.atomic.atomic_dir` as
    :func:`classify.bundle.save_bundle` does.

    Parameters
    ----------
    estimator : KerasCNNClassifier
        Fitted.
    folder : path
        Created if missing.
    patch_params : PatchParams or dict
        The patch parameters of the training patches (``read_patches(...)["params"]``);
        their shape must be the network's input shape.

    Returns
    -------
    list of str
        Names of the files written, relative to ``folder``.

    Raises
    ------
    BundleError
        The estimator is not a fitted KerasCNNClassifier, the patch
        parameters do not match its input, or a file cannot be written.
    """
    from features.io.atomic import file_sha256

    if not isinstance(estimator, KerasCNNClassifier) or getattr(estimator, "model_", None) is None:
        raise BundleError(f"save_cnn needs a fitted KerasCNNClassifier; got {type(estimator).__name__}"
                          " (fit it first)")
    params = _patch_params(patch_params, "patch_params")
    if tuple(params.shape) != tuple(estimator.input_shape_):
        raise BundleError(f"patch_params make patches of shape {params.shape} but the network takes "
                          f"{tuple(estimator.input_shape_)}; pass the parameters of the training patches")
    folder = Path(folder)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "keras_file": CNN_FILE,
        "classes": _json_classes(estimator.classes_),
        "input_shape": list(estimator.input_shape_),
        "patch_params": params.to_dict(),
        "patch_key": params.key(),
        "estimator_params": _json_params(estimator),
        "training": {"n_epochs": getattr(estimator, "n_epochs_", None),
                     "best_epoch": getattr(estimator, "best_epoch_", None),
                     "augmented": getattr(estimator, "augmented_", {})},
        "versions": {dist: _version(dist) for dist in ("keras", "tensorflow", "numpy")},
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        estimator.model_.save(str(folder / CNN_FILE))
        meta["sha256"] = {CNN_FILE: file_sha256(folder / CNN_FILE)}
        (folder / CNN_JSON).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"cannot write the CNN into {folder}: {exc}") from None
    return [CNN_FILE, CNN_JSON]


def load_cnn(folder: str | os.PathLike) -> LoadedCNN:
    """Read a CNN written by :func:`save_cnn`, without running code from it.

    ``cnn.keras`` is loaded with ``keras.saving.load_model(safe_mode=True)``:
    a file with a Lambda layer (Python code) is refused, and so is one with
    any layer a network of this module does not have.

    Parameters
    ----------
    folder : path

    Returns
    -------
    LoadedCNN

    Raises
    ------
    BundleError
        A file is missing or damaged, its checksum does not match, the
        format is unknown, Keras refuses the model, or the model does not
        match ``cnn.json``.

    Examples
    --------
    >>> cnn = load_cnn("run/model")  # doctest: +SKIP
    >>> patches, paths, errors = patch_files(["clip.wav"], cnn.patch_params)  # doctest: +SKIP
    >>> cnn.estimator.predict_proba(patches)  # doctest: +SKIP
    """
    from features.io.atomic import file_sha256

    folder = Path(folder)
    meta = _read_cnn_json(folder)
    path = folder / CNN_FILE
    if not path.is_file():
        raise BundleError(f"{path} is missing; copy the whole model folder or retrain")
    if meta["sha256"].get(CNN_FILE) != file_sha256(path):
        raise BundleError(f"{path} does not match its checksum in {CNN_JSON}: the file was "
                          "modified or is corrupt; copy the model again or retrain")
    params = _patch_params(meta["patch_params"], str(folder / CNN_JSON))
    model = load_keras_model(path, KerasCNNClassifier.LAYERS, "Functional", meta.get("versions"))
    estimator_params = dict(meta.get("estimator_params") or {})
    if estimator_params.get("augment") is not None:
        estimator_params["augment"] = Augmentation.from_dict(estimator_params["augment"])
    for key in ("filters", "input_pool"):
        estimator_params.pop(key, None)  # read back from the layers
    try:
        estimator = KerasCNNClassifier.from_keras_model(model, meta["classes"], **estimator_params)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{path} does not fit {folder / CNN_JSON}: {exc}; retrain") from None
    if list(estimator.input_shape_) != list(meta["input_shape"]) or \
            tuple(params.shape) != estimator.input_shape_:
        raise BundleError(f"{path} takes patches of shape {estimator.input_shape_} but {CNN_JSON} "
                          f"says {meta['input_shape']} and its patch parameters make "
                          f"{params.shape}; the model folder is inconsistent, retrain")
    return LoadedCNN(estimator, params, meta)


def _read_cnn_json(folder: Path) -> dict[str, Any]:
    path = folder / CNN_JSON
    if not path.is_file():
        raise BundleError(f"{folder} holds no CNN: {CNN_JSON} is missing; pass the folder "
                          "written by save_cnn (the model/ folder of a training run)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc}; retrain to write a new model") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise BundleError(f"{path} is not a CNN description (format "
                          f"{meta.get('format') if isinstance(meta, dict) else None!r}, "
                          f"expected {FORMAT_NAME!r})")
    version = meta.get("format_version")
    if not is_int(version) or not 1 <= version <= FORMAT_VERSION:
        raise BundleError(f"{path} has CNN format_version {version!r}; this package reads "
                          f"version {FORMAT_VERSION}: upgrade the package or retrain")
    for key, typ in {"classes": list, "input_shape": list, "patch_params": dict, "sha256": dict}.items():
        if not isinstance(meta.get(key), typ):
            raise BundleError(f"{path} is damaged: {key!r} is missing or not a {typ.__name__}; retrain")
    return meta


def _patch_params(value: Any, where: str):
    from features.errors import FeaturesError
    from features.params import PatchParams

    if isinstance(value, PatchParams):
        return value
    try:
        return PatchParams.from_dict(dict(value))
    except (FeaturesError, TypeError, ValueError) as exc:
        raise BundleError(f"{where}: invalid patch parameters ({exc}); pass the PatchParams of "
                          "the training patches (read_patches(folder)['params'])") from None


def _json_classes(classes: np.ndarray) -> list:
    values = np.asarray(classes).tolist()
    if not all(isinstance(v, (str, int, float, bool)) for v in values):
        raise BundleError(f"class labels {values[:5]!r} cannot be written as JSON; use strings")
    return values


def _json_params(estimator: KerasCNNClassifier) -> dict[str, Any]:
    out = {}
    for key, value in estimator.get_params().items():
        if isinstance(value, Augmentation):
            value = value.to_dict()
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict):
            value = {str(k): v for k, v in value.items()}
        out[key] = value
    try:
        json.dumps(out)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"the CNN's parameters cannot be written as JSON ({exc})") from None
    return out


def _check_patches(X) -> np.ndarray:
    X = check_array(X, dtype=np.float32, allow_nd=True, ensure_2d=False,
                    input_name="X", ensure_min_samples=1)
    if X.ndim != 3:
        raise ValueError(f"X has shape {X.shape}; expected (n_clips, n_mels, n_frames) patches "
                         "as features.patches writes them")
    return X


def _check_aligned(name: str, values, n: int) -> np.ndarray | None:
    if values is None:
        return None
    values = np.asarray(values)
    if values.shape != (n,):
        raise ValueError(f"{name} has shape {values.shape}; expected ({n},), one value per patch")
    return values


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
