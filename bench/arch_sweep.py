"""Architecture sweep for the shipped model: train each candidate for the same wall-clock
minutes on the shipped data mix and print validation bits per character over time.

    python bench/arch_sweep.py --irish ../shared/data/irish.abc --minutes 8 small shipped
"""

import argparse
import time

from abcweb.model import lstm as model
from abcweb.model import train

p = argparse.ArgumentParser()
p.add_argument("--irish", required=True)
p.add_argument("--minutes", type=float, default=8)
p.add_argument("--eval-every", type=int, default=100)
p.add_argument("presets", nargs="+")
args = p.parse_args()

corpora, weights, val, _, _ = train.shipped_data(args.irish)
for name in args.presets:
    cfg = model.preset(name)
    s = train.TrainSettings(steps=10**9, eval_every=args.eval_every, learning_rate=2e-3)
    t = train.Trainer(cfg, corpora, val, s, weights=weights)
    t0 = time.time()
    for m in t.run():
        if m.val_bpc is not None:
            print(f"{name} units={cfg.units} params={cfg.parameter_count()} step={m.step} "
                  f"train_min={m.elapsed_s / 60:.1f} train_bpc={m.train_bpc:.3f} "
                  f"val_bpc={m.val_bpc:.3f}", flush=True)
        if time.time() - t0 > args.minutes * 60:
            print(f"{name} final val_bpc={t.validate():.3f} steps={m.step}", flush=True)
            break
