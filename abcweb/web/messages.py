"""Error text fit for a public page: what went wrong, without the server's private file layout.

Library errors name files so that a developer at a terminal can find them. A visitor of a
hosted demo needs the same sentence without where the server keeps its checkout, its home
folder or its private temporary folders. Paths of installed system files (/usr/bin/abc2midi,
a soundfont under /usr/share) stay: they say what to install.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPORARY = "(temporary folder)"

# An absolute path up to a space, quote, colon, comma or bracket; a final full stop is prose.
_PATH = re.compile(r"(?<![\w.~])/[^\s:'\",;()\[\]]*[^\s:'\",;()\[\].]")


def _under(path: str, folder: str) -> str | None:
    """path relative to folder, '' for the folder itself, None when it is not inside."""
    folder = folder.rstrip("/")
    if path == folder:
        return ""
    if folder and path.startswith(folder + "/"):
        return path[len(folder) + 1 :]
    return None


def _public_path(path: str) -> str:
    rel = _under(path, str(ROOT))
    if rel is not None:
        return rel or "."
    for tmp in {tempfile.gettempdir(), os.path.realpath(tempfile.gettempdir())}:
        rel = _under(path, tmp)
        if rel is not None:
            # The first part is a private folder with a random name: say what is in it.
            inside = rel.partition("/")[2]
            return inside or TEMPORARY
    rel = _under(path, os.path.expanduser("~"))  # (a home of "/" matches nothing)
    if rel is not None:
        return "~/" + rel if rel else "~"
    return path


def public_message(error: object) -> str:
    """str(error) with the server's own paths made relative or shortened."""
    return _PATH.sub(lambda m: _public_path(m.group(0)), str(error))


# Every ASCII punctuation character: CommonMark lets a backslash escape each one, which takes
# away its meaning as Markdown, HTML, a link, an autolink, LaTeX ($) or a Streamlit directive.
_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")
# Some rules of Streamlit's Markdown read the text after the escapes are gone: GFM makes links
# of "http://...", "www.x.y" and "a@b.c"; ":name:" becomes an emoji, an icon (":material_x:")
# or Streamlit's logo (":streamlit:"); " -> ", " <= " and the like become arrows and signs
# (seen in Chromium: tests/test_hostile_text.py). A word joiner (invisible, U+2060) after a
# colon, an @, a "www" before its dot and the first character of such a pair leaves those
# rules nothing to match.
_JOIN_AFTER = re.compile(r":|@|(?i:www)(?=\.)|[<>~-](?=[<>=~-])")
WORD_JOINER = "\u2060"


def as_text(text: object) -> str:
    """`text` (a visitor's value, a title, a file name, an error that quotes them) made fit for
    a Streamlit message that renders Markdown (st.warning, st.error, st.caption, ...): it shows
    exactly as written, on one line, and nothing in it becomes a link, an image, HTML, a
    heading, a list, code, LaTeX, an emoji or a coloured span. Our own text around it keeps
    its Markdown."""
    one_line = " ".join(str(text).split())  # no new block: heading, list, code, quote
    joined = _JOIN_AFTER.sub(lambda m: m.group(0) + WORD_JOINER, one_line)
    return _PUNCT.sub(r"\\\1", joined)
