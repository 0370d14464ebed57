"""Playing a tune another way: tempo, instrument and key, with the real abc2midi and abc2abc."""

import pytest

from abcweb.sound import abctools, arrange

from conftest import JIG

TUNE = JIG.format(n=1)  # 6/8 in D, no Q:


def test_the_defaults_leave_the_tune_as_it_was_played_before():
    assert arrange.arrange(TUNE) == TUNE


def test_tempo_counts_in_the_tunes_own_beat_and_plays_faster():
    fast = arrange.arrange(TUNE, tempo=160)
    assert "Q:3/8=160\n" in fast and fast.count("Q:") == 1  # dotted quarters in a jig
    slow = arrange.arrange(fast, tempo=60)
    assert "Q:3/8=60\n" in slow and slow.count("Q:") == 1  # replaces, never adds
    assert arrange.tempo_of(TUNE) == "3/8=112" and arrange.beat_of(TUNE) == "3/8"
    assert arrange.tempo_of(fast) == "3/8=160"
    secs = {t: len(abctools.to_audio(arrange.arrange(TUNE, tempo=t), "wav"))
            for t in (60, 160)}
    assert secs[60] > 2 * secs[160]  # the same notes take longer at 60


def test_an_instrument_is_a_general_midi_program_in_the_midi():
    fiddle = arrange.arrange(TUNE, instrument="fiddle")
    assert "K:D\n%%MIDI program 40\n" in fiddle
    assert b"\xc0\x28" in abctools.to_midi(fiddle)  # program change to 40 on channel 1
    assert b"\xc0\x28" not in abctools.to_midi(TUNE)


def test_transpose_moves_the_key_and_the_notes():
    up = arrange.arrange(TUNE, transpose=2)
    assert "K:E\n" in up and up != TUNE
    assert abctools.check(up).valid
    all_three = arrange.arrange(TUNE, tempo=120, instrument="flute", transpose=-2)
    assert len(all_three.splitlines()) == len(TUNE.splitlines()) + 2  # a Q: and a %%MIDI line
    assert "K:C\n%%MIDI program 73\n" in all_three and "Q:3/8=120\n" in all_three


@pytest.mark.parametrize("kw, words", [(dict(tempo=10), "tempo"), (dict(tempo=500), "tempo"),
                                       (dict(instrument="kazoo"), "instrument"),
                                       (dict(transpose=13), "12 semitones")])
def test_bad_settings_are_clear_errors(kw, words):
    with pytest.raises(ValueError, match=words):
        arrange.arrange(TUNE, **kw)
