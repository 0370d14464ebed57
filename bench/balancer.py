"""Headless visitors through HAProxy: the same run as bench/visitors.py, against 1 and then 2
`streamlit run` replicas behind deploy/haproxy.cfg (cookie affinity), figures side by side.

    PYTHONPATH=. .venv/bin/python bench/balancer.py [--replicas 1 2] [--visitors 16]
        [--think 5] [--duration 120 | --tunes 400] [--length 600] [--json]

Why: the README's capacity per core and memory per replica come from here. Each visitor loads
the page first and carries the cookie it got (SERVERID) on its websocket and its media GETs,
as a browser does, so HAProxy keeps it on one replica; the replica that served it is read from
the X-Abcweb-Replica header HAProxy adds. No training visitor: the figures are for tunes.

Figures per replica count: throughput (tunes/s), latency p50/p95 (a changed widget to the
finished page with its audio), a new visitor's first tune, server CPU-seconds per tune (all
replicas' process trees, sampling workers and tools included, over every tune), each
replica's peak RSS and its sampling workers' RSS, tunes per replica, and HAProxy's own CPU.
Every tune is checked against the library as in bench/visitors.py.

tests/test_balancer.py starts its replicas and HAProxy with cluster() below.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
import browser_support as bs  # noqa: E402
import visitors  # noqa: E402 - bench/ is not a package
from load_test import cpu_seconds, leftovers, server  # noqa: E402
from visitors_checks import verify  # noqa: E402
from visitors_client import REPLICA_HEADER, cookie_header  # noqa: E402
from visitors_meter import Meter  # noqa: E402
from visitors_report import rounded, summarize  # noqa: E402

# -- settings ---------------------------------------------------------------------------------
CONFIG = ROOT / "deploy" / "haproxy.cfg"
HAPROXY = os.environ.get("ABCWEB_HAPROXY") or shutil.which("haproxy") or "/usr/sbin/haproxy"
COOKIE = "SERVERID"  # the cookie deploy/haproxy.cfg inserts
MAX_REPLICAS = 4  # APP1..APP4 in deploy/haproxy.cfg
START_TIMEOUT_S = 90


# -- the cluster ------------------------------------------------------------------------------
@dataclass
class Cluster:
    url: str  # HAProxy's
    servers: dict  # replica name (the cookie's value: app1, app2, ...) -> load_test.Server
    haproxy: subprocess.Popen

    def pin(self, name: str) -> dict:
        """A cookie jar that sends a visitor to one replica."""
        return {COOKIE: name}

    def stop(self, name: str) -> None:
        """Stop one replica (SIGTERM to its process group, as a container stop does)."""
        proc = self.servers[name].proc
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


@contextmanager
def haproxy(addresses: list[str], log: Path, timeout: float = 20, env: dict | None = None,
            extra: list[Path] = ()):
    """HAProxy with the project's own config on a free loopback port; APP1.. from addresses.
    `env` adds to its environment (LIMIT_...), `extra` are more config files after it (a
    stats socket: bench/abuse.py)."""
    if not 1 <= len(addresses) <= MAX_REPLICAS:
        raise ValueError(f"deploy/haproxy.cfg takes 1 to {MAX_REPLICAS} replicas")
    port = bs.free_port()
    extra_env, env = env or {}, {k: v for k, v in os.environ.items()
                                 if not (k.startswith(("APP", "LIMIT_")) or k in ("BIND", "DNS"))}
    env.update(extra_env)
    env["BIND"] = f"127.0.0.1:{port}"
    env.update({f"APP{i + 1}": a for i, a in enumerate(addresses)})
    out = open(log, "wb")  # noqa: SIM115 - closed below
    files = [a for f in [CONFIG, *extra] for a in ("-f", str(f))]
    proc = subprocess.Popen([HAPROXY, "-db", *files], env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        bs.wait_healthy(proc, url, timeout, log.read_text)  # through HAProxy to a replica
        yield url, proc
    finally:
        bs.stop(proc)
        out.close()


@contextmanager
def cluster(n: int, weights: Path, work: Path, env: dict | None = None,
            extra: list[Path] = (), app_env: dict | None = None):
    """n `streamlit run` replicas (each with its own TMPDIR under work/appN, `app_env` added to
    their environment) behind HAProxy (`env`, `extra`: as haproxy())."""
    with ExitStack() as stack:
        servers = {}
        for i in range(n):
            tmp = work / f"app{i + 1}" / "tmp"
            tmp.mkdir(parents=True, exist_ok=True)
            servers[f"app{i + 1}"] = stack.enter_context(server(weights, tmp, START_TIMEOUT_S,
                                                                env=app_env))
        addresses = [s.url.removeprefix("http://") for s in servers.values()]
        url, proc = stack.enter_context(haproxy(addresses, work / "haproxy.log", env=env,
                                                extra=extra))
        yield Cluster(url, servers, proc)


def replica_of(url: str, path: str, cookies: dict | None = None) -> tuple[int, str | None]:
    """(status, replica) of a GET through HAProxy, with the given cookies."""
    req = urllib.request.Request(url + path)
    if cookies:
        req.add_header("Cookie", cookie_header(cookies))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get(REPLICA_HEADER)
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get(REPLICA_HEADER)


# -- the bench --------------------------------------------------------------------------------
class Meters:
    """One visitors_meter.Meter per replica, marked together (visitors.drive marks "warm")."""

    def __init__(self, pids: list[int]):
        self.all = [Meter(p) for p in pids]
        self.pid = pids[0]  # visitors.drive's progress line shows this replica's RSS

    def mark(self, name: str) -> None:
        for m in self.all:
            m.mark(name)

    def stop(self) -> None:
        for m in self.all:
            m.stop()


def measure(n: int, args, weights: Path, work: Path) -> dict:
    from abcweb.model.checkpoint import model_id

    args.model_id = model_id(weights)
    with cluster(n, weights, work) as c:
        meters = Meters([s.pid for s in c.servers.values()])
        meters.mark("start")
        proxy0 = cpu_seconds(c.haproxy.pid)
        client0 = time.process_time()
        out = asyncio.run(visitors.drive(c.url, args, None, work, meters))
        client = time.process_time() - client0
        meters.mark("end")
        meters.stop()
        proxy = cpu_seconds(c.haproxy.pid) - proxy0
        running = {name: leftovers(s.tmpdir) for name, s in c.servers.items()}
        workers = {name: round(m.watch.workers_rss(), 1)  # while they still run
                   for name, m in zip(c.servers, meters.all)}

    problems = []
    for v in out["visits"]:
        if v.error:
            problems.append(f"{v.name}: {v.error}")
        problems.extend(v.problems)
        if v.exceptions:
            problems.append(f"{v.name}: {len(v.exceptions)} exception(s): {v.exceptions[0]}")
        if v.tunes and v.replica not in c.servers:
            problems.append(f"{v.name}: served by {v.replica!r}, not a replica")
    wrong = 0
    if args.verify:
        wrong, found = verify(out["visits"], weights)
        problems.extend(found)
    for name, m in zip(c.servers, meters.all):
        if m.watch.peers:
            problems.append(f"{name} connected to other hosts: {m.watch.peers}")
        if running[name]["render"]:
            problems.append(f"{name} left render folders: {running[name]['render']}")
    if out["stats"]["ref_hash"]:
        problems.append(f"{out['stats']['ref_hash']} cached-message references received")

    r = summarize(args, out, wrong, problems, client, work)
    tunes = Counter(v.replica for v in out["visits"] for _ in v.tunes)
    cpu = {"whole_run": [m.cpu("start", "end")["pages"] for m in meters.all]}
    after = 0
    if all("warm" in m.snaps for m in meters.all):
        warm_t = meters.all[0].snaps["warm"]["t"]
        cpu["after_warmup"] = [m.cpu("warm", "end")["pages"] for m in meters.all]
        after = sum(t.t_end > warm_t for v in out["visits"] for t in v.tunes)
    r.update({
        "replicas": n,
        "tunes_per_replica": {name: tunes.get(name, 0) for name in c.servers},
        "cpu_s_per_tune": {
            "whole_run": rounded(sum(cpu["whole_run"]) / r["tunes"])
            if r["tunes"] else None,
            "after_warmup": rounded(sum(cpu["after_warmup"]) / after)
            if "after_warmup" in cpu and after else None},
        "server_cpu_s": {k: [round(x, 2) for x in v] for k, v in cpu.items()},
        "server_rss_peak_mb": {name: round(m.rss.peak, 1)
                               for name, m in zip(c.servers, meters.all)},
        "sampling_workers_mb": workers,
        "haproxy_cpu_s": round(proxy, 2),
    })
    return r


ROWS = [  # (label, how to read it from one run's result)
    ("tunes written", lambda r: f"{r['tunes']} in {r['wall_s']} s"),
    ("throughput (tunes/s)", lambda r: r["throughput_per_s"]),
    ("latency p50 / p95 (s)", lambda r: f"{r['latency_s']['p50']} / {r['latency_s']['p95']}"),
    ("first tune p50 (s)", lambda r: r["first_tune_s"]["p50"]),
    ("CPU-s per tune (all)", lambda r: r["cpu_s_per_tune"]["whole_run"]),
    ("CPU-s per tune (warm)", lambda r: r["cpu_s_per_tune"]["after_warmup"]),
    ("server RSS peak (MB)", lambda r: ", ".join(map(str, r["server_rss_peak_mb"].values()))),
    ("sampling workers (MB)", lambda r: ", ".join(map(str, r["sampling_workers_mb"].values()))),
    ("tunes per replica", lambda r: ", ".join(map(str, r["tunes_per_replica"].values()))),
    ("HAProxy CPU-s", lambda r: r["haproxy_cpu_s"]),
    ("wrong tunes", lambda r: r["wrong_tunes"]),
    ("problems", lambda r: len(r["problems"])),
]


def table(results: list[dict]) -> str:
    head = [f"{r['replicas']} replica{'s' if r['replicas'] > 1 else ''}" for r in results]
    width = max(24, *(len(str(f(r))) + 2 for _, f in ROWS for r in results))
    lines = [f"{'':<24}" + "".join(f"{h:>{width}}" for h in head)]
    lines += [f"{label:<24}" + "".join(f"{str(f(r)):>{width}}" for r in results)
              for label, f in ROWS]
    r0 = results[0]
    lines.append(f"{r0['visitors']} visitors, think {r0['think_s']} s, length {r0['length']}; "
                 f"{r0['host_cpus']} CPUs, load average {r0['load_average']}")
    for r in results:
        for p in r["problems"][:10]:
            lines.append(f"  {r['replicas']}: {p}")
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 2],
                    help=f"replica counts to run, one after the other (1 2; at most "
                         f"{MAX_REPLICAS})")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ours, rest = ap.parse_known_args(argv)
    # The visitors' own options (--visitors, --think, --duration, --tunes, --length, ...);
    # no training visitor, and the cookies a browser would carry.
    args = visitors.parse_args(rest + ["--no-train", "--cookies"])
    args.replicas, args.json = ours.replicas, ours.json
    return args


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the replicas
    args = parse_args()
    args.log = lambda line: print(line, file=sys.stderr, flush=True)
    from abcweb.model import checkpoint

    work = Path(args.workdir or tempfile.mkdtemp(prefix="abcweb-balancer-"))
    weights = work / "model"
    checkpoint.save(checkpoint.load(checkpoint.resolve(args.weights)), weights)  # frozen copy
    results = []
    for n in args.replicas:
        args.log(f"-- {n} replica(s)")
        results.append(measure(n, args, weights, work / f"replicas-{n}"))
    print(json.dumps(results, indent=1, default=str) if args.json else table(results))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
