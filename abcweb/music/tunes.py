"""Tunes in ABC text: split generated text into tunes, repair headers, classify characters.

Pure Python and fast: no subprocesses, so the page can call it on every rerun.

How text is split (ABC 2.1: a tune starts at an `X:` line and ends at a blank line):
- a blank line (only spaces/tabs) ends a tune, and an `X:` line starts a new one even when no
  blank line came before it, so a generator that forgets the blank line loses no tune;
- a header whose body comes after a blank line stays one tune (irish.abc has two such);
- a chunk with no `X:`, no `K:` and no line of notes with a bar line (a file header of `%%`
  directives, comments, free text) is not a tune and is skipped; every other chunk is kept,
  the first one included (the notebook's regex needed a blank line before a tune and so
  dropped the first);
- a tune is complete when it has a `K:` line and notes, and something follows it (a blank line
  or the next `X:`), or, at the very end of the text, its last music line ends with a closing
  bar line (`|]`, `||`, `:|`). A generator cut off mid-tune leaves an incomplete tail.
Repairs, only where ABC defines the meaning:
- a missing `X:` is added as the first line (`X:<n>`, n = the tune's number in the text);
- a missing `L:` is added just before the `K:` line with the default the standard derives from
  `M:` (1/16 when the meter is below 3/4, else 1/8), so tools need no guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

_FIELD = re.compile(r"[A-Za-z+]:")  # a field line starts with a letter and a colon
_INLINE_FIELD = re.compile(r"\[[A-Za-z]:[^\]\n]*\]?")
_DECORATION = re.compile(r"![^!\s|]{1,30}!|\+[^+\s|]{1,30}\+")
_CLOSING_BAR = re.compile(r"(\|\]|\|\||:\|)[\s!]*$")
_NOTE_LETTERS = frozenset("ABCDEFGabcdefgzxZX")
_AFTER_NOTE = frozenset("0123456789/',<>")


@dataclass
class Tune:
    text: str  # the tune's ABC text, repaired (X:/L: added where needed), ending in one newline
    start: int  # character offset of the tune in the source text
    line: int  # 1-based line number in the source where the tune starts
    complete: bool  # False for a truncated tail (or a fragment without K: or notes)
    added: list[str] = field(default_factory=list)  # header lines we added, e.g. ["X:1", "L:1/8"]
    added_at: list[int] = field(default_factory=list, repr=False)  # their lines in text (1-based)

    def source_line(self, line: int) -> int | None:
        """Line in the source text for a 1-based line of `text` (None for a line we added)."""
        if line in self.added_at:
            return None
        return self.line + line - 1 - sum(1 for a in self.added_at if a < line)


def _default_length(header: list[str]) -> str:
    # ABC 2.1 section 3.1.7: the default unit length comes from the meter.
    meter = next((ln[2:].strip() for ln in header if ln.startswith("M:")), "")
    m = re.fullmatch(r"\(?([\d+ ]+)\)?\s*/\s*(\d+)", meter)
    if m:
        try:
            value = Fraction(
                sum(int(n) for n in m.group(1).split("+") if n.strip()), int(m.group(2))
            )
        except (ValueError, ZeroDivisionError):
            value = Fraction(1)
        if value < Fraction(3, 4):
            return "L:1/16"
    return "L:1/8"  # 4/4 and up, C, C|, none, absent or unreadable


def _has_notes(line: str) -> bool:
    return any(k == "note" for k in _line_kinds(line)) and not _FIELD.match(line)


def _make_tune(
    lines: list[str], start: int, line_no: int, number: int, followed: bool
) -> Tune | None:
    music = [ln for ln in lines if not ln.lstrip().startswith("%")]
    has_x = any(ln.startswith("X:") for ln in music)
    k_at = next((i for i, ln in enumerate(lines) if ln.startswith("K:")), None)
    notes = [ln for ln in music if _has_notes(ln)]
    if not has_x and k_at is None and not any("|" in ln for ln in notes):
        return None  # free text, comments or a file header: not a tune (music has bar lines)
    body_notes = k_at is not None and any(_has_notes(ln) for ln in lines[k_at + 1 :])
    ended = followed or bool(notes and _CLOSING_BAR.search(notes[-1]))
    complete = k_at is not None and body_notes and ended
    out = list(lines)
    added, added_at = [], []
    if k_at is not None and not any(ln.startswith("L:") for ln in lines[:k_at]):
        out.insert(k_at, _default_length(lines[:k_at]))
        added.append(out[k_at])
        added_at.append(k_at + 1)
    if not has_x:
        out.insert(0, f"X:{number}")
        added.insert(0, out[0])
        added_at = [1] + [a + 1 for a in added_at]
    return Tune("\n".join(out) + "\n", start, line_no, complete, added, added_at)


def split_tunes(text: str) -> list[Tune]:
    """Every tune in `text`, in order, with its place in the source and whether it is complete."""
    tunes: list[Tune] = []
    chunk: list[str] = []
    chunk_start = chunk_line = 0

    def close(followed: bool) -> None:
        if chunk:
            tune = _make_tune(chunk, chunk_start, chunk_line, len(tunes) + 1, followed)
            if tune is not None:
                tunes.append(tune)

    offset, gap = 0, 0
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the text's final newline ends a line; it is no blank line
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        offset += len(raw) + 1
        if not line.strip():
            if chunk and _header_only(chunk):
                gap += 1  # maybe a header whose body follows a blank line: wait and see
            else:
                close(followed=True)
                chunk, gap = [], 0
            continue
        if gap and (line.startswith("X:") or not _has_notes(line)):
            close(followed=True)
            chunk, gap = [], 0
        if line.startswith("X:") and chunk:
            close(followed=True)
            chunk = []
        if not chunk:
            chunk_start, chunk_line = offset - len(raw) - 1, number
        # A blank line between header and body (irish.abc has two): keep the tune whole and
        # keep its line numbers by turning the blank lines into empty comments.
        chunk += ["%"] * gap + [line]
        gap = 0
    close(followed=gap > 0)
    return tunes


def _header_only(chunk: list[str]) -> bool:
    k_at = next((i for i, ln in enumerate(chunk) if ln.startswith("K:")), None)
    return k_at is not None and not any(_has_notes(ln) for ln in chunk[k_at + 1 :])


def first_complete_tune(text: str) -> Tune | None:
    return next((t for t in split_tunes(text) if t.complete), None)


# ----------------------------------------------------------------------------------------
# Character kinds, for colouring per-character charts. One line at a time: quotes, chords
# and decorations never span lines in ABC.


def _line_kinds(line: str) -> list[str]:
    n = len(line)
    if _FIELD.match(line):
        return ["header"] * n
    kinds = ["other"] * n
    i = 0
    after_note = False  # durations, octave marks and broken rhythm belong to the note before
    in_chord = False
    while i < n:
        c = line[i]
        if c == "%":
            break  # a comment runs to the end of the line
        if c == '"':
            end = line.find('"', i + 1)
            i = n if end < 0 else end + 1  # chord symbols and annotations stay 'other'
            after_note = False
            continue
        if c in "!+":
            m = _DECORATION.match(line, i)
            if m:
                i = m.end()
                after_note = False
                continue
        if c == "[":
            m = _INLINE_FIELD.match(line, i)
            if m:
                kinds[i : m.end()] = ["header"] * (m.end() - i)
                i = m.end()
                after_note = False
                continue
            if i + 1 < n and line[i + 1].isdigit():
                j = _ending_end(line, i + 1)  # [1 or [1,3: a repeat ending
                kinds[i:j] = ["bar"] * (j - i)
                i = j
                after_note = False
                continue
            if i + 1 < n and line[i + 1] == "|":
                kinds[i] = "bar"  # [| (thick bar line)
            else:
                kinds[i] = "note"  # a chord [CEG]
                in_chord = True
            after_note = False
        elif c == "]":
            kinds[i] = "note" if in_chord else "bar"
            after_note = in_chord  # [CEG]2: the duration of a chord
            in_chord = False
        elif c in "|:":
            kinds[i] = "bar"
            j = i + 1
            while j < n and line[j] in "|:]":
                j += 1
            j = _ending_end(line, j)  # repeat endings |1 :|2 |1,3
            kinds[i:j] = ["bar"] * (j - i)
            i = j
            after_note = False
            continue
        elif c in _NOTE_LETTERS or c in "^_=":
            kinds[i] = "note"
            after_note = c in _NOTE_LETTERS
        elif after_note and c in _AFTER_NOTE:
            kinds[i] = "note"
        else:
            after_note = False
        i += 1
    return kinds


def _ending_end(line: str, j: int) -> int:
    while j < len(line) and (
        line[j].isdigit() or (line[j] in ",-" and line[j + 1 : j + 2].isdigit())
    ):
        j += 1
    return j


def token_kinds(text: str) -> list[str]:
    """'header' | 'note' | 'bar' | 'other' for every character of `text` (newlines: 'other')."""
    kinds: list[str] = []
    for line in text.split("\n"):
        kinds += _line_kinds(line)
        kinds.append("other")
    kinds.pop()
    return kinds


def token_kind(text: str, index: int) -> str:
    """The kind of the character at `index`, judged by its line."""
    if not 0 <= index < len(text):
        raise IndexError(f"index {index} out of range for text of length {len(text)}")
    if text[index] == "\n":
        return "other"
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    return _line_kinds(text[start : len(text) if end < 0 else end])[index - start]


# ----------------------------------------------------------------------------------------
# Bars, numbered like abc2midi numbers them: a bar is a stretch between bar lines that holds
# at least one note or rest, so a leading `|:` or `:| |:` adds no empty bar; a bar that runs
# over a line break is one bar. Header lines and inline fields belong to no bar.


def bar_index(text: str) -> dict[int, list[int]]:
    """For each body line (1-based), the bar of every column. A bar line belongs to the bar
    it closes; header lines are absent."""
    index: dict[int, list[int]] = {}
    bar, has_note, in_body = 1, False, False
    for line_no, line in enumerate(text.split("\n"), 1):
        if not in_body:
            in_body = line.startswith("K:")
            continue
        row, prev = [], "other"
        for kind in _line_kinds(line):
            if prev == "bar" and kind != "bar" and has_note:
                bar, has_note = bar + 1, False  # the bar line just closed a bar with notes
            has_note = has_note or kind == "note"
            row.append(bar)
            prev = kind
        if prev == "bar" and has_note:
            bar, has_note = bar + 1, False
        index[line_no] = row
    return index


def count_bars(text: str) -> int:
    """Bars holding at least one note or rest (each written bar once, repeats not unrolled)."""
    bars, lines = set(), text.split("\n")
    for line_no, row in bar_index(text).items():
        kinds = _line_kinds(lines[line_no - 1])
        bars.update(b for b, k in zip(row, kinds) if k == "note")
    return len(bars)


def bar_at(text: str, line: int, col: int, index: dict[int, list[int]] | None = None) -> int | None:
    """The bar at a 1-based line and 0-based column of `text` (None in the header).

    A column past the end of the line (tools report the end of a line) takes the line's last bar.
    """
    row = (index if index is not None else bar_index(text)).get(line)
    if not row:
        return None
    return row[min(max(col, 0), len(row) - 1)]


def show_char(c: str) -> str:
    """A character as a person can see it in a tooltip or an axis label."""
    return {"\n": "↵", " ": "␣", "\t": "⇥"}.get(c, c)
