"""`pip install abcweb` as a user does it: the wheel built from this checkout, installed into a
fresh virtual environment with no extras, and the `abcweb` command run from another folder.

The wheel is built from a copy of the files it is made of, so the checkout gets no build/ or
egg-info folders. pip fetches setuptools and the three dependencies from the package index (or
its cache), as it would for a user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

SAMPLE = ["sample", "--seed", "3", "--length", "300", "--temperature", "0.9"]
NOT_INSTALLED = ["tensorflow", "keras", "streamlit", "altair", "pandas", "music21"]


def run(cmd: list[str], cwd: Path, timeout: float = 600, **env: str):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={k: v for k, v in {**os.environ, **env}.items()
                               if k != "PYTHONPATH"})


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("abcweb", "weights"):
        shutil.copytree(ROOT / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    r = run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(out)],
            src)
    assert r.returncode == 0, r.stderr[-3000:]
    (found,) = out.glob("abcweb-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("venv") / "env"
    base = getattr(sys, "_base_executable", sys.executable)
    r = run([base, "-m", "venv", str(env)], env.parent)
    assert r.returncode == 0, r.stderr
    r = run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], env.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    return env


def test_wheel_holds_the_library_and_every_shipped_model_and_nothing_else(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    models = sorted(p.relative_to(ROOT / "weights") for p in (ROOT / "weights").rglob("*")
                    if p.suffix in (".json", ".npz"))
    assert len(models) >= 6  # the shipped model and two earlier ones, manifest and weights each
    for rel in models:
        assert f"abcweb/weights/{rel}" in names, rel
    modules = {f"abcweb/{p.relative_to(ROOT / 'abcweb')}" for p in (ROOT / "abcweb").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert not [n for n in names if n.split("/")[0] in ("tests", "views", "bench", "deploy")]
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line for line in zipfile.ZipFile(wheel).read(meta).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    plain = [r for r in requires if "extra ==" not in r]
    assert sorted(r.split()[1].split(">")[0].split("<")[0] for r in plain) == \
        ["numpy", "regex", "threadpoolctl"]
    for extra in ("train", "app", "all", "gpu"):
        assert any(f'extra == "{extra}"' in r for r in requires), extra


def test_installed_without_extras_pulls_in_no_tensorflow_nor_streamlit(venv):
    probe = ("import importlib.util, json; print(json.dumps([m for m in "
             f"{NOT_INSTALLED!r} if importlib.util.find_spec(m)]))")
    r = run([str(venv / "bin" / "python"), "-c", probe], venv)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


def test_command_samples_the_same_tune_as_the_checkout_from_any_folder(venv, tmp_path):
    installed = run([str(venv / "bin" / "abcweb"), *SAMPLE], tmp_path)
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.startswith("X:") and "\nK:" in installed.stdout
    here = run([sys.executable, "-m", "abcweb", *SAMPLE], ROOT, PYTHONPATH=str(ROOT))
    assert here.returncode == 0, here.stderr
    assert installed.stdout == here.stdout
    # An earlier shipped model, as an old share link names it, comes from the package data too.
    earlier = sorted(p.name for p in (ROOT / "weights").iterdir() if p.is_dir())[0]
    old = run([str(venv / "bin" / "abcweb"), *SAMPLE, "--model", earlier], tmp_path)
    assert old.returncode == 0, old.stderr
    assert old.stdout.startswith("X:") and old.stdout != installed.stdout


def test_a_missing_extra_is_named(venv, tmp_path):
    r = run([str(venv / "bin" / "abcweb"), "train", "--out", str(tmp_path / "m"),
             "--steps", "1"], tmp_path)
    assert r.returncode == 2
    assert "pip install 'abcweb[train]'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "m").exists()
    code = ("from abcweb import load_sampler\n"
            "try:\n    load_sampler(backend='tf')\n"
            "except ImportError as e:\n    print(e)\n")
    r = run([str(venv / "bin" / "python"), "-c", code], tmp_path)
    assert "pip install 'abcweb[train]'" in r.stdout, (r.stdout, r.stderr)


def test_render_runs_from_the_installed_command(venv, tmp_path):
    if not shutil.which("abc2midi"):
        pytest.skip("abc2midi is not installed (packages.txt)")
    tune = tmp_path / "t.abc"
    tune.write_text("X:1\nT:Scale\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|dcBA GFED|\n")
    r = run([str(venv / "bin" / "abcweb"), "render", str(tune), "--out",
             str(tmp_path / "t.mid")], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "t.mid").read_bytes()[:4] == b"MThd"
