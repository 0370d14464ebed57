"""The tunebook and the editor in a real browser: Debian's Chromium driven by Playwright
against `streamlit run streamlit_app.py` (tests/browser_support.py)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from browser_support import CHARTS, CHROMIUM, TUNE, launch, tune_text, wait_idle

from abcweb.model import checkpoint
from abcweb.sound import abctools
from abcweb.web import tunebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

playwright_api = pytest.importorskip("playwright.sync_api")

if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

TIMEOUT = 60_000
EDITOR = 'textarea[aria-label="ABC"]'
PLANTED = ('X:1\nT:Planted error\nM:6/8\nL:1/8\nK:D\nDFA dAF|DFA d2e|\n'
           'fed "H7"cBA|dAF D3|]\n')  # abc2midi: an unknown guitar chord on line 7
MAGIC = {"mp3": (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"), "oga": (b"OggS",),
         "flac": (b"fLaC",), "wav": (b"RIFF",)}


@pytest.fixture
def page(server):
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(viewport={"width": 1400, "height": 1100},
                                      accept_downloads=True)
        context.set_default_timeout(TIMEOUT)
        yield context.new_page()
        browser.close()


def button(page, label: str):
    # A button's name holds its Material icon's ligature before the label.
    return page.get_by_role("button", name=re.compile(rf"{re.escape(label)}$"))


def edit(page, text: str) -> None:
    box = page.locator(EDITOR)
    box.fill(text)
    box.press("Control+Enter")  # Streamlit takes a text area's value on Ctrl+Enter or blur
    wait_idle(page)


def test_keep_download_edit_and_play_in_a_browser(server, page):
    model = checkpoint.model_id(os.environ.get("ABCWEB_WEIGHTS") or None)
    page.goto(f"{server}/?seed=23&transpose=2&model={model}")
    page.wait_for_selector(TUNE)
    page.wait_for_selector(f"{CHARTS} svg .mark-symbol")
    wait_idle(page)
    written = tune_text(page)
    title = tunebook.header(written, "T")

    button(page, "Keep").click()
    button(page, "Kept").wait_for()
    page.get_by_role("link", name=re.compile("Tunebook")).click()
    page.wait_for_url(re.compile(r"/tunebook"))
    page.get_by_text("1 tune kept in this session").wait_for()
    playwright_api.expect(page.get_by_role("combobox", name="Tune")).to_have_value(
        re.compile(rf"^1\. {re.escape(title or '(untitled)')}"))
    # The address bar is the book's link.
    book_link = parse_qs(urlsplit(page.url).query)["t"]
    assert len(book_link) == 1 and parse_qs(book_link[0])["seed"] == ["23"]

    with page.expect_download() as download:
        button(page, "Download the tunebook (.abc)").click()
    assert download.value.suggested_filename == "abcweb-tunebook.abc"
    data = Path(download.value.path()).read_bytes()
    assert b"\nX:1\n%abcweb seed=23&" in data
    (entry,), notes = tunebook.from_abc(data)
    assert notes == [] and entry.settings.seed == 23 and entry.settings.model == model
    assert entry.title == (title or "(untitled)")

    button(page, "Edit").click()
    page.wait_for_url(re.compile(r"/edit"))
    box = page.locator(EDITOR)
    playwright_api.expect(box).to_have_value(re.compile(r"^X:\d+\n"))
    # The session's settings outlived Keep and two views (a fragment's rerun once lost them).
    assert page.locator('[data-testid="stException"]').count() == 0
    playwright_api.expect(page.locator('input[aria-label="Transpose"]')).to_have_value("2")
    # The kept tune: the file numbers it afresh (X:1), the editor has it as written.
    assert box.input_value().split("\n")[1:] == entry.text.split("\n")[1:]
    wait_idle(page)

    edit(page, PLANTED)
    page.locator('[data-line="7"][data-status="error"]').wait_for()
    assert page.locator('[data-status="error"]').count() == 1
    page.get_by_text(re.compile("Invalid ABC: abc2midi found 1 error")).wait_for()

    src_before = page.locator("audio").first.get_attribute("src")
    edit(page, PLANTED.replace('"H7"', '"A7"'))
    page.get_by_text(re.compile("Valid ABC")).wait_for()
    assert page.locator('[data-status="error"]').count() == 0
    page.wait_for_function(
        "([src]) => { const a = document.querySelector('audio'); return a && a.src"
        " && !a.src.endsWith(src); }", arg=[src_before or "-"])
    src = page.locator("audio").first.get_attribute("src")
    audio = page.request.get(src if src.startswith("http") else server + src)
    assert audio.ok and audio.headers["content-type"].startswith("audio/")
    body = audio.body()
    assert len(body) > 2000 and body.startswith(MAGIC[abctools.WEB_FORMAT])
    assert page.locator('[data-testid="stImage"] img').count() >= 1  # the sheet music
    page.get_by_text(re.compile(r"Played on piano .*\+2 semitones")).wait_for()

    button(page, "Continue from here").click()
    page.wait_for_function("() => !window.location.pathname.endsWith('/edit')"
                           " && new URLSearchParams(window.location.search).get('prime')")
    wait_idle(page)
    prime = parse_qs(urlsplit(page.url).query)["prime"][0]
    assert prime == PLANTED.replace('"H7"', '"A7"')
    page.wait_for_selector(TUNE)
    assert tune_text(page).startswith(prime.rstrip("\n"))
    assert page.locator('[data-testid="stException"]').count() == 0
