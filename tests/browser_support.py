"""Start the dashboard and drive it with Debian's Chromium (shared by the browser tests and
bench/page_speed.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("ABCWEB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run",
                 # Autoplay rules must not stop the audio element from loading its source.
                 "--autoplay-policy=no-user-gesture-required"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float, output) -> None:
    """Poll Streamlit's health check until it answers `ok`; output() gives the server's log
    for the error when the process dies first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{output()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"streamlit did not answer within {timeout} s")
        time.sleep(0.05)


@contextmanager
def app_server(env: dict | None = None, timeout: float = 60, script: str = "streamlit_app.py"):
    """Run `streamlit run streamlit_app.py` (or serve.py, the page with its security headers)
    on a free port; yields (base URL, seconds from the start of the process until the health
    check answered)."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / script),
           "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
                **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, timeout, lambda: proc.stdout.read().decode(errors="replace"))
        yield url, time.perf_counter() - t0
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# -- reading and driving the page --------------------------------------------------------------
TUNE = '[data-testid="abc-text"]'
CHARTS = '[data-testid="stVegaLiteChart"]'


def tune_text(page) -> str:
    """The tune's ABC as shown (line numbers and marks are not part of the text)."""
    return page.eval_on_selector(
        TUNE, "el => Array.from(el.querySelectorAll('[data-line]'))"
              ".map(d => d.lastChild.textContent).join('\\n')")


def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished the current run (no running indicator)."""
    page.wait_for_function(
        "() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
        " return !w || !/Running|Stop/.test(w.innerText); }", timeout=timeout)


def slider(page, label: str):
    return page.get_by_role("slider", name=label)
