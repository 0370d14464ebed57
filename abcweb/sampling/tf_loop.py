"""The generation loop as one compiled TensorFlow function (used on a GPU, and in tests to
check the NumPy path against it). Same math, same random numbers and the same inverse-CDF draw
as sampler.py, so both give the same text."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from abcweb.model.lstm import ModelConfig


class TFGenerator:
    def __init__(self, cfg: ModelConfig, w: dict[str, np.ndarray]):
        self.cfg = cfg
        self.traces = 0
        self.nl = cfg.vocab.index("\n")
        self.k_id = cfg.vocab.index("K") if "K" in cfg.vocab else -1
        self.colon = cfg.vocab.index(":") if ":" in cfg.vocab else -1
        self.table = tf.Variable(w["embedding"] @ w["lstm_0/kernel"] + w["lstm_0/bias"],
                                 trainable=False)
        self.recurrent0 = tf.Variable(w["lstm_0/recurrent_kernel"], trainable=False)
        self.stacked = [tf.Variable(np.concatenate([w[f"lstm_{i}/kernel"],
                                                    w[f"lstm_{i}/recurrent_kernel"]], 0),
                                    trainable=False) for i in range(1, cfg.layers)]
        self.biases = [tf.Variable(w[f"lstm_{i}/bias"], trainable=False)
                       for i in range(1, cfg.layers)]
        self.dense = tf.Variable(w["dense/kernel"], trainable=False)
        self.dense_bias = tf.Variable(w["dense/bias"], trainable=False)
        spec = tf.TensorSpec
        self._loop = tf.function(self._generate, input_signature=[
            spec([None], tf.int32), spec([None, None], tf.float64), spec([], tf.float64),
            spec([], tf.int32), spec([], tf.bool), spec([4], tf.int32), spec([], tf.float64)])
        self._score = tf.function(self._logits, input_signature=[spec([None], tf.int32)])

    # -- the cell ---------------------------------------------------------------------------
    def _cell(self, z, c):
        i, f, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    def _step(self, tok, states):
        states = list(states)
        z = tf.gather(self.table, tok) + states[0] @ self.recurrent0
        states[0], states[1] = self._cell(z, states[1])
        for i in range(1, self.cfg.layers):
            x = tf.concat([states[2 * i - 2], states[2 * i]], 1)
            z = x @ self.stacked[i - 1] + self.biases[i - 1]
            states[2 * i], states[2 * i + 1] = self._cell(z, states[2 * i + 1])
        return states[-2] @ self.dense + self.dense_bias, tuple(states)

    def _zero(self, batch):
        return tuple(tf.zeros([batch, self.cfg.units]) for _ in range(2 * self.cfg.layers))

    # -- generation -------------------------------------------------------------------------
    def _generate(self, prime, u, temperature, top_k, stop_at_end, flags, top_p):
        self.traces += 1  # runs only while tracing
        batch, length = tf.shape(u)[0], tf.shape(u)[1]
        vocab = len(self.cfg.vocab)

        def prime_body(j, states):
            _, states = self._step(tf.fill([batch], prime[j]), states)
            return j + 1, states

        _, states = tf.while_loop(lambda j, s: j < tf.size(prime) - 1, prime_body,
                                  (tf.constant(0), self._zero(batch)))
        # Per row: chars into the current line (0, 1, 2+), line starts "K", line starts "K:",
        # a K: line has ended, the last char was a newline.
        pos = tf.fill([batch], flags[0])
        first_k = tf.fill([batch], flags[1] > 0)
        line_k = tf.fill([batch], flags[2] > 0)
        seen_k = tf.fill([batch], flags[3] // 2 > 0)
        prev_nl = tf.fill([batch], flags[3] % 2 > 0)
        alive = tf.ones([batch], tf.bool)
        toks = tf.TensorArray(tf.int32, size=length)
        logits_ta = tf.TensorArray(tf.float32, size=length)
        alive_ta = tf.TensorArray(tf.bool, size=length)

        def body(i, tok, states, pos, first_k, line_k, seen_k, prev_nl, alive, toks,
                 logits_ta, alive_ta):
            logits, states = self._step(tok, states)
            # As sampler.choose: shift the maximum to 0, divide, cut, then an unnormalised CDF.
            z = tf.cast(logits, tf.float64)
            z = (z - tf.reduce_max(z, 1, keepdims=True)) / tf.maximum(temperature, 1e-300)
            kth = tf.math.top_k(z, tf.clip_by_value(top_k, 1, vocab)).values[:, -1:]
            z = tf.where((top_k > 0) & (z < kth), tf.constant(-np.inf, tf.float64), z)
            z = tf.cond(top_p < 1, lambda: self._nucleus(z, top_p), lambda: z)
            cdf = tf.cumsum(tf.exp(z), axis=1)
            drawn = tf.reduce_sum(tf.cast(cdf <= u[:, i: i + 1] * cdf[:, -1:], tf.int32), 1)
            drawn = tf.minimum(drawn, vocab - 1)
            nxt = tf.where(temperature > 0, drawn, tf.argmax(logits, 1, tf.int32))
            toks = toks.write(i, nxt)
            logits_ta = logits_ta.write(i, logits)
            alive_ta = alive_ta.write(i, alive)
            is_nl = tf.equal(nxt, self.nl)
            seen_k = seen_k | (is_nl & line_k)
            done = is_nl & seen_k & prev_nl
            line_k = tf.where(is_nl, False,
                              line_k | ((pos == 1) & first_k & tf.equal(nxt, self.colon)))
            first_k = tf.where(is_nl, False,
                               tf.where(pos == 0, tf.equal(nxt, self.k_id), first_k))
            pos = tf.where(is_nl, 0, tf.minimum(pos + 1, 2))
            alive = alive & ~(done & stop_at_end)
            return (i + 1, nxt, states, pos, first_k, line_k, seen_k, is_nl, alive, toks,
                    logits_ta, alive_ta)

        out = tf.while_loop(
            lambda i, *rest: (i < length) & tf.reduce_any(rest[7]), body,
            (tf.constant(0), tf.fill([batch], prime[-1]), states, pos, first_k, line_k, seen_k,
             prev_nl, alive, toks, logits_ta, alive_ta))
        n = out[0]
        return (out[9].stack()[:n], out[10].stack()[:n], out[11].stack()[:n])

    @staticmethod
    def _nucleus(z, top_p):
        # As sampler._nucleus: keep what is at least as likely as the last character needed
        # to hold top_p of the mass.
        p = tf.exp(z)
        p = p / tf.reduce_sum(p, 1, keepdims=True)
        ps = tf.sort(p, axis=1, direction="DESCENDING")
        before = tf.cumsum(ps, axis=1) - ps
        n = tf.reduce_sum(tf.cast(before < top_p, tf.int32), 1, keepdims=True)
        last = tf.gather(ps, n - 1, axis=1, batch_dims=1)
        return tf.where(p >= last, z, tf.constant(-np.inf, tf.float64))

    @staticmethod
    def prime_flags(prime: str) -> list[int]:
        lines = prime.split("\n")
        last = lines[-1]
        seen = any(line.startswith("K:") for line in lines[:-1])
        prev_nl = prime.endswith("\n") and len(lines) > 1
        return [min(len(last), 2), int(last[:1] == "K"), int(last[:2] == "K:"),
                2 * int(seen) + int(prev_nl)]

    def generate(self, ids, u, temperature, top_k, prime, stop_at_end, top_p=1.0):
        toks, logits, alive = self._loop(
            tf.constant(ids, tf.int32), tf.constant(u, tf.float64),
            tf.constant(temperature, tf.float64), tf.constant(top_k, tf.int32),
            tf.constant(bool(stop_at_end)), tf.constant(self.prime_flags(prime), tf.int32),
            tf.constant(top_p, tf.float64))
        toks, logits, alive = toks.numpy().T, np.transpose(logits.numpy(), (1, 0, 2)), \
            alive.numpy().T
        rows = [toks[b][alive[b]].tolist() for b in range(toks.shape[0])]
        return rows, [logits[b][alive[b]] for b in range(toks.shape[0])]

    # -- scoring ----------------------------------------------------------------------------
    def _logits(self, ids):
        self.traces += 1
        n = tf.size(ids) - 1
        ta = tf.TensorArray(tf.float32, size=n)

        def body(j, states, ta):
            logits, states = self._step(tf.reshape(ids[j], [1]), states)
            return j + 1, states, ta.write(j, logits[0])

        _, _, ta = tf.while_loop(lambda j, s, t: j < n, body,
                                 (tf.constant(0), self._zero(1), ta))
        return ta.stack()

    def logits_for(self, ids: np.ndarray) -> np.ndarray:
        return self._score(tf.constant(ids, tf.int32)).numpy()
