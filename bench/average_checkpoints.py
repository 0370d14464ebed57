"""Average the weights of several checkpoints of one run (stochastic weight averaging done
after the fact) and score the result on the irish.abc held-out tunes.

    python bench/average_checkpoints.py runs/snapshots/step-0* --out runs/averaged \\
        --irish ../shared/data/irish.abc
"""

import argparse

import numpy as np

from abcweb import load_sampler
from abcweb.model import checkpoint
from abcweb.music import corpus

p = argparse.ArgumentParser()
p.add_argument("folders", nargs="+")
p.add_argument("--out", required=True)
p.add_argument("--irish", required=True)
args = p.parse_args()

cks = [checkpoint.load(f) for f in args.folders]
if len({ck.config for ck in cks}) != 1:
    raise SystemExit("checkpoints of different configs cannot be averaged")
mean = {n: np.mean([ck.weights[n] for ck in cks], axis=0) for n in cks[0].weights}
info = dict(cks[-1].info)
info["averaged"] = [str(f) for f in args.folders]
checkpoint.save(checkpoint.Checkpoint(cks[0].config, mean, info), args.out, dtype="float16")
held = corpus.load_irish(args.irish).heldout_text
for f in [*args.folders, args.out]:
    print(f"{f}: held-out {load_sampler(f).score(held):.4f} bpc")
