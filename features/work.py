"""The unit of work: a batch of clips in, feature rows and error records out.

:func:`run_batch` is what every executor runs, in a worker process, on any
backend. It takes only small picklable arguments (the parameters and the
clips' locations), never touches the checkpoint, and never raises for a bad
clip: the clip becomes an error record and the batch goes on. A clip that
kills its process or never returns is the driver's business
(:mod:`features.runner`).

Tests can make chosen clips misbehave through the environment variable
:data:`FAULTS_ENV` (JSON) of the process that drives the run, which hands
it to every task; nothing else sets it::

    {"crash": ["bad.wav"],    # the worker dies of SIGSEGV on clips whose path contains it
     "kill": ["oom.wav"],     # ... of SIGKILL (as from the out-of-memory killer)
     "stall": ["slow.wav"],   # the clip never returns
     "raise": ["odd.wav"],    # computing its features raises ZeroDivisionError
     "delay": 0.05,           # every clip takes this much longer (to stop a run midway)
     "commit_crash_after": 2} # the driver dies after moving 2 output files into place
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import BadAudioError
from .params import FeatureParams, PatchParams
from .storage import redact_text

__all__ = ["FAULTS_ENV", "BatchResult", "DaskProgress", "FileProgress", "Item", "run_batch"]

FAULTS_ENV = "SOUNDFEATURES_TEST_FAULTS"


@dataclasses.dataclass(frozen=True)
class Item:
    """One clip to analyse.

    Attributes
    ----------
    index : int
        Position of the clip in the dataset (the table is sorted by it).
    location : str
        Where the worker opens it: a local path or a URL.
    shown : str
        How errors name it (the path relative to the dataset root).
    size : int
        File size in bytes (sets the clip's time limit); -1 if unknown.
    """

    index: int
    location: str
    shown: str
    size: int = -1


@dataclasses.dataclass
class BatchResult:
    """Results of one batch: features of the good clips, errors of the bad ones.

    Errors travel as plain tuples ``(index, (path, row, stage, error_type,
    message, reason))`` so that workers never import the dataset code.
    """

    indices: np.ndarray  # int64 [shape=(n_rows,)], clip index of each row, dataset order
    features: np.ndarray  # float64 [shape=(n_rows, n_features)]
    duration_s: np.ndarray  # float64 [shape=(n_rows,)]
    orig_sample_rate: np.ndarray  # int64 [shape=(n_rows,)]
    orig_channels: np.ndarray  # int64 [shape=(n_rows,)]
    errors: list[tuple[int, tuple]]
    # With FeatureParams.segment, one row per window: its index and span (s).
    segment: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, np.int64))
    segment_start_s: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))
    segment_end_s: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))

    @property
    def n_clips(self) -> int:
        return len(np.unique(self.indices)) + len(self.errors)

    def all_indices(self) -> list[int]:
        """Every clip index of the batch, good or bad, once each."""
        return [*np.unique(self.indices).tolist(), *(i for i, _ in self.errors)]

    @classmethod
    def of_errors(cls, errors: list[tuple[int, tuple]], n_features: int) -> BatchResult:
        """A result holding only error records (a crash or a timeout)."""
        return _pack([], errors, n_features)


_COMPUTERS: dict[str, Any] = {}


def _computer(params: FeatureParams) -> Any:
    """This process's FeatureComputer for ``params`` (filter banks built once)."""
    key = params.key()
    if key not in _COMPUTERS:
        from .compute import FeatureComputer

        _COMPUTERS[key] = FeatureComputer(params)
    return _COMPUTERS[key]


class FileProgress:
    """Progress of local workers: one small file per running task, rewritten per clip.

    The file holds the index of the clip being analysed and when it began
    (this machine's clock), so the driver can time every clip.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder

    @contextlib.contextmanager
    def reporter(self, key: str):
        fd = os.open(os.path.join(self.folder, key), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            yield lambda index: os.pwrite(fd, f"{index:20d} {time.time():20.3f}".encode(), 0)
        finally:
            os.close(fd)

    def read(self, key: str) -> tuple[int, float] | None:
        """(clip index, start time) last reported by task ``key``, if any."""
        try:
            with open(os.path.join(self.folder, key), "rb") as f:
                index, started = f.read(41).split()
            return int(index), float(started)
        except (OSError, ValueError):
            return None

    def forget(self, key: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.folder, key))


class DaskProgress:
    """Progress of Dask workers: an event per clip on a topic the driver subscribes to."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    @contextlib.contextmanager
    def reporter(self, key: str):
        from distributed import get_worker

        worker = get_worker()
        yield lambda index: worker.log_event(self.topic, [key, int(index)])


@contextlib.contextmanager
def _no_reporter(key: str):
    yield lambda index: None


def run_batch(params: FeatureParams | PatchParams, items: Sequence[Item], key: str = "",
              progress: FileProgress | DaskProgress | None = None,
              faults: dict[str, Any] | None = None) -> BatchResult:
    """Load and analyse a batch of clips; a bad clip becomes an error, never an exception.

    Parameters
    ----------
    params : FeatureParams or PatchParams
        Feature vectors (one row per clip, or per window) or log-mel patches.
    items : sequence of Item
    key : str
        The task's key, under which progress is reported.
    progress : FileProgress or DaskProgress, optional
        Where to say which clip is being analysed (the driver times clips).
    faults : dict, optional
        Misbehaviour that tests ask for (see :data:`FAULTS_ENV`).

    Returns
    -------
    BatchResult
    """
    analyse = _patch_rows if isinstance(params, PatchParams) else _feature_rows
    ok: list[tuple[int, np.ndarray, Any, Any]] = []
    errors: list[tuple[int, tuple]] = []
    report_to = progress.reporter if progress is not None else _no_reporter
    _tune_malloc()
    with _single_thread(), report_to(key) as report:
        for item in items:
            report(item.index)
            stage = ["load"]
            try:
                if faults:
                    _inject(faults, item.shown)
                rows, info = analyse(item, params, stage, faults)
            except Exception as exc:  # noqa: BLE001 - one bad clip must not stop the batch
                reason = getattr(exc, "reason", None) or f"unexpected {type(exc).__name__}"
                # A library's message may quote the clip's URL, credentials and all.
                message = redact_text(str(exc) or repr(exc))
                errors.append((item.index, (item.shown, None, stage[0], type(exc).__name__,
                                            message, reason)))
                continue
            ok.extend((item.index, vec, info, window) for vec, window in rows)
    batch = _pack(ok, errors, row_width(params))
    del ok
    _give_memory_back()
    return batch


def row_width(params: FeatureParams | PatchParams) -> int:
    """Values per row of a batch's ``features``."""
    if isinstance(params, PatchParams):
        from .patches import patch_width

        return patch_width(params)
    return len(_computer(params).columns)


def _feature_rows(item: Item, params: FeatureParams, stage: list[str], faults: Any):
    """Feature vectors of one clip: one row, or one per window; and the source's facts."""
    from .audio import LongClip, read_clip
    from .segments import windows

    computer = _computer(params)
    y, info = read_clip(item.location, params)
    stage[0] = "features"
    if faults and any(part in item.shown for part in faults.get("raise", ())):
        raise ZeroDivisionError("boom")
    if params.segment is None:
        vec = computer.compute_blocks(y.blocks) if isinstance(y, LongClip) else computer.compute(y)
        return [(_finite(vec, item.shown), None)], info
    blocks = y.blocks() if isinstance(y, LongClip) else [y]
    return [(_finite(computer.compute(w.samples), item.shown), (w.index, w.start_s, w.end_s))
            for w in windows(blocks, params)], info


def _patch_rows(item: Item, params: PatchParams, stage: list[str], faults: Any):
    """The log-mel patch of one clip (flattened), and the source's facts."""
    from .patches import patch_row

    vec, info = patch_row(item.location, params, stage)
    return [(_finite(vec, item.shown).astype(np.float32), None)], info


def _finite(vec: np.ndarray, shown: str) -> np.ndarray:
    vec = np.asarray(vec)
    vec = vec if vec.dtype == np.float32 else vec.astype(np.float64)
    if not np.all(np.isfinite(vec)):
        raise BadAudioError(f"{shown}: features are not finite (NaN or inf)",
                            reason="features are not finite")
    return vec


def _pack(ok: list[tuple[int, np.ndarray, Any, Any]], errors: list, n_features: int) -> BatchResult:
    windows = [w for *_, w in ok if w is not None]
    return BatchResult(
        indices=np.array([i for i, *_ in ok], dtype=np.int64),
        features=(np.vstack([v for _, v, *_ in ok]) if ok else np.empty((0, n_features))),
        duration_s=np.array([a.duration_s for _, _, a, _ in ok], dtype=np.float64),
        orig_sample_rate=np.array([a.orig_sample_rate for _, _, a, _ in ok], dtype=np.int64),
        orig_channels=np.array([a.orig_channels for _, _, a, _ in ok], dtype=np.int64),
        errors=errors,
        segment=np.array([w[0] for w in windows], dtype=np.int64),
        segment_start_s=np.array([w[1] for w in windows], dtype=np.float64),
        segment_end_s=np.array([w[2] for w in windows], dtype=np.float64),
    )


def _single_thread() -> contextlib.AbstractContextManager:
    # One BLAS/OpenMP thread per worker: the workers already use every core,
    # more threads only fight for them (and the numbers stay identical
    # whatever the number of workers).
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


# glibc's mallopt parameters (malloc.h) and the values it would reach by
# itself: arrays above 32 MB (long-file blocks) are mapped and unmapped,
# smaller ones reuse the heap.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 1024 * 1024
_TRIM_THRESHOLD = 2 * _MMAP_THRESHOLD


@functools.cache
def _libc():
    """glibc through ctypes, or None (another C library: nothing to tune)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@functools.cache
def _tune_malloc() -> None:
    """Fix glibc's allocator thresholds where it would put them itself (once per process).

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
    default ``pre-spawn-environ``). Setting any such variable turns off
    glibc's dynamic thresholds, so every array above 128 kB (each STFT) is
    mapped and unmapped again: on this workload that costs 40% of the
    throughput in page faults. Memory goes back to the system after each
    batch instead (:func:`_give_memory_back`).
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)


def _give_memory_back() -> None:
    """Return the heap's free pages to the system, so a long-lived worker does not keep a peak."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def warm_up() -> None:
    """Import what a batch needs, so the first batch does not pay for it."""
    from . import audio, compute  # noqa: F401


def injected_faults() -> dict[str, Any] | None:
    """The faults tests asked for in :data:`FAULTS_ENV`, or None (always, outside tests)."""
    text = os.environ.get(FAULTS_ENV, "")
    return json.loads(text) if text else None


def _inject(faults: dict[str, Any], shown: str) -> None:
    """Misbehave on purpose, as :data:`FAULTS_ENV` asks (tests only)."""
    if faults.get("delay"):
        time.sleep(float(faults["delay"]))
    if any(part in shown for part in faults.get("crash", ())):
        os.kill(os.getpid(), signal.SIGSEGV)
    if any(part in shown for part in faults.get("kill", ())):
        os.kill(os.getpid(), signal.SIGKILL)
    if any(part in shown for part in faults.get("stall", ())):
        while True:
            time.sleep(3600)
