"""Headless visitors: many sessions on one `streamlit run` server, each speaking Streamlit's
own websocket protocol, while one more visitor trains a model.

    PYTHONPATH=. .venv/bin/python bench/visitors.py [--visitors 16] [--think 5]
        [--duration 60 | --tunes 200] [--length 600] [--train-steps 60 | --no-train]
        [--url http://127.0.0.1:8501] [--cookies] [--json]

Why: a browser per visitor (bench/load_test.py) costs more CPU than the server it measures on
a 2-core host. Here a visitor is a websocket and a few protobufs, so the figures are the
server's own: its CPU per tune (from /proc, the server and its children, the training worker
counted apart), its memory over time, and how long a new tune takes.

What a visitor does: it opens a share link (`?seed=...&length=...&temperature=...`, a seed no
other visitor uses), reads the whole page of that run (the tune's text, the charts, the sheet
music, the audio element) and fetches the audio over HTTP, as a browser does. Then, after a
think time, it changes the "Random seed" box or the "Temperature" slider (a rerun carrying
every widget value it holds, with that one changed) and reads the new page, until the run's
bound (--duration or --tunes). The trainer opens its link too, switches to the Train page
(or finds the Train widgets in the same run when the page uses tabs), sets the steps, presses
"Start training", answers the training panel's timed fragment reruns as the browser does,
presses "Use this model for sampling" when training is done and reads its model's tune.

Afterwards every tune is checked against the library
(`load_sampler(weights).generate(prime, length, temperature, seed, top_k, stop_at_end=True)`),
the trainer's against a copy of its own trained checkpoint; and the server must have shown no
exception, connected to no other host, and left no temporary files behind once stopped.

Figures: throughput (tunes written by the visitors per second of their run), latency (from a
visitor's rerun to its script_finished with the page's media fetched; the media are fetched as
soon as their element arrives, as a browser does), a new visitor's first tune (from opening
the websocket), the server's CPU-seconds per tune (the server process, its finished children
(the ABC tools) and its live ones (the sampling workers), less the training worker, whose time
is given apart, over every tune served, the trainer's included; for the whole run and from the
moment every visitor has had its first tune), and the server process's RSS (start, after
warm-up, median in each quarter after it, peak, end). This client's own CPU time is given
too: about 15 ms a tune, most of it parsing protobufs and watching /proc.

Protocol notes (Streamlit 1.67, Starlette server):
- /_stcore/stream with subprotocol "streamlit"; the client's first message is a rerun.
- A rerun reports no cached message hashes, so the server never answers with a `ref_hash`
  (it only refers to messages the client says it holds); any ref_hash counts as a problem.
- `auto_rerun` (st.fragment(run_every=...)) asks the client to send a fragment rerun every
  `interval` seconds until a full run starts or `stop_auto_rerun` comes, like the browser.
- On a page change the browser sends only the main script's widget values.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import html
import ipaddress
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import (  # noqa: E402 - bench/ is not a package
    RssRecorder,
    cpu_seconds,
    leftovers,
    percentile,
    remote_peers,
    rss_mb,
    server,
    shown,
)

# -- settings ---------------------------------------------------------------------------------
STREAM = "/_stcore/stream"
REPLICA_HEADER = "x-abcweb-replica"  # set by deploy/haproxy.cfg
SEED_BASE = 1_000_000  # visitor i's seeds start at SEED_BASE * (i + 1): no two visitors share one
TRAINER_SEED = 424242
TRAINER_LENGTH = 300  # the trainer's link: a short tune from a barely trained model
PRIME = "X:"  # the page's default seed text (params.Settings)
TOP_K = 0
TEMPERATURES = [round(0.5 + 0.05 * i, 2) for i in range(21)]  # 0.5 .. 1.5, the slider's steps
CHANGE_SEED = 0.7  # chance that a visitor's next tune is a new seed rather than a temperature
JITTER = (0.5, 1.5)  # think time is drawn from think * uniform(JITTER)
PAGE_TIMEOUT_S = 180  # one run of the page, from the rerun to script_finished
TRAIN_TIMEOUT_S = 900
WATCH_EVERY_S = 0.05  # how often the training worker's CPU time is read (one small file)
SCAN_EVERY_S = 0.5  # how often the server's process tree is scanned for a training worker
PEERS_EVERY_S = 5.0  # how often its processes' connections are listed (10 ms a process)
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
        """The st.code inside the "ABC text to copy" expander: the tune's text itself."""
        for path, block in self.blocks.items():
            if block.WhichOneof("type") == "expandable" and block.expandable.label.startswith(
                    "ABC text"):
                for p, el in sorted(self.elements.items()):
                    if p[:len(path)] == path and el.WhichOneof("type") == "code":
                        return el.code.code_text
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


# -- what the run records -------------------------------------------------------------------------
@dataclass
class Tune:
    visitor: str
    seed: int
    temperature: float
    length: int
    first: bool
    latency: float
    text: str | None  # the st.code text
    html_text: str | None
    query: str
    charts: int
    svg_bytes: int
    audio_url: str | None
    audio_bytes: int
    audio_kind: str | None
    model: str | None  # the Model box's choice
    t_end: float = 0.0


@dataclass
class Visit:
    name: str
    tunes: list[Tune] = field(default_factory=list)
    claims: int = 0
    error: str | None = None
    exceptions: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    trained: dict | None = None
    training_window: tuple[float, float] | None = None  # perf_counter times: Start to done
    trained_model: Path | None = None  # a copy of the trainer's checkpoint
    replica: str | None = None  # behind a balancer: who served it (REPLICA_HEADER)


def record(visit: Visit, page: Page, seed: int, temperature: float, length: int, first: bool,
           t0: float) -> Tune:
    url, audio = page.audio()
    model = page.find("selectbox", "Model")
    tune = Tune(visit.name, seed, temperature, length, first, time.perf_counter() - t0,
                page.code_text(), page.html_text(), page.query, len(page.all("vega_lite_chart")),
                len(page.sheet_music()), url, len(audio), audio_kind(audio),
                model_choice(model), time.perf_counter())
    visit.tunes.append(tune)
    return tune


def model_choice(box) -> str | None:
    if box is None:
        return None
    if box.set_value:
        return box.raw_value
    return box.options[box.default] if 0 <= box.default < len(box.options) else None


class Bounds:
    """When to stop: --tunes (each visitor does its share) and/or --duration."""

    def __init__(self, tunes: int | None, per_visitor: int | None, duration: float | None):
        self.tunes, self.per_visitor = tunes, per_visitor
        self.deadline = time.perf_counter() + duration if duration else math.inf
        self.claimed = 0

    def claim(self, visit: Visit) -> bool:
        if time.perf_counter() >= self.deadline:
            return False
        if self.tunes is not None and (self.claimed >= self.tunes
                                       or visit.claims >= self.per_visitor):
            return False
        self.claimed += 1
        visit.claims += 1
        return True


def query_for(seed: int, length: int, temperature: float, model: str) -> str:
    """A share link's query, naming the model as the page's own links do."""
    return urlencode({"seed": seed, "length": length, "temperature": f"{temperature:.1f}",
                      "model": model})


def next_temperature(rng: random.Random, current: float, used: set) -> float:
    choices = [t for t in TEMPERATURES if t != current and t not in used] or \
              [t for t in TEMPERATURES if t != current]
    return rng.choice(choices)


async def visitor(i: int, base: str, args, bounds: Bounds, stats: dict, on_tune) -> Visit:
    """Open a link, then keep changing the seed or the temperature until the bounds say stop."""
    visit = Visit(f"visitor {i}")
    rng = random.Random(args.rng_seed * 1000 + i)
    seed, temperature, used = SEED_BASE * (i + 1), 1.0, set()
    await asyncio.sleep(rng.uniform(0, args.ramp))
    if not bounds.claim(visit):
        return visit
    s = Session(base, visit.name, stats, {} if args.cookies else None)
    try:
        t0 = time.perf_counter()
        await s.connect()
        s.query = query_for(seed, args.length, temperature, args.model_id)
        page = await s.run(page_name=args.page)
        used.add(temperature)
        on_tune(record(visit, page, seed, temperature, args.length, True, t0))
        while True:
            await asyncio.sleep(args.think * rng.uniform(*JITTER))
            if not bounds.claim(visit):
                break
            if rng.random() < CHANGE_SEED:
                seed, used = seed + 1, set()
                change = int_state(widget_id(s.page, "number_input", "Random seed"), seed)
            else:
                temperature = next_temperature(rng, temperature, used)
                change = slider_state(widget_id(s.page, "slider", "Temperature"), temperature)
            used.add(temperature)
            t0 = time.perf_counter()
            page = await s.run([change])
            on_tune(record(visit, page, seed, temperature, args.length, False, t0))
    except Exception as e:  # noqa: BLE001 - reported with the results
        visit.error = f"{type(e).__name__}: {str(e)[:300]}"
    finally:
        await s.close()
        visit.exceptions, visit.problems = s.exceptions, s.problems
        visit.replica = s.upgrade_headers.get(REPLICA_HEADER)
    return visit


def widget_id(page: Page | None, kind: str, label: str) -> str:
    w = page.find(kind, label) if page is not None else None
    if w is None:
        raise RunFailed(f"the page has no {kind} labelled {label!r}")
    return w.id


# -- the trainer --------------------------------------------------------------------------------
async def trainer(base: str, args, stats: dict, tmpdir: Path | None, work: Path,
                  warm: asyncio.Event) -> Visit:
    """Open a link, go to the Train view, train the tiny preset, sample from the model.
    Training starts once every visitor has had its first tune, so the tunes written while it
    trains compare with the tunes written while nobody does, not with a warming server."""
    visit = Visit("trainer")
    s = Session(base, visit.name, stats, {} if args.cookies else None)
    try:
        t0 = time.perf_counter()
        await s.connect()
        s.query = query_for(TRAINER_SEED, TRAINER_LENGTH, 1.0, args.model_id)
        page = await s.run(page_name=args.page)
        record(visit, page, TRAINER_SEED, 1.0, TRAINER_LENGTH, True, t0)
        if args.train_page in s.pages:  # st.navigation: switch pages as the browser does
            page = await s.run(page_hash=s.pages[args.train_page], only_main=True)
        # else: one page with tabs, the Train widgets are in this run already
        steps = page.find("number_input", "Steps")
        if steps is None:
            raise RunFailed("no Steps box in the Train view")
        page = await s.run([int_state(steps.id, args.train_steps)])
        try:
            await asyncio.wait_for(warm.wait(), PAGE_TIMEOUT_S)
        except TimeoutError:
            pass  # a visitor that failed never warms: train anyway
        t_start = time.perf_counter()
        page = await s.run([trigger(widget_id(page, "button", "Start training"))])
        visit.trained = await follow_training(s, args.train_timeout)
        visit.trained["seconds"] = round(time.perf_counter() - t_start, 1)
        visit.training_window = (t_start, time.perf_counter())
        use = widget_id(s.page, "button", "Use this model for sampling")
        t0 = time.perf_counter()
        page = await s.run([trigger(use)])
        record(visit, page, TRAINER_SEED, 1.0, TRAINER_LENGTH, False, t0)
        visit.trained["on_generate_page"] = not s.pages or page.page_hash == s.pages.get(
            args.page)
        if tmpdir is not None:  # copy it now: the model goes when the session ends
            visit.trained_model = copy_trained_model(tmpdir, work)
    except Exception as e:  # noqa: BLE001 - reported with the results
        visit.error = f"{type(e).__name__}: {str(e)[:300]}"
    finally:
        await s.close()
        visit.exceptions, visit.problems = s.exceptions, s.problems
        visit.replica = s.upgrade_headers.get(REPLICA_HEADER)
    return visit


async def follow_training(s: Session, timeout: float) -> dict:
    """Wait (answering the panel's timed reruns) until a full run shows the finished job."""
    deadline = time.perf_counter() + timeout
    progress = None
    while True:
        page = s.page
        bar = page.find("progress") if page else None
        if bar is not None:
            progress = bar.text
        failed = [a for a in page.alerts() if a.startswith("Training failed")] if page else []
        if failed:
            raise RunFailed(failed[0][:300])
        if s.last_full and page.find("button", "Use this model for sampling"):
            return {"progress": progress, "fragment_reruns": s.fragment_runs,
                    "done": next((a for a in page.alerts() if "model is saved" in a), None)}
        left = deadline - time.perf_counter()
        if left <= 0:
            raise RunFailed(f"training not done within {timeout:.0f} s (last: {progress})")
        try:
            await s.next_finish(min(left, 30))
        except TimeoutError:
            continue


def copy_trained_model(tmpdir: Path, work: Path) -> Path | None:
    """A copy of the (newest) trained checkpoint in the server's TMPDIR: the job folder holds
    it in model/ (abcweb/training_job.py), or was it itself when training ran in a thread."""
    found = list(tmpdir.glob("abcweb-train-*/model/model.json")) or list(
        tmpdir.glob("abcweb-train-*/model.json"))
    if not found:
        return None
    newest = max(found, key=lambda p: p.stat().st_mtime).parent
    out = work / "trained-model"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(newest, out, ignore=shutil.ignore_patterns("tmp"))
    return out


# -- the server's processes -----------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """A process's children, from each of its threads' children list (a scan of all of
    /proc costs 50 times more: it would be the client's biggest cost)."""
    out = []
    try:  # an ABC tool may end between the parent's listing and this scan
        files = list(Path(f"/proc/{pid}/task").glob("*/children"))
    except OSError:
        return out
    for f in files:
        try:
            out += [int(c) for c in f.read_text().split()]
        except OSError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def is_trainer(pid: int) -> bool:
    try:
        return b"abcweb.train_worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its reaped children (the tools, a finished training worker)
    and its live descendants (the sampling workers, a running training worker)."""
    total = cpu_seconds(pid)
    for d in descendants(pid):
        try:
            total += cpu_seconds(d)
        except OSError:
            pass  # it has just ended: its time moves to its parent's children's time
    return total


class Watch(threading.Thread):
    """Follows the server's process tree: each training worker's CPU time (read often, so
    little of it is missed when the worker ends and its time joins the server's children's),
    and connections of the server or any descendant to hosts other than loopback."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.trainers: dict[int, float] = {}  # pid -> last CPU seconds seen
        self.peers: dict[str, set[str]] = {}
        self.done = threading.Event()
        self.own_cpu = 0.0  # what watching costs this process

    def run(self) -> None:
        next_scan = next_peers = 0.0
        while not self.done.is_set():
            self.own_cpu = time.thread_time()
            now = time.perf_counter()
            if now >= next_scan:
                self.scan(peers=now >= next_peers)
                next_scan = now + SCAN_EVERY_S
                next_peers = now + PEERS_EVERY_S if now >= next_peers else next_peers
            for p in list(self.trainers):
                try:
                    self.trainers[p] = cpu_seconds(p)
                except OSError:
                    pass
            self.done.wait(WATCH_EVERY_S)

    def scan(self, peers: bool = True) -> None:
        for p in [self.pid] + descendants(self.pid):
            if p != self.pid and p not in self.trainers and is_trainer(p):
                self.trainers[p] = 0.0
            if not peers:
                continue
            try:
                found = remote_peers(p)
            except OSError:
                continue
            if found:
                self.peers.setdefault(process_name(p), set()).update(found)

    @property
    def trainer_cpu(self) -> float:
        return sum(self.trainers.values())

    def workers_rss(self) -> float:
        total = 0.0
        for p in descendants(self.pid):
            if p not in self.trainers:
                try:
                    total += rss_mb(p)
                except OSError:
                    pass
        return total


def process_name(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        return f"{pid} {cmd[:80]}"
    except OSError:
        return str(pid)


def pid_listening_on(port: int) -> int | None:
    """The process (of this user) listening on a local TCP port, for --url."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
        except OSError:
            continue
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) in inodes:
                return int(fd.parent.parent.name)
        except OSError:
            continue
    return None


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0")
                if "=" in item)


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    for info in socket.getaddrinfo(host, None):
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise SystemExit(f"{url}: only loopback addresses are allowed")


# -- checks ---------------------------------------------------------------------------------------
def expected_text(sampler, seed: int, length: int, temperature: float) -> str:
    return sampler.generate(PRIME, length, temperature, seed, TOP_K, stop_at_end=True).text


def check_tune(t: Tune, expected: str, media: bool = True) -> list[str]:
    """What is wrong with one tune the page showed, given the library's text."""
    out = []
    # st.code drops one leading and one trailing newline; the box shows shown(text).
    if t.text != re.sub(r"\n\Z", "", expected):
        out.append("its ABC text is not the library's tune")
    if t.html_text is None:
        out.append("no abc-text box")
    elif t.html_text != shown(expected):
        out.append("the abc-text box does not show the library's tune")
    q = {k: v[0] for k, v in parse_qs(t.query).items()}
    if q.get("seed") != str(t.seed) or float(q.get("temperature", "nan")) != t.temperature:
        out.append(f"the link says {t.query!r}")
    if not media:
        return out
    if not t.charts:
        out.append("no charts")
    if not t.svg_bytes:
        out.append("no sheet music")
    if not t.audio_bytes or t.audio_kind is None:
        out.append(f"no playable audio at {t.audio_url} ({t.audio_bytes} bytes)")
    return out


def session_problems(visits: list[Visit]) -> list[str]:
    """What went wrong in the sessions themselves: errors, exceptions in a page, protocol."""
    problems: list[str] = []
    for v in visits:
        if v.error:
            problems.append(f"{v.name}: {v.error}")
        problems.extend(v.problems)
        if v.exceptions:
            problems.append(f"{v.name}: {len(v.exceptions)} exception(s) in the page: "
                            f"{v.exceptions[0]}")
    return problems


def verify(visits: list[Visit], weights: Path) -> tuple[int, list[str]]:
    from abcweb.sampler import load_sampler

    problems, wrong = [], 0
    shipped = load_sampler(weights)
    for v in visits:
        if v.name == "trainer":
            continue
        for t in v.tunes:
            bad = check_tune(t, expected_text(shipped, t.seed, t.length, t.temperature))
            if t.model is not None and t.model != "Shipped model":
                bad.append(f"its page samples {t.model!r}")
            wrong += bool(bad)
            if bad and wrong <= 5:
                problems.append(f"{v.name}, seed {t.seed} at {t.temperature}: "
                                + "; ".join(bad))
    if wrong > 5:
        problems.append(f"... {wrong} wrong tunes in all")
    return wrong, problems


def verify_trainer(v: Visit, weights: Path) -> list[str]:
    from abcweb.sampler import load_sampler

    if v.trained is None:
        return [] if v.error else ["trainer: training did not finish"]
    problems = []
    if len(v.tunes) < 2:
        return ["trainer: no tune from its model"]
    first, last = v.tunes[0], v.tunes[-1]
    shipped = load_sampler(weights)
    for what in check_tune(first, expected_text(shipped, first.seed, first.length, 1.0)):
        problems.append(f"trainer, its link's tune: {what}")
    if not (last.model or "").startswith("Trained here"):
        problems.append(f"trainer: its page samples {last.model!r}, not its model")
    if v.trained_model is None:
        problems.append("trainer: no trained checkpoint found to check its tune against")
    else:
        # A model trained for a few steps seldom writes a whole tune: no sheet music or
        # audio is then right, so only the text and the link are checked.
        own = expected_text(load_sampler(v.trained_model), last.seed, last.length, 1.0)
        for what in check_tune(last, own, media=False):
            problems.append(f"trainer, its model's tune: {what}")
    return problems


# -- the run ------------------------------------------------------------------------------------
def quarter_medians(samples: list[tuple[float, float]], t_from: float) -> list[float | None]:
    """Median RSS in each quarter of the time after warm-up: single samples jump with
    transient render buffers."""
    t_end = samples[-1][0] if samples else t_from
    out = []
    for q in range(4):
        lo = t_from + (t_end - t_from) * q / 4
        hi = t_from + (t_end - t_from) * (q + 1) / 4
        window = [v for t, v in samples if lo <= t <= hi]
        out.append(round(statistics.median(window), 1) if window else None)
    return out


def self_cpu(pid: int) -> float:
    """CPU time (user and system) of the process itself, without its children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """The server's figures: RSS over time, and CPU snapshots of its process tree."""

    def __init__(self, pid: int):
        self.pid = pid
        self.rss, self.watch = RssRecorder(pid), Watch(pid)
        self.snaps: dict[str, dict] = {}
        self.rss.start()
        self.watch.start()

    def mark(self, name: str) -> None:
        self.rss.mark(name)
        self.snaps[name] = {"tree": tree_cpu(self.pid), "self": self_cpu(self.pid),
                            "trainer": self.watch.trainer_cpu, "t": time.perf_counter()}

    def stop(self) -> None:
        self.watch.done.set()
        self.watch.join()
        self.watch.scan()  # the connections and workers as they are at the end
        self.rss.done.set()
        self.rss.join()

    def cpu(self, a: str, b: str) -> dict:
        """CPU seconds between two marks: the tree, the training worker, and the rest."""
        x, y = self.snaps[a], self.snaps[b]
        trainer = y["trainer"] - x["trainer"]
        pages = y["tree"] - x["tree"] - trainer
        server = y["self"] - x["self"]
        return {"tree": pages + trainer, "training_worker": trainer, "pages": pages,
                "server_process": server, "tools_and_sampling_workers": pages - server}


async def drive(base: str, args, tmpdir: Path | None, work: Path, meter: Meter | None) -> dict:
    stats = {"messages": 0, "bytes": 0, "ref_hash": 0}
    per_visitor = math.ceil(args.tunes / args.visitors) if args.tunes else None
    bounds = Bounds(args.tunes, per_visitor, args.duration)
    firsts: list[float] = []
    warm = asyncio.Event()

    def on_tune(t: Tune) -> None:
        if t.first:
            firsts.append(t.t_end)
            if len(firsts) == args.visitors:
                warm.set()
                if meter is not None:
                    meter.mark("warm")  # every visitor has had its first tune
        if args.log and not t.first and bounds.claimed % 10 == 0:
            args.log(f"{bounds.claimed} tunes" + (f", server RSS {rss_mb(meter.pid):.0f} MB"
                                                  if meter else ""))

    jobs = [visitor(i, base, args, bounds, stats, on_tune) for i in range(args.visitors)]
    train_job = (asyncio.create_task(trainer(base, args, stats, tmpdir, work, warm))
                 if args.train_steps else None)
    t0 = time.perf_counter()
    visits = list(await asyncio.gather(*jobs))
    wall = time.perf_counter() - t0
    if train_job is not None:
        visits.append(await train_job)
    return {"visits": visits, "wall": wall, "stats": stats,
            "warm_at": max(firsts) if len(firsts) == args.visitors else None}


def run(args) -> dict:
    """Start a server (or use --url), drive it, check everything; the figures and problems."""
    from abcweb import checkpoint

    work = Path(args.workdir or tempfile.mkdtemp(prefix="abcweb-visitors-"))
    if args.url:
        check_loopback(args.url)
        pid = pid_listening_on(urlsplit(args.url).port or 80)
        env = environ_of(pid) if pid else {}
        tmpdir = Path(env["TMPDIR"]) if env.get("TMPDIR") else None
        weights = Path(args.weights or env.get("ABCWEB_WEIGHTS") or checkpoint.resolve(None))
        return measure(args.url.rstrip("/"), pid, tmpdir, weights, work, args)
    tmpdir = work / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    weights = work / "model"
    checkpoint.save(checkpoint.load(checkpoint.resolve(args.weights)), weights)  # a frozen copy
    with server(weights, tmpdir) as srv:
        result = measure(srv.url, srv.pid, tmpdir, weights, work, args)
    # Once the server has stopped, nothing it made may stay behind.
    left = leftovers(tmpdir)
    result["leftover_tmp_after_stop"] = left
    if any(left.values()):
        result["problems"].append(f"temporary files left after the server stopped: {left}")
    return result


def measure(base: str, pid: int | None, tmpdir: Path | None, weights: Path, work: Path,
            args) -> dict:
    from abcweb.checkpoint import model_id

    args.model_id = model_id(weights)
    meter = Meter(pid) if pid else None
    if meter:
        meter.mark("start")
    client0 = time.process_time()
    out = asyncio.run(drive(base, args, tmpdir, work, meter))
    client = time.process_time() - client0  # before the checks below, which cost far more
    if meter:
        meter.mark("end")
        meter.stop()
    left_running = leftovers(tmpdir) if tmpdir is not None and tmpdir.exists() else None

    problems = session_problems(out["visits"])
    wrong = 0
    if args.verify:
        wrong, found = verify(out["visits"], weights)
        problems.extend(found)
        problems.extend(p for v in out["visits"] if v.name == "trainer"
                        for p in verify_trainer(v, weights))
    if meter and meter.watch.peers:
        problems.append(f"the server's processes connected to other hosts: "
                        f"{meter.watch.peers}")
    if left_running and left_running["render"]:
        problems.append(f"render folders left behind: {left_running['render']}")
    if out["stats"]["ref_hash"]:
        problems.append(f"{out['stats']['ref_hash']} cached-message references received")
    result = summarize(args, out, wrong, problems, client, work)
    if meter:
        result.update(server_figures(meter, out))
        result["client_cpu_s"]["of_which_watching_the_server"] = round(meter.watch.own_cpu, 2)
    if left_running is not None:
        result["leftover_tmp_running"] = {k: len(v) for k, v in left_running.items()}
    return result


def rounded(x, n: int = 3):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, n)


def summarize(args, out: dict, wrong: int, problems: list[str], client_cpu: float,
              work: Path) -> dict:
    visits, wall = out["visits"], out["wall"]
    tunes = [t for v in visits if v.name != "trainer" for t in v.tunes]
    later = [t.latency for t in tunes if not t.first]
    firsts = [t.latency for t in tunes if t.first]
    result = {
        "visitors": args.visitors, "training_visitor": bool(args.train_steps),
        "think_s": args.think, "length": args.length, "tunes": len(tunes),
        "wall_s": rounded(wall, 1),
        "throughput_per_s": rounded(len(tunes) / wall if wall else None, 2),
        "latency_s": {"p50": rounded(percentile(later, 0.5)),
                      "p95": rounded(percentile(later, 0.95)),
                      "max": rounded(max(later, default=None)), "n": len(later)},
        "first_tune_s": {"p50": rounded(percentile(firsts, 0.5)),
                         "p95": rounded(percentile(firsts, 0.95)), "n": len(firsts)},
        "wrong_tunes": wrong,
        "client_cpu_s": {"total": rounded(client_cpu, 2)},
        "host_cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
        "stream": dict(out["stats"]), "problems": problems, "workdir": str(work),
    }
    tv = next((v for v in visits if v.name == "trainer"), None)
    if tv is not None and tv.training_window:
        # The criterion: a tune while someone trains against a tune while nobody does.
        a, b = tv.training_window
        during = [t.latency for t in tunes if not t.first and t.t_end - t.latency >= a
                  and t.t_end <= b]
        idle = [t.latency for t in tunes if not t.first and (t.t_end <= a
                                                              or t.t_end - t.latency >= b)]
        result["latency_while_training_s"] = {
            "during": {"p50": rounded(percentile(during, 0.5)),
                       "p95": rounded(percentile(during, 0.95)), "n": len(during)},
            "outside": {"p50": rounded(percentile(idle, 0.5)),
                        "p95": rounded(percentile(idle, 0.95)), "n": len(idle)}}
    if tv is not None:
        result["trainer"] = {**(tv.trained or {}), "error": tv.error, "tunes": len(tv.tunes),
                             "model": tv.tunes[-1].model if tv.tunes else None,
                             "tune_from_its_model_s": rounded(tv.tunes[-1].latency)
                             if len(tv.tunes) > 1 else None}
    return result


def server_figures(meter: Meter, out: dict) -> dict:
    """CPU per tune (all of the run, and after warm-up) and RSS over time."""
    ends = sorted(t.t_end for v in out["visits"] for t in v.tunes)
    cpu = {"whole_run": meter.cpu("start", "end")}
    cpu["whole_run"]["tunes"] = len(ends)
    if "warm" in meter.snaps:
        cpu["after_warmup"] = meter.cpu("warm", "end")
        cpu["after_warmup"]["tunes"] = sum(t > meter.snaps["warm"]["t"] for t in ends)
    for part in cpu.values():
        part["per_tune"] = part["pages"] / part["tunes"] if part["tunes"] else None
        for k, v in part.items():
            part[k] = rounded(v) if isinstance(v, float) else v
    rss = dict(meter.rss.marks)
    rss["peak"] = round(meter.rss.peak, 1)
    t_warm = (out["warm_at"] - meter.rss.t0) if out["warm_at"] else 0.0
    rss["quarters_after_warmup"] = quarter_medians(meter.rss.samples, t_warm)
    rss["sampling_workers_at_end"] = round(meter.watch.workers_rss(), 1)
    return {"server_cpu_s": cpu, "server_rss_mb": rss}


def report(r: dict) -> str:
    lines = [f"{r['visitors']} visitors{' + 1 training' if r['training_visitor'] else ''}, "
             f"think {r['think_s']} s: {r['tunes']} tunes in {r['wall_s']} s, "
             f"{r['throughput_per_s']} tunes/s",
             f"latency (rerun -> script_finished and the audio): p50 {r['latency_s']['p50']} s,"
             f" p95 {r['latency_s']['p95']} s, max {r['latency_s']['max']} s "
             f"({r['latency_s']['n']} tunes); a new visitor's first tune: p50 "
             f"{r['first_tune_s']['p50']} s, p95 {r['first_tune_s']['p95']} s"]
    w = r.get("latency_while_training_s")
    if w:
        lines.append(f"latency while the trainer trains: p50 {w['during']['p50']} s, p95 "
                     f"{w['during']['p95']} s ({w['during']['n']} tunes); before or after: p50 "
                     f"{w['outside']['p50']} s, p95 {w['outside']['p95']} s "
                     f"({w['outside']['n']} tunes)")
    for name, c in r.get("server_cpu_s", {}).items():
        lines.append(f"server CPU, {name.replace('_', ' ')}: {c['per_tune']} s per tune "
                     f"({c['pages']} s for {c['tunes']} tunes: server process "
                     f"{c['server_process']} s, tools and sampling workers "
                     f"{c['tools_and_sampling_workers']} s); training worker "
                     f"{c['training_worker']} s apart")
    lines.append(f"this client: {r['client_cpu_s']} CPU-s; {r['host_cpus']} CPUs, load average "
                 f"{r['load_average']}")
    m = r.get("server_rss_mb")
    if m:
        lines.append(f"server RSS (MB): start {m.get('start')}, after warm-up {m.get('warm')}, "
                     f"quarters after warm-up {m['quarters_after_warmup']}, peak {m['peak']}, "
                     f"end {m.get('end')} (sampling workers {m['sampling_workers_at_end']})")
    if r.get("trainer"):
        lines.append(f"trainer: {r['trainer']}")
    if "leftover_tmp_after_stop" in r:
        lines.append(f"temporary files after the server stopped: "
                     f"{ {k: len(v) for k, v in r['leftover_tmp_after_stop'].items()} }")
    lines.append("problems: " + ("none" if not r["problems"]
                                 else "\n  " + "\n  ".join(r["problems"])))
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--visitors", type=int, default=16, help="concurrent visitors (16)")
    ap.add_argument("--think", type=float, default=5.0,
                    help="seconds between a tune and the next change, jittered x0.5-1.5 (5)")
    ap.add_argument("--duration", type=float, default=None,
                    help="stop starting tunes after this many seconds (60 unless --tunes)")
    ap.add_argument("--tunes", type=int, default=None, help="tunes in all, shared by visitors")
    ap.add_argument("--length", type=int, default=600, help="the links' length (600)")
    ap.add_argument("--ramp", type=float, default=0.0,
                    help="visitors arrive at random within this many seconds (0: at once)")
    ap.add_argument("--train-steps", type=int, default=60, help="the trainer's steps (60)")
    ap.add_argument("--no-train", action="store_true", help="no training visitor")
    ap.add_argument("--train-timeout", type=float, default=TRAIN_TIMEOUT_S)
    ap.add_argument("--page", default="", help="url path of the Generate view ('')")
    ap.add_argument("--train-page", default="train",
                    help="url path of the Train view; when the page has no such page, the "
                         "Train widgets are looked for in the same run (tabs)")
    ap.add_argument("--url", default=None, help="use a running server (loopback only)")
    ap.add_argument("--cookies", action="store_true",
                    help="load the page first and carry its cookies, as a browser does "
                         "(for a sticky balancer: bench/balancer.py)")
    ap.add_argument("--weights", default=None, help="checkpoint folder (default weights/)")
    ap.add_argument("--seed", dest="rng_seed", type=int, default=0,
                    help="seed of the think times and the changes (0)")
    ap.add_argument("--no-verify", dest="verify", action="store_false",
                    help="skip checking each tune against the library")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.no_train:
        args.train_steps = 0
    if args.duration is None and args.tunes is None:
        args.duration = 60.0
    args.log = None
    return args


def main() -> int:
    # A SIGTERM (timeout, a CI runner) unwinds like Ctrl-C, so the server is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args()
    args.log = lambda line: print(line, file=sys.stderr, flush=True)
    r = run(args)
    print(json.dumps(r, indent=1, default=str) if args.json else report(r))
    if not args.workdir:
        shutil.rmtree(r["workdir"], ignore_errors=True)
    return 1 if r["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
