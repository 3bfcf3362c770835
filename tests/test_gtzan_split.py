"""GTZAN's honest split: the fault-filtered partition as package data, chosen by --cv auto, faults left out.

The shipped list carries no artist names, so "no artist on two sides" is the published partition's
promise; what is tested here is that we apply it faithfully: every excerpt in exactly the part the
list names, the left-out excerpts in no part and not in the final fit, and a clear fallback (with a
warning) when the names are not GTZAN's own.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classify.splits import build_protocol
from features.io.datasets import discover
from features.io.gtzan import EXCLUDED, GTZAN_GENRES, fault_filtered_parts, partition

REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_partition_is_the_published_one():
    parts = partition()
    counts = {p: sum(v == p for v in parts.values()) for p in ("train", "validation", "test")}
    assert counts == {"train": 443, "validation": 197, "test": 290}
    originals = {f"{g}.{i:05d}" for g in GTZAN_GENRES for i in range(100)}
    assert set(parts) <= originals and len(originals - set(parts)) == 70
    for genre in GTZAN_GENRES:  # every genre is in every part
        assert {p for s, p in parts.items() if s.startswith(genre + ".")} == {"train", "validation", "test"}


def _names_by_part(genres=("disco", "metal", "reggae"), per_part=2):
    parts = partition()
    chosen = []
    for genre in genres:
        stems = [f"{genre}.{i:05d}" for i in range(100)]
        for part in ("train", "validation", "test"):
            chosen += [(s, part) for s in [s for s in stems if parts.get(s) == part][:per_part]]
        chosen += [(s, EXCLUDED) for s in [s for s in stems if s not in parts][:1]]
    return chosen


def test_discovery_gives_every_original_excerpt_its_listed_part(tmp_path):
    chosen = _names_by_part()
    assert any(p == EXCLUDED for _, p in chosen)
    for stem, _ in chosen:
        path = tmp_path / "genres" / stem.split(".")[0] / f"{stem}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    ds = discover(tmp_path)
    got = dict(zip(ds.clips["path"].str.rsplit("/", n=1).str[-1].str.removesuffix(".wav"), ds.clips["split"]))
    assert got == dict(chosen)
    assert "fault-filtered partition" in ds.notes["info"][0] and "holdout" in ds.notes["info"][0]
    assert not ds.notes.get("warnings")


def test_names_that_are_not_gtzans_fall_back_with_a_warning_naming_them(tmp_path):
    for rel in ("genres/blues/blues.00000.wav", "genres/blues/my_blues_song.wav", "genres/jazz/blues.00001.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()
    ds = discover(tmp_path)
    assert "split" not in ds.clips.columns
    (warning,) = ds.notes["warnings"]
    assert "2 of 3 clips do not have GTZAN's original names" in warning
    assert "genres/blues/my_blues_song.wav" in warning and "genres/jazz/blues.00001.wav" in warning
    # A collection in the GTZAN layout with none of GTZAN's names is simply someone else's: no note.
    assert fault_filtered_parts(["genres/a/x.wav"], ["a"]) == (None, [])


def test_holdout_leaves_the_excluded_excerpts_out_of_every_part_and_of_the_final_fit():
    chosen = _names_by_part(per_part=3)
    y = np.array([s.split(".")[0] for s, _ in chosen], dtype=object)
    parts = np.array([p for _, p in chosen], dtype=object)
    protocol = build_protocol("auto", y, parts=parts)
    assert protocol.name == "holdout"
    (split,) = protocol.splits
    excluded = np.flatnonzero(parts == EXCLUDED)
    assert len(excluded) == 3
    np.testing.assert_array_equal(protocol.excluded, excluded)
    for rows, part in ((split.train, "train"), (split.validation, "validation"), (split.test, "test")):
        assert set(parts[rows]) == {part}
    train, validation = protocol.final_rows(len(y))
    assert not set(train) & set(excluded) and not set(train) & set(validation)
    assert set(parts[train]) == {"train", "test"}
    assert "3 excluded row(s) are in no part and not in the final fit" in protocol.reason
    assert protocol.to_dict()["rows"]["excluded"] == 3


@pytest.mark.slow
def test_extract_then_train_uses_the_fault_filtered_split(tmp_path, write_wav):
    chosen = _names_by_part(per_part=4)
    rng = np.random.default_rng(0)
    base = {"disco": 220.0, "metal": 440.0, "reggae": 880.0}
    for stem, _ in chosen:
        genre = stem.split(".")[0]
        t = np.arange(8000) / 8000
        y = 0.3 * np.sin(2 * np.pi * base[genre] * (1 + 0.05 * rng.standard_normal()) * t)
        write_wav(tmp_path / "gtzan" / "genres" / genre / f"{stem}.wav", y + 0.01 * rng.standard_normal(t.size),
                  8000)
    out, run = tmp_path / "features", tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "features", "extract", str(tmp_path / "gtzan"), "--out", str(out),
                           "--jobs", "1"], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "note: GTZAN with its original file names" in proc.stderr
    meta = json.loads((out / "features.json").read_text())
    assert "fault-filtered partition" in meta["dataset_notes"][0]
    proc = subprocess.run([sys.executable, "-m", "classify", "train", str(out / "features.csv"), "--out", str(run),
                           "--models", "logreg", "--jobs", "1", "--quiet"], cwd=REPO, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    protocol = json.loads((run / "run.json").read_text())["protocol"]
    assert protocol["name"] == "holdout"
    assert protocol["rows"] == {"train": 12, "validation": 12, "test": 12, "excluded": 3}
