"""Fixtures shared by the whole suite: a small demo dataset and a WAV writer."""

from pathlib import Path

import pytest
import soundfile as sf

DEMO_CLIPS = 60
DEMO_SEED = 0


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """Root of a 60-clip synthetic UrbanSound8K-style dataset (seed 0), built once."""
    from features.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("demo") / "demo"
    return make_demo_dataset(root, n_clips=DEMO_CLIPS, seed=DEMO_SEED, jobs=1)


@pytest.fixture
def write_wav():
    """Factory ``write_wav(path, y, sr, subtype="PCM_16") -> Path``.

    Creates the parent folders and writes ``y`` (shape ``(n,)`` or
    ``(n, channels)``) with soundfile; the format follows the extension.
    """
    def write(path, y, sr, subtype="PCM_16") -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, y, sr, subtype=subtype)
        return path

    return write
