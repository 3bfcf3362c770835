"""Run the feature extractor over a dataset: parallel, resumable, visible.

:func:`extract_dataset` discovers the clips, splits the unfinished ones into
batches and runs them on joblib's loky workers (each worker builds its
:class:`~features.compute.FeatureComputer` once). Every finished batch is
saved under ``OUT/.checkpoint/`` so a run stopped by Ctrl-C or ``kill -9``
resumes with the same command; the checkpoint is keyed by the feature
parameters and by the clip list, so changing either starts afresh. A clip
that cannot be read or analysed becomes one row of ``errors.csv``; the run
goes on. The final table is in dataset order and byte-identical whatever
the number of workers.

:func:`extract_files` computes features of loose files (used by predict).
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import importlib.metadata
import itertools
import json
import math
import os
import platform
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import BadAudioError, UsageError
from .params import FeatureParams

# pandas and the table writers are imported inside the functions that run in
# the parent process: worker processes then start without them (faster start-up).
if TYPE_CHECKING:
    import pandas as pd

CHECKPOINT_DIR = ".checkpoint"
MAX_BATCH = 64
# Batches per worker: enough that the bar moves smoothly and the last batches
# do not leave a worker idle for long, few enough that per-task cost is small.
BATCHES_PER_WORKER = 8

_Item = tuple[int, str, str]  # (clip index, path to open, path to report)


class ExtractionInterrupted(KeyboardInterrupt):
    """Ctrl-C during extraction; finished batches stay in the checkpoint.

    Subclasses :class:`KeyboardInterrupt` so plain ``except KeyboardInterrupt``
    still catches it.

    Attributes
    ----------
    done, total : int
        Clips finished (saved in the checkpoint) and clips in the dataset.
    """

    def __init__(self, done: int, total: int) -> None:
        self.done = done
        self.total = total
        super().__init__(
            f"interrupted: {done} of {total} clips done; "
            "run the same command again to resume"
        )


@dataclasses.dataclass(frozen=True)
class ExtractResult:
    """What :func:`extract_dataset` wrote and how it went.

    Attributes
    ----------
    out : Path
        Output folder.
    tables : dict of str -> Path
        Written tables by format (``csv``, ``parquet``).
    schema, metadata, errors_csv : Path
        ``features.schema.csv``, ``features.json`` and ``errors.csv``.
    n_total, n_ok, n_failed : int
        Clips (plus unusable metadata rows) seen, in the table, in errors.csv.
    n_reused : int
        Clips taken from the checkpoint of an interrupted run.
    errors : list of ErrorRecord
        Everything in errors.csv.
    wall_seconds : float
        Wall time of the whole call.
    strict : bool
        Whether any failure should fail the run (see :attr:`exit_code`).
    """

    out: Path
    tables: dict[str, Path]
    schema: Path
    metadata: Path
    errors_csv: Path
    n_total: int
    n_ok: int
    n_failed: int
    n_reused: int
    errors: list[Any]
    wall_seconds: float
    strict: bool = False

    @property
    def table(self) -> Path:
        """The first written table (CSV if written)."""
        return next(iter(self.tables.values()))

    @property
    def exit_code(self) -> int:
        """0, or 3 when ``strict`` and any clip failed."""
        return 3 if self.strict and self.n_failed else 0

    def summary(self) -> str:
        """One line: counts and where the table and the errors are."""
        return (
            f"{self.n_ok} clips ok, {self.n_failed} failed; "
            f"table: {self.table}; errors: {self.errors_csv}"
        )


@dataclasses.dataclass
class _Batch:
    """Results of one batch of clips (what a worker returns)."""

    indices: np.ndarray  # int64 [shape=(n_ok,)], clip indices in dataset order
    features: np.ndarray  # float64 [shape=(n_ok, n_features)]
    duration_s: np.ndarray  # float64 [shape=(n_ok,)]
    orig_sample_rate: np.ndarray  # int64 [shape=(n_ok,)]
    orig_channels: np.ndarray  # int64 [shape=(n_ok,)]
    errors: list[tuple[int, Any]]  # (clip index, ErrorRecord); workers send plain tuples

    @property
    def n_clips(self) -> int:
        return len(self.indices) + len(self.errors)


# ----------------------------------------------------------------------- workers

_COMPUTERS: dict[str, Any] = {}


def _computer(params: FeatureParams) -> Any:
    """This process's FeatureComputer for ``params`` (filter banks built once)."""
    key = params.key()
    if key not in _COMPUTERS:
        from .compute import FeatureComputer

        _COMPUTERS[key] = FeatureComputer(params)
    return _COMPUTERS[key]


def _single_thread() -> contextlib.AbstractContextManager:
    # One BLAS/OpenMP thread per worker: the workers already use every core,
    # more threads only fight for them (and the numbers stay identical
    # between --jobs 1 and --jobs N).
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _init_worker(parent: int) -> None:
    """Set up a loky worker process when it starts (before any batch).

    Ctrl-C is left to the parent, which stops the workers itself. And since
    loky keeps an orphaned worker alive, idle, for minutes after its parent
    dies (``kill -9``), a watcher thread ends the worker as soon as that
    happens. ``parent`` is passed in, not read here: the parent may already
    be gone when a slow-starting worker gets this far.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes are spawned.

    A worker inherits the ignored signal, so a Ctrl-C while it is still
    starting up (before :func:`_init_worker` runs) cannot make it print a
    traceback; the parent alone handles Ctrl-C.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be changed from the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_batch(params: FeatureParams, items: Sequence[_Item]) -> _Batch:
    """Load and analyse a batch of clips; a bad clip becomes an error, never a crash."""
    from .audio import load_audio

    computer = _computer(params)
    ok: list[tuple[int, np.ndarray, Any]] = []
    errors: list[tuple[int, tuple[str, None, str, str, str]]] = []
    with _single_thread():
        for index, path, shown in items:
            stage = "load"
            try:
                y, info = load_audio(path, params)
                stage = "features"
                vec = np.asarray(computer.compute(y), dtype=np.float64)
                if not np.all(np.isfinite(vec)):
                    raise BadAudioError(f"{shown}: features are not finite (NaN or inf)")
            except Exception as exc:  # noqa: BLE001 - one bad clip must not stop the batch
                message = str(exc) or repr(exc)
                errors.append((index, (shown, None, stage, type(exc).__name__, message)))
                continue
            ok.append((index, vec, info))
    return _pack(ok, errors, len(computer.columns))


def _pack(ok: list[tuple[int, np.ndarray, Any]], errors: list, n_features: int) -> _Batch:
    return _Batch(
        indices=np.array([i for i, _, _ in ok], dtype=np.int64),
        features=(np.vstack([v for _, v, _ in ok]) if ok else np.empty((0, n_features))),
        duration_s=np.array([a.duration_s for _, _, a in ok], dtype=np.float64),
        orig_sample_rate=np.array([a.orig_sample_rate for _, _, a in ok], dtype=np.int64),
        orig_channels=np.array([a.orig_channels for _, _, a in ok], dtype=np.int64),
        errors=errors,
    )


def _resolve_jobs(jobs: int | None) -> int:
    if jobs is None or jobs == 0:
        from joblib import cpu_count

        return max(1, cpu_count())
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise UsageError(f"jobs={jobs!r} must be 0 (all cores) or a positive number of workers")
    return jobs


def _batches(items: Sequence[_Item], jobs: int, batch_size: int | None) -> list[list[_Item]]:
    if batch_size is None:
        batch_size = math.ceil(len(items) / (jobs * BATCHES_PER_WORKER))
        batch_size = min(MAX_BATCH, max(1, batch_size))
    elif isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size={batch_size!r} must be a positive integer")
    return [list(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


def _run_all(params: FeatureParams, batches: list[list[_Item]], jobs: int) -> Iterator[_Batch]:
    """Yield batch results as they finish (in-process when one worker is enough).

    With several workers, this process computes batches too until the first
    worker result is in: loky's workers take about a second to start (a
    fresh interpreter importing numpy, scipy, soundfile), which would
    otherwise be lost, and small datasets then barely wait for them.
    """
    if jobs == 1 or len(batches) <= 1:
        for batch in batches:
            yield _run_batch(params, batch)
        return
    from joblib import Parallel, delayed, parallel_config

    n_workers = min(jobs, len(batches))
    queue = collections.deque(batches)
    warm = threading.Event()

    def tasks() -> Iterator[Any]:
        # joblib asks for one task per worker up front, then one more each time a
        # task is done: the (n_workers + 1)-th request means the pool is running.
        for n in itertools.count():
            if n >= n_workers:
                warm.set()
            try:
                batch = queue.popleft()  # atomic: this process takes from the same queue
            except IndexError:
                return
            yield delayed(_run_batch)(params, batch)

    with parallel_config(backend="loky", inner_max_num_threads=1), _sigint_ignored():
        # The workers are spawned in this call; they inherit the ignored SIGINT.
        results = Parallel(
            n_jobs=n_workers, return_as="generator_unordered", batch_size=1,
            pre_dispatch="n_jobs", initializer=_init_worker, initargs=(os.getpid(),),
        )(tasks())
    try:
        while not warm.is_set():
            try:
                batch = queue.popleft()
            except IndexError:
                break
            yield _run_batch(params, batch)
        # Not `yield from`: that would close `results` outside catch_warnings below.
        for result in results:  # noqa: UP028
            yield result
    finally:
        with warnings.catch_warnings():
            # Closing early (Ctrl-C) makes joblib warn that tasks were cancelled: we know.
            warnings.simplefilter("ignore")
            results.close()


# -------------------------------------------------------------------- checkpoint


class _Checkpoint:
    """Finished batches of one run, saved as small ``.npz`` files.

    The folder name joins the parameter key and a hash of the clip list
    (paths, sizes, modification times), so changed parameters or a changed
    dataset never reuse stale numbers.
    """

    def __init__(self, out: Path, param_key: str, clips_key: str) -> None:
        self.base = out / CHECKPOINT_DIR
        self.dir = self.base / f"{param_key}-{clips_key}"

    def open(self) -> None:
        """Create the folder, dropping checkpoints of other parameters or clip lists."""
        if self.base.is_dir():
            for stale in self.base.iterdir():
                if stale != self.dir:
                    _remove(stale)
        self.dir.mkdir(parents=True, exist_ok=True)

    def load(self, n_total: int, n_features: int) -> list[_Batch]:
        """Batches saved by earlier runs (unreadable files are dropped)."""
        batches, seen = [], set()
        for path in sorted(self.dir.glob("batch-*.npz")):
            try:
                batch = _read_batch(path)
            except (OSError, ValueError, KeyError, TypeError):
                _remove(path)  # cannot happen with atomic writes, but recomputing is safe
                continue
            indices = [int(i) for i in [*batch.indices, *(i for i, _ in batch.errors)]]
            valid = (
                batch.features.shape == (len(batch.indices), n_features)
                and all(0 <= i < n_total for i in indices)
                and seen.isdisjoint(indices)  # e.g. two runs writing into one folder
            )
            if valid:
                batches.append(batch)
                seen.update(indices)
            else:
                _remove(path)
        return batches

    def save(self, batch: _Batch) -> None:
        """Save one finished batch atomically."""
        if batch.n_clips == 0:
            return
        first = min([*batch.indices.tolist(), *(i for i, _ in batch.errors)])
        from .atomic import atomic_path

        target = self.dir / f"batch-{first:08d}.npz"
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                indices=batch.indices,
                features=batch.features,
                duration_s=batch.duration_s,
                orig_sample_rate=batch.orig_sample_rate,
                orig_channels=batch.orig_channels,
                error_indices=np.array([i for i, _ in batch.errors], dtype=np.int64),
                errors_json=np.array(
                    json.dumps([dataclasses.asdict(e) for _, e in batch.errors])
                ),
            )

    def remove(self) -> None:
        """Delete the checkpoint (after the final table is written)."""
        _remove(self.dir)
        with contextlib.suppress(OSError):
            self.base.rmdir()


def _read_batch(path: Path) -> _Batch:
    from .datasets import ErrorRecord

    with np.load(path, allow_pickle=False) as z:
        records = [ErrorRecord(**d) for d in json.loads(str(z["errors_json"]))]
        return _Batch(
            indices=z["indices"].astype(np.int64),
            features=z["features"].astype(np.float64),
            duration_s=z["duration_s"],
            orig_sample_rate=z["orig_sample_rate"],
            orig_channels=z["orig_channels"],
            errors=list(zip(z["error_indices"].tolist(), records, strict=True)),
        )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _clips_key(root: Path, paths: Sequence[str]) -> str:
    """Hash of the clip list and each file's size and mtime."""
    h = hashlib.sha256()
    for rel in paths:
        try:
            st = os.stat(root / rel)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{rel}\t{stamp}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------ driver


def _progress(total: int, initial: int, quiet: bool) -> Any:
    from tqdm.auto import tqdm

    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tqdm(
        total=total, initial=initial, unit="clips", desc="features", file=sys.stderr,
        disable=quiet or not tty, dynamic_ncols=True, smoothing=0.1,
    )


def _compute(
    params: FeatureParams,
    items: Sequence[_Item],
    jobs: int,
    batch_size: int | None,
    *,
    done: list[_Batch],
    checkpoint: _Checkpoint | None = None,
    quiet: bool = True,
) -> list[_Batch]:
    """Run every item not already in ``done``; return ``done`` plus the new batches."""
    from .datasets import ErrorRecord

    finished = {int(i) for b in done for i in [*b.indices, *(i for i, _ in b.errors)]}
    todo = [item for item in items if item[0] not in finished]
    results = list(done)
    with _progress(len(items), len(items) - len(todo), quiet) as bar:
        try:
            for batch in _run_all(params, _batches(todo, jobs, batch_size), jobs):
                batch.errors = [(i, ErrorRecord(*e)) for i, e in batch.errors]
                if checkpoint is not None:
                    checkpoint.save(batch)
                results.append(batch)
                bar.update(batch.n_clips)
        except KeyboardInterrupt:
            raise ExtractionInterrupted(
                sum(b.n_clips for b in results), len(items)
            ) from None
    return results


def _merge(batches: Iterable[_Batch], n_features: int) -> tuple[_Batch, list[Any]]:
    """All batches as one, sorted by clip index; errors sorted likewise."""
    batches = list(batches)
    order_src = np.concatenate([b.indices for b in batches] or [np.empty(0, np.int64)])
    order = np.argsort(order_src, kind="stable")

    def cat(name: str, dtype: Any) -> np.ndarray:
        parts = [getattr(b, name) for b in batches]
        return np.concatenate(parts).astype(dtype)[order] if parts else np.empty(0, dtype)

    features = (
        np.vstack([b.features for b in batches])[order]
        if batches else np.empty((0, n_features))
    )
    merged = _Batch(
        indices=order_src[order],
        features=features.reshape(len(order), n_features),
        duration_s=cat("duration_s", np.float64),
        orig_sample_rate=cat("orig_sample_rate", np.int64),
        orig_channels=cat("orig_channels", np.int64),
        errors=[],
    )
    errors = [e for _, e in sorted((pair for b in batches for pair in b.errors), key=lambda p: p[0])]
    return merged, errors


def _versions() -> dict[str, str]:
    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    names = ("numpy", "librosa", "soundfile", "soxr", "pandas", "pyarrow", "joblib", "scipy")
    return {"python": platform.python_version(), **{n: dist(n) for n in names},
            "features": dist("soundfeatures")}


def _check_columns(clips: pd.DataFrame, feature_names: Sequence[str]) -> None:
    from . import table as _table

    taken = set(_table.AUDIO_COLUMNS) | set(feature_names)
    clash = [c for c in clips.columns[len(_table.IDENTIFIER_COLUMNS):] if c in taken]
    if clash:
        raise UsageError(
            f"metadata column(s) {clash} clash with columns the extractor adds; "
            "rename them in the metadata/manifest CSV"
        )


def extract_dataset(
    root: str | os.PathLike,
    out: str | os.PathLike,
    params: FeatureParams | None = None,
    *,
    layout: str | None = None,
    manifest: str | os.PathLike | None = None,
    jobs: int | None = 0,
    formats: Sequence[str] | str = ("csv", "parquet"),
    strict: bool = False,
    quiet: bool = False,
    batch_size: int | None = None,
) -> ExtractResult:
    """Extract one row of features per clip of a dataset and write the outputs.

    Writes, in ``out``: ``features.csv`` and/or ``features.parquet``,
    ``features.schema.csv`` (data dictionary), ``features.json``
    (provenance) and ``errors.csv`` (always; header only when clean).

    Parameters
    ----------
    root : path
        Dataset folder.
    out : path
        Output folder (created if needed).
    params : FeatureParams, optional
        Feature parameters (default ``FeatureParams()``).
    layout : str, optional
        ``urbansound8k``, ``gtzan``, ``folders`` or ``manifest``; None detects it.
    manifest : path, optional
        Manifest CSV (``path,label[,fold,group,...]``) for the manifest layout.
    jobs : int, optional
        Worker processes; 0 or None uses every core.
    formats : sequence of str or str
        Table formats, ``("csv", "parquet")`` or ``"csv,parquet"``.
    strict : bool
        If True, :attr:`ExtractResult.exit_code` is 3 when any clip failed
        (the outputs are written all the same).
    quiet : bool
        Hide the progress bar (it is also hidden when stderr is not a terminal).
    batch_size : int, optional
        Clips per worker task (default: sized from the clip count and ``jobs``).

    Returns
    -------
    ExtractResult

    Raises
    ------
    UsageError, DatasetLayoutError
        Bad option values; no recognisable dataset at ``root``.
    ExtractionInterrupted
        On Ctrl-C; finished batches stay in ``out/.checkpoint`` for the next run.

    Examples
    --------
    >>> from features.demo import make_demo_dataset  # doctest: +SKIP
    >>> res = extract_dataset(make_demo_dataset("/tmp/demo", n_clips=20), "/tmp/out")  # doctest: +SKIP
    >>> print(res.summary())  # doctest: +SKIP
    20 clips ok, 0 failed; table: /tmp/out/features.csv; errors: /tmp/out/errors.csv
    """
    import pandas as pd

    from . import table as _table

    start = time.perf_counter()
    params = FeatureParams() if params is None else params
    if not isinstance(params, FeatureParams):
        raise UsageError(f"params={params!r} must be a FeatureParams")
    formats = _table.check_formats(formats)
    jobs = _resolve_jobs(jobs)
    from .compute import feature_columns
    from .datasets import discover

    dataset = discover(root, layout=layout, manifest=manifest)
    names = list(feature_columns(params))
    _check_columns(dataset.clips, names)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(dataset.root)
    paths = dataset.clips["path"].astype(str).tolist()
    items = [(i, str(root / p), p) for i, p in enumerate(paths)]

    checkpoint = _Checkpoint(out, params.key(), _clips_key(root, paths))
    checkpoint.open()
    done = checkpoint.load(len(items), len(names))
    n_reused = sum(b.n_clips for b in done)
    batches = _compute(params, items, jobs, batch_size, done=done,
                       checkpoint=checkpoint, quiet=quiet)
    merged, clip_errors = _merge(batches, len(names))
    errors = [*dataset.errors, *clip_errors]

    table = _table.build_table(
        dataset.clips.iloc[merged.indices],
        pd.DataFrame({c: getattr(merged, c) for c in _table.AUDIO_COLUMNS}),
        merged.features, names, params.preset,
    )
    written = _table.write_table(table, out, formats)
    for stale in set(_table.FORMATS) - set(formats):
        # A table left by an earlier run with other --format must not pass for this one.
        with contextlib.suppress(FileNotFoundError):
            (out / f"features.{stale}").unlink()
    schema = _table.write_csv(
        _table.build_schema(table, params, layout=dataset.layout), out / "features.schema.csv"
    )
    errors_csv = _table.write_csv(_table.errors_frame(errors), out / "errors.csv")
    wall = time.perf_counter() - start
    n_new = len(items) - n_reused
    meta = {
        "params": params.to_dict(),
        "param_key": params.key(),
        "root": str(root.resolve()),
        "layout": dataset.layout,
        "manifest": None if manifest is None else str(Path(manifest).resolve()),
        "versions": _versions(),
        "clips": {
            "total": len(items) + len(dataset.errors),
            "ok": len(table),
            "failed": len(errors),
            "reused_from_checkpoint": n_reused,
            "failed_by_stage": {
                s: sum(e.stage == s for e in errors) for s in ("metadata", "load", "features")
            },
        },
        "n_features": len(names),
        "outputs": {f: p.name for f, p in written.items()},
        "wall_seconds": round(wall, 3),
        "clips_per_second": round(n_new / wall, 2) if wall > 0 else None,
        "jobs": jobs,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
    }
    metadata = _table.write_json(meta, out / "features.json")
    checkpoint.remove()
    return ExtractResult(
        out=out, tables=written, schema=schema, metadata=metadata, errors_csv=errors_csv,
        n_total=meta["clips"]["total"], n_ok=len(table), n_failed=len(errors),
        n_reused=n_reused, errors=errors, wall_seconds=wall, strict=strict,
    )


def extract_files(
    paths: Iterable[str | os.PathLike], params: FeatureParams | None = None, *, jobs: int | None = 1
) -> tuple[pd.DataFrame, list[Any]]:
    """Features of loose audio files (no dataset, no checkpoint, no bar).

    Parameters
    ----------
    paths : iterable of path
        Audio files; relative paths are relative to the current folder.
    params : FeatureParams, optional
        Feature parameters (default ``FeatureParams()``).
    jobs : int, optional
        Worker processes (1: in this process; 0 or None: every core).

    Returns
    -------
    table : pd.DataFrame [shape=(n_ok, 1 + n_features)]
        Column ``path`` (as given) then the feature columns, one row per
        readable file, in input order.
    errors : list of ErrorRecord
        One per file that could not be read or analysed (stage ``load`` or
        ``features``).

    Examples
    --------
    >>> df, errors = extract_files(["dog.wav"])  # doctest: +SKIP
    """
    import pandas as pd

    params = FeatureParams() if params is None else params
    if not isinstance(params, FeatureParams):
        raise UsageError(f"params={params!r} must be a FeatureParams")
    from .compute import feature_columns

    names = list(feature_columns(params))
    shown = [str(p) for p in paths]
    items = [(i, s, s) for i, s in enumerate(shown)]
    jobs = _resolve_jobs(jobs)
    merged, errors = _merge(_compute(params, items, jobs, None, done=[]), len(names))
    df = pd.DataFrame(merged.features, columns=names)
    df.insert(0, "path", [shown[i] for i in merged.indices])
    return df, errors
