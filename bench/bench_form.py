"""Form: how often bars and 2-bar phrases come back, in real tunes and the model's (issue 23).

    PYTHONPATH=. .venv/bin/python bench/bench_form.py [--weights DIR] [--samples 200]
        [--irish PATH] [--bits] [--proposals TUNES] [--music] [--first-seed N] [--prime TEXT]

Rows, all measured by the same code (abcweb/evaluation/yardsticks.py, facts.read_form):
irish.abc's held-out tunes (the reference, with each share's range over random halves of them),
its train tunes, the model at the page's defaults (seed text X:, temperature 0.9, best of 8
drafts, 600 characters; seeds 0..S-1) and the model's own draw (best of 1) at 0.9 and 0.6, the
first complete tune of each, as `python -m abcweb evaluate` takes them. 95% intervals resample
whole tunes. Counts, not times: it can run beside other work.

--bits also reads the held-out tunes as `evaluate` scores them (one text, context carried)
and splits the bits per character by where the character sits: in a bar equal to an earlier
bar of its tune, in a bar's first appearance, or elsewhere (headers, bar lines).
--proposals N scores, at each bar start of N own draws, earlier bars as the next bar
(issue 23's check that better candidates are there to be had).
--music prints every yardstick of the page's tunes with bar proposals (abcweb/sampling/form.py)
and without, against the real tunes' spread: the issue's "every line of the music issue must
still hold", with how many bars came from a proposal and from where. --first-seed and --prime
measure other seeds and another seed text (the settings were chosen on seeds 0..49 and X:).
--cost prints the CPU-seconds of one page tune (600 characters, its drafts judged, abc2midi
included, one thread, checks not cached), median over seeds 1000..1019, bar proposals on and
off, for several draft counts (a time: run it on a quiet host); then where the proposals'
cost goes, in LSTM steps per tune (counts).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from abcweb import load_sampler
from abcweb.evaluation import evaluate, yardsticks
from abcweb.music import corpus, facts, tunes

LENGTH = 600  # the page's default
PAGE_TEMPERATURE = 0.9
OWN_TEMPERATURES = (0.9, 0.6)
PROPOSALS = {"bar before": 1, "two before": 2, "four before": 4, "first bar": None}
SHARES = ("bar_echo", "phrase_echo", "near_echo", "looping_tunes")


def cell(x: dict) -> str:
    lo, hi = x["ci95"]
    return f"{x['share']:.1%} ({lo:.1%}-{hi:.1%})"


def row(label: str, music: dict, real: dict) -> str:
    d = yardsticks.compare(music, real)
    over = d["over_real_most_bar_echo"]
    bars = music["bar_echo"]["of"]
    return (f"| {label} | {music['completed']}/{music['tunes']} | {bars} | "
            + " | ".join(cell(music[k]) for k in SHARES)
            + f" | {over['count']}/{over['of']} |")


def cost_rows(s, seeds: int = 20) -> None:
    from bench_drafts import cpu_now

    from abcweb.sound import abctools

    print("\n| drafts | bar proposals off: CPU-s per tune | on | on / off |\n|---|---|---|---|")
    for n in (4, 6, 8):
        costs = {}
        for form in (False, True):
            runs = []
            for seed in range(1000, 1000 + seeds):
                abctools.clear_cache()  # a real request meets new drafts: no cached checks
                t0 = cpu_now()
                s.generate("X:", LENGTH, PAGE_TEMPERATURE, seed, best_of=n, form=form)
                runs.append(cpu_now() - t0)
            costs[form] = statistics.median(runs)
        print(f"| {n} | {costs[False]:.3f} | {costs[True]:.3f} | "
              f"{costs[True] / costs[False]:.2f} |", flush=True)


def step_rows(s, seeds: int = 10) -> None:
    """Where the proposals' cost goes, in LSTM steps per page tune (8 drafts, seeds
    1000..1009): batched steps, and character steps of the drafts and of the proposals, at the
    shipped PRUNE and tighter ones. Counts, not times."""
    from abcweb.sampling import drafts, form

    counts = {}
    step = form._Slots.step

    def counted(pool, rows, tokens):
        mains = sum(r < 8 for r in rows)  # a write's first 8 slots are its drafts
        counts.update(batches=counts["batches"] + 1, drafts=counts["drafts"] + mains,
                      proposals=counts["proposals"] + len(rows) - mains)
        return step(pool, rows, tokens)

    print("\n| PRUNE (nats) | batched steps per tune | draft character steps | proposal "
          "character steps |\n|---|---|---|---|")
    shipped = form.PRUNE
    form._Slots.step = counted
    try:
        for prune in (shipped, 4.6, 2.3):
            form.PRUNE = prune
            counts.update(batches=0, drafts=0, proposals=0)
            for seed in range(1000, 1000 + seeds):
                form.generate_arrays(s, "X:", LENGTH, PAGE_TEMPERATURE,
                                     drafts.draft_seeds(seed, 8), 0, True)
            print(f"| {prune:g} | " + " | ".join(
                f"{counts[k] / seeds:,.0f}" for k in ("batches", "drafts", "proposals"))
                + " |", flush=True)
    finally:
        form._Slots.step, form.PRUNE = step, shipped


def music_rows(s, real: dict, samples: int, first_seed: int, prime: str,
               best_of: tuple[int, ...] = (8,), forms: tuple[bool, ...] = (True, False)
               ) -> None:
    comp = yardsticks.compare(real, real)
    spread = yardsticks.form_spread(real["_forms"])
    print(f"\nEvery yardstick, T {PAGE_TEMPERATURE}, seed text {prime!r}, seeds "
          f"{first_seed}..{first_seed + samples - 1}; real halves: degree JS max "
          f"{comp['real_halves_scale_degrees_js']['max']:.3f}, interval JS max "
          f"{comp['real_halves_intervals_js']['max']:.3f}, "
          + ", ".join(f"{k} {spread[k]['min']:.1%}-{spread[k]['max']:.1%}"
                      for k in SHARES[:3]))
    print(MUSIC_HEAD)
    for n in best_of:
        for form in forms:
            gens = evaluate.best_generations(s, samples, LENGTH, PAGE_TEMPERATURE, n,
                                             form=form, first_seed=first_seed, prime=prime)
            print(music_row(f"{'on' if form else 'off'}, best of {n}", gens, real), flush=True)


MUSIC_KEYS = ("valid", "bars_fit_meter", "ends_on_tonic", "parts_8_or_16_bars", "bar_echo",
              "phrase_echo", "near_echo")
MUSIC_HEAD = ("| bar proposals | " + " | ".join(MUSIC_KEYS) + " | degree JS | interval JS | "
              "looping tunes | bars from a proposal (in the kept tunes) |\n|---|"
              + "---|" * (len(MUSIC_KEYS) + 4))


def music_row(label: str, gens: list, real: dict) -> str:
    """Every yardstick of the first complete tune of each generation, as a table row."""
    firsts = [tunes.first_complete_tune(g.text) for g in gens]
    m = yardsticks.measure([t.text if t else None for t in firsts], check=True)
    d = yardsticks.compare(m, real)
    copied, by = 0, {}
    for g, t in zip(gens, firsts):
        for c in g.copies:
            if t is not None and len(g.prime) + c["end"] <= len(t.text):
                copied += 1
                by[c["source"]] = by.get(c["source"], 0) + 1
    bars = m["bar_echo"]["of"]
    return (f"| {label} | " + " | ".join(cell(m[k]) for k in MUSIC_KEYS)
            + f" | {d['scale_degrees_js']:.3f} | {d['intervals_js']:.3f} | "
            f"{m['looping_tunes']['count']}/{m['looping_tunes']['of']} | "
            f"{copied}/{bars} = {copied / max(bars, 1):.1%} {by} |")


def bits_by_bar(s, tunes: list[str]) -> dict[str, tuple[float, int]]:
    """Bits per character of the held-out text, by the kind of place each character is in."""
    text = "\n\n".join(tunes)
    start = len(s.cfg.start)
    logits = s.logits_for(s.cfg.start + text).astype(np.float64)[start:]
    logits -= logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ids = [s.vocab.index(ch) for ch in text]
    bits = -logp[np.arange(len(text) - 1), ids[1:]] / math.log(2)  # bits[j - 1]: text[j]
    kind = np.full(len(text), "other", dtype=object)
    offset = 0
    for tune in tunes:
        seen = set()
        for bar, a, b in facts.bar_spans(tune):
            kind[offset + a: offset + b] = "repeat" if bar in seen else "first"
            seen.add(bar)
        offset += len(tune) + 2
    kind = kind[1:]
    out = {k: (float(bits[kind == k].mean()), int((kind == k).sum()))
           for k in ("repeat", "first", "other")}
    out["all"] = (float(bits.mean()), len(bits))
    return out


def _bits(s, state: list, text: str) -> float:
    """Bits the model (temperature 1) spends on text read on from state; state is kept."""
    state, total = list(state), 0.0  # step() replaces the state's arrays, never writes them
    logits = state.pop()
    for ch in text:
        z = logits[0].astype(np.float64)
        z -= z.max()
        total -= (z[s.vocab.index(ch)] - math.log(np.exp(z).sum())) / math.log(2)
        logits = s.net.step(np.array([s.vocab.index(ch)]), state)
    return total


def proposals(s, tunes: int, temperature: float) -> tuple[int, dict[str, int], int]:
    """At bar starts from the third bar on of the model's own draws: how often the model
    rates a copy of an earlier bar (the bar before, two before, four before, the first bar)
    as more likely than the bar it drew. Each bar is scored with a closing '|'."""
    gens = s.generate_many("X:", LENGTH, temperature, list(range(tunes)))
    better, by, starts = 0, {k: 0 for k in PROPOSALS}, 0
    for g in gens:
        raw = g.text.split("\n\n")[0]
        spans = facts.bar_spans(raw)
        ids = [s.vocab.index(ch) for ch in s.cfg.start + raw]
        state, logits, read = s.net.zero_state(1), None, 0
        for i, (bar, a, e) in enumerate(spans):
            target = len(s.cfg.start) + a
            while read < target:
                logits = s.net.step(np.array([ids[read]]), state)
                read += 1
            if i < 2:
                continue
            here = [*state, logits]
            drawn = _bits(s, here, raw[a:e] + "|")
            wins = set()
            for name, back in PROPOSALS.items():
                j = 0 if back is None else i - back
                if j < 0 or spans[j][0] == bar:
                    continue
                ja, je = spans[j][1:]
                if _bits(s, here, raw[ja:je] + "|") < drawn:
                    wins.add(name)
            starts += 1
            better += bool(wins)
            for name in wins:
                by[name] += 1
    return better, by, starts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--irish", default=os.environ.get("ABCWEB_IRISH",
                                                      "../shared/data/irish.abc"))
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--bits", action="store_true", help="bits per character by bar kind")
    ap.add_argument("--proposals", type=int, default=0, metavar="TUNES",
                    help="how often an earlier bar beats the drawn one, over this many draws")
    ap.add_argument("--music", action="store_true",
                    help="every yardstick of the page's tunes, bar proposals on and off")
    ap.add_argument("--cost", action="store_true",
                    help="CPU-seconds per page tune, bar proposals on and off (a time)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--best-of", default="8", help="--music: drafts, comma-separated (8)")
    ap.add_argument("--form-only", action="store_true", help="--music: bar proposals on only")
    ap.add_argument("--prime", default="X:", help="seed text for --music (\\n: a newline)")
    args = ap.parse_args()
    args.prime = args.prime.replace("\\n", "\n")
    if args.cost:
        s = load_sampler(args.weights, "numpy", workers=False)
        cost_rows(s)
        step_rows(s)
        return
    irish = corpus.load_irish(args.irish)
    real = yardsticks.measure(list(irish.heldout.tunes), check=False)
    s = load_sampler(args.weights, "numpy")
    if args.music:
        music_rows(s, real, args.samples, args.first_seed, args.prime,
                   tuple(int(n) for n in args.best_of.split(",")),
                   (True,) if args.form_only else (True, False))
        return

    print(f"{s.ckpt.path}: {args.samples} seeds, seed text X:, {LENGTH} characters")
    print("| tunes | complete | bars | bars equal to an earlier bar | 2-bar phrases equal to "
          "an earlier one | bars within 2 edits of an earlier bar | tunes with "
          f"{facts.LOOP_RUN} equal bars in a row | tunes echoing more bars than any real "
          "tune |")
    print("|---|---|---|---|---|---|---|---|")
    print(row("irish.abc held-out (reference)", real, real))
    spread = yardsticks.form_spread(real["_forms"])
    print("| its random halves: range of 40 | | | " + " | ".join(
        f"{spread[k]['min']:.1%}-{spread[k]['max']:.1%}" for k in SHARES) + " | |")
    print(row("irish.abc train tunes", yardsticks.measure(list(irish.train.tunes), check=False),
              real), flush=True)
    for form in (True, False):
        kept = evaluate.best_drafts(s, args.samples, LENGTH, PAGE_TEMPERATURE, 8, form=form)
        print(row(f"abcweb, page defaults (T {PAGE_TEMPERATURE}, best of 8, bar proposals "
                  f"{'on' if form else 'off'})", yardsticks.measure(
                      [t.text if t else None for t in kept], check=False), real), flush=True)
    for t in OWN_TEMPERATURES:
        own = evaluate.own_draws(s, args.samples, LENGTH, t)
        print(row(f"abcweb, own draw (T {t}, best of 1)", yardsticks.measure(
            [k.text if k else None for k in own], check=False), real), flush=True)

    if args.bits:
        held = list(irish.heldout.tunes)
        print("\nHeld-out bits per character by place (one text, context carried):")
        print("| tunes | in a bar equal to an earlier bar | in a bar's first appearance | "
              "elsewhere | all |")
        print("|---|---|---|---|---|")
        for n in (40, len(held)):
            b = bits_by_bar(s, held[:n])
            print(f"| first {n} | " + " | ".join(
                f"{b[k][0]:.3f} ({b[k][1]:,} chars)" for k in ("repeat", "first", "other", "all"))
                + " |", flush=True)

    if args.proposals:
        better, by, starts = proposals(s, args.proposals, PAGE_TEMPERATURE)
        print(f"\nOwn draws at T {PAGE_TEMPERATURE}, seeds 0..{args.proposals - 1}: at "
              f"{better}/{starts} = {better / max(starts, 1):.1%} of bar starts from the third "
              "bar on, the model rates a copy of an earlier bar more likely than the bar it "
              "drew (" + ", ".join(f"{k}: {v}" for k, v in by.items()) + ")")


if __name__ == "__main__":
    main()
