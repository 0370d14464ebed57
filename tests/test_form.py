"""Bars that come back (abcweb/sampling/form.py): the shipped model, real abc2midi, real
worker processes and the TensorFlow backend."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from abcweb import load_sampler
from abcweb.model.lstm import encode_after_start
from abcweb.music import facts, tunes
from abcweb.sampling import form
from abcweb.sampling.sampler import Sampler

from conftest import ROOT

SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def here():
    return load_sampler(None, "numpy", workers=False)


@pytest.fixture(scope="module")
def tunes_on(here):
    return {seed: here.generate("X:", 600, 0.9, seed) for seed in SEEDS}


def reread(s: Sampler, text: str, generated: str) -> np.ndarray:
    """The logits the model gives before each generated character, reading the whole text
    from its start state: what it would have thought had it written every character."""
    ids = encode_after_start(s.cfg, text)
    state = s.net.zero_state(1)
    out = []
    for t in ids[:-1]:
        out.append(s.net.step(np.array([t]), state)[0])
    return np.stack(out[len(ids) - 1 - len(generated):])


def test_split_bar_and_body_bars_read_bar_lines_as_the_tune_does():
    bar = form.split_bar(":\ndcB fdB :")
    assert (bar.sep, bar.core, bar.close) == (":\n", "dcB fdB", " :|")
    bars = form.body_bars("|:FGA BGB|c3 e3:|\n|2 dcB fdB|]gfe d2c||")
    assert [b.core for b in bars] == ["FGA BGB", "c3 e3", "dcB fdB", "gfe d2c"]
    assert [b.opens for b in bars] == [True, False, False, True]  # an ending opens nothing


def test_proposals_are_earlier_bars_in_the_drawn_frame_never_the_drawn_bar_or_a_third_in_a_row():
    bars = form.body_bars("|:ABc dcB|ABc dcB|efg gfe|ABc dcB|")
    drawn = form.split_bar("\nfed cBA ")
    offers = form.proposals(bars, drawn)
    # 2 back: efg gfe; 4 back: the first bar; the part's opener is the same text: one offer.
    assert offers == [("\nefg gfe |", "2", 2), ("\nABc dcB |", "4", 0)]
    looping = form.body_bars("|ABc dcB|efg gfe|efg gfe|")
    assert all("efg" not in text for text, _, _ in form.proposals(looping, drawn))
    assert form.proposals(bars, form.split_bar("\nefg gfe ")) == [("\nABc dcB |", "4", 0)]


def test_the_model_stays_the_author_of_every_kept_character(here, tunes_on):
    copied = 0
    for g in tunes_on.values():
        assert g.form and len(g.logits) == len(g.generated)
        want = reread(here, g.text, g.generated)
        assert np.abs(want - g.logits).max() < 1e-3  # the state after a copy is the copy's
        for c in g.copies:
            before = g.generated[:c["start"]]
            body = (g.prime + before)[(g.prime + before).index("\nK:"):]
            body = body[body.index("\n", 1) + 1:]
            bars = form.body_bars(body)
            piece = g.generated[c["start"]:c["end"]]
            assert piece.endswith("|") and bars[c["bar"]].core in piece
            assert c["source"] in {name for name, _ in form.SOURCES}
            # and the model gave every character of it a real chance at this temperature
            p = g.probabilities()[np.arange(c["start"], c["end"]),
                                  [here.vocab.index(ch) for ch in piece]]
            assert p.min() > 0
        copied += len(g.copies)
    assert copied >= 4  # the model takes up the offers


def test_bars_come_back_and_no_tune_loops(tunes_on):
    echoes = bars = 0
    for g in tunes_on.values():
        tune = tunes.first_complete_tune(g.text)
        f = facts.read_form(tune.text)
        echoes, bars = echoes + f.echoes, bars + f.bars
        assert f.longest_run <= 2
        runs = 1
        for a, b in zip(g.copies, g.copies[1:]):
            runs = runs + 1 if a["end"] == b["start"] else 1
            assert runs <= form.CAP
    assert echoes / bars > 0.12  # the model's own draws: about 1 in 70 (weights/README.md)


def test_same_tune_in_a_worker_on_the_tf_backend_and_in_another_process(here, tunes_on):
    g = tunes_on[SEEDS[1]]
    pooled = load_sampler(None, "numpy", workers=True).generate("X:", 600, 0.9, SEEDS[1])
    assert (pooled.text, pooled.copies, pooled.draft) == (g.text, g.copies, g.draft)
    assert np.array_equal(pooled.logits, g.logits)
    tf = load_sampler(None, "tf", workers=False).generate("X:", 600, 0.9, SEEDS[1])
    assert (tf.text, tf.copies) == (g.text, g.copies)
    out = subprocess.run([sys.executable, "-m", "abcweb", "sample", "--seed", str(SEEDS[1]),
                          "-t", "0.9", "--json"], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["text"] == g.text and got["copies"] == g.copies


def test_the_switch_turns_it_off_and_off_is_the_tune_of_before(here, tunes_on):
    for seed, g in tunes_on.items():
        off = here.generate("X:", 600, 0.9, seed, form=False)
        assert not off.copies and not off.form
        assert off.text != g.text or not g.copies
    own = here.generate("X:", 600, 0.9, 5, best_of=1, form=False)
    assert own.text == here.generate_many("X:", 600, 0.9, [5])[0].text
    out = subprocess.run([sys.executable, "-m", "abcweb", "sample", "--seed", "5", "-t", "0.9",
                          "--best-of", "1", "--no-form"], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0 and out.stdout.rstrip("\n") == own.text.rstrip("\n")
    with pytest.raises(ValueError, match="form must be True or False"):
        here.generate("X:", 100, 0.9, 1, form="yes")


def test_greedy_and_short_runs_are_whole(here):
    greedy = here.generate("X:", 400, 0.0, 3, best_of=1)
    assert not greedy.copies  # at temperature 0 the drawn bar always wins: nothing offered
    assert greedy.text == here.generate("X:", 400, 0.0, 3, best_of=1, form=False).text
    for length in (0, 1, 37, 120):
        g = here.generate("X:", length, 0.9, 8)
        assert len(g.generated) <= length and len(g.logits) == len(g.generated)


def test_a_recorded_tune_comes_back():
    """A link made with bar proposals must bring its tune back after any later change."""
    s = load_sampler(None, "numpy", workers=False)
    g = s.generate("X:", 600, 0.9, 2026)
    assert g.copies
    assert hashlib.sha256(g.text.encode()).hexdigest()[:16] == RECORDED_2026


RECORDED_2026 = "cb5296db2a164b5e"  # recorded 7 December 2026, model eab5482af714
