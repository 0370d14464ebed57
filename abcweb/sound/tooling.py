"""Running the ABC tools (abc2midi, abcm2ps, fluidsynth) safely, and caching what they make.

Tools run from argument lists (no shell) in a private temporary directory that is always
removed, with a timeout and caps on what they print and write. Tool input files have fixed
names, so no uploaded or generated text ever becomes a path. Directives that make tools read
other files (`%%abc-include`, `%%EPS`, `%%format`, `I:` fields, ...) are blanked first:
abc2midi echoes an included file's lines in its warnings. Errors are ToolError (one line);
ToolMissing says which tool or soundfont is missing and how to install it.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

# Results are cached by content (bounded LRU), so replaying a tune costs nothing.
MAX_ABC_CHARS = 100_000  # per tune; longer input is refused with a clear error
MAX_TOOL_OUTPUT = 1 << 20  # bytes a tool may print (abc2midi messages)
SOUNDFONT_ENV = "ABCWEB_SOUNDFONT"
INSTALL = {
    "abc2midi": "apt-get install abcmidi (macOS: brew install abcmidi)",
    "abcm2ps": "apt-get install abcm2ps (macOS: brew install abcm2ps)",
    "fluidsynth": "apt-get install fluidsynth (macOS: brew install fluid-synth)",
    "soundfont": f"apt-get install fluid-soundfont-gm, or set {SOUNDFONT_ENV}=/path/to/font.sf2",
    "libsndfile": "apt-get install libsndfile1",
    "lame": "apt-get install libmp3lame0",
}


class ToolError(RuntimeError):
    """A tool failed, hung, printed too much, or the input was refused. One-line message."""


class ToolMissing(ToolError):
    """A tool, library or soundfont is not installed; the message says how to install it."""


class ToolTimeout(ToolError):
    """A tool ran past its timeout and was stopped."""


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} is not installed: {INSTALL[name]}")
    return path


def _dir_bytes(path: str) -> int:
    return sum(e.stat().st_size for e in os.scandir(path) if e.is_file(follow_symlinks=False))


def run_tool(
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


def prepare(abc: str) -> tuple[str, int]:
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


@contextlib.contextmanager
def workdir():
    """A private temporary folder, removed on leaving. Failing to write there (a full disk)
    is a ToolError like any other render failure, so the page and the CLI explain it."""
    try:
        with tempfile.TemporaryDirectory(prefix="abcweb-") as tmp:
            yield tmp
    except OSError as e:
        raise ToolError(f"cannot write temporary files: {e.strerror or e}") from None


def run_on_tune(
    text: str, args: list[str], timeout: float, output: str | None = None, **limits
) -> tuple[int, str, str, bool, bytes]:
    """run_tool on `text` saved as tune.abc in a private folder; also returns the bytes of the file
    `output` the tool wrote there (b"" when it wrote none)."""
    with workdir() as tmp:
        Path(tmp, "tune.abc").write_text(text, encoding="utf-8", errors="replace")
        rc, out, err, flooded = run_tool(args, tmp, timeout, **limits)
        written = Path(tmp, output or "")
        data = written.read_bytes() if output and written.is_file() else b""
    return rc, out, err, flooded, data


# -----------------------------------------------------------------------------
# a small thread-safe LRU bounded by bytes (audio is megabytes, checks are bytes)


class Cache:
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


# Checks, MIDI, SVG and encoded audio together, about 0.27 MB a tune (most of it the MP3):
# about 90 tunes, enough for a shared link opened by many. 64 MB took the server past its
# 600 MB budget under 16 visitors (bench/visitors.py).
CACHE_BYTES = 24 << 20
cache = Cache(CACHE_BYTES)
