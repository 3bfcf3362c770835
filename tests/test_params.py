import numpy as np
import pytest

from features.errors import FeaturesError, UsageError
from features.params import FeatureParams, Preset

GOLDEN_KEY = "84a0482a2acf1352"


def test_defaults_follow_librosa_and_preset():
    p = FeatureParams()
    assert (p.sr, p.n_fft, p.hop_length, p.n_mfcc) == (22050, 2048, 512, 40)
    assert FeatureParams(preset="gtzan").n_mfcc == 20
    assert FeatureParams(preset="gtzan").preset is Preset.GTZAN


def test_equal_parameters_have_one_golden_key():
    # Pinned: a change here invalidates every checkpoint, table and model key.
    assert FeatureParams().key() == GOLDEN_KEY
    assert FeatureParams(duration=3).key() == FeatureParams(duration=3.0).key()
    assert FeatureParams(offset=0).key() == FeatureParams().key()
    assert FeatureParams(sr=np.int64(22050)).key() == FeatureParams().key()
    assert FeatureParams(n_mfcc=40).key() == FeatureParams().key()  # the preset's default
    assert FeatureParams(preset=Preset.GTZAN).key() == FeatureParams(preset="gtzan").key()
    assert FeatureParams(duration=3).duration == 3.0 and type(FeatureParams(duration=3).duration) is float


def test_round_trip_and_key_stability():
    p = FeatureParams(sr=16000, duration=3.0, fixed_length=3.0)
    q = FeatureParams.from_dict(p.to_dict())
    assert q == p
    assert q.key() == p.key()
    assert FeatureParams(sr=16000).key() != FeatureParams().key()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sr": 0}, "sr=0 must be a positive integer"),
        ({"n_fft": 1.5}, "n_fft=1.5 must be a positive integer"),
        ({"preset": "mel"}, "preset='mel' is not one of: default, gtzan"),
        ({"offset": -1.0}, "offset=-1.0 must be >= 0"),
        ({"duration": 0}, "duration=0 must be a positive number"),
        ({"duration": float("inf")}, "duration=inf must be a finite number"),
        ({"offset": float("nan")}, "offset=nan must be a finite number"),
        ({"fixed_length": "3"}, "fixed_length='3' must be a number of seconds"),
        ({"sr": True}, "sr=True must be a positive integer"),
    ],
)
def test_bad_values_are_named(kwargs, match):
    with pytest.raises(UsageError, match=match):
        FeatureParams(**kwargs)


def test_unknown_key_rejected_and_errors_catchable_as_builtins():
    with pytest.raises(ValueError, match="unknown feature parameter"):
        FeatureParams.from_dict({"hop": 1})
    assert issubclass(UsageError, FeaturesError)
