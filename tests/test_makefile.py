"""The Makefile's targets read what they are asked to read and build what they need.

``make report RUN=X`` reports any run folder and never trains over it;
``make train`` and ``make eda`` bring the features up to date themselves;
``make predict`` never picks a model the user did not name; two datasets
with one folder name get two output folders; a DATASET path with a space
works.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _make(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args], env=ENV,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def dataset(tmp_path, write_wav) -> Path:
    """Six clips in each of two class folders, in a folder whose name has a space."""
    root = tmp_path / "my clips"
    for i in range(12):
        label = "ab"[i % 2]
        t = np.arange(3200) / 8000
        y = 0.3 * np.sin(2 * np.pi * (200 + 500 * (i % 2) + 20 * i) * t)
        write_wav(root / label / f"{label}{i:02d}.wav", y, 8000)
    return root


def _places(tmp_path: Path) -> list[str]:
    return [f"OUT={tmp_path}/features", f"RUN={tmp_path}/run", f"EDA={tmp_path}/eda",
            f"MEMO={tmp_path}/.make", "MODELS=logreg,knn", "JOBS=1"]


def test_train_and_eda_bring_the_features_up_to_date_first(tmp_path, dataset):
    proc = _make("train", f"DATASET={dataset}", *_places(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "features" / "features.json").is_file()
    assert (tmp_path / "run" / "run.json").is_file()
    stamp = (tmp_path / "run" / "run.json").stat().st_mtime_ns
    again = _make("train", f"DATASET={dataset}", *_places(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout + again.stderr
    assert (tmp_path / "run" / "run.json").stat().st_mtime_ns == stamp, "nothing changed: no retrain"
    eda = _make("eda", f"DATASET={dataset}", *_places(tmp_path))
    assert eda.returncode == 0, eda.stderr
    assert (tmp_path / "eda" / "index.html").is_file()


def test_report_reads_any_run_folder_and_never_retrains_it(tmp_path, dataset):
    features = tmp_path / "f"
    assert subprocess.run([sys.executable, "-m", "features", "extract", str(dataset), "--out",
                           str(features), "--jobs", "1"], cwd=REPO, env=ENV, check=False,
                          capture_output=True).returncode == 0
    run = tmp_path / "elsewhere"
    train = subprocess.run([sys.executable, "-m", "classify", "train",
                            str(features / "features.parquet"), "--out", str(run), "--models",
                            "knn", "--jobs", "1", "--quiet"], cwd=REPO, env=ENV, check=False,
                           capture_output=True, text=True)
    assert train.returncode == 0, train.stderr
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    # A default TABLE of another dataset (here: none at all) must not matter.
    proc = _make("report", f"RUN={run}", f"DATASET={tmp_path / 'other'}", f"MEMO={tmp_path}/.m")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "classify train" not in proc.stdout
    assert (run / "report" / "index.html").is_file()
    assert {p: p.read_bytes() for p in before} == before, "the run was not touched"
    again = _make("report", f"RUN={run}")
    assert again.returncode == 0 and "up to date" in again.stdout
    missing = _make("report", f"RUN={tmp_path / 'nothing'}")
    assert missing.returncode == 2 and "holds no training run" in missing.stderr


def test_predict_needs_to_be_told_which_model(tmp_path, dataset):
    proc = _make("predict", f"FILE={dataset / 'a'}")
    assert proc.returncode == 2
    assert "say which model labels the files" in proc.stderr
    dry = _make("-n", "predict", f"FILE={dataset / 'a'}", f"DATASET={dataset}")
    assert "--trained-on" in dry.stdout, "the default run's model only if it was trained on DATASET"
    assert f"'{dataset}'" in dry.stdout, "paths are quoted"


def test_each_dataset_gets_its_own_output_folder(tmp_path):
    outs = set()
    for parent in ("a", "b"):
        dry = _make("-n", "features", f"DATASET={tmp_path / parent / 'data'}")
        assert dry.returncode == 0, dry.stderr
        [line] = [x for x in dry.stdout.splitlines() if "-m features extract" in x]
        outs.add(line.split("--out ")[1].split()[0])
    assert len(outs) == 2 and all("/data-" in o for o in outs)
    dry = _make("-n", "features")
    assert "--out data/output/demo/features" in dry.stdout, "the demo keeps its short name"


def test_a_folder_make_writes_may_not_hold_a_space(tmp_path):
    proc = _make("-n", "train", f"RUN={tmp_path}/my run")
    assert proc.returncode == 2 and "has a space" in proc.stderr


def test_help_shows_the_run_defaults_of_run_options():
    """The runner's defaults live in RunOptions; the Makefile reads them, never repeats them."""
    from features.engine import options

    proc = _make("-s", "help")
    assert proc.returncode == 0, proc.stderr
    shown = " ".join(proc.stdout.split())
    assert f"JOBS={options.RunOptions().jobs} (0 = all cores)" in shown
    assert (f"CLIP_TIMEOUT= (empty: {options.DEFAULT_CLIP_TIMEOUT:g} s + {options.SECONDS_PER_MB:g} s "
            "per MB)") in shown
    assert "JOBS ?= 0" not in (REPO / "Makefile").read_text()
