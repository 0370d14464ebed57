"""A tune as a musician wants to play it: its tempo, an instrument, a key.

    arrange(tune_text, tempo=0, instrument="piano", transpose=0) -> the tune's ABC to render

Rendering the arranged text gives the audio, the MIDI, the sheet music and the downloads; the
tune itself (what the model wrote, and the share link's seed) never changes, so changing these
re-renders without sampling again. The defaults leave a tune as it was rendered before they
existed: links made then still play the same.
"""

from __future__ import annotations

import re

from abcweb.sound.notation import session_tempo
from abcweb.sound.transpose import transpose as transpose_tune

# General MIDI programs (0-based, as abc2midi's %%MIDI program takes them).
INSTRUMENTS = {"piano": 0, "fiddle": 40, "flute": 73, "tin whistle": 78, "accordion": 21,
               "harp": 46}
DEFAULT_INSTRUMENT = "piano"  # abc2midi's own default: what every tune played before
TEMPO_MIN, TEMPO_MAX = 24, 204  # beats per minute, folkrnn.org's range; 0 is "its own"
TRANSPOSE_MAX = 12  # semitones either way

_HEADER_END = re.compile(r"^K:.*$", re.M)
_TEMPO_LINE = re.compile(r"^Q:.*\n", re.M)


def _header(text: str) -> str:
    end = _HEADER_END.search(text)
    return text[: end.start()] if end else text


def beat_of(text: str) -> str:
    """The note value a tune's tempo counts in: what a session counts for its meter
    (a dotted quarter in a jig, a half note in a reel), a quarter otherwise."""
    tempo = session_tempo(_header(text))
    return tempo.split("=")[0] if tempo else "1/4"


def tempo_of(text: str) -> str | None:
    """The tempo a tune plays at, as Q: writes it ('3/8=112'): its own Q:, else its type's
    session tempo (what the audio uses: notation.with_play_tempo), else None."""
    own = re.search(r"^Q:\s*(\S+)", _header(text), re.M)
    return own.group(1) if own else session_tempo(_header(text))


def check(tempo: int, instrument: str, transpose: int) -> None:
    if tempo and not TEMPO_MIN <= tempo <= TEMPO_MAX:
        raise ValueError(f"tempo must be from {TEMPO_MIN} to {TEMPO_MAX} beats per minute "
                         f"(or 0 for the tune's own), not {tempo}")
    if instrument not in INSTRUMENTS:
        raise ValueError(f"unknown instrument {instrument!r}; choose from "
                         f"{', '.join(INSTRUMENTS)}")
    if not -TRANSPOSE_MAX <= transpose <= TRANSPOSE_MAX:
        raise ValueError(f"transpose by at most {TRANSPOSE_MAX} semitones either way")


def arrange(text: str, tempo: int = 0, instrument: str = DEFAULT_INSTRUMENT,
            transpose: int = 0) -> str:
    """The tune's ABC with these applied (ValueError for a setting out of range, or a tune
    abc2abc cannot transpose). The defaults return the text unchanged."""
    check(tempo, instrument, transpose)
    if transpose:
        text = transpose_tune(text, transpose)
    end = _HEADER_END.search(text)
    if end is None:  # no header to write into: the tools will say what is wrong
        return text
    if tempo:
        head = _TEMPO_LINE.sub("", text[: end.start()])
        text = f"{head}Q:{beat_of(text)}={tempo}\n{text[end.start():]}"
        end = _HEADER_END.search(text)
    if instrument != DEFAULT_INSTRUMENT:
        text = (f"{text[: end.end()]}\n%%MIDI program {INSTRUMENTS[instrument]}"
                f"{text[end.end():]}")
    return text
