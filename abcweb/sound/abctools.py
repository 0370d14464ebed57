"""ABC tune -> check, MIDI, audio and SVG sheet music, with the real tools: one place to
import them from, and the `render` command.

- check:   abcweb.sound.abccheck (`abc2midi FILE -c`; valid = no Error line).
- MIDI, SVG: abcweb.sound.notation (abc2midi, abcm2ps).
- audio:   abcweb.sound.audio (fluidsynth, then LAME for MP3, libsndfile for FLAC and Ogg Vorbis).
- running the tools safely, and the caches: abcweb.sound.tooling.

All functions are safe to call from several threads.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
from pathlib import Path

from abcweb.music import tunes
from abcweb.sound.abccheck import CheckResult, Problem, check
from abcweb.sound.audio import (
    AUDIO_FORMATS,
    MIME,
    SAMPLE_RATE,
    WEB_FORMAT,
    WEB_MIME,
    find_soundfont,
    library_versions,
    pcm_cache,
    to_audio,
)
from abcweb.sound.notation import to_midi, to_svg
from abcweb.sound.tooling import (
    MAX_ABC_CHARS,
    SOUNDFONT_ENV,
    ToolError,
    ToolMissing,
    ToolTimeout,
    cache,
    run_tool,
    workdir,
)

__all__ = ["AUDIO_FORMATS", "MAX_ABC_CHARS", "MIME", "SAMPLE_RATE", "SOUNDFONT_ENV",
           "WEB_FORMAT", "WEB_MIME", "CheckResult", "Problem", "ToolError", "ToolMissing",
           "ToolTimeout", "check", "clear_cache", "find_soundfont", "to_audio", "to_midi",
           "to_svg", "tool_status"]


def clear_cache() -> None:
    for c in (cache, pcm_cache):
        with c.lock:
            c.items.clear()
            c.used = 0


_VERSION_ARGS = {"abc2midi": ["-ver"], "abcm2ps": ["-V"], "fluidsynth": ["--version"]}
_VERSION = re.compile(r"\d+(?:\.\d+)+")


@functools.lru_cache(maxsize=16)
def _version(exe: str, flag: tuple[str, ...]) -> str:
    try:
        with workdir() as tmp:
            _, out, err, _ = run_tool([exe, *flag], tmp, timeout=5, max_out=4096)
    except ToolError:
        return "?"
    m = _VERSION.search(out + err)
    return m.group() if m else "?"


def tool_status() -> dict[str, str | None]:
    """Each tool's version ("?" when it runs but says none), None when it is missing. No
    paths: a page shows this to its visitors, and where the server keeps things is not
    theirs to know. The soundfont is named by its file name."""
    status: dict[str, str | None] = {}
    for name, flag in _VERSION_ARGS.items():
        exe = shutil.which(name)
        status[name] = _version(exe, tuple(flag)) if exe else None
    try:
        status["soundfont"] = find_soundfont().name
    except ToolMissing:
        status["soundfont"] = None
    status.update(library_versions())
    status["web_format"] = WEB_FORMAT
    return status


# -----------------------------------------------------------------------------
# CLI: python -m abcweb render TUNE.abc --out FILE

MAX_INPUT_BYTES = 20 << 20
SUFFIXES = {
    ".mid": "midi",
    ".midi": "midi",
    ".svg": "svg",
    ".wav": "wav",
    ".flac": "flac",
    ".oga": "oga",
    ".ogg": "oga",
    ".mp3": "mp3",
}


def add_render_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "render",
        help="render an ABC tune to MIDI, audio or SVG sheet music",
        description="Render one tune of an ABC file. The output's suffix picks the format: "
        + ", ".join(SUFFIXES)
        + ".",
    )
    p.add_argument("tune", help="ABC file, or - to read standard input")
    p.add_argument("--out", "-o", required=True, help="output file (its suffix picks the format)")
    p.add_argument(
        "--index",
        type=int,
        default=None,
        help="which tune of the file, from 1 (default: the first complete tune)",
    )
    p.add_argument(
        "--soundfont",
        default=None,
        help=f"General MIDI soundfont (default: ${SOUNDFONT_ENV}, then FluidR3_GM or TimGM6mb)",
    )
    p.add_argument(
        "--timeout", type=float, default=20, help="seconds each tool may run (default 20)"
    )
    p.set_defaults(func=run_render)


def _render_main(args) -> None:
    out = Path(args.out)
    kind = SUFFIXES.get(out.suffix.lower())
    if kind is None:
        raise ToolError(
            f"cannot tell the format from {out.name!r}: use one of {' '.join(SUFFIXES)}"
        )
    if args.tune == "-":
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    else:
        try:
            with open(args.tune, "rb") as f:
                data = f.read(MAX_INPUT_BYTES + 1)
        except OSError as e:
            raise ToolError(f"cannot read {args.tune}: {e.strerror}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise ToolError(f"input larger than {MAX_INPUT_BYTES >> 20} MB")
    found = tunes.split_tunes(data.decode("utf-8", "replace"))
    source = "standard input" if args.tune == "-" else args.tune
    if args.index is not None:
        if not 1 <= args.index <= len(found):
            raise ToolError(f"{source} holds {len(found)} tunes: no tune {args.index}")
        tune = found[args.index - 1]
    else:
        tune = next((t for t in found if t.complete), found[0] if found else None)
    if tune is None:
        raise ToolError(f"no ABC tune found in {source}")
    if kind == "midi":
        result = to_midi(tune.text, timeout=args.timeout)
    elif kind == "svg":
        result = to_svg(tune.text, timeout=args.timeout).encode()
    else:
        result = to_audio(tune.text, kind, soundfont=args.soundfont, timeout=args.timeout)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:  # never leave a half-written file under the asked-for name
        tmp.write_bytes(result)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ToolError(f"cannot write {args.out}: {e.strerror}") from None


def run_render(args) -> int:
    """Body of `render`: 0 on success; else one line on stderr and exit code 2 (as every
    other abcweb command)."""
    if not (0 < args.timeout <= 600):
        print("abcweb render: error: --timeout must be from 0 to 600 seconds", file=sys.stderr)
        return 2
    try:
        _render_main(args)
    except ToolError as e:
        print(f"abcweb render: error: {e}", file=sys.stderr)
        return 2
    return 0
