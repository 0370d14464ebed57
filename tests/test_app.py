"""The page's logic through Streamlit's AppTest: controls, share links, errors, training.

The model is the shipped one in weights/ (or the checkpoint folder in $ABCWEB_WEIGHTS, which
the page also reads). Audio and charts are opaque to AppTest: the tests read the charts'
Vega-Lite specs and what the page records in session_state["_rendered"].
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from streamlit.testing.v1 import AppTest

from abcweb.model import checkpoint
from abcweb.music import tunes
from abcweb.sampling.sampler import Sampler, load_sampler
from abcweb.sound import abctools, arrange
from abcweb.web import params

from conftest import jigs, shown

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
GENERATE, TRAIN, ABOUT = "views/generate.py", "views/train.py", "views/about.py"
WEIGHTS = os.environ.get("ABCWEB_WEIGHTS") or None



def run_app(query: dict | None = None, timeout: float = 90, legacy: bool = False) -> AppTest:
    """The page opened at a link. A link names its model, as the page's own links do, unless
    `legacy` (a link made before links carried ids)."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    if query and not legacy and "model" not in query:
        query = {**query, "model": checkpoint.model_id(WEIGHTS)}
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def earlier_models() -> int:
    """Shipped models kept for old links: the Model box offers them too."""
    return len(checkpoint.shipped_models(WEIGHTS)) - 1


def tune_of(at: AppTest) -> str:
    """The generated text, exactly, as the page recorded it; the 'ABC text to copy' box in
    the page shows the same (less trailing newlines)."""
    codes = [c.value for c in at.main.text]
    assert codes, "no ABC text in the page"
    text = at.session_state["_text"]
    assert codes[0].rstrip("\n") == text.rstrip("\n")
    return text


def charts_of(at: AppTest) -> dict[str, dict]:
    out = {}
    for c in at.get("vega_lite_chart"):
        spec = json.loads(c.proto.spec)
        out[spec["title"]["text"]] = spec
    return out


def texts(elements) -> list[str]:
    return [shown(e.value) for e in elements]


def expected_text(model_dir, s: params.Settings) -> str:
    """The library's tune for settings, with the model their link names (a link with no id
    names the model shipped before ids, where this checkout keeps it)."""
    return load_sampler(checkpoint.folder_for(s.model, model_dir), "numpy").generate(
        s.prime, s.length, s.temperature, s.seed, s.top_k, stop_at_end=True,
        best_of=s.best, top_p=s.top_p, form=s.form).text


# -- generating -----------------------------------------------------------------------------
def test_first_visit_writes_checks_draws_and_plays_a_tune(model_dir):
    at = run_app()
    s = params.DEFAULTS
    assert tune_of(at) == expected_text(model_dir, s)
    verdicts = texts(at.success) + texts(at.error)
    assert len(verdicts) == 1 and ("Valid ABC" in verdicts[0] or "Invalid ABC" in verdicts[0])
    rendered = at.session_state["_rendered"]
    assert rendered["errors"] == []
    assert rendered["svg"] > 1000 and rendered["midi"] > 20 and rendered["audio"] > 1000
    assert at.get("image") and at.get("audio")
    assert rendered["audio_head"] != b"RIFF"  # the player gets the compressed web format
    assert rendered["audio"] == len(abctools.to_audio(rendered["tune"], abctools.WEB_FORMAT))
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels[:4] == ["ABC", "MIDI", abctools.WEB_FORMAT.upper(), "WAV"]
    titles = list(charts_of(at))
    assert titles[:2] == ["Probability of each chosen character", "Entropy before each character"]
    assert titles[2].startswith("Next character at step")
    # The address bar carries the settings: the share link.
    assert at.query_params["seed"] == ["0"] or at.query_params["seed"] == "0"
    link = at.sidebar.text[0].value
    assert link.startswith("?seed=0&prime=X%3A&length=600&temperature=0.9&top_k=0&top_p=1"
                           "&best=8&tempo=0&instrument=piano&transpose=0&form=1&model=")


def page_module():
    """The Generate view's functions, without running it (its main() runs only as a page)."""
    from views import generate

    return generate


def test_the_wav_download_is_encoded_when_pressed(model_dir):
    at = run_app({"seed": "3"})
    rendered = at.session_state["_rendered"]
    data = page_module().download_wav(rendered["tune"])
    assert data[:4] == b"RIFF" and data == abctools.to_audio(rendered["tune"], "wav")
    assert len(data) > 5 * rendered["audio"]  # the player's MP3 is far smaller


@pytest.mark.parametrize("key, seed, in_link, in_chart", [
    ("temperature", 4, "temperature=0.5", "temperature 0.5"),
    ("top_p", 9, "top_p=0.5", "top-p 0.5"),  # nucleus sampling, as the library draws it
])
def test_moving_a_sampling_slider_writes_the_librarys_tune_at_once_and_links_carry_it(
        model_dir, key, seed, in_link, in_chart):
    at = run_app({"seed": str(seed)})
    before = tune_of(at)
    at.sidebar.slider(key=key).set_value(0.5).run()
    assert not at.exception
    after = tune_of(at)
    assert after != before
    # A link with settings but no `form` was made before bar proposals: they stay off.
    assert after == expected_text(model_dir, params.Settings(seed=seed, form=False,
                                                             **{key: 0.5}))
    link = at.sidebar.text[0].value
    assert in_link in link
    prob = charts_of(at)["Probability of each chosen character"]
    assert in_chart in prob["title"]["subtitle"]
    again = run_app({k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()})
    assert tune_of(again) == after and again.session_state[key] == 0.5


def test_the_caption_says_when_the_melody_chose_among_equally_good_drafts(model_dir):
    """Seed 0 at the defaults: several drafts are equally valid, at home and in time, and the
    melody prior (abcweb/sampling/melody.py) picks among them; the caption says which and why."""
    s = params.Settings(seed=0)
    g = load_sampler(model_dir, "numpy").generate("X:", s.length, s.temperature, s.seed,
                                                  best_of=s.best)
    yardsticks = [d["score"] - d["melody"] for d in g.drafts]
    equal = sum(abs(y - max(yardsticks)) < 1e-3 for y in yardsticks)
    by_yardsticks_alone = max(range(len(yardsticks)), key=lambda i: (yardsticks[i], -i))
    assert equal > 1 and g.draft != by_yardsticks_alone  # the melody changed the choice here
    at = run_app(params.to_query(s))
    assert tune_of(at) == g.text
    caption = next(c for c in texts(at.caption) if "characters written" in c)
    assert f"best of 8 drafts: draft {g.draft + 1} kept" in caption
    assert f"of {equal} equally good, the melody most like real tunes'" in caption
    # The model before had no melody prior: its drafts are picked by the yardsticks alone.
    if "5425c0f1d080" in checkpoint.shipped_models(model_dir):
        old = run_app(params.to_query(params.Settings(seed=0, model="5425c0f1d080")))
        caption = next(c for c in texts(old.caption) if "characters written" in c)
        assert "draft" in caption and "melody" not in caption


def test_links_bring_back_tunes_of_earlier_shipped_models(tmp_path, monkeypatch):
    """New weights ship; the model before them stays in weights/<id>/, and a link names the
    model that wrote it."""
    from abcweb.model.lstm import preset

    from conftest import random_checkpoint

    current, earlier = tmp_path / "weights", tmp_path / "earlier"
    checkpoint.save(random_checkpoint(preset("tiny"), seed=11), current)
    checkpoint.save(random_checkpoint(preset("tiny"), seed=12), earlier)
    old_id, new_id = checkpoint.model_id(earlier), checkpoint.model_id(current)
    earlier.rename(current / old_id)
    monkeypatch.setenv("ABCWEB_WEIGHTS", str(current))
    s = params.Settings(seed=31, length=200, temperature=0.9)

    at = run_app(params.to_query(params.Settings(**{**s.as_dict(), "model": old_id})))
    assert tune_of(at) == expected_text(current / old_id, s)
    assert tune_of(at) != expected_text(current, s)
    assert at.sidebar.selectbox(key="model").value == "shipped:" + old_id
    assert f"model={old_id}" in at.sidebar.text[0].value  # its link names it too
    assert not [w for w in texts(at.warning) if w.startswith("From the link")]

    at = run_app(params.to_query(params.Settings(**{**s.as_dict(), "model": new_id})))
    assert tune_of(at) == expected_text(current, s)
    assert f"model={new_id}" in at.sidebar.text[0].value

    # A link from before ids: the model shipped then, or (here, where it is missing) this one.
    at = run_app({k: v for k, v in params.to_query(s).items() if k != "model"}, legacy=True)
    assert tune_of(at) == expected_text(current, s)
    assert not [w for w in texts(at.warning) if w.startswith("From the link")]

    at = run_app(params.to_query(params.Settings(**{**s.as_dict(), "model": "0123456789ab"})))
    assert tune_of(at) == expected_text(current, s)
    assert any("0123456789ab" in w and "does not have" in w for w in texts(at.warning))


def test_bars_come_back_by_default_the_switch_turns_it_off_and_links_carry_it(model_dir):
    from dataclasses import replace

    at = run_app()  # a bare address: the page's defaults
    assert at.session_state["form"] is True
    on = tune_of(at)
    assert on == expected_text(model_dir, params.DEFAULTS)
    assert "form=1" in at.sidebar.text[0].value
    assert any("chose from earlier ones" in c for c in texts(at.caption))
    at.sidebar.toggle(key="form").set_value(False).run()
    assert not at.exception
    off = tune_of(at)
    assert off == expected_text(model_dir, replace(params.DEFAULTS, form=False)) != on
    link = at.sidebar.text[0].value
    assert "form=0" in link
    again = run_app({k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()})
    assert tune_of(again) == off and again.session_state["form"] is False


def test_a_share_link_brings_back_the_same_tune(model_dir):
    s = params.Settings(seed=77, prime="X:1\nM:6/8\nL:1/8\nK:G\n", length=400,
                        temperature=0.85, top_k=12)
    first = run_app(params.to_query(s))
    # A link the page wrote needs no adjusting.
    assert not [w for w in texts(first.warning) if w.startswith("From the link")]
    text = tune_of(first)
    assert text.startswith(s.prime)
    assert text == expected_text(model_dir, s)
    # A second visitor opening the same link gets the same tune, and the same link back.
    second = run_app(params.to_query(s))
    assert tune_of(second) == text
    assert second.sidebar.text[0].value == first.sidebar.text[0].value
    for name in params.KEYS:
        if name != "model":  # the box holds a model choice; the link names the model by id
            assert second.session_state[name] == getattr(s, name)
    assert f"model={checkpoint.model_id(model_dir)}" in second.sidebar.text[0].value
    assert second.session_state["meter"] == "6/8" and second.session_state["key"] == "G"


def test_bad_link_values_are_explained_and_the_page_still_works(model_dir):
    at = run_app({"seed": "banana", "temperature": "9", "top_k": "-3"})
    warnings = " ".join(texts(at.warning))
    assert "seed 'banana' is not a number" in warnings
    assert "temperature 9 is outside" in warnings
    assert "top_k -3 is outside" in warnings
    assert at.session_state["temperature"] == 2.0 and at.session_state["top_k"] == 0
    assert tune_of(at)


def test_new_seed_button_gives_a_new_seed_and_tune(model_dir):
    at = run_app()
    before = tune_of(at)
    at.sidebar.button[0].click().run()
    assert at.session_state["seed"] != 0
    assert tune_of(at) != before


def test_meter_and_key_choices_write_the_header(model_dir):
    at = run_app()
    meters = at.sidebar.selectbox(key="meter").options
    keys = at.sidebar.selectbox(key="key").options
    assert meters[0] == "any" and "6/8" in meters[1] and len(meters) >= 4
    assert keys[0] == "any" and "G" in keys and "D" in keys
    at.sidebar.selectbox(key="meter").set_value("6/8").run()
    at.sidebar.selectbox(key="key").set_value("G").run()
    prime = at.session_state["prime"]
    assert prime == "X:1\nM:6/8\nL:1/8\nK:G\n"
    assert tune_of(at).startswith(prime)
    at.sidebar.selectbox(key="meter").set_value("any").run()
    at.sidebar.selectbox(key="key").set_value("any").run()
    assert at.session_state["prime"] == "X:"


def test_picking_a_step_shows_its_distribution(model_dir):
    at = run_app({"seed": "2"})  # a link from before bar proposals: they stay off
    g = load_sampler(model_dir, "numpy").generate("X:", 600, params.DEFAULTS.temperature, 2, 0,
                                                  form=False)
    # A new tune starts at its most surprising character.
    surprise = min(range(len(g.generated)), key=lambda i: g.steps[i].prob)
    assert at.session_state["step"] == surprise
    at.number_input(key="step").set_value(5).run()
    assert not at.exception
    title = next(t for t in charts_of(at) if t.startswith("Next character"))
    assert title == (f"Next character at step 5: the model wrote "
                     f"{tunes.show_char(g.generated[5])!r}")
    assert any(f"{g.steps[5].prob:.3f}" in m for m in texts(at.markdown))


def test_an_out_of_range_length_in_a_link_is_clamped(model_dir):
    at = run_app({"length": "0"})
    assert at.session_state["length"] == params.LENGTH_MIN
    assert any("length 0 is outside" in w for w in texts(at.warning))
    assert len(tune_of(at)) <= len("X:") + params.LENGTH_MIN


def test_slow_generation_is_streamed_into_the_page(model_dir, monkeypatch):
    # Streaming is for slow hosts; a threshold of 0 seconds streams every new tune.
    monkeypatch.setenv("ABCWEB_STREAM_AFTER", "0")
    chunks = []
    real = Sampler.stream

    def spy(self, *args, **kwargs):
        for chunk in real(self, *args, **kwargs):
            chunks.append(chunk)
            yield chunk

    monkeypatch.setattr(Sampler, "stream", spy)
    # Only the model's own draw streams: drafts are judged, and bar proposals chosen, after.
    s = params.Settings(seed=606, temperature=1.15, length=300, best=1, form=False)
    at = run_app(params.to_query(s))
    text = expected_text(model_dir, s)
    assert tune_of(at) == text
    assert len(chunks) >= 2 and s.prime + "".join(chunks) == text


def test_a_fast_model_is_not_streamed_even_on_a_fresh_server(model_dir, monkeypatch):
    """The first timing of a model used to include starting its sampling worker (0.4-0.6 s
    for 32 characters), so a fresh server streamed every tune, in its own GIL, for good."""
    from abcweb.sampling import sample_worker
    from views import shared

    sample_worker.pool().close()  # as on a fresh server: no worker holds the model yet
    shared.seconds_per_char.clear()
    streamed = []
    monkeypatch.setattr(Sampler, "stream", lambda *a, **k: streamed.append(a) or iter(()))
    s = params.Settings(seed=607, length=600, best=1, form=False)  # only that could stream
    at = run_app(params.to_query(s))
    assert tune_of(at) == expected_text(model_dir, s)
    assert streamed == []
    assert shared.seconds_per_char(shared.model_path("shipped"), "numpy") * 600 < 1.5


# -- errors ---------------------------------------------------------------------------------
def test_unknown_characters_in_the_seed_text(model_dir):
    at = run_app()
    at.sidebar.text_area(key="prime").set_value("X:1\nT:Café ☃\n").run()
    assert not at.exception
    errors = " ".join(texts(at.error))
    assert "does not know" in errors and "☃" in errors and "é" in errors
    # The rest of the page keeps working.
    at.switch_page(TRAIN).run()
    assert not at.exception
    assert any(b.label == "Start training" for b in at.button)
    at.switch_page(GENERATE).run()  # the settings outlive the visit to another view
    assert at.sidebar.text[0].value.startswith("?seed=0&prime=X%3A1%0AT%3ACaf")
    at.sidebar.text_area(key="prime").set_value("X:").run()
    assert not at.error or all("Invalid ABC" in e for e in texts(at.error))
    assert tune_of(at)


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ABCWEB_WEIGHTS", str(tmp_path))
    at = run_app()
    errors = " ".join(texts(at.error))
    assert "shipped model cannot be loaded" in errors and "Train page" in errors
    assert at.sidebar.text[0].value.startswith("?seed=")
    at.switch_page(TRAIN).run()
    assert not at.exception
    assert any(b.label == "Start training" for b in at.button)


def test_missing_tools_are_clear_warnings(model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no abc2midi, abcm2ps or fluidsynth
    at = run_app({"seed": "11"})
    warnings = " ".join(texts(at.warning))
    assert "Cannot check this tune: abc2midi is not installed" in warnings
    assert "No sheet music: abcm2ps is not installed" in warnings
    assert "No audio:" in warnings and "is not installed" in warnings
    assert tune_of(at)  # the text and the charts still come
    assert len(at.get("vega_lite_chart")) == 3


# -- training -------------------------------------------------------------------------------
def select_upload(at: AppTest) -> AppTest:
    at.switch_page(TRAIN).run()
    at.selectbox(key="train_corpus").set_value("upload").run()
    return at


def upload_jigs(at: AppTest) -> AppTest:
    at.get("file_uploader")[0].set_value(("jigs.abc", jigs(30).encode(), "text/plain"))
    return at.run()


def start_training(steps: int) -> AppTest:
    """A new page that uploads 30 jigs and starts training on them for `steps` steps."""
    at = upload_jigs(select_upload(run_app()))
    at.number_input(key="train_steps").set_value(steps).run()
    next(b for b in at.button if b.label == "Start training").click().run()
    return at


def test_bad_uploads_are_clear_errors(model_dir):
    at = select_upload(run_app())
    start = next(b for b in at.button if b.label == "Start training")
    assert start.disabled  # nothing to train on yet
    cases = [(b"\x00\x01\x02binary", "binary"), (b"   \n", "empty"),
             (b"just some words\nno tunes here\n", "no ABC tunes")]
    for data, words in cases:
        at.get("file_uploader")[0].set_value(("bad.abc", data, "text/plain"))
        at.run()
        assert not at.exception
        assert any(words in e for e in texts(at.error)), texts(at.error)
        assert next(b for b in at.button if b.label == "Start training").disabled
    upload_jigs(at)
    assert not at.error or all("ABC" in e for e in texts(at.error))
    assert any("30 tunes" in c for c in texts(at.caption))
    assert not next(b for b in at.button if b.label == "Start training").disabled


@pytest.mark.slow
def test_training_in_the_page_gives_a_model_for_this_session_only(model_dir):
    at = start_training(12)
    assert not at.exception
    job = at.session_state["jobs"][-1]
    assert job.wait(240), "training did not finish"
    assert job.state == "done", job.error
    at.run()
    assert not at.exception
    assert any("Done" in s for s in texts(at.success))
    assert "Loss" in charts_of(at)
    # What it wrote at its evaluation (step 12), from the worker's weights of that step.
    samples = [m["sample"] for m in job.metrics() if m.get("sample")]
    assert len(samples) == 1 and samples[0].startswith("X:") and len(samples[0]) == 2 + 160
    assert any("What it writes at step 12" in m for m in texts(at.markdown))
    assert samples[0].rstrip("\n") in [c.value.rstrip("\n") for c in at.code]
    # "Use this model" opens the Generate view on the new model.
    next(b for b in at.button if b.label == "Use this model for sampling").click().run()
    assert not at.exception
    assert len(at.sidebar.selectbox(key="model").options) == 2 + earlier_models()
    assert at.session_state["model"] == str(job.checkpoint_path)
    mine = tune_of(at)
    assert mine == job.sampler().generate("X:", 600, params.DEFAULTS.temperature, 0, 0).text
    assert any("shipped model" in c for c in texts(at.sidebar.caption))
    # Another visitor still samples the shipped model.
    other = run_app()
    assert other.session_state["model"] == "shipped"
    assert tune_of(other) == expected_text(model_dir, params.DEFAULTS)
    job.cleanup()


@pytest.mark.slow
def test_stop_ends_training_early_and_keeps_the_model(model_dir):
    at = start_training(20_000)
    job = at.session_state["jobs"][-1]
    deadline = time.monotonic() + 120
    while len(job.metrics()) < 3:
        assert time.monotonic() < deadline and job.running, job.error
        time.sleep(0.1)
    at.run()
    stop = next(b for b in at.button if b.label == "Stop")
    assert not stop.disabled
    stop.click().run()
    assert job.wait(60) and job.state == "stopped"
    at.run()
    assert any(s.startswith("Stopped early") for s in texts(at.success))
    at.switch_page(GENERATE).run()
    assert len(at.sidebar.selectbox(key="model").options) == 2 + earlier_models()
    job.cleanup()


@pytest.mark.slow
def test_tensorflow_sampler_writes_the_same_tune(model_dir):
    at = run_app({"seed": "5", "length": "300"})
    numpy_text = tune_of(at)
    t0 = time.perf_counter()
    at.sidebar.radio(key="device").set_value(at.sidebar.radio(key="device").options[1]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error or all("Invalid ABC" in e for e in texts(at.error))
    assert tune_of(at) == numpy_text
    assert time.perf_counter() - t0 < 120


def test_about_shows_tool_versions_and_the_model_cards_figures_never_paths():
    if WEIGHTS is not None:
        pytest.skip("the About figures are the shipped model's")
    at = run_app({"seed": "1", "length": "200"})
    at.switch_page(ABOUT).run()
    assert not at.exception
    markdown = " ".join(texts(at.markdown))
    info = checkpoint.load(None).info
    card = info["card"]
    total = info["steps"] + info["pretrained"]["steps"]
    share = card["valid"]["count"] / card["valid"]["of"]
    # The figures come from model.json and say what the model card says.
    facts = [f"{total:,} training steps", f"{card['heldout_bpc']:.3f} bits/char",
             f"{share:.1%} valid tunes"]
    for fact in facts:
        assert fact in markdown, (fact, markdown)
    model_card = (Path(APP).parent / "weights" / "README.md").read_text()
    assert f"{total:,}" in model_card and f"{card['heldout_bpc']:.3f}" in model_card
    assert f"{card['valid']['count']}/{card['valid']['of']} = {share:.1%}" in model_card
    assert any("Model card" in e.label for e in at.expander)
    tools = at.dataframe[-1].value
    assert set(tools["found"]) == {"yes"}, tools
    assert all("/" not in str(v) for v in tools.to_numpy().ravel()), tools
    assert all("/usr/" not in t and "/share/" not in t for t in texts(at.markdown))


def test_what_if_carries_on_from_another_character_and_the_link_keeps_the_fork(model_dir):
    at = run_app({"seed": "12", "form": "1"})
    g = load_sampler(model_dir, "numpy").generate("X:", 600, params.DEFAULTS.temperature, 12)
    assert tune_of(at) == g.text
    at.number_input(key="step").set_value(40).run()
    box = at.selectbox(key="fork_char")
    others = [c for c, _ in g.steps[40].top if c != g.generated[40]]
    assert len(box.options) == len(others) and others
    box.set_value(others[-1]).run()
    next(b for b in at.button if b.label == "Carry on from here").click().run()
    assert not at.exception
    fork = g.prime + g.generated[:40] + others[-1]
    assert at.session_state["prime"] == fork
    s = params.Settings(seed=12, prime=fork, model=checkpoint.model_id(model_dir))
    assert tune_of(at) == expected_text(model_dir, s) != g.text
    # The share link carries the fork: a new visitor gets the same tune from it.
    link = at.sidebar.text[0].value
    again = run_app({k: v[0] for k, v in parse_qs(urlsplit(link).query).items()})
    assert tune_of(again) == tune_of(at)


def test_a_sessions_runs_are_overlaid_to_compare_them(model_dir):
    at = start_training(6)
    first = at.session_state["jobs"][-1]
    assert first.wait(240) and first.state == "done", first.error
    at.run()
    assert "This session's runs" not in charts_of(at)  # one run: nothing to compare
    at.select_slider(key="train_lr").set_value(1e-3).run()
    next(b for b in at.button if b.label == "Start training").click().run()
    second = at.session_state["jobs"][-1]
    assert second is not first and second.wait(240) and second.state == "done", second.error
    at.run()
    assert not at.exception
    import pyarrow as pa

    chart = next(c for c in at.get("vega_lite_chart")
                 if json.loads(c.proto.spec)["title"]["text"] == "This session's runs")
    labels = set(pa.ipc.open_stream(chart.proto.data.data).read_all().column("run").to_pylist())
    assert len(labels) == 2 and any("learning rate 0.001" in r for r in labels)
    for job in (first, second):
        job.cleanup()


def test_tempo_instrument_and_key_replay_the_same_tune_and_the_link_keeps_them(model_dir):
    at = run_app({"seed": "21"})
    written = tune_of(at)
    before = at.session_state["_rendered"]
    at.sidebar.select_slider(key="tempo").set_value(140).run()
    at.sidebar.selectbox(key="instrument").set_value("fiddle").run()
    at.sidebar.number_input(key="transpose").set_value(3).run()
    assert not at.exception
    assert tune_of(at) == written  # the model's tune is the same: only its playing changed
    played = at.session_state["_rendered"]["tune"]
    assert "%%MIDI program 40" in played and "=140\n" in played and played != before["tune"]
    assert played == arrange.arrange(before["tune"], 140, "fiddle", 3)
    assert at.session_state["_rendered"]["audio"] != before["audio"]
    link = at.sidebar.text[0].value
    assert "tempo=140" in link and "instrument=fiddle" in link and "transpose=3" in link
    played_as = [c for c in texts(at.caption) if c.startswith("Played on fiddle at ")]
    assert played_as and played_as[0].endswith("= 140 per minute, +3 semitones")
    again = run_app({k: v[0] for k, v in parse_qs(urlsplit(link).query).items()})
    assert again.session_state["_rendered"]["tune"] == played
