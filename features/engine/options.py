"""How a run runs: workers, backend, batches, time limits, strictness. Defined once.

:class:`RunOptions` is shared by ``features extract``, ``features patches``
and ``classify predict``'s collection runs; the command lines build their
options and help texts from its defaults, so a default lives in one place.
None of these options changes a number of the outputs (the parameters that
do are :mod:`features.params`).

Light to import (standard library only): ``--help`` and the Makefile's help
read it (``python -m features.engine.options`` prints the defaults).
"""
from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Sequence

from ..errors import UsageError

__all__ = ["BACKENDS", "DEFAULT_CLIP_TIMEOUT", "SECONDS_PER_MB", "RunOptions", "clip_limit"]

BACKENDS = ("local", "dask")
#: Seconds a clip may take before it counts as hung, plus SECONDS_PER_MB per
#: MB of file: far above what a real clip needs (a 4 s clip takes ~5 ms, a
#: 10-hour recording a few minutes), so only a hang reaches it.
DEFAULT_CLIP_TIMEOUT = 60.0
SECONDS_PER_MB = 2.0


def clip_limit(size: int, clip_timeout: float | None) -> float:
    """Seconds a clip of ``size`` bytes may take before it counts as hung."""
    base = DEFAULT_CLIP_TIMEOUT if clip_timeout is None else clip_timeout
    return base + SECONDS_PER_MB * max(size, 0) / 1e6


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Everything about how a run runs, none of what it computes.

    Parameters
    ----------
    jobs : int
        Worker processes of the local backend; 0 = one per usable core.
    backend : {"local", "dask"}
        Where batches run.
    scheduler : str or None
        With ``backend="dask"``: ``tcp://host:port`` (or ``tls://``) of a
        running scheduler, or ``local:N`` for N worker processes here.
    batch_size : int or None
        Clips per task (None: sized from the clip count and the workers).
    clip_timeout : float or None
        Seconds a clip may take, plus :data:`SECONDS_PER_MB` per MB of
        file, before it counts as hung (None: :data:`DEFAULT_CLIP_TIMEOUT`).
    strict : bool
        Exit status 3 when any clip failed (the outputs are still written).
    force : bool
        Compute again even when the output folder already holds these
        outputs; and write into a non-empty folder beside files that are
        not ours (never over them).
    quiet : bool
        No progress bar.
    """

    jobs: int = 0
    backend: str = "local"
    scheduler: str | None = None
    batch_size: int | None = None
    clip_timeout: float | None = None
    strict: bool = False
    force: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.jobs is None:
            object.__setattr__(self, "jobs", 0)
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 0:
            raise UsageError(f"jobs={self.jobs!r} must be 0 (all cores) or a positive number of "
                             "workers")
        if self.backend not in BACKENDS:
            raise UsageError(f"backend={self.backend!r} is not one of: {', '.join(BACKENDS)}")
        if self.scheduler is not None and self.backend != "dask":
            raise UsageError("--scheduler needs --backend dask")
        if self.backend == "dask" and not self.scheduler:
            raise UsageError("--backend dask needs --scheduler tcp://HOST:PORT (a running Dask "
                             "scheduler) or local:N (N worker processes on this machine)")
        if self.batch_size is not None and (isinstance(self.batch_size, bool)
                                            or not isinstance(self.batch_size, int)
                                            or self.batch_size < 1):
            raise UsageError(f"batch_size={self.batch_size!r} must be a positive integer")
        if self.clip_timeout is not None and not (0 < self.clip_timeout < math.inf):
            raise UsageError(f"clip_timeout={self.clip_timeout!r} must be a positive number of "
                             "seconds")
        for name in ("strict", "force", "quiet"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name}={getattr(self, name)!r} must be True or False")

    @property
    def workers(self) -> int:
        """Worker processes of the local backend: ``jobs``, or the usable cores when 0."""
        if self.jobs:
            return self.jobs
        from joblib import cpu_count

        return max(1, cpu_count())

    @property
    def base_timeout(self) -> float:
        """The clip time limit before the per-MB allowance."""
        return DEFAULT_CLIP_TIMEOUT if self.clip_timeout is None else self.clip_timeout

    @classmethod
    def fields(cls) -> Sequence[str]:
        return tuple(f.name for f in dataclasses.fields(cls))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m features.engine.options``: the defaults, one ``NAME=value`` per line."""
    for field in dataclasses.fields(RunOptions):
        value = field.default
        print(f"{field.name}={'' if value is None else value}")
    # What an empty clip_timeout means.
    print(f"default_clip_timeout={DEFAULT_CLIP_TIMEOUT:g}")
    print(f"seconds_per_mb={SECONDS_PER_MB:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
