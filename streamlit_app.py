"""abcweb dashboard: a character-level LSTM writes Irish folk tunes in ABC notation.

    streamlit run streamlit_app.py

The page is a thin layer over the library: `abcweb.sampling.sampler` writes the tune,
`abcweb.sound.abctools` checks, draws and plays it, `abcweb.web.charts` shows what the model
was thinking, `abcweb.web.training_job` trains a model in a worker process and
`abcweb.web.params` turns the settings into a share link. Each view is a script of its own in
views/ (st.navigation runs only the open one); views/shared.py holds what they share.
TensorFlow is never imported on the way to a tune: the NumPy sampler does not need it, and
training runs in its own process.
"""

from __future__ import annotations

import streamlit as st

from abcweb.web import fairness, sessions
from views.shared import PAGES, favicon, init_state, keep_settings

# Behind the balancer (deploy/haproxy.cfg) every response names the replica that served it. A
# replica that stops takes this visitor's session with it, and Streamlit's page reconnects to
# the next replica without running again, so the page would sit stale until the next click.
# This watcher notices the replica change and reloads the page from its link (which the page
# keeps current), with `moved=1` so the new replica says what happened. Without a balancer the
# header is absent and it stops after one request.
REPLICA_WATCH = """<script>
let first = null;
async function look() {
  try {
    const r = await fetch("/_stcore/health", {cache: "no-store", credentials: "same-origin"});
    const who = r.headers.get("X-Abcweb-Replica");
    if (!who) return;
    if (first === null) first = who;
    if (who !== first) {
      // A sandboxed frame may not navigate the page itself: the page's own script does.
      const doc = window.parent.document;
      const s = doc.createElement("script");
      s.textContent = 'const u = new URL(location.href); u.searchParams.set("moved", "1");'
        + ' location.replace(u.toString());';
      doc.head.appendChild(s);
      return;
    }
  } catch (e) {}
  setTimeout(look, 2000);
}
look();
</script>"""


def main() -> None:
    st.set_page_config(page_title="abcweb · folk tunes from an LSTM", page_icon=favicon(),
                       layout="wide")
    # A bug must never show a traceback to visitors; every expected error is caught and
    # explained where it happens.
    st.set_option("client.showErrorDetails", "none")
    init_state()
    keep_settings()
    sessions.watch()  # what this session holds is let go once Streamlit has let go of it
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
    if st.session_state.pop("moved", False):
        st.info("The server you were on has stopped, so this page was opened again on another "
                "one: the same tune, from your link. A model you were training there is gone.",
                icon=":material/sync:")
    if not fairness.wait_turn():
        st.warning("So many pages from your address are asking for tunes that this one has to "
                   "wait. Try again in a minute.", icon=":material/hourglass_top:")
        st.stop()
    page.run()
    # Out of the keyboard's way, and named for screen readers (it shows nothing).
    st.iframe(REPLICA_WATCH, height=1, tab_index=-1, alt="Watches for a change of server")


if __name__ == "__main__":
    main()
