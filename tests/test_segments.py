"""Segment tables (one row per window): clip-level scores, windows kept together, predict by windows."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import synth

from classify import cli
from classify.bundle import load_bundle
from classify.evaluation import (
    SEGMENT_FOLDS_COLUMNS,
    SEGMENT_LEADERBOARD_COLUMNS,
    split_scores,
)
from classify.options import TrainOptions
from classify.predict import predict_files, predict_segments
from classify.splits import LEAKY_NOTE
from classify.training import train
from features.extract import extract_files
from features.params import FeatureParams

REPO = Path(__file__).resolve().parents[1]
SEGMENT = {"seconds": 3.0, "hop": 3.0, "last": "pad"}


def segment_frame(**kwargs) -> pd.DataFrame:
    df = synth.clips_frame(windows=4, parts=True, **kwargs)
    # Clips of every fifth recording have no group of their own: the clip is its group.
    df.loc[df["group"].str[3:].astype(int) % 5 == 0, "group"] = ""
    return df


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("segments")
    df = segment_frame(n_groups=24)
    table = synth.write(df, root / "features", segment=SEGMENT)
    result = train(table, root / "run", TrainOptions(models="logreg,knn", cv="folds", jobs=1, quiet=True),
                   log=synth.quiet, warn=synth.quiet)
    return {"df": df, "out": root / "run", "result": result}


def test_scores_are_per_clip_with_the_window_accuracy_beside(run):
    out, df = run["out"], run["df"]
    board = pd.read_csv(out / "leaderboard.csv")
    assert list(board.columns) == [*SEGMENT_LEADERBOARD_COLUMNS, "protocol", "selection"]
    folds = pd.read_csv(out / "folds.csv")
    assert list(folds.columns) == [*SEGMENT_FOLDS_COLUMNS, "restarts"]
    preds = pd.read_csv(out / "predictions.csv")
    assert list(preds.columns[:4]) == ["path", "segment", "segment_start_s", "segment_end_s"]
    assert len(preds) == 2 * len(df), "one row per window and model"
    clips = pd.read_csv(out / "clip_predictions.csv")
    assert len(clips) == 2 * df["path"].nunique()
    prob = [c for c in preds.columns if c.startswith("prob_")]
    for model in ("logreg", "knn"):
        mine = preds[preds["model"] == model]
        # The clip's probabilities: mean of its windows'; its label: their argmax.
        mean = mine.groupby("path")[prob].mean()
        theirs = clips[clips["model"] == model].set_index("path")
        np.testing.assert_allclose(theirs.loc[mean.index, prob], mean, atol=1e-5)
        assert (theirs.loc[mean.index, "predicted"] == mean.idxmax(axis=1).str[5:]).all()
        assert (theirs["n_segments"] == 4).all()
        for _, row in folds[folds["model"] == model].iterrows():
            held = theirs[theirs["split"] == row["split"]]
            assert row["n_test_clips"] == len(held)
            assert row["accuracy"] == pytest.approx(split_scores(held["label"], held["predicted"])["accuracy"])
            windows = mine[mine["split"] == row["split"]]
            assert row["window_accuracy"] == pytest.approx((windows["label"] == windows["predicted"]).mean())
            assert row["n_test"] == len(windows)
    per_class = pd.read_csv(out / "per_class.csv")
    assert per_class.groupby("model")["support"].sum().tolist() == [df["path"].nunique()] * 2
    report = (out / "report.md").read_text()
    assert f"windows of {df['path'].nunique()} clips" in report


def test_the_bundle_records_the_windows(run):
    meta = json.loads((run["out"] / "model" / "bundle.json").read_text())
    assert meta["segment"] == SEGMENT and meta["format_version"] == 2
    assert load_bundle(run["out"] / "model").segment == SEGMENT
    info = json.loads((run["out"] / "run.json").read_text())
    assert info["segment"]["settings"] == SEGMENT and info["segment"]["n_clips"] == run["df"]["path"].nunique()


@pytest.mark.parametrize("cv", ["holdout", "folds", "group", "stratified"])
def test_no_protocol_but_random_separates_the_windows_of_a_clip(tmp_path, cv):
    table = synth.write(segment_frame(n_groups=36), tmp_path / "features")
    result = train(table, tmp_path / "run", TrainOptions(models="knn", cv=cv, k=3, jobs=1, quiet=True,
                                                         importance=False), log=synth.quiet, warn=synth.quiet)
    clips = result.table.clips
    for split in result.protocol.splits:
        parts = [split.train, split.test] + ([split.validation] if split.validation is not None else [])
        seen = [set(clips[rows]) for rows in parts]
        assert all(not a & b for i, a in enumerate(seen) for b in seen[i + 1:]), (cv, split.name)


def test_random_shows_the_leak_and_says_so(tmp_path, capsys):
    table = synth.write(segment_frame(n_groups=36), tmp_path / "features")
    status = cli.main(["train", str(table), "--cv", "random", "--models", "knn", "--jobs", "1", "--quiet",
                       "--no-importance"])
    out = capsys.readouterr().out
    assert status == 0 and f"WARNING: random protocol, {LEAKY_NOTE}" in out
    assert "scores per clip" in out and "window_accuracy_mean per window" in out
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert preds["path"].nunique() < len(preds), "windows of one clip are scored apart"
    assert pd.read_csv(tmp_path / "run" / "leaderboard.csv")["protocol"].str.contains(LEAKY_NOTE).all()


# -------------------------------------------------------------------- predict


SR = 22050
PITCH = {"low": 220.0, "mid": 660.0, "high": 1980.0}


def tone(path: Path, freq: float, seconds: float, seed: int) -> str:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    y = 0.5 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), SR)
    return str(path)


@pytest.fixture(scope="module")
def window_model(tmp_path_factory):
    """A logreg bundle trained on 1-second windows of 2.5-second tones (last window padded)."""
    root = tmp_path_factory.mktemp("windows")
    segment = {"seconds": 1.0, "hop": 1.0, "last": "pad"}
    files, labels = [], {}
    for i in range(12):
        label = list(PITCH)[i % 3]
        files.append(tone(root / "audio" / f"{label}{i}.wav", PITCH[label] * (1 + 0.01 * i), 2.5, seed=i))
        labels[files[-1]] = label
    features, errors = extract_files(files, FeatureParams(preset="gtzan", segment=1.0,
                                                          segment_last="pad"))
    assert not errors and len(features) == 12 * 3
    features.insert(1, "label", features["path"].map(labels))
    features.insert(2, "fold", pd.array(features["path"].map(lambda p: files.index(p) // 3 % 3 + 1),
                                        dtype="Int64"))
    table = synth.write(features, root / "features", segment=segment)
    result = train(table, root / "run", TrainOptions(models="logreg", jobs=1, quiet=True, importance=False),
                   log=synth.quiet, warn=synth.quiet)
    assert result.bundle_dir is not None
    return root / "run" / "model"


def test_predict_labels_a_clip_from_its_windows(window_model, tmp_path):
    bundle = load_bundle(window_model)
    new = [tone(tmp_path / "a.wav", 700.0, 3.2, seed=50), tone(tmp_path / "b.wav", 230.0, 0.6, seed=51)]
    clips, windows, errors = predict_segments(bundle, new)
    assert not errors
    assert clips["path"].tolist() == new and clips["n_segments"].tolist() == [4, 1]
    assert clips["predicted"].tolist() == ["mid", "low"]
    prob = [f"prob_{c}" for c in bundle.class_names]
    np.testing.assert_allclose(clips[prob].to_numpy(), windows.groupby("path", sort=False)[prob].mean().to_numpy())
    assert windows["segment"].tolist() == [0, 1, 2, 3, 0]
    np.testing.assert_allclose(windows["segment_start_s"], [0, 1, 2, 3, 0])
    np.testing.assert_allclose(windows["segment_end_s"], [1, 2, 3, 3.2, 0.6], atol=1e-4)
    pd.testing.assert_frame_equal(predict_files(bundle, new)[0], clips)


def test_predict_command_line_shows_windows_on_request(window_model, tmp_path):
    clip = tone(tmp_path / "c.wav", 2000.0, 2.0, seed=52)
    out = tmp_path / "windows.csv"
    cmd = [sys.executable, "-m", "classify", "predict", "--model", str(window_model), clip]
    plain = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines() == [line for line in plain.stdout.splitlines() if line.startswith(clip)]
    assert "high" in plain.stdout and "(2 windows)" in plain.stdout
    both = subprocess.run([*cmd, "--segments", "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
    lines = both.stdout.splitlines()
    assert both.returncode == 0 and len(lines) == 3
    assert lines[1].startswith("  [0.0-1.0 s]  ") and lines[2].startswith("  [1.0-2.0 s]  ")
    assert pd.read_csv(out)["segment"].tolist() == [0, 1]


def test_a_collection_is_labelled_from_its_windows_on_the_engine(window_model, tmp_path):
    from classify.collection import predict_collection
    from features.engine.options import RunOptions

    root = tmp_path / "collection"
    tone(root / "a.wav", 700.0, 3.2, seed=50)
    tone(root / "b.wav", 230.0, 0.6, seed=51)
    result = predict_collection(window_model, str(root), tmp_path / "out", options=RunOptions(jobs=1, quiet=True))
    assert result.exit_code == 0
    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    quick, _, _ = predict_segments(load_bundle(window_model), [str(root / "a.wav"), str(root / "b.wav")])
    assert table["path"].tolist() == ["a.wav", "b.wav"] and table["n_segments"].tolist() == [4, 1]
    assert table["predicted"].tolist() == quick["predicted"].tolist() == ["mid", "low"]
    prob = [f"prob_{c}" for c in load_bundle(window_model).class_names]
    np.testing.assert_allclose(table[prob].to_numpy(), quick[prob].to_numpy(), rtol=1e-9)


def test_windows_of_a_whole_clip_model_are_refused(tmp_path):
    from classify.bundle import save_bundle
    from classify.errors import UsageError

    params = FeatureParams(preset="gtzan")
    files = [tone(tmp_path / f"{k}.wav", f, 1.0, seed=i) for i, (k, f) in enumerate(PITCH.items())]
    features, _ = extract_files(files, FeatureParams(preset="gtzan", segment=1.0))
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    columns = [c for c in features.columns if c not in ("path", "segment", "segment_start_s", "segment_end_s")]
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())]).fit(
        features[columns].to_numpy(), list(PITCH))
    save_bundle(tmp_path / "model", model_name="logreg", estimator=pipe, class_names=list(pipe.classes_),
                feature_columns=columns, features_meta={"params": params.to_dict()})
    with pytest.raises(UsageError, match="was trained on whole clips, not windows"):
        predict_segments(load_bundle(tmp_path / "model"), files)


def test_the_report_of_a_segment_run_scores_clips(run):
    from pagecheck import page_text, parse_page

    from classify.pages import report

    text = page_text(parse_page(report.build_report(run["out"], out=run["out"] / "page")))
    assert "Segment table:" in text and "window_accuracy_mean is per window" in text
    assert "out-of-fold clip predictions of" in text
