"""Bar-level sampling with proposals, scored by the model (issue 23, item 4): a prototype.

    PYTHONPATH=$PWD .venv/bin/python bench/form_proposals.py [--seeds 50] [--first-seed 0]
        [--variants base,T-sample-all-cap2,...] [--best-of 8] [--check 3] [--out DIR]
        [--irish ../shared/data/irish.abc] [--weights DIR]

The model writes as usual, one character at a time from the seed's own uniforms. At a bar start
(right after the model has written a `|` in the tune's body, from the third bar on) it writes
the next bar itself, up to and including its next `|`: the drawn bar. Beside it, proposals:
earlier bars of the same tune (the bar before, two, four and eight before, and the bar that
opened the current part). Each candidate's characters are read by the LSTM from the state saved
at the bar start (all candidates of one bar start in one batch), giving its log-probability
under the model (temperature 1) and its end state. One candidate is kept:
- `sample`: drawn with a uniform from a second stream of the seed, with weights
  p(candidate) ** (1 / T) (or ** 1 with --weights-at 1), normalised over the candidates;
- `argmax`: the drawn bar, unless a proposal is more probable than it.
The state after the bar is the kept candidate's end state, so the tune reads on exactly as if
the model had written the kept text (--check re-reads every kept tune from a zero state and
compares the logits). Where no proposal wins, the text is the model's own draw for the seed,
character for character (the drawn bar consumes the same uniforms as the sampler's loop).

How an earlier bar becomes a candidate. The body written so far is cut at its `|` characters;
each piece is one bar: `sep` (what the bar line left at its start: `:` of `|:`, `]`, an
ending's number, a line break and irish.abc's `!` line end, spaces), `core` (its music, as
written, spaces and all) and `close` (a `:` of `:|` and the `|`). A proposal is the earlier
bar's core in the drawn bar's frame: drawn.sep + earlier.core + drawn.close. So a copy keeps the
line breaks, repeat signs and endings the model chose for this place and changes only the
music. Duplicate texts are one candidate (the drawn bar first). Not proposed: an empty core, a
core with a line break, and (--loop-guard) the core of the last two bars when they are equal
(a third in a row is the copy-paste loop the yardstick counts). --cap N: after N copied bars in
a row the next bar start has no proposals. --prune B: a proposal whose log-probability so far
is already B*T nats below the drawn bar's (sample; weight under e**-B of the drawn bar's) or
below the drawn bar's (argmax) stops being read: it cannot matter. The drawn bar is not scored
again: its log-probability comes from the logits it was drawn with.

Best of N: draft i of seed s is row s + i * 2**32 (drafts.draft_seeds); each row is written on
its own here (a loop over rows; the library's sampler writes the 8 drafts in one batch), judged
with drafts.judge and picked with drafts.pick, as the page does. Yardsticks: yardsticks.measure
and compare against irish.abc's held-out tunes (pieces 9, 19, ...: never trained on), the real
halves' spread beside. CPU: time.process_time plus the children's (abc2midi) CPU, per tune,
rough (the host is shared).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from abcweb import load_sampler
from abcweb.evaluation import yardsticks
from abcweb.model.lstm import encode_after_start
from abcweb.music import corpus, facts, tunes
from abcweb.sampling import drafts
from abcweb.sampling.loop import TuneEnd, blas_threads, check_args, choose, uniforms

PRIME = "X:"
LENGTH = 600
TEMPERATURE = 0.9
BEST_OF = 8
SELECT_STREAM = 23  # the selection uniforms: np.random.default_rng([seed, 23])
MAX_BAR = 80  # a drawn bar longer than this (no `|` yet) is kept as it is, no competition
SOURCES = {"1": 1, "2": 2, "4": 4, "8": 8, "part": None}  # bars back; None: the part's opener
# What a bar line leaves at the start of the next bar: `:` (of |:, ::), `]`, `|`, an ending's
# number ([1, 1, 1,2), irish.abc's `!` line end, spaces and line breaks.
_LEAD = re.compile(r"(?:[\s:\]|]|!(?=\s)|\[?\d+(?:[,-]\d+)*)*")
_TAIL = re.compile(r"[\s:!]*$")
_FIELD_LINE = re.compile(r"[A-Za-z+]:")


@dataclass(frozen=True)
class Variant:
    name: str
    select: str = "sample"  # "sample" (weights p ** (1/T)) or "argmax"
    weights_at: str = "T"  # "T": p ** (1/T); "1": p ** 1
    sources: tuple[str, ...] = ("1", "2", "4", "8", "part")
    cap: int | None = 2  # copied bars in a row before a bar start without proposals
    loop_guard: bool = True
    prune: float = 9.2  # nats (times T): e**-9.2 = 1e-4 of the drawn bar's weight
    first: int = 2  # proposals from this many bars on (2: from the third bar)
    max_use: int | None = None  # no proposal of a core the tune already has this many times


VARIANTS = {v.name: v for v in [
    Variant("T-sample-all-cap2"),
    Variant("1-sample-all-cap2", weights_at="1"),
    Variant("argmax-all-cap2", select="argmax"),
    Variant("T-sample-all-nocap", cap=None, loop_guard=False),
    Variant("T-sample-all-cap1", cap=1),
    Variant("T-sample-all-cap4", cap=4),
    Variant("T-sample-124first-cap2", sources=("1", "2", "4", "part")),
    Variant("T-sample-48part-cap2", sources=("4", "8", "part")),
    Variant("T-sample-1-cap2", sources=("1",)),
    Variant("T-sample-all-cap2-noprune", prune=math.inf),
    Variant("T-sample-all-cap2-prune1pc", prune=4.6),
    Variant("T-sample-all-cap2-use3", max_use=3),
    Variant("T-sample-248part-cap4", sources=("2", "4", "8", "part"), cap=4),
    Variant("T-sample-248part-cap2-prune1pc", sources=("2", "4", "8", "part"), prune=4.6),
]}


@dataclass
class Bar:
    sep: str
    core: str
    close: str
    opens: bool = False  # opens a part


@dataclass
class Row:
    seed: int
    text: str  # the generated text (after the prime)
    logits: np.ndarray  # [len(text), vocab] logits before each kept character (temperature 1)
    copies: list[dict] = field(default_factory=list)  # {start, end, source, bar}: copied bars
    contests: int = 0  # bar starts with at least one proposal read
    proposal_chars: int = 0  # characters read for proposals (LSTM steps, batched per bar)
    batches: int = 0  # LSTM batch steps for proposals


def split_bar(piece: str) -> Bar:
    """One bar's text (without its closing `|`) as sep, core, close (close ends with `|`)."""
    lead = _LEAD.match(piece).end()
    rest = piece[lead:]
    tail = _TAIL.search(rest).start()
    return Bar(piece[:lead], rest[:tail], rest[tail:] + "|")


def body_bars(body: str) -> list[Bar]:
    """The complete bars of the body written so far (it ends with `|`), empty ones left out,
    each with whether it opens a part: the tune's first bar, or after :| || |] |: ::."""
    pieces = body.split("|")[:-1]
    bars = []
    opens_next = True
    for piece in pieces:
        bar = split_bar(piece)
        if not bar.core:  # nothing but bar-line marks: `||`, `|]`, `|:|`
            opens_next = True
            continue
        ending = any(c.isdigit() for c in bar.sep)
        bar.opens = not ending and (opens_next or any(c in bar.sep for c in ":]"))
        opens_next = ":" in bar.close
        bars.append(bar)
    return bars


def proposals(bars: list[Bar], drawn: Bar, v: Variant) -> list[tuple[str, str, int]]:
    """(text, source, index of the copied bar) of each proposal at this bar start."""
    out = []
    loop = bars[-1].core if len(bars) >= 2 and bars[-1].core == bars[-2].core else None
    for name in v.sources:
        back = SOURCES[name]
        if back is None:
            j = max((i for i, b in enumerate(bars) if b.opens), default=0)
        else:
            j = len(bars) - back
        if j < 0:
            continue
        core = bars[j].core
        if not core or "\n" in core or (v.loop_guard and core == loop):
            continue
        if v.max_use is not None and sum(b.core == core for b in bars) >= v.max_use:
            continue
        out.append((drawn.sep + core + drawn.close, name, j))
    return out


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def read_candidates(net, state, logits, cands: list[np.ndarray], floor: float):
    """Read each candidate's ids from (state, logits before its first character), all in one
    batch. Returns per candidate (log-probability, logits before each char, end state, logits
    after) or None where its log-probability fell below floor (it stopped being read)."""
    k = len(cands)
    out: list = [None] * k
    rows = np.arange(k)
    st = [np.repeat(a, k, 0) for a in state]
    lg = np.repeat(logits[None], k, 0)
    logp = np.zeros(k)
    seen = [[] for _ in range(k)]
    steps = batches = j = 0
    while rows.size:
        toks = np.array([cands[r][j] for r in rows])
        logp[rows] += log_softmax(lg)[np.arange(rows.size), toks]
        for i, r in enumerate(rows):
            seen[r].append(lg[i])
        live = logp[rows] >= floor
        rows, toks, lg = rows[live], toks[live], lg[live]
        st = [a[live] for a in st]
        if not rows.size:
            break
        lg = net.step(toks, st)
        steps += rows.size
        batches += 1
        j += 1
        done = np.array([len(cands[r]) == j for r in rows])
        for i in np.flatnonzero(done):
            r = rows[i]
            out[r] = (logp[r], np.stack(seen[r]), [a[i:i + 1] for a in st], lg[i])
        rows, lg = rows[~done], lg[~done]
        st = [a[~done] for a in st]
    return out, steps, batches


def _end_copy(end: TuneEnd) -> TuneEnd:
    c = TuneEnd.__new__(TuneEnd)
    c.seen_k, c.line, c.prev_newline = end.seen_k.copy(), list(end.line), end.prev_newline.copy()
    return c


def generate_row(s, prime: str, length: int, temperature: float, seed: int,
                 v: Variant | None) -> Row:
    """One row: the model's own draw for seed with proposals at bar starts (v None: none)."""
    net, vocab = s.net, s.vocab
    index = {ch: i for i, ch in enumerate(vocab)}
    ids = encode_after_start(s.cfg, prime, "seed text")
    state = net.zero_state(1)
    for t in ids[:-1]:
        net.step(np.array([t]), state)
    logits = net.step(np.array([ids[-1]]), state)[0]
    u = uniforms(seed, 4 * length)  # the sampler's stream for the seed, and more of it
    ui = 0
    pick_rng = np.random.default_rng([seed, SELECT_STREAM])
    end = TuneEnd(prime, 1)
    text: list[str] = []
    kept_logits: list[np.ndarray] = []
    row = Row(seed, "", np.zeros((0, len(vocab)), np.float32))
    body_at = None  # where the body starts in prime + text
    run = 0  # copied bars in a row
    whole = prime

    def body_start(full: str) -> int | None:
        m = re.search(r"(?:^|\n)K:[^\n]*\n", full)
        return m.end() if m else None

    while len(text) < length and ui < len(u):
        whole_len = len(prime) + len(text)
        at_bar = (v is not None and text and text[-1] == "|" and (v.cap is None or run < v.cap))
        if at_bar:
            whole = prime + "".join(text)
            if body_at is None:
                body_at = body_start(whole)
            line = whole[whole.rfind("\n") + 1:]
            at_bar = body_at is not None and body_at <= whole_len - 1 \
                and not _FIELD_LINE.match(line)
        bars = body_bars(whole[body_at:]) if at_bar else []
        if not at_bar or len(bars) < v.first:
            tok = int(choose(logits[None], u[ui:ui + 1], temperature, 0)[0])
            ui += 1
            text.append(vocab[tok])
            kept_logits.append(logits)
            if end.update([vocab[tok]])[0]:
                break
            logits = net.step(np.array([tok]), state)[0]
            if len(text) > 1 and text[-2] == "|":
                run = 0  # a bar start passed over (cap, too early): the model writes on
            continue
        # A bar start: the model draws its own bar, up to and including its next `|`.
        st, lg, e2 = list(state), logits, _end_copy(end)
        drawn, drawn_logits, logp, ended = [], [], 0.0, False
        while len(text) + len(drawn) < length and ui < len(u) and len(drawn) < MAX_BAR:
            tok = int(choose(lg[None], u[ui:ui + 1], temperature, 0)[0])
            ui += 1
            logp += log_softmax(lg)[tok]
            drawn.append(vocab[tok])
            drawn_logits.append(lg)
            ended = bool(e2.update([vocab[tok]])[0])
            if ended:
                break
            lg = net.step(np.array([tok]), st)
            lg = lg[0]
            if drawn[-1] == "|":
                break
        drawn_text = "".join(drawn)
        bar = split_bar(drawn_text[:-1]) if drawn_text.endswith("|") and not ended else None
        props = proposals(bars, bar, v) if bar is not None and bar.core else []
        props = [p for i, p in enumerate(props) if p[0] != drawn_text
                 and all(p[0] != q[0] for q in props[:i])]
        chosen = None
        if props:
            row.contests += 1
            floor = logp - (0.0 if v.select == "argmax" else v.prune * temperature)
            read, steps, batches = read_candidates(
                net, state, logits, [np.array([index[c] for c in p[0]]) for p in props], floor)
            row.proposal_chars += steps
            row.batches += batches
            scores = [logp] + [r[0] if r is not None else -math.inf for r in read]
            if v.select == "argmax":
                best = int(np.argmax(scores))  # the drawn bar wins ties (it is first)
            else:
                power = 1.0 / temperature if v.weights_at == "T" and temperature > 0 else 1.0
                w = np.exp((np.array(scores) - max(scores)) * power)
                best = int(np.searchsorted(np.cumsum(w), pick_rng.random() * w.sum(),
                                           side="right"))
                best = min(best, len(w) - 1)
            if best > 0:
                chosen = props[best - 1], read[best - 1]
        if chosen is None:  # the drawn bar stays: exactly the sampler's own text
            text += drawn
            kept_logits += drawn_logits
            state, logits, end = st, lg, e2
            run = 0
            if ended:
                break
            continue
        (ptext, source, j), (_, plogits, pstate, plg) = chosen
        start = len(text)
        cut = min(len(ptext), length - len(text))
        text += list(ptext[:cut])
        kept_logits += list(plogits[:cut])
        row.copies.append({"start": start, "end": start + cut, "source": source, "bar": j})
        run += 1
        if cut < len(ptext):
            break
        state, logits = pstate, plg
        for ch in ptext:  # no blank line in a proposal: it cannot end the tune
            end.update([ch])
    row.text = "".join(text)
    row.logits = np.stack(kept_logits) if kept_logits else row.logits
    return row


def reread_error(s, prime: str, row: Row) -> float:
    """Largest difference between the logits kept with the tune and those the model gives
    reading the kept text from a zero state: 0 (float rounding) if the state was handled
    right."""
    ids = encode_after_start(s.cfg, prime + row.text)
    state = s.net.zero_state(1)
    n0 = len(ids) - len(row.text)
    worst = 0.0
    for i, t in enumerate(ids[:-1]):
        lg = s.net.step(np.array([t]), state)[0]
        if i + 1 >= n0:
            worst = max(worst, float(np.abs(lg - row.logits[i + 1 - n0]).max()))
    return worst


def cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def best_of(s, seed: int, v: Variant | None, n: int, length: int, temperature: float):
    """The page's tune for seed: n drafts (rows) judged and picked. Returns (kept row, all
    rows, judged drafts, sampling CPU, judging CPU)."""
    t0 = cpu()
    seeds = drafts.draft_seeds(seed, n)
    with blas_threads(1):
        rows = [generate_row(s, PRIME, length, temperature, sd, v) for sd in seeds]
    t1 = cpu()
    judged = [drafts.judge(sd, PRIME + r.text, s.melody_prior) for sd, r in zip(seeds, rows)]
    i = drafts.pick(judged)
    t2 = cpu()
    return rows[i], rows, judged, t1 - t0, t2 - t1


def baseline(s, seed: int, n: int, length: int, temperature: float):
    """The current sampler's best of n (one batch), as Sampler.generate runs it."""
    t0 = cpu()
    seeds = drafts.draft_seeds(seed, n)
    tokens, _ = s.generate_arrays(PRIME, length, temperature, seeds, 0, True)
    texts = ["".join(s.vocab[t] for t in toks) for toks in tokens]
    t1 = cpu()
    judged = [drafts.judge(sd, PRIME + t, s.melody_prior) for sd, t in zip(seeds, texts)]
    i = drafts.pick(judged)
    t2 = cpu()
    return texts[i], texts[0], t1 - t0, t2 - t1


def first_tune(text: str) -> str | None:
    t = tunes.first_complete_tune(PRIME + text)
    return t.text if t else None


def summarise(name: str, kept: list[str | None], real: dict, extra: dict) -> dict:
    m = yardsticks.measure(kept, check=True)
    d = yardsticks.compare(m, real)
    out = {"variant": name, **yardsticks.public(m),
           "scale_degrees_js": d["scale_degrees_js"], "intervals_js": d["intervals_js"],
           "over_real_most_bar_echo": d["over_real_most_bar_echo"], **extra}
    return out


def fmt(r: dict) -> str:
    def pc(k):
        return f"{r[k]['share']:.1%}"
    return (f"| {r['variant']} | {pc('valid')} | {pc('bars_fit_meter')} | {pc('ends_on_tonic')} "
            f"| {pc('parts_8_or_16_bars')} | {r['scale_degrees_js']:.3f} | "
            f"{r['intervals_js']:.3f} | {pc('bar_echo')} | {pc('phrase_echo')} | "
            f"{pc('near_echo')} | {r['looping_tunes']['count']} | "
            f"{r['over_real_most_bar_echo']['count']} | {r.get('copied_bars', '-')} | "
            f"{r['cpu_sample']:.3f} + {r['cpu_judge']:.3f} |")


HEAD = ("| variant | valid | bars fit meter | ends on tonic | parts 8/16 | degree JS | "
        "interval JS | bar echo | phrase echo | near echo | looping tunes | over real max "
        "| bars copied | CPU s/tune (sample + judge) |\n|" + "---|" * 14)


def run_variant(s, name: str, seeds: list[int], real: dict, n: int, out: Path) -> list[dict]:
    kept, own, copied, bars_all, cs, cj = [], [], 0, 0, 0.0, 0.0
    copies_by: dict[str, int] = {}
    contests = pchars = batches = 0
    records = []
    for seed in seeds:
        if name == "base":
            text, own_text, a, b = baseline(s, seed, n, LENGTH, TEMPERATURE)
            kept.append(first_tune(text))
            own.append(first_tune(own_text))
            records.append({"seed": seed, "text": text})
        else:
            v = VARIANTS[name] if name != "none" else None
            row, rows, judged, a, b = best_of(s, seed, v, n, LENGTH, TEMPERATURE)
            kept.append(first_tune(row.text))
            own.append(first_tune(rows[0].text))
            tune = kept[-1] or ""
            nb = len(facts.bar_spans(tune))
            bars_all += nb
            inside = [c for c in row.copies if len(PRIME) + c["end"] <= len(tune)]
            copied += len(inside)
            for c in inside:
                copies_by[c["source"]] = copies_by.get(c["source"], 0) + 1
            for r in rows:
                contests += r.contests
                pchars += r.proposal_chars
                batches += r.batches
            records.append({"seed": seed, "text": row.text, "draft": row.seed,
                            "copies": row.copies})
        cs += a
        cj += b
    k = len(seeds)
    extra = {"cpu_sample": cs / k, "cpu_judge": cj / k, "seeds": [seeds[0], seeds[-1]]}
    if name != "base":
        extra.update(copied_bars=f"{copied}/{bars_all} = {copied / max(bars_all, 1):.1%}",
                     copies_by_source=copies_by,
                     contests_per_row=contests / (k * n),
                     proposal_steps_per_row=pchars / (k * n),
                     proposal_batches_per_row=batches / (k * n))
    best = summarise(f"{name} (best of {n})", kept, real, extra)
    one = summarise(f"{name} (draft 0 alone)", own, real, {"cpu_sample": 0.0, "cpu_judge": 0.0})
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}-{seeds[0]}-{seeds[-1]}.json").write_text(json.dumps(
        {"best": best, "own": one, "tunes": records}, indent=1, default=float))
    return [best, one]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--irish", default=os.environ.get("ABCWEB_IRISH", "../shared/data/irish.abc"))
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--best-of", type=int, default=BEST_OF)
    ap.add_argument("--variants", default="base,T-sample-all-cap2",
                    help="comma-separated: base (the current sampler), none (this loop, no "
                         "proposals), " + ", ".join(VARIANTS))
    ap.add_argument("--check", type=int, default=0, metavar="SEEDS",
                    help="check the loop on this many seeds (own draw equality, state) and stop")
    ap.add_argument("--out", default="/tmp/form_proposals")
    args = ap.parse_args()
    s = load_sampler(args.weights, "numpy", workers=False)
    check_args(PRIME, LENGTH, TEMPERATURE, 0, len(s.vocab), [0])

    if args.check:
        for seed in range(args.check):
            own = s.generate(PRIME, LENGTH, TEMPERATURE, seed, best_of=1).generated
            none = generate_row(s, PRIME, LENGTH, TEMPERATURE, seed, None)
            print(f"seed {seed}: no proposals equals the sampler's own draw: {none.text == own}; "
                  f"re-read error {reread_error(s, PRIME, none):.2e}")
            for name in args.variants.split(","):
                if name in VARIANTS:
                    r = generate_row(s, PRIME, LENGTH, TEMPERATURE, seed, VARIANTS[name])
                    again = generate_row(s, PRIME, LENGTH, TEMPERATURE, seed, VARIANTS[name])
                    print(f"  {name}: {len(r.copies)} copied bars, same twice: "
                          f"{again.text == r.text}, re-read error "
                          f"{reread_error(s, PRIME, r):.2e}, logits rows {len(r.logits)} "
                          f"= chars {len(r.text)}")
                    if seed == 0:
                        print(PRIME + r.text)
                        print([(c["source"], r.text[c["start"]:c["end"]]) for c in r.copies])
        return

    irish = corpus.load_irish(args.irish)
    real = yardsticks.measure(list(irish.heldout.tunes), check=False)
    spread = yardsticks.form_spread(real["_forms"])
    comp = yardsticks.compare(real, real)
    print(f"real halves: degree JS max {comp['real_halves_scale_degrees_js']['max']:.3f}, "
          f"interval JS max {comp['real_halves_intervals_js']['max']:.3f}; "
          + ", ".join(f"{k} {spread[k]['min']:.1%}-{spread[k]['max']:.1%}"
                      for k in ("bar_echo", "phrase_echo", "near_echo")))
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(HEAD, flush=True)
    for name in args.variants.split(","):
        for r in run_variant(s, name, seeds, real, args.best_of, Path(args.out)):
            print(fmt(r), flush=True)
            if "copies_by_source" in r:
                print(f"|  | copies by source {r['copies_by_source']}, contests/row "
                      f"{r['contests_per_row']:.1f}, proposal steps/row "
                      f"{r['proposal_steps_per_row']:.0f} in {r['proposal_batches_per_row']:.0f}"
                      " batch steps |", flush=True)


if __name__ == "__main__":
    main()
