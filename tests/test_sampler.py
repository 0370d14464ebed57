import math
import subprocess
import sys

import numpy as np
import pytest

from abcweb import UnknownCharacters, load_sampler
from abcweb.model import checkpoint
from abcweb.model.lstm import ModelConfig, build_model, encode, set_weights, zero_states
from abcweb.sampling.loop import TuneEnd
from abcweb.sampling.sampler import Sampler

from conftest import ROOT, random_checkpoint


@pytest.fixture(scope="module")
def s(tiny_dir):
    return load_sampler(tiny_dir, backend="numpy")


@pytest.fixture(scope="module")
def s_tf(tiny_dir):
    return load_sampler(tiny_dir, backend="tf")


def test_same_arguments_same_text_in_process(s):
    a = s.generate("X:", 300, 1.0, seed=5)
    b = s.generate("X:", 300, 1.0, seed=5)
    c = s.generate("X:", 300, 1.0, seed=6)
    assert a.text == b.text
    assert a.text != c.text
    assert a.text.startswith("X:") and len(a.generated) <= 300


def test_same_text_across_processes(tiny_dir):
    cmd = [sys.executable, "-m", "abcweb", "sample", "--weights", str(tiny_dir), "--seed", "11",
           "--length", "200", "--temperature", "0.9", "--backend", "numpy"]
    outs = [subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
            for _ in range(2)]
    assert all(o.returncode == 0 for o in outs), outs[0].stderr
    assert outs[0].stdout == outs[1].stdout
    assert outs[0].stdout.startswith("X:") and len(outs[0].stdout) > 50


@pytest.mark.parametrize("folder", ["tiny_dir", "one_layer_dir"])  # stacked and fused paths
def test_numpy_logits_match_keras(folder, request):
    ck = checkpoint.load(request.getfixturevalue(folder))
    s = Sampler(ck, "numpy")
    model = build_model(ck.config)
    set_weights(model, ck.config, ck.weights)
    text = "X:1\nT:Test\nM:6/8\nK:D\n|:dAF DFA|dfe dBA:|\n"
    ids = encode(text, ck.config.vocab)
    keras_logits = np.asarray(model([ids[None], *zero_states(ck.config, 1)])[0])[0, :-1]
    assert np.abs(keras_logits - s.logits_for(text)).max() < 1e-4


def test_tf_backend_matches_numpy_without_retracing(s, s_tf):
    runs = [("X:", 120, 1.0, 0, 0), ("X:", 200, 0.5, 3, 5), ("X:1\nT:", 80, 2.0, 9, 0),
            ("M:6/8\n", 150, 0.0, 1, 0), ("X:", 60, 1.3, 2**40, 10)]
    for prime, length, temp, seed, k in runs:
        a = s.generate(prime, length, temp, seed, k)
        b = s_tf.generate(prime, length, temp, seed, k)
        assert a.text == b.text
        assert np.abs(a.logits - b.logits).max() < 1e-4
    for temp, k, p in [(1.0, 0, 0.5), (1.5, 5, 0.8), (0.9, 0, 0.05)]:  # nucleus too
        assert (s.generate("X:", 150, temp, 6, k, top_p=p).text
                == s_tf.generate("X:", 150, temp, 6, k, top_p=p).text)
    many = s_tf.generate_many("X:", 90, 1.0, seeds=[1, 2, 3, 4])
    assert [g.text for g in many] == [s.generate("X:", 90, 1.0, seed).text for seed in (1, 2, 3, 4)]
    assert s_tf.traces == 1  # temperature, length, seed, top-k, top-p, batch never retrace


def test_scores_agree_between_backends(s, s_tf):
    text = "X:1\nT:Scored\nK:G\nGABc dedB|\n"
    assert s.score(text) == pytest.approx(s_tf.score(text), abs=1e-4)
    assert 0 < s.score(text) < 20


def test_start_text_is_read_before_the_seed_text_and_never_shown(tiny_dir):
    """A model trained on tunes joined by blank lines reads one before the seed text: the same
    as a start-less model given the blank line in its seed text, with the blank line unseen."""
    import dataclasses

    ck = checkpoint.load(tiny_dir)
    plain = Sampler(ck, "numpy", workers=False)
    started_ck = checkpoint.Checkpoint(dataclasses.replace(ck.config, start="\n\n"),
                                       ck.weights, ck.info)
    for backend in ("numpy", "tf"):
        started = Sampler(started_ck, backend, workers=False)
        for prime, seed, top_p in [("X:", 3, 1.0), ("X:1\nT:", 8, 0.9)]:
            a = started.generate(prime, 150, 1.0, seed, top_p=top_p)
            b = plain.generate("\n\n" + prime, 150, 1.0, seed, top_p=top_p)
            assert a.text == prime + b.generated and a.prime == prime
            assert np.abs(a.logits - b.logits).max() < 1e-4
            assert a.text != plain.generate(prime, 150, 1.0, seed, top_p=top_p).text
        streamed = "".join(started.stream("X:", 150, 1.0, 3))
        assert streamed == started.generate("X:", 150, 1.0, 3).generated
        text = "X:1\nT:Scored\nK:G\nGABc dedB|\n"
        whole = plain._logits_ids(encode("\n\n" + text, ck.config.vocab))[2:]
        z = whole.astype(np.float64) - whole.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        ids = encode(text, ck.config.vocab)
        expected = -logp[np.arange(len(ids) - 1), ids[1:]].mean() / math.log(2)
        assert started.score(text) == pytest.approx(expected, abs=1e-4)
    assert started.score(text) != pytest.approx(plain.score(text), abs=1e-4)


def test_start_text_travels_in_the_config_and_old_configs_read_none(tmp_path):
    cfg = ModelConfig(embedding=8, units=16, start="\n\n")
    checkpoint.save(random_checkpoint(cfg), tmp_path)
    assert checkpoint.load(tmp_path).config.start == "\n\n"
    assert ModelConfig.from_dict({"embedding": 8, "units": 16}).start == ""
    with pytest.raises(ValueError, match="start"):
        ModelConfig.from_dict({"embedding": 8, "units": 16, "start": "\u00e9"})


def test_generate_many_equals_single(s):
    many = s.generate_many("X:", 150, 1.0, seeds=[7, 8, 9])
    for seed, g in zip([7, 8, 9], many):
        assert g.text == s.generate("X:", 150, 1.0, seed).text


def test_temperature_zero_is_greedy_and_top_k_one_too(s):
    g = s.generate("X:", 100, 0.0, seed=1)
    assert all(st.char == max(st.top, key=lambda t: t[1])[0] for st in g.steps)
    assert all(st.prob == 1.0 and st.entropy == 0.0 for st in g.steps)
    assert s.generate("X:", 100, 0.0, seed=99).text == g.text  # the seed does not matter
    assert s.generate("X:", 100, 1.0, seed=1, top_k=1).text == g.text


def test_high_temperature_flattens_the_distribution(s):
    g = s.generate("X:", 50, 100.0, seed=0)
    v = len(s.vocab)
    assert min(st.entropy for st in g.steps) > math.log2(v) - 0.05
    cold = s.generate("X:", 50, 0.3, seed=0)
    assert np.mean([st.entropy for st in cold.steps]) < np.mean([st.entropy for st in g.steps])


def test_top_k_restricts_choices(s):
    g = s.generate("X:", 200, 1.5, seed=4, top_k=3)
    probs = g.probabilities()
    assert ((probs > 0).sum(-1) <= 3).all()
    for st in g.steps:
        assert st.prob > 0
        assert abs(sum(p for _, p in st.top) - 1.0) < 1e-6


def test_top_p_keeps_the_smallest_set_holding_that_mass(s):
    g = s.generate("X:", 200, 1.2, seed=4, top_p=0.6)
    assert g.top_p == 0.6
    full = g.probabilities(top_p=1.0)
    cut = g.probabilities()
    for p_full, p_cut, char in zip(full, cut, g.generated):
        kept = p_cut > 0
        order = np.argsort(-p_full)
        n = kept.sum()
        # The kept characters are the n likeliest; n - 1 of them hold under 0.6, n at least.
        assert set(np.flatnonzero(kept)) == set(order[:n].tolist())
        assert p_full[order[: n - 1]].sum() < 0.6 <= p_full[order[:n]].sum() + 1e-9
        assert p_cut[s.vocab.index(char)] > 0  # every drawn character was in the nucleus
        assert p_cut.sum() == pytest.approx(1.0)
    assert 1 <= (cut > 0).sum(-1).min() and (cut > 0).sum(-1).mean() < (full > 0).sum(-1).mean()


def test_top_p_one_changes_nothing_and_lower_is_surer(s):
    a = s.generate("X:", 300, 1.0, seed=8, best_of=1)
    assert s.generate("X:", 300, 1.0, seed=8, best_of=1, top_p=1.0).text == a.text
    low = s.generate_many("X:", 300, 1.0, seeds=list(range(8)), top_p=0.3)
    full = s.generate_many("X:", 300, 1.0, seeds=list(range(8)))
    surprise = [np.mean([-math.log2(st.prob) for st in g.steps]) for g in low]
    assert np.mean(surprise) < np.mean([np.mean([-math.log2(g.probabilities(top_p=1.0)[i][
        s.vocab.index(c)]) for i, c in enumerate(g.generated)]) for g in full])
    # Drafts carry it too: in the worker and in this thread alike.
    local = load_sampler(s.ckpt.path, backend="numpy", workers=False)
    assert (s.generate("X:", 200, 1.0, seed=3, best_of=4, top_p=0.5).text
            == local.generate("X:", 200, 1.0, seed=3, best_of=4, top_p=0.5).text)
    assert (s.generate("X:", 200, 1.0, seed=3, best_of=4, top_p=0.5).text
            != s.generate("X:", 200, 1.0, seed=3, best_of=4).text)


def test_distribution_at_other_temperature(s):
    g = s.generate("X:", 30, 0.5, seed=2)
    d_half, d_one = g.distribution(3), g.distribution(3, temperature=1.0)
    assert sum(d_half.values()) == pytest.approx(1.0)
    assert max(d_half.values()) >= max(d_one.values())


@pytest.mark.parametrize("bad, message", [
    (dict(temperature=-0.1), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(temperature=float("inf")), "temperature"), (dict(temperature=1e9), "temperature"),
    (dict(length=-1), "length"), (dict(length=10**9), "length"), (dict(top_k=-1), "top-k"),
    (dict(top_k=10**6), "top-k"), (dict(prime=""), "empty"), (dict(prime="X" * 10**6), "most"),
    (dict(seed=-3), "seed"), (dict(seed="abc"), "seed"), (dict(top_p=0), "top-p"),
    (dict(top_p=1.5), "top-p"), (dict(top_p=float("nan")), "top-p"), (dict(top_p="0.5"), "top-p"),
])
def test_bad_arguments_raise_clear_errors(s, bad, message):
    with pytest.raises(ValueError, match=message):
        s.generate(**{"prime": "X:", "length": 10, **bad})


def test_unknown_characters_are_named(s):
    with pytest.raises(UnknownCharacters) as e:
        s.generate("X:1\nT:Caf\u00e9 \u266b", 10)
    assert "'\u00e9'" in str(e.value) and "'\u266b'" in str(e.value)
    assert e.value.chars == ["\u00e9", "\u266b"]


def test_length_zero_gives_the_prime(s):
    g = s.generate("X:1\n", 0)
    assert g.text == "X:1\n" and g.steps == [] and g.logits.shape[0] == 0


def test_stream_gives_the_same_text(s):
    g = s.generate("X:", 230, 1.0, seed=3)
    chunks = list(s.stream("X:", 230, 1.0, seed=3, every=40))
    assert "".join(chunks) == g.generated
    assert len(chunks) == math.ceil(len(g.generated) / 40)


def newline_model() -> checkpoint.Checkpoint:
    """A model that always says newline: it makes the tune-end rule observable."""
    ck = random_checkpoint(ModelConfig(embedding=4, units=8, layers=1), scale=0.01)
    ck.weights["dense/bias"][:] = -20.0
    ck.weights["dense/bias"][ck.config.vocab.index("\n")] = 20.0
    return ck


@pytest.mark.parametrize("backend", ["numpy", "tf"])
def test_stop_at_end_of_first_complete_tune(backend):
    s = Sampler(newline_model(), backend)
    g = s.generate("X:1\nT:a\nK:D\nabc|", 50, 1.0)
    assert g.generated == "\n\n" and g.stopped == "end"
    g = s.generate("X:1\nT:a\nK:D\nabc|", 50, 1.0, stop_at_end=False)
    assert len(g.generated) == 50 and g.stopped == "length"
    g = s.generate("X:1\nT:no key line yet", 50, 1.0)  # no K: line: not a tune body yet
    assert len(g.generated) == 50 and g.stopped == "length"
    g = s.generate("X:1\nK:G", 50, 1.0)  # the K: line ends, then a blank line
    assert g.generated == "\n\n"


def test_tune_end_tracker():
    end = TuneEnd("X:1\nT:t\n", 1)
    seen = [bool(end.update([c])[0]) for c in "K:D\nabc\n\n"]
    assert seen == [False] * 8 + [True]


def test_concurrent_sampling_is_correct_and_restores_blas_threads(s):
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    expected = {seed: s.generate("X:", 120, 1.0, seed).text for seed in range(8)}
    with ThreadPoolExecutor(4) as pool:
        got = dict(zip(range(8), pool.map(lambda k: s.generate("X:", 120, 1.0, k).text,
                                          range(8))))
    assert got == expected
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before
