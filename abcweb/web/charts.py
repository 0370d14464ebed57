"""Altair charts of what the model was thinking while it wrote a tune.

Pure functions from a Generation to data frames and charts, so they can be tested without a
page. Every per-character chart colours a character by its kind in ABC (note, bar line, header,
other) with the same fixed colours, and names its click selection `pick` over the field
`step` (the index of the character in the generated text), so the page reads a click the same
way from any of them. Characters of a bar the sampler copied from a proposal (an earlier bar
of the tune, scored by the model; `Generation.copies`) say so in the `origin` column and are
ringed in the probability chart; their probability is still the model's own.

Altair builds each chart, but its `to_dict()` takes 25-60 ms a chart (validation, then a deep
walk), and a page server pays that for every new tune. So the page uses the `*_spec`
functions: each chart's Vega-Lite spec is made by Altair once, from example data with
marked placeholders (validated then), and a new tune only gets its data and a few values
(titles, axis ranges, orders) put in their places: under a millisecond. A test checks that
the filled spec equals Altair's own for real tunes.
"""

from __future__ import annotations

import copy
import math
import threading

import altair as alt
import pandas as pd

from abcweb.music.tunes import show_char, token_kind, token_kinds
from abcweb.sampling.loop import Generation

KINDS = ["note", "bar", "header", "other"]
KIND_COLOURS = ["#2e7d32", "#1565c0", "#ef6c00", "#9e9e9e"]
KIND_LABELS = {"note": "note", "bar": "bar line", "header": "header", "other": "other"}
SELECTION = "pick"
DISTRIBUTION_MIN_P = 0.002  # candidates below this at both temperatures are left out
DISTRIBUTION_MAX_BARS = 30
DRAWN = "model's draw"
PROPOSED_RING = "#212121"


def _kind_colour(title: str | None = "kind") -> alt.Color:
    # A fixed domain keeps colours the same when a tune happens to lack a kind. Legends stay
    # on the right: Streamlit gives a chart with a top legend almost no plot height.
    return alt.Color("kind:N", title=title, scale=alt.Scale(domain=KINDS, range=KIND_COLOURS),
                     legend=alt.Legend(labelExpr=_legend_expr()))


def _legend_expr() -> str:
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in KIND_LABELS.items()) + "}[datum.label]"


def copy_origin(proposal: dict) -> str:
    """Where a proposed bar came from, in words: 'proposed: bar 1 again (4 bars back)'."""
    back = ("the part's first bar" if proposal["source"] == "part"
            else f"{proposal['source']} bars back")
    return f"proposed: bar {proposal['bar'] + 1} again ({back})"


def step_origins(g: Generation) -> list[str]:
    """For each generated character: DRAWN, or the proposal its bar was copied from."""
    origins = [DRAWN] * len(g.generated)
    for proposal in g.copies:
        start, end = max(proposal["start"], 0), min(proposal["end"], len(origins))
        origins[start:end] = [copy_origin(proposal)] * max(end - start, 0)
    return origins


def steps_columns(g: Generation) -> dict[str, list]:
    """One entry per generated character: step, its place in the text, the character, its
    probability, the entropy it was drawn from, its kind, the top alternatives and its origin
    (the model's draw or a proposed bar, with `proposed` true)."""
    steps = g.steps
    origins = step_origins(g)
    kinds = token_kinds(g.text)[len(g.prime):]
    line = g.prime.count("\n") + 1
    lines = []
    for c in g.generated:
        lines.append(line)
        line += c == "\n"
    return {
        "step": list(range(len(steps))),
        "pos": list(range(len(g.prime), len(g.prime) + len(steps))),
        "char": [show_char(s.char) for s in steps],
        "prob": [s.prob for s in steps],
        "entropy": [s.entropy for s in steps],
        "kind": list(kinds),
        "line": lines,
        "alternatives": [" · ".join(f"{show_char(c)} {p:.2f}" for c, p in s.top)
                         for s in steps],
        "origin": origins,
        "proposed": [o != DRAWN for o in origins],
    }


def steps_frame(g: Generation) -> pd.DataFrame:
    return pd.DataFrame(steps_columns(g))


def _records(columns: dict[str, list]) -> list[dict]:
    names = list(columns)
    return [dict(zip(names, row)) for row in zip(*columns.values())]


def _selection() -> alt.Parameter:
    # nearest: a click anywhere near a point picks it; 600 small points are hard to hit.
    return alt.selection_point(name=SELECTION, fields=["step"], on="click", nearest=True,
                               clear="dblclick")


def _tooltip(extra: list) -> list:
    return [alt.Tooltip("step:Q", title="step"), alt.Tooltip("char:N", title="character"),
            *extra, alt.Tooltip("kind:N", title="kind"),
            alt.Tooltip("alternatives:N", title="top alternatives"),
            alt.Tooltip("origin:N", title="origin")]


def _probability_subtitle(g: Generation) -> str:
    return (f"at temperature {g.temperature:g}" + (f", top-k {g.top_k}" if g.top_k else "")
            + (f", top-p {g.top_p:g}" if g.top_p < 1 else "")
            + ". Hover for the alternatives; click to pick a step."
            + (" Ringed: a bar chosen from earlier in the tune; its probabilities are still "
               "the model's." if g.copies else ""))


def _probability(data, subtitle: str, last_step: int, height: int = 220) -> alt.Chart:
    pick = _selection()
    return (
        alt.Chart(data, height=height,
                  title=alt.Title("Probability of each chosen character", subtitle=subtitle))
        .mark_circle(size=28)
        .encode(
            x=alt.X("step:Q", title="character in the generated text",
                    scale=alt.Scale(domain=[0, last_step], nice=False)),
            y=alt.Y("prob:Q", title="probability", scale=alt.Scale(domain=[0, 1])),
            color=_kind_colour(),
            opacity=alt.condition(pick, alt.value(0.95), alt.value(0.35)),
            size=alt.condition(pick, alt.value(28), alt.value(22)),
            # A ring, not a colour: the fill already says the character's kind.
            stroke=alt.condition("datum.proposed", alt.value(PROPOSED_RING), alt.value(None)),
            strokeWidth=alt.condition("datum.proposed", alt.value(1.5), alt.value(0)),
            tooltip=_tooltip([alt.Tooltip("prob:Q", title="probability", format=".3f")]),
        )
        .add_params(pick)
    )


def probability_chart(g: Generation, height: int = 220) -> alt.Chart:
    """The probability the model gave each character it chose, along the tune."""
    return _probability(steps_frame(g), _probability_subtitle(g),
                        max(len(g.generated) - 1, 1), height)


def _entropy_top(columns: dict[str, list]) -> float:
    return max(1.0, math.ceil(max(columns["entropy"], default=1.0)))


def _entropy(data, top: float, last_step: int, height: int = 180) -> alt.LayerChart:
    pick = _selection()
    base = alt.Chart(data)
    x = alt.X("step:Q", title="character in the generated text",
              scale=alt.Scale(domain=[0, last_step], nice=False))
    y = alt.Y("entropy:Q", title="entropy (bits)", scale=alt.Scale(domain=[0, top]))
    line = base.mark_line(color="#bdbdbd", strokeWidth=1).encode(x=x, y=y)
    points = base.mark_circle(size=18).encode(
        x=x, y=y, color=_kind_colour(),
        opacity=alt.condition(pick, alt.value(0.95), alt.value(0.35)),
        tooltip=_tooltip([alt.Tooltip("entropy:Q", title="entropy (bits)", format=".2f")]),
    ).add_params(pick)
    # Size and title on the layer itself: Streamlit ignores a height set inside a layer.
    return alt.layer(line, points).properties(
        height=height, title=alt.Title("Entropy before each character",
                                       subtitle="bits; 0 means the model was sure. Click to "
                                                "pick a step."))


def entropy_chart(g: Generation, height: int = 180) -> alt.LayerChart:
    """How unsure the model was before each character: entropy in bits (0: certain)."""
    columns = steps_columns(g)
    return _entropy(pd.DataFrame(columns), _entropy_top(columns),
                    max(len(g.generated) - 1, 1), height)


def candidate_kind(g: Generation, step: int, c: str) -> str:
    """The kind `c` would have had if the model had written it at `step`."""
    if c == "\n":
        return "other"
    before = g.text[: len(g.prime) + step]
    line = before[before.rfind("\n") + 1:]
    return token_kind(line + c, len(line))


def distribution_rows(g: Generation, step: int, max_bars: int = DISTRIBUTION_MAX_BARS
                      ) -> list[dict]:
    """The next-character distribution before `step`, at the sampling temperature (with its
    top-k) and at temperature 1, for the most likely candidates."""
    if not 0 <= step < len(g.generated):
        raise IndexError(f"step {step} is outside 0 .. {len(g.generated) - 1}")
    here = g.distribution(step)
    plain = g.distribution(step, 1.0)
    chars = sorted(here, key=lambda c: (-max(here[c], plain[c]), c))
    chars = [c for c in chars if max(here[c], plain[c]) >= DISTRIBUTION_MIN_P][:max_bars]
    chosen = g.generated[step]
    if chosen not in chars:
        chars.append(chosen)
    label_t = _sampled_label(g)
    rows = []
    for rank, c in enumerate(chars):
        kind = candidate_kind(g, step, c)
        for which, dist in ((label_t, here), ("T=1", plain)):
            rows.append({"char": show_char(c), "rank": rank, "temperature": which,
                         "prob": float(dist[c]), "kind": kind, "chosen": c == chosen})
    return rows


def distribution_frame(g: Generation, step: int, max_bars: int = DISTRIBUTION_MAX_BARS
                       ) -> pd.DataFrame:
    return pd.DataFrame(distribution_rows(g, step, max_bars))


def _sampled_label(g: Generation) -> str:
    return (f"T={g.temperature:g}" + (f", top-{g.top_k}" if g.top_k else "")
            + (f", top-p {g.top_p:g}" if g.top_p < 1 else "") + " (sampled)")


def _distribution_titles(g: Generation, step: int) -> tuple[str, str]:
    context = g.text[max(0, len(g.prime) + step - 24): len(g.prime) + step]
    context = "".join(show_char(c) for c in context)
    return (f"Next character at step {step}: the model wrote {show_char(g.generated[step])!r}",
            f"after …{context}")


def _distribution(data, order: list[str], temps: list[str], title: str, subtitle: str,
                  height: int = 240) -> alt.LayerChart:
    base = alt.Chart(data)
    x = alt.X("char:N", sort=order, title="candidate next character",
              axis=alt.Axis(labelAngle=0, labelFontSize=13))
    bars = base.mark_bar().encode(
        x=x,
        xOffset=alt.XOffset("temperature:N", sort=temps),
        y=alt.Y("prob:Q", title="probability"),
        color=_kind_colour(),
        opacity=alt.Opacity("temperature:N", sort=temps,
                            scale=alt.Scale(domain=temps, range=[1.0, 0.4]),
                            legend=alt.Legend(title="distribution")),
        stroke=alt.condition("datum.chosen", alt.value("#000000"), alt.value(None)),
        strokeWidth=alt.condition("datum.chosen", alt.value(2), alt.value(0)),
        tooltip=[alt.Tooltip("char:N", title="character"),
                 alt.Tooltip("temperature:N", title="distribution"),
                 alt.Tooltip("prob:Q", title="probability", format=".3f"),
                 alt.Tooltip("kind:N", title="kind")],
    )
    return alt.layer(bars).properties(height=height, title=alt.Title(title, subtitle=subtitle))


def _distribution_slots(g: Generation, step: int, rows: list[dict]) -> dict:
    order = list(dict.fromkeys(r["char"] for r in rows))  # rows come in rank order
    title, subtitle = _distribution_titles(g, step)
    return {"order": order, "temps": [_sampled_label(g), "T=1"], "title": title,
            "subtitle": subtitle}


def distribution_chart(g: Generation, step: int, height: int = 240) -> alt.LayerChart:
    """Bars for the candidates before `step`: solid at the sampling temperature, pale at
    temperature 1; the chosen character is outlined."""
    rows = distribution_rows(g, step)
    return _distribution(pd.DataFrame(rows), **_distribution_slots(g, step, rows),
                         height=height)


def picked_step(selection, n: int) -> int | None:
    """The step a click picked, from st.altair_chart's selection state (None: no click)."""
    try:
        points = selection["selection"][SELECTION]
    except (KeyError, TypeError):
        return None
    if not points:
        return None
    value = points[0].get("step") if isinstance(points[0], dict) else None
    try:
        step = int(value)
    except (TypeError, ValueError):
        return None
    return step if 0 <= step < n else None


def loss_rows(history: list[dict]) -> list[dict]:
    rows = []
    for m in history:
        rows.append({"step": m["step"], "bpc": m["train_bpc"], "curve": "train"})
        if m.get("val_bpc") is not None:
            rows.append({"step": m["step"], "bpc": m["val_bpc"], "curve": "validation"})
    return rows


def _loss(data, height: int = 260) -> alt.LayerChart:
    curves = ["train", "validation"]
    colour = alt.Color("curve:N", title=None, scale=alt.Scale(domain=curves,
                                                              range=["#90caf9", "#d84315"]),
                       legend=alt.Legend())
    base = alt.Chart(data)
    x = alt.X("step:Q", title="training step")
    y = alt.Y("bpc:Q", title="bits per character", scale=alt.Scale(zero=False))
    train = base.transform_filter("datum.curve == 'train'").mark_line().encode(
        x=x, y=y, color=colour)
    val = base.transform_filter("datum.curve == 'validation'").mark_line(
        point=True, strokeWidth=2.5).encode(
        x=x, y=y, color=colour, tooltip=[alt.Tooltip("step:Q"),
                                         alt.Tooltip("bpc:Q", format=".3f", title="val bpc")])
    return alt.layer(train, val).properties(height=height, title=alt.Title(
        "Loss", subtitle="bits per character (lower is better)"))


def runs_chart(runs: dict[str, list[dict]], height: int = 260) -> alt.Chart:
    """Several training runs' loss curves overlaid (validation where they have it, else
    training), one colour per run: to compare presets and learning rates."""
    rows = []
    for label, history in runs.items():
        vals = [m for m in history if m.get("val_bpc") is not None]
        key = "val_bpc" if vals else "train_bpc"
        rows += [{"step": m["step"], "bpc": m[key], "run": label} for m in (vals or history)]
    return alt.Chart(alt.Data(values=rows)).mark_line(point=True).encode(
        x=alt.X("step:Q", title="training step"),
        y=alt.Y("bpc:Q", title="bits per character", scale=alt.Scale(zero=False)),
        color=alt.Color("run:N", title=None, legend=alt.Legend(orient="bottom", columns=1)),
        tooltip=["run:N", "step:Q", alt.Tooltip("bpc:Q", format=".3f")],
    ).properties(height=height, title=alt.Title(
        "This session's runs", subtitle="validation bits per character (training where a run "
        "has no validation tunes)"))


def loss_chart(history: list[dict], height: int = 260) -> alt.LayerChart:
    """Training and validation loss (bits per character) against the step."""
    return _loss(pd.DataFrame(loss_rows(history), columns=["step", "bpc", "curve"]), height)


# -- specs from templates: what the page draws ----------------------------------------------
class _Template:
    """A chart's Vega-Lite spec, made by Altair once with placeholders in named slots. Its
    data is a named dataset; fill() gives a new spec with other data and slot values."""

    def __init__(self, build, example: list[dict], slots: dict[str, object]):
        marks = {name: _mark(i, value) for i, (name, value) in enumerate(slots.items())}
        with alt.theme.enable("none"):  # as st.altair_chart does: no default chart size
            spec = build(pd.DataFrame(example), **marks).to_dict()  # validated, once
        self.name = spec["data"]["name"]
        spec["datasets"] = {}
        self.paths = {name: list(_find(spec, mark)) for name, mark in marks.items()}
        missing = [name for name, paths in self.paths.items() if not paths]
        if missing:
            raise RuntimeError(f"chart template lost its slots {missing}")
        self.spec = spec

    def fill(self, records: list[dict], **values) -> dict:
        spec = copy.deepcopy(self.spec)  # a few KB without its data
        spec["datasets"] = {self.name: records}
        for name, value in values.items():
            for path in self.paths[name]:
                node = spec
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = value
        return spec


def _mark(slot: int, value):
    """A placeholder of the slot's type (a list: the whole list) that no real chart holds."""
    if isinstance(value, list):
        return [f"§{slot}§{i}" for i in range(len(value))]
    if isinstance(value, (int, float)):
        return 7_919_000.5 + slot  # a number no domain or size here uses
    return f"§{slot}§"


def _find(node, mark, path=()):
    if node == mark and not isinstance(node, bool):
        yield path
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _find(v, mark, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _find(v, mark, path + (i,))


_EXAMPLE_STEPS = [{"step": i, "pos": i + 2, "char": "A", "prob": 0.5, "entropy": 1.0,
                   "kind": k, "line": 1, "alternatives": "A 0.50", "origin": DRAWN,
                   "proposed": False} for i, k in enumerate(KINDS)]
_EXAMPLE_BARS = [{"char": c, "rank": i, "temperature": t, "prob": 0.5, "kind": "note",
                  "chosen": i == 0} for i, c in enumerate("AB") for t in ("T=1 (x)", "T=1")]
_TEMPLATES: dict[str, _Template] = {}
_TEMPLATES_LOCK = threading.Lock()


def _template(name: str) -> _Template:
    with _TEMPLATES_LOCK:  # alt.theme is global: one build at a time
        if name not in _TEMPLATES:
            _TEMPLATES[name] = {
                "probability": lambda: _Template(
                    _probability, _EXAMPLE_STEPS, {"subtitle": "s", "last_step": 1}),
                "entropy": lambda: _Template(
                    _entropy, _EXAMPLE_STEPS, {"top": 1.0, "last_step": 1}),
                "loss": lambda: _Template(
                    _loss, [{"step": 1, "bpc": 2.0, "curve": "train"}], {}),
                "distribution": lambda: _Template(
                    _distribution, _EXAMPLE_BARS, {"order": ["A", "B"],
                                                   "temps": ["T=1 (x)", "T=1"],
                                                   "title": "t", "subtitle": "s"}),
            }[name]()
        return _TEMPLATES[name]


def probability_spec(g: Generation, columns: dict[str, list] | None = None) -> dict:
    """probability_chart(g) as a Vega-Lite spec, without Altair's cost per tune."""
    columns = columns or steps_columns(g)
    return _template("probability").fill(_records(columns), subtitle=_probability_subtitle(g),
                                         last_step=max(len(g.generated) - 1, 1))


def entropy_spec(g: Generation, columns: dict[str, list] | None = None) -> dict:
    columns = columns or steps_columns(g)
    return _template("entropy").fill(_records(columns), top=_entropy_top(columns),
                                     last_step=max(len(g.generated) - 1, 1))


def distribution_spec(g: Generation, step: int) -> dict:
    rows = distribution_rows(g, step)
    return _template("distribution").fill(rows, **_distribution_slots(g, step, rows))


def loss_spec(history: list[dict]) -> dict:
    """loss_chart(history) as a spec: the Train page redraws it every second while training."""
    return _template("loss").fill(loss_rows(history))


def summary(g: Generation) -> str:
    """The probability and entropy charts in words, for a reader who cannot see them (plain
    text: the caller quotes it as text)."""
    steps = g.steps
    if not steps:
        return "The model wrote nothing."
    probs = sorted(s.prob for s in steps)
    low = min(range(len(steps)), key=lambda i: steps[i].prob)
    high = max(range(len(steps)), key=lambda i: steps[i].entropy)
    unsure = sum(p < 0.1 for p in probs)
    copied = sum(c["end"] - c["start"] for c in g.copies)
    return (f"In words: the model wrote {len(steps)} characters"
            + (f", {copied} of them in bars it chose from earlier ones" if copied else "")
            + f". The median probability of what it wrote is {probs[len(probs) // 2]:.2f};"
            f" {unsure} character{'s' if unsure != 1 else ''} had less than 0.1. The least"
            f" likely was {show_char(steps[low].char)!r} at step {low}"
            f" ({steps[low].prob:.3f}). Its uncertainty averaged"
            f" {sum(s.entropy for s in steps) / len(steps):.2f} bits, most before step {high}"
            f" ({steps[high].entropy:.2f} bits).")
