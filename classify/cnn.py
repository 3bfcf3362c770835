"""A Keras CNN on log-mel patches that behaves like a scikit-learn classifier.

:class:`KerasCNNClassifier` takes the patches of :mod:`features.patches`
(float32 [n, n_mels, n_frames]) and follows the same rules as
:class:`~classify.mlp.KerasMLPClassifier`: arguments stored in ``__init__``
only, learned state ending in ``_``, ``fit`` returning ``self``, early
stopping on a group-aware validation part of the training data. The
standardisation (per mel band, statistics of the training part only) is a
Normalization layer inside the network, so the saved ``.keras`` file takes
raw patches and needs nothing else.

:mod:`classify.bundle` saves and loads it (``cnn.keras`` + ``cnn.json``).

TensorFlow is imported inside the functions, never at module import.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_array

from .augment import Augmentation, augment
from .keras_base import KerasClassifier, aligned
from .values import is_int

__all__ = ["KerasCNNClassifier"]

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
    Usage::

        rng = np.random.default_rng(0)
        X = rng.normal(-40, 5, (40, 16, 20)).astype(np.float32)
        X[20:, 8:] += 20  # the second class is loud in the upper bands
        y = np.array(["low"] * 20 + ["high"] * 20)
        clf = KerasCNNClassifier(filters=(4, 8), epochs=3).fit(X, y)
        clf.predict_proba(X[:2]).shape
        # -> (2, 2)
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
        self.input_pool = input_pool
        self.augment = augment
        super().__init__(dropout=dropout, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, patience=patience, min_epochs=min_epochs,
                         restarts=restarts, validation_fraction=validation_fraction,
                         class_weight=class_weight, random_state=random_state, verbose=verbose)

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
        X = self._check_X(X, reset=True)
        keras, y_idx, groups = self._start_fit(y, len(X), groups)
        stereo_rows = aligned("stereo_rows", stereo_rows, len(y_idx))
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

    def _check_X(self, X, *, reset: bool, name: str = "X") -> np.ndarray:
        X = check_array(X, dtype=np.float32, allow_nd=True, ensure_2d=False,
                        input_name=name, ensure_min_samples=1)
        if X.ndim != 3:
            raise ValueError(f"{name} has shape {X.shape}; expected (n_clips, n_mels, n_frames) "
                             "patches as features.patches writes them")
        if reset:
            self.input_shape_ = tuple(int(d) for d in X.shape[1:])
        elif tuple(X.shape[1:]) != tuple(self.input_shape_):
            what = "patches have" if name == "X" else f"{name} has patches of"
            raise ValueError(f"{what} shape {tuple(X.shape[1:])} but the network was fitted "
                             f"on {tuple(self.input_shape_)}; compute them with the model's "
                             "patch parameters")
        return X

    def _architecture_checks(self) -> list[tuple[str, Any, bool, str]]:
        filters, pool = self.filters, self.input_pool
        return [
            ("filters", filters,
             not isinstance(filters, (str, bytes)) and isinstance(filters, Sequence) and bool(filters)
             and all(is_int(f) and f > 0 for f in filters),
             "a non-empty sequence of positive integers, e.g. (16, 32, 64)"),
            ("input_pool", pool,
             isinstance(pool, Sequence) and len(pool) == 2 and all(is_int(p) and p >= 1 for p in pool),
             "a pair of integers >= 1, e.g. (1, 2)"),
            ("dense_units", self.dense_units, is_int(self.dense_units) and self.dense_units >= 1,
             "an integer >= 1"),
            ("augment", self.augment, self.augment is None or isinstance(self.augment, Augmentation),
             "None or a classify.augment.Augmentation"),
        ]

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

    @classmethod
    def _params_from_layers(cls, model: Any) -> dict[str, Any]:
        shape = tuple(model.input_shape[1:])
        if len(shape) != 2 or not all(isinstance(d, int) for d in shape):
            raise ValueError(f"the Keras model takes inputs of shape {shape}, not (n_mels, n_frames)")
        by_type: dict[str, list] = {}
        for layer in model.layers:
            by_type.setdefault(type(layer).__name__, []).append(layer)
        drops = by_type.get("Dropout", [])
        pools = by_type.get("AveragePooling2D", [])
        return {"filters": tuple(int(layer.filters) for layer in by_type.get("Conv2D", [])),
                "dense_units": int(by_type["Dense"][0].units) if "Dense" in by_type else 64,
                "dropout": float(drops[0].rate) if drops else 0.0,
                "input_pool": tuple(int(p) for p in pools[0].pool_size) if pools else (1, 1)}

    def _fitted_input(self, model: Any) -> None:
        self.input_shape_ = tuple(int(d) for d in model.input_shape[1:])


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
