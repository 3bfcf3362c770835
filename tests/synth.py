"""Tiny synthetic feature tables for the training tests: clips, windows, parts.

The feature columns are the GTZAN preset's 26 real names, so runs can save
a bundle; their values are class centres plus a per-recording offset plus
noise, learnable but not trivially.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.compute import feature_columns
from features.io.atomic import write_json
from features.params import FeatureParams
from features.schema import build_schema
from features.table import write_csv, write_table

PARAMS = FeatureParams(preset="gtzan")
FEATURES = feature_columns(PARAMS)
CLASSES = ("blues", "jazz", "rock")


def clips_frame(n_groups: int = 24, *, n_folds: int = 4, windows: int = 0, seed: int = 0,
                parts: bool = False) -> pd.DataFrame:
    """A table of clips (or of ``windows`` windows per clip), grouped by recording.

    Recording ``g`` has class ``g % 3`` and 2-3 clips, all in fold
    ``g % n_folds + 1``; with ``parts``, recordings are spread over the
    ``split`` values train (half), validation (a quarter) and test.
    Windows of a clip share its path, label, fold, group and split.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.6, (len(CLASSES), len(FEATURES)))
    rows, blocks = [], []
    for g in range(n_groups):
        label = CLASSES[g % len(CLASSES)]
        offset = rng.normal(0, 0.4, len(FEATURES))
        part = ("train", "train", "validation", "test")[(g // len(CLASSES)) % 4]
        for i in range(2 + g % 2):
            clip = {"path": f"{label}/rec{g}-{i}.wav", "label": label, "fold": g % n_folds + 1,
                    "group": f"rec{g}"}
            if parts:
                clip["split"] = part
            base = centres[g % len(CLASSES)] + offset + rng.normal(0, 0.8, len(FEATURES))
            if not windows:
                rows.append(clip)
                blocks.append(base)
                continue
            for w in range(windows):
                rows.append({**clip, "segment": w, "segment_start_s": 3.0 * w,
                             "segment_end_s": 3.0 * w + 3.0})
                blocks.append(base + rng.normal(0, 0.8, len(FEATURES)))
    df = pd.DataFrame(rows)
    df["fold"] = df["fold"].astype("Int64")
    return pd.concat([df, pd.DataFrame(np.vstack(blocks), columns=FEATURES)], axis=1)


def write(df: pd.DataFrame, folder: Path, *, meta: bool = True, segment: dict | None = None) -> Path:
    """``folder/features.parquet`` + schema (+ features.json, with ``segment`` if given)."""
    write_table(df, folder, ["parquet"])
    schema = build_schema(df, PARAMS, layout="manifest")
    schema.loc[schema["column"].str.startswith("segment"), "role"] = "identifier"
    write_csv(schema, folder / "features.schema.csv")
    if meta:
        info = {"params": PARAMS.to_dict(), "param_key": PARAMS.key(), "layout": "manifest",
                "root": str(folder)}
        if segment is not None:
            info["segment"] = segment
        write_json(info, folder / "features.json")
    return folder / "features.parquet"


def quiet(line: str) -> None:
    pass
