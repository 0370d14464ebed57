"""A sampling worker killed at any moment: before a request, while it writes a tune, right
after it has been sent one or has answered one, and every worker at once. The caller gets the
tune from another worker, or a WorkerError the page turns into one line; the pool never hands
a dead worker a request, and no request waits forever for one.

Real worker processes throughout, killed with SIGKILL; the page in AppTest and in Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from abcweb.model import checkpoint
from abcweb.sampling import sample_worker
from abcweb.sampling.sampler import Sampler, load_sampler
from abcweb.web import params

WAIT_S = 60  # for a request that should end: past this it hangs


@pytest.fixture(scope="module")
def here(tiny_dir):
    return Sampler(checkpoint.load(tiny_dir), "numpy", workers=False)


@pytest.fixture
def pool():
    p = sample_worker.Pool(size=2)
    yield p
    p.close()


@pytest.fixture
def asked(monkeypatch):
    """The pid of every worker handed a request, in order."""
    pids = []
    real = sample_worker._Worker.ask

    def ask(self, request, timeout):
        pids.append(self.proc.pid)
        return real(self, request, timeout)

    monkeypatch.setattr(sample_worker._Worker, "ask", ask)
    return pids


def kill_on_read(monkeypatch, pool, after_reply=False, times=1, before_kill=None):
    """Kill the worker a request went to, right after the request was written (or right
    after its reply was read), for the first `times` requests. Returns the pids killed."""
    real = sample_worker._read_frame
    killed = []

    def read(fd):
        w = next((w for w in list(pool.all) if w.proc.stdout.fileno() == fd), None)
        due = w is not None and len(killed) < times
        if due and before_kill:
            before_kill()
        if due and not after_reply:
            killed.append(w.proc.pid)
            os.kill(w.proc.pid, signal.SIGKILL)
        frame = real(fd)
        if due and after_reply:
            killed.append(w.proc.pid)
            os.kill(w.proc.pid, signal.SIGKILL)
        return frame

    monkeypatch.setattr(sample_worker, "_read_frame", read)
    return killed


def warm(pool: sample_worker.Pool) -> list[int]:
    """Every place in the pool holds an idle worker; their pids."""
    workers = [pool._take()[0] for _ in range(pool.size)]
    for w in workers:
        pool._give_back(w)
    return [w.proc.pid for w in workers]


def ask_pool(pool, s: Sampler, seed: int, length: int = 80, best: bool = False) -> str:
    path, sha = str(s.ckpt.path), s.ckpt.sha256
    if best:
        return pool.best(path, sha, "X:", length, 1.0, [seed, seed + 1, seed + 2], 0, True)[1]
    return pool.generate(path, sha, "X:", length, 1.0, [seed], 0, True)[0][0]


def expected(here: Sampler, seed: int, length: int = 80, best: bool = False) -> str:
    if best:
        return here.best_draft("X:", length, 1.0, [seed, seed + 1, seed + 2], 0, True)[1]
    return here.generate("X:", length, 1.0, seed, best_of=1).generated


def started(fn, *args, name: str | None = None) -> Future:
    """fn(*args) in a daemon thread: a request that hangs fails its test, not the run."""
    done = Future()

    def run():
        try:
            done.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            done.set_exception(e)

    threading.Thread(target=run, name=name, daemon=True).start()
    return done


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the pool ---------------------------------------------------------------------------------
def test_a_killed_worker_is_not_ready_even_before_it_can_be_reaped(pool):
    """What the page met: a worker's pipes close, and /proc shows it a zombie, before
    waitpid() can reap it, and poll() called it running all that while."""
    (pid, _) = warm(pool)
    w = next(w for w in pool.all if w.proc.pid == pid)
    os.kill(pid, signal.SIGKILL)
    assert not w.ready() and not w.alive()
    assert pid not in pool.pids()


@pytest.mark.parametrize("best", [False, True], ids=["own draw", "best of drafts"])
def test_workers_killed_while_idle_are_never_asked(pool, here, asked, best):
    first = ask_pool(pool, here, 1, best=best)
    pids = warm(pool)
    n = len(asked)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    # At once: no time for the kernel to let anyone reap them.
    assert ask_pool(pool, here, 2, best=best) == expected(here, 2, best=best)
    assert ask_pool(pool, here, 1, best=best) == first
    assert set(asked[n:]).isdisjoint(pids) and set(pool.pids()).isdisjoint(pids)


@pytest.mark.parametrize("best", [False, True], ids=["own draw", "best of drafts"])
def test_a_worker_killed_right_after_it_was_sent_a_request(pool, here, asked, monkeypatch,
                                                           best):
    warm(pool)
    killed = kill_on_read(monkeypatch, pool)
    assert ask_pool(pool, here, 3, best=best) == expected(here, 3, best=best)
    assert len(killed) == 1 and asked[0] == killed[0]
    assert killed[0] not in asked[1:]  # the retry went to another worker


def test_a_worker_killed_right_after_it_answered_is_not_asked_again(pool, here, asked,
                                                                    monkeypatch):
    killed = kill_on_read(monkeypatch, pool, after_reply=True)
    assert ask_pool(pool, here, 4) == expected(here, 4)  # the reply was whole
    assert killed == asked
    for seed in (5, 6):
        assert ask_pool(pool, here, seed) == expected(here, seed)
    assert killed[0] not in asked[1:] and killed[0] not in pool.pids()


def test_a_worker_killed_while_it_writes_the_tune(here, asked):
    """The shipped model, so that a tune takes long enough to kill its worker mid-way: once
    the worker has spent CPU on the request, and before the reply comes."""
    s = load_sampler()
    pool = sample_worker.Pool(size=1)
    try:
        args = (str(s.ckpt.path), s.ckpt.sha256, "X:", 1000, 1.0, [7, 8, 9, 10], 0, False)
        want = pool.best(*args)[1]  # the worker holds the model now
        (pid,) = pool.pids()
        before = cpu_s(pid)
        job = started(pool.best, *args)
        deadline = time.monotonic() + WAIT_S
        while cpu_s(pid) < before + 0.05 and time.monotonic() < deadline:
            time.sleep(0.005)
        in_flight = not job.done()
        os.kill(pid, signal.SIGKILL)
        got = job.result(WAIT_S)[1]
        assert in_flight, "the tune was written before its worker could be killed"
        assert got == want
        assert asked[-2] == pid and asked[-1] != pid and pid not in pool.pids()
    finally:
        pool.close()


def test_every_worker_killed_while_both_write(pool, here, asked, monkeypatch):
    both_sent = threading.Barrier(2, timeout=WAIT_S)

    def kill_all_once():
        if both_sent.wait() == 0:
            for w in list(pool.all):
                os.kill(w.proc.pid, signal.SIGKILL)

    killed = kill_on_read(monkeypatch, pool, times=2, before_kill=kill_all_once)
    jobs = [started(ask_pool, pool, here, seed) for seed in (11, 12)]
    assert [j.result(WAIT_S) for j in jobs] == [expected(here, 11), expected(here, 12)]
    assert len(set(killed)) == 2 and set(pool.pids()).isdisjoint(killed)
    assert len(asked) == 4 and set(asked[2:]).isdisjoint(killed)


class WatchedCondition(threading.Condition):
    """Says when a request starts to wait for a worker."""

    def __init__(self, lock):
        super().__init__(lock)
        self.waiting = threading.Event()

    def wait(self, timeout=None):
        self.waiting.set()
        return super().wait(timeout)


def test_a_request_that_kills_every_worker_fails_and_the_one_waiting_is_served(here,
                                                                               monkeypatch):
    pool = sample_worker.Pool(size=1)
    pool.freed = WatchedCondition(pool.lock)
    try:
        warm(pool)
        real = sample_worker._read_frame
        reading = threading.Event()

        def read(fd):  # the doomed request's workers all die, once another request waits
            if threading.current_thread().name == "doomed":
                reading.set()
                assert pool.freed.waiting.wait(WAIT_S)
                for w in list(pool.all):
                    os.kill(w.proc.pid, signal.SIGKILL)
            return real(fd)

        monkeypatch.setattr(sample_worker, "_read_frame", read)
        bad = started(ask_pool, pool, here, 13, name="doomed")
        assert reading.wait(WAIT_S)  # it holds the only worker
        good = started(ask_pool, pool, here, 14)
        assert good.result(WAIT_S) == expected(here, 14)
        with pytest.raises(sample_worker.WorkerDied):
            bad.result(WAIT_S)
        monkeypatch.undo()
        assert pool.started <= 1 and len(pool.pids()) <= 1
        assert ask_pool(pool, here, 15) == expected(here, 15)
    finally:
        pool.close()


def test_a_worker_that_cannot_start_is_an_error_and_the_next_one_starts(pool, here,
                                                                       monkeypatch):
    def no_processes():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(sample_worker, "_Worker", no_processes)
    for _ in range(pool.size + 1):  # no place is lost to a start that failed
        with pytest.raises(sample_worker.WorkerError, match="could not start"):
            started(ask_pool, pool, here, 16).result(WAIT_S)
    monkeypatch.undo()
    assert started(ask_pool, pool, here, 16).result(WAIT_S) == expected(here, 16)


# -- the sampler: every path the page takes ----------------------------------------------------
@pytest.mark.parametrize("best_of", [1, 3])
def test_the_sampler_writes_the_tune_when_every_worker_dies_right_after_a_request(
        tiny_dir, here, monkeypatch, best_of):
    s = load_sampler(tiny_dir)
    s.generate("X:", 20, 1.0, 0, best_of=best_of)
    shared = sample_worker.pool()
    for pid in shared.pids():
        os.kill(pid, signal.SIGKILL)
    killed = kill_on_read(monkeypatch, shared)
    got = s.generate("X:", 120, 1.0, 21, best_of=best_of)
    assert len(killed) == 1
    want = here.generate("X:", 120, 1.0, 21, best_of=best_of)
    assert got.text == want.text and (got.logits == want.logits).all()


def test_streaming_and_the_tf_sampler_need_no_worker(tiny_dir, here, monkeypatch):
    """The page streams a slow model's text in its own thread, then asks a worker for the
    logits; the TensorFlow sampler never asks one. With no worker to be had, the stream and
    TensorFlow still write, and the worker's part is a WorkerError, not a hang."""
    s = load_sampler(tiny_dir)
    sample_worker.pool().close()

    def no_processes():
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(sample_worker, "_Worker", no_processes)
    want = here.generate("X:", 150, 1.0, 22, best_of=1)
    assert "".join(s.stream("X:", 150, 1.0, 22, every=25)) == want.generated
    with pytest.raises(sample_worker.WorkerError):
        s.generate("X:", 150, 1.0, 22, best_of=1)
    pytest.importorskip("tensorflow")
    tf = load_sampler(tiny_dir, backend="tf")
    assert tf.generate("X:", 150, 1.0, 22, best_of=3).text.startswith("X:")
    monkeypatch.undo()
    assert s.generate("X:", 150, 1.0, 22, best_of=1).text == want.text


# -- the page -----------------------------------------------------------------------------------
MESSAGE = "The sampler stopped before the tune was written. Please try again."


def test_the_page_says_so_in_one_line_and_try_again_writes_the_tune(model_dir, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from views import shared

    sample_worker.pool().close()

    def no_processes():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(sample_worker, "_Worker", no_processes)
    s = params.Settings(seed=4711, length=300, best=2)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "streamlit_app.py"),
                           default_timeout=90)
    for k, v in {**params.to_query(s), "model": checkpoint.model_id(model_dir)}.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [MESSAGE]
    assert not at.main.code  # no tune, and no half of one
    monkeypatch.undo()
    next(b for b in at.button if b.label == "Try again").click().run()
    assert not at.exception and not at.error
    want = shared.get_sampler(model_dir, "numpy").generate(
        s.prime, s.length, s.temperature, s.seed, s.top_k, best_of=s.best, top_p=s.top_p)
    assert at.session_state["_text"] == want.text


@pytest.mark.slow
def test_the_inside_view_and_a_book_link_say_so_too(model_dir, monkeypatch):
    """Both write tunes through the pool as the Generate page does."""
    from streamlit.testing.v1 import AppTest

    from abcweb.web import tunebook

    sample_worker.pool().close()

    def no_processes():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(sample_worker, "_Worker", no_processes)
    app = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
    s = params.Settings(seed=4712, length=300, best=2)
    query = {**params.to_query(s), "model": checkpoint.model_id(model_dir)}

    inside = AppTest.from_file(app, default_timeout=90)
    for k, v in query.items():
        inside.query_params[k] = v
    inside.run()
    inside.switch_page("views/inside.py").run()
    assert not inside.exception
    assert MESSAGE in [e.value for e in inside.error]

    link, _ = tunebook.link(None, [tunebook.Entry("", s)])
    book = AppTest.from_file(app, default_timeout=90)
    book.run()  # the Generate page writes its address; the link is opened on the Tunebook
    book.query_params.clear()
    book.query_params["t"] = parse_qs(urlsplit(link).query)["t"]
    book.switch_page("views/tunebook.py").run()
    assert not book.exception
    assert any("seed 4712 could not be written" in w.value for w in book.warning)
    monkeypatch.undo()


def worker_pids(server: int) -> list[int]:
    """The sampling workers of the server with this pid, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == server and b"abcweb.sampling.sample_worker" in cmd:
            pids.append(int(entry.name))
    return pids


@pytest.mark.browser
@pytest.mark.slow
def test_in_chromium_a_worker_killed_mid_tune_never_shows_the_generic_error(model_dir):
    """The issue's steps: a long best-of-8 tune, a new seed typed, and its worker killed as
    it writes; then every worker killed while idle. Each time the tune comes, the page never
    shows Streamlit's 'This app has encountered an error', and the next tune works."""
    playwright = pytest.importorskip("playwright.sync_api")
    from browser_support import (
        CHROMIUM,
        ROOT,
        TUNE,
        free_port,
        launch,
        stop,
        tune_text,
        wait_healthy,
        wait_idle,
    )

    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
         "--server.headless", "true", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_healthy(proc, url, WAIT_S, lambda: "")
        with playwright.sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page()
            page.set_default_timeout(WAIT_S * 1000)
            page.goto(f"{url}/?seed=200&length=2000&temperature=2&best=8")
            page.wait_for_selector(TUNE)
            wait_idle(page)

            def new_seed(seed: int, then=None) -> str:
                before = tune_text(page)
                box = page.get_by_role("spinbutton", name="Random seed")
                box.fill(str(seed))
                box.press("Enter")
                if then:
                    then()
                page.wait_for_function(
                    "([sel, before, message]) => {"
                    " if (document.body.innerText.includes(message)) return true;"
                    " if (document.querySelector('[data-testid=\"stException\"]')) return true;"
                    " const el = document.querySelector(sel); if (!el) return false;"
                    " return Array.from(el.querySelectorAll('[data-line]'))"
                    ".map(d => d.lastChild.textContent).join('\\n') !== before; }",
                    arg=[TUNE, before, MESSAGE])
                wait_idle(page)
                body = page.inner_text("body")
                assert "encountered an error" not in body
                assert page.locator('[data-testid="stException"]').count() == 0
                if MESSAGE in body:  # the one-line message: its button writes the tune
                    page.get_by_role("button", name="Try again").click()
                    page.wait_for_selector(TUNE)
                    wait_idle(page)
                return tune_text(page)

            killed = []

            def kill_when_writing():
                workers = worker_pids(proc.pid)
                spent = {pid: cpu_s(pid) for pid in workers}
                deadline = time.monotonic() + WAIT_S
                while time.monotonic() < deadline:
                    busy = [pid for pid in workers if cpu_s(pid) > spent[pid] + 0.05]
                    if busy:
                        break
                    time.sleep(0.005)
                assert busy, "no worker started on the tune"
                for pid in workers:  # the busy one and the idle one alike
                    os.kill(pid, signal.SIGKILL)
                killed.extend(workers)

            first = tune_text(page)
            mid_tune = new_seed(201, kill_when_writing)
            assert mid_tune.startswith("X:") and mid_tune != first
            assert killed and set(worker_pids(proc.pid)).isdisjoint(killed)
            for pid in worker_pids(proc.pid):  # killed while idle, before the next request
                os.kill(pid, signal.SIGKILL)
            after = new_seed(202)
            assert after.startswith("X:") and after not in (first, mid_tune)
            assert new_seed(200) == first  # the same settings still bring the same tune
            browser.close()
    finally:
        stop(proc)
