"""The melody prior: fitted per model, stored in its model.json, and only ever a tie-breaker
between drafts the yardsticks rate alike."""

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from abcweb.evaluation import prior as fitting
from abcweb.model import checkpoint
from abcweb.music import facts as music
from abcweb.sampling import drafts, melody
from abcweb.sampling.sampler import load_sampler

from conftest import ROOT

# Every step a second: what the model does too much of.
STEPS = "X:1\nT:Steps\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|cBAG FEDE|FGAB cdcB|AGFE D4|]\n"
# Thirds, fourths and fifths: what real tunes do more.
LEAPS = "X:2\nT:Leaps\nM:4/4\nL:1/8\nK:D\nDFAd AFDA|dAFD FAdf|afdA FDFA|dAFA D4|]\n"


def facts(*texts):
    return [music.read_tune(t) for t in texts]


def test_a_prior_prefers_the_melody_real_tunes_lean_to_and_stays_small():
    prior = melody.check_prior(fitting.make_prior(facts(LEAPS, STEPS, LEAPS), facts(STEPS)))
    leaps, steps = (melody.score(prior, f) for f in facts(LEAPS, STEPS))
    assert leaps > 0 > steps
    assert abs(leaps) <= melody.MAX_SCORE and abs(steps) <= melody.MAX_SCORE
    reverse = melody.check_prior(fitting.make_prior(facts(STEPS, STEPS, LEAPS), facts(LEAPS)))
    assert melody.score(reverse, facts(STEPS)[0]) > melody.score(reverse, facts(LEAPS)[0])
    assert melody.score(None, facts(LEAPS)[0]) == 0.0
    assert melody.score(prior, music.read_tune("X:1\nT:Empty\nK:D\n")) == 0.0
    with pytest.raises(ValueError, match="notes"):
        fitting.make_prior(facts(LEAPS), [])


def test_the_melody_breaks_ties_and_never_outweighs_a_yardstick():
    plain = drafts.Draft(1, True, True, 16, 0, True, melody=-melody.MAX_SCORE)
    real = drafts.Draft(2, True, True, 16, 0, True, melody=melody.MAX_SCORE)
    assert drafts.pick([plain, real]) == 1
    # The most real melody still loses to a draft better by any yardstick.
    invalid = drafts.Draft(3, True, False, 16, 0, True, melody=melody.MAX_SCORE)
    away = drafts.Draft(4, True, True, 16, 0, False, melody=melody.MAX_SCORE)
    ragged = drafts.Draft(5, True, True, 16, 1, True, melody=melody.MAX_SCORE)
    for worse in (invalid, away, ragged):
        assert drafts.pick([worse, plain]) == 1
    judged = drafts.judge(7, LEAPS, melody.check_prior(
        fitting.make_prior(facts(LEAPS, STEPS, LEAPS), facts(STEPS))))
    assert judged.melody > 0 and judged.as_dict()["melody"] == judged.melody
    assert drafts.judge(7, LEAPS).melody == 0.0  # a model without a prior


@pytest.mark.parametrize("damage", [
    {"intervals": [0.0] * 24}, {"degrees": [0.0] * 11}, {"degrees": [math.nan] * 12},
    {"interval_weight": "heavy"}, {"intervals": None}])
def test_a_damaged_prior_is_refused_when_the_model_loads(one_layer_dir, tmp_path, damage):
    prior = fitting.make_prior(facts(LEAPS), facts(STEPS))
    with pytest.raises(ValueError, match="bad melody prior"):
        melody.check_prior({**prior, **damage})
    folder = tmp_path / "m"
    shutil.copytree(one_layer_dir, folder)
    checkpoint.update_info(folder, melody_prior={**prior, **damage})
    with pytest.raises(checkpoint.CheckpointError, match="bad melody prior"):
        load_sampler(folder, "numpy")


@pytest.mark.slow
def test_prior_command_fits_the_shipped_model_and_its_drafts_use_it(irish_path, tmp_path):
    """`python -m abcweb prior` on a copy of the shipped model: model.json gains the prior,
    the weights and the id stay, and the best of 8 then breaks ties by it."""
    folder = tmp_path / "model"
    shutil.copytree(checkpoint.resolve(None), folder)
    for sub in folder.iterdir():  # earlier models kept for old links are not this model
        if sub.is_dir():
            shutil.rmtree(sub)
    before = checkpoint.load(folder)
    before_id = before.sha256
    r = subprocess.run([sys.executable, "-m", "abcweb", "prior", "--weights", str(folder),
                        "--irish", str(irish_path), "--draws", "50"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "melody prior written" in r.stdout
    after = checkpoint.load(folder)
    assert after.sha256 == before_id
    np.testing.assert_array_equal(after.weights["dense/bias"], before.weights["dense/bias"])
    prior = json.loads((folder / "model.json").read_text())["melody_prior"]
    assert len(prior["intervals"]) == 25 and len(prior["degrees"]) == 12
    assert "seeds 10000..10049" in prior["fitted_on"]
    # The model's drafts steps by a whole tone more than real tunes: the prior says so.
    assert prior["intervals"][music.INTERVAL_MAX + 2] < 0
    s = load_sampler(folder, "numpy", workers=False)
    g = s.generate("X:", 800, 1.0, seed=3, best_of=8)
    assert any(d["melody"] != 0 for d in g.drafts)
    assert g.draft == drafts.pick([drafts.Draft(**{k: v for k, v in d.items() if k != "score"})
                                   for d in g.drafts])
    # Bad input: a folder that is no model, and nothing written.
    r = subprocess.run([sys.executable, "-m", "abcweb", "prior", "--weights", str(tmp_path),
                        "--irish", str(irish_path)], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 2 and "no checkpoint" in r.stderr
    assert not (tmp_path / "model.json").exists()
