"""Nothing a user owns is lost: which folders each command writes into, and what it deletes.

Every command writes an output set (features.json, patches.json, run.json,
page.json list their files). A non-empty folder that holds no set of that
kind is refused (``--force``: written beside, nothing of theirs replaced),
a set is replaced file by file and nothing else goes, an output folder
inside its dataset is refused, and the lock never writes through a symlink.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classify import cli as classify_cli
from classify.pages import build_eda
from features import extract as X
from features.engine import outputs
from features.io.datasets import discover
from features.io.ownership import OutputFolderError, remove_output_sets
from features.patches import extract_patches

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
FAST = {"jobs": 1, "quiet": True}


def _tone(i: int, sr: int = 8000) -> np.ndarray:
    t = np.arange(int(0.4 * sr)) / sr
    return 0.3 * np.sin(2 * np.pi * (200 + 60 * i) * t)


@pytest.fixture
def dataset(tmp_path, write_wav) -> Path:
    """Six short clips in each of two class folders."""
    root = tmp_path / "ds"
    for i in range(12):
        label = "ab"[i % 2]
        write_wav(root / label / f"{label}{i:02d}.wav", _tone(i * (1 + i % 2)), 8000)
    return root


def _cli(package: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", package, *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300, check=False)


def _train(table: Path, out: Path, *extra: str) -> int:
    return classify_cli.main(["train", str(table), "--out", str(out), "--models", "logreg,knn",
                              "--cv", "stratified", "--k", "2", "--jobs", "1", "--quiet", *extra])


# ------------------------------------------------------------ features extract


def test_extract_refuses_a_folder_with_the_users_own_tables(tmp_path, dataset):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "features.csv").write_text("my own table\n")
    (out / "errors.csv").write_text("my own errors\n")
    proc = _cli("features", "extract", str(dataset), "--out", str(out), "--jobs", "1")
    assert proc.returncode == 2, proc.stderr
    assert f"the output folder {out} is not empty" in proc.stderr and "--force" in proc.stderr
    # --force writes beside someone else's files, never over them.
    forced = _cli("features", "extract", str(dataset), "--out", str(out), "--jobs", "1", "--force")
    assert forced.returncode == 2 and "never replaces a file it did not write" in forced.stderr
    assert (out / "features.csv").read_text() == "my own table\n"
    assert (out / "errors.csv").read_text() == "my own errors\n"
    assert sorted(p.name for p in out.iterdir()) == ["errors.csv", "features.csv"]


def test_force_writes_beside_other_files_and_a_rerun_replaces_only_ours(tmp_path, dataset):
    out = tmp_path / "shared"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(OutputFolderError, match="--force"):
        X.extract_dataset(dataset, out, **FAST)
    X.extract_dataset(dataset, out, force=True, **FAST)
    assert (out / "features.parquet").is_file() and (out / "notes.txt").read_text() == "keep me"
    # Our set is now in the folder: a later run (another format) replaces it, nothing else.
    X.extract_dataset(dataset, out, formats="csv", force=True, **FAST)
    assert not (out / "features.parquet").exists()
    assert (out / "notes.txt").read_text() == "keep me"


def test_an_interrupted_first_run_leaves_a_folder_the_next_run_takes(tmp_path, dataset):
    out = tmp_path / "out"
    (out / ".checkpoint").mkdir(parents=True)
    (out / ".lock").write_text("")
    X.extract_dataset(dataset, out, **FAST)
    outputs.verify_outputs(out)


def test_output_folders_inside_the_dataset_are_refused(tmp_path, dataset):
    for command, out in (("extract", dataset / "features"), ("patches", dataset / "a" / "p")):
        proc = _cli("features", command, str(dataset), "--out", str(out), "--jobs", "1")
        assert proc.returncode == 2, proc.stderr
        assert "is inside the dataset" in proc.stderr and not out.exists()
    with pytest.raises(OutputFolderError, match="inside the dataset"):
        build_eda(dataset, out=dataset / "eda")
    assert not (dataset / "eda").exists()
    # The next extraction still sees two classes, no 'eda' or 'features' one.
    assert sorted(discover(dataset).clips["label"].unique()) == ["a", "b"]


def test_discovery_skips_a_folder_holding_one_of_our_output_sets(tmp_path, dataset):
    page = build_eda(dataset, out=tmp_path / "eda", examples=1)
    # An older version (or a user) put the page, with its example clips, inside the dataset.
    (dataset / "eda").mkdir()
    for f in page.parent.rglob("*"):
        if f.is_file():
            target = dataset / "eda" / f.relative_to(page.parent)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.read_bytes())
    assert list((dataset / "eda" / "audio").glob("*.wav"))
    clips = discover(dataset).clips
    assert sorted(clips["label"].unique()) == ["a", "b"] and len(clips) == 12


def test_patches_and_features_never_share_a_folder(tmp_path, dataset):
    out = tmp_path / "out"
    X.extract_dataset(dataset, out, **FAST)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(OutputFolderError, match=r"holds the feature table of 'features extract'"):
        extract_patches(dataset, out, {"duration": 0.4}, force=True, **FAST)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    outputs.verify_outputs(out)
    patches = tmp_path / "patches"
    extract_patches(dataset, patches, {"duration": 0.4}, **FAST)
    with pytest.raises(OutputFolderError, match="holds the patches of 'features patches'"):
        X.extract_dataset(dataset, patches, force=True, **FAST)


# ----------------------------------------------------------------------- lock


def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path, dataset):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "precious.txt"
    victim.write_text("do not truncate me")
    (out / ".lock").symlink_to(victim)
    proc = _cli("features", "extract", str(dataset), "--out", str(out), "--jobs", "1")
    assert proc.returncode == 2, proc.stderr
    assert ".lock is not a regular file" in proc.stderr
    assert victim.read_text() == "do not truncate me"
    (out / ".lock").unlink()
    (out / ".lock").mkdir()
    with pytest.raises(OutputFolderError, match="not a regular file"), outputs.OutputLock(out):
        pass


# ---------------------------------------------------------------- classify train


@pytest.fixture
def table(tmp_path, dataset) -> Path:
    return X.extract_dataset(dataset, tmp_path / "features", **FAST).tables["parquet"]


def test_train_refuses_a_folder_of_someone_elses_files(tmp_path, table, capsys):
    out = tmp_path / "results"
    (out / "confusion").mkdir(parents=True)
    mine = {"importance.csv": "mine", "unmatched.csv": "mine", "clip_predictions.csv": "mine",
            "confusion/logreg_counts.csv": "mine"}
    for name, text in mine.items():
        (out / name).write_text(text)
    assert _train(table, out) == 2
    err = capsys.readouterr().err
    assert f"the output folder {out} is not empty" in err and "--force" in err
    assert _train(table, out, "--force") == 2, "their files carry a run's names"
    assert "never replaces a file it did not write" in capsys.readouterr().err
    for name, text in mine.items():
        assert (out / name).read_text() == text, name
    assert not (out / "run.json").exists()


def test_retraining_replaces_the_runs_files_and_nothing_else(tmp_path, table):
    out = tmp_path / "run"
    assert _train(table, out) == 0
    listed = json.loads((out / "run.json").read_text())["files"]
    assert "leaderboard.csv" in listed and "confusion/knn_counts.csv" in listed
    assert "model/bundle.json" in listed
    (out / "notes.txt").write_text("mine")
    (out / "confusion" / "my_plot.png").write_bytes(b"mine")
    assert _train(table, out, "--models", "logreg") == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "confusion" / "my_plot.png").read_bytes() == b"mine"
    assert not (out / "confusion" / "knn_counts.csv").exists(), "the earlier run's, not this one's"
    assert sorted(json.loads((out / "run.json").read_text())["models"]) == ["logreg"]
    assert not list(out.glob(".staging-*")) and not list(out.glob(".committing-*"))


def test_a_run_folder_inside_the_dataset_or_the_features_folder_is_refused(tmp_path, dataset,
                                                                          table, capsys):
    assert _train(table, dataset / "run") == 2
    assert "inside the dataset" in capsys.readouterr().err and not (dataset / "run").exists()
    assert _train(table, table.parent) == 2
    assert "holds the feature table" in capsys.readouterr().err
    outputs.verify_outputs(table)


def test_report_and_eda_replace_their_own_page_only(tmp_path, dataset, table):
    run = tmp_path / "run"
    assert _train(table, run) == 0
    assert classify_cli.main(["report", str(run)]) == 0
    report = run / "report"
    assert json.loads((report / "page.json").read_text())["kind"] == "report"
    (report / "mine.txt").write_text("mine")
    assert classify_cli.main(["report", str(run), "--n-wrong", "0"]) == 0
    assert (report / "mine.txt").read_text() == "mine"
    assert not list(report.glob("audio/*.wav")), "the earlier report's clips went with it"
    # A report written into the EDA folder (another kind of page) is fine: both are pages,
    # but a folder of someone's files is not.
    other = tmp_path / "theirs"
    other.mkdir()
    (other / "index.html").write_text("their page")
    assert classify_cli.main(["report", str(run), "--out", str(other)]) == 2
    assert classify_cli.main(["report", str(run), "--out", str(other), "--force"]) == 2
    assert (other / "index.html").read_text() == "their page"


# --------------------------------------------------------------------- predict


def test_predict_never_overwrites_an_existing_file(tmp_path, dataset, table, capsys):
    run = tmp_path / "run"
    assert _train(table, run) == 0
    target = tmp_path / "mine.csv"
    target.write_text("my spreadsheet")
    args = ["predict", "--model", str(run / "model"), str(dataset / "a"), "--out", str(target)]
    assert classify_cli.main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert target.read_text() == "my spreadsheet"
    assert classify_cli.main([*args, "--force"]) == 0
    err = capsys.readouterr().err
    assert f"model: {run / 'model'} (" in err and "classes: a, b" in err
    assert pd.read_csv(target)["path"].str.endswith(".wav").all()


# ------------------------------------------------------------------- make clean


def test_clean_removes_our_output_sets_and_nothing_of_the_users(tmp_path, dataset, table):
    project = tmp_path / "project"
    data = project / "data"
    ours = data / "output" / "ds" / "features"
    X.extract_dataset(dataset, ours, **FAST)
    assert _train(ours / "features.parquet", data / "output" / "ds" / "run") == 0
    (data / "output" / "ds" / ".make").mkdir()
    (data / "output" / "ds" / ".make" / "train.args").write_text("x")
    # A dataset of the user's called "output" (data/README invites datasets under data/) ...
    theirs = data / "output" / "birds" / "song" / "a.wav"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"RIFF")
    # ... a file of theirs dropped into a run folder, and one called "bench".
    (data / "output" / "ds" / "run" / "notes.txt").write_text("mine")
    (data / "bench" / "x").mkdir(parents=True)
    (data / "bench" / "x" / "y.wav").write_bytes(b"RIFF")
    # The Makefile's own target, in a copy of the project.
    (project / "Makefile").write_text((REPO / "Makefile").read_text())
    (project / "features").symlink_to(REPO / "features")
    proc = subprocess.run(["make", "--no-print-directory", "clean", f"PYTHON={sys.executable}"],
                          cwd=project, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert theirs.read_bytes() == b"RIFF" and (data / "bench" / "x" / "y.wav").is_file()
    assert (data / "output" / "ds" / "run" / "notes.txt").read_text() == "mine"
    assert not (data / "output" / "ds" / "features").exists()
    assert not (data / "output" / "ds" / ".make").exists()
    assert sorted(p.name for p in (data / "output" / "ds" / "run").rglob("*")) == ["notes.txt"]


def test_remove_output_sets_removes_a_generated_dataset_and_keeps_others(tmp_path):
    generated = tmp_path / "data" / "demo"
    (generated / "audio").mkdir(parents=True)
    (generated / ".generated").write_text("")
    (generated / "audio" / "x.wav").write_bytes(b"RIFF")
    mine = tmp_path / "data" / "mine" / "a.wav"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"RIFF")
    remove_output_sets(tmp_path / "data")
    assert not generated.exists() and mine.is_file()
