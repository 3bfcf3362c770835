"""Benchmark: the runner at scale (run by ``make bench``).

Measured in one run, on the same clips:

1. the Dask backend on a running 2-worker cluster (``dask scheduler`` and
   ``dask worker`` started by the benchmark, as clusters are long-running) vs
   the local backend with 2 processes, on 2,000 clips of 2 s and on 1,000 of
   4 s (goal: ratio >= 0.9 on both: no per-clip chatter between workers and
   the driver), a throw-away ``local:2`` cluster with its start-up for
   comparison, and all tables byte-identical;
2. ``--jobs 1`` throughput of this checkout vs ``--baseline`` (default main
   before the engine became its own package, issue 17; goal: within 3%);
3. the Dask scheduler's overhead per task, from a run of no-op tasks, and
   from it the cluster size at which the scheduler would be the bottleneck
   for this workload;
4. the parent's peak memory over 100,000 short clips vs 10,000 (hard links
   of a few files; goal: within 1.5x);
4b. ``classify predict ROOT --out DIR --jobs 2`` over the same clips (a
   logreg bundle trained on the 10,000): the parent's peak memory, 100,000
   vs 10,000 clips (goal: within 1.5x), and a run whose worker is SIGKILLed
   mid-run (same predictions and errors, byte for byte, as a clean run);
5. a worker's peak memory analysing one 10-hour 48 kHz stereo file (goal:
   under 1 GB).

Options: ``--sets`` (default ``2000x2,1000x4``: clips x seconds) for (1),
``--clips`` (default 1000) for (2), ``--many`` (default
100000) for (4), ``--hours`` (default 10) for (5), ``--skip`` to leave parts
out (e.g. ``--skip memory,long``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_features import BENCH, CLIPS, REPO, SECONDS, ensure_clips, write_manifest

BASELINE = "85b1993"  # main before the engine became its own package (issue 17)
GOAL_BACKENDS, GOAL_JOBS1 = 0.9, 0.97
PARTS = ("backends", "jobs1", "overhead", "memory", "predict", "long")


def _extract(args: list[str], *, env: dict | None = None, pythonpath: str | None = None,
             command: tuple[str, ...] = ("features", "extract"), kill_worker_after: float | None = None
             ) -> tuple[float, int]:
    """Run ``python -m features extract ARGS`` (or ``command``); (seconds, peak RSS of that process in kB).

    ``kill_worker_after``: SIGKILL one of its worker processes after that many seconds.
    """
    environ = {**os.environ, **(env or {})}
    if pythonpath:
        environ["PYTHONPATH"] = pythonpath
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", *command, *args, "--quiet"],
                            cwd=REPO, env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _hwm(proc.pid))
        if kill_worker_after is not None and time.perf_counter() - start > kill_worker_after:
            kill_worker_after = None if _kill_a_child(proc.pid) else kill_worker_after
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    _out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"extract failed ({proc.returncode}):\n{err}")
    return elapsed, peak


def _kill_a_child(pid: int) -> bool:
    """SIGKILL one worker process of ``pid`` (a loky worker); whether there was one."""
    import signal

    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for cpid in child.read_text().split():
            cmdline = Path(f"/proc/{cpid}/cmdline").read_bytes()
            if b"loky" in cmdline:
                os.kill(int(cpid), signal.SIGKILL)
                print(f"  (killed worker {cpid} mid-run)")
                return True
    return False


def _hwm(pid: int) -> int:
    """Peak resident memory (VmHWM, kB) of a live process, 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def clips_of(n: int, seconds: float) -> tuple[list[Path], Path]:
    """The first ``n`` benchmark clips cut to ``seconds`` (kept in their own folder); their root."""
    import soundfile as sf

    paths = ensure_clips(n)
    if seconds >= SECONDS:
        return paths, CLIPS
    root = BENCH / f"clips_{seconds:g}s"
    cut = [root / p.relative_to(CLIPS) for p in paths]
    for src, dst in zip(paths, cut):
        if not dst.is_file():
            y, sr = sf.read(src, dtype="int16")
            dst.parent.mkdir(parents=True, exist_ok=True)
            sf.write(dst, y[:int(seconds * sr)], sr, subtype="PCM_16")
    return cut, root


def backends(n: int, seconds: float) -> dict:
    """Local backend vs Dask on a running 2-worker cluster, and vs a throw-away local:2."""
    paths, root = clips_of(n, seconds)
    manifest = write_manifest(paths, root)
    common = [str(root), "--manifest", str(manifest), "--format", "csv"]
    outs = {label: BENCH / f"runner_{label}" for label in ("local", "dask", "dask_local")}
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    cluster = _start_cluster(port)
    try:
        runs = (("local", ["--jobs", "2"]),
                ("dask", ["--backend", "dask", "--scheduler", address]),
                ("dask_local", ["--backend", "dask", "--scheduler", "local:2"]))
        times = {label: [] for label, _ in runs}
        for _ in range(2):  # interleaved, so that machine noise hits all alike
            for label, extra in runs:
                shutil.rmtree(outs[label], ignore_errors=True)
                times[label].append(_extract([*common, "--out", str(outs[label]), *extra])[0])
    finally:
        for p in cluster:
            p.kill()
            p.wait()
    t = {label: min(v) for label, v in times.items()}
    same = all((outs[label] / "features.csv").read_bytes()
               == (outs["local"] / "features.csv").read_bytes() for label in outs)
    ratio = t["local"] / t["dask"]
    print(f"  {n} clips of {seconds:g} s")
    print(f"  local, 2 processes                   {n / t['local']:7.1f} clips/s ({t['local']:.1f} s)")
    print(f"  dask, running 2-worker cluster       {n / t['dask']:7.1f} clips/s ({t['dask']:.1f} s)")
    print(f"  dask, local:2 started with the run   {n / t['dask_local']:7.1f} clips/s "
          f"({t['dask_local']:.1f} s, cluster start-up included)")
    ok = ratio >= GOAL_BACKENDS
    print(f"  dask / local = {ratio:.2f} (goal >= {GOAL_BACKENDS}: {'PASS' if ok else 'FAIL'}); "
          f"local:2 / local = {t['local'] / t['dask_local']:.2f}; "
          f"tables byte-identical: {'PASS' if same else 'FAIL'}")
    return {"clips": n, "seconds": seconds, "local_clips_per_s": n / t["local"],
            "dask_clips_per_s": n / t["dask"], "dask_local_clips_per_s": n / t["dask_local"],
            "ratio": ratio, "identical": same, "ok": ok and same}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_cluster(port: int) -> list[subprocess.Popen]:
    """A scheduler and two single-threaded workers, as on a real cluster, via the dask CLI."""
    from distributed import Client

    dask = str(Path(sys.executable).with_name("dask"))
    # As the README advises; the nanny also sets Dask's default MALLOC_TRIM_THRESHOLD_=65536,
    # which the workers' own allocator settings make harmless (features.engine.work._tune_malloc).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "cwd": REPO}
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], **quiet)
    workers = subprocess.Popen([dask, "worker", f"tcp://127.0.0.1:{port}", "--nworkers", "2",
                                "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
                               **quiet)
    with Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
        client.wait_for_workers(2, timeout=120)
    return [workers, scheduler]


def jobs1(n: int, baseline: str) -> dict:
    paths = ensure_clips(n)
    manifest = write_manifest(paths)
    common = [str(CLIPS), "--manifest", str(manifest), "--format", "csv", "--jobs", "1"]
    with tempfile.TemporaryDirectory() as old:
        archive = subprocess.run(["git", "archive", baseline, "features"], cwd=REPO,
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
            tar.extractall(old, filter="data")
        times = {"before": [], "now": []}
        for _ in range(3):  # interleaved, so that machine noise hits both alike
            for label, pythonpath in (("before", old), ("now", None)):
                out = BENCH / f"jobs1_{label}"
                shutil.rmtree(out, ignore_errors=True)
                times[label].append(_extract([*common, "--out", str(out)],
                                             pythonpath=pythonpath)[0])
    before, now = min(times["before"]), min(times["now"])
    ratio = before / now
    print(f"  --jobs 1 before ({baseline})  {n / before:7.1f} clips/s")
    print(f"  --jobs 1 now                {n / now:7.1f} clips/s")
    ok = ratio >= GOAL_JOBS1
    print(f"  now / before = {ratio:.3f} (goal >= {GOAL_JOBS1}: {'PASS' if ok else 'FAIL'})")
    return {"before_clips_per_s": n / before, "now_clips_per_s": n / now, "ratio": ratio, "ok": ok}


def _noop(i: int) -> int:
    return i


def overhead(n_tasks: int = 4000) -> dict:
    import dask
    from distributed import Client, LocalCluster, wait

    with dask.config.set({"distributed.worker.daemon": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None, silence_logs=50) as cluster, \
            Client(cluster) as client:
        wait(client.map(_noop, range(100), pure=False))  # warm up
        start = time.perf_counter()
        futures = client.map(_noop, range(n_tasks), pure=False)
        wait(futures)
        elapsed = time.perf_counter() - start
    per_task = elapsed / n_tasks
    # A task is a batch of up to 64 clips; at --jobs 1 speed (~6 ms a clip here)
    # that is ~0.4 s of work, so the scheduler keeps up with this many threads:
    batch_seconds = 64 * 0.006
    threads = batch_seconds / per_task
    print(f"  {n_tasks} no-op tasks on 2 workers: {per_task * 1e3:.2f} ms per task "
          f"(scheduler, network and client together)")
    print(f"  with 64-clip batches of ~{batch_seconds:.2f} s the scheduler saturates at about "
          f"{threads:,.0f} worker threads")
    return {"ms_per_task": per_task * 1e3, "saturating_threads": threads}


def memory(many: int) -> dict:
    import soundfile as sf

    root = BENCH / "many"
    base = root / "_base"
    if not (root / ".ready").is_file() or json.loads((root / ".ready").read_text()) != many:
        shutil.rmtree(root, ignore_errors=True)
        base.mkdir(parents=True)
        rng = np.random.default_rng(0)
        sources = []
        for i in range(20):
            p = base / f"s{i}.wav"
            sf.write(p, 0.1 * rng.standard_normal(2000), 8000, subtype="PCM_16")
            sources.append(p)
        print(f"  linking {many} clips in {root} ...", flush=True)
        for i in range(many):
            folder = root / "data" / f"c{i % 10}"
            if i < 10:
                folder.mkdir(parents=True)
            os.link(sources[i % 20], folder / f"{i:06d}.wav")
        (root / ".ready").write_text(json.dumps(many))
    few = root / "few"
    if not few.is_dir():
        for i in range(many // 10):
            folder = few / f"c{i % 10}"
            folder.mkdir(parents=True, exist_ok=True)
            os.link(root / "data" / f"c{i % 10}" / f"{i:06d}.wav", folder / f"{i:06d}.wav")
    results = {}
    for label, data, n in (("small", few, many // 10), ("large", root / "data", many)):
        out = BENCH / f"memory_{label}"
        shutil.rmtree(out, ignore_errors=True)
        seconds, peak = _extract([str(data), "--out", str(out), "--jobs", "2",
                                  "--format", "csv,parquet"])
        results[label] = peak
        print(f"  {n:>7} clips: parent peak {peak / 1024:7.1f} MB, {n / seconds:6.0f} clips/s")
    ratio = results["large"] / results["small"]
    print(f"  parent peak, {many} vs {many // 10} clips: {ratio:.2f}x "
          f"(goal <= 1.5x: {'PASS' if ratio <= 1.5 else 'FAIL'})")
    return {"small_mb": results["small"] / 1024, "large_mb": results["large"] / 1024,
            "ratio": ratio, "ok": ratio <= 1.5}


def predict_memory(many: int) -> dict:
    """``classify predict ROOT --out DIR --jobs 2`` over the clips of (4): parent peak, and a killed worker."""
    root = BENCH / "many"
    table = BENCH / "memory_small" / "features.parquet"
    if not table.is_file():
        sys.exit(f"{table} is missing: run the memory part first (do not --skip memory)")
    run = BENCH / "predict_model"
    shutil.rmtree(run, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "classify", "train", str(table), "--out", str(run), "--models",
                    "logreg", "--cv", "stratified", "--jobs", "2", "--quiet"], cwd=REPO, check=True,
                   capture_output=True)
    results = {}
    for label, data, n in (("small", root / "few", many // 10), ("large", root / "data", many)):
        out = BENCH / f"predict_{label}"
        shutil.rmtree(out, ignore_errors=True)
        seconds, peak = _extract(["--model", str(run / "model"), str(data), "--out", str(out), "--jobs", "2"],
                                 command=("classify", "predict"))
        results[label] = peak
        print(f"  {n:>7} clips: parent peak {peak / 1024:7.1f} MB, {n / seconds:6.0f} clips/s")
    ratio = results["large"] / results["small"]
    print(f"  parent peak, {many} vs {many // 10} clips: {ratio:.2f}x "
          f"(goal <= 1.5x: {'PASS' if ratio <= 1.5 else 'FAIL'})")
    killed = BENCH / "predict_killed"
    shutil.rmtree(killed, ignore_errors=True)
    _extract(["--model", str(run / "model"), str(root / "few"), "--out", str(killed), "--jobs", "2"],
             command=("classify", "predict"), kill_worker_after=3.0)
    same = ((killed / "predictions.csv").read_bytes() == (BENCH / "predict_small" / "predictions.csv").read_bytes()
            and (killed / "errors.csv").read_bytes() == (BENCH / "predict_small" / "errors.csv").read_bytes())
    print(f"  a worker SIGKILLed mid-run: predictions and errors byte-identical to the clean run: "
          f"{'PASS' if same else 'FAIL'}")
    return {"small_mb": results["small"] / 1024, "large_mb": results["large"] / 1024, "ratio": ratio,
            "killed_worker_identical": same, "ok": ratio <= 1.5 and same}


def long_file(hours: float) -> dict:
    import soundfile as sf

    path = BENCH / f"long_{hours:g}h.wav"
    sr = 48000
    if not path.is_file():
        print(f"  writing a {hours:g}-hour 48 kHz stereo file ({path}) ...", flush=True)
        rng = np.random.default_rng(1)
        tmp = path.with_suffix(".partial.wav")
        block = sr * 60
        t = np.arange(block) / sr
        with sf.SoundFile(tmp, "w", sr, 2, subtype="PCM_16", format="RF64") as f:
            for minute in range(int(hours * 60)):
                tone = 0.2 * np.sin(2 * np.pi * (220 + minute % 200) * t)
                noise = 0.02 * rng.standard_normal((block, 2))
                f.write(tone[:, None] + noise)
        os.replace(tmp, path)
    code = ("import resource, sys, time\n"
            "from features.params import FeatureParams\n"
            "from features.analysers import FeatureAnalyser\nfrom features.engine.work import Item, run_batch\n"
            "t = time.perf_counter()\n"
            f"r = run_batch(FeatureAnalyser(FeatureParams()), [Item(0, {str(path)!r}, 'long', 0)])\n"
            "assert not r.errors, r.errors\n"
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        sys.exit(f"long-file run failed:\n{proc.stderr}")
    seconds, peak_kb = proc.stdout.split()
    peak_mb = int(peak_kb) / 1024
    size_gb = path.stat().st_size / 1e9
    print(f"  {hours:g} h of 48 kHz stereo ({size_gb:.1f} GB): worker peak {peak_mb:.0f} MB, "
          f"{float(seconds):.0f} s (goal < 1024 MB: {'PASS' if peak_mb < 1024 else 'FAIL'})")
    return {"hours": hours, "peak_mb": peak_mb, "seconds": float(seconds), "ok": peak_mb < 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="2000x2,1000x4",
                        help="clips x seconds for the backends part (default: %(default)s)")
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--many", type=int, default=100_000)
    parser.add_argument("--hours", type=float, default=10.0)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--skip", default="", help=f"comma-separated parts of {PARTS} to skip")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    results = {}
    if "backends" not in skip:
        print("(1) Dask vs local backend")
        sets = [item.split("x") for item in args.sets.split(",") if item]
        results["backends"] = [backends(int(n), float(seconds)) for n, seconds in sets]
    if "jobs1" not in skip:
        print(f"(2) --jobs 1 now vs {args.baseline}")
        results["jobs1"] = jobs1(args.clips, args.baseline)
    if "overhead" not in skip:
        print("(3) Dask scheduler overhead")
        results["overhead"] = overhead()
    if "memory" not in skip:
        print("(4) parent memory vs clip count")
        results["memory"] = memory(args.many)
    if "predict" not in skip:
        print("(4b) classify predict over a collection: parent memory vs clip count, a killed worker")
        results["predict"] = predict_memory(args.many)
    if "long" not in skip:
        print("(5) worker memory on one long file")
        results["long"] = long_file(args.hours)
    (BENCH / "runner.json").write_text(json.dumps(results, indent=2) + "\n")
    parts = [r for v in results.values() for r in (v if isinstance(v, list) else [v])]
    return 0 if all(r.get("ok", True) for r in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
