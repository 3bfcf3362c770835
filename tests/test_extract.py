"""extract_dataset / extract_files: layouts, outputs, bad files, checkpoints, determinism."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import faults
import numpy as np
import pandas as pd
import pytest

from features import extract as X
from features import table as T
from features.compute import feature_columns
from features.engine import outputs
from features.engine.checkpoint import Checkpoint
from features.engine.runner import Driver
from features.errors import ExtractionInterrupted, UsageError
from features.io.datasets import discover
from features.params import FeatureParams

GTZAN_HEADER = (
    "filename,chroma_stft,rmse,spectral_centroid,spectral_bandwidth,rolloff,"
    "zero_crossing_rate," + ",".join(f"mfcc{i}" for i in range(1, 21)) + ",label"
)
AUDIO = ["duration_s", "orig_sample_rate", "orig_channels"]
FAST = {"jobs": 1, "quiet": True}
REPO = Path(__file__).resolve().parents[1]


def _tone(i: int, seconds: float = 0.5, sr: int = 8000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.01 * np.cos(2 * np.pi * 3000 * t)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


def _folders(root: Path, write_wav, per_label: int = 2, labels=("cat", "dog")) -> Path:
    for li, label in enumerate(labels):
        for j in range(per_label):
            write_wav(root / label / f"{label}{j}.wav", _tone(li * 10 + j), 8000)
    return root


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _header(path: Path) -> str:
    return path.read_text(encoding="utf-8").split("\n", 1)[0]


# --------------------------------------------------------------------- layouts


def test_urbansound8k_demo_table(demo_root, tmp_path):
    out = tmp_path / "out"
    res = X.extract_dataset(demo_root, out, FeatureParams(), **FAST)
    ds = discover(demo_root)
    names = feature_columns(FeatureParams())
    table = pd.read_csv(res.tables["csv"], keep_default_na=False, dtype=str)
    assert list(table.columns) == [
        "path", "label", "fold", "group",
        "slice_file_name", "fsID", "start", "end", "salience", "classID",
        *AUDIO, *names,
    ]
    # every clip succeeded, in dataset order, metadata carried through unchanged
    assert res.n_ok == len(ds.clips) == 60 and res.n_failed == 0
    assert table["path"].tolist() == ds.clips["path"].tolist()
    assert table["fsID"].tolist() == ds.clips["fsID"].tolist()
    assert table["group"].tolist() == ds.clips["group"].tolist()
    assert table["fold"].tolist() == [str(f) for f in ds.clips["fold"]]
    pq = pd.read_parquet(res.tables["parquet"])
    assert list(pq.columns) == list(table.columns)
    assert isinstance(pq["fold"].dtype, pd.Int64Dtype)
    np.testing.assert_array_equal(pq[names].to_numpy(), table[names].to_numpy(float))
    assert np.isfinite(pq[names].to_numpy()).all()
    assert set(pq["orig_sample_rate"]) <= {8000, 11025, 22050, 44100, 48000}
    assert (pq["duration_s"] > 0.4).all()

    # schema: one plain-words row per column
    schema = pd.read_csv(res.schema, keep_default_na=False)
    assert schema["column"].tolist() == list(table.columns)
    assert (schema["description"].str.len() > 20).all()
    assert set(schema["role"]) == {"identifier", "metadata", "audio", "feature"}
    assert "Freesound id" in schema.set_index("column").loc["fsID", "description"]

    # errors.csv: header only
    assert res.errors_csv.read_text() == "path,row,stage,reason,error_type,message\n"
    assert not (out / ".checkpoint").exists()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "errors.csv", "features.csv", "features.json", "features.parquet", "features.schema.csv",
    ]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".lock"]


def test_features_json_contents(demo_root, tmp_path):
    params = FeatureParams(duration=1.0)
    res = X.extract_dataset(demo_root, tmp_path, params, formats="parquet", **FAST)
    meta = json.loads(res.metadata.read_text())
    assert meta["params"] == params.to_dict()
    assert meta["param_key"] == params.key()
    assert meta["root"] == str(Path(demo_root).resolve())
    assert meta["layout"] == "urbansound8k"
    for lib in ("python", "numpy", "librosa", "soundfile", "soxr", "pandas", "pyarrow",
                "soundfeatures"):
        assert meta["versions"][lib] and meta["versions"][lib] != "not installed", lib
    assert meta["clips"]["total"] == 60 and meta["clips"]["ok"] == 60
    assert meta["clips"]["failed"] == 0 and meta["clips"]["reused_from_checkpoint"] == 0
    assert meta["wall_seconds"] > 0 and meta["clips_per_second"] > 0
    assert meta["jobs"] == 1
    assert meta["created"].endswith("Z")
    assert not (tmp_path / "features.csv").exists() and res.table.name == "features.parquet"
    assert pd.read_parquet(res.table)["duration_s"].max() > 1.0  # source length, not the cut


def test_gtzan_layout_and_preset_header(tmp_path, write_wav):
    root = tmp_path / "gtzan"
    for genre in ("blues", "rock"):
        for j in range(2):
            write_wav(root / "genres_original" / genre / f"{genre}.{j:05d}.wav", _tone(j), 8000)
    res = X.extract_dataset(root, tmp_path / "out", FeatureParams(preset="gtzan"), **FAST)
    assert _header(res.tables["csv"]) == GTZAN_HEADER
    rows = _csv(res.tables["csv"])
    assert [r["filename"] for r in rows] == [
        "blues.00000.wav", "blues.00001.wav", "rock.00000.wav", "rock.00001.wav",
    ]
    assert [r["label"] for r in rows] == ["blues", "blues", "rock", "rock"]
    assert list(pd.read_parquet(res.tables["parquet"]).columns) == GTZAN_HEADER.split(",")
    schema = pd.read_csv(res.schema, keep_default_na=False)
    assert schema["column"].tolist() == GTZAN_HEADER.split(",")
    assert (schema["description"].str.len() > 20).all()


def test_gtzan_layout_default_preset(tmp_path, write_wav):
    root = tmp_path / "g"
    write_wav(root / "genres" / "jazz" / "jazz.00000.wav", _tone(1, channels=2), 8000)
    res = X.extract_dataset(root, tmp_path / "out", **FAST)
    rows = _csv(res.tables["csv"])
    assert _header(res.tables["csv"]).startswith(
        "path,label,fold,group,split,duration_s,orig_sample_rate,orig_channels,mfcc_mean_1,")
    assert rows[0]["path"] == "genres/jazz/jazz.00000.wav"
    assert rows[0]["split"] == "train", "GTZAN's fault-filtered partition"
    assert rows[0]["fold"] == "" and rows[0]["group"] == ""
    assert rows[0]["orig_channels"] == "2" and rows[0]["orig_sample_rate"] == "8000"


def test_folders_layout(tmp_path, write_wav):
    root = _folders(tmp_path / "f", write_wav)
    res = X.extract_dataset(root, tmp_path / "out", **FAST)
    table = pd.read_csv(res.tables["csv"], keep_default_na=False)
    assert list(table.columns[:7]) == ["path", "label", "fold", "group", *AUDIO]
    assert table["path"].tolist() == ["cat/cat0.wav", "cat/cat1.wav", "dog/dog0.wav", "dog/dog1.wav"]
    assert json.loads(res.metadata.read_text())["layout"] == "folders"


def test_manifest_layout_carries_extra_columns(tmp_path, write_wav):
    root = tmp_path / "m"
    for j in range(3):
        write_wav(root / "clips" / f"c{j}.wav", _tone(j), 8000)
    manifest = root / "list.csv"
    manifest.write_text(
        "path,label,weather,fold,group,take\n"
        "clips/c2.wav,b,rain,2,g1,=cmd()\n"
        "clips/c0.wav,a,sun,1,g0,-3\n"
        "clips/c1.wav,a,,1,g0,7\n"
    )
    res = X.extract_dataset(root, tmp_path / "out", manifest=manifest, **FAST)
    rows = _csv(res.tables["csv"])
    assert list(rows[0])[:9] == ["path", "label", "fold", "group", "weather", "take", *AUDIO]
    assert [r["path"] for r in rows] == ["clips/c2.wav", "clips/c0.wav", "clips/c1.wav"]
    assert [r["take"] for r in rows] == ["'=cmd()", "'-3", "7"]  # text, so neutralised
    assert pd.read_parquet(res.tables["parquet"])["take"].tolist() == ["=cmd()", "-3", "7"]
    schema = pd.read_csv(res.schema, keep_default_na=False).set_index("column")
    assert "carried through from the source metadata" in schema.loc["weather", "description"]


def test_metadata_column_clashing_with_a_feature_is_a_usage_error(tmp_path, write_wav):
    root = tmp_path / "m"
    write_wav(root / "a.wav", _tone(0), 8000)
    (root / "list.csv").write_text("path,label,rms_mean\na.wav,x,1\n")
    with pytest.raises(UsageError, match="rms_mean"):
        X.extract_dataset(root, tmp_path / "out", manifest=root / "list.csv", **FAST)


# -------------------------------------------------------------------- bad input


def _bad_dataset(root: Path, write_wav) -> Path:
    """Good clips plus one of every kind of bad input, listed in a manifest."""
    for j in range(3):
        write_wav(root / f"good{j}.wav", _tone(j, channels=j + 1), 8000)
    (root / "empty.wav").write_bytes(b"")
    full = write_wav(root / "full.wav", _tone(5, seconds=1.0), 8000).read_bytes()
    (root / "truncated.wav").write_bytes(full[:20])  # header cut (cut data loads what is there)
    (root / "text.wav").write_text("this is not audio, just text\n" * 20)
    (root / "folder.wav").mkdir()
    y = _tone(6).astype(np.float32)
    y[100] = np.nan
    write_wav(root / "nan.wav", y, 8000, subtype="FLOAT")
    (root / "full.wav").unlink()
    (root / "list.csv").write_text(
        "path,label\n"
        "good0.wav,a\n"
        "missing.wav,a\n"
        "empty.wav,a\n"
        "good1.wav,b\n"
        "truncated.wav,a\n"
        "text.wav,a\n"
        "folder.wav,b\n"
        "nan.wav,b\n"
        "../outside.wav,a\n"
        f"{root / 'good0.wav'},a\n"
        "good2.wav,b\n"
    )
    return root / "list.csv"


def test_bad_files_each_become_one_error_row(tmp_path, write_wav):
    manifest = _bad_dataset(tmp_path / "bad", write_wav)
    res = X.extract_dataset(tmp_path / "bad", tmp_path / "out", manifest=manifest, **FAST)
    table = _csv(res.tables["csv"])
    assert [r["path"] for r in table] == ["good0.wav", "good1.wav", "good2.wav"]
    errors = _csv(res.errors_csv)
    assert list(errors[0]) == ["path", "row", "stage", "reason", "error_type", "message"]
    by_path = {e["path"]: e for e in errors if e["stage"] != "metadata"}
    assert set(by_path) == {
        "missing.wav", "empty.wav", "truncated.wav", "text.wav", "folder.wav", "nan.wav",
    }
    for path, e in by_path.items():
        assert e["stage"] == "load", e
        assert e["error_type"] in {"AudioReadError", "BadAudioError"}, e
        assert path in e["message"], e  # the message names the file
    assert by_path["nan.wav"]["error_type"] == "BadAudioError"
    meta_rows = [e for e in errors if e["stage"] == "metadata"]
    assert sorted(int(e["row"]) for e in meta_rows) == [9, 10]
    assert all(e["message"] for e in meta_rows)
    assert len(errors) == 8 == res.n_failed
    assert res.n_ok == 3 and res.exit_code == 0
    meta = json.loads(res.metadata.read_text())["clips"]
    assert meta["ok"] == 3 and meta["failed"] == 8 and meta["total"] == 11
    assert meta["failed_by_stage"] == {"metadata": 2, "load": 6, "features": 0, "crash": 0,
                                       "timeout": 0}
    assert meta["failed_by_reason"]["unusable metadata row"] == 2
    assert meta["failed_by_reason"]["file does not exist"] == 1
    assert meta["failed_by_reason"]["NaN or infinite samples"] == 1
    lines = res.summary().splitlines()
    assert lines[0] == f"3 clips ok, 8 failed; table: {res.tables['csv']}; errors: {res.errors_csv}"
    assert "  2 clips: unusable metadata row (stage metadata)" in lines
    assert "  1 clip: a folder, not a file (stage load)" in lines


def test_strict_sets_exit_code_but_still_writes(tmp_path, write_wav):
    manifest = _bad_dataset(tmp_path / "bad", write_wav)
    res = X.extract_dataset(tmp_path / "bad", tmp_path / "out", manifest=manifest,
                            strict=True, formats="csv", **FAST)
    assert res.exit_code == 3 and res.tables["csv"].is_file()


def test_unexpected_exception_in_one_clip_is_recorded(tmp_path, write_wav, monkeypatch):
    root = _folders(tmp_path / "f", write_wav)
    faults.install({"raise": ["cat1.wav"]}, monkeypatch.setattr)
    res = X.extract_dataset(root, tmp_path / "out", **FAST)
    assert res.n_ok == 3
    [err] = _csv(res.errors_csv)
    assert err["path"] == "cat/cat1.wav" and err["stage"] == "features"
    assert err["error_type"] == "ZeroDivisionError" and err["message"] == "boom"
    assert err["reason"] == "unexpected ZeroDivisionError"


def test_extract_files(tmp_path, write_wav):
    good = write_wav(tmp_path / "a.wav", _tone(0), 8000)
    (tmp_path / "bad.wav").write_text("nope")
    df, errors = X.extract_files([str(good), tmp_path / "bad.wav", good], FeatureParams())
    assert list(df.columns) == ["path", *feature_columns(FeatureParams())]
    assert df["path"].tolist() == [str(good), str(good)]
    [err] = errors
    assert err.path == str(tmp_path / "bad.wav") and err.stage == "load" and err.row is None


# ------------------------------------------------------------- determinism, resume


def test_identical_bytes_for_one_and_two_jobs(tmp_path, write_wav):
    root = _folders(tmp_path / "f", write_wav, per_label=5, labels=("a", "b"))
    one = X.extract_dataset(root, tmp_path / "one", jobs=1, quiet=True, batch_size=2)
    two = X.extract_dataset(root, tmp_path / "two", jobs=2, quiet=True, batch_size=2)
    for fmt in ("csv", "parquet"):
        assert one.tables[fmt].read_bytes() == two.tables[fmt].read_bytes()
    assert one.schema.read_bytes() == two.schema.read_bytes()
    assert json.loads(two.metadata.read_text())["jobs"] == 2


def test_interrupted_run_resumes_from_the_checkpoint(tmp_path, write_wav, monkeypatch):
    root = _folders(tmp_path / "f", write_wav, per_label=5, labels=("a", "b"))
    clean = X.extract_dataset(root, tmp_path / "clean", batch_size=2, **FAST)
    real = Driver._finished
    calls = []

    def interrupt_third(self, result):
        calls.append(result.n_clips)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, result)

    out = tmp_path / "out"
    monkeypatch.setattr(Driver, "_finished", interrupt_third)
    with pytest.raises(ExtractionInterrupted, match="interrupted: 4 of 10 clips done; run the "
                                                      "same command again to resume"):
        X.extract_dataset(root, out, batch_size=2, **FAST)
    assert not (out / "features.csv").exists()
    [ckpt] = (out / ".checkpoint").iterdir()
    assert len(list(ckpt.glob("batch-*.npz"))) == 2
    monkeypatch.setattr(Driver, "_finished", real)

    # resumed with a different batch size and job count: only the 6 missing clips run
    res = X.extract_dataset(root, out, batch_size=3, jobs=2, quiet=True)
    assert res.n_reused == 4
    assert res.tables["csv"].read_bytes() == clean.tables["csv"].read_bytes()
    assert res.tables["parquet"].read_bytes() == clean.tables["parquet"].read_bytes()
    assert json.loads(res.metadata.read_text())["clips"]["reused_from_checkpoint"] == 4
    assert not (out / ".checkpoint").exists()


def test_unchanged_run_keeps_its_outputs_unless_forced(tmp_path, write_wav):
    root = _folders(tmp_path / "f", write_wav)
    out = tmp_path / "out"
    first = X.extract_dataset(root, out, **FAST)
    stamp = out.joinpath("features.csv").stat().st_mtime_ns
    again = X.extract_dataset(root, out, **FAST)
    assert again.up_to_date and again.n_ok == first.n_ok == 4
    assert out.joinpath("features.csv").stat().st_mtime_ns == stamp  # not rewritten
    assert "up to date" in again.notes[-1]
    forced = X.extract_dataset(root, out, force=True, **FAST)
    assert not forced.up_to_date and out.joinpath("features.csv").stat().st_mtime_ns != stamp
    # any change to what the outputs are made of runs again
    (root / "cat" / "cat0.wav").rename(root / "cat" / "cat9.wav")
    assert not X.extract_dataset(root, out, **FAST).up_to_date
    assert not X.extract_dataset(root, out, FeatureParams(n_mfcc=13), **FAST).up_to_date
    assert not X.extract_dataset(root, out, FeatureParams(n_mfcc=13), formats="csv",
                                 **FAST).up_to_date
    out.joinpath("features.csv").write_text("edited\n")
    assert not X.extract_dataset(root, out, FeatureParams(n_mfcc=13), formats="csv",
                                 **FAST).up_to_date


def test_checkpoint_is_keyed_by_params_and_clip_list(tmp_path, write_wav, monkeypatch):
    root = _folders(tmp_path / "f", write_wav)
    out = tmp_path / "out"
    monkeypatch.setattr(Checkpoint, "remove", lambda self: None)  # keep it around

    first = X.extract_dataset(root, out, **FAST)
    assert first.n_reused == 0
    same = X.extract_dataset(root, out, force=True, **FAST)
    assert same.n_reused == 4 and not same.up_to_date  # nothing recomputed

    other = X.extract_dataset(root, out, FeatureParams(sr=16000), **FAST)
    assert other.n_reused == 0  # a changed parameter invalidates
    [ckpt] = (out / ".checkpoint").iterdir()  # and the old checkpoint is gone
    assert ckpt.name.startswith(FeatureParams(sr=16000).key())

    write_wav(root / "cat" / "cat0.wav", _tone(9), 8000)  # a changed clip invalidates too
    os.utime(root / "cat" / "cat0.wav", ns=(1, 1))
    changed = X.extract_dataset(root, out, FeatureParams(sr=16000), **FAST)
    assert changed.n_reused == 0


def test_corrupt_checkpoint_file_is_recomputed(tmp_path, write_wav, monkeypatch):
    root = _folders(tmp_path / "f", write_wav)
    out = tmp_path / "out"
    monkeypatch.setattr(Checkpoint, "remove", lambda self: None)
    clean = X.extract_dataset(root, out, batch_size=2, **FAST)
    [ckpt] = (out / ".checkpoint").iterdir()
    first = min(ckpt.glob("batch-*.npz"))
    first.write_bytes(b"garbage")
    res = X.extract_dataset(root, out, batch_size=2, force=True, **FAST)
    assert res.n_reused == 2
    assert res.tables["csv"].read_bytes() == clean.tables["csv"].read_bytes()


def test_failed_final_write_keeps_old_outputs_and_checkpoint(tmp_path, write_wav, monkeypatch):
    root = _folders(tmp_path / "f", write_wav)
    out = tmp_path / "out"
    first = X.extract_dataset(root, out, **FAST)
    old = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(T, "write_tables", fail)
    with pytest.raises(OSError, match="disk full"):
        X.extract_dataset(root, out, FeatureParams(sr=16000), **FAST)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == old
    assert outputs.verify_outputs(first.table)["param_key"] == FeatureParams().key()
    assert list(out.glob(".checkpoint/*/batch-*.npz"))  # kept: the rerun will be quick
    assert not list(out.glob(".staging-*"))
    monkeypatch.undo()
    again = X.extract_dataset(root, out, FeatureParams(sr=16000), **FAST)
    assert again.n_reused == 4


def test_other_format_left_by_an_earlier_run_is_removed(tmp_path, write_wav):
    root = _folders(tmp_path / "f", write_wav, per_label=1)
    X.extract_dataset(root, tmp_path / "out", **FAST)
    X.extract_dataset(root, tmp_path / "out", formats="csv", **FAST)
    assert (tmp_path / "out" / "features.csv").is_file()
    assert not (tmp_path / "out" / "features.parquet").exists()


@pytest.mark.parametrize("kwargs, match", [
    ({"jobs": -1}, "jobs=-1"),
    ({"formats": "xlsx"}, "format="),
    ({"batch_size": 0}, "batch_size=0"),
    ({"layout": "nope"}, "layout='nope'"),
])
def test_bad_options_name_the_value(tmp_path, write_wav, kwargs, match):
    root = _folders(tmp_path / "f", write_wav)
    with pytest.raises(UsageError, match=match):
        X.extract_dataset(root, tmp_path / "out", **{"quiet": True, **kwargs})


# --------------------------------------------------------------- import hygiene


def test_features_stage_never_imports_tensorflow(tmp_path, write_wav):
    root = _folders(tmp_path / "f", write_wav, per_label=1)
    code = (
        "import sys\n"
        "import features\n"
        "light = not {'pandas', 'librosa', 'numpy'} & set(sys.modules)\n"
        "from features.extract import extract_dataset\n"
        f"extract_dataset({str(root)!r}, {str(tmp_path / 'out')!r}, jobs=1, quiet=True)\n"
        "from features import analysers, cli, compute, demo, engine, io, table\n"
        "from features.io import audio, datasets\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(light, bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True []"
    assert (tmp_path / "out" / "features.csv").is_file()


# ------------------------------------------------------------------- windows


def test_segment_rows_one_per_window_with_the_clip_as_group(tmp_path, write_wav):
    from features.compute import FeatureComputer
    from features.io.audio import load_audio

    root = tmp_path / "f"
    write_wav(root / "a" / "long.wav", _tone(1, seconds=2.5), 8000)
    write_wav(root / "b" / "short.wav", _tone(2, seconds=0.4), 8000)
    params = FeatureParams(segment=1.0)
    res = X.extract_dataset(root, tmp_path / "out", params, **FAST)
    assert res.n_ok == 2 and res.n_rows == 3 and "(3 windows)" in res.summary()
    table = pd.read_parquet(res.tables["parquet"])
    assert list(table.columns[:7]) == ["path", "label", "fold", "group", "segment",
                                       "segment_start_s", "segment_end_s"]
    rows = table[["path", "group", "segment", "segment_start_s", "segment_end_s"]]
    assert rows.values.tolist() == [
        ["a/long.wav", "a/long.wav", 0, 0.0, 1.0],
        ["a/long.wav", "a/long.wav", 1, 1.0, 2.0],   # the last 0.5 s is dropped
        ["b/short.wav", "b/short.wav", 0, 0.0, 0.4],  # shorter than a window: kept, padded
    ]
    y, _ = load_audio(root / "a" / "long.wav", params)
    computer = FeatureComputer(params)
    names = feature_columns(params)
    np.testing.assert_array_equal(table.loc[1, names].to_numpy(float),
                                  computer.compute(y[22050:44100]))
    schema = pd.read_csv(res.schema).set_index("column")
    assert (schema.loc[["segment", "segment_start_s", "segment_end_s"], "role"] == "identifier").all()
    assert json.loads(res.metadata.read_text())["segment"] == {"seconds": 1.0, "hop": 1.0,
                                                               "last": "drop"}

    padded = X.extract_dataset(root, tmp_path / "pad", FeatureParams(segment=1.0, segment_hop=0.5,
                                                                    segment_last="pad"), **FAST)
    spans = pd.read_csv(padded.tables["csv"])[["path", "segment_start_s", "segment_end_s"]]
    assert spans[spans["path"] == "a/long.wav"].values[:, 1:].tolist() == [
        [0.0, 1.0], [0.5, 1.5], [1.0, 2.0], [1.5, 2.5]]


def test_segment_keeps_the_dataset_group_and_is_the_same_on_every_path(demo_root, tmp_path,
                                                                        monkeypatch):
    from features.io import audio

    params = FeatureParams(segment=1.5, segment_last="pad")
    res = X.extract_dataset(demo_root, tmp_path / "one", params, **FAST)
    table = pd.read_parquet(res.tables["parquet"])
    assert (table["group"] == table["fsID"]).all()  # UrbanSound8K's own group stays
    assert table.groupby("path")["group"].nunique().max() == 1
    # Long clips are cut from blocks: the same windows and numbers (run here, in this
    # process, where the lowered threshold applies).
    from features.analysers import FeatureAnalyser
    from features.engine.work import Item, run_batch

    monkeypatch.setattr(audio, "BLOCKWISE_ABOVE_SAMPLES", 1000)
    monkeypatch.setattr(audio, "BLOCK_FRAMES", 777)
    clip = table["path"].iloc[0]
    batch = run_batch(FeatureAnalyser(params), [Item(0, str(demo_root / clip), clip)])
    mine = table[table["path"] == clip]
    assert batch.segment.tolist() == mine["segment"].tolist()
    np.testing.assert_array_equal(batch.segment_end_s, mine["segment_end_s"].to_numpy())
    names = feature_columns(params)
    np.testing.assert_allclose(batch.features, mine[names].to_numpy(), rtol=1e-6, atol=1e-6)


def test_segment_with_the_gtzan_preset_and_for_loose_files(tmp_path, write_wav):
    root = tmp_path / "g"
    write_wav(root / "genres" / "pop" / "pop.00001.wav", _tone(3, seconds=2.0), 8000)
    res = X.extract_dataset(root, tmp_path / "out", FeatureParams(preset="gtzan", segment=1.0),
                            **FAST)
    assert _header(res.tables["csv"]).startswith("filename,segment,segment_start_s,segment_end_s,"
                                                  "chroma_stft,")
    df, errors = X.extract_files([root / "genres" / "pop" / "pop.00001.wav"],
                                 FeatureParams(segment=1.0))
    assert errors == [] and df["segment"].tolist() == [0, 1]
    assert list(df.columns[:4]) == ["path", "segment", "segment_start_s", "segment_end_s"]
