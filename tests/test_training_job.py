"""TrainingJob: a Trainer in a worker process, stoppable, with a private checkpoint."""

import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

from abcweb.model import checkpoint
from abcweb.model.lstm import ModelConfig
from abcweb.model.train import TrainSettings
from abcweb.music import corpus
from abcweb.sampling.sampler import load_sampler
from abcweb.web.train_worker import MAX_PAUSE_S
from abcweb.web.training_job import RECIPES, TrainingJob, visitor_busy

pytestmark = pytest.mark.slow

TUNE = """X:{n}
T:Tune {n}
M:6/8
L:1/8
K:G
|:GAB dBG|ced BAG|FGA DEF|GBA G3:|
|:gfg edB|ded BAG|FGA DEF|GBA G3:|"""


def small_corpus(n=40) -> corpus.Corpus:
    return corpus.parse_abc("\n\n".join(TUNE.format(n=i) for i in range(1, n + 1)), "jigs")


def micro_job(steps=6, **kw) -> TrainingJob:
    """A tiny model that trains a step in milliseconds once TensorFlow is loaded."""
    c = small_corpus()
    train, val = c.split()
    cfg = ModelConfig(embedding=8, units=16)
    settings = TrainSettings(steps=steps, batch=4, seq_len=32, learning_rate=1e-2,
                             eval_every=3)
    return TrainingJob(cfg, train, val, settings, name="micro", **kw)


def wait_until(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_job_trains_saves_and_samples():
    job = micro_job(steps=6)
    assert job.state == "idle" and job.checkpoint_path is None
    job.start()
    assert job.wait(180)
    assert job.state == "done", job.error
    metrics = job.metrics()
    assert [m["step"] for m in metrics] == list(range(1, 7))
    assert [m["done"] for m in metrics] == list(range(1, 7))
    assert [m["val_bpc"] is not None for m in metrics] == [False, False, True] * 2
    # At each evaluation, what the weights of that step write from the same seed.
    assert [bool(m.get("sample")) for m in metrics] == [False, False, True] * 2
    assert all(m["sample"].startswith("X:") for m in metrics if m.get("sample"))
    assert job.progress == 1.0
    ckpt = checkpoint.load(job.checkpoint_path)
    assert ckpt.steps == 6 and ckpt.config.units == 16
    # The saved model is what the job trained: it samples, with its own vocabulary.
    g = job.sampler().generate("X:", 40, 1.0, seed=1, stop_at_end=False)
    assert len(g.generated) == 40
    # The zip holds the checkpoint folder and loads back.
    with zipfile.ZipFile(io.BytesIO(job.zip_bytes())) as z:
        names = z.namelist()
        root = names[0].split("/")[0]
        assert f"{root}/model.json" in names
        assert any(n.endswith(".npz") for n in names)
    folder = job.folder
    job.cleanup()
    assert not folder.exists()


def test_loss_falls_for_the_tiny_recipe():
    job = TrainingJob.plan("tiny", small_corpus(), steps=60, learning_rate=1e-2)
    job.start()
    assert job.wait(300)
    assert job.state == "done", job.error
    m = job.metrics()
    first = sum(x["train_bpc"] for x in m[:5]) / 5
    last = sum(x["train_bpc"] for x in m[-5:]) / 5
    assert last < first - 1.0, (first, last)  # a repetitive corpus is learnt fast
    job.cleanup()


def test_stop_ends_early_and_still_saves(tmp_path):
    job = micro_job(steps=100_000)
    job.start()
    wait_until(lambda: len(job.metrics()) >= 3)
    job.stop()
    assert job.wait(60)
    assert job.state == "stopped"
    done = job.metrics()[-1]["done"]
    assert 3 <= done < 100_000
    assert checkpoint.load(job.checkpoint_path).steps == done
    job.cleanup()


def test_time_limit_stops_a_job():
    job = micro_job(steps=100_000, max_seconds=0.5)
    job.start()
    assert job.wait(120)
    assert job.state == "stopped"
    assert job.checkpoint_path is not None
    job.cleanup()


def test_metrics_can_be_read_while_training():
    job = micro_job(steps=100)
    job.start()
    seen, errors = [], []

    def reader():
        try:
            while job.running:
                seen.append(len(job.metrics()))
                _ = job.progress
                time.sleep(0.001)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    job.wait(180)
    t.join()
    assert not errors
    assert seen == sorted(seen)  # never shrinks
    job.cleanup()


def test_failures_are_reported_not_raised():
    # A vocabulary without the newline the trainer separates tunes with.
    job = micro_job(steps=3)
    job.config = ModelConfig(vocab="ABCDEFG", embedding=4, units=4)
    job.start()
    assert job.wait(120)
    assert job.state == "failed"
    assert job.error
    assert job.checkpoint_path is None
    with pytest.raises(checkpoint.CheckpointError):
        job.zip_bytes()
    job.cleanup()


def test_jobs_queue_when_the_host_is_busy():
    first = micro_job(steps=100_000)
    second = micro_job(steps=2)
    first.start()
    wait_until(lambda: first.state == "running")
    second.start()
    time.sleep(0.5)
    assert second.state == "queued"
    first.stop()
    assert second.wait(120) and second.state == "done"
    # A queued job that is stopped never starts.
    first.cleanup()
    third, fourth = micro_job(steps=100_000), micro_job(steps=2)
    third.start()
    wait_until(lambda: third.state == "running")
    fourth.start()
    fourth.stop()
    assert fourth.wait(10) and fourth.state == "stopped" and not fourth.metrics()
    third.cleanup()
    second.cleanup()
    fourth.cleanup()


def test_each_job_has_its_own_private_folder():
    a, b = micro_job(), micro_job()
    assert a.folder != b.folder
    assert oct(a.folder.stat().st_mode & 0o777) == "0o700"
    assert Path(tempfile.gettempdir()) in a.folder.parents
    a.cleanup()
    b.cleanup()


def test_plan_validates_and_fits_small_uploads():
    with pytest.raises(ValueError, match="unknown recipe"):
        TrainingJob.plan("huge", small_corpus())
    with pytest.raises(ValueError, match="steps"):
        TrainingJob.plan("tiny", small_corpus(), steps=10**9)
    one = corpus.parse_abc(TUNE.format(n=1), "one")
    job = TrainingJob.plan("tiny", one, steps=5)
    assert job.val is None  # one tune: nothing to validate on
    assert job.settings.batch >= 1
    assert job.settings.eval_every == 0
    job.cleanup()
    job = TrainingJob.plan("notebook", small_corpus(), steps=5)
    assert job.config.units == 1024 and job.settings.batch == RECIPES["notebook"].batch
    job.cleanup()


def test_fine_tuning_starts_from_a_checkpoint(one_layer_dir):
    job = TrainingJob.plan("finetune", small_corpus(), steps=2, shipped=one_layer_dir)
    assert job.init is not None
    assert job.config == checkpoint.load(one_layer_dir).config
    job.start()
    assert job.wait(180) and job.state == "done", job.error
    before = load_sampler(one_layer_dir).score(TUNE.format(n=1))
    after = job.sampler().score(TUNE.format(n=1))
    assert after != before
    job.cleanup()


def test_fine_tuning_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        TrainingJob.plan("finetune", small_corpus(), steps=2, shipped=tmp_path)


# -- the worker process ---------------------------------------------------------------------
def test_training_runs_in_a_low_priority_process_that_ends_with_the_job():
    job = micro_job(steps=100_000)
    job.start()
    wait_until(lambda: job.state == "running")
    pid = job.pid
    assert pid is not None and pid != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, pid) > os.getpriority(os.PRIO_PROCESS, 0)
    if hasattr(os, "SCHED_IDLE"):  # Linux: it runs only on a core nobody else wants
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    job.stop()
    assert job.wait(60) and job.state == "stopped"
    assert job.pid is None and not Path(f"/proc/{pid}").exists()  # its memory went with it
    job.cleanup()


def test_a_worker_waits_between_steps_while_a_visitor_is_served():
    job = micro_job(steps=100_000)
    job.start()
    wait_until(lambda: len(job.metrics()) >= 3)

    def steps_in(seconds: float) -> int:
        before = len(job.metrics())
        time.sleep(seconds)
        return len(job.metrics()) - before

    assert steps_in(0.5) > 5  # a micro step takes milliseconds
    with visitor_busy(), visitor_busy():  # two visitors; nested blocks pause once
        time.sleep(0.3)  # the step in progress ends, then the worker waits
        assert steps_in(1.0) == 0
    with visitor_busy():
        pass
    assert steps_in(0.5) > 5  # and goes on when the last tune is done
    # A server that is never idle still trains its visitor's model, a step per pause.
    with visitor_busy():
        time.sleep(0.3)
        assert 1 <= steps_in(2 * MAX_PAUSE_S + 0.5) <= 3
    job.stop()  # a paused worker still stops, and saves, at once
    assert job.wait(30) and job.state == "stopped"
    job.cleanup()


def test_a_killed_worker_fails_the_job_with_a_clear_message():
    job = micro_job(steps=100_000)
    job.start()
    wait_until(lambda: job.state == "running")
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait(30)
    assert job.state == "failed"
    assert job.error == "the training process was stopped by signal 9 before it saved a model"
    assert job.checkpoint_path is None
    folder = job.folder
    job.cleanup()
    assert not folder.exists()
    # The next job trains as usual: the slot was given back.
    again = micro_job(steps=2)
    again.start()
    assert again.wait(120) and again.state == "done", again.error
    again.cleanup()


SERVER_DIES = """
import os, sys, time
from abcweb.music import corpus
from abcweb.model.lstm import ModelConfig
from abcweb.model.train import TrainSettings
from abcweb.web.training_job import TrainingJob
tunes = "\\n\\n".join(f"X:{n}\\nT:t\\nM:6/8\\nL:1/8\\nK:G\\n|:GAB dBG|ced BAG:|" for n in range(30))
train, val = corpus.parse_abc(tunes, "jigs").split()
job = TrainingJob(ModelConfig(embedding=8, units=16), train, val,
                  TrainSettings(steps=100_000, batch=4, seq_len=32, eval_every=0), name="m")
job.start()
while job.state != "running":
    time.sleep(0.05)
print(job.folder, flush=True)
os._exit(0)  # as a server killed with SIGKILL: no clean-up of its own
"""


def test_a_worker_whose_server_died_removes_its_folder_and_ends(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run([sys.executable, "-c", SERVER_DIES], env=env, capture_output=True,
                         text=True, timeout=120)
    folder = Path(out.stdout.strip())
    assert folder.parent == tmp_path, out.stderr
    wait_until(lambda: not folder.exists(), timeout=30)
    assert list(tmp_path.iterdir()) == []


def test_the_server_never_imports_tensorflow_to_train(tmp_path):
    script = SERVER_DIES.replace("print(job.folder, flush=True)\nos._exit(0)",
                                 "job.stop(); job.wait(60); job.cleanup()\n"
                                 "print(job.state, 'tensorflow' in sys.modules)")
    env = {**os.environ, "TMPDIR": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.split() == ["stopped", "False"], out.stderr
    assert list(tmp_path.iterdir()) == []
