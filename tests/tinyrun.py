"""A real, tiny training run for the report tests: synthetic features for the demo clips.

The feature values are made up (class centres plus noise, so the models are
right most of the time but not always); the paths are the demo dataset's,
so the report can play the clips it shows.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from classify.options import TrainOptions
from classify.results import TrainResult
from classify.training import train
from features.compute import feature_columns
from features.io.atomic import write_json
from features.io.datasets import discover
from features.params import FeatureParams
from features.schema import build_schema
from features.table import write_csv, write_table

# The GTZAN preset's 26 columns: real feature names, so the bundle can be saved.
PARAMS = FeatureParams(preset="gtzan")
FEATURES = feature_columns(PARAMS)
N_FOLDS = 3


def demo_table(root: Path, folder: Path, *, meta: bool = True, noise: float = 1.6, seed: int = 0,
               path_column: str = "path") -> Path:
    """``folder/features.parquet`` for the clips of the demo dataset in ``root``.

    Every class is spread over :data:`N_FOLDS` folds (``fold`` column); with
    ``meta`` a ``features.json`` names ``root`` as the dataset, as
    ``python -m features extract`` does. ``path_column="filename"`` keeps
    only the file name, as the GTZAN preset's tables do.
    """
    clips = discover(root).clips
    rng = np.random.default_rng(seed)
    classes = sorted(clips["label"].unique())
    centres = rng.normal(0.0, 1.0, (len(classes), len(FEATURES)))
    codes = clips["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    values = centres[codes] + rng.normal(0.0, noise, (len(clips), len(FEATURES)))
    ids = pd.DataFrame({
        "path": clips["path"].astype(str),
        "label": clips["label"].astype(str),
        "fold": pd.array(clips.groupby("label").cumcount() % N_FOLDS + 1, dtype="Int64"),
    })
    if path_column == "filename":
        ids = ids.assign(path=ids["path"].str.rsplit("/", n=1).str[-1]).rename(columns={"path": "filename"})
    df = pd.concat([ids, pd.DataFrame(values, columns=FEATURES)], axis=1)
    write_table(df, folder, ["parquet"])
    write_csv(build_schema(df, PARAMS, layout="urbansound8k"), folder / "features.schema.csv")
    if meta:
        write_json({"params": PARAMS.to_dict(), "param_key": PARAMS.key(), "root": str(root),
                    "layout": "urbansound8k", "clips": {"total": len(clips) + 1, "ok": len(clips), "failed": 1},
                    "wall_seconds": 3.2, "clips_per_second": 18.75, "jobs": 2,
                    "created": "2026-01-01T00:00:00+00:00"}, folder / "features.json")
    return folder / "features.parquet"


def train_run(table: Path, out: Path, **options) -> TrainResult:
    """``python -m classify train TABLE --out OUT`` with fast models, in this process, silently."""
    options = {"models": "logreg,knn", "jobs": 1, "quiet": True, **options}
    return train(table, out, TrainOptions(**options), log=_quiet, warn=_quiet)


def _quiet(line: str) -> None:
    pass
