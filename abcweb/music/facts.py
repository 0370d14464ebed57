"""What one tune's ABC text says as music: its key, its bars, its melody, its form.

Read from the text with a small parser (melody notes only: chord symbols, decorations, grace
notes and fields are skipped; within a chord the first note counts):
- ends on the tonic of its own K:, mode-aware (K:A Dorian ends on A; its signature is G's);
- form: its parts (split at repeats and double bars; a second ending replaces the first) with
  their bars, not counting a pickup or a closing part-bar; a repeated part counts as played
  (4 written bars with a repeat are 8 bars: reels are often written so);
- out-of-key notes: the notes outside the K:'s seven pitch classes;
- its melody as scale degrees (pitch classes above the tonic) and melodic steps in semitones,
  clipped to an octave (melody_bins);
- form as echoes (issue 23): each bar as it is played (bar_spans: cut at bar lines and
  endings; spaces, decorations, grace notes, chord symbols and slurs dropped; empty bars
  dropped), read as written, so a part under a repeat sign is not played out twice (its
  repeat is no echo in the text): bars equal to an earlier bar of the tune; 2-bar phrases
  equal to an earlier phrase that has ended before this one starts; bars within NEAR_EDITS
  character edits of an earlier bar (the equal ones included); the longest run of one bar.
  echo_groups gives the same bars one by one, with where each is in the text, for a view that
  shows a learner which bars come back.

What a set of tunes adds up to, against real tunes, is abcweb/evaluation/yardsticks.py.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

LETTERS = "CDEFGAB"
NATURAL = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SHARPS_ORDER, FLATS_ORDER = "FCGDAEB", "BEADGCF"
MAJOR_SHARPS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F#": 6, "C#": 7, "F": -1,
                "Bb": -2, "Eb": -3, "Ab": -4, "Db": -5, "Gb": -6, "Cb": -7}
MODES = {"maj": 0, "ion": 0, "mix": -1, "dor": -2, "aeo": -3, "min": -3, "m": -3, "phr": -4,
         "loc": -5, "lyd": 1}
FORM_BARS = (8, 16)
INTERVAL_MAX = 12
NEAR_EDITS = 2  # a bar this many character edits from an earlier one is a near echo
# This many equal bars in a row: the tune loops one bar (7 of irish.abc's 726 train tunes do,
# none of its 80 held-out tunes; two in a row are common).
LOOP_RUN = 3

_KEY = re.compile(r"^\s*([A-G])([#b]?)\s*([A-Za-z]*)")
_SKIP = re.compile(r'"[^"\n]*"|![^!\n]*!|\+[^+\n]*\+|\{[^}\n]*\}|\[[A-Za-z]:[^\]\n]*\]|%.*')
_TOKEN = re.compile(
    r"(?P<bar>:*\|+\]?:*|\[\||:+)\s*(?P<ending>\[?[12](?![/\d]))?"
    r"|(?P<alone>\[[12])(?![/\d])"  # an ending at a line's start: [1 ... or [2 ...
    r"|(?P<chord>\[)|(?P<chord_end>\])"
    r"|(?P<note>(?P<acc>\^\^|\^|__|_|=)?(?P<letter>[A-Ga-g])(?P<oct>[',]*)(?P<len>\d*/*\d*))"
    r"|(?P<rest>[zx])(?P<rlen>\d*/*\d*)"
)


@dataclass
class Key:
    tonic: int  # pitch class
    accidentals: dict[str, int]  # letter -> semitones from the signature
    scale: frozenset[int]


def parse_key(value: str) -> Key | None:
    """A K: value ('D', 'Ador', 'A Dorian', 'Em', 'F#m', 'Bb Major'); None if unreadable."""
    m = _KEY.match(value)
    if not m:
        return None
    letter, acc, mode = m.group(1), m.group(2), m.group(3).lower()
    name = letter + acc
    if name not in MAJOR_SHARPS:
        return None
    mode = "maj" if not mode else ("m" if mode == "m" else mode[:3])
    if mode not in MODES:
        return None
    count = MAJOR_SHARPS[name] + MODES[mode]
    accidentals = {c: 0 for c in LETTERS}
    for c in (SHARPS_ORDER[:count] if count > 0 else FLATS_ORDER[: -count]):
        accidentals[c] = 1 if count > 0 else -1
    tonic = (NATURAL[letter] + {"#": 1, "b": -1, "": 0}[acc]) % 12
    scale = frozenset((NATURAL[c] + a) % 12 for c, a in accidentals.items())
    return Key(tonic, accidentals, scale)


def _length(text: str) -> Fraction:
    if not text:
        return Fraction(1)
    if "/" not in text:
        return Fraction(int(text))
    num, _, rest = text.partition("/")
    slashes = 1 + rest.count("/")
    den = rest.replace("/", "")
    return Fraction(int(num or 1), int(den) if den else 2 ** slashes)


def _meter_units(meter: str, unit: str) -> Fraction | None:
    meter = {"C": "4/4", "C|": "2/2"}.get(meter.strip(), meter.strip())
    m, u = re.fullmatch(r"(\d+)/(\d+)", meter), re.fullmatch(r"(\d+)/(\d+)", unit.strip())
    if not m or not u:
        return None
    return Fraction(int(m.group(1)), int(m.group(2))) / Fraction(int(u.group(1)), int(u.group(2)))


@dataclass
class TuneFacts:
    key: Key | None
    pitches: list[int] = field(default_factory=list)  # MIDI-like pitch numbers of the melody
    parts: list[tuple[int, bool]] = field(default_factory=list)  # (full bars, repeated)

    @property
    def ends_on_tonic(self) -> bool | None:
        if self.key is None or not self.pitches:
            return None
        return self.pitches[-1] % 12 == self.key.tonic

    @property
    def out_of_key(self) -> int:
        return 0 if self.key is None else sum(p % 12 not in self.key.scale for p in self.pitches)


def _fields_and_body(text: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """The header's fields (the first of each letter; K:, L: and M: may also come in the body)
    and the body's lines, each with its offset in text."""
    fields: dict[str, str] = {}
    body = []
    offset = 0
    for line in text.split("\n"):
        if re.match(r"^[A-Za-z+]:", line):
            if not body or line[0] in "KLM":
                fields.setdefault(line[0], line[2:].strip())
        elif "K" in fields:
            body.append((offset, line))
        offset += len(line) + 1
    return fields, body


def read_tune(text: str) -> TuneFacts:
    """Key, melody pitches and bars per part of one tune's ABC text."""
    fields, body = _fields_and_body(text)
    facts = TuneFacts(parse_key(fields.get("K", "")))
    accidentals = dict(facts.key.accidentals) if facts.key else {c: 0 for c in LETTERS}
    full = _meter_units(fields.get("M", "4/4"), fields.get("L", "1/8"))
    bar_acc: dict[str, int] = {}
    bar_len, bars, in_chord, chord_first, second_ending = Fraction(0), 0, False, False, False

    def close_bar() -> None:
        nonlocal bar_len, bars
        if bar_len and not second_ending and (full is None or bar_len * 2 >= full):
            bars += 1  # a pickup or a part's closing half-bar is no bar of its own
        bar_len = Fraction(0)

    for _, line in body:
        for m in _TOKEN.finditer(_SKIP.sub(" ", line)):
            if m.group("bar"):
                close_bar()
                bar_acc.clear()
                sign = m.group("bar")
                if ":" in sign or "||" in sign or "]" in sign:  # a part ends here
                    if bars and not second_ending:
                        facts.parts.append((bars, sign.startswith(":")))
                    bars, second_ending = 0, False
                if m.group("ending") and "2" in m.group("ending"):
                    second_ending = True
            elif m.group("alone"):
                second_ending = second_ending or m.group("alone") == "[2"
            elif m.group("chord"):
                in_chord, chord_first = True, True
            elif m.group("chord_end"):
                in_chord = False
            elif m.group("note"):
                if in_chord and not chord_first:
                    continue
                chord_first = False
                letter = m.group("letter")
                base = letter.upper()
                acc = m.group("acc")
                if acc:
                    bar_acc[letter] = {"^": 1, "^^": 2, "_": -1, "__": -2, "=": 0}[acc]
                shift = bar_acc.get(letter, accidentals[base])
                octave = (1 if letter.islower() else 0) + m.group("oct").count("'") \
                    - m.group("oct").count(",")
                facts.pitches.append(60 + 12 * octave + NATURAL[base] + shift)
                try:
                    bar_len += _length(m.group("len"))
                except (ValueError, ZeroDivisionError):
                    pass
            elif m.group("rest"):
                try:
                    bar_len += _length(m.group("rlen"))
                except (ValueError, ZeroDivisionError):
                    pass
    close_bar()
    if bars and not second_ending:
        facts.parts.append((bars, False))
    return facts


def in_form(bars: int, repeated: bool) -> bool:
    return bars in FORM_BARS or (repeated and 2 * bars in FORM_BARS)


# -- form: bars and phrases that come back -------------------------------------------------
# A bar as it is played: the text between bar lines and endings, without spaces, decorations,
# grace notes, chord symbols, slurs or line breaks; (3 tuplets, ties, chords and lengths stay.
_FORM_DROP = re.compile(r"[\s\\!~.HIJKLMNOPQRSTUVWhijklmnopqrstuvwy)]|\((?!\d)")
_BAR_LINE = re.compile(r"(?:\[\||:*\|+\]?:*|::+)(?:\[?\d+(?:[,-]\d+)*)?|\[\d+(?:[,-]\d+)*")


def bar_spans(text: str) -> list[tuple[str, int, int]]:
    """Each non-empty bar of a tune's body as written, repeats not played out: (the bar as
    played, its start and end offsets in text)."""
    _, body = _fields_and_body(text)
    music = [" "] * len(text)  # the header and everything _SKIP drops stay blank
    for offset, line in body:
        kept = _SKIP.sub(lambda m: " " * len(m.group()), line)
        music[offset:offset + len(kept)] = kept
    music = "".join(music)
    spans, start = [], 0
    for m in [*_BAR_LINE.finditer(music), None]:
        end = m.start() if m else len(music)
        piece = music[start:end]
        bar = _FORM_DROP.sub("", piece)
        if bar:  # the span keeps to the bar's own characters, not the blanks around it
            spans.append((bar, start + len(piece) - len(piece.lstrip()),
                          start + len(piece.rstrip())))
        start = m.end() if m else end
    return spans


def within_edits(a: str, b: str, limit: int) -> bool:
    """Whether a and b are at most `limit` character edits apart (Levenshtein)."""
    if abs(len(a) - len(b)) > limit:
        return False
    if a == b:
        return True
    # `limit` edits leave one of limit + 1 disjoint pieces of a whole, so b holds it: most
    # pairs of bars end here, at the speed of `in`.
    size = len(a) // (limit + 1)
    if size and not any(a[p * size:(p + 1) * size] in b for p in range(limit + 1)):
        return False
    # Only cells within `limit` of the diagonal can hold `limit` or less: a row keeps those
    # (cell d of row i is column i + d - limit), the rest count as `over`. A long line costs
    # its length times 2 * limit + 1 cells, not its square.
    over, width = limit + 1, 2 * limit + 1
    row = [j if 0 <= j <= len(b) else over for j in range(-limit, limit + 1)]
    for i, ca in enumerate(a, 1):
        new = [over] * width
        for d in range(max(0, limit - i), min(width, len(b) - i + limit + 1)):
            j = i + d - limit
            if j == 0:
                new[d] = min(i, over)
                continue
            up = row[d + 1] if d + 1 < width else over
            left = new[d - 1] if d else over
            new[d] = min(up + 1, left + 1, row[d] + (ca != b[j - 1]), over)
        if min(new) > limit:
            return False
        row = new
    return row[len(b) - len(a) + limit] <= limit


@dataclass
class Form:
    """How often a tune's bars and 2-bar phrases come back (counts over its bars as written)."""
    bars: int
    echoes: int  # bars equal to an earlier bar
    near: int  # bars within NEAR_EDITS edits of an earlier bar, the equal ones included
    phrases: int  # 2-bar windows, one starting at each bar but the last
    phrase_echoes: int  # windows equal to an earlier window that ends before this one starts
    longest_run: int  # the most equal bars in a row


def read_form(text: str) -> Form:
    bars = [b for b, _, _ in bar_spans(text)]
    echoes = sum(b in bars[:i] for i, b in enumerate(bars))
    near = sum(any(within_edits(b, e, NEAR_EDITS) for e in bars[:i]) for i, b in enumerate(bars))
    # An earlier window that overlaps this one shares a bar with it: AAA would be a phrase
    # echo of itself, so only windows that have ended count.
    pairs = list(zip(bars, bars[1:]))
    phrase_echoes = sum(p in pairs[:max(i - 1, 0)] for i, p in enumerate(pairs))
    run = longest = 0
    for i, b in enumerate(bars):
        run = run + 1 if i and b == bars[i - 1] else 1
        longest = max(longest, run)
    return Form(len(bars), echoes, near, len(pairs), phrase_echoes, longest)


@dataclass(frozen=True)
class Echo:
    """One bar of a tune as written and the earlier bar it comes back to."""
    start: int  # offsets of the bar's own characters in the text (no line marks at its ends)
    end: int
    bar: int  # 0-based, among the tune's bars as bar_spans counts them
    same_as: int  # the first bar equal to this one: `bar` itself when it is new
    near_of: int | None  # a new bar's first earlier bar within NEAR_EDITS edits, if any


# What ends a line without ending its bar: `!` (a line break in some tunebooks), `\`
# (continued), the line break. bar_spans keeps them inside a bar that crosses lines.
_LINE_MARKS = "!\\ \t\n"
# Bars up to this long are found by what deleting characters leaves of them; longer ones (a
# line of text with no bar lines) would leave too many strings and are compared one by one.
_INDEXED_BAR = 24


def _deletions(bar: str, limit: int) -> set[str]:
    """Every string that `limit` or fewer deleted characters leave of bar."""
    found = {bar}
    for _ in range(limit):
        found |= {s[:k] + s[k + 1:] for s in found for k in range(len(s))}
    return found


def echo_groups(text: str) -> list[Echo]:
    """Every bar of the tune (bar_spans), each with the first bar it equals or is near."""
    return list(_echo_groups(text))


@functools.lru_cache(maxsize=16)  # the page asks for a tune's form on every rerun
def _echo_groups(text: str) -> tuple[Echo, ...]:
    first: dict[str, int] = {}  # each distinct bar and where it first appears
    # Two bars within NEAR_EDITS edits share a string left by NEAR_EDITS or fewer deletions
    # from each (a substitution is a deletion from both), so only bars sharing one are compared:
    # a tune of 400 bars takes milliseconds, not a second.
    left_by: dict[str, list[int]] = {}  # a string deletions leave -> the bars that leave it
    long_bars: list[int] = []
    distinct: dict[int, str] = {}  # first appearances by index
    echoes = []
    for i, (bar, start, end) in enumerate(bar_spans(text)):
        while text[start] in _LINE_MARKS:  # the bar's own characters are not all marks
            start += 1
        while text[end - 1] in _LINE_MARKS:
            end -= 1
        same_as = first.setdefault(bar, i)
        near_of = None
        if same_as == i:
            short = len(bar) <= _INDEXED_BAR
            left = _deletions(bar, NEAR_EDITS) if short else set()
            candidates = set(long_bars) if short else set(distinct)
            candidates.update(j for s in left for j in left_by.get(s, ()))
            near_of = next((j for j in sorted(candidates)
                            if within_edits(bar, distinct[j], NEAR_EDITS)), None)
            distinct[i] = bar
            for s in left:
                left_by.setdefault(s, []).append(i)
            if not short:
                long_bars.append(i)
        echoes.append(Echo(start, end, i, same_as, near_of))
    return tuple(echoes)


def melody_bins(f: TuneFacts) -> tuple[np.ndarray, np.ndarray]:
    """A tune's notes as scale-degree bins (0-11 above its tonic) and its melodic steps as
    interval bins (0 .. 2 * INTERVAL_MAX, larger steps clipped); the tune needs a key."""
    p = np.asarray(f.pitches)
    steps = np.clip(np.diff(p), -INTERVAL_MAX, INTERVAL_MAX) + INTERVAL_MAX
    return (p - f.key.tonic) % 12, steps


def describe(text: str) -> str:
    """One tune in words, for a reader who cannot see its sheet music (the image's text
    alternative): title, meter, key, parts and bars, then the ABC itself, line by line."""
    fields, _ = _fields_and_body(text)
    f = read_tune(text)
    title = fields.get("T") or "an untitled tune"
    words = [f"Sheet music of {title}"]
    if fields.get("M"):
        words.append(f"in {fields['M']} time")
    if fields.get("K"):
        words.append(f"key of {fields['K']}")
    sentence = ", ".join(words) + "."
    if f.parts:
        played = [bars * (2 if repeated else 1) for bars, repeated in f.parts]
        n = len(f.parts)
        sentence += (f" {n} part{'s' if n != 1 else ''}, {sum(played)} bars as played"
                     f" ({', '.join(map(str, played))}).")
    return f"{sentence} The ABC: {' / '.join(line for line in text.splitlines() if line)}"
