"""A tune as the Generate and Edit views show it: its text with the lines abc2midi marks and
the bars that come back coloured, the check's verdict, the sheet music, the player and the
downloads. Both views render with the same tools, caps and timeouts (abcweb.sound.abctools), so
an edited tune is judged as a written one."""

from __future__ import annotations

import html
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial

import streamlit as st

from abcweb.music import facts, tunes
from abcweb.music.facts import NEAR_EDITS, echo_groups
from abcweb.sound import abctools, arrange
from abcweb.web import params
from abcweb.web.messages import as_text, public_message
from views.shared import PLAYER_FORMAT, PLAYER_MIME, render_pool


def start_renders(text: str, play: str) -> dict[str, Future]:
    """abc2midi checks the tune as written (its lines are the ones marked); the sheet music,
    MIDI and audio are of the tune as it is to be played (arrange)."""
    pool = render_pool()
    return {"check": pool.submit(abctools.check, text),
            "svg": pool.submit(abctools.to_svg, play),
            "midi": pool.submit(abctools.to_midi, play),
            "audio": pool.submit(abctools.to_audio, play, PLAYER_FORMAT)}


def playing_version(text: str, settings: params.Settings) -> str:
    """The tune at the chosen tempo, instrument and key; as written when it cannot be."""
    try:
        return arrange.arrange(text, settings.tempo, settings.instrument, settings.transpose)
    except ValueError as e:
        st.warning(f"Played as written: {as_text(public_message(e))}")
        return text


def result(future: Future):
    """(value, None) or (None, message) for a render."""
    try:
        return future.result(timeout=60), None
    except abctools.ToolError as e:
        return None, public_message(e)
    except Exception as e:  # noqa: BLE001 - a render must never break the page
        return None, f"{type(e).__name__}: {public_message(e)}"


# Paul Tol's "light" scheme without its grey: its colours stay apart for colour-blind eyes too,
# and it is made for dark text on it (5:1 or more against the theme's #31333F text).
ECHO_COLOURS = ("#77AADD", "#EE8866", "#EEDD88", "#FFAABB", "#99DDFF", "#44BB99", "#BBCC33",
                "#AAAA00")
# Muted, yet 4.5:1 or more on white and on the error and warning rows' tints (WCAG AA, which
# Lighthouse checks): #9e9e9e and #ef6c00 were 2.3 to 3.1:1.
SEED_GREY = "#666666"
WARNING_ORANGE = "#a14a00"
# The Generate page writes at most 10,000 characters with its seed; the editor takes 100,000,
# a tunebook's worth, whose bars are no one tune's form (and would cost a second to compare).
ECHO_MAX_CHARS = 20_000


@dataclass
class EchoMark:
    """A bar the listing marks: the first of bars that come back, one that comes back to it,
    or a bar close to an earlier one."""
    start: int  # offsets in the text
    end: int
    colour: str  # its group's colour; "" for a bar that only is near an earlier one
    repeat: bool  # equal to an earlier bar
    near: bool  # a new bar within NEAR_EDITS edits of an earlier one
    title: str


def echo_marks(text: str) -> list[EchoMark]:
    """The bars to mark in the listing, in text order (bars do not overlap)."""
    echoes = _echoes(text)
    later: dict[int, list[int]] = {}  # a first bar and the bars equal to it
    for e in echoes:
        if e.same_as != e.bar:
            later.setdefault(e.same_as, []).append(e.bar)
    colours = {first: ECHO_COLOURS[i % len(ECHO_COLOURS)] for i, first in enumerate(later)}
    marks = []
    for e in echoes:
        said = []
        if e.same_as != e.bar:
            said.append(f"same as bar {e.same_as + 1}")
        if e.bar in later:
            again = ", ".join(str(b + 1) for b in later[e.bar])
            said.append(f"comes back as bar{'s' * (len(later[e.bar]) > 1)} {again}")
        if e.near_of is not None:
            said.append(f"nearly bar {e.near_of + 1} ({NEAR_EDITS} characters or fewer "
                        "differ)")
        if said:
            marks.append(EchoMark(e.start, e.end, colours.get(e.same_as, ""),
                                  e.same_as != e.bar, e.near_of is not None,
                                  f"bar {e.bar + 1}: " + "; ".join(said)))
    return marks


def _echoes(text: str) -> list:
    return echo_groups(text) if len(text) <= ECHO_MAX_CHARS else []


def _mark_style(mark: EchoMark, seed: bool) -> str:
    # A repeat fills its bar with the colour; the bar it repeats is underlined with a thick
    # band of it. Seed text is light grey, too pale on a colour: there every bar gets the band.
    # A bar near an earlier one, not equal, has a dotted underline, colourless: it is no repeat.
    styles = []
    if mark.repeat and not seed:
        styles.append(f"background:{mark.colour};border-radius:2px")
    elif mark.colour:
        styles.append(f"box-shadow:inset 0 -0.35em 0 {mark.colour}")
    if mark.near:
        styles.append("text-decoration:underline dotted #757575;text-underline-offset:3px")
    return ";".join(styles)


def _line_html(line: str, at: int, marks: list[EchoMark], seed: bool) -> str:
    """A line of the text, escaped, its marked bars (offsets in the text; the line starts at
    `at`) in spans. Visitor text is data: only escaped text goes between the tags."""
    pieces, done = [], 0
    for mark in marks:
        a, b = max(mark.start - at, done), min(mark.end - at, len(line))
        if a >= b:
            continue
        title = html.escape(mark.title, quote=True)
        pieces += [html.escape(line[done:a]),
                   f'<span style="{_mark_style(mark, seed)}" title="{title}">'
                   f'{html.escape(line[a:b])}</span>']
        done = b
    pieces.append(html.escape(line[done:]))
    return "".join(pieces)


def form_caption(text: str) -> str:
    """One plain sentence on the listing's colours: how many bars repeat an earlier one ("" when
    the listing colours none: no bars, or too long a text)."""
    echoes = _echoes(text)
    if not echoes:
        return ""
    bars = len(echoes)
    repeats = sum(e.same_as != e.bar for e in echoes)
    near = sum(e.near_of is not None for e in echoes)
    of = f"of {bars} bar{'s' * (bars != 1)}"
    if repeats:
        sentence = (f"Bars that come back share a colour: {repeats} {of} repeat"
                    f"{'s' * (repeats == 1)} an earlier bar (the bar they repeat is "
                    "underlined in its colour).")
    else:
        sentence = f"None {of} repeats an earlier bar; a repeat would share its colour."
    if near:
        sentence += (f" {near} more {'are' if near != 1 else 'is'} nearly an earlier bar "
                     f"({NEAR_EDITS} characters or fewer differ): dotted underline.")
    return sentence + " Hover over a bar to see which."


def abc_html(text: str, tune: tunes.Tune | None, problems, prime: str = "",
             echoes: bool = True) -> str:
    """The text with line numbers; lines abc2midi complains about are marked, with the
    message on hover and below the line; the seed text (`prime`, its start) is grey; bars
    that come back share a colour (`echoes`), each with a title that says which bar it is."""
    marks: dict[int, list] = {}
    for p in problems:
        if tune is None or p.line is None:
            continue
        line = tune.source_line(p.line)
        if line is not None:
            marks.setdefault(line, []).append(p)
    bar_marks = echo_marks(text) if echoes else []
    prime_lines = prime.count("\n") + 1 if prime else 0
    rows = []
    lines = text.split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()  # the blank line that ends a tune is not worth a row
    at, first_mark = 0, 0  # the line's offset in text; the first mark that may reach it
    for n, line in enumerate(lines, 1):
        ps = marks.get(n, [])
        err = any(p.level == "error" for p in ps)
        bg = "#ffebee" if err else "#fff8e1" if ps else "transparent"
        sign = "✗" if err else "!" if ps else " "
        colour = "#c62828" if err else WARNING_ORANGE
        title = html.escape(" · ".join(f"{p.level}: {p.message}" for p in ps), quote=True)
        while first_mark < len(bar_marks) and bar_marks[first_mark].end <= at:
            first_mark += 1
        here = [m for m in bar_marks[first_mark:first_mark + len(line) + 1]
                if m.start < at + len(line)]  # a bar has one character at least
        seed = n < prime_lines or (n == prime_lines and not prime.endswith("\n"))
        body = _line_html(line, at, here, seed) if here else html.escape(line)
        body = body or " "
        if seed:
            body = f'<span style="color:{SEED_GREY}" title="seed text">{body}</span>'
        elif here:
            body = f"<span>{body}</span>"  # one node: the browser tests read a row's last child
        kind = "error" if err else "warning" if ps else "ok"
        rows.append(
            f'<div data-line="{n}" data-status="{kind}" title="{title}" '
            f'style="background:{bg};white-space:pre-wrap;word-break:break-all">'
            f'<span style="color:{SEED_GREY};user-select:none;display:inline-block;width:2.6em">'
            f'{n:>3}</span><span style="color:{colour};user-select:none;display:inline-block;'
            f'width:1.2em">{sign}</span>{body}</div>')
        for p in ps[:2]:
            rows.append(f'<div style="color:{colour};font-size:0.8em;padding-left:3.8em">'
                        f'{html.escape(p.level)}: {html.escape(p.message)}</div>')
        at += len(line) + 1
    return ('<div data-testid="abc-text" style="font-family:ui-monospace,monospace;'
            'font-size:0.85rem;line-height:1.45;max-height:460px;overflow:auto;'
            'border:1px solid #e0e0e0;border-radius:6px;padding:6px 4px">'
            + "".join(rows) + "</div>")


def check_verdict(check, check_error: str | None) -> None:
    """What abc2midi made of the tune, in one line."""
    if check_error:
        st.warning(f"Cannot check this tune: {as_text(check_error)}")
    elif check.valid:
        off = f", {check.bad_bars} off the meter" if check.bad_bars else ""
        st.success(f"✓ Valid ABC: abc2midi reads it without errors ({check.bars} bars{off}).")
    else:
        n = len(check.errors)
        st.error(f"✗ Invalid ABC: abc2midi found {n} error{'s' if n != 1 else ''} (marked "
                 "in red in the text).")


def tune_media(play: str | None, renders: dict, settings: params.Settings,
               stem: str) -> None:
    """Sheet music, player and downloads of the tune as it is to be played."""
    if play is None:
        return
    svg, svg_error = result(renders["svg"])
    if svg is not None:
        # A screen reader cannot read an SVG of notes: the text alternative says the tune in
        # words, and the ABC itself (facts.describe).
        st.image(svg, width="stretch", alt=facts.describe(play))
    else:
        st.warning(f"No sheet music: {as_text(svg_error)}")
    audio, audio_error = result(renders["audio"])
    if audio is not None:
        st.audio(audio, format=PLAYER_MIME)
        tempo = arrange.tempo_of(play)
        st.caption(f"Played on {as_text(settings.instrument)}"
                   + (f" at {as_text(tempo.replace('=', ' = '))} per minute" if tempo else "")
                   + (f", {settings.transpose:+d} semitones" if settings.transpose else ""))
    else:
        st.warning(f"No audio: {as_text(audio_error)}")
    midi, midi_error = result(renders["midi"])
    # What reached the page, for tests (AppTest cannot read audio) and for debugging.
    st.session_state._rendered = {
        "tune": play, "svg": len(svg or ""), "midi": len(midi or b""),
        "audio": len(audio or b""), "audio_head": (audio or b"")[:4],
        "errors": [e for e in (svg_error, audio_error, midi_error) if e]}
    a, b, c, d = st.columns(4)
    a.download_button("ABC", play.encode(), f"{stem}.abc", "text/vnd.abc",
                      on_click="ignore", width="stretch", icon=":material/download:")
    if midi is not None:
        b.download_button("MIDI", midi, f"{stem}.mid", "audio/midi", on_click="ignore",
                          width="stretch", icon=":material/download:")
    else:
        b.caption(f"No MIDI: {as_text(midi_error)}")
    if audio is not None:
        c.download_button(PLAYER_FORMAT.upper(), audio, f"{stem}.{PLAYER_FORMAT}", PLAYER_MIME,
                          on_click="ignore", width="stretch", icon=":material/download:")
        d.download_button("WAV", partial(download_wav, play), f"{stem}.wav", "audio/wav",
                          on_click="ignore", width="stretch", icon=":material/download:")


def download_wav(text: str) -> bytes:
    """WAV, encoded on click from the cached render (milliseconds)."""
    return abctools.to_audio(text, "wav")
