"""classify.splits and classify.inner: every protocol keeps what must stay apart apart, and fails clearly."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from classify.errors import SplitError, UsageError
from classify.inner import calibration_folds, inner_splits, validation_split
from classify.splits import LEAKY_NOTE, build_protocol, choose_protocol
from classify.tables import load_table


def dataset(n_groups: int = 40, n_classes: int = 4, n_folds: int = 10, seed: int = 0):
    """Labels, predefined folds and groups: each group (recording) sits in one fold."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, n_groups)
    group = np.repeat([f"rec{g}" for g in range(n_groups)], sizes)
    y = np.repeat([f"class{g % n_classes}" for g in range(n_groups)], sizes).astype(object)
    folds = pd.Series(np.repeat([g % n_folds + 1 for g in range(n_groups)], sizes), dtype="Int64")
    return y, folds, group


def assert_apart(protocol, values):
    """No value (fold or group) on both sides of any split."""
    values = np.asarray(values, dtype=object)
    for split in protocol.splits:
        assert not set(values[split.train]) & set(values[split.test]), split.name


def assert_partition(protocol, n):
    """Every row is tested exactly once over the splits, and train = the rest."""
    tested = np.concatenate([s.test for s in protocol.splits])
    assert sorted(tested) == list(range(n))
    for split in protocol.splits:
        assert sorted(np.r_[split.train, split.test]) == list(range(n))


# ------------------------------------------------------------------ choices


def test_auto_prefers_folds_then_groups_then_stratified():
    y, folds, groups = dataset()
    assert build_protocol("auto", y, folds=folds, groups=groups).name == "folds"
    assert build_protocol("auto", y, groups=groups).name == "group"
    assert build_protocol("auto", y).name == "stratified"
    empty_folds = pd.Series([pd.NA] * len(y), dtype="Int64")
    blank_groups = np.full(len(y), "", dtype=object)
    assert build_protocol("auto", y, folds=empty_folds, groups=blank_groups).name == "stratified"


def test_reasons_say_why():
    y, folds, groups = dataset()
    assert "has a 'fold' column with 10 predefined folds" in build_protocol("auto", y, folds=folds).reason
    assert "'group' column (40 groups)" in build_protocol("auto", y, groups=groups).reason
    assert "neither a 'fold' nor a 'group'" in build_protocol("auto", y).reason
    assert build_protocol("stratified", y, folds=folds).reason.startswith("requested with --cv stratified")


# -------------------------------------------------------------- protocols


def test_predefined_folds_map_one_to_one():
    y, folds, groups = dataset()
    p = build_protocol("folds", y, folds=folds, groups=groups)
    assert [s.name for s in p.splits] == [f"fold{i}" for i in range(1, 11)]  # fold10 last
    for i, split in enumerate(p.splits, start=1):
        assert set(split.test) == set(np.flatnonzero(folds.to_numpy() == i))
        assert set(split.train) == set(np.flatnonzero(folds.to_numpy() != i))
    assert_apart(p, folds.to_numpy())
    assert_apart(p, groups)
    assert_partition(p, len(y))
    assert not p.leaky and p.warnings == ()


def test_text_folds_are_supported():
    y, folds, _ = dataset(n_folds=3)
    named = folds.map({1: "a", 2: "b", 3: "c"}).astype(object)
    p = build_protocol("folds", y, folds=named)
    assert [s.name for s in p.splits] == ["folda", "foldb", "foldc"]
    assert_apart(p, named.to_numpy())


def test_group_kfold_never_splits_a_group():
    y, _, groups = dataset(n_groups=60)
    p = build_protocol("group", y, groups=groups, k=5, seed=3)
    assert p.name == "group" and p.n_splits == 5
    assert [s.name for s in p.splits] == [f"split{i}" for i in range(1, 6)]
    assert_apart(p, groups)
    assert_partition(p, len(y))


def test_stratified_kfold_is_a_stratified_partition():
    y, _, _ = dataset(n_groups=80)
    p = build_protocol("stratified", y, k=4, seed=1)
    assert_partition(p, len(y))
    overall = pd.Series(y).value_counts(normalize=True)
    for split in p.splits:
        share = pd.Series(y[split.test]).value_counts(normalize=True)
        assert (share - overall).abs().max() < 0.05


def test_random_holdout_is_labelled_leaky():
    y, folds, groups = dataset(n_groups=80)
    p = build_protocol("random", y, folds=folds, groups=groups, seed=0)
    assert p.leaky and p.n_splits == 1
    assert p.splits[0].name == "holdout (leaky)"
    assert LEAKY_NOTE == "leaky: clips of one recording can sit on both sides"
    assert LEAKY_NOTE in p.label and LEAKY_NOTE in p.reason and LEAKY_NOTE in p.describe()
    assert p.to_dict()["leaky"] is True
    test = p.splits[0].test
    assert abs(len(test) - 0.2 * len(y)) <= 1
    assert set(y[test]) == set(y)  # stratified


def test_same_seed_same_splits_other_seed_other_splits():
    y, _, groups = dataset(n_groups=60)
    a = build_protocol("group", y, groups=groups, seed=0)
    b = build_protocol("group", y, groups=groups, seed=0)
    c = build_protocol("group", y, groups=groups, seed=1)
    assert all((s.test == t.test).all() for s, t in zip(a.splits, b.splits))
    assert any(set(s.test) != set(t.test) for s, t in zip(a.splits, c.splits))


def test_choose_protocol_reads_the_table(tmp_path):
    y, folds, groups = dataset()
    df = pd.DataFrame({"path": [f"{i}.wav" for i in range(len(y))], "label": y, "fold": folds,
                       "group": groups, "a": np.arange(len(y), dtype=float)})
    df.to_parquet(tmp_path / "features.parquet")
    p = choose_protocol(load_table(tmp_path / "features.parquet"), "auto")
    assert p.name == "folds" and p.n_splits == 10
    assert_apart(p, groups)


# ---------------------------------------------------------------- warnings


def test_warns_when_a_group_spans_folds_and_when_a_class_is_missing():
    y, folds, groups = dataset()
    folds = folds.copy()
    folds.iloc[0] = 2 if folds.iloc[0] != 2 else 3  # one clip of rec0 moves to another fold
    p = build_protocol("folds", y, folds=folds, groups=groups)
    assert any("1 group(s) have clips in more than one fold" in w for w in p.warnings)

    # All of class c is one recording: the split that tests it cannot train on it.
    y2 = np.array(["a", "b"] * 10 + ["c"] * 3, dtype=object)
    groups2 = np.array([f"g{i}" for i in range(20)] + ["gc"] * 3)
    p2 = build_protocol("group", y2, groups=groups2, k=3)
    assert any("['c'] have no training rows in split" in w for w in p2.warnings)


# ------------------------------------------------------------------ errors


def test_folds_protocol_errors():
    y, folds, groups = dataset()
    with pytest.raises(SplitError, match="--cv folds needs a 'fold' column"):
        build_protocol("folds", y, groups=groups)
    partial = folds.copy()
    partial.iloc[[4, 9]] = pd.NA
    with pytest.raises(SplitError, match=r"2 row\(s\) have no fold \(first at data row 5\)"):
        build_protocol("folds", y, folds=partial)
    one = pd.Series([7] * len(y), dtype="Int64")
    with pytest.raises(SplitError, match=r"single fold \(7\): holding it out leaves a split without training data"):
        build_protocol("folds", y, folds=one)


def test_a_training_part_with_one_class_is_refused():
    # Class a is a single recording: the split that tests it trains on b alone.
    y = np.array(["a"] * 5 + ["b"] * 5, dtype=object)
    groups = np.array(["ra"] * 5 + [f"rb{i}" for i in range(5)])
    with pytest.raises(SplitError, match=r"training part of split\d holds only the class 'b'"):
        build_protocol("group", y, groups=groups, k=2)


def test_group_protocol_errors():
    y, _, groups = dataset()
    with pytest.raises(SplitError, match="--cv group needs a 'group' column"):
        build_protocol("group", y)
    blank = groups.astype(object).copy()
    blank[3] = ""
    with pytest.raises(SplitError, match=r"1 row\(s\) have no group \(first at data row 4\)"):
        build_protocol("group", y, groups=blank)
    with pytest.raises(SplitError, match="needs at least 50 groups, and the table has 40"):
        build_protocol("group", y, groups=groups, k=50)


@pytest.mark.parametrize("cv", ["stratified", "group"])
def test_class_rarer_than_splits_is_refused(cv):
    y, _, groups = dataset(n_groups=60)
    y = y.copy()
    y[:2] = "rare"
    groups = groups.copy()
    groups[:2] = "rare-rec"
    with pytest.raises(SplitError, match=rf"--cv {cv} needs at least 5 rows of every class, and class\(es\) 'rare' \(2 rows\) have fewer; use a smaller --k"):
        build_protocol(cv, y, groups=groups, k=5)


def test_random_needs_two_rows_per_class_and_enough_rows():
    y = np.array(["a"] * 10 + ["b"], dtype=object)
    with pytest.raises(SplitError, match=r"'b' \(1 row\)"):
        build_protocol("random", y)
    y = np.array(list("abcdef") * 2, dtype=object)
    with pytest.raises(SplitError, match="too few for one row of each of the 6 classes"):
        build_protocol("random", y)


def test_bad_options_are_usage_errors():
    y, _, _ = dataset()
    with pytest.raises(UsageError, match="--cv 'kfold' is not one of"):
        build_protocol("kfold", y)
    with pytest.raises(UsageError, match="--k 1 must be an integer >= 2"):
        build_protocol("stratified", y, k=1)


def test_predefined_folds_need_every_class_in_two_folds():
    y, folds, _ = dataset()
    # Two clips in two folds are enough, even with ten folds ...
    y = y.copy()
    y[:1] = "rare"
    y[np.flatnonzero(folds.to_numpy() != folds.iloc[0])[0]] = "rare"
    assert build_protocol("folds", y, folds=folds).n_splits == 10
    # ... and twelve clips in one fold are not.
    y2, folds2 = y.copy(), folds.copy()
    y2[-12:], folds2.iloc[-12:] = "single", 4
    with pytest.raises(SplitError, match=r"--cv folds needs every class in at least two folds, and "
                                         r"class\(es\) 'single' \(only in fold 4\) are not"):
        build_protocol("folds", y2, folds=folds2)


# ------------------------------------------------------------ inner splits


def _inner_data(n_groups: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n_groups)
    groups = np.repeat([f"rec{g}" for g in range(n_groups)], sizes)
    y = np.repeat([f"class{g % 3}" for g in range(n_groups)], sizes).astype(object)
    return y, groups


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_validation_split_never_puts_a_group_on_both_sides(seed):
    y, groups = _inner_data(seed=seed)
    train, val = validation_split(y, groups, 0.2, seed=seed)
    assert len(val) and not set(groups[train]) & set(groups[val])
    assert sorted(np.r_[train, val]) == list(range(len(y)))
    assert set(y[train]) == set(y), "every class is learnt"


def test_calibration_folds_keep_groups_whole_and_every_class_in_training():
    y, groups = _inner_data()
    folds = calibration_folds(y, groups, 3)
    assert len(folds) == 3
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert set(y[train]) == set(y)
    assert sorted(np.concatenate([test for _, test in folds])) == list(range(len(y)))


def test_calibration_folds_say_when_groups_cannot_be_kept_whole():
    y = np.array(["a"] * 6 + ["b"] * 6, dtype=object)
    groups = np.array(["ra"] * 6 + [f"rb{i}" for i in range(6)])  # class a is one recording
    with pytest.warns(UserWarning, match=r"calibration folds split clips of one recording: class\(es\) \['a'\]"):
        folds = calibration_folds(y, groups, 3)
    assert len(folds) == 3
    with pytest.raises(ValueError, match="class 'c' has a single training row"):
        calibration_folds(np.array(["a", "a", "c"]), None, 3)


# ---------------------------------------------------------------- holdout


def parts_of(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """train / validation / test for every row, about 60/20/20."""
    rng = np.random.default_rng(seed)
    return rng.choice(np.array(["train", "validation", "test"], dtype=object), size=len(y),
                      p=[0.6, 0.2, 0.2])


def test_holdout_fits_selects_and_reports_on_exactly_its_parts():
    y, folds, groups = dataset(n_groups=60)
    parts = parts_of(y)
    p = build_protocol("auto", y, folds=folds, groups=groups, parts=parts)
    assert p.name == "holdout" and p.n_splits == 1 and not p.leaky, "auto picks holdout before folds"
    (split,) = p.splits
    assert split.name == "holdout" and split.fold is None
    assert list(split.train) == list(np.flatnonzero(parts == "train"))
    assert list(split.validation) == list(np.flatnonzero(parts == "validation"))
    assert list(split.test) == list(np.flatnonzero(parts == "test"))
    assert "the table has a 'split' column" in p.reason and "choose on validation" in p.reason
    assert p.to_dict()["rows"] == {"train": len(split.train), "validation": len(split.validation),
                                   "test": len(split.test)}
    # Asked for another protocol, the split column is ignored.
    assert build_protocol("folds", y, folds=folds, parts=parts).name == "folds"
    assert all(s.validation is None for s in build_protocol("folds", y, folds=folds, parts=parts).splits)


def test_holdout_refuses_rows_outside_the_three_parts():
    y, folds, _ = dataset(n_groups=60)
    parts = parts_of(y)
    parts[[4, 9]] = ["", "dev"]
    with pytest.raises(SplitError, match=r"--cv auto chose holdout, but 2 row\(s\) have a 'split' "
                                         r"value that is not one of train, validation, test or excluded \(first "
                                         r"at data row 5; values \['', 'dev'\]"):
        build_protocol("auto", y, folds=folds, parts=parts)
    with pytest.raises(SplitError, match="needs rows with split 'test'"):
        build_protocol("holdout", y, parts=np.where(parts_of(y) == "test", "train", parts_of(y)))
    with pytest.raises(SplitError, match="needs a 'split' column"):
        build_protocol("holdout", y, folds=folds)


def test_holdout_without_validation_rows_says_how_it_chooses():
    y, _, groups = dataset(n_groups=60)
    parts = np.where(parts_of(y) == "validation", "train", parts_of(y))
    p = build_protocol("holdout", y, parts=parts)
    assert len(p.splits[0].validation) == 0
    assert any("no 'validation' rows" in w for w in p.warnings)
    shared = build_protocol("holdout", y, groups=groups, parts=parts_of(y))  # parts by row, not group
    assert any("have rows in more than one of train, validation and test" in w for w in shared.warnings)


# ------------------------------------------------------------ segment tables


def windows(n_clips: int = 48, per_clip: int = 4, seed: int = 0):
    """Labels, folds, groups, parts and clips of a segment table (windows of a clip share all)."""
    rng = np.random.default_rng(seed)
    clip = np.repeat([f"clip{c}" for c in range(n_clips)], per_clip)
    label = np.repeat([f"class{c % 3}" for c in range(n_clips)], per_clip).astype(object)
    fold = pd.Series(np.repeat([c % 4 + 1 for c in range(n_clips)], per_clip), dtype="Int64")
    group = np.repeat([f"rec{c // 2}" if c % 5 else "" for c in range(n_clips)], per_clip).astype(object)
    group = np.where(group == "", clip, group)  # FeatureTable.groups of a segment table
    part = np.repeat(rng.choice(["train", "validation", "test"], n_clips, p=[0.6, 0.2, 0.2]), per_clip)
    return label, fold, group, part.astype(object), clip


@pytest.mark.parametrize("cv", ["holdout", "folds", "group", "stratified"])
def test_windows_of_a_clip_never_straddle_a_split(cv):
    y, folds, groups, parts, clips = windows()
    p = build_protocol(cv, y, folds=folds, groups=groups, parts=parts, clips=clips, k=4)
    assert p.name == cv and not p.leaky
    for split in p.splits:
        sides = [split.train, split.test] + ([split.validation] if split.validation is not None else [])
        seen = [set(clips[rows]) for rows in sides]
        assert all(not a & b for i, a in enumerate(seen) for b in seen[i + 1:]), split.name
    if cv == "stratified":
        assert "stratified group 4-fold over clips" in p.reason


def test_random_splits_windows_and_says_so():
    y, *_, clips = windows()
    p = build_protocol("random", y, clips=clips)
    (split,) = p.splits
    assert set(clips[split.train]) & set(clips[split.test]), "the leak this protocol shows"
    assert p.leaky and "windows of one clip are split apart" in p.reason


def test_auto_on_a_segment_table_without_folds_groups_by_clip():
    y, _, _, _, clips = windows()
    p = build_protocol("auto", y, groups=clips, clips=clips, k=3)
    assert p.name == "group" and "else each window's clip" in p.reason
    assert_apart(p, clips)


# -------------------------------------------------------------- inner splits


def test_inner_splits_keep_whole_what_they_are_given():
    y, folds, groups = dataset(n_groups=60)
    folds, rows = folds.to_numpy(dtype=object), np.arange(len(y))
    by_fold = inner_splits(y, folds=folds, groups=groups)
    assert len(by_fold) == 2
    for train, test in by_fold:
        assert not set(folds[train]) & set(folds[test])  # whole predefined folds
    for train, test in inner_splits(y, groups=groups, n_splits=3):
        assert not set(groups[train]) & set(groups[test])
    for train, test in inner_splits(y):
        assert sorted(np.r_[train, test]) == list(rows)
    validation = np.zeros(len(y), bool)
    validation[::5] = True
    (train, test), = inner_splits(y, validation=validation)
    assert list(test) == list(np.flatnonzero(validation)) and list(train) == list(np.flatnonzero(~validation))
    # One remaining fold: whole groups instead.
    one = np.ones(len(y), dtype=object)
    for train, test in inner_splits(y, folds=one, groups=groups):
        assert not set(groups[train]) & set(groups[test])
    with pytest.raises(SplitError, match="needs at least two groups"):
        inner_splits(y, groups=np.full(len(y), "g"))


@pytest.mark.parametrize("cv", ["folds", "group", "stratified", "random"])
def test_a_protocol_splits_each_training_part_by_its_own_rules(cv):
    y, folds, groups = dataset(n_groups=60)
    groups = groups.astype(object)
    if cv != "group":                                    # (which refuses them)
        groups[::7] = ""                                 # rows without a recording
    protocol = build_protocol(cv, y, folds=folds, groups=groups, k=3)
    for split in protocol.splits:
        rows, inner = protocol.search_splits(split.train, seed=1)
        assert list(rows) == list(split.train)           # never a test row
        for train, test in inner:
            a, b = rows[train], rows[test]
            if cv == "folds":                            # whole predefined folds
                assert not set(folds.to_numpy()[a]) & set(folds.to_numpy()[b])
            if cv in ("folds", "group"):                 # whole recordings (a blank row is its own)
                named = groups != ""
                assert not set(groups[a][named[a]]) & set(groups[b][named[b]])
    assert protocol.recordings is not None and len(set(protocol.recordings)) == len(
        set(groups) - {""}) + int((groups == "").sum())
    assert not protocol.has_validation and protocol.validation is None


def test_a_holdout_protocol_chooses_on_its_validation_part():
    y, _, groups = dataset(n_groups=30)
    parts = np.array(["train", "validation", "test"], dtype=object)[np.arange(len(y)) % 3]
    protocol = build_protocol("holdout", y, parts=parts, groups=groups)
    assert protocol.has_validation and "validation accuracy" in protocol.selection_rule
    split = protocol.splits[0]
    rows, ((train, test),) = protocol.search_splits(split.train, split.validation)
    assert set(rows[train]) == set(split.train) and set(rows[test]) == set(split.validation)
    final_train, final_validation = protocol.final_rows(len(y))
    assert set(final_train) == set(split.train) | set(split.test)
    assert list(final_validation) == list(split.validation)
    no_validation = build_protocol("holdout", y, parts=np.where(parts == "validation", "train", parts))
    assert not no_validation.has_validation and "no validation rows" in no_validation.selection_rule
