"""classify.tables: reading both presets and tutorial CSVs, refusing bad tables."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classify.errors import TableError
from classify.tables import load_table
from features.params import FeatureParams
from features.schema import build_schema
from features.table import write_csv, write_table

REPO = Path(__file__).resolve().parents[1]
FEATURES = ["mfcc_mean_1", "mfcc_mean_2", "mfcc_std_1", "zcr_mean", "rms_mean"]


def default_table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A small table laid out like the default preset's (metadata as text, as extracted)."""
    rng = np.random.default_rng(seed)
    labels = np.array(["dog_bark", "siren"])[np.arange(n) % 2]
    df = pd.DataFrame({
        "path": [f"fold{i % 4 + 1}/{i}.wav" for i in range(n)],
        "label": labels,
        "fold": pd.array(np.arange(n) % 4 + 1, dtype="Int64"),
        "group": [f"rec{i // 2}" for i in range(n)],
        "slice_file_name": [f"{i}.wav" for i in range(n)],
        "fsID": [str(100 + i // 2) for i in range(n)],
        "start": ["0.5"] * n, "end": ["4.5"] * n, "salience": ["1"] * n,
        "classID": [str(int(lab == "siren")) for lab in labels],
        "duration_s": 4.0, "orig_sample_rate": 44100, "orig_channels": 2,
    })
    for name in FEATURES:
        df[name] = rng.normal(size=n)
    return df


def write_default(tmp_path: Path, df: pd.DataFrame | None = None, *, schema: bool = True,
                  meta: bool = True) -> Path:
    df = default_table() if df is None else df
    out = tmp_path / "features"
    write_table(df, out)
    if schema:
        write_csv(build_schema(df, FeatureParams(), layout="urbansound8k"), out / "features.schema.csv")
    if meta:
        (out / "features.json").write_text(json.dumps({"params": FeatureParams().to_dict()}))
    return out


# ------------------------------------------------------------------ reading


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_default_preset_with_schema_and_json(tmp_path, suffix):
    out = write_default(tmp_path)
    t = load_table(out / f"features.{suffix}")
    assert t.feature_columns == tuple(FEATURES)
    assert "features.schema.csv" in t.feature_source
    assert t.features_meta == {"params": FeatureParams().to_dict()}
    assert (t.path_col, t.fold_col, t.group_col) == ("path", "fold", "group")
    assert t.n_rows == 40 and list(t.classes) == ["dog_bark", "siren"]
    assert t.X.dtype == np.float64 and t.X.shape == (40, len(FEATURES))
    assert t.df["fold"].dtype == "Int64"
    assert "40 rows, 2 classes" in t.describe() and "5 features" in t.describe()


def test_csv_and_parquet_read_the_same(tmp_path):
    out = write_default(tmp_path)
    a, b = load_table(out / "features.csv"), load_table(out / "features.parquet")
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.df["fold"].tolist() == b.df["fold"].tolist()
    assert list(a.groups) == list(b.groups)


def test_csv_formula_guard_is_undone_for_text(tmp_path):
    df = default_table()
    df.loc[0, "label"] = "-dog"
    df.loc[1, "path"] = "=HYPERLINK(x).wav"
    df.loc[2, "group"] = "@rec"
    out = write_default(tmp_path, df, schema=False, meta=False)
    assert "'-dog" in (out / "features.csv").read_text()  # the writer guarded it
    t = load_table(out / "features.csv")
    assert t.df.loc[0, "label"] == "-dog"
    assert t.df.loc[1, "path"] == "=HYPERLINK(x).wav"
    assert t.df.loc[2, "group"] == "@rec"


def test_inferred_features_skip_identifying_and_text_columns(tmp_path):
    df = default_table()
    df["notes"] = "hand-labelled"
    out = write_default(tmp_path, df, schema=False)
    for suffix in ("csv", "parquet"):
        t = load_table(out / f"features.{suffix}")
        assert t.feature_columns == tuple(FEATURES), suffix
        assert "no schema" in t.feature_source
        assert t.ignored_columns == ("notes",)


def test_gtzan_preset_table(tmp_path):
    rng = np.random.default_rng(1)
    names = ["chroma_stft", "rmse", "spectral_centroid", "spectral_bandwidth", "rolloff",
             "zero_crossing_rate"] + [f"mfcc{i}" for i in range(1, 21)]
    df = pd.DataFrame(rng.normal(size=(20, len(names))), columns=names)
    df.insert(0, "filename", [f"blues.{i:05d}.wav" for i in range(20)])
    df["label"] = ["blues", "rock"] * 10
    write_table(df, tmp_path)
    t = load_table(tmp_path / "features.csv")
    assert t.feature_columns == tuple(names)
    assert (t.path_col, t.fold_col, t.group_col) == ("filename", None, None)
    assert t.row_names[0] == "blues.00000.wav"


def test_kaggle_gtzan_csv_drops_length(tmp_path):
    text = ("filename,length,chroma_stft_mean,chroma_stft_var,mfcc1_mean,label\n"
            "blues.00000.wav,661794,0.35,0.08,-113.5,blues\n"
            "rock.00000.wav,661794,0.34,0.09,-207.5,rock\n"
            "rock.00001.wav,661794,0.40,0.09,-90.7,rock\n")
    (tmp_path / "features_30_sec.csv").write_text(text)
    t = load_table(tmp_path / "features_30_sec.csv")
    assert t.feature_columns == ("chroma_stft_mean", "chroma_stft_var", "mfcc1_mean")
    assert t.features_meta is None and t.schema is None


def test_partial_folds_and_blank_groups_are_kept(tmp_path):
    df = default_table()
    df["fold"] = df["fold"].astype("Int64")
    df.loc[3, "fold"] = pd.NA
    df.loc[5, "group"] = ""
    out = write_default(tmp_path, df, schema=False)
    t = load_table(out / "features.csv")
    assert t.n_rows == 40  # never dropped silently
    assert t.df["fold"].isna().sum() == 1 and t.fold_col == "fold"
    assert t.groups[5] == ""


# ------------------------------------------------------------------- errors


def write_text(tmp_path: Path, text: str, name: str = "features.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("path,a,b\nx.wav,1,2\ny.wav,3,4\n", r"has no 'label' column \(its columns: path, a, b\)"),
        ("path,label,a,b\n", r"has no rows"),
        ("path,label,a,b\nx.wav,dog,1,2\ny.wav,cat,2,3\nz.wav,cat,oops,3\nw.wav,dog,4,5\n",
         r"feature column 'a' has a non-numeric value 'oops' at data row 3 \(z.wav\)"),
        ("path,label,a,b\nx.wav,dog,1,2\ny.wav,cat,,3\nz.wav,cat,inf,nan\nw.wav,dog,1,1\n",
         r"2 row\(s\) have non-finite feature values .*'a' \(2 row\(s\), first at data row 2 \(y.wav\)\), 'b' \(1 row\(s\)"),
        ("path,label,a,b\nx.wav,dog,1,2\ny.wav, ,2,3\n",
         r"1 row\(s\) have an empty label, first at data row 2 \(y.wav\)"),
        ("path,label,a,b\nx.wav,dog,1,2\ny.wav,dog,2,3\n", r"every row has the label 'dog'"),
        ("path,label,fold\nx.wav,dog,1\ny.wav,cat,2\n", r"has no numeric feature column"),
    ],
    ids=["no-label", "empty", "non-numeric", "non-finite", "empty-label", "one-class", "no-features"],
)
def test_bad_tables_raise_clear_errors(tmp_path, text, pattern):
    with pytest.raises(TableError, match=pattern):
        load_table(write_text(tmp_path, text))


def test_schema_naming_missing_columns_is_refused(tmp_path):
    out = write_default(tmp_path)
    schema = pd.read_csv(out / "features.schema.csv")
    schema.loc[len(schema)] = {"column": "chroma_mean_1", "role": "feature", "dtype": "float",
                               "description": "gone"}
    schema.to_csv(out / "features.schema.csv", index=False)
    with pytest.raises(TableError, match=r"lists feature column\(s\) \['chroma_mean_1'\]"):
        load_table(out / "features.parquet")


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(TableError, match="does not exist"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(TableError, match=r"must be a \.csv or \.parquet file"):
        load_table(write_text(tmp_path, "label,a\nx,1\n", "table.xlsx"))


def test_broken_features_json_is_named(tmp_path):
    out = write_default(tmp_path)
    (out / "features.json").write_text("{not json")
    with pytest.raises(TableError, match="features.json is not valid JSON"):
        load_table(out / "features.csv")


# ------------------------------------------------------ command-line errors


def run_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "classify", "train", *args, "--models", "knn", "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, pattern: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert pd.Series(lines).str.contains(pattern, regex=True).all(), lines[0]


@pytest.mark.parametrize(
    "text, extra, pattern",
    [
        ("path,a\nx.wav,1\n", [], "no 'label' column"),
        ("path,label,a\nx.wav,dog,1\ny.wav,cat,zz\nz.wav,cat,2\nq.wav,dog,3\n", [],
         "non-numeric value 'zz' at data row 2"),
        ("path,label,a\nx.wav,dog,1\ny.wav,cat,nan\n", [], "non-finite"),
        ("path,label,a\n" + "".join(f"{i}.wav,dog,{i}\n" for i in range(6)) + "z.wav,cat,1\n",
         ["--cv", "stratified", "--k", "3"], r"class\(es\) 'cat' \(1 row\) have fewer"),
        ("path,label,fold,a\n" + "".join(f"{i}.wav,{'ab'[i % 2]},1,{i}\n" for i in range(6)), [],
         "single fold .* leaves a split without training data"),
    ],
    ids=["no-label", "non-numeric", "non-finite", "rare-class", "one-fold"],
)
def test_cli_bad_table_exits_2_with_one_line(tmp_path, text, extra, pattern):
    proc = run_train(str(write_text(tmp_path, text)), "--out", str(tmp_path / "run"), *extra)
    assert_one_line_error(proc, pattern)
    assert not (tmp_path / "run").exists()


def test_cli_missing_table_and_unknown_model(tmp_path):
    assert_one_line_error(run_train(str(tmp_path / "missing.parquet")), "does not exist")
    out = write_default(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "classify", "train", str(out / "features.csv"), "--models", "knn,xgb"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert_one_line_error(proc, r"--models: unknown model\(s\) 'xgb'; choose from mlp,logreg")


def test_table_that_does_not_match_its_features_json_is_refused(demo_root, tmp_path):
    from features.extract import extract_dataset

    res = extract_dataset(demo_root, tmp_path / "out", quiet=True, jobs=1)
    assert load_table(res.tables["parquet"]).n_rows == res.n_ok  # the genuine set loads
    csv = res.tables["csv"]
    csv.write_text(csv.read_text().replace(",dog_bark,", ",siren,", 1))  # an edit by hand
    with pytest.raises(TableError, match="features.csv is not the file .* SHA-256 differs"):
        load_table(csv)
    (tmp_path / "out" / ".committing-1234").mkdir()  # a run died while replacing the set
    with pytest.raises(TableError, match="being replaced when a run stopped"):
        load_table(res.tables["parquet"])
    proc = subprocess.run([sys.executable, "-m", "classify", "train", str(res.tables["parquet"]),
                           "--out", str(tmp_path / "run"), "--models", "logreg"],
                          capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode != 0 and "being replaced when a run stopped" in proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------- metadata never features


def test_metadata_columns_are_never_features_without_a_schema(tmp_path):
    """Numeric metadata (classID is the label in disguise) never becomes a feature, in any case."""
    df = default_table()
    df["classID"] = (df["label"] == "siren").astype(int)  # numbers, as a manifest may hold them
    df["ClassId"] = df["classID"]
    df["fsID"] = np.arange(len(df)) // 2
    df["start"], df["end"], df["salience"] = 0.5, 4.5, 1
    df["split"] = "train"
    df["segment_count"] = 1
    out = write_default(tmp_path, df, schema=False)
    for suffix in ("csv", "parquet"):
        t = load_table(out / f"features.{suffix}")
        assert t.feature_columns == tuple(FEATURES), suffix


def test_metadata_columns_are_never_features_with_a_schema(tmp_path):
    df = default_table()
    out = write_default(tmp_path, df)
    assert load_table(out / "features.parquet").feature_columns == tuple(FEATURES)
    schema = pd.read_csv(out / "features.schema.csv")
    schema.loc[schema["column"] == "classID", "role"] = "feature"
    schema.to_csv(out / "features.schema.csv", index=False)
    with pytest.raises(TableError, match=r"lists \['classID'\] as feature column\(s\), but they "
                                         r"identify or describe the clip"):
        load_table(out / "features.parquet")


# ------------------------------------------------------------- segment tables


def segment_table(n_clips: int = 8, windows: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"path": f"c{c}.wav", "label": ("dog", "cat")[c % 2], "fold": c % 4 + 1,
             "group": "" if c % 3 == 0 else f"rec{c // 2}", "segment": w,
             "segment_start_s": 3.0 * w, "segment_end_s": 3.0 * w + 3.0}
            for c in range(n_clips) for w in range(windows)]
    df = pd.DataFrame(rows)
    df["fold"] = df["fold"].astype("Int64")
    for name in FEATURES:
        df[name] = rng.normal(size=len(df))
    return df


def test_segment_table_groups_fall_back_to_the_clip(tmp_path):
    df = segment_table()
    write_table(df, tmp_path)
    t = load_table(tmp_path / "features.parquet")
    assert t.is_segmented and t.n_clips == 8 and t.n_rows == 24
    assert t.feature_columns == tuple(FEATURES)  # segment columns are not features
    groups = pd.Series(t.groups)
    blank = (df["group"] == "").to_numpy()
    assert (groups[blank] == df["path"][blank]).all() and (groups[~blank] == df["group"][~blank]).all()
    assert (groups.groupby(df["path"]).nunique() == 1).all()
    assert "24 rows (windows of 8 clips)" in t.describe()
    # Without a group column at all, every clip is its own group.
    write_table(df.drop(columns="group"), tmp_path / "nogroup")
    assert list(load_table(tmp_path / "nogroup" / "features.parquet").groups) == list(df["path"])


@pytest.mark.parametrize("column, value", [("label", "cat"), ("fold", 3), ("group", "other")])
def test_windows_of_a_clip_must_share_label_fold_and_group(tmp_path, column, value):
    df = segment_table()
    df.loc[1, column] = value  # clip c0, window 1 (c0 is a 'dog' of fold 1, no group)
    write_table(df, tmp_path)
    with pytest.raises(TableError, match=rf"the windows of clip c0.wav have different '{column}' values"):
        load_table(tmp_path / "features.parquet")


def test_segment_table_needs_paths_and_whole_window_numbers(tmp_path):
    df = segment_table()
    write_table(df.drop(columns="path"), tmp_path / "a")
    with pytest.raises(TableError, match="has a 'segment' column but no 'path' column"):
        load_table(tmp_path / "a" / "features.parquet")
    df["segment"] = df["segment"].astype(float)
    df.loc[4, "segment"] = 1.5
    write_table(df, tmp_path / "b")
    with pytest.raises(TableError, match=r"column 'segment' must hold numbers >= 0 \(whole window "
                                         r"indices\); 1 row\(s\) do not, first at data row 5"):
        load_table(tmp_path / "b" / "features.parquet")
