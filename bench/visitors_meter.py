"""The server's figures, read from /proc while the visitors run (bench/visitors.py): its
process tree (the sampling workers, the ABC tools, a training worker), their CPU time, RSS and
connections to other hosts.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

from load_test import RssRecorder, cpu_seconds, remote_peers, rss_mb

# -- settings ---------------------------------------------------------------------------------
WATCH_EVERY_S = 0.05  # how often the training worker's CPU time is read (one small file)
SCAN_EVERY_S = 0.5  # how often the server's process tree is scanned for a training worker
PEERS_EVERY_S = 5.0  # how often its processes' connections are listed (10 ms a process)


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
        return b"abcweb.web.train_worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
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


# -- the server's figures over a run -----------------------------------------------------------
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
