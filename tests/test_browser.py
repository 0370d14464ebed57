"""The dashboard in a real browser: Debian's Chromium driven by Playwright against
`streamlit run streamlit_app.py`.

One server for the module; each test opens its own browser context, so each is a new
visitor with a new Streamlit session.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from browser_support import (
    CHARTS,
    CHROMIUM,
    ROOT,
    TUNE,
    free_port,
    launch,
    tune_text,
    wait_healthy,
)

from abcweb.model import checkpoint
from abcweb.sound import abctools

pytestmark = [pytest.mark.browser, pytest.mark.slow]

playwright_api = pytest.importorskip("playwright.sync_api")

if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

TEMPERATURE = 'input[type="range"][aria-label="Temperature"]'
MAGIC = {"mp3": (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"), "flac": (b"fLaC",),
         "wav": (b"RIFF",), "oga": (b"OggS",)}
TIMEOUT = 60_000


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    yield page
    context.close()


def idle(page) -> None:
    """Wait for the current script run to finish."""
    page.wait_for_function(
        "() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
        " return !w || !/Running|Stop/.test(w.innerText); }", timeout=TIMEOUT)


def open_page(page, url: str) -> str:
    page.goto(url)
    page.wait_for_selector(TUNE)
    page.wait_for_selector(f"{CHARTS} svg .mark-symbol")
    idle(page)
    return tune_text(page)


def press_on_slider(page, key: str) -> tuple[str, str]:
    """Press a key on the temperature slider and wait until the new tune and its audio are in
    the page. Returns the text and audio source from before."""
    before = tune_text(page)
    src = page.locator("audio").first.get_attribute("src")
    page.locator(TEMPERATURE).focus()
    page.keyboard.press(key)
    page.wait_for_function(
        "([sel, before, src]) => { const el = document.querySelector(sel);"
        " const audio = document.querySelector('audio');"
        " if (!el || !audio || audio.src === src) return false;"
        " return Array.from(el.querySelectorAll('[data-line]'))"
        ".map(d => d.lastChild.textContent).join('\\n') !== before; }",
        arg=[TUNE, before, src])
    idle(page)
    return before, src


def query_of(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def test_page_plays_draws_and_answers_the_temperature_slider(server, page):
    before = open_page(page, server + "/?seed=21&temperature=0.8")
    assert before.startswith("X:")
    # The audio element's source is a real audio file.
    src = page.locator("audio").first.get_attribute("src")
    audio = page.request.get(src if src.startswith("http") else server + src)
    assert audio.ok
    body = audio.body()
    assert len(body) > 2000
    assert audio.headers["content-type"].startswith("audio/")
    fmt = abctools.WEB_FORMAT
    assert body.startswith(MAGIC[fmt])  # the player gets the compressed web format
    # The WAV download is encoded on click.
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile(r"WAV$")).click()
    data = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename.endswith(".wav")
    assert data.startswith(MAGIC["wav"]) and len(data) > len(body)
    # Sheet music and the three charts are drawn.
    assert page.locator('[data-testid="stImage"] img').count() >= 1
    assert page.locator(f"{CHARTS} svg").count() >= 3
    # Move the slider one step right: a new tune, a new audio source, a new link.
    slider = page.locator(TEMPERATURE)
    assert slider.input_value() == "0.8"
    press_on_slider(page, "ArrowRight")
    assert slider.input_value() == "0.85"
    assert tune_text(page) != before
    assert page.locator("audio").first.get_attribute("src") != src
    assert query_of(page.url)["temperature"] == "0.85"


def test_clicking_a_chart_picks_a_step(server, page):
    open_page(page, server + "/?seed=8")
    step = page.locator('input[aria-label="Step"]')
    first = step.input_value()
    chart = page.locator(CHARTS).first
    chart.scroll_into_view_if_needed()
    plot = chart.locator("svg .mark-symbol").first.bounding_box()
    # Click near the left end of the plot, far from the default (most surprising) step.
    target = plot["x"] + plot["width"] * (0.08 if int(first) > 60 else 0.9)
    page.mouse.click(target, plot["y"] + plot["height"] / 2)
    page.wait_for_function(
        "([first]) => { const el = document.querySelector('input[aria-label=\"Step\"]');"
        " return el && el.value !== first; }", arg=[first])
    picked = step.input_value()
    assert picked != first
    # The next-character chart follows the pick.
    title = page.locator(CHARTS).nth(2).locator("svg .role-title-text")
    playwright_api.expect(title).to_contain_text(f"Next character at step {picked}:")
    assert 0 <= int(picked) < (60 if int(first) > 60 else 10_000)


def test_what_if_forks_the_tune_and_the_address_keeps_the_fork(server, page):
    model = checkpoint.model_id(os.environ.get("ABCWEB_WEIGHTS") or None)
    before = open_page(page, f"{server}/?seed=9&model={model}")
    step = int(page.locator('input[aria-label="Step"]').input_value())
    page.get_by_role("button", name=re.compile("Carry on from here")).click()
    page.wait_for_function(
        "([old]) => new URLSearchParams(window.location.search).get('prime') !== old",
        arg=[query_of(page.url)["prime"]])
    idle(page)
    prime = query_of(page.url)["prime"]
    assert len(prime) == len("X:") + step + 1 and before.startswith(prime[:-1])
    assert prime[-1] != before[len(prime) - 1]  # another character than the model wrote
    page.wait_for_function(
        "([sel, before]) => { const el = document.querySelector(sel); if (!el) return false;"
        " return Array.from(el.querySelectorAll('[data-line]'))"
        ".map(d => d.lastChild.textContent).join('\\n') !== before; }", arg=[TUNE, before])


def test_a_share_link_brings_back_the_same_tune(server, browser, page):
    open_page(page, server + "/?seed=5")
    press_on_slider(page, "ArrowLeft")
    tune = tune_text(page)
    link = page.locator('[data-testid="stSidebar"] [data-testid="stText"]').inner_text()
    assert query_of(link) == query_of(page.url)
    assert query_of(link)["temperature"] == "0.95" and query_of(link)["seed"] == "5"
    # The copy button puts the same link on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page.locator('[data-testid="abcweb-copy-link"]').click()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied.replace(" ", "") == link.replace(" ", "").replace("\n", "")
    # Someone else opens it.
    other = browser.new_context(viewport={"width": 1400, "height": 1100})
    other.set_default_timeout(TIMEOUT)
    try:
        visitor = other.new_page()
        assert open_page(visitor, copied) == tune
    finally:
        other.close()


def test_training_on_the_train_page_shows_the_loss_and_gives_a_model(server, page):
    open_page(page, server + "/")
    before = tune_text(page)
    page.get_by_role("link", name=re.compile("Train")).click()
    page.wait_for_url(re.compile(r"/train"))
    # The smallest bundled collection (181 tunes): quick to read and to validate on.
    page.locator('input[aria-label="Corpus"]').click()
    page.get_by_role("option", name=re.compile("American Veteran Fifer")).click()
    idle(page)
    steps = page.locator('input[aria-label="Steps"]')
    steps.fill("20")
    steps.press("Enter")
    idle(page)
    page.get_by_role("button", name=re.compile("Start training")).click()
    page.locator(f"{CHARTS} svg .mark-line").first.wait_for(timeout=120_000)
    page.get_by_text(re.compile(r"^Done: the model is saved")).wait_for(timeout=180_000)
    idle(page)
    progress = page.locator('[data-testid="stProgress"]').inner_text()
    assert "step 20 of 20" in progress and "validation" in progress
    # Watch it learn: what the weights of its evaluation step write.
    page.get_by_text(re.compile(r"What it writes at step 20")).wait_for()
    # "Use this model" opens the Generate page, which now samples the new model.
    page.get_by_role("button", name=re.compile("Use this model for sampling")).click()
    sidebar = page.locator('[data-testid="stSidebar"]')
    playwright_api.expect(sidebar.locator('input[aria-label="Model"]')).to_have_value(
        re.compile("^Trained here: tiny on miscFolk"))
    sidebar.get_by_text("lives only in this browser session").wait_for()
    page.wait_for_function(
        "([sel, before]) => { const el = document.querySelector(sel); if (!el) return false;"
        " return Array.from(el.querySelectorAll('[data-line]'))"
        ".map(d => d.lastChild.textContent).join('\\n') !== before; }", arg=[TUNE, before])


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_server_leaves_no_temporary_files_while_someone_trains(browser, tmp_path,
                                                                         how):
    """Stop the server while a visitor's model trains, as an operator or a container runtime
    would: the server, its training worker and everything they wrote are gone."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmpdir)},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, 60, log.read_text)
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        context.set_default_timeout(TIMEOUT)
        page = context.new_page()
        page.goto(url + "/train")
        steps = page.locator('input[aria-label="Steps"]')
        steps.fill("20000")
        steps.press("Enter")
        idle(page)
        page.get_by_role("button", name=re.compile("Start training")).click()
        page.locator(f"{CHARTS} svg .mark-line").first.wait_for(timeout=120_000)  # it trains
        workers = [p for p in children_of(proc.pid) if "abcweb.web.train_worker" in cmdline(p)]
        assert workers and any(tmpdir.iterdir())
        proc.send_signal(how)
        assert proc.wait(30) == 0, log.read_text()[-2000:]
        context.close()
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{p}").exists() for p in workers) or any(tmpdir.iterdir()):
            assert time.monotonic() < deadline, sorted(str(p) for p in tmpdir.rglob("*"))
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def children_of(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_inside_the_lstm_colours_the_tune_by_a_unit_and_charts_it(page, server):
    """The Inside view of a shared tune: its text coloured character by character by a unit
    the model card found, that unit's states and gates, every unit's gate saturation; then
    another unit from the picker."""
    model = checkpoint.model_id(os.environ.get("ABCWEB_WEIGHTS") or None)
    open_page(page, f"{server}/?seed=5&model={model}")
    page.get_by_role("link", name="Inside the LSTM").click()
    cells = page.locator('[data-testid="abcweb-cells-text"]')
    cells.wait_for()
    # The unit's states and gates, and every unit's gate saturation.
    page.wait_for_function("() => document.querySelectorAll("
                           "'[data-testid=stVegaLiteChart] svg').length === 2")
    idle(page)
    spans = cells.locator("span")
    assert spans.count() > 50  # one per character of the tune
    first = [spans.nth(i).get_attribute("title") for i in range(40)]
    assert all(re.fullmatch(r"[+-]\d\.\d\d", t) for t in first)
    picker = page.get_by_role("combobox", name="Unit")
    assert picker.input_value().startswith("inside the header")  # the found cells come first
    picker.click()
    page.keyboard.type("layer 0 unit 7: hidden")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('[data-testid=stVegaLiteChart] svg text'))"
        ".some(t => t.textContent.includes('Layer 0 unit 7:'))")
    idle(page)
    after = [spans.nth(i).get_attribute("title") for i in range(40)]
    assert after != first
    assert page.locator('[data-testid="stException"]').count() == 0
