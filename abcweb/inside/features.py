"""Named features of ABC text, one value per character, for finding the LSTM cells that
track them (Karpathy, Johnson and Fei-Fei 2015 found cells for line length, quotes and
brackets in character LSTMs; ABC has bars, headers, chords and slurs).

Each feature is an array as long as the text: the value while the model reads that character.
NaN where a feature means nothing (bar position in a header line). Durations come from the
tune's L: and M: (yardsticks' note reader: broken rhythms and tuplets count at face value).
"""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np

from abcweb.music.facts import _SKIP, _TOKEN, _length, _meter_units

FEATURES = {
    "in_header": "inside the header (X: to K:)",
    "bar_position": "share of the bar's duration elapsed",
    "beat": "the beat of the bar (0, 1, 2, ...)",
    "since_bar": "characters since the last bar line",
    "line_position": "characters since the start of the line",
    "in_chord": "inside a chord [...]",
    "in_slur": "inside a slur (...)",
    "in_grace": "inside a grace group {...}",
}
_FIELD = re.compile(r"^[A-Za-z+]:")


def _beat_units(meter: str, unit: str) -> Fraction | None:
    """A beat in units of L: a dotted quarter in 6/8, 9/8, 12/8; else the meter's note."""
    meter = {"C": "4/4", "C|": "2/2"}.get(meter.strip(), meter.strip())
    m, u = re.fullmatch(r"(\d+)/(\d+)", meter), re.fullmatch(r"(\d+)/(\d+)", unit.strip())
    if not m or not u:
        return None
    top, bottom = int(m.group(1)), int(m.group(2))
    beat = Fraction(3, bottom) if bottom == 8 and top % 3 == 0 and top > 3 else Fraction(1, bottom)
    return beat / Fraction(int(u.group(1)), int(u.group(2)))


def _durations(line: str, elapsed: Fraction) -> tuple[list[Fraction], Fraction]:
    """Per character of a body line, the bar's elapsed duration (in L units) while it is read;
    and the elapsed duration at the line's end (a bar can go on to the next line)."""
    clean = _SKIP.sub(lambda m: " " * len(m.group(0)), line)
    out: list[Fraction] = []
    in_chord = chord_first = False
    for m in _TOKEN.finditer(clean):
        out += [elapsed] * (m.end() - len(out))
        if m.group("bar"):
            elapsed = Fraction(0)
        elif m.group("chord"):
            in_chord, chord_first = True, True
        elif m.group("chord_end"):
            in_chord = False
        elif m.group("note") or m.group("rest"):
            if in_chord and not chord_first:
                continue
            chord_first = False
            try:
                elapsed += _length(m.group("len") if m.group("note") else m.group("rlen"))
            except (ValueError, ZeroDivisionError):
                pass
    out += [elapsed] * (len(line) - len(out))
    return out, elapsed


def features(text: str) -> dict[str, np.ndarray]:
    n = len(text)
    f = {name: np.full(n, np.nan, np.float32) for name in FEATURES}
    header, meter, unit = True, "4/4", "1/8"
    elapsed, since_bar = Fraction(0), np.nan
    chord = grace = False
    slur = 0
    start = 0
    for line in text.split("\n"):
        end = start + len(line) + 1  # with its newline (the last line may have none)
        idx = slice(start, min(end, n))
        count = min(end, n) - start
        f["line_position"][idx] = np.arange(count)
        is_field = bool(_FIELD.match(line))
        if line.startswith("X:") or not line.strip():
            header, elapsed, since_bar = True, Fraction(0), np.nan
        if is_field and line[0] in "ML":
            if line[0] == "M":
                meter = line[2:].strip()
            else:
                unit = line[2:].strip()
        if header or is_field:
            f["in_header"][idx] = 1.0 if header else 0.0
            for name in ("in_chord", "in_slur", "in_grace"):
                f[name][idx] = 0.0
            if line.startswith("K:"):
                header = False
            start = end
            continue
        f["in_header"][idx] = 0.0
        full = _meter_units(meter, unit)
        beat = _beat_units(meter, unit)
        positions, elapsed_after = _durations(line + "\n", elapsed)
        for j, ch in enumerate((line + "\n")[:count]):
            k = start + j
            if full:
                f["bar_position"][k] = min(float(positions[j] / full), 1.5)
            if beat:
                f["beat"][k] = float(positions[j] // beat)
            if ch == "|":
                since_bar = 0
            elif since_bar == since_bar:  # not NaN: a bar line has been seen
                since_bar += 1
            f["since_bar"][k] = since_bar
            nxt = line[j + 1] if j + 1 < len(line) else ""
            if ch == "[" and (nxt.isalpha() and nxt.upper() in "ABCDEFG" or nxt in "^_="):
                chord = True
            elif ch == "]":
                chord = False
            elif ch == "{":
                grace = True
            elif ch == "}":
                grace = False
            elif ch == "(" and not nxt.isdigit():
                slur += 1
            elif ch == ")":
                slur = max(0, slur - 1)
            f["in_chord"][k], f["in_grace"][k], f["in_slur"][k] = chord, grace, slur > 0
        elapsed = elapsed_after
        chord = grace = False  # a line never leaves one open in valid ABC
        start = end
    return f
