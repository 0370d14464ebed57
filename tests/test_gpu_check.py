"""bench/gpu_check.py, the script a lent GPU host runs, run here on the CPU (--allow-cpu): its
two child runs, the agreement of the tf backend with NumPy, the timings and the training steps
all work, so the few minutes of a GPU are not spent finding a bug in it. The GPU's own figures
are in the README once a GPU has run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_gpu_check_runs_end_to_end_on_the_cpu():
    cmd = [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--allow-cpu", "--no-install",
           "--settings", "4", "--steps", "5", "--cpu-steps", "5", "--drawn-tunes", "4", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    gpu, cpu = out["gpu"], out["cpu"]
    assert gpu["agreement"] == {"settings": 4, "same": 4, "differ": []}
    assert cpu["gpus"] == []  # CUDA hidden from the CPU run
    for key in ("tf: one tune", "tf: best of 8", "train notebook: chars/s",
                "train shipped: chars/s"):
        assert gpu["times"][key] > 0 and cpu["times"][key] > 0, key
    for key in ("numpy: one tune", "numpy: best of 8", "numpy: best of 8, bar proposals"):
        assert cpu["times"][key] > 0, key


def test_gpu_check_says_so_when_no_gpu_is_seen():
    if subprocess.run([sys.executable, "-c", "import tensorflow as tf; import sys; sys.exit("
                       "not tf.config.list_physical_devices('GPU'))"],
                      capture_output=True).returncode == 0:
        pytest.skip("this host has a GPU")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--no-install"],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1
    assert "sees no GPU" in r.stdout
