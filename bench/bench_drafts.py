"""What best-of-N drafts buy and cost (abcweb/sampling/drafts.py).

    PYTHONPATH=. .venv/bin/python bench/bench_drafts.py [--weights DIR] [--seeds 200]
        [--temperature 1.0] [--max 16] [--irish ../shared/data/irish.abc] [--no-prior]

Quality: for seeds 0..S-1 it writes the drafts of every seed (prime X:, up to 800 characters),
judges each once with the yardsticks, and prints, for N = 1, 2, 4, 8, 16, the share of kept
tunes that are valid, end on their tonic, and the share of their bars that fit the meter, and
with --irish the kept tunes' scale-degree and interval distances to irish.abc's held-out tunes
(abcweb/evaluation/yardsticks.py). N=1 is the model's own draw: the model card's figures. Drafts are
tie-broken by the model's melody prior (abcweb/sampling/melody.py) as the library does; --no-prior
judges them without it. (Drafts are written here in batches of 25
seeds; the library writes a tune's N drafts as one batch, which can differ in a last float bit.)

Cost: the CPU-seconds of `generate(prime="X:", length=600, best_of=N)` in this process (its
thread plus the abc2midi checks it runs), median of 5 seeds, for each N.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from abcweb import load_sampler
from abcweb.evaluation import yardsticks
from abcweb.music import corpus, tunes
from abcweb.sampling import drafts
from abcweb.sound import abctools


def cpu_now() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.thread_time() + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max", type=int, default=16)
    ap.add_argument("--irish", default=None, help="irish.abc: also the histogram distances")
    ap.add_argument("--no-prior", action="store_true", help="judge without the melody prior")
    args = ap.parse_args()
    s = load_sampler(args.weights, "numpy", workers=False)
    if args.no_prior:
        s.melody_prior = None
    real = (yardsticks.measure(list(corpus.load_irish(args.irish).heldout.tunes))
            if args.irish else None)
    ns = [n for n in (1, 2, 4, 8, 16) if n <= args.max]

    judged: dict[int, list[drafts.Draft]] = {seed: [] for seed in range(args.seeds)}
    texts: dict[int, list[str]] = {seed: [] for seed in range(args.seeds)}
    for i in range(args.max):
        for start in range(0, args.seeds, 25):
            seeds = list(range(start, min(start + 25, args.seeds)))
            gens = s.generate_many("X:", 800, args.temperature,
                                   [drafts.draft_seeds(seed, i + 1)[i] for seed in seeds])
            for seed, g in zip(seeds, gens):
                judged[seed].append(drafts.judge(g.seed, g.text, s.melody_prior))
                texts[seed].append(g.text)

    print(f"{s.ckpt.path}: {args.seeds} seeds, T={args.temperature}, prime X:, 800 chars, "
          f"melody prior {'on' if s.melody_prior else 'off'}")
    print("| drafts | valid | ends on its tonic | bars fit the meter | scale-degree JS | "
          "interval JS | CPU-s per 600-char tune |")
    print("|---|---|---|---|---|---|---|")
    for n in ns:
        picks = {seed: drafts.pick(ds[:n]) for seed, ds in judged.items()}
        kept = [judged[seed][i] for seed, i in picks.items()]
        js = ("-", "-")
        if real:
            first = [tunes.first_complete_tune(texts[seed][i]) for seed, i in picks.items()]
            d = yardsticks.compare(yardsticks.measure([t.text if t else None for t in first]),
                                   real)
            js = (f"{d['scale_degrees_js']:.3f}", f"{d['intervals_js']:.3f}")
        valid = sum(bool(d.valid) for d in kept) / len(kept)
        tonic = sum(d.ends_on_tonic for d in kept) / len(kept)
        bars = sum(d.bars for d in kept)
        bad = sum(d.bad_bars for d in kept)
        costs = []
        for seed in range(1000, 1005):
            abctools.clear_cache()  # a real request meets new drafts: no cached checks
            t0 = cpu_now()
            s.generate("X:", 600, args.temperature, seed, best_of=n, form=False)
            costs.append(cpu_now() - t0)
        print(f"| {n} | {valid:.1%} | {tonic:.1%} | {(bars - bad) / max(bars, 1):.1%} "
              f"({bars - bad}/{bars}) | {js[0]} | {js[1]} | {statistics.median(costs):.3f} |")


if __name__ == "__main__":
    main()
