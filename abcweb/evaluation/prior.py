"""Fitting a model's melody prior (sampling/melody.py): its own draws against real tunes.

Fitting is evaluation, not sampling: it draws the model's own tunes (evaluate.own_draws) and
counts their melodies beside the real tunes', where the sampler only reads the result.

    python -m abcweb prior      # fits the shipped model's prior into its model.json
"""

from __future__ import annotations

import numpy as np

from abcweb.evaluation.evaluate import own_draws
from abcweb.evaluation.yardsticks import histograms
from abcweb.music import facts
from abcweb.sampling.melody import DEGREE_WEIGHT, INTERVAL_WEIGHT

SMOOTHING = 1.0  # added to every bin's count: an interval never seen is rare, not impossible
FIT_SEEDS = 10_000  # the drafts a prior is fitted on start at this seed


def log_ratios(real: np.ndarray, drafted: np.ndarray) -> np.ndarray:
    r = (real + SMOOTHING) / (real + SMOOTHING).sum()
    d = (drafted + SMOOTHING) / (drafted + SMOOTHING).sum()
    return np.log(r / d)


def make_prior(real_facts: list, draft_facts: list, about: dict | None = None) -> dict:
    """A prior from the real tunes' and the drafts' facts (facts.read_tune)."""
    real_deg, real_int = histograms(real_facts)
    draft_deg, draft_int = histograms(draft_facts)
    if not real_int.sum() or not draft_int.sum():
        raise ValueError("a melody prior needs notes in both the real tunes and the drafts")
    return {"intervals": [round(float(x), 4) for x in log_ratios(real_int, draft_int)],
            "degrees": [round(float(x), 4) for x in log_ratios(real_deg, draft_deg)],
            "interval_weight": INTERVAL_WEIGHT, "degree_weight": DEGREE_WEIGHT,
            **(about or {})}


def fit(sampler, real_tunes: list[str], temperature: float, drafts: int = 400,
        length: int = 800) -> dict:
    """Fit a prior for `sampler`'s model: its own draws (the first complete tune of each, seeds
    FIT_SEEDS..) against the real tunes."""
    real = [facts.read_tune(t) for t in real_tunes]
    drawn = [facts.read_tune(t.text)
             for t in own_draws(sampler, drafts, length, temperature, first_seed=FIT_SEEDS) if t]
    return make_prior(real, drawn, {
        "fitted_on": f"{len(real_tunes)} real tunes against the model's own draws at "
                     f"temperature {temperature:g}, seeds {FIT_SEEDS}..{FIT_SEEDS + drafts - 1}"})
