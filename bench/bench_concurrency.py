"""Does a tune queue behind other threads? 600 characters from the shipped model, alone and
next to 1 and 4 threads of plain Python in the same process (as other visitors' scripts run
in a Streamlit server), through the library's default path (sampling workers) and in the
calling thread (the path before workers). Then checks that both paths write the same text
for a few hundred settings, so share links keep their tunes.

    PYTHONPATH=. .venv/bin/python bench/bench_concurrency.py [--runs 7] [--settings 300]

Run it on a quiet machine: the figures are wall-clock times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

from abcweb.model import checkpoint
from abcweb.sampling.sampler import Sampler, load_sampler


def busy(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        x += 1


def median_seconds(s: Sampler, runs: int, length: int) -> float:
    times = []
    for seed in range(runs):
        t0 = time.perf_counter()
        s.generate("X:", length, 1.0, seed, stop_at_end=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--length", type=int, default=600)
    ap.add_argument("--settings", type=int, default=300, help="settings compared for equality")
    args = ap.parse_args()
    pooled = load_sampler()  # the library's default: sampling workers
    here = Sampler(checkpoint.load(None), "numpy", workers=False)
    pooled.generate("X:", 10, 1.0, 0)  # start the workers
    print(f"{args.length} characters, median of {args.runs} (seconds)")
    print(f"{'busy threads':>12}  {'workers':>8}  {'in thread':>9}")
    alone = None
    for n in (0, 1, 4):
        stop = threading.Event()
        threads = [threading.Thread(target=busy, args=(stop,), daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        try:
            w = median_seconds(pooled, args.runs, args.length)
            h = median_seconds(here, max(3, args.runs // 2), args.length)
        finally:
            stop.set()
            for t in threads:
                t.join()
        alone = alone or w
        print(f"{n:>12}  {w:8.3f}  {h:9.3f}   workers: {w / alone:.2f}x alone")
    same = 0
    t0 = time.perf_counter()
    for i in range(args.settings):
        seed, temperature, top_k = i, [0.0, 0.5, 0.8, 1.0, 1.2, 1.6][i % 6], [0, 0, 5, 12][i % 4]
        prime = ["X:", "X:1\nT:", "X:1\nM:6/8\nL:1/8\nK:D\n", "X:1\nM:4/4\nL:1/8\nK:G\n|:"][i % 4]
        a = pooled.generate(prime, args.length, temperature, seed, top_k)
        b = here.generate(prime, args.length, temperature, seed, top_k)
        same += a.text == b.text and bool((a.logits == b.logits).all())
    print(f"same text and logits through workers and in the thread: {same}/{args.settings} "
          f"settings ({time.perf_counter() - t0:.0f} s)")
    return 0 if same == args.settings else 1


if __name__ == "__main__":
    sys.exit(main())
