"""Visitor text stays text, and the security headers hold (issue 21, items 1 and 2).

- abcweb.web.messages.as_text, the one helper every message that quotes a visitor's text uses, run
  through a real CommonMark parser;
- in Chromium: hostile share links (every text parameter), a hostile book link and hostile
  uploads, aimed at a local listener: the browser fetches nothing from it and the page holds
  no link, image or formatting from the visitor;
- `streamlit run serve.py` sends the headers of abcweb/web/security.py;
- behind deploy/haproxy.cfg every view works with no CSP violation, and an image from another
  origin is refused.
"""

from __future__ import annotations

import html
import http.server
import os
import re
import string
import sys
import threading
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from abcweb.web.messages import WORD_JOINER, as_text
from abcweb.web.security import headers

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ("seed", "length", "temperature", "top_k", "top_p", "best", "tempo", "transpose",
          "instrument", "model")


# -- the helper ------------------------------------------------------------------------------
def hostile(url: str) -> list[str]:
    return [f"![b]({url}/img)", f"[Session expired: log in again]({url}/phish)",
            f"<{url}/auto>", f"{url}/bare www.example.com x@example.com",
            f'<img src="{url}/html"><script>alert(1)</script>', "&lt;b&gt; &amp;",
            ":red[red] :blue-background[b] :material/home: :material_home: :streamlit: :smile:",
            "$x^2$ $$y$$ \\(z\\)", "# heading\n- item\n1. one\n> quote\n    code\n```\nfence",
            "**bold** _em_ ~~gone~~ `code` \\*escaped\\* a -> b <= c -- d",
            "| a | b |\n|---|---|\n| 1 | 2 |", "line one\r\nline two\u2028three\tfour",
            "[x]: http://127.0.0.1:1/ref\n[x]", "\\", "ends with a backslash\\"]


@pytest.mark.parametrize("text", hostile("http://127.0.0.1:9"))
def test_as_text_escapes_every_punctuation_mark_on_one_line(text):
    out = as_text(text)
    assert "\n" not in out and "\r" not in out
    bare = re.sub(r"\\[!-/:-@\[-`{-~]", "", out)
    assert not any(c in string.punctuation for c in bare), bare
    unescaped = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", out).replace(WORD_JOINER, "")
    assert unescaped == " ".join(text.split())


@pytest.mark.parametrize("text", hostile("http://127.0.0.1:9"))
def test_commonmark_shows_it_as_the_text_itself(text):
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    rendered = md.render("**From the link:** " + as_text(text))
    body = rendered.removeprefix("<p><strong>From the link:</strong> ").removesuffix("</p>\n")
    assert "<" not in body, rendered  # no element: the visitor's < arrive as &lt;
    assert html.unescape(body).replace(WORD_JOINER, "") == " ".join(text.split())


def test_streamlits_own_text_rules_find_nothing_to_replace():
    # Streamlit's Markdown turns ":name:" into emoji, icons and its logo, and " -> " into an
    # arrow, after the escapes are resolved: the word joiner leaves those rules nothing.
    shown = as_text(":smile: :material_home: :streamlit: a -> b <= c ~= d -- e")
    text = re.sub(r"\\(.)", r"\1", shown)
    assert not re.search(r":[\w+-]+:", text)
    assert not re.search(r"(^|\s)(<->|->|<-|--|>=|<=|~=)(\s|$)", text)


def test_gfms_autolink_rules_find_nothing_to_link():
    # GFM's autolink literals (mdast-util-gfm-autolink-literal) also read resolved text.
    text = re.sub(r"\\(.)", r"\1", as_text("http://a.example/x WWW.b.example c@d.example"))
    assert not re.search(r"(https?://|www(?=\.))[-.\w]+", text, re.IGNORECASE)
    assert not re.search(r"[-.\w+]+@[-\w]+(\.[-\w]+)+", text)


# -- a listener the hostile text aims at ------------------------------------------------------
class Listener:
    def __init__(self):
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.end_headers()
                self.wfile.write(b"GIF89a")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.origin}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def listener():
    ear = Listener()
    yield ear
    ear.close()


# What in the page points at the listener: any attribute that names an address (href, src,
# srcset, poster, action, style url()...), in the page and its same-origin frames. A visitor's
# text as text (an input's value, a title) is fine.
POINTING = """origin => {
  const names = ['href', 'src', 'srcset', 'poster', 'action', 'formaction', 'data',
                 'background', 'xlink:href', 'ping', 'style'];
  const found = [];
  const docs = [document, ...Array.from(document.querySelectorAll('iframe'))
    .map(f => { try { return f.contentDocument; } catch (e) { return null; } })
    .filter(d => d)];
  for (const d of docs)
    for (const el of d.querySelectorAll('*'))
      for (const a of el.attributes)
        if (names.includes(a.name) && a.value.includes(origin))
          found.push(el.tagName + ' ' + a.name + '=' + a.value);
  return found;
}"""
# Elements a visitor's text must never make inside a message box.
FORMATTING = ("a, img, h1, h2, h3, h4, h5, h6, ul, ol, li, pre, code, blockquote, table, "
              "strong, em, del, .katex, script, [data-testid='stIconMaterial'], "
              "span[style*='color'], span[style*='background']")


def alerts(page) -> list[str]:
    """The text of every message box, word joiners dropped."""
    return [t.replace(WORD_JOINER, "") for t in page.locator(
        '[data-testid="stAlert"], [data-testid="stCaptionContainer"]').all_inner_texts()]


def assert_shown_as_text(page, listener, expected: list[str]) -> None:
    page.wait_for_timeout(1000)  # time for any fetch the page would make
    assert listener.requests == []
    assert page.evaluate(POINTING, listener.origin) == []
    boxes = page.locator('[data-testid="stAlert"], [data-testid="stCaptionContainer"]')
    made = [el.evaluate("e => e.outerHTML")[:200] for el in boxes.locator(FORMATTING).all()]
    assert made == []
    shown = "\n".join(alerts(page))
    for text in expected:
        assert text in shown, (text, shown)


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def chromium():
    playwright_api = pytest.importorskip("playwright.sync_api")
    import browser_support as bs

    with playwright_api.sync_playwright() as p:
        browser = bs.launch(p)
        yield browser
        browser.close()


def idle(page) -> None:
    import browser_support as bs

    bs.wait_idle(page, timeout=90_000)


# -- hostile links, book links and uploads in Chromium ------------------------------------------
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["image and link", "html, autolink, directives, latex"])
def test_hostile_link_values_show_as_text(server, listener, page, kind):
    values = {}
    for i, name in enumerate(PARAMS):
        # instrument and model are quoted cut to 40 characters: what matters comes first.
        values[name] = (f"![b]({listener.url}/{i}a) [Log in]({listener.url}/{i}b)"
                        if kind == "image and link" else
                        f"<img src={listener.url}/{i}c> {listener.url}/{i}d :red[r] $x^2$ "
                        ":smile: www.example.com x@example.com")
    page.goto(f"{server}/?{urlencode(values)}")
    page.wait_for_selector('[data-testid="abc-text"]', timeout=90_000)
    idle(page)
    expected = [f"{name} " for name in PARAMS]
    expected += ([f"![b]({listener.url}/0a) [Log in]({listener.url}/0b)"]
                 if kind == "image and link" else
                 [f"<img src={listener.url}/0c> {listener.url}/0d :red[r] $x^2$ :smile: "
                  "www.example.com x@example.com"])
    assert_shown_as_text(page, listener, expected)


@pytest.mark.browser
@pytest.mark.slow
def test_a_hostile_book_link_shows_as_text(server, listener, page):
    t = (f"seed=![b]({listener.url}/book-img)&instrument=[Log in]({listener.url}/book)"
         f"&tempo=<img src={listener.url}/book-html>")
    page.goto(f"{server}/tunebook?t={quote(t)}")
    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=90_000)
    idle(page)
    assert_shown_as_text(page, listener, [f"![b]({listener.url}/book-img)",
                                          f"[Log in]({listener.url}/book)",
                                          f"<img src={listener.url}/book-html>"])


@pytest.mark.browser
@pytest.mark.slow
def test_hostile_uploads_show_as_text(server, listener, page):
    page.goto(f"{server}/tunebook")
    upload = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    upload.wait_for(state="attached", timeout=60_000)
    # A file name is quoted when the file holds no tune.
    name = "![f](x) **bold** :red[r] $x$ <img src=y>.abc"
    upload.set_input_files({"name": name, "mimeType": "text/plain", "buffer": b"no tune\n"})
    page.get_by_text("Cannot read this tunebook").wait_for(timeout=60_000)
    idle(page)
    assert_shown_as_text(page, listener, [name])
    # A tune's title is quoted with what is wrong in its settings line.
    title = f"![t]({listener.url}/t) [Log in]({listener.url}/p) :smile:"  # shown whole
    tune = (f"X:1\nT:{title}\n%abcweb seed=<img src={listener.url}/s>\nM:6/8\nL:1/8\nK:D\n"
            "|:DFA dAF|GBd gdB|AFD DFA|BGE E3:|\n").encode()
    upload.set_input_files({"name": "book.abc", "mimeType": "text/plain", "buffer": tune})
    page.locator('[data-testid="stDataFrame"]').wait_for(timeout=60_000)
    idle(page)
    assert_shown_as_text(page, listener, [title, f"<img src={listener.url}/s>"])


# -- security headers ---------------------------------------------------------------------------
def response_headers(url: str):
    """The response's headers (names case-insensitive, as HTTP has them)."""
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.headers


@pytest.mark.browser
@pytest.mark.slow
def test_serve_py_sends_the_security_headers(model_dir):
    import browser_support as bs

    with bs.app_server(script="serve.py") as (url, _):
        for path in ("/", "/_stcore/health", "/tunebook"):
            got = response_headers(url + path)
            for name, value in headers("").items():
                assert got.get(name) == value, (path, name)
    with bs.app_server(env={"ABCWEB_FRAME_ANCESTORS": "https://blog.example"},
                       script="serve.py") as (url, _):
        got = response_headers(url + "/")
        assert got["Content-Security-Policy"].endswith(
            "frame-ancestors 'self' https://blog.example")
        assert "X-Frame-Options" not in got


@contextmanager
def balanced(replica: str, work: Path, **env):
    """deploy/haproxy.cfg in front of one replica, with extra environment."""
    sys.path.insert(0, str(ROOT / "bench"))
    import balancer  # bench/ is not a package

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with balancer.haproxy([replica.removeprefix("http://")], work / "haproxy.log") as (url,
                                                                                           _):
            yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# Every securitypolicyviolation in the page and its frames, kept on the top window.
RECORD_VIOLATIONS = """(() => {
  const top = window.top;
  top.__violations = top.__violations || [];
  document.addEventListener('securitypolicyviolation', e =>
    top.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
})();"""


def haproxy_or_skip():
    import shutil

    if not (os.environ.get("ABCWEB_HAPROXY") or shutil.which("haproxy")):
        pytest.skip("no haproxy (./run.sh test installs it)")


@pytest.mark.browser
@pytest.mark.slow
def test_behind_the_balancer_every_view_works_with_no_csp_violation(server, listener, chromium,
                                                                    tmp_path):
    haproxy_or_skip()

    with balanced(server, tmp_path, ABCWEB_FRAME_ANCESTORS="https://blog.example") as url:
        got = response_headers(url + "/")
        assert got["Content-Security-Policy"] == headers("https://blog.example")[
            "Content-Security-Policy"]
        assert "X-Frame-Options" not in got
    with balanced(server, tmp_path) as url:
        for name, value in headers("").items():
            assert response_headers(url + "/").get(name) == value, name
        context = chromium.new_context(accept_downloads=True)
        context.add_init_script(RECORD_VIOLATIONS)
        page = context.new_page()
        console = []
        page.on("console", lambda m: console.append(m.text))
        page.on("pageerror", lambda e: console.append(str(e)))
        try:
            every_view(page, url)
            assert page.evaluate("window.__violations") == []
            assert [m for m in console if "Content Security Policy" in m] == []
            # A remote image, as a bug might let one in: the policy refuses it.
            page.evaluate("src => { const i = document.createElement('img'); i.src = src;"
                          " document.body.appendChild(i); }", f"{listener.url}/injected")
            page.wait_for_function("() => window.__violations.length > 0", timeout=10_000)
            assert page.evaluate("window.__violations") == [
                f"img-src {listener.url}/injected"]
            assert listener.requests == []
        finally:
            context.close()


def every_view(page, url: str) -> None:
    """Generate (charts, sheet music, player, downloads), Tunebook, Edit, Inside, About and a
    short training with its live chart, as a visitor uses them."""
    import browser_support as bs

    page.goto(url + "/?seed=3&length=300")
    page.wait_for_selector(f"{bs.CHARTS} svg .mark-symbol", timeout=90_000)
    page.wait_for_selector('[data-testid="stImage"] img', timeout=60_000)
    page.wait_for_function("() => { const a = document.querySelector('audio');"
                           " return a && a.readyState >= 1 && a.duration > 1; }",
                           timeout=60_000)
    idle(page)
    assert page.evaluate("document.querySelector('[data-testid=\"stImage\"] img')"
                         ".naturalWidth") > 0  # the sheet music drew
    for button in ("WAV", "ABC", "MIDI"):
        with page.expect_download() as download:
            page.get_by_role("button", name=re.compile(button + "$")).click()
        assert os.path.getsize(download.value.path()) > 0
    page.get_by_role("button", name=re.compile("^Keep")).first.click()
    idle(page)
    for link, shown in (("Tunebook", '[data-testid="stDataFrame"]'), ("Edit", bs.TUNE),
                        ("Inside the LSTM", '[data-testid="abcweb-cells-text"]'),
                        ("About", '[data-testid="stDataFrame"]')):
        page.get_by_role("link", name=link).click()
        page.wait_for_selector(shown, timeout=60_000)
        idle(page)
    page.get_by_role("link", name=re.compile("Train")).click()
    steps = page.locator('input[aria-label="Steps"]')
    steps.fill("20")
    steps.press("Enter")
    idle(page)
    page.get_by_role("button", name=re.compile("Start training")).click()
    page.locator(f"{bs.CHARTS} svg .mark-line").first.wait_for(timeout=180_000)
    page.get_by_role("button", name=re.compile("Use this model for sampling")).wait_for(
        timeout=180_000)
