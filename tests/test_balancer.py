"""Two `streamlit run` replicas behind HAProxy with the project's own deploy/haproxy.cfg, on
loopback ports, no Docker (bench/balancer.py's cluster()). Shows, in this order (the last test
stops a replica):
(a) a visitor's whole session stays on one replica: the page, the websocket, the audio (which
    only that replica has), training on the Train page and sampling with the trained model;
(b) a share link made on one replica brings back the same tune on the other;
(c) when a replica stops mid-session, its visitor's page reconnects through the balancer to
    the other replica, where its next tune is written and played; the other replica's visitor
    never notices, and new visitors go to the replica that is up.
Visitors are bench/visitors_client.py's sessions (Streamlit's websocket protocol), carrying
HAProxy's cookie as a browser does; in (c) the stopped replica's visitor is a real Chromium.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from abcweb.model import checkpoint

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import balancer  # noqa: E402 - bench/ is not a package
import browser_support as bs  # noqa: E402
from load_test import DONE, STATE, shown  # noqa: E402
from visitors_behaviour import (  # noqa: E402
    Tune,
    Visit,
    copy_trained_model,
    follow_training,
    query_for,
    record,
    widget_id,
)
from visitors_checks import check_tune, expected_text  # noqa: E402
from visitors_client import REPLICA_HEADER, Page, Session, http_request, int_state, trigger  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not shutil.which(balancer.HAPROXY), reason="no haproxy "
                                 "(./run.sh test installs it)")]

LENGTH = 300  # short tunes: the test is about where they are written, not what
TRAIN_STEPS = 5
SEED_A, SEED_B, SEED_C = 31, 4_200, 77_000
HEADER = REPLICA_HEADER
IDLE = ("() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
        " return !w || !/Running|Stop/.test(w.innerText); }")


@pytest.fixture(scope="module")
def weights():
    try:
        return checkpoint.resolve(os.environ.get("ABCWEB_WEIGHTS") or None)
    except checkpoint.CheckpointError as e:
        pytest.skip(f"no model to sample from: {e}")


@pytest.fixture(scope="module")
def cluster(weights, tmp_path_factory):
    with balancer.cluster(2, weights, tmp_path_factory.mktemp("cluster")) as c:
        yield c


@pytest.fixture(scope="module")
def library(weights):
    from abcweb.sampling.sampler import load_sampler

    return load_sampler(weights, workers=False)


def stats() -> dict:
    return {"messages": 0, "bytes": 0, "ref_hash": 0}


def link(seed: int, weights) -> str:
    return query_for(seed, LENGTH, 1.0, checkpoint.model_id(weights))


def tune_of(visit: Visit, page: Page, seed: int) -> Tune:
    return record(visit, page, seed, 1.0, LENGTH, False, time.perf_counter())


def other(cluster, name: str) -> str:
    return next(n for n in cluster.servers if n != name)


# -- (a) -------------------------------------------------------------------------------------
def test_a_visit_stays_on_one_replica_page_audio_training_sampling(cluster, weights, library,
                                                                    tmp_path):
    async def visit():
        s = Session(cluster.url, "a", stats(), {})  # an empty jar: the balancer picks
        await s.connect()
        try:
            s.query = link(SEED_A, weights)
            first = await s.run()
            # While the page shows it (Streamlit drops a page's media at its next run), the
            # audio is asked for from each replica by cookie.
            url, _ = first.audio()
            fetched = {name: (await http_request(cluster.url, url, cluster.pin(name)))[:2]
                       for name in cluster.servers}
            await s.run(page_hash=s.pages["train"], only_main=True)
            steps = s.page.find("number_input", "Steps")
            page = await s.run([int_state(steps.id, TRAIN_STEPS)])
            await s.run([trigger(widget_id(page, "button", "Start training"))])
            trained = await follow_training(s, 300)
            sampled = await s.run([trigger(widget_id(s.page, "button",
                                                     "Use this model for sampling"))])
            return s, first, fetched, trained, sampled
        finally:
            await s.close()

    s, first, fetched, trained, sampled = asyncio.run(visit())
    home = s.cookies[balancer.COOKIE]
    away = other(cluster, home)
    assert home in cluster.servers
    # The page GET set the cookie; the websocket upgrade carried it to the same replica.
    assert s.upgrade_headers[HEADER] == home
    assert not s.exceptions and not s.problems, s.exceptions + s.problems

    visit = Visit("a")
    tune = tune_of(visit, first, SEED_A)
    assert not check_tune(tune, expected_text(library, SEED_A, LENGTH, 1.0))
    # The page's own fetch carried the cookie (check_tune: the audio arrived), and only the
    # replica that wrote the audio has it: the other one answers 404 (why affinity matters).
    (status, headers), (status_away, headers_away) = fetched[home], fetched[away]
    assert (status, headers[HEADER]) == (200, home)
    assert (status_away, headers_away[HEADER]) == (404, away)

    # Training ran in the same replica (its worker's folder is in that replica's TMPDIR) and
    # the page then sampled the visitor's own model there.
    assert f"step {TRAIN_STEPS} of {TRAIN_STEPS}" in trained["progress"]
    assert not list(cluster.servers[away].tmpdir.glob("abcweb-train-*"))
    model = copy_trained_model(cluster.servers[home].tmpdir, tmp_path)
    assert model is not None
    mine = tune_of(visit, sampled, SEED_A)
    assert (mine.model or "").startswith("Trained here")
    from abcweb.sampling.sampler import load_sampler

    own = expected_text(load_sampler(model, workers=False), SEED_A, LENGTH, 1.0)
    assert not check_tune(mine, own, media=False)


# -- (b) -------------------------------------------------------------------------------------
def share_link(page: Page) -> str:
    """The link the sidebar shows under "Share this tune" (an st.text of the full URL)."""
    links = [t.body for t in page.all("text") if "?seed=" in t.body]
    assert len(links) == 1, links
    return links[0]


def test_b_a_share_link_made_on_one_replica_brings_back_its_tune_on_the_other(
        cluster, weights, library):
    async def visit():
        maker = Session(cluster.url, "maker", stats(), cluster.pin("app1"))
        friend = Session(cluster.url, "friend", stats(), cluster.pin("app2"))
        try:
            await maker.connect()
            maker.query = link(SEED_B, weights)
            page = await maker.run()
            box = widget_id(page, "number_input", "Random seed")
            made = await maker.run([int_state(box, SEED_B + 7)])  # a tune of its own
            url = share_link(made)
            await friend.connect()
            friend.query = urlsplit(url).query
            got = await friend.run()
            return maker, friend, made, url, got
        finally:
            await maker.close()
            await friend.close()

    maker, friend, made, url, got = asyncio.run(visit())
    assert maker.upgrade_headers[HEADER] == "app1" and friend.upgrade_headers[HEADER] == "app2"
    # The link names the balancer (the address the visitor sees), not a replica.
    assert url.startswith(cluster.url + "/?")
    assert parse_qs(urlsplit(url).query)["seed"] == [str(SEED_B + 7)]
    visit = Visit("b")
    a, b = tune_of(visit, made, SEED_B + 7), tune_of(visit, got, SEED_B + 7)
    assert b.text == a.text and b.html_text == a.html_text
    assert not check_tune(b, expected_text(library, SEED_B + 7, LENGTH, 1.0))
    # Each replica wrote its own audio file for it: the friend's plays from app2.
    assert balancer.replica_of(cluster.url, b.audio_url, cluster.pin("app2")) == (200, "app2")


# -- (c) -------------------------------------------------------------------------------------
def before_text(library) -> str:
    return shown(expected_text(library, SEED_C + 1, LENGTH, 1.0))


def serverid(cookies: list[dict]) -> str | None:
    return next((c["value"] for c in cookies if c["name"] == balancer.COOKIE), None)


@pytest.mark.browser
def test_b2_the_balancer_compresses_the_page_for_browsers_that_ask(cluster):
    """Streamlit sends its HTML and JavaScript uncompressed; HAProxy gzips them for a browser
    that accepts gzip (a first visit: 7.4 MB before, bench/first_visit.py), and sends them as
    they are to a client that does not."""
    import gzip
    import urllib.request

    def get(path: str, gz: bool) -> tuple[str | None, bytes]:
        req = urllib.request.Request(cluster.url + path,
                                     headers={"Accept-Encoding": "gzip"} if gz else {})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.headers.get("Content-Encoding"), r.read()

    encoding, body = get("/", True)
    assert encoding == "gzip"
    page = gzip.decompress(body).decode()
    script = re.search(r'src="\.?(/static/js/index\.[^"]+\.js)"', page)
    assert script, page[:500]
    encoding, body = get(script.group(1), True)
    plain_encoding, plain = get(script.group(1), False)
    assert encoding == "gzip" and plain_encoding is None
    assert gzip.decompress(body) == plain and len(body) < len(plain) / 2


def test_c_a_stopped_replica_sends_its_visitors_to_the_other_and_nothing_else_breaks(
        cluster, weights, library):
    from playwright.async_api import async_playwright

    victim, survivor = "app1", "app2"
    assert all(s.proc.poll() is None for s in cluster.servers.values()), "run the file in order"

    async def scenario():
        calm = Session(cluster.url, "calm", stats(), cluster.pin(survivor))
        await calm.connect()
        calm.query = link(SEED_C, weights)
        calm_first = await calm.run()
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=bs.CHROMIUM,
                                              args=bs.CHROMIUM_ARGS)
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            await context.add_cookies([{"name": balancer.COOKIE, "value": victim,
                                        "url": cluster.url}])
            page = await context.new_page()
            sockets, console = [], []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.on("console", lambda m: console.append(m.text))
            await page.goto(f"{cluster.url}/?{link(SEED_C + 1, weights)}")
            await page.wait_for_function(DONE, arg=[{"text": None, "audio": None,
                                                     "chart": None}], timeout=120_000)
            before = await page.evaluate(STATE)
            assert before["text"] == before_text(library)
            played = await page.request.get(before["audio"])
            assert (played.status, played.headers.get(HEADER)) == (200, victim)

            cluster.stop(victim)  # SIGTERM, as `docker stop` or a rolling update does
            # The page's websocket closes, and the browser reconnects at once: the stale
            # cookie is overridden (option redispatch) and the new one names the survivor.
            deadline = time.monotonic() + 30
            while (len(sockets) < 2 or serverid(await context.cookies()) != survivor):
                assert time.monotonic() < deadline, (sockets, console[-5:])
                await asyncio.sleep(0.2)
            closed = [m for m in console if "WebSocket onclose" in m]
            dialogs = await page.locator('[role="dialog"]').count()  # no "Connection error"
            # The survivor does not know the visitor's session, and Streamlit's page does not
            # rerun on a reconnect: the page's replica watcher sees the replica change and
            # opens the page again from its link, and the survivor says what happened.
            await page.get_by_text("The server you were on has stopped").wait_for(
                timeout=60_000)
            await page.wait_for_function(DONE, arg=[{"text": None, "audio": None,
                                                     "chart": None}], timeout=120_000)
            await page.wait_for_function(IDLE)
            rebuilt = await page.evaluate(STATE)
            replayed = await page.request.get(rebuilt["audio"])
            rebuilt["played"] = (replayed.status, replayed.headers.get(HEADER))
            rebuilt["url"] = page.url
            box = page.locator('input[aria-label="Random seed"]')
            # From there on it is an ordinary session on the survivor.
            await box.fill(str(SEED_C + 2))
            await box.press("Enter")
            await page.wait_for_function(DONE, arg=[rebuilt], timeout=120_000)
            after = await page.evaluate(STATE)
            played = await page.request.get(after["audio"])
            after["played"] = (played.status, played.headers.get(HEADER))
            after["url"] = page.url
            after["rebuilt"] = rebuilt
            await browser.close()
        # The survivor's visitor carries on: same websocket, next tune.
        box = widget_id(calm_first, "number_input", "Random seed")
        calm_next = await calm.run([int_state(box, SEED_C + 3)])
        calm_open = not calm.reader.done()
        await calm.close()
        return closed, dialogs, after, calm, calm_open, calm_first, calm_next

    closed, dialogs, after, calm, calm_open, calm_first, calm_next = asyncio.run(scenario())
    assert closed and dialogs == 0, (closed, dialogs)
    rebuilt = after["rebuilt"]
    assert rebuilt["text"] == before_text(library) and rebuilt["exceptions"] == 0
    assert rebuilt["played"] == (200, survivor) and "moved" not in rebuilt["url"]
    assert after["played"] == (200, survivor)
    assert after["text"] == shown(expected_text(library, SEED_C + 2, LENGTH, 1.0))
    assert re.search(rf"[?&]seed={SEED_C + 2}(&|$)", after["url"])
    assert after["exceptions"] == 0 and not after["running"]

    visit = Visit("calm")
    for seed, page in ((SEED_C, calm_first), (SEED_C + 3, calm_next)):
        assert not check_tune(tune_of(visit, page, seed),
                              expected_text(library, seed, LENGTH, 1.0))
    assert calm.upgrade_headers[HEADER] == survivor and calm_open
    assert not calm.exceptions and not calm.problems, calm.exceptions + calm.problems
    # New visitors, cookie or not, now reach the replica that is up.
    for jar in (None, cluster.pin(victim)):
        assert balancer.replica_of(cluster.url, "/_stcore/health", jar) == (200, survivor)
