"""What nucleus (top-p) sampling does to the musical yardsticks (issue 13, item 4).

    PYTHONPATH=. .venv/bin/python bench/bench_top_p.py [--weights DIR] [--samples 200]
        [--temperatures 0.9,1.0] [--top-p 1,0.95,0.9,0.8,0.5] [--best-of 8]

For each temperature and top-p: seeds 0..S-1, prime X:, up to 800 characters, the first
complete tune of each, measured with the same code as `python -m abcweb evaluate`
(abcweb/evaluation/yardsticks.py) against irish.abc's held-out tunes; the model's own draw, then the
best of the drafts (what the page gives). The last row is the real tunes, with the spread of
the histogram distances between two halves of them (a model as good as real tunes stays
within it). Counts, not times: it can run beside other work.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from abcweb import load_sampler
from abcweb.evaluation import evaluate, yardsticks
from abcweb.music import corpus

SHARES = ("valid", "bars_fit_meter", "ends_on_tonic", "parts_8_or_16_bars")


def row(label: str, music: dict, distances: list[str]) -> str:
    return f"| {label} | " + " | ".join([f"{music[k]['share']:.1%}" for k in SHARES]
                                        + distances) + " |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--irish", default=os.environ.get("ABCWEB_IRISH",
                                                      "../shared/data/irish.abc"))
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--temperatures", default="0.9,1.0")
    ap.add_argument("--top-p", default="1,0.95,0.9,0.8,0.5")
    ap.add_argument("--best-of", type=int, default=8)
    args = ap.parse_args()
    s = load_sampler(args.weights, "numpy")
    real = yardsticks.measure(list(corpus.load_irish(args.irish).heldout.tunes))

    print(f"{s.ckpt.path}: {args.samples} seeds, prime X:, 800 characters")
    print("| temperature, top-p: draw | valid | bars fit the meter | ends on its tonic | "
          "parts of 8 or 16 bars | scale-degree JS | interval JS |")
    print("|---|---|---|---|---|---|---|")
    for t in map(float, args.temperatures.split(",")):
        for p in map(float, args.top_p.split(",")):
            draws = [("own draw", evaluate.own_draws(s, args.samples, 800, t, p))]
            if args.best_of > 1:
                draws.append((f"best of {args.best_of}", evaluate.best_drafts(
                    s, args.samples, 800, t, args.best_of, p)))
            for label, kept in draws:
                music = yardsticks.measure([k.text if k else None for k in kept])
                d = yardsticks.compare(music, real)
                print(row(f"T {t:g}, top-p {p:g}: {label}", music,
                          [f"{d['scale_degrees_js']:.3f}", f"{d['intervals_js']:.3f}"]),
                      flush=True)
    d = yardsticks.compare(real, real)
    print(row("irish.abc held-out tunes", real,
              [f"halves: {d[f'real_halves_{k}_js']['max']:.3f} max"
               for k in ("scale_degrees", "intervals")]))


if __name__ == "__main__":
    main()
