"""What to train: turns the `train` command's arguments into a plan and runs it.

`--steps` is the total step count of the run in `--out`: running the same command again
resumes from the checkpoint there (weights, Adam moments, step, learning-rate schedule) and
stops at the same place a single uninterrupted run would have.

The shipped recipe has two phases. 1: 6,000 steps on the whole mix (irish.abc's train split
and the music21 collections, error-free tunes only), into `--out`. 2: 400 steps on irish.abc's
train split alone at a low learning rate, into `--out`/irish, keeping the step that scores
best on irish.abc's validation tunes; that model is what `--ship` receives. Phase 2 takes the
irish.abc held-out score from 1.373 to 1.348 bits per character (weights/README.md).
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from abcweb.model import checkpoint as ckpt_io
from abcweb.model.lstm import preset
from abcweb.model.train import (
    SHIPPED_MIX,
    TRANSPOSED_COPIES,
    Trainer,
    TrainSettings,
    shipped_data,
    transposed_copies,
    valid_only,
)
from abcweb.music.corpus import Corpus

# The shipped recipe (see weights/README.md for how it was chosen).
SHIPPED_SETTINGS = TrainSettings(steps=6000, batch=64, seq_len=100, learning_rate=3e-3,
                                 min_learning_rate=1e-4, decay_steps=5900, warmup_steps=100,
                                 eval_every=250, checkpoint_every=250, precision="auto")
# The transposed recipe continues the first shipped model (kept in weights/ under its id) on
# the same mix plus transposed copies of every training tune: four times the data in the
# yardstick's style, so it can train longer before it overfits.
PREVIOUS_MODEL = "weights/de2eb17119ae"
TRANSPOSED_SETTINGS = TrainSettings(steps=3000, batch=64, seq_len=100, learning_rate=1.5e-3,
                                    min_learning_rate=5e-5, decay_steps=2900, warmup_steps=100,
                                    eval_every=250, checkpoint_every=250, precision="auto")
IRISH_SETTINGS = TrainSettings(steps=400, batch=64, seq_len=100, learning_rate=3e-4,
                               eval_every=50, checkpoint_every=50, precision="auto")


@dataclass
class Plan:
    out: Path
    config: object
    train: list[Corpus]
    weights: list[float]
    val: Corpus | None
    settings: TrainSettings
    init: ckpt_io.Checkpoint | None = None
    ship: Path | None = None
    minutes: float = 0.0
    data: dict = field(default_factory=dict)
    note: str = ""
    extra_val: dict = field(default_factory=dict)
    irish_path: str | None = None  # the shipped recipe's phase 2 reads irish.abc again
    recipe: str | None = None

    @property
    def select(self) -> str:
        """The metric the best model is picked by: irish.abc's validation tunes when trained
        on them (the yardstick's style), else the whole validation split."""
        return "val_irish" if "irish" in self.extra_val else "val_bpc"

    def describe(self) -> list[str]:
        lines = [f"model: {self.config.units} units x {self.config.layers} layer(s), embedding "
                 f"{self.config.embedding}, {self.config.parameter_count():,} parameters"]
        for c, w in zip(self.train, self.weights):
            lines.append(f"train: {c.summary()}" + (f" (x{w:g})" if w != 1 else ""))
        if self.val:
            lines.append(f"validation: {self.val.summary()}")
        if self.note:
            lines.append(self.note)
        return lines


def plan_from_args(args, corpora) -> Plan:
    out = Path(args.out)
    resume = (out / ckpt_io.MANIFEST).exists()
    init = ckpt_io.load(out, optimizer=True) if resume else None
    note = f"resuming {out} at step {init.steps}" if init else ""

    if args.recipe in ("shipped", "transposed"):
        if not args.irish:
            raise ValueError(f"--recipe {args.recipe} needs --irish PATH (the notebook's "
                             "irish.abc)")
        copies = TRANSPOSED_COPIES if args.recipe == "transposed" else None
        train, weights, val, data, irish_val = shipped_data(args.irish, copies=copies)
        extra_val = {"irish": irish_val}
        settings = replace(SHIPPED_SETTINGS if copies is None else TRANSPOSED_SETTINGS)
        config = preset("shipped")
        data = {"mix": data, "recipe": args.recipe}
        if copies is not None and init is None and not args.init:
            args.init = PREVIOUS_MODEL
    else:
        train, weights, val_tunes, data = [], [], [], {}
        if args.irish:
            irish = corpora.load_irish(args.irish).train
            tr, va = irish.split()
            train.append(tr)
            weights.append(SHIPPED_MIX["irish"] if args.corpus else 1.0)
            val_tunes += va.tunes
            data["irish"] = {"tunes": len(irish.tunes), "chars": irish.chars}
        for spec in args.corpus:
            c = corpora.load(spec)
            tr, va = c.split()
            train.append(tr)
            weights.append(1.0)
            val_tunes += va.tunes
            data[c.name] = {"tunes": len(c.tunes), "chars": c.chars}
        if not train:
            raise ValueError("nothing to train on: give --irish PATH, --corpus NAME_OR_FILE or "
                             "--recipe shipped")
        val = Corpus("val", val_tunes)
        settings = TrainSettings(steps=1000, eval_every=200, checkpoint_every=200)
        config = preset(args.preset)
        data = {"corpora": data}

    if args.recipe not in ("shipped", "transposed"):
        extra_val = {}
    if init is None and args.init:
        init = ckpt_io.load(None if args.init == "shipped" else args.init)
        init.info = pretrained_info(init)
        note = f"fine-tuning {init.path} (its vocabulary is kept; other characters are dropped)"
    if init is not None:
        config = init.config
        saved = init.info.get("settings")
        if saved and resume:  # keep the run's schedule unless told otherwise
            settings = TrainSettings(**{k: v for k, v in saved.items()
                                        if k in TrainSettings.__dataclass_fields__})
    overrides = {"steps": args.steps,
                 "learning_rate": args.lr, "batch": args.batch, "seq_len": args.seq_len,
                 "eval_every": args.eval_every, "checkpoint_every": args.checkpoint_every,
                 "seed": args.seed or None, "precision": args.precision}
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    if settings.decay_steps and settings.decay_steps > settings.steps:
        settings = replace(settings, decay_steps=settings.steps - settings.warmup_steps)
    return Plan(out, config, train, weights, val, settings, init,
                Path(args.ship) if args.ship else None, args.minutes, data, note, extra_val,
                args.irish if args.recipe in ("shipped", "transposed") else None, args.recipe)


def pretrained_info(ck: ckpt_io.Checkpoint) -> dict:
    """A fine-tuning run's starting record: where its weights came from, and their story."""
    keep = ("history", "data", "settings", "train_seconds", "val_bpc", "val_irish",
            "finetuned_from")
    # Steps count the whole lineage: a run continued from a fine-tuned model has all of them.
    return {"finetuned_from": str(ck.path), "steps": 0,
            "pretrained": {"steps": ck.total_steps,
                           **{k: ck.info[k] for k in keep if k in ck.info}}}


def irish_phase(plan: Plan, corpora) -> Plan:
    """Phase 2 of the shipped recipe: irish.abc's train split alone, from phase 1's end.
    Only its error-free tunes: 47 of its 662 train tunes open a first ending with no |:
    before it, and a model trained on them writes that error too (weights/README.md)."""
    irish = corpora.load_irish(plan.irish_path).train
    tr, va = irish.split()
    tr = valid_only(tr)
    out = plan.out / "irish"
    if (out / ckpt_io.MANIFEST).exists():
        init = ckpt_io.load(out, optimizer=True)
    else:  # fresh Adam moments: the data and the learning rate change
        init = ckpt_io.load(plan.out)
        init.info = pretrained_info(init)
    data = {"recipe": plan.recipe or "shipped", "phase": 2,
            "irish": {"tunes": len(irish.tunes), "chars": irish.chars,
                      "error_free_train_tunes": len(tr.tunes)}}
    train = [tr]
    # One transposed copy of each tune keeps phase 2 from overfitting.
    if plan.recipe == "transposed":
        train.append(transposed_copies(tr, 1))
        data["irish"]["transposed_tunes"] = len(train[1].tunes)
    # A run with its own window keeps it here too, so the phase tests the same lever, and
    # reads as many characters as the recipe's phase does.
    scale = (IRISH_SETTINGS.batch * IRISH_SETTINGS.seq_len
             / (plan.settings.batch * plan.settings.seq_len))
    settings = replace(IRISH_SETTINGS, batch=plan.settings.batch, seq_len=plan.settings.seq_len,
                       **{k: max(1, round(getattr(IRISH_SETTINGS, k) * scale))
                          for k in ("steps", "eval_every", "checkpoint_every")})
    return Plan(out, init.config, train, [1.0] * len(train), va, settings, init,
                plan.ship, plan.minutes, data, f"phase 2: irish.abc's train split from {plan.out}",
                recipe=plan.recipe)


def run_plan(plan: Plan, log: Callable[[str], None] = print) -> int:
    finished = run_phase(plan if not plan.irish_path else replace(plan, ship=None), log)
    if finished and plan.irish_path:
        from abcweb.music import corpus as corpora
        phase2 = irish_phase(plan, corpora)
        for line in phase2.describe():
            log(line)
        run_phase(phase2, log)
    return 0


def run_phase(plan: Plan, log: Callable[[str], None]) -> bool:
    """Train one plan to its end; False when stopped before it (signal or --minutes)."""
    trainer = Trainer(plan.config, plan.train, plan.val, plan.settings, init=plan.init,
                      weights=plan.weights, info={"data": plan.data},
                      extra_val=plan.extra_val)
    remaining = plan.settings.steps - trainer.step
    if remaining <= 0:
        log(f"{plan.out} already has {trainer.step} steps (--steps {plan.settings.steps})")
        return True
    stop = {"flag": False}

    def on_signal(signum, frame):  # finish the step, save, then exit
        stop["flag"] = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    # A fresh fine-tuning phase ships its own best; a resumed run competes with what it shipped.
    fresh = plan.init is not None and "pretrained" in plan.init.info and plan.init.steps == 0
    best = math.inf if fresh else _best_shipped(plan.ship, plan.select)
    deadline = time.time() + plan.minutes * 60 if plan.minutes else math.inf
    try:
        for m in trainer.run(remaining, save_to=plan.out,
                             should_stop=lambda: stop["flag"] or time.time() > deadline):
            if m.step % 50 == 0 or m.val_bpc is not None:
                log(f"step {m.step} epoch {m.epoch} train {m.train_bpc:.3f} bpc"
                    + (f" val {m.val_bpc:.3f} bpc" if m.val_bpc is not None else "")
                    + "".join(f" {k} {v:.3f}" for k, v in m.extras.items() if v is not None)
                    + f" lr {m.learning_rate:.2e} {m.chars_per_s:,.0f} chars/s "
                    f"{m.elapsed_s / 60:.1f} min")
            score = m.extras.get(plan.select, m.val_bpc)
            if plan.ship and score is not None and score < best:
                best = score
                ck = trainer.checkpoint(m.val_bpc)
                ck.optimizer = None
                ck.info["selected_by"] = plan.select
                ckpt_io.save(ck, plan.ship, dtype="float16")
                log(f"shipped step {m.step} ({plan.select} {score:.3f} bpc) to {plan.ship}")
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    log(f"saved {plan.out} at step {trainer.step}")
    return trainer.step >= plan.settings.steps


def _best_shipped(folder: Path | None, metric: str) -> float:
    """The shipped model's score by `metric`; a model never scored by it is beaten by any."""
    if folder is None or not (folder / ckpt_io.MANIFEST).exists():
        return math.inf
    try:
        return float(ckpt_io.load(folder).info.get(metric, math.inf))
    except ckpt_io.CheckpointError:
        return math.inf
