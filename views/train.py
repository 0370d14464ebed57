"""Train: a short training session on a bundled collection or an upload, with a live loss
chart. It trains in a worker process (abcweb.web.training_job); the model is this session's."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from abcweb.model.checkpoint import CheckpointError
from abcweb.music.corpus import MUSIC21_COLLECTIONS, CorpusError
from abcweb.web import charts
from abcweb.web.messages import as_text, public_message
from abcweb.web.train_worker import SAMPLE_TEMPERATURE
from abcweb.web.training_job import MAX_CONCURRENT, RECIPES, TrainingJob
from views.shared import (
    LEARNING_RATES,
    MAX_SESSION_MODELS,
    PAGES,
    music21_corpus,
    shipped_path,
    uploaded_corpus,
)

UPLOAD = "upload"


def recipe_changed() -> None:
    r = RECIPES[st.session_state.train_recipe]
    st.session_state.train_steps = r.steps
    st.session_state.train_lr = r.learning_rate


def main() -> None:
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
                st.error(f"Cannot train on this file: {as_text(problem)}")
            elif uploaded is not None:
                st.caption(as_text(uploaded.summary())
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
                               shipped=shipped_path())
    except CorpusError as e:
        st.error(f"Cannot train on this file: {as_text(public_message(e))}")
        return
    except CheckpointError as e:
        st.error("Cannot fine-tune: the shipped model cannot be loaded "
                 f"({as_text(public_message(e))}).")
        return
    except ValueError as e:
        st.error(f"Cannot train: {as_text(public_message(e))}")
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
    runs = {run_label(i, j): j.metrics() for i, j in enumerate(jobs) if j.metrics()}
    if len(runs) > 1:  # drawn on full reruns only, not every second of the live panel
        st.altair_chart(charts.runs_chart(runs), width="stretch")


def run_label(i: int, job: TrainingJob) -> str:
    return f"run {i + 1}: {job.name}, learning rate {job.settings.learning_rate:g}"


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
    text = f"{as_text(job.name)}: step {done} of {job.settings.steps}"
    if last:
        text += f" · train {last['train_bpc']:.3f} bits/char"
        vals = [m["val_bpc"] for m in metrics if m.get("val_bpc") is not None]
        if vals:
            text += f" · validation {vals[-1]:.3f}"
        text += f" · {last['chars_per_s']:,.0f} chars/s · {job.elapsed:.0f} s"
    st.progress(job.progress, text=text)
    if metrics:
        st.vega_lite_chart(charts.loss_spec(_thin(metrics)), width="stretch", height=320,
                        key="loss_chart")
    samples = [(m["step"], m["sample"]) for m in metrics if m.get("sample")]
    if samples:
        step, text = samples[-1]
        st.markdown(f"**What it writes at step {step}** (the same seed at every evaluation, "
                    f"temperature {SAMPLE_TEMPERATURE:g}):")
        st.code(text, language=None)
        with st.expander(f"What it wrote at each of {len(samples)} evaluations"):
            for step, text in samples:
                st.caption(f"step {step}")
                st.code(text, language=None)
    if state == "failed":
        st.error(f"Training failed: {as_text(public_message(job.error))}")
    elif state in ("done", "stopped") and job.checkpoint_path is not None:
        st.success(("Stopped early: " if state == "stopped" else "Done: ")
                   + f"the model is saved ({done} steps). Sample from it, or download it.")
        a, b, _ = st.columns([2, 2, 3])
        if a.button("Use this model for sampling", icon=":material/music_note:",
                    type="primary", width="stretch", key=f"use_{id(job)}"):
            # The sidebar's model box exists already in this run: ask the next full run to
            # switch before it draws the box.
            st.session_state.use_model = str(job.checkpoint_path)
            st.switch_page(PAGES["generate"])
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


if __name__ == "__main__":
    main()
