"""The musical yardsticks read keys, melodies and form from ABC text as a musician would."""

import numpy as np
import pytest

from abcweb import yardsticks as Y

JIG = """X:1
T:Jig
M:6/8
L:1/8
K:D
A|"D"dAF DFA|dfe dBA|"G"BGB "A"AFD|EFE E2A|
dAF DFA|dfe dBA|BGB AFE|1 D3 D2:|2 D3 D2||
|:f|afd afd|gfe edc|dfa gfe|dcB A2f|
afd afd|gfe edc|[1 dfe dBA|D3 D2:|
[2 dfe dcB|[DA]3 D2|]
"""


@pytest.mark.parametrize("value, tonic, scale_sharps", [
    ("D", 2, {"F", "C"}), ("D Major", 2, {"F", "C"}), ("Ador", 9, {"F"}),
    ("A Dorian", 9, {"F"}), ("Em", 4, {"F"}), ("E minor", 4, {"F"}), ("G Mixolydian", 7, set()),
    ("F#m", 6, {"F", "C", "G"}), ("Bb", 10, set()),
])
def test_keys_are_read_with_their_mode(value, tonic, scale_sharps):
    key = Y.parse_key(value)
    assert key.tonic == tonic
    assert {c for c, a in key.accidentals.items() if a > 0} == scale_sharps


def test_a_jig_in_d_ends_on_its_tonic_in_two_parts_of_8_bars():
    f = Y.read_tune(JIG)
    assert f.ends_on_tonic
    # Part A: pickup, 7 bars, two endings of 1 bar (the second replaces the first): 8 bars.
    # Part B likewise with [1 / [2 endings at line starts.
    assert [Y.in_form(*p) for p in f.parts] == [True, True]
    assert f.out_of_key == 0
    assert f.pitches[:3] == [69, 74, 69]  # A, d, A (chord symbols and the pickup's bar skipped)


def test_an_ending_off_the_tonic_and_notes_outside_the_key_are_seen():
    off = JIG.replace("[2 dfe dcB|[DA]3 D2|]", "[2 dfe dcB|A3 A2|]")
    assert not Y.read_tune(off).ends_on_tonic
    chromatic = JIG.replace("dfe dBA|", "d^fe dBA|", 1)  # F is F# in D: ^f stays in key
    assert Y.read_tune(chromatic).out_of_key == 0
    chromatic = JIG.replace("dfe dBA|", "d=fe dBA|", 1)
    assert Y.read_tune(chromatic).out_of_key == 1
    # An accidental lasts to the end of its bar, as ABC says.
    assert Y.read_tune(JIG.replace("|dfe dBA|", "|d=fe fBA|", 1)).out_of_key == 2


def test_a_four_bar_part_with_a_repeat_is_eight_bars_played():
    reel = "X:1\nM:C|\nL:1/8\nK:G\n|:GABc dedB|dedB dedB|GABc dedB|AGFA G4:|\n"
    (bars, repeated), = Y.read_tune(reel).parts
    assert (bars, repeated) == (4, True) and Y.in_form(bars, repeated)
    assert not Y.in_form(4, False) and not Y.in_form(7, True)


def test_jensen_shannon_distance():
    a, b = np.array([1, 2, 3.0]), np.array([3, 2, 1.0])
    assert Y.js_distance(a, a) == pytest.approx(0, abs=1e-12)
    assert Y.js_distance(a, b) == pytest.approx(Y.js_distance(b, a))
    assert Y.js_distance(np.array([1, 0.0]), np.array([0, 1.0])) == pytest.approx(1.0)


def test_wilson_interval_holds_the_share():
    lo, hi = Y.wilson(37, 40)
    assert lo < 37 / 40 < hi and 0 <= lo and hi <= 1
    assert Y.wilson(0, 0) == (0.0, 0.0)


def test_real_held_out_tunes_measure_as_real_tunes(irish_path):
    from abcweb import corpus

    real = list(corpus.load_irish(str(irish_path)).heldout.tunes)
    row = Y.measure(real)
    assert row["tunes"] == 80 and row["completed"] == 80
    assert row["bars_fit_meter"]["share"] > 0.98
    assert row["parts_8_or_16_bars"]["share"] > 0.9
    assert 0.6 < row["ends_on_tonic"]["share"] < 0.95
    assert row["out_of_key_notes"]["share"] < 0.03
    d = Y.compare(row, row)
    assert d["scale_degrees_js"] == pytest.approx(0, abs=1e-9)
    assert 0 < d["real_halves_intervals_js"]["mean"] < 0.2
