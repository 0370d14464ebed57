"""What every view of the page shares: the process-wide cached resources (one model, one
render pool, bounded caches for every visitor) and the session's settings."""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import streamlit as st

from abcweb.model.checkpoint import CheckpointError, shipped_models
from abcweb.music import headers
from abcweb.music.corpus import load_bytes, load_music21
from abcweb.sampling.loop import Generation
from abcweb.sampling.sampler import Sampler, load_sampler
from abcweb.sound import abctools
from abcweb.web import charts, params, tunebook
from abcweb.web.messages import as_text, public_message

# One script per view; st.navigation runs only the open one (st.tabs ran every tab on every
# rerun). Paths are relative to streamlit_app.py.
PAGES = {"generate": "views/generate.py", "inside": "views/inside.py", "train": "views/train.py",
         "about": "views/about.py", "tunebook": "views/tunebook.py", "edit": "views/edit.py"}
# Settings that outlive a visit to another view: Streamlit forgets a widget's value when a run
# does not draw it, unless the run writes it back (keep_settings).
KEPT = ("seed", "prime", "length", "temperature", "top_k", "top_p", "best", "form", "tempo",
        "instrument", "transpose", "meter", "key", "model",
        "device", "train_corpus", "train_recipe", "train_steps", "train_lr", "inside_unit")
SHIPPED = "shipped"
EARLIER = "shipped:"  # + an id: a model shipped before the current one (weights/<id>/)
MAX_SESSION_MODELS = 3  # trained models kept per browser session (each holds a temp folder)
ANY = "any"
CPU, GPU = "CPU · NumPy sampler", "GPU · TensorFlow sampler"
LEARNING_RATES = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2]
GENERATIONS_CACHED = 64  # tunes kept per process (each with its logits: ~0.2 MB)
# The player gets the compressed web format (MP3: every browser, Safari too; ~8 KB a second)
# rather than WAV (~90 KB a second): a shared demo is played over real networks. WAV is a
# download, encoded from the cached render when its button is pressed.
PLAYER_FORMAT, PLAYER_MIME = abctools.WEB_FORMAT, abctools.WEB_MIME


# Both read on every run (cheap), as when the page was one script run afresh each time: a
# test or an operator can change them without a restart.
def shipped_path() -> str | None:
    """For development and tests only: sample from another checkpoint folder than weights/."""
    return os.environ.get("ABCWEB_WEIGHTS") or None


def stream_after_s() -> float:
    """Stream the text when writing it is expected to take longer than this many seconds."""
    return float(os.environ.get("ABCWEB_STREAM_AFTER", "1.5"))


# -- process-wide resources (shared read-only by every visitor) -----------------------------
def model_path(model: str) -> str | None:
    """The checkpoint folder of a model choice (None: weights/). Part of every cache key, so
    a test that points ABCWEB_WEIGHTS elsewhere never meets another model's cached tunes."""
    if model == SHIPPED:
        return shipped_path()
    if model.startswith(EARLIER):
        return str(known_models(shipped_path())[model.removeprefix(EARLIER)])
    return model


@st.cache_resource(show_spinner=False, max_entries=4)
def known_models(path: str | None) -> dict:
    """Id -> folder of the shipped model (first) and the earlier ones kept for old links;
    empty when the shipped model is missing or damaged (the page says so when it samples)."""
    try:
        return shipped_models(path)
    except (CheckpointError, OSError):
        return {}


def current_model_id() -> str:
    return next(iter(known_models(shipped_path())), "")


@st.cache_resource(show_spinner=False, max_entries=8)
def get_sampler(path: str | None, backend: str) -> Sampler:
    """The shipped model (path None) or a checkpoint folder, loaded once per process."""
    return load_sampler(path, backend)


@st.cache_resource(show_spinner=False, max_entries=GENERATIONS_CACHED)
def generate(path: str | None, backend: str, prime: str, length: int, temperature: float,
             seed: int, top_k: int, top_p: float, best: int, form: bool
             ) -> tuple[Generation, float]:
    t0 = time.perf_counter()
    g = get_sampler(path, backend).generate(prime, length, temperature, seed, top_k,
                                            stop_at_end=True, best_of=best, top_p=top_p,
                                            form=form)
    return g, time.perf_counter() - t0


@st.cache_resource(show_spinner=False)
def header_choices() -> headers.HeaderChoices:
    return headers.from_corpora()


@st.cache_resource(show_spinner=False, max_entries=4)
def music21_corpus(name: str):
    return load_music21(name)


@st.cache_resource(show_spinner=False, max_entries=4)
def uploaded_corpus(data: bytes, name: str):
    return load_bytes(data, name or "upload")


@st.cache_resource(show_spinner=False)
def render_pool() -> ThreadPoolExecutor:
    # The tools are subprocesses: checking, drawing and playing a tune overlap in time.
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="abcweb-render")


@st.cache_resource(show_spinner=False, max_entries=32)
def tune_charts(key: tuple, _g: Generation) -> dict:
    """Charts depend only on the generation: built once per tune, not on every click."""
    columns = charts.steps_columns(_g)
    return {"prob": charts.probability_spec(_g, columns),
            "entropy": charts.entropy_spec(_g, columns)}


@st.cache_resource(show_spinner=False, max_entries=16)
def seconds_per_char(path: str | None, backend: str) -> float:
    """How long the model takes per character here: the best of 3 runs of 64 characters,
    after one that starts the sampling worker and loads the model there (0.4-0.6 s, which
    made every tune stream). Timed once per model: a busy moment must not decide it. The
    model's own draw: only it streams (drafts are judged once all are written)."""
    sampler = get_sampler(path, backend)
    sampler.generate("X", 8, 1.0, 0, 0, stop_at_end=False, best_of=1)
    best = math.inf
    for seed in range(3):
        t0 = time.perf_counter()
        sampler.generate("X", 64, 1.0, seed, 0, stop_at_end=False, best_of=1)
        best = min(best, time.perf_counter() - t0)
    return best / 64


class Recent:
    """The last `size` keys seen (a bounded, thread-safe set): which generations are likely
    still in generate()'s cache, without keeping every visitor's arguments forever."""

    def __init__(self, size: int):
        self.size = size
        self.keys: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def __contains__(self, key) -> bool:
        with self.lock:
            return key in self.keys

    def add(self, key) -> None:
        with self.lock:
            self.keys[key] = None
            self.keys.move_to_end(key)
            while len(self.keys) > self.size:
                self.keys.popitem(last=False)


@st.cache_resource(show_spinner=False)
def written() -> Recent:
    """Generation arguments recently written (generate() keeps GENERATIONS_CACHED)."""
    return Recent(GENERATIONS_CACHED)


@st.cache_resource(show_spinner=False)
def favicon():
    """A green note on white, drawn here. A Material icon makes the browser fetch the favicon
    from fonts.gstatic.com; an emoji costs 0.4 s of the first page load (Streamlit compiles
    its emoji table)."""
    y, x = np.mgrid[0:32, 0:32]
    img = np.full((32, 32, 3), 255, np.uint8)
    head = ((x - 12) / 7.0) ** 2 + ((y - 23) / 5.0) ** 2 <= 1  # the note head
    stem = (x >= 17) & (x <= 19) & (y >= 4) & (y <= 23)
    flag = (x >= 19) & (x <= 26) & (y >= 4) & (y <= 11) & (x - 19 <= (y - 3))
    img[head | stem | flag] = (46, 125, 50)
    from PIL import Image  # Streamlit's own dependency

    return Image.fromarray(img)


# -- session state --------------------------------------------------------------------------
def init_state() -> None:
    """On a session's first run, take the settings from the link (query parameters)."""
    if st.session_state.get("_ready"):
        return
    query = st.query_params.to_dict()
    # The page's replica watcher (streamlit_app.py) reloads with moved=1 after a failover.
    st.session_state.moved = query.pop("moved", None) == "1"
    if "moved" in st.query_params:
        del st.query_params["moved"]
    settings, messages = params.from_query(query)
    for name, value in settings.as_dict().items():
        st.session_state[name] = value
    meter, key = _header_of(settings.prime)
    st.session_state.meter = meter
    st.session_state.key = key
    st.session_state.model = model_for_link(settings.model, messages)
    st.session_state.device = CPU
    st.session_state.jobs = []
    st.session_state.link_messages = messages
    st.session_state._ready = True


def model_for_link(model_id: str, messages: list[str]) -> str:
    """The model choice a link's model id names: the shipped model, or an earlier one that
    this server still keeps."""
    models = known_models(shipped_path())
    if not model_id or model_id == current_model_id():
        return SHIPPED
    if model_id in models:
        return EARLIER + model_id
    if model_id != params.LEGACY_MODEL:  # such links predate ids: any shipped model is theirs
        messages.append(f"this link was made with model {model_id}, which this server does "
                        "not have: here is the current model's tune")
    return SHIPPED


def keep_settings() -> None:
    for name in KEPT:
        if name in st.session_state:
            st.session_state[name] = st.session_state[name]


def _header_of(prime: str) -> tuple[str, str]:
    choices = header_choices()
    meters = {m for m, _ in choices.meters}
    keys = {k for k, _ in choices.keys}
    meter = key = ANY
    for line in prime.split("\n"):
        if line.startswith("M:") and line[2:].strip() in meters:
            meter = line[2:].strip()
        if line.startswith("K:") and line[2:].strip() in keys:
            key = line[2:].strip()
    return meter, key


def current_settings() -> params.Settings:
    s = st.session_state
    # Links name a shipped model: a model trained here lives only in this session.
    model = (s.model.removeprefix(EARLIER) if s.model.startswith(EARLIER)
             else current_model_id())
    return params.Settings(int(s.seed), s.prime, int(s.length),
                           params.round_temperature(float(s.temperature)), int(s.top_k),
                           params.round_top_p(float(s.top_p)), int(s.best), int(s.tempo),
                           s.instrument, int(s.transpose), model, bool(s.form))


def session_models() -> dict[str, str]:
    """Model id -> label: the shipped model and this session's trained models."""
    out = {SHIPPED: "Shipped model"}
    for model_id in list(known_models(shipped_path()))[1:]:
        out[EARLIER + model_id] = f"Earlier shipped model ({model_id})"
    for job in st.session_state.get("jobs", []):
        if job.checkpoint_path is not None:
            out[str(job.checkpoint_path)] = f"Trained here: {job.name}"
    return out


def sampler_or_error(model: str, backend: str) -> tuple[Sampler | None, str]:
    """The sampler for a model, and the model it is: a trained model that cannot be loaded
    falls back to the shipped one, with a warning; None when no model loads."""
    if model != SHIPPED:
        try:
            return get_sampler(model_path(model), backend), model
        except CheckpointError as e:
            st.warning(f"This model cannot be loaded: {as_text(public_message(e))}. Here is the "
                       "shipped "
                       "model's tune instead.")
            model = SHIPPED
    try:
        return get_sampler(model_path(model), backend), model
    except CheckpointError as e:
        st.error(f"The shipped model cannot be loaded: {as_text(public_message(e))}. Train a "
                 "model in "
                 "the Train page to sample from it, or put a checkpoint in weights/.")
    return None, model


# -- the session's tunebook and editor (views/tunebook.py, views/edit.py) ----------------------
def use_settings(settings: params.Settings, model: str = "") -> list[str]:
    """Make settings the session's, as opening their link would: the Generate page then
    writes their tune. `model` is a model choice of this session (a trained model), used
    while the session still has it; else the model the settings name."""
    messages: list[str] = []
    for name, value in settings.as_dict().items():
        st.session_state[name] = value
    st.session_state.meter, st.session_state.key = _header_of(settings.prime)
    st.session_state.model = (model if model and model in session_models()
                              else model_for_link(settings.model, messages))
    return messages


def use_prime(prime: str) -> None:
    """A new seed text for the Generate page, with the meter and key boxes to match."""
    st.session_state.prime = prime
    st.session_state.meter, st.session_state.key = _header_of(prime)


def book() -> list[tunebook.Entry]:
    """The tunes this session keeps, oldest first."""
    return st.session_state.setdefault("book", [])


def toggle_kept(entry: tunebook.Entry) -> None:
    kept = [e for e in book() if not entry.same_tune(e)]
    st.session_state.book = kept if len(kept) < len(book()) else tunebook.add(book(),
                                                                              [entry])[0]


def keep_button(entry: tunebook.Entry) -> None:
    """A star by a tune: keep it in the tunebook, or take it out again. Not a fragment: a
    fragment's rerun made Streamlit forget the sidebar's settings (a view that does not draw
    them then lost them: tests/test_browser_tunebook.py). A click reruns the page from its
    caches: the tune, its renders and its charts."""
    kept = any(entry.same_tune(e) for e in book())
    full = not kept and len(book()) >= tunebook.MAX_TUNES
    st.button("Kept" if kept else "Keep", icon=":material/star:" if kept
              else ":material/star_border:", on_click=toggle_kept, args=(entry,),
              disabled=full, width="stretch", key="keep_tune",
              help=f"The tunebook is full ({tunebook.MAX_TUNES} tunes)" if full else
              "In your tunebook (the Tunebook page); click again to take it out" if kept
              else "Keep this tune in your tunebook (the Tunebook page)")


def open_in_editor(text: str) -> None:
    st.session_state.edit_source = text
    st.switch_page(PAGES["edit"])
