"""About: how the demo works, the model's facts from its own metadata, its model card, and
which tools this host has."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from abcweb.model.checkpoint import CheckpointError
from abcweb.sampling.sampler import Sampler
from abcweb.sound import abctools
from abcweb.web.messages import as_text, public_message
from views.shared import SHIPPED, get_sampler, model_path


def main() -> None:
    model = st.session_state.get("model", SHIPPED)
    st.markdown(
        "A character-level LSTM reads and writes [ABC notation](https://abcnotation.com), a "
        "plain-text way of writing tunes. It writes one character at a time: at each step it "
        "gives every character a probability, and the sampler draws one. **Temperature** "
        "sharpens (below 1) or flattens (above 1) those probabilities; **top-k** keeps only the "
        "k likeliest. abc2midi checks the tune, abcm2ps draws it and fluidsynth plays it.")
    try:
        s = get_sampler(model_path(model), "numpy")
    except CheckpointError as e:
        st.warning(f"No model loaded: {as_text(public_message(e))}")
    else:
        st.markdown(model_facts(s, model))
        if model == SHIPPED:
            with st.expander("Model card: data, recipe, every figure with its command"):
                st.markdown(model_card())
    status = abctools.tool_status()
    st.markdown("**Tools on this host**")
    st.dataframe({"tool": list(status),
                  "found": ["missing" if v is None else "yes" for v in status.values()],
                  "version": [v or "" for v in status.values()]},
                 hide_index=True)


def model_facts(s: Sampler, model: str) -> str:
    """The model in one paragraph, from its own metadata (model.json), as its card states it."""
    info, cfg = s.info, s.cfg
    facts = [f"{cfg.units} LSTM units × {cfg.layers} layer(s), embedding {cfg.embedding}, "
             f"{cfg.parameter_count():,} parameters", f"{s.ckpt.total_steps:,} training steps"]
    card = info.get("card", {})
    if isinstance(card.get("heldout_bpc"), (int, float)):
        facts.append(f"**{card['heldout_bpc']:.3f} bits/char** on irish.abc's held-out tunes")
    valid = card.get("valid")
    if isinstance(valid, dict) and valid.get("of"):
        facts.append(f"**{valid['count'] / valid['of']:.1%} valid tunes** "
                     f"({valid['count']} of {valid['of']} samples)")
    if not card and isinstance(info.get("val_bpc"), (int, float)):
        facts.append(f"validation {info['val_bpc']:.3f} bits/char")
    name = "The shipped model" if model == SHIPPED else "This model"
    return f"**{name}**: " + "; ".join(facts) + "."


@st.cache_resource(show_spinner=False)
def model_card() -> str:
    path = Path(__file__).resolve().parent / "weights" / "README.md"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return "The model card (weights/README.md) is not on this server."


if __name__ == "__main__":
    main()
