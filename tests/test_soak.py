"""A 2-minute bench/soak.py: 16 headless visitors on one `streamlit run` server, a training
visitor every minute, and what the server holds before and after. Checks that nothing leaks
(open files, child processes, temporary files back at their start level once the visitors
have gone and Streamlit has dropped their sessions), not timings and not memory growth, which
need the 30-minute run on a calm machine (README). The sessions are dropped after 10 s here
(server.disconnectedSessionTTL) instead of Streamlit's 2 minutes, so the test waits less.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from abcweb.model import checkpoint

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

pytestmark = pytest.mark.slow

TRAIN_STEPS = 10


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    weights = os.environ.get("ABCWEB_WEIGHTS") or None
    try:
        checkpoint.load(weights)
    except checkpoint.CheckpointError as e:
        pytest.skip(f"no model to sample from: {e}")
    import soak

    argv = ["--minutes", "2", "--train-every", "60", "--train-steps", str(TRAIN_STEPS),
            "--train-timeout", "300", "--session-ttl", "10", "--every", "2",
            "--workdir", str(tmp_path_factory.mktemp("soak"))]
    if weights:
        argv += ["--weights", weights]
    result = soak.run(soak.parse_args(argv))
    print("\n" + soak.report(result))
    return result


def test_every_session_went_well_and_every_trainer_sampled_its_model(soak):
    assert not soak["problems"], soak["problems"]
    assert soak["tunes"] >= 16
    assert len(soak["trainers"]) == 2
    for t in soak["trainers"]:
        assert t["error"] is None and f"step {TRAIN_STEPS} of {TRAIN_STEPS}" in t["progress"]


def test_the_census_saw_what_the_run_made(soak):
    # Without these the checks below could pass by measuring nothing.
    start = soak["start"]
    assert start["fds"] > 0 and "abcweb.sampling.sample_worker" in start["children"]
    assert soak["rss_mb"]["trainer_peak"] > 0  # the training workers, counted apart
    # A trainer's worker and its folder live for seconds: the peaks within each minute.
    assert max(m["tmp_most"] for m in soak["per_minute"]) > start["tmp_entries"]
    assert max(m["children_most"] for m in soak["per_minute"]) > len(start["children"])


def test_nothing_leaks(soak):
    v = soak["verdict"]
    for what in ("fds", "children", "tmp"):
        assert v[what]["ok"], (what, v[what]["seen"])
    assert not any(soak["leftover_tmp_after_stop"].values())
