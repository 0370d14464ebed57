"""Inside the LSTM: the current tune read by the model, coloured by one of its units, with
that unit's states and gates, and how often every unit's gates sit closed or open. A page
of its own: nothing here runs while nobody opens it."""

from __future__ import annotations

import streamlit as st

from abcweb.inside import States, lstm_states
from abcweb.inside import charts as cell_charts
from abcweb.sampling.sample_worker import WorkerError
from abcweb.web.messages import as_text, public_message
from views.shared import (
    current_settings,
    generate,
    model_path,
    sampler_or_error,
)

MAX_CHARS = 2000  # a tune is far shorter; the page never reads more than this


@st.cache_resource(show_spinner=False, max_entries=16)
def states_of(path: str | None, text: str, _sampler) -> States:
    return lstm_states(_sampler.ckpt, text)


def named_units(sampler, states: States) -> dict[str, tuple[str, int, int]]:
    """Label -> (kind, layer, unit): the cells the model card found first, by what they
    track (model.json card.cells), then every unit's cell and hidden state."""
    units = {}
    for row in sampler.info.get("card", {}).get("cells", {}).get("rows", []):
        if row.get("tracked"):
            for kind in ("c", "h"):
                x = row[kind]
                label = (f"{row['about']} · {kind} of unit {x['unit']} (r = {x['r']:+.2f} on "
                         "held-out tunes)")
                units[label] = (kind, x["layer"], x["unit"])
    for layer in range(states.layers):
        for unit in range(states.units):
            for kind, what in (("c", "cell state"), ("h", "hidden state")):
                units[f"layer {layer} unit {unit}: {what}"] = (kind, layer, unit)
    return units


def main() -> None:
    st.markdown("The model reads the current tune one character at a time. Each of its "
                "LSTM units keeps a **cell state** c (its memory), shows a **hidden state** "
                "h, and has three **gates**: input (what to write), forget (what to keep) "
                "and output (what to show). Pick a unit and see the tune through it.")
    settings = current_settings()
    model = st.session_state.get("model")
    sampler, model = sampler_or_error(model, "numpy")
    if sampler is None:
        return
    try:
        g, _ = generate(model_path(model), "numpy", settings.prime, settings.length,
                        settings.temperature, settings.seed, settings.top_k, settings.top_p,
                        settings.best, settings.form)
        text = g.text[:MAX_CHARS]
        states = states_of(model_path(model), text, sampler)
    except ValueError as e:  # the seed text the Generate page already explained
        st.error(f"Cannot read this tune: {as_text(public_message(e))}")
        return
    except WorkerError:  # fixed text, as on the Generate page: the pool has already retried
        st.error("The sampler stopped before the tune was written. Please try again.")
        return
    units = named_units(sampler, states)
    label = st.selectbox("Unit", list(units), key="inside_unit",
                         help="The units the model card found tracking ABC structure come "
                              "first (python -m abcweb cells); then every unit.")
    kind, layer, unit = units[label]
    through = "tanh of the cell state" if kind == "c" else "the hidden state"
    st.markdown(f"**The tune through {through} of layer {layer} unit {unit}** (red positive, "
                "blue negative; hover for the value)")
    st.html(cell_charts.coloured_text(text, cell_charts.unit_values(states, kind, layer,
                                                                    unit)))
    st.altair_chart(cell_charts.unit_chart(states, layer, unit))
    st.markdown("**Every unit's gates**: how often each sits near 0 (closed) or near 1 "
                "(open) over this tune. Units on the axes' far ends act as switches; those in "
                "the corner near 0 are rarely fully open or closed.")
    st.altair_chart(cell_charts.saturation_chart(states))


if __name__ == "__main__":
    main()
