"""What one new tune costs the page, in CPU-seconds, and where they go.

    PYTHONPATH=. .venv/bin/python bench/tune_cost.py [--tunes 20] [--length 600]
    PYTHONPATH=. .venv/bin/py-spy record --subprocesses --idle -r 200 --format raw \\
        -o /tmp/tune.txt -- .venv/bin/python bench/tune_cost.py --tunes 40

Runs the Generate view through Streamlit's AppTest in this process (no browser, no
websocket), first once to warm every cache and pool, then once per new seed. A new seed is
what a visitor's slider move or "New" button asks for: a new tune, its check, sheet music,
audio and charts. CPU is counted for this process (every thread), the tools it ran
(abc2midi, abcm2ps, fluidsynth: reaped children) and the sampling workers (live children, read
from /proc). The Streamlit server's own cost of sending the page over a websocket is not in
these figures: bench/visitors.py measures a real server.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
TICK = os.sysconf("SC_CLK_TCK")


def live_children_cpu() -> float:
    from abcweb.sampling import sample_worker

    total = 0.0
    for pid in sample_worker.pool().pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    return total


def cpu_now() -> dict[str, float]:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"server": time.process_time(), "tools": kids.ru_utime + kids.ru_stime,
            "samplers": live_children_cpu()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tunes", type=int, default=20)
    ap.add_argument("--length", type=int, default=600)
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--no-form", action="store_true",
                    help="bar proposals off (form=0), as in links made before them")
    args = ap.parse_args()
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["length"] = str(args.length)
    at.query_params["seed"] = str(args.first_seed - 1)
    # A link with settings but no form= is an old one and reads as form=0; say it outright.
    at.query_params["form"] = "0" if args.no_form else "1"
    at.run()  # warm: model, pools, fonts, header choices
    assert not at.exception, at.exception
    rows = []
    for i in range(args.tunes):
        before, t0 = cpu_now(), time.perf_counter()
        at.number_input(key="seed").set_value(args.first_seed + i).run()
        wall = time.perf_counter() - t0
        after = cpu_now()
        assert not at.exception, at.exception
        assert at.session_state["_rendered"]["audio"] > 0
        rows.append({k: after[k] - before[k] for k in after} | {"wall": wall})
    print(f"{args.tunes} new tunes of up to {args.length} characters (medians, seconds):")
    for k in ("server", "tools", "samplers", "wall"):
        print(f"  {k:9s} {statistics.median(r[k] for r in rows):.3f}")
    total = [r["server"] + r["tools"] + r["samplers"] for r in rows]
    print(f"  CPU in all {statistics.median(total):.3f} (mean {statistics.mean(total):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
