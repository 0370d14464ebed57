"""A tunebook: the tunes a visitor keeps, as one .abc file or one link, and back.

    to_abc(entries) -> text          from_abc(data) -> (entries, messages)
    link_query(entries) -> pairs     from_link(values) -> (settings, messages)

In the file every tune has its own X: number and, right after it, a comment line with the
settings that write it again (params.to_query, so every setting the page has travels):

    X:1
    %abcweb seed=42&prime=X%3A&length=600&temperature=0.9&...&model=eab5482af714
    T:...

ABC tools skip comment lines, so the file is ordinary ABC. A tune without such a line (any
other .abc file) is kept as text: it can be edited, not written again. A link carries only
settings (no text, no database): one `t` parameter per tune, each a share link's query.

Reading never trusts its input: the file's size, its number of tunes and each tune's length
are capped, binary and non-UTF-8 files are refused or read as Latin-1 (corpus.decode_upload),
and every settings line goes through params.from_query, which clamps what it does not like.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from abcweb.music import tunes
from abcweb.music.corpus import CorpusError, decode_upload
from abcweb.sound.tooling import MAX_ABC_CHARS
from abcweb.web import params

MARK = "%abcweb "  # starts a tune's settings line
LINK_KEY = "t"
MAX_BOOK_BYTES = 1 << 20  # an upload (200 tunes take ~0.2 MB; reading 1 MB of junk, 0.7 s)
MAX_TUNES = 200  # in a book; a longer file is read up to here
MAX_LINK_TUNES = 25  # a link's tunes are written again when it is opened: ~0.3 s each
MAX_LINK_CHARS = 8000  # longer addresses break in some browsers and proxies
_ANY_ID = "0" * 12  # a well-formed model id, replaced by ""
MAX_SHOWN = 80  # characters of a title, meter or key shown in a list


class TunebookError(ValueError):
    """A file or link that cannot be read as a tunebook; the message says why."""


@dataclass(frozen=True)
class Entry:
    text: str  # the tune's ABC, without its settings line ("" while a link's tune is unwritten)
    settings: params.Settings | None = None  # what writes it again; None: a text-only tune
    # The page's model choice when it was kept (a model trained in this session has no id a
    # link could name); never written to a file or a link.
    session_model: str = ""

    @property
    def title(self) -> str:
        return header(self.text, "T") or "(untitled)"

    @property
    def meter(self) -> str:
        return header(self.text, "M")

    @property
    def key(self) -> str:
        return header(self.text, "K")

    def same_tune(self, other: Entry) -> bool:
        return self.text == other.text and self.settings == other.settings


def header(text: str, name: str) -> str:
    """A header field's first value (up to the K: line, which ends the header)."""
    for line in text.split("\n"):
        if line.startswith(name + ":"):
            return line[2:].strip()[:MAX_SHOWN]
        if line.startswith("K:"):
            break
    return ""


def describe(settings: params.Settings | None) -> str:
    """The settings in a line, from the share-link query (new settings show up by themselves);
    the seed text is shown only when it is not the default."""
    if settings is None:
        return "no settings: a tune from a file, to edit"
    query = params.to_query(settings)
    prime = query.pop("prime")
    query.pop("model", None)
    out = " · ".join(f"{k} {v}" for k, v in query.items())
    if prime != params.DEFAULTS.prime:
        shown = prime if len(prime) <= 40 else prime[:37] + "…"
        out += " · seed text " + repr(shown)
    return out


def picked(text: str) -> str | None:
    """The tune the page checks and plays in a text: its first complete one, else its first."""
    found = tunes.split_tunes(text)
    tune = next((t for t in found if t.complete), found[0] if found else None)
    return tune.text if tune is not None else None


def add(book: list[Entry], new: list[Entry]) -> tuple[list[Entry], list[str]]:
    """The book with the new tunes it does not hold yet, up to MAX_TUNES."""
    out, messages, full = list(book), [], 0
    for entry in new:
        if any(entry.same_tune(e) for e in out):
            continue
        if len(out) >= MAX_TUNES:
            full += 1
            continue
        out.append(entry)
    if full:
        messages.append(f"a tunebook holds at most {MAX_TUNES} tunes: {full} left out")
    return out, messages


# -- the .abc file --------------------------------------------------------------------------
def settings_line(settings: params.Settings) -> str:
    return MARK + urlencode(params.to_query(settings))


def numbered(entry: Entry, number: int) -> str:
    """The tune as the book writes it: its own X: number, then its settings line."""
    lines = [ln for ln in entry.text.rstrip("\n").split("\n") if not ln.startswith(MARK)]
    at = next((i for i, ln in enumerate(lines) if ln.startswith("X:")), None)
    if at is None:
        lines.insert(0, "")
        at = 0
    lines[at] = f"X:{number}"
    if entry.settings is not None:
        lines.insert(at + 1, settings_line(entry.settings))
    return "\n".join(lines) + "\n"


def to_abc(entries: list[Entry]) -> str:
    written = [e for e in entries if e.text]
    head = (f"%abc-2.1\n% abcweb tunebook: {len(written)} tune"
            f"{'s' if len(written) != 1 else ''}. The %abcweb line under each X: holds the "
            "settings that write it again.\n")
    return "\n".join([head] + [numbered(e, i) for i, e in enumerate(written, 1)])


def from_abc(data: bytes | str, name: str = "tunebook") -> tuple[list[Entry], list[str]]:
    """The tunes of an .abc file, and one message per thing read otherwise than written.
    Raises TunebookError for a file that holds no tune or is not text."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_BOOK_BYTES:
        raise TunebookError(f"{name}: the file is {len(data) / 2**20:.1f} MB; a tunebook is "
                            f"at most {MAX_BOOK_BYTES >> 20} MB")
    try:
        text = decode_upload(data, name)
    except CorpusError as e:
        raise TunebookError(str(e)) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", " ")
    found = tunes.split_tunes(text)
    if not found:
        raise TunebookError(f"{name}: no ABC tunes found (a tune starts with an 'X:' line "
                            "and needs a 'K:' line and notes)")
    messages = []
    if len(found) > MAX_TUNES:
        messages.append(f"the file holds {len(found):,} tunes: the first {MAX_TUNES} are read "
                        f"(a tunebook holds at most {MAX_TUNES})")
        found = found[:MAX_TUNES]
    entries = []
    for n, tune in enumerate(found, 1):
        if len(tune.text) > MAX_ABC_CHARS:
            messages.append(f"tune {n} is {len(tune.text):,} characters long (at most "
                            f"{MAX_ABC_CHARS:,}): left out")
            continue
        entry, notes = _entry(tune.text)
        entries.append(entry)
        messages += [f"tune {n} ({entry.title}): {m}" for m in notes]
    if not entries:
        raise TunebookError(f"{name}: no tune could be read: " + "; ".join(messages[:3]))
    return entries, messages


def _entry(text: str) -> tuple[Entry, list[str]]:
    lines = text.rstrip("\n").split("\n")
    marks = [ln for ln in lines if ln.startswith(MARK)]
    body = "\n".join(ln for ln in lines if not ln.startswith(MARK)) + "\n"
    if not marks:
        return Entry(body), []
    settings, notes = _settings(marks[0][len(MARK):])
    if settings is None:
        return Entry(body), ["its %abcweb line holds no settings: kept as text"]
    return Entry(body, settings), notes


def _settings(query: str) -> tuple[params.Settings | None, list[str]]:
    """Settings from one share-link query; None when it names no setting at all (from_query
    would read that as the defaults: another tune)."""
    fields = parse_qs(query.strip(), keep_blank_values=True)
    if not any(k in fields for k in params.KEYS if k != "model"):
        return None, []
    if "model" not in fields:
        # The page names no model only when it has none to name. Unlike a share link made
        # before ids (from_query's legacy case), a book's line then means the current model.
        settings, messages = params.from_query({**fields, "model": [_ANY_ID]})
        return replace(settings, model=""), messages
    return params.from_query(fields)


def save(path: str | Path, entries: list[Entry]) -> None:
    """Write the book to a file at once: a failure never leaves half a file under its name."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(to_abc(entries))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- the link ------------------------------------------------------------------------------
def link_query(entries: list[Entry]) -> tuple[list[tuple[str, str]], list[str]]:
    """Query pairs for a link to the book (one `t` per tune), and notes on what a link
    cannot hold. Raises TunebookError when the book does not fit in a link."""
    notes = []
    with_settings = [e for e in entries if e.settings is not None]
    if len(with_settings) < len(entries):
        n = len(entries) - len(with_settings)
        notes.append(f"{n} tune{'s' if n != 1 else ''} without settings (from a file or the "
                     "editor) cannot travel in a link: download the .abc for them")
    if not with_settings:
        raise TunebookError("no tune in this book has settings a link could carry")
    if len(with_settings) > MAX_LINK_TUNES:
        raise TunebookError(f"a link holds at most {MAX_LINK_TUNES} tunes and this book has "
                            f"{len(with_settings)}: download the .abc instead")
    pairs = [(LINK_KEY, urlencode(params.to_query(e.settings))) for e in with_settings]
    if len(urlencode(pairs)) > MAX_LINK_CHARS:
        raise TunebookError(f"the link would be {len(urlencode(pairs)):,} characters long (at "
                            f"most {MAX_LINK_CHARS:,}; long seed texts take room): download "
                            "the .abc instead")
    return pairs, notes


def link(base: str | None, entries: list[Entry]) -> tuple[str, list[str]]:
    pairs, notes = link_query(entries)
    base = (base or "").split("?", 1)[0].split("#", 1)[0]
    return f"{base}?{urlencode(pairs)}", notes


def from_link(values: list[str]) -> tuple[list[params.Settings], list[str]]:
    """The settings of a link's tunes (its `t` values), and a message for each thing changed."""
    messages = []
    if len(values) > MAX_LINK_TUNES:
        messages.append(f"the link holds {len(values)} tunes: the first {MAX_LINK_TUNES} are "
                        "read")
        values = values[:MAX_LINK_TUNES]
    out = []
    for n, value in enumerate(values, 1):
        settings, notes = _settings(str(value)[:3 * MAX_LINK_CHARS])
        if settings is None:
            notes = ["it holds no settings: left out"]
        else:
            out.append(settings)
        messages += [f"tune {n} of the link: {m}" for m in notes]
    return out, messages
