"""The outputs as real clients read them: pandas and DuckDB, from CSV and from Parquet.

An analyst who opens ``features.csv`` and one who opens
``features.parquet`` must see the same columns with the same types, as the
data dictionary states them, and must be able to join the two.
"""
from __future__ import annotations

import pandas as pd
import pytest

from features import extract as X

duckdb = pytest.importorskip("duckdb")

# data dictionary words -> what pandas and DuckDB make of such a column
PANDAS_KIND = {"integer": "iu", "integer (empty when missing)": "iuf", "float": "f", "text": "OSU"}
DUCKDB_TYPES = {
    "integer": {"BIGINT", "INTEGER"},
    "integer (empty when missing)": {"BIGINT", "INTEGER"},
    "float": {"DOUBLE"},
    "text": {"VARCHAR"},
}


@pytest.fixture(scope="module")
def demo_outputs(demo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("clients")
    X.extract_dataset(demo_root, out, quiet=True, jobs=1)
    return out


def test_csv_and_parquet_have_the_types_the_dictionary_states(demo_outputs):
    schema = pd.read_csv(demo_outputs / "features.schema.csv").set_index("column")["dtype"]
    csv = pd.read_csv(demo_outputs / "features.csv")
    parquet = pd.read_parquet(demo_outputs / "features.parquet")
    assert list(csv.columns) == list(parquet.columns) == list(schema.index)
    for column, words in schema.items():
        assert csv[column].dtype.kind in PANDAS_KIND[words], (column, words, csv[column].dtype)
        assert parquet[column].dtype.kind in PANDAS_KIND[words] or (
            words.startswith("integer") and isinstance(parquet[column].dtype, pd.Int64Dtype)
        ), (column, words, parquet[column].dtype)
    for column in ("fsID", "start", "end", "salience", "classID", "group"):
        assert schema[column] != "text", column  # numbers in the metadata CSV stay numbers


def test_duckdb_reads_both_files_alike_and_joins_them(demo_outputs):
    con = duckdb.connect()
    csv = con.sql(f"SELECT * FROM read_csv_auto('{demo_outputs / 'features.csv'}')")
    pq = con.sql(f"SELECT * FROM read_parquet('{demo_outputs / 'features.parquet'}')")
    schema = pd.read_csv(demo_outputs / "features.schema.csv").set_index("column")["dtype"]
    for name, t_csv, t_pq in zip(csv.columns, csv.types, pq.types, strict=True):
        assert str(t_csv) in DUCKDB_TYPES[schema[name]], (name, t_csv)
        assert str(t_pq) in DUCKDB_TYPES[schema[name]], (name, t_pq)
    joined = con.sql(
        f"SELECT count(*) FROM read_csv_auto('{demo_outputs / 'features.csv'}') c "
        f"JOIN read_parquet('{demo_outputs / 'features.parquet'}') p "
        "ON c.path = p.path AND c.fold = p.fold AND c.\"group\" = p.\"group\" "
        "AND c.classID = p.classID").fetchall()[0][0]
    assert joined == len(pd.read_parquet(demo_outputs / "features.parquet"))


def test_pandas_merges_csv_with_parquet_on_group_and_fold(demo_outputs):
    csv = pd.read_csv(demo_outputs / "features.csv")
    parquet = pd.read_parquet(demo_outputs / "features.parquet")
    merged = csv[["path", "group", "fold"]].merge(parquet[["path", "group", "fold"]],
                                                 on=["group", "fold", "path"])
    assert len(merged) == len(csv)


def test_the_dictionary_explains_the_formula_guard(demo_outputs):
    schema = pd.read_csv(demo_outputs / "features.schema.csv").set_index("column")
    for column in ("path", "label", "slice_file_name"):
        assert "leading '" in schema.loc[column, "description"], column
        assert "features.parquet keeps" in schema.loc[column, "description"], column
