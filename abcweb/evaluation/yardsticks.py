"""Musical yardsticks for a set of tunes, the same for generated tunes and real ones.

Per tune, from music/facts.py and the tools:
- valid: `abc2midi -c` finds no error (sound/abccheck.py);
- bars that fit the meter: abc2midi's own rule (abccheck's bad_bars);
- ends on the tonic; parts of 8 or 16 bars; out-of-key notes (facts.read_tune);
- scale-degree and interval histograms, compared between sets by Jensen-Shannon distance, as
  the symbolic-music literature does (Yang and Lerch 2020), beside the same distance between
  random halves of the real tunes;
- form as echoes (facts.read_form), pooled over a set's bars: bar echo, 2-bar phrase echo and
  near echo, and, since copy-paste is as wrong as never coming back, tunes with LOOP_RUN equal
  bars in a row and tunes that echo more of their bars than any real tune. Intervals resample
  whole tunes; the real spread is each share over random halves of the real tunes.
"""

from __future__ import annotations

import math
import random

import numpy as np

from abcweb.music.facts import (
    INTERVAL_MAX,
    LOOP_RUN,
    Form,
    TuneFacts,
    in_form,
    melody_bins,
    read_form,
    read_tune,
)
from abcweb.sound import abccheck

BOOTSTRAP = 1000  # resamples of the tunes for a pooled share's interval
HALVES = 20  # random splits of the real tunes into halves, for their spread


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of a share k/n."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, mid - half), min(1.0, mid + half))


def histograms(facts: list[TuneFacts]) -> tuple[np.ndarray, np.ndarray]:
    degrees = np.zeros(12)
    intervals = np.zeros(2 * INTERVAL_MAX + 1)
    for f in facts:
        if f.key is None or not f.pitches:
            continue
        degree_bins, interval_bins = melody_bins(f)
        np.add.at(degrees, degree_bins, 1)
        np.add.at(intervals, interval_bins, 1)
    return degrees, intervals


def js_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2: 0 same, 1 disjoint) between two histograms."""
    if a.sum() == 0 or b.sum() == 0:
        return 1.0
    p, q = a / a.sum(), b / b.sum()
    m = (p + q) / 2

    def kl(x, y):
        nz = x > 0
        return float((x[nz] * np.log2(x[nz] / y[nz])).sum())

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


def measure(texts: list[str | None], check: bool = True) -> dict:
    """The yardsticks of a set of tunes (None: a sample that never completed a tune)."""
    n = len(texts)
    done = [t for t in texts if t]
    facts = [read_tune(t) for t in done]
    valid = bars = bad = 0
    if check:
        for t in done:
            r = abccheck.check(t)
            valid += r.valid
            bars += r.bars
            bad += r.bad_bars
    tonic = [f.ends_on_tonic for f in facts]
    parts = [p for f in facts for p in f.parts]
    notes = sum(len(f.pitches) for f in facts)
    out = sum(f.out_of_key for f in facts)
    formed = sum(in_form(*p) for p in parts)
    row = {
        "tunes": n, "completed": len(done),
        "ends_on_tonic": _share(sum(bool(x) for x in tonic), n),
        "parts_8_or_16_bars": _share(formed, len(parts)),
        "out_of_key_notes": _share(out, notes),
    }
    if check:
        row["valid"] = _share(valid, n)
        row["bars_fit_meter"] = _share(bars - bad, bars)
    forms = [read_form(t) for t in done]
    row.update(form_shares(forms))
    row["_facts"], row["_forms"] = facts, forms
    return row


def _share(k: int, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"count": k, "of": n, "share": k / n if n else 0.0, "ci95": [lo, hi]}


# Each pooled share: (its numerator, its denominator) from a tune's Form.
FORM_SHARES = {
    "bar_echo": lambda f: (f.echoes, f.bars),
    "phrase_echo": lambda f: (f.phrase_echoes, f.phrases),
    "near_echo": lambda f: (f.near, f.bars),
    "looping_tunes": lambda f: (f.longest_run >= LOOP_RUN, 1),
}


def form_shares(forms: list[Form], seed: int = 0) -> dict:
    """The form measures pooled over the tunes' bars. The 95% interval resamples whole tunes
    (a bootstrap): a tune's bars echo one another, so they are no independent draws."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(forms), (BOOTSTRAP, len(forms))) if forms else None
    out = {}
    for name, counts in FORM_SHARES.items():
        k, n = np.array([counts(f) for f in forms], dtype=float).reshape(-1, 2).T
        share = k.sum() / n.sum() if n.sum() else 0.0
        lo = hi = share
        if picks is not None:
            boot = k[picks].sum(1) / np.maximum(n[picks].sum(1), 1)
            lo, hi = np.percentile(boot, [2.5, 97.5])
        out[name] = {"count": int(k.sum()), "of": int(n.sum()), "share": float(share),
                     "ci95": [float(lo), float(hi)]}
    return out


def compare(generated: dict, real: dict, splits: int = 20, seed: int = 0) -> dict:
    """JS distances of the histograms: generated against real, and random halves of the real
    tunes against each other (the spread a model as good as the real tunes stays within)."""
    g_deg, g_int = histograms(generated["_facts"])
    r_deg, r_int = histograms(real["_facts"])
    rng = random.Random(seed)
    halves_deg, halves_int = [], []
    facts = list(real["_facts"])
    for _ in range(splits):
        rng.shuffle(facts)
        a, b = facts[: len(facts) // 2], facts[len(facts) // 2:]
        (ad, ai), (bd, bi) = histograms(a), histograms(b)
        halves_deg.append(js_distance(ad, bd))
        halves_int.append(js_distance(ai, bi))
    most = max((f.echoes / f.bars for f in real["_forms"] if f.bars), default=0.0)
    over = sum(f.bars > 0 and f.echoes / f.bars > most for f in generated["_forms"])
    return {"scale_degrees_js": js_distance(g_deg, r_deg),
            "intervals_js": js_distance(g_int, r_int),
            "real_halves_scale_degrees_js": {"mean": float(np.mean(halves_deg)),
                                             "max": float(np.max(halves_deg))},
            "real_halves_intervals_js": {"mean": float(np.mean(halves_int)),
                                         "max": float(np.max(halves_int))},
            "real_halves_form": form_spread(real["_forms"], splits, seed),
            # Copy-paste: tunes that echo their own bars more than any real tune does.
            "over_real_most_bar_echo": {**_share(over, len(generated["_forms"])),
                                        "real_most": most}}


def form_spread(forms: list[Form], splits: int = HALVES, seed: int = 0) -> dict:
    """Each form share over random halves of the real tunes (both halves of each split): the
    range a model as good as the real tunes lands in on a set that size."""
    rng = random.Random(seed)
    forms = list(forms)
    shares: dict[str, list[float]] = {name: [] for name in FORM_SHARES}
    for _ in range(splits):
        rng.shuffle(forms)
        for half in (forms[: len(forms) // 2], forms[len(forms) // 2:]):
            for name, x in form_shares(half).items():
                shares[name].append(x["share"])
    return {name: {"min": min(v), "mean": float(np.mean(v)), "max": max(v)}
            for name, v in shares.items()}


def public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}
