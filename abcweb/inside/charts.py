"""Pictures of the LSTM's insides (abcweb/inside/states.py): a tune's text coloured by one unit
(Karpathy, Johnson and Fei-Fei 2015), that unit's states and gates across the tune, and how
often every unit's gates sit near 0 or 1. Altair charts and one HTML string."""

from __future__ import annotations

import html

import altair as alt
import numpy as np

from abcweb.inside.states import States
from abcweb.music.tunes import show_char

SATURATED = 0.1  # a gate below this is "near 0" (closed), above 1 - this "near 1" (open)
GATES = {"i": "input gate", "f": "forget gate", "o": "output gate"}


def unit_values(states: States, kind: str, layer: int, unit: int) -> np.ndarray:
    """What colours the text: the hidden state as it is (-1..1), the cell state through tanh
    (it is unbounded; tanh(c) is what the output gate lets out)."""
    values = getattr(states, kind)[layer, :, unit]
    return values if kind == "h" else np.tanh(values)


def coloured_text(text: str, values: np.ndarray) -> str:
    """The text as HTML, each character's background blue (negative) to red (positive)."""
    out = ['<div data-testid="abcweb-cells-text" style="font-family:monospace;'
           'white-space:pre-wrap;line-height:1.6;font-size:14px">']
    for ch, v in zip(text, values):
        v = float(np.clip(v, -1, 1))
        colour = (f"rgba(214,39,40,{v:.2f})" if v >= 0 else f"rgba(31,119,180,{-v:.2f})")
        shown = "↵\n" if ch == "\n" else html.escape(ch)
        out.append(f'<span title="{v:+.2f}" style="background:{colour}">{shown}</span>')
    out.append("</div>")
    return "".join(out)


def unit_chart(states: States, layer: int, unit: int, width: int = 700) -> alt.VConcatChart:
    """The unit's c and h across the tune, and its three gates under them."""
    steps = np.arange(len(states.text))
    chars = [show_char(c) for c in states.text]

    def rows(kinds: dict) -> list[dict]:
        return [{"step": int(t), "char": chars[t], "value": float(getattr(states, k)[layer, t,
                                                                                        unit]),
                 "series": label} for k, label in kinds.items() for t in steps]

    base = {"x": alt.X("step:Q", title="character in the tune"),
            "tooltip": ["step:Q", "char:N", "series:N", alt.Tooltip("value:Q", format=".3f")]}
    top = alt.Chart(alt.Data(values=rows({"c": "cell state c", "h": "hidden state h"}))).mark_line(
    ).encode(y=alt.Y("value:Q", title="state"), color=alt.Color("series:N", title=None),
             **base).properties(width=width, height=180,
                                title=f"Layer {layer} unit {unit}: its states")
    gates = alt.Chart(alt.Data(values=rows(GATES))).mark_line(strokeWidth=1).encode(
        y=alt.Y("value:Q", title="gate", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("series:N", title=None), **base).properties(
        width=width, height=140, title="its gates (0 closed, 1 open)")
    return alt.vconcat(top, gates).resolve_scale(color="independent")


def saturation(states: States) -> dict[str, np.ndarray]:
    """Per gate, [2, layers * units]: the share of characters each unit's gate is near 0
    (row 0) and near 1 (row 1)."""
    out = {}
    for g in GATES:
        values = getattr(states, g)  # [layers, steps, units]
        low = (values < SATURATED).mean(1).reshape(-1)
        high = (values > 1 - SATURATED).mean(1).reshape(-1)
        out[g] = np.stack([low, high])
    return out


def saturation_chart(states: States, width: int = 330) -> alt.HConcatChart:
    """Karpathy's figure: for every unit, how often each gate is closed (x) and open (y)."""
    units = states.units
    sat = saturation(states)
    charts = []
    for g, label in GATES.items():
        rows = [{"unit": f"layer {k // units} unit {k % units}", "closed": float(lo),
                 "open": float(hi)} for k, (lo, hi) in enumerate(sat[g].T)]
        charts.append(alt.Chart(alt.Data(values=rows)).mark_circle(size=18, opacity=0.6).encode(
            x=alt.X("closed:Q", title=f"share of characters < {SATURATED}",
                    scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("open:Q", title=f"share > {1 - SATURATED:g}", scale=alt.Scale(domain=[0, 1])),
            tooltip=["unit:N", alt.Tooltip("closed:Q", format=".2f"),
                     alt.Tooltip("open:Q", format=".2f")]).properties(
            width=width, height=width, title=label))
    return alt.hconcat(*charts)
