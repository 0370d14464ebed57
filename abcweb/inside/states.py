"""Inside the LSTM: every unit's cell state, hidden state and gates at every character.

    from abcweb.inside import lstm_states
    st = lstm_states(sampler.ckpt, text)   # or a Checkpoint loaded from any folder
    st.c[layer, t, unit]                   # after reading text[t]; likewise h, i, f, o

A sampler only needs the last hidden state; a learner wants the whole story (the notebook's
first page: a cell state that keeps information across steps, gates that decide what to
forget, a hidden state that reacts to new input). The text is known in full, so each layer's
input projection for every character is one matrix product; only the recurrence runs a
character at a time.

The equations are Keras's LSTM (gates in the order input, forget, cell, output):
    i, f, o = sigmoid(x W + h R + b) parts;  g = tanh(...) part
    c_t = f * c_(t-1) + i * g;               h_t = o * tanh(c_t)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abcweb.model.checkpoint import Checkpoint
from abcweb.model.lstm import encode_after_start

MAX_CHARS = 20_000  # a text longer than this is refused (the arrays grow with it)


@dataclass
class States:
    """Arrays of shape [layers, characters, units]: the values after reading each character."""
    text: str
    c: np.ndarray  # cell state
    h: np.ndarray  # hidden state (what the next layer and the output read)
    i: np.ndarray  # input gate
    f: np.ndarray  # forget gate
    o: np.ndarray  # output gate

    @property
    def layers(self) -> int:
        return self.c.shape[0]

    @property
    def units(self) -> int:
        return self.c.shape[2]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5  # exact, and no overflow warning for large |x|


def lstm_states(ckpt: Checkpoint, text: str) -> States:
    """The LSTM's states and gates at every character of `text`, read after the model's start
    text (ModelConfig.start) from a zero state, as the sampler reads a seed text."""
    if not text:
        raise ValueError("no text to read: give at least one character")
    if len(text) > MAX_CHARS:
        raise ValueError(f"the text is {len(text):,} characters; the most is {MAX_CHARS:,}")
    cfg, w = ckpt.config, ckpt.weights
    ids = encode_after_start(cfg, text)  # UnknownCharacters names what it cannot read
    skip = len(cfg.start)
    steps, units = len(ids), cfg.units
    shape = (cfg.layers, steps, units)
    out = {k: np.empty(shape, np.float32) for k in ("c", "h", "i", "f", "o")}
    x = w["embedding"][ids]  # [steps, embedding]
    for layer in range(cfg.layers):
        pre = x @ w[f"lstm_{layer}/kernel"] + w[f"lstm_{layer}/bias"]  # [steps, 4 units]
        recurrent = w[f"lstm_{layer}/recurrent_kernel"]
        h = np.zeros(units, np.float32)
        c = np.zeros(units, np.float32)
        gates = np.empty((steps, 4 * units), np.float32)
        cs = out["c"][layer]
        hs = out["h"][layer]
        for t in range(steps):
            z = pre[t] + h @ recurrent
            sig = _sigmoid(z[: 2 * units])
            og = _sigmoid(z[3 * units:])
            c = sig[units:] * c + sig[:units] * np.tanh(z[2 * units: 3 * units])
            h = og * np.tanh(c)
            cs[t], hs[t] = c, h
            gates[t, : 2 * units], gates[t, 2 * units: 3 * units] = sig, og
        out["i"][layer] = gates[:, :units]
        out["f"][layer] = gates[:, units: 2 * units]
        out["o"][layer] = gates[:, 2 * units: 3 * units]
        x = hs  # the next layer reads this one's hidden states
    return States(text, **{k: v[:, skip:] for k, v in out.items()})


TRACKS = 0.3  # |r| below this: no unit tracks the feature


def find_cells(ckpt: Checkpoint, texts: list[str]) -> list[dict]:
    """For each named feature (abcweb/inside/features.py), the unit whose cell state and the unit
    whose hidden state follow it best over the texts (each read from a zero state): Pearson r
    over every character where the feature is defined."""
    from abcweb.inside.features import FEATURES, features

    feats = {name: [] for name in FEATURES}
    cs, hs = [], []
    for text in texts:
        st = lstm_states(ckpt, text)
        # Units of every layer side by side: column k is layer k // units, unit k % units.
        cs.append(np.concatenate(list(st.c), 1))
        hs.append(np.concatenate(list(st.h), 1))
        for name, values in features(text).items():
            feats[name].append(values)
    states = {"c": np.concatenate(cs), "h": np.concatenate(hs)}
    units = ckpt.config.units
    rows = []
    for name, parts in feats.items():
        f = np.concatenate(parts).astype(np.float64)
        ok = ~np.isnan(f)
        row = {"feature": name, "about": FEATURES[name], "chars": int(ok.sum()),
               "varies": bool(ok.any() and np.nanmax(f) > np.nanmin(f))}
        for kind, s in states.items():
            x = f[ok] - f[ok].mean()
            y = s[ok].astype(np.float64)
            y -= y.mean(0)
            den = np.sqrt((x ** 2).sum() * (y ** 2).sum(0))
            r = np.divide(x @ y, den, out=np.zeros(y.shape[1]), where=den > 0)
            k = int(np.argmax(np.abs(r)))
            row[kind] = {"layer": k // units, "unit": k % units, "r": float(r[k])}
        row["tracked"] = row["varies"] and max(abs(row["c"]["r"]), abs(row["h"]["r"])) >= TRACKS
        rows.append(row)
    return rows


def cells_table(rows: list[dict]) -> str:
    """find_cells' result as a Markdown table."""
    def cell(x: dict) -> str:
        return f"layer {x['layer']} unit {x['unit']}: r = {x['r']:+.2f}"

    lines = ["| feature | best cell state c | best hidden state h | verdict |",
             "|---|---|---|---|"]
    for r in rows:
        verdict = ("tracked" if r["tracked"] else
                   f"no unit tracks it (all |r| < {TRACKS})" if r["varies"] else
                   "never changes in these tunes: nothing to track")
        c, h = (cell(r["c"]), cell(r["h"])) if r["varies"] else ("-", "-")
        lines.append(f"| {r['feature']}: {r['about']} | {c} | {h} | {verdict} |")
    return "\n".join(lines)
