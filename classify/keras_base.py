"""What the project's Keras classifiers share: TensorFlow's start, early stopping, the fit loop.

:func:`import_keras` imports Keras on TensorFlow quietly with thread pools
sized for the process (training workers: one thread each), and lets a
visible GPU be shared. :class:`KerasClassifier` is the base of
:class:`~classify.mlp.KerasMLPClassifier` and
:class:`~classify.cnn.KerasCNNClassifier`: the grouped validation part for
early stopping, class weights in the loss, training with early stopping
and the record of it, and normalised probabilities.

TensorFlow is imported inside the functions, never at module import, so
``import classify`` stays light and the ``features`` package can never pull
it in by accident.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import balanced_accuracy_score
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .inner import validation_split
from .values import is_int, is_real

__all__ = ["KerasClassifier", "aligned", "at_chance", "import_keras"]

#: Below this many validation rows, early stopping has nothing to go on: train without it.
MIN_VALIDATION_ROWS = 10
#: A fit "at chance": its balanced accuracy on held-out rows is within this share of the
#: way from chance (1 / classes) to perfect. A collapsed network (one class for every
#: clip) scores exactly chance; any network that learnt something clears it.
COLLAPSE_MARGIN = 0.1
#: A restarted fit's learning rate, relative to the previous attempt's, and at most
#: Adam's usual rate (a fit that diverged from a far too high rate gets a sane one).
RESTART_RATE = 0.3
SAFE_RATE = 1e-3
_RESTART_SEED = 7919


def at_chance(balanced_accuracy: float, n_classes: int) -> bool:
    """Whether a balanced accuracy is at chance level for ``n_classes`` classes.

    Examples
    --------
    >>> at_chance(0.11, 10), at_chance(0.40, 10), at_chance(0.54, 2)
    (True, False, True)
    """
    chance = 1.0 / max(n_classes, 1)
    return balanced_accuracy <= chance + COLLAPSE_MARGIN * (1.0 - chance)

_tf_configured = False


def import_keras(threads: int | None = None):
    """Import Keras on TensorFlow quietly, with thread pools sized to the machine.

    TensorFlow's C++ start-up notes (oneDNN, CUDA, absl) go straight to file
    descriptor 2 and ignore ``TF_CPP_MIN_LOG_LEVEL``, so stderr is pointed
    at /dev/null while TensorFlow and Keras are first imported. Thread pools
    can only be sized before TensorFlow starts its runtime; if another
    module started it first, its pools are kept.

    Parameters
    ----------
    threads : int or None
        Size of TensorFlow's thread pools on first use; None: the number of
        usable cores (``joblib.cpu_count()``, which respects CPU quotas).
        Training workers that each fit one split pass 1.

    Returns
    -------
    module
        ``keras``.
    """
    global _tf_configured
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    first = "tensorflow" not in sys.modules or "keras" not in sys.modules
    with _stderr_fd_silenced() if first else contextlib.nullcontext():
        import keras
        import tensorflow as tf

    if not _tf_configured:
        from absl import logging as absl_logging
        from joblib import cpu_count

        absl_logging.set_verbosity(absl_logging.ERROR)
        tf.get_logger().setLevel("ERROR")
        n_threads = threads or cpu_count()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n_threads)
            tf.config.threading.set_inter_op_parallelism_threads(n_threads)
        except RuntimeError:
            pass  # runtime already initialised elsewhere: its pools stay
        # A GPU is used when TensorFlow sees one. Several training workers
        # may share it, so each takes GPU memory as it needs it rather than
        # all of it at start (TensorFlow's default).
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass  # already initialised elsewhere
        _tf_configured = True
    return keras


@contextlib.contextmanager
def _stderr_fd_silenced():
    """Send file descriptor 2 to /dev/null (C++ writes bypass sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class KerasClassifier(ClassifierMixin, BaseEstimator):
    """Base of the Keras classifiers: everything but the network and the shape of its input.

    The training parameters (``epochs``, ``batch_size``, ``learning_rate``,
    ``patience``, ``min_epochs``, ``restarts``, ``validation_fraction``,
    ``class_weight``, ``random_state``, ``verbose``, and ``dropout``) are
    stored by this ``__init__``, checked by :meth:`_check_params` and used
    by :meth:`_start_fit`, :meth:`_fit_guarded` and :meth:`_train`.
    A subclass adds its architecture parameters and four pieces:

    * ``_build(keras, ..., learning_rate)``: a compiled network;
    * :meth:`_check_X`: its input, checked (``reset`` on the fitting data);
    * :meth:`_architecture_checks`: its own parameters' checks;
    * :meth:`_params_from_layers`: its architecture, read back from a network.

    :meth:`predict_proba`, :meth:`predict`, :meth:`_given_validation` and
    :meth:`from_keras_model` are shared.
    """

    #: Rows per call of ``model_.predict``.
    predict_batch = 2048
    #: The only layer classes the network has: a saved file naming any other is refused.
    LAYERS: frozenset[str] = frozenset()

    def __init__(self, *, dropout: float, epochs: int, batch_size: int, learning_rate: float,
                 patience: int, min_epochs: int, restarts: int, validation_fraction: float,
                 class_weight: str | dict | None, random_state: int | None, verbose: int) -> None:
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

    # ------------------------------------------------------- subclass hooks

    def _check_X(self, X, *, reset: bool, name: str = "X") -> np.ndarray:
        """The input ``name``, checked and as float32; ``reset`` records its shape (fitting data)."""
        raise NotImplementedError

    def _architecture_checks(self) -> list[tuple[str, Any, bool, str]]:
        """``(name, value, ok, what it must be)`` of each architecture parameter."""
        raise NotImplementedError

    @classmethod
    def _params_from_layers(cls, model: Any) -> dict[str, Any]:
        """The architecture parameters of a trained network, read from its layers."""
        raise NotImplementedError

    # ---------------------------------------------------------------- shared

    def _check_params(self) -> None:
        """Refuse a parameter out of range, naming it and what it must be."""
        checks = [
            *self._architecture_checks(),
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
            ("class_weight", self.class_weight,
             self.class_weight is None or self.class_weight == "balanced"
             or isinstance(self.class_weight, dict), "None, 'balanced' or a dict"),
        ]
        for name, value, ok, what in checks:
            if not ok:
                raise ValueError(f"{name}={value!r} must be {what}")

    def _start_fit(self, y, n: int, groups):
        """Check the labels and groups of ``n`` rows; set ``classes_``; start Keras, seeded.

        Returns
        -------
        keras : module
        y_idx : np.ndarray of int
            Each row's class position in ``classes_``.
        groups : np.ndarray or None
        """
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"y has shape {y.shape}; expected ({n},), one label per row")
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two classes; y holds only "
                             f"{self.classes_[0]!r}")
        groups = aligned("groups", groups, n)
        keras = import_keras()
        if self.random_state is not None:
            keras.utils.set_random_seed(int(self.random_state))
        return keras, y_idx, groups

    def _given_validation(self, X_val, y_val) -> tuple[np.ndarray, np.ndarray] | None:
        """(inputs, class positions) of a given validation part, or None if no row is usable."""
        X_val = self._check_X(X_val, reset=False, name="X_val")
        y_val = np.asarray(y_val)
        if y_val.shape != (len(X_val),):
            raise ValueError(f"y_val has shape {y_val.shape}; expected ({len(X_val)},)")
        known = self._known_validation(y_val)
        if known is None:
            return None
        return np.ascontiguousarray(X_val[known]), np.searchsorted(self.classes_, y_val[known])

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like
            Rows shaped like the fitting data.

        Returns
        -------
        np.ndarray [shape=(n_samples, n_classes), dtype=float64]
            Rows sum to 1; columns follow :attr:`classes_`.
        """
        check_is_fitted(self, "model_")
        return self._probabilities(self._check_X(X, reset=False))

    @classmethod
    def from_keras_model(cls, model: Any, classes: Sequence[Any], **params: Any) -> KerasClassifier:
        """A fitted classifier around a trained network (when loading a model bundle).

        The architecture parameters are read back from the network's layers
        so ``get_params`` tells the truth; ``params`` sets the others.

        Parameters
        ----------
        model : keras.Model
            Network with ``len(classes)`` softmax outputs (from
            :func:`load_keras_model`).
        classes : sequence
            Labels of the output units, in order.
        **params
            Other constructor parameters to record (``epochs``, ...).

        Raises
        ------
        ValueError
            The network's outputs do not match ``classes``, or its input is
            not what this classifier takes.
        """
        classes = np.asarray(list(classes))
        n_out = int(model.output_shape[-1])
        if n_out != len(classes):
            raise ValueError(f"the Keras model has {n_out} outputs but {len(classes)} classes were given")
        for name, value in cls._params_from_layers(model).items():
            params.setdefault(name, value)
        clf = cls(**params)
        clf.model_ = model
        clf.classes_ = classes
        clf._fitted_input(model)
        return clf

    def _fitted_input(self, model: Any) -> None:
        """Record the input shape of a loaded network (``n_features_in_``, ``input_shape_``)."""
        raise NotImplementedError

    def _validation_split(self, y_idx: np.ndarray, groups: np.ndarray | None):
        """(train rows, validation rows or None) for early stopping."""
        all_rows = np.arange(len(y_idx))
        if not self.validation_fraction or len(y_idx) * self.validation_fraction < MIN_VALIDATION_ROWS:
            return all_rows, None
        train, val = validation_split(y_idx, groups, self.validation_fraction, self.random_state)
        if len(train) == 0 or len(val) == 0:
            return all_rows, None
        return train, val

    def _known_validation(self, y_val) -> np.ndarray | None:
        """Rows of a given validation part whose class was trained on, or None if none is."""
        known = np.isin(np.asarray(y_val), self.classes_)
        return known if known.any() else None

    def _loss_weights(self, y_train: np.ndarray) -> dict[int, float] | None:
        """``class_weight`` as Keras takes it: class position -> weight."""
        if self.class_weight is None:
            return None
        present = np.unique(y_train)
        if self.class_weight == "balanced":
            weights = compute_class_weight("balanced", classes=present, y=y_train)
            return {int(c): float(w) for c, w in zip(present, weights)}
        unknown = set(self.class_weight) - set(self.classes_.tolist())
        if unknown:
            raise ValueError(f"class_weight names unknown class(es) {sorted(map(str, unknown))}")
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        weights = {i: 1.0 for i in range(len(self.classes_))}
        weights.update({index[c]: float(w) for c, w in self.class_weight.items()})
        return weights

    def _train(self, keras, X_fit, y_fit: np.ndarray,
               validation_data: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Fit ``model_``, with early stopping when there is validation data; record how it went.

        ``X_fit`` is an array (``y_fit`` its labels), or a
        :class:`keras.utils.PyDataset` yielding batches (``y_fit`` then
        gives the class weights only).
        """
        callbacks = []
        if validation_data is not None:
            # Not before min_epochs: on hard data a network's validation loss can stay flat for
            # its first ten epochs or so before it finds the signal; stopping (and restoring the
            # best weights) inside that plateau left a network at chance.
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=self.patience, restore_best_weights=True,
                start_from_epoch=min(self.min_epochs, max(self.epochs - 1, 0))))
        if isinstance(X_fit, np.ndarray):
            data = {"x": X_fit, "y": y_fit, "batch_size": self.batch_size, "shuffle": True}
        else:  # a keras.utils.PyDataset: it batches and shuffles itself (fresh augmentation)
            data = {"x": X_fit}
        history = self.model_.fit(
            **data, validation_data=validation_data, epochs=self.epochs,
            class_weight=self._loss_weights(y_fit), callbacks=callbacks, verbose=self.verbose,
        )
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self.n_epochs_ = len(self.history_.get("loss", []))
        val_loss = self.history_.get("val_loss")
        self.best_epoch_ = int(np.argmin(val_loss)) + 1 if val_loss else None

    def _fit_guarded(self, keras, build, X_fit, y_fit: np.ndarray,
                     validation_data: tuple[np.ndarray, np.ndarray] | None,
                     check: tuple[np.ndarray, np.ndarray]) -> None:
        """Fit a fresh network from ``build(learning_rate)``; restart a fit that ends at chance.

        A fit ends at chance when the balanced accuracy of its kept weights
        on the held-out part (``validation_data``, else ``check``: the
        training rows) is within :data:`COLLAPSE_MARGIN` of the way from
        chance to perfect (:func:`at_chance`). When such a fit stopped early
        or diverged (a non-finite training loss, or one that ended above its first
        epoch's), it is fitted again from another
        seed with the learning rate times :data:`RESTART_RATE` (and at most
        :data:`SAFE_RATE`), up to ``restarts`` times; the best attempt's network is kept. Every
        attempt is recorded in ``attempts_`` and ``collapsed_`` says whether
        the kept one is still at chance.
        """
        attempts, best = [], None
        X_check, y_check = validation_data if validation_data is not None else check
        for attempt in range(int(self.restarts) + 1):
            seed = None if self.random_state is None else int(self.random_state) + _RESTART_SEED * attempt
            if seed is not None:
                keras.utils.set_random_seed(seed)
            rate = float(self.learning_rate)
            for _ in range(attempt):
                rate = min(rate * RESTART_RATE, SAFE_RATE)
            self.model_ = build(rate)
            self._train(keras, X_fit, y_fit, validation_data)
            predicted = np.argmax(self.model_.predict(X_check, batch_size=self.predict_batch,
                                                      verbose=0), axis=1)
            score = float(balanced_accuracy_score(y_check, predicted))
            losses = self.history_.get("loss", [])
            # Diverged: a non-finite loss, or one that ended above where it started.
            diverged = not np.all(np.isfinite(losses)) or (len(losses) > 1 and losses[-1] > losses[0])
            record = {"attempt": attempt, "seed": seed, "learning_rate": rate,
                      "epochs": self.n_epochs_, "best_epoch": self.best_epoch_,
                      "balanced_accuracy": round(score, 4),
                      "collapsed": at_chance(score, len(np.unique(y_check))),
                      "stopped_early": self.n_epochs_ < self.epochs, "diverged": diverged}
            attempts.append(record)
            if best is None or score > best[0]:
                best = (score, self.model_, self.history_, self.n_epochs_, self.best_epoch_)
            # A restart helps a fit that stopped early or diverged; one that used all its
            # epochs and is still at chance needs more epochs, not another start.
            if not record["collapsed"] or not (record["stopped_early"] or diverged):
                break
        _, self.model_, self.history_, self.n_epochs_, self.best_epoch_ = best
        self.attempts_ = attempts
        self.collapsed_ = at_chance(best[0], len(np.unique(y_check)))

    def _probabilities(self, X: np.ndarray) -> np.ndarray:
        """``model_``'s softmax outputs as float64 rows that sum to 1."""
        import_keras()
        proba = np.asarray(self.model_.predict(X, batch_size=self.predict_batch, verbose=0),
                           dtype=np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """Most probable class of each row, np.ndarray [shape=(n_samples,)]."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def aligned(name: str, values, n: int) -> np.ndarray | None:
    """``values`` as an array of one value per row (``n``), or None if not given."""
    if values is None:
        return None
    values = np.asarray(values)
    if values.shape != (n,):
        raise ValueError(f"{name} has shape {values.shape}; expected ({n},), one value per row")
    return values
