"""Engine benchmark: sampler and training speed against the notebook's way, on one machine.

    python bench/bench_engine.py [--chars 300] [--train-steps 6]

Prints, for the `notebook` preset (Embedding 256, LSTM 1024, Dense over irish.abc's 83
characters) at batch 1:
- chars/s of our NumPy sampler and our tf.function sampler, and of the notebook's way (one
  Keras model call per character, carrying the LSTM state by hand as Keras 3 requires);
- a matrix-vector bound: the chars/s if a step cost nothing but its two unavoidable products
  (state @ recurrent kernel, state @ dense kernel), timed with NumPy on this machine;
- training steps/s at batch 64 x 100: our compiled step and the notebook's eager GradientTape
  loop; and the shipped model's time for 600 characters.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from abcweb import load_sampler
from abcweb.model import checkpoint
from abcweb.model.lstm import ModelConfig, build_model, get_weights
from abcweb.sampling.loop import blas_threads
from abcweb.sampling.sampler import Sampler

IRISH = os.environ.get("ABCWEB_IRISH", "../shared/data/irish.abc")


def best_of(fn, runs=5):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chars", type=int, default=300)
    ap.add_argument("--notebook-chars", type=int, default=100)
    ap.add_argument("--train-steps", type=int, default=6)
    args = ap.parse_args()

    import keras
    import tensorflow as tf
    text = open(IRISH).read()
    vocab = "".join(sorted(set(text)))
    cfg = ModelConfig(vocab=vocab, embedding=256, units=1024, layers=1)
    tf.random.set_seed(0)
    model = build_model(cfg)
    ck = checkpoint.Checkpoint(cfg, get_weights(model, cfg), {})
    print(f"notebook preset: {cfg.parameter_count():,} parameters, vocabulary {len(vocab)}, "
          f"{os.cpu_count()} CPUs, TensorFlow {tf.__version__}")

    # -- sampling -------------------------------------------------------------------------
    n = args.chars
    np_s = Sampler(ck, "numpy")  # one BLAS thread: the default, best on a busy host
    np2_s = Sampler(ck, "numpy", threads=None)  # NumPy's own BLAS threads
    tf_s = Sampler(ck, "tf")
    tf_s.generate("X", 5, 1.0, stop_at_end=False, best_of=1)  # trace once
    t_np, _ = best_of(lambda: np_s.generate("X", n, 1.0, seed=1, stop_at_end=False, best_of=1))
    t_np2, _ = best_of(lambda: np2_s.generate("X", n, 1.0, seed=1, stop_at_end=False, best_of=1))
    t_tf, _ = best_of(lambda: tf_s.generate("X", n, 1.0, seed=1, stop_at_end=False, best_of=1))

    # The notebook's model, as its lab code builds it for generation: a Sequential with a
    # stateful LSTM at batch size 1 (Keras 3 spelling), our weights loaded into it.
    notebook = keras.Sequential([
        keras.Input(batch_shape=(1, None), dtype="int32"),
        keras.layers.Embedding(len(vocab), cfg.embedding),
        keras.layers.LSTM(cfg.units, return_sequences=True, recurrent_initializer="glorot_uniform",
                          recurrent_activation="sigmoid", stateful=True),
        keras.layers.Dense(len(vocab)),
    ])
    w = ck.weights
    notebook.set_weights([w["embedding"], w["lstm_0/kernel"], w["lstm_0/recurrent_kernel"],
                          w["lstm_0/bias"], w["dense/kernel"], w["dense/bias"]])

    def notebook_way():  # the notebook's loop: one eager Keras call and one draw per character
        input_eval = tf.expand_dims([vocab.index("X")], 0)
        for layer in notebook.layers:
            if hasattr(layer, "reset_states"):
                layer.reset_states()
        for _ in range(args.notebook_chars):
            predictions = tf.squeeze(notebook(input_eval), 0)
            predicted_id = tf.random.categorical(predictions, num_samples=1)[-1, 0].numpy()
            input_eval = tf.expand_dims([predicted_id], 0)

    ids = tf.constant([[vocab.index("X")]], tf.int32)
    states = [tf.zeros((1, cfg.units))] * 2

    def explicit_state_way():  # the same with our functional model, states passed by hand
        x, st = ids, states
        for _ in range(args.notebook_chars):
            logits, h, c = model([x, *st])
            st = [h, c]
            predicted_id = tf.random.categorical(tf.squeeze(logits, 0), 1)[-1, 0].numpy()
            x = tf.expand_dims([predicted_id], 0)

    notebook_way()
    explicit_state_way()
    t_nb, _ = best_of(notebook_way, runs=3)
    t_ex, _ = best_of(explicit_state_way, runs=3)

    h = np.random.default_rng(1).standard_normal((1, cfg.units)).astype(np.float32)
    rk, dk = w["lstm_0/recurrent_kernel"], w["dense/kernel"]
    both = np.ascontiguousarray(np.concatenate([rk, dk], 1))

    def bound():  # the step's unavoidable products, as two calls or as one
        for _ in range(n):
            h @ rk
            h @ dk

    def bound_fused():
        for _ in range(n):
            h @ both

    times = [best_of(f)[0] for f in (bound, bound_fused)]
    with blas_threads(1):
        times += [best_of(f)[0] for f in (bound, bound_fused)]
    t_bound = min(times)  # the fastest way, one or two BLAS threads
    cps = {k: n / t for k, t in (("numpy", t_np), ("numpy2", t_np2), ("tf", t_tf),
                                 ("bound", t_bound))}
    cps["notebook"] = args.notebook_chars / t_nb
    cps["explicit"] = args.notebook_chars / t_ex
    print(f"sampler, batch 1, chars/s: numpy {cps['numpy']:,.0f} (1 BLAS thread), "
          f"{cps['numpy2']:,.0f} (NumPy's threads)  tf.function {cps['tf']:,.0f}"
          f"  notebook way {cps['notebook']:,.1f} (stateful Sequential; "
          f"{cps['explicit']:,.1f} with states passed by hand)  matvec bound {cps['bound']:,.0f}")
    best = max(cps["numpy"], cps["numpy2"], cps["tf"])
    print(f"  ours / notebook way = {best / cps['notebook']:.0f}x (target >= 60x); "
          f"ours / bound = {best / cps['bound']:.0%} (target >= 50%)")

    # -- training -------------------------------------------------------------------------
    from abcweb.model.train import Trainer, TrainSettings
    from abcweb.music.corpus import Corpus

    tunes = text.split("\n\n")

    def our_steps_per_s(precision):
        trainer = Trainer(cfg, Corpus("irish", tunes), None, TrainSettings(
            steps=10**6, batch=64, seq_len=100, eval_every=0, precision=precision))
        run = trainer.run()
        next(run)  # trace
        t0 = time.perf_counter()
        for _ in range(args.train_steps):
            next(run)
        return args.train_steps / (time.perf_counter() - t0), trainer.precision

    ours32, _ = our_steps_per_s("float32")
    ours, precision = our_steps_per_s("auto")

    eager_model = build_model(cfg)
    opt = keras.optimizers.Adam(5e-3)
    all_ids = np.array([vocab.index(c) for c in text], np.int32)
    rng = np.random.default_rng(0)
    zero = [tf.zeros((64, cfg.units))] * 2

    def eager_step():  # the notebook's loop: random windows, GradientTape, no tf.function
        idx = rng.integers(0, len(all_ids) - 101, 64)
        x = np.stack([all_ids[i: i + 100] for i in idx])
        y = np.stack([all_ids[i + 1: i + 101] for i in idx])
        with tf.GradientTape() as tape:
            logits = eager_model([tf.constant(x), *zero])[0]
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
                y, logits, from_logits=True))
        grads = tape.gradient(loss, eager_model.trainable_variables)
        opt.apply_gradients(zip(grads, eager_model.trainable_variables))

    eager_step()
    t0 = time.perf_counter()
    for _ in range(args.train_steps):
        eager_step()
    eager = args.train_steps / (time.perf_counter() - t0)
    print(f"training, batch 64 x 100, steps/s: ours {ours:.3f} ({precision}), "
          f"{ours32:.3f} (float32)  notebook loop {eager:.3f}  ratio {ours / eager:.2f}x, "
          f"{ours32 / eager:.2f}x in float32 (target >= 1.5x)")

    # -- the shipped model ----------------------------------------------------------------
    try:
        s = load_sampler(backend="numpy")
    except checkpoint.CheckpointError as e:
        print(f"shipped model: {e}")
        return
    _, med = best_of(lambda: s.generate("X:", 600, 1.0, seed=0, stop_at_end=False,
                                         best_of=1), runs=7)
    print(f"shipped model ({s.cfg.units} units x {s.cfg.layers}): 600 chars in {med * 1000:.0f} ms"
          " (median of 7; target < 300 ms)")


if __name__ == "__main__":
    main()
