"""Checking a tune with abc2midi: `abc2midi FILE -c` (the abcMIDI manual's way to check a
tune); valid means no Error line. Problems carry the line and bar they are in."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from abcweb.music import tunes
from abcweb.sound.tooling import MAX_TOOL_OUTPUT, cache, find_tool, prepare, run_on_tune

MAX_PROBLEMS = 200  # check() keeps the first ones and says how many more there were
MAX_MIDI_BYTES = 4 << 20


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


MESSAGE = re.compile(r"^(Error|Warning) in line-char (\d+)-(\d+) : (.*)$")
_BAR_LENGTH = re.compile(r"Bar (\d+) has [\d/]+ time units while the time signature has")


def _parse_problems(output: str, abc: str, offset: int) -> list[Problem]:
    index = tunes.bar_index(abc)
    problems, seen = [], set()
    for raw in output.splitlines():
        m = MESSAGE.match(raw.strip())
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
    text, offset = prepare(abc)
    exe = find_tool("abc2midi")
    key = ("check", abc)
    hit = cache.get(key)
    if hit is not None:
        return replace(hit, problems=list(hit.problems))
    rc, out, err, flooded, _ = run_on_tune(
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
    cache.put(key, result, len(abc) + len(out) + 256)
    return replace(result, problems=list(problems))
