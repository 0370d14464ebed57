"""The security headers every response of the page carries, wherever it is served.

Streamlit has no setting for response headers. `serve.py` wraps the page in `st.App` (Streamlit's
own ASGI entry point) with SecurityHeaders, so `streamlit run serve.py` sends them;
deploy/haproxy.cfg and the Kubernetes Ingress send the same ones (tests/test_deploy.py keeps them
equal to HEADERS).

The Content-Security-Policy allows what the page itself uses and nothing else. Measured in
Chromium with every directive at 'self' over every view (a tune with its charts, sheet music,
player and downloads; the tunebook; the editor; Inside the LSTM; About; training with its live
chart), Streamlit 1.67 needed exactly these additions, and nothing was refused with them
(tests/test_hostile_text.py keeps it so):
- script-src 'unsafe-inline': Streamlit's index.html has an inline script, and the Copy link
  button and the replica watcher (streamlit_app.py) are st.html/st.iframe scripts;
- script-src 'wasm-unsafe-eval': Streamlit's protobuf decoder is WebAssembly;
- style-src 'unsafe-inline': Streamlit's frontend sets style attributes and <style> tags;
- img-src data: (the sheet music is an <img> of an SVG data URL, and Streamlit's own icons),
  font-src data: (Streamlit inlines a font).
connect-src 'self' covers the websocket (ws: and wss: to the page's own host). The player and
the downloads are /media/ URLs of the page's own origin: no blob: is needed. So a remote image,
script, frame or connection is refused even if a bug lets one into the page.
"""

from __future__ import annotations

import os

# Who may show the page in a frame: only the page itself, unless an operator names embedding
# sites (ABCWEB_FRAME_ANCESTORS="https://a.example https://b.example"; deploy/haproxy.cfg reads
# the same variable).
FRAME_ANCESTORS = os.environ.get("ABCWEB_FRAME_ANCESTORS", "").strip()

CSP = ("default-src 'self'; "
       "script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; "
       "style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; "
       "font-src 'self' data:; "
       "object-src 'none'; "
       "base-uri 'self'; "
       "form-action 'self'")


def headers(frame_ancestors: str = FRAME_ANCESTORS) -> dict[str, str]:
    """The headers, with `frame_ancestors` (space-separated origins) allowed to frame the page."""
    ancestors = " ".join(["'self'", *frame_ancestors.split()])
    out = {"Content-Security-Policy": f"{CSP}; frame-ancestors {ancestors}",
           "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer"}
    if not frame_ancestors.split():
        # For browsers without frame-ancestors; it cannot name other sites, so it goes when
        # the CSP allows some.
        out["X-Frame-Options"] = "SAMEORIGIN"
    return out


HEADERS = headers()


class SecurityHeaders:
    """ASGI middleware: HEADERS on every HTTP response (a websocket has no response headers)."""

    def __init__(self, app, extra: dict[str, str] | None = None):
        self.app = app
        self.raw = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in (extra or HEADERS).items()]
        self.names = {k for k, _ in self.raw}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", [])
                        if k.lower() not in self.names]
                message = {**message, "headers": kept + self.raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)
