"""abcweb dashboard: a character-level LSTM writes Irish folk tunes in ABC notation.

    streamlit run streamlit_app.py

The page is a thin layer over the library: `abcweb.sampler` writes the tune, `abcweb.abctools`
checks, draws and plays it, `abcweb.charts` shows what the model was thinking,
`abcweb.training_job` trains a model in a worker process and `abcweb.params` turns the
settings into a share link. Each view is a script of its own in views/ (st.navigation runs
only the open one); views/shared.py holds what they share. TensorFlow is never imported on
the way to a tune: the NumPy sampler does not need it, and training runs in its own process.
"""

from __future__ import annotations

import streamlit as st

from views.shared import PAGES, favicon, init_state, keep_settings


def main() -> None:
    st.set_page_config(page_title="abcweb · folk tunes from an LSTM", page_icon=favicon(),
                       layout="wide")
    # A bug must never show a traceback to visitors; every expected error is caught and
    # explained where it happens.
    st.set_option("client.showErrorDetails", "none")
    init_state()
    keep_settings()
    page = st.navigation([
        st.Page(PAGES["generate"], title="Generate", icon=":material/music_note:",
                default=True),
        st.Page(PAGES["edit"], title="Edit", icon=":material/edit_note:", url_path="edit"),
        st.Page(PAGES["tunebook"], title="Tunebook", icon=":material/library_music:",
                url_path="tunebook"),
        st.Page(PAGES["inside"], title="Inside the LSTM", icon=":material/neurology:",
                url_path="inside"),
        st.Page(PAGES["train"], title="Train", icon=":material/model_training:",
                url_path="train"),
        st.Page(PAGES["about"], title="About", icon=":material/info:", url_path="about"),
    ], position="top")
    st.title(":material/music_note: abcweb")
    page.run()


if __name__ == "__main__":
    main()
