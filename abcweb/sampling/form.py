"""Bars that come back: the model chooses between the bar it draws and earlier bars.

Real reels and jigs restate their bars all the time (a third of the bars of irish.abc's
held-out tunes equal an earlier bar of the same tune); the model's own draws almost never do
(1.3%), although at a quarter of its bar starts it rates a copy of an earlier bar above the bar
it drew (weights/README.md, "Form"). So at a bar start the model is offered the copy, and its
own probabilities choose.

At a bar start in a tune's body (right after a `|`, from the third bar on) the model writes the
next bar itself, up to and including its next `|`: the drawn bar. Beside it stand proposals:
the bars two, four and eight bars back, and the bar that opened the current part. A proposal
is the earlier bar's music in the drawn bar's frame (the drawn bar's leading marks: a line
break, `:` of `|:`, an ending's number; and its closing `:|` or `|`), so a copy keeps the
repeat signs, endings and line breaks the model chose for this place and changes only the
music. The model reads every proposal from its state at the bar start, character by character,
at the visitor's temperature and cuts: a candidate's probability is the product of the
probabilities the sampler would have drawn its characters with. One candidate is drawn in
proportion to those probabilities, with a uniform from the seed's second stream
(`default_rng([seed, 23])`). The state after the bar is the kept candidate's own end state,
so the model reads on exactly as if it had written the kept text, and every kept character
has the logits it was read or drawn with: the charts show the model's own probability for
all of them, and `copies` says which bars came from a proposal.

Guards, each measured (bench/form_variants.py; weights/README.md):
- no proposal of the bar just written twice in a row (a third would be a loop);
- after CAP copied bars in a row the model writes a bar alone (with a cap of 1 phrases never
  came back; without a cap, the guard above alone kept every tune of seeds 0-49 from looping);
- a proposal already PRUNE nats below the drawn bar stops being read (it has under e**-9.2 of
  the drawn bar's weight): it could not matter, and reading it costs time.

Where no proposal wins, each character is the model's own draw for the seed: the drawn bars
consume the seed's uniforms in order, as the plain loop does. A drawn bar that loses has used
its uniforms, so the stream holds UNIFORMS_PER_CHAR per character of the length; a row that
runs out stops there.

This path always runs the NumPy loop, on every backend: the choice at each bar start is a
little Python between reads, so per-step calls to a GPU would only be slower, and one path
keeps one tune per setting everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from abcweb.model.lstm import encode_after_start
from abcweb.sampling.loop import (
    TuneEnd,
    _masked,
    blas_threads,
    check_args,
    check_top_p,
    choose,
    uniforms,
)

SOURCES = (("2", 2), ("4", 4), ("8", 8), ("part", None))  # bars back; None: the part's opener
FIRST_BAR = 2  # proposals from the third bar of the body on
CAP = 4  # copied bars in a row before a bar the model writes alone
PRUNE = 9.2  # nats below the drawn bar's log-probability at which a proposal stops being read
MAX_BAR = 80  # a drawn bar this long without a `|` is kept as it is
UNIFORMS_PER_CHAR = 4
SELECT_STREAM = 23  # the choices' uniforms: np.random.default_rng([seed, SELECT_STREAM])

# What a bar line leaves at the start of the next bar: `:` (of |:, ::), `]`, `|`, an ending's
# number ([1, 1, 1,2), irish.abc's `!` line end, spaces and line breaks.
_LEAD = re.compile(r"(?:[\s:\]|]|!(?=\s)|\[?\d+(?:[,-]\d+)*)*")
_TAIL = re.compile(r"[\s:!]*$")
_FIELD_LINE = re.compile(r"[A-Za-z+]:")
_K_LINE = re.compile(r"(?:^|\n)K:[^\n]*\n")


@dataclass
class Bar:
    sep: str  # what the bar line before left at its start
    core: str  # its music, as written
    close: str  # `:|` or `|`, with any spaces before it
    opens: bool = False  # opens a part


def split_bar(piece: str) -> Bar:
    """One bar's text (without its closing `|`) as sep, core, close (close ends with `|`)."""
    lead = _LEAD.match(piece).end()
    rest = piece[lead:]
    tail = _TAIL.search(rest).start()
    return Bar(piece[:lead], rest[:tail], rest[tail:] + "|")


def body_bars(body: str) -> list[Bar]:
    """The complete bars of a body written so far (it ends with `|`), empty ones left out,
    each with whether it opens a part: the first bar, or one after :| || |] |: ::."""
    bars = []
    opens_next = True
    for piece in body.split("|")[:-1]:
        bar = split_bar(piece)
        if not bar.core:  # nothing but bar-line marks: `||`, `|]`, `|:|`
            opens_next = True
            continue
        ending = any(c.isdigit() for c in bar.sep)
        bar.opens = not ending and (opens_next or any(c in bar.sep for c in ":]"))
        opens_next = ":" in bar.close
        bars.append(bar)
    return bars


def proposals(bars: list[Bar], drawn: Bar) -> list[tuple[str, str, int]]:
    """(text, source, index of the copied bar) of each distinct proposal at a bar start; none
    equal to the drawn bar."""
    drawn_text = drawn.sep + drawn.core + drawn.close
    looping = bars[-1].core if len(bars) >= 2 and bars[-1].core == bars[-2].core else None
    out, seen = [], {drawn_text}
    for name, back in SOURCES:
        if back is None:
            j = max((i for i, b in enumerate(bars) if b.opens), default=0)
        else:
            j = len(bars) - back
        if j < 0:
            continue
        core = bars[j].core
        if not core or "\n" in core or core == looping:
            continue
        text = drawn.sep + core + drawn.close
        if text not in seen:
            seen.add(text)
            out.append((text, name, j))
    return out


def bar_start(prime: str, text: list[str]) -> list[Bar] | None:
    """The body's bars so far when the text ends at a bar start in a tune's body, else None."""
    whole = prime + "".join(text)
    k_lines = list(_K_LINE.finditer(whole))
    if not k_lines:
        return None
    body = whole[k_lines[-1].end():]
    line = body[body.rfind("\n") + 1:]
    if not body.endswith("|") or "\n\n" in body or _FIELD_LINE.match(line):
        return None
    return body_bars(body)


def log_probs(logits: np.ndarray, tokens: np.ndarray, temperature: float, top_k: int,
              top_p: float) -> np.ndarray:
    """log p(token) per row in the distribution the sampler draws from (tempered and cut)."""
    z = _masked(logits, temperature, top_k, top_p)
    z -= z.max(-1, keepdims=True)
    with np.errstate(divide="ignore"):
        lse = np.log(np.exp(z).sum(-1))
    return z[np.arange(len(tokens)), tokens] - lse


@dataclass
class _Reader:
    """One proposal being read from the state at a bar start."""
    slot: int
    ids: np.ndarray
    text: str
    source: str
    bar: int
    j: int = 0
    logp: float = 0.0
    logits: list = field(default_factory=list)
    state: str = "reading"  # reading, read, pruned


@dataclass
class _Contest:
    """One bar start: the bar the model draws, and the proposals read beside it."""
    bars: list  # the body's bars before it
    saved: int  # the slot holding the state (and logits) at the bar start
    saved_end: TuneEnd
    drawn: list = field(default_factory=list)
    drawn_logits: list = field(default_factory=list)
    drawn_logp: float = 0.0
    ui_end: int = -1  # the row's next uniform once the drawn bar is written
    final: str = ""  # the drawn bar ended the row's writing: "ended", "full" or "long"
    readers: list = field(default_factory=list)


@dataclass
class _Row:
    seed: int
    slot: int  # the state at the front of what the row has drawn
    u: np.ndarray
    pick: np.random.Generator
    end: TuneEnd
    ui: int = 0
    text: list = field(default_factory=list)
    logits: list = field(default_factory=list)
    copies: list = field(default_factory=list)
    # free: drawing outside a contest; bar: drawing the last contest's bar; wait: that bar is
    # written and waits for the contest before it; done.
    mode: str = "free"
    run: int = 0  # copied bars in a row
    # At most two: the first is decided first. While its proposals are read, the second
    # draws the next bar as if the first kept its drawn bar (what it does most of the time).
    contests: list = field(default_factory=list)


class _Slots:
    """The LSTM states of every row, saved bar start and proposal reader, in one array per
    state tensor, so that one batched step moves all that are reading."""

    def __init__(self, net, capacity: int):
        self.net = net
        self.state = net.zero_state(capacity)
        self.logits = np.zeros((capacity, len(net.dense_bias)), np.float32)
        self.free = list(range(capacity - 1, -1, -1))

    def take(self) -> int:
        return self.free.pop()

    def give(self, slot: int) -> None:
        self.free.append(slot)

    def copy(self, src: int, dst: int) -> None:
        for a in self.state:
            a[dst] = a[src]
        self.logits[dst] = self.logits[src]

    def step(self, slots: list[int], tokens: list[int]) -> None:
        idx = np.asarray(slots)
        st = [a[idx] for a in self.state]
        self.logits[idx] = self.net.step(np.asarray(tokens), st)
        for a, b in zip(self.state, st):
            a[idx] = b


def write(net, vocab: str, ids: np.ndarray, prime: str, seeds: list[int], length: int,
          temperature: float, top_k: int, top_p: float, stop_at_end: bool
          ) -> tuple[list[list[int]], list[np.ndarray], list[list[dict]]]:
    """Tokens, logits and copied bars of each seed's tune, all rows in one batch. Arguments
    are checked by the caller (generate_arrays).

    The text is what one bar start after another would give: draw the bar, read the
    proposals, choose, go on. To save time the next bar is drawn while the proposals are read,
    on the guess that the drawn bar stays; when a proposal wins instead, that draw is dropped
    and its uniforms are drawn again from the proposal's end, exactly as without the guess."""
    index = {c: i for i, c in enumerate(vocab)}
    n = len(seeds)
    slots = _Slots(net, n * (3 + len(SOURCES)))
    rows = [_Row(seed, slots.take(), uniforms(seed, UNIFORMS_PER_CHAR * length),
                 np.random.default_rng([seed, SELECT_STREAM]), TuneEnd(prime, 1))
            for seed in seeds]
    mains = [r.slot for r in rows]
    for t in ids[:-1]:
        slots.step(mains, [t] * n)
    slots.step(mains, [ids[-1]] * n)
    offer = temperature > 0  # greedy keeps the drawn bar whatever is offered
    if length == 0:
        for r in rows:
            r.mode = "done"

    def written(r: _Row) -> list[str]:
        """The text so far if every undecided contest keeps its drawn bar."""
        return r.text + [ch for c in r.contests for ch in c.drawn]

    def begin_bar(r: _Row, run: int) -> bool:
        """At a `|` with the row's state read through it: open a contest (True)."""
        bars = bar_start(prime, written(r)) if offer else None
        if bars is None or len(bars) < FIRST_BAR or run >= CAP:
            return False
        saved = slots.take()
        slots.copy(r.slot, saved)
        r.contests.append(_Contest(bars, saved, r.end.copy()))
        r.mode = "bar"
        return True

    def close(c: _Contest) -> None:
        for rd in c.readers:
            if rd.state != "pruned":
                slots.give(rd.slot)
        slots.give(c.saved)

    def keep_drawn(r: _Row, c: _Contest) -> None:
        r.text += c.drawn
        r.logits += c.drawn_logits
        r.run = 0

    def after_kept(r: _Row) -> None:
        """The first contest kept its drawn bar: the row goes on from the guess, if any."""
        if not r.contests:  # nothing was drawn ahead: go on from here
            if r.mode != "done" and not begin_bar(r, r.run):
                r.mode = "free"
            return
        c = r.contests[0]
        if c.final:  # the bar drawn ahead ended the tune, the length or a long bar
            keep_drawn(r, c)
            close(c)
            r.contests.clear()
            r.mode = "done" if c.final in ("ended", "full") else "free"
        elif r.mode == "wait":
            open_readers(r)

    def open_readers(r: _Row) -> None:
        """The first contest's drawn bar has its `|`: offer the proposals, or keep it."""
        c = r.contests[0]
        bar = split_bar("".join(c.drawn)[:-1])
        offers = proposals(c.bars, bar) if bar.core else []
        if not offers:
            keep_drawn(r, c)
            close(c)
            r.contests.pop(0)
            r.mode = "free"
            after_kept(r)
            return
        for text, source, j in offers:
            slot = slots.take()
            slots.copy(c.saved, slot)
            c.readers.append(_Reader(slot, np.array([index[ch] for ch in text]), text, source,
                                     j))
        # Draw the next bar ahead, as the drawn bar keeping its place would (no copies in a
        # row then); where that opens no contest, wait for the choice.
        if not begin_bar(r, 0):
            r.mode = "wait"

    def decide(r: _Row) -> None:
        c = r.contests.pop(0)
        scores = np.array([c.drawn_logp] + [rd.logp if rd.state == "read" else -np.inf
                                            for rd in c.readers])
        w = np.exp(scores - scores.max())
        pick = int(np.searchsorted(np.cumsum(w), r.pick.random() * w.sum(), side="right"))
        pick = min(pick, len(w) - 1)
        if pick == 0:
            keep_drawn(r, c)
            close(c)
            after_kept(r)
            return
        rd = c.readers[pick - 1]
        for ahead in r.contests:  # drawn on a guess that did not hold
            close(ahead)
        r.contests.clear()
        start = len(r.text)
        cut = min(len(rd.text), length - start)
        r.text += rd.text[:cut]
        r.logits += rd.logits[:cut]
        r.copies.append({"start": start, "end": start + cut, "source": rd.source,
                         "bar": rd.bar})
        r.run += 1
        r.ui = c.ui_end
        slots.copy(rd.slot, r.slot)
        r.end = c.saved_end
        for ch in rd.text:  # a proposal holds no blank line: it never ends a tune
            r.end.update([ch])
        close(c)
        if cut < len(rd.text):
            r.mode = "done"
        elif not begin_bar(r, r.run):
            r.mode, r.run = "free", 0  # a bar start passed over (after CAP copies)

    while any(r.mode != "done" for r in rows):
        step_slots, step_tokens, opened = [], [], []
        drawing = [r for r in rows if r.mode in ("free", "bar")]
        if drawing:
            idx = [r.slot for r in drawing]
            toks = choose(slots.logits[idx], np.array([r.u[r.ui] for r in drawing]),
                          temperature, top_k, top_p)
            in_bar = [i for i, r in enumerate(drawing) if r.mode == "bar"]
            lps = np.zeros(len(drawing))
            if in_bar:
                lps[in_bar] = log_probs(slots.logits[[idx[i] for i in in_bar]], toks[in_bar],
                                        temperature, top_k, top_p)
            for r, tok, lp in zip(drawing, toks.tolist(), lps.tolist()):
                r.ui += 1
                ch = vocab[tok]
                ended = bool(r.end.update([ch])[0]) and stop_at_end
                if r.mode == "free":
                    r.text.append(ch)
                    r.logits.append(slots.logits[r.slot].copy())
                    if ended or len(r.text) >= length or r.ui >= len(r.u):
                        r.mode = "done"
                        continue
                    if ch == "|":
                        opened.append(r)
                else:
                    c = r.contests[-1]
                    c.drawn.append(ch)
                    c.drawn_logits.append(slots.logits[r.slot].copy())
                    c.drawn_logp += lp
                    full = (len(r.text) + sum(len(x.drawn) for x in r.contests) >= length
                            or r.ui >= len(r.u))
                    c.final = ("ended" if ended else "full" if full
                               else "long" if len(c.drawn) >= MAX_BAR else "")
                    if c.final:
                        c.ui_end = r.ui
                        if len(r.contests) == 1:  # nothing to wait for: keep it
                            r.contests.pop()
                            keep_drawn(r, c)
                            close(c)
                            r.mode = "done" if c.final != "long" else "free"
                        else:
                            r.mode = "wait"
                        if c.final != "long":
                            continue
                    elif ch == "|":
                        c.ui_end = r.ui
                        opened.append(r)
                step_slots.append(r.slot)
                step_tokens.append(tok)
        reading = [(r.contests[0], rd) for r in rows if r.contests
                   for rd in r.contests[0].readers if rd.state == "reading"]
        if reading:
            idx = [rd.slot for _, rd in reading]
            toks = np.array([rd.ids[rd.j] for _, rd in reading])
            lps = log_probs(slots.logits[idx], toks, temperature, top_k, top_p).tolist()
            for (c, rd), tok, lp in zip(reading, toks.tolist(), lps):
                rd.logp += lp
                rd.logits.append(slots.logits[rd.slot].copy())
                rd.j += 1
                if rd.logp < c.drawn_logp - PRUNE:
                    rd.state = "pruned"
                    slots.give(rd.slot)
                    continue
                if rd.j == len(rd.ids):
                    rd.state = "read"
                step_slots.append(rd.slot)
                step_tokens.append(tok)
        if step_slots:
            slots.step(step_slots, step_tokens)
        for r in opened:
            if r.mode == "free":  # a `|` outside a contest
                if not begin_bar(r, r.run):
                    r.run = 0  # a bar start passed over (too early, or after CAP copies)
            elif len(r.contests) == 1:
                open_readers(r)
            else:  # drawn ahead: wait for the contest before it
                r.mode = "wait"
        for r in rows:
            c = r.contests[0] if r.contests else None
            if c is not None and c.readers and all(rd.state != "reading" for rd in c.readers):
                decide(r)
    tokens = [[index[ch] for ch in r.text] for r in rows]
    logits = [np.stack(r.logits) if r.logits else np.zeros((0, len(vocab)), np.float32)
              for r in rows]
    return tokens, logits, [r.copies for r in rows]


def generate_arrays(loop, prime: str, length: int, temperature: float, seeds: list[int],
                    top_k: int, stop_at_end: bool, top_p: float = 1.0
                    ) -> tuple[list[list[int]], list[np.ndarray], list[list[dict]]]:
    """Loop.generate_arrays with bar proposals: the tokens, logits and copied bars of each
    candidate (arguments checked here). Always `loop`'s NumPy network, whatever its backend."""
    length, temperature, top_k, seeds = check_args(prime, length, temperature, top_k,
                                                   len(loop.vocab), seeds, stop_at_end)
    top_p = check_top_p(top_p)
    ids = encode_after_start(loop.cfg, prime, "seed text")
    with blas_threads(loop.threads):
        return write(loop.net, loop.vocab, ids, prime, seeds, length, temperature, top_k,
                     top_p, stop_at_end)
