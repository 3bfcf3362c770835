"""discover(): every layout, auto-detection, and bad metadata rows as ErrorRecords."""
from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pytest

from features.errors import AudioReadError, DatasetLayoutError, UsageError
from features.io.datasets import LAYOUTS, Dataset, discover
from features.io.records import ErrorRecord

US8K_HEADER = "slice_file_name,fsID,start,end,salience,fold,classID,class"
US8K_EXTRAS = ["slice_file_name", "fsID", "start", "end", "salience", "classID"]


def _touch(path) -> None:
    # discover() never opens files, so empty files are enough.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def _us8k(root, lines: list[str], *, header: str = US8K_HEADER, bom: bool = False):
    csv = root / "metadata" / "UrbanSound8K.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(exist_ok=True)
    text = "\n".join([header, *lines]) + "\n"
    csv.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return csv


def _rows(ds: Dataset) -> dict[int, ErrorRecord]:
    return {e.row: e for e in ds.errors}


# ------------------------------------------------------------- urbansound8k
def test_urbansound8k_columns_values_and_order(tmp_path):
    _us8k(tmp_path, [
        "100032-3-0-0.wav,100032,0.0,0.317551,1,5,3,dog_bark",
        "100263-2-0-117.wav,100263,58.5,62.5,1,5,2,children_playing",
        "7383-3-0-0.wav,7383,=1+1,0.5,2,10,3,dog_bark",
    ], bom=True, header=" slice_file_name , fsID,start,end,salience,fold ,classID,class")
    for name in ("fold5/100032-3-0-0.wav", "fold5/100263-2-0-117.wav"):
        _touch(tmp_path / "audio" / name)
    ds = discover(tmp_path)
    assert ds.layout == "urbansound8k" and ds.root == tmp_path and ds.errors == []
    clips = ds.clips
    assert list(clips.columns) == ["path", "label", "fold", "group", *US8K_EXTRAS]
    assert ds.extra_columns == US8K_EXTRAS
    assert clips["path"].tolist() == [
        "audio/fold5/100032-3-0-0.wav", "audio/fold5/100263-2-0-117.wav", "audio/fold10/7383-3-0-0.wav",
    ]
    assert clips["label"].tolist() == ["dog_bark", "children_playing", "dog_bark"]
    assert str(clips["fold"].dtype) == "Int64" and clips["fold"].tolist() == [5, 5, 10]
    assert clips["group"].tolist() == ["100032", "100263", "7383"]
    # Metadata passes through as the exact strings of the CSV.
    assert clips["start"].tolist() == ["0.0", "58.5", "=1+1"]
    assert clips["end"].tolist() == ["0.317551", "62.5", "0.5"]
    assert clips["classID"].tolist() == ["3", "2", "3"]
    for col in ["path", "label", "group", *US8K_EXTRAS]:
        assert pd.api.types.is_string_dtype(clips[col]), col
    assert isinstance(clips.index, pd.RangeIndex)


def test_urbansound8k_missing_file_is_still_a_clip(tmp_path):
    _us8k(tmp_path, ["gone.wav,1,0,1,1,1,0,air_conditioner"])
    ds = discover(tmp_path, layout="urbansound8k")
    assert ds.clips["path"].tolist() == ["audio/fold1/gone.wav"] and ds.errors == []


def test_urbansound8k_malformed_rows_become_errors_and_good_rows_survive(tmp_path):
    ds_csv = _us8k(tmp_path, [
        "ok1.wav,1,0,1,1,1,0,air",           # row 1
        "badfold.wav,2,0,1,1,x,0,air",       # row 2: fold not an integer
        "",                                   # row 3: blank line, ignored
        "noclass.wav,3,0,1,1,2,0,",          # row 4: empty class
        ",4,0,1,1,2,0,air",                  # row 5: empty slice name
        "../../etc/passwd,5,0,1,1,1,0,air",  # row 6: path separators
        "..,6,0,1,1,1,0,air",                # row 7: not a file name
        "ok2.wav,7,0,1,1,3.0,0,siren",       # row 8: 3.0 is an integer
        "extra.wav,8,0,1,1,1,0,air,oops",    # row 9: too many fields
        "ok1.wav,1,0,1,1,1,0,air",           # row 10: duplicate of row 1
        "ok3.wav,9,0,1,1, 4 ,0,  siren  ",   # row 11: whitespace tolerated
    ])
    ds = discover(tmp_path)
    assert ds.clips["path"].tolist() == ["audio/fold1/ok1.wav", "audio/fold3/ok2.wav", "audio/fold4/ok3.wav"]
    assert ds.clips["label"].tolist() == ["air", "siren", "siren"]
    assert ds.clips["fold"].tolist() == [1, 3, 4]
    errors = _rows(ds)
    assert sorted(errors) == [2, 4, 5, 6, 7, 9, 10]
    assert all(e.stage == "metadata" and e.error_type == "DatasetLayoutError" for e in ds.errors)
    assert all(f"UrbanSound8K.csv row {row}:" in e.message for row, e in errors.items())
    assert "fold 'x' is not an integer" in errors[2].message and errors[2].path == "badfold.wav"
    assert "class is empty" in errors[4].message
    assert "slice_file_name is empty" in errors[5].message
    assert "path separator" in errors[6].message
    assert "not a file name" in errors[7].message
    assert "expected 8 fields, saw 9" in errors[9].message
    assert "already listed in row 1" in errors[10].message
    assert ds_csv.exists()


def test_urbansound8k_missing_columns_are_named(tmp_path):
    csv = _us8k(tmp_path, ["a.wav,1,0,1,1,1"], header="slice_file_name,fsID,start,end,salience,classID")
    with pytest.raises(DatasetLayoutError, match=re.escape(str(csv)) + ".*missing required column.*fold, class"):
        discover(tmp_path)


def test_urbansound8k_without_audio_folder_says_so(tmp_path):
    _us8k(tmp_path, ["a.wav,1,0,1,1,1,0,air"])
    (tmp_path / "audio").rmdir()
    with pytest.raises(DatasetLayoutError, match="audio"):
        discover(tmp_path)


def test_urbansound8k_header_only_is_a_layout_error(tmp_path):
    _us8k(tmp_path, [])
    with pytest.raises(DatasetLayoutError, match="no data rows"):
        discover(tmp_path)


# --------------------------------------------------------------------- gtzan
@pytest.mark.parametrize("base", ["genres", "genres_original"])
def test_gtzan_both_spellings(tmp_path, base):
    for name in ["blues/blues.00001.wav", "blues/blues.00000.wav", "jazz/jazz.00000.WAV",
                 "jazz/.DS_Store", "jazz/._jazz.00000.wav", "jazz/notes.txt", ".hidden/x.wav",
                 "rock/rock.00000.au"]:
        _touch(tmp_path / base / name)
    _touch(tmp_path / "features_30_sec.csv")
    _touch(tmp_path / "images_original" / "blues" / "blues00000.png")
    ds = discover(tmp_path)
    assert ds.layout == "gtzan"
    assert ds.clips["path"].tolist() == [
        f"{base}/blues/blues.00000.wav", f"{base}/blues/blues.00001.wav",
        f"{base}/jazz/jazz.00000.WAV", f"{base}/rock/rock.00000.au",
    ]
    assert ds.clips["label"].tolist() == ["blues", "blues", "jazz", "rock"]
    assert ds.clips["fold"].isna().all() and str(ds.clips["fold"].dtype) == "Int64"
    assert (ds.clips["group"] == "").all()
    # Original GTZAN names: the fault-filtered partition's parts.
    assert list(ds.clips.columns) == ["path", "label", "fold", "group", "split"]
    assert ds.clips["split"].tolist() == ["validation", "validation", "train", "train"]


def test_gtzan_explicit_layout_that_does_not_fit(tmp_path):
    _touch(tmp_path / "dog" / "a.wav")
    with pytest.raises(DatasetLayoutError, match="layout 'gtzan'.*genres_original"):
        discover(tmp_path, layout="gtzan")


def test_gtzan_without_audio_is_a_layout_error(tmp_path):
    _touch(tmp_path / "genres" / "blues" / "readme.txt")
    with pytest.raises(DatasetLayoutError, match="no audio files"):
        discover(tmp_path)


# ------------------------------------------------------------------- folders
def test_folders_recursive_sorted_and_filtered(tmp_path):
    for name in ["dog/b.wav", "dog/a.flac", "dog/sub/deeper/c.ogg", "cat/z.mp3", "cat/Thumbs.db",
                 "cat/.x.wav", ".git/objects/a.wav", "a b/q.wav", "README.md"]:
        _touch(tmp_path / name)
    (tmp_path / "cat" / "looks_like.wav").mkdir()
    (tmp_path / "empty_class").mkdir()
    ds = discover(tmp_path)
    assert ds.layout == "folders"
    assert ds.clips["path"].tolist() == [
        "a b/q.wav", "cat/looks_like.wav", "cat/z.mp3", "dog/a.flac", "dog/b.wav", "dog/sub/deeper/c.ogg",
    ]
    assert ds.clips["label"].tolist() == ["a b", "cat", "cat", "dog", "dog", "dog"]
    assert ds.errors == []


def test_folders_audio_outside_class_folders_is_reported(tmp_path):
    _touch(tmp_path / "dog" / "a.wav")
    _touch(tmp_path / "stray.wav")
    ds = discover(tmp_path, layout="folders")
    assert ds.clips["path"].tolist() == ["dog/a.wav"]
    (error,) = ds.errors
    assert error.path == "stray.wav" and error.stage == "metadata" and "no label" in error.message


def test_folders_symlink_loop_terminates(tmp_path):
    _touch(tmp_path / "dog" / "a.wav")
    os.symlink(tmp_path / "dog", tmp_path / "dog" / "again")
    ds = discover(tmp_path)
    assert ds.clips["path"].tolist() == ["dog/a.wav"]


def test_empty_folder_is_a_layout_error_listing_what_was_expected(tmp_path):
    with pytest.raises(DatasetLayoutError, match="no dataset found in .*UrbanSound8K.csv.*genres.*manifest"):
        discover(tmp_path)
    (tmp_path / "dog").mkdir()
    _touch(tmp_path / "dog" / "notes.txt")
    with pytest.raises(DatasetLayoutError, match="no dataset found"):
        discover(tmp_path)
    with pytest.raises(DatasetLayoutError, match="layout 'folders'.*no class subfolder holds an audio file"):
        discover(tmp_path, layout="folders")


# ------------------------------------------------------------------ manifest
def _manifest(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_extra_columns_and_optional_fold_group(tmp_path):
    csv = _manifest(tmp_path / "lists" / "m.csv",
                    "path,label,take,fold,group,note\n"
                    "clips\\a.wav,cat,1,2,g1,=SUM(A1)\n"
                    "./clips/sub/../b.wav,dog,2,,,\n"
                    "c.ogg,dog,3,4,g2,hello world\n")
    ds = discover(tmp_path, manifest=csv)
    assert ds.layout == "manifest" and ds.errors == []
    assert list(ds.clips.columns) == ["path", "label", "fold", "group", "take", "note"]
    assert ds.clips["path"].tolist() == ["clips/a.wav", "clips/b.wav", "c.ogg"]
    assert ds.clips["fold"].tolist()[0] == 2 and ds.clips["fold"].isna().tolist() == [False, True, False]
    assert ds.clips["group"].tolist() == ["g1", "", "g2"]
    assert ds.clips["note"].tolist() == ["=SUM(A1)", "", "hello world"]
    assert ds.clips["take"].tolist() == ["1", "2", "3"]


def test_manifest_without_fold_or_group_columns(tmp_path):
    csv = _manifest(tmp_path / "m.csv", "label,path\nx,a.wav\n")
    ds = discover(tmp_path, manifest=csv, layout="manifest")
    assert list(ds.clips.columns) == ["path", "label", "fold", "group"]
    assert ds.clips["fold"].isna().all() and str(ds.clips["fold"].dtype) == "Int64"


def test_manifest_bad_rows_become_errors_with_row_numbers(tmp_path):
    csv = _manifest(tmp_path / "m.csv",
                    "path,label,fold\n"
                    "good1.wav,cat,1\n"        # 1
                    "/etc/passwd,cat,1\n"      # 2 absolute
                    "../outside.wav,cat,1\n"   # 3 escapes
                    "a/../../x.wav,cat,1\n"    # 4 escapes after normalisation
                    "b.wav,,1\n"               # 5 empty label
                    "c.wav,dog,one\n"          # 6 bad fold
                    "C:\\data\\d.wav,dog,1\n"  # 7 Windows absolute
                    ",dog,1\n"                 # 8 empty path
                    "a/../good2.wav,dog,\n"    # 9 fine: stays inside ROOT
                    "good1.wav,cat,1\n")       # 10 duplicate
    ds = discover(tmp_path, manifest=csv)
    assert ds.clips["path"].tolist() == ["good1.wav", "good2.wav"]
    errors = _rows(ds)
    assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8, 10]
    assert "absolute" in errors[2].message and errors[2].path == "/etc/passwd"
    assert "outside ROOT" in errors[3].message and "outside ROOT" in errors[4].message
    assert "label is empty" in errors[5].message and errors[5].path == "b.wav"
    assert "fold 'one' is not an integer" in errors[6].message
    assert "absolute" in errors[7].message
    assert "path is empty" in errors[8].message
    assert "already listed in row 1" in errors[10].message
    assert all(e.message.startswith(f"{csv} row {r}:") for r, e in errors.items())


def test_manifest_found_relative_to_cwd_or_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _manifest(root / "m.csv", "path,label\na.wav,x\n")
    monkeypatch.chdir(tmp_path)
    ds = discover(root, manifest="m.csv")
    assert ds.clips["path"].tolist() == ["a.wav"] and ds.manifest == root / "m.csv"  # via ROOT
    _manifest(tmp_path / "m.csv", "path,label\nb.wav,y\n")
    ds = discover(root, manifest="m.csv")
    assert ds.clips["path"].tolist() == ["b.wav"] and ds.manifest == tmp_path / "m.csv"  # cwd first
    assert discover(root, manifest="m.csv").manifest.is_absolute()


def test_manifest_wins_over_auto_detection(tmp_path):
    _us8k(tmp_path, ["a.wav,1,0,1,1,1,0,air"])
    csv = _manifest(tmp_path / "m.csv", "path,label\naudio/fold1/a.wav,x\n")
    assert discover(tmp_path, manifest=csv).layout == "manifest"


def test_manifest_problems_are_named(tmp_path):
    with pytest.raises(DatasetLayoutError, match="manifest 'nope.csv' not found"):
        discover(tmp_path, manifest="nope.csv")
    csv = _manifest(tmp_path / "m.csv", "file,class\na.wav,x\n")
    with pytest.raises(DatasetLayoutError, match=re.escape(str(csv)) + ".*missing required column.*path, label"):
        discover(tmp_path, manifest=csv)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("path,label\nb.wav,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetLayoutError, match="UTF-8"):
        discover(tmp_path, manifest=latin1)


# ------------------------------------------------------------ usage errors
def test_unknown_layout_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="layout=.kaggle. is not one of: urbansound8k, speechcommands, gtzan, folders, manifest"):
        discover(tmp_path, layout="kaggle")
    assert tuple(LAYOUTS) == ("urbansound8k", "speechcommands", "gtzan", "folders", "manifest")


def test_manifest_and_layout_must_agree(tmp_path):
    with pytest.raises(UsageError, match="needs a manifest"):
        discover(tmp_path, layout="manifest")
    with pytest.raises(UsageError, match="layout='gtzan'"):
        discover(tmp_path, layout="gtzan", manifest="m.csv")


def test_root_must_be_a_directory(tmp_path):
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        discover(tmp_path / "nowhere")
    _touch(tmp_path / "file.wav")
    with pytest.raises(DatasetLayoutError, match="is not a directory"):
        discover(tmp_path / "file.wav")


def test_explicit_urbansound8k_that_does_not_fit(tmp_path):
    _touch(tmp_path / "dog" / "a.wav")
    with pytest.raises(DatasetLayoutError, match="layout 'urbansound8k'.*UrbanSound8K.csv"):
        discover(tmp_path, layout="urbansound8k")


# -------------------------------------------------------------- ErrorRecord
def test_error_record_from_exception_and_stage_check():
    record = ErrorRecord.from_exception(OSError("gone"), path="a.wav", stage="load")
    assert record == ErrorRecord("a.wav", None, "load", "OSError", "gone", "unexpected OSError")
    reasoned = ErrorRecord.from_exception(AudioReadError("x.wav: gone", reason="file does not exist"))
    assert reasoned.reason == "file does not exist" and reasoned.message == "x.wav: gone"
    with pytest.raises(UsageError, match="stage='decode'"):
        ErrorRecord("a.wav", None, "decode", "OSError", "x")


# ------------------------------------------------------------ speech commands


def _speech_commands(root, write_wav, *, validation="", testing="", noise=True):
    tone = np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)
    for word in ("yes", "no"):
        for speaker in ("aa11", "bb22", "cc33"):
            for n in range(2):
                write_wav(root / word / f"{speaker}_nohash_{n}.wav", tone, 16000)
    if noise:
        write_wav(root / "_background_noise_" / "pink_noise.wav", tone, 16000)
    (root / "validation_list.txt").write_text(validation)
    (root / "testing_list.txt").write_text(testing)
    return root


def test_speech_commands_layout_reads_the_lists_exactly(tmp_path, write_wav):
    root = _speech_commands(
        tmp_path, write_wav,
        validation="yes/bb22_nohash_0.wav\nyes/bb22_nohash_1.wav\nno/bb22_nohash_0.wav\n"
                   "no/bb22_nohash_1.wav\n",
        testing="yes/cc33_nohash_0.wav\r\nyes/cc33_nohash_1.wav\r\nno/cc33_nohash_0.wav\r\n"
                "no/cc33_nohash_1.wav\r\n\r\n")
    ds = discover(root)
    assert ds.layout == "speechcommands" and ds.errors == []
    clips = ds.clips.set_index("path")
    assert list(ds.clips.columns) == ["path", "label", "fold", "group", "split"]
    assert clips.loc["yes/aa11_nohash_0.wav", ["label", "group", "split"]].tolist() == [
        "yes", "aa11", "train"]
    by_split = ds.clips.groupby("split")["path"].apply(sorted).to_dict()
    assert by_split["validation"] == sorted(
        f"{w}/bb22_nohash_{n}.wav" for w in ("yes", "no") for n in (0, 1))
    assert by_split["test"] == sorted(
        f"{w}/cc33_nohash_{n}.wav" for w in ("yes", "no") for n in (0, 1))
    assert len(by_split["train"]) == 4
    assert ds.notes["background_noise"] == ["_background_noise_/pink_noise.wav"]
    assert "_background_noise_" not in set(ds.clips["label"])
    assert ds.notes["warnings"] == []


def test_speech_commands_speaker_in_two_sets_and_bad_list_lines_are_reported(tmp_path, write_wav):
    root = _speech_commands(tmp_path, write_wav,
                            validation="yes/bb22_nohash_0.wav\nno/aa11_nohash_0.wav\n",
                            testing="no/aa11_nohash_0.wav\nyes/zz99_nohash_0.wav\n")
    ds = discover(root)
    [warning] = ds.notes["warnings"]
    assert "bb22 (train/validation)" in warning and "leak" in warning
    by_reason = {e.reason: e for e in ds.errors}
    assert by_reason["listed in two parts of the split"].path == "no/aa11_nohash_0.wav"
    missing = by_reason["listed clip not found"]
    assert (missing.path, missing.row) == ("yes/zz99_nohash_0.wav", 2)
    assert "no/aa11_nohash_0.wav" not in set(ds.clips["path"])


def test_manifest_split_column_is_normalised_and_checked(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    _manifest(root / "m.csv", "path,label,split\na.wav,x,train\nb.wav,x,VAL\nc.wav,y,testing\n"
                              "d.wav,y,later\n")
    ds = discover(root, manifest=root / "m.csv")
    assert ds.clips["split"].tolist() == ["train", "validation", "test"]
    [err] = ds.errors
    assert err.row == 4 and "split 'later' is not one of: train, validation, test" in err.message
