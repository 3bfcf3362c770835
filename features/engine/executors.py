"""Executors: where batches run. Local worker processes (loky) or a Dask cluster.

An executor only runs tasks; the driver (:mod:`features.engine.runner`) owns every
policy. Both executors have the same small interface:

- :meth:`~Executor.slots`: how many tasks may run at once now;
- :meth:`~Executor.submit`: start a task;
- :meth:`~Executor.wait`: the tasks that finished, each with its result or
  the news that its worker died;
- :meth:`~Executor.current`: which clip a running task is on, since when;
- :meth:`~Executor.replace`: stop the processes running overdue tasks and
  give back the other tasks lost on the way;
- :meth:`~Executor.close`.

:class:`LocalExecutor` keeps loky's reusable pool of worker processes. A
dead worker breaks the whole pool: every task in flight is reported dead,
and the next task starts a fresh pool. :class:`DaskExecutor` talks to a
``distributed`` scheduler with its futures API (never through joblib's dask
backend, which hangs when a worker dies mid-task): Dask reruns the tasks of
a lost worker itself and reports a task dead (``KilledWorker``) once
workers died running it more than ``allowed-failures`` times.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
import queue
import re
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import ClusterError, UsageError
from .options import RunOptions
from .versions import library_versions
from .work import BatchResult, DaskWatch, FileProgress, Item, run_batch, warm_up

__all__ = ["DaskExecutor", "Executor", "LocalExecutor", "Outcome", "Task", "open_executor"]

#: Environment of every worker process, set before it starts: one BLAS
#: thread (workers already use every core). Freed memory goes back to the
#: system after every batch (``work._give_memory_back``), not through
#: ``MALLOC_TRIM_THRESHOLD_``, which would make glibc map and unmap every
#: array above 128 kB.
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
#: A local Dask cluster (``local:N``) gives up on a task after this many
#: worker deaths beyond the first (Dask's default is 3).
LOCAL_ALLOWED_FAILURES = 1
#: How long the driver waits for a Dask cluster that has no worker at all.
NO_WORKERS_TIMEOUT = 120.0
#: Seconds to reach a scheduler before saying it cannot be reached (a reachable one
#: answers in well under a second, even across a cloud region).
CONNECT_TIMEOUT = 15
#: A Dask worker reports the clip it is on once the clip has run this long (or half
#: the clip time limit, when that is shorter): shorter clips cost no message at all.
WATCH_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Task:
    """One unit of work for an executor.

    Attributes
    ----------
    key : str
        Unique and deterministic (Dask's task key).
    items : tuple of Item
        The clips.
    single : bool
        True for a clip retried on its own after its batch's worker died.
    limit : float
        Seconds it may take before it is considered hung.
    """

    key: str
    items: tuple[Item, ...]
    single: bool
    limit: float

    @property
    def first(self) -> int:
        return self.items[0].index


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A task that ended: its result, or why it has none (``died``)."""

    task: Task
    result: BatchResult | None = None
    died: str | None = None


class Executor:
    """Interface shared by the executors (see the module docstring)."""

    name = "executor"
    #: Whether :meth:`current` knows, for a task whose worker died, which clip it was on.
    knows_positions = True

    def slots(self) -> int:
        raise NotImplementedError

    def submit(self, task: Task) -> None:
        raise NotImplementedError

    def wait(self, timeout: float) -> list[Outcome]:
        raise NotImplementedError

    def current(self, task: Task) -> tuple[int, float] | None:
        """(clip index, wall-clock start) of the clip ``task`` is analysing, if known."""
        raise NotImplementedError

    def replace(self, overdue: list[Task]) -> list[Task]:
        raise NotImplementedError

    def forget(self, task: Task) -> None:
        """Drop what is known of a task that ended."""

    def close(self) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name}


# ------------------------------------------------------------------------- local


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
    starting up cannot make it print a traceback; the parent alone handles
    Ctrl-C.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be changed from the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class LocalExecutor(Executor):
    """Worker processes on this machine (loky's reusable pool).

    Parameters
    ----------
    analyser : FeatureAnalyser or PatchAnalyser
        The per-clip function (:mod:`features.analysers`).
    workers : int
        Worker processes.
    progress_dir : str
        Folder for the workers' progress files (see :class:`FileProgress`).
    """

    name = "local"

    def __init__(self, analyser: Any, workers: int, progress_dir: str) -> None:
        self.analyser = analyser
        self.workers = workers
        os.makedirs(progress_dir, exist_ok=True)
        self.progress = FileProgress(progress_dir)
        self._futures: dict[concurrent.futures.Future, Task] = {}
        self._pool = None
        self._start()

    def _start(self) -> None:
        self._pool = _pool(self.workers, self.analyser)

    def slots(self) -> int:
        return self.workers

    def submit(self, task: Task) -> None:
        from joblib.externals.loky.process_executor import ShutdownExecutorError

        if self._pool._flags.broken or self._pool._flags.shutdown:
            self._start()
        args = (run_batch, self.analyser, task.items, task.key, self.progress)
        try:
            future = self._pool.submit(*args)
        except (RuntimeError, ShutdownExecutorError):
            self._start()  # broken by a dead worker, or shut down to stop a hung one
            future = self._pool.submit(*args)
        self._futures[future] = task

    def wait(self, timeout: float) -> list[Outcome]:
        if not self._futures:
            time.sleep(min(timeout, 0.05))
            return []
        done, _ = concurrent.futures.wait(
            self._futures, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        outcomes = []
        for future in done:
            task = self._futures.pop(future)
            try:
                outcomes.append(Outcome(task, result=future.result()))
            except concurrent.futures.CancelledError:
                continue
            except Exception as exc:  # noqa: BLE001 - a dead worker or a broken pool
                outcomes.append(Outcome(task, died=_death_of(exc)))
        if any(o.died for o in outcomes):
            self._start()  # the pool is broken; the next task gets a fresh one
        return outcomes

    def current(self, task: Task) -> tuple[int, float] | None:
        return self.progress.read(task.key)

    def forget(self, task: Task) -> None:
        self.progress.forget(task.key)

    def replace(self, overdue: list[Task]) -> list[Task]:
        # loky cannot stop one task: end every worker, give back the other tasks.
        lost = [t for t in self._futures.values() if t not in overdue]
        self._futures.clear()
        _discard(self._pool)
        self._start()
        return lost

    def close(self) -> None:
        if self._futures:
            self._futures.clear()
            _discard(self._pool)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "workers": self.workers}


# One pool of worker processes per process, kept between runs (starting
# workers costs about a second). Not loky's reusable singleton: joblib's own
# Parallel shares that one and expects it to be its own kind of executor.
_POOL: dict[str, Any] = {}


def _pool(workers: int, analyser: Any):
    """A live pool of ``workers`` processes: the kept one, or a fresh one (warmed up for ``analyser``)."""
    from joblib.externals.loky import ProcessPoolExecutor

    pool = _POOL.get("pool")
    if pool is not None and (pool._flags.broken or pool._flags.shutdown
                             or pool._max_workers != workers):
        _discard(pool)
        pool = None
    if pool is None:
        with _sigint_ignored():
            # Workers inherit the ignored SIGINT; the first tasks spawn them now.
            pool = ProcessPoolExecutor(
                max_workers=workers, timeout=300, initializer=_init_worker,
                initargs=(os.getpid(),), env=WORKER_ENV,
            )
            for _ in range(workers):
                pool.submit(warm_up, analyser)
        _POOL["pool"] = pool
    return pool


def _discard(pool: Any) -> None:
    """End a pool and every one of its worker processes now."""
    if _POOL.get("pool") is pool:
        del _POOL["pool"]
    _quiet_feeder_threads()
    with contextlib.suppress(Exception):
        pool.shutdown(wait=True, kill_workers=True)


def _quiet_feeder_threads() -> None:
    """Do not print the broken pipe of a queue feeder whose workers we just killed.

    Killing a pool (Ctrl-C, a hung clip) can catch its feeder thread writing
    a task into a pipe whose reader is gone; that is expected, and its
    traceback would only alarm the user. Other thread errors still print.
    """
    previous = threading.excepthook
    if getattr(previous, "_features_quiet", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        name = getattr(args.thread, "name", "") or ""
        if name.startswith("QueueFeederThread") and issubclass(
                args.exc_type, (BrokenPipeError, EOFError, OSError, ValueError)):
            return
        previous(args)

    hook._features_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _death_of(exc: BaseException) -> str:
    """How a worker died, in words, from loky's error ("exit codes ... {SIGSEGV(-11)}")."""
    text = str(exc)
    codes = re.search(r"exit codes of the workers are \{([^}]*)\}", text)
    for code in (codes.group(1).split(",") if codes else []):
        found = re.match(r"\s*(\w+)\((-?\d+)\)", code)
        if not found:
            continue
        number = int(found.group(2))
        if number < 0:
            return f"its worker process was killed by signal {_signal_name(-number)}"
        return f"its worker process exited with code {number}"
    first = text.splitlines()[0] if text else ""
    return f"its worker process died ({type(exc).__name__}: {first})"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


# -------------------------------------------------------------------------- dask


class DaskExecutor(Executor):
    """Tasks on a Dask ``distributed`` cluster, through its futures API.

    Parameters
    ----------
    analyser : FeatureAnalyser or PatchAnalyser
        The per-clip function (:mod:`features.analysers`).
    scheduler : str
        ``tcp://host:port`` (or ``tls://``) of a running scheduler, or
        ``local:N`` for a cluster of N single-threaded worker processes on
        this machine, started and stopped with the run.
    watch_after : float
        Seconds after which a worker reports the clip it is on
        (:class:`~features.engine.work.DaskWatch`).
    """

    name = "dask"
    #: A dead task's position is unknown here (a clip is reported only once it runs
    #: long): the driver pins a crash by splitting the task instead.
    knows_positions = False

    def __init__(self, analyser: Any, scheduler: str, watch_after: float = WATCH_SECONDS) -> None:
        import dask
        from distributed import Client, LocalCluster

        self.analyser = analyser
        self.scheduler = scheduler
        self._futures: dict[Any, Task] = {}
        self._finished: queue.SimpleQueue = queue.SimpleQueue()
        self._current: dict[str, tuple[int, float]] = {}
        self.progress = DaskWatch(f"soundfeatures-progress-{os.getpid()}-{id(self):x}", watch_after)
        self._cluster = None
        self._slots, self._slots_at, self._empty_since = 0, 0.0, None
        local = re.fullmatch(r"local:(\d+)", scheduler)
        try:
            if local:
                n = int(local.group(1))
                if n < 1:
                    raise UsageError(f"--scheduler {scheduler!r}: local:N needs N >= 1 workers")
                with _worker_environment(), dask.config.set({
                    "distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES,
                    "distributed.worker.daemon": False,
                    # The statistical profiler samples every worker's stack every 10 ms,
                    # holding the GIL: 10-15% of a CPU-bound task's time.
                    "distributed.worker.profile.enabled": False,
                }), _sigint_ignored(), warnings.catch_warnings():
                    # Without a dashboard the scheduler still serves its health page, on
                    # 8787 or, when that port is taken, on another: nothing to warn about.
                    warnings.filterwarnings("ignore", message="Port .* is already in use")
                    self._cluster = LocalCluster(
                        n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None, silence_logs=50,
                    )
                self.client = Client(self._cluster, set_as_default=False)
            else:
                self.client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False,
                                     security=_security(scheduler))
        except OSError as exc:
            self.close()
            raise ClusterError(
                f"cannot connect to the Dask scheduler at {scheduler}: {exc}. Start one "
                f"('dask scheduler') and give its address, e.g. --scheduler tcp://host:8786"
            ) from None
        self._check_workers()
        self.client.subscribe_topic(self.progress.topic, self._on_progress)

    def _on_progress(self, event: tuple[float, Any]) -> None:
        # A worker reports a clip once it has run `elapsed` seconds: it began then.
        key, index, elapsed = event[1]
        self._current[key] = (int(index), time.time() - float(elapsed))

    def _check_workers(self) -> None:
        """Every worker must run the same code and libraries as this process."""
        mine = library_versions()
        try:
            theirs = self.client.run(_worker_versions, self.analyser, on_error="return")
        except Exception as exc:  # noqa: BLE001
            raise ClusterError(f"cannot run on the Dask workers of {self.scheduler}: {exc}") from None
        for address, versions in theirs.items():
            if isinstance(versions, BaseException):
                raise ClusterError(
                    f"Dask worker {address} cannot run the extractor ({versions!r}); install "
                    f"this project and its dependencies on every worker (pip install .)"
                )
            differ = {k: (mine.get(k), v) for k, v in versions.items() if mine.get(k) != v}
            if differ:
                raise ClusterError(
                    f"Dask worker {address} has other library versions than this machine "
                    f"({', '.join(f'{k} {a} here, {b} there' for k, (a, b) in differ.items())}); "
                    f"the numbers would differ: install the same versions everywhere"
                )

    def slots(self) -> int:
        now = time.monotonic()
        if now - self._slots_at > 2.0:
            info = self.client.scheduler_info(n_workers=-1)
            self._slots = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
            self._slots_at = now
            if self._slots:
                self._empty_since = None
            elif self._empty_since is None:
                self._empty_since = now
            elif now - self._empty_since > NO_WORKERS_TIMEOUT:
                raise ClusterError(
                    f"the Dask scheduler at {self.scheduler} has had no worker for "
                    f"{NO_WORKERS_TIMEOUT:.0f} s; start workers ('dask worker {self.scheduler}'), "
                    f"then run the same command again to resume"
                )
        return self._slots

    def submit(self, task: Task) -> None:
        future = self.client.submit(run_batch, self.analyser, task.items, task.key, self.progress,
                                    key=task.key, pure=False, retries=0)
        self._futures[future] = task
        future.add_done_callback(self._finished.put)

    def wait(self, timeout: float) -> list[Outcome]:
        if not self._futures:
            time.sleep(min(timeout, 0.05))
            return []
        done = []
        try:
            done.append(self._finished.get(timeout=timeout))
            while True:
                done.append(self._finished.get_nowait())
        except queue.Empty:
            pass
        outcomes = []
        for future in done:
            task = self._futures.pop(future, None)
            if task is None:
                continue  # cancelled after a timeout
            outcomes.append(self._outcome(future, task))
            future.release()
        return outcomes

    def current(self, task: Task) -> tuple[int, float] | None:
        return self._current.get(task.key)

    def forget(self, task: Task) -> None:
        self._current.pop(task.key, None)

    def _outcome(self, future: Any, task: Task) -> Outcome:
        from distributed import KilledWorker

        if future.status == "finished":
            return Outcome(task, result=future.result())
        if future.status == "cancelled":
            raise ClusterError(
                f"lost the connection to the Dask scheduler at {self.scheduler}; the finished "
                f"clips are saved: run the same command again to resume"
            )
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            return Outcome(task, died=f"its Dask worker died each of the {exc.allowed_failures + 1} "
                                      f"times it ran it (last: {exc.last_worker.address})")
        return Outcome(task, died=f"it failed on its Dask worker ({type(exc).__name__}: {exc})")

    def replace(self, overdue: list[Task]) -> list[Task]:
        keys = {t.key for t in overdue}
        stuck = [f for f, t in self._futures.items() if t.key in keys]
        where = {w for w, ks in self.client.processing().items() if keys & {str(k) for k in ks}}
        for future in stuck:
            del self._futures[future]
        self.client.cancel(stuck, force=True)
        if where:
            # A thread cannot be stopped: the worker's nanny replaces its process.
            self.client.restart_workers(sorted(where), raise_for_error=False)
        return []  # Dask reruns the other tasks of those workers itself

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._futures:
                self.client.cancel(list(self._futures), force=True)
            self._futures.clear()
        with contextlib.suppress(Exception):
            self.client.close(timeout=10)
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close(timeout=10)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "scheduler": self.scheduler, "threads": self._slots}


#: Dask's own settings (environment variables) that give a client its TLS certificates.
TLS_ENV = {
    "distributed.comm.tls.ca-file": "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
    "distributed.comm.tls.client.cert": "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
    "distributed.comm.tls.client.key": "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
}


def _security(scheduler: str) -> Any:
    """The client's :class:`distributed.security.Security`: TLS for a ``tls://`` scheduler.

    Certificates come from Dask's configuration (the environment variables of
    :data:`TLS_ENV`, or a Dask config file), never from the command line; a
    ``tls://`` address without them is refused before any connection.
    """
    import dask
    from distributed.security import Security

    if not scheduler.lower().startswith("tls://"):
        return None
    missing = [env for key, env in TLS_ENV.items() if not dask.config.get(key, None)]
    if missing:
        raise ClusterError(
            f"--scheduler {scheduler} speaks TLS, and this machine has no certificate for it: "
            f"set {', '.join(missing)} to the PEM files (the cluster's CA, this client's "
            f"certificate and key), as the scheduler and workers have theirs")
    return Security(require_encryption=True)


def _worker_versions(analyser: Any) -> dict[str, str]:
    """A worker's library versions; it also imports what a batch needs, ahead of the first."""
    warm_up(analyser)
    return library_versions()


@contextlib.contextmanager
def _worker_environment() -> Iterator[None]:
    """:data:`WORKER_ENV` in this process's environment while local workers are spawned."""
    saved = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def open_executor(analyser: Any, options: RunOptions, progress_dir: str) -> Executor:
    """The executor of ``options.backend`` (``local`` or ``dask``), running ``analyser``."""
    if options.backend == "dask":
        return DaskExecutor(analyser, options.scheduler,
                            watch_after=min(WATCH_SECONDS, options.base_timeout / 2))
    return LocalExecutor(analyser, options.workers, progress_dir)
