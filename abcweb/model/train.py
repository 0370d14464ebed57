"""Training: a compiled train step and a loop that yields metrics as it goes.

The data is read as `batch` parallel streams of text, `seq_len` characters at a time, with the
LSTM state carried from one window to the next (truncated backpropagation through time, as in
char-rnn). Every character is seen once per epoch, and the model learns to use context longer
than one window, which is how it is used when sampling and scoring.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from abcweb.model import checkpoint as ckpt_io
from abcweb.model import extras
from abcweb.model.lstm import ModelConfig, build_model, cpu_has_bf16, get_weights, set_weights
from abcweb.music.corpus import Corpus, to_alphabet

LN2 = math.log(2.0)
# Tunes are joined by a blank line in training, so every tune is read after one.
SEPARATOR = "\n\n"


@dataclass
class TrainSettings:
    steps: int = 1000
    batch: int = 64
    seq_len: int = 100
    learning_rate: float = 2e-3
    min_learning_rate: float = 1e-4  # cosine decay to this over `decay_steps`
    decay_steps: int = 0  # 0: constant learning rate
    warmup_steps: int = 0
    clip_norm: float = 1.0
    eval_every: int = 200
    checkpoint_every: int = 0  # 0: only at the end
    seed: int = 0
    precision: str = "float32"  # or "mixed_bfloat16"; "auto": bfloat16 where the CPU has it

    def validate(self) -> None:
        for name in ("steps", "batch", "seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not (0 < self.learning_rate < 1 and math.isfinite(self.learning_rate)):
            raise ValueError("learning rate must be between 0 and 1")
        if self.precision not in ("float32", "mixed_bfloat16", "auto"):
            raise ValueError("precision must be float32, mixed_bfloat16 or auto")


def corpus_ids(tunes: list[str], vocab: str) -> tuple[list[np.ndarray], int]:
    """Tunes -> id arrays in the vocabulary; characters outside it are dropped and counted."""
    index = {ch: i for i, ch in enumerate(vocab)}
    out, dropped = [], 0
    for tune in tunes:
        text, d = to_alphabet(tune)
        ids = [index[c] for c in text if c in index]
        dropped += d + len(text) - len(ids)
        if ids:
            out.append(np.asarray(ids, np.int32))
    return out, dropped


class Streams:
    """Shuffled tunes joined by blank lines, cut into `batch` rows read left to right."""

    def __init__(self, tunes: list[np.ndarray], sep: np.ndarray, batch: int, seq_len: int,
                 seed: int):
        self.tunes, self.sep, self.batch, self.seq_len = tunes, sep, batch, seq_len
        self.rng = np.random.default_rng(seed)
        self.epoch = -1
        self.rows: np.ndarray | None = None
        self.pos = 0
        total = sum(len(t) + len(sep) for t in tunes)
        if total // batch < seq_len + 1:
            raise ValueError(f"corpus too small: {total} characters for batch {batch} x "
                             f"{seq_len + 1}; lower the batch or the sequence length")

    def _new_epoch(self) -> None:
        self.epoch += 1
        order = self.rng.permutation(len(self.tunes))
        ids = np.concatenate([np.concatenate([self.tunes[i], self.sep]) for i in order])
        width = len(ids) // self.batch
        self.rows = ids[: width * self.batch].reshape(self.batch, width)
        self.pos = 0

    def next(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """(inputs, targets, new_epoch): new_epoch says the caller must reset its state."""
        new = self.rows is None or self.pos + self.seq_len + 1 > self.rows.shape[1]
        if new:
            self._new_epoch()
        chunk = self.rows[:, self.pos: self.pos + self.seq_len + 1]
        self.pos += self.seq_len
        return chunk[:, :-1], chunk[:, 1:], new


@dataclass
class Metrics:
    step: int
    train_bpc: float
    val_bpc: float | None
    chars_per_s: float
    elapsed_s: float
    epoch: int
    learning_rate: float
    extras: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "extras"}
        d.update(self.extras)
        return d


class Trainer:
    """Owns a Keras model, an Adam optimizer and compiled train/eval steps.

    strategy: a tf.distribute strategy (MirroredStrategy over GPUs,
    MultiWorkerMirroredStrategy over hosts); the global batch is split over its replicas.
    """

    def __init__(self, config: ModelConfig, train: list[Corpus] | Corpus,
                 val: Corpus | None = None, settings: TrainSettings | None = None,
                 init: ckpt_io.Checkpoint | None = None, strategy=None,
                 info: dict | None = None, weights: list[float] | None = None,
                 extra_val: dict[str, Corpus] | None = None):
        tf = extras.require("tensorflow", "training")
        self.tf = tf
        # The sampler reads the separator before a seed text, as every tune here is read.
        config = replace(config, start=SEPARATOR)
        self.cfg = config
        self.s = settings or TrainSettings()
        self.s.validate()
        train = [train] if isinstance(train, Corpus) else list(train)
        weights = weights or [1.0] * len(train)
        tunes, dropped = [], 0
        for corpus, w in zip(train, weights):
            ids, d = corpus_ids(corpus.tunes, config.vocab)
            dropped += d
            whole, frac = int(w), w - int(w)
            tunes += ids * whole + ids[: int(round(frac * len(ids)))]
        if not tunes:
            raise ValueError("no training text: the corpus holds no tunes")
        sep = np.asarray([config.vocab.index(c) for c in SEPARATOR], np.int32)
        # A resumed run shuffles differently from the first: seed with the step reached.
        self.streams = Streams(tunes, sep, self.s.batch, self.s.seq_len,
                               self.s.seed + (init.steps if init else 0))
        def joined(c: Corpus | None) -> np.ndarray | None:
            if c is None or not c.tunes:
                return None
            ids, _ = corpus_ids(c.tunes, config.vocab)
            return np.concatenate([np.concatenate([t, sep]) for t in ids])

        self.val_ids = joined(val)
        # Further validation texts reported beside the main one (e.g. `val_irish`).
        self.extra_val_ids = {k: joined(c) for k, c in (extra_val or {}).items()}
        self.dropped_chars = dropped
        self.train_chars = sum(len(t) for t in tunes)
        self.info = dict(info or {})
        self.step = init.steps if init else 0
        self.info.setdefault("train_seconds", 0.0)
        if init:
            self.info["train_seconds"] = float(init.info.get("train_seconds", 0.0))
            self.info["history"] = list(init.info.get("history", []))
            for key in ("finetuned_from", "pretrained"):  # where a fine-tuned model came from
                if key in init.info:
                    self.info[key] = init.info[key]

        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        if self.s.batch % self.replicas:
            raise ValueError(f"batch {self.s.batch} must divide by {self.replicas} replicas")
        tf.random.set_seed(self.s.seed)
        with self.strategy.scope():
            import keras
            precision = self.s.precision
            if precision == "auto":
                gpu = bool(tf.config.list_physical_devices("GPU"))
                precision = "mixed_bfloat16" if gpu or cpu_has_bf16() else "float32"
            self.precision = precision
            self.model = build_model(config, precision)
            if init:
                set_weights(self.model, config, init.weights)
            self.optimizer = keras.optimizers.Adam(learning_rate=self._lr(self.step))
            self.optimizer.build(self.model.trainable_variables)
            if init and init.optimizer:
                self._restore_optimizer(init.optimizer)
        self.states = self._zero_states(self.s.batch)
        self._train_step = self._make_train_step()
        self._eval_step = None

    # -- learning-rate schedule -------------------------------------------------------------
    def _lr(self, step: int) -> float:
        s = self.s
        if s.warmup_steps and step < s.warmup_steps:
            return s.learning_rate * (step + 1) / s.warmup_steps
        if not s.decay_steps:
            return s.learning_rate
        t = min(max(step - s.warmup_steps, 0) / max(s.decay_steps, 1), 1.0)
        return s.min_learning_rate + 0.5 * (s.learning_rate - s.min_learning_rate) * (
            1 + math.cos(math.pi * t))

    # -- state handling ---------------------------------------------------------------------
    def _zero_states(self, batch: int):
        tf = self.tf
        n = 2 * self.cfg.layers
        per = batch // self.replicas
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: tuple(tf.zeros((per, self.cfg.units)) for _ in range(n)))

    def _distribute(self, array: np.ndarray):
        per = array.shape[0] // self.replicas
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: self.tf.constant(array[ctx.replica_id_in_sync_group * per:
                                               (ctx.replica_id_in_sync_group + 1) * per]))

    def _make_train_step(self):
        tf, model, opt, cfg = self.tf, self.model, self.optimizer, self.cfg
        global_tokens = float(self.s.batch * self.s.seq_len)
        clip = self.s.clip_norm

        def replica_step(x, y, states):
            with tf.GradientTape() as tape:
                logits, *new_states = model([x, *states], training=True)
                nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=y, logits=tf.cast(logits, tf.float32))
                loss = tf.reduce_sum(nll) / global_tokens
            grads = tape.gradient(loss, model.trainable_variables)
            if clip:
                grads, _ = tf.clip_by_global_norm(grads, clip)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss, tuple(tf.cast(tf.stop_gradient(s), tf.float32) for s in new_states)

        @tf.function(reduce_retracing=True)
        def train_step(x, y, states):
            loss, new_states = self.strategy.run(replica_step, args=(x, y, states))
            return self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None), new_states

        del cfg
        return train_step

    def _make_eval_step(self):
        tf, model = self.tf, self.model

        @tf.function(reduce_retracing=True)
        def eval_step(x, y, states):
            logits, *new_states = model([x, *states], training=False)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=tf.cast(logits, tf.float32))
            return tf.reduce_sum(nll), tuple(tf.cast(s, tf.float32) for s in new_states)

        return eval_step

    # -- evaluation -------------------------------------------------------------------------
    def validate(self, ids: np.ndarray | None = None, max_chars: int = 200_000
                 ) -> float | None:
        """Validation bits per character: the validation text read as parallel streams with
        state carried, like the training data."""
        ids = self.val_ids if ids is None else ids
        if ids is None or len(ids) < 2:
            return None
        ids = ids[: max_chars + 1]
        rows = max(1, min(self.s.batch, (len(ids) - 1) // self.s.seq_len))
        width = (len(ids) - 1) // rows
        xs = ids[: rows * width].reshape(rows, width)
        ys = ids[1: rows * width + 1].reshape(rows, width)
        if self._eval_step is None:
            self._eval_step = self._make_eval_step()
        states = tuple(np.zeros((rows, self.cfg.units), np.float32)
                       for _ in range(2 * self.cfg.layers))
        total, count = 0.0, 0
        for start in range(0, width, self.s.seq_len):
            x, y = xs[:, start: start + self.s.seq_len], ys[:, start: start + self.s.seq_len]
            nll, states = self._eval_step(x, y, states)
            total += float(nll)
            count += x.size
        return total / count / LN2

    # -- the loop ---------------------------------------------------------------------------
    def run(self, steps: int | None = None, save_to: str | Path | None = None,
            should_stop: Callable[[], bool] | None = None) -> Iterator[Metrics]:
        """Train for `steps` more steps, yielding Metrics after every step. Stops early when
        should_stop() returns True; saves a checkpoint at checkpoint_every and at the end (also
        after a stop) when save_to is given."""
        steps = self.s.steps if steps is None else steps
        end = self.step + steps
        window_loss, window_chars, window_t = 0.0, 0, time.perf_counter()
        last_val = None
        while self.step < end:
            if should_stop and should_stop():
                break
            t0 = time.perf_counter()
            x, y, new_epoch = self.streams.next()
            if new_epoch:
                self.states = self._zero_states(self.s.batch)
            self.optimizer.learning_rate = self._lr(self.step)
            loss, self.states = self._train_step(self._distribute(x), self._distribute(y),
                                                 self.states)
            loss = float(loss) / LN2
            if not math.isfinite(loss):
                raise FloatingPointError(f"training diverged at step {self.step} (loss {loss}); "
                                         "lower the learning rate")
            self.step += 1
            dt = time.perf_counter() - t0
            self.info["train_seconds"] += dt
            window_loss += loss
            window_chars += x.size
            val, extras = None, {}
            if self.s.eval_every and (self.step % self.s.eval_every == 0 or self.step == end):
                val = last_val = self.validate()
                extras = {f"val_{k}": self.validate(ids) for k, ids in self.extra_val_ids.items()}
                self.info.update({k: round(v, 4) for k, v in extras.items() if v is not None})
                self.info.setdefault("history", []).append(
                    {"step": self.step, "train_bpc": round(loss, 4),
                     "val_bpc": None if val is None else round(val, 4),
                     **{k: None if v is None else round(v, 4) for k, v in extras.items()},
                     "train_seconds": round(self.info["train_seconds"], 1)})
            now = time.perf_counter()
            cps = window_chars / max(now - window_t, 1e-9)
            yield Metrics(self.step, loss, val, cps, self.info["train_seconds"],
                          self.streams.epoch, self._lr(self.step - 1), extras)
            if (save_to and self.s.checkpoint_every and self.step % self.s.checkpoint_every == 0
                    and self.step < end):
                self.save(save_to, val_bpc=last_val)
            if now - window_t > 10:
                window_loss, window_chars, window_t = 0.0, 0, now
        if save_to:
            self.save(save_to, val_bpc=last_val)

    # -- checkpoints ------------------------------------------------------------------------
    def optimizer_state(self) -> dict[str, np.ndarray]:
        return {f"{i:03d}": np.asarray(v.numpy()) for i, v in enumerate(self.optimizer.variables)}

    def _restore_optimizer(self, state: dict[str, np.ndarray]) -> None:
        variables = self.optimizer.variables
        if len(state) != len(variables):
            return  # a different optimizer layout: start its moments afresh
        for i, v in enumerate(variables):
            a = state[f"{i:03d}"]
            if tuple(a.shape) == tuple(v.shape):
                v.assign(a.astype(v.dtype.name if hasattr(v.dtype, "name") else v.dtype))

    def checkpoint(self, val_bpc: float | None = None) -> ckpt_io.Checkpoint:
        info = dict(self.info)
        info["steps"] = self.step
        info["train_chars_per_epoch"] = self.train_chars
        info["settings"] = {k: v for k, v in self.s.__dict__.items()}
        if val_bpc is not None:
            info["val_bpc"] = round(val_bpc, 4)
        return ckpt_io.Checkpoint(self.cfg, get_weights(self.model, self.cfg), info,
                                  self.optimizer_state())

    def save(self, folder: str | Path, val_bpc: float | None = None) -> Path:
        return ckpt_io.save(self.checkpoint(val_bpc), folder)


# The shipped model's data: the irish.abc train split (the style the yardstick measures, seen
# twice per epoch) and the music21 collections of Irish, Scottish and English fiddle tunes.
SHIPPED_MIX = {"irish": 1.5, "oneills1850": 1.0, "ryansMammoth": 1.0, "airdsAirs": 1.0,
               "miscFolk": 1.0}


def valid_only(c: Corpus) -> Corpus:
    """The tunes abc2midi finds no error in. O'Neill's transcriptions pass 80%, Ryan's 55%
    (bowing marks, ties between different notes): a model learns the errors it is shown."""
    from abcweb.sound.abctools import check

    return Corpus(c.name, [t for t in c.tunes if check(t).valid], c.description)


# Transposed copies of each error-free training tune (abc2abc -t, abcweb/sound/transpose.py) for the
# transposed recipe. irish.abc's style is the yardstick's, so it gets the most.
TRANSPOSED_COPIES = {"irish": 3, "oneills1850": 1, "ryansMammoth": 1, "airdsAirs": 1,
                     "miscFolk": 1}


def transposed_copies(c: Corpus, copies: int) -> Corpus:
    """Error-free copies of a corpus's tunes in other common keys, as a corpus of their own."""
    from abcweb.sound.abctools import check
    from abcweb.sound.transpose import augment

    return Corpus(c.name + ":transposed", augment(c.tunes, copies, keep=lambda t: check(t).valid),
                  c.description)


def shipped_data(irish_path: str | Path, validate: bool = True, copies: dict | None = None
                 ) -> tuple[list[Corpus], list[float], Corpus, dict, Corpus]:
    """Train corpora with weights, one validation corpus, and a description for the card.
    Training tunes are kept only when abc2midi finds no error; validation tunes all stay.
    The last item is irish.abc's own validation tunes: the shipped model is picked by them,
    as the yardstick is irish.abc's style (they are not the held-out tunes)."""
    from abcweb.music import corpus as corpora

    train, weights, val_tunes, described, irish_val = [], [], [], {}, None
    for name, w in SHIPPED_MIX.items():
        whole = (corpora.load_irish(irish_path).train if name == "irish"
                 else corpora.load_music21(name))
        tr, va = whole.split()
        if name == "irish":
            irish_val = va
        if validate:
            tr = valid_only(tr)
        train.append(tr)
        weights.append(w)
        val_tunes += va.tunes
        described[name] = {"description": whole.description, "tunes": len(whole.tunes),
                           "chars": whole.chars, "train_tunes": len(tr.tunes),
                           "val_tunes": len(va.tunes), "weight": w,
                           "train_chars": tr.chars}
        if copies and copies.get(name):
            extra = transposed_copies(tr, copies[name])
            train.append(extra)
            weights.append(w)
            described[name].update(transposed_tunes=len(extra.tunes),
                                   transposed_chars=extra.chars)
    return train, weights, Corpus("shipped:val", val_tunes), described, irish_val
