"""Altair charts of a generation: data, colours by kind, the click selection."""

import json
import re

import altair as alt
import numpy as np
import pytest

from abcweb.music import tunes
from abcweb.music.corpus import ALPHABET
from abcweb.sampling.loop import Generation
from abcweb.sampling.sampler import load_sampler
from abcweb.web import charts


def make_generation(generated="ABc|d2 e:|\n", prime="X:1\nK:G\n", temperature=1.0, top_k=0,
                    seed=0) -> Generation:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((len(generated), len(ALPHABET))).astype(np.float32) * 3
    return Generation(prime, generated, logits, ALPHABET, temperature, top_k, 0, "length")


@pytest.fixture(scope="module")
def s():
    return load_sampler()


def spec_values(spec: dict) -> list[dict]:
    datasets = spec.get("datasets", {})
    assert len(datasets) == 1
    return next(iter(datasets.values()))


def find_params(spec: dict) -> list[dict]:
    found = list(spec.get("params", []))
    for layer in spec.get("layer", []):
        found += layer.get("params", [])
    return found


def test_steps_frame_rows_follow_the_generation():
    g = make_generation()
    df = charts.steps_frame(g)
    assert list(df["step"]) == list(range(len(g.generated)))
    assert list(df["pos"]) == [len(g.prime) + i for i in range(len(g.generated))]
    assert list(df["char"]) == [tunes.show_char(c) for c in g.generated]
    assert np.allclose(df["prob"], [s.prob for s in g.steps])
    assert np.allclose(df["entropy"], [s.entropy for s in g.steps])
    # A, B, c, d, 2, e are notes (2 is d's length); |, :| are bar lines; space and newline other.
    assert list(df["kind"]) == ["note", "note", "note", "bar", "note", "note", "other", "note",
                                "bar", "bar", "other"]
    assert df["line"].iloc[0] == 3 and df["line"].iloc[-1] == 3
    assert df["alternatives"].iloc[0].count("·") == 4  # five alternatives


def test_header_characters_are_headers():
    g = make_generation(generated="T:Reel\nM:4/4\nK:D\nA", prime="X:")
    df = charts.steps_frame(g)
    assert set(df["kind"][:17]) <= {"header", "other"}
    assert (df["kind"][:17] == "header").sum() >= 14
    assert df["kind"].iloc[-1] == "note"


def test_probability_chart_spec():
    g = make_generation(temperature=0.7, top_k=5)
    spec = charts.probability_chart(g).to_dict()
    values = spec_values(spec)
    assert len(values) == len(g.generated)
    assert [v["prob"] for v in values] == pytest.approx([s.prob for s in g.steps])
    (param,) = find_params(spec)
    assert param["name"] == charts.SELECTION
    assert param["select"]["fields"] == ["step"]
    colour = spec["encoding"]["color"]
    assert colour["field"] == "kind"
    assert colour["scale"]["domain"] == charts.KINDS
    assert len(colour["scale"]["range"]) == len(charts.KINDS)
    tooltip_fields = [t["field"] for t in spec["encoding"]["tooltip"]]
    assert "char" in tooltip_fields and "alternatives" in tooltip_fields
    assert "0.7" in spec["title"]["subtitle"] and "top-k 5" in spec["title"]["subtitle"]


def test_entropy_chart_spec():
    g = make_generation()
    spec = charts.entropy_chart(g).to_dict()
    assert len(spec["layer"]) == 2
    (param,) = find_params(spec)
    assert param["name"] == charts.SELECTION
    values = spec_values(spec)
    assert [v["entropy"] for v in values] == pytest.approx([s.entropy for s in g.steps])
    assert spec["height"] > 0


def test_distribution_frame_compares_temperatures():
    g = make_generation(temperature=0.5)
    step = 4
    df = charts.distribution_frame(g, step, max_bars=200)
    labels = sorted(set(df["temperature"]))
    assert len(labels) == 2 and "T=1" in labels
    sampled = df[df["temperature"] != "T=1"].set_index("char")["prob"]
    plain = df[df["temperature"] == "T=1"].set_index("char")["prob"]
    here = g.distribution(step)
    one = g.distribution(step, 1.0)
    for c in g.vocab:
        if tunes.show_char(c) in sampled.index:
            assert sampled[tunes.show_char(c)] == pytest.approx(here[c])
            assert plain[tunes.show_char(c)] == pytest.approx(one[c])
    # A low temperature sharpens: the likeliest candidate gains probability.
    top = max(one, key=one.get)
    assert here[top] > one[top]
    chosen = df[df["chosen"]]
    assert set(chosen["char"]) == {tunes.show_char(g.generated[step])}
    assert len(chosen) == 2


def test_distribution_respects_top_k_and_keeps_the_chosen_character():
    g = make_generation(temperature=1.0, top_k=3)
    df = charts.distribution_frame(g, 0, max_bars=5)
    sampled = df[df["temperature"] != "T=1"]
    assert (sampled["prob"] > 0).sum() <= 3
    assert sampled["prob"].sum() == pytest.approx(1.0)
    assert tunes.show_char(g.generated[0]) in set(df["char"])
    with pytest.raises(IndexError):
        charts.distribution_frame(g, len(g.generated))


def test_distribution_chart_spec():
    g = make_generation()
    spec = charts.distribution_chart(g, 2).to_dict()
    layer = spec["layer"][0]
    assert layer["encoding"]["xOffset"]["field"] == "temperature"
    assert layer["encoding"]["color"]["scale"]["domain"] == charts.KINDS
    assert "step 2" in spec["title"]["text"]


def test_candidate_kind_depends_on_the_line():
    g = make_generation(generated="M:6/8\nAB|", prime="X:1\n")
    assert charts.candidate_kind(g, 2, "A") == "header"  # inside the M: line
    assert charts.candidate_kind(g, 7, "A") == "note"
    assert charts.candidate_kind(g, 7, "|") == "bar"
    assert charts.candidate_kind(g, 7, "\n") == "other"


@pytest.mark.parametrize("selection,expected", [
    ({"selection": {"pick": [{"step": 5}]}}, 5),
    ({"selection": {"pick": [{"step": 5.0}]}}, 5),
    ({"selection": {"pick": []}}, None),
    ({"selection": {}}, None),
    ({}, None),
    (None, None),
    ({"selection": {"pick": [{"step": 99}]}}, None),
    ({"selection": {"pick": [{"step": "x"}]}}, None),
])
def test_picked_step(selection, expected):
    assert charts.picked_step(selection, 10) == expected


def test_loss_chart_has_both_curves():
    history = [{"step": i, "train_bpc": 4 - i * 0.1, "val_bpc": None if i % 5 else 4.1 - i * 0.1}
               for i in range(1, 21)]
    spec = charts.loss_chart(history).to_dict()
    values = spec_values(spec)
    assert sum(v["curve"] == "train" for v in values) == 20
    assert sum(v["curve"] == "validation" for v in values) == 4
    assert charts.loss_chart([]).to_dict()["layer"]


def test_charts_from_a_real_sampler(one_layer_dir):
    g = load_sampler(one_layer_dir, "numpy").generate("X:1\nK:D\n", 120, 0.9, seed=3,
                                                        stop_at_end=False)
    assert len(spec_values(charts.probability_chart(g).to_dict())) == 120
    charts.entropy_chart(g).to_dict()
    charts.distribution_chart(g, 119).to_dict()


def _comparable(spec: dict) -> tuple[str, list]:
    """A spec as JSON with its dataset and Altair's generated view names made neutral."""
    spec = json.loads(json.dumps(spec))
    data = spec.pop("datasets")[spec["data"].pop("name")]
    text = re.sub(r"view_[0-9a-f]+_\d+", "view", json.dumps(spec, sort_keys=True))
    return text, data


@pytest.mark.parametrize("seed, temperature, top_k", [(0, 1.0, 0), (3, 0.5, 5), (8, 1.6, 0)])
def test_filled_specs_equal_altairs_own(s, seed, temperature, top_k):
    """The page draws specs filled from templates; they must be what Altair itself makes."""
    g = s.generate("X:", 300, temperature, seed, top_k)
    step = len(g.generated) // 2
    pairs = [(charts.probability_chart(g), charts.probability_spec(g)),
             (charts.entropy_chart(g), charts.entropy_spec(g)),
             (charts.distribution_chart(g, step), charts.distribution_spec(g, step))]
    with alt.theme.enable("none"):
        for chart, spec in pairs:
            assert _comparable(spec) == _comparable(chart.to_dict())


def test_a_filled_spec_leaves_its_template_unchanged(s):
    a, b = s.generate("X:", 200, 1.0, 1), s.generate("X:", 120, 0.7, 2)
    first = json.dumps(charts.probability_spec(a))
    spec_b = charts.probability_spec(b)
    spec_b["datasets"].clear()
    spec_b["title"]["subtitle"] = "changed"
    assert json.dumps(charts.probability_spec(a)) == first


def test_the_loss_spec_equals_altairs_own():
    history = [{"step": i, "train_bpc": 5 - i / 10, "val_bpc": 4.5 - i / 10 if i % 5 == 0
                else None} for i in range(1, 30)]
    with alt.theme.enable("none"):
        assert _comparable(charts.loss_spec(history)) == _comparable(
            charts.loss_chart(history).to_dict())


def test_summary_says_what_the_charts_show():
    g = make_generation()
    words = charts.summary(g)
    probs = [st.prob for st in g.steps]
    low = int(np.argmin(probs))
    high = int(np.argmax([st.entropy for st in g.steps]))
    assert words.startswith(f"In words: the model wrote {len(g.generated)} characters. ")
    assert f"median probability of what it wrote is {sorted(probs)[len(probs) // 2]:.2f}" in words
    assert f"{sum(p < 0.1 for p in probs)} character" in words
    assert f"least likely was {tunes.show_char(g.generated[low])!r} at step {low}" in words
    assert f"most before step {high}" in words
    g.copies = [{"start": 0, "end": 4, "source": "4", "bar": 0}]
    assert "4 of them in bars it chose from earlier ones" in charts.summary(g)
    assert charts.summary(make_generation(generated="")) == "The model wrote nothing."
