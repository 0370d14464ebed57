"""gzip for Streamlit's own files, for hosts that serve `streamlit run serve.py` with no
balancer in front (a container on its own: Hugging Face Spaces, Cloud Run).

Streamlit sends its JavaScript and CSS uncompressed: a first visit downloaded 7.4 MB in all, and
1.9 MB with these files gzipped here (bench/first_visit.py; deploy/haproxy.cfg gzips them too
when it is in front). Those files never
change while the server runs (their names carry a hash), so each is compressed once, when first
asked for, and the compressed copy is kept: no visitor after the first pays the CPU, and the
event loop never compresses the same file twice. Only /static/ text files are compressed; the
page's HTML, the websocket and /media/ (the audio, fetched in ranges) pass as they are.
"""

from __future__ import annotations

import gzip

LEVEL = 6
TYPES = (b"text/", b"application/javascript", b"application/json", b"image/svg+xml")
MIN_BYTES = 1024
# Every static text file of Streamlit 1.67 gzips to 6.9 MB (23 MB as sent); a first visit's to
# about 1.1 MB.
MAX_CACHED_BYTES = 16 * 1024 * 1024


class GzipStatic:
    """ASGI middleware: gzip for /static/ text files, each compressed once and kept."""

    def __init__(self, app):
        self.app = app
        self.cache: dict[tuple[str, bytes], bytes] = {}  # (path, ETag or length) -> gzip
        self.cached_bytes = 0

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope.get("method") != "GET"
                or not scope.get("path", "").startswith("/static/")
                or b"gzip" not in dict(scope.get("headers", [])).get(b"accept-encoding", b"")):
            await self.app(scope, receive, send)
            return
        start, chunks = None, []

        async def hold(message):
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    await self._send(scope["path"], start, b"".join(chunks), send)
            else:
                await send(message)

        await self.app(scope, receive, hold)

    async def _send(self, path: str, start: dict, body: bytes, send) -> None:
        headers = list(start.get("headers", []))
        names = {k.lower(): v for k, v in headers}
        kind = names.get(b"content-type", b"")
        if (start.get("status") != 200 or len(body) < MIN_BYTES or b"content-encoding" in names
                or not kind.startswith(TYPES)):
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        key = (path, names.get(b"etag", str(len(body)).encode()))
        packed = self.cache.get(key)
        if packed is None:
            packed = gzip.compress(body, LEVEL, mtime=0)
            if self.cached_bytes + len(packed) <= MAX_CACHED_BYTES:
                self.cache[key] = packed
                self.cached_bytes += len(packed)
        kept = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"vary")]
        kept += [(b"content-encoding", b"gzip"), (b"content-length", str(len(packed)).encode()),
                 (b"vary", b"Accept-Encoding")]
        await send({**start, "headers": kept})
        await send({"type": "http.response.body", "body": packed})
