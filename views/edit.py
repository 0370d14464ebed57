"""Edit: a tune's ABC in a text box, checked, drawn and played as a written tune is (the same
tools, caps and timeouts: views/tuneview.py), and "Continue from here" to let the model write
on from the edited text."""

from __future__ import annotations

import streamlit as st

from abcweb.model.lstm import UnknownCharacters, encode
from abcweb.music import tunes
from abcweb.sampling.loop import MAX_PRIME
from abcweb.sound.tooling import MAX_ABC_CHARS
from abcweb.web import tunebook
from abcweb.web.messages import as_text, public_message
from views.generate import sidebar_playing
from views.shared import (
    PAGES,
    current_settings,
    keep_button,
    sampler_or_error,
    use_prime,
)
from views.tuneview import (
    abc_html,
    check_verdict,
    playing_version,
    result,
    start_renders,
    tune_media,
)

STARTER = "X:1\nT:My tune\nM:6/8\nL:1/8\nK:D\n|:DFA dAF|GBd gdB|AFD DFA|BGE E3:|\n"


def source() -> str:
    """What the box starts from: the tune sent here (Edit on the Generate page or in the
    tunebook), else the Generate page's last tune, else a starter jig."""
    if "edit_source" not in st.session_state:
        written = tunebook.picked(st.session_state.get("_text") or "")
        st.session_state.edit_source = written or STARTER
    return st.session_state.edit_source


def edited() -> None:
    st.session_state.edit_source = st.session_state.edit_text


def continue_from(text: str) -> None:
    """The edited text becomes the seed text and the Generate page writes on from its end;
    refused, with the reason, when the model cannot read it."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        st.error("Nothing to continue from: the text is empty.")
        return
    notes = []
    if len(text) > MAX_PRIME:
        notes.append(f"The seed text is the last {MAX_PRIME:,} characters of your "
                     f"{len(text):,}: the model carries on from the end.")
        text = text[-MAX_PRIME:]
    sampler, _ = sampler_or_error(st.session_state.get("model", ""), "numpy")
    if sampler is None:
        return
    try:
        encode(text, sampler.vocab, "edited text")
    except UnknownCharacters as e:
        st.error(f"Cannot continue from here: {as_text(public_message(e))}. Remove or replace "
                 "them "
                 "(the model knows plain ASCII and newlines).")
        return
    use_prime(text)
    st.session_state.page_notes = notes + ["The model continues from your edited tune."]
    st.switch_page(PAGES["generate"])


def editor() -> str:
    st.session_state.edit_text = source()
    st.text_area("ABC", key="edit_text", height=340, max_chars=MAX_ABC_CHARS, on_change=edited,
                 help="Change the tune and press Ctrl+Enter (or click outside the box): it is "
                      "checked, drawn and played again.")
    return st.session_state.edit_text


def actions(text: str, tune: tunes.Tune | None) -> None:
    go, keep = st.columns(2)
    if go.button("Continue from here", icon=":material/arrow_forward:", type="primary",
                 width="stretch", help="The model writes on from the end of this text (it "
                 "becomes the Generate page's seed text)."):
        continue_from(text)
    if tune is not None:
        with keep:  # an edited tune has no settings that write it: it is kept as text
            keep_button(tunebook.Entry(tune.text))


def pick(text: str) -> tuple[tunes.Tune | None, int]:
    found = tunes.split_tunes(text)
    return next((t for t in found if t.complete), found[0] if found else None), len(found)


def main() -> None:
    with st.sidebar:
        sidebar_playing()
    st.caption("Edit the tune's ABC: it is checked, drawn and played as you change it. "
               "Continue from here lets the model write on from your version.")
    left, right = st.columns([5, 6], gap="medium")
    with left:
        text = editor()
    if len(text) > MAX_ABC_CHARS:  # the box caps it; a session value set otherwise may not be
        left.error(f"The text is {len(text):,} characters long: the tools take at most "
                   f"{MAX_ABC_CHARS:,} per tune.")
        return
    tune, count = pick(text)
    with left:
        actions(text, tune)
    if tune is None:
        left.error("✗ No tune: the text holds no ABC tune (a tune needs a K: header line and "
                   "notes).")
        return
    settings = current_settings()
    play = playing_version(tune.text, settings)
    renders = start_renders(tune.text, play)
    check, check_error = result(renders["check"])
    with left:
        check_verdict(check, check_error)
        if count > 1:
            st.caption(f"The text holds {count} tunes: the one from line {tune.line} is "
                       "checked and played.")
        if tune.added:
            st.caption("Added for the tools: " + as_text(", ".join(tune.added)) + ".")
        st.html(abc_html(text, tune, check.problems if check else []))
    with right:
        tune_media(play, renders, settings, "abcweb-edited")


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import its functions
    main()
