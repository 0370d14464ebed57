"""abcweb dashboard: a character-level LSTM writes Irish folk tunes in ABC notation.

    streamlit run streamlit_app.py

The page is a thin layer over the library: `abcweb.sampler` writes the tune, `abcweb.abctools`
checks, draws and plays it, `abcweb.charts` shows what the model was thinking,
`abcweb.training_job` trains a model in the background and `abcweb.params` turns the settings
into a share link. TensorFlow is never imported on the way to the first tune: the NumPy
sampler does not need it; only training and the TensorFlow sampler load it.
"""

from __future__ import annotations

import html
import json
import os
import random
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import streamlit as st

from abcweb import abctools, charts, headers, params, tunes
from abcweb.checkpoint import CheckpointError
from abcweb.corpus import MUSIC21_COLLECTIONS, CorpusError, load_bytes, load_music21
from abcweb.messages import public_message
from abcweb.model import UnknownCharacters
from abcweb.sampler import Generation, Sampler, load_sampler
from abcweb.training_job import MAX_CONCURRENT, RECIPES, TrainingJob

SHIPPED = "shipped"
# For development and tests only: sample from another checkpoint folder instead of weights/.
SHIPPED_PATH = os.environ.get("ABCWEB_WEIGHTS") or None
# Stream the text when writing it is expected to take longer than this many seconds.
STREAM_AFTER_S = float(os.environ.get("ABCWEB_STREAM_AFTER", "1.5"))
MAX_SESSION_MODELS = 3  # trained models kept per browser session (each holds a temp folder)
ANY = "any"
CPU, GPU = "CPU · NumPy sampler", "GPU · TensorFlow sampler"
LEARNING_RATES = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2]
GENERATIONS_CACHED = 64  # tunes kept per process (each with its logits: ~0.2 MB)
# The player gets the compressed web format (MP3: every browser, Safari too; ~8 KB a second)
# rather than WAV (~90 KB a second): a shared demo is played over real networks. WAV is a
# download, encoded from the cached render when its button is pressed.
PLAYER_FORMAT, PLAYER_MIME = abctools.WEB_FORMAT, abctools.WEB_MIME


# -- process-wide resources (shared read-only by every visitor) -----------------------------
def model_path(model: str) -> str | None:
    """The checkpoint folder of a model id (None: weights/). Part of every cache key, so
    a test that points ABCWEB_WEIGHTS elsewhere never meets another model's cached tunes."""
    return SHIPPED_PATH if model == SHIPPED else model


@st.cache_resource(show_spinner=False, max_entries=8)
def get_sampler(path: str | None, backend: str) -> Sampler:
    """The shipped model (path None) or a checkpoint folder, loaded once per process."""
    return load_sampler(path, backend)


@st.cache_resource(show_spinner=False, max_entries=GENERATIONS_CACHED)
def generate(path: str | None, backend: str, prime: str, length: int, temperature: float,
             seed: int, top_k: int) -> tuple[Generation, float]:
    t0 = time.perf_counter()
    g = get_sampler(path, backend).generate(prime, length, temperature, seed, top_k,
                                            stop_at_end=True)
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
    return {"prob": charts.probability_chart(_g), "entropy": charts.entropy_chart(_g)}


@st.cache_resource(show_spinner=False, max_entries=16)
def seconds_per_char(path: str | None, backend: str) -> float:
    """How long the model takes per character here (32 characters, timed once)."""
    t0 = time.perf_counter()
    get_sampler(path, backend).generate("X", 32, 1.0, 0, 0, stop_at_end=False)
    return (time.perf_counter() - t0) / 32


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
    settings, messages = params.from_query(st.query_params.to_dict())
    for name, value in settings.as_dict().items():
        st.session_state[name] = value
    meter, key = _header_of(settings.prime)
    st.session_state.meter = meter
    st.session_state.key = key
    st.session_state.model = SHIPPED
    st.session_state.device = CPU
    st.session_state.jobs = []
    st.session_state.link_messages = messages
    st.session_state._ready = True


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
    return params.Settings(int(s.seed), s.prime, int(s.length),
                           params.round_temperature(float(s.temperature)), int(s.top_k))


def session_models() -> dict[str, str]:
    """Model id -> label: the shipped model and this session's trained models."""
    out = {SHIPPED: "Shipped model"}
    for job in st.session_state.get("jobs", []):
        if job.checkpoint_path is not None:
            out[str(job.checkpoint_path)] = f"Trained here: {job.name}"
    return out


# -- sidebar --------------------------------------------------------------------------------
def new_seed() -> None:
    st.session_state.seed = random.randrange(params.SEED_MAX + 1)


def write_header() -> None:
    choices = header_choices()
    meter = None if st.session_state.meter == ANY else st.session_state.meter
    key = None if st.session_state.key == ANY else st.session_state.key
    unit = choices.unit_for_meter.get(meter) if meter else None
    st.session_state.prime = headers.prime_for(meter, key, unit)


def sidebar_seed() -> None:
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    left.number_input("Random seed", min_value=0, max_value=params.SEED_MAX, step=1,
                      key="seed", help="The same seed and settings always give the same tune.")
    right.button("New", icon=":material/casino:", on_click=new_seed, width="stretch",
                 help="A new random seed: a new tune with the same settings.")


def sidebar_seed_text() -> None:
    choices = header_choices()
    counts_m = dict(choices.meters)
    counts_k = dict(choices.keys)
    left, right = st.columns(2)
    left.selectbox("Meter", [ANY] + list(counts_m), key="meter", on_change=write_header,
                   format_func=lambda m: m if m == ANY else headers.meter_label(m),
                   help=f"Meters used by at least a few of the {choices.tunes:,} tunes in the "
                        "bundled collections, most used first.")
    right.selectbox("Key", [ANY] + list(counts_k), key="key", on_change=write_header,
                    help="Keys as the collections write them, most used first.")
    st.text_area("Seed text", key="prime", height=110, max_chars=params.MAX_PRIME,
                 help="The ABC the tune starts from; the model carries on from its last "
                      "character. Meter and key above write these header lines for you.")


def sidebar_sampling() -> None:
    st.slider("Length (characters at most)", params.LENGTH_MIN, params.LENGTH_MAX,
              step=params.LENGTH_STEP, key="length",
              help="The model stops earlier when it finishes a tune.")
    st.slider("Temperature", params.TEMPERATURE_MIN, params.TEMPERATURE_MAX,
              step=params.TEMPERATURE_STEP, key="temperature", format="%.2f",
              help="0 always takes the likeliest character; 1 samples the model as it is; "
                   "above 1 is wilder.")
    st.slider("Top-k", 0, params.TOP_K_MAX, key="top_k",
              help="Draw only from the k likeliest characters (0: no cut).")


def sidebar_model() -> tuple[str, str]:
    models = session_models()
    if "use_model" in st.session_state:
        st.session_state.model = st.session_state.pop("use_model")
    if st.session_state.model not in models:
        st.session_state.model = SHIPPED
    st.selectbox("Model", list(models), key="model", format_func=models.get,
                 help="The shipped model, or one you trained in the Train tab (it lives only "
                      "in this browser session).")
    st.radio("Sampler runs on", [CPU, GPU], key="device", horizontal=False,
             help="The NumPy sampler needs no TensorFlow and is fastest for one tune on a "
                  "CPU. The TensorFlow sampler runs the whole loop as one tf.function, on "
                  "the GPU when TensorFlow sees one.")
    backend = "numpy" if st.session_state.device == CPU else "tf"
    if backend == "tf" and not _gpu_driver():
        st.caption("No GPU on this host: TensorFlow runs the sampler on the CPU. Its first "
                   "tune waits for TensorFlow to load (a few seconds).")
    return st.session_state.model, backend


def _gpu_driver() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia/version")


def sidebar_share(settings: params.Settings, model: str) -> str:
    url = params.share_url(st.context.url, settings)
    st.query_params.from_dict(params.to_query(settings))  # the address bar is the link too
    st.markdown("**Share this tune**")
    copy_button(url)
    st.code(url, language=None, wrap_lines=True)
    if model != SHIPPED:
        st.caption("Links bring back tunes of the shipped model: a model trained here "
                   "lives only in this browser session.")
    return url


def copy_button(url: str) -> None:
    # The URL is percent-encoded (no quotes or angle brackets); json.dumps makes it a JS
    # string, and escaping '<' keeps it from ever closing the script tag.
    literal = json.dumps(url).replace("<", "\\u003c")
    st.html(
        '<button id="abcweb-copy" data-testid="abcweb-copy-link" style="padding:4px 12px;'
        'border:1px solid #2e7d32;border-radius:6px;background:#fff;color:#2e7d32;'
        'cursor:pointer">Copy link</button>'
        f"<script>(function(){{const b=document.getElementById('abcweb-copy');"
        f"if(!b)return;b.onclick=async()=>{{const u={literal};"
        "try{await navigator.clipboard.writeText(u);b.textContent='Copied';}"
        "catch(e){window.prompt('Copy this link',u);}"
        "setTimeout(()=>{b.textContent='Copy link'},2000);};})();</script>",
        unsafe_allow_javascript=True)


def sidebar() -> tuple[params.Settings, str, str]:
    with st.sidebar:
        st.header("Tune")
        sidebar_seed()
        sidebar_seed_text()
        sidebar_sampling()
        st.divider()
        model, backend = sidebar_model()
        st.divider()
        settings = current_settings()
        sidebar_share(settings, model)
    return settings, model, backend


# -- Generate tab ---------------------------------------------------------------------------
def sampler_or_error(model: str, backend: str) -> tuple[Sampler | None, str]:
    """The sampler for a model, and the model it is: a trained model that cannot be loaded
    falls back to the shipped one, with a warning; None when no model loads."""
    if model != SHIPPED:
        try:
            return get_sampler(model_path(model), backend), model
        except CheckpointError as e:
            st.warning(f"This model cannot be loaded: {public_message(e)}. Here is the shipped "
                       "model's tune instead.")
            model = SHIPPED
    try:
        return get_sampler(model_path(model), backend), model
    except CheckpointError as e:
        st.error(f"The shipped model cannot be loaded: {public_message(e)}. Train a model in "
                 "the Train tab to sample from it, or put a checkpoint in weights/.")
    return None, model


def write_tune(sampler: Sampler, settings: params.Settings, model: str, backend: str
               ) -> tuple[Generation, float, bool] | None:
    """The generation for the settings (cached); streamed into the page when writing it is
    expected to take long. Returns (generation, seconds, was cached) or None on an error."""
    args = (model_path(model), backend, settings.prime, settings.length,
            settings.temperature, settings.seed, settings.top_k)
    try:
        # Streaming costs a second pass for the charts' logits: only worth it when the
        # text would otherwise keep a visitor waiting.
        if (backend == "numpy" and args not in written()
                and seconds_per_char(*args[:2]) * settings.length > STREAM_AFTER_S):
            slot = st.empty()
            text = settings.prime
            for chunk in sampler.stream(settings.prime, settings.length, settings.temperature,
                                        settings.seed, settings.top_k, stop_at_end=True):
                text += chunk
                slot.code(text + "▌", language=None)
            slot.empty()
        t0 = time.perf_counter()
        if backend == "tf" and args not in written():
            # The tf sampler imports TensorFlow and traces its loop on first use.
            with st.spinner("Writing with the TensorFlow sampler (loading TensorFlow the "
                            "first time: a few seconds)…"):
                g, seconds = generate(*args)
        else:
            g, seconds = generate(*args)
        cached = time.perf_counter() - t0 < seconds  # a hit costs far less than the run
        written().add(args)
    except ImportError as e:
        st.error(f"The TensorFlow sampler is not available here ({public_message(e)}); choose "
                 "the CPU sampler.")
        return None
    except UnknownCharacters as e:
        st.error(f"Cannot start from this seed text: {public_message(e)}. Remove or replace "
                 "them (the model knows plain ASCII and newlines).")
        return None
    except ValueError as e:
        st.error(f"Cannot write a tune with these settings: {public_message(e)}")
        return None
    return g, seconds, cached


def start_renders(text: str) -> dict[str, Future]:
    pool = render_pool()
    return {"check": pool.submit(abctools.check, text),
            "svg": pool.submit(abctools.to_svg, text),
            "midi": pool.submit(abctools.to_midi, text),
            "audio": pool.submit(abctools.to_audio, text, PLAYER_FORMAT)}


def result(future: Future):
    """(value, None) or (None, message) for a render."""
    try:
        return future.result(timeout=60), None
    except abctools.ToolError as e:
        return None, public_message(e)
    except Exception as e:  # noqa: BLE001 - a render must never break the page
        return None, f"{type(e).__name__}: {public_message(e)}"


def pick_tune(g: Generation) -> tunes.Tune | None:
    found = tunes.split_tunes(g.text)
    return next((t for t in found if t.complete), found[0] if found else None)


def abc_html(g: Generation, tune: tunes.Tune | None, problems) -> str:
    """The text with line numbers; lines abc2midi complains about are marked, with the
    message on hover and below the line; the seed text is grey."""
    marks: dict[int, list] = {}
    for p in problems:
        if tune is None or p.line is None:
            continue
        line = tune.source_line(p.line)
        if line is not None:
            marks.setdefault(line, []).append(p)
    prime_lines = g.prime.count("\n") + 1
    rows = []
    lines = g.text.split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()  # the blank line that ends a tune is not worth a row
    for n, line in enumerate(lines, 1):
        ps = marks.get(n, [])
        err = any(p.level == "error" for p in ps)
        bg = "#ffebee" if err else "#fff8e1" if ps else "transparent"
        sign = "✗" if err else "!" if ps else " "
        colour = "#c62828" if err else "#ef6c00"
        title = html.escape(" · ".join(f"{p.level}: {p.message}" for p in ps), quote=True)
        body = html.escape(line) or " "
        if n < prime_lines or (n == prime_lines and not g.prime.endswith("\n")):
            body = f'<span style="color:#9e9e9e" title="seed text">{body}</span>'
        kind = "error" if err else "warning" if ps else "ok"
        rows.append(
            f'<div data-line="{n}" data-status="{kind}" title="{title}" '
            f'style="background:{bg};white-space:pre-wrap;word-break:break-all">'
            f'<span style="color:#9e9e9e;user-select:none;display:inline-block;width:2.6em">'
            f'{n:>3}</span><span style="color:{colour};user-select:none;display:inline-block;'
            f'width:1.2em">{sign}</span>{body}</div>')
        for p in ps[:2]:
            rows.append(f'<div style="color:{colour};font-size:0.8em;padding-left:3.8em">'
                        f'{html.escape(p.level)}: {html.escape(p.message)}</div>')
    return ('<div data-testid="abc-text" style="font-family:ui-monospace,monospace;'
            'font-size:0.85rem;line-height:1.45;max-height:460px;overflow:auto;'
            'border:1px solid #e0e0e0;border-radius:6px;padding:6px 4px">'
            + "".join(rows) + "</div>")


def verdict(g: Generation, tune: tunes.Tune | None, check, check_error: str | None) -> None:
    if tune is None:
        st.error("✗ No tune: the text holds no ABC tune (a tune needs a K: header line and "
                 "notes). Try a seed text that starts with X:.")
        return
    if check_error:
        st.warning(f"Cannot check this tune: {check_error}")
    elif check.valid:
        off = f", {check.bad_bars} off the meter" if check.bad_bars else ""
        st.success(f"✓ Valid ABC: abc2midi reads it without errors ({check.bars} bars{off}).")
    else:
        n = len(check.errors)
        st.error(f"✗ Invalid ABC: abc2midi found {n} error{'s' if n != 1 else ''} (marked "
                 "in red in the text).")
    if not tune.complete:
        st.warning(f"The tune was cut off at {len(g.generated)} characters before it ended: "
                   "raise the length for a whole tune.")
    if tune.added:
        st.caption("Added for the tools: " + ", ".join(tune.added) + " (the model left "
                   "them out).")


def file_stem(settings: params.Settings) -> str:
    return f"abcweb-seed{settings.seed}-t{settings.temperature:g}-k{settings.top_k}"


def generate_tab(settings: params.Settings, model: str, backend: str) -> None:
    st.session_state.pop("_rendered", None)
    st.session_state.pop("_text", None)
    for message in st.session_state.pop("link_messages", []):
        st.warning(f"From the link: {message}")
    sampler, model = sampler_or_error(model, backend)
    if sampler is None:
        return
    out = write_tune(sampler, settings, model, backend)
    if out is None:
        return
    g, seconds, cached = out
    st.session_state._text = g.text  # exactly what was written (st.code trims the end)
    tune = pick_tune(g)
    renders = start_renders(tune.text) if tune is not None else {}
    key = (model_path(model), backend, g.prime, g.generated, g.temperature, g.top_k)
    built = tune_charts(key, g) if g.generated else None  # overlaps with the renders

    check, check_error = result(renders["check"]) if renders else (None, None)
    verdict(g, tune, check, check_error)
    st.caption(f"{len(g.generated)} characters written in {seconds:.2f} s "
               f"({'cached' if cached else backend})"
               + (" · stopped at the end of the tune" if g.stopped == "end" else ""))

    left, right = st.columns([5, 6], gap="medium")
    with left:
        st.html(abc_html(g, tune, check.problems if check else []))
        with st.expander("ABC text to copy"):
            st.code(g.text, language=None)
    media = right.container()

    # The charts go out first, while fluidsynth is still rendering the audio (the slowest
    # part of a new tune); then the sheet music and the player fill their place above.
    if built is None:
        st.info("The model wrote nothing (length 0): nothing to chart.")
    else:
        thinking(g, built)
    with media:
        tune_media(g, tune, renders, settings)


def tune_media(g: Generation, tune: tunes.Tune | None, renders: dict,
               settings: params.Settings) -> None:
    if tune is None:
        return
    svg, svg_error = result(renders["svg"])
    if svg is not None:
        st.image(svg, width="stretch")
    else:
        st.warning(f"No sheet music: {svg_error}")
    audio, audio_error = result(renders["audio"])
    if audio is not None:
        st.audio(audio, format=PLAYER_MIME)
    else:
        st.warning(f"No audio: {audio_error}")
    midi, midi_error = result(renders["midi"])
    # What reached the page, for tests (AppTest cannot read audio) and for debugging.
    st.session_state._rendered = {
        "tune": tune.text, "svg": len(svg or ""), "midi": len(midi or b""),
        "audio": len(audio or b""), "audio_head": (audio or b"")[:4],
        "errors": [e for e in (svg_error, audio_error, midi_error) if e]}
    stem = file_stem(settings)
    a, b, c, d = st.columns(4)
    a.download_button("ABC", tune.text.encode(), f"{stem}.abc", "text/vnd.abc",
                      on_click="ignore", width="stretch", icon=":material/download:")
    if midi is not None:
        b.download_button("MIDI", midi, f"{stem}.mid", "audio/midi", on_click="ignore",
                          width="stretch", icon=":material/download:")
    else:
        b.caption(f"No MIDI: {midi_error}")
    if audio is not None:
        c.download_button(PLAYER_FORMAT.upper(), audio, f"{stem}.{PLAYER_FORMAT}", PLAYER_MIME,
                          on_click="ignore", width="stretch", icon=":material/download:")
        d.download_button("WAV", partial(download_wav, tune.text), f"{stem}.wav", "audio/wav",
                          on_click="ignore", width="stretch", icon=":material/download:")


def download_wav(text: str) -> bytes:
    """WAV, encoded on click from the cached render (milliseconds)."""
    return abctools.to_audio(text, "wav")


# -- what the model was thinking ------------------------------------------------------------
def on_pick(chart_key: str) -> None:
    step = charts.picked_step(st.session_state.get(chart_key), st.session_state._steps)
    if step is not None:
        st.session_state.step = step


@st.fragment
def thinking(g: Generation, built: dict) -> None:
    """Charts of the model's probabilities. A fragment: picking a step redraws only this."""
    st.subheader("What the model was thinking")
    n = len(g.generated)
    st.session_state._steps = n
    tune_id = (g.prime, g.generated, g.temperature, g.top_k)
    if st.session_state.get("_step_for") != tune_id or st.session_state.get("step", n) >= n:
        # A new tune: start at its most surprising character.
        st.session_state.step = int(np.argmin([s.prob for s in g.steps]))
        st.session_state._step_for = tune_id
    # Heights given here: Streamlit's "content" height squeezes charts with titles.
    st.altair_chart(built["prob"], width="stretch", height=280, key="prob_chart",
                    on_select=partial(on_pick, "prob_chart"), selection_mode=charts.SELECTION)
    st.altair_chart(built["entropy"], width="stretch", height=250, key="entropy_chart",
                    on_select=partial(on_pick, "entropy_chart"),
                    selection_mode=charts.SELECTION)
    left, right = st.columns([1, 3], gap="medium")
    with left:
        st.number_input("Step", 0, n - 1, key="step",
                        help="Pick a step by clicking a chart above, or type it here.")
        step = int(st.session_state.step)
        s = g.steps[step]
        st.markdown(f"The model wrote **`{charts.show_char(s.char)}`** with probability "
                    f"**{s.prob:.3f}**; entropy {s.entropy:.2f} bits.")
        st.dataframe({"character": [charts.show_char(c) for c, _ in s.top],
                      "probability": [round(p, 4) for _, p in s.top]},
                     hide_index=True, width="stretch")
    with right:
        st.altair_chart(charts.distribution_chart(g, step), width="stretch", height=340,
                        key="distribution_chart")


# -- Train tab ------------------------------------------------------------------------------
UPLOAD = "upload"


def recipe_changed() -> None:
    r = RECIPES[st.session_state.train_recipe]
    st.session_state.train_steps = r.steps
    st.session_state.train_lr = r.learning_rate


def train_tab() -> None:
    st.markdown("Train a model on a corpus and watch the loss fall. It is yours alone: it "
                "lives in this browser session, and other visitors keep sampling the shipped "
                "model.")
    st.session_state.setdefault("train_recipe", "tiny")
    st.session_state.setdefault("train_steps", RECIPES["tiny"].steps)
    st.session_state.setdefault("train_lr", RECIPES["tiny"].learning_rate)
    jobs = st.session_state.jobs
    running = bool(jobs) and jobs[-1].running

    left, right = st.columns(2, gap="large")
    with left:
        source = st.selectbox(
            "Corpus", list(MUSIC21_COLLECTIONS) + [UPLOAD], key="train_corpus",
            format_func=lambda n: "Upload an .abc file…" if n == UPLOAD
            else MUSIC21_COLLECTIONS[n], disabled=running)
        uploaded, problem = None, None
        if source == UPLOAD:
            upload = st.file_uploader("ABC file", type=["abc", "txt"], key="train_upload",
                                      disabled=running)
            if upload is not None:
                try:
                    uploaded = uploaded_corpus(upload.getvalue(), Path(upload.name).stem)
                except CorpusError as e:
                    problem = public_message(e)
            if problem:
                st.error(f"Cannot train on this file: {problem}")
            elif uploaded is not None:
                st.caption(f"{uploaded.summary()}"
                           + (f" ({uploaded.dropped['tunes']} left out: several voices or no "
                              "K: line)" if uploaded.dropped.get("tunes") else ""))
        else:
            st.caption("Tunes bundled with music21, read as plain ABC.")
    with right:
        st.radio("Preset", list(RECIPES), key="train_recipe", on_change=recipe_changed,
                 format_func=lambda r: RECIPES[r].label, disabled=running,
                 captions=[r.help for r in RECIPES.values()])
        a, b = st.columns(2)
        a.number_input("Steps", 1, 20_000, key="train_steps", disabled=running)
        b.select_slider("Learning rate", LEARNING_RATES, key="train_lr", disabled=running,
                        format_func=lambda x: f"{x:g}")

    a, b, _ = st.columns([1, 1, 4])
    start = a.button("Start training", icon=":material/play_arrow:", type="primary",
                     disabled=running or (source == UPLOAD and uploaded is None),
                     width="stretch")
    stop = b.button("Stop", icon=":material/stop:", disabled=not running, width="stretch")
    if stop and jobs:
        jobs[-1].stop()
    if start:
        start_job(source, uploaded)
    training_progress()


def start_job(source: str, uploaded) -> None:
    s = st.session_state
    try:
        corpus = uploaded if source == UPLOAD else music21_corpus(source)
        job = TrainingJob.plan(s.train_recipe, corpus, int(s.train_steps), float(s.train_lr),
                               shipped=SHIPPED_PATH)
    except CorpusError as e:
        st.error(f"Cannot train on this file: {public_message(e)}")
        return
    except CheckpointError as e:
        st.error(f"Cannot fine-tune: the shipped model cannot be loaded ({public_message(e)}).")
        return
    except ValueError as e:
        st.error(f"Cannot train: {public_message(e)}")
        return
    s.jobs.append(job.start())
    for old in s.jobs[:-MAX_SESSION_MODELS]:  # keep the disk use of a session bounded
        old.cleanup()  # its model leaves the list; the sidebar falls back to the shipped one
    s.jobs = s.jobs[-MAX_SESSION_MODELS:]
    st.rerun()


def training_progress() -> None:
    jobs = st.session_state.jobs
    if not jobs:
        st.info("Pick a corpus and a preset, then start. The tiny preset shows the loss "
                "falling within a minute on a small CPU.")
        return
    job = jobs[-1]
    # Poll while training; a finished job needs no timer.
    st.fragment(run_every=1.0 if job.running else None)(job_panel)(job)


def job_panel(job: TrainingJob) -> None:
    metrics = job.metrics()
    state = job.state
    if state == "queued":
        st.info(f"Waiting: another visitor is training (at most {MAX_CONCURRENT} at a time "
                "on this host).")
    elif state == "starting":
        st.info("Starting TensorFlow and building the model (a few seconds the first time)…")
    last = metrics[-1] if metrics else None
    done = last["done"] if last else 0
    text = f"{job.name}: step {done} of {job.settings.steps}"
    if last:
        text += f" · train {last['train_bpc']:.3f} bits/char"
        vals = [m["val_bpc"] for m in metrics if m.get("val_bpc") is not None]
        if vals:
            text += f" · validation {vals[-1]:.3f}"
        text += f" · {last['chars_per_s']:,.0f} chars/s · {job.elapsed:.0f} s"
    st.progress(job.progress, text=text)
    if metrics:
        st.altair_chart(charts.loss_chart(_thin(metrics)), width="stretch", height=320,
                        key="loss_chart")
    if state == "failed":
        st.error(f"Training failed: {public_message(job.error)}")
    elif state in ("done", "stopped") and job.checkpoint_path is not None:
        st.success(("Stopped early: " if state == "stopped" else "Done: ")
                   + f"the model is saved ({done} steps). Sample from it, or download it.")
        a, b, _ = st.columns([2, 2, 3])
        if a.button("Use this model for sampling", icon=":material/music_note:",
                    type="primary", width="stretch", key=f"use_{id(job)}"):
            # The sidebar's model box exists already in this run: ask the next full run to
            # switch before it draws the box.
            st.session_state.use_model = str(job.checkpoint_path)
            st.rerun(scope="app")
        b.download_button("Checkpoint (.zip)", job.zip_bytes,  # zipped on click only
                          f"{job.name.replace(' ', '-')}.zip", "application/zip",
                          on_click="ignore", width="stretch", key=f"zip_{id(job)}",
                          icon=":material/download:")
    if st.session_state.get("_job_seen") is not job and not job.running:
        # The job just ended: rerun the whole page so the model list shows the new model.
        st.session_state._job_seen = job
        st.rerun(scope="app")


def _thin(metrics: list[dict], most: int = 600) -> list[dict]:
    # A loss chart needs no more points than it has pixels; keep every validation point.
    if len(metrics) <= most:
        return metrics
    every = len(metrics) // most + 1
    return [m for i, m in enumerate(metrics) if i % every == 0 or m.get("val_bpc") is not None
            or i == len(metrics) - 1]


# -- About tab ------------------------------------------------------------------------------
def about_tab(model: str, backend: str) -> None:
    st.markdown(
        "A character-level LSTM reads and writes [ABC notation](https://abcnotation.com), a "
        "plain-text way of writing tunes. It writes one character at a time: at each step it "
        "gives every character a probability, and the sampler draws one. **Temperature** "
        "sharpens (below 1) or flattens (above 1) those probabilities; **top-k** keeps only the "
        "k likeliest. abc2midi checks the tune, abcm2ps draws it and fluidsynth plays it.")
    try:
        s = get_sampler(model_path(model), "numpy")
    except CheckpointError as e:
        st.warning(f"No model loaded: {public_message(e)}")
    else:
        st.markdown(model_facts(s, model))
        if model == SHIPPED:
            with st.expander("Model card: data, recipe, every figure with its command"):
                st.markdown(model_card())
    status = abctools.tool_status()
    st.markdown("**Tools on this host**")
    st.dataframe({"tool": list(status),
                  "found": ["missing" if v is None else "yes" for v in status.values()],
                  "version": [v or "" for v in status.values()]},
                 hide_index=True)


def model_facts(s: Sampler, model: str) -> str:
    """The model in one paragraph, from its own metadata (model.json), as its card states it."""
    info, cfg = s.info, s.cfg
    facts = [f"{cfg.units} LSTM units × {cfg.layers} layer(s), embedding {cfg.embedding}, "
             f"{cfg.parameter_count():,} parameters", f"{s.ckpt.total_steps:,} training steps"]
    card = info.get("card", {})
    if isinstance(card.get("heldout_bpc"), (int, float)):
        facts.append(f"**{card['heldout_bpc']:.3f} bits/char** on irish.abc's held-out tunes")
    valid = card.get("valid")
    if isinstance(valid, dict) and valid.get("of"):
        facts.append(f"**{valid['count'] / valid['of']:.1%} valid tunes** "
                     f"({valid['count']} of {valid['of']} samples)")
    if not card and isinstance(info.get("val_bpc"), (int, float)):
        facts.append(f"validation {info['val_bpc']:.3f} bits/char")
    name = "The shipped model" if model == SHIPPED else "This model"
    return f"**{name}**: " + "; ".join(facts) + "."


@st.cache_resource(show_spinner=False)
def model_card() -> str:
    path = Path(__file__).resolve().parent / "weights" / "README.md"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return "The model card (weights/README.md) is not on this server."


# -- the page -------------------------------------------------------------------------------
def main() -> None:
    st.set_page_config(page_title="abcweb · folk tunes from an LSTM", page_icon=favicon(),
                       layout="wide")
    # A bug must never show a traceback to visitors; every expected error is caught and
    # explained where it happens.
    st.set_option("client.showErrorDetails", "none")
    init_state()
    settings, model, backend = sidebar()
    st.title(":material/music_note: abcweb")
    st.caption("A character-level LSTM writes Irish folk tunes in ABC notation. Move a "
               "control and it writes a new one.")
    tab_tune, tab_train, tab_about = st.tabs([":material/music_note: Generate",
                                              ":material/model_training: Train",
                                              ":material/info: About"])
    with tab_tune:
        generate_tab(settings, model, backend)
    with tab_train:
        train_tab()
    with tab_about:
        about_tab(model, backend)


if __name__ == "__main__":
    main()
