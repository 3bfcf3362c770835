"""A Keras multilayer perceptron that behaves like a scikit-learn classifier.

:class:`KerasMLPClassifier` follows scikit-learn's estimator rules (arguments
stored in ``__init__`` and nothing else, learned state ending in ``_``,
``fit`` returning ``self``), so it is cloned, cross-validated and put in a
:class:`~sklearn.pipeline.Pipeline` exactly like the baselines.

What it shares with the CNN (early stopping, class weights, the fit loop)
is in :mod:`classify.keras_base`. TensorFlow is imported inside the
methods, never at module import.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .keras_base import KerasClassifier, import_keras
from .values import is_int, is_real

# Several optimizer steps per call into TensorFlow: the network is so small
# that per-step Python overhead, not arithmetic, dominates an epoch. Results
# are identical to one step per call (callbacks run per epoch).
_STEPS_PER_EXECUTION = 32


class KerasMLPClassifier(KerasClassifier):
    """Dense ReLU network with dropout and a softmax output, trained with Adam.

    Early stopping watches the loss on a validation part and restores the
    best weights. The part is carved from the training data given to
    :meth:`fit` (grouped when ``groups`` are given, so clips of one
    recording never sit on both sides of it), unless :meth:`fit` is given
    one (``X_val``, ``y_val``: the ``holdout`` protocol's validation rows).

    Parameters
    ----------
    hidden_layers : sequence of int
        Units per hidden layer; ``(100, 200, 100)`` is the UrbanSound8K
        tutorial's network, ``(256, 128, 64)`` the GTZAN tutorial's.
    dropout : float
        Dropout rate after every hidden layer, in [0, 1).
    epochs : int
        Maximum number of passes over the training part.
    batch_size : int
        Rows per gradient step.
    learning_rate : float
        Adam step size.
    patience : int
        Epochs without validation-loss improvement before stopping.
    min_epochs : int
        Epochs before early stopping may stop the fit.
    restarts : int
        Fits again, from another seed and a lower learning rate, when a fit
        ends at chance on its held-out part
        (:meth:`~classify.keras_base.KerasClassifier._fit_guarded`).
    validation_fraction : float
        Share of the training rows (or groups) held out for early stopping,
        in [0, 1); 0 trains for ``epochs`` epochs without early stopping.
    class_weight : None, "balanced" or dict
        Weights of the classes in the loss; ``"balanced"`` is inversely
        proportional to class frequency (for skewed classes). A dict maps
        labels to weights.
    random_state : int or None
        Seed of weights, dropout, shuffling and the validation split (via
        :func:`keras.utils.set_random_seed`, which also seeds Python's and
        NumPy's global generators). None: not reproducible.
    verbose : int
        Keras verbosity (0 = silent, no progress bars).

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
        Class labels, in the column order of :meth:`predict_proba`.
    n_features_in_ : int
        Number of input features.
    model_ : keras.Model
        The trained network (save it with ``model_.save("mlp.keras")``).
    history_ : dict of str to list of float
        Keras training history (``loss``, ``val_loss`` per epoch).
    n_epochs_ : int
        Epochs actually run.
    best_epoch_ : int or None
        1-based epoch whose weights were kept (None without validation).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (30, 4)), rng.normal(3, 1, (30, 4))]
    >>> y = np.array(["quiet"] * 30 + ["loud"] * 30)
    >>> clf = KerasMLPClassifier(hidden_layers=(8,), epochs=30).fit(X, y)  # doctest: +SKIP
    >>> clf.predict_proba(X[:2]).shape  # doctest: +SKIP
    (2, 2)
    """

    #: The only layer classes the network has: a saved file naming any other is refused.
    LAYERS = frozenset({"InputLayer", "Dense", "Dropout"})

    def __init__(
        self,
        hidden_layers: Sequence[int] = (100, 200, 100),
        dropout: float = 0.5,
        epochs: int = 200,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        patience: int = 15,
        min_epochs: int = 0,
        restarts: int = 2,
        validation_fraction: float = 0.15,
        class_weight: str | dict | None = None,
        random_state: int | None = 0,
        verbose: int = 0,
    ) -> None:
        self.hidden_layers = hidden_layers
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.min_epochs = min_epochs
        self.restarts = restarts
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit

    def fit(self, X, y, groups=None, X_val=None, y_val=None) -> KerasMLPClassifier:
        """Train the network.

        Parameters
        ----------
        X : array-like [shape=(n_samples, n_features)]
            Features (scale them first, e.g. with a StandardScaler step).
        y : array-like [shape=(n_samples,)]
            Class labels (strings or numbers).
        groups : array-like [shape=(n_samples,)] or None
            Recording of each row; the early-stopping validation part then
            holds whole groups. In a Pipeline pass it as ``mlp__groups``.
        X_val, y_val : array-like [shape=(n_val, n_features)], [shape=(n_val,)] or None
            A validation part of its own for early stopping; then every row
            of ``X`` is trained on and ``groups`` is not needed. Rows of a
            class absent from ``y`` are left out of it.

        Returns
        -------
        self
        """
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float32, reset=True)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"KerasMLPClassifier needs at least two classes; y holds only {self.classes_[0]!r}"
            )
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (len(y),):
                raise ValueError(f"groups has shape {groups.shape}; expected ({len(y)},)")
        keras = import_keras()
        if self.random_state is not None:
            keras.utils.set_random_seed(int(self.random_state))
        if X_val is not None:
            train, val = np.arange(len(y_idx)), None
            validation_data = self._given_validation(X_val, y_val)
        else:
            train, val = self._validation_split(y_idx, groups)
            validation_data = None if val is None else (X[val], y_idx[val])
        self._fit_guarded(keras, lambda rate: self._build(keras, X.shape[1], len(self.classes_), rate),
                          X[train], y_idx[train], validation_data,
                          check=(X[train], y_idx[train]))
        return self

    def _check_params(self) -> None:
        layers = self.hidden_layers
        if (
            isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence)
            or not all(is_int(u) and u > 0 for u in layers)
        ):
            raise ValueError(
                f"hidden_layers={layers!r} must be a sequence of positive integers, e.g. (100, 200, 100)"
            )
        checks = [
            ("dropout", self.dropout, is_real(self.dropout) and 0 <= self.dropout < 1,
             "a number in [0, 1)"),
            ("epochs", self.epochs, is_int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size, is_int(self.batch_size) and self.batch_size >= 1,
             "an integer >= 1"),
            ("learning_rate", self.learning_rate,
             is_real(self.learning_rate) and self.learning_rate > 0,
             "a positive number"),
            ("patience", self.patience, is_int(self.patience) and self.patience >= 0,
             "an integer >= 0"),
            ("min_epochs", self.min_epochs, is_int(self.min_epochs) and self.min_epochs >= 0,
             "an integer >= 0"),
            ("restarts", self.restarts, is_int(self.restarts) and self.restarts >= 0,
             "an integer >= 0"),
            ("validation_fraction", self.validation_fraction,
             is_real(self.validation_fraction) and 0 <= self.validation_fraction < 1,
             "a number in [0, 1)"),
            ("class_weight", self.class_weight,
             self.class_weight is None or self.class_weight == "balanced"
             or isinstance(self.class_weight, dict), "None, 'balanced' or a dict"),
        ]
        for name, value, ok, what in checks:
            if not ok:
                raise ValueError(f"{name}={value!r} must be {what}")

    def _given_validation(self, X_val, y_val) -> tuple[np.ndarray, np.ndarray] | None:
        """(X, class positions) of a given validation part, or None if no row is usable."""
        X_val = validate_data(self, X_val, dtype=np.float32, reset=False)
        y_val = np.asarray(y_val)
        if y_val.shape != (len(X_val),):
            raise ValueError(f"y_val has shape {y_val.shape}; expected ({len(X_val)},)")
        known = self._known_validation(y_val)
        if known is None:
            return None
        return X_val[known], np.searchsorted(self.classes_, y_val[known])

    def _build(self, keras, n_features: int, n_classes: int, learning_rate: float):
        layers = [keras.Input(shape=(n_features,))]
        for units in self.hidden_layers:
            layers.append(keras.layers.Dense(int(units), activation="relu"))
            if self.dropout:
                layers.append(keras.layers.Dropout(float(self.dropout)))
        layers.append(keras.layers.Dense(n_classes, activation="softmax"))
        model = keras.Sequential(layers, name="mlp")
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=float(learning_rate)),
            loss="sparse_categorical_crossentropy",
            steps_per_execution=_STEPS_PER_EXECUTION,
        )
        return model

    # -------------------------------------------------------------- predict

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like [shape=(n_samples, n_features)]

        Returns
        -------
        np.ndarray [shape=(n_samples, n_classes), dtype=float64]
            Rows sum to 1; columns follow :attr:`classes_`.
        """
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self._probabilities(X)

    # ------------------------------------------------------------ bundles

    @classmethod
    def from_keras_model(
        cls, model: Any, classes: Sequence[Any], **params: Any
    ) -> KerasMLPClassifier:
        """A fitted classifier around an already trained Keras model.

        Used when loading a model bundle: the architecture parameters are
        read back from the model's layers so ``get_params`` tells the truth.

        Parameters
        ----------
        model : keras.Model
            Network with ``len(classes)`` softmax outputs (e.g. from
            ``keras.saving.load_model(path, safe_mode=True)``).
        classes : sequence
            Labels of the output units, in order.
        **params
            Other constructor parameters to record (``epochs``, ...).

        Returns
        -------
        KerasMLPClassifier
            Ready for :meth:`predict` / :meth:`predict_proba`.
        """
        classes = np.asarray(list(classes))
        n_out = int(model.output_shape[-1])
        if n_out != len(classes):
            raise ValueError(
                f"the Keras model has {n_out} outputs but {len(classes)} classes were given"
            )
        dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
        drops = [layer for layer in model.layers if type(layer).__name__ == "Dropout"]
        params.setdefault("hidden_layers", tuple(int(layer.units) for layer in dense[:-1]))
        params.setdefault("dropout", float(drops[0].rate) if drops else 0.0)
        clf = cls(**params)
        clf.model_ = model
        clf.classes_ = classes
        clf.n_features_in_ = int(model.input_shape[-1])
        return clf
