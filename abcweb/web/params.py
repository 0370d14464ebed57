"""Generation settings <-> URL query parameters, for links that bring back the exact tune.

A share link carries the settings and the id of the shipped model that wrote the tune; together
they fix the tune completely:

    ?seed=42&prime=X%3A&length=600&temperature=0.8&top_k=0&top_p=1&best=8&form=1&model=de2eb17119ae

A server keeps every model it has shipped (checkpoint.shipped_models), so a link brings back its
tune after new weights ship. Links made before they carried an id have settings but no `model`:
they were all written by LEGACY_MODEL, as the model's own draw (best of 1).

Reading a link never fails. Each parameter is read on its own; a missing one takes its default
silently, and a bad one takes its default (non-numeric, non-finite) or is clamped to the
dashboard's range (out of range) with a message saying what was changed:

| parameter     | default | range, and what happens outside it                              |
|---------------|---------|-----------------------------------------------------------------|
| `seed`        | 0       | whole number 0 .. 2**32-1; clamped                              |
| `prime`       | `X:`    | the seed text, 1 .. MAX_PRIME characters; empty -> default,     |
|               |         | longer -> cut (unknown characters are the sampler's to refuse)  |
| `length`      | 600     | LENGTH_MIN .. LENGTH_MAX; clamped, then rounded to LENGTH_STEP  |
| `temperature` | 0.9     | 0 .. 2; clamped, then rounded to TEMPERATURE_STEP               |
| `top_k`       | 0 (off) | 0 .. TOP_K_MAX; clamped                                         |
| `top_p`       | 1 (off) | nucleus, TOP_P_MIN .. 1; clamped, then rounded to TOP_P_STEP    |
| `best`        | 8       | drafts the tune is the best of, 1 .. MAX_BEST_OF; clamped       |
| `tempo`       | 0       | beats per minute to play at, 24 .. 204, or 0: the tune's own    |
|               |         | (its Q:, else its type's); clamped, rounded to TEMPO_STEP       |
| `instrument`  | piano   | one of arrange.INSTRUMENTS; another -> default                  |
| `transpose`   | 0       | semitones to play it in another key, -12 .. 12; clamped         |
| `model`       | current | a model id (12 hex digits); not one -> the current model        |
| `form`        | 1       | 1: earlier bars are offered at bar starts (sampling/form.py);   |
|               |         | 0: every bar the model's own draw; another value -> 1           |

A link with settings but no `model` was made before links carried ids: what it leaves out
takes LEGACY_DEFAULTS (LEGACY_MODEL, best of 1, temperature 1.0). A link with settings but no
`form` was made before bar proposals (7 December 2026): it is read with form=0, so it brings
back the tune it showed.

Rounding to the sliders' steps keeps a link's settings and the page's widgets the same values,
so the tune a link brings back is the one the widgets describe. Links the page writes are always
on the steps already, so they come back unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from urllib.parse import urlencode

from abcweb.sampling.drafts import BEST_OF, MAX_BEST_OF
from abcweb.sampling.loop import MAX_PRIME
from abcweb.sampling.sampler import FORM
from abcweb.sound.arrange import (
    DEFAULT_INSTRUMENT,
    INSTRUMENTS,
    TEMPO_MAX,
    TEMPO_MIN,
    TRANSPOSE_MAX,
)

SEED_MAX = 2**32 - 1
LENGTH_MIN, LENGTH_MAX, LENGTH_STEP = 10, 2000, 10
TEMPERATURE_MIN, TEMPERATURE_MAX, TEMPERATURE_STEP = 0.0, 2.0, 0.05
TOP_K_MAX = 40
TOP_P_MIN, TOP_P_STEP = 0.05, 0.05
TEMPO_STEP = 4  # the tempo slider's steps from TEMPO_MIN (24, 28, ... 204)
TEMPOS = [0] + list(range(TEMPO_MIN, TEMPO_MAX + 1, TEMPO_STEP))  # 0: the tune's own
KEYS = ("seed", "prime", "length", "temperature", "top_k", "top_p", "best", "tempo", "instrument",
        "transpose", "model", "form")
# The shipped model until links carried ids (December 2026): every such link is its tune.
LEGACY_MODEL = "de2eb17119ae"
MODEL_ID = re.compile(r"[0-9a-f]{12}")


@dataclass(frozen=True)
class Settings:
    seed: int = 0
    prime: str = "X:"
    length: int = 600
    # 0.9 by the yardsticks (weights/README.md): at 1.0 the best of 8 fits 98.0% of its bars to
    # the meter, at 0.9 99.2%, with as real a melody; at 0.8 the melody grows plainer.
    temperature: float = 0.9
    top_k: int = 0
    top_p: float = 1.0  # 1 draws from every character; links made before top-p mean 1
    best: int = BEST_OF  # the tune is the best of this many drafts (abcweb/sampling/drafts.py)
    # How it is played (abcweb/sound/arrange.py): never what the model writes.
    tempo: int = 0
    instrument: str = DEFAULT_INSTRUMENT
    transpose: int = 0
    model: str = ""  # the id of the shipped model that writes it; "" is the current one
    form: bool = FORM  # earlier bars offered at bar starts (abcweb/sampling/form.py)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULTS = Settings()
# What a link made before links carried a model id meant: the model shipped then, its own
# draw, at the temperature that was the default then.
LEGACY_DEFAULTS = Settings(temperature=1.0, best=1, model=LEGACY_MODEL, form=False)
FORM_VALUES = {"1": True, "0": False, "on": True, "off": False, "true": True, "false": False}


def round_temperature(t: float) -> float:
    # Two decimals: 0.1 + 0.05 style float noise must not show up in a link or a cache key.
    return round(round(t / TEMPERATURE_STEP) * TEMPERATURE_STEP, 2)


def round_top_p(p: float) -> float:
    return min(max(round(round(p / TOP_P_STEP) * TOP_P_STEP, 2), TOP_P_MIN), 1.0)


def _first(value):
    # st.query_params gives the last value of a repeated key; a plain dict of lists the list.
    if isinstance(value, (list, tuple)):
        return value[-1] if value else None
    return value


def _number(name: str, raw, kind, default, low, high, messages: list[str]):
    text = str(raw).strip()
    try:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError
    except ValueError:
        messages.append(f"{name} {text!r} is not a number: using {default}")
        return default
    if kind is int and value != int(value):
        messages.append(f"{name} {text} is not a whole number: using {int(value)}")
    value = kind(value)
    if value < low or value > high:
        clamped = min(max(value, low), high)
        messages.append(f"{name} {text} is outside {low} .. {high}: using {clamped}")
        return clamped
    return value


def from_query(query: Mapping) -> tuple[Settings, list[str]]:
    """Settings from query parameters, and one message per parameter that was changed."""
    messages: list[str] = []
    get = {k: _first(query.get(k)) for k in KEYS}
    # A link with settings but no model id was made before ids: what it leaves out takes the
    # defaults of its day.
    has_settings = any(get[k] is not None for k in KEYS)
    d = LEGACY_DEFAULTS if get["model"] is None and has_settings else DEFAULTS
    # Likewise a link with settings but no `form` was made before bar proposals.
    if get["form"] is None and has_settings:
        d = replace(d, form=False)

    seed = d.seed if get["seed"] is None else _number(
        "seed", get["seed"], int, d.seed, 0, SEED_MAX, messages)

    prime = d.prime if get["prime"] is None else str(get["prime"])
    prime = prime.replace("\r\n", "\n").replace("\r", "\n")
    if not prime:
        messages.append(f"the seed text is empty: using {d.prime!r}")
        prime = d.prime
    if len(prime) > MAX_PRIME:
        messages.append(f"the seed text is {len(prime):,} characters: cut to {MAX_PRIME:,}")
        prime = prime[:MAX_PRIME]

    length = d.length if get["length"] is None else _number(
        "length", get["length"], int, d.length, LENGTH_MIN, LENGTH_MAX, messages)
    stepped = int(round(length / LENGTH_STEP)) * LENGTH_STEP
    stepped = min(max(stepped, LENGTH_MIN), LENGTH_MAX)
    if stepped != length:
        messages.append(f"length {length} rounded to {stepped} (steps of {LENGTH_STEP})")
    length = stepped

    temperature = d.temperature if get["temperature"] is None else _number(
        "temperature", get["temperature"], float, d.temperature, TEMPERATURE_MIN,
        TEMPERATURE_MAX, messages)
    rounded = round_temperature(temperature)
    if abs(rounded - temperature) > 1e-9:
        messages.append(f"temperature {temperature:g} rounded to {rounded:g} "
                        f"(steps of {TEMPERATURE_STEP:g})")
    temperature = rounded

    top_k = d.top_k if get["top_k"] is None else _number(
        "top_k", get["top_k"], int, d.top_k, 0, TOP_K_MAX, messages)

    top_p = d.top_p if get["top_p"] is None else _number(
        "top_p", get["top_p"], float, d.top_p, TOP_P_MIN, 1.0, messages)
    rounded = round_top_p(top_p)
    if abs(rounded - top_p) > 1e-9:
        messages.append(f"top_p {top_p:g} rounded to {rounded:g} (steps of {TOP_P_STEP:g})")
    top_p = rounded

    best = d.best if get["best"] is None else _number(
        "best", get["best"], int, d.best, 1, MAX_BEST_OF, messages)

    tempo = d.tempo if get["tempo"] is None else _number(
        "tempo", get["tempo"], int, d.tempo, 0, TEMPO_MAX, messages)
    if 0 < tempo < TEMPO_MIN:
        messages.append(f"tempo {tempo} is below {TEMPO_MIN}: using {TEMPO_MIN}")
        tempo = TEMPO_MIN
    stepped = TEMPO_MIN + round((tempo - TEMPO_MIN) / TEMPO_STEP) * TEMPO_STEP if tempo else 0
    if stepped != tempo:
        messages.append(f"tempo {tempo} rounded to {stepped} (steps of {TEMPO_STEP})")
        tempo = stepped
    instrument = d.instrument
    if get["instrument"] is not None:
        if str(get["instrument"]) in INSTRUMENTS:
            instrument = str(get["instrument"])
        else:
            messages.append(f"instrument {str(get['instrument'])[:40]!r} is not one of "
                            f"{', '.join(INSTRUMENTS)}: using {d.instrument}")
    transpose = d.transpose if get["transpose"] is None else _number(
        "transpose", get["transpose"], int, d.transpose, -TRANSPOSE_MAX, TRANSPOSE_MAX,
        messages)

    model = d.model
    if get["model"] is not None:
        text = str(get["model"]).strip().lower()
        if MODEL_ID.fullmatch(text):
            model = text
        else:
            messages.append(f"model {str(get['model'])[:40]!r} is not a model id: using the "
                            "current model")

    form = d.form
    if get["form"] is not None:
        text = str(get["form"]).strip().lower()
        if text in FORM_VALUES:
            form = FORM_VALUES[text]
        else:
            form = DEFAULTS.form
            messages.append(f"form {str(get['form'])[:40]!r} is not 1 or 0: using "
                            f"{int(form)}")

    return Settings(int(seed), prime, int(length), float(temperature), int(top_k),
                    float(top_p), int(best), int(tempo), instrument, int(transpose),
                    model, form), messages


def to_query(settings: Settings) -> dict[str, str]:
    """The query parameters for settings (every one, so a link never depends on defaults that
    may change later; the page always names its model, since a link without one is read as
    made before ids)."""
    query = {
        "seed": str(int(settings.seed)),
        "prime": settings.prime,
        "length": str(int(settings.length)),
        "temperature": f"{round_temperature(settings.temperature):g}",
        "top_k": str(int(settings.top_k)),
        "top_p": f"{round_top_p(settings.top_p):g}",
        "best": str(int(settings.best)),
        "tempo": str(int(settings.tempo)),
        "instrument": settings.instrument,
        "transpose": str(int(settings.transpose)),
        "form": str(int(settings.form)),
    }
    if settings.model:
        query["model"] = settings.model
    return query


def share_url(base: str | None, settings: Settings) -> str:
    """A full link (or just `?query` when the page's own address is unknown)."""
    query = urlencode(to_query(settings))
    base = (base or "").split("?", 1)[0].split("#", 1)[0]
    return f"{base}?{query}"
