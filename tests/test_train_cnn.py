"""classify train with the CNN models: the same clips and splits as the tabular models, no augmentation leak, safe bundles."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import classify.cnn as cnn_module
from classify import cli, final, validation
from classify.bundle import BUNDLE_JSON, CNN_FILE, CNN_JSON, KIND_KERAS_CNN, load_bundle
from classify.errors import TableError, UsageError
from classify.options import TrainOptions
from classify.training import train
from features.extract import extract_dataset
from features.io.atomic import write_json
from features.params import FeatureParams, PatchParams
from features.patches import extract_patches, read_patches
from features.table import write_table

REPO = Path(__file__).resolve().parents[1]
SR = 8000
# 0.5 s at 8 kHz, 16 bands: patches of 16 x 32, so a CNN fit takes a second or two.
PATCHES = PatchParams(duration=0.5, sr=SR, n_mels=16, n_fft=256, hop_length=128)
PITCH = {"low": 300.0, "mid": 900.0, "high": 2400.0}
FAST = {"cnn_epochs": 1, "quiet": True}
N_GROUPS = 36
N_CLIPS = 3 * N_GROUPS


def _quiet(line: str) -> None:
    pass


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """108 clips: 3 classes (tones), 36 recordings of 3 clips, 3 folds; every third clip stereo.

    Enough for the CNN to hold out an early-stopping part (10 rows) of each
    training part.

    Returns the dataset root, its features folder (default preset) and its
    patches folder, extracted by the features package as `make` does.
    """
    base = tmp_path_factory.mktemp("cnn")
    root = base / "data"
    rng = np.random.default_rng(0)
    rows = []
    t = np.arange(int(0.5 * SR)) / SR
    for g in range(N_GROUPS):
        label = list(PITCH)[g % 3]
        for i in range(3):
            freq = PITCH[label] * (1 + 0.03 * rng.standard_normal())
            y = 0.4 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
            if i == 0:
                y = np.stack([y, 0.5 * y], axis=1)
            rel = f"clips/{label}/rec{g}-{i}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, y.astype(np.float32), SR)
            rows.append({"path": rel, "label": label, "fold": (g // 3) % 3 + 1, "group": f"rec{g}"})
    pd.DataFrame(rows).to_csv(root / "clips.csv", index=False)
    features, patches = base / "features", base / "patches"
    extract_dataset(root, features, FeatureParams(sr=SR), manifest="clips.csv", jobs=1, quiet=True,
                    formats=("parquet",))
    extract_patches(root, patches, PATCHES, manifest="clips.csv", jobs=1, quiet=True)
    return {"root": root, "features": features, "table": features / "features.parquet",
            "patches": patches}


def copy_table(dataset, folder: Path, edit=None) -> Path:
    """The dataset's table, edited by ``edit(df) -> df``, written with its schema and parameters."""
    df = pd.read_parquet(dataset["table"])
    if edit is not None:
        df = edit(df).reset_index(drop=True)
    write_table(df, folder, ["parquet"])
    shutil.copy(dataset["features"] / "features.schema.csv", folder / "features.schema.csv")
    meta = json.loads((dataset["features"] / "features.json").read_text())
    meta.pop("files", None)  # the table was edited: nothing to check it against
    write_json(meta, folder / "features.json")
    return folder / "features.parquet"


def patch_index(dataset) -> pd.DataFrame:
    return read_patches(dataset["patches"])["index"]


# ----------------------------------------------------------- same splits


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    """logreg and cnn through the command line, patches found beside the table by convention."""
    base = tmp_path_factory.mktemp("run")
    # data/output/<name>/features + data/output/<name>/patches
    shutil.copytree(dataset["features"], base / "features")
    shutil.copytree(dataset["patches"], base / "patches")
    status = cli.main(["train", str(base / "features" / "features.parquet"), "--models", "logreg,cnn",
                       "--cnn-epochs", "1", "--jobs", "1", "--quiet", "--final", "logreg"])
    return {"status": status, "out": base / "run"}


def test_the_cnn_is_compared_under_the_same_splits_as_the_tabular_models(run):
    assert run["status"] == 0
    out = run["out"]
    folds = pd.read_csv(out / "folds.csv")
    keys = ["split", "fold", "n_train", "n_test"]
    pd.testing.assert_frame_equal(folds[folds["model"] == "cnn"][keys].reset_index(drop=True),
                                  folds[folds["model"] == "logreg"][keys].reset_index(drop=True))
    assert folds["split"].nunique() == 3
    preds = pd.read_csv(out / "predictions.csv")
    tested = {m: set(zip(p["path"], p["split"])) for m, p in preds.groupby("model")}
    assert tested["cnn"] == tested["logreg"] and len(tested["cnn"]) == N_CLIPS
    board = pd.read_csv(out / "leaderboard.csv")
    assert set(board["model"]) == {"logreg", "cnn"}
    per_class = pd.read_csv(out / "per_class.csv")
    assert (per_class["model"] == "cnn").sum() == 3
    for kind in ("counts", "normalized"):
        assert (out / "confusion" / f"cnn_{kind}.csv").is_file()
        assert (out / "confusion" / f"cnn_{kind}.png").is_file()
    assert not (out / "unmatched.csv").exists()


def test_importance_is_skipped_for_the_cnn_and_the_run_says_so(run):
    out = run["out"]
    importance = pd.read_csv(out / "importance.csv")
    assert set(importance["model"]) == {"logreg"}
    info = json.loads((out / "run.json").read_text())
    assert "log-mel patches" in info["importance"]["skipped"]["cnn"]
    assert info["patches"]["shape"] == list(PATCHES.shape) and info["patches"]["n_rows"] == N_CLIPS
    assert info["params"]["models"]["cnn"]["cnn__epochs"] == 1
    assert "Permutation importance was not computed for cnn" in (out / "report.md").read_text()
    assert cli.main(["report", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    assert "Not computed for <strong>cnn</strong>" in page
    assert "learn from log-mel patches (16x32" in page
    assert "add <code>cnn_aug</code> to the models" in page  # how to see augmentation beside it
    assert "Confusion matrix of cnn, counts" in page


def test_clips_on_one_side_only_are_left_out_of_every_model_and_listed(dataset, tmp_path):
    index = patch_index(dataset)
    dropped = index["path"].iloc[4]                      # failed in `features extract`

    def edit(df):
        extra = df.iloc[[0]].assign(path="clips/low/never-patched.wav")   # failed in `features patches`
        return pd.concat([df[df["path"] != dropped], extra])

    table = copy_table(dataset, tmp_path / "features", edit)
    warnings = []
    result = train(table, tmp_path / "run", TrainOptions(models="logreg,cnn", jobs=1, **FAST),
                   patches=dataset["patches"], log=_quiet, warn=warnings.append)
    assert result.table.n_rows == N_CLIPS - 1 and result.n_table_rows == N_CLIPS
    assert any("1 table row(s) have no patch and 1 patch(es) have no table row: every model is "
               f"trained and scored on the {N_CLIPS - 1} clips" in w for w in warnings), warnings
    unmatched = pd.read_csv(tmp_path / "run" / "unmatched.csv")
    assert unmatched[["path", "missing_from"]].values.tolist() == [
        ["clips/low/never-patched.wav", "patches"], [dropped, "features"]]
    folds = pd.read_csv(tmp_path / "run" / "folds.csv")
    assert (folds.groupby("model")["n_test"].sum() == N_CLIPS - 1).all()
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert not set(preds["path"]) & set(unmatched["path"])
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["patches"]["unmatched"] == {"no_patch": 1, "no_table_row": 1, "file": "unmatched.csv"}
    assert info["n_rows"] == N_CLIPS - 1


def test_a_clip_labelled_otherwise_in_the_patches_is_refused(dataset, tmp_path):
    def edit(df):
        df = df.copy()
        df.loc[3, "label"] = "mid" if df.loc[3, "label"] != "mid" else "low"
        return df

    table = copy_table(dataset, tmp_path / "features", edit)
    with pytest.raises(TableError, match=r"is labelled .* but .* in .*patches\.parquet"):
        train(table, tmp_path / "run", TrainOptions(models="cnn", jobs=1, **FAST),
              patches=dataset["patches"], log=_quiet, warn=_quiet)


def test_a_segment_table_or_missing_patches_are_refused_with_what_to_do(dataset, tmp_path, capsys):
    from synth import clips_frame, write

    table = write(clips_frame(windows=2), tmp_path / "seg", segment={"seconds": 3.0, "hop": 3.0, "last": "pad"})
    with pytest.raises(UsageError, match="one row per window .* take one patch per clip"):
        train(table, tmp_path / "run", TrainOptions(models="cnn", jobs=1, **FAST),
              patches=dataset["patches"], log=_quiet, warn=_quiet)
    plain = copy_table(dataset, tmp_path / "features")
    status = cli.main(["train", str(plain), "--models", "svm,cnn", "--quiet"])
    assert status == 2
    err = capsys.readouterr().err
    assert "holds no patches.json: run `python -m features patches DATASET --out DIR`" in err
    assert err.count("\n") == 1


# --------------------------------------------------------- augmentation


def _fingerprints(dataset):
    """bytes of a patch -> its path: to recognise a clip in whatever a fit is given."""
    data = read_patches(dataset["patches"])
    return {np.asarray(p).tobytes(): path for p, path in zip(data["patches"], data["index"]["path"])}


@pytest.mark.parametrize("cv", ["folds", "holdout"])
def test_no_augmented_version_of_a_validation_or_test_clip_is_ever_trained_on(dataset, tmp_path, monkeypatch, cv):
    """Through `train`: every fit of cnn_aug augments only clips of its split's training part."""
    calls = []
    real = cnn_module.augment

    def spy(train_rows, patches, index, **kwargs):
        out = real(train_rows, patches, index, **kwargs)
        calls.append({"X": np.asarray(patches).copy(), "train": np.asarray(train_rows),
                      "source": out.source, "groups": np.asarray(index["group"])})
        return out

    monkeypatch.setattr(cnn_module, "augment", spy)
    known = _fingerprints(dataset)
    table = dataset["table"]
    if cv == "holdout":
        parts = ("train", "train", "validation", "test")
        table = copy_table(dataset, tmp_path / "features", lambda df: df.assign(
            split=[parts[(int(g[3:]) // 3) % 4] for g in df["group"]]))
    result = train(table, tmp_path / "run",
                   TrainOptions(models="cnn_aug", cv=cv, jobs=1, final="cnn_aug", **FAST),
                   patches=dataset["patches"], log=_quiet, warn=_quiet)
    paths = result.table.df["path"].to_numpy()
    parts = [(s.name, set(paths[s.train]), set(paths[s.test]),
              set() if s.validation is None else set(paths[s.validation])) for s in result.protocol.splits]
    parts.append(("final fit", set(paths), set(), set()))
    # Every epoch of a fit draws a fresh augmentation from the same patches and rows.
    fits: list[list[dict]] = []
    for call in calls:
        last = fits[-1][0] if fits else None
        if (last is not None and np.array_equal(last["train"], call["train"])
                and last["X"].shape == call["X"].shape and np.array_equal(last["X"], call["X"])):
            fits[-1].append(call)
        else:
            fits.append([call])
    assert len(fits) == len(parts)
    assert all(len(fit) >= 2 for fit in fits), "a fresh draw for every epoch, not one copy per fit"
    for call, (name, train_part, test, val_part) in ((call, part) for fit, part in zip(fits, parts)
                                                       for call in fit):
        given = [known[x.tobytes()] for x in call["X"]]       # every row fitted on is a known clip
        assert set(given) == train_part, name                   # ... of this split's training part
        augmented = {given[i] for i in call["source"]}
        assert augmented and augmented <= train_part, name
        assert not augmented & (test | val_part), name
        if cv == "folds":                                       # the CNN's own early-stopping part
            held = np.setdiff1d(np.arange(len(given)), call["train"])
            assert len(held), name
            assert not {given[i] for i in held} & augmented, name
            assert not set(call["groups"][held]) & set(call["groups"][call["source"]]), name


# ------------------------------------------------------------------ jobs


def test_fit_split_starts_tensorflow_single_threaded_for_the_cnn_and_reads_its_rows(dataset, monkeypatch):
    from classify.models import make_pipeline
    from classify.table_patches import attach_patches
    from classify.tables import load_table

    table, patches, unmatched, _ = attach_patches(load_table(dataset["table"]), dataset["patches"])
    assert unmatched.empty and len(patches) == table.n_rows
    np.testing.assert_array_equal(patches[[5, 2]], read_patches(dataset["patches"])["patches"][
        patches.rows[[5, 2]]])
    seen = []
    real = validation.import_keras

    def spy(threads=None):
        seen.append(threads)
        return real(threads=threads)

    monkeypatch.setattr(validation, "import_keras", spy)
    task = validation.SplitTask("fold1", train=np.arange(80), test=np.arange(80, table.n_rows))
    outcome = validation.fit_split(make_pipeline("cnn", cnn_epochs=1), patches, table.y, table.classes, task)
    assert seen == [1]
    assert outcome.proba.shape == (table.n_rows - 80, 3) and outcome.permuted is None


@pytest.mark.slow
def test_cnn_results_do_not_depend_on_jobs(dataset, tmp_path):
    """jobs=1 (a fresh process fitting in itself) against jobs=2 (worker processes): the same bits."""
    out1, out2 = tmp_path / "one", tmp_path / "two"
    argv = [str(dataset["table"]), "--patches", str(dataset["patches"]), "--models", "cnn_aug",
            "--cnn-epochs", "2", "--quiet"]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-m", "classify", "train", *argv, "--out", str(out1), "--jobs", "1"],
                   check=True, capture_output=True, env=env, cwd=tmp_path)
    assert cli.main(["train", *argv, "--out", str(out2), "--jobs", "2"]) == 0
    for name in ("predictions.csv", "folds.csv", "per_class.csv"):
        a, b = pd.read_csv(out1 / name), pd.read_csv(out2 / name)
        pd.testing.assert_frame_equal(a.drop(columns="fit_seconds", errors="ignore"),
                                      b.drop(columns="fit_seconds", errors="ignore"), check_exact=True)


# ------------------------------------------------------- bundle, predict


@pytest.fixture(scope="module")
def cnn_bundle(dataset, tmp_path_factory):
    """A run whose final model is the CNN; the refitted estimator as `train` saved it."""
    base = tmp_path_factory.mktemp("bundle")
    saved = {}
    real = final.save_bundle

    def keep(directory, **kwargs):
        saved.update(kwargs)
        return real(directory, **kwargs)

    final.save_bundle = keep
    try:
        train(dataset["table"], base / "run", TrainOptions(models="cnn", jobs=1, final="cnn", **FAST),
              patches=dataset["patches"], log=_quiet, warn=_quiet)
    finally:
        final.save_bundle = real
    return {"dir": base / "run" / "model", "estimator": saved["estimator"]}


def test_the_cnn_bundle_predicts_new_files_like_the_trained_estimator(cnn_bundle, dataset, tmp_path):
    bundle = load_bundle(cnn_bundle["dir"])
    assert bundle.kind == KIND_KERAS_CNN and bundle.patch_params == PATCHES
    assert bundle.feature_columns == [] and bundle.feature_params is None
    meta = json.loads((cnn_bundle["dir"] / BUNDLE_JSON).read_text())
    assert set(meta["files"]) == {CNN_FILE, CNN_JSON}
    data = read_patches(dataset["patches"])
    clips = data["index"]["path"].tolist()[::5]
    out = tmp_path / "preds.csv"
    status = cli.main(["predict", "--model", str(cnn_bundle["dir"]), "--out", str(out),
                       *[str(dataset["root"] / c) for c in clips]])
    assert status == 0
    preds = pd.read_csv(out)
    assert preds["path"].tolist() == [str(dataset["root"] / c) for c in clips]
    expected = cnn_bundle["estimator"].predict_proba(data["patches"][::5])
    got = preds[[f"prob_{c}" for c in bundle.class_names]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert cli.main(["predict", "--model", str(cnn_bundle["dir"]), "--segments",
                     str(dataset["root"] / clips[0])]) == 2


def test_a_collection_is_labelled_by_a_cnn_bundle_on_the_engine(cnn_bundle, dataset, tmp_path):
    out = tmp_path / "collection"
    status = cli.main(["predict", "--model", str(cnn_bundle["dir"]), str(dataset["root"]), "--manifest",
                       str(dataset["root"] / "clips.csv"), "--out", str(out), "--jobs", "1", "--quiet"])
    assert status == 0
    preds = pd.read_csv(out / "predictions.csv")
    data = read_patches(dataset["patches"])
    assert preds["path"].tolist() == data["index"]["path"].tolist()
    assert preds["label"].tolist() == data["index"]["label"].tolist()
    bundle = load_bundle(cnn_bundle["dir"])
    got = preds[[f"prob_{c}" for c in bundle.class_names]].to_numpy()
    np.testing.assert_allclose(got, cnn_bundle["estimator"].predict_proba(data["patches"]), atol=1e-6)
    assert json.loads((out / "predictions.json").read_text())["model"]["kind"] == KIND_KERAS_CNN


def test_a_cnn_bundle_whose_keras_file_holds_a_lambda_layer_is_refused_by_predict(cnn_bundle, dataset, tmp_path, capsys):
    import keras

    folder = tmp_path / "model"
    shutil.copytree(cnn_bundle["dir"], folder)
    sneaky = keras.Sequential([keras.Input(PATCHES.shape), keras.layers.Flatten(),
                               keras.layers.Lambda(lambda t: t[:, :3] * 0)])
    sneaky.save(str(folder / CNN_FILE))
    # Checksums rewritten too: only Keras' safe mode stands in the way.
    digest = hashlib.sha256((folder / CNN_FILE).read_bytes()).hexdigest()
    cnn_meta = json.loads((folder / CNN_JSON).read_text())
    cnn_meta["sha256"][CNN_FILE] = digest
    (folder / CNN_JSON).write_text(json.dumps(cnn_meta))
    meta = json.loads((folder / BUNDLE_JSON).read_text())
    meta["files"] = {CNN_FILE: digest, CNN_JSON: hashlib.sha256((folder / CNN_JSON).read_bytes()).hexdigest()}
    (folder / BUNDLE_JSON).write_text(json.dumps(meta))
    clip = next((dataset["root"] / "clips").rglob("*.wav"))
    capsys.readouterr()
    assert cli.main(["predict", "--model", str(folder), str(clip)]) == 2
    err = capsys.readouterr().err
    assert "cnn.keras names class(es) Lambda" in err and "refusing to load it" in err
