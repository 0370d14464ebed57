"""Meter and key choices for the seed text, counted from the corpora the model learned from.

Offering only headers the corpus uses keeps the quick choices inside what the model has seen:
a prime of `M:6/8` and `K:G` leads somewhere musical, `M:13/16` mostly does not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import regex as re

from abcweb.music import corpus as corpora

# Common names, shown beside the meter itself.
METER_NAMES = {
    "6/8": "jig", "9/8": "slip jig", "12/8": "slide", "2/4": "polka, march",
    "4/4": "reel, hornpipe", "C": "reel, common time", "C|": "cut time", "2/2": "reel",
    "3/4": "waltz, mazurka", "3/2": "hornpipe (triple)", "3/8": "", "6/4": "",
}


@dataclass
class HeaderChoices:
    meters: list[tuple[str, int]]  # (M: value, tunes) most used first
    keys: list[tuple[str, int]]  # (K: value, tunes)
    unit_for_meter: dict[str, str] = field(default_factory=dict)  # most used L: per meter
    tunes: int = 0
    sources: list[str] = field(default_factory=list)


def header_fields(tune: str, keys: str = "MLK") -> dict[str, str]:
    """The first value of each header field in `keys`, read up to the K: line (the header's
    end), with trailing `% comments` removed."""
    found: dict[str, str] = {}
    start = 0
    while True:
        end = tune.find("\n", start)
        line = tune[start:] if end < 0 else tune[start:end]
        if len(line) > 1 and line[1] == ":" and line[0] in keys and line[0] not in found:
            value = line[2:]
            if "%" in value:
                value = re.sub(r"(?<!\\)%.*", "", value)
            value = value.strip()
            if value:
                found[line[0]] = value
        if line.startswith("K:") or end < 0:
            return found
        start = end + 1


def count(tunes: list[str], min_share: float = 0.002, top: int = 12) -> HeaderChoices:
    """The meters and keys of at least `min_share` of the tunes (at most `top` of each)."""
    meters, keys, units = Counter(), Counter(), {}
    for tune in tunes:
        fields = header_fields(tune)
        m, k = fields.get("M"), fields.get("K")
        if m:
            meters[m] += 1
            if "L" in fields:
                units.setdefault(m, Counter())[fields["L"]] += 1
        if k:
            keys[k] += 1
    floor = max(1, int(min_share * len(tunes)))
    keep = lambda c: [(v, n) for v, n in c.most_common(top) if n >= floor]  # noqa: E731
    return HeaderChoices(keep(meters), keep(keys),
                         {m: c.most_common(1)[0][0] for m, c in units.items()}, len(tunes))


def raw_tunes(text: str) -> list[str]:
    """Tune headers as the files write them, cut at `X:` lines. Counting headers needs no
    normalising (which costs a second over all collections); values are stripped the same."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [chunk for chunk in re.split(r"(?m)^(?=X:)", text) if chunk.startswith("X:")]


def from_corpora(names: list[str] | None = None) -> HeaderChoices:
    """Counted over the bundled music21 collections (a tenth of a second; cache it anyway).
    A collection that cannot be read is skipped; none readable gives empty choices."""
    tunes, sources = [], []
    try:
        root = corpora.music21_corpus_dir()
    except corpora.CorpusError:
        return HeaderChoices([], [], {}, 0, [])
    for name in names or list(corpora.MUSIC21_COLLECTIONS):
        try:
            for path in sorted((root / name).glob("*.abc")):
                tunes += raw_tunes(corpora.decode_upload(path.read_bytes(), path.name))
            sources.append(name)
        except (OSError, corpora.CorpusError):
            continue
    choices = count(tunes)
    choices.sources = sources
    return choices


def meter_label(meter: str, n: int | None = None) -> str:
    name = METER_NAMES.get(meter)
    return meter + (f" ({name})" if name else "") + (f" · {n:,} tunes" if n else "")


def prime_for(meter: str | None, key: str | None, unit: str | None = None) -> str:
    """Header lines for a seed text, in the order the corpus writes them (X, M, L, K); with
    `K:` written, the model starts on the music. With no key, the model picks it."""
    lines = ["X:1"]
    if meter:
        lines.append(f"M:{meter}")
        if unit:
            lines.append(f"L:{unit}")
    if key:
        lines.append(f"K:{key}")
        return "\n".join(lines) + "\n"
    return "\n".join(lines) + "\n" if meter else "X:"
