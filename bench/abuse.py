"""One abusive client beside normal visitors, through HAProxy (deploy/haproxy.cfg) in front of
one `streamlit run` replica: with the per-address limits, and without them.

    PYTHONPATH=. .venv/bin/python bench/abuse.py [--limits on off] [--abusive 50]
        [--visitors 16] [--think 5] [--duration 120] [--json]
    PYTHONPATH=. .venv/bin/python bench/abuse.py --tabs 6     # what a real visitor uses

Why: a tune costs the server about 0.35 CPU-seconds and is asked for over the page's
websocket, so one client with many pages open, each asking for a new tune the moment the last
one arrives, could take every core. Two limits per client address work together: HAProxy's
(websockets held and opened, connections, HTTP requests: deploy/haproxy.cfg) and the page's
own spacing of the runs one address asks for over the websockets it holds (abcweb/web/fairness.py),
which HAProxy cannot see. "Limits off" turns both off (LIMIT_... and ABCWEB_RUNS_PER_ADDRESS).

Who is who: HAProxy tells clients apart by their address (src). On loopback every 127.x.y.z is
this host, so the normal visitors connect from 127.0.0.1 and the abusive client binds all its
sockets to 127.0.0.2 (ABUSER): to HAProxy they are two clients, as two hosts would be, and
HAProxy's X-Forwarded-For tells the page the same. (The page does not space localhost, so the
normal visitors, who share 127.0.0.1 here, are never spaced; HAProxy's limits do apply to
them, and they stay far below them.)

The abusive client: --abusive sessions (bench/visitors_client.py's Session, Streamlit's own
websocket protocol), each opening a share link and then changing the seed again as soon as
its page has finished, with no pause. A session that is refused (429) or cut off tries again a
second later, as Streamlit's page does. The normal visitors are bench/visitors.py's: a new
tune every --think seconds (jittered), their audio fetched. Figures: the normal visitors'
latency p50/p95/max (a changed widget to the finished page with its audio), their tunes and
errors; the abusive client's tunes, refusals and the websockets HAProxy saw it hold (its stick
table, read over a stats socket).

--tabs N instead opens the page in N tabs of one Chromium through HAProxy (a link each, then
two new seeds each) and reports the peaks HAProxy's stick tables saw for that one address:
concurrent connections, websockets and HTTP requests in 10 s. The limits are set from that.

tests/test_abuse.py checks that an address over a limit is refused while another is served.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
import balancer  # noqa: E402 - bench/ is not a package
import visitors  # noqa: E402
from load_test import cpu_seconds  # noqa: E402
from visitors_behaviour import query_for, widget_id  # noqa: E402
from visitors_checks import session_problems, verify  # noqa: E402
from visitors_client import Session, int_state  # noqa: E402
from visitors_report import summarize  # noqa: E402

ABUSER = "127.0.0.2"  # the abusive client's address; the normal visitors use 127.0.0.1
ABUSER_SEED = 900_000_000
RETRY_S = 1.0  # a refused or cut-off abusive session tries again after this
NO_LIMITS = {k: "1000000000" for k in ("LIMIT_CONNS", "LIMIT_WEBSOCKETS",
                                       "LIMIT_WEBSOCKET_RATE", "LIMIT_REQUEST_RATE")}
NO_SPACING = {"ABCWEB_RUNS_PER_ADDRESS": "0"}  # abcweb/web/fairness.py
TABLES = ("web", "per_address_websockets")  # deploy/haproxy.cfg's stick tables
POLL_S = 0.1


# -- HAProxy's stick tables, over a stats socket --------------------------------------------------
def stats_config(folder: Path) -> tuple[Path, Path]:
    """A config file to load after deploy/haproxy.cfg: a stats socket (the global section may
    be given more than once); (the file, the socket)."""
    sock = folder / "haproxy.sock"
    cfg = folder / "stats.cfg"
    cfg.write_text(f'global\n    stats socket "{sock}" mode 600 level operator\n')
    return cfg, sock


def ask(sock: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode()


def table(sock: Path, name: str) -> dict[str, dict[str, int]]:
    """A stick table: client address -> its counters (conn_cur, http_req_rate, ...)."""
    out = {}
    for line in ask(sock, f"show table {name}").splitlines():
        m = re.search(r"key=(\S+)", line)
        if not m:
            continue
        key = m.group(1).removeprefix("::ffff:")
        out[key] = {k.split("(")[0]: int(v)
                    for k, v in re.findall(r"(\w+(?:\(\d+\))?)=(\d+)", line)
                    if k not in ("use", "exp", "server_id")}
    return out


class Peaks(threading.Thread):
    """The highest counters each address reached in each table, polled until stopped."""

    def __init__(self, sock: Path):
        super().__init__(daemon=True)
        self.sock = sock
        # address -> counter -> highest value; the websockets table's counters are prefixed
        self.peaks: dict[str, dict[str, int]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                for name in TABLES:
                    for addr, counters in table(self.sock, name).items():
                        mine = self.peaks.setdefault(addr, {})
                        for k, v in counters.items():
                            key = f"{'websockets ' if name != 'web' else ''}{k}"
                            mine[key] = max(mine.get(key, 0), v)
            except OSError:
                pass  # HAProxy is stopping
            self.done.wait(POLL_S)

    def stop(self) -> dict:
        self.done.set()
        self.join()
        return self.peaks


@contextmanager
def watched_cluster(weights: Path, work: Path, limits: bool):
    work.mkdir(parents=True, exist_ok=True)
    cfg, sock = stats_config(work)
    env, app_env = (None, None) if limits else (NO_LIMITS, NO_SPACING)
    with balancer.cluster(1, weights, work, env=env, extra=[cfg], app_env=app_env) as c:
        peaks = Peaks(sock)
        peaks.start()
        try:
            yield c, peaks
        finally:
            peaks.stop()


# -- the abusive client ---------------------------------------------------------------------------
class Abuse:
    """What the abusive client got: tunes, refusals, reconnections."""

    def __init__(self):
        self.tunes = 0
        self.spaced = 0  # runs the page turned away
        self.refused = 0
        self.cut_off = 0
        self.open = 0
        self.peak_open = 0


async def abusive_session(k: int, base: str, args, abuse: Abuse, deadline: float) -> None:
    stats = {"messages": 0, "bytes": 0, "ref_hash": 0}
    seed = ABUSER_SEED + 1000 * k
    while time.perf_counter() < deadline:
        s = Session(base, f"abusive {k}", stats, {}, source=ABUSER)
        try:
            await s.connect()
        except Exception:  # noqa: BLE001 - a 429 on the page or the upgrade: try again
            abuse.refused += 1
            await s.close()
            await asyncio.sleep(RETRY_S)
            continue
        abuse.open += 1
        abuse.peak_open = max(abuse.peak_open, abuse.open)
        try:
            s.query = query_for(seed, args.length, 1.0, args.model_id)
            page = await s.run(page_name=args.page)
            box = widget_id(page, "number_input", "Random seed")
            while time.perf_counter() < deadline:
                seed += 1
                page = await s.run([int_state(box, seed)])
                if page.code_text():
                    abuse.tunes += 1
                else:  # the page's spacing (abcweb/web/fairness.py) said wait
                    abuse.spaced += 1
        except Exception:  # noqa: BLE001 - cut off: reconnect, as the page does
            abuse.cut_off += 1
            await asyncio.sleep(RETRY_S)
        finally:
            abuse.open -= 1
            await s.close()


async def drive(base: str, args) -> tuple[dict, Abuse]:
    abuse = Abuse()
    deadline = time.perf_counter() + args.duration
    bad = [asyncio.create_task(abusive_session(k, base, args, abuse, deadline))
           for k in range(args.abusive)]
    if bad:  # the abusive client is in place before the visitors come
        await asyncio.sleep(min(10.0, args.duration / 4))
    out = await visitors.drive(base, args, None, Path(args.workdir or "."), None)
    await asyncio.gather(*bad)
    return out, abuse


def measure(limits: bool, args, weights: Path, work: Path) -> dict:
    from abcweb.model.checkpoint import model_id

    args.model_id = model_id(weights)
    with watched_cluster(weights, work, limits) as (c, peaks):
        proxy0 = cpu_seconds(c.haproxy.pid)
        client0 = time.process_time()
        out, abuse = asyncio.run(drive(c.url, args))
        client = time.process_time() - client0
        proxy = cpu_seconds(c.haproxy.pid) - proxy0
        seen = peaks.stop()
    problems = session_problems(out["visits"])
    wrong = 0
    if args.verify:
        wrong, found = verify(out["visits"], weights)
        problems += found
    r = summarize(args, out, wrong, problems, client, work)
    r.update({"limits": limits, "haproxy_cpu_s": round(proxy, 2),
              "abusive": {"sessions": args.abusive, "tunes": abuse.tunes,
                          "refused": abuse.refused, "cut_off": abuse.cut_off,
                          "spaced": abuse.spaced,
                          "peak_open": abuse.peak_open},
              "haproxy_peaks": seen})
    return r


# -- a real visitor, in Chromium ------------------------------------------------------------------
def tabs(n: int, args, weights: Path, work: Path) -> dict:
    """Peaks HAProxy saw for one browser with n tabs of the page."""
    import browser_support as bs
    from playwright.sync_api import sync_playwright

    from abcweb.model.checkpoint import model_id

    mid = model_id(weights)
    with watched_cluster(weights, work, True) as (c, peaks), sync_playwright() as p:
        browser = bs.launch(p)
        context = browser.new_context()
        pages = []
        for i in range(n):  # opened together, as a visitor restoring a session would
            page = context.new_page()
            page.goto(f"{c.url}/?{query_for(7000 + i, args.length, 1.0, mid)}",
                      wait_until="commit")
            pages.append(page)
        for page in pages:
            page.wait_for_selector(bs.TUNE, timeout=120_000)
            bs.wait_idle(page, 120_000)
        for step in (1, 2):
            for i, page in enumerate(pages):
                box = page.locator('input[aria-label="Random seed"]')
                box.fill(str(8000 + 100 * i + step))
                box.press("Enter")
            for page in pages:
                bs.wait_idle(page, 120_000)
        time.sleep(3)  # the pages' health watch, idle
        browser.close()
        seen = peaks.stop()
    return {"tabs": n, "haproxy_peaks": seen}


def report(results: list[dict]) -> str:
    lines = []
    for r in results:
        a, lat = r["abusive"], r["latency_s"]
        lines.append(f"limits {'on' if r['limits'] else 'off'}: {r['visitors']} visitors, "
                     f"{r['tunes']} tunes, latency p50 {lat['p50']} s, p95 {lat['p95']} s, "
                     f"max {lat['max']} s; first tune p50 {r['first_tune_s']['p50']} s")
        lines.append(f"  abusive client ({a['sessions']} sessions from {ABUSER}): "
                     f"{a['tunes']} tunes, {a['spaced']} runs turned away by the page, at "
                     f"most {a['peak_open']} sessions open, {a['refused']} refused by HAProxy, "
                     f"{a['cut_off']} cut off; HAProxy CPU "
                     f"{r['haproxy_cpu_s']} s")
        for addr, peak in sorted(r["haproxy_peaks"].items()):
            lines.append(f"  HAProxy's peaks for {addr}: {peak}")
        lines.append(f"  problems: {len(r['problems'])}"
                     + "".join(f"\n    {p}" for p in r["problems"][:5]))
        lines.append(f"  load average {r['load_average']}")
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limits", nargs="+", choices=["on", "off"], default=["on", "off"],
                    help="runs with the config's limits and/or without them (on off)")
    ap.add_argument("--abusive", type=int, default=50,
                    help="the abusive client's websocket sessions (50)")
    ap.add_argument("--tabs", type=int, default=0,
                    help="instead: one Chromium with this many tabs; HAProxy's peaks")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ours, rest = ap.parse_known_args(argv)
    if not any(a.startswith("--duration") or a.startswith("--tunes") for a in rest):
        rest += ["--duration", "120"]
    args = visitors.parse_args(rest + ["--no-train", "--cookies"])
    for k, v in vars(ours).items():
        setattr(args, k, v)
    return args


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the replica
    args = parse_args()
    args.log = lambda line: print(line, file=sys.stderr, flush=True)
    from abcweb.model import checkpoint

    work = Path(args.workdir or tempfile.mkdtemp(prefix="abcweb-abuse-"))
    weights = work / "model"
    checkpoint.save(checkpoint.load(checkpoint.resolve(args.weights)), weights)  # frozen copy
    if args.tabs:
        r = tabs(args.tabs, args, weights, work / "tabs")
        print(json.dumps(r, indent=1))
        ok = True
    else:
        results = []
        for setting in args.limits:
            args.log(f"-- limits {setting}")
            results.append(measure(setting == "on", args, weights, work / f"limits-{setting}"))
        print(json.dumps(results, indent=1, default=str) if args.json else report(results))
        ok = not any(r["problems"] for r in results)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
