"""Sampling in worker processes: the same text as in the calling thread, and a worker that
dies, hangs or meets a changed checkpoint is explained and replaced."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

from abcweb.model import checkpoint
from abcweb.sampling import sample_worker
from abcweb.sampling.sampler import Sampler, load_sampler

from conftest import random_checkpoint


@pytest.fixture(scope="module")
def pair(tiny_dir):
    return load_sampler(tiny_dir), Sampler(checkpoint.load(tiny_dir), "numpy", workers=False)


def test_workers_write_what_the_calling_thread_writes(pair):
    pooled, here = pair
    assert pooled.workers and not here.workers
    for seed, temperature, top_k in [(0, 1.0, 0), (1, 0.5, 3), (2, 1.7, 0), (3, 0.0, 0)]:
        a = pooled.generate_many("X:", 150, temperature, [seed, seed + 10], top_k)
        b = here.generate_many("X:", 150, temperature, [seed, seed + 10], top_k)
        for x, y in zip(a, b):
            assert x.text == y.text and x.stopped == y.stopped
            assert (x.logits == y.logits).all()


def test_the_shipped_model_writes_the_same_through_workers():
    pooled = load_sampler()
    here = Sampler(checkpoint.load(None), "numpy", workers=False)
    for seed in range(5):
        a, b = pooled.generate("X:", 400, 1.0, seed), here.generate("X:", 400, 1.0, seed)
        assert a.text == b.text


def test_bad_arguments_are_refused_before_any_worker_is_asked(pair):
    pooled, _ = pair
    with pytest.raises(ValueError, match="seed"):
        pooled.generate("X:", 10, 1.0, None)


def test_a_killed_worker_is_replaced(pair):
    pooled, here = pair
    pooled.generate("X:", 20, 1.0, 0)
    for pid in sample_worker.pool().pids():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    # Dead workers are replaced on the way: the caller never sees them.
    for seed in range(3):
        assert pooled.generate("X:", 60, 1.0, seed).text == here.generate("X:", 60, 1.0,
                                                                          seed).text


def test_a_hung_worker_is_stopped_at_the_timeout_and_replaced(pair):
    pooled, here = pair
    p = sample_worker.Pool(size=1)
    p.generate(str(pooled.ckpt.path), pooled.ckpt.sha256, "X:", 5, 1.0, [0], 0, True)
    (pid,) = p.pids()
    os.kill(pid, signal.SIGSTOP)  # alive, but never answers
    t0 = time.monotonic()
    with pytest.raises(sample_worker.WorkerError, match="did not answer in time"):
        p.generate(str(pooled.ckpt.path), pooled.ckpt.sha256, "X:", 5, 1.0, [0], 0, True,
                   timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert pid not in p.pids()
    texts, _ = p.generate(str(pooled.ckpt.path), pooled.ckpt.sha256, "X:", 30, 1.0, [2], 0,
                          True)
    assert texts == [here.generate("X:", 30, 1.0, 2).generated]
    p.close()


def test_a_checkpoint_changed_on_disk_is_an_error_not_another_models_tune(tmp_path, tiny_dir):
    folder = tmp_path / "m"
    shutil.copytree(tiny_dir, folder)
    s = load_sampler(folder)
    checkpoint.save(random_checkpoint(s.cfg, seed=5), folder)  # new weights, same folder
    with pytest.raises(sample_worker.WorkerError, match="changed on disk"):
        s.generate("X:", 20, 1.0, 0)


def worker_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def test_the_loop_runs_in_the_worker_not_in_this_process():
    """What keeps a tune fast next to busy threads (bench/bench_concurrency.py times it): the
    per-character work is done in another process, so this one's GIL is not in its way."""
    s = load_sampler()
    s.generate("X:", 10, 1.0, 0)  # the workers are up and hold the model
    pids = sample_worker.pool().pids()
    mine, theirs = time.process_time(), worker_cpu(pids)
    for seed in range(3):
        s.generate("X:", 2000, 1.0, seed, stop_at_end=False)
    mine, theirs = time.process_time() - mine, worker_cpu(pids) - theirs
    assert theirs > 0.05 and mine < theirs / 3, (mine, theirs)
