"""Tune splitting, header repair and character kinds (pure Python, fast)."""

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abcweb.music import tunes
from abcweb.music.tunes import (
    Tune,
    bar_at,
    count_bars,
    first_complete_tune,
    split_tunes,
    token_kind,
    token_kinds,
)

IRISH = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "irish.abc"
KINDS = {"header", "note", "bar", "other"}

REEL = """X:1
T:Reel
M:C|
L:1/8
K:D
FA|dAFA DFAd|fdcd FAdf|gfge fefd|edcB A2FA|!
dAFA DFAd|fdcd FAdf|gfge fefd|(3efe dc d2:|!
"""


@pytest.fixture(scope="module")
def irish_text():
    if not IRISH.is_file():
        pytest.skip(f"data set not found at {IRISH}")
    return IRISH.read_text()


def _check_source_lines(tune: Tune, source: str):
    """Every line of tune.text that we did not add is the source line it claims to be."""
    src = source.split("\n")
    for k, line in enumerate(tune.text.rstrip("\n").split("\n"), 1):
        where = tune.source_line(k)
        if where is None:
            assert line in tune.added
        elif line != "%" or src[where - 1].strip():
            assert src[where - 1].rstrip("\r") == line


# --- splitting ---------------------------------------------------------------------------


def test_irish_keeps_every_tune(irish_text):
    found = split_tunes(irish_text)
    x_lines = [ln for ln in irish_text.split("\n") if ln.startswith("X:")]
    assert [t.text.split("\n")[0] for t in found] == x_lines  # every tune, the first included
    assert len(found) == 804
    assert all(t.complete and not t.added for t in found)
    titles = re.findall(r"^T:(.*)$", irish_text, re.M)
    assert [re.search(r"^T:(.*)$", t.text, re.M).group(1) for t in found] == titles
    for t in found[:50] + found[-50:]:
        assert irish_text[t.start :].startswith(t.text.split("\n")[0])
        assert irish_text.split("\n")[t.line - 1] == t.text.split("\n")[0]
        _check_source_lines(t, irish_text)


def test_header_then_blank_line_then_body_stays_one_tune(irish_text):
    tune = next(t for t in split_tunes(irish_text) if "Father Dollard" in t.text)
    lines = tune.text.split("\n")
    k = lines.index("K:D Major")
    assert lines[k + 1] == "%"  # the blank line, kept as an empty comment
    assert lines[k + 2].startswith("A,C|D2 (3DDD")
    _check_source_lines(tune, irish_text)


def test_generated_text_keeps_every_tune_and_marks_truncated_tail():
    text = (
        "X:1\nT:One\nM:6/8\nK:G\nGAB c2d|e3 d2B:|\n"  # first tune, no blank line before it
        "X:2\nT:Two\nM:3/4\nL:1/8\nK:D\nd2 f2 a2|]\n"  # no blank line after the first
        "\n\n"
        "X:3\nT:Three\nK:Em\nEFG ABc|\n\n"
        "X:4\nT:Cut\nM:C\nK:A\nABcd efga|bagf e"  # generation cut off mid-tune
    )
    found = split_tunes(text)
    assert [t.text.split("\n")[1] for t in found] == ["T:One", "T:Two", "T:Three", "T:Cut"]
    assert [t.complete for t in found] == [True, True, True, False]
    assert [t.line for t in found] == [1, 6, 14, 19]
    for t in found:
        assert text[t.start :].startswith(t.text.split("\n")[0])
        _check_source_lines(t, text)
    assert first_complete_tune(text).text.startswith("X:1\nT:One")


def test_tail_ending_with_closing_bar_is_complete():
    assert split_tunes("X:1\nK:C\nCDEF GABc|c4 C4|]\n")[0].complete
    assert split_tunes("X:1\nK:C\nCDEF GABc|c4 C4:|!\n")[0].complete
    assert not split_tunes("X:1\nK:C\nCDEF GABc|c4 C4|\n")[0].complete
    assert not split_tunes("X:1\nT:Only a header\nM:C\n\n")[0].complete  # no K:, no notes
    assert not split_tunes("X:1\nT:t\nK:C\n\n")[0].complete  # K: but no notes


def test_missing_x_and_l_are_added_where_abc_defines_them():
    text = "T:No X\nM:2/4\nK:G\nGABc|d2B2|]\n\nT:Jig\nM:6/8\nL:1/8\nK:D\nDFA dAF|]\n"
    first, second = split_tunes(text)
    assert first.added == ["X:1", "L:1/16"]  # 2/4 is below 3/4: sixteenths
    assert first.text == "X:1\nT:No X\nM:2/4\nL:1/16\nK:G\nGABc|d2B2|]\n"
    assert first.source_line(1) is None and first.source_line(4) is None
    assert first.source_line(2) == 1 and first.source_line(5) == 3 and first.source_line(6) == 4
    assert second.added == ["X:2"] and second.line == 6
    _check_source_lines(first, text)
    _check_source_lines(second, text)


@pytest.mark.parametrize(
    "meter, length",
    [
        ("M:6/8", "L:1/8"),
        ("M:3/4", "L:1/8"),
        ("M:C", "L:1/8"),
        ("M:C|", "L:1/8"),
        ("M:none", "L:1/8"),
        ("M:2/4", "L:1/16"),
        ("M:5/8", "L:1/16"),
        ("M:2+3/8", "L:1/16"),
        ("T:no meter", "L:1/8"),
    ],
)
def test_default_length_follows_the_meter(meter, length):
    (tune,) = split_tunes(f"X:1\n{meter}\nK:C\nCDEF|\n")
    assert tune.added == [length]


def test_free_text_and_file_headers_are_not_tunes():
    text = "%abc-2.1\n%%pagewidth 21cm\n\nSome notes about this file.\n\nX:7\nK:C\nCDEF|]\n"
    (tune,) = split_tunes(text)
    assert tune.text.startswith("X:7") and tune.line == 6 and tune.complete
    assert split_tunes("") == [] and split_tunes("\n\n\n") == []
    assert first_complete_tune("X:1\nK:C\nCD") is None


def test_crlf_text():
    (tune,) = split_tunes("X:1\r\nT:t\r\nL:1/8\r\nK:C\r\nCDEF|]\r\n")
    assert tune.text == "X:1\nT:t\nL:1/8\nK:C\nCDEF|]\n" and tune.complete


# --- character kinds ---------------------------------------------------------------------


def test_token_kinds_examples():
    line = 'K:G\n"Am"^c2>d [CEG]2 !trill!e| [K:D] (3abc:|[1 z2 |]'
    kinds = token_kinds(line)
    got = dict(zip(range(len(line)), kinds))

    def kind_of(sub, offset=0):
        return got[line.index(sub) + offset]

    assert kinds[:3] == ["header"] * 3 and kinds[3] == "other"  # K:G, then the newline
    assert [kind_of('"Am"', i) for i in range(4)] == ["other"] * 4  # chord symbol
    assert [kind_of("^c2>d", i) for i in range(5)] == ["note"] * 5  # accidental, note, duration
    assert [kind_of("[CEG]2", i) for i in range(6)] == ["note"] * 6
    assert kind_of("!trill!") == "other" and kind_of("!trill!e", 7) == "note"
    assert kind_of("e|", 1) == "bar"
    assert all(kind_of("[K:D]", i) == "header" for i in range(5))
    assert kind_of("(3") == "other" and kind_of("(3", 1) == "other"
    assert [kind_of(":|[1", i) for i in range(4)] == ["bar"] * 4
    assert kind_of("z2") == "note" and kind_of(" |]", 1) == "bar" and kind_of(" |]", 2) == "bar"
    assert token_kind("T:x\nabc", 1) == "header" and token_kind("T:x\nabc", 5) == "note"
    assert token_kind("C,D'", 1) == "note" and token_kind("C,D'", 3) == "note"
    assert token_kind("A % comment", 4) == "other"


def test_token_kind_matches_token_kinds_everywhere():
    kinds = token_kinds(REEL)
    assert len(kinds) == len(REEL)
    assert [token_kind(REEL, i) for i in range(len(REEL))] == kinds
    with pytest.raises(IndexError):
        token_kind(REEL, len(REEL))


# --- bars --------------------------------------------------------------------------------


def test_bars_count_and_position():
    # pickup + 8 bars; a leading |: and the line break add no empty bar
    tune = (
        "X:1\nM:C\nL:1/8\nK:D\n"
        "|:FA|dAFA DFAd|fdcd FAdf|gfge fefd|edcB A2FA|\n"
        "dAFA DFAd|fdcd FAdf|gfge fefd|(3efe dc d2:|\n"
    )
    assert count_bars(tune) == 9
    line5 = tune.split("\n")[4]
    assert bar_at(tune, 5, line5.index("FA")) == 1
    assert bar_at(tune, 5, line5.index("|dAFA")) == 1  # a bar line belongs to the bar it closes
    assert bar_at(tune, 5, line5.index("dAFA")) == 2
    assert bar_at(tune, 6, 0) == 6
    assert bar_at(tune, 6, 999) == 9  # past the end of the line: its last bar
    assert bar_at(tune, 2, 0) is None  # header
    assert count_bars("X:1\nK:C\nAB\ncd|ef|\n") == 2  # a bar running over a line break is one bar
    assert tunes.bar_index("X:1\nT:t\n") == {}


# --- properties --------------------------------------------------------------------------

ABCISH = st.text(
    alphabet=st.sampled_from(
        list("XTKLMQ:|[]()\"!%^_=,'/<>0123456789 \n\r\tABCDEFGabcdefgzx-{}~+&é\x00")
    ),
    max_size=400,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(ABCISH, st.text(max_size=300)))
def test_arbitrary_text_never_breaks_the_splitter(text):
    found = split_tunes(text)
    starts = [t.start for t in found]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    for t in found:
        assert t.text.endswith("\n") and t.text.startswith("X:")
        assert 0 <= t.start < len(text) and t.line == text.count("\n", 0, t.start) + 1
        _check_source_lines(t, text)
    first = first_complete_tune(text)
    assert first is None or first.complete
    kinds = token_kinds(text)
    assert len(kinds) == len(text) and set(kinds) <= KINDS
    for i in range(0, len(text), 7):
        assert token_kind(text, i) == kinds[i]
    for t in found:
        assert count_bars(t.text) >= 0
