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

ROOT = Path(__file__).resolve().parents[1]
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
