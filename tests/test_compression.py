"""gzip for Streamlit's static files when `streamlit run serve.py` has no balancer in front
(abcweb/web/compression.py): compressed once, kept, and only where it is safe."""

from __future__ import annotations

import asyncio
import gzip
import re
import urllib.request

import pytest

from abcweb.web.compression import GzipStatic

JS = b"function f(){return 1}\n" * 500


def fake_app(status=200, body=JS, kind=b"application/javascript", calls=None):
    async def app(scope, receive, send):
        if calls is not None:
            calls.append(scope["path"])
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", kind), (b"etag", b'"v1"'),
                                (b"content-length", str(len(body)).encode())]})
        half = len(body) // 2  # in two pieces, as a file response may come
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        await send({"type": "http.response.body", "body": body[half:]})
    return app


def get(app, path="/static/js/index.abc.js", gz=True) -> tuple[dict, bytes]:
    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path,
             "headers": [(b"accept-encoding", b"gzip, deflate")] if gz else []}
    asyncio.run(app(scope, None, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return {k.decode(): v.decode() for k, v in start["headers"]} | {
        ":status": start["status"]}, body


def test_a_static_script_is_gzipped_once_and_kept():
    calls = []
    app = GzipStatic(fake_app(calls=calls))
    headers, body = get(app)
    assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == JS and int(headers["content-length"]) == len(body)
    assert app.cached_bytes == len(body)
    again = get(app)
    assert again == (headers, body) and app.cached_bytes == len(body) and len(calls) == 2


@pytest.mark.parametrize("case", ["no gzip asked", "not static", "media", "audio type",
                                  "not modified", "tiny"])
def test_anything_else_passes_as_it_is(case):
    app = {"not modified": fake_app(status=304, body=b""), "tiny": fake_app(body=b"x" * 100),
           "audio type": fake_app(kind=b"audio/mpeg")}.get(case, fake_app())
    path = {"not static": "/", "media": "/media/abc.mp3"}.get(case, "/static/js/index.abc.js")
    headers, body = get(GzipStatic(app), path, gz=case != "no gzip asked")
    assert "content-encoding" not in headers
    assert body == {"not modified": b"", "tiny": b"x" * 100}.get(case, JS)


@pytest.mark.slow
def test_serve_py_sends_its_scripts_gzipped_with_the_security_headers():
    import browser_support as bs

    with bs.app_server(script="serve.py") as (url, _):
        with urllib.request.urlopen(url + "/", timeout=30) as r:
            page = r.read().decode()
        script = re.search(r'src="\.?(/static/js/index\.[^"]+\.js)"', page).group(1)

        def fetch(gz: bool):
            req = urllib.request.Request(url + script,
                                         headers={"Accept-Encoding": "gzip"} if gz else {})
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.headers, r.read()

        zipped_headers, zipped = fetch(True)
        plain_headers, plain = fetch(False)
    assert zipped_headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain_headers
    assert gzip.decompress(zipped) == plain and len(zipped) < len(plain) / 2
    for headers in (zipped_headers, plain_headers):
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors" in headers["Content-Security-Policy"]
