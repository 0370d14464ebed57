"""A tune as the Generate and Edit views show it: its text with the lines abc2midi marks, the
check's verdict, the sheet music, the player and the downloads. Both views render with the
same tools, caps and timeouts (abcweb.sound.abctools), so an edited tune is judged as a written
one."""

from __future__ import annotations

import html
from concurrent.futures import Future
from functools import partial

import streamlit as st

from abcweb.music import tunes
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


def abc_html(text: str, tune: tunes.Tune | None, problems, prime: str = "") -> str:
    """The text with line numbers; lines abc2midi complains about are marked, with the
    message on hover and below the line; the seed text (`prime`, its start) is grey."""
    marks: dict[int, list] = {}
    for p in problems:
        if tune is None or p.line is None:
            continue
        line = tune.source_line(p.line)
        if line is not None:
            marks.setdefault(line, []).append(p)
    prime_lines = prime.count("\n") + 1 if prime else 0
    rows = []
    lines = text.split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()  # the blank line that ends a tune is not worth a row
    for n, line in enumerate(lines, 1):
        ps = marks.get(n, [])
        err = any(p.level == "error" for p in ps)
        bg = "#ffebee" if err else "#fff8e1" if ps else "transparent"
        sign = "✗" if err else "!" if ps else " "
        colour = "#c62828" if err else "#ef6c00"
        title = html.escape(" · ".join(f"{p.level}: {p.message}" for p in ps), quote=True)
        body = html.escape(line) or " "
        if n < prime_lines or (n == prime_lines and not prime.endswith("\n")):
            body = f'<span style="color:#9e9e9e" title="seed text">{body}</span>'
        kind = "error" if err else "warning" if ps else "ok"
        rows.append(
            f'<div data-line="{n}" data-status="{kind}" title="{title}" '
            f'style="background:{bg};white-space:pre-wrap;word-break:break-all">'
            f'<span style="color:#9e9e9e;user-select:none;display:inline-block;width:2.6em">'
            f'{n:>3}</span><span style="color:{colour};user-select:none;display:inline-block;'
            f'width:1.2em">{sign}</span>{body}</div>')
        for p in ps[:2]:
            rows.append(f'<div style="color:{colour};font-size:0.8em;padding-left:3.8em">'
                        f'{html.escape(p.level)}: {html.escape(p.message)}</div>')
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
        st.image(svg, width="stretch")
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
