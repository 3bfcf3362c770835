"""classify.training + classify.cli train: every output, honest OOF predictions, the bundle."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from classify import cli, final
from classify.evaluation import FOLDS_COLUMNS, LEADERBOARD_COLUMNS, PER_CLASS_COLUMNS
from classify.options import TrainOptions
from classify.registry import MODEL_NAMES
from classify.splits import LEAKY_NOTE
from classify.training import train
from features.compute import feature_columns
from features.io.atomic import write_json
from features.params import FeatureParams
from features.schema import build_schema
from features.table import write_csv, write_table

REPO = Path(__file__).resolve().parents[1]
# The GTZAN preset's 26 columns: real feature names, so the bundle can be saved.
PARAMS = FeatureParams(preset="gtzan")
FEATURES = feature_columns(PARAMS)
CLASSES = ["blues", "jazz", "rock"]


def make_table(folder: Path, *, n_groups: int = 36, n_folds: int = 4, meta: bool = True,
               seed: int = 0) -> Path:
    """features.parquet (+ schema, + features.json) with folds, groups and 3 learnable classes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.35, (len(CLASSES), len(FEATURES)))
    rows, blocks = [], []
    for g in range(n_groups):
        c, size = g % len(CLASSES), 3 + g % 5
        offset = rng.normal(0, 0.5, len(FEATURES))
        blocks.append(centres[c] + offset + rng.normal(0, 1.0, (size, len(FEATURES))))
        fold = g % n_folds + 1
        rows += [{"path": f"fold{fold}/{CLASSES[c]}/rec{g}-{i}.wav", "label": CLASSES[c],
                  "fold": fold, "group": f"rec{g}"} for i in range(size)]
    df = pd.DataFrame(rows)
    df["fold"] = df["fold"].astype("Int64")
    scales = 10.0 ** rng.uniform(-2, 3, len(FEATURES))
    df = pd.concat([df, pd.DataFrame(np.vstack(blocks) * scales, columns=FEATURES)], axis=1)
    write_table(df, folder, ["parquet"])
    write_csv(build_schema(df, PARAMS, layout="manifest"), folder / "features.schema.csv")
    if meta:
        write_json({"params": PARAMS.to_dict(), "param_key": PARAMS.key(), "layout": "manifest",
                    "root": str(folder)}, folder / "features.json")
    return folder / "features.parquet"


def _quiet(line: str) -> None:
    pass


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(["train", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """All six models, predefined folds, through the command line (in-process)."""
    root = tmp_path_factory.mktemp("full")
    table = make_table(root / "features")
    out = root / "run"
    # capsys is function-scoped; a module fixture captures by hand.
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main(["train", str(table), "--out", str(out), "--epochs", "8", "--jobs", "1"])
    return {"table": table, "out": out, "status": status, "stdout": stdout.getvalue(),
            "stderr": stderr.getvalue(), "df": pd.read_parquet(table)}


# ------------------------------------------------------------- full run


def test_full_run_succeeds_and_prints_protocol_counts_and_leaderboard(full_run):
    assert full_run["status"] == 0, full_run["stderr"]
    out = full_run["stdout"]
    n = len(full_run["df"])
    assert f"{n} rows, 3 classes" in out and "26 features (feature columns from features.schema.csv)" in out
    assert "protocol: folds, 4 split(s); the table has a 'fold' column with 4 predefined folds" in out
    board = out[out.index("leaderboard (folds, 4 split(s)):"):]
    for name in MODEL_NAMES:
        assert re.search(rf"^\s*{name}\s+[01]\.\d{{3}}", board, re.MULTILINE), name
    assert "final model:" in board


def test_every_output_file_exists(full_run):
    out = full_run["out"]
    expected = ["leaderboard.csv", "folds.csv", "per_class.csv", "predictions.csv", "folds.png",
                "report.md", "run.json", "model/bundle.json"]
    for name in MODEL_NAMES:
        expected += [f"confusion/{name}_{kind}.{ext}" for kind in ("counts", "normalized")
                     for ext in ("csv", "png")]
    missing = [p for p in expected if not (out / p).is_file()]
    assert not missing


def test_leaderboard_has_the_contract_columns_best_first(full_run):
    board = pd.read_csv(full_run["out"] / "leaderboard.csv")
    assert list(board.columns) == [*LEADERBOARD_COLUMNS, "protocol", "selection"]
    assert sorted(board["model"]) == sorted(MODEL_NAMES)
    assert board["accuracy_mean"].is_monotonic_decreasing
    assert (board["protocol"] == "folds").all()
    assert board[["accuracy_mean", "balanced_accuracy_mean", "macro_f1_mean"]].gt(0.4).all().all()  # chance: 1/3


def test_folds_csv_names_each_held_out_fold(full_run):
    folds = pd.read_csv(full_run["out"] / "folds.csv")
    assert list(folds.columns) == [*FOLDS_COLUMNS, "restarts"]
    assert len(folds) == len(MODEL_NAMES) * 4
    assert set(folds["split"]) == {"fold1", "fold2", "fold3", "fold4"}
    assert folds["fold"].dtype == np.int64, "the dataset's fold, as a number"
    df = full_run["df"]
    for _, row in folds.iterrows():
        fold = row["fold"]
        assert row["split"] == f"fold{fold}"
        assert row["n_test"] == (df["fold"] == fold).sum()
        assert row["n_train"] == (df["fold"] != fold).sum()
    assert folds["accuracy"].between(0, 1).all() and (folds["fit_seconds"] >= 0).all()


def test_per_class_scores_from_out_of_fold_predictions(full_run):
    per_class = pd.read_csv(full_run["out"] / "per_class.csv")
    assert list(per_class.columns) == [*PER_CLASS_COLUMNS, "protocol"]
    assert len(per_class) == len(MODEL_NAMES) * 3
    counts = full_run["df"]["label"].value_counts()
    for _, row in per_class.iterrows():
        assert row["support"] == counts[row["class"]]


def test_predictions_cover_every_row_exactly_once_per_model(full_run):
    preds = pd.read_csv(full_run["out"] / "predictions.csv")
    prob_cols = [f"prob_{c}" for c in CLASSES]
    assert list(preds.columns) == ["path", "label", "fold", "split", "model", "predicted", "confidence",
                                   *prob_cols]
    df = full_run["df"]
    for name in MODEL_NAMES:
        mine = preds[preds["model"] == name]
        assert sorted(mine["path"]) == sorted(df["path"]), name
    truth = df.set_index("path")
    assert (preds["label"] == truth.loc[preds["path"], "label"].to_numpy()).all()
    assert (preds["fold"] == truth.loc[preds["path"], "fold"].to_numpy()).all()
    assert (preds["split"] == "fold" + preds["fold"].astype(str)).all()
    np.testing.assert_allclose(preds[prob_cols].sum(axis=1), 1.0, atol=1e-5)
    assert (preds["predicted"] == preds[prob_cols].idxmax(axis=1).str[5:]).all()
    np.testing.assert_allclose(preds["confidence"], preds[prob_cols].max(axis=1))


def test_confusion_matrices_counts_and_row_normalised(full_run):
    n = len(full_run["df"])
    preds = pd.read_csv(full_run["out"] / "predictions.csv")
    for name in MODEL_NAMES:
        counts = pd.read_csv(full_run["out"] / "confusion" / f"{name}_counts.csv", index_col=0)
        norm = pd.read_csv(full_run["out"] / "confusion" / f"{name}_normalized.csv", index_col=0)
        assert list(counts.index) == CLASSES and list(counts.columns) == CLASSES
        assert counts.index.name == "true_label"
        assert counts.to_numpy().sum() == n
        mine = preds[preds["model"] == name]
        assert np.trace(counts.to_numpy()) == (mine["label"] == mine["predicted"]).sum()
        np.testing.assert_allclose(norm.sum(axis=1), 1.0)


def test_no_csv_header_or_cell_reads_as_a_boolean_or_number_in_a_spreadsheet(full_run):
    # Spreadsheets turn TRUE/FALSE (any case) into booleans; a header must stay a name.
    coerced = {"true", "false", "yes", "no", "on", "off"}
    for path in sorted(full_run["out"].rglob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        bad = [c for c in frame.columns if c.strip().lower() in coerced or _is_number(c)]
        assert not bad, f"{path.name}: header(s) {bad}"
        for column in frame.columns:
            cells = set(frame[column].str.strip().str.lower())
            assert not cells & coerced, f"{path.name}: column {column} holds {cells & coerced}"


def test_fold_columns_join_across_files_with_the_table(full_run):
    """``fold`` means the dataset's fold everywhere: same type and values, so a typed join works."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = full_run["out"]
    table = pq.read_table(full_run["table"], columns=["path", "fold"])
    table = table.set_column(0, "path", table["path"].cast("string"))  # pandas writes large_string
    preds = pacsv.read_csv(out / "predictions.csv").select(["path", "fold", "model"])
    folds = pacsv.read_csv(out / "folds.csv").select(["fold", "model", "accuracy"])
    assert preds.schema.field("fold").type == folds.schema.field("fold").type == table.schema.field("fold").type
    # Every prediction finds its clip (same path and fold) and its split's score (same fold and model).
    assert preds.join(table, keys=["path", "fold"], join_type="inner").num_rows == preds.num_rows
    assert preds.join(folds, keys=["fold", "model"], join_type="inner").num_rows == preds.num_rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_report_md_has_tables_and_working_image_links(full_run):
    text = (full_run["out"] / "report.md").read_text()
    assert "## Leaderboard" in text and "| model | accuracy_mean |" in text
    assert "Protocol: **folds**" in text and "Leaky protocol" not in text
    assert "refitted on all rows and saved in `model/`" in text
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert "folds.png" in links and "confusion/mlp_normalized.png" in links
    assert all((full_run["out"] / link).is_file() for link in links), links


def test_run_json_records_provenance(full_run):
    info = json.loads((full_run["out"] / "run.json").read_text())
    table = full_run["table"]
    assert info["table"] == str(table.resolve())
    assert info["table_sha256"] == hashlib.sha256(table.read_bytes()).hexdigest()
    assert info["features_json"]["params"] == PARAMS.to_dict()
    assert info["protocol"]["name"] == "folds" and info["protocol"]["leaky"] is False
    assert info["protocol"]["n_splits"] == 4 and info["protocol"]["reason"]
    board = pd.read_csv(full_run["out"] / "leaderboard.csv")
    assert info["best_model"] == board.loc[0, "model"] == info["final_model"]
    assert info["models"] == list(MODEL_NAMES) and info["classes"] == CLASSES
    assert info["n_rows"] == len(full_run["df"]) and info["n_features"] == 26
    assert info["params"]["options"]["epochs"] == 8 and info["params"]["options"]["seed"] == 0
    assert info["params"]["models"]["rf"]["rf__n_estimators"] == 300
    assert info["params"]["models"]["mlp"]["mlp__hidden_layers"] == [100, 200, 100]
    assert {"python", "scikit-learn", "tensorflow", "numpy"} <= set(info["versions"])
    assert info["timings"]["total_seconds"] > 0 and set(info["timings"]["cv_wall_seconds"]) == set(MODEL_NAMES)
    assert info["model_bundle"].endswith("model")


def test_the_bundle_holds_the_refitted_best_model(full_run):
    from classify.bundle import load_bundle

    meta = json.loads((full_run["out"] / "model" / "bundle.json").read_text())
    board = pd.read_csv(full_run["out"] / "leaderboard.csv")
    assert meta["model_name"] == board.loc[0, "model"]
    assert meta["class_names"] == CLASSES and meta["feature_columns"] == FEATURES
    bundle = load_bundle(full_run["out"] / "model")
    X = full_run["df"][FEATURES].to_numpy()
    proba = bundle.estimator.predict_proba(X)
    assert proba.shape == (len(X), 3)
    assert (bundle.estimator.predict(X) == full_run["df"]["label"]).mean() > 0.6


# -------------------------------------------------------- other protocols


def test_random_protocol_is_marked_leaky_everywhere(tmp_path, capsys):
    table = make_table(tmp_path / "features")
    out = tmp_path / "run"
    status, stdout, _ = run_cli(capsys, str(table), "--out", str(out), "--cv", "random",
                                "--models", "logreg,knn", "--jobs", "1")
    assert status == 0
    assert f"protocol: random ({LEAKY_NOTE})" in stdout and "WARNING: random protocol" in stdout
    folds = pd.read_csv(out / "folds.csv")
    assert (folds["split"] == "holdout (leaky)").all() and folds["fold"].isna().all()
    preds = pd.read_csv(out / "predictions.csv")
    assert (preds["split"] == "holdout (leaky)").all()
    assert preds["fold"].dtype == np.int64, "each clip keeps its fold from the table"
    n = len(pd.read_parquet(table))
    assert len(preds) == 2 * int(np.ceil(0.2 * n))  # only the held-out rows are predicted
    for name in ("leaderboard.csv", "per_class.csv"):
        assert pd.read_csv(out / name)["protocol"].str.contains(LEAKY_NOTE, regex=False).all()
    assert "**Leaky protocol.**" in (out / "report.md").read_text()
    info = json.loads((out / "run.json").read_text())
    assert info["protocol"]["leaky"] is True and LEAKY_NOTE in info["protocol"]["label"]


@pytest.mark.slow
def test_results_do_not_depend_on_jobs(tmp_path):
    """Every model, jobs=1 (this process) against jobs=2 (workers): the same bits."""
    table = make_table(tmp_path / "features", n_groups=24, meta=False)
    kw = {"models": MODEL_NAMES, "cv": "group", "k": 3, "quiet": True, "epochs": 4, "mlp_layers": (32, 16)}
    one = train(table, tmp_path / "one", TrainOptions(**kw, jobs=1), log=_quiet, warn=_quiet)
    two = train(table, tmp_path / "two", TrainOptions(**kw, jobs=2), log=_quiet, warn=_quiet)
    assert one.protocol.name == "group"
    groups = one.table.groups
    for split in one.protocol.splits:
        assert not set(groups[split.train]) & set(groups[split.test])
    for name in MODEL_NAMES:
        np.testing.assert_array_equal(one.results[name].proba, two.results[name].proba, err_msg=name)
    for name in ("predictions.csv", "folds.csv", "per_class.csv"):
        a, b = pd.read_csv(tmp_path / "one" / name), pd.read_csv(tmp_path / "two" / name)
        pd.testing.assert_frame_equal(a.drop(columns="fit_seconds", errors="ignore"),
                                      b.drop(columns="fit_seconds", errors="ignore"))


def test_final_option_and_a_fake_bundle_receive_the_fitted_mlp_pipeline(tmp_path, monkeypatch):
    calls = []

    def save_bundle(directory, **kwargs):
        calls.append((Path(directory), kwargs))
        return directory

    monkeypatch.setattr(final, "save_bundle", save_bundle)
    table = make_table(tmp_path / "features")
    options = TrainOptions(models="knn,mlp", final="mlp", epochs=4, class_weight="balanced",
                           jobs=1, quiet=True)
    result = train(table, tmp_path / "run", options, log=_quiet, warn=_quiet)
    assert result.final_model == "mlp"
    (directory, kwargs), = calls
    # Written into the run's staging folder, which is moved into place as a whole.
    assert directory.name == "model" and directory.parent.parent == tmp_path / "run"
    assert not directory.exists() and (tmp_path / "run" / "run.json").is_file()
    assert kwargs["model_name"] == "mlp"
    pipe = kwargs["estimator"]
    assert isinstance(pipe, Pipeline) and isinstance(pipe.steps[0][1], StandardScaler)
    assert pipe.steps[-1][0] == "mlp" and pipe.steps[-1][1].model_ is not None
    assert pipe.steps[-1][1].class_weight == "balanced"
    assert kwargs["class_names"] == CLASSES and kwargs["feature_columns"] == FEATURES
    assert kwargs["features_meta"]["params"] == PARAMS.to_dict()


def test_without_features_json_no_bundle_and_the_previous_runs_goes(tmp_path, capsys):
    table = make_table(tmp_path / "features")
    run = tmp_path / "run"
    args = (str(table), "--out", str(run), "--models", "knn", "--jobs", "1", "--quiet")
    assert run_cli(capsys, *args)[0] == 0
    assert (run / "model" / "bundle.json").is_file()
    (tmp_path / "features" / "features.json").unlink()
    status, stdout, stderr = run_cli(capsys, *args)
    assert status == 0
    assert "warning: no model bundle saved: there is no features.json" in stderr
    assert not (run / "model").exists(), "the previous run's bundle is not this run's model"
    assert "final model: knn (not saved)" in stdout


def test_default_run_folder_is_beside_the_table(tmp_path, capsys):
    # A table of 'features extract' (features.json beside it): beside its folder.
    table = make_table(tmp_path / "features")
    assert run_cli(capsys, str(table), "--models", "knn", "--jobs", "1", "--quiet")[0] == 0
    assert (tmp_path / "run" / "run.json").is_file()
    # Any other table: 'run' in its own folder, never two levels up (/root/t.csv -> /run).
    other = tmp_path / "mine" / "t.csv"
    other.parent.mkdir()
    pd.read_parquet(table).to_csv(other, index=False)
    assert run_cli(capsys, str(other), "--models", "knn", "--jobs", "1", "--quiet")[0] == 0
    assert (tmp_path / "mine" / "run" / "run.json").is_file()
    assert not (tmp_path / "run" / "t.csv").exists()


def test_option_errors_exit_2_with_one_line(tmp_path, capsys):
    table = make_table(tmp_path / "features")
    for argv, pattern in [
        (["--models", "knn", "--final", "svm"], "--final 'svm' is not among --models knn"),
        (["--models", "knn,boost"], r"unknown model\(s\) 'boost'"),
        (["--mlp-layers", "100,x"], "--mlp-layers '100,x' must be comma-separated positive integers"),
        (["--epochs", "0"], "--epochs 0 must be an integer >= 1"),
        (["--cv", "group", "--k", "40"], "needs at least 40 groups, and the table has 36"),
    ]:
        status, _, stderr = run_cli(capsys, str(table), "--out", str(tmp_path / "run"), *argv)
        assert status == 2, argv
        assert re.fullmatch(rf"error: .*{pattern}.*\n", stderr), stderr


def test_a_run_folder_in_use_exits_5_and_is_left_alone(tmp_path, capsys):
    from features.engine.outputs import OutputLock

    table = make_table(tmp_path / "features")
    run = tmp_path / "run"
    assert run_cli(capsys, str(table), "--out", str(run), "--models", "knn", "--jobs", "1", "--quiet")[0] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    with OutputLock(run):  # another run holds the folder
        status, _out, err = run_cli(capsys, str(table), "--out", str(run), "--models", "knn", "--jobs", "1")
    assert status == 5 and f"the output folder {run} is in use by another run" in err
    assert before == {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}


def test_exit_codes_are_listed_in_the_help():
    text = cli.build_parser().format_help()
    assert "2 usage error" in " ".join(text.split()) and "1 runtime error" in " ".join(text.split())


def test_command_line_end_to_end_without_tensorflow_noise(tmp_path):
    table = make_table(tmp_path / "features")
    proc = subprocess.run(
        [sys.executable, "-m", "classify", "train", str(table), "--models", "mlp,logreg",
         "--epochs", "3", "--jobs", "1", "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "leaderboard (folds, 4 split(s)):" in proc.stdout
    for noise in ("oneDNN", "absl", "I0000", "cuda", "Epoch 1/"):
        assert noise not in proc.stderr + proc.stdout, noise
    assert (tmp_path / "run" / "model" / "mlp.keras").is_file() or (
        tmp_path / "run" / "model" / "pipeline.skops").is_file()


def test_svm_calibration_adapts_to_a_class_with_two_training_rows():
    from classify.models import make_pipeline
    from classify.validation import fit_pipeline

    rng = np.random.default_rng(0)
    y = np.array(["a"] * 20 + ["b"] * 20 + ["c"] * 2, dtype=object)
    X = rng.normal(size=(len(y), 4)) + (y == "b")[:, None] * 3.0
    pipe = make_pipeline("svm", seed=0, n_classes=3)
    fit_pipeline(pipe, X, y, {}, where="fold1")
    assert pipe.predict_proba(X).shape == (len(y), 3)

    lonely = np.array(["a"] * 20 + ["b"] * 20 + ["c"], dtype=object)
    from classify.errors import ModelError
    with pytest.raises(ModelError, match="svm could not be fitted on fold2: ValueError: class 'c' has a "
                                         "single training row"):
        fit_pipeline(make_pipeline("svm", seed=0, n_classes=3), X[:-1], lonely, {}, where="fold2")


def test_training_gives_the_models_with_inner_splits_their_groups(tmp_path, monkeypatch):
    import classify.models

    seen = []

    def spy(name, real):
        def wrapped(y, groups, *args, **kwargs):
            seen.append((name, groups is not None and len(groups) == len(y)))
            return real(y, groups, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(classify.models, "calibration_folds", spy("svm", classify.models.calibration_folds))
    monkeypatch.setattr(classify.models, "validation_split", spy("hgb", classify.models.validation_split))
    table = make_table(tmp_path / "features", meta=False)
    train(table, tmp_path / "run", TrainOptions(models="svm,hgb", jobs=1, quiet=True), log=_quiet, warn=_quiet)
    # Each of the four splits gives the model the groups of its training rows (no
    # features.json: no final fit).
    assert seen == [("svm", True)] * 4 + [("hgb", True)] * 4


def test_a_library_failure_in_a_fit_is_one_named_error(tmp_path, capsys, monkeypatch):
    from sklearn.neighbors import KNeighborsClassifier

    def broken_fit(self, X, y):
        raise ArithmeticError("boom")

    monkeypatch.setattr(KNeighborsClassifier, "fit", broken_fit)
    table = make_table(tmp_path / "features")
    status, _out, err = run_cli(capsys, str(table), "--out", str(tmp_path / "run"), "--models", "knn",
                               "--jobs", "1")
    assert status == 1, "a fit that fails is a runtime error, not a usage error"
    assert err.strip().splitlines()[-1] == ("error: knn could not be fitted on fold1: "
                                            "ArithmeticError: boom")
    assert "Traceback" not in err


def test_features_json_that_does_not_match_the_columns_skips_the_bundle(tmp_path, capsys):
    table = make_table(tmp_path / "features")
    meta = json.loads((tmp_path / "features" / "features.json").read_text())
    meta["params"]["n_mfcc"] = 13  # the table holds 20 MFCC means
    (tmp_path / "features" / "features.json").write_text(json.dumps(meta))
    status, _stdout, stderr = run_cli(capsys, str(table), "--models", "knn", "--jobs", "1", "--quiet")
    assert status == 0
    assert (tmp_path / "run" / "leaderboard.csv").is_file()
    assert "no model bundle saved: the table's feature columns are not the ones" in stderr
    assert not (tmp_path / "run" / "model").exists()
