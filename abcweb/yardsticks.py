"""Musical yardsticks for a set of tunes, the same for generated tunes and real ones.

Per tune, read from its ABC text with a small parser (melody notes only: chord symbols,
decorations, grace notes and fields are skipped; within a chord the first note counts):
- valid: `abc2midi -c` finds no error (abcweb.abccheck);
- bars that fit the meter: abc2midi's own rule (abccheck's bad_bars);
- ends on the tonic of its own K:, mode-aware (K:A Dorian ends on A; its signature is G's);
- form: the share of its parts (split at repeats and double bars; a second ending replaces the
  first) that have 8 or 16 bars, not counting a pickup or a closing part-bar; a repeated part
  counts as played (4 written bars with a repeat are 8 bars: reels are often written so);
- out-of-key notes: the share of notes outside the K:'s seven pitch classes;
- scale-degree and interval histograms (pitch classes above the tonic; melodic steps in
  semitones, clipped to an octave), compared between sets by Jensen-Shannon distance, as
  the symbolic-music literature does (Yang and Lerch 2020), beside the same distance between
  random halves of the real tunes.
"""

from __future__ import annotations

import math
import random
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


def read_tune(text: str) -> TuneFacts:
    """Key, melody pitches and bars per part of one tune's ABC text."""
    fields = {}
    body = []
    for line in text.split("\n"):
        if re.match(r"^[A-Za-z+]:", line):
            if not body or line[0] in "KLM":
                fields.setdefault(line[0], line[2:].strip())
            continue
        if "K" in fields:
            body.append(line)
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

    for line in body:
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


# -- over a set of tunes -------------------------------------------------------------------
def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of a share k/n."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, mid - half), min(1.0, mid + half))


def melody_bins(f: TuneFacts) -> tuple[np.ndarray, np.ndarray]:
    """A tune's notes as scale-degree bins (0-11 above its tonic) and its melodic steps as
    interval bins (0 .. 2 * INTERVAL_MAX, larger steps clipped); the tune needs a key."""
    p = np.asarray(f.pitches)
    steps = np.clip(np.diff(p), -INTERVAL_MAX, INTERVAL_MAX) + INTERVAL_MAX
    return (p - f.key.tonic) % 12, steps


def histograms(facts: list[TuneFacts]) -> tuple[np.ndarray, np.ndarray]:
    degrees = np.zeros(12)
    intervals = np.zeros(2 * INTERVAL_MAX + 1)
    for f in facts:
        if f.key is None or not f.pitches:
            continue
        degree_bins, interval_bins = melody_bins(f)
        np.add.at(degrees, degree_bins, 1)
        np.add.at(intervals, interval_bins, 1)
    return degrees, intervals


def js_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2: 0 same, 1 disjoint) between two histograms."""
    if a.sum() == 0 or b.sum() == 0:
        return 1.0
    p, q = a / a.sum(), b / b.sum()
    m = (p + q) / 2

    def kl(x, y):
        nz = x > 0
        return float((x[nz] * np.log2(x[nz] / y[nz])).sum())

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


def measure(texts: list[str | None], check: bool = True) -> dict:
    """The yardsticks of a set of tunes (None: a sample that never completed a tune)."""
    from . import abccheck

    n = len(texts)
    done = [t for t in texts if t]
    facts = [read_tune(t) for t in done]
    valid = bars = bad = 0
    if check:
        for t in done:
            r = abccheck.check(t)
            valid += r.valid
            bars += r.bars
            bad += r.bad_bars
    tonic = [f.ends_on_tonic for f in facts]
    parts = [p for f in facts for p in f.parts]
    notes = sum(len(f.pitches) for f in facts)
    out = sum(f.out_of_key for f in facts)
    formed = sum(in_form(*p) for p in parts)
    row = {
        "tunes": n, "completed": len(done),
        "ends_on_tonic": _share(sum(bool(x) for x in tonic), n),
        "parts_8_or_16_bars": _share(formed, len(parts)),
        "out_of_key_notes": _share(out, notes),
    }
    if check:
        row["valid"] = _share(valid, n)
        row["bars_fit_meter"] = _share(bars - bad, bars)
    row["_facts"] = facts
    return row


def _share(k: int, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"count": k, "of": n, "share": k / n if n else 0.0, "ci95": [lo, hi]}


def compare(generated: dict, real: dict, splits: int = 20, seed: int = 0) -> dict:
    """JS distances of the histograms: generated against real, and random halves of the real
    tunes against each other (the spread a model as good as the real tunes stays within)."""
    g_deg, g_int = histograms(generated["_facts"])
    r_deg, r_int = histograms(real["_facts"])
    rng = random.Random(seed)
    halves_deg, halves_int = [], []
    facts = list(real["_facts"])
    for _ in range(splits):
        rng.shuffle(facts)
        a, b = facts[: len(facts) // 2], facts[len(facts) // 2:]
        (ad, ai), (bd, bi) = histograms(a), histograms(b)
        halves_deg.append(js_distance(ad, bd))
        halves_int.append(js_distance(ai, bi))
    return {"scale_degrees_js": js_distance(g_deg, r_deg),
            "intervals_js": js_distance(g_int, r_int),
            "real_halves_scale_degrees_js": {"mean": float(np.mean(halves_deg)),
                                             "max": float(np.max(halves_deg))},
            "real_halves_intervals_js": {"mean": float(np.mean(halves_int)),
                                         "max": float(np.max(halves_int))}}


def public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}
