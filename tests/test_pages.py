"""classify.pages: values are escaped whatever they are called, and the templates ship in the wheel."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pagecheck import page_text, parse_page
from tinyrun import demo_table, train_run

from classify.pages import build_eda, build_report

REPO = Path(__file__).resolve().parents[1]
NASTY = '<script>alert("x")</script><b>&amp;'


def test_the_eda_page_escapes_class_names(tmp_path):
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    for label in (NASTY.replace("/", "|"), "dog"):  # '/' cannot be in a folder name
        (root / label).mkdir(parents=True)
        sf.write(root / label / "a.wav", rng.normal(0, 0.1, 4000).astype("float32"), 8000)
    index = build_eda(root, out=tmp_path / "eda", examples=1)
    html = index.read_text(encoding="utf-8")
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;|script&gt;&lt;b&gt;&amp;amp;" in html
    assert NASTY.replace("/", "|") in page_text(parse_page(index))


def test_the_report_escapes_values_from_the_run_folder(demo_root, tmp_path):
    train_run(demo_table(demo_root, tmp_path / "features"), tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    info["protocol"]["warnings"] = [NASTY]
    info["versions"]["numpy"] = NASTY
    (tmp_path / "run" / "run.json").write_text(json.dumps(info))
    index = build_report(tmp_path / "run", n_wrong=1)
    html = index.read_text(encoding="utf-8")
    assert "<script" not in html and "<b>" not in html
    assert html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;&amp;amp;") == 2
    assert page_text(parse_page(index)).count(NASTY) == 2


@pytest.mark.slow
def test_the_templates_ship_in_the_wheel(tmp_path):
    source = tmp_path / "src"
    for name in ("classify", "features"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    str(source), "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    wheel, = (tmp_path / "dist").glob("*.whl")
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if name.startswith("classify/pages/templates/")}
    expected = {f"classify/pages/templates/{p.name}" for p in (REPO / "classify/pages/templates").iterdir()}
    assert shipped == expected
