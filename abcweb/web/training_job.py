"""Train a model in a process of its own, for a page that must stay responsive meanwhile.

    job = TrainingJob.plan("tiny", corpus, steps=300)
    job.start()
    ... job.metrics()   # a copy, safe to read from any thread while training goes on
    job.stop()          # finishes the current step, saves, ends
    job.wait(); job.sampler()   # the trained model; job.zip_bytes() to download it

Each job trains in `python -m abcweb.web.train_worker` (see there), at the lowest CPU priority:
the page server never imports TensorFlow for it, never shares its GIL with it, and gets the
memory back when the job ends. A thread here starts the process and reads its metrics. Each
job writes only into its own private temporary folder (the process's TMPDIR is inside it
too), so a model trained for one visitor never touches the shipped weights or another
visitor's model, and removing the folder removes everything the job made.

On a small shared host a few guards apply: at most MAX_CONCURRENT jobs train at once per
server (later ones wait, state 'queued'), and a job stops by itself after `max_seconds`, so
a visitor who closes the tab does not leave the machine training for hours. A worker that
crashes or is killed leaves the job 'failed' with a message; the page goes on.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from abcweb.model import checkpoint as ckpt_io
from abcweb.model.lstm import ModelConfig, preset
from abcweb.music.corpus import Corpus
from abcweb.sampling.sample_worker import worker_env
from abcweb.web import train_worker

MAX_CONCURRENT = 1
MAX_SECONDS = 15 * 60
KILL_GRACE_S = 120  # past max_seconds, a worker that has not ended is killed
VAL_MAX_CHARS = 20_000  # validation text per evaluation: a second or two on a small CPU
STATES = ("idle", "queued", "starting", "running", "done", "stopped", "failed")
_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT)
# Visitors come first. Even at the lowest priority a training worker slowed a tune by 1.3-1.5x
# (it shares the caches and memory bandwidth of a small host), so while any visitor's tune is
# being written or rendered, every worker waits between two steps (train_worker.Commands).
_LIVE: weakref.WeakSet = weakref.WeakSet()  # jobs whose worker runs
_BUSY = 0  # visitors' tunes in progress, process-wide
_BUSY_LOCK = threading.Lock()


@contextmanager
def visitor_busy():
    """Training workers pause between steps while any of these blocks runs."""
    global _BUSY
    with _BUSY_LOCK:
        _BUSY += 1
        if _BUSY == 1:
            for job in list(_LIVE):
                job._send(b"pause\n")
    try:
        yield
    finally:
        with _BUSY_LOCK:
            _BUSY -= 1
            if _BUSY == 0:
                for job in list(_LIVE):
                    job._send(b"resume\n")


@dataclass(frozen=True)
class Recipe:
    """How a preset trains. `config` None means: take the config of the initial checkpoint."""
    label: str
    config: str | None
    finetune: bool
    batch: int
    seq_len: int
    learning_rate: float
    steps: int
    eval_every: int
    help: str


RECIPES = {
    "tiny": Recipe("Tiny (learns in a minute)", "tiny", False, 32, 64, 1e-2, 300, 25,
                   "32 embedding, 128 LSTM units: small enough to watch the loss fall within "
                   "a minute on two CPU cores. Expect tune-shaped text with wrong bars."),
    "finetune": Recipe("Fine-tune the shipped model", None, True, 16, 100, 5e-4, 100, 20,
                       "Starts from the shipped weights and keeps learning on your corpus, "
                       "so a few steps bend its style towards it. Slower per step."),
    "notebook": Recipe("Notebook (MIT 6.S191 lab 1)", "notebook", False, 8, 100, 5e-3, 2000,
                       100, "The lab's model exactly: 256 embedding, 1,024 LSTM units, batch "
                       "8, learning rate 5e-3. Made for a GPU: slow on a CPU."),
}


def _cap(corpus: Corpus | None, max_chars: int) -> Corpus | None:
    if corpus is None or not corpus.tunes:
        return None
    tunes, total = [], 0
    for t in corpus.tunes:
        if tunes and total + len(t) > max_chars:
            break
        tunes.append(t)
        total += len(t) + 2
    return Corpus(corpus.name, tunes, corpus.description)


def _fit_batch(tunes: list[str], batch: int, seq_len: int) -> int:
    """The largest batch <= `batch` for which the corpus fills every row once (a small upload
    still trains, with fewer parallel streams)."""
    total = sum(len(t) + 2 for t in tunes)
    return max(1, min(batch, total // (seq_len + 1)))


class TrainingJob:
    """One training run in a daemon thread. All public methods are safe from any thread."""

    def __init__(self, config: ModelConfig, train: Corpus, val: Corpus | None, settings,
                 init: ckpt_io.Checkpoint | None = None, name: str = "model",
                 max_seconds: float = MAX_SECONDS, info: dict | None = None):
        self.config = config
        self.train = train
        self.val = val
        self.settings = settings
        self.init = init
        self.name = name
        self.max_seconds = max_seconds
        self.info = dict(info or {})
        self.folder = Path(tempfile.mkdtemp(prefix="abcweb-train-"))  # mode 0700: private
        self._proc: list[subprocess.Popen] = []  # the worker, once started (a list: the
        # finalizer below must not hold the job itself)
        self._finalizer = weakref.finalize(self, _discard, self._proc, self.folder)
        self._lock = threading.Lock()
        self._metrics: list[dict] = []
        self._state = "idle"
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at: float | None = None
        self._saved = False

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def plan(cls, recipe: str, corpus: Corpus, steps: int | None = None,
             learning_rate: float | None = None, shipped: str | Path | None = None,
             seed: int = 0, max_seconds: float = MAX_SECONDS) -> TrainingJob:
        """A job for a recipe (RECIPES) on a corpus; the corpus is split by tune into train
        and validation. Raises ValueError with a clear message for what cannot train."""
        from abcweb.model.train import TrainSettings

        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
        r = RECIPES[recipe]
        if not corpus.tunes:
            raise ValueError(f"{corpus.name}: no tunes to train on")
        train, val = corpus.split()
        if not train.tunes:  # a one-tune upload: train on it, validate on nothing
            train, val = corpus, None
        if val is not None and not val.tunes:
            val = None
        init = None
        if r.finetune:
            init = ckpt_io.load(shipped)  # CheckpointError has a clear message
            init.info = {"finetuned_from": "shipped", "steps": 0}
            config = init.config
        else:
            config = preset(r.config)
        seq_len = r.seq_len
        total = sum(len(t) + 2 for t in train.tunes)
        if total < 2 * (seq_len + 1):
            seq_len = max(8, total // 2 - 1)
        if total < 2 * (seq_len + 1):
            raise ValueError(f"{corpus.name}: {total} characters of music is too little to "
                             "train on; give at least a few tunes")
        steps = int(steps or r.steps)
        if not 1 <= steps <= 100_000:
            raise ValueError(f"steps must be from 1 to 100,000, not {steps}")
        lr = float(learning_rate or r.learning_rate)
        settings = TrainSettings(steps=steps, batch=_fit_batch(train.tunes, r.batch, seq_len),
                                 seq_len=seq_len, learning_rate=lr,
                                 eval_every=min(r.eval_every, steps) if val else 0,
                                 checkpoint_every=0, seed=seed)
        settings.validate()
        name = f"{recipe} on {corpus.name}"
        info = {"data": {corpus.name: {"tunes": len(corpus.tunes), "chars": corpus.chars,
                                       "description": corpus.description}},
                "recipe": recipe}
        return cls(config, train, _cap(val, VAL_MAX_CHARS), settings, init, name,
                   max_seconds, info)

    # -- control ----------------------------------------------------------------------------
    def start(self) -> TrainingJob:
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("this job has already been started")
            self._state = "queued"
            self._thread = threading.Thread(target=self._run, name=f"train:{self.name}",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the job to stop after the current step; it still saves what it learned."""
        self._stop.set()
        self._send(b"stop\n")

    def _send(self, line: bytes) -> None:
        with self._lock:
            proc = self._proc[0] if self._proc else None
            if proc is None or proc.poll() is not None:
                return
            try:
                proc.stdin.write(line)
                proc.stdin.flush()
            except (OSError, ValueError):  # it has just ended, or its stdin is closed
                pass

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def cleanup(self) -> None:
        """Stop the job and delete its folder (also done when the job is garbage collected)."""
        self.stop()
        self.wait(30)
        self._finalizer()

    # -- reading ----------------------------------------------------------------------------
    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def running(self) -> bool:
        return self.state in ("queued", "starting", "running")

    @property
    def error(self) -> str | None:
        with self._lock:
            return self._error

    def metrics(self) -> list[dict]:
        with self._lock:
            return list(self._metrics)

    @property
    def progress(self) -> float:
        with self._lock:
            done = self._metrics[-1]["done"] if self._metrics else 0
        return min(1.0, done / max(self.settings.steps, 1))

    @property
    def elapsed(self) -> float:
        return 0.0 if self._started_at is None else time.perf_counter() - self._started_at

    @property
    def checkpoint_path(self) -> Path | None:
        """The folder of the trained checkpoint, once one is saved."""
        with self._lock:
            return self.folder / train_worker.MODEL if self._saved else None

    @property
    def pid(self) -> int | None:
        """The worker process's id while it runs (for tests and monitoring)."""
        with self._lock:
            return self._proc[0].pid if self._proc and self._proc[0].poll() is None else None

    def sampler(self, backend: str = "numpy"):
        from abcweb.sampling.sampler import load_sampler

        path = self.checkpoint_path
        if path is None:
            raise ckpt_io.CheckpointError("this job has not saved a model yet")
        return load_sampler(path, backend)

    def zip_bytes(self) -> bytes:
        """The checkpoint folder as a zip (model.json and its .npz files, in a folder named
        after the job), ready for `load_sampler(unzipped_folder)`."""
        path = self.checkpoint_path
        if path is None:
            raise ckpt_io.CheckpointError("this job has not saved a model yet")
        buf = io.BytesIO()
        root = "abcweb-" + "".join(c if c.isalnum() else "-" for c in self.name).strip("-")
        with self._lock, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(path.iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    z.write(f, f"{root}/{f.name}")
        return buf.getvalue()

    # -- the thread -------------------------------------------------------------------------
    def _set(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._error = error

    def _run(self) -> None:
        while not _SLOTS.acquire(timeout=0.2):  # wait for a free slot, unless stopped first
            if self._stop.is_set():
                self._set("stopped")
                return
        try:
            if self._stop.is_set():
                self._set("stopped")
                return
            self._set("starting")
            self._started_at = time.perf_counter()
            self._train_in_worker()
        except Exception as e:  # noqa: BLE001 - a page shows it; a thread must not die silently
            self._set("failed", str(e) or type(e).__name__)
        finally:
            _SLOTS.release()

    def _train_in_worker(self) -> None:
        train_worker.write_spec(self.folder, self.config, self.train, self.val, self.settings,
                                self.init, self.info, self.max_seconds)
        tmp = self.folder / "tmp"  # TensorFlow's autograph files and the like go here
        tmp.mkdir()
        env = worker_env(TMPDIR=str(tmp), TF_CPP_MIN_LOG_LEVEL="3")
        with open(self.folder / "worker.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "abcweb.web.train_worker", str(self.folder)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                cwd=self.folder, start_new_session=True)  # a Ctrl-C in a terminal is ours
        with self._lock:
            self._proc.append(proc)
        with _BUSY_LOCK:
            _LIVE.add(self)
            if _BUSY:
                self._send(b"pause\n")
        if self._stop.is_set():
            self._send(b"stop\n")
        # The worker stops itself at max_seconds; this deadline is for a worker that hangs
        # (in TensorFlow's start, say): its whole process group is killed.
        deadline = threading.Timer(self.max_seconds + KILL_GRACE_S, _kill, (proc,))
        deadline.daemon = True
        deadline.start()
        try:
            self._read_worker(proc)
        finally:
            deadline.cancel()
            with _BUSY_LOCK:
                _LIVE.discard(self)

    def _read_worker(self, proc: subprocess.Popen) -> None:
        error = None
        stopped = False
        for raw in proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if "metric" in msg:
                with self._lock:
                    self._metrics.append(msg["metric"])
            elif msg.get("state") == "running":
                self._set("running")
            elif msg.get("saved"):
                stopped = msg.get("stopped", False)
                with self._lock:
                    self._saved = True
            elif "error" in msg:
                error = msg["error"]
        code = proc.wait()
        proc.stdout.close()
        if error is not None:
            self._set("failed", error)
        elif not self.checkpoint_path:
            how = (f"was stopped by signal {-code}" if code < 0 else f"ended with code {code}")
            self._set("failed", f"the training process {how} before it saved a model")
        else:
            self._set("stopped" if stopped else "done")


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def _discard(procs: list[subprocess.Popen], folder: Path) -> None:
    """End a job's worker (closing its stdin tells it to quit) and remove its folder. Runs
    when the job is cleaned up or collected, and at the server's exit."""
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.stdin.close()
                proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                _kill(proc)
                proc.wait()
    shutil.rmtree(folder, ignore_errors=True)
