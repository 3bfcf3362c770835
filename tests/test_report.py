"""``python -m classify report``: the training report from a run directory built here by hand."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from pagecheck import page_text, parse_page

from classify import cli, report
from classify.errors import RunDirError

MODELS = ("svm", "logreg")  # leaderboard order: best first


@pytest.fixture
def demo(demo_root) -> Path:
    """The 60-clip demo dataset shared by the suite (tests/conftest.py)."""
    return Path(demo_root)


def make_run(run: Path, demo: Path, *, leaky: bool = False, features_json: str = "inline",
             path_col: str = "path") -> Path:
    """Write a run directory in the contract's formats, with predictions for the demo clips.

    features_json: "inline" (dict in run.json), "sibling" (null in run.json, features.json
    beside the table) or "none".
    """
    from sklearn.metrics import precision_recall_fscore_support

    clips = pd.read_csv(demo / "metadata" / "UrbanSound8K.csv")
    paths = ("audio/fold" + clips["fold"].astype(str) + "/" + clips["slice_file_name"]).tolist()
    if path_col == "filename":
        paths = clips["slice_file_name"].tolist()
    labels = clips["class"].astype(str).to_numpy()
    classes = sorted(set(labels))
    rng = np.random.default_rng(0)
    run.mkdir(parents=True)
    (run / "confusion").mkdir()
    preds, folds, per_class, board = [], [], [], []
    for k, model in enumerate(MODELS):
        probs = rng.dirichlet(np.ones(len(classes)) * 0.3, len(labels))
        right = rng.uniform(size=len(labels)) < (0.7 - 0.2 * k)
        truth = np.array([classes.index(c) for c in labels])
        probs[right, truth[right]] += 2.0
        probs /= probs.sum(axis=1, keepdims=True)
        predicted = np.array(classes)[probs.argmax(axis=1)]
        frame = pd.DataFrame({path_col: paths, "label": labels, "fold": clips["fold"], "model": model,
                              "predicted": predicted, "confidence": probs.max(axis=1)})
        for j, c in enumerate(classes):
            frame[f"prob_{c}"] = probs[:, j]
        preds.append(frame)
        for fold, part in frame.groupby("fold"):
            acc = float((part["label"] == part["predicted"]).mean())
            folds.append({"model": model, "fold": fold, "n_train": len(frame) - len(part), "n_test": len(part),
                          "accuracy": acc, "balanced_accuracy": acc, "macro_f1": acc * 0.9, "fit_seconds": 0.01})
        p, r, f, s = precision_recall_fscore_support(labels, predicted, labels=classes, zero_division=0)
        per_class += [{"model": model, "class": c, "precision": p[j], "recall": r[j], "f1": f[j], "support": s[j]}
                      for j, c in enumerate(classes)]
        counts = pd.crosstab(pd.Categorical(labels, classes), pd.Categorical(predicted, classes), dropna=False)
        counts.index, counts.columns = classes, classes
        counts.to_csv(run / "confusion" / f"{model}_counts.csv")
        counts.div(counts.sum(axis=1), axis=0).to_csv(run / "confusion" / f"{model}_normalized.csv")
        accs = [x["accuracy"] for x in folds if x["model"] == model]
        board.append({"model": model, "accuracy_mean": np.mean(accs), "accuracy_std": np.std(accs),
                      "balanced_accuracy_mean": np.mean(accs), "macro_f1_mean": np.mean(accs) * 0.9,
                      "fit_seconds": 0.1})
    pd.DataFrame(board).to_csv(run / "leaderboard.csv", index=False)
    pd.DataFrame(folds).to_csv(run / "folds.csv", index=False)
    pd.DataFrame(per_class).to_csv(run / "per_class.csv", index=False)
    pd.concat(preds).to_csv(run / "predictions.csv", index=False)
    table_dir = run.parent / "features"
    table_dir.mkdir(exist_ok=True)
    meta = {"params": {"preset": "default", "sr": 22050}, "param_key": "abc123", "root": str(demo),
            "layout": "urbansound8k", "versions": {"librosa": "0.11"},
            "clips": {"total": 61, "ok": 60, "failed": 1}, "wall_seconds": 3.2, "clips_per_second": 18.75,
            "jobs": 2, "created": "2026-01-01T00:00:00"}
    if features_json == "sibling":
        (table_dir / "features.json").write_text(json.dumps(meta))
    protocol = ({"name": "random", "reason": "requested with --cv random", "leaky": True, "n_splits": 1} if leaky
                else {"name": "folds", "reason": "the table has a fold column (predefined folds)", "leaky": False,
                      "n_splits": 10})
    (run / "run.json").write_text(json.dumps({
        "table": str(table_dir / "features.parquet"), "table_sha256": "0" * 64,
        "features_json": meta if features_json == "inline" else None, "protocol": protocol,
        "params": {"cv": "random" if leaky else "auto", "seed": 0}, "models": list(MODELS), "best_model": MODELS[0],
        "classes": classes, "versions": {"sklearn": "1.x"}, "timings": {"total": 1.0},
        "n_rows": len(labels), "n_features": 114}))
    return run


def test_report_on_a_fold_run_has_every_part(demo, tmp_path):
    run = make_run(tmp_path / "run", demo)
    index = report.build_report(run)
    assert index == run / "report" / "index.html"
    page = parse_page(index)
    text = page_text(page)
    assert {"summary", "protocol", "splits", "extraction", "models", "wrong", "details"} <= set(page.ids)
    assert "Leaky protocol" not in text
    assert "the table has a fold column" in text
    assert "Clips per second" in text and "18.75" in text and "Clips failed" in text
    images = {Path(unquote(src)).name for src, _ in page.images}
    for model in MODELS:
        assert {f"confusion_{model}_counts.png", f"confusion_{model}_normalized.png",
                f"per_class_{model}.png"} <= images
    assert {"folds_accuracy.png", "folds_macro_f1.png"} <= images
    assert page.details_open.count(True) == 1, "only the best model's block is open"
    assert "svm (best)" in text
    # Twelve confidently wrong predictions of the best model, each with spectrogram and player.
    wrong = [s for s, _ in page.images if Path(unquote(s)).name.startswith("wrong_")]
    assert len(wrong) == 12 and len(page.audio) == 12
    for src in page.audio:
        info = sf.info(str(index.parent / unquote(src)))
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
    preds = pd.read_csv(run / "predictions.csv")
    top = preds[(preds.model == "svm") & (preds.label != preds.predicted)].nlargest(1, "confidence").iloc[0]
    assert text.index(f"#1 true {top.label} → predicted {top.predicted} confidence {top.confidence:.3f}") > \
        text.index("Most confidently wrong")


def test_leaky_run_shows_the_warning_first(demo, tmp_path):
    run = make_run(tmp_path / "run", demo, leaky=True, features_json="sibling")
    index = report.build_report(run, n_wrong=2, models=["logreg"])
    html = index.read_text(encoding="utf-8")
    page = parse_page(index)
    text = page_text(page)
    assert 'class="note danger"' in html
    assert html.index("Leaky protocol") < html.index('id="summary"')
    assert "these scores are optimistic" in text and "--cv auto" in text
    assert "18.75" in text, "extraction summary read from the features.json beside the table"
    assert len(page.audio) == 2
    assert "confusion_svm_counts.png" not in html


def test_gtzan_style_filenames_are_found_by_name_and_missing_audio_is_said(demo, tmp_path):
    run = make_run(tmp_path / "run", demo, path_col="filename", features_json="none")
    page = parse_page(report.build_report(run, models=["svm"], n_wrong=3, audio_root=demo))
    assert len(page.audio) == 3
    text = page_text(parse_page(report.build_report(run, out=tmp_path / "r2", models=["svm"], n_wrong=3)))
    assert "dataset root is unknown" in text and "Audio not found" in text
    assert "No features.json was found" in text
    moved = tmp_path / "moved"
    shutil.copytree(demo, moved)
    for clip in list((moved / "audio").rglob("*.wav"))[:30]:
        clip.unlink()
    page = parse_page(report.build_report(run, out=tmp_path / "r3", models=["svm"], n_wrong=6, audio_root=moved))
    assert 0 < len(page.audio) < 6 and "Audio not found" in page_text(page)


def test_missing_or_broken_run_files_are_named(demo, tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        report.build_report(tmp_path / "nope")
    run = make_run(tmp_path / "run", demo)
    (run / "confusion" / "logreg_normalized.csv").unlink()
    with pytest.raises(RunDirError, match="logreg_normalized.csv"):
        report.build_report(run, n_wrong=0)
    with pytest.raises(RunDirError, match="--models knn"):
        report.build_report(run, models=["knn"])
    pd.read_csv(run / "folds.csv").drop(columns="accuracy").to_csv(run / "folds.csv", index=False)
    with pytest.raises(RunDirError, match=r"folds.csv lacks column\(s\) \['accuracy'\]"):
        report.build_report(run)


def test_report_command_line(demo, tmp_path, capsys):
    run = make_run(tmp_path / "run", demo)
    status = cli.main(["report", str(run), "--models", "svm", "--n-wrong", "0", "--out", str(tmp_path / "out")])
    assert status == 0
    assert "Report written to" in capsys.readouterr().out
    page = parse_page(tmp_path / "out" / "index.html")
    assert page.audio == [] and "wrong" not in page.ids
    with pytest.raises(SystemExit):
        cli.build_parser("report").parse_args(["report", str(run), "--n-wrong", "-1"])
