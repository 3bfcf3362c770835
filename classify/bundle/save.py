"""Saving a fitted model as a bundle folder, atomically, whatever its kind.

:func:`save_bundle` decides the kind from the estimator (a scikit-learn
pipeline, the Keras MLP behind its scaler, or the CNN), checks it against
the model registry and the table it was trained on, and writes the files
of that kind plus ``bundle.json`` into a staging folder that replaces the
old bundle in one rename (:func:`features.io.atomic.atomic_dir`).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import skops.io as sio
from sklearn.pipeline import Pipeline

from features.engine.versions import version_of
from features.io.atomic import atomic_dir, file_sha256

from ..errors import BundleError
from ..registry import MODELS
from .cnn_files import save_cnn
from .format import (
    BUNDLE_JSON,
    CNN_JSON,
    FILES,
    FORMAT_NAME,
    FORMAT_VERSION,
    KERAS_FILE,
    KIND_KERAS_CNN,
    KIND_KERAS_MLP,
    KIND_SKLEARN,
    LIBRARIES,
    PIPELINE_FILE,
    SCALER_FILE,
    check_columns,
    check_segment,
    params_from_meta,
    versioned_header,
)

__all__ = ["save_bundle"]


def save_bundle(
    directory: str | os.PathLike,
    *,
    model_name: str,
    estimator: Any,
    class_names: list[str],
    feature_columns: list[str] | None = None,
    features_meta: dict[str, Any] | None = None,
    segment: dict[str, Any] | None = None,
    patch_params: Any = None,
    patches_meta: dict[str, Any] | None = None,
) -> Path:
    """Write a fitted model as a bundle directory, atomically.

    The bundle is built in a staging folder beside ``directory`` and swapped
    into place (:func:`features.io.atomic.atomic_dir`), so a reader never sees
    half a bundle. An existing bundle
    is replaced; an existing non-empty directory that is not a bundle is
    refused rather than deleted.

    Parameters
    ----------
    directory : path
        Bundle directory to create or replace (e.g. ``RUN/model``).
    model_name : str
        Model name as in ``--models``.
    estimator : sklearn estimator
        Fitted; usually ``Pipeline(StandardScaler, classifier)``. A Pipeline
        whose final step is a ``KerasMLPClassifier`` is stored as
        ``scaler.skops`` + ``mlp.keras``; a ``KerasCNNClassifier`` (or a
        Pipeline ending in one, with no step before it) as ``cnn.keras`` +
        ``cnn.json`` (:func:`classify.bundle.cnn_files.save_cnn`); anything else as
        ``pipeline.skops``.
    class_names : list of str
        Labels in ``estimator.classes_`` order.
    feature_columns : list of str
        Columns of X the estimator was fitted on, in order; must equal the
        columns ``features_meta["params"]`` produce. Not for a CNN.
    features_meta : dict
        The training table's ``features.json`` dict; needs ``"params"``.
        Not for a CNN.
    segment : dict or None
        The windows the model was trained on (``features.json``'s
        ``segment``: ``seconds``, ``hop``, ``last``); None for whole clips.
    patch_params : PatchParams or dict
        A CNN's patch parameters (``read_patches(folder)["params"]``); only
        for a CNN, which needs them.
    patches_meta : dict or None
        What to record about the training patches (folder, checksum), for
        a CNN.

    Returns
    -------
    Path
        The bundle directory.

    Raises
    ------
    BundleError
        If an argument is inconsistent or the directory cannot be written.

    Examples
    --------
    Usage::

        save_bundle("run/model", model_name="logreg", estimator=pipe,
                    class_names=list(pipe.classes_), feature_columns=cols,
                    features_meta={"params": FeatureParams().to_dict()})

    """
    directory = Path(directory)
    kind = _kind_of(estimator)
    known = MODELS.get(model_name)
    if known is not None and known.bundle != kind:
        raise BundleError(f"model {model_name!r} is saved as a {known.bundle} bundle, but the "
                          f"estimator given is a {kind} model; give the estimator that "
                          f"{model_name!r} names, or another model_name")
    if kind == KIND_KERAS_CNN:
        return _save_cnn_bundle(directory, model_name=model_name, estimator=estimator,
                                class_names=class_names, feature_columns=feature_columns,
                                segment=segment, patch_params=patch_params, patches_meta=patches_meta)
    if patch_params is not None:
        raise BundleError(f"patch_params are for a CNN; {model_name!r} "
                          f"({type(estimator).__name__}) takes feature columns")
    class_names, feature_columns = _check_save_args(
        model_name, estimator, class_names, feature_columns, features_meta)
    if segment is not None:
        segment = check_segment(segment, "segment")
    meta = {
        **versioned_header(FORMAT_NAME, FORMAT_VERSION if segment is not None else 1),
        "model_name": model_name,
        "kind": kind,
        "class_names": class_names,
        "feature_columns": feature_columns,
        "features_meta": features_meta,
        "versions": {key: version_of(dist) for key, dist in LIBRARIES.items()},
    }
    if kind == KIND_KERAS_MLP:
        meta["final_step"] = estimator.steps[-1][0]
    if segment is not None:
        meta["segment"] = segment

    _check_replaceable(directory)
    try:
        with atomic_dir(directory) as tmp:
            if kind == KIND_SKLEARN:
                sio.dump(estimator, tmp / PIPELINE_FILE)
            else:
                sio.dump(estimator[:-1], tmp / SCALER_FILE)
                estimator[-1].model_.save(str(tmp / KERAS_FILE))
            meta["files"] = {name: file_sha256(tmp / name) for name in FILES[kind]}
            try:
                text = json.dumps(meta, indent=2)
            except (TypeError, ValueError) as exc:
                raise BundleError(f"features_meta cannot be written as JSON ({exc}); "
                                  "pass the dict read from features.json") from None
            (tmp / BUNDLE_JSON).write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"cannot write the bundle {directory}: {exc}") from None
    return directory


def _save_cnn_bundle(directory: Path, *, model_name, estimator, class_names, feature_columns,
                     segment, patch_params, patches_meta) -> Path:
    """The ``keras-cnn`` kind of :func:`save_bundle`: ``save_cnn`` inside the atomic write."""
    class_names = _check_names(model_name, estimator, class_names)
    if feature_columns:
        raise BundleError(f"{model_name!r} is a CNN: it takes log-mel patches, not feature "
                          f"columns ({len(feature_columns)} given)")
    if segment is not None:
        raise BundleError(f"{model_name!r} is a CNN trained on whole clips; it has no windows (segment)")
    if patch_params is None:
        raise BundleError(f"a CNN bundle needs the patch parameters of its training patches "
                          f"(patch_params=read_patches(folder)['params']) so `predict` can "
                          f"compute patches of new clips; none given for {model_name!r}")
    cnn = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    meta = {
        **versioned_header(FORMAT_NAME, 1),
        "model_name": model_name,
        "kind": KIND_KERAS_CNN,
        "final_step": estimator.steps[-1][0] if isinstance(estimator, Pipeline) else model_name,
        "class_names": class_names,
        "feature_columns": [],
        "features_meta": {},
        "patch_params": None,
        "patches": patches_meta,
        "versions": {key: version_of(dist) for key, dist in LIBRARIES.items()},
    }
    _check_replaceable(directory)
    try:
        with atomic_dir(directory) as tmp:
            save_cnn(cnn, tmp, patch_params=patch_params)
            meta["patch_params"] = json.loads((tmp / CNN_JSON).read_text(encoding="utf-8"))["patch_params"]
            meta["files"] = {name: file_sha256(tmp / name) for name in FILES[KIND_KERAS_CNN]}
            try:
                text = json.dumps(meta, indent=2)
            except (TypeError, ValueError) as exc:
                raise BundleError(f"patches_meta cannot be written as JSON ({exc})") from None
            (tmp / BUNDLE_JSON).write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"cannot write the bundle {directory}: {exc}") from None
    return directory


def _check_names(model_name, estimator, class_names) -> list[str]:
    if not isinstance(model_name, str) or not model_name:
        raise BundleError(f"model_name={model_name!r} must be a non-empty string")
    if not hasattr(estimator, "predict_proba"):
        raise BundleError(f"estimator {type(estimator).__name__} has no predict_proba; "
                          "the bundle needs class probabilities")
    class_names = [str(c) for c in class_names]
    if not class_names or len(set(class_names)) != len(class_names):
        raise BundleError(f"class_names={class_names!r} must be non-empty and unique")
    fitted = getattr(estimator, "classes_", None)
    if fitted is not None and [str(c) for c in fitted] != class_names:
        raise BundleError(f"class_names={class_names!r} do not match the estimator's "
                          f"classes_ {[str(c) for c in fitted]!r} (probability column order)")
    return class_names


def _check_save_args(model_name, estimator, class_names, feature_columns, features_meta):
    class_names = _check_names(model_name, estimator, class_names)
    if feature_columns is None:
        raise BundleError(f"feature_columns are needed for {model_name!r}: the columns of X it "
                          "was fitted on, in order")
    feature_columns = [str(c) for c in feature_columns]
    n_in = getattr(estimator, "n_features_in_", None)
    if n_in is not None and n_in != len(feature_columns):
        raise BundleError(f"estimator was fitted on {n_in} features but "
                          f"feature_columns has {len(feature_columns)}")
    if not isinstance(features_meta, dict) or not isinstance(features_meta.get("params"), dict):
        raise BundleError("features_meta must be the features.json dict with its 'params'; "
                          "without the extraction parameters `predict` cannot compute "
                          "features for new clips (keep features.json beside the table)")
    params = params_from_meta(features_meta, "features_meta")
    check_columns(feature_columns, params, "feature_columns")
    return class_names, feature_columns


def _kind_of(estimator: Any) -> str:
    # A CNN or MLP instance implies its module was imported; not importing
    # them for scikit-learn models keeps saving those independent of Keras code.
    cnn = sys.modules.get("classify.cnn")
    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) and estimator.steps else estimator
    if cnn is not None and isinstance(final, cnn.KerasCNNClassifier):
        if isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
            raise BundleError("a CNN pipeline must hold the KerasCNNClassifier alone (it "
                              f"standardises its patches itself); got steps {[n for n, _ in estimator.steps]}")
        if getattr(final, "model_", None) is None:
            raise BundleError("the KerasCNNClassifier is not fitted (no model_); fit it first")
        return KIND_KERAS_CNN
    if not isinstance(estimator, Pipeline):
        return KIND_SKLEARN
    mlp = sys.modules.get("classify.mlp")
    if mlp is None or not isinstance(estimator.steps[-1][1], mlp.KerasMLPClassifier):
        return KIND_SKLEARN
    if len(estimator.steps) < 2:
        raise BundleError("an MLP pipeline needs its scaler step before the "
                          "KerasMLPClassifier; got a one-step Pipeline")
    if getattr(estimator.steps[-1][1], "model_", None) is None:
        raise BundleError("the KerasMLPClassifier is not fitted (no model_); fit it first")
    return KIND_KERAS_MLP


def _check_replaceable(directory: Path) -> None:
    """Refuse to replace a file or a folder that is not a bundle."""
    if directory.exists() and not directory.is_dir():
        raise BundleError(f"bundle path {directory} is a file; choose a directory")
    if (directory.is_dir() and any(directory.iterdir())
            and not (directory / BUNDLE_JSON).is_file()):
        raise BundleError(f"{directory} exists and is not a model bundle (no {BUNDLE_JSON}); "
                          "refusing to replace it: choose another --out or remove it")
