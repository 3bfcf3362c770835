"""Loading model files without running code from them: skops under an allow-list, Keras in safe mode.

Both loaders check a file *before* the library deserialises it: every type
a ``.skops`` file holds must be on :data:`TRUSTED_SKOPS_TYPES`, and every
class a ``.keras`` archive's ``config.json`` names must be one the network
saved by this package has (:func:`load_keras_model`). Anything else is
refused with a message naming it.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import skops.io as sio

from features.engine.versions import version_of

from ..errors import BundleError
from ..keras_base import import_keras

__all__ = ["TRUSTED_SKOPS_TYPES", "archive_classes", "load_keras_model", "load_skops"]

# Types skops does not trust by default but that our baselines need; each is
# plain fitted state (tree arrays, neighbour indices, calibrators) whose
# loading runs no user code. Anything else in a .skops file is refused.
TRUSTED_SKOPS_TYPES = frozenset({
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.SEuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.calibration._TemperatureScaling",
    # Our two scikit-learn subclasses (classify.models): they add a fit
    # that takes groups and keep their parents' fitted state and loading.
    "classify.models.GroupCalibratedClassifierCV",
    "classify.models.GroupHistGradientBoostingClassifier",
})

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
        raise BundleError(
            f"cannot load {path} safely (written with keras {(versions or {}).get('keras', '?')}, "
            f"installed {version_of('keras')}): {type(exc).__name__}: {exc}; retrain with this "
            "installation") from None


def load_skops(path: Path, meta: dict[str, Any]) -> Any:
    """Load a ``.skops`` file whose every type is on :data:`TRUSTED_SKOPS_TYPES`; else refuse it."""
    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a bad file
        raise BundleError(f"{path} is not a readable skops file ({exc}); retrain") from None
    refused = sorted(set(found) - TRUSTED_SKOPS_TYPES)
    if refused:
        raise BundleError(f"{path} contains type(s) outside the allow-list: {', '.join(refused)}; "
                          "refusing to load it because loading could run their code. "
                          "Only bundles written by `python -m classify train` are accepted")
    try:
        return sio.load(path, trusted=list(found))
    except Exception as exc:  # noqa: BLE001 - library drift surfaces as many types
        raise BundleError(
            f"cannot load {path} (written with scikit-learn "
            f"{(meta.get('versions') or {}).get('sklearn', '?')}, installed "
            f"{version_of('scikit-learn')}): {type(exc).__name__}: {exc}; "
            "retrain or install the recorded version") from None
