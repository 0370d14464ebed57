"""Generate: the sidebar's settings, the tune (text, check, sheet music, audio) and what the
model was thinking at each character."""

from __future__ import annotations

import html
import json
import os
import random
import time
from functools import partial

import numpy as np
import streamlit as st

from abcweb.model.lstm import UnknownCharacters
from abcweb.music import headers, tunes
from abcweb.sampling.loop import Generation
from abcweb.sampling.sample_worker import WorkerError
from abcweb.sampling.sampler import Sampler
from abcweb.sound import arrange
from abcweb.web import charts, params, training_job, tunebook
from abcweb.web.messages import as_text, public_message
from views import tuneview
from views.shared import (
    ANY,
    CPU,
    EARLIER,
    GPU,
    SHIPPED,
    current_settings,
    generate,
    header_choices,
    keep_button,
    model_path,
    open_in_editor,
    sampler_or_error,
    seconds_per_char,
    session_models,
    stream_after_s,
    tune_charts,
    written,
)
from views.tuneview import (  # noqa: F401 - download_wav: tests and benches find it here
    check_verdict,
    download_wav,
    playing_version,
    result,
    start_renders,
    tune_media,
)


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
    st.slider("Top-p (nucleus)", params.TOP_P_MIN, 1.0, step=params.TOP_P_STEP, key="top_p",
              format="%.2f",
              help="Draw only from the likeliest characters that together hold this share of "
                   "the probability (1: no cut). Lower keeps the model to its surer choices "
                   "wherever it is sure, and leaves it free where it is not.")
    st.slider("Best of (drafts)", 1, params.MAX_BEST_OF, key="best",
              help="The model writes this many drafts at once and the page keeps the one that "
                   "is valid ABC, ends on its key's home note and keeps the meter best. Every "
                   "draft is the model's own tune: the charts show its real probabilities. "
                   "1: the model's single draw for this seed.")
    st.toggle("Bars come back", key="form",
              help="Real tunes return to their own bars. On: at each bar line the model also "
                   "reads earlier bars of the tune (2, 4 and 8 bars back, and the bar that "
                   "opened the part) and its own probabilities choose between them and the "
                   "bar it draws. Off: every bar is the model's own draw.")


def sidebar_playing() -> None:
    st.markdown("**Play it**")
    st.select_slider("Tempo (beats per minute)", params.TEMPOS, key="tempo",
                     format_func=lambda b: "its own" if b == 0 else str(b),
                     help="Beats as a session counts them: dotted quarters in a jig, half "
                          "notes in a reel. 'Its own': the tune's Q:, or a session tempo for "
                          "its type. Changing it plays the same tune again.")
    left, right = st.columns(2)
    left.selectbox("Instrument", list(arrange.INSTRUMENTS), key="instrument",
                   help="A General MIDI instrument for the audio and the MIDI file.")
    right.number_input("Transpose", -arrange.TRANSPOSE_MAX, arrange.TRANSPOSE_MAX, step=1,
                       key="transpose", help="Semitones up or down (abc2abc), for the sheet "
                                             "music, the audio and the downloads.")


def sidebar_model() -> tuple[str, str]:
    models = session_models()
    if "use_model" in st.session_state:
        st.session_state.model = st.session_state.pop("use_model")
    if st.session_state.model not in models:
        st.session_state.model = SHIPPED
    st.selectbox("Model", list(models), key="model", format_func=models.get,
                 help="The shipped model, or one you trained on the Train page (it lives only "
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
    # st.text, not st.code: the code box brings a 0.8 MB syntax highlighter to every first
    # visit (bench/first_visit.py), and a link needs none. Plain text, never Markdown.
    st.text(url)
    if model != SHIPPED and not model.startswith(EARLIER):
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
        sidebar_playing()
        st.divider()
        model, backend = sidebar_model()
        st.divider()
        settings = current_settings()
        sidebar_share(settings, model)
    return settings, model, backend


# -- the tune ----------------------------------------------------------------------------------
def write_tune(sampler: Sampler, settings: params.Settings, model: str, backend: str
               ) -> tuple[Generation, float, bool] | None:
    """The generation for the settings (cached); streamed into the page when writing it is
    expected to take long. Returns (generation, seconds, was cached) or None on an error."""
    args = (model_path(model), backend, settings.prime, settings.length,
            settings.temperature, settings.seed, settings.top_k, settings.top_p, settings.best,
            settings.form)
    try:
        # Streaming costs a second pass for the charts' logits: only worth it when the
        # text would otherwise keep a visitor waiting.
        # Drafts are judged once all are written: only the model's own draw can stream.
        if (backend == "numpy" and settings.best == 1 and not settings.form
                and args not in written()
                and seconds_per_char(*args[:2]) * settings.length > stream_after_s()):
            slot = st.empty()
            text = settings.prime
            for chunk in sampler.stream(settings.prime, settings.length, settings.temperature,
                                        settings.seed, settings.top_k, stop_at_end=True,
                                        top_p=settings.top_p):
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
        st.error(f"The TensorFlow sampler is not available here ({as_text(public_message(e))}); "
                 "choose "
                 "the CPU sampler.")
        return None
    except UnknownCharacters as e:
        st.error(f"Cannot start from this seed text: {as_text(public_message(e))}. Remove or "
                 "replace "
                 "them (the model knows plain ASCII and newlines).")
        return None
    except ValueError as e:
        st.error(f"Cannot write a tune with these settings: {as_text(public_message(e))}")
        return None
    except WorkerError:
        # Fixed text: the pool has already retried on a fresh worker, and why a worker
        # failed is no business of a visitor's. A press of the button writes it again.
        st.error("The sampler stopped before the tune was written. Please try again.")
        st.button("Try again", icon=":material/refresh:")
        return None
    return g, seconds, cached








def pick_tune(g: Generation) -> tunes.Tune | None:
    found = tunes.split_tunes(g.text)
    return next((t for t in found if t.complete), found[0] if found else None)


def abc_html(g: Generation, tune: tunes.Tune | None, problems) -> str:
    """The written text with abc2midi's lines marked; the seed text is grey."""
    return tuneview.abc_html(g.text, tune, problems, g.prime)


def verdict(g: Generation, tune: tunes.Tune | None, check, check_error: str | None) -> None:
    if tune is None:
        st.error("✗ No tune: the text holds no ABC tune (a tune needs a K: header line and "
                 "notes). Try a seed text that starts with X:.")
        return
    check_verdict(check, check_error)
    if not tune.complete:
        st.warning(f"The tune was cut off at {len(g.generated)} characters before it ended: "
                   "raise the length for a whole tune.")
    if tune.added:
        st.caption("Added for the tools: " + as_text(", ".join(tune.added)) + " (the model left "
                   "them out).")


def drafts_note(g: Generation) -> str:
    """Which draft the page kept, and how many of the drafts were good (abcweb/sampling/drafts.py),
    and whether the melody prior (abcweb/sampling/melody.py) chose among equally good ones."""
    if len(g.drafts) < 2:
        return ""
    valid = sum(bool(d["valid"]) for d in g.drafts)
    home = sum(d["ends_on_tonic"] for d in g.drafts)
    note = (f" · best of {len(g.drafts)} drafts: draft {g.draft + 1} kept ({valid} valid, "
            f"{home} ending on the home note")
    yardsticks = [d["score"] - d.get("melody", 0.0) for d in g.drafts]
    best = max(yardsticks)
    equal = sum(abs(y - best) < 1e-3 for y in yardsticks)
    if equal > 1 and abs(yardsticks[g.draft] - best) < 1e-3 and g.drafts[g.draft].get("melody"):
        note += f"; of {equal} equally good, the melody most like real tunes'"
    return note + ")"


def form_note(g: Generation) -> str:
    """How many bars the model chose from earlier bars (abcweb/sampling/form.py)."""
    if not g.form:
        return " · bars come back: off"
    n = len(g.copies)
    return (f" · {n} bar{'s' if n != 1 else ''} the model chose from earlier ones (marked in "
            "the charts)" if n else " · every bar the model's own draw")


def file_stem(settings: params.Settings) -> str:
    return (f"abcweb-seed{settings.seed}-t{settings.temperature:g}-k{settings.top_k}"
            + (f"-p{settings.top_p:g}" if settings.top_p < 1 else ""))


def tune_view(settings: params.Settings, model: str, backend: str) -> None:
    st.session_state.pop("_rendered", None)
    st.session_state.pop("_text", None)
    for message in st.session_state.pop("link_messages", []):
        st.warning(f"From the link: {as_text(message)}")
    for note in st.session_state.pop("page_notes", []):  # from the editor or the tunebook
        st.info(as_text(note))
    sampler, model = sampler_or_error(model, backend)
    if sampler is None:
        return
    out = write_tune(sampler, settings, model, backend)
    if out is None:
        return
    g, seconds, cached = out
    st.session_state._text = g.text  # exactly what was written (st.text strips both ends)
    tune = pick_tune(g)
    play = playing_version(tune.text, settings) if tune is not None else None
    renders = start_renders(tune.text, play) if tune is not None else {}
    key = (model_path(model), backend, g.prime, g.generated, g.temperature, g.top_k, g.top_p,
           tuple((c["start"], c["end"]) for c in g.copies))
    built = tune_charts(key, g) if g.generated else None  # overlaps with the renders

    check, check_error = result(renders["check"]) if renders else (None, None)
    verdict(g, tune, check, check_error)
    st.caption(f"{len(g.generated)} characters written in {seconds:.2f} s "
               f"({'cached' if cached else backend})"
               + (" · stopped at the end of the tune" if g.stopped == "end" else "")
               + drafts_note(g) + form_note(g))

    left, right = st.columns([5, 6], gap="medium")
    with left:
        if tune is not None:
            tune_actions(tune, settings, model)
        st.html(abc_html(g, tune, check.problems if check else []))
        if caption := tuneview.form_caption(g.text):  # numbers and fixed words only
            st.caption(caption)
        with st.expander("ABC text to copy"):
            st.text(g.text)
    media = right.container()

    # The charts go out first, while fluidsynth is still rendering the audio (the slowest
    # part of a new tune); then the sheet music and the player fill their place above.
    if built is None:
        st.info("The model wrote nothing (length 0): nothing to chart.")
    else:
        thinking(g, built)
    with media:
        tune_media(play, renders, settings, file_stem(settings))


def tune_actions(tune: tunes.Tune, settings: params.Settings, model: str) -> None:
    """Keep the tune in the session's tunebook, or open it in the editor."""
    keep, edit = st.columns(2)
    with keep:
        keep_button(tunebook.Entry(tune.text, settings, model))
    if edit.button("Edit", icon=":material/edit:", width="stretch",
                   help="Open the tune in the editor: change it, check it, play it, and let "
                        "the model continue from your version."):
        open_in_editor(tune.text)






# -- what the model was thinking ------------------------------------------------------------
def on_pick(chart_key: str) -> None:
    step = charts.picked_step(st.session_state.get(chart_key), st.session_state._steps)
    if step is not None:
        st.session_state.step = step


@st.fragment
def fork(text: str) -> None:
    st.session_state.prime = text


def what_if(g: Generation, step: int) -> None:
    """Another of the step's likely characters, and the model carries on from there: the
    text before the step plus that character become the seed text (so the link keeps it)."""
    others = [c for c, _ in g.steps[step].top if c != g.steps[step].char]
    if not others:
        return
    pick = st.selectbox("What if it had written…", others, key="fork_char",
                        format_func=lambda c: f"{tunes.show_char(c)}  "
                        f"({dict(g.steps[step].top)[c]:.3f})")
    text = (g.prime + g.generated[:step] + pick)[-params.MAX_PRIME:]
    st.button("Carry on from here", icon=":material/call_split:", on_click=fork, args=(text,),
              help="The text up to this step, with this character instead, becomes the seed "
                   "text, and the model writes on from it with the same settings.")


def thinking(g: Generation, built: dict) -> None:
    """Charts of the model's probabilities. A fragment: picking a step redraws only this."""
    st.header("What the model was thinking")  # h2 under the page's h1: no level skipped
    n = len(g.generated)
    st.session_state._steps = n
    tune_id = (g.prime, g.generated, g.temperature, g.top_k, g.top_p)
    if st.session_state.get("_step_for") != tune_id or st.session_state.get("step", n) >= n:
        # A new tune: start at its most surprising character.
        st.session_state.step = int(np.argmin([s.prob for s in g.steps]))
        st.session_state._step_for = tune_id
    # Heights given here: Streamlit's "content" height squeezes charts with titles.
    # Specs Altair made once, filled with this tune (abcweb.web.charts): Altair's own to_dict()
    # per chart cost more than the rest of a new tune's page.
    st.vega_lite_chart(built["prob"], width="stretch", height=280, key="prob_chart",
                       on_select=partial(on_pick, "prob_chart"),
                       selection_mode=charts.SELECTION)
    st.vega_lite_chart(built["entropy"], width="stretch", height=250, key="entropy_chart",
                       on_select=partial(on_pick, "entropy_chart"),
                       selection_mode=charts.SELECTION)
    st.caption(as_text(charts.summary(g)))  # the two charts for a screen reader too
    left, right = st.columns([1, 3], gap="medium")
    with left:
        st.number_input("Step", 0, n - 1, key="step",
                        help="Pick a step by clicking a chart above, or type it here.")
        step = int(st.session_state.step)
        s = g.steps[step]
        st.markdown(f"The model wrote **`{tunes.show_char(s.char)}`** with probability "
                    f"**{s.prob:.3f}**; entropy {s.entropy:.2f} bits.")
        # Five rows need no data grid (0.35 MB of JavaScript on a first visit): a plain table,
        # every cell escaped.
        st.html(alternatives_table(s.top))
        what_if(g, step)
    with right:
        st.vega_lite_chart(charts.distribution_spec(g, step), width="stretch", height=340,
                           key="distribution_chart")


def alternatives_table(top: list[tuple[str, float]]) -> str:
    rows = "".join(f"<tr><td><code>{html.escape(tunes.show_char(c))}</code></td>"
                   f'<td style="text-align:right">{p:.4f}</td></tr>' for c, p in top)
    return ('<table data-testid="abcweb-alternatives" style="width:100%;font-size:0.9rem">'
            "<caption style=\"text-align:left\">The likeliest characters at this step</caption>"
            "<thead><tr><th scope=\"col\">character</th>"
            '<th scope="col" style="text-align:right">probability</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def main() -> None:
    settings, model, backend = sidebar()
    st.caption("A character-level LSTM writes Irish folk tunes in ABC notation. Move a "
               "control and it writes a new one.")
    with training_job.visitor_busy():  # a visitor's training waits for this tune
        tune_view(settings, model, backend)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import its functions
    main()
