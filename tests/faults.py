"""Faults injected into runs from outside the product: the tests' own analyser and driver.

The product has no test hooks. A test that needs a clip to misbehave wraps
the run's analyser (:mod:`features.analysers`) in :class:`FaultyAnalyser`,
which the workers import from this module (``tests/`` is on their path):

- in this process, :func:`install` swaps the analysers that ``features
  extract`` and ``features patches`` build for faulty ones (use it with
  pytest's ``monkeypatch``);
- in a command run as a subprocess, ``python tests/faults.py ARGS...``
  installs them from the environment variable :data:`FAULTS_ENV` (JSON)
  and runs ``python -m features ARGS...`` (``python -m classify ...`` when
  ARGS start with ``classify``: ``predict ROOT --out DIR`` runs on the
  same engine).

The faults, by the clip paths they name::

    {"crash": ["bad.wav"],    # the worker dies of SIGSEGV on clips whose path contains it
     "kill": ["oom.wav"],     # ... of SIGKILL (as from the out-of-memory killer)
     "stall": ["slow.wav"],   # the clip never returns
     "raise": ["odd.wav"],    # computing its features raises ZeroDivisionError
     "delay": 0.05,           # every clip takes this much longer (to stop a run midway)
     "commit_crash_after": 2} # the command dies after moving 2 output files into place
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

FAULTS_ENV = "SOUNDFEATURES_TEST_FAULTS"
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


@dataclasses.dataclass(frozen=True)
class FaultyAnalyser:
    """An analyser that misbehaves on the clips its faults name, else analyses as ``inner``."""

    inner: Any
    faults: str  # JSON, so the analyser stays frozen and picklable

    @property
    def key(self) -> str:
        return self.inner.key

    @property
    def width(self) -> int:
        return self.inner.width

    @property
    def frames(self) -> str | None:
        """Where the inner analyser writes frames (features extract --frames), if anywhere."""
        return getattr(self.inner, "frames", None)

    def warm_up(self) -> None:
        self.inner.warm_up()

    def analyse(self, location: str, shown: str, stage: list[str]):
        faults = json.loads(self.faults)
        if faults.get("delay"):
            time.sleep(float(faults["delay"]))
        if any(part in shown for part in faults.get("crash", ())):
            os.kill(os.getpid(), signal.SIGSEGV)
        if any(part in shown for part in faults.get("kill", ())):
            os.kill(os.getpid(), signal.SIGKILL)
        if any(part in shown for part in faults.get("stall", ())):
            while True:
                time.sleep(3600)
        rows, info = self.inner.analyse(location, shown, stage)
        if any(part in shown for part in faults.get("raise", ())):
            raise ZeroDivisionError("boom")
        return rows, info


def install(faults: dict[str, Any], setattr_=setattr) -> None:
    """Make ``features extract`` / ``features patches`` (in this process) run faulty analysers.

    ``setattr_`` is ``monkeypatch.setattr`` in a test, so the change is undone after it.
    """
    from classify import collection
    from features import analysers, extract, patches
    from features.engine import outputs

    text = json.dumps(faults)
    labeller = collection.ProbabilityAnalyser
    setattr_(collection, "ProbabilityAnalyser", lambda *args: FaultyAnalyser(labeller(*args), text))
    setattr_(extract, "FeatureAnalyser",
             lambda *args: FaultyAnalyser(analysers.FeatureAnalyser(*args), text))
    setattr_(patches, "PatchAnalyser",
             lambda params: FaultyAnalyser(analysers.PatchAnalyser(params), text))
    if faults.get("commit_crash_after") is not None:
        setattr_(outputs, "os", _CrashingOs(int(faults["commit_crash_after"])))


class _CrashingOs:
    """``os`` for :mod:`features.engine.outputs`: SIGKILL before the N+1-th file is moved in."""

    def __init__(self, after: int) -> None:
        self.after, self.moved = after, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def replace(self, src, dst) -> None:
        if ".committing-" in str(src):  # a file of the set, moved into place
            if self.moved >= self.after:
                os.kill(os.getpid(), signal.SIGKILL)
            self.moved += 1
        os.replace(src, dst)


def environment(**faults: Any) -> dict[str, str]:
    """The environment of a subprocess run through this script, with ``faults``."""
    path = os.pathsep.join([str(REPO), str(TESTS)])
    return {**os.environ, "PYTHONPATH": path, FAULTS_ENV: json.dumps(faults)}


def command(*args: str) -> list[str]:
    """``python tests/faults.py ARGS...``: ``python -m features ARGS...`` with the faults installed."""
    return [sys.executable, str(Path(__file__).resolve()), *args]


def killed_midway(args: list[str], out: Path, *, batches: int = 3, delay: float = 0.4,
                  timeout: float = 120.0) -> None:
    """Run ``python tests/faults.py ARGS`` (a ``delay`` per clip) and SIGKILL its whole process group
    once ``batches`` batches are in ``out``'s checkpoint, as a power cut or ``kill -9`` would."""
    import subprocess

    proc = subprocess.Popen(command(*args), cwd=REPO, env=environment(delay=delay), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(list((out / ".checkpoint").rglob("batch-*.npz"))) < batches:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def main(argv: list[str]) -> int:
    install(json.loads(os.environ.get(FAULTS_ENV) or "{}"))
    if argv[:1] == ["classify"]:
        from classify.cli import main as classify_main

        return classify_main(argv[1:])
    from features.cli import main as features_main

    return features_main(argv)


if __name__ == "__main__":
    sys.path[:0] = [str(REPO), str(TESTS)]
    import faults  # this module by its name, so the workers import the same FaultyAnalyser

    raise SystemExit(faults.main(sys.argv[1:]))
