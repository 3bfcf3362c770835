"""Save and load a trained model as a bundle directory, without pickle.

A bundle is everything ``python -m classify predict`` needs to label new
clips: the fitted model, its class names, the feature columns in model order
and the extraction parameters copied from ``features.json`` (for a CNN: the
patch parameters from ``patches.json`` instead). Layout, by ``kind``::

    model/
        bundle.json      format name + version, kind, classes, columns, features_meta,
                         [segment], [patch_params], library versions, file checksums
        pipeline.skops   the whole scikit-learn Pipeline       "sklearn", or
        scaler.skops     the Pipeline minus its final step   } "keras-mlp", or
        mlp.keras        the Keras model (native format)     }
        cnn.keras        the CNN (native format)              } "keras-cnn"
        cnn.json         classes, patch parameters, checksum  } (classify.cnn.save_cnn)

Loading never runs code from the bundle: the ``.skops`` files are loaded
only after every type they contain has been checked against an explicit
allow-list of scikit-learn/numpy types, and Keras loads in safe mode
(no Python lambdas; a CNN file holding any layer type the CNN of
:mod:`classify.cnn` does not have is refused too). TensorFlow is imported
only when a Keras bundle is saved or loaded, so importing this module
stays light.

A CNN bundle (kind ``keras-cnn``) has no feature columns (``[]``) and no
extraction parameters (``{}``); ``patch_params`` says how ``predict``
computes the log-mel patch of a new clip
(:func:`features.patches.patch_files`).

A model trained on a segment table (one row per window of a clip) records
its windows in ``segment`` (``{"seconds": S, "hop": H, "last": "pad" |
"drop"}``, from features.json); ``predict`` then cuts new clips the same
way and pools the windows. Such a bundle is written as format 2, so a
version of this package that cannot cut windows refuses it instead of
labelling whole clips with a window model.
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import skops.io as sio
from sklearn.pipeline import Pipeline

from features.compute import feature_columns as params_feature_columns
from features.errors import FeaturesError
from features.io.atomic import atomic_dir, file_sha256
from features.params import FeatureParams

from .errors import BundleError

FORMAT_NAME = "soundfeatures-model-bundle"
#: The newest format this package reads and writes: 2 adds ``segment``;
#: a bundle without it is still written as 1.
FORMAT_VERSION = 2
SEGMENT_LAST = ("pad", "drop")
BUNDLE_JSON = "bundle.json"
PIPELINE_FILE = "pipeline.skops"
SCALER_FILE = "scaler.skops"
KERAS_FILE = "mlp.keras"
CNN_KERAS_FILE = "cnn.keras"
CNN_JSON_FILE = "cnn.json"
KIND_SKLEARN = "sklearn"
KIND_KERAS_MLP = "keras-mlp"
KIND_KERAS_CNN = "keras-cnn"
_FILES = {KIND_SKLEARN: (PIPELINE_FILE,), KIND_KERAS_MLP: (SCALER_FILE, KERAS_FILE),
          KIND_KERAS_CNN: (CNN_KERAS_FILE, CNN_JSON_FILE)}
_KERAS_KINDS = (KIND_KERAS_MLP, KIND_KERAS_CNN)

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

# Library versions recorded in bundle.json (key -> distribution name).
_LIBRARIES = {
    "sklearn": "scikit-learn",
    "skops": "skops",
    "numpy": "numpy",
    "keras": "keras",
    "tensorflow": "tensorflow",
}


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
    from features.io.storage import is_url, redact

    given = os.fspath(dataset)
    wanted = redact(given).rstrip("/") if is_url(given) else str(Path(given).resolve())
    root = bundle.dataset_root
    trained = None if root is None else (root.rstrip("/") if is_url(root) else str(Path(root).resolve()))
    if trained != wanted:
        raise BundleError(
            f"the model {bundle.path} was trained on {root or 'an unknown dataset'}, not on "
            f"{redact(given)}; say which model to use (MODEL=path/to/model, or RUN=path/to/run)")


# --------------------------------------------------------------------- save


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
        ``cnn.json`` (:func:`classify.cnn.save_cnn`); anything else as
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
    >>> save_bundle("run/model", model_name="logreg", estimator=pipe,
    ...             class_names=list(pipe.classes_), feature_columns=cols,
    ...             features_meta={"params": FeatureParams().to_dict()})
    ... # doctest: +SKIP
    """
    directory = Path(directory)
    kind = _kind_of(estimator)
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
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION if segment is not None else 1,
        "package_version": _version("soundfeatures"),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model_name": model_name,
        "kind": kind,
        "class_names": class_names,
        "feature_columns": feature_columns,
        "features_meta": features_meta,
        "versions": {key: _version(dist) for key, dist in _LIBRARIES.items()},
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
            meta["files"] = {name: file_sha256(tmp / name) for name in _FILES[kind]}
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
    from .cnn import save_cnn

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
        "format": FORMAT_NAME,
        "format_version": 1,
        "package_version": _version("soundfeatures"),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model_name": model_name,
        "kind": KIND_KERAS_CNN,
        "final_step": estimator.steps[-1][0] if isinstance(estimator, Pipeline) else model_name,
        "class_names": class_names,
        "feature_columns": [],
        "features_meta": {},
        "patch_params": None,
        "patches": patches_meta,
        "versions": {key: _version(dist) for key, dist in _LIBRARIES.items()},
    }
    _check_replaceable(directory)
    try:
        with atomic_dir(directory) as tmp:
            save_cnn(cnn, tmp, patch_params=patch_params)
            meta["patch_params"] = json.loads((tmp / CNN_JSON_FILE).read_text(encoding="utf-8"))["patch_params"]
            meta["files"] = {name: file_sha256(tmp / name) for name in _FILES[KIND_KERAS_CNN]}
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
    params = _params_from_meta(features_meta, "features_meta")
    _check_columns(feature_columns, params, "feature_columns")
    return class_names, feature_columns


def check_segment(segment: Any, where: str) -> dict[str, Any]:
    """The window settings ``{"seconds", "hop", "last"}``, checked; ``hop`` defaults to ``seconds``.

    Examples
    --------
    >>> check_segment({"seconds": 3, "last": "pad"}, "features.json")
    {'seconds': 3.0, 'hop': 3.0, 'last': 'pad'}
    """
    if not isinstance(segment, dict):
        raise BundleError(f"{where}: 'segment' must be an object with seconds, hop and last, "
                          f"not {segment!r}; retrain on a table from `features extract --segment`")
    seconds, hop, last = segment.get("seconds"), segment.get("hop"), segment.get("last", "pad")
    hop = seconds if hop is None else hop
    for name, value in (("seconds", seconds), ("hop", hop)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise BundleError(f"{where}: segment {name}={value!r} must be a positive number of "
                              "seconds; retrain on a table from `features extract --segment`")
    if last not in SEGMENT_LAST:
        raise BundleError(f"{where}: segment last={last!r} must be one of {', '.join(SEGMENT_LAST)}")
    return {"seconds": float(seconds), "hop": float(hop), "last": last}


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


# --------------------------------------------------------------------- load


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
    >>> bundle = load_bundle("data/output/demo/run/model")  # doctest: +SKIP
    >>> bundle.estimator.predict_proba(X).shape  # doctest: +SKIP
    (n_clips, len(bundle.class_names))
    """
    directory = Path(directory)
    meta = _read_meta(directory)
    kind = meta["kind"]
    for name in _FILES[kind]:
        _check_file(directory, name, meta)
    if kind == KIND_KERAS_CNN:
        return _load_cnn_bundle(directory, meta)
    params = _params_from_meta(meta["features_meta"], f"{directory / BUNDLE_JSON}")
    _check_columns(meta["feature_columns"], params, f"{directory / BUNDLE_JSON}")
    _warn_on_version_drift(directory, meta)
    if kind == KIND_SKLEARN:
        estimator = _load_skops(directory / PIPELINE_FILE, meta)
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
    from features.params import PatchParams

    from .cnn import load_cnn

    _warn_on_version_drift(directory, meta)
    loaded = load_cnn(directory)
    try:
        recorded = PatchParams.from_dict(meta["patch_params"])
    except (FeaturesError, TypeError, ValueError) as exc:
        raise BundleError(f"{directory / BUNDLE_JSON}: invalid patch_params ({exc}); retrain") from None
    if recorded != loaded.patch_params:
        raise BundleError(f"{directory / BUNDLE_JSON} and {directory / CNN_JSON_FILE} record "
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
    if not path.is_file():
        raise BundleError(f"{directory} is not a model bundle: {BUNDLE_JSON} is missing; "
                          "pass the model/ folder written by `python -m classify train`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc}; retrain to write a new bundle") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise BundleError(f"{path} has unknown format {found!r} (expected {FORMAT_NAME!r}); "
                          "it was not written by `python -m classify train`")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BundleError(f"{path} has unknown format_version {version!r}; "
                          f"this package reads bundle format {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"bundle format {version} was written by a newer version"
            f" (soundfeatures {meta.get('package_version', '?')}); upgrade the package"
            f" (soundfeatures {_version('soundfeatures')} reads bundle format {FORMAT_VERSION})"
            f" or retrain the model with this one: {path}")
    _check_meta_fields(path, meta)
    return meta


def _check_meta_fields(path: Path, meta: dict[str, Any]) -> None:
    expected = {
        "model_name": str, "kind": str, "class_names": list, "feature_columns": list,
        "features_meta": dict, "files": dict,
    }
    for key, typ in expected.items():
        if not isinstance(meta.get(key), typ):
            raise BundleError(f"{path} is damaged: {key!r} is missing or not a "
                              f"{typ.__name__}; retrain to write a new bundle")
    if meta["kind"] not in _FILES:
        raise BundleError(f"{path} has unknown model kind {meta['kind']!r} "
                          f"(known: {', '.join(_FILES)}); upgrade the package")
    if meta["kind"] in _KERAS_KINDS and not isinstance(meta.get("final_step"), str):
        raise BundleError(f"{path} is damaged: 'final_step' is missing; retrain")
    if meta["kind"] == KIND_KERAS_CNN and not isinstance(meta.get("patch_params"), dict):
        raise BundleError(f"{path} is damaged: 'patch_params' is missing or not an object; retrain")


def _check_file(directory: Path, name: str, meta: dict[str, Any]) -> None:
    path = directory / name
    if not path.is_file():
        raise BundleError(f"model bundle {directory} is incomplete: {name} is missing; "
                          "copy the whole model/ folder or retrain")
    expected = meta["files"].get(name)
    if expected != file_sha256(path):
        raise BundleError(f"{path} does not match its checksum in {BUNDLE_JSON}: the file "
                          "was modified or is corrupt; copy the bundle again or retrain")


def _params_from_meta(features_meta: dict[str, Any], where: str) -> FeatureParams:
    try:
        return FeatureParams.from_dict(features_meta["params"])
    except (FeaturesError, KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{where}: invalid extraction parameters 'params' "
                          f"({exc}); retrain from a table written by `python -m features "
                          "extract`") from None


def _check_columns(columns: list[str], params: FeatureParams, where: str) -> None:
    produced = params_feature_columns(params)
    if list(columns) != list(produced):
        only_model = [c for c in columns if c not in produced][:5]
        only_params = [c for c in produced if c not in columns][:5]
        raise BundleError(
            f"{where}: the model's {len(columns)} feature columns do not match the "
            f"{len(produced)} the extraction parameters (preset {params.preset.value}) "
            f"produce (model only: {only_model}, extractor only: {only_params}, or a "
            "different order); retrain on a table from `python -m features extract`")


def _warn_on_version_drift(directory: Path, meta: dict[str, Any]) -> None:
    libraries = ["sklearn"] + (["keras"] if meta["kind"] in _KERAS_KINDS else [])
    recorded = meta.get("versions") or {}
    for key in libraries:
        then, now = recorded.get(key), _version(_LIBRARIES[key])
        if then and _minor(then) != _minor(now):
            warnings.warn(f"model bundle {directory} was written with {_LIBRARIES[key]} "
                          f"{then}, installed is {now}: predictions may differ; retrain "
                          "or install the recorded version", UserWarning, stacklevel=3)


def _load_skops(path: Path, meta: dict[str, Any]) -> Any:
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
            f"{_version('scikit-learn')}): {type(exc).__name__}: {exc}; "
            "retrain or install the recorded version") from None


def _load_mlp(directory: Path, meta: dict[str, Any]) -> Pipeline:
    scaler = _load_skops(directory / SCALER_FILE, meta)
    steps = list(scaler.steps) if isinstance(scaler, Pipeline) else [("scaler", scaler)]
    path = directory / KERAS_FILE
    from .keras_base import load_keras_model
    from .mlp import KerasMLPClassifier

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


# ------------------------------------------------------------------ helpers


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])

