"""Writing the demo dataset: :func:`make_demo_dataset` and the files it makes."""
from __future__ import annotations

import csv
import json
import operator
import os
from pathlib import Path

import joblib
import soundfile as sf

from ..errors import UsageError
from ..io.atomic import atomic_dir
from .plan import METADATA_COLUMNS, MIN_CLIPS, N_FOLDS, Clip, metadata_rows, plan_clips
from .synthesis import render

__all__ = ["MARKER", "make_demo_dataset"]

#: Marker file that says "this directory was generated and may be replaced".
MARKER = ".generated"


def make_demo_dataset(
    root, *, n_clips: int = 1000, seed: int = 0, jobs: int | None = None
) -> Path:
    """Write a synthetic dataset in the exact UrbanSound8K layout.

    Writes ``root/metadata/UrbanSound8K.csv`` (columns ``METADATA_COLUMNS``),
    the clips in ``root/audio/fold1`` ... ``root/audio/fold10`` (all ten
    folders exist) and the marker ``root/.generated``. The ten UrbanSound8K
    classes keep their real ``classID``; file names follow
    ``{fsID}-{classID}-{occurrence}-{slice}.wav``. Each fsID is one source
    recording (one draw of synthesis parameters, 1-8 slices) and all its
    slices share a fold. Durations are 0.5-4 s (mostly 4 s); formats are mixed
    (mostly 44.1 kHz stereo 16-bit, some 48 kHz 24-bit, 22.05 kHz mono 16-bit,
    11.025 kHz 8-bit and 32-bit float).

    The dataset is built in a staging folder beside ``root`` and swapped
    into place at the end (:func:`features.io.atomic.atomic_dir`), so an
    interrupted run never leaves a half-written dataset behind.

    Parameters
    ----------
    root : str or os.PathLike
        Directory to create. It must not exist, be empty, or hold a dataset
        previously generated here (it has the marker); that one is replaced.
    n_clips : int
        Number of clips, at least 10 (one per class). Class sizes stay within
        2x of each other (car_horn and gun_shot are the smallest).
    seed : int
        Non-negative seed. Same ``(n_clips, seed)`` gives a byte-identical
        metadata CSV and byte-identical audio files, whatever ``jobs`` is.
    jobs : int or None
        Worker processes; ``None`` or 0 means all cores, 1 runs in-process.

    Returns
    -------
    pathlib.Path
        ``root``, made absolute.

    Raises
    ------
    UsageError
        For a bad option, or when ``root`` is a file or a non-empty directory
        without the marker (the message names the directory).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> root = make_demo_dataset(tempfile.mkdtemp() + "/demo", n_clips=10, jobs=1)
    >>> pd.read_csv(root / "metadata" / "UrbanSound8K.csv").shape
    (10, 8)
    """
    n_clips, seed, jobs = _check_args(n_clips, seed, jobs)
    root = Path(os.path.abspath(root))  # so that root.parent is a real directory
    _check_root(root)
    clips = plan_clips(n_clips, seed)
    with atomic_dir(root) as tmp:
        for fold in range(1, N_FOLDS + 1):
            (tmp / "audio" / f"fold{fold}").mkdir(parents=True)
        (tmp / "metadata").mkdir()
        if jobs == 1:
            for clip in clips:
                _write_clip(clip, seed, str(tmp))
        else:
            joblib.Parallel(n_jobs=min(jobs, len(clips)), batch_size=8)(
                joblib.delayed(_write_clip)(clip, seed, str(tmp)) for clip in clips)
        _write_metadata(tmp / "metadata" / "UrbanSound8K.csv", clips)
        marker = {"generator": "features.demo.make_demo_dataset", "n_clips": n_clips, "seed": seed}
        (tmp / MARKER).write_text(json.dumps(marker, sort_keys=True) + "\n", encoding="utf-8")
        _check_root(root)  # it may have changed while we were generating
    return root


_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile command id


def _write_clip(clip: Clip, seed: int, root: str) -> None:
    """Render one clip and write it where the metadata says."""
    y = render(clip, seed)
    path = os.path.join(root, clip.relpath)
    with sf.SoundFile(path, "w", clip.fmt.samplerate, clip.fmt.channels, clip.fmt.subtype,
                      format="WAV") as f:
        if clip.fmt.subtype == "FLOAT":
            # libsndfile stamps float WAVs with a PEAK chunk holding the current
            # time, so two runs with the same seed would differ; drop the chunk.
            sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
        f.write(y)


def _write_metadata(path: Path, clips: list[Clip]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(METADATA_COLUMNS)
        writer.writerows(metadata_rows(clips))


def _check_args(n_clips, seed, jobs) -> tuple[int, int, int]:
    """Validate the options; return them as plain ints (jobs resolved to a count)."""
    def as_int(name, value):
        if isinstance(value, bool):
            raise UsageError(f"{name}={value!r} must be an integer")
        try:
            return operator.index(value)
        except TypeError:
            raise UsageError(f"{name}={value!r} must be an integer") from None

    n_clips, seed = as_int("n_clips", n_clips), as_int("seed", seed)
    if n_clips < MIN_CLIPS:
        raise UsageError(f"n_clips={n_clips} must be at least {MIN_CLIPS} (one clip per class)")
    if seed < 0:
        raise UsageError(f"seed={seed} must be a non-negative integer")
    jobs = 0 if jobs is None else as_int("jobs", jobs)
    if jobs < 0:
        raise UsageError(
            f"jobs={jobs} must be None or 0 (all cores) or a positive number of workers")
    return n_clips, seed, jobs or joblib.cpu_count()


def _check_root(root: Path) -> None:
    """Refuse to replace anything the generator did not make."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"demo dataset directory {root} exists and is not a directory; "
                         "pass a new or empty directory")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise UsageError(
            f"demo dataset directory {root} is not empty and has no {MARKER} marker, so it was "
            "not made by make_demo_dataset; refusing to overwrite it. Pass a new or empty "
            "directory, or remove this one yourself."
        )
