"""How real a draft's melody is: a tie-breaker for the best of several drafts.

The model's drafts move by a whole tone more often than real tunes do and leap less (its
training mix leans on O'Neill's collection, whose melodies step more than irish.abc's). The
yardsticks see it as an interval histogram a little further from the real tunes' than two
halves of the real tunes are from each other.

A melody prior holds, for every melodic interval and every scale degree, the log of how much
more often real tunes use it than the model's own drafts do: log(real share / drafted share).
A draft's melody score is the mean of those over its notes, weighted: positive when its melody
leans the way real tunes do. Among drafts that are equally valid, equally at home and equally
in time, the one with the more real melody wins; the score is clipped to +-MAX_SCORE, so it
never outweighs a yardstick (abcweb/sampling/drafts.py's weights are 1 and more).

The prior belongs to one model (its drafts are what it corrects), so it is stored in that
model's model.json (`melody_prior`) and fitted by `python -m abcweb prior`
(abcweb/evaluation/prior.py): the real tunes are
irish.abc's train pieces (never the held-out ones), the drafts the model's own at the page's
temperature for seeds far from any page's. A model without one picks as it always did, so old
links bring back their tunes.
"""

from __future__ import annotations

import numpy as np

from abcweb.model.checkpoint import Checkpoint, CheckpointError
from abcweb.music import facts

INTERVAL_WEIGHT = 2.0  # measured with bench/bench_drafts.py (weights/README.md)
DEGREE_WEIGHT = 0.5
MAX_SCORE = 0.5  # below every yardstick's weight in Draft.score


def check_prior(prior: dict) -> dict:
    """The prior as stored, checked: a damaged one is refused, not half used."""
    try:
        intervals = np.asarray(prior["intervals"], np.float64)
        degrees = np.asarray(prior["degrees"], np.float64)
        wi, wd = float(prior["interval_weight"]), float(prior["degree_weight"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"bad melody prior: {e}") from None
    if intervals.shape != (2 * facts.INTERVAL_MAX + 1,) or degrees.shape != (12,):
        raise ValueError("bad melody prior: it needs 25 interval and 12 degree values")
    if not (np.isfinite(intervals).all() and np.isfinite(degrees).all()
            and np.isfinite([wi, wd]).all()):
        raise ValueError("bad melody prior: values must be finite")
    return {"intervals": intervals, "degrees": degrees, "interval_weight": wi,
            "degree_weight": wd}


def score(prior: dict | None, read) -> float:
    """A draft's melody score under a checked prior; 0 without one or without a melody."""
    if not prior or read is None or read.key is None or len(read.pitches) < 2:
        return 0.0
    degrees, intervals = facts.melody_bins(read)
    s = (prior["interval_weight"] * prior["intervals"][intervals].mean()
         + prior["degree_weight"] * prior["degrees"][degrees].mean())
    return float(np.clip(s, -MAX_SCORE, MAX_SCORE))


def model_prior(ckpt: Checkpoint) -> dict | None:
    """The checkpoint's melody prior, checked; None when it has none."""
    prior = ckpt.info.get("melody_prior")
    if not prior:
        return None
    try:
        return check_prior(prior)
    except ValueError as e:
        raise CheckpointError(f"{ckpt.path}: {e}") from None
