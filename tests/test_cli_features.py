"""``python -m features``: help, exit codes, default output folder, kill -9 and Ctrl-C resume."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import faults
import numpy as np
import pytest

from features.io.naming import output_name

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 120


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "features", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def _start(*args: str, clip_delay: float = 0.0) -> subprocess.Popen:
    # Every clip takes at least clip_delay (the tests' own faulty analyser, tests/faults.py).
    env = faults.environment(delay=clip_delay)
    # A shell without job control starts background jobs with SIGINT ignored, and a
    # child inherits that (Python then installs no KeyboardInterrupt handler):
    # give the run Ctrl-C's usual meaning, as a terminal does.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(faults.command(*args), cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    # Lowest priority, so that on a busy machine the polling test still gets to stop it midway.
    os.setpriority(os.PRIO_PROCESS, proc.pid, 19)
    return proc


def _tone(i: int, seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t)
    return np.stack([y, 0.5 * y], axis=1) if channels == 2 else y


def _dataset(root: Path, write_wav, n: int = 4, *, seconds: float = 0.5, sr: int = 8000,
             channels: int = 1) -> Path:
    for i in range(n):
        label = "ab"[i % 2]
        write_wav(root / label / f"{label}{i:03d}.wav", _tone(i, seconds, sr, channels), sr)
    return root


def _one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in err, err


def test_help_is_written_for_a_newcomer():
    top = _run("--help")
    assert top.returncode == 0 and "extract" in top.stdout and "demo-data" in top.stdout
    proc = _run("extract", "--help")
    assert proc.returncode == 0
    for option in ("--out", "--layout", "--manifest", "--preset", "--sr", "--offset",
                   "--duration", "--fixed-length", "--jobs", "--format", "--strict",
                   "--quiet", "example", "errors.csv", "exit codes"):
        assert option in proc.stdout, option
    assert _run("demo-data", "--help").returncode == 0


def test_usage_errors_exit_2_with_one_line(tmp_path, write_wav):
    root = _dataset(tmp_path / "ds", write_wav, n=2)
    (tmp_path / "empty").mkdir()
    _one_line_error(_run("extract", str(tmp_path / "nope")), "nope")
    _one_line_error(_run("extract", str(tmp_path / "empty"), "--out", str(tmp_path / "o")),
                    "no dataset found")
    _one_line_error(_run("extract", str(root), "--layout", "zip"), "--layout", "zip")
    _one_line_error(_run("extract", str(root), "--jobs", "-2"), "--jobs")
    _one_line_error(_run("extract", str(root), "--format", "xlsx"), "--format", "xlsx")
    _one_line_error(_run("extract", str(root), "--sr", "0"), "--sr")
    _one_line_error(_run("extract", str(root), "--manifest", str(tmp_path / "m.csv")), "m.csv")
    _one_line_error(_run("extract"), "ROOT")
    _one_line_error(_run("frobnicate"), "frobnicate")
    assert not (tmp_path / "o").exists()


def test_exit_0_then_3_with_strict_and_default_out(tmp_path, write_wav):
    root = _dataset(tmp_path / "ds", write_wav, n=3)
    (root / "a" / "broken.wav").write_text("not audio")
    proc = _run("extract", "ds", "--jobs", "1", "--format", "csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # ds is not under ./data/: its name gets a hash of its path (another "ds" gets another).
    out = Path("data") / "output" / output_name("ds", cwd=tmp_path) / "features"
    assert out.parts[2].startswith("ds-")
    assert proc.stdout.strip().splitlines()[-2:] == [
        f"3 clips ok, 1 failed; table: {out / 'features.csv'}; errors: {out / 'errors.csv'}",
        "  1 clip: it contains text, not audio (stage load)",
    ]
    assert (tmp_path / out / "features.csv").is_file()
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal

    strict = _run("extract", str(root), "--out", str(tmp_path / "o"), "--jobs", "1", "--strict")
    assert strict.returncode == 3, strict.stderr
    assert (tmp_path / "o" / "features.parquet").is_file()
    assert "1 failed" in strict.stdout

    (root / "a" / "broken.wav").unlink()
    clean = _run("extract", str(root), "--out", str(tmp_path / "o"), "--jobs", "1", "--strict",
                 "--preset", "gtzan", "--duration", "0.25", "--quiet")
    assert clean.returncode == 0, clean.stderr
    assert (tmp_path / "o" / "errors.csv").read_text() == (
        "path,row,stage,reason,error_type,message\n")
    meta = json.loads((tmp_path / "o" / "features.json").read_text())
    assert meta["params"]["preset"] == "gtzan" and meta["params"]["duration"] == 0.25


def test_progress_bar_on_a_terminal_only(tmp_path, write_wav):
    root = _dataset(tmp_path / "ds", write_wav, n=4)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "features", "extract", str(root), "--jobs", "1"]
    try:
        proc = subprocess.run([*cmd, "--out", str(tmp_path / "o1")], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=slave, timeout=TIMEOUT, check=False)
        os.set_blocking(master, False)
        shown = os.read(master, 1 << 16).decode("utf-8", "replace")
        quiet = subprocess.run([*cmd, "--out", str(tmp_path / "o2"), "--quiet"], cwd=REPO,
                               env=env, stdout=subprocess.PIPE, stderr=slave,
                               timeout=TIMEOUT, check=False)
        try:
            hidden = os.read(master, 1 << 16).decode("utf-8", "replace")
        except BlockingIOError:
            hidden = ""
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0 and quiet.returncode == 0
    assert "4/4" in shown and ("clips/s" in shown or "s/clips" in shown)  # rate and ETA
    assert "4/4" not in hidden


def _stop_midway(args: list[str], out: Path, sig: int) -> subprocess.CompletedProcess:
    """Run an extraction into ``out`` and send ``sig`` once a batch is checkpointed.

    SIGINT goes to the whole process group, as Ctrl-C in a terminal does;
    SIGKILL only to the main process (its workers are orphaned).

    A run that finishes before the signal lands (a starved test process) is
    retried with a fresh output folder, so the test never depends on timing.
    """
    for _ in range(3):
        shutil.rmtree(out, ignore_errors=True)
        # 40 clips of at least 50 ms each: the run lasts a second or more, however fast the machine.
        proc = _start(*args, "--out", str(out), clip_delay=0.05)
        try:
            while proc.poll() is None and not list(out.glob(".checkpoint/*/batch-*.npz")):
                time.sleep(0.002)
            if proc.poll() is None:
                if sig == signal.SIGINT:
                    os.killpg(proc.pid, sig)
                else:
                    proc.send_signal(sig)
        finally:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
        if proc.returncode != 0:
            return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    pytest.fail("the extraction always finished before it could be stopped")


@pytest.fixture
def slow_dataset(tmp_path, write_wav):
    """40 clips big enough (2 s, 44.1 kHz stereo) that a run can be stopped midway."""
    return _dataset(tmp_path / "ds", write_wav, n=40, seconds=2.0, sr=44100, channels=2)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_resume_after_kill_9(tmp_path, slow_dataset, jobs):
    args = [str(slow_dataset), "--jobs", jobs, "--batch-size", "2", "--format", "csv"]
    reference = _run("extract", *args, "--out", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "out"
    start = time.monotonic()
    killed = _stop_midway(["extract", *args], out, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # orphaned workers exit soon (they hold the output pipes: communicate() waited for them)
    assert time.monotonic() - start < 60
    assert not (out / "features.csv").exists()

    resumed = _run("extract", *args, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    reused = json.loads((out / "features.json").read_text())["clips"]["reused_from_checkpoint"]
    assert 0 < reused < 40  # only the unfinished clips were computed again
    assert f"resumed: {reused} of 40 clips taken from the checkpoint" in resumed.stdout
    assert (out / "features.csv").read_bytes() == (tmp_path / "ref" / "features.csv").read_bytes()
    assert not (out / ".checkpoint").exists()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_exits_130_and_keeps_the_checkpoint(tmp_path, slow_dataset, jobs):
    out = tmp_path / "out"
    args = ["extract", str(slow_dataset), "--jobs", jobs, "--batch-size", "2"]
    proc = _stop_midway(args, out, signal.SIGINT)
    stderr = proc.stderr
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted: ") and line.endswith(
        " of 40 clips done; run the same command again to resume")
    done = int(line.split()[1])
    assert 0 < done < 40
    assert len(list((out / ".checkpoint").glob("*/batch-*.npz"))) >= done // 2
    again = _run(*args, "--out", str(out))
    assert again.returncode == 0 and "40 clips ok, 0 failed" in again.stdout


def test_demo_data_command(tmp_path):
    proc = _run("demo-data", str(tmp_path / "demo"), "--clips", "10", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "demo" / "metadata" / "UrbanSound8K.csv").is_file()
    assert (tmp_path / "demo" / ".generated").is_file()
    _one_line_error(_run("demo-data", str(tmp_path / "d2"), "--clips", "0"), "--clips")
