"""A short load test: 8 visitors on one `streamlit run` server write and render tunes while a
ninth trains a model in the Train tab (bench/load_test.py does the work; run it directly for
the long version, 200 generations, whose figures go in the release notes).

One run for the module (about a minute on an idle 2-core machine); each test below checks one
promise of it. The figures are printed (pytest -s) and attached to the test report.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from abcweb.model import checkpoint

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

pytestmark = [pytest.mark.slow, pytest.mark.browser]
pytest.importorskip("playwright.async_api")

SESSIONS = 8
GENERATIONS = 16  # each visitor: its link, then one typed seed
LENGTH = 300
TRAIN_STEPS = 10
MAX_RSS_MB = 1500  # Community Cloud gives an app 0.7 to 2.7 GB; training loads TensorFlow


@pytest.fixture(scope="module")
def load(tmp_path_factory):
    from browser_support import CHROMIUM

    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    weights = os.environ.get("ABCWEB_WEIGHTS") or None
    try:
        checkpoint.load(weights)
    except checkpoint.CheckpointError as e:
        pytest.skip(f"no model to sample from: {e}")
    import load_test

    result = load_test.run(SESSIONS, GENERATIONS, LENGTH, TRAIN_STEPS, weights,
                           workdir=str(tmp_path_factory.mktemp("load")))
    print("\nload test: " + json.dumps({k: v for k, v in result.items() if k != "problems"}))
    return result


HOSTS = "asked other hosts"  # checked on its own, below


def problems(result: dict, *words: str) -> list[str]:
    return [p for p in result["problems"] if any(w in p for w in words)
            and (HOSTS in words or HOSTS not in p)]


def test_every_visitor_gets_its_own_tune(load, record_property):
    record_property("load", json.dumps(load))
    assert load["generations"] == GENERATIONS, load["problems"]
    assert load["wrong_tunes"] == 0, load["problems"]
    assert not problems(load, "Error", "exception", "sees a trained model",
                        "another tune"), load["problems"]
    assert load["throughput_per_s"] > 0


def test_the_trainer_samples_its_own_model_and_nobody_else_does(load):
    assert load["trained"] is not None, load["problems"]
    assert f"step {TRAIN_STEPS} of {TRAIN_STEPS}" in load["trained"]["progress"]
    assert load["trained"]["model_shown"] >= 1
    assert not problems(load, "trainer:", "sees a trained model"), load["problems"]


def test_no_render_leaves_temporary_files(load):
    assert load["leftover_tmp"]["render"] == 0, load["problems"]
    assert load["leftover_tmp"]["training"] <= 1  # the trainer's model, while its session lives


def test_server_memory_stays_bounded(load):
    assert load["rss_mb"]["peak"] < MAX_RSS_MB, load["rss_mb"]


def test_the_server_talks_to_nobody_else(load):
    assert not problems(load, "server connected"), load["problems"]


def test_the_pages_ask_nothing_of_other_hosts(load):
    assert not problems(load, HOSTS), load["problems"]
