"""Faults a run must survive, injected while it runs; then nothing good may be lost.

Workers killed from outside, clips that crash or hang their worker, FIFOs,
an all-bad dataset, a second run into a held folder, a crash between two
output writes, on the local backend and on Dask (a LocalCluster, and a real
``dask scheduler`` / ``dask worker`` pair started through their command
lines), and a dataset read from an S3-API server on 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import faults
import numpy as np
import pandas as pd
import psutil
import pytest

from features import extract as X
from features.engine import outputs
from features.engine.checkpoint import Checkpoint

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240
# The workers of every run (and `dask worker`) can import the tests' faulty analyser.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}


def _tone(i: int, seconds: float = 0.5, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.02 * np.cos(2 * np.pi * 2500 * t)


@pytest.fixture
def dataset(tmp_path, write_wav) -> Path:
    """24 short clips in two class folders."""
    root = tmp_path / "ds"
    for i in range(24):
        label = "ab"[i % 2]
        write_wav(root / label / f"{label}{i:02d}.wav", _tone(i), 16000)
    return root


def _extract(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    env = env or ENV
    command = (faults.command("extract", *args) if faults.FAULTS_ENV in env
               else [sys.executable, "-m", "features", "extract", *args])
    return subprocess.run(command,
                          cwd=REPO, env=env or ENV, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False, **kwargs)


def _start(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(faults.command("extract", *args), cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _faults(**given) -> dict:
    """The environment of ``python tests/faults.py``, which runs the command with these faults."""
    return faults.environment(**given)


@pytest.fixture
def reference(tmp_path, dataset) -> bytes:
    """The table of a clean run."""
    proc = _extract(str(dataset), "--out", str(tmp_path / "ref"), "--jobs", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return (tmp_path / "ref" / "features.csv").read_bytes()


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not list(out.glob(".checkpoint/*/batch-*.npz")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _kill_one(processes: list[psutil.Process]) -> int:
    assert processes, "no worker process found"
    victim = processes[0]
    victim.send_signal(signal.SIGKILL)
    return victim.pid


def _loky_workers(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True)
            if "popen_loky_posix" in " ".join(p.cmdline())]


def _dask_workers(pid: int) -> list[psutil.Process]:
    """Worker processes whose nannies live in process ``pid`` (LocalCluster, dask worker)."""
    return [p for p in psutil.Process(pid).children()
            if "spawn_main" in " ".join(p.cmdline())]


# ------------------------------------------------------------ a worker is killed


@pytest.mark.parametrize("backend", [["--jobs", "2"], ["--backend", "dask", "--scheduler", "local:2"]],
                         ids=["local", "dask"])
def test_worker_killed_mid_run_loses_nothing(tmp_path, dataset, reference, backend):
    out = tmp_path / "out"
    proc = _start(str(dataset), "--out", str(out), "--batch-size", "4", *backend,
                  env=_faults(delay=0.15))
    try:
        _wait_for_checkpoint(out, proc)
        find = _loky_workers if backend[0] == "--jobs" else _dask_workers
        _kill_one(find(proc.pid))
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    assert "24 clips ok, 0 failed" in stdout
    assert (out / "features.csv").read_bytes() == reference
    assert "crash" not in (out / "errors.csv").read_text()


# ------------------------------------------------------- a clip crashes its worker


@pytest.mark.parametrize("backend", [{"jobs": 2}, {"backend": "dask", "scheduler": "local:2"}],
                         ids=["local", "dask"])
def test_clip_that_crashes_its_worker_is_one_error_row(tmp_path, dataset, monkeypatch, capfd,
                                                        backend):
    faults.install({"crash": ["b07.wav"]}, monkeypatch.setattr)
    monkeypatch.setattr(Checkpoint, "remove", lambda self: None)  # to resume from it below
    res = X.extract_dataset(dataset, tmp_path / "out", quiet=True, batch_size=4, **backend)
    assert res.n_ok == 23 and res.exit_code == 0
    [err] = pd.read_csv(res.errors_csv).to_dict("records")
    assert err["path"] == "b/b07.wav" and err["stage"] == "crash"
    assert err["reason"] == "crashed its worker process"
    assert "SIGSEGV" in err["message"] or "died" in err["message"]
    assert "b/b07.wav" not in pd.read_csv(res.tables["csv"])["path"].tolist()
    assert "warning: b/b07.wav:" in capfd.readouterr().err

    # Resumed, the culprit is remembered: it is not run (nor crashes) again.
    again = X.extract_dataset(dataset, tmp_path / "out", quiet=True, batch_size=4, force=True,
                              **backend)
    assert again.n_reused == 24 and again.n_ok == 23
    assert "warning" not in capfd.readouterr().err


def test_worker_killed_by_the_oom_killer_on_one_clip(tmp_path, dataset, monkeypatch):
    faults.install({"kill": ["a04.wav"]}, monkeypatch.setattr)
    res = X.extract_dataset(dataset, tmp_path / "out", quiet=True, jobs=2, batch_size=6)
    [err] = pd.read_csv(res.errors_csv).to_dict("records")
    assert err["path"] == "a/a04.wav" and "SIGKILL" in err["message"]
    assert res.n_ok == 23


# ------------------------------------------------------------------ hangs, FIFOs


@pytest.mark.parametrize("backend", [{"jobs": 2}, {"backend": "dask", "scheduler": "local:2"}],
                         ids=["local", "dask"])
def test_clip_that_stalls_is_a_timeout_row_in_bounded_time(tmp_path, dataset, monkeypatch,
                                                           backend):
    faults.install({"stall": ["a10.wav"]}, monkeypatch.setattr)
    start = time.monotonic()
    res = X.extract_dataset(dataset, tmp_path / "out", quiet=True, batch_size=4,
                            clip_timeout=1.0, **backend)
    assert time.monotonic() - start < 60
    [err] = pd.read_csv(res.errors_csv).to_dict("records")
    assert err["path"] == "a/a10.wav" and err["stage"] == "timeout"
    assert "--clip-timeout" in err["message"]
    assert res.n_ok == 23


def test_fifo_is_reported_without_being_opened(tmp_path, dataset):
    os.mkfifo(dataset / "a" / "pipe.wav")
    start = time.monotonic()
    res = X.extract_dataset(dataset, tmp_path / "out", quiet=True, jobs=1, clip_timeout=600)
    assert time.monotonic() - start < 60  # opening it would wait until the limit
    [err] = pd.read_csv(res.errors_csv).to_dict("records")
    assert err["path"] == "a/pipe.wav" and err["stage"] == "load"
    assert "named pipe (FIFO)" in err["message"] and res.n_ok == 24


# --------------------------------------------------------- systemic failure, locks


def test_all_bad_dataset_exits_4_with_the_reason_counted(tmp_path):
    root = tmp_path / "bad"
    for i in range(5):
        (root / "x").mkdir(parents=True, exist_ok=True)
        (root / "x" / f"{i}.wav").write_text("this is text, not audio\n" * 10)
    proc = _extract(str(root), "--out", str(tmp_path / "out"), "--jobs", "1")
    assert proc.returncode == 4, proc.stderr
    assert "0 clips ok, 5 failed" in proc.stdout
    assert "  5 clips: it contains text, not audio (stage load)" in proc.stdout
    assert "no clip could be analysed" in proc.stdout
    assert (tmp_path / "out" / "errors.csv").is_file()


def test_second_run_into_a_held_folder_is_refused(tmp_path, dataset):
    out = tmp_path / "out"
    with outputs.OutputLock(out):
        proc = _extract(str(dataset), "--out", str(out), "--jobs", "1")
    assert proc.returncode == 5
    assert "is in use by another run" in proc.stderr and f"pid {os.getpid()}" in proc.stderr
    assert not (out / "features.csv").exists()


def test_lock_left_by_a_killed_run_does_not_block(tmp_path, dataset):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": 999999, "host": socket.gethostname(),
                                           "running": True, "started": "2026-01-01T00:00:00Z"}))
    proc = _extract(str(dataset), "--out", str(out), "--jobs", "1")
    assert proc.returncode == 0, proc.stderr
    assert "took over the lock" in proc.stderr and "pid 999999" in proc.stderr


def test_live_run_holds_the_folder_until_it_ends(tmp_path, dataset):
    out = tmp_path / "out"
    first = _start(str(dataset), "--out", str(out), "--jobs", "1", env=_faults(delay=0.1))
    try:
        _wait_for_checkpoint(out, first)
        second = _extract(str(dataset), "--out", str(out), "--jobs", "1")
        assert second.returncode == 5 and f"pid {first.pid}" in second.stderr
        first.communicate(timeout=TIMEOUT)
        assert first.returncode == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
    outputs.verify_outputs(out)  # the second run did not disturb the first


# --------------------------------------------------------------- output set


def test_crash_between_output_writes_never_leaves_a_mixed_set(tmp_path, dataset):
    out = tmp_path / "out"
    assert _extract(str(dataset), "--out", str(out), "--jobs", "1").returncode == 0
    old = outputs.verify_outputs(out)

    crashed = _extract(str(dataset), "--out", str(out), "--jobs", "1", "--sr", "16000",
                       env=_faults(commit_crash_after=1))
    assert crashed.returncode == -signal.SIGKILL
    # features.csv is the new one, the rest old: no reader may take it for a set.
    with pytest.raises(outputs.OutputMismatchError, match="being replaced when a run stopped"):
        outputs.verify_outputs(out / "features.csv")
    meta = json.loads((out / "features.json").read_text())
    assert meta["param_key"] == old["param_key"]

    rerun = _extract(str(dataset), "--out", str(out), "--jobs", "1", "--sr", "16000")
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed: 24 of 24 clips taken from the checkpoint" in rerun.stdout
    assert outputs.verify_outputs(out)["params"]["sr"] == 16000


def test_a_changed_table_is_refused(tmp_path, dataset):
    res = X.extract_dataset(dataset, tmp_path / "out", quiet=True, jobs=1)
    with open(res.tables["csv"], "a", encoding="utf-8") as f:
        f.write("extra\n")
    with pytest.raises(outputs.OutputMismatchError, match="SHA-256 differs"):
        outputs.verify_outputs(res.tables["parquet"])
    res.metadata.unlink()
    with pytest.raises(outputs.OutputMismatchError, match="features.json is missing"):
        outputs.verify_outputs(res.tables["parquet"])


# --------------------------------------------------- a real scheduler and worker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_cli(*args: str) -> subprocess.Popen:
    dask = str(Path(sys.executable).with_name("dask"))
    return subprocess.Popen([dask, *args], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _wait_for_workers(address: str, n: int) -> None:
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(n, timeout=120)


def test_real_scheduler_and_workers_from_the_command_line(tmp_path, dataset, reference):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = _dask_cli("scheduler", "--host", "127.0.0.1", "--port", str(port),
                          "--no-dashboard")
    workers = _dask_cli("worker", address, "--nworkers", "2", "--nthreads", "1",
                        "--host", "127.0.0.1", "--no-dashboard")
    try:
        _wait_for_workers(address, 2)
        out = tmp_path / "out"
        proc = _start(str(dataset), "--out", str(out), "--backend", "dask", "--scheduler",
                      address, "--batch-size", "4", env=_faults(delay=0.15))
        try:
            _wait_for_checkpoint(out, proc)
            _kill_one(_dask_workers(workers.pid))  # nannies run in the CLI process
            _stdout, stderr = proc.communicate(timeout=TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode == 0, stderr
        assert (out / "features.csv").read_bytes() == reference
        assert json.loads((out / "features.json").read_text())["runner"]["scheduler"] == address
    finally:
        for p in (workers, scheduler):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)


def test_unreachable_scheduler_is_a_clear_error(tmp_path, dataset):
    proc = _extract(str(dataset), "--out", str(tmp_path / "out"), "--backend", "dask",
                    "--scheduler", f"tcp://127.0.0.1:{_free_port()}")
    assert proc.returncode == 1
    assert "cannot connect to the Dask scheduler" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ object storage


@pytest.fixture
def s3(tmp_path):
    """An S3-API server (moto) on 127.0.0.1 and the environment to reach it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {**ENV, "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        yield env
    finally:
        server.stop()


def test_dataset_on_s3_is_read_by_the_workers(tmp_path, dataset, reference, s3):
    import boto3

    client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="clips")
    for f in sorted(dataset.rglob("*.wav")):
        client.upload_file(str(f), "clips", f"sets/ds/{f.relative_to(dataset).as_posix()}")
    client.put_object(Bucket="clips", Key="sets/ds/b/gone.wav", Body=b"")  # an empty object
    out = tmp_path / "out"
    proc = _extract("s3://clips/sets/ds", "--out", str(out), "--jobs", "2", env=s3)
    assert proc.returncode == 0, proc.stderr
    table = (out / "features.csv").read_bytes()
    assert table == reference
    [err] = pd.read_csv(out / "errors.csv").to_dict("records")
    assert err["path"] == "b/gone.wav" and err["stage"] == "load"
    assert json.loads((out / "features.json").read_text())["root"] == "s3://clips/sets/ds"

    # The manifest can live there too; paths in it are relative to ROOT.
    client.put_object(Bucket="clips", Key="lists/m.csv", Body=b"path,label\na/a00.wav,x\n")
    proc = _extract("s3://clips/sets/ds", "--manifest", "s3://clips/lists/m.csv", "--out",
                    str(tmp_path / "m"), "--jobs", "1", env=s3)
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(tmp_path / "m" / "features.csv")["path"].tolist() == ["a/a00.wav"]


def test_dataset_on_a_web_server_with_a_manifest(tmp_path, dataset, reference):
    lines = ["path,label"] + [f"{p.relative_to(dataset).as_posix()},{p.parent.name}"
                              for p in sorted(dataset.rglob("*.wav"))]
    (dataset / "clips.csv").write_text("\n".join(lines) + "\n")
    handler = functools.partial(_QuietHandler, directory=str(dataset))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        proc = _extract(url, "--manifest", f"{url}/clips.csv", "--out", str(tmp_path / "out"),
                        "--jobs", "2")
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "features.csv").read_bytes() == reference


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_patches_of_a_dataset_on_s3_take_their_length_from_its_headers(tmp_path, dataset, s3):
    """A folders-layout dataset has no fixed clip length: it is read from the clips' headers,
    through the same storage as the audio (it used to fail: 'cannot tell the clips' length')."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="clips")
    for f in sorted(dataset.rglob("*.wav")):
        client.upload_file(str(f), "clips", f"ds/{f.relative_to(dataset).as_posix()}")
    out = tmp_path / "patches"
    proc = subprocess.run([sys.executable, "-m", "features", "patches", "s3://clips/ds", "--out",
                           str(out), "--jobs", "1", "--n-mels", "16"], cwd=REPO, env=s3,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "patches.json").read_text())
    assert meta["params"]["duration"] == 0.5  # the clips' median length
    assert meta["clips"]["ok"] == 24


def test_no_readable_header_says_why_and_how_to_give_a_duration(tmp_path):
    from features.errors import UsageError
    from features.io.datasets import discover
    from features.patches import default_duration

    root = tmp_path / "ds"
    (root / "x").mkdir(parents=True)
    (root / "x" / "a.wav").write_text("not audio")
    with pytest.raises(UsageError, match=r"no clip header could be read .*x/a.wav.*--duration"):
        default_duration(discover(root))
