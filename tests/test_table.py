"""The output table layout, its data dictionary and the atomic writers."""
from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest

from features import table as T
from features.compute import feature_columns
from features.errors import UsageError
from features.io.atomic import write_json
from features.io.records import ErrorRecord
from features.params import FeatureParams
from features.schema import build_schema

GTZAN_HEADER = (
    "filename,chroma_stft,rmse,spectral_centroid,spectral_bandwidth,rolloff,"
    "zero_crossing_rate," + ",".join(f"mfcc{i}" for i in range(1, 21)) + ",label"
)


def _clips(n: int = 3, *, extra: dict | None = None, folds=(1, None, 3)) -> pd.DataFrame:
    data = {
        "path": [f"a/{i}.wav" for i in range(n)],
        "label": ["a"] * n,
        "fold": pd.array(list(folds)[:n], dtype="Int64"),
        "group": ["g"] * n,
    }
    data.update(extra or {})
    return pd.DataFrame(data)


def _audio(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {"duration_s": [1.5] * n, "orig_sample_rate": [44100] * n, "orig_channels": [2] * n}
    )


def _table(params: FeatureParams, n: int = 3, **kw) -> pd.DataFrame:
    names = feature_columns(params)
    feats = np.arange(n * len(names), dtype=float).reshape(n, len(names)) - 5.0
    return T.build_table(_clips(n, **kw), _audio(n), feats, names, params.preset)


def test_default_table_columns_in_contract_order():
    params = FeatureParams()
    t = _table(params, extra={"fsID": ["1", "2", "3"], "salience": ["1", "2", "1"]})
    assert list(t.columns) == [
        "path", "label", "fold", "group", "fsID", "salience",
        "duration_s", "orig_sample_rate", "orig_channels", *feature_columns(params),
    ]
    assert isinstance(t["fold"].dtype, pd.Int64Dtype)
    assert t["orig_sample_rate"].dtype == np.int64
    assert t["mfcc_mean_1"].dtype == np.float64


def test_gtzan_preset_header_is_the_tutorials():
    t = _table(FeatureParams(preset="gtzan"))
    assert ",".join(t.columns) == GTZAN_HEADER
    assert t["filename"].tolist() == ["0.wav", "1.wav", "2.wav"]


def test_build_table_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="audio has 2 rows but clips has 3"):
        T.build_table(_clips(3), _audio(2), np.zeros((3, 1)), ["zcr_mean"])


def test_missing_fold_is_an_empty_csv_cell(tmp_path):
    path = T.write_csv(_table(FeatureParams()), tmp_path / "t.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["fold"] for r in rows] == ["1", "", "3"]


@pytest.mark.parametrize("preset", ["default", "gtzan", "rich"])
def test_schema_explains_every_column(preset):
    params = FeatureParams(preset=preset)
    t = _table(params, extra={"fsID": ["1", "2", "3"], "weather": ["x", "y", "z"]})
    schema = build_schema(t, params, layout="urbansound8k")
    assert list(schema.columns) == ["column", "role", "dtype", "unit", "description", "family", "descriptor",
                                    "statistic"]
    features = schema[schema["role"] == "feature"]
    assert (features[["family", "descriptor", "statistic"]] != "").all().all()
    assert (schema.loc[schema["role"] != "feature", ["family", "descriptor", "statistic"]] == "").all().all()
    assert schema["column"].tolist() == list(t.columns)
    assert set(schema["role"]) <= {"identifier", "metadata", "audio", "feature"}
    assert schema["description"].str.len().min() > 20
    assert schema["dtype"].str.len().min() > 0


def test_schema_words_for_known_columns():
    params = FeatureParams()
    t = _table(params, extra={"fsID": ["1", "2", "3"], "salience": ["1", "2", "1"],
                              "weather": ["x", "y", "z"]})
    s = build_schema(t, params, layout="urbansound8k").set_index("column")
    assert s.loc["mfcc_mean_3", "description"].startswith(
        "mean over frames of the 3rd Mel-frequency cepstral coefficient (librosa.feature.mfcc, "
        "40 coefficients, 128 mel bands"
    )
    assert s.loc["mfcc_std_11", "description"].startswith("population standard deviation")
    assert "11th" in s.loc["mfcc_std_11", "description"]
    assert "pitch class C#" in s.loc["chroma_mean_2", "description"]
    assert "Freesound id" in s.loc["fsID", "description"]
    assert "1 = " in s.loc["salience", "description"] and "2 = " in s.loc["salience", "description"]
    assert "carried through from the source metadata" in s.loc["weather", "description"]
    assert s.loc["weather", "role"] == "metadata"
    assert s.loc["fold", "dtype"] == "integer (empty when missing)"
    units = s["unit"].to_dict()
    assert units["duration_s"] == "s"
    assert units["orig_sample_rate"] == units["spectral_centroid_mean"] == "Hz"
    assert units["mfcc_mean_1"] == "dB-scaled"
    assert units["zcr_std"].startswith("unitless")
    assert {s.loc[c, "role"] for c in feature_columns(params)} == {"feature"}


def test_fsid_is_described_only_for_urbansound8k():
    params = FeatureParams()
    t = _table(params, extra={"fsID": ["1", "2", "3"]})
    s = build_schema(t, params, layout="manifest").set_index("column")
    assert "carried through" in s.loc["fsID", "description"]
    assert "manifest's 'label'" in s.loc["label", "description"]


def test_csv_neutralises_formulas_but_parquet_keeps_raw_text(tmp_path):
    evil = ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "plain", "a=b"]
    n = len(evil)
    t = T.build_table(
        _clips(n, extra={"note": evil}, folds=[1] * n), _audio(n),
        np.full((n, 1), -1.5), ["zcr_mean"],
    )
    T.write_csv(t, tmp_path / "t.csv")
    T.write_parquet(t, tmp_path / "t.parquet")
    back = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert back["note"].tolist() == [
        "'=HYPERLINK(\"x\")", "'+1", "'-2+3", "'@SUM(A1)", "'\tx", "plain", "a=b",
    ]
    assert (back["zcr_mean"] == -1.5).all()  # a negative number is not text
    assert "\na/1.wav,a,1,g,'+1," in (tmp_path / "t.csv").read_text()
    assert pd.read_parquet(tmp_path / "t.parquet")["note"].tolist() == evil


def test_carriage_return_cell_round_trips(tmp_path):
    t = T.build_table(_clips(2, extra={"note": ["\rx", "a\rb"]}, folds=[1, 2]), _audio(2),
                      np.zeros((2, 1)), ["zcr_mean"])
    back = pd.read_csv(T.write_csv(t, tmp_path / "t.csv"), keep_default_na=False)
    assert back["note"].tolist() == ["'\rx", "a\rb"]
    assert back["fold"].tolist() == [1, 2]


def test_neutralise_leaves_input_and_numbers_alone():
    df = pd.DataFrame({"a": ["-x", None], "n": [-1.0, 2.0], "i": [-3, 4]})
    out = T.neutralise_formulas(df)
    assert out["a"].tolist()[0] == "'-x" and pd.isna(out["a"].tolist()[1])
    assert df["a"].tolist()[0] == "-x"
    pd.testing.assert_frame_equal(out[["n", "i"]], df[["n", "i"]])


def test_errors_frame_header_only_when_empty(tmp_path):
    path = T.write_csv(T.errors_frame([]), tmp_path / "errors.csv")
    assert path.read_text() == "path,row,stage,reason,error_type,message\n"
    rec = ErrorRecord("x.wav", None, "load", "AudioReadError", "x.wav: gone, comma",
                      "file does not exist")
    path = T.write_csv(T.errors_frame([rec, ErrorRecord("", 4, "metadata", "E", "-bad")]), path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert rows[0] == {"path": "x.wav", "row": "", "stage": "load", "reason": "file does not exist",
                       "error_type": "AudioReadError", "message": "x.wav: gone, comma"}
    assert rows[1]["row"] == "4" and rows[1]["message"] == "'-bad"


class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, fmt):
    t = _table(FeatureParams())
    method = "to_csv" if fmt == "csv" else "to_parquet"
    original = getattr(pd.DataFrame, method)

    def half_then_fail(self, path, *args, **kwargs):
        original(self.iloc[:1], path, *args, **kwargs)  # something is on disk...
        raise _Boom("disk full")  # ...then the writer dies

    monkeypatch.setattr(pd.DataFrame, method, half_then_fail)
    target = tmp_path / f"features.{fmt}"
    with pytest.raises(_Boom):
        T.write_table(t, tmp_path, [fmt])
    assert list(tmp_path.iterdir()) == []  # neither the final name nor a temporary file

    target.write_bytes(b"old table")
    with pytest.raises(_Boom):
        T.write_table(t, tmp_path, [fmt])
    assert target.read_bytes() == b"old table"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_written_files_get_normal_permissions(tmp_path):
    path = write_json({"a": 1}, tmp_path / "x.json")
    assert path.stat().st_mode & 0o044  # readable by others, unlike mkstemp's 0600


@pytest.mark.parametrize("value, expected", [
    ("csv", ("csv",)), ("parquet,csv", ("parquet", "csv")), (["CSV", "csv"], ("csv",)),
])
def test_check_formats(value, expected):
    assert T.check_formats(value) == expected


@pytest.mark.parametrize("value", ["xlsx", "", "csv,json"])
def test_check_formats_names_the_bad_value(value):
    with pytest.raises(UsageError, match="format="):
        T.check_formats(value)
