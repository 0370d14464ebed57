"""Bar proposals' settings, each measured (issue 23): what the guards in
abcweb/sampling/form.py are for, and what happens without them.

    PYTHONPATH=. .venv/bin/python bench/form_variants.py [--seeds 50] [--first-seed 0]
        [--variants shipped,no-cap,cap-1,...] [--irish PATH] [--weights DIR]

Each variant changes form.py's settings (CAP, SOURCES, PRUNE, FIRST_BAR) for the run and writes
the page's tunes (seed text X:, temperature 0.9, best of 8, 600 characters) for the seeds; the
rows are bench_form.py's --music rows. Counts, not times: it can run beside other work.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_form import LENGTH, MUSIC_HEAD, PAGE_TEMPERATURE, music_row

from abcweb import load_sampler
from abcweb.evaluation import evaluate, yardsticks
from abcweb.music import corpus
from abcweb.sampling import form

SHIPPED = {"CAP": form.CAP, "SOURCES": form.SOURCES, "PRUNE": form.PRUNE,
           "FIRST_BAR": form.FIRST_BAR}
VARIANTS = {
    "shipped": {},
    "no-cap": {"CAP": 10**6},
    "cap-1": {"CAP": 1},
    "cap-2": {"CAP": 2},
    "bar-before-only": {"SOURCES": (("1", 1),)},
    "with-bar-before": {"SOURCES": (("1", 1),) + form.SOURCES},
    "no-part-opener": {"SOURCES": form.SOURCES[:3]},
    "no-prune": {"PRUNE": math.inf},
    "prune-1pc": {"PRUNE": 4.6},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--irish", default=os.environ.get("ABCWEB_IRISH",
                                                      "../shared/data/irish.abc"))
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    real = yardsticks.measure(list(corpus.load_irish(args.irish).heldout.tunes), check=False)
    s = load_sampler(args.weights, "numpy", workers=False)
    print(f"seeds {args.first_seed}..{args.first_seed + args.seeds - 1}; shipped settings "
          f"{SHIPPED}")
    print(MUSIC_HEAD)
    for name in args.variants.split(","):
        for key, value in {**SHIPPED, **VARIANTS[name]}.items():
            setattr(form, key, value)
        gens = evaluate.best_generations(s, args.seeds, LENGTH, PAGE_TEMPERATURE, 8,
                                         first_seed=args.first_seed)
        print(music_row(name, gens, real), flush=True)


if __name__ == "__main__":
    main()
