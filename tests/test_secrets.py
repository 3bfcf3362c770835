"""No secret leaves a run: passwords and tokens in URLs, and a Dask cluster behind TLS.

A dataset on a web server that wants a password (``http://user:pw@host``) and
a token in the query string is read by every worker, yet the password and
the token appear in no output file, no model bundle and no line of output,
on both backends. A ``tls://`` scheduler is reached with certificates from
the environment, and refused with a clear message without them.
"""
from __future__ import annotations

import base64
import contextlib
import datetime
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
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
USER, PASSWORD, TOKEN = "alice", "s3cret-pw-8472", "t0ken-secret-1935"


def _tone(i: int, sr: int = 8000) -> np.ndarray:
    t = np.arange(int(0.4 * sr)) / sr
    return 0.3 * np.sin(2 * np.pi * (200 + 90 * i) * t)


class _Guarded(http.server.SimpleHTTPRequestHandler):
    """Serves a folder only to requests with the password and the token."""

    def _allowed(self) -> bool:
        want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        token = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        return self.headers.get("Authorization") == want and token == TOKEN

    def do_GET(self) -> None:
        if not self._allowed():
            self.send_error(401)
            return
        self.path = urlsplit(self.path).path
        super().do_GET()

    def do_HEAD(self) -> None:
        if not self._allowed():
            self.send_error(401)
            return
        self.path = urlsplit(self.path).path
        super().do_HEAD()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path, write_wav):
    """A guarded web server on 127.0.0.1 with 12 clips and a manifest (one clip missing)."""
    root = tmp_path / "site"
    lines = ["path,label"]
    for i in range(12):
        label = "ab"[i % 2]
        write_wav(root / label / f"{label}{i:02d}.wav", _tone(i), 8000)
        lines.append(f"{label}/{label}{i:02d}.wav,{label}")
    lines.append("a/gone.wav,a")
    (root / "clips.csv").write_text("\n".join(lines) + "\n")
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Guarded, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://{USER}:{PASSWORD}@127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env or ENV, capture_output=True,
                          text=True, timeout=300, check=False)


def _no_secret_in(folder: Path, *texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and TOKEN not in text, text
    for f in folder.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert PASSWORD.encode() not in data and TOKEN.encode() not in data, f


@pytest.mark.parametrize("backend", [["--jobs", "2"], ["--backend", "dask", "--scheduler", "local:2"]],
                         ids=["local", "dask"])
def test_credentials_in_urls_reach_the_workers_and_nothing_else(tmp_path, server, backend):
    root = f"{server}/?token={TOKEN}"
    manifest = f"{server}/clips.csv?token={TOKEN}"
    out = tmp_path / "out"
    proc = _run("-m", "features", "extract", root, "--manifest", manifest, "--out", str(out),
                *backend)
    assert proc.returncode == 0, proc.stderr
    assert "12 clips ok, 1 failed" in proc.stdout  # the workers did get in
    meta = json.loads((out / "features.json").read_text())
    assert meta["root"].startswith("http://127.0.0.1:") and "@" not in meta["root"]
    errors = (out / "errors.csv").read_text()
    assert "gone.wav" in errors
    _no_secret_in(out, proc.stdout, proc.stderr)

    # The model bundle, the artefact people share, carries the dataset's root too.
    run = tmp_path / "run"
    train = _run("-m", "classify", "train", str(out / "features.parquet"), "--out", str(run),
                 "--models", "logreg", "--cv", "stratified", "--k", "2", "--jobs", "1")
    assert train.returncode == 0, train.stderr
    assert json.loads((run / "model" / "bundle.json").read_text())["features_meta"]["root"] == meta["root"]
    _no_secret_in(run, train.stdout, train.stderr)


def test_a_failing_url_is_reported_without_its_secret(tmp_path, server):
    wrong = server.replace(PASSWORD, "wrong-" + PASSWORD)
    proc = _run("-m", "features", "extract", f"{wrong}/?token={TOKEN}", "--manifest",
                f"{wrong}/clips.csv?token={TOKEN}", "--out", str(tmp_path / "out"), "--jobs", "1")
    assert proc.returncode != 0
    assert "clips.csv" in proc.stderr
    _no_secret_in(tmp_path, proc.stdout, proc.stderr)


def test_the_lock_records_the_command_without_its_secret(tmp_path):
    from features.engine.outputs import OutputLock

    argv = sys.argv
    try:
        sys.argv = ["features", "extract", f"https://u:{PASSWORD}@host/x?sig={TOKEN}"]
        with OutputLock(tmp_path / "out"):
            text = (tmp_path / "out" / ".lock").read_text()
    finally:
        sys.argv = argv
    assert "https://host/x" in text and PASSWORD not in text and TOKEN not in text


# ---------------------------------------------------------------- Dask over TLS


def _certificate(folder: Path) -> dict[str, str]:
    """A self-signed certificate and key (the cluster's CA and every member's certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "soundfeatures-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    paths = {"cert": folder / "cert.pem", "key": folder / "key.pem"}
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.TraditionalOpenSSL,
                                               serialization.NoEncryption()))
    return {k: str(v) for k, v in paths.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_tls_scheduler_with_certificates_from_the_environment(tmp_path, write_wav):
    from distributed import Client
    from distributed.security import Security

    root = tmp_path / "ds"
    for i in range(8):
        write_wav(root / "ab"[i % 2] / f"{i}.wav", _tone(i), 8000)
    pem = _certificate(tmp_path)
    tls = ["--tls-ca-file", pem["cert"], "--tls-cert", pem["cert"], "--tls-key", pem["key"]]
    port = _free_port()
    address = f"tls://127.0.0.1:{port}"
    dask = str(Path(sys.executable).with_name("dask"))
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--protocol", "tls", "--no-dashboard", *tls], env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", "1", "--nthreads", "1",
                                   "--host", "127.0.0.1", "--no-dashboard", *tls], env=ENV,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True))
    try:
        security = Security(tls_ca_file=pem["cert"], tls_client_cert=pem["cert"],
                            tls_client_key=pem["key"], require_encryption=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, security=security, timeout=10) as client:
                    client.wait_for_workers(1, timeout=120)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        # Without certificates: a clear refusal, before any connection.
        bare = _run("-m", "features", "extract", str(root), "--out", str(tmp_path / "bare"),
                    "--backend", "dask", "--scheduler", address)
        assert bare.returncode == 1
        assert "DASK_DISTRIBUTED__COMM__TLS__CA_FILE" in bare.stderr
        assert "Traceback" not in bare.stderr
        env = {**ENV, "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": pem["cert"],
               "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": pem["cert"],
               "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": pem["key"]}
        proc = _run("-m", "features", "extract", str(root), "--out", str(tmp_path / "out"),
                    "--backend", "dask", "--scheduler", address, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "8 clips ok, 0 failed" in proc.stdout
        meta = json.loads((tmp_path / "out" / "features.json").read_text())
        assert meta["runner"]["scheduler"] == address
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)
