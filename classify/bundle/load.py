"""Loading a bundle folder of any kind, checked, without running code from it.

:func:`load_bundle` reads ``bundle.json`` (:func:`~classify.bundle.format.read_versioned`),
checks every file against its checksum, and loads the model through the
allow-listed loaders of :mod:`classify.bundle.safe`. :func:`check_trained_on`
refuses a model that was trained on another dataset than the one given.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from sklearn.pipeline import Pipeline

from features.errors import FeaturesError
from features.io.atomic import file_sha256
from features.io.storage import is_url, redact
from features.params import FeatureParams, PatchParams

from ..errors import BundleError
from .cnn_files import load_cnn
from .format import (
    BUNDLE_JSON,
    CNN_JSON,
    FILES,
    FORMAT_NAME,
    FORMAT_VERSION,
    KERAS_FILE,
    KERAS_KINDS,
    KIND_KERAS_CNN,
    KIND_SKLEARN,
    PIPELINE_FILE,
    SCALER_FILE,
    check_columns,
    check_segment,
    params_from_meta,
    read_versioned,
    warn_on_version_drift,
)
from .safe import load_keras_model, load_skops

__all__ = ["Bundle", "check_trained_on", "load_bundle"]


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A loaded model bundle.

    Attributes
    ----------
    model_name : str
        Name of the model as in ``--models`` (``logreg``, ``mlp``, ...).
    estimator : object
        Fitted estimator; ``estimator.predict_proba(X)`` takes
        ``X`` np.ndarray [shape=(n_clips, len(feature_columns))] in
        ``feature_columns`` order (for a CNN: patches [shape=(n_clips,
        n_mels, n_frames)]) and returns [shape=(n_clips, n_classes)]
        with columns in ``class_names`` order.
    class_names : list of str
        Class labels, in probability-column order.
    feature_columns : list of str
        Feature columns the model takes, in order (``[]`` for a CNN).
    feature_params : FeatureParams or None
        The extraction parameters the model was trained on (None for a CNN).
    features_meta : dict
        The ``features.json`` dict of the training table (incl. ``params``;
        ``{}`` for a CNN).
    meta : dict
        The whole ``bundle.json``.
    path : Path or None
        The bundle directory it was loaded from.
    segment : dict or None
        ``{"seconds", "hop", "last"}`` of a model trained on windows; None
        for a model of whole clips.
    patch_params : features.params.PatchParams or None
        How to compute the patches a CNN takes; None for the other kinds.
    """

    model_name: str
    estimator: Any
    class_names: list[str]
    feature_columns: list[str]
    feature_params: FeatureParams | None
    features_meta: dict[str, Any]
    meta: dict[str, Any]
    path: Path | None = None
    segment: dict[str, Any] | None = None
    patch_params: Any = None

    @property
    def kind(self) -> str:
        """``sklearn``, ``keras-mlp`` or ``keras-cnn``."""
        return self.meta["kind"]

    @property
    def dataset_root(self) -> str | None:
        """The dataset the model was trained on, as its features.json (or patches.json) names it."""
        root = self.features_meta.get("root") or (self.meta.get("patches") or {}).get("root")
        return root if isinstance(root, str) and root else None


def check_trained_on(bundle: Bundle, dataset: str | os.PathLike) -> None:
    """Refuse ``bundle`` unless it was trained on ``dataset`` (a folder or URL).

    Raises
    ------
    BundleError
        Names the bundle, the dataset it was trained on and the one given.
    """
    given = os.fspath(dataset)
    wanted = redact(given).rstrip("/") if is_url(given) else str(Path(given).resolve())
    root = bundle.dataset_root
    trained = None if root is None else (root.rstrip("/") if is_url(root) else str(Path(root).resolve()))
    if trained != wanted:
        raise BundleError(
            f"the model {bundle.path} was trained on {root or 'an unknown dataset'}, not on "
            f"{redact(given)}; say which model to use (MODEL=path/to/model, or RUN=path/to/run)")


def load_bundle(directory: str | os.PathLike) -> Bundle:
    """Load a bundle written by :func:`save_bundle` without running its code.

    Parameters
    ----------
    directory : path
        The bundle directory (``RUN/model``).

    Returns
    -------
    Bundle

    Raises
    ------
    BundleError
        If the directory or a file is missing, the format is unknown or
        newer than this package reads, a checksum does not match, a
        ``.skops`` file contains a type outside the allow-list, the feature
        columns do not match the extraction parameters, or a model file
        cannot be read with the installed libraries.

    Examples
    --------
    Usage::

        bundle = load_bundle("data/output/demo/run/model")
        bundle.estimator.predict_proba(X).shape
        # -> (n_clips, len(bundle.class_names))
    """
    directory = Path(directory)
    meta = _read_meta(directory)
    kind = meta["kind"]
    for name in FILES[kind]:
        _check_file(directory, name, meta)
    if kind == KIND_KERAS_CNN:
        return _load_cnn_bundle(directory, meta)
    params = params_from_meta(meta["features_meta"], f"{directory / BUNDLE_JSON}")
    check_columns(meta["feature_columns"], params, f"{directory / BUNDLE_JSON}")
    warn_on_version_drift(directory, meta)
    if kind == KIND_SKLEARN:
        estimator = load_skops(directory / PIPELINE_FILE, meta)
    else:
        estimator = _load_mlp(directory, meta)
    _check_loaded(directory, estimator, meta)
    return Bundle(
        model_name=meta["model_name"],
        estimator=estimator,
        class_names=list(meta["class_names"]),
        feature_columns=list(meta["feature_columns"]),
        feature_params=params,
        features_meta=meta["features_meta"],
        meta=meta,
        path=directory,
        segment=None if meta.get("segment") is None else check_segment(meta["segment"], str(directory / BUNDLE_JSON)),
    )


def _load_cnn_bundle(directory: Path, meta: dict[str, Any]) -> Bundle:
    """A ``keras-cnn`` bundle: :func:`classify.cnn.load_cnn` (safe mode, known layers only)."""
    warn_on_version_drift(directory, meta)
    loaded = load_cnn(directory)
    try:
        recorded = PatchParams.from_dict(meta["patch_params"])
    except (FeaturesError, TypeError, ValueError) as exc:
        raise BundleError(f"{directory / BUNDLE_JSON}: invalid patch_params ({exc}); retrain") from None
    if recorded != loaded.patch_params:
        raise BundleError(f"{directory / BUNDLE_JSON} and {directory / CNN_JSON} record "
                          "different patch parameters; the bundle is inconsistent, retrain")
    estimator = Pipeline([(meta["final_step"], loaded.estimator)])
    _check_loaded(directory, estimator, meta)
    return Bundle(
        model_name=meta["model_name"], estimator=estimator, class_names=list(meta["class_names"]),
        feature_columns=[], feature_params=None, features_meta={}, meta=meta, path=directory,
        patch_params=loaded.patch_params,
    )


def _read_meta(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise BundleError(f"model bundle {directory} does not exist or is not a directory; "
                          "pass the model/ folder written by `python -m classify train` to --model")
    path = directory / BUNDLE_JSON
    meta = read_versioned(
        path, FORMAT_NAME, FORMAT_VERSION, what="bundle",
        fields={"model_name": str, "kind": str, "class_names": list, "feature_columns": list,
                "features_meta": dict, "files": dict},
        missing=(f"{directory} is not a model bundle: {BUNDLE_JSON} is missing; pass the "
                 "model/ folder written by `python -m classify train`"))
    if meta["kind"] not in FILES:
        raise BundleError(f"{path} has unknown model kind {meta['kind']!r} "
                          f"(known: {', '.join(FILES)}); upgrade the package")
    if meta["kind"] in KERAS_KINDS and not isinstance(meta.get("final_step"), str):
        raise BundleError(f"{path} is damaged: 'final_step' is missing; retrain")
    if meta["kind"] == KIND_KERAS_CNN and not isinstance(meta.get("patch_params"), dict):
        raise BundleError(f"{path} is damaged: 'patch_params' is missing or not an object; retrain")
    return meta


def _check_file(directory: Path, name: str, meta: dict[str, Any]) -> None:
    path = directory / name
    if not path.is_file():
        raise BundleError(f"model bundle {directory} is incomplete: {name} is missing; "
                          "copy the whole model/ folder or retrain")
    expected = meta["files"].get(name)
    if expected != file_sha256(path):
        raise BundleError(f"{path} does not match its checksum in {BUNDLE_JSON}: the file "
                          "was modified or is corrupt; copy the bundle again or retrain")


def _load_mlp(directory: Path, meta: dict[str, Any]) -> Pipeline:
    scaler = load_skops(directory / SCALER_FILE, meta)
    steps = list(scaler.steps) if isinstance(scaler, Pipeline) else [("scaler", scaler)]
    path = directory / KERAS_FILE
    from ..mlp import (
        KerasMLPClassifier,  # only for an MLP bundle: keeps scikit-learn bundles Keras-free
    )

    model = load_keras_model(path, KerasMLPClassifier.LAYERS, "Sequential", meta.get("versions"))
    try:
        mlp = KerasMLPClassifier.from_keras_model(model, list(meta["class_names"]))
    except ValueError as exc:
        raise BundleError(f"{path} does not fit {BUNDLE_JSON}: {exc}; retrain") from None
    return Pipeline(steps + [(meta["final_step"], mlp)])


def _check_loaded(directory: Path, estimator: Any, meta: dict[str, Any]) -> None:
    if not hasattr(estimator, "predict_proba"):
        raise BundleError(f"the model in {directory} ({type(estimator).__name__}) has no "
                          "predict_proba; retrain")
    classes = getattr(estimator, "classes_", None)
    if classes is not None and [str(c) for c in classes] != meta["class_names"]:
        raise BundleError(f"the model in {directory} predicts classes "
                          f"{[str(c) for c in classes]} but {BUNDLE_JSON} lists "
                          f"{meta['class_names']}; the bundle is inconsistent, retrain")
    n_in = getattr(estimator, "n_features_in_", None)
    if n_in is not None and n_in != len(meta["feature_columns"]):
        raise BundleError(f"the model in {directory} takes {n_in} features but "
                          f"{BUNDLE_JSON} lists {len(meta['feature_columns'])}; retrain")
