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

Files: bench/visitors_client.py speaks the protocol (a browser session), visitors_behaviour.py
is what a visitor and the trainer do, visitors_meter.py reads the server's CPU and memory from
/proc, visitors_checks.py checks every tune, visitors_report.py makes the figures and the
report; this file starts the server and runs them.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import visitors_behaviour  # noqa: E402
from load_test import leftovers, rss_mb, server  # noqa: E402 - bench/ is not a package
from visitors_behaviour import Bounds, Tune, trainer, visitor  # noqa: E402
from visitors_checks import session_problems, verify, verify_trainer  # noqa: E402
from visitors_meter import Meter, environ_of, pid_listening_on  # noqa: E402
from visitors_report import report, server_figures, summarize  # noqa: E402

# -- settings ---------------------------------------------------------------------------------
TRAIN_TIMEOUT_S = 900


# -- the run -----------------------------------------------------------------------------------
def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    for info in socket.getaddrinfo(host, None):
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise SystemExit(f"{url}: only loopback addresses are allowed")


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
    from abcweb.model import checkpoint

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
    from abcweb.model.checkpoint import model_id

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
    ap.add_argument("--no-form", action="store_true",
                    help="links with bar proposals off (form=0; default: on, as the page)")
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
    visitors_behaviour.FORM = 0 if args.no_form else 1
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
