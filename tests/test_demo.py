"""The synthetic UrbanSound8K-style demo dataset (the features.demo subpackage)."""

import hashlib
import os
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from features.demo import make_demo_dataset, writing
from features.demo.plan import CLASSES, METADATA_COLUMNS, metadata_rows, plan_clips
from features.demo.writing import MARKER
from features.errors import UsageError

HEADER = "slice_file_name,fsID,start,end,salience,fold,classID,class"
NAME = re.compile(r"^(\d+)-(\d)-(\d+)-(\d+)\.wav$")


def demo_metadata(n_clips: int, seed: int) -> pd.DataFrame:
    """The metadata make_demo_dataset would write, from the plan alone (no audio)."""
    return pd.DataFrame(metadata_rows(plan_clips(n_clips, seed)), columns=list(METADATA_COLUMNS))


def read_metadata(root) -> pd.DataFrame:
    return pd.read_csv(root / "metadata" / "UrbanSound8K.csv")


def tree_bytes(root) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> content)."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_is_exactly_urbansound8k(demo_root):
    assert METADATA_COLUMNS == tuple(HEADER.split(","))
    csv_path = demo_root / "metadata" / "UrbanSound8K.csv"
    assert csv_path.read_text(encoding="utf-8").splitlines()[0] == HEADER
    assert sorted(p.name for p in demo_root.iterdir()) == [MARKER, "audio", "metadata"]
    folds = sorted((demo_root / "audio").iterdir(), key=lambda p: int(p.name[4:]))
    assert [p.name for p in folds] == [f"fold{i}" for i in range(1, 11)]
    assert all(p.is_dir() for p in folds)


def test_every_listed_clip_exists_reads_and_matches_its_row(demo_root):
    df = read_metadata(demo_root)
    assert len(df) == 60
    assert df["slice_file_name"].is_unique
    for row in df.to_dict("records"):
        path = demo_root / "audio" / f"fold{row['fold']}" / row["slice_file_name"]
        fs_id, class_id, _, _ = map(int, NAME.match(row["slice_file_name"]).groups())
        assert (fs_id, class_id) == (row["fsID"], row["classID"])
        assert CLASSES[row["classID"]] == row["class"]
        assert row["salience"] in (1, 2)
        y, sr = sf.read(path, always_2d=True)
        assert np.isfinite(y).all() and 0.0 < np.abs(y).max() <= 1.0
        duration = len(y) / sr
        assert 0.5 <= duration <= 4.0
        assert row["end"] - row["start"] == pytest.approx(duration, abs=2e-6)
    listed = {f"fold{r.fold}/{r.slice_file_name}" for r in df.itertuples()}
    on_disk = {p.relative_to(demo_root / "audio").as_posix()
               for p in (demo_root / "audio").rglob("*") if p.is_file()}
    assert on_disk == listed


def test_source_recordings_never_span_two_folds(demo_root):
    for df in (read_metadata(demo_root), demo_metadata(1000, seed=3)):
        assert df.groupby("fsID")["fold"].nunique().max() == 1
        assert df.groupby("fsID")["classID"].nunique().max() == 1
    big = demo_metadata(1000, seed=0)
    assert big["fsID"].nunique() > 100  # many recordings, several slices each
    assert set(big["fold"]) == set(range(1, 11))


@pytest.mark.parametrize("n_clips", [10, 17, 60, 200, 1000])
def test_all_classes_present_and_balanced_within_2x(n_clips):
    counts = demo_metadata(n_clips, seed=0)["class"].value_counts()
    assert counts.sum() == n_clips
    assert set(counts.index) == set(CLASSES)
    assert counts.max() <= 2 * counts.min()


def test_car_horn_and_gun_shot_are_the_rarer_classes():
    counts = demo_metadata(1000, seed=0)["class"].value_counts()
    assert set(counts.index[-2:]) == {"car_horn", "gun_shot"}


def test_durations_mostly_four_seconds_some_shorter():
    df = demo_metadata(1000, seed=0)
    duration = df["end"] - df["start"]
    assert duration.min() >= 0.5 - 1e-6 and duration.max() <= 4.0 + 1e-6
    assert 0.6 < (duration > 4.0 - 1e-6).mean() < 0.95


def test_formats_are_mixed_like_a_real_collection(demo_root):
    formats = Counter()
    for path in (demo_root / "audio").rglob("*.wav"):
        info = sf.info(path)
        formats[(info.samplerate, info.channels, info.subtype)] += 1
    assert formats.most_common(1)[0][0] == (44100, 2, "PCM_16")
    assert len({sr for sr, _, _ in formats}) >= 3
    assert {ch for _, ch, _ in formats} == {1, 2}
    assert {"PCM_16", "PCM_24"} <= {st for _, _, st in formats}
    assert {"PCM_U8", "FLOAT"} & {st for _, _, st in formats}


def test_same_seed_is_byte_identical_whatever_the_workers(tmp_path):
    one = make_demo_dataset(tmp_path / "one", n_clips=12, seed=5, jobs=1)
    two = make_demo_dataset(tmp_path / "two", n_clips=12, seed=5, jobs=2)
    first, second = tree_bytes(one), tree_bytes(two)
    assert first.keys() == second.keys()
    assert first == second
    # Float WAVs carry a time-stamped PEAK chunk unless we drop it.
    assert any(sf.info(one / p).subtype == "FLOAT" for p in first if p.endswith(".wav"))


def test_the_plan_is_pinned(demo_root):
    # The metadata of (60 clips, seed 0), as written before the generator became a
    # subpackage: a refactoring must not move a single clip. (The audio is checked
    # byte for byte between worker counts above; its floats may differ across CPUs.)
    digest = hashlib.sha256((demo_root / "metadata" / "UrbanSound8K.csv").read_bytes()).hexdigest()
    assert digest == "ca46d3be5b4557ed194aaeda95fcab347e8fa504ef95ddac825cd3126542d3f1"


def test_different_seed_gives_a_different_dataset():
    assert not demo_metadata(60, seed=0).equals(demo_metadata(60, seed=1))


def test_refuses_a_non_empty_directory_it_did_not_make(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(UsageError, match=re.escape(str(target))):
        make_demo_dataset(target, n_clips=10, jobs=1)
    assert (target / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no leftovers


def test_refuses_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        make_demo_dataset(target, n_clips=10, jobs=1)


def test_fills_an_empty_directory_and_replaces_its_own_output(tmp_path):
    target = tmp_path / "demo"
    target.mkdir()
    make_demo_dataset(target, n_clips=10, seed=0, jobs=1)
    assert (target / MARKER).is_file()
    (target / "audio" / "fold1" / "stray.wav").write_bytes(b"old")
    make_demo_dataset(target, n_clips=10, seed=1, jobs=1)
    assert not (target / "audio" / "fold1" / "stray.wav").exists()
    assert read_metadata(target).equals(demo_metadata(10, seed=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
    assert target.stat().st_mode & 0o777 == 0o777 & ~_umask(), "usual permissions, not mkdtemp's 0700"


def test_a_failed_run_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(clip, seed, root):
        raise RuntimeError("synthesis failed")

    monkeypatch.setattr(writing, "_write_clip", boom)
    with pytest.raises(RuntimeError, match="synthesis failed"):
        make_demo_dataset(tmp_path / "demo", n_clips=10, jobs=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_clips": 5}, "n_clips=5"),
    ({"n_clips": 2.5}, "n_clips=2.5"),
    ({"n_clips": True}, "n_clips=True"),
    ({"seed": -1}, "seed=-1"),
    ({"jobs": -2}, "jobs=-2"),
])
def test_bad_options_are_named(tmp_path, kwargs, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        make_demo_dataset(tmp_path / "demo", **kwargs)
    assert not (tmp_path / "demo").exists()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
