"""Checks of what the headless visitors saw (bench/visitors.py): every tune against the
library's own, the trainer's against its trained checkpoint, and the sessions' errors.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from urllib.parse import parse_qs

import visitors_behaviour
from load_test import shown
from visitors_behaviour import Tune, Visit

# -- settings ---------------------------------------------------------------------------------
PRIME = "X:"  # the page's default seed text (params.Settings)
TOP_K = 0


def expected_text(sampler, seed: int, length: int, temperature: float) -> str:
    return sampler.generate(PRIME, length, temperature, seed, TOP_K, stop_at_end=True,
                            form=bool(visitors_behaviour.FORM)).text


def check_tune(t: Tune, expected: str, media: bool = True) -> list[str]:
    """What is wrong with one tune the page showed, given the library's text."""
    out = []
    # The "ABC text to copy" box is an st.text, which dedents and strips its text (Streamlit's
    # clean_text); the abc-text box shows shown(text).
    box, got = textwrap.dedent(expected).strip(), t.text or ""
    if got != box:
        at = next((i for i, (a, b) in enumerate(zip(got, box)) if a != b),
                  min(len(got), len(box)))
        out.append(f"its ABC text is not the library's tune (from character {at}: "
                   f"{got[at:at + 20]!r} for {box[at:at + 20]!r})")
    if t.html_text is None:
        out.append("no abc-text box")
    elif t.html_text != shown(expected):
        out.append("the abc-text box does not show the library's tune")
    q = {k: v[0] for k, v in parse_qs(t.query).items()}
    if q.get("seed") != str(t.seed) or float(q.get("temperature", "nan")) != t.temperature:
        out.append(f"the link says {t.query!r}")
    if not media:
        return out
    if not t.charts:
        out.append("no charts")
    if not t.svg_bytes:
        out.append("no sheet music")
    if not t.audio_bytes or t.audio_kind is None:
        out.append(f"no playable audio at {t.audio_url} ({t.audio_bytes} bytes)")
    return out


def session_problems(visits: list[Visit]) -> list[str]:
    """What went wrong in the sessions themselves: errors, exceptions in a page, protocol."""
    problems: list[str] = []
    for v in visits:
        if v.error:
            problems.append(f"{v.name}: {v.error}")
        problems.extend(v.problems)
        if v.exceptions:
            problems.append(f"{v.name}: {len(v.exceptions)} exception(s) in the page: "
                            f"{v.exceptions[0]}")
    return problems


def verify(visits: list[Visit], weights: Path) -> tuple[int, list[str]]:
    from abcweb.sampling.sampler import load_sampler

    problems, wrong = [], 0
    shipped = load_sampler(weights)
    for v in visits:
        if v.name == "trainer":
            continue
        for t in v.tunes:
            bad = check_tune(t, expected_text(shipped, t.seed, t.length, t.temperature))
            if t.model is not None and t.model != "Shipped model":
                bad.append(f"its page samples {t.model!r}")
            wrong += bool(bad)
            if bad and wrong <= 5:
                problems.append(f"{v.name}, seed {t.seed} at {t.temperature}: "
                                + "; ".join(bad))
    if wrong > 5:
        problems.append(f"... {wrong} wrong tunes in all")
    return wrong, problems


def verify_trainer(v: Visit, weights: Path) -> list[str]:
    from abcweb.sampling.sampler import load_sampler

    if v.trained is None:
        return [] if v.error else ["trainer: training did not finish"]
    problems = []
    if len(v.tunes) < 2:
        return ["trainer: no tune from its model"]
    first, last = v.tunes[0], v.tunes[-1]
    shipped = load_sampler(weights)
    for what in check_tune(first, expected_text(shipped, first.seed, first.length, 1.0)):
        problems.append(f"trainer, its link's tune: {what}")
    if not (last.model or "").startswith("Trained here"):
        problems.append(f"trainer: its page samples {last.model!r}, not its model")
    if v.trained_model is None:
        problems.append("trainer: no trained checkpoint found to check its tune against")
    else:
        # A model trained for a few steps seldom writes a whole tune: no sheet music or
        # audio is then right, so only the text and the link are checked.
        own = expected_text(load_sampler(v.trained_model), last.seed, last.length, 1.0)
        for what in check_tune(last, own, media=False):
            problems.append(f"trainer, its model's tune: {what}")
    return problems
