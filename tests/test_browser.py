"""Render the EDA and report pages in headless Chromium and check every image and clip loads.

``make test-browser`` installs Chromium and runs these, and so does CI
(``.ci/run`` installs it and sets ``SOUNDFEATURES_REQUIRE_BROWSER``, under
which a missing browser fails them); elsewhere they are skipped (with the
reason) when no Chromium binary is found.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

# Written into a copy of the page: after load, count images that failed to decode and
# ask every <audio> for its metadata, then leave the verdict in the DOM for --dump-dom.
_CHECK_SCRIPT = """
<script>
window.addEventListener("load", async () => {
  const report = (id, value) => {
    const out = document.createElement("pre");
    out.id = id;
    out.textContent = JSON.stringify(value);
    document.body.appendChild(out);
  };
  const images = [...document.images];
  report("image-check", {images: images.length,
                         broken: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute("src"))});
  const players = [...document.querySelectorAll("audio")];
  const verdicts = await Promise.all(players.map(a => new Promise(done => {
    a.addEventListener("loadedmetadata", () => done(a.duration > 0 ? null : a.getAttribute("src")), {once: true});
    a.addEventListener("error", () => done(a.getAttribute("src")), {once: true});
    a.preload = "metadata";
    a.load();
  })));
  report("audio-check", {audio: players.length, bad_audio: verdicts.filter(v => v)});
});
</script>
"""
ATTEMPTS = 3


#: Set by .ci/run (which installs Chromium first): there a missing browser fails these tests.
REQUIRE_ENV = "SOUNDFEATURES_REQUIRE_BROWSER"


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    reason = ("Chromium is not installed (no /usr/bin/chromium or chromium on PATH); "
              "'make test-browser' installs it and runs this test")
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason}; {REQUIRE_ENV} is set (CI), so a skipped page check is a failure")
    pytest.skip(reason)


@pytest.fixture
def demo(demo_root) -> Path:
    """The 60-clip demo dataset shared by the suite (tests/conftest.py)."""
    return Path(demo_root)


def render_check(chromium: str, index: Path, tmp_path: Path) -> dict:
    """Open a copy of ``index`` (same folder, so relative paths hold) and return the check's verdict.

    On a busy machine Chromium may dump the page before every clip has reported
    back, so an incomplete verdict is retried with a longer time budget.
    """
    probe = index.with_name("_browser_check.html")
    html = index.read_text(encoding="utf-8")
    assert "<script" not in html, "the page itself must not need JavaScript"
    probe.write_text(html.replace("</body>", _CHECK_SCRIPT + "</body>"), encoding="utf-8")
    try:
        for attempt in range(1, ATTEMPTS + 1):
            result = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--mute-audio", f"--user-data-dir={tmp_path / f'chromium-profile-{attempt}'}",
                 f"--virtual-time-budget={20000 * attempt}", "--dump-dom", probe.resolve().as_uri()],
                capture_output=True, text=True, timeout=180, check=False)
            found = dict(re.findall(r'<pre id="(image-check|audio-check)">(.*?)</pre>', result.stdout, re.DOTALL))
            if len(found) == 2:
                break
    finally:
        probe.unlink()
    assert len(found) == 2, (f"Chromium did not finish the page check in {ATTEMPTS} attempts (exit "
                             f"{result.returncode}, got {sorted(found)}): {result.stderr[-1500:]}")
    verdict: dict = {}
    for text in found.values():
        verdict.update(json.loads(text.replace("&quot;", '"').replace("&amp;", "&")))
    return verdict


def test_eda_page_renders_with_every_image_and_clip(demo, tmp_path):
    chromium = _chromium()
    from classify.pages import build_eda

    index = build_eda(demo, out=tmp_path / "eda", examples=1)
    verdict = render_check(chromium, index, tmp_path)
    assert verdict["images"] >= 5 and verdict["broken"] == []
    assert verdict["audio"] == 10 and verdict["bad_audio"] == []


def test_report_page_renders_with_every_image_and_clip(demo, tmp_path):
    chromium = _chromium()
    from tinyrun import demo_table, train_run

    from classify.pages import build_report

    train_run(demo_table(demo, tmp_path / "features"), tmp_path / "run")
    index = build_report(tmp_path / "run", models=["logreg"], n_wrong=3)
    verdict = render_check(chromium, index, tmp_path)
    assert verdict["images"] >= 7 and verdict["broken"] == []
    assert verdict["audio"] == 3 and verdict["bad_audio"] == []


def test_check_detects_a_missing_image(tmp_path):
    """The probe itself must be able to fail: a page with a dangling image is caught."""
    chromium = _chromium()
    index = tmp_path / "index.html"
    index.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title></head><body>'
                     '<img src="missing.png" alt="missing"><audio controls src="missing.wav"></audio></body></html>')
    verdict = render_check(chromium, index, tmp_path)
    assert verdict["broken"] == ["missing.png"] and verdict["bad_audio"] == ["missing.wav"]
