"""The process a TrainingJob trains in:  python -m abcweb.web.train_worker JOB_FOLDER

The page server never imports TensorFlow for training: each job runs here, in a process of its
own at a low CPU priority, so a visitor's training neither holds the server's GIL nor adds its
memory to the server's, and all of it is returned to the system when the job ends.

Protocol (one JSON object per line):
- in:  `JOB_FOLDER/job.json`, written by TrainingJob (config, corpora, settings) and, to
  fine-tune, the initial checkpoint in `JOB_FOLDER/init` (plain data only: no pickles); on
  stdin, the line `stop` (finish the step, save, end). End of stdin means the server went
  away: the worker stops and removes the job folder itself, so nothing is left.
- out: {"state": "starting" | "running"}, {"metric": {...}} after every step,
  {"saved": true, "stopped": bool} once the model is in JOB_FOLDER/model, or {"error": "..."}.

Everything else the process prints (TensorFlow's C++ log, warnings) goes to stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

from abcweb.model import extras

NICE = 19  # the page always comes first: training takes what the visitors leave
MAX_PAUSE_S = 2.0  # the longest a worker waits between two steps for visitors' tunes
# At each evaluation the worker writes a short sample with the weights of that step, always
# from the same seed, so the page shows structure appearing as the model learns.
SAMPLE_PRIME, SAMPLE_CHARS, SAMPLE_TEMPERATURE, SAMPLE_SEED = "X:", 160, 0.9, 0
MODEL = "model"  # the checkpoint's folder inside the job folder
INIT = "init"  # the checkpoint a fine-tuning job starts from
SPEC = "job.json"


def write_spec(folder: Path, config, train, val, settings, init, info: dict,
               max_seconds: float) -> None:
    """What the worker needs, as JSON (and a checkpoint folder for `init`)."""
    from dataclasses import asdict

    from abcweb.model import checkpoint as ckpt_io

    def corpus(c):
        return None if c is None else {"name": c.name, "tunes": c.tunes,
                                       "description": c.description}

    if init is not None:
        ckpt_io.save(init, folder / INIT)
    spec = {"config": config.to_dict(), "train": corpus(train), "val": corpus(val),
            "settings": asdict(settings), "info": info, "max_seconds": max_seconds,
            "init": init is not None}
    (folder / SPEC).write_text(json.dumps(spec), encoding="utf-8")


def read_spec(folder: Path) -> dict:
    from abcweb.model import checkpoint as ckpt_io
    from abcweb.model.lstm import ModelConfig
    from abcweb.model.train import TrainSettings
    from abcweb.music.corpus import Corpus

    spec = json.loads((folder / SPEC).read_text(encoding="utf-8"))
    spec["config"] = ModelConfig.from_dict(spec["config"])
    for name in ("train", "val"):
        spec[name] = Corpus(**spec[name]) if spec[name] else None
    spec["settings"] = TrainSettings(**spec["settings"])
    spec["init"] = ckpt_io.load(folder / INIT) if spec["init"] else None
    return spec


def sample_now(trainer) -> str:
    """What the model writes with its weights of this step (NumPy: milliseconds for the
    small presets, and no TensorFlow graph to trace)."""
    from abcweb.model.checkpoint import Checkpoint
    from abcweb.model.lstm import get_weights
    from abcweb.sampling.sampler import Sampler

    ck = Checkpoint(trainer.cfg, get_weights(trainer.model, trainer.cfg))
    g = Sampler(ck, "numpy", workers=False).generate(
        SAMPLE_PRIME, SAMPLE_CHARS, SAMPLE_TEMPERATURE, SAMPLE_SEED, best_of=1,
        stop_at_end=False)
    return g.text


def lower_priority() -> None:
    """Nice 19, and SCHED_IDLE where Linux offers it: the kernel then runs training only on a
    core nobody else wants, and a woken page thread or sampling worker takes the core at once.
    At nice 19 alone a tune took 1.5x its idle time while someone trained (bench/visitors.py).
    Called before any thread starts: threads inherit the policy."""
    try:
        os.nice(NICE)
    except OSError:
        pass
    if hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass


def train_threads() -> int:
    # All cores but one for TensorFlow, so the page keeps a core even at equal priority. On a
    # busy 2-core host one thread even trains the tiny preset faster than two.
    return max(1, (os.cpu_count() or 2) - 1)


class Commands:
    """Reads stdin in a thread: `stop` asks for a save and an end; end of input abandons;
    `pause` and `resume` bracket the time a visitor's tune is being made (training_job)."""

    def __init__(self, stream):
        self.stop = threading.Event()
        self.abandoned = threading.Event()
        self.go = threading.Event()  # cleared while paused
        self.go.set()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            word = line.strip()
            if word == "stop":
                self.stop.set()
                self.go.set()
            elif word == "pause":
                self.go.clear()
            elif word == "resume":
                self.go.set()
        self.abandoned.set()
        self.stop.set()
        self.go.set()

    def wait_turn(self) -> None:
        """Wait while paused, but at most MAX_PAUSE_S: a server that is never idle still
        gets its visitor's model trained, one step per pause."""
        self.go.wait(MAX_PAUSE_S)


def run(folder: Path, out, commands: Commands) -> int:
    def emit(**msg) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    spec = read_spec(folder)
    settings = spec["settings"]
    started = time.perf_counter()

    def should_stop() -> bool:
        return commands.stop.is_set() or time.perf_counter() - started > spec["max_seconds"]

    def before_step() -> bool:
        commands.wait_turn()
        return should_stop()

    emit(state="starting")
    # seconds, once per job: the price of a separate process
    tf = extras.require("tensorflow", "training")

    try:
        tf.config.threading.set_intra_op_parallelism_threads(train_threads())
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    from abcweb.model.train import Trainer

    trainer = Trainer(spec["config"], spec["train"], spec["val"], settings, init=spec["init"],
                      info=spec["info"])
    first = trainer.step
    emit(state="running")
    last_val = None
    done = 0
    for m in trainer.run(settings.steps, save_to=None, should_stop=before_step):
        row = m.as_dict()
        done = row["done"] = m.step - first
        if row.get("val_bpc") is not None:
            last_val = row["val_bpc"]
            row["sample"] = sample_now(trainer)
        emit(metric=row)
    if commands.abandoned.is_set():
        return 0
    trainer.save(folder / MODEL, val_bpc=last_val)
    emit(saved=True, stopped=bool(should_stop() and done < settings.steps))
    return 0


def main(argv: list[str]) -> int:
    folder = Path(argv[1])
    # The protocol gets the real stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    lower_priority()
    commands = Commands(sys.stdin)
    try:
        code = run(folder, out, commands)
    except Exception as e:  # noqa: BLE001 - reported to the page, which explains it
        try:
            out.write(json.dumps({"error": str(e) or type(e).__name__}) + "\n")
            out.flush()
        except OSError:
            pass
        code = 1
    if commands.abandoned.is_set():
        shutil.rmtree(folder, ignore_errors=True)  # the server is gone: leave nothing behind
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
