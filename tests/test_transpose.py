"""Transposing with the real abc2abc, keeping each tune's own style."""

import pytest

from abcweb.music import corpus
from abcweb.music.facts import parse_key, read_tune
from abcweb.sound import transpose
from abcweb.sound.abctools import check

BLACKBIRD = """X:4
T:Blackbird
Z: id:dc-hornpipe-4
M:C|
L:1/8
K:D Mixolydian
AG|F2FA GFD2|de (3fed d^cAF|G2GF GFDE|FdcA G2AG|!
F2FA GFD2|de (3fed d^cAG|AdcA GcAG|F2D2 D2:|!
fg|agfa gfeg|fd e^c d=cA2|agfa gfde|fdgf e2 fg|!
a2ge f3e|d^cde fdAG|AdcA GcAG|F2D2 D2:|!"""


def test_a_transposed_tune_keeps_its_header_and_lines_and_moves_every_note():
    up = transpose.transpose(BLACKBIRD, 2)
    old, new = BLACKBIRD.split("\n"), up.split("\n")
    assert len(new) == len(old)
    # abc2abc writes K:Emix and Z:id: and breaks lines at its warnings; none of that shows.
    assert new[:5] == old[:5]
    assert new[5] == "K:E Mixolydian"
    assert "%" not in up
    before, after = read_tune(BLACKBIRD), read_tune(up)
    assert [p + 2 for p in before.pitches] == after.pitches
    assert parse_key(new[5][2:]).tonic == (parse_key("D Mixolydian").tonic + 2) % 12
    assert after.parts == before.parts
    assert check(up).valid


def test_transpose_refuses_far_shifts_and_zero_is_the_tune_itself():
    assert transpose.transpose(BLACKBIRD, 0) == BLACKBIRD
    with pytest.raises(ValueError, match="12 semitones"):
        transpose.transpose(BLACKBIRD, 13)


def test_shifts_land_in_common_keys_and_are_the_same_every_time():
    shifts = transpose.shifts_for(BLACKBIRD, 3)
    assert shifts == transpose.shifts_for(BLACKBIRD, 3)
    assert len(shifts) == 3 and 0 not in shifts
    for up in transpose.transpose_many([BLACKBIRD] * 3, shifts):
        assert up is not None
        assert transpose._signature(up.split("\n")[5][2:]) in transpose.COMMON_SIGNATURES


@pytest.mark.slow
def test_augmenting_irish_abc_gives_valid_copies_in_its_own_style(irish_path):
    tunes = [t for t in corpus.load_irish(irish_path).train.tunes[:60] if check(t).valid]
    copies = transpose.augment(tunes, 2, keep=lambda t: check(t).valid)
    # Most tunes move twice; a few fall out of a fiddle's range or break.
    assert len(copies) >= 1.5 * len(tunes)
    originals = {t.split("\n")[1] for t in tunes}
    for c in copies:
        lines = c.split("\n")
        assert lines[1] in originals  # the title line is the original's
        assert lines[5].startswith("K:") and " " in lines[5]  # K:G Major, irish.abc's style
        assert c not in tunes


def test_the_same_transposition_runs_abc2abc_once(monkeypatch):
    """The page asks for the playing version on every rerun."""
    from abcweb.sound import tooling

    calls = []
    real = tooling.run_tool
    monkeypatch.setattr(tooling, "run_tool", lambda *a, **k: calls.append(a) or real(*a, **k))
    tune = BLACKBIRD.replace("Blackbird", "Blackbird (cached)")
    assert transpose.transpose(tune, -3) == transpose.transpose(tune, -3)
    assert len(calls) == 1
