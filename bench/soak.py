"""A soak: bench/visitors.py's headless visitors on one `streamlit run` server for a long run,
a new training visitor every few minutes, and the server's resources from start to end.

    PYTHONPATH=. .venv/bin/python bench/soak.py [--minutes 30] [--visitors 16] [--think 5]
        [--train-every 300] [--train-steps 1000] [--session-ttl 120] [--every 5]
        [--server-env KEY=VALUE] [--json]

Why: a 10-minute run had no problems, but the server's RSS still grew after warm-up. A soak
says where that stops, and whether anything else is left behind by sessions that have gone.

What it does: starts the server, lets a few visitors get one tune each and leave (until the
sampling pool runs all its workers; the lazy imports are done too), waits until the server has
let their sessions go, and takes the start census. Then --visitors visitors
change their tune every --think seconds for --minutes, while a new visitor starts training
every --train-every seconds (the first once every visitor has had its first tune), samples
its model and leaves. When all have left, it waits until Streamlit has dropped their sessions
(--session-ttl, Streamlit's server.disconnectedSessionTTL, plus a margin), and takes the end
census.

A census: RSS of the server and its descendants (training workers apart: TensorFlow's gigabyte
comes and goes with each job), open file descriptors of the whole process tree, the child
processes by command, and the files and folders under the server's TMPDIR. One is taken
every --every seconds; the report shows one row a minute.

Verdict: after warm-up, the process tree's RSS (median of the last quarter against the first)
grows by at most 10%; and fds, children and temporary files are back to their start level.
Once the server has stopped, its TMPDIR must be empty. tests/test_soak.py runs 2 minutes and
checks the leak parts (not the memory growth, which needs the long run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import visitors  # noqa: E402 - bench/ is not a package
from load_test import leftovers, percentile, rss_mb, server  # noqa: E402
from visitors_behaviour import Bounds, Tune, Visit, trainer, visitor  # noqa: E402
from visitors_checks import session_problems, verify  # noqa: E402
from visitors_meter import descendants, is_trainer, quarter_medians  # noqa: E402
from visitors_report import rounded  # noqa: E402

from abcweb.web import sessions

MAX_GROWTH = 0.10  # after warm-up, last quarter's median RSS against the first quarter's
SETTLE_MARGIN_S = 60  # past the session TTL: Streamlit drops expired sessions lazily
SETTLE_POLL_S = 2
WARMUP_VISITORS, WARMUP_ROUNDS = 4, 3
SAMPLE_WORKER = "abcweb.sampling.sample_worker"


# -- measurements -------------------------------------------------------------------------------
@dataclass
class Census:
    t: float  # seconds since the recorder started
    rss_mb: float  # the server and its descendants, training workers apart
    server_rss_mb: float
    trainer_rss_mb: float
    fds: int  # the whole tree's
    fd_kinds: dict = field(default_factory=dict)  # socket, pipe, anon_inode:[eventfd], a file
    children: list[str] = field(default_factory=list)  # descendants, by command
    tmp_entries: int = 0  # files and folders under TMPDIR, at any depth
    tmp: dict = field(default_factory=dict)  # leftovers()'s categories, counted


def command(pid: int) -> str:
    """A short name: the module of `python -m module`, else the program's name."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1]
    return Path(argv[0]).name


def fd_kind(target: str) -> str:
    """What an open file descriptor is, from its link: a leak shows as more of one kind."""
    if target.startswith(("socket:", "pipe:")):
        return target.split(":")[0]
    if target.startswith("anon_inode:"):
        return target
    return target if target.startswith("/dev/") else "file " + Path(target).name


def fd_kinds(pid: int) -> Counter:
    out = Counter()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out[fd_kind(os.readlink(fd))] += 1
        except OSError:
            continue  # closed meanwhile
    return out


def count_entries(folder: Path) -> int:
    # os.walk skips folders removed while it walks (a render that ends meanwhile).
    return sum(len(dirs) + len(files) for _, dirs, files in os.walk(folder))


def census(pid: int, tmpdir: Path, t0: float) -> Census:
    rss = trainer = 0.0
    kinds, names = Counter(), []
    server_rss = rss_mb(pid)
    for p in [pid] + descendants(pid):
        try:  # a tool may end at any moment
            mb, open_fds = rss_mb(p), fd_kinds(p)
            name = command(p) if p != pid else None
        except OSError:
            continue
        if math.isnan(mb):  # it ended between the listing and the read: it holds nothing now
            continue
        kinds += open_fds
        if p == pid:
            rss += mb
            continue
        names.append(name)
        if is_trainer(p):
            trainer += mb
        else:
            rss += mb
    tmp = {k: len(v) for k, v in leftovers(tmpdir).items()}
    return Census(round(time.perf_counter() - t0, 1), round(rss, 1), round(server_rss, 1),
                  round(trainer, 1), sum(kinds.values()), dict(kinds), sorted(names),
                  count_entries(tmpdir), tmp)


class Recorder(threading.Thread):
    """A census every `every` seconds until stopped."""

    def __init__(self, pid: int, tmpdir: Path, every: float):
        super().__init__(daemon=True)
        self.pid, self.tmpdir, self.every = pid, tmpdir, every
        self.t0 = time.perf_counter()
        self.samples: list[Census] = []
        self.done = threading.Event()

    def take(self) -> Census:
        return census(self.pid, self.tmpdir, self.t0)

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.samples.append(self.take())
            except OSError:
                return  # the server has gone
            self.done.wait(self.every)

    def stop(self) -> None:
        self.done.set()
        self.join()


def settled(start: Census, now: Census) -> bool:
    return (now.fds <= start.fds and not Counter(now.children) - Counter(start.children)
            and now.tmp_entries <= start.tmp_entries)


def wait_settled(rec: Recorder, start: Census, timeout: float) -> tuple[Census, float]:
    """The first census back at the start's levels, or the last one when time runs out; and
    how long it took."""
    t0 = time.perf_counter()
    while True:
        now = rec.take()
        waited = time.perf_counter() - t0
        if settled(start, now) or waited >= timeout:
            return now, round(waited, 1)
        time.sleep(SETTLE_POLL_S)


def quarters(samples: list[Census], t_from: float) -> list[float | None]:
    return quarter_medians([(c.t, c.rss_mb) for c in samples], t_from)


def per_minute(samples: list[Census]) -> list[dict]:
    """One row a minute: medians of RSS, the peak trainer, the last fds/children/tmp (what
    is left), and the most children and temporary entries seen (what came and went)."""
    rows: dict[int, list[Census]] = {}
    for c in samples:
        rows.setdefault(int(c.t // 60), []).append(c)
    return [{"minute": m, "rss_mb": round(statistics.median(c.rss_mb for c in cs), 1),
             "server_rss_mb": round(statistics.median(c.server_rss_mb for c in cs), 1),
             "trainer_rss_mb": max(c.trainer_rss_mb for c in cs), "fds": cs[-1].fds,
             "children": len(cs[-1].children), "tmp_entries": cs[-1].tmp_entries,
             "children_most": max(len(c.children) for c in cs),
             "tmp_most": max(c.tmp_entries for c in cs)}
            for m, cs in sorted(rows.items())]


def verdict(start: Census, end: Census, rss_quarters: list[float | None]) -> dict:
    """Each criterion: (passed, what was seen). Memory is None when there are no quarters."""
    first, last = rss_quarters[0], rss_quarters[-1]
    growth = (last / first - 1) if first and last else None
    extra = Counter(end.children) - Counter(start.children)
    return {
        "memory": (None if growth is None else growth <= MAX_GROWTH,
                   f"RSS after warm-up, first to last quarter: {first} -> {last} MB"
                   + (f" ({growth:+.1%}, at most {MAX_GROWTH:+.0%})" if growth is not None
                      else "")),
        "fds": (end.fds <= start.fds, f"{start.fds} -> {end.fds}"
                + (f" (more: {dict(Counter(end.fd_kinds) - Counter(start.fd_kinds))})"
                   if end.fds > start.fds else "")),
        "children": (not extra, f"{dict(Counter(start.children))} -> "
                                f"{dict(Counter(end.children))}"),
        "tmp": (end.tmp_entries <= start.tmp_entries,
                f"{start.tmp_entries} -> {end.tmp_entries} entries {end.tmp}"),
    }


# -- behaviour: the visitors and the trainers ------------------------------------------------------
async def first_visits(base: str, args, n: int) -> list[Visit]:
    """n visitors at once, one tune each, gone: the sampling pool starts its workers on
    demand, and the start census must not count one starting later as a leak."""
    stats = {"messages": 0, "bytes": 0, "ref_hash": 0}
    return list(await asyncio.gather(*(
        visitor(args.visitors + k, base, args, Bounds(n, 1, None), stats,
                lambda t: None) for k in range(n))))


def warm_up(rec: Recorder, base: str, args) -> list[Visit]:
    from abcweb.sampling.sample_worker import WORKERS

    visits = []
    for _ in range(WARMUP_ROUNDS):
        visits += asyncio.run(first_visits(base, args, WARMUP_VISITORS))
        if rec.take().children.count(SAMPLE_WORKER) >= WORKERS:
            break
    return visits


async def trainers(base: str, args, stats: dict, warm: asyncio.Event,
                   deadline: float) -> list[Visit]:
    """A new training visitor every --train-every seconds until the deadline."""
    tasks = []
    while True:
        tasks.append(asyncio.create_task(trainer(base, args, stats, None, Path(), warm)))
        left = deadline - time.perf_counter()
        if left <= args.train_every:
            break
        await asyncio.sleep(args.train_every)
    visits = list(await asyncio.gather(*tasks))
    for k, v in enumerate(visits):
        v.name = f"trainer {k + 1}"
    return visits


async def drive(base: str, args, on_warm) -> dict:
    stats = {"messages": 0, "bytes": 0, "ref_hash": 0}
    bounds = Bounds(None, None, args.minutes * 60)
    warm, firsts = asyncio.Event(), []

    def on_tune(t: Tune) -> None:
        if t.first:
            firsts.append(t.t_end)
            if len(firsts) == args.visitors:
                warm.set()
                on_warm()

    jobs = [visitor(i, base, args, bounds, stats, on_tune) for i in range(args.visitors)]
    training = (asyncio.create_task(trainers(base, args, stats, warm, bounds.deadline))
                if args.train_steps else None)
    t0 = time.perf_counter()
    visits = list(await asyncio.gather(*jobs))
    wall = time.perf_counter() - t0
    trained = await training if training is not None else []
    return {"visits": visits, "trainers": trained, "wall": wall, "stats": stats}


# -- the run --------------------------------------------------------------------------------------
def run(args) -> dict:
    from abcweb.model import checkpoint

    work = Path(args.workdir or tempfile.mkdtemp(prefix="abcweb-soak-"))
    tmpdir = work / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    weights = work / "model"
    checkpoint.save(checkpoint.load(checkpoint.resolve(args.weights)), weights)  # a frozen copy
    args.model_id = checkpoint.model_id(weights)
    env = {"STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(args.session_ttl),
           **dict(kv.split("=", 1) for kv in args.server_env)}
    log = args.log or (lambda line: None)
    with server(weights, tmpdir, env=env) as srv:
        rec = Recorder(srv.pid, tmpdir, args.every)
        probe = warm_up(rec, srv.url, args)
        # Their sessions are let go first (abcweb/web/sessions.py), so that the start census holds
        # nothing of theirs that a leak could hide behind.
        log("warm-up visitors have left: waiting for the server to drop their sessions")
        time.sleep(args.session_ttl + sessions.MARGIN_S + 2 * sessions.REAP_EVERY_S)
        start = rec.take()
        log(f"start: {start}")
        rec.start()
        warm_at: list[float] = []
        t_next = [60.0]

        def on_warm() -> None:
            warm_at.append(time.perf_counter() - rec.t0)

        def progress() -> None:  # a line a minute while it runs, from the recorder's samples
            while not rec.done.is_set():
                if rec.samples and rec.samples[-1].t >= t_next[0]:
                    c = rec.samples[-1]
                    log(f"{c.t / 60:.0f} min: RSS {c.rss_mb} MB (server {c.server_rss_mb}, "
                        f"training {c.trainer_rss_mb}), fds {c.fds}, children "
                        f"{len(c.children)}, temporary entries {c.tmp_entries}")
                    t_next[0] += 60
                rec.done.wait(1)

        threading.Thread(target=progress, daemon=True).start()
        client0 = time.process_time()
        out = asyncio.run(drive(srv.url, args, on_warm))
        client = time.process_time() - client0
        log("every visitor has left: waiting for the server to drop their sessions")
        end, waited = wait_settled(rec, start, args.session_ttl + SETTLE_MARGIN_S)
        rec.stop()
    after_stop = leftovers(tmpdir)

    visits = out["visits"] + out["trainers"]
    problems = session_problems(probe + visits)
    if args.verify:
        wrong, found = verify(out["visits"], weights)
        problems += found
    for v in out["trainers"]:
        if not v.error and not (v.trained and (v.tunes[-1].model or "").startswith("Trained")):
            problems.append(f"{v.name}: did not sample its own model")
    if out["stats"]["ref_hash"]:
        problems.append(f"{out['stats']['ref_hash']} cached-message references received")
    if any(after_stop.values()):
        problems.append(f"temporary files left after the server stopped: {after_stop}")
    t_warm = warm_at[0] if warm_at else 0.0
    rss_q = quarters([c for c in rec.samples if c.t >= t_warm], t_warm)
    checks = verdict(start, end, rss_q)
    tunes = [t.latency for v in out["visits"] for t in v.tunes if not t.first]
    result = {
        "minutes": args.minutes, "visitors": args.visitors, "think_s": args.think,
        "train_every_s": args.train_every, "train_steps": args.train_steps,
        "session_ttl_s": args.session_ttl, "server_env": args.server_env,
        "wall_s": round(out["wall"], 1),
        "tunes": sum(len(v.tunes) for v in out["visits"]),
        "latency_s": {"p50": rounded(percentile(tunes, 0.5)),
                      "p95": rounded(percentile(tunes, 0.95))},
        "trainers": [{"name": v.name, "error": v.error, **(v.trained or {})}
                     for v in out["trainers"]],
        "warm_at_s": round(t_warm, 1),
        "start": asdict(start), "end": asdict(end), "settle_wait_s": waited,
        "rss_mb": {"quarters_after_warmup": rss_q,
                   "peak": max((c.rss_mb for c in rec.samples), default=None),
                   "server_peak": max((c.server_rss_mb for c in rec.samples), default=None),
                   "trainer_peak": max((c.trainer_rss_mb for c in rec.samples), default=None)},
        "per_minute": per_minute(rec.samples),
        "verdict": {k: {"ok": ok, "seen": seen} for k, (ok, seen) in checks.items()},
        "leftover_tmp_after_stop": after_stop,
        "client_cpu_s": round(client, 1), "load_average": [round(x, 2) for x in os.getloadavg()],
        "problems": problems, "workdir": str(work),
    }
    result["ok"] = not problems and all(ok is not False for ok, _ in checks.values())
    return result


def report(r: dict) -> str:
    lines = [f"soak: {r['minutes']} min, {r['visitors']} visitors (think {r['think_s']} s), "
             f"a trainer every {r['train_every_s']} s ({r['train_steps']} steps): "
             f"{r['tunes']} tunes, latency p50 {r['latency_s']['p50']} s, p95 "
             f"{r['latency_s']['p95']} s; warm after {r['warm_at_s']} s",
             "minute   RSS MB  (server)  training MB   fds  children  tmp entries"]
    for m in r["per_minute"]:
        lines.append(f"{m['minute']:>6} {m['rss_mb']:>8} {m['server_rss_mb']:>9} "
                     f"{m['trainer_rss_mb']:>12} {m['fds']:>5} {m['children']:>9} "
                     f"{m['tmp_entries']:>12}")
    rss = r["rss_mb"]
    lines.append(f"RSS after warm-up by quarter {rss['quarters_after_warmup']} MB; peak "
                 f"{rss['peak']} (server {rss['server_peak']}), training worker peak "
                 f"{rss['trainer_peak']}")
    for when in ("start", "end"):
        c = r[when]
        lines.append(f"{when}: RSS {c['rss_mb']} MB, fds {c['fds']}, children "
                     f"{dict(Counter(c['children']))}, temporary {c['tmp_entries']} "
                     f"{c['tmp']}")
    lines.append(f"(end taken {r['settle_wait_s']} s after the last visitor left; "
                 f"session TTL {r['session_ttl_s']} s)")
    for t in r["trainers"]:
        lines.append(f"{t['name']}: {t.get('progress')}, {t.get('seconds')} s"
                     + (f", error {t['error']}" if t["error"] else ""))
    for k, v in r["verdict"].items():
        mark = {True: "ok", False: "FAIL", None: "n/a"}[v["ok"]]
        lines.append(f"{k:>9}: {mark:4} {v['seen']}")
    lines.append("problems: " + ("none" if not r["problems"]
                                 else "\n  " + "\n  ".join(r["problems"][:20])))
    lines.append(f"verdict: {'PASS' if r['ok'] else 'FAIL'}")
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30, help="how long visitors visit (30)")
    ap.add_argument("--train-every", type=float, default=300,
                    help="seconds between training visitors (300)")
    ap.add_argument("--session-ttl", type=int, default=120,
                    help="Streamlit's server.disconnectedSessionTTL (its default, 120)")
    ap.add_argument("--every", type=float, default=5, help="seconds between censuses (5)")
    ap.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                    help="more of the server's environment, to compare a setting "
                         "(MALLOC_ARENA_MAX=2, say); may be given more than once")
    ap.add_argument("--verify", action="store_true",
                    help="check every tune against the library (minutes of CPU after a soak)")
    ours, rest = ap.parse_known_args(argv)
    # The visitors' own options (--visitors, --think, --length, --train-steps, ...).
    args = visitors.parse_args(rest + ["--duration", str(ours.minutes * 60)])
    if "--train-steps" not in rest and not args.no_train:
        args.train_steps = 1000
    for k, v in vars(ours).items():
        setattr(args, k, v)
    return args


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the server
    args = parse_args()
    args.log = lambda line: print(line, file=sys.stderr, flush=True)
    r = run(args)
    print(json.dumps(r, indent=1, default=str) if args.json else report(r))
    if not args.workdir:
        shutil.rmtree(r["workdir"], ignore_errors=True)
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
