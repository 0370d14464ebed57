"""A tune as MIDI (abc2midi) and as sheet music (abcm2ps, one SVG per tune, which shows
offline with st.image). Cached by content; renders are deterministic bytes."""

from __future__ import annotations

import re

from .abccheck import MAX_MIDI_BYTES, MESSAGE
from .tooling import ToolError, cache, find_tool, prepare, run_on_tune

MAX_SVG_BYTES = 16 << 20
# The speed a tune plays at when it names none. abc2midi's own default (a quarter note = 120)
# plays a reel or a jig at half the speed a session would; these are moderate session tempi
# by meter (reels and hornpipes, jigs, slip jigs and slides, polkas, waltzes and mazurkas).
# Shorter audio is also cheaper audio: a reel renders and encodes in 0.6 of the time.
PLAY_TEMPI = {"C": "1/2=96", "C|": "1/2=96", "4/4": "1/2=96", "2/2": "1/2=96",
              "6/8": "3/8=112", "9/8": "3/8=120", "12/8": "3/8=120", "2/4": "1/4=120",
              "3/4": "1/4=132", "3/2": "1/2=84"}
_METER = re.compile(r"^M:\s*(\S+)\s*$", re.M)
_HEADER_END = re.compile(r"^K:", re.M)


def _first_error(out: str) -> str:
    for raw in out.splitlines():
        m = MESSAGE.match(raw.strip())
        if m and m.group(1) == "Error":
            return m.group(4).strip()
    return "no tune found"


def session_tempo(header: str) -> str | None:
    """The session tempo (PLAY_TEMPI, as Q: writes it) for the meter of a tune's header."""
    meter = _METER.search(header)
    return PLAY_TEMPI.get(meter.group(1)) if meter else None


def with_play_tempo(text: str) -> str:
    """The tune with a Q: line for its meter (PLAY_TEMPI) when its header has none."""
    end = _HEADER_END.search(text)
    if end is None or re.search(r"^Q:", text[: end.start()], re.M):
        return text
    tempo = session_tempo(text[: end.start()])
    if tempo is None:
        return text
    return f"{text[: end.start()]}Q:{tempo}\n{text[end.start():]}"


def to_midi(abc: str, timeout: float = 10) -> bytes:
    """The tune as a Standard MIDI File (abc2midi; the first tune when the text holds several),
    at its own tempo or, when it names none, at a session tempo for its meter."""
    text, _ = prepare(abc)
    text = with_play_tempo(text)
    exe = find_tool("abc2midi")
    key = ("midi", text)
    hit = cache.get(key)
    if hit is not None:
        return hit
    rc, out, err, _, midi = run_on_tune(
        text,
        [exe, "tune.abc", "-o", "tune.mid"],
        timeout,
        output="tune.mid",
        max_files=MAX_MIDI_BYTES,
        what="MIDI file",
    )
    if rc < 0:
        raise ToolError(f"abc2midi crashed (signal {-rc}) on this ABC")
    if not midi.startswith(b"MThd"):
        raise ToolError(f"abc2midi wrote no MIDI: {_first_error(out + err)}")
    return cache.put(key, midi, len(midi) + len(text))


_SVG = re.compile(r"<svg\b.*?</svg>", re.S)
# abcm2ps writes the date and the tune's title into comments (dates break caching, and a
# title holding "-->" could end the comment): drop all comment lines.
_SVG_COMMENT = re.compile(r"^<!--.*\n", re.M)


def to_svg(abc: str, timeout: float = 10) -> str:
    """Sheet music for the (first) tune as one SVG document (abcm2ps)."""
    text, _ = prepare(abc)
    exe = find_tool("abcm2ps")
    key = ("svg", text)
    hit = cache.get(key)
    if hit is not None:
        return hit
    # -g: SVG, one file per tune; -O -: to stdout; -q: quiet.
    rc, out, err, flooded, _ = run_on_tune(
        text,
        [exe, "-g", "-q", "-O", "-", "tune.abc"],
        timeout,
        max_out=MAX_SVG_BYTES,
        max_files=MAX_SVG_BYTES,
    )
    if flooded:
        raise ToolError(f"abcm2ps output grew past {MAX_SVG_BYTES >> 20} MB")
    m = _SVG.search(out)
    if m is None:
        lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
        why = next((ln for ln in lines if "rror" in ln), lines[0] if lines else "no music found")
        raise ToolError(f"abcm2ps wrote no sheet music: {why}")
    svg = _SVG_COMMENT.sub("", m.group()) + "\n"
    return cache.put(key, svg, len(svg) + len(text))
