"""Audio feature extraction: one row of librosa features per labelled clip.

Importing the package is light (no librosa, pandas or TensorFlow); the
public names below are loaded on first use.

Usage::

    from features import FeatureParams, extract_dataset
    extract_dataset("data/demo", "data/output/demo/features", FeatureParams())
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    AudioReadError,
    BadAudioError,
    ClusterError,
    DatasetLayoutError,
    ExtractionInterrupted,
    FeaturesError,
    OutputBusyError,
    OutputFolderError,
    OutputMismatchError,
    UsageError,
)
from .params import FeatureParams, Preset

# public name -> submodule that defines it (imported lazily: librosa is slow to load)
_LAZY = {
    "extract_dataset": "extract",
    "extract_files": "extract",
    "ExtractResult": "extract",
    "extract_patches": "patches",
    "discover": "io.datasets",
    "Dataset": "io.datasets",
    "ErrorRecord": "io.datasets",
    "load_audio": "io.audio",
    "AudioInfo": "io.audio",
    "verify_outputs": "engine.outputs",
    "RunOptions": "engine.options",
    "FeatureAnalyser": "analysers",
    "PatchAnalyser": "analysers",
    "FeatureComputer": "compute",
    "feature_columns": "compute",
    "make_demo_dataset": "demo",
}

__all__ = [
    "AudioInfo",
    "AudioReadError",
    "BadAudioError",
    "ClusterError",
    "Dataset",
    "DatasetLayoutError",
    "ErrorRecord",
    "ExtractResult",
    "ExtractionInterrupted",
    "FeatureAnalyser",
    "FeatureComputer",
    "FeatureParams",
    "FeaturesError",
    "OutputBusyError",
    "OutputFolderError",
    "OutputMismatchError",
    "PatchAnalyser",
    "Preset",
    "RunOptions",
    "UsageError",
    "discover",
    "extract_dataset",
    "extract_files",
    "extract_patches",
    "feature_columns",
    "load_audio",
    "make_demo_dataset",
    "verify_outputs",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
