"""The GPU check: what a lent GPU does for abcweb, beside the same host's CPU, in one command.

    python3 bench/gpu_check.py [--irish PATH] [--settings 100] [--steps 300] [--cpu-steps 30]
        [--no-install] [--allow-cpu] [--json]

Why: the design card asks for a sampler on the GPU when there is one, and `tf_loop.py` places
its loop there, but no GPU had run it, nor the training loop. A GPU host comes now and then for
a few minutes; this script uses them without thought, within about 5 minutes.

What it does:
1. Set-up. This Python needs TensorFlow with CUDA. If it has no TensorFlow, the script makes
   `.gpu-venv` (ignored by git) with `pip install '.[gpu]'` (tensorflow[and-cuda]) and runs
   itself again there. --no-install uses this Python as it is (a host with no package index).
2. Two child runs of the same measurements: one with the GPU, one with CUDA hidden
   (CUDA_VISIBLE_DEVICES=-1), so every figure is printed beside the CPU's of the same host.
   - whether TensorFlow sees a GPU, and which;
   - the `tf` backend against the NumPy sampler, text for text, over --settings settings
     (seeds, temperatures, top-k cuts): both must agree (loop.py says when they may not);
   - the time of one 600-character tune (the model's own draw) and of the best of 8 drafts,
     on `tf` and on NumPy (bar proposals are NumPy only: they are timed on the CPU run);
   - training steps of the notebook's configuration (Embedding 256, LSTM 1024, 64 x 100) and
     of the shipped one (Embedding 64, LSTM 512), precision as the trainer picks it:
     characters a second after the first steps (the compile) are left out.
   The training text is irish.abc's training tunes (--irish; never its held-out ones) or, with
   no file, 120 tunes drawn from the shipped model (--drawn-tunes): the figures are speeds,
   not losses.
3. A table, GPU against CPU (--json: the raw figures). Exit status 1 when no GPU was seen
   (unless --allow-cpu, which runs everything on the CPU: how the tests check this script) or
   when the backends disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# -- settings ---------------------------------------------------------------------------------
VENV = ROOT / ".gpu-venv"
PRIME = "X:"
AGREE_LENGTH = 200  # characters per agreement setting
TEMPERATURES = [0.5, 0.9, 1.0, 1.3]
TOP_KS = [0, 10]
TUNE_LENGTH = 600
TIMING_REPEATS = 3
WARM_STEPS = 3  # training steps left out of the speed: tracing and compiling


# -- the child: one device's figures ------------------------------------------------------------
def devices() -> dict:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
             for g in gpus]
    return {"tensorflow": tf.__version__, "gpus": names}


def agreement(settings: int) -> dict:
    from abcweb import load_sampler

    tf_s, np_s = load_sampler(backend="tf", workers=False), load_sampler(backend="numpy",
                                                                         workers=False)
    same, differ = 0, []
    for i in range(settings):
        kw = dict(prime=PRIME, length=AGREE_LENGTH, temperature=TEMPERATURES[i % 4],
                  seed=i, top_k=TOP_KS[i // 4 % 2], best_of=1, form=False)
        a, b = tf_s.generate(**kw).generated, np_s.generate(**kw).generated
        if a == b:
            same += 1
        else:
            at = next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            differ.append({"seed": i, "temperature": kw["temperature"], "top_k": kw["top_k"],
                           "first_difference": at})
    return {"settings": settings, "same": same, "differ": differ[:10]}


def timed(fn, repeats: int = TIMING_REPEATS) -> float:
    fn(0)  # warm: traces, caches, the thread pools
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        fn(r + 1)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sampling_times(backends: list[str]) -> dict:
    from abcweb import load_sampler

    out = {}
    for backend in backends:
        s = load_sampler(backend=backend, workers=False)
        out[f"{backend}: one tune"] = timed(lambda seed, s=s: s.generate(
            PRIME, TUNE_LENGTH, 0.9, seed, best_of=1, form=False))
        out[f"{backend}: best of 8"] = timed(lambda seed, s=s: s.generate(
            PRIME, TUNE_LENGTH, 0.9, seed, best_of=8, form=False))
        if backend == "numpy":
            out["numpy: best of 8, bar proposals"] = timed(lambda seed, s=s: s.generate(
                PRIME, TUNE_LENGTH, 0.9, seed, best_of=8, form=True))
    return out


def training_text(irish: str | None, drawn: int):
    from abcweb.music.corpus import Corpus, load_irish

    if irish:
        return load_irish(irish).train  # the held-out tunes stay out
    from abcweb import load_sampler

    s = load_sampler(backend="numpy", workers=False)
    tunes = [s.generate(PRIME, TUNE_LENGTH, 1.0, seed, best_of=1, form=False).text.strip()
             for seed in range(drawn)]
    # A batch of 64 rows needs 64 windows of text: repeat a small draw (speed, not learning).
    tunes *= max(1, -(-64 * 101 * 2 // sum(len(t) + 2 for t in tunes)))
    return Corpus("drawn", tunes, "tunes drawn from the shipped model")


def training_speed(corpus, steps: int) -> dict:
    from abcweb.model.lstm import preset
    from abcweb.model.train import Trainer, TrainSettings

    out = {}
    for name in ("notebook", "shipped"):
        settings = TrainSettings(steps=steps, batch=64, seq_len=100, eval_every=0,
                                 precision="auto")
        trainer = Trainer(preset(name), corpus, settings=settings)
        marks = []
        for _ in trainer.run(steps):
            marks.append(time.perf_counter())
        timed_steps = len(marks) - 1 - WARM_STEPS
        if timed_steps < 1:
            raise SystemExit(f"give at least {WARM_STEPS + 2} training steps")
        seconds = marks[-1] - marks[WARM_STEPS]
        out[f"train {name}: chars/s"] = 64 * 100 * timed_steps / seconds
        out[f"train {name}: precision"] = trainer.precision
    return out


def child(args) -> dict:
    from abcweb.cli import import_tensorflow_quietly, quiet_tensorflow

    quiet_tensorflow(False)
    import_tensorflow_quietly()
    report = {"part": args.part, **devices()}
    if args.part == "gpu" and not report["gpus"] and not args.allow_cpu:
        return report
    if args.part == "gpu":
        report["agreement"] = agreement(args.settings)
    backends = ["tf", "numpy"] if args.part == "cpu" else ["tf"]
    report["times"] = sampling_times(backends)
    steps = args.steps if args.part == "gpu" else args.cpu_steps
    report["times"] |= training_speed(training_text(args.irish, args.drawn_tunes), steps)
    return report


# -- the parent: set-up, the two runs, the table -------------------------------------------------
def python_with_tensorflow(install: bool) -> str:
    probe = [sys.executable, "-c", "import tensorflow"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return sys.executable
    venv_python = VENV / "bin" / "python"
    if venv_python.exists() and subprocess.run(
            [str(venv_python), "-c", "import tensorflow"], capture_output=True).returncode == 0:
        return str(venv_python)
    if not install:
        raise SystemExit("this Python has no TensorFlow, and --no-install was given: "
                         "pip install '.[gpu]' first")
    print(f"installing abcweb[gpu] into {VENV} (TensorFlow with CUDA: a few minutes)",
          flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    r = subprocess.run([str(venv_python), "-m", "pip", "install", "-q", f"{ROOT}[gpu]"])
    if r.returncode:
        raise SystemExit("pip could not install abcweb[gpu]: is a package index reachable? "
                         "(on a host with none, bring the wheels, then --no-install)")
    return str(venv_python)


def run_part(python: str, part: str, args) -> dict:
    cmd = [python, __file__, "--part", part, "--settings", str(args.settings), "--steps",
           str(args.steps), "--cpu-steps", str(args.cpu_steps), "--drawn-tunes",
           str(args.drawn_tunes)]
    cmd += ["--irish", args.irish] if args.irish else []
    cmd += ["--allow-cpu"] if args.allow_cpu else []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    if part == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"the {part} run failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def table(gpu: dict, cpu: dict) -> str:
    rows = [f"TensorFlow {gpu['tensorflow']}; GPU: {', '.join(gpu['gpus']) or 'none seen'}"]
    if "agreement" in gpu:
        a = gpu["agreement"]
        rows.append(f"tf backend on the GPU run vs NumPy: {a['same']}/{a['settings']} settings "
                    f"give the same text" + (f"; differ: {a['differ']}" if a["differ"] else ""))
    rows += ["", "| figure | GPU run | CPU run |", "|---|---|---|"]
    for key in dict.fromkeys([*gpu.get("times", {}), *cpu.get("times", {})]):
        g, c = gpu.get("times", {}).get(key), cpu.get("times", {}).get(key)

        def show(v, key=key):
            if v is None:
                return "-"
            if isinstance(v, str):
                return v
            return f"{v:,.0f}" if "chars/s" in key else f"{v:.3f} s"
        rows.append(f"| {key} | {show(g)} | {show(c)} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--irish", help="irish.abc: train on its training tunes")
    ap.add_argument("--settings", type=int, default=100, help="agreement settings")
    ap.add_argument("--steps", type=int, default=300, help="training steps on the GPU run")
    ap.add_argument("--cpu-steps", type=int, default=30, help="training steps on the CPU run")
    ap.add_argument("--drawn-tunes", type=int, default=120,
                    help="with no --irish: tunes drawn from the shipped model to train on")
    ap.add_argument("--no-install", action="store_true", help="use this Python as it is")
    ap.add_argument("--allow-cpu", action="store_true",
                    help="run without a GPU too (a dry run of this script)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--part", choices=["gpu", "cpu"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        print(json.dumps(child(args)))
        return 0
    t0 = time.perf_counter()
    python = python_with_tensorflow(not args.no_install)
    gpu = run_part(python, "gpu", args)
    if not gpu["gpus"] and not args.allow_cpu:
        print(f"TensorFlow {gpu['tensorflow']} sees no GPU: nothing to check "
              "(--allow-cpu runs the check on the CPU)")
        return 1
    cpu = run_part(python, "cpu", args)
    if args.json:
        print(json.dumps({"gpu": gpu, "cpu": cpu}, indent=1))
    else:
        print(table(gpu, cpu))
        print(f"\n{time.perf_counter() - t0:.0f} s in all")
    return 0 if not gpu.get("agreement", {}).get("differ") else 1


if __name__ == "__main__":
    sys.exit(main())
