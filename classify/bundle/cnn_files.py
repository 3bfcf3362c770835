"""The CNN's own files in a bundle: ``cnn.keras`` (the network) and ``cnn.json`` (what it takes).

``cnn.json`` holds the classes, the patch parameters that make the
network's input, the estimator's parameters and the network file's
checksum; :func:`load_cnn` checks all of them against each other and loads
the network through the allow-listed Keras loader
(:func:`classify.bundle.safe.load_keras_model`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from features.engine.versions import version_of
from features.errors import FeaturesError
from features.io.atomic import file_sha256
from features.params import PatchParams

from ..augment import Augmentation
from ..cnn import KerasCNNClassifier
from ..errors import BundleError
from .format import CNN_FILE, CNN_JSON, read_versioned, versioned_header
from .safe import load_keras_model

__all__ = ["CNN_FORMAT_NAME", "CNN_FORMAT_VERSION", "LoadedCNN", "load_cnn", "save_cnn"]

CNN_FORMAT_NAME = "soundfeatures-cnn"
CNN_FORMAT_VERSION = 1


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
    if not isinstance(estimator, KerasCNNClassifier) or getattr(estimator, "model_", None) is None:
        raise BundleError(f"save_cnn needs a fitted KerasCNNClassifier; got {type(estimator).__name__}"
                          " (fit it first)")
    params = _patch_params(patch_params, "patch_params")
    if tuple(params.shape) != tuple(estimator.input_shape_):
        raise BundleError(f"patch_params make patches of shape {params.shape} but the network takes "
                          f"{tuple(estimator.input_shape_)}; pass the parameters of the training patches")
    folder = Path(folder)
    meta = {
        **versioned_header(CNN_FORMAT_NAME, CNN_FORMAT_VERSION),
        "keras_file": CNN_FILE,
        "classes": _json_classes(estimator.classes_),
        "input_shape": list(estimator.input_shape_),
        "patch_params": params.to_dict(),
        "patch_key": params.key(),
        "estimator_params": _json_params(estimator),
        "training": {"n_epochs": getattr(estimator, "n_epochs_", None),
                     "best_epoch": getattr(estimator, "best_epoch_", None),
                     "augmented": getattr(estimator, "augmented_", {})},
        "versions": {dist: version_of(dist) for dist in ("keras", "tensorflow", "numpy")},
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
    Usage::

        cnn = load_cnn("run/model")
        patches, paths, errors = patch_files(["clip.wav"], cnn.patch_params)
        cnn.estimator.predict_proba(patches)
    """
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
    return read_versioned(
        folder / CNN_JSON, CNN_FORMAT_NAME, CNN_FORMAT_VERSION, what="CNN",
        fields={"classes": list, "input_shape": list, "patch_params": dict, "sha256": dict},
        missing=(f"{folder} holds no CNN: {CNN_JSON} is missing; pass the folder written by "
                 "save_cnn (the model/ folder of a training run)"))


def _patch_params(value: Any, where: str):
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
