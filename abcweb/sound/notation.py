"""A tune as MIDI (abc2midi) and as sheet music (abcm2ps, one SVG per tune, which shows
offline with st.image). Cached by content; renders are deterministic bytes."""

from __future__ import annotations

import re

from abcweb.sound.abccheck import MAX_MIDI_BYTES, MESSAGE
from abcweb.sound.tooling import ToolError, cache, find_tool, prepare, run_on_tune

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
    # Not a tune's error: abc2midi failing to write (a full disk) says so in its own words.
    return next((ln.strip() for ln in out.splitlines() if "error" in ln.lower()), "no tune found")


def _varlen(data: bytes, i: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        byte = data[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, i
    raise ValueError("a variable-length number runs past 4 bytes")


def midi_seconds(midi: bytes) -> float:
    """How long a Standard MIDI File plays: to the end of its longest track, by its tempo map.
    A file cut short (a full disk, a killed tool) or malformed is a ToolError: every track must
    be whole and end with its End of Track event."""
    try:
        if midi[:4] != b"MThd" or len(midi) < 14:
            raise ValueError("no MIDI header")
        ntracks, division = int.from_bytes(midi[10:12]), int.from_bytes(midi[12:14])
        if ntracks == 0 or division == 0 or division & 0x8000:  # (abc2midi never writes SMPTE)
            raise ValueError("no tracks, or a time division other than ticks per beat")
        i, tempos, end = 8 + int.from_bytes(midi[4:8]), [], 0
        for n in range(ntracks):
            size = int.from_bytes(midi[i + 4 : i + 8])
            track = midi[i + 8 : i + 8 + size]
            if midi[i : i + 4] != b"MTrk" or len(track) != size:
                raise ValueError(f"track {n + 1} of {ntracks} is missing or cut short")
            i += 8 + size
            j = tick = 0
            status = meta = None
            while j < size:
                delta, j = _varlen(track, j)
                tick += delta
                meta = None
                if track[j] == 0xFF:  # meta event: type, length, data
                    meta = track[j + 1]
                    length, j = _varlen(track, j + 2)
                    if meta == 0x51:
                        tempos.append((tick, int.from_bytes(track[j : j + 3])))
                    j += length
                elif track[j] in (0xF0, 0xF7):  # system exclusive
                    length, j = _varlen(track, j + 1)
                    j += length
                else:  # a channel message, perhaps in running status
                    if track[j] & 0x80:
                        status, j = track[j], j + 1
                    if status is None:
                        raise ValueError("data before any status byte")
                    j += 1 if status >> 4 in (0xC, 0xD) else 2
            if j != size or meta != 0x2F:  # the last event must be End of Track
                raise ValueError(f"track {n + 1} of {ntracks} does not end whole")
            end = max(end, tick)
    except (IndexError, ValueError) as e:
        raise ToolError(f"incomplete MIDI file ({len(midi)} bytes): {e}") from None
    seconds, at, tempo = 0.0, 0, 500_000  # the standard's default: a quarter note = 120
    for tick, new in sorted(tempos, key=lambda t: t[0]):
        if tick >= end:
            break
        seconds += (tick - at) * tempo / 1e6 / division
        at, tempo = tick, new
    return seconds + (end - at) * tempo / 1e6 / division


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
    # abc2midi exits 0 for errors in a tune; anything else means it could not finish the file
    # (a full disk), which may still start like a MIDI file.
    if rc != 0:
        raise ToolError(f"abc2midi could not finish the MIDI file: {_first_error(out + err)}")
    midi_seconds(midi)  # a file cut short is never cached or played
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
    if rc < 0:  # killed: whatever it printed is not known to be whole
        raise ToolError(f"abcm2ps crashed (signal {-rc}) on this ABC")
    # An SVG cut short has no closing tag, so the pattern finds nothing in it.
    m = _SVG.search(out)
    if m is None:
        lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
        why = next((ln for ln in lines if "rror" in ln), lines[0] if lines else "no music found")
        raise ToolError(f"abcm2ps wrote no sheet music: {why}")
    svg = _SVG_COMMENT.sub("", m.group()) + "\n"
    return cache.put(key, svg, len(svg) + len(text))
