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
from sklearn.utils.validation import validate_data

from .keras_base import KerasClassifier
from .values import is_int

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
    Usage::

        rng = np.random.default_rng(0)
        X = np.r_[rng.normal(0, 1, (30, 4)), rng.normal(3, 1, (30, 4))]
        y = np.array(["quiet"] * 30 + ["loud"] * 30)
        clf = KerasMLPClassifier(hidden_layers=(8,), epochs=30).fit(X, y)
        clf.predict_proba(X[:2]).shape
        # -> (2, 2)
    """

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
        super().__init__(dropout=dropout, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, patience=patience, min_epochs=min_epochs,
                         restarts=restarts, validation_fraction=validation_fraction,
                         class_weight=class_weight, random_state=random_state, verbose=verbose)

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
        X = self._check_X(X, reset=True)
        keras, y_idx, groups = self._start_fit(y, len(X), groups)
        if X_val is not None:
            train, validation_data = np.arange(len(y_idx)), self._given_validation(X_val, y_val)
        else:
            train, val = self._validation_split(y_idx, groups)
            validation_data = None if val is None else (X[val], y_idx[val])
        self._fit_guarded(keras, lambda rate: self._build(keras, X.shape[1], len(self.classes_), rate),
                          X[train], y_idx[train], validation_data,
                          check=(X[train], y_idx[train]))
        return self

    def _check_X(self, X, *, reset: bool, name: str = "X") -> np.ndarray:
        return validate_data(self, X, dtype=np.float32, reset=reset)

    def _architecture_checks(self) -> list[tuple[str, Any, bool, str]]:
        layers = self.hidden_layers
        ok = (not isinstance(layers, (str, bytes)) and isinstance(layers, Sequence)
              and all(is_int(u) and u > 0 for u in layers))
        return [("hidden_layers", layers, ok, "a sequence of positive integers, e.g. (100, 200, 100)")]

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

    @classmethod
    def _params_from_layers(cls, model: Any) -> dict[str, Any]:
        dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
        drops = [layer for layer in model.layers if type(layer).__name__ == "Dropout"]
        return {"hidden_layers": tuple(int(layer.units) for layer in dense[:-1]),
                "dropout": float(drops[0].rate) if drops else 0.0}

    def _fitted_input(self, model: Any) -> None:
        self.n_features_in_ = int(model.input_shape[-1])
