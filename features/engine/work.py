"""The unit of work: a batch of clips in, rows and error records out.

:func:`run_batch` is what every executor runs, in a worker process, on any
backend. It takes only small picklable arguments (an *analyser*: the
per-clip function with its frozen parameters, see
:mod:`features.analysers`; and the clips' locations), never touches the
checkpoint, and never raises for a bad clip: the clip becomes an error
record and the batch goes on. A clip that kills its process or never
returns is the driver's business (:mod:`features.engine.runner`).

The driver times clips through the worker's own record of which clip it is
on: a small file per task rewritten per clip on this machine
(:class:`FileProgress`), and on a Dask cluster a note kept in the worker's
memory that a watchdog thread reports only once a clip has run longer than
a threshold (:class:`DaskWatch`): no message per clip crosses the network.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..io.storage import redact_text

__all__ = ["BatchResult", "DaskWatch", "FileProgress", "Item", "run_batch"]


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


class DaskWatch:
    """Progress of Dask workers, reported only for clips that run long.

    The worker notes in its own memory which clip each of its tasks is on;
    a watchdog thread (one per worker process) reports a clip on the
    driver's event topic once it has run for ``after`` seconds, with how
    long it has run. A clip shorter than that costs no message at all, so
    the scheduler and the client are not woken once per clip.

    Parameters
    ----------
    topic : str
        The event topic the driver subscribes to.
    after : float
        Seconds a clip runs before it is reported (the driver times hung
        clips from then on; keep it well below the clip time limit).
    """

    def __init__(self, topic: str, after: float) -> None:
        self.topic = topic
        self.after = after

    @contextlib.contextmanager
    def reporter(self, key: str):
        from distributed import get_worker

        watchdog = _watchdog(get_worker(), self.topic, self.after)
        try:
            yield lambda index: watchdog.note(key, index)
        finally:
            watchdog.done(key)


class _Watchdog:
    """The clip each task of this worker is on, reported to the driver when it runs long."""

    def __init__(self, worker: Any, topic: str, after: float) -> None:
        self.worker, self.topic, self.after = worker, topic, after
        self.current: dict[str, list] = {}  # task key -> [clip index, start (monotonic), reported]
        self.tick = max(0.05, min(1.0, after / 4))
        threading.Thread(target=self._watch, name=f"clip-watchdog-{topic}", daemon=True).start()

    def note(self, key: str, index: int) -> None:
        self.current[key] = [int(index), time.monotonic(), False]

    def done(self, key: str) -> None:
        self.current.pop(key, None)

    def _watch(self) -> None:
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            for key, entry in list(self.current.items()):
                index, started, reported = entry
                if not reported and now - started >= self.after:
                    entry[2] = True
                    self.worker.log_event(self.topic, [key, index, now - started])


_WATCHDOGS: dict[tuple[int, str], _Watchdog] = {}
_WATCHDOGS_LOCK = threading.Lock()


def _watchdog(worker: Any, topic: str, after: float) -> _Watchdog:
    """The watchdog of ``worker`` for ``topic``, started on first use."""
    with _WATCHDOGS_LOCK:
        key = (id(worker), topic)
        if key not in _WATCHDOGS:
            _WATCHDOGS[key] = _Watchdog(worker, topic, after)
        return _WATCHDOGS[key]


@contextlib.contextmanager
def _no_reporter(key: str):
    yield lambda index: None


def run_batch(analyser: Any, items: Sequence[Item], key: str = "",
              progress: FileProgress | DaskWatch | None = None) -> BatchResult:
    """Load and analyse a batch of clips; a bad clip becomes an error, never an exception.

    Parameters
    ----------
    analyser : FeatureAnalyser or PatchAnalyser
        The per-clip function and its parameters (:mod:`features.analysers`):
        ``analyse(location, shown, stage)`` gives a clip's rows, ``width``
        the values per row.
    items : sequence of Item
    key : str
        The task's key, under which progress is reported.
    progress : FileProgress or DaskWatch, optional
        Where to say which clip is being analysed (the driver times clips).

    Returns
    -------
    BatchResult
    """
    ok: list[tuple[int, np.ndarray, Any, Any]] = []
    errors: list[tuple[int, tuple]] = []
    report_to = progress.reporter if progress is not None else _no_reporter
    _tune_malloc()
    with _single_thread(), report_to(key) as report:
        for item in items:
            report(item.index)
            stage = ["load"]
            try:
                rows, info = analyser.analyse(item.location, item.shown, stage)
            except Exception as exc:  # noqa: BLE001 - one bad clip must not stop the batch
                reason = getattr(exc, "reason", None) or f"unexpected {type(exc).__name__}"
                # A library's message may quote the clip's URL, credentials and all.
                message = redact_text(str(exc) or repr(exc))
                errors.append((item.index, (item.shown, None, stage[0], type(exc).__name__,
                                            message, reason)))
                continue
            ok.extend((item.index, vec, info, window) for vec, window in rows)
    batch = _pack(ok, errors, analyser.width)
    del ok
    _give_memory_back()
    return batch


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


def warm_up(analyser: Any) -> None:
    """Import what a batch needs, so the first batch does not pay for it."""
    analyser.warm_up()
