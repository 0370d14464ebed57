"""A learner can see the form (issue 23): bars that come back, in the text and in the charts."""

import json
import re
from html.parser import HTMLParser
from xml.etree import ElementTree

import altair as alt
import numpy as np
import pytest

from abcweb.music import facts
from abcweb.music.corpus import ALPHABET
from abcweb.sampling.loop import Generation
from abcweb.web import charts
from views import tuneview

PRIME = "X:1\nT:Bar Five Reel\nM:4/4\nL:1/8\nK:D\n"
# Bars 5 and 6 restate bars 1 and 2; bar 7 is bar 3 with its last note changed; bar 3 has a
# broken rhythm, so a marked bar holds a "<" to escape.
BODY = ("|DFAF dFAF|GBdB gBdB|A<F AF EFGE|FDEC D4|\n"
        "DFAF dFAF|GBdB gBdB|A<F AF EFGB|ABAG FDD2|]\n")
REEL = PRIME + BODY


def test_the_reel_is_what_the_tests_say():
    assert [b for b, _, _ in facts.bar_spans(REEL)] == [
        "DFAFdFAF", "GBdBgBdB", "A<FAFEFGE", "FDECD4", "DFAFdFAF", "GBdBgBdB", "A<FAFEFGB",
        "ABAGFDD2"]


def test_echo_groups_of_a_reel():
    echoes = facts.echo_groups(REEL)
    assert [e.bar for e in echoes] == list(range(8))
    assert [e.same_as for e in echoes] == [0, 1, 2, 3, 0, 1, 6, 7]
    assert [e.near_of for e in echoes] == [None, None, None, None, None, None, 2, None]
    assert [REEL[e.start:e.end] for e in echoes] == [
        "DFAF dFAF", "GBdB gBdB", "A<F AF EFGE", "FDEC D4", "DFAF dFAF", "GBdB gBdB",
        "A<F AF EFGB", "ABAG FDD2"]
    # The same counts as read_form's.
    form = facts.read_form(REEL)
    assert form.echoes == sum(e.same_as != e.bar for e in echoes) == 2
    assert form.near == 3  # the equal ones and bar 7


def test_echo_groups_of_a_tune_split_over_lines_and_a_repeat():
    # A `!` ends the first line, as in many tunebooks: no part of the bar after it.
    text = "X:2\nM:6/8\nK:G\n|:GAB c2A|BAG E2D|!\nGAB c2A|[1 BAG G3:|[2 BAG GBd||\n"
    assert text[facts.bar_spans(text)[2][1]] == "!"
    echoes = facts.echo_groups(text)
    assert [text[e.start:e.end] for e in echoes] == [
        "GAB c2A", "BAG E2D", "GAB c2A", "BAG G3", "BAG GBd"]
    assert [e.same_as for e in echoes] == [0, 1, 0, 3, 4]
    # BAG G3 is 3 edits from BAG E2D; BAG GBd is 2 from BAG G3.
    assert [e.near_of for e in echoes] == [None, None, None, None, 3]


def test_no_bars_no_echoes():
    assert facts.echo_groups("X:1\nT:Only a header\nK:D\n") == []
    assert facts.echo_groups("") == []
    assert tuneview.form_caption("X:1\nK:D\n") == ""


def test_a_long_text_is_quick():
    rng = np.random.default_rng(0)
    bars = ["".join(rng.choice(list("ABCDEFGabcdefg2"), 8)) for _ in range(400)]
    text = "X:1\nK:D\n" + "|".join(bars) + "|\n"
    assert len(facts.echo_groups(text)) == 400


# -- the listing -----------------------------------------------------------------------------
class Spans(HTMLParser):
    """Each element's attributes and the text inside it; the text of every row."""

    def __init__(self):
        super().__init__()
        self.open, self.spans, self.tags = [], [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.open.append([tag, dict(attrs), ""])

    def handle_endtag(self, tag):
        element = self.open.pop()
        if self.open:
            self.open[-1][2] += element[2]
        if tag == "span" and "title" in element[1]:
            self.spans.append((element[1]["title"], element[1].get("style", ""), element[2]))

    def handle_data(self, data):
        self.open[-1][2] += data


def spans_of(out: str) -> dict[str, tuple[str, str]]:
    """Each marked bar's title, style and text (a bar over two lines is in two spans)."""
    parser = Spans()
    parser.feed(out)
    parser.close()
    assert parser.tags <= {"div", "span"}
    found: dict[str, tuple[str, str]] = {}
    for title, style, text in parser.spans:
        found[title] = (style, found.get(title, ("", ""))[1] + text)
    return found


def test_the_listing_colours_bars_that_come_back_and_escapes_the_text():
    text = REEL.replace("T:Bar Five Reel", "T:<script>alert(1)</script> & co")
    out = tuneview.abc_html(text, None, [])
    assert "<script" not in out and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in out
    spans = spans_of(out)
    first, again = tuneview.ECHO_COLOURS[:2]
    style, shown = spans["bar 5: same as bar 1"]
    assert shown == "DFAF dFAF" and f"background:{first}" in style
    style, shown = spans["bar 1: comes back as bar 5"]
    assert shown == "DFAF dFAF" and first in style and "background" not in style
    style, shown = spans["bar 6: same as bar 2"]
    assert shown == "GBdB gBdB" and f"background:{again}" in style
    style, shown = spans["bar 7: nearly bar 3 (2 characters or fewer differ)"]
    assert shown == "A<F AF EFGB" and "dotted" in style
    assert "A&lt;F AF EFGB</span>" in out  # the broken rhythm's "<" is text in the span
    assert not any(t.startswith(("bar 3:", "bar 4:", "bar 8:")) for t in spans)
    # The row still reads as the line: the browser tests read a row's last child.
    row = ElementTree.fromstring(re.search(r'<div data-line="7".*?</div>', out).group())
    assert row[-1].tail is None
    assert "".join(row[-1].itertext()) == BODY.split("\n")[1]


def test_without_echoes_the_listing_is_as_before():
    out = tuneview.abc_html(REEL, None, [], echoes=False)
    assert spans_of(out) == {}
    assert "DFAF dFAF|GBdB gBdB|A&lt;F AF EFGB|ABAG FDD2|]</div>" in out


def test_bars_in_the_grey_seed_text_get_the_band_not_a_fill():
    prime = PRIME + BODY.split("\n")[0] + "\n"
    out = tuneview.abc_html(REEL, None, [], prime=prime)
    spans = spans_of(out)
    style, _ = spans["bar 1: comes back as bar 5"]
    assert "box-shadow" in style
    style, _ = spans["bar 5: same as bar 1"]  # written by the model: filled
    assert "background" in style
    assert 'title="seed text"' in out


def test_the_palette_is_readable_with_the_themes_text():
    def luminance(colour):
        rgb = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    text = luminance("#31333F")  # Streamlit's light theme text
    for colour in tuneview.ECHO_COLOURS:
        assert (luminance(colour) + 0.05) / (text + 0.05) >= 4.5, colour


def test_form_caption():
    assert tuneview.form_caption(REEL) == (
        "Bars that come back share a colour: 2 of 8 bars repeat an earlier bar (the bar they "
        "repeat is underlined in its colour). 1 more is nearly an earlier bar (2 characters or "
        "fewer differ): dotted underline. Hover over a bar to see which.")
    plain = "X:1\nK:D\n|DFAF|GBdB|AFAF|\n"
    assert tuneview.form_caption(plain).startswith("None of 3 bars repeats an earlier bar")


# -- the charts ------------------------------------------------------------------------------
def reel_generation(copies: list[dict]) -> Generation:
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((len(BODY), len(ALPHABET))).astype(np.float32) * 3
    return Generation(PRIME, BODY, logits, ALPHABET, 0.8, 0, 0, "end", copies=copies)


def bar_copy(bar: int, source: str, back_to: int) -> dict:
    """A copy in BODY of its bar `bar` (0-based), from bar `back_to`."""
    _, start, end = facts.bar_spans(REEL)[bar]
    return {"start": start - len(PRIME), "end": end - len(PRIME), "source": source,
            "bar": back_to}


def test_steps_columns_mark_exactly_the_copied_characters():
    copies = [bar_copy(4, "4", 0), bar_copy(5, "4", 1)]
    g = reel_generation(copies)
    columns = charts.steps_columns(g)
    copied = {i for c in copies for i in range(c["start"], c["end"])}
    assert {i for i, p in enumerate(columns["proposed"]) if p} == copied
    assert "".join(g.generated[i] for i in sorted(copied)) == "DFAF dFAFGBdB gBdB"
    origin = columns["origin"]
    assert origin[copies[0]["start"]] == "proposed: bar 1 again (4 bars back)"
    assert origin[copies[1]["end"] - 1] == "proposed: bar 2 again (4 bars back)"
    assert set(origin) == {charts.DRAWN, origin[copies[0]["start"]],
                           origin[copies[1]["start"]]}
    # The model's own probability still stands for every character, copied or not.
    assert columns["prob"] == [s.prob for s in g.steps]
    part = charts.step_origins(reel_generation([bar_copy(4, "part", 0)]))
    assert "proposed: bar 1 again (the part's first bar)" in part


def test_the_probability_spec_rings_the_proposed_characters():
    copies = [bar_copy(4, "4", 0)]
    g = reel_generation(copies)
    spec = charts.probability_spec(g)
    records = next(iter(spec["datasets"].values()))
    assert [r["step"] for r in records if r["proposed"]] == list(
        range(copies[0]["start"], copies[0]["end"]))
    encoding = spec["encoding"]
    assert encoding["stroke"]["condition"]["test"] == "datum.proposed"
    assert encoding["stroke"]["condition"]["value"] == charts.PROPOSED_RING
    assert encoding["strokeWidth"]["value"] == 0
    assert {"field": "origin", "type": "nominal", "title": "origin"} in encoding["tooltip"]
    assert "Ringed" in spec["title"]["subtitle"]
    # The entropy chart says the origin on hover too.
    points = charts.entropy_spec(g)["layer"][1]["encoding"]
    assert "origin" in [t["field"] for t in points["tooltip"]]


def test_without_copies_nothing_is_ringed():
    g = reel_generation([])
    spec = charts.probability_spec(g)
    records = next(iter(spec["datasets"].values()))
    assert not any(r["proposed"] for r in records)
    assert {r["origin"] for r in records} == {charts.DRAWN}
    assert "Ringed" not in spec["title"]["subtitle"]


def _comparable(spec: dict) -> tuple[str, list]:
    spec = json.loads(json.dumps(spec))
    data = spec.pop("datasets")[spec["data"].pop("name")]
    return re.sub(r"view_[0-9a-f]+_\d+", "view", json.dumps(spec, sort_keys=True)), data


@pytest.mark.parametrize("copies", [[], [{"start": 0, "end": 9, "source": "2", "bar": 0}]])
def test_the_filled_spec_equals_altairs_own_with_copies(copies):
    g = reel_generation(copies)
    with alt.theme.enable("none"):
        assert _comparable(charts.probability_spec(g)) == _comparable(
            charts.probability_chart(g).to_dict())


def levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def test_within_edits_is_levenshtein_within_a_limit():
    rng = np.random.default_rng(5)
    for _ in range(3000):
        a = "".join(rng.choice(list("AB2c"), rng.integers(0, 12)))
        b = list(a)
        for _ in range(rng.integers(0, 5)):  # a few random edits keep most pairs close
            k = int(rng.integers(0, len(b) + 1))
            what, letter = rng.integers(0, 3), str(rng.choice(list("AB2c")))
            if what == 0:
                b.insert(k, letter)
            elif k < len(b):
                b[k:k + 1] = [letter] if what == 1 else []
        b = "".join(b)
        for limit in (0, 1, 2, 3):
            assert facts.within_edits(a, b, limit) == (levenshtein(a, b) <= limit), (a, b)


def test_a_tunebooks_worth_of_text_is_listed_without_colours():
    text = REEL + BODY * (tuneview.ECHO_MAX_CHARS // len(BODY))
    assert 'title="bar' not in tuneview.abc_html(text, None, [])
    assert tuneview.form_caption(text) == ""


def test_a_sampled_tunes_proposed_bars_are_repeats_in_the_listing_and_ringed_in_the_chart():
    from abcweb.sampling.sampler import load_sampler

    g = load_sampler(workers=False).generate("X:", 600, 1.0, 0, 0, best_of=1, form=True)
    assert g.copies, "seed 0 takes proposals"
    columns = charts.steps_columns(g)
    copied = {i for c in g.copies for i in range(c["start"], c["end"])}
    assert {i for i, p in enumerate(columns["proposed"]) if p} == copied
    echoes = facts.echo_groups(g.text)
    spans = spans_of(tuneview.abc_html(g.text, None, [], g.prime))
    for c in g.copies:
        (bar,) = [e for e in echoes if e.start >= len(g.prime) + c["start"]
                  and e.end <= len(g.prime) + c["end"]]
        first = echoes[c["bar"]].same_as
        assert bar.same_as == first
        assert columns["origin"][c["start"]].startswith(f"proposed: bar {c['bar'] + 1} again")
        title = f"bar {bar.bar + 1}: same as bar {first + 1}"
        assert spans[title][1] == g.text[bar.start:bar.end].replace("\n", "")
        assert "background" in spans[title][0]
