"""The character LSTM: config, presets and the Keras 3 model.

The model takes token ids and the LSTM states and returns logits and the new states, so that
training can carry state from one window to the next (truncated backpropagation through time)
and scoring can read a long text in pieces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from abcweb.model import extras
from abcweb.music.corpus import ALPHABET


@dataclass(frozen=True)
class ModelConfig:
    vocab: str = ALPHABET
    embedding: int = 64
    units: int = 512
    layers: int = 1
    dropout: float = 0.0
    # Text the sampler reads before the seed text, unseen. Training reads tunes joined by a
    # blank line with the state carried, so a model trained so has almost never met "X:" from
    # a zero state: after a blank line 1 header in 800 goes wrong at "X:", without one 1 in
    # 60 (weights/README.md). Models from before it was recorded read nothing ("").
    start: str = ""

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {k: d[k] for k in ("vocab", "embedding", "units", "layers", "dropout", "start")
                 if k in d}
        cfg = cls(**known)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if len(set(self.vocab)) != len(self.vocab) or not self.vocab:
            raise ValueError("vocabulary must be non-empty distinct characters")
        for name in ("embedding", "units", "layers"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 1 <= v <= 8192:
                raise ValueError(f"{name} must be an integer from 1 to 8192, not {v!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if not isinstance(self.start, str) or len(self.start) > 100 or not set(
                self.start) <= set(self.vocab):
            raise ValueError("start must be up to 100 characters of the vocabulary")

    def parameter_count(self) -> int:
        v, e, h = self.vocab_size, self.embedding, self.units
        n = v * e + h * v + v
        for layer in range(self.layers):
            n += 4 * h * ((e if layer == 0 else h) + h + 1)
        return n


# Named presets. `notebook` is the MIT 6.S191 lab 1 model exactly; `tiny` learns visibly in a
# minute on two CPU cores; `shipped` is what weights/ holds (see weights/README.md for why).
PRESETS = {
    "notebook": ModelConfig(embedding=256, units=1024, layers=1),
    "shipped": ModelConfig(embedding=64, units=512, layers=1, dropout=0.4),
    "wide": ModelConfig(embedding=64, units=768, layers=1, dropout=0.1),
    "small": ModelConfig(embedding=32, units=256, layers=1),
    "tiny": ModelConfig(embedding=32, units=128, layers=1),
}


def preset(name: str, vocab: str | None = None) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    cfg = PRESETS[name]
    return replace(cfg, vocab=vocab) if vocab else cfg


def build_model(cfg: ModelConfig, precision: str = "float32"):
    """Embedding -> LSTM x layers -> (Dropout) -> Dense. Inputs: tokens [B, T] and one (h, c)
    pair per layer; outputs: logits [B, T, V] and the new (h, c) pairs.

    precision="mixed_bfloat16" computes the embedding and LSTMs in bfloat16 with float32
    weights (1.5x faster training on CPUs with AVX512-BF16); the output layer stays float32."""
    keras = extras.require("keras", "building the Keras model")

    mixed = keras.DTypePolicy(precision)
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    state_inputs, state_outputs = [], []
    x = keras.layers.Embedding(cfg.vocab_size, cfg.embedding, name="embedding",
                               dtype=mixed)(tokens)
    if cfg.dropout:  # on the LSTM's input and output: 1M characters overfit within 8 epochs
        x = keras.layers.Dropout(cfg.dropout, name="embedding_dropout", dtype=mixed)(x)
    for i in range(cfg.layers):
        h = keras.Input(shape=(cfg.units,), name=f"h{i}")
        c = keras.Input(shape=(cfg.units,), name=f"c{i}")
        state_inputs += [h, c]
        x, h_out, c_out = keras.layers.LSTM(
            cfg.units, return_sequences=True, return_state=True, name=f"lstm_{i}",
            recurrent_initializer="glorot_uniform", dtype=mixed)(x, initial_state=[h, c])
        state_outputs += [h_out, c_out]
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="dropout", dtype=mixed)(x)
    logits = keras.layers.Dense(cfg.vocab_size, name="dense", dtype="float32")(x)
    return keras.Model([tokens, *state_inputs], [logits, *state_outputs], name="char_lstm")


def cpu_has_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def zero_states(cfg: ModelConfig, batch: int) -> list[np.ndarray]:
    return [np.zeros((batch, cfg.units), np.float32) for _ in range(2 * cfg.layers)]


def weight_names(cfg: ModelConfig) -> list[str]:
    names = ["embedding"]
    for i in range(cfg.layers):
        names += [f"lstm_{i}/kernel", f"lstm_{i}/recurrent_kernel", f"lstm_{i}/bias"]
    return names + ["dense/kernel", "dense/bias"]


def weight_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    v, e, h = cfg.vocab_size, cfg.embedding, cfg.units
    shapes = {"embedding": (v, e)}
    for i in range(cfg.layers):
        shapes[f"lstm_{i}/kernel"] = (e if i == 0 else h, 4 * h)
        shapes[f"lstm_{i}/recurrent_kernel"] = (h, 4 * h)
        shapes[f"lstm_{i}/bias"] = (4 * h,)
    shapes["dense/kernel"] = (h, v)
    shapes["dense/bias"] = (v,)
    return shapes


def get_weights(model, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Keras model -> named arrays (Keras orders an LSTM's weights kernel, recurrent, bias and
    its gates i, f, c, o: the NumPy sampler follows the same order)."""
    out = {"embedding": model.get_layer("embedding").get_weights()[0]}
    for i in range(cfg.layers):
        k, r, b = model.get_layer(f"lstm_{i}").get_weights()
        out.update({f"lstm_{i}/kernel": k, f"lstm_{i}/recurrent_kernel": r, f"lstm_{i}/bias": b})
    k, b = model.get_layer("dense").get_weights()
    out.update({"dense/kernel": k, "dense/bias": b})
    return {n: np.asarray(a, np.float32) for n, a in out.items()}


def set_weights(model, cfg: ModelConfig, weights: dict[str, np.ndarray]) -> None:
    model.get_layer("embedding").set_weights([weights["embedding"]])
    for i in range(cfg.layers):
        model.get_layer(f"lstm_{i}").set_weights(
            [weights[f"lstm_{i}/{n}"] for n in ("kernel", "recurrent_kernel", "bias")])
    model.get_layer("dense").set_weights([weights["dense/kernel"], weights["dense/bias"]])


class UnknownCharacters(ValueError):
    """Text holds characters outside the model's vocabulary."""

    def __init__(self, chars: list[str], what: str = "text"):
        self.chars = chars
        shown = " ".join(repr(c) for c in chars[:10]) + (" ..." if len(chars) > 10 else "")
        super().__init__(f"the {what} holds characters the model does not know: {shown}")


def encode(text: str, vocab: str, what: str = "text") -> np.ndarray:
    index = {ch: i for i, ch in enumerate(vocab)}
    unknown = sorted({ch for ch in text if ch not in index})
    if unknown:
        raise UnknownCharacters(unknown, what)
    return np.fromiter((index[ch] for ch in text), np.int32, len(text))


def encode_after_start(cfg: ModelConfig, text: str, what: str = "text") -> np.ndarray:
    """The ids the model reads for `text`: its start text (ModelConfig.start), then the text.
    Unknown characters are named as the `what`'s."""
    ids = encode(text, cfg.vocab, what)
    return np.concatenate([encode(cfg.start, cfg.vocab), ids]) if cfg.start else ids
