"""Resume a `train` run and keep a weights snapshot every N steps (for checkpoint averaging).

    python bench/resume_snapshots.py --out runs/shipped --irish ../shared/data/irish.abc \\
        --recipe shipped --every 250 --snapshots runs/snapshots
"""

import argparse
from pathlib import Path

from abcweb.model import checkpoint
from abcweb.model.recipes import plan_from_args
from abcweb.model.train import Trainer
from abcweb.music import corpus as corpora

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--irish", required=True)
p.add_argument("--recipe", default="shipped")
p.add_argument("--every", type=int, default=250)
p.add_argument("--snapshots", required=True)
args = p.parse_args()
ns = argparse.Namespace(out=args.out, recipe=args.recipe, irish=args.irish, corpus=[],
                        preset="shipped", init=None, steps=None, minutes=0, lr=None, batch=None,
                        seq_len=None, eval_every=None, checkpoint_every=None, ship=None, seed=0,
                        precision=None)
plan = plan_from_args(ns, corpora)
t = Trainer(plan.config, plan.train, plan.val, plan.settings, init=plan.init,
            weights=plan.weights, info={"data": plan.data}, extra_val=plan.extra_val)
for m in t.run(plan.settings.steps - t.step, save_to=plan.out):
    if m.step % args.every == 0:
        ck = t.checkpoint(m.val_bpc)
        ck.optimizer = None
        checkpoint.save(ck, Path(args.snapshots) / f"step-{m.step:05d}")
        print(m.step, m.val_bpc, m.extras, flush=True)
