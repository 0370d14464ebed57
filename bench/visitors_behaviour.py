"""What the headless visitors do (bench/visitors.py): a visitor opens a share link and keeps
changing the seed or the temperature; the trainer trains a model in the Train view and samples
from it. Each tune the page showed is recorded as a `Tune`, each session as a `Visit`.
"""

from __future__ import annotations

import asyncio
import math
import random
import shutil
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from visitors_client import (
    PAGE_TIMEOUT_S,
    REPLICA_HEADER,
    Page,
    RunFailed,
    Session,
    audio_kind,
    int_state,
    slider_state,
    trigger,
)

# -- settings ---------------------------------------------------------------------------------
SEED_BASE = 1_000_000  # visitor i's seeds start at SEED_BASE * (i + 1): no two visitors share one
TRAINER_SEED = 424242
TRAINER_LENGTH = 300  # the trainer's link: a short tune from a barely trained model
TEMPERATURES = [round(0.5 + 0.05 * i, 2) for i in range(21)]  # 0.5 .. 1.5, the slider's steps
CHANGE_SEED = 0.7  # chance that a visitor's next tune is a new seed rather than a temperature
JITTER = (0.5, 1.5)  # think time is drawn from think * uniform(JITTER)


# -- what the run records -------------------------------------------------------------------------
@dataclass
class Tune:
    visitor: str
    seed: int
    temperature: float
    length: int
    first: bool
    latency: float
    text: str | None  # the st.code text
    html_text: str | None
    query: str
    charts: int
    svg_bytes: int
    audio_url: str | None
    audio_bytes: int
    audio_kind: str | None
    model: str | None  # the Model box's choice
    t_end: float = 0.0


@dataclass
class Visit:
    name: str
    tunes: list[Tune] = field(default_factory=list)
    claims: int = 0
    error: str | None = None
    exceptions: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    trained: dict | None = None
    training_window: tuple[float, float] | None = None  # perf_counter times: Start to done
    trained_model: Path | None = None  # a copy of the trainer's checkpoint
    replica: str | None = None  # behind a balancer: who served it (REPLICA_HEADER)


def record(visit: Visit, page: Page, seed: int, temperature: float, length: int, first: bool,
           t0: float) -> Tune:
    url, audio = page.audio()
    model = page.find("selectbox", "Model")
    tune = Tune(visit.name, seed, temperature, length, first, time.perf_counter() - t0,
                page.code_text(), page.html_text(), page.query, len(page.all("vega_lite_chart")),
                len(page.sheet_music()), url, len(audio), audio_kind(audio),
                model_choice(model), time.perf_counter())
    visit.tunes.append(tune)
    return tune


def model_choice(box) -> str | None:
    if box is None:
        return None
    if box.set_value:
        return box.raw_value
    return box.options[box.default] if 0 <= box.default < len(box.options) else None


class Bounds:
    """When to stop: --tunes (each visitor does its share) and/or --duration."""

    def __init__(self, tunes: int | None, per_visitor: int | None, duration: float | None):
        self.tunes, self.per_visitor = tunes, per_visitor
        self.deadline = time.perf_counter() + duration if duration else math.inf
        self.claimed = 0

    def claim(self, visit: Visit) -> bool:
        if time.perf_counter() >= self.deadline:
            return False
        if self.tunes is not None and (self.claimed >= self.tunes
                                       or visit.claims >= self.per_visitor):
            return False
        self.claimed += 1
        visit.claims += 1
        return True


FORM = 1  # the links' bar proposals (1, the page's default; --no-form: 0)


def query_for(seed: int, length: int, temperature: float, model: str) -> str:
    """A share link's query, naming the model and bar proposals as the page's own links do."""
    return urlencode({"seed": seed, "length": length, "temperature": f"{temperature:.1f}",
                      "model": model, "form": FORM})


def next_temperature(rng: random.Random, current: float, used: set) -> float:
    choices = [t for t in TEMPERATURES if t != current and t not in used] or \
              [t for t in TEMPERATURES if t != current]
    return rng.choice(choices)


async def visitor(i: int, base: str, args, bounds: Bounds, stats: dict, on_tune) -> Visit:
    """Open a link, then keep changing the seed or the temperature until the bounds say stop."""
    visit = Visit(f"visitor {i}")
    rng = random.Random(args.rng_seed * 1000 + i)
    seed, temperature, used = SEED_BASE * (i + 1), 1.0, set()
    await asyncio.sleep(rng.uniform(0, args.ramp))
    if not bounds.claim(visit):
        return visit
    s = Session(base, visit.name, stats, {} if args.cookies else None)
    async with visiting(visit, s):
        t0 = time.perf_counter()
        await s.connect()
        s.query = query_for(seed, args.length, temperature, args.model_id)
        page = await s.run(page_name=args.page)
        used.add(temperature)
        on_tune(record(visit, page, seed, temperature, args.length, True, t0))
        while True:
            await asyncio.sleep(args.think * rng.uniform(*JITTER))
            if not bounds.claim(visit):
                break
            if rng.random() < CHANGE_SEED:
                seed, used = seed + 1, set()
                change = int_state(widget_id(s.page, "number_input", "Random seed"), seed)
            else:
                temperature = next_temperature(rng, temperature, used)
                change = slider_state(widget_id(s.page, "slider", "Temperature"), temperature)
            used.add(temperature)
            t0 = time.perf_counter()
            page = await s.run([change])
            on_tune(record(visit, page, seed, temperature, args.length, False, t0))
    return visit


@asynccontextmanager
async def visiting(visit: Visit, s: Session):
    """A visit's session: an error ends the visit (it is reported with the results), and what
    the session saw, and who served it, stays with the visit once it is closed."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - reported with the results
        visit.error = f"{type(e).__name__}: {str(e)[:300]}"
    finally:
        await s.close()
        visit.exceptions, visit.problems = s.exceptions, s.problems
        visit.replica = s.upgrade_headers.get(REPLICA_HEADER)


def widget_id(page: Page | None, kind: str, label: str) -> str:
    w = page.find(kind, label) if page is not None else None
    if w is None:
        raise RunFailed(f"the page has no {kind} labelled {label!r}")
    return w.id


# -- the trainer --------------------------------------------------------------------------------
async def trainer(base: str, args, stats: dict, tmpdir: Path | None, work: Path,
                  warm: asyncio.Event) -> Visit:
    """Open a link, go to the Train view, train the tiny preset, sample from the model.
    Training starts once every visitor has had its first tune, so the tunes written while it
    trains compare with the tunes written while nobody does, not with a warming server."""
    visit = Visit("trainer")
    s = Session(base, visit.name, stats, {} if args.cookies else None)
    async with visiting(visit, s):
        t0 = time.perf_counter()
        await s.connect()
        s.query = query_for(TRAINER_SEED, TRAINER_LENGTH, 1.0, args.model_id)
        page = await s.run(page_name=args.page)
        record(visit, page, TRAINER_SEED, 1.0, TRAINER_LENGTH, True, t0)
        if args.train_page in s.pages:  # st.navigation: switch pages as the browser does
            page = await s.run(page_hash=s.pages[args.train_page], only_main=True)
        # else: one page with tabs, the Train widgets are in this run already
        steps = page.find("number_input", "Steps")
        if steps is None:
            raise RunFailed("no Steps box in the Train view")
        page = await s.run([int_state(steps.id, args.train_steps)])
        try:
            await asyncio.wait_for(warm.wait(), PAGE_TIMEOUT_S)
        except TimeoutError:
            pass  # a visitor that failed never warms: train anyway
        t_start = time.perf_counter()
        page = await s.run([trigger(widget_id(page, "button", "Start training"))])
        visit.trained = await follow_training(s, args.train_timeout)
        visit.trained["seconds"] = round(time.perf_counter() - t_start, 1)
        visit.training_window = (t_start, time.perf_counter())
        use = widget_id(s.page, "button", "Use this model for sampling")
        t0 = time.perf_counter()
        page = await s.run([trigger(use)])
        record(visit, page, TRAINER_SEED, 1.0, TRAINER_LENGTH, False, t0)
        visit.trained["on_generate_page"] = not s.pages or page.page_hash == s.pages.get(
            args.page)
        if tmpdir is not None:  # copy it now: the model goes when the session ends
            visit.trained_model = copy_trained_model(tmpdir, work)
    return visit


async def follow_training(s: Session, timeout: float) -> dict:
    """Wait (answering the panel's timed reruns) until a full run shows the finished job."""
    deadline = time.perf_counter() + timeout
    progress = None
    while True:
        page = s.page
        bar = page.find("progress") if page else None
        if bar is not None:
            progress = bar.text
        failed = [a for a in page.alerts() if a.startswith("Training failed")] if page else []
        if failed:
            raise RunFailed(failed[0][:300])
        if s.last_full and page.find("button", "Use this model for sampling"):
            return {"progress": progress, "fragment_reruns": s.fragment_runs,
                    "done": next((a for a in page.alerts() if "model is saved" in a), None)}
        left = deadline - time.perf_counter()
        if left <= 0:
            raise RunFailed(f"training not done within {timeout:.0f} s (last: {progress})")
        try:
            await s.next_finish(min(left, 30))
        except TimeoutError:
            continue


def copy_trained_model(tmpdir: Path, work: Path) -> Path | None:
    """A copy of the (newest) trained checkpoint in the server's TMPDIR: the job folder holds
    it in model/ (abcweb/web/training_job.py), or was it itself when training ran in a thread."""
    found = list(tmpdir.glob("abcweb-train-*/model/model.json")) or list(
        tmpdir.glob("abcweb-train-*/model.json"))
    if not found:
        return None
    newest = max(found, key=lambda p: p.stat().st_mtime).parent
    out = work / "trained-model"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(newest, out, ignore=shutil.ignore_patterns("tmp"))
    return out
