"""The bundle format: file names, kinds, the versioned JSON files, and what a model was trained on.

A bundle holds ``bundle.json`` (and, for a CNN, ``cnn.json``): each names its
format and the version it was written as. :func:`read_versioned` reads
both the same way and refuses, naming the file, one that is not JSON, is
another format, or is newer than this package reads.
"""
from __future__ import annotations

import datetime
import json
import warnings
from pathlib import Path
from typing import Any

from features.compute import feature_columns as params_feature_columns
from features.engine.versions import version_of
from features.errors import FeaturesError
from features.params import SEGMENT_LAST, FeatureParams

from ..errors import BundleError
from ..registry import BUNDLE_KINDS
from ..values import is_int

__all__ = [
    "BUNDLE_JSON",
    "CNN_FILE",
    "CNN_JSON",
    "FILES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "KERAS_FILE",
    "KERAS_KINDS",
    "KIND_KERAS_CNN",
    "KIND_KERAS_MLP",
    "KIND_SKLEARN",
    "LIBRARIES",
    "PIPELINE_FILE",
    "SCALER_FILE",
    "check_columns",
    "check_segment",
    "params_from_meta",
    "read_versioned",
    "versioned_header",
    "warn_on_version_drift",
]

FORMAT_NAME = "soundfeatures-model-bundle"
#: The newest format this package reads and writes: 2 adds ``segment``;
#: a bundle without it is still written as 1.
FORMAT_VERSION = 2
BUNDLE_JSON = "bundle.json"
PIPELINE_FILE = "pipeline.skops"
SCALER_FILE = "scaler.skops"
KERAS_FILE = "mlp.keras"
CNN_FILE = "cnn.keras"
CNN_JSON = "cnn.json"
KIND_SKLEARN, KIND_KERAS_MLP, KIND_KERAS_CNN = BUNDLE_KINDS
#: The model files of each kind, besides bundle.json.
FILES = {KIND_SKLEARN: (PIPELINE_FILE,), KIND_KERAS_MLP: (SCALER_FILE, KERAS_FILE),
         KIND_KERAS_CNN: (CNN_FILE, CNN_JSON)}
KERAS_KINDS = (KIND_KERAS_MLP, KIND_KERAS_CNN)

#: Library versions recorded in bundle.json (key -> distribution name).
LIBRARIES = {
    "sklearn": "scikit-learn",
    "skops": "skops",
    "numpy": "numpy",
    "keras": "keras",
    "tensorflow": "tensorflow",
}


def versioned_header(format_name: str, version: int) -> dict[str, Any]:
    """The fields every versioned file starts with: format, version, package version, time."""
    return {"format": format_name, "format_version": version,
            "package_version": version_of("soundfeatures"),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def read_versioned(path: Path, format_name: str, newest: int, *, what: str,
                   fields: dict[str, type], missing: str) -> dict[str, Any]:
    """Read a versioned JSON file of this package, checked.

    Parameters
    ----------
    path : Path
    format_name : str
        The ``format`` it must name.
    newest : int
        The newest ``format_version`` this package reads.
    what : str
        What the file is, for messages ("bundle", "CNN").
    fields : dict of str to type
        Fields it must have, and their JSON type.
    missing : str
        The message when the file does not exist.

    Raises
    ------
    BundleError
        Naming the file: missing, not JSON, another format, a version
        this package does not read (newer: upgrade), or a field missing.
    """
    if not path.is_file():
        raise BundleError(missing)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc}; retrain to write a new {what}") from None
    if not isinstance(meta, dict) or meta.get("format") != format_name:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise BundleError(f"{path} has unknown format {found!r} (expected {format_name!r}); "
                          "it was not written by `python -m classify train`")
    version = meta.get("format_version")
    if not is_int(version) or version < 1:
        raise BundleError(f"{path} has unknown format_version {version!r}; this package reads "
                          f"{what} format {newest}")
    if version > newest:
        raise BundleError(
            f"{what} format {version} was written by a newer version"
            f" (soundfeatures {meta.get('package_version', '?')}); upgrade the package"
            f" (soundfeatures {version_of('soundfeatures')} reads {what} format {newest})"
            f" or retrain the model with this one: {path}")
    for key, typ in fields.items():
        if not isinstance(meta.get(key), typ):
            raise BundleError(f"{path} is damaged: {key!r} is missing or not a "
                              f"{typ.__name__}; retrain to write a new {what}")
    return meta


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


def params_from_meta(features_meta: dict[str, Any], where: str) -> FeatureParams:
    """The extraction parameters recorded with a model, checked."""
    try:
        return FeatureParams.from_dict(features_meta["params"])
    except (FeaturesError, KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{where}: invalid extraction parameters 'params' "
                          f"({exc}); retrain from a table written by `python -m features "
                          "extract`") from None


def check_columns(columns: list[str], params: FeatureParams, where: str) -> None:
    """Refuse feature columns that are not the ones ``params`` produce, in order."""
    produced = params_feature_columns(params)
    if list(columns) != list(produced):
        only_model = [c for c in columns if c not in produced][:5]
        only_params = [c for c in produced if c not in columns][:5]
        raise BundleError(
            f"{where}: the model's {len(columns)} feature columns do not match the "
            f"{len(produced)} the extraction parameters (preset {params.preset.value}) "
            f"produce (model only: {only_model}, extractor only: {only_params}, or a "
            "different order); retrain on a table from `python -m features extract`")


def warn_on_version_drift(directory: Path, meta: dict[str, Any]) -> None:
    """Warn when a model was written with another minor version of scikit-learn (or Keras)."""
    libraries = ["sklearn"] + (["keras"] if meta["kind"] in KERAS_KINDS else [])
    recorded = meta.get("versions") or {}
    for key in libraries:
        then, now = recorded.get(key), version_of(LIBRARIES[key])
        if then and _minor(then) != _minor(now):
            warnings.warn(f"model bundle {directory} was written with {LIBRARIES[key]} "
                          f"{then}, installed is {now}: predictions may differ; retrain "
                          "or install the recorded version", UserWarning, stacklevel=3)


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])
