"""A shared link's first visit, as a new visitor's browser sees it, through the balancer.

    PYTHONPATH=. .venv/bin/python bench/first_visit.py [--runs 3] [--no-lighthouse] [--json]

Why: people meet abcweb through a link someone shared, often on a phone. This measures what
that first visit costs and how long it takes, through the project's own balancer config.

What it does: starts one `streamlit run serve.py` replica behind deploy/haproxy.cfg, then for
each profile opens a share link (a seed no run has asked for) in a new Chromium context (an
empty cache) and records, from the moment the link is opened:
- the bytes the page downloads over HTTP (as sent on the wire: compressed when compressed)
  and the websocket's message bytes (Streamlit's protobufs, uncompressed);
- the seconds to the tune's text, to the sheet music (its image decoded), and to playable
  audio (the player's element can play: readyState >= 3);
- the same link opened by a second visitor (another new context) right after: the server's
  caches are warm, so this is what a link shared with many people costs each after the first.
Profiles: unthrottled (a desktop window), and a 4G phone (9 Mbit/s down, 85 ms round trip,
CPU slowed 2x, a 412 x 915 window), through the Chrome DevTools Protocol.
Then Lighthouse (npm's lighthouse, driving the same Chromium; installed into .lighthouse/
the first time) runs its mobile preset on another new link: performance and accessibility
scores, first and largest contentful paint.

Figures are medians over --runs links per profile. Targets (issue 24): at most 2 MB over
the balancer; 4G audio within 4 s; unthrottled text within 1.0 s and audio within 1.5 s; the
second visitor's audio as soon as the text; accessibility 1.0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
import browser_support as bs  # noqa: E402
from balancer import haproxy  # noqa: E402 - bench/ is not a package
from load_test import server  # noqa: E402

# -- settings ---------------------------------------------------------------------------------
SEED_BASE = 770_000  # a fresh seed per link: nothing cached for the first visitor
LENGTH = 600
PAGE_TIMEOUT_S = 90
PHONE = {"viewport": {"width": 412, "height": 915}, "device_scale_factor": 1.75,
         "is_mobile": True, "has_touch": True}
FOUR_G = {"offline": False, "latency": 85, "downloadThroughput": 9e6 / 8,
          "uploadThroughput": 9e6 / 8}
CPU_SLOWDOWN = 2
LIGHTHOUSE = ROOT / ".lighthouse"
LIGHTHOUSE_VERSION = "12"

# Marks the first moment each part is there, in ms since the page's time origin (the moment
# the link was opened). Runs in every frame of the page; only the top one writes marks.
MARKS = """
(() => {
  if (window.top !== window) return;
  window.__marks = {};
  const mark = (name, ok) => { if (ok && !(name in window.__marks))
    window.__marks[name] = performance.now(); };
  const poll = () => {
    const text = document.querySelector('[data-testid="abc-text"] [data-line]');
    mark('text', !!(text && text.textContent.trim()));
    const img = document.querySelector('[data-testid="stImage"] img, '
                                       + '[data-testid="stImageContainer"] img');
    mark('sheet', !!(img && img.complete && img.naturalWidth > 0));
    const audio = document.querySelector('audio');
    mark('audio', !!(audio && audio.readyState >= 3));
    if (!('audio' in window.__marks && 'sheet' in window.__marks && 'text' in window.__marks))
      setTimeout(poll, 10);
  };
  poll();
})();
"""


def link(base: str, seed: int) -> str:
    return f"{base}/?seed={seed}&length={LENGTH}&temperature=0.9&form=1"


def visit(browser, url: str, throttled: bool) -> dict:
    """One new visitor: a fresh context (no cache, no cookies) opens the link."""
    context = browser.new_context(**(PHONE if throttled else {}))
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        if throttled:
            cdp.send("Network.emulateNetworkConditions", FOUR_G)
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
        wire = {"http": 0, "websocket": 0, "requests": 0}

        def finished(e):
            wire["http"] += e.get("encodedDataLength", 0)
            wire["requests"] += 1

        def frame(e):
            wire["websocket"] += len(e["response"].get("payloadData", ""))

        cdp.on("Network.loadingFinished", finished)
        cdp.on("Network.webSocketFrameReceived", frame)
        page.add_init_script(MARKS)
        page.goto(url, wait_until="commit")
        page.wait_for_function("() => window.__marks && 'text' in window.__marks && "
                               "'sheet' in window.__marks && 'audio' in window.__marks",
                               timeout=PAGE_TIMEOUT_S * 1000, polling=50)
        marks = page.evaluate("window.__marks")
        page.wait_for_timeout(500)  # late requests (fonts, the rest of the audio) still count
        return {**{k: round(v / 1000, 3) for k, v in marks.items()},
                "http_bytes": wire["http"], "websocket_bytes": wire["websocket"],
                "requests": wire["requests"]}
    finally:
        context.close()


def profile(browser, base: str, throttled: bool, runs: int, first_seed: int) -> dict:
    first, second = [], []
    for i in range(runs):
        url = link(base, first_seed + i)
        first.append(visit(browser, url, throttled))
        second.append(visit(browser, url, throttled))
    return {"first": medians(first), "second": medians(second), "runs": first + second}


def medians(rows: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def lighthouse_cli() -> Path:
    cli = LIGHTHOUSE / "node_modules" / "lighthouse" / "cli" / "index.js"
    if not cli.exists():
        if not shutil.which("npm"):
            raise SystemExit("Lighthouse needs node and npm (apt-get install nodejs npm)")
        print("installing Lighthouse into .lighthouse/ (npm)", flush=True)
        subprocess.run(["npm", "install", "--prefix", str(LIGHTHOUSE), "--no-audit", "--no-fund",
                        f"lighthouse@{LIGHTHOUSE_VERSION}"], check=True, capture_output=True)
    return cli


def lighthouse(url: str, work: Path) -> dict:
    out = work / "lighthouse.json"
    flags = " ".join(["--headless=new", *bs.CHROMIUM_ARGS])
    r = subprocess.run(["node", str(lighthouse_cli()), url, f"--chrome-path={bs.CHROMIUM}",
                        f"--chrome-flags={flags}", "--only-categories=performance,accessibility",
                        "--output=json", f"--output-path={out}", "--quiet",
                        "--max-wait-for-load=60000"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode or not out.exists():
        return {"error": (r.stderr or r.stdout)[-800:]}
    report = json.loads(out.read_text())
    audits = report["audits"]
    failed = [k for k, a in audits.items()
              if a.get("score") == 0 and k in _accessibility_ids(report)]
    return {"performance": report["categories"]["performance"]["score"],
            "accessibility": report["categories"]["accessibility"]["score"],
            "first_contentful_paint_s": audits["first-contentful-paint"]["numericValue"] / 1000,
            "largest_contentful_paint_s":
                audits["largest-contentful-paint"]["numericValue"] / 1000,
            "accessibility_failed": failed,
            # What fails, element by element (the first few of each audit).
            "accessibility_nodes": {k: [_node(i) for i in
                                        audits[k].get("details", {}).get("items", [])[:6]]
                                    for k in failed}}


def _node(item: dict) -> str:
    node = item.get("node", {})
    why = (node.get("explanation") or "").splitlines()
    return " | ".join([node.get("snippet", "")[:100], node.get("nodeLabel", "")[:60],
                       why[1].strip() if len(why) > 1 else ""])


def _accessibility_ids(report: dict) -> set[str]:
    return {ref["id"] for ref in report["categories"]["accessibility"]["auditRefs"]}


def table(result: dict) -> str:
    rows = ["| | unthrottled | 4G phone |", "|---|---|---|"]
    u, p = result["unthrottled"], result["4g"]
    for who in ("first", "second"):
        for key, label in (("http_bytes", "HTTP bytes (wire)"),
                           ("websocket_bytes", "websocket message bytes"),
                           ("text", "tune text, s"), ("sheet", "sheet music, s"),
                           ("audio", "playable audio, s")):
            a, b = u[who][key], p[who][key]
            show = (lambda v: f"{v / 1e6:.2f} MB") if "bytes" in key else (lambda v: f"{v:.2f}")
            rows.append(f"| {who} visitor: {label} | {show(a)} | {show(b)} |")
    lh = result.get("lighthouse")
    if lh and "error" not in lh:
        rows.append("")
        rows.append(f"Lighthouse (mobile): performance {lh['performance']:.2f}, accessibility "
                    f"{lh['accessibility']:.2f}, first contentful paint "
                    f"{lh['first_contentful_paint_s']:.1f} s, largest contentful paint "
                    f"{lh['largest_contentful_paint_s']:.1f} s; accessibility audits failed: "
                    f"{', '.join(lh['accessibility_failed']) or 'none'}")
    elif lh:
        rows.append(f"\nLighthouse failed: {lh['error']}")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="links per profile (medians)")
    ap.add_argument("--no-lighthouse", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="abcweb-first-visit-") as tmp:
        work = Path(tmp)
        (work / "app" / "tmp").mkdir(parents=True)
        weights = ROOT / "weights"
        # serve.py: the page with its security headers, as the image runs it.
        with server(weights, work / "app" / "tmp", script="serve.py") as replica, \
                haproxy([replica.url.removeprefix("http://")], work / "haproxy.log") as (url, _):
            with sync_playwright() as p:
                browser = bs.launch(p)
                visit(browser, link(url, SEED_BASE - 1), False)  # warm: model, pools, fonts
                t0 = time.perf_counter()
                result = {"unthrottled": profile(browser, url, False, args.runs, SEED_BASE),
                          "4g": profile(browser, url, True, args.runs, SEED_BASE + 100)}
                browser.close()
            if not args.no_lighthouse:
                result["lighthouse"] = lighthouse(link(url, SEED_BASE + 200), work)
            result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=1) if args.json else table(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
