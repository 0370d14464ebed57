"""Tunebook: the tunes this session keeps. Each reopens exactly on the Generate page (its
settings are a share link's) or opens as text in the editor; the whole book downloads as one
.abc file, goes back up as one, and travels as a link (abcweb/web/tunebook.py)."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from abcweb.model.checkpoint import CheckpointError
from abcweb.sampling.sample_worker import WorkerError
from abcweb.web import params, tunebook
from abcweb.web.messages import as_text, public_message
from views.shared import (
    PAGES,
    book,
    generate,
    model_for_link,
    model_path,
    open_in_editor,
    use_settings,
)

MAX_NOTES = 8  # messages shown about one upload or link; the rest are counted


def show_notes(notes: list[str]) -> None:
    for note in notes[:MAX_NOTES]:
        st.warning(as_text(note))
    if len(notes) > MAX_NOTES:
        st.caption(f"…and {len(notes) - MAX_NOTES} more like these.")


def app_url() -> str:
    """The Generate page's address (the app's root): share links open there."""
    url = (st.context.url or "").split("?", 1)[0].split("#", 1)[0]
    return url.removesuffix("/").removesuffix("/tunebook")


def read_link() -> list[str]:
    """A session that starts at a book link (?t=...&t=...) starts with its tunes."""
    if st.session_state.get("_book_link_read"):
        return []
    st.session_state._book_link_read = True
    values = st.query_params.get_all(tunebook.LINK_KEY)
    if not values:
        return []
    settings, notes = tunebook.from_link(values)
    st.session_state.book, more = tunebook.add(book(), [tunebook.Entry("", s)
                                                        for s in settings])
    return notes + more


def write_missing() -> list[str]:
    """A link carries settings only: write its tunes (each ~0.3 s, then cached)."""
    missing = [i for i, e in enumerate(book()) if not e.text]
    if not missing:
        return []
    bar = st.progress(0.0, text=f"Writing the link's {len(missing)} tunes…")
    out, notes = list(book()), []
    for n, i in enumerate(missing):
        s = out[i].settings
        try:
            g, _ = generate(model_path(model_for_link(s.model, notes)), "numpy", s.prime,
                            s.length, s.temperature, s.seed, s.top_k, s.top_p, s.best,
                            s.form)
            out[i] = replace(out[i], text=tunebook.picked(g.text) or g.text)
        except (ValueError, CheckpointError) as e:  # a hand-made link's seed text, say
            notes.append(f"the link's tune with seed {s.seed} cannot be written "
                         f"({public_message(e)}): left out")
            out[i] = None
        except WorkerError:  # the pool has already retried on a fresh worker
            notes.append(f"the link's tune with seed {s.seed} could not be written (the "
                         "sampler stopped): left out, open the link again to retry")
            out[i] = None
        bar.progress((n + 1) / len(missing))
    bar.empty()
    st.session_state.book = [e for e in out if e is not None]
    return notes


def listing(entries: list[tunebook.Entry]) -> None:
    base = app_url()
    st.dataframe(
        {"#": list(range(1, len(entries) + 1)),
         "title": [e.title for e in entries],
         "meter": [e.meter for e in entries],
         "key": [e.key for e in entries],
         "seed": [e.settings.seed if e.settings else None for e in entries],
         "settings": [tunebook.describe(e.settings) for e in entries],
         "link": [params.share_url(base, e.settings) if e.settings else None
                  for e in entries]},
        hide_index=True, width="stretch", key="book_table",
        column_config={"link": st.column_config.LinkColumn(
            "share link", display_text="open in a new tab",
            help="The tune's share link (a new tab is a new visit, without this tunebook)")})


def remove(i: int) -> None:
    st.session_state.book = [e for n, e in enumerate(book()) if n != i]


def open_entry(entry: tunebook.Entry) -> None:
    notes = use_settings(entry.settings, entry.session_model)
    st.session_state.page_notes = [f"From the tunebook: {m}" for m in notes]
    st.switch_page(PAGES["generate"])


def actions(entries: list[tunebook.Entry]) -> None:
    if st.session_state.get("book_pick", 0) >= len(entries):
        st.session_state.book_pick = 0
    i = st.selectbox("Tune", range(len(entries)), key="book_pick",
                     format_func=lambda n: f"{n + 1}. {entries[n].title}"
                     + (f" ({entries[n].meter}, {entries[n].key})" if entries[n].key else ""))
    entry = entries[i]
    a, b, c = st.columns(3)
    if a.button("Open", icon=":material/music_note:", type="primary", width="stretch",
                disabled=entry.settings is None,
                help="The Generate page with this tune's settings: the same tune, "
                     "played as it was" if entry.settings else
                     "A tune from a file without settings: open it in the editor"):
        open_entry(entry)
    if b.button("Edit", icon=":material/edit:", width="stretch",
                help="Open the tune's ABC in the editor"):
        open_in_editor(entry.text)
    c.button("Remove", icon=":material/delete:", width="stretch", on_click=remove, args=(i,))


def download(entries: list[tunebook.Entry]) -> None:
    st.download_button("Download the tunebook (.abc)", tunebook.to_abc(entries),
                       "abcweb-tunebook.abc", "text/vnd.abc", on_click="ignore",
                       icon=":material/download:",
                       help="One ABC file: each tune with its own X: number and a %abcweb "
                            "line with the settings that write it again. Upload it here to "
                            "bring the book back.")


def share(entries: list[tunebook.Entry]) -> None:
    st.markdown("**Share this tunebook**")
    try:
        url, notes = tunebook.link(app_url() + "/tunebook", entries)
    except tunebook.TunebookError as e:
        st.caption(f"No link: {as_text(public_message(e))}.")
        st.query_params.clear()
        return
    st.code(url, language=None, wrap_lines=True)
    for note in notes:
        st.caption(as_text(note))
    # The address bar is the link too, as on the Generate page.
    st.query_params.clear()
    st.query_params[tunebook.LINK_KEY] = [v for _, v in tunebook.link_query(entries)[0]]


def upload() -> list[str]:
    """Tunes from an .abc file join the book, once per file."""
    f = st.file_uploader("Upload a tunebook (.abc)", type=["abc", "txt"], key="book_upload",
                         help=f"At most {tunebook.MAX_BOOK_BYTES >> 20} MB and "
                              f"{tunebook.MAX_TUNES} tunes. Tunes with a %abcweb settings "
                              "line reopen exactly; others open as text in the editor.")
    if f is None:
        return []
    ident = (f.file_id, f.name, f.size)
    if st.session_state.get("_book_upload_id") != ident:
        st.session_state._book_upload_id = ident
        try:
            entries, notes = tunebook.from_abc(f.getvalue(), f.name)
        except tunebook.TunebookError as e:
            st.session_state._book_upload_report = ("error", [public_message(e)])
        else:
            with_settings = sum(e.settings is not None for e in entries)
            st.session_state.book, more = tunebook.add(book(), entries)
            st.session_state._book_upload_report = ("read", notes + more, len(entries),
                                                    with_settings)
    return report(st.session_state._book_upload_report)


def report(r: tuple) -> list[str]:
    if r[0] == "error":
        st.error(f"Cannot read this tunebook: {as_text(r[1][0])}")
        return []
    _, notes, n, with_settings = r
    st.caption(f"Read {n} tune{'s' if n != 1 else ''} from the file: {with_settings} with "
               f"settings, {n - with_settings} as text.")
    return notes


def main() -> None:
    notes = read_link()
    notes += write_missing()
    entries = book()
    left, right = st.columns([3, 1], gap="large")
    with right:
        notes += upload()
        entries = book()
        if entries:
            download(entries)
            share(entries)
    with left:
        show_notes(notes)
        if not entries:
            st.info("Your tunebook is empty. Keep a tune with the ☆ Keep button on the "
                    "Generate page, or upload a tunebook (.abc).")
            return
        st.markdown(f"**{len(entries)} tune{'s' if len(entries) != 1 else ''} kept in this "
                    "session** (kept tunes last as long as this browser tab).")
        listing(entries)
        actions(entries)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import its functions
    main()
