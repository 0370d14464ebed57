"""deploy/haproxy.cfg's limits per client address, in front of a real `streamlit run` replica:
an address over a limit is refused (429, Retry-After) while another address is served, and
the limits follow the address, not the connection. The limits are lowered through the
environment (the config's LIMIT_... variables) so that a few requests reach them; on loopback
the abusive client binds its sockets to 127.0.0.2 (bench/abuse.py's ABUSER), which HAProxy sees
as another client than 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest
import websockets

from abcweb.model import checkpoint

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import abuse  # noqa: E402 - bench/ is not a package
import balancer  # noqa: E402
from visitors_behaviour import query_for, widget_id  # noqa: E402
from visitors_client import Session, http_request, int_state  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not shutil.which(balancer.HAPROXY), reason="no haproxy "
                                 "(./run.sh test installs it)")]

WEBSOCKETS, REQUESTS = 2, 30  # per address: open websockets, HTTP requests in 10 s
LIMITS = {"LIMIT_WEBSOCKETS": str(WEBSOCKETS), "LIMIT_REQUEST_RATE": str(REQUESTS),
          "LIMIT_CONNS": "50", "LIMIT_WEBSOCKET_RATE": "50"}
NORMAL = "127.0.0.1"
# The page's own spacing (abcweb/web/fairness.py): two runs at once, the next one 1,000 s later,
# which is past its longest wait, so the third run of an address is turned away.
SPACING = {"ABCWEB_RUNS_PER_ADDRESS": "0.001", "ABCWEB_RUNS_BURST": "1"}
SPACED, UNSPACED = "127.0.0.4", "127.0.0.5"  # addresses no other test here uses


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        weights = checkpoint.resolve(os.environ.get("ABCWEB_WEIGHTS") or None)
    except checkpoint.CheckpointError as e:
        pytest.skip(f"no model to sample from: {e}")
    work = tmp_path_factory.mktemp("abuse")
    cfg, sock = abuse.stats_config(work)
    with balancer.cluster(1, weights, work, env=LIMITS, extra=[cfg], app_env=SPACING) as c:
        c.sock, c.model = sock, checkpoint.model_id(weights)
        yield c


def stats() -> dict:
    return {"messages": 0, "bytes": 0, "ref_hash": 0}


async def refusal(session: Session) -> int | None:
    """The HTTP status that refused the session's websocket, or None when it opened."""
    try:
        await session.connect()
    except websockets.InvalidStatus as e:
        return e.response.status_code
    return None


def test_an_address_over_the_websocket_limit_is_refused_while_another_is_served(cluster):
    async def scenario():
        held = [Session(cluster.url, f"abusive {k}", stats(), source=abuse.ABUSER)
                for k in range(WEBSOCKETS + 1)]
        normal = Session(cluster.url, "normal", stats())
        try:
            for s in held[:-1]:
                await s.connect()
            over = await refusal(held[-1])
            await asyncio.sleep(0.3)  # HAProxy counts the refused one off as its stream ends
            counted = abuse.table(cluster.sock, "per_address_websockets")
            # Another address, meanwhile: its page opens and writes its tune.
            await normal.connect()
            normal.query = query_for(5, 300, 1.0, cluster.model)
            page = await normal.run()
            # One of the abusive pages closes: the address may open one again.
            await held[0].close()
            await asyncio.sleep(0.5)
            again = Session(cluster.url, "abusive again", stats(), source=abuse.ABUSER)
            reopened = await refusal(again)
            held.append(again)
            return over, counted, page, reopened
        finally:
            for s in held + [normal]:
                await s.close()

    over, counted, page, reopened = asyncio.run(scenario())
    assert over == 429
    # HAProxy told the two apart by address: the abusive one holds its limit, the normal one
    # had not opened one yet.
    assert counted[abuse.ABUSER]["conn_cur"] == WEBSOCKETS, counted
    assert NORMAL not in counted or counted[NORMAL]["conn_cur"] == 0, counted
    assert page.code_text() and page.audio()[1], "the other address got no tune"
    assert reopened is None


def test_an_address_over_the_request_rate_gets_429_with_retry_after_another_gets_200(cluster):
    async def scenario():
        statuses, headers = [], {}
        for _ in range(REQUESTS + 5):
            status, headers, _ = await http_request(cluster.url, "/_stcore/health",
                                                    source=abuse.ABUSER)
            statuses.append(status)
        normal = await http_request(cluster.url, "/_stcore/health", source=NORMAL)
        return statuses, headers, normal

    statuses, last_headers, (status, _, body) = asyncio.run(scenario())
    # The first ones within the limit were served (this test's other test may have used a few
    # of the address's requests); past it, every one is refused.
    assert statuses[0] == 200 and statuses[-5:] == [429] * 5, statuses
    assert 0 < statuses.index(429) <= REQUESTS
    assert last_headers.get("retry-after") == "10"
    assert (status, body.strip()) == (200, b"ok")


def test_the_page_spaces_one_addresses_runs_while_another_address_is_served(cluster):
    async def scenario():
        many = Session(cluster.url, "many tunes", stats(), source=SPACED)
        other = Session(cluster.url, "other", stats(), source=UNSPACED)
        try:
            await many.connect()
            many.query = query_for(11, 300, 1.0, cluster.model)
            pages = [await many.run()]
            box = widget_id(pages[0], "number_input", "Random seed")
            for seed in (12, 13):
                pages.append(await many.run([int_state(box, seed)]))
            await other.connect()
            other.query = query_for(21, 300, 1.0, cluster.model)
            served = await other.run()
            return pages, served
        finally:
            await many.close()
            await other.close()

    pages, served = asyncio.run(scenario())
    # HAProxy's X-Forwarded-For told the page who asked: the third run of that address is
    # turned away with a message, and the next address gets its tune.
    assert [bool(p.code_text()) for p in pages] == [True, True, False]
    assert any("So many pages from your address" in a for a in pages[2].alerts())
    assert served.code_text() and served.audio()[1]
