"""Inside the LSTM: how fast its states are read, and how fast its page draws.

    PYTHONPATH=. .venv/bin/python bench/bench_inside.py [--tunes 3] [--no-browser]

1. `lstm_states` on a 600-character tune of the shipped model (every unit's c, h and gates at
   every character), median of 5 (issue 12: under 100 ms at 512 units).
2. In Chromium against `streamlit run`: a visitor opens a share link, the Generate view draws,
   then the visitor clicks "Inside the LSTM"; the time from the click until the coloured text
   and both charts are in the page (issue 12: under a second), for --tunes seeds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import browser_support as bs  # noqa: E402

from abcweb import load_sampler
from abcweb.inside import lstm_states  # noqa: E402
from abcweb.model import checkpoint

DRAWN = """() => document.querySelector('[data-testid=abcweb-cells-text]') &&
  document.querySelectorAll('[data-testid=stVegaLiteChart] svg .mark-line, '
                            + '[data-testid=stVegaLiteChart] svg .mark-symbol').length >= 2"""


def states_speed() -> None:
    ck = checkpoint.load(None)
    text = load_sampler(workers=False).generate("X:", 600, 1.0, 3, best_of=1,
                                                stop_at_end=False).text
    lstm_states(ck, text[:50])  # warm
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        lstm_states(ck, text)
        times.append(time.perf_counter() - t0)
    print(f"lstm_states: {len(text)} characters at {ck.config.units} units x "
          f"{ck.config.layers} layer(s) in {statistics.median(times) * 1000:.0f} ms "
          "(median of 5; target < 100 ms)")


def page_speed(tunes: int) -> None:
    from playwright.sync_api import sync_playwright

    model = checkpoint.model_id()
    with sync_playwright() as p, bs.app_server() as (url, _):
        browser = bs.launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        for seed in range(5, 5 + tunes):
            page.goto(f"{url}/?seed={seed}&model={model}")
            page.wait_for_selector('[data-testid="stVegaLiteChart"] svg', timeout=60_000)
            page.wait_for_timeout(500)
            t0 = time.perf_counter()
            page.get_by_role("link", name="Inside the LSTM").click()
            page.wait_for_function(DRAWN, timeout=60_000, polling=20)
            print(f"seed {seed}: Inside the LSTM drawn {time.perf_counter() - t0:.2f} s after "
                  "the click (target < 1 s)")
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tunes", type=int, default=3)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    states_speed()
    if not args.no_browser:
        page_speed(args.tunes)


if __name__ == "__main__":
    main()
