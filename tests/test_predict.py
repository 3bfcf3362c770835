"""`python -m classify predict`: a bundle trained on real features labels new files."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from classify import cli
from classify.bundle import BUNDLE_JSON, FORMAT_VERSION, load_bundle, save_bundle
from classify.predict import predict_files
from features.extract import extract_files
from features.params import FeatureParams

REPO = Path(__file__).resolve().parents[1]
SR = 22050
CLASSES = ["high", "low", "mid"]
PITCH = {"low": 220.0, "mid": 660.0, "high": 1980.0}
LINE = re.compile(r"^(?P<path>\S+)  (?P<pred>\w+) \((?P<conf>[01]\.\d\d)\)"
                  r"  top-3: \w+ [01]\.\d\d, \w+ [01]\.\d\d, \w+ [01]\.\d\d$")
EXPECTED_COLUMNS = (
    ["path", "predicted", "confidence"]
    + [f"top{k}_{what}" for k in (1, 2, 3) for what in ("label", "prob")]
    + [f"prob_{c}" for c in CLASSES]
)


def _tone(path, freq, seed, seconds=0.5):
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    y = 0.5 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), SR)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A logreg bundle trained on features of nine tiny tones."""
    root = tmp_path_factory.mktemp("train")
    paths, labels = [], []
    for i, label in enumerate(np.repeat(list(PITCH), 3)):
        paths.append(_tone(root / f"{label}{i}.wav", PITCH[label] * (1 + 0.02 * i), seed=i))
        labels.append(label)
    table, errors = extract_files(paths, FeatureParams(), jobs=1)
    assert not errors
    columns = [c for c in table.columns if c != "path"]
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])
    pipe.fit(table[columns].to_numpy(), labels)
    return save_bundle(root / "model", model_name="logreg", estimator=pipe,
                       class_names=list(pipe.classes_), feature_columns=columns,
                       features_meta={"params": FeatureParams().to_dict()})


@pytest.fixture
def inputs(tmp_path):
    """One loose file, a folder tree (with non-audio and hidden files), one broken file."""
    file1 = _tone(tmp_path / "file1.wav", 230.0, seed=10)
    folder = tmp_path / "folder"
    _tone(folder / "b_high.wav", 2000.0, seed=11)
    _tone(folder / "sub" / "a_mid.WAV", 650.0, seed=12)
    (folder / "notes.txt").write_text("not audio")
    (folder / "._b_high.wav").write_bytes(b"\0\x05\x16\x07AppleDouble")
    broken = tmp_path / "broken.wav"
    broken.write_text("this is not a wav file\n")
    good = [file1, folder / "b_high.wav", folder / "sub" / "a_mid.WAV"]
    return {"file1": file1, "folder": folder, "broken": broken, "good": good}


def test_cli_end_to_end(model_dir, inputs, tmp_path):
    out = tmp_path / "preds.csv"
    cmd = [sys.executable, "-m", "classify", "predict", "--model", str(model_dir),
           str(inputs["file1"]), str(inputs["folder"]), str(inputs["broken"]), "--out", str(out)]
    result = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert [LINE.match(line)["path"] for line in lines] == [str(p) for p in inputs["good"]]
    assert [LINE.match(line)["pred"] for line in lines] == ["low", "high", "mid"]
    assert f"skipped {inputs['broken']}:" in result.stderr
    assert "notes.txt" not in result.stderr + result.stdout

    csv = pd.read_csv(out)
    assert list(csv.columns) == EXPECTED_COLUMNS
    assert csv["path"].tolist() == [str(p) for p in inputs["good"]]
    np.testing.assert_allclose(csv[[f"prob_{c}" for c in CLASSES]].sum(axis=1), 1.0, atol=1e-9)
    assert (csv["predicted"] == csv["top1_label"]).all()
    assert (csv["confidence"] == csv["top1_prob"]).all()
    assert (csv["top1_prob"] >= csv["top2_prob"]).all() and (csv["top2_prob"] >= csv["top3_prob"]).all()


def test_predict_files_uses_the_bundle_features_and_estimator(model_dir, inputs):
    bundle = load_bundle(model_dir)
    paths = [inputs["folder"], inputs["file1"], inputs["broken"]]
    preds, errors = predict_files(bundle, paths, top=2)
    # folder contents sorted, recursive; explicit file after; broken one reported
    assert preds["path"].tolist() == [str(p) for p in inputs["good"][1:]] + [str(inputs["file1"])]
    assert [e.path for e in errors] == [str(inputs["broken"])]
    assert list(preds.columns) == (["path", "predicted", "confidence", "top1_label", "top1_prob",
                                    "top2_label", "top2_prob"] + [f"prob_{c}" for c in CLASSES])
    table, _ = extract_files(preds["path"].tolist(), FeatureParams(), jobs=1)
    expected = bundle.estimator.predict_proba(table[bundle.feature_columns].to_numpy())
    # Equal up to rounding, not bit for bit: BLAS may sum in another order for
    # another memory layout or batch (see predict_files' notes).
    np.testing.assert_allclose(preds[[f"prob_{c}" for c in CLASSES]].to_numpy(), expected, rtol=1e-12, atol=1e-15)
    assert preds["predicted"].tolist() == [CLASSES[i] for i in expected.argmax(axis=1)]


def test_missing_paths_and_empty_folders_are_reported(model_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    preds, errors = predict_files(load_bundle(model_dir), [tmp_path / "nope.wav", tmp_path / "empty"])
    assert preds.empty and list(preds.columns)[:3] == ["path", "predicted", "confidence"]
    assert [e.path for e in errors] == [str(tmp_path / "nope.wav"), str(tmp_path / "empty")]
    assert "nope.wav does not exist" in errors[0].message
    assert "contains no audio files" in errors[1].message


def test_exit_1_when_no_file_can_be_read(model_dir, inputs, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    code = cli.main(["predict", "--model", str(model_dir), str(inputs["broken"]), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert f"skipped {inputs['broken']}:" in captured.err
    assert "none of the 1 path(s) could be read" in captured.err
    assert list(pd.read_csv(out).columns) == EXPECTED_COLUMNS


def test_exit_2_for_a_bundle_from_a_newer_version(model_dir, inputs, tmp_path):
    newer = tmp_path / "model"
    newer.mkdir()
    for f in model_dir.iterdir():
        (newer / f.name).write_bytes(f.read_bytes())
    meta = json.loads((newer / BUNDLE_JSON).read_text())
    (newer / BUNDLE_JSON).write_text(json.dumps({**meta, "format_version": FORMAT_VERSION + 1}))
    cmd = [sys.executable, "-m", "classify", "predict", "--model", str(newer), str(inputs["file1"])]
    result = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert f"bundle format {FORMAT_VERSION + 1} was written by a newer version" in result.stderr
    assert "upgrade the package" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_exit_2_for_a_missing_bundle(inputs, tmp_path, capsys):
    assert cli.main(["predict", "--model", str(tmp_path / "nope"), str(inputs["file1"])]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--top", "0"], ["--jobs", "-1"], ["--top", "x"]])
def test_bad_options_are_usage_errors(option, capsys):
    parser = cli.build_parser("predict")
    with pytest.raises(SystemExit) as excinfo:
        parser.parse_args(["predict", "--model", "m", "a.wav", *option])
    assert excinfo.value.code == 2
    assert option[0] in capsys.readouterr().err


def test_a_cnn_bundle_predicts_from_patches_of_the_files(inputs, tmp_path):
    """kind keras-cnn: predict computes each file's patch with the bundle's PatchParams."""
    from classify.bundle import KIND_KERAS_CNN
    from classify.cnn import KerasCNNClassifier
    from classify.errors import BundleError
    from features.params import PatchParams
    from features.patches import patch_files

    params = PatchParams(duration=0.5, sr=8000, n_mels=16, n_fft=256, hop_length=128)
    train_files = [_tone(tmp_path / "train" / f"{label}{i}.wav", PITCH[label] * (1 + 0.02 * i), seed=i)
                   for i, label in enumerate(np.repeat(list(PITCH), 4))]
    X, _, errors = patch_files(train_files, params)
    assert not errors
    cnn = KerasCNNClassifier(filters=(4,), dense_units=8, epochs=2, validation_fraction=0)
    cnn.fit(X, np.repeat(list(PITCH), 4))
    pipe = Pipeline([("cnn", cnn)])
    with pytest.raises(BundleError, match="needs the patch parameters"):
        save_bundle(tmp_path / "model", model_name="cnn", estimator=pipe, class_names=CLASSES)
    with pytest.raises(BundleError, match="takes log-mel patches, not feature columns"):
        save_bundle(tmp_path / "model", model_name="cnn", estimator=pipe, class_names=CLASSES,
                    feature_columns=["a"], patch_params=params)
    save_bundle(tmp_path / "model", model_name="cnn", estimator=pipe, class_names=CLASSES,
                patch_params=params, patches_meta={"folder": "somewhere"})
    bundle = load_bundle(tmp_path / "model")
    assert bundle.kind == KIND_KERAS_CNN and bundle.patch_params == params
    preds, errors = predict_files(bundle, [inputs["folder"], inputs["broken"]])
    assert [e.path for e in errors] == [str(inputs["broken"])]
    assert preds["path"].tolist() == [str(p) for p in inputs["good"][1:]]
    patches, _, _ = patch_files(preds["path"].tolist(), params)
    np.testing.assert_allclose(preds[[f"prob_{c}" for c in CLASSES]].to_numpy(),
                               cnn.predict_proba(patches), atol=1e-6)
