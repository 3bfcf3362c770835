"""``classify predict ROOT --out DIR``: a whole collection labelled on the extraction engine.

One output set (predictions.csv + .parquet + predictions.json + errors.csv), the folder rules, exit
codes as ``features extract``; a broken clip is one error row; a killed worker or a killed run loses
nothing that was good; the local and Dask backends give the same predictions.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import faults
import pandas as pd
import pytest
from test_predict import PITCH, _tone, model_dir  # noqa: F401 - model_dir is a fixture

from classify import cli
from classify.bundle import load_bundle
from classify.collection import bundle_digest, predict_collection
from classify.predict import predict_files
from features.engine.options import RunOptions

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def collection(tmp_path) -> Path:
    """Class folders of tones (the labels the model knows) plus one broken file."""
    root = tmp_path / "my collection"
    for i in range(12):
        label = list(PITCH)[i % 3]
        _tone(root / label / f"{label}_{i:02d}.wav", PITCH[label] * (1 + 0.01 * i), seed=100 + i)
    (root / "mid" / "broken.wav").write_text("not a wav\n")
    return root


def _read(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "predictions.csv", keep_default_na=False).sort_values("path").reset_index(drop=True)


def test_a_collection_becomes_one_predictions_set(model_dir, collection, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "preds"
    status = cli.main(["predict", "--model", str(model_dir), str(collection), "--out", str(out), "--jobs", "1",
                       "--quiet"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "errors.csv", "predictions.csv", "predictions.json", "predictions.parquet"]
    table = _read(out)
    assert len(table) == 12 and (table["predicted"] == table["label"]).all()
    assert list(table.columns[:3]) == ["path", "label", "predicted"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "predictions.parquet").sort_values("path").reset_index(drop=True), table,
        check_dtype=False)
    # The same probabilities as the quick path on the same files.
    quick, _ = predict_files(load_bundle(model_dir), [str(collection / p) for p in table["path"]])
    assert (abs(quick["confidence"].to_numpy() - table["confidence"].to_numpy()) < 1e-9).all()
    errors = pd.read_csv(out / "errors.csv")
    assert errors["path"].tolist() == ["mid/broken.wav"] and errors["stage"].tolist() == ["load"]
    meta = json.loads((out / "predictions.json").read_text())
    assert meta["model"]["sha256"] == bundle_digest(model_dir) and meta["model"]["classes"] == sorted(PITCH)
    assert meta["clips"] == {**meta["clips"], "total": 13, "ok": 12, "failed": 1}
    assert set(meta["files"]) == {"predictions.csv", "predictions.parquet", "errors.csv"}
    assert "12 clips labelled, 1 failed" in captured.out


def test_a_folder_of_files_without_a_layout_is_labelled_without_labels(model_dir, tmp_path):  # noqa: F811
    root = tmp_path / "loose"
    _tone(root / "a.wav", 225.0, seed=1)
    _tone(root / "deeper" / "b.wav", 1990.0, seed=2)
    result = predict_collection(model_dir, str(root), tmp_path / "out", options=RunOptions(jobs=1, quiet=True))
    assert result.exit_code == 0
    table = _read(tmp_path / "out")
    assert "label" not in table.columns
    assert dict(zip(table["path"], table["predicted"])) == {"a.wav": "low", "deeper/b.wav": "high"}


def test_output_folder_rules_and_exit_codes_are_those_of_extract(model_dir, collection, tmp_path):  # noqa: F811
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "predictions.csv").write_text("my own file\n")
    status = cli.main(["predict", "--model", str(model_dir), str(collection), "--out", str(mine), "--quiet"])
    assert status == 2 and (mine / "predictions.csv").read_text() == "my own file\n"
    inside = cli.main(["predict", "--model", str(model_dir), str(collection), "--out", str(collection / "p")])
    assert inside == 2 and not (collection / "p").exists()
    strict = cli.main(["predict", "--model", str(model_dir), str(collection), "--out", str(tmp_path / "s"),
                       "--strict", "--jobs", "1", "--quiet"])
    assert strict == 3, "a clip failed and --strict was given"
    two = cli.main(["predict", "--model", str(model_dir), str(collection), str(collection), "--out",
                    str(tmp_path / "t")])
    assert two == 2


BACKENDS = [{"jobs": 2}, {"backend": "dask", "scheduler": "local:2"}]


@pytest.mark.parametrize("backend", BACKENDS, ids=["local", "dask"])
def test_a_killed_worker_loses_nothing_but_its_culprit(model_dir, collection, tmp_path, monkeypatch,  # noqa: F811
                                                       backend):
    clean = tmp_path / "clean"
    predict_collection(model_dir, str(collection), clean, options=RunOptions(jobs=2, quiet=True))
    faults.install({"kill": ["high_05.wav"]}, monkeypatch.setattr)
    killed = tmp_path / "killed"
    result = predict_collection(model_dir, str(collection), killed, options=RunOptions(quiet=True, **backend))
    assert result.n_ok == 11
    errors = pd.read_csv(killed / "errors.csv")
    assert set(errors["path"]) == {"mid/broken.wav", "high/high_05.wav"}
    expected = _read(clean)
    pd.testing.assert_frame_equal(_read(killed), expected[expected["path"] != "high/high_05.wav"]
                                  .reset_index(drop=True))


@pytest.mark.parametrize("backend", [["--jobs", "1"], ["--backend", "dask", "--scheduler", "local:1"]],
                         ids=["local", "dask"])
def test_a_killed_run_resumes_from_its_checkpoint(model_dir, collection, tmp_path, backend):  # noqa: F811
    clean = tmp_path / "clean"
    predict_collection(model_dir, str(collection), clean, options=RunOptions(jobs=1, quiet=True))
    out = tmp_path / "resumed"
    args = ["classify", "predict", "--model", str(model_dir), str(collection), "--out", str(out), *backend,
            "--batch-size", "1", "--quiet"]
    faults.killed_midway(args, out)
    assert not (out / "predictions.json").exists(), "the set appears whole or not at all"
    again = subprocess.run(faults.command(*args[:-3], "--jobs", "1"), cwd=REPO, env=faults.environment(),
                           capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "resumed:" in again.stdout
    pd.testing.assert_frame_equal(_read(out), _read(clean))


@pytest.mark.slow
def test_the_dask_backend_gives_the_same_predictions(model_dir, collection, tmp_path):  # noqa: F811
    local, dask = tmp_path / "local", tmp_path / "dask"
    predict_collection(model_dir, str(collection), local, options=RunOptions(jobs=1, quiet=True))
    proc = subprocess.run([sys.executable, "-m", "classify", "predict", "--model", str(model_dir), str(collection),
                           "--out", str(dask), "--backend", "dask", "--scheduler", "local:2", "--quiet"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    pd.testing.assert_frame_equal(_read(dask), _read(local))
    assert json.loads((dask / "predictions.json").read_text())["runner"]["backend"] == "dask"
