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
import json
import os
import sys
import zipfile
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import balanced_accuracy_score
from sklearn.utils.class_weight import compute_class_weight

from .errors import BundleError
from .inner import validation_split

__all__ = ["KerasClassifier", "archive_classes", "at_chance", "import_keras",
           "load_keras_model"]

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


# What every network saved here holds besides its layers: its dtype policy,
# weight initialisers, the optimiser of its compile config, and tensor
# references between the layers of a functional model.
_ARCHIVE_COMMON = frozenset({
    ("keras", "DTypePolicy"), ("keras.initializers", "GlorotUniform"),
    ("keras.initializers", "Zeros"), ("keras.initializers", "Ones"),
    ("keras.optimizers", "Adam"), (None, "__keras_tensor__"),
})
# The files of a .keras archive; anything else (an assets/ folder) was not written here.
_ARCHIVE_FILES = frozenset({"metadata.json", "config.json", "model.weights.h5"})


def archive_classes(path: str | os.PathLike) -> set[tuple[str | None, str]]:
    """Every ``(module, class_name)`` named in the ``config.json`` of a ``.keras`` archive.

    Read with :mod:`zipfile` and :mod:`json` only: nothing in the archive is
    deserialised or run.

    Raises
    ------
    BundleError
        The file is not a ``.keras`` archive, holds other files, or its
        ``config.json`` is not JSON.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            extra = sorted(set(archive.namelist()) - _ARCHIVE_FILES)
            if extra:
                raise BundleError(f"{path} holds file(s) {extra[:5]} that a network saved by "
                                  "this package never has; refusing to load it")
            config = json.loads(archive.read("config.json").decode("utf-8"))
    except (OSError, KeyError, UnicodeDecodeError, ValueError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path} is not a readable .keras file ({type(exc).__name__}: {exc}); "
                          "retrain or copy the bundle again") from None
    found: set[tuple[str | None, str]] = set()
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "class_name" in node:
                found.add((node.get("module"), str(node["class_name"])))
                registered = node.get("registered_name")
                if registered not in (None, node["class_name"]):
                    found.add((node.get("module"), str(registered)))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def load_keras_model(path: str | os.PathLike, layers: frozenset[str], model_class: str,
                     versions: dict[str, Any] | None = None):
    """Load a network saved by this package, refusing any class it never holds, before Keras reads it.

    Every class named in the archive's ``config.json`` (layers, the model,
    initialisers, the optimiser) is checked against ``layers``, the model
    class ``model_class`` and the few classes every saved network has,
    *before* any deserialisation; then Keras loads it in safe mode (no
    Python lambdas).

    Parameters
    ----------
    path : path
        The ``.keras`` file.
    layers : frozenset of str
        The layer classes (module ``keras.layers``) the network may hold.
    model_class : str
        ``Sequential`` or ``Functional``.
    versions : dict, optional
        The library versions recorded beside the file, for the message when
        the installed Keras cannot read it.

    Raises
    ------
    BundleError
        A foreign class (named in the message), a damaged file, or Keras
        refusing it.
    """
    allowed = _ARCHIVE_COMMON | {("keras.layers", name) for name in layers} | {
        ("keras", model_class), ("keras.src.models.functional", model_class)}
    foreign = sorted(f"{name} ({module or 'no module'})" for module, name in archive_classes(path)
                     if (module, name) not in allowed)
    if foreign:
        raise BundleError(f"{path} names class(es) {', '.join(foreign[:5])} that a network saved "
                          "by this package never has; refusing to load it (loading could run "
                          "their code)")
    keras = import_keras()
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - safe-mode refusals are ValueErrors, drift varies
        from importlib.metadata import version

        raise BundleError(
            f"cannot load {path} safely (written with keras {(versions or {}).get('keras', '?')}, "
            f"installed {version('keras')}): {type(exc).__name__}: {exc}; retrain with this "
            "installation") from None


class KerasClassifier(ClassifierMixin, BaseEstimator):
    """Base of the Keras classifiers: what ``fit`` and ``predict`` share.

    Subclasses set ``validation_fraction``, ``random_state``,
    ``class_weight``, ``patience``, ``epochs``, ``batch_size`` and
    ``verbose`` in ``__init__``; :meth:`_train` sets ``model_``'s learned
    record (``history_``, ``n_epochs_``, ``best_epoch_``).
    """

    #: Rows per call of ``model_.predict``.
    predict_batch = 2048

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
                start_from_epoch=min(getattr(self, "min_epochs", 0), max(self.epochs - 1, 0))))
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
        for attempt in range(int(getattr(self, "restarts", 0)) + 1):
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
