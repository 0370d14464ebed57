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
never outweighs a yardstick (abcweb/drafts.py's weights are 1 and more).

The prior belongs to one model (its drafts are what it corrects), so it is stored in that
model's model.json (`melody_prior`) and fitted by `python -m abcweb prior`: the real tunes are
irish.abc's train pieces (never the held-out ones), the drafts the model's own at the page's
temperature for seeds far from any page's. A model without one picks as it always did, so old
links bring back their tunes.
"""

from __future__ import annotations

import numpy as np

from . import yardsticks

INTERVAL_WEIGHT = 2.0  # measured with bench/bench_drafts.py (weights/README.md)
DEGREE_WEIGHT = 0.5
MAX_SCORE = 0.5  # below every yardstick's weight in Draft.score
SMOOTHING = 1.0  # added to every bin's count: an interval never seen is rare, not impossible
FIT_SEEDS = 10_000  # the drafts a prior is fitted on start at this seed


def log_ratios(real: np.ndarray, drafted: np.ndarray) -> np.ndarray:
    r = (real + SMOOTHING) / (real + SMOOTHING).sum()
    d = (drafted + SMOOTHING) / (drafted + SMOOTHING).sum()
    return np.log(r / d)


def make_prior(real_facts: list, draft_facts: list, about: dict | None = None) -> dict:
    """A prior from the real tunes' and the drafts' facts (yardsticks.read_tune)."""
    real_deg, real_int = yardsticks.histograms(real_facts)
    draft_deg, draft_int = yardsticks.histograms(draft_facts)
    if not real_int.sum() or not draft_int.sum():
        raise ValueError("a melody prior needs notes in both the real tunes and the drafts")
    return {"intervals": [round(float(x), 4) for x in log_ratios(real_int, draft_int)],
            "degrees": [round(float(x), 4) for x in log_ratios(real_deg, draft_deg)],
            "interval_weight": INTERVAL_WEIGHT, "degree_weight": DEGREE_WEIGHT,
            **(about or {})}


def check_prior(prior: dict) -> dict:
    """The prior as stored, checked: a damaged one is refused, not half used."""
    try:
        intervals = np.asarray(prior["intervals"], np.float64)
        degrees = np.asarray(prior["degrees"], np.float64)
        wi, wd = float(prior["interval_weight"]), float(prior["degree_weight"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"bad melody prior: {e}") from None
    if intervals.shape != (2 * yardsticks.INTERVAL_MAX + 1,) or degrees.shape != (12,):
        raise ValueError("bad melody prior: it needs 25 interval and 12 degree values")
    if not (np.isfinite(intervals).all() and np.isfinite(degrees).all()
            and np.isfinite([wi, wd]).all()):
        raise ValueError("bad melody prior: values must be finite")
    return {"intervals": intervals, "degrees": degrees, "interval_weight": wi,
            "degree_weight": wd}


def score(prior: dict | None, facts) -> float:
    """A draft's melody score under a checked prior; 0 without one or without a melody."""
    if not prior or facts is None or facts.key is None or len(facts.pitches) < 2:
        return 0.0
    degrees, intervals = yardsticks.melody_bins(facts)
    s = (prior["interval_weight"] * prior["intervals"][intervals].mean()
         + prior["degree_weight"] * prior["degrees"][degrees].mean())
    return float(np.clip(s, -MAX_SCORE, MAX_SCORE))


def fit(sampler, real_tunes: list[str], temperature: float, drafts: int = 400,
        length: int = 800) -> dict:
    """Fit a prior for `sampler`'s model: its own draws (the first complete tune of each, seeds
    FIT_SEEDS..) against the real tunes."""
    from .evaluate import own_draws  # evaluate imports drafts, which imports this module

    real = [yardsticks.read_tune(t) for t in real_tunes]
    drawn = [yardsticks.read_tune(t.text)
             for t in own_draws(sampler, drafts, length, temperature, first_seed=FIT_SEEDS) if t]
    return make_prior(real, drawn, {
        "fitted_on": f"{len(real_tunes)} real tunes against the model's own draws at "
                     f"temperature {temperature:g}, seeds {FIT_SEEDS}..{FIT_SEEDS + drafts - 1}"})
