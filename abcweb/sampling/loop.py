"""The sampling loop: fast, reproducible sampling and scoring with one checkpoint.

Two backends compute the same thing:
- `numpy`: the CPU path. The embedding and the first LSTM layer's input projection are folded
  into one lookup table (`embedding @ kernel + bias`, one row per character), so a step is one
  matrix-vector product per layer plus the gates; no TensorFlow import needed at all.
- `tf`: the whole generation loop in one `tf.function` (a `tf.while_loop`), placed on the GPU
  when TensorFlow sees one. Temperature, top-k, length and the random numbers are tensors, so
  changing them never retraces (`Loop.traces` counts the traces).

Randomness does not come from the backend: the seed makes one uniform number per step with
NumPy's PCG64, and a character is drawn by inverse CDF. The same arguments therefore give the
same text in every process, and both backends agree except when a uniform lands within float
rounding of a CDF boundary.

This is the whole of the model's writing, and it depends on nothing above it: the best of
several drafts (drafts.py), the worker processes (sample_worker.py) and the public `Sampler`
(sampler.py) are built on top of `Loop`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import numbers
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from abcweb.model import checkpoint as ckpt_io
from abcweb.model import extras
from abcweb.model.lstm import ModelConfig, encode, encode_after_start

MAX_LENGTH = 5000  # characters one call may generate
MAX_PRIME = 5000  # characters of seed text
MAX_TEMPERATURE = 100.0
MAX_SEED = 2**63 - 1  # the CLI's bound; share links use 0 .. 2**32 - 1
MAX_BATCH = 64  # candidates one generate_many() call may draw
TOP_ALTERNATIVES = 5
LN2 = math.log(2.0)


@dataclass
class Step:
    char: str
    prob: float  # probability of the chosen character in the distribution it was drawn from
    entropy: float  # entropy of that distribution, in bits
    top: list[tuple[str, float]]  # the most likely characters with their probabilities


@dataclass
class Generation:
    prime: str
    generated: str
    logits: np.ndarray  # [len(generated), vocab] raw logits (temperature 1) before each char
    vocab: str
    temperature: float
    top_k: int
    seed: int
    stopped: str  # "end" (a complete tune), "length"
    top_p: float = 1.0  # nucleus: draws kept to the likeliest characters holding this mass
    draft: int = 0  # which of the drafts this is (sampling/drafts.py); 0 is the seed's own tune
    drafts: list[dict] = field(default_factory=list)  # each draft's yardsticks, when several
    # Bars that came from a proposal (sampling/form.py): {"start", "end"} offsets into
    # `generated`, "source" ("2", "4", "8" bars back or "part": the part's first bar) and
    # "bar", the index of the copied bar among the body's bars. Empty: all the model's draw.
    copies: list[dict] = field(default_factory=list)
    form: bool = False  # written with bar proposals
    _steps: list[Step] | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        return self.prime + self.generated

    def probabilities(self, temperature: float | None = None, top_k: int | None = None,
                      top_p: float | None = None) -> np.ndarray:
        """[steps, vocab] distributions at a temperature (default: the one sampled at)."""
        t = self.temperature if temperature is None else temperature
        k = self.top_k if top_k is None else top_k
        return distributions(self.logits, t, k, self.top_p if top_p is None else top_p)

    def distribution(self, i: int, temperature: float | None = None) -> dict[str, float]:
        own = temperature is None  # the cuts belong to the temperature sampled at
        p = distributions(self.logits[i: i + 1], self.temperature if own else temperature,
                          self.top_k if own else 0, self.top_p if own else 1.0)[0]
        return dict(zip(self.vocab, p.tolist()))

    @property
    def steps(self) -> list[Step]:
        if self._steps is None:
            self._steps = make_steps(self.generated, self.logits, self.vocab,
                                     self.temperature, self.top_k, self.top_p)
        return self._steps


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _whole(value, name: str) -> int:
    """An int from an int or a whole float; anything else (bool, text, None) is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a whole number, not {_show(value)}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if not math.isfinite(value) or not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number, not {_show(value)}")
    return int(value)


def check_seed(seed) -> int:
    seed = _whole(seed, "seed")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be from 0 to {MAX_SEED}, not {_show(seed)}")
    return seed


def check_args(prime: str, length: int, temperature: float, top_k: int, vocab_size: int,
               seeds=(0,), stop_at_end: bool = True) -> tuple[int, float, int, list[int]]:
    """Validate every sampling argument, whatever the length; raise ValueError with a
    message a person can act on. Returns (length, temperature, top_k, seeds) as numbers."""
    if not isinstance(prime, str):
        raise ValueError(f"the seed text must be text, not {_show(prime)}")
    if not prime:
        raise ValueError("the seed text is empty: give at least one character, e.g. 'X:'")
    if len(prime) > MAX_PRIME:
        raise ValueError(f"the seed text is {len(prime):,} characters; the most is {MAX_PRIME:,}")
    length = _whole(length, "length")
    top_k = _whole(top_k, "top-k")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise ValueError(f"temperature must be a number, not {_show(temperature)}")
    temperature = float(temperature)
    if not 0 <= length <= MAX_LENGTH:
        raise ValueError(f"length must be from 0 to {MAX_LENGTH}, not {_show(length)}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, not {_show(temperature)}")
    if temperature > MAX_TEMPERATURE:
        raise ValueError(f"temperature must be at most {MAX_TEMPERATURE:g}, not {temperature:g}")
    if not 0 <= top_k <= vocab_size:
        raise ValueError(f"top-k must be from 0 (no cut) to {vocab_size}, not {_show(top_k)}")
    if not isinstance(stop_at_end, (bool, np.bool_)):
        raise ValueError(f"stop_at_end must be True or False, not {_show(stop_at_end)}")
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise ValueError(f"seeds must be a list of whole numbers, not {_show(seeds)}")
    seeds = list(seeds)
    if not 1 <= len(seeds) <= MAX_BATCH:
        raise ValueError(f"give from 1 to {MAX_BATCH} seeds, not {len(seeds)}")
    return length, temperature, top_k, [check_seed(s) for s in seeds]


def check_top_p(top_p) -> float:
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real):
        raise ValueError(f"top-p must be a number, not {_show(top_p)}")
    top_p = float(top_p)
    if not (math.isfinite(top_p) and 0 < top_p <= 1):
        raise ValueError(f"top-p must be above 0 and at most 1 (1: no cut), not {top_p:g}")
    return top_p


def uniforms(seed: int, length: int) -> np.ndarray:
    return np.random.default_rng(check_seed(seed)).random(length)


def _masked(logits: np.ndarray, temperature: float, top_k: int, top_p: float = 1.0
            ) -> np.ndarray:
    # Shift the maximum to 0 before dividing: a tiny temperature (1e-310) then gives -inf for
    # the others (greedy), not inf - inf = NaN probabilities.
    z = logits.astype(np.float64)
    z -= z.max(-1, keepdims=True)
    if temperature < 1e-100:  # np.errstate costs microseconds: only where it can overflow
        with np.errstate(over="ignore"):
            z /= temperature
    else:
        z /= temperature
    if top_k and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[..., -top_k, None]
        z = np.where(z >= kth, z, -np.inf)
    if top_p < 1:
        z = _nucleus(z, top_p)
    return z


def _nucleus(z: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the likeliest characters whose probabilities, before each, sum to under top_p
    (Holtzman et al. 2020: the smallest set holding top_p of the mass). Characters as likely
    as the last one kept are kept too, so ties never depend on an order."""
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    ps = -np.sort(-p, -1)
    before = np.cumsum(ps, -1) - ps
    n = (before < top_p).sum(-1, keepdims=True)  # at least 1: nothing comes before the first
    last = np.take_along_axis(ps, n - 1, -1)
    return np.where(p >= last, z, -np.inf)


def distributions(logits: np.ndarray, temperature: float, top_k: int = 0, top_p: float = 1.0
                  ) -> np.ndarray:
    if temperature == 0:
        out = np.zeros(logits.shape, np.float64)
        np.put_along_axis(out, logits.argmax(-1)[..., None], 1.0, -1)
        return out
    z = _masked(logits, temperature, top_k, top_p)
    z -= z.max(-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(-1, keepdims=True)


def choose(logits: np.ndarray, u: np.ndarray, temperature: float, top_k: int,
           top_p: float = 1.0) -> np.ndarray:
    """Draw one character per row by inverse CDF of the tempered, top-k and top-p cut
    softmax. The CDF
    is left unnormalised (u is scaled by its total instead): one division fewer per step, and
    the TensorFlow loop does exactly the same arithmetic."""
    if temperature == 0:
        return logits.argmax(-1)
    cdf = np.cumsum(np.exp(_masked(logits, temperature, top_k, top_p)), -1)
    idx = (cdf <= (u * cdf[:, -1])[:, None]).sum(-1)
    return np.minimum(idx, logits.shape[-1] - 1)


def make_steps(generated: str, logits: np.ndarray, vocab: str, temperature: float,
               top_k: int, top_p: float = 1.0) -> list[Step]:
    if not generated:
        return []
    p = distributions(logits, temperature, top_k, top_p)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.maximum(-np.where(p > 0, p * np.log2(p), 0.0).sum(-1), 0.0)
    idx = np.array([vocab.index(c) for c in generated])
    chosen = p[np.arange(len(idx)), idx]
    top = np.argsort(-p, -1)[:, :TOP_ALTERNATIVES]
    return [Step(generated[i], float(chosen[i]), float(ent[i]),
                 [(vocab[j], float(p[i, j])) for j in top[i]]) for i in range(len(idx))]


class TuneEnd:
    """Tracks, per candidate, whether a complete tune has ended: a blank line after a `K:`
    header line (ABC ends a tune with a blank line; K: is the last header line)."""

    def __init__(self, prime: str, batch: int):
        lines = prime.split("\n")
        seen = any(line.startswith("K:") for line in lines[:-1])
        self.seen_k = np.full(batch, seen)
        self.line = [lines[-1]] * batch
        self.prev_newline = np.full(batch, prime.endswith("\n") and len(lines) > 1)

    def copy(self) -> TuneEnd:
        c = TuneEnd.__new__(TuneEnd)
        c.seen_k, c.line, c.prev_newline = self.seen_k.copy(), list(self.line), \
            self.prev_newline.copy()
        return c

    def update(self, chars: list[str]) -> np.ndarray:
        done = np.zeros(len(chars), bool)
        for b, ch in enumerate(chars):
            if ch == "\n":
                if self.line[b].startswith("K:"):
                    self.seen_k[b] = True
                done[b] = self.seen_k[b] and self.prev_newline[b]
                self.prev_newline[b] = True
                self.line[b] = ""
            else:
                self.prev_newline[b] = False
                if len(self.line[b]) < 2:
                    self.line[b] += ch
        return done


class NumpyLSTM:
    """The model's forward pass in NumPy, one character at a time for a batch.

    Two rewrites of the weights make a step cheap: the gate columns are reordered from Keras's
    (input, forget, cell, output) to (input, forget, output, cell), and the three sigmoid gates'
    columns are halved, so one tanh over the whole pre-activation gives every gate
    (sigmoid(x) = (tanh(x / 2) + 1) / 2, exactly)."""

    def __init__(self, cfg: ModelConfig, w: dict[str, np.ndarray]):
        self.cfg = cfg
        h = cfg.units
        order = np.r_[0:2 * h, 3 * h:4 * h, 2 * h:3 * h]
        scale = np.r_[np.full(3 * h, 0.5), np.ones(h)].astype(np.float32)

        def gates(a):
            return np.ascontiguousarray(a[..., order] * scale, dtype=np.float32)

        self.table = gates(w["embedding"] @ w["lstm_0/kernel"] + w["lstm_0/bias"])
        self.recurrent = gates(w["lstm_0/recurrent_kernel"])
        # Deeper layers: [h_below, h_own] @ [[kernel], [recurrent]] is one product.
        self.stacked = [gates(np.concatenate([w[f"lstm_{i}/kernel"],
                                              w[f"lstm_{i}/recurrent_kernel"]], 0))
                        for i in range(1, cfg.layers)]
        self.biases = [gates(w[f"lstm_{i}/bias"]) for i in range(1, cfg.layers)]
        self.dense = np.ascontiguousarray(w["dense/kernel"])
        self.dense_bias = w["dense/bias"]
        # One layer: the output layer and the next step's recurrent product read the same h,
        # so h @ [recurrent | dense] does both in one BLAS call (a call per step saved).
        self.fused = (np.ascontiguousarray(np.concatenate([self.recurrent, self.dense], 1))
                      if cfg.layers == 1 else None)

    def zero_state(self, batch: int) -> list[np.ndarray]:
        state = [np.zeros((batch, self.cfg.units), np.float32)
                 for _ in range(2 * self.cfg.layers)]
        if self.fused is not None:  # h @ recurrent for the next step, ready made
            state.append(np.zeros((batch, 4 * self.cfg.units), np.float32))
        return state

    @staticmethod
    def _cell(z: np.ndarray, c: np.ndarray, units: int) -> tuple[np.ndarray, np.ndarray]:
        t = np.tanh(z, out=z)
        s = t[:, : 3 * units]
        s *= 0.5
        s += 0.5
        c = s[:, units: 2 * units] * c
        c += s[:, :units] * t[:, 3 * units:]
        return s[:, 2 * units: 3 * units] * np.tanh(c), c

    def step(self, tokens: np.ndarray, state: list[np.ndarray]) -> np.ndarray:
        """Advance the state in place by one character per row; return logits [B, V]."""
        units = self.cfg.units
        if self.fused is not None:
            z = state[2] + self.table[tokens]
            state[0], state[1] = self._cell(z, state[1], units)
            y = state[0] @ self.fused
            state[2] = y[:, : 4 * units]
            return y[:, 4 * units:] + self.dense_bias
        z = state[0] @ self.recurrent
        z += self.table[tokens]
        state[0], state[1] = self._cell(z, state[1], units)
        for i in range(1, self.cfg.layers):
            x = np.concatenate([state[2 * i - 2], state[2 * i]], 1)
            z = x @ self.stacked[i - 1]
            z += self.biases[i - 1]
            state[2 * i], state[2 * i + 1] = self._cell(z, state[2 * i + 1], units)
        logits = state[-2] @ self.dense
        logits += self.dense_bias
        return logits


class _BlasThreads:
    """Limit NumPy's BLAS threads while sampling. A matrix-vector product per character is
    too small to split: on a busy 2-core host two BLAS threads make 600 characters take
    1.3 s instead of 0.28 s (measured here with a training job on both cores).

    The limit is process-wide, so concurrent samplers share one: the first to enter sets it,
    the last to leave restores NumPy's default."""

    def __init__(self):
        self.lock = threading.Lock()
        self.users = 0
        self.limiter = None
        self.controller = None

    @contextlib.contextmanager
    def limit(self, n: int | None):
        if not n:
            yield
            return
        with self.lock:
            if self.users == 0:
                try:
                    if self.controller is None:
                        from threadpoolctl import ThreadpoolController
                        self.controller = ThreadpoolController()
                    self.limiter = self.controller.limit(limits=n, user_api="blas")
                except Exception:  # threadpoolctl missing or an unknown BLAS: run as is
                    self.limiter = None
            self.users += 1
        try:
            yield
        finally:
            with self.lock:
                self.users -= 1
                if self.users == 0 and self.limiter is not None:
                    self.limiter.restore_original_limits()
                    self.limiter = None


_BLAS = _BlasThreads()
blas_threads = _BLAS.limit


def _gpu_present() -> bool:
    # Importing TensorFlow costs seconds; only look when a GPU driver is there at all.
    return os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia/version")


class Loop:
    """Generates and scores text with one checkpoint, in the calling thread. Read-only after
    construction, so one instance can serve many threads (the NumPy path keeps all state on
    the stack; the TF path serialises calls with a lock)."""

    def __init__(self, ckpt: ckpt_io.Checkpoint, backend: str = "auto", threads: int | None = 1):
        self.ckpt = ckpt
        self.threads = threads  # BLAS threads for the NumPy path; None leaves NumPy's default
        self.cfg = ckpt.config
        self.vocab = self.cfg.vocab
        self.info = ckpt.info
        if backend == "auto":
            backend = "tf" if _gpu_present() and _tf_sees_gpu() else "numpy"
        if backend not in ("numpy", "tf"):
            raise ValueError(f"backend must be 'auto', 'numpy' or 'tf', not {backend!r}")
        if backend == "tf" and importlib.util.find_spec("tensorflow") is None:
            raise extras.MissingExtra(extras.advice("tensorflow", "the tf backend"))
        self.backend = backend
        self.net = NumpyLSTM(self.cfg, ckpt.weights)
        self._tf = None
        self._lock = threading.Lock()
        self._index = {ch: i for i, ch in enumerate(self.vocab)}

    @property
    def traces(self) -> int:
        return self._tf.traces if self._tf else 0

    # -- generation -------------------------------------------------------------------------
    def generate_many(self, prime: str = "X:", length: int = 600, temperature: float = 1.0,
                      seeds: list[int] = (0,), top_k: int = 0, stop_at_end: bool = True,
                      top_p: float = 1.0) -> list[Generation]:
        """Several candidates in one batch, one per seed; each the same as that seed's alone."""
        length, temperature, top_k, seeds = check_args(prime, length, temperature, top_k,
                                                       len(self.vocab), seeds, stop_at_end)
        top_p = check_top_p(top_p)
        encode(prime, self.vocab, "seed text")  # names unknown characters, here
        texts, logits = self._texts_and_logits(prime, length, temperature, seeds, top_k,
                                               stop_at_end, top_p)
        out = []
        for seed, text, lg in zip(seeds, texts, logits):
            stopped = "end" if stop_at_end and len(text) < length else "length"
            out.append(Generation(prime, text, lg, self.vocab, temperature, top_k, seed,
                                  stopped, top_p))
        return out

    def _texts_and_logits(self, prime, length, temperature, seeds, top_k, stop_at_end, top_p):
        """Where the candidates are computed: here; the public Sampler may send them to a
        sampling worker instead."""
        tokens, logits = self.generate_arrays(prime, length, temperature, seeds, top_k,
                                              stop_at_end, top_p)
        return ["".join(self.vocab[t] for t in toks) for toks in tokens], logits

    def generate_arrays(self, prime: str, length: int, temperature: float, seeds: list[int],
                        top_k: int, stop_at_end: bool, top_p: float = 1.0
                        ) -> tuple[list[list[int]], list[np.ndarray]]:
        """The tokens and logits of each candidate, computed here (arguments checked)."""
        length, temperature, top_k, seeds = check_args(prime, length, temperature, top_k,
                                                       len(self.vocab), seeds, stop_at_end)
        top_p = check_top_p(top_p)
        ids = encode_after_start(self.cfg, prime, "seed text")
        u = np.stack([uniforms(s, length) for s in seeds])
        if self.backend == "tf":
            return self._tf_backend().generate(ids, u, temperature, top_k, prime, stop_at_end,
                                               top_p)
        with blas_threads(self.threads):
            return self._numpy_generate(ids, u, temperature, top_k, prime, stop_at_end, top_p)

    def stream(self, prime: str = "X:", length: int = 600, temperature: float = 1.0,
               seed: int = 0, top_k: int = 0, stop_at_end: bool = True, every: int = 25,
               top_p: float = 1.0) -> Iterator[str]:
        """The text as it is written, in chunks of `every` characters (same text as
        generate()). Uses the NumPy path: streaming is for a CPU host where it matters."""
        length, temperature, top_k, (seed,) = check_args(prime, length, temperature, top_k,
                                                         len(self.vocab), [seed], stop_at_end)
        top_p = check_top_p(top_p)
        every = _whole(every, "every")
        if every < 1:
            raise ValueError(f"every must be at least 1 character, not {every}")
        ids = encode_after_start(self.cfg, prime, "seed text")
        u = uniforms(seed, length)[None]
        # Checked above, before the first chunk is asked for: a generator body would not run
        # (or raise) until then.
        return self._chunks(self._numpy_steps(ids, u, temperature, top_k, prime, stop_at_end,
                                              top_p), every)

    def _chunks(self, steps, every: int) -> Iterator[str]:
        chunk = []
        while True:
            with blas_threads(self.threads):  # not held across the yield
                for tok, _ in steps:
                    chunk.append(self.vocab[tok[0]])
                    if len(chunk) >= every:
                        break
                else:
                    break
            yield "".join(chunk)
            chunk = []
        if chunk:
            yield "".join(chunk)

    def _numpy_steps(self, ids, u, temperature, top_k, prime, stop_at_end, top_p=1.0):
        batch, length = u.shape
        state = self.net.zero_state(batch)
        for t in ids[:-1]:
            self.net.step(np.full(batch, t), state)
        tok = np.full(batch, ids[-1])
        end = TuneEnd(prime, batch)
        alive = np.ones(batch, bool)
        for i in range(length):
            logits = self.net.step(tok, state)
            tok = choose(logits, u[:, i], temperature, top_k, top_p)
            yield tok, alive.copy()
            if stop_at_end:
                alive &= ~end.update([self.vocab[t] for t in tok])
                if not alive.any():
                    return

    def _numpy_generate(self, ids, u, temperature, top_k, prime, stop_at_end, top_p=1.0):
        """The hot loop: one step and one draw per character, nothing else per step."""
        batch, length = u.shape
        net, vocab = self.net, self.vocab
        state = net.zero_state(batch)
        for t in ids[:-1]:
            net.step(np.full(batch, t), state)
        tok = np.full(batch, ids[-1])
        toks = np.zeros((length, batch), np.int64)
        logits = np.zeros((length, batch, len(vocab)), np.float32)
        kept = np.full(batch, length)  # characters each row keeps
        end = TuneEnd(prime, batch) if stop_at_end else None
        for i in range(length):
            logits[i] = net.step(tok, state)
            tok = toks[i] = choose(logits[i], u[:, i], temperature, top_k, top_p)
            if end is not None:
                done = end.update([vocab[t] for t in tok]) & (kept == length)
                if done.any():
                    kept[done] = i + 1
                    if (kept < length).all():
                        break
        return ([toks[: kept[b], b].tolist() for b in range(batch)],
                [logits[: kept[b], b] for b in range(batch)])

    # -- scoring ----------------------------------------------------------------------------
    def logits_for(self, text: str) -> np.ndarray:
        """Logits before each of text[1:], context carried from a zero state at text[0]."""
        return self._logits_ids(encode(text, self.vocab))

    def _logits_ids(self, ids: np.ndarray) -> np.ndarray:
        state = self.net.zero_state(1)
        out = np.empty((max(len(ids) - 1, 0), len(self.vocab)), np.float32)
        with blas_threads(self.threads):
            for i in range(len(ids) - 1):
                out[i] = self.net.step(ids[i: i + 1], state)[0]
        return out

    def score(self, text: str) -> float:
        """Mean negative log-likelihood of text[1:] in bits per character, read after the
        model's start text as the sampler reads a seed text."""
        if not isinstance(text, str):
            raise ValueError(f"score needs text, not {_show(text)}")
        if len(text) < 2:
            raise ValueError("score needs at least two characters")
        full = encode_after_start(self.cfg, text)
        start = len(self.cfg.start)
        ids = full[start:]
        if self.backend == "tf":
            logits = self._tf_backend().logits_for(full)
        else:
            logits = self._logits_ids(full)
        z = logits[start:].astype(np.float64)
        z -= z.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        return float(-logp[np.arange(len(ids) - 1), ids[1:]].mean() / LN2)

    # -- TensorFlow backend -----------------------------------------------------------------
    def _tf_backend(self):
        with self._lock:
            if self._tf is None:
                from abcweb.sampling.tf_loop import TFGenerator
                self._tf = TFGenerator(self.cfg, self.ckpt.weights)
            return self._tf


def _tf_sees_gpu() -> bool:
    try:
        import tensorflow as tf
        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # a broken CUDA install must not stop the CPU path
        return False
