"""``python -m classify report``: the HTML report of a real, tiny training run."""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest
import soundfile as sf
from pagecheck import inline_text, page_text, parse_page
from tinyrun import demo_table, train_run

from classify import cli
from classify.errors import RunDirError
from classify.pages import report


@pytest.fixture(scope="module")
def trained(demo_root, tmp_path_factory) -> Path:
    """A folds run of logreg and knn on the demo clips, with its bundle."""
    root = tmp_path_factory.mktemp("report")
    result = train_run(demo_table(demo_root, root / "features"), root / "run")
    assert result.bundle_dir is not None
    return root / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run that a test may damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def test_report_on_a_fold_run_has_every_part(run):
    index = report.build_report(run)
    assert index == run / "report" / "index.html"
    page = parse_page(index)
    text = page_text(page)
    board = pd.read_csv(run / "leaderboard.csv")
    best, other = board["model"]
    assert {"summary", "protocol", "splits", "extraction", "models", "wrong", "details"} <= set(page.ids)
    assert "Leaky protocol" not in text
    assert "the table has a 'fold' column with 3 predefined folds" in text
    assert "Clips per second" in text and "18.75" in text and "Clips failed" in text
    images = {Path(unquote(src)).name for src, _ in page.images}
    for model in (best, other):
        assert {f"confusion_{model}_counts.png", f"confusion_{model}_normalized.png",
                f"per_class_{model}.png"} <= images
    assert {"folds_accuracy.png", "folds_macro_f1.png"} <= images
    assert page.details_open.count(True) == 1, "only the best model's block is open"
    assert f"{best} (best)" in text
    assert f"The saved model bundle (model/) holds {best}, refitted on all clips." in inline_text(index)
    # Twelve confidently wrong predictions of the best model, each with spectrogram and player.
    wrong = [s for s, _ in page.images if Path(unquote(s)).name.startswith("wrong_")]
    assert len(wrong) == 12 and len(page.audio) == 12
    for src in page.audio:
        info = sf.info(str(index.parent / unquote(src)))
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
    preds = pd.read_csv(run / "predictions.csv")
    top = preds[(preds.model == best) & (preds.label != preds.predicted)].nlargest(1, "confidence").iloc[0]
    assert text.index(f"#1 true {top.label} → predicted {top.predicted} confidence {top.confidence:.3f}") > \
        text.index("Most confidently wrong")
    assert f"held out in {top.split}" in text


def test_the_report_names_the_model_in_the_bundle_not_the_best(demo_root, tmp_path):
    table = demo_table(demo_root, tmp_path / "features")
    result = train_run(table, tmp_path / "run", final="knn")
    assert result.leaderboard.loc[0, "model"] == "logreg", "the fixture's data should favour logreg"
    text = inline_text(report.build_report(tmp_path / "run"))
    assert "Best model by mean accuracy: logreg" in text
    assert "The saved model bundle (model/) holds knn, refitted on all clips." in text


def test_a_run_without_a_bundle_says_so(demo_root, tmp_path):
    table = demo_table(demo_root, tmp_path / "features", meta=False)
    assert train_run(table, tmp_path / "run").bundle_dir is None
    text = inline_text(report.build_report(tmp_path / "run", n_wrong=0))
    assert "No model bundle was saved by this run." in text and "holds" not in text
    assert "no features.json beside it when the model was trained" in text


def test_leaky_run_shows_the_warning_first(demo_root, tmp_path):
    table = demo_table(demo_root, tmp_path / "features")
    train_run(table, tmp_path / "run", cv="random")
    index = report.build_report(tmp_path / "run", n_wrong=2, models=["knn"])
    html = index.read_text(encoding="utf-8")
    text = page_text(parse_page(index))
    assert 'class="note danger"' in html
    assert html.index("Leaky protocol") < html.index('id="summary"')
    assert "these scores are optimistic" in text and "--cv auto" in text
    assert "confusion_logreg_counts.png" not in html


def _top_wrong(run: Path, n: int) -> pd.DataFrame:
    """The n most confidently wrong predictions of the best model, in the report's order."""
    preds = pd.read_csv(run / "predictions.csv")
    best = pd.read_csv(run / "leaderboard.csv").loc[0, "model"]
    wrong = preds[(preds.model == best) & (preds.label != preds.predicted)]
    return wrong.sort_values("confidence", ascending=False, kind="stable").head(n)


def test_a_card_plays_its_own_clip_or_none_never_one_with_the_same_name(run, demo_root, tmp_path):
    moved = Path(shutil.copytree(demo_root, tmp_path / "moved"))
    first, second = _top_wrong(run, 2)["path"]
    # The first card's clip is gone from this copy, but another folder holds a file of the same name.
    (moved / first).unlink()
    (moved / "audio" / "other").mkdir()
    shutil.copy(moved / second, moved / "audio" / "other" / Path(first).name)
    index = report.build_report(run, n_wrong=2, audio_root=moved, out=tmp_path / "r")
    page = parse_page(index)
    assert len(page.audio) == 1, "only the second card has its clip"
    cards = inline_text(index).split("#2 true")
    assert "Audio not found" in cards[0] and "Audio not found" not in cards[1]
    played, _ = sf.read(str(index.parent / unquote(page.audio[0])))
    assert len(played) > 0


def test_paths_that_leave_the_dataset_root_are_refused(run, demo_root, tmp_path):
    root = Path(shutil.copytree(demo_root, tmp_path / "root"))
    outside = Path(shutil.copy(root / _top_wrong(run, 1)["path"].iloc[0], tmp_path / "secret.wav"))
    (root / "audio" / "escape.wav").symlink_to(outside)
    (root / "audio" / "fine.wav").symlink_to(root / _top_wrong(run, 1)["path"].iloc[0])
    preds = pd.read_csv(run / "predictions.csv", dtype={"path": str})
    rows = _top_wrong(run, 4).index
    preds.loc[rows, "path"] = ["../secret.wav", str(outside), "audio/escape.wav", "audio/fine.wav"]
    preds.to_csv(run / "predictions.csv", index=False)
    index = report.build_report(run, n_wrong=4, audio_root=root, out=tmp_path / "r")
    page = parse_page(index)
    text = inline_text(index)
    assert text.count("Audio not found") == 3
    assert len(page.audio) == 1, "a symlink that stays inside the root is fine"
    assert "fine.wav" in page.images[-1][1]


def test_file_name_only_tables_find_the_clip_of_that_name_and_label(demo_root, tmp_path):
    table = demo_table(demo_root, tmp_path / "features", path_column="filename")
    train_run(table, tmp_path / "run")
    page = parse_page(report.build_report(tmp_path / "run", n_wrong=3))
    assert len(page.audio) == 3
    text = inline_text(report.build_report(tmp_path / "run", n_wrong=3,
                                           audio_root=tmp_path / "features", out=tmp_path / "r"))
    assert text.count("Audio not found") == 3, "not a dataset: nothing to match the names against"


def test_missing_or_broken_run_files_are_named(run, tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        report.build_report(tmp_path / "nope")
    with pytest.raises(RunDirError, match="--models svm"):
        report.build_report(run, models=["svm"])
    (run / "confusion" / "knn_normalized.csv").unlink()
    with pytest.raises(RunDirError, match="knn_normalized.csv"):
        report.build_report(run, n_wrong=0)
    pd.read_csv(run / "folds.csv").drop(columns="accuracy").to_csv(run / "folds.csv", index=False)
    with pytest.raises(RunDirError, match=r"folds.csv lacks column\(s\) \['accuracy'\]"):
        report.build_report(run)
    (run / "run.json").write_text('{"table": "x"}')
    with pytest.raises(RunDirError, match=r"run.json lacks key\(s\) \['table_sha256'"):
        report.build_report(run)


def test_report_command_line(run, tmp_path, capsys):
    status = cli.main(["report", str(run), "--models", "knn", "--n-wrong", "0", "--out", str(tmp_path / "out")])
    assert status == 0
    assert "Report written to" in capsys.readouterr().out
    page = parse_page(tmp_path / "out" / "index.html")
    assert page.audio == [] and "wrong" not in page.ids
    with pytest.raises(SystemExit):
        cli.build_parser("report").parse_args(["report", str(run), "--n-wrong", "-1"])


def test_the_report_shows_which_features_matter(run):
    page = parse_page(report.build_report(run))
    images = {Path(unquote(src)).name for src, _ in page.images}
    assert "importance" in page.ids and {"importance.png", "importance_by_class.png"} <= images
    text = page_text(page)
    assert "Drop in out-of-fold accuracy when one family of feature columns is shuffled" in text
    (run / "importance.csv").unlink()  # a run with --no-importance, or an older one
    text = page_text(parse_page(report.build_report(run)))
    assert "This run has no importance.csv" in text
