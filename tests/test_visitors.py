"""A short run of bench/visitors.py: 4 headless visitors (Streamlit's websocket protocol, no
browser) write 2 tunes each on one `streamlit run` server while a fifth trains a model for 10
steps and samples from it. Correctness only: the figures are printed (pytest -s) and attached
to the report, never asserted (this host is shared). About 25 s on an idle 2-core machine.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from abcweb.model import checkpoint

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

pytestmark = pytest.mark.slow

VISITORS, TUNES, TRAIN_STEPS = 4, 8, 10  # each visitor: its link, then one changed widget


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    weights = os.environ.get("ABCWEB_WEIGHTS") or None
    try:
        checkpoint.load(weights)
    except checkpoint.CheckpointError as e:
        pytest.skip(f"no model to sample from: {e}")
    import visitors

    argv = ["--visitors", str(VISITORS), "--tunes", str(TUNES), "--think", "0.5",
            "--train-steps", str(TRAIN_STEPS), "--train-timeout", "300",
            "--workdir", str(tmp_path_factory.mktemp("visitors"))]
    if weights:
        argv += ["--weights", weights]
    args = visitors.parse_args(argv)
    result = visitors.run(args)
    print("\n" + visitors.report(result))
    return result


def test_every_visitor_gets_the_librarys_tune(run, record_property):
    record_property("visitors", json.dumps(run, default=str))
    assert run["tunes"] == TUNES, run["problems"]
    assert run["latency_s"]["n"] == TUNES - VISITORS  # tunes after a changed widget
    assert run["wrong_tunes"] == 0, run["problems"]
    # No exception in any page, every tune with its charts, sheet music and fetched audio
    # (check_tune), no cached-message references, no errors in any session.
    assert not run["problems"], run["problems"]


def test_the_trainer_samples_its_own_model(run):
    t = run["trainer"]
    assert t["error"] is None, run["problems"]
    assert f"step {TRAIN_STEPS} of {TRAIN_STEPS}" in t["progress"]
    assert t["fragment_reruns"] > 0  # it followed the panel's timed reruns
    assert (t["model"] or "").startswith("Trained here")
    assert t["tunes"] == 2  # its link's tune, then its model's (checked in run["problems"])
    assert not [p for p in run["problems"] if p.startswith("trainer")]


def test_the_server_talks_to_nobody_else_and_leaves_nothing(run):
    assert not [p for p in run["problems"] if "other hosts" in p]
    assert run["leftover_tmp_running"]["render"] == 0
    assert not any(run["leftover_tmp_after_stop"].values()), run["leftover_tmp_after_stop"]
