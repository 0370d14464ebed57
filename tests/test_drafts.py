"""Best of several drafts: real abc2midi judges real drafts of real models."""

import pytest

from abcweb.model import checkpoint
from abcweb.sampling import drafts
from abcweb.sampling.sampler import Sampler, load_sampler

from conftest import JIG

BROKEN = "X:1\nT:Broken\nM:6/8\nL:1/8\nK:D\n|:DFA dAF|GB{d gdB|AFD DFA|BGE E3:|\n"


def test_draft_seeds_start_with_the_seed_itself_and_never_meet_another_seeds():
    assert drafts.draft_seeds(42, 3) == [42, 42 + 2**32, 42 + 2 * 2**32]
    assert not set(drafts.draft_seeds(1, 8)) & set(drafts.draft_seeds(2, 8))
    assert all(0 <= s < 2**63 for s in drafts.draft_seeds(2**63 - 1, 8))


def test_judge_reads_a_tune_as_the_yardsticks_do():
    good = drafts.judge(5, JIG.format(n=1))  # ends on D in D major, every bar full
    assert (good.complete, good.valid, good.ends_on_tonic, good.bad_bars) == (True, True, True, 0)
    assert good.bars == 8 and good.seed == 5
    bad = drafts.judge(6, BROKEN)
    assert bad.complete and bad.valid is False
    assert not drafts.judge(7, "X:1\nT:No key, no notes").complete


def test_pick_keeps_the_valid_tune_that_ends_at_home_and_the_earliest_of_equals():
    home = drafts.Draft(1, True, True, 16, 0, True)
    away = drafts.Draft(2, True, True, 16, 0, False)
    invalid = drafts.Draft(3, True, False, 16, 0, True)
    ragged = drafts.Draft(4, True, True, 16, 3, True)
    unfinished = drafts.Draft(5)
    assert drafts.pick([unfinished, invalid, away, ragged, home]) == 4
    assert drafts.pick([away, invalid]) == 0
    assert drafts.pick([home, home]) == 0
    assert drafts.pick([unfinished, unfinished]) == 0


@pytest.mark.parametrize("workers", [False, True])
def test_the_kept_draft_is_one_of_the_models_own_drafts_and_comes_back(one_layer_dir, workers):
    s = load_sampler(one_layer_dir, "numpy", workers=workers)
    g = s.generate("X:", 120, 1.0, seed=9, best_of=4)
    assert len(g.drafts) == 4 and g.seed == 9
    seeds = drafts.draft_seeds(9, 4)
    assert [d["seed"] for d in g.drafts] == seeds
    batch = s.generate_many("X:", 120, 1.0, seeds)  # the drafts, as one batch writes them
    assert g.text == batch[g.draft].text
    assert g.draft == drafts.pick([drafts.Draft(**{k: v for k, v in d.items() if k != "score"})
                                   for d in g.drafts])
    again = s.generate("X:", 120, 1.0, seed=9, best_of=4)
    assert (again.text, again.draft) == (g.text, g.draft)
    # best_of=1 is the model's own draw for the seed, with no drafts to report.
    one = s.generate("X:", 120, 1.0, seed=9, best_of=1)
    assert one.drafts == [] and one.text == s.generate_many("X:", 120, 1.0, [9])[0].text


def test_best_of_is_checked(one_layer_dir):
    s = Sampler(checkpoint.load(one_layer_dir), "numpy", workers=False)
    for bad in (0, 17, 2.5, "8", True):
        with pytest.raises(ValueError, match="best-of"):
            s.generate("X:", 10, best_of=bad)


@pytest.mark.slow
def test_drafts_make_the_shipped_models_tunes_better():
    """The shipped model's own draws against the best of 8, over 16 seeds."""
    s = load_sampler(None, "numpy")
    own = [drafts.judge(seed, s.generate("X:", 800, 1.0, seed, best_of=1).text)
           for seed in range(16)]
    best = [s.generate("X:", 800, 1.0, seed, best_of=8) for seed in range(16)]
    kept = [g.drafts[g.draft] for g in best]
    assert sum(d["valid"] for d in kept) >= max(15, sum(bool(d.valid) for d in own))
    assert sum(d["ends_on_tonic"] for d in kept) >= sum(d.ends_on_tonic for d in own) + 3
    assert sum(d["bad_bars"] for d in kept) < sum(d.bad_bars for d in own)


@pytest.mark.parametrize("model_id, temperature, best_of, seed, digest", [
    # Recorded with each model's code of its day: a link made then must bring these back.
    ("5425c0f1d080", 0.9, 8, 42, "ecf197a41d92909d"),
    ("5425c0f1d080", 0.9, 8, 2026, "a4b1f7cab3a71fd7"),
    ("de2eb17119ae", 1.0, 1, 42, "84207e89f5d828c3"),
    ("de2eb17119ae", 1.0, 1, 2026, "f3cc2f81ef9a42f9"),
])
def test_earlier_shipped_models_write_the_tunes_their_links_were_made_with(
        model_id, temperature, best_of, seed, digest):
    """Newer models read a start text and break ties between drafts by a melody prior; the
    earlier ones have neither, so their tunes (and links) stay as they were."""
    import hashlib

    folder = checkpoint.folder_for(model_id)
    assert folder.name == model_id  # kept in weights/<id>/, not the current model
    s = load_sampler(folder, "numpy", workers=False)
    assert s.cfg.start == "" and s.melody_prior is None
    # Links of their day carry no `form`: params reads them with bar proposals off.
    text = s.generate("X:", 600, temperature, seed, best_of=best_of, form=False).text
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == digest
