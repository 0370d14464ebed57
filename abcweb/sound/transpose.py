"""Transposing ABC tunes with abcMIDI's own `abc2abc -t`, kept in the tune's own style.

abc2abc transposes notes, inline keys and chord symbols correctly, but it also rewrites the
header (`K:D Major` becomes `K:Emix`-style, `Z: id:` loses its space) and breaks a line
wherever it prints a `%Warning`. A model trained on its raw output would learn that style, so
only the body's notes are taken from abc2abc: the header stays the tune's own, with the new
tonic written in the old K: line's form (`K:D Major` -> `K:E Major`).

Used twice: to multiply the training tunes into other keys (the held-out tunes are never
transposed), and to play a tune in another key on the page.
"""

from __future__ import annotations

import random
from pathlib import Path

import regex as re

from abcweb.music.facts import MAJOR_SHARPS, MODES, parse_key, read_tune
from abcweb.sound import tooling

TIMEOUT_S = 10.0
BATCH = 400  # tunes per abc2abc run when transposing a collection
# Keys a fiddle, flute or whistle player meets: from two flats to four sharps.
COMMON_SIGNATURES = range(-2, 5)
PITCH_RANGE = (55, 93)  # G below middle C (a fiddle's lowest) to A6

_KEY_LINE = re.compile(r"^K:\s*([A-G][#b]?)(.*)$")
_X_LINE = re.compile(r"^X:\s*(\d+)", re.M)


def _split(tune: str) -> tuple[list[str], list[str]] | None:
    """(header lines up to and with K:, body lines), None without a K: line."""
    lines = tune.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("K:"):
            return lines[: i + 1], lines[i + 1:]
    return None


def _signature(key_value: str) -> int | None:
    """Sharps (positive) or flats (negative) of a K: value."""
    m = re.match(r"\s*([A-G][#b]?)\s*([A-Za-z]*)", key_value)
    if not m or m.group(1) not in MAJOR_SHARPS:
        return None
    mode = m.group(2).lower()
    mode = "maj" if not mode else ("m" if mode == "m" else mode[:3])
    return MAJOR_SHARPS[m.group(1)] + MODES[mode] if mode in MODES else None


def _restyle(original: str, transposed: str) -> str | None:
    """The transposed body under the original header, or None when the two do not line up."""
    old, new = _split(original), _split(transposed)
    if old is None or new is None:
        return None
    old_head, old_body = old
    new_key = _KEY_LINE.match(new[0][-1])
    old_key = _KEY_LINE.match(old_head[-1])
    if not new_key or not old_key:
        return None
    body: list[str] = []
    joining = False
    for line in new[1]:
        if line.startswith("%Warning") or line.startswith("%Error"):
            joining = bool(body)  # abc2abc broke the line to print this
            continue
        if joining:
            body[-1] += line
            joining = False
        else:
            body.append(line)
    while body and not body[-1].strip():
        body.pop()
    while old_body and not old_body[-1].strip():
        old_body = old_body[:-1]
    if len(body) != len(old_body):
        return None
    head = old_head[:-1] + ["K:" + new_key.group(1) + old_key.group(2)]
    return "\n".join(head + body)


def transpose_many(tunes: list[str], semitones: list[int]) -> list[str | None]:
    """Each tune transposed by its own number of semitones (None where abc2abc fails).

    Tunes that share a shift run through abc2abc together, `BATCH` at a time: one process per
    tune would cost more than the transposing."""
    if len(tunes) != len(semitones):
        raise ValueError("one shift per tune")
    out: list[str | None] = [None] * len(tunes)
    by_shift: dict[int, list[int]] = {}
    for i, s in enumerate(semitones):
        if s == 0:
            out[i] = tunes[i]
        else:
            by_shift.setdefault(s, []).append(i)
    exe = tooling.find_tool("abc2abc")
    for shift, idx in by_shift.items():
        for start in range(0, len(idx), BATCH):
            part = idx[start: start + BATCH]
            # Number the tunes 1..n so abc2abc's output can be cut back into them.
            text = "\n\n".join(_X_LINE.sub(f"X:{n + 1}", tunes[i], count=1) if
                               _X_LINE.search(tunes[i]) else f"X:{n + 1}\n{tunes[i]}"
                               for n, i in enumerate(part)) + "\n"
            with tooling.workdir() as tmp:
                Path(tmp, "tunes.abc").write_text(text, encoding="utf-8")
                rc, stdout, _, flooded = tooling.run_tool(
                    [exe, "tunes.abc", "-t", str(shift)], tmp, TIMEOUT_S * len(part) ** 0.5,
                    max_out=64 << 20)
            if flooded:
                continue
            pieces = re.split(r"(?m)^(?=X:\s*\d+)", stdout)
            found = {}
            for piece in pieces:
                m = _X_LINE.match(piece)
                if m:
                    found[int(m.group(1))] = piece.rstrip("\n")
            for n, i in enumerate(part):
                if n + 1 in found:
                    out[i] = _restyle(tunes[i], found[n + 1])
    return out


def transpose(tune: str, semitones: int) -> str:
    """One tune in another key (for playing); ValueError when it cannot be transposed."""
    if not -12 <= semitones <= 12:
        raise ValueError("transpose by at most 12 semitones either way")
    if semitones == 0:
        return tune
    key = ("transpose", tune, semitones)  # the page asks again on every rerun: no new process
    hit = tooling.cache.get(key)
    if hit is not None:
        return hit
    result = transpose_many([tune], [semitones])[0]
    if result is None:
        raise ValueError("abc2abc could not transpose this tune")
    return tooling.cache.put(key, result, 2 * len(tune))


def _playable(tune: str) -> bool:
    """In a common key and a fiddle's range (abc2abc may spell a key with more accidentals
    than the shift's choice assumed)."""
    split = _split(tune)
    if split is None or _signature(split[0][-1][2:]) not in COMMON_SIGNATURES:
        return False
    pitches = read_tune(tune).pitches
    return bool(pitches) and PITCH_RANGE[0] <= min(pitches) and max(pitches) <= PITCH_RANGE[1]


def shifts_for(tune: str, count: int, seed: int = 0) -> list[int]:
    """Up to `count` shifts (-5..+6 semitones) that land the tune in a common key, drawn
    deterministically from the tune's own text."""
    split = _split(tune)
    key = split and _KEY_LINE.match(split[0][-1])
    if not key or parse_key(split[0][-1][2:]) is None:
        return []
    value = split[0][-1][2:]
    base = _signature(value)
    if base is None:
        return []
    good = []
    for s in range(-5, 7):
        if s == 0:
            continue
        # Moving up a semitone adds 7 sharps (mod 12); take the spelling nearest no accidentals.
        sig = (base + 7 * s) % 12
        sig = sig - 12 if sig > 6 else sig
        if sig in COMMON_SIGNATURES:
            good.append(s)
    rng = random.Random(f"{seed}:{tune}")
    rng.shuffle(good)
    return sorted(good[:count])


def augment(tunes: list[str], count: int, seed: int = 0, keep=None) -> list[str]:
    """Transposed copies of the tunes (not the tunes themselves): up to `count` per tune, in
    common keys and a playable range, and passing `keep` (for training: abc2midi finds no
    error) when given."""
    jobs = [(t, s) for t in tunes for s in shifts_for(t, count, seed)]
    results = transpose_many([t for t, _ in jobs], [s for _, s in jobs])
    return [r for r in results if r is not None and _playable(r) and (keep is None or keep(r))]
