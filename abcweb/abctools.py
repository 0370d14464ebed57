"""ABC tune -> check, MIDI, audio and SVG sheet music, with the real tools.

- check:   `abc2midi FILE -c` (the abcMIDI manual's way to check a tune); valid = no Error line.
- MIDI:    abc2midi.
- audio:   fluidsynth renders the MIDI with a General MIDI soundfont to float samples; we
           normalise the peak to -1 dBFS (fluidsynth's default gain peaks near -25 dBFS) and
           encode: WAV with the stdlib, FLAC, Ogg Vorbis and MP3 with libsndfile (through
           ctypes: it is the library fluidsynth itself writes files with, so no new package).
           The web format is MP3 (mono, VBR): every major browser plays it, Safari included.
- SVG:     abcm2ps, one SVG per tune; shows offline with st.image.

Safety: tools run from argument lists (no shell) in a private temporary directory that is
always removed, with a timeout and caps on what they print and write. Tool input files have
fixed names, so no uploaded or generated text ever becomes a path. Directives that make tools
read other files (`%%abc-include`, `%%EPS`, `%%format`, `I:` fields, ...) are blanked first:
abc2midi echoes an included file's lines in its warnings. Errors are ToolError (one line);
ToolMissing says which tool or soundfont is missing and how to install it.

Results are cached by content (bounded LRU), so replaying a tune costs nothing; renders are
deterministic bytes. All functions are safe to call from several threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from abcweb import tunes

# -----------------------------------------------------------------------------
# settings
MAX_ABC_CHARS = 100_000  # per tune; longer input is refused with a clear error
MAX_TOOL_OUTPUT = 1 << 20  # bytes a tool may print (abc2midi messages)
MAX_PROBLEMS = 200  # check() keeps the first ones and says how many more there were
MAX_MIDI_BYTES = 4 << 20
MAX_SVG_BYTES = 16 << 20
MAX_AUDIO_SECONDS = 300  # longer renders are stopped (a slow Q: can ask for hours)
# 22.05 kHz: a fiddle's or whistle's sound lies well below its 11 kHz limit, and it halves
# fluidsynth's time (0.19 -> 0.12 s for a 35 s tune here) and the MP3 encoder's.
SAMPLE_RATE = 22050
PEAK_DBFS = -1.0  # normalise to this peak
MP3_VBR_QUALITY = 0.5  # libsndfile compression level 0 (best) .. 1; 0.5 = LAME -V5
OGG_QUALITY = 0.6  # libsndfile compression level for Vorbis (0 best .. 1)
# Cached renders: checks, MIDI, SVG and encoded audio together (a few hundred tunes), and,
# apart, decoded audio (5 MB for 30 s, only reused to encode one tune in another format). A
# page server keeps both for its lifetime, so both stay small.
CACHE_BYTES = 64 << 20
PCM_CACHE_BYTES = 32 << 20
SOUNDFONT_ENV = "ABCWEB_SOUNDFONT"
# FluidR3_GM sounds best; with dynamic sample loading fluidsynth reads only the instruments a
# tune uses, so it renders as fast as the 6 MB TimGM6mb. Debian paths first, then others.
SOUNDFONTS = [
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/soundfonts/FluidR3_GM.sf2",  # Arch, Fedora
    "/usr/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
]
INSTALL = {
    "abc2midi": "apt-get install abcmidi (macOS: brew install abcmidi)",
    "abcm2ps": "apt-get install abcm2ps (macOS: brew install abcm2ps)",
    "fluidsynth": "apt-get install fluidsynth (macOS: brew install fluid-synth)",
    "soundfont": f"apt-get install fluid-soundfont-gm, or set {SOUNDFONT_ENV}=/path/to/font.sf2",
    "libsndfile": "apt-get install libsndfile1 (MP3 needs libsndfile 1.1 or later)",
}
AUDIO_FORMATS = ("wav", "flac", "oga", "mp3")
MIME = {"wav": "audio/wav", "flac": "audio/flac", "oga": "audio/ogg", "mp3": "audio/mpeg"}


class ToolError(RuntimeError):
    """A tool failed, hung, printed too much, or the input was refused. One-line message."""


class ToolMissing(ToolError):
    """A tool, library or soundfont is not installed; the message says how to install it."""


class ToolTimeout(ToolError):
    """A tool ran past its timeout and was stopped."""


# -----------------------------------------------------------------------------
# running tools


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} is not installed: {INSTALL[name]}")
    return path


def _dir_bytes(path: str) -> int:
    return sum(e.stat().st_size for e in os.scandir(path) if e.is_file(follow_symlinks=False))


def _run(
    args: list[str],
    cwd: str,
    timeout: float,
    max_out: int = MAX_TOOL_OUTPUT,
    max_files: int | None = None,
    what: str = "output",
    env: dict | None = None,
) -> tuple[int, str, str, bool]:
    """Run args in cwd; returns (exit code, stdout, stderr, stopped because it printed too much).

    Stops the tool when it runs past `timeout` (ToolTimeout) or writes more than `max_files`
    bytes into cwd (ToolError). Printing more than `max_out` stops it too; the caller is told,
    since for abc2midi a flood of warnings is still a (bad) check result. stderr goes to a
    file in cwd, so it counts against `max_files` and never mixes into stdout (abcm2ps's SVG).
    """
    name = os.path.basename(args[0])
    deadline = time.monotonic() + timeout
    err_path = os.path.join(cwd, ".stderr")
    try:
        with open(err_path, "wb") as err_file:
            proc = subprocess.Popen(
                args,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err_file,
                start_new_session=True,
                env=None if env is None else {**os.environ, **env},
            )
    except OSError as e:
        raise ToolError(f"cannot run {name}: {e.strerror or e}") from None
    out, flooded = bytearray(), False

    def over_cap() -> ToolError | None:
        if max_files is not None and _dir_bytes(cwd) > max_files:
            return ToolError(f"{name} stopped: its {what} grew past {max_files >> 20} MB")
        return None

    def stop_reason() -> ToolError | None:
        if time.monotonic() >= deadline:
            return ToolTimeout(f"{name} took longer than {timeout:g} s and was stopped")
        return over_cap()

    try:
        fd = proc.stdout.fileno()
        while not flooded:
            if error := stop_reason():
                raise error
            if select.select([fd], [], [], min(max(deadline - time.monotonic(), 0), 0.05))[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                out += chunk
                flooded = len(out) > max_out
        while not flooded and proc.poll() is None:  # output closed; wait for the exit
            if error := stop_reason():
                raise error
            time.sleep(0.005)
        # A fast tool can write past the cap and exit between two polls: the cap still holds.
        if error := over_cap():
            raise error
    finally:
        if proc.poll() is None:
            # The tool leads its own process group (start_new_session): stop anything it
            # started too, or a child of a wrapper script would outlive the timeout.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
        proc.wait()
        proc.stdout.close()
    with open(err_path, "rb") as f:
        err = f.read(max_out).decode("utf-8", "replace")
    return proc.returncode, out[:max_out].decode("utf-8", "replace"), err, flooded


# Directives that read or embed other files, raw SVG or PostScript. `%%MIDI` stays (abc2midi
# needs it for instruments); the rest only changes typesetting. Blanked, not removed, so the
# line numbers the tools report still match the text.
_UNSAFE_LINE = re.compile(r"^[ \t]*(%%(?!MIDI\b)|I:).*$", re.M)
_UNSAFE_INLINE = re.compile(r"\[I:[^\]\n]*\]?")


def _prepare(abc: str) -> tuple[str, int]:
    """The text the tools get, and how many lines we put before the caller's text."""
    if not isinstance(abc, str):
        raise ToolError(f"ABC must be text, not {type(abc).__name__}")
    if len(abc) > MAX_ABC_CHARS:
        raise ToolError(f"ABC too long: {len(abc)} characters, at most {MAX_ABC_CHARS} per tune")
    text = abc.replace("\r\n", "\n").replace("\r", "\n").replace("\0", " ")
    # Inline fields first: blanking `[I:...]` at a line's start can leave an indented `I:` or
    # `%%` line, which the line rule then catches.
    text = _UNSAFE_INLINE.sub(lambda m: " " * len(m.group()), text)
    text = _UNSAFE_LINE.sub("%", text)
    offset = 0
    if not re.search(r"^X:", text, re.M):
        text, offset = "X:1\n" + text, 1  # abc2midi skips a tune without X:
    return text + "\n", offset


def _workdir():
    return tempfile.TemporaryDirectory(prefix="abcweb-")


def _run_on_tune(
    text: str, args: list[str], timeout: float, output: str | None = None, **limits
) -> tuple[int, str, str, bool, bytes]:
    """_run on `text` saved as tune.abc in a private folder; also returns the bytes of the file
    `output` the tool wrote there (b"" when it wrote none)."""
    with _workdir() as tmp:
        Path(tmp, "tune.abc").write_text(text, encoding="utf-8", errors="replace")
        rc, out, err, flooded = _run(args, tmp, timeout, **limits)
        written = Path(tmp, output or "")
        data = written.read_bytes() if output and written.is_file() else b""
    return rc, out, err, flooded, data


# -----------------------------------------------------------------------------
# a small thread-safe LRU bounded by bytes (audio is megabytes, checks are bytes)


class _Cache:
    def __init__(self, max_bytes: int):
        self.max_bytes, self.used = max_bytes, 0
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key][0]
        return None

    def put(self, key, value, size: int):
        with self.lock:
            if key in self.items:
                self.used -= self.items.pop(key)[1]
            self.items[key] = (value, size)
            self.used += size
            while self.used > self.max_bytes and len(self.items) > 1:
                self.used -= self.items.popitem(last=False)[1][1]
        return value


_cache = _Cache(CACHE_BYTES)
_pcm_cache = _Cache(PCM_CACHE_BYTES)


def clear_cache() -> None:
    for cache in (_cache, _pcm_cache):
        with cache.lock:
            cache.items.clear()
            cache.used = 0


# -----------------------------------------------------------------------------
# check


@dataclass(frozen=True)
class Problem:
    level: str  # 'error' | 'warning'
    message: str
    line: int | None  # 1-based line in the text given to check(); None: not in it
    bar: int | None  # bar at the reported place: 1-based, in text order, each written bar once
    # (tunes.bar_at); abc2midi's own "Bar N" in the message counts differently (from 0, and
    # it merges a short bar before a repeat with the pickup after it)
    bar_length: bool  # True for "Bar N has M time units while the time signature has K"
    col: int | None = None  # 0-based column abc2midi points at


@dataclass(frozen=True)
class CheckResult:
    """valid: no Error line from `abc2midi FILE -c`.

    bars: bars holding notes, each written bar once (tunes.count_bars).
    bad_bars: distinct bars abc2midi reports as not matching the meter ("Bar N has M time
    units ..."). That is abc2midi's rule: it never checks the first bar (a pickup/anacrusis) or
    the last bar (which completes the pickup), nor free meter, and it lets a short bar before a
    repeat or double bar pair with a short bar after it; so a correct tune with a pickup has
    bad_bars == 0, while a pickup inside the tune that completes nothing is counted.
    Share of bars with matching durations = 1 - bad_bars / bars.
    """

    valid: bool
    problems: list[Problem] = field(default_factory=list)
    bars: int = 0
    bad_bars: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]

    @property
    def bar_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.bar_length]


_MESSAGE = re.compile(r"^(Error|Warning) in line-char (\d+)-(\d+) : (.*)$")
_BAR_LENGTH = re.compile(r"Bar (\d+) has [\d/]+ time units while the time signature has")


def _parse_problems(output: str, abc: str, offset: int) -> list[Problem]:
    index = tunes.bar_index(abc)
    problems, seen = [], set()
    for raw in output.splitlines():
        m = _MESSAGE.match(raw.strip())
        if not m:
            continue
        level, line, col, message = (
            m.group(1).lower(),
            int(m.group(2)) - offset,
            int(m.group(3)),
            m.group(4).strip(),
        )
        last = abc.rstrip("\n").count("\n") + 1
        line = None if line < 1 else min(line, last)  # past the end: abc2midi means the end
        bar_length = _BAR_LENGTH.search(message)
        bar = tunes.bar_at(abc, line, col, index) if line else None
        if bar is None and bar_length:
            bar = int(bar_length.group(1)) + 1  # abc2midi counts bars from 0
        key = (level, message, line, col)
        if key not in seen:  # abc2midi repeats some messages on its second pass
            seen.add(key)
            problems.append(Problem(level, message, line, bar, bool(bar_length), col))
    return problems


def check(abc: str, timeout: float = 10) -> CheckResult:
    """Errors and warnings abc2midi reports for one tune, with lines in `abc`."""
    text, offset = _prepare(abc)
    exe = _tool("abc2midi")
    key = ("check", abc)
    hit = _cache.get(key)
    if hit is not None:
        return replace(hit, problems=list(hit.problems))
    rc, out, err, flooded, _ = _run_on_tune(
        text, [exe, "tune.abc", "-c"], timeout, max_files=MAX_MIDI_BYTES
    )
    out += err
    body = abc.replace("\r\n", "\n").replace("\r", "\n")
    problems = _parse_problems(out, body, offset)
    if flooded:
        problems.append(
            Problem(
                "error",
                f"abc2midi printed over {MAX_TOOL_OUTPUT >> 20} MB of messages; stopped there",
                None,
                None,
                False,
            )
        )
    if rc < 0 and not flooded:
        problems.append(
            Problem("error", f"abc2midi crashed (signal {-rc}) on this ABC", None, None, False)
        )
    bad = {p.bar for p in problems if p.bar_length and p.bar is not None}
    if len(problems) > MAX_PROBLEMS:  # junk text: the first ones say enough
        more = len(problems) - MAX_PROBLEMS
        problems = problems[:MAX_PROBLEMS] + [
            Problem("error", f"... and {more} more problems", None, None, False)
        ]
    result = CheckResult(
        valid=not any(p.level == "error" for p in problems),
        problems=problems,
        bars=tunes.count_bars(body),
        bad_bars=len(bad),
    )
    _cache.put(key, result, len(abc) + len(out) + 256)
    return replace(result, problems=list(problems))


# -----------------------------------------------------------------------------
# MIDI and SVG


def _first_error(out: str) -> str:
    for raw in out.splitlines():
        m = _MESSAGE.match(raw.strip())
        if m and m.group(1) == "Error":
            return m.group(4).strip()
    return "no tune found"


def to_midi(abc: str, timeout: float = 10) -> bytes:
    """The tune as a Standard MIDI File (abc2midi; the first tune when the text holds several)."""
    text, _ = _prepare(abc)
    exe = _tool("abc2midi")
    key = ("midi", text)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    rc, out, err, _, midi = _run_on_tune(
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
    return _cache.put(key, midi, len(midi) + len(text))


_SVG = re.compile(r"<svg\b.*?</svg>", re.S)
# abcm2ps writes the date and the tune's title into comments (dates break caching, and a
# title holding "-->" could end the comment): drop all comment lines.
_SVG_COMMENT = re.compile(r"^<!--.*\n", re.M)


def to_svg(abc: str, timeout: float = 10) -> str:
    """Sheet music for the (first) tune as one SVG document (abcm2ps)."""
    text, _ = _prepare(abc)
    exe = _tool("abcm2ps")
    key = ("svg", text)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    # -g: SVG, one file per tune; -O -: to stdout; -q: quiet.
    rc, out, err, flooded, _ = _run_on_tune(
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
    return _cache.put(key, svg, len(svg) + len(text))


# -----------------------------------------------------------------------------
# audio


def find_soundfont(explicit: str | None = None) -> Path:
    """The soundfont to render with: `explicit`, else $ABCWEB_SOUNDFONT, else the first of
    SOUNDFONTS that exists. A named font that does not exist is an error, not skipped."""
    for name, where in (
        (explicit, "given"),
        (os.environ.get(SOUNDFONT_ENV), f"from ${SOUNDFONT_ENV}"),
    ):
        if name:
            path = Path(name).expanduser()
            if not path.is_file():
                raise ToolMissing(f"soundfont not found: {name} ({where}): {INSTALL['soundfont']}")
            return path.resolve()
    for name in SOUNDFONTS:
        if os.path.isfile(name):
            return Path(name).resolve()
    raise ToolMissing(f"no General MIDI soundfont found: {INSTALL['soundfont']}")


class _SFInfo(ctypes.Structure):
    _fields_ = [
        ("frames", ctypes.c_int64),
        ("samplerate", ctypes.c_int),
        ("channels", ctypes.c_int),
        ("format", ctypes.c_int),
        ("sections", ctypes.c_int),
        ("seekable", ctypes.c_int),
    ]


class _SFFormatInfo(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("name", ctypes.c_char_p), ("extension", ctypes.c_char_p)]


# libsndfile's constants (sndfile.h)
_SF_WRITE = 0x20
_SF_FORMATS = {  # our name -> (major | subtype, channels)
    "flac": (0x170000 | 0x0002, 2),  # FLAC, PCM 16
    "oga": (0x200000 | 0x0060, 2),  # OGG, Vorbis
    "mp3": (0x230000 | 0x0082, 1),  # MPEG, layer III; mono: one instrument, half the bytes
}
_SFC_SET_COMPRESSION_LEVEL = 0x1301
_SFC_SET_BITRATE_MODE = 0x1305
_SFC_GET_FORMAT_MAJOR_COUNT = 0x1030
_SFC_GET_FORMAT_MAJOR = 0x1031
_SF_BITRATE_MODE_VARIABLE = 2


def _load_sndfile():
    name = ctypes.util.find_library("sndfile")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.sf_open.restype = ctypes.c_void_p
    lib.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(_SFInfo)]
    lib.sf_strerror.restype = ctypes.c_char_p
    lib.sf_strerror.argtypes = [ctypes.c_void_p]
    lib.sf_command.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    lib.sf_writef_short.restype = ctypes.c_int64
    lib.sf_writef_short.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.sf_close.argtypes = [ctypes.c_void_p]
    lib.sf_version_string.restype = ctypes.c_char_p
    return lib


_sndfile = _load_sndfile()


def _sndfile_majors() -> set[int]:
    """Major formats this libsndfile was built with (MPEG needs 1.1+ with LAME and mpg123)."""
    if _sndfile is None:
        return set()
    count = ctypes.c_int(0)
    _sndfile.sf_command(
        None, _SFC_GET_FORMAT_MAJOR_COUNT, ctypes.byref(count), ctypes.sizeof(count)
    )
    majors = set()
    for i in range(count.value):
        info = _SFFormatInfo(i, None, None)
        _sndfile.sf_command(None, _SFC_GET_FORMAT_MAJOR, ctypes.byref(info), ctypes.sizeof(info))
        majors.add(info.format)
    return majors


_MAJORS = _sndfile_majors()


def _can_encode(fmt: str) -> bool:
    return fmt == "wav" or (fmt in _SF_FORMATS and _SF_FORMATS[fmt][0] & 0xFFF0000 in _MAJORS)


# MP3 where libsndfile can write it (Debian 12 and later); else FLAC, which every major
# browser also plays, only larger; else WAV.
WEB_FORMAT = next(f for f in ("mp3", "flac", "wav") if _can_encode(f))
WEB_MIME = MIME[WEB_FORMAT]


def _encode(pcm: np.ndarray, fmt: str, tmp: str) -> bytes:
    """int16 stereo frames -> bytes in fmt."""
    if fmt == "wav":
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(pcm.astype("<i2").tobytes())
        return buf.getvalue()
    if not _can_encode(fmt):
        what = "libsndfile" if _sndfile is None else f"libsndfile with {fmt.upper()} support"
        raise ToolMissing(f"{what} is needed for {fmt}: {INSTALL['libsndfile']}")
    sf_format, channels = _SF_FORMATS[fmt]
    if channels == 1:
        pcm = (pcm.astype(np.int32).sum(axis=1, keepdims=True) // 2).astype(np.int16)
    pcm = np.ascontiguousarray(pcm, dtype=np.int16)
    path = os.path.join(tmp, "audio." + fmt)
    info = _SFInfo(0, SAMPLE_RATE, channels, sf_format, 0, 0)
    handle = _sndfile.sf_open(path.encode(), _SF_WRITE, ctypes.byref(info))
    if not handle:
        raise ToolError(
            f"libsndfile cannot write {fmt}: {_sndfile.sf_strerror(None).decode(errors='replace')}"
        )
    try:
        if fmt == "mp3":
            mode = ctypes.c_int(_SF_BITRATE_MODE_VARIABLE)
            _sndfile.sf_command(
                handle, _SFC_SET_BITRATE_MODE, ctypes.byref(mode), ctypes.sizeof(mode)
            )
        level = {"mp3": MP3_VBR_QUALITY, "oga": OGG_QUALITY}.get(fmt)
        if level is not None:
            value = ctypes.c_double(level)
            _sndfile.sf_command(
                handle, _SFC_SET_COMPRESSION_LEVEL, ctypes.byref(value), ctypes.sizeof(value)
            )
        written = 0
        for i in range(0, len(pcm), 65536):  # the Vorbis encoder crashes on one huge write
            block = pcm[i : i + 65536]
            written += _sndfile.sf_writef_short(handle, block.ctypes.data, len(block))
    finally:
        _sndfile.sf_close(handle)
    if written != len(pcm):
        raise ToolError(f"libsndfile wrote {written} of {len(pcm)} frames of {fmt}")
    return Path(path).read_bytes()


def _render_pcm(midi: bytes, soundfont: Path, timeout: float) -> np.ndarray:
    """MIDI -> int16 stereo frames, peak-normalised (cached: every format starts here)."""
    exe = _tool("fluidsynth")
    key = ("pcm", midi, str(soundfont))
    hit = _pcm_cache.get(key)
    if hit is not None:
        return hit
    max_bytes = MAX_AUDIO_SECONDS * SAMPLE_RATE * 2 * 4
    with _workdir() as tmp:
        Path(tmp, "tune.mid").write_bytes(midi)
        # -n -i: no MIDI driver, no shell; -q: quiet; -F: render to file as fast as possible.
        # Raw float samples keep full precision for normalising. -z 2048 writes in large
        # blocks (the samples are the same as with the default 64, only the padded tail grows).
        args = [
            exe,
            "-n",
            "-i",
            "-q",
            "-z",
            "2048",
            "-o",
            "synth.dynamic-sample-loading=1",
            "-r",
            str(SAMPLE_RATE),
            "-T",
            "raw",
            "-O",
            "float",
            "-F",
            "out.raw",
            str(soundfont),
            "tune.mid",
        ]
        try:
            # SDL's ALSA hotplug thread would hold fluidsynth's exit up to 0.1 s.
            rc, out, err, _ = _run(
                args,
                tmp,
                timeout,
                max_files=max_bytes + len(midi) + 65536,
                what=f"audio (over {MAX_AUDIO_SECONDS} s)",
                env={"SDL_AUDIODRIVER": "dummy"},
            )
        except ToolError as e:
            if "grew past" in str(e):
                raise ToolError(
                    f"the tune plays longer than {MAX_AUDIO_SECONDS} s: not rendered"
                ) from None
            raise
        raw_path = os.path.join(tmp, "out.raw")
        samples = (
            np.fromfile(raw_path, dtype="<f4") if os.path.isfile(raw_path) else np.zeros(0, "<f4")
        )
    if rc != 0 or samples.size == 0:
        why = next((ln.strip() for ln in (err + out).splitlines() if ln.strip()), f"exit code {rc}")
        raise ToolError(f"fluidsynth rendered no audio: {why}")
    samples = samples[: samples.size // 2 * 2].reshape(-1, 2)
    level = np.max(np.abs(samples), axis=1)  # per frame, both channels
    peak = float(level.max()) if level.size else 0.0
    if not np.isfinite(peak):
        raise ToolError("fluidsynth rendered invalid samples")
    gain = 10 ** (PEAK_DBFS / 20) / peak if peak > 1e-6 else 0.0
    # fluidsynth renders on for seconds of silence after the last note: cut below -60 dB.
    loud = np.flatnonzero(level > peak * 1e-3)
    if loud.size:  # (a tune of rests keeps its silence)
        samples = samples[: loud[-1] + 1]
    # In place: a 30 s tune is 10 MB of float samples, and four renders may run at once.
    samples *= np.float32(gain * 32767)
    np.rint(samples, out=samples)
    np.clip(samples, -32768, 32767, out=samples)
    pcm = samples.astype(np.int16)
    pcm.setflags(write=False)  # shared through the cache
    return _pcm_cache.put(key, pcm, pcm.nbytes)


def to_audio(
    abc: str, fmt: str = WEB_FORMAT, soundfont: str | None = None, timeout: float = 20
) -> bytes:
    """The tune as audio: 'wav' | 'flac' | 'oga' (Ogg Vorbis) | 'mp3'. Loud (peak -1 dBFS).

    `timeout` bounds each tool run (abc2midi, fluidsynth) separately.
    """
    fmt = {"ogg": "oga", "wave": "wav", "mpeg": "mp3"}.get(
        fmt.lower().lstrip("."), fmt.lower().lstrip(".")
    )
    if fmt not in AUDIO_FORMATS:
        raise ToolError(f"unknown audio format {fmt!r}: use one of {', '.join(AUDIO_FORMATS)}")
    font = find_soundfont(soundfont)
    _tool("fluidsynth")
    midi = to_midi(abc, timeout=timeout)
    key = ("audio", midi, str(font), fmt)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    pcm = _render_pcm(midi, font, timeout)
    with _workdir() as tmp:
        data = _encode(pcm, fmt, tmp)
    return _cache.put(key, data, len(data))


_VERSION_ARGS = {"abc2midi": ["-ver"], "abcm2ps": ["-V"], "fluidsynth": ["--version"]}
_VERSION = re.compile(r"\d+(?:\.\d+)+")


@functools.lru_cache(maxsize=16)
def _version(exe: str, flag: tuple[str, ...]) -> str:
    try:
        with _workdir() as tmp:
            _, out, err, _ = _run([exe, *flag], tmp, timeout=5, max_out=4096)
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
    status["libsndfile"] = (
        _sndfile.sf_version_string().decode().removeprefix("libsndfile-")
        if _sndfile is not None
        else None
    )
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
