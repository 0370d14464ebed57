"""Load test: many visitors on one `streamlit run` server, generating while one of them trains.

    PYTHONPATH=. .venv/bin/python bench/load_test.py [--sessions 8] [--generations 200]
        [--length 600] [--train-steps 60] [--no-train] [--json]

What it does
1. Copies the model in weights/ (or --weights) to a private folder and starts
   `streamlit run streamlit_app.py` on it, with TMPDIR pointed at an empty private folder (so
   leftover temporary files can be counted) and the shipped model unaffected by any training
   that rewrites weights/ meanwhile.
2. Opens `--sessions` browser pages in one Chromium (each its own context: a new visitor and
   a new Streamlit session), each on a different share link (`?seed=...&length=...`). Each
   page then types new seeds into the "Random seed" box, one after the other, until
   `--generations` tunes have been written in all. A generation counts when its text, its
   charts and (when the tune has one) its audio are in the page and the run has finished.
3. Meanwhile one more page trains the tiny preset in the Train tab, then samples from its
   model ("Use this model for sampling").
4. Checks that every page got exactly the tune the library writes for its link
   (`load_sampler(...).generate(...)` in this process), and the trainer the tune of its own
   model; that no page shows an exception; that the pages asked nothing of any host but the
   server; that the server opened no connection to anywhere else; and that no render left a
   temporary folder behind.
5. Reports throughput (generations per second), latency percentiles, the server's resident
   memory (VmRSS) at the start, after warm-up, at each quarter of the run and at the end, and
   leftover temporary files.

tests/test_load.py runs a short version of this in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import browser_support as bs  # noqa: E402

TUNE = '[data-testid="abc-text"]'
SEED_BOX = 'input[aria-label="Random seed"]'

# [text, audio source, first chart, running, exceptions, audio or a "No audio" message]
STATE = """() => {
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  const running = !!(status && /Running|Stop/.test(status.innerText));
  const text = document.querySelector('[data-testid="abc-text"]');
  const rows = text ? Array.from(text.querySelectorAll('[data-line]'))
      .map(d => d.lastChild.textContent).join('\\n') : null;
  const audio = document.querySelector('audio');
  const chart = document.querySelector('[data-testid="stVegaLiteChart"] svg .mark-symbol');
  const alerts = Array.from(document.querySelectorAll('[data-testid="stAlert"]'))
      .map(a => a.innerText);
  return {text: rows, audio: audio ? audio.src : null,
          chart: chart ? chart.innerHTML.length + ':' + chart.innerHTML.slice(0, 400) : null,
          running: running,
          exceptions: document.querySelectorAll('[data-testid="stException"]').length,
          noAudio: alerts.some(a => a.includes('No audio')),
          alerts: alerts};
}"""


# -- the server -------------------------------------------------------------------------------
@dataclass
class Server:
    url: str
    pid: int
    tmpdir: Path
    weights: Path
    proc: subprocess.Popen


@contextmanager
def server(weights: Path, tmpdir: Path, timeout: float = 90, env: dict | None = None,
           script: str = "streamlit_app.py"):
    """`streamlit run` on a free port with its own TMPDIR and the model in `weights`; `env`
    adds to its environment (Streamlit reads STREAMLIT_* options from there). script:
    serve.py runs the page with its security headers, as the image does."""
    port = bs.free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / script),
           "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
           "ABCWEB_WEIGHTS": str(weights), "TMPDIR": str(tmpdir), **(env or {})}
    log = open(tmpdir.parent / "server.log", "wb")  # noqa: SIM115 - closed below
    # cwd ROOT: Streamlit reads .streamlit/config.toml (no usage statistics) from there.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        bs.wait_healthy(proc, url, timeout, (tmpdir.parent / "server.log").read_text)
        yield Server(url, proc.pid, tmpdir, weights, proc)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except ProcessLookupError:
            proc.wait()  # stopped already (tests/test_balancer.py stops a replica mid-run)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


class RssRecorder(threading.Thread):
    """Samples a process's VmRSS every `every` seconds; `mark(name)` notes the current value."""

    def __init__(self, pid: int, every: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self.marks: dict[str, float] = {}
        self.done = threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.samples.append((time.perf_counter() - self.t0, rss_mb(self.pid)))
            except OSError:
                return
            self.done.wait(self.every)

    def mark(self, name: str) -> float:
        value = rss_mb(self.pid)
        self.marks[name] = round(value, 1)
        return value

    @property
    def peak(self) -> float:
        return max((v for _, v in self.samples), default=math.nan)


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) the process and its finished children (the tools) used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def remote_peers(pid: int) -> set[str]:
    """Remote addresses of the process's TCP sockets that are neither loopback nor listening
    (an outgoing connection anywhere else would show here)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    peers = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            remote, state, inode = cols[2], cols[3], cols[9]
            if inode not in inodes or state == "0A":  # 0A: LISTEN
                continue
            addr_hex = remote.split(":")[0]
            if set(addr_hex) == {"0"}:
                continue
            if table == "tcp":
                addr = socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr_hex)[::-1])
            else:
                raw = bytes.fromhex(addr_hex)
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                addr = socket.inet_ntop(socket.AF_INET6, raw)
            if addr.startswith("127.") or addr in ("::1", "::ffff:127.0.0.1") \
                    or addr.startswith("::ffff:127."):
                continue
            peers.add(addr)
    return peers


def leftovers(tmpdir: Path) -> dict[str, list[str]]:
    """What is in the server's TMPDIR: render folders (abcweb-*: must be none once the
    renders are over), training folders (abcweb-train-*: live as long as their session) and
    anything else (TensorFlow's autograph writes a few files per traced function)."""
    out: dict[str, list[str]] = {"render": [], "training": [], "other": []}
    for p in sorted(tmpdir.iterdir()):
        if p.name.startswith("abcweb-train-"):
            out["training"].append(p.name)
        elif p.name.startswith("abcweb-"):
            out["render"].append(p.name)
        else:
            out["other"].append(p.name)
    return out


# -- one visitor ------------------------------------------------------------------------------
@dataclass
class Visit:
    """What one page saw."""
    name: str
    tunes: list[tuple[int, str]] = field(default_factory=list)  # (seed, text shown)
    latencies: list[float] = field(default_factory=list)
    exceptions: int = 0
    alerts: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    trained: dict | None = None
    trained_text: str | None = None  # what the trained model writes for the trainer's link
    trained_seen: int = 0  # "Trained here" in the page at the end
    error: str | None = None


def shown(text: str) -> str:
    """A text as the page's ABC box shows it: trailing blank lines are not shown, and an
    empty line shows as one space."""
    lines = text.split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    return "\n".join(line or " " for line in lines)


async def _wait(page, predicate: str, arg=None, timeout: float = 120_000):
    return await page.wait_for_function(predicate, arg=arg, timeout=timeout, polling=50)


DONE = ("([before]) => {\n  const s = (" + STATE + """)();
  if (s.running || s.text === null || s.chart === null) return false;
  if (!(s.audio || s.noAudio)) return false;
  return s.text !== before.text && s.chart !== before.chart
         && (s.audio === null || s.audio !== before.audio);
}""")


async def visitor(browser, url: str, name: str, seeds: list[int], length: int,
                  on_tune) -> Visit:
    """Open the link for seeds[0], then type each further seed; record each tune shown."""
    visit = Visit(name)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(180_000)
    page = await context.new_page()
    page.on("request", lambda r: visit.hosts.add(urlsplit(r.url).hostname or urlsplit(r.url)
                                                   .scheme))
    try:
        before = {"text": None, "audio": None, "chart": None}
        for i, seed in enumerate(seeds):
            t0 = time.perf_counter()
            if i == 0:
                await page.goto(f"{url}/?seed={seed}&length={length}")
            else:
                box = page.locator(SEED_BOX)
                await box.fill(str(seed))
                await box.press("Enter")
            await _wait(page, DONE, [before])
            visit.latencies.append(time.perf_counter() - t0)
            state = await page.evaluate(STATE)
            query = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
            if query.get("seed") != str(seed):
                raise AssertionError(f"{name}: the link says seed {query.get('seed')}, "
                                     f"not {seed}")
            visit.tunes.append((seed, state["text"]))
            visit.exceptions += state["exceptions"]
            visit.alerts.update(state["alerts"])
            before = state
            on_tune()
    except Exception as e:  # noqa: BLE001 - reported with the results
        visit.error = f"{type(e).__name__}: {str(e)[:500]}"
    finally:
        try:
            final = await page.evaluate(STATE)
            visit.exceptions = max(visit.exceptions, final["exceptions"])
            visit.alerts.update(final["alerts"])
            visit.trained_seen = await page.get_by_text("Trained here").count()
        except Exception:  # noqa: BLE001
            visit.trained_seen = -1
        await context.close()
    return visit


async def trainer(browser, url: str, steps: int, seed: int, length: int,
                  timeout_s: float = 900, tmpdir: Path | None = None) -> Visit:
    """Open the page, train the tiny preset for `steps` steps, then sample from the model."""
    visit = Visit("trainer")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(timeout_s * 1000)
    page = await context.new_page()
    page.on("request", lambda r: visit.hosts.add(urlsplit(r.url).hostname or urlsplit(r.url)
                                                   .scheme))
    try:
        t0 = time.perf_counter()
        await page.goto(f"{url}/?seed={seed}&length={length}")
        await _wait(page, DONE, [{"text": None, "audio": None, "chart": None}])
        before = await page.evaluate(STATE)
        await page.get_by_role("link", name=re.compile("Train")).click()
        box = page.locator('input[aria-label="Steps"]')
        await box.fill(str(steps))
        await box.press("Enter")
        await _wait(page, "() => { const w = document.querySelector("
                          "'[data-testid=\"stStatusWidget\"]'); return !w || "
                          "!/Running|Stop/.test(w.innerText); }")
        await page.get_by_role("button", name=re.compile("Start training")).click()
        t_start = time.perf_counter()
        await page.get_by_text(re.compile(r"^Done: the model is saved")).wait_for(
            timeout=timeout_s * 1000)
        t_done = time.perf_counter()
        progress = await page.locator('[data-testid="stProgress"]').inner_text()
        await page.get_by_role("button", name=re.compile("Use this model for sampling")).click()
        await _wait(page, DONE, [before], timeout=180_000)
        state = await page.evaluate(STATE)
        visit.tunes.append((seed, state["text"]))
        visit.exceptions = state["exceptions"]
        visit.alerts.update(state["alerts"])
        if tmpdir is not None:  # read the model now: it goes when the session ends
            visit.trained_text = await asyncio.to_thread(trained_model_text, tmpdir, seed,
                                                         length)
        visit.trained = {"seconds": round(t_done - t_start, 1), "progress": progress,
                         "model_shown": await page.get_by_text("Trained here").count(),
                         "open_to_done_s": round(t_done - t0, 1)}
    except Exception as e:  # noqa: BLE001
        visit.error = f"{type(e).__name__}: {str(e)[:500]}"
    finally:
        await context.close()
    return visit


def trained_model_text(tmpdir: Path, seed: int, length: int) -> str | None:
    """The text the model in the (one) training folder writes for a link, or None."""
    from abcweb.model import checkpoint
    from abcweb.sampling.sampler import load_sampler

    for folder in sorted(tmpdir.glob("abcweb-train-*")):
        try:
            # The trainer opened a link from before proposals: its session has them off.
            return load_sampler(folder / "model", "numpy").generate("X:", length, 1.0, seed,
                                                                    0, best_of=1,
                                                                    form=False).text
        except checkpoint.CheckpointError:
            continue
    return None


# -- the run ----------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def run(sessions: int = 8, generations: int = 200, length: int = 600, train_steps: int = 60,
        weights: str | None = None, verify: bool = True, workdir: str | None = None,
        train_timeout_s: float = 900, log=None) -> dict:
    """Run the load test; returns the figures and the problems found (empty: all good)."""
    from playwright.async_api import async_playwright

    from abcweb.model import checkpoint
    from abcweb.sampling.sampler import load_sampler

    work = Path(workdir or tempfile.mkdtemp(prefix="abcweb-load-"))
    tmpdir = work / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    model = work / "model"
    source = checkpoint.resolve(weights)
    checkpoint.save(checkpoint.load(source), model)  # a frozen, verified copy
    per_session = max(1, math.ceil(generations / sessions))
    seeds = [[1000 * (i + 1) + k for k in range(per_session)] for i in range(sessions)]
    problems: list[str] = []
    count = {"n": 0}
    progress: list[tuple[float, int, float]] = []  # (time, generations so far, RSS)

    with server(model, tmpdir) as srv:
        rec = RssRecorder(srv.pid)
        rec.start()
        rss_start = rec.mark("start")
        cpu_start = cpu_seconds(srv.pid)
        t0 = time.perf_counter()
        quarter = {"next": 0.25}
        total = per_session * sessions

        def on_tune():
            count["n"] += 1
            if log and count["n"] % 10 == 0:
                log(f"{count['n']} generations in {time.perf_counter() - t0:.0f} s, "
                    f"server RSS {rss_mb(srv.pid):.0f} MB")
            if count["n"] == sessions:
                rec.mark("warm")  # every visitor has had its first tune
                progress.append((time.perf_counter() - t0, count["n"], rec.marks["warm"]))
            elif count["n"] >= quarter["next"] * total and count["n"] > sessions:
                progress.append((time.perf_counter() - t0, count["n"], rss_mb(srv.pid)))
                quarter["next"] += 0.25

        async def main():
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=bs.CHROMIUM,
                                                  args=bs.CHROMIUM_ARGS)
                jobs = [visitor(browser, srv.url, f"visitor {i}", seeds[i], length, on_tune)
                        for i in range(sessions)]
                if train_steps:
                    jobs.append(trainer(browser, srv.url, train_steps, 424242, min(length, 300),
                                        train_timeout_s, tmpdir if verify else None))
                out = await asyncio.gather(*jobs)
                await browser.close()
                return out

        visits = asyncio.run(main())
        wall = time.perf_counter() - t0
        rss_end = rec.mark("end")
        server_cpu = cpu_seconds(srv.pid) - cpu_start
        peers = remote_peers(srv.pid)
        left_running = leftovers(tmpdir)
        trainer_visit = next((v for v in visits if v.name == "trainer"), None)
        trained_text = trainer_visit.trained_text if trainer_visit else None
        rec.done.set()
        rec.join()

    # -- checks -------------------------------------------------------------------------------
    generators = [v for v in visits if v.name != "trainer"]
    latencies = [t for v in generators for t in v.latencies[1:]]  # after each page's first
    firsts = [v.latencies[0] for v in generators if v.latencies]
    done = sum(len(v.tunes) for v in generators)
    for v in visits:
        if v.error:
            problems.append(f"{v.name}: {v.error}")
        if v.exceptions:
            problems.append(f"{v.name}: {v.exceptions} exception(s) shown in the page")
        foreign = {h for h in v.hosts if h not in ("127.0.0.1", "data", "blob", "about")}
        if foreign:
            problems.append(f"{v.name}: the page asked other hosts: {sorted(foreign)}")
        if v.name != "trainer" and getattr(v, "trained_seen", 0):
            problems.append(f"{v.name}: sees a trained model it did not train")
    if peers:
        problems.append(f"the server connected to other hosts: {sorted(peers)}")
    if left_running["render"]:
        problems.append(f"render folders left behind: {left_running['render']}")
    wrong = 0
    if verify:
        s = load_sampler(model, "numpy")
        for v in generators:
            for seed, text in v.tunes:
                # The links here name no model, so the page reads them as links from before
                # ids, drafts and bar proposals: the model's own draw (best of 1).
                expected = s.generate("X:", length, 1.0, seed, 0, stop_at_end=True,
                                      best_of=1, form=False).text
                if text != shown(expected):
                    wrong += 1
                    if wrong <= 3:
                        problems.append(f"{v.name}: seed {seed} shows another tune than the "
                                        "library writes")
        if trainer_visit and trainer_visit.tunes:
            seed, text = trainer_visit.tunes[-1]
            if trained_text is None:
                problems.append("trainer: no trained model found to check its tune against")
            elif text != shown(trained_text):
                problems.append("trainer: its tune is not its own model's")
            elif text == shown(s.generate("X:", min(length, 300), 1.0, seed, 0,
                                          best_of=1, form=False).text):
                problems.append("trainer: still shows the shipped model's tune")
        if wrong > 3:
            problems.append(f"... {wrong} wrong tunes in all")
    if trainer_visit is not None and trainer_visit.trained is None and not trainer_visit.error:
        problems.append("trainer: training did not finish")

    rss = dict(rec.marks)
    rss["peak"] = round(rec.peak, 1)
    # Median RSS over each quarter of the time after warm-up: transient render buffers make
    # single samples jump by 100 MB or more.
    t_warm = progress[0][0] if progress else 0.0
    t_end = rec.samples[-1][0] if rec.samples else 0.0
    quarters = []
    for q in range(4):
        lo = t_warm + (t_end - t_warm) * q / 4
        hi = t_warm + (t_end - t_warm) * (q + 1) / 4
        window = [v for t, v in rec.samples if lo <= t <= hi]
        quarters.append(round(statistics.median(window), 1) if window else None)
    return {
        "sessions": sessions, "training_session": bool(train_steps),
        "generations": done, "length": length, "wall_s": round(wall, 1),
        "throughput_per_s": round(done / wall, 2) if wall else None,
        "first_tune_s": {"p50": round(percentile(firsts, 0.5), 2),
                         "max": round(max(firsts, default=math.nan), 2)},
        "latency_s": {"p50": round(percentile(latencies, 0.5), 3),
                      "p95": round(percentile(latencies, 0.95), 3),
                      "max": round(max(latencies, default=math.nan), 3),
                      "mean": round(statistics.fmean(latencies), 3) if latencies else None},
        "server_cpu_s": round(server_cpu, 1), "host_cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rss_mb": rss, "rss_growth_after_warmup_mb": round(rss_end - rss.get("warm", rss_start),
                                                           1),
        "rss_progress": [(round(t, 1), n, round(m, 1)) for t, n, m in progress],
        "rss_median_by_quarter_after_warmup_mb": quarters,
        "leftover_tmp": {k: len(v) for k, v in left_running.items()},
        "trained": trainer_visit.trained if trainer_visit else None,
        "wrong_tunes": wrong, "problems": problems, "workdir": str(work),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=8, help="concurrent visitors (default 8)")
    ap.add_argument("--generations", type=int, default=200,
                    help="tunes to write in all (default 200)")
    ap.add_argument("--length", type=int, default=600, help="length setting (default 600)")
    ap.add_argument("--train-steps", type=int, default=60,
                    help="steps the training visitor trains (default 60)")
    ap.add_argument("--no-train", action="store_true", help="no training visitor")
    ap.add_argument("--weights", default=None, help="checkpoint folder (default weights/)")
    ap.add_argument("--no-verify", action="store_true",
                    help="skip checking each tune against the library")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    r = run(args.sessions, args.generations, args.length,
            0 if args.no_train else args.train_steps, args.weights, not args.no_verify,
            log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        print(f"{r['sessions']} visitors{' + 1 training' if r['training_session'] else ''}, "
              f"{r['generations']} generations in {r['wall_s']} s: "
              f"{r['throughput_per_s']} generations/s")
        lat = r["latency_s"]
        print(f"latency per generation: p50 {lat['p50']} s, p95 {lat['p95']} s, "
              f"max {lat['max']} s; first tune per visitor p50 {r['first_tune_s']['p50']} s")
        print(f"server CPU time {r['server_cpu_s']} s over {r['wall_s']} s on "
              f"{r['host_cpus']} CPUs (load average at the end {r['load_average']})")
        m = r["rss_mb"]
        print(f"server RSS: start {m.get('start')} MB, after warm-up {m.get('warm')} MB, "
              f"end {m.get('end')} MB, peak {m.get('peak')} MB "
              f"(growth after warm-up {r['rss_growth_after_warmup_mb']} MB)")
        print("  RSS through the run (s, generations, MB): "
              + ", ".join(f"({t}, {n}, {v})" for t, n, v in r["rss_progress"]))
        print("  median RSS in each quarter after warm-up (MB): "
              + ", ".join(str(v) for v in r["rss_median_by_quarter_after_warmup_mb"]))
        print(f"leftover temporary files: {r['leftover_tmp']}")
        if r["trained"]:
            print(f"training: {r['trained']}")
        print("problems: " + ("none" if not r["problems"] else "\n  " + "\n  ".join(
            r["problems"])))
    shutil.rmtree(r["workdir"], ignore_errors=True)
    return 1 if r["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
