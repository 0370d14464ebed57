import json
import subprocess
import sys

import numpy as np
import pytest

from abcweb import load_sampler
from abcweb.model import checkpoint
from abcweb.model.lstm import preset
from abcweb.model.train import Trainer, TrainSettings, corpus_ids
from abcweb.music import corpus
from abcweb.sound import abctools

from conftest import ROOT


@pytest.fixture(scope="module")
def small_corpus(irish_path):
    tunes = corpus.load_irish(irish_path).train.tunes[:120]
    tr, va = corpus.Corpus("irish120", tunes).split()
    return tr, va


def settings(**kw):
    base = dict(steps=60, batch=16, seq_len=64, learning_rate=1e-2, eval_every=30)
    return TrainSettings(**{**base, **kw})


@pytest.mark.slow
def test_training_lowers_the_loss(small_corpus, tmp_path):
    tr, va = small_corpus
    t = Trainer(preset("tiny"), tr, va, settings())
    before = t.validate()
    metrics = list(t.run(save_to=tmp_path))
    after = metrics[-1].val_bpc
    assert before > 6.0 and after < before - 2.0  # from ~log2(96) to well under
    assert [m.step for m in metrics] == list(range(1, 61))
    assert all(m.chars_per_s > 0 and np.isfinite(m.train_bpc) for m in metrics)
    assert [m.val_bpc is not None for m in metrics].count(True) == 2
    ck = checkpoint.load(tmp_path, optimizer=True)
    assert ck.steps == 60 and ck.optimizer and ck.info["history"][-1]["step"] == 60
    # Trained on tunes joined by blank lines, so it is sampled after one.
    assert ck.config.start == "\n\n" and preset("tiny").start == ""
    s = load_sampler(tmp_path)  # a trained checkpoint samples
    assert s.generate("X:", 50, seed=0).text.startswith("X:")


@pytest.mark.slow
def test_stop_then_resume_continues(small_corpus, tmp_path):
    tr, va = small_corpus
    t = Trainer(preset("tiny"), tr, va, settings(steps=40, eval_every=0))
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 12

    metrics = list(t.run(save_to=tmp_path, should_stop=stop))
    assert metrics[-1].step == 12
    ck = checkpoint.load(tmp_path, optimizer=True)
    assert ck.steps == 12
    t2 = Trainer(preset("tiny"), tr, va, settings(steps=40, eval_every=0), init=ck)
    np.testing.assert_array_equal(t2.optimizer_state()["000"], ck.optimizer["000"])
    more = list(t2.run(steps=5, save_to=tmp_path))
    assert [m.step for m in more] == [13, 14, 15, 16, 17]
    assert checkpoint.load(tmp_path).steps == 17


def test_vocabulary_handling_for_new_corpora():
    vocab = preset("tiny").vocab
    ids, dropped = corpus_ids(["X:1\nT:Caf\u00e9 \u266b\nK:D\nabc|"], vocab)
    assert dropped == 1  # the note symbol; the accent became a plain e
    assert "".join(vocab[i] for i in ids[0]) == "X:1\nT:Cafe \nK:D\nabc|"


def test_too_small_corpus_is_a_clear_error():
    with pytest.raises(ValueError, match="corpus too small"):
        Trainer(preset("tiny"), corpus.Corpus("x", ["X:1\nK:C\nabc|"]), None,
                settings(batch=64, seq_len=100))


DISTRIBUTED = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from abcweb.music import corpus
from abcweb.model.lstm import preset
from abcweb.model.train import Trainer, TrainSettings
tunes = corpus.load_irish(sys.argv[1]).train.tunes[:80]
tr, va = corpus.Corpus("x", tunes).split()
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
t = Trainer(preset("tiny"), tr, va, TrainSettings(steps=40, batch=16, seq_len=48,
            learning_rate=1e-2, eval_every=40), strategy=strategy)
before = t.validate()
ms = list(t.run(save_to=sys.argv[2]))
print(json.dumps({"replicas": t.replicas, "before": before, "after": ms[-1].val_bpc}))
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(irish_path, tmp_path):
    p = subprocess.run([sys.executable, "-c", DISTRIBUTED, str(irish_path), str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["replicas"] == 2
    assert r["after"] < r["before"] - 1.5
    assert load_sampler(tmp_path).generate("X:", 20).text.startswith("X:")


def test_shipped_recipe_phase_two_starts_from_phase_one(irish_path, tmp_path):
    """Phase 2 of the shipped recipe: irish.abc's train split alone (its error-free tunes),
    from phase 1's weights with fresh optimizer moments, into OUT/irish, shipping what it
    picks."""
    from abcweb.model.recipes import IRISH_SETTINGS, Plan, irish_phase

    from conftest import random_checkpoint

    phase1 = random_checkpoint(preset("tiny"))
    phase1.info = {"steps": 6000, "val_irish": 1.47, "history": [{"step": 6000}]}
    checkpoint.save(phase1, tmp_path)
    plan = Plan(tmp_path, preset("tiny"), [], [], None, TrainSettings(), ship=tmp_path / "ship",
                irish_path=str(irish_path))
    p2 = irish_phase(plan, corpus)
    assert p2.out == tmp_path / "irish" and p2.ship == tmp_path / "ship"
    assert p2.settings == IRISH_SETTINGS and p2.select == "val_bpc"
    assert p2.init.steps == 0 and p2.init.optimizer is None
    assert p2.init.info["pretrained"]["steps"] == 6000
    # 50 of the 662 train tunes have errors (47 an ending before its |:); validation keeps all.
    assert [len(c.tunes) for c in p2.train] == [612] and len(p2.val.tunes) == 64
    assert all(abctools.check(t).valid for t in p2.train[0].tunes[:40])
    np.testing.assert_array_equal(p2.init.weights["dense/bias"], phase1.weights["dense/bias"])
