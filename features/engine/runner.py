"""The driver of a run: every policy, whatever the executor.

The driver splits the clips into batches, hands them to an executor
(:mod:`features.engine.executors`), saves every result to the checkpoint as
it arrives, and deals with the faults a long run meets:

- **A worker dies** (a decoder crash, the out-of-memory killer, a kill from
  outside). When the executor knows which clip the task was on (local
  workers write it down per clip), that clip becomes a *suspect* and the
  other clips of the task go back into the queue. When it does not (a Dask
  worker says nothing per clip), the task is split in halves, and the half
  that dies again is split again, down to one clip: the suspect. Suspects
  run alone, one at a time, once nothing else is running: a suspect that
  kills its worker again is the *culprit* and gets an error row (stage
  ``crash``), which the checkpoint keeps, so a resumed run never runs it
  again. A suspect that succeeds (its worker was killed from outside)
  loses nothing.
- **A clip hangs** (a stalled network mount). Workers say which clip they
  are on (at once, or once it has run long); a clip that overruns its
  limit (``--clip-timeout`` plus :data:`SECONDS_PER_MB` per MB of file)
  gets an error row (stage ``timeout``), its worker is replaced, and the
  rest of its batch goes back into the queue.

Results go to disk at once: the driver's memory holds the clip list and
counters, never the features.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ExtractionInterrupted
from ..io.storage import redact_text
from .checkpoint import Checkpoint, clips_key
from .executors import Executor, LocalExecutor, Task
from .options import DEFAULT_CLIP_TIMEOUT, SECONDS_PER_MB, RunOptions, clip_limit
from .work import BatchResult, Item

__all__ = ["Driver", "batch_size_for", "run_dataset", "run_files"]

MAX_BATCH = 64
# Batches per worker: enough that the bar moves smoothly and the last batches
# do not leave a worker idle for long, few enough that per-task cost is small.
BATCHES_PER_WORKER = 8
# How often the driver looks at the clock while it waits for results.
POLL_SECONDS = 0.2


def batch_size_for(n_clips: int, workers: int, batch_size: int | None) -> int:
    """Clips per task: about :data:`BATCHES_PER_WORKER` tasks per worker, at most 64."""
    if batch_size is not None:
        return batch_size
    return min(MAX_BATCH, max(1, math.ceil(n_clips / (max(1, workers) * BATCHES_PER_WORKER))))


@dataclasses.dataclass
class _Job:
    """A task and its history (how often it died before saying which clip it was on)."""

    task: Task
    silent_deaths: int = 0


class Driver:
    """Run clips through an executor under the policies of the module docstring.

    Parameters
    ----------
    executor : Executor
    checkpoint : Checkpoint
        Where every finished batch and every culprit is saved.
    n_features : int
        Width of a feature row.
    key : str
        Prefix of the task keys (the run's parameter and clip-list keys).
    clip_timeout : float or None
        Base time limit of a clip (None: :data:`DEFAULT_CLIP_TIMEOUT`).
    on_done : callable
        Called with the number of clips after every saved result (the bar).
    say : callable
        Prints one line for the user (a crash or a timeout as it happens).
    """

    def __init__(self, executor: Executor, checkpoint: Checkpoint, *, n_features: int,
                 key: str, clip_timeout: float | None, on_done: Any = None,
                 say: Any = None) -> None:
        self.executor = executor
        self.checkpoint = checkpoint
        self.n_features = n_features
        self.key = key
        self.clip_timeout = clip_timeout
        self.on_done = on_done or (lambda n: None)
        self.say = say or (lambda line: print(line, file=sys.stderr))
        self.queue: collections.deque[_Job] = collections.deque()
        self.suspects: collections.deque[_Job] = collections.deque()
        self.running: dict[str, _Job] = {}
        self.crashed = 0
        self.timed_out = 0
        self.done = 0
        self._attempts: collections.Counter[str] = collections.Counter()

    # ---------------------------------------------------------------- public

    def run(self, items: Sequence[Item], batch_size: int | None) -> None:
        """Analyse ``items``; return when every one has a result or an error row saved."""
        size = batch_size_for(len(items), self.executor.slots(), batch_size)
        for start in range(0, len(items), size):
            self.queue.append(_Job(self._task(items[start:start + size], single=False)))
        while self.queue or self.suspects or self.running:
            self._fill()
            for outcome in self.executor.wait(POLL_SECONDS):
                job = self.running.pop(outcome.task.key, None)
                if job is None:
                    continue  # already given up on (a timeout)
                if outcome.result is not None:
                    self._finished(outcome.result)
                else:
                    self._died(job, outcome.died or "its worker died")
                self.executor.forget(outcome.task)
            self._check_clocks()

    # -------------------------------------------------------------- internals

    def _task(self, items: Sequence[Item], *, single: bool) -> Task:
        items = tuple(items)
        name = f"{self.key}-{items[0].index:09d}-{len(items)}{'s' if single else ''}"
        self._attempts[name] += 1
        limit = sum(clip_limit(i.size, self.clip_timeout) for i in items)
        return Task(f"{name}-{self._attempts[name]}", items, single, limit)

    def _fill(self) -> None:
        if self.suspects:
            # Suspects run alone, so that a death can only be theirs.
            if not self.running:
                self._submit(self.suspects.popleft())
            return
        free = self.executor.slots() * 2 - len(self.running)
        while self.queue and free > 0:
            self._submit(self.queue.popleft())
            free -= 1

    def _submit(self, job: _Job) -> None:
        self.running[job.task.key] = job
        self.executor.submit(job.task)

    def _finished(self, result: BatchResult) -> None:
        self.checkpoint.save(result)
        self.done += result.n_clips
        self.on_done(result.n_clips)

    def _died(self, job: _Job, how: str) -> None:
        task = job.task
        if task.single:
            self._error(task.items[0], "crash", "WorkerCrash", "crashed its worker process", (
                f"{task.items[0].shown}: {how} while analysing this clip, in its batch and "
                f"again on its own, so the clip was skipped. A corrupt file can crash the "
                f"decoder, and a clip too big for a worker's memory gets the worker killed: "
                f"check the file, or give each worker more memory."))
            self.crashed += 1
            return
        at = self._position(task)
        if at is None and not self.executor.knows_positions:
            # Which clip it was on is not known: split it, and the half that dies again,
            # down to a single clip; the halves that do not die keep their results.
            if len(task.items) == 1:
                self.suspects.append(_Job(self._task(task.items, single=True)))
            else:
                half = len(task.items) // 2
                for part in (task.items[half:], task.items[:half]):
                    self.queue.appendleft(_Job(self._task(part, single=False)))
            return
        if at is None:
            # It died before it began (its whole pool broke): run it again as it was;
            # if that keeps happening, each of its clips is a suspect.
            job.silent_deaths += 1
            if job.silent_deaths < 2:
                self.queue.appendleft(_Job(self._task(task.items, single=False),
                                           job.silent_deaths))
            else:
                self.suspects.extend(_Job(self._task([i], single=True)) for i in task.items)
            return
        self.suspects.append(_Job(self._task([task.items[at]], single=True)))
        rest = task.items[:at] + task.items[at + 1:]
        if rest:
            self.queue.appendleft(_Job(self._task(rest, single=False)))

    def _position(self, task: Task) -> int | None:
        """Position in ``task`` of the clip its worker last said it was on."""
        current = self.executor.current(task)
        if current is None:
            return None
        for position, item in enumerate(task.items):
            if item.index == current[0]:
                return position
        return None

    def _check_clocks(self) -> None:
        now = time.time()
        overdue: list[tuple[_Job, int, float]] = []
        for job in self.running.values():
            current = self.executor.current(job.task)
            at = self._position(job.task)
            if current is None or at is None:
                continue
            limit = clip_limit(job.task.items[at].size, self.clip_timeout)
            if now - current[1] > limit:
                overdue.append((job, at, limit))
        if not overdue:
            return
        lost = self.executor.replace([job.task for job, _, _ in overdue])
        for job, at, limit in overdue:
            self.running.pop(job.task.key, None)
            self.executor.forget(job.task)
            item = job.task.items[at]
            base = DEFAULT_CLIP_TIMEOUT if self.clip_timeout is None else self.clip_timeout
            self._error(item, "timeout", "ClipTimeout", f"took longer than {base:g} s + "
                        f"{SECONDS_PER_MB:g} s/MB", (
                f"{item.shown}: analysing this clip took longer than {limit:.0f} s "
                f"(--clip-timeout {base:g} s + {SECONDS_PER_MB:g} s per MB of file), so its "
                f"worker was stopped and the clip skipped. The file may sit on a stalled "
                f"network mount or be a pipe that never ends; if it is just very long, "
                f"raise --clip-timeout."))
            self.timed_out += 1
            rest = job.task.items[:at] + job.task.items[at + 1:]
            if rest:
                self.queue.appendleft(_Job(self._task(rest, single=job.task.single)))
        for task in lost:
            job = self.running.pop(task.key, None)
            self.executor.forget(task)
            if job is not None:
                again = _Job(self._task(task.items, single=task.single))
                (self.suspects if task.single else self.queue).appendleft(again)

    def _error(self, item: Item, stage: str, error_type: str, reason: str, message: str) -> None:
        fields = (item.shown, None, stage, error_type, message, reason)
        self.checkpoint.save(BatchResult.of_errors([(item.index, fields)], self.n_features))
        self.done += 1
        self.on_done(1)
        self.say(f"warning: {message}")


def progress_bar(total: int, initial: int, quiet: bool, desc: str = "features") -> Any:
    """A tqdm bar on stderr, hidden with ``quiet`` or when stderr is not a terminal."""
    from tqdm.auto import tqdm

    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tqdm(total=total, initial=initial, unit="clips", desc=desc, file=sys.stderr,
                disable=quiet or not tty, dynamic_ncols=True, smoothing=0.1)


def _say(bar: Any) -> Any:

    def say(line: str) -> None:
        line = redact_text(line)
        if bar.disable:
            print(line, file=sys.stderr)
        else:
            bar.write(line, file=sys.stderr)
    return say


def run_dataset(dataset: Any, out: Any, analyser: Any, executor: Executor, *, kind: str,
                options: RunOptions, stamps: list[tuple[int, str]] | None = None
                ) -> tuple[Checkpoint, int, int]:
    """Analyse every clip of ``dataset`` not already in the checkpoint under ``out``.

    Returns
    -------
    checkpoint : Checkpoint
        Holds a result or an error row for every clip.
    n_clips, n_reused : int
        Clips in the dataset, and those taken from an earlier run's checkpoint.

    Raises
    ------
    ExtractionInterrupted
        On Ctrl-C, after stopping the workers; the checkpoint stays.
    """
    paths = dataset.clips["path"].astype(str).tolist()
    stamps = dataset.stamps() if stamps is None else stamps
    items = [Item(i, dataset.location(p), p, size)
             for i, (p, (size, _)) in enumerate(zip(paths, stamps, strict=True))]
    ckey = clips_key(paths, stamps)
    checkpoint = Checkpoint(out, analyser.key, ckey, analyser.width)
    n_reused = checkpoint.open(len(items))
    finished = checkpoint.finished()
    todo = [item for item in items if item.index not in finished]
    with progress_bar(len(items), n_reused, options.quiet, desc=kind) as bar:
        driver = Driver(executor, checkpoint, n_features=analyser.width,
                        key=f"{kind}-{analyser.key}-{ckey}", clip_timeout=options.clip_timeout,
                        on_done=bar.update, say=_say(bar))
        try:
            driver.run(todo, options.batch_size)
        except KeyboardInterrupt:
            executor.close()
            raise ExtractionInterrupted(checkpoint.n_on_disk(), len(items)) from None
    return checkpoint, len(items), n_reused


def run_files(paths: Sequence[str], analyser: Any, *, jobs: int
              ) -> tuple[list[BatchResult], list[tuple]]:
    """Analyse loose files in worker processes (no dataset, no output folder, no bar).

    Returns the rows in input order (batches) and the error records' fields.
    """
    items = [Item(i, s, s, _size(s)) for i, s in enumerate(paths)]
    with tempfile.TemporaryDirectory(prefix="features-") as tmp:
        executor = LocalExecutor(analyser, min(jobs, max(1, len(items))), os.path.join(tmp, "run"))
        checkpoint = Checkpoint(Path(tmp), analyser.key, "files", analyser.width)
        checkpoint.open(len(items))
        try:
            Driver(executor, checkpoint, n_features=analyser.width, key=f"files-{analyser.key}",
                   clip_timeout=None).run(items, None)
        finally:
            executor.close()
        parts = list(checkpoint.iter_rows(max(1, len(items))))
        errors = [fields for _, fields in checkpoint.errors()]
    return parts, errors


def _size(path: str) -> int:
    with contextlib.suppress(OSError):
        return os.stat(path).st_size
    return -1
