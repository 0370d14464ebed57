"""Streamlit's websocket protocol, spoken as a browser speaks it: the page and its media over
HTTP, the widget values a browser holds, what one run of the page showed (`Page`) and one
browser session (`Session`). bench/visitors.py's visitors and trainer, bench/balancer.py and
bench/abuse.py drive the server through it.

Protocol notes (Streamlit 1.67, Starlette server):
- /_stcore/stream with subprotocol "streamlit"; the client's first message is a rerun.
- A rerun reports no cached message hashes, so the server never answers with a `ref_hash`
  (it only refers to messages the client says it holds); any ref_hash counts as a problem.
- `auto_rerun` (st.fragment(run_every=...)) asks the client to send a fragment rerun every
  `interval` seconds until a full run starts or `stop_auto_rerun` comes, like the browser.
- On a page change the browser sends only the main script's widget values.
"""

from __future__ import annotations

import asyncio
import base64
import html
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState

# -- settings ---------------------------------------------------------------------------------
STREAM = "/_stcore/stream"
REPLICA_HEADER = "x-abcweb-replica"  # set by deploy/haproxy.cfg
PAGE_TIMEOUT_S = 180  # one run of the page, from the rerun to script_finished
CONTEXT = {"timezone": "UTC", "timezone_offset": 0, "locale": "en-US", "is_embedded": False,
           "color_scheme": "light"}  # what a browser tells the server about itself
AUDIO_MAGIC = {b"ID3": "mp3", b"\xff\xfb": "mp3", b"\xff\xf3": "mp3", b"\xff\xf2": "mp3",
               b"RIFF": "wav", b"OggS": "ogg"}
FINISHED = ForwardMsg.FINISHED_SUCCESSFULLY
FINISHED_FRAGMENT = ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
COMPILE_ERROR = ForwardMsg.FINISHED_WITH_COMPILE_ERROR


# -- HTTP, for the page and the media -------------------------------------------------------------
async def http_request(base: str, path: str, cookies: dict | None = None,
                       timeout: float = 60, source: str | None = None
                       ) -> tuple[int, dict, bytes]:
    """GET base+path over one plain HTTP/1.1 connection (no threads, no new dependency);
    (status, headers, body). With a cookie jar, its cookies are sent and the response's
    Set-Cookie lines go into it, as a browser does (a sticky balancer pins by cookie).
    `source`: the local address to connect from (on loopback, any 127.x.y.z is another
    client address to the server)."""
    u = urlsplit(base)
    local = (source, 0) if source else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(u.hostname, u.port, local_addr=local), timeout)
    cookie = f"Cookie: {cookie_header(cookies)}\r\n" if cookies else ""
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nAccept: */*\r\n{cookie}"
                     "Connection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for k, _, v in (h.partition(":") for h in lines[1:]):
        k, v = k.strip().lower(), v.strip()
        if k == "set-cookie" and cookies is not None:
            name, _, value = v.split(";", 1)[0].partition("=")
            cookies[name.strip()] = value.strip()
        headers[k] = v
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    return status, headers, body


async def http_get(base: str, path: str, cookies: dict | None = None,
                   timeout: float = 60, source: str | None = None) -> tuple[int, bytes]:
    status, _, body = await http_request(base, path, cookies, timeout, source)
    return status, body


def cookie_header(cookies: dict) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def dechunk(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while True:
        j = data.index(b"\r\n", i)
        size = int(data[i:j].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[j + 2:j + 2 + size]
        i = j + 2 + size + 2


def audio_kind(data: bytes) -> str | None:
    return next((kind for magic, kind in AUDIO_MAGIC.items() if data.startswith(magic)), None)


# -- widget values, as the browser holds them ---------------------------------------------------
def widget_of(element):
    """(kind, proto) of a widget element whose value a browser keeps, else None. Buttons are
    left out (a press is a one-rerun trigger), and so are chart selections and uploads (the
    browser holds none until the visitor selects or uploads)."""
    kind = element.WhichOneof("type")
    if kind in ("number_input", "slider", "selectbox", "radio", "text_area", "text_input",
                "checkbox"):
        return kind, getattr(element, kind)
    return None


def initial_state(kind: str, w) -> WidgetState | None:
    """The value a browser gives a widget when it first draws it (or when the server sets it:
    `set_value`), in the field the frontend sends it in."""
    s = WidgetState(id=w.id)
    if kind == "number_input":
        value = w.value if w.set_value else w.default
        if w.data_type == NumberInput.INT:
            s.int_value = int(value)
        else:
            s.double_value = value
    elif kind == "slider" and w.type == Slider.SELECT_SLIDER:
        values = list(w.raw_value) if w.set_value else [w.options[int(i)] for i in w.default]
        s.string_array_value.data.extend(values)
    elif kind == "slider":
        s.double_array_value.data.extend(list(w.value) if w.set_value else list(w.default))
    elif kind in ("selectbox", "radio"):
        if w.set_value:
            s.string_value = w.raw_value
        elif 0 <= w.default < len(w.options):
            s.string_value = w.options[w.default]
        else:
            return None
    elif kind in ("text_area", "text_input"):
        s.string_value = w.value if w.set_value else w.default
    elif kind == "checkbox":
        s.bool_value = w.value if w.set_value else w.default
    return s


def int_state(wid: str, value: int) -> WidgetState:
    return WidgetState(id=wid, int_value=value)


def slider_state(wid: str, value: float) -> WidgetState:
    s = WidgetState(id=wid)
    s.double_array_value.data.append(value)
    return s


def trigger(wid: str) -> WidgetState:
    return WidgetState(id=wid, trigger_value=True)


# -- what one run of the page showed --------------------------------------------------------------
@dataclass
class Page:
    """The elements of one finished full run (by delta path) and what they say."""
    elements: dict  # delta path -> Element
    blocks: dict  # delta path -> Block
    query: str
    page_hash: str
    media: dict = field(default_factory=dict)  # URL -> (HTTP status, bytes)

    def find(self, kind: str, label: str | None = None):
        for el in self.elements.values():
            if el.WhichOneof("type") == kind and (label is None
                                                  or getattr(el, kind).label == label):
                return getattr(el, kind)
        return None

    def all(self, kind: str) -> list:
        return [getattr(el, kind) for el in self.elements.values() if el.WhichOneof("type") == kind]

    def code_text(self) -> str | None:
        """The st.text inside the "ABC text to copy" expander: the tune's text itself."""
        for path, block in self.blocks.items():
            if block.WhichOneof("type") == "expandable" and block.expandable.label.startswith(
                    "ABC text"):
                for p, el in sorted(self.elements.items()):
                    if p[:len(path)] == path and el.WhichOneof("type") == "text":
                        return el.text.body
        return None

    def html_text(self) -> str | None:
        """The tune as the `abc-text` box shows it, one `data-line` row a line."""
        for el in self.all("html"):
            if 'data-testid="abc-text"' in el.body:
                return "\n".join(html_row(r) for r in re.findall(
                    r'<div data-line="\d+"[^>]*>(.*?)</div>', el.body))
        return None

    def sheet_music(self) -> bytes:
        """The SVG of the st.image (inline as a data: URL, or fetched)."""
        for el in self.all("imgs"):
            for img in el.imgs:
                if img.url.startswith("data:image/svg"):
                    return base64.b64decode(img.url.split(",", 1)[1])
                status, body = self.media.get(img.url, (0, b""))
                if status == 200:
                    return body
        return b""

    def audio(self) -> tuple[str | None, bytes]:
        el = self.find("audio")
        if el is None:
            return None, b""
        status, body = self.media.get(el.url, (0, b""))
        return el.url, body if status == 200 else b""

    def alerts(self) -> list[str]:
        return [a.body for a in self.all("alert")]


def html_row(row: str) -> str:
    # A row: <span>line number</span><span>mark</span>text (the seed text wrapped in a span).
    text = re.sub(r"^(?:<span[^>]*>[^<]*</span>){2}", "", row)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def media_urls(element) -> list[str]:
    """What a browser fetches for an element as soon as it arrives: audio, non-inline images."""
    kind = element.WhichOneof("type")
    if kind == "audio" and element.audio.url:
        return [element.audio.url]
    if kind == "imgs":
        return [i.url for i in element.imgs.imgs if i.url.startswith("/")]
    return []


# -- one browser session ---------------------------------------------------------------------------
class RunFailed(RuntimeError):
    pass


class Session:
    """One visitor's websocket: sends reruns, keeps widget values, fetches media, answers
    timed fragment reruns. run() sends a rerun and returns the page once it has finished."""

    def __init__(self, base: str, name: str, stats: dict, cookies: dict | None = None,
                 source: str | None = None):
        self.base, self.name, self.stats = base, name, stats
        self.source = source  # the local address it connects from (http_request)
        # A cookie jar (behind a sticky balancer): connect() first loads the page as a browser
        # does, and its cookies go with the websocket upgrade and every media GET.
        self.cookies = cookies
        self.upgrade_headers: dict = {}  # the websocket upgrade's response headers
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.widgets: dict[str, WidgetState] = {}  # id -> value the browser holds
        self.widget_script: dict[str, str] = {}  # id -> hash of the script that drew it
        self.query = ""
        self.page_hash = ""
        self.main_hash = ""
        self.pages: dict[str, str] = {}  # url path -> page script hash (st.navigation)
        self.elements: dict = {}
        self.blocks: dict = {}
        self.fetches: dict[str, asyncio.Task] = {}  # media URL -> its fetch, this run
        self.page: Page | None = None
        self.fragment_run = False
        self.last_full = False  # the last run that ended was a whole, successful run
        self.auto: dict[str, tuple[float, asyncio.Task]] = {}
        self.waiter: asyncio.Future | None = None
        self.finished = asyncio.Event()  # set at every script_finished (any run)
        self.problems: list[str] = []
        self.exceptions: list[str] = []
        self.fragment_runs = 0

    async def connect(self) -> None:
        headers = {}
        if self.cookies is not None:
            status, _, _ = await http_request(self.base, "/", self.cookies,
                                              source=self.source)
            if status != 200:
                raise RunFailed(f"the page answered {status}")
            headers["Cookie"] = cookie_header(self.cookies)
        url = "ws" + self.base[len("http"):] + STREAM
        self.ws = await websockets.connect(url, subprotocols=["streamlit"], origin=self.base,
                                           max_size=None, open_timeout=60,
                                           additional_headers=headers,
                                           local_addr=(self.source, 0) if self.source
                                           else None)
        self.upgrade_headers = {k.lower(): v for k, v in self.ws.response.headers.raw_items()}
        self.reader = asyncio.create_task(self.read())

    async def close(self) -> None:
        for _, task in self.auto.values():
            task.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)

    # -- sending ------------------------------------------------------------------------------
    async def send_rerun(self, changes=(), page_hash: str | None = None, page_name: str = "",
                         fragment_id: str = "", auto: bool = False, only_main: bool = False):
        m = BackMsg()
        c = m.rerun_script
        c.query_string = self.query
        c.page_script_hash = self.page_hash if page_hash is None else page_hash
        c.page_name = page_name
        c.fragment_id = fragment_id
        c.is_auto_rerun = auto
        # No cached_message_hashes: the server then always sends whole messages.
        for k, v in CONTEXT.items():
            setattr(c.context_info, k, v)
        path = next((p for p, h in self.pages.items() if h == c.page_script_hash), page_name)
        c.context_info.url = f"{self.base}/{path}" + (f"?{self.query}" if self.query else "")
        states = {wid: s for wid, s in self.widgets.items()
                  if not only_main or self.widget_script.get(wid) == self.main_hash}
        for s in changes:
            if not s.HasField("trigger_value"):
                self.widgets[s.id] = s  # the browser keeps what the visitor typed
            states[s.id] = s
        c.widget_states.widgets.extend(states.values())
        await self.ws.send(m.SerializeToString())

    async def run(self, changes=(), page_hash: str | None = None, page_name: str = "",
                  only_main: bool = False, timeout: float = PAGE_TIMEOUT_S) -> Page:
        """A full rerun; the page once a full run has finished and its media are fetched."""
        self.waiter = asyncio.get_running_loop().create_future()
        await self.send_rerun(changes, page_hash, page_name, only_main=only_main)
        try:
            page = await asyncio.wait_for(self.waiter, timeout)
        except TimeoutError:
            raise RunFailed(f"no finished run within {timeout:.0f} s") from None
        page.media = {url: await task for url, task in page.media.items()}
        return page

    async def auto_rerun(self, fragment_id: str, interval: float) -> None:
        # As the browser's setInterval: a fragment rerun every `interval`, whatever runs.
        try:
            while True:
                await asyncio.sleep(interval)
                await self.send_rerun(fragment_id=fragment_id, auto=True)
        except websockets.ConnectionClosed:
            pass

    # -- receiving ----------------------------------------------------------------------------
    async def read(self) -> None:
        try:
            async for raw in self.ws:
                self.stats["bytes"] += len(raw)
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                self.handle(msg)
        except websockets.ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - reported, and the waiter must not hang
            self.problems.append(f"{self.name}: reading the stream: {type(e).__name__}: {e}")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(RunFailed("the server closed the connection"))

    def handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        self.stats["messages"] += 1
        if kind == "delta":
            self.on_delta(msg)
        elif kind == "new_session":
            self.on_new_session(msg)
        elif kind == "script_finished":
            self.on_finished(msg)
        elif kind == "navigation":
            self.pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
        elif kind == "page_info_changed":
            self.query = msg.page_info_changed.query_string
        elif kind == "auto_rerun":
            fid, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            if fid and self.auto.get(fid, (None,))[0] != interval:
                self.stop_auto([fid])
                self.auto[fid] = (interval, asyncio.create_task(self.auto_rerun(fid, interval)))
        elif kind == "stop_auto_rerun":
            self.stop_auto(msg.stop_auto_rerun.fragment_ids)
        elif kind == "ref_hash":
            self.stats["ref_hash"] += 1
            self.problems.append(f"{self.name}: the server sent a cached-message reference")
        elif kind == "page_not_found":
            self.problems.append(f"{self.name}: page not found: {msg.page_not_found.page_name}")
        elif kind == "session_event" and msg.session_event.HasField(
                "script_compilation_exception"):
            e = msg.session_event.script_compilation_exception
            self.exceptions.append(f"{e.type}: {e.message}"[:300])

    def on_new_session(self, msg: ForwardMsg) -> None:
        self.fragment_run = bool(msg.metadata.run.fragment_ids)
        if not self.fragment_run:
            self.stop_auto(list(self.auto))  # a full run: the browser drops its timers
            self.elements, self.blocks, self.fetches = {}, {}, {}
            self.page_hash = msg.new_session.page_script_hash
            self.main_hash = msg.new_session.main_script_hash
        else:
            self.fragment_runs += 1

    def on_delta(self, msg: ForwardMsg) -> None:
        path = tuple(msg.metadata.delta_path)
        d = msg.delta
        if d.WhichOneof("type") == "add_block":
            self.blocks[path] = d.add_block
            return
        if d.WhichOneof("type") != "new_element":
            return
        el = d.new_element
        self.elements[path] = el
        if el.WhichOneof("type") == "exception":
            self.exceptions.append(f"{el.exception.type}: {el.exception.message}"[:300])
        w = widget_of(el)
        if w is not None:
            kind, proto = w
            if proto.id not in self.widgets or proto.set_value:
                state = initial_state(kind, proto)
                if state is not None:
                    self.widgets[proto.id] = state
            self.widget_script[proto.id] = msg.metadata.active_script_hash
        for url in media_urls(el):
            if url not in self.fetches:
                self.fetches[url] = asyncio.create_task(http_get(self.base, url, self.cookies,
                                                                 source=self.source))

    def on_finished(self, msg: ForwardMsg) -> None:
        status = msg.script_finished
        self.last_full = status == FINISHED and not msg.metadata.run.fragment_ids
        self.finished.set()
        if status == FINISHED_FRAGMENT:
            return  # its elements went into the page's own (self.elements is page.elements)
        if status == COMPILE_ERROR:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(RunFailed("the script did not compile"))
            return
        if status != FINISHED or msg.metadata.run.fragment_ids:
            return  # stopped early for a rerun: the next run follows
        # The browser forgets the widgets a full run did not draw.
        drawn = {getattr(el, el.WhichOneof("type")).id for el in self.elements.values()
                 if widget_of(el) is not None}
        self.widgets = {k: v for k, v in self.widgets.items() if k in drawn}
        self.page = Page(self.elements, self.blocks, self.query, self.page_hash,
                         dict(self.fetches))
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.page)

    def stop_auto(self, fragment_ids) -> None:
        for fid in list(fragment_ids):
            _, task = self.auto.pop(fid, (None, None))
            if task is not None:
                task.cancel()

    async def next_finish(self, timeout: float) -> None:
        self.finished.clear()
        await asyncio.wait_for(self.finished.wait(), timeout)
