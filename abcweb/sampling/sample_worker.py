"""Sampling in worker processes, so a busy page server never slows a tune down.

A Streamlit server runs every visitor's script as a thread of one process. The NumPy sampler
calls into NumPy several times per character and gives up the GIL at each call; with other
threads running Python it then waits up to a switch interval (5 ms) to get it back, and 600
characters took 21.9 s instead of 0.06 s next to four busy threads. Here the loop runs in a
process of its own: the calling thread sends one request down a pipe and sleeps in a read,
with the GIL released, until the tokens and logits come back. The worker runs the very same
loop (loop.py) and drafts (drafts.py) on the same weights, so the text is the same, character
for character. The public Sampler (sampler.py) hands its work to this pool; the pool never
uses the Sampler.

    python -m abcweb.sampling.sample_worker   # one worker: requests on stdin, replies on stdout

Framing, both ways: an 8-byte little-endian length, then that many bytes. A request is JSON
(checkpoint folder, the weights' SHA-256, the sampling arguments). A reply is a JSON header
(the texts, the logits' shapes, or an error), then the logits as raw float32. The reply goes
out in one write into a pipe made big enough to hold it, so the server's thread reads it in
one go: each read is a GIL hand-over, and on a busy server each costs up to 5 ms.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

WORKERS = max(1, min(2, os.cpu_count() or 1))  # one generation at a time per core at most
REQUEST_TIMEOUT_S = 60.0  # a generation is well under a second; a worker this slow is stuck
WATCH_EVERY_S = 0.2  # how often the watchdog looks for late requests
MAX_MODELS = 4  # checkpoints each worker keeps loaded (the shipped one plus trained ones)
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_HEADER = struct.Struct("<Q")
_PIPE_BYTES = 1 << 20  # Linux's default most for an unprivileged pipe: a 2,700-step reply
_F_SETPIPE_SZ = 1031
_PF_EXITING = 0x4  # /proc/<pid>/stat flags: the process has begun to exit
_SIGKILL_PENDING = 1 << (signal.SIGKILL - 1)  # its bit in /proc/<pid>/status SigPnd/ShdPnd
log = logging.getLogger(__name__)


class WorkerError(RuntimeError):
    """A worker could not answer (it died, hung, or could not load the model)."""


class WorkerDied(WorkerError):
    """The worker's process had ended (killed, say): the request goes to a new one, once."""


# -- framing --------------------------------------------------------------------------------
def _write(stream, data: bytes) -> None:
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_frame(fd: int) -> bytes:
    """One frame, in as few reads as it takes: the whole reply is usually in the pipe
    already, and then one read (one GIL hand-over) takes it."""
    buf = bytearray()
    need = _HEADER.size
    while len(buf) < need:
        chunk = os.read(fd, max(need - len(buf), _PIPE_BYTES))
        if not chunk:
            raise WorkerDied("the sampling worker ended unexpectedly")
        buf += chunk
        if need == _HEADER.size and len(buf) >= need:
            need += _HEADER.unpack_from(buf)[0]
    if len(buf) > need:
        raise WorkerError("the sampling worker sent more than one reply")
    return bytes(buf[_HEADER.size:])


def _reply(header: dict, arrays: list[np.ndarray] = ()) -> bytes:
    head = json.dumps(header).encode()
    return (_HEADER.pack(len(head)) + head
            + b"".join(np.ascontiguousarray(a, np.float32).tobytes() for a in arrays))


def _parse_reply(frame: bytes) -> tuple[dict, list[np.ndarray]]:
    (n,) = _HEADER.unpack_from(frame)
    header = json.loads(frame[_HEADER.size: _HEADER.size + n])
    arrays, at = [], _HEADER.size + n
    for shape in header.get("shapes", []):
        size = int(np.prod(shape)) * 4
        arrays.append(np.frombuffer(frame, np.float32, size // 4, at).reshape(shape))
        at += size
    return header, arrays


# -- the worker process ---------------------------------------------------------------------
def serve(fd_in: int, out) -> None:
    from collections import OrderedDict

    from abcweb.model import checkpoint as ckpt_io
    from abcweb.sampling import drafts, melody
    from abcweb.sampling.loop import Loop

    models: OrderedDict[tuple[str, str], tuple[Loop, dict | None]] = OrderedDict()

    def sampler(path: str, sha: str, threads: int | None) -> tuple[Loop, dict | None]:
        key = (path, sha, threads)
        if key not in models:
            ckpt = ckpt_io.load(path)
            if ckpt.sha256 != sha:
                raise WorkerError("the checkpoint changed on disk since it was loaded")
            models[key] = Loop(ckpt, "numpy", threads=threads), melody.model_prior(ckpt)
            while len(models) > MAX_MODELS:
                models.popitem(last=False)
        models.move_to_end(key)
        return models[key]

    while True:
        try:
            req = json.loads(_read_frame(fd_in))
        except WorkerError:  # stdin closed: the server is gone or done with us
            return
        try:
            s, prior = sampler(req["path"], req["sha"], req.get("threads", 1))
            args = (req["prime"], req["length"], req["temperature"], req["seeds"],
                    req["top_k"], req["stop_at_end"], req.get("top_p", 1.0))
            if req.get("best"):  # judge the drafts here: only the chosen one goes back
                i, text, lg, found, copies = drafts.best_draft(s, prior, *args,
                                                               form=req.get("form", False))
                frame = _reply({"ok": True, "texts": [text], "shapes": [lg.shape], "draft": i,
                                "drafts": found, "copies": copies}, [lg])
            else:
                tokens, logits = s.generate_arrays(*args)
                texts = ["".join(s.vocab[t] for t in toks) for toks in tokens]
                frame = _reply({"ok": True, "texts": texts,
                                "shapes": [a.shape for a in logits]}, logits)
        except Exception as e:  # noqa: BLE001 - the caller raises it in the server
            frame = _reply({"ok": False, "type": type(e).__name__, "error": str(e)})
        _write(out, frame)


def main() -> int:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when we end
    serve(sys.stdin.fileno(), out)
    return 0


# -- the server's side ----------------------------------------------------------------------
def worker_env(**extra: str) -> dict[str, str]:
    """The environment a worker process of ours starts with: this abcweb importable."""
    path = os.pathsep.join([PACKAGE_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return {**os.environ, "PYTHONPATH": path, **extra}


def _ending(pid: int) -> bool:
    """Whether the kernel is ending the process: a SIGKILL waits for it, it is exiting, or it
    is a zombie. A killed worker's pipes close, and /proc shows it a zombie, milliseconds
    before waitpid() can reap it (its other threads are still ending): all that time poll()
    calls it running, and the pool handed it the retry of the very request it died on."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state, *fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            pending = [int(line.split()[1], 16) for line in f
                       if line.startswith(("SigPnd:", "ShdPnd:"))]
    except FileNotFoundError:
        return os.path.isdir("/proc/self")  # gone (without /proc we cannot tell)
    except (OSError, ValueError, IndexError):
        return False
    return (state in "ZXx" or bool(int(fields[5]) & _PF_EXITING)
            or any(p & _SIGKILL_PENDING for p in pending))


class _Worker:
    def __init__(self):
        env = worker_env()
        self.proc = subprocess.Popen([sys.executable, "-m", "abcweb.sampling.sample_worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     start_new_session=True)
        try:
            fcntl.fcntl(self.proc.stdout.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
        except OSError:  # a smaller pipe only means more reads
            pass
        self.deadline: float | None = None
        self.timed_out = False

    def ask(self, request: dict, timeout: float) -> tuple[dict, list[np.ndarray]]:
        data = json.dumps(request).encode()
        self.timed_out = False
        self.deadline = time.monotonic() + timeout  # the pool's watchdog kills us past it
        try:
            # No select() and no buffered file: a blocking write and a blocking read are the
            # only two GIL hand-overs of a request.
            os.write(self.proc.stdin.fileno(), _HEADER.pack(len(data)) + data)
            return _parse_reply(_read_frame(self.proc.stdout.fileno()))
        except OSError:
            raise WorkerDied("the sampling worker ended unexpectedly") from None
        except WorkerDied:
            if self.timed_out:
                raise WorkerError("the sampling worker did not answer in time") from None
            raise
        finally:
            self.deadline = None

    def kill(self) -> None:
        """End it now if it has not ended, reap it and let its pipes go."""
        if self.proc.poll() is None:  # not reaped: its pid and group are still its own
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait()
        self.close()

    def alive(self) -> bool:
        return self.proc.poll() is None and not _ending(self.proc.pid)

    def ready(self) -> bool:
        """Whether this idle worker can take a request: alive, nobody has closed its pipes,
        and no reply is left in them (an unread one would answer the next request)."""
        if not self.alive():
            return False
        watch = select.poll()
        watch.register(self.proc.stdout, select.POLLIN)
        watch.register(self.proc.stdin, 0)  # POLLERR: nothing reads our requests any more
        return not watch.poll(0)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # end of input: the worker returns
                self.proc.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


def _request(path: str, sha: str, prime: str, length: int, temperature: float,
             seeds: list[int], top_k: int, stop_at_end: bool, threads: int | None,
             best: bool = False, top_p: float = 1.0, form: bool = False) -> dict:
    return {"path": path, "sha": sha, "prime": prime, "length": length,
            "temperature": temperature, "seeds": seeds, "top_k": top_k, "top_p": top_p,
            "stop_at_end": stop_at_end, "threads": threads, "best": best, "form": form}


class Pool:
    """WORKERS processes, started on first use; a request takes an idle one or waits."""

    def __init__(self, size: int = WORKERS):
        self.size = size
        self.idle: list[_Worker] = []  # last in, first out
        self.started = 0
        self.lock = threading.Lock()
        # Notified when a worker comes back or a place opens: a waiting request must wake
        # when the worker it waits for dies, not only when one is given back.
        self.freed = threading.Condition(self.lock)
        self.all: list[_Worker] = []
        self.watchdog: threading.Thread | None = None

    def _take(self) -> tuple[_Worker, bool]:
        """An idle worker ready for a request, else a new one while there is room (True),
        else wait. Idle workers found dead are let go on the way."""
        dead = []
        try:
            with self.freed:
                while True:
                    if self.idle:
                        w = self.idle.pop()
                        if w.ready():
                            return w, False
                        self._forget(w)
                        dead.append(w)
                    elif self.started < self.size:
                        return self._start(), True
                    else:
                        self.freed.wait()
        finally:
            for w in dead:
                w.kill()

    def _start(self) -> _Worker:
        try:
            w = _Worker()
        except OSError as e:  # out of processes or memory: the visitor gets a clear error
            raise WorkerError(f"could not start a sampling worker: {e}") from None
        self.started += 1
        self.all.append(w)
        if self.watchdog is None:
            self.watchdog = threading.Thread(target=self._watch, daemon=True,
                                             name="abcweb-sample-watchdog")
            self.watchdog.start()
        return w

    def _forget(self, w: _Worker) -> None:
        """Under the lock: w no longer counts, and its place can go to a new worker."""
        if w in self.all:  # not once close() has let it go
            self.all.remove(w)
            self.started -= 1
            self.freed.notify()

    def _watch(self) -> None:
        """Kill a worker whose request outlives its deadline: its reader then wakes."""
        while True:
            time.sleep(WATCH_EVERY_S)
            now = time.monotonic()
            with self.lock:
                late = [w for w in self.all if w.deadline is not None and now > w.deadline]
            for w in late:
                w.timed_out = True
                if w.proc.returncode is None:  # not reaped: the group is still its own
                    try:
                        os.killpg(w.proc.pid, signal.SIGKILL)
                    except OSError:
                        pass

    def _give_back(self, w: _Worker) -> None:
        with self.freed:
            if w in self.all and w.ready():
                self.idle.append(w)
                self.freed.notify()
                return
            self._forget(w)
        w.kill()

    def _drop(self, w: _Worker) -> None:
        with self.freed:
            self._forget(w)
        w.kill()

    def generate(self, path: str, sha: str, prime: str, length: int, temperature: float,
                 seeds: list[int], top_k: int, stop_at_end: bool,
                 timeout: float = REQUEST_TIMEOUT_S, threads: int | None = 1,
                 top_p: float = 1.0) -> tuple[list[str], list[np.ndarray]]:
        """The generated text and the logits of each candidate."""
        reply, logits = self._call(_request(path, sha, prime, length, temperature, seeds,
                                            top_k, stop_at_end, threads, top_p=top_p),
                                   timeout)
        return reply["texts"], logits

    def best(self, path: str, sha: str, prime: str, length: int, temperature: float,
             seeds: list[int], top_k: int, stop_at_end: bool,
             timeout: float = REQUEST_TIMEOUT_S, threads: int | None = 1,
             top_p: float = 1.0, form: bool = False
             ) -> tuple[int, str, np.ndarray, list[dict], list[dict]]:
        """drafts.best_draft in a worker: the drafts never cross the pipe, only the one
        chosen (its index, text, logits and copied bars) and every draft's yardsticks."""
        request = _request(path, sha, prime, length, temperature, seeds, top_k, stop_at_end,
                           threads, best=True, top_p=top_p, form=form)
        reply, logits = self._call(request, timeout)
        return (reply["draft"], reply["texts"][0], logits[0], reply["drafts"],
                reply.get("copies", []))

    def _call(self, request: dict, timeout: float) -> tuple[dict, list[np.ndarray]]:
        # A worker that dies is let go and the request goes to another, ready or new. When a
        # second new worker dies on it, the request itself is what kills them.
        new_died = 0
        for _ in range(self.size + 2):
            w, new = self._take()
            try:
                reply, logits = w.ask(request, timeout)
            except WorkerDied as e:
                self._drop(w)
                log.warning("sampling worker %d ended during a request (exit %s)",
                            w.proc.pid, w.proc.returncode)
                new_died += new
                if new_died == 2:
                    raise
                died = e
                continue
            except BaseException:
                self._drop(w)  # hung, confused or interrupted: its reply must not be read
                raise
            self._give_back(w)
            break
        else:
            raise died
        if not reply["ok"]:
            if reply["type"] in ("ValueError", "UnknownCharacters", "CheckpointError"):
                raise ValueError(reply["error"])
            raise WorkerError(f"{reply['type']}: {reply['error']}")
        return reply, logits

    def close(self) -> None:
        """End every worker; the next request starts new ones."""
        with self.freed:
            workers, self.all = self.all, []
            self.started = 0
            self.idle.clear()
            self.freed.notify_all()
        for w in workers:
            w.close()

    def pids(self) -> list[int]:
        with self.lock:
            return [w.proc.pid for w in self.all if w.alive()]


_POOL: Pool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> Pool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = Pool()
            atexit.register(_POOL.close)
        return _POOL


if __name__ == "__main__":
    sys.exit(main())
