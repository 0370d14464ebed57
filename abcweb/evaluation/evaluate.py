"""The shipped model's quality figures (weights/README.md), measured on the raw model: no
rejection sampling, no retries.

- held-out bits per character: irish.abc pieces 9, 19, 29, ... joined by blank lines and read
  as one text from a zero state (Sampler.score);
- validation bits per character on the model's own validation split;
- valid tunes: SAMPLES tunes at TEMPERATURE, seeds 0.., prime `X:`, up to LENGTH characters,
  the first complete tune of each checked with `abc2midi -c` (a tune that never completes
  counts as a failure); the same check on the real held-out tunes beside it;
- bars whose duration matches the meter, generated versus real;
- the musical yardsticks (yardsticks.py) of the same generated tunes beside irish.abc's
  held-out tunes: valid, bars that fit the meter, ending on the tonic, parts of 8 or 16 bars,
  out-of-key notes, and Jensen-Shannon distances of scale-degree and interval histograms
  (generated against real, and real halves against each other), with 95% intervals, and
  the form: bars and 2-bar phrases that come back (with the real halves' range);
- the sampler's speed: 600 characters, median of several runs.
"""

from __future__ import annotations

import statistics
import time

from abcweb.evaluation import yardsticks
from abcweb.music import corpus, facts, tunes
from abcweb.sampling import drafts
from abcweb.sampling.sampler import FORM, Sampler, load_sampler
from abcweb.sound import abctools


def check_tunes(texts: list[str | None]) -> dict:
    valid = bars = bad = 0
    for text in texts:
        if text is None:
            continue
        r = abctools.check(text)
        valid += r.valid
        bars += r.bars
        bad += r.bad_bars
    return {"tunes": len(texts), "valid": valid, "valid_share": valid / max(len(texts), 1),
            "bars": bars, "bar_match_share": (bars - bad) / bars if bars else 0.0}


def sampler_speed(s: Sampler, length: int = 600, runs: int = 7, best_of: int = 1,
                  form: bool = False) -> float:
    times = []
    for seed in range(runs):
        t = time.perf_counter()
        s.generate("X:", length, 1.0, seed=seed, stop_at_end=False, best_of=best_of,
                   form=form)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def validation_texts(s: Sampler, irish_path: str) -> dict[str, str]:
    """The validation splits the shipped recipe trains beside: the whole mix's, and
    irish.abc's own (the 10% hash split of its train pieces, not the held-out tunes)."""
    if s.info.get("data", {}).get("recipe") != "shipped":
        return {}
    from abcweb.model.train import shipped_data
    _, _, val, _, irish_val = shipped_data(irish_path, validate=False)
    return {"val_bpc": val.text(), "val_irish_bpc": irish_val.text()}


def notebook_style(s: Sampler, heldout: list[str], n: int = 10) -> dict:
    """Prime with the headers of held-out irish.abc tunes (`K:D Major` style) and count the
    generated body lines that end the notebook's way, with `!`."""
    ends = total = valid = 0
    primes = [t[: t.index("\n", t.index("\nK:") + 1) + 1] for t in heldout[:n] if "\nK:" in t]
    for i, prime in enumerate(primes):
        g = s.generate(prime, 600, 1.0, seed=i, best_of=1, form=False)  # its own reading
        body = [ln for ln in g.generated.split("\n\n")[0].split("\n") if ln.strip()]
        total += len(body)
        ends += sum(ln.rstrip().endswith("!") for ln in body)
        tune = tunes.first_complete_tune(g.text)
        valid += bool(tune and abctools.check(tune.text).valid)
    return {"tunes": len(primes), "lines": total, "bang_line_share": ends / max(total, 1),
            "valid_share": valid / max(len(primes), 1)}


def own_draws(s: Sampler, samples: int, length: int, temperature: float, top_p: float = 1.0,
              first_seed: int = 0) -> list[tunes.Tune | None]:
    """The first complete tune of the model's own draw for seeds first_seed.. (samples of
    them; None where none completes)."""
    gens = []
    end = first_seed + samples
    for start in range(first_seed, end, 20):  # batches of 20 candidates
        seeds = list(range(start, min(start + 20, end)))
        gens += s.generate_many("X:", length, temperature, seeds, top_p=top_p)
    return [tunes.first_complete_tune(g.text) for g in gens]


def best_drafts(s: Sampler, samples: int, length: int, temperature: float, best_of: int,
                top_p: float = 1.0, form: bool = FORM, first_seed: int = 0,
                prime: str = "X:") -> list[tunes.Tune | None]:
    """The same seeds' tunes as visitors get them: the best of `best_of` drafts, with bar
    proposals unless form=False."""
    return [tunes.first_complete_tune(g.text) for g in best_generations(
        s, samples, length, temperature, best_of, top_p, form, first_seed, prime)]


def best_generations(s: Sampler, samples: int, length: int, temperature: float, best_of: int,
                     top_p: float = 1.0, form: bool = FORM, first_seed: int = 0,
                     prime: str = "X:") -> list:
    return [s.generate(prime, length, temperature, seed, best_of=best_of, top_p=top_p,
                       form=form)
            for seed in range(first_seed, first_seed + samples)]


def evaluate(weights: str | None, irish_path: str, samples: int = 200, length: int = 800,
             temperature: float = 1.0, best_of: int = drafts.BEST_OF, top_p: float = 1.0,
             form: bool = FORM) -> dict:
    s = load_sampler(weights, backend="numpy")
    irish = corpus.load_irish(irish_path)
    t0 = time.perf_counter()
    report: dict = {"weights": str(s.ckpt.path), "steps": s.ckpt.steps,
                    "pretrained_steps": s.info.get("pretrained", {}).get("steps", 0),
                    "parameters": s.cfg.parameter_count(), "config": {
                        "embedding": s.cfg.embedding, "units": s.cfg.units,
                        "layers": s.cfg.layers, "vocab": len(s.vocab)}}
    report["heldout_bpc"] = s.score(irish.heldout_text)
    report["heldout_chars"] = len(irish.heldout_text)
    report["val_bpc"] = s.info.get("val_bpc")
    report["val_irish_bpc"] = None
    for key, text in validation_texts(s, irish_path).items():
        report[key] = s.score(text)

    firsts = own_draws(s, samples, length, temperature, top_p)
    report["generated"] = check_tunes([t.text if t else None for t in firsts])
    report["generated"]["completed"] = sum(t is not None for t in firsts)
    report["generated"]["settings"] = {"samples": samples, "temperature": temperature,
                                       "top_p": top_p,
                                       "length": length, "prime": "X:", "seeds": f"0..{samples-1}"}
    report["real_heldout"] = check_tunes(list(irish.heldout.tunes))
    music_gen = yardsticks.measure([t.text if t else None for t in firsts])
    music_real = yardsticks.measure(list(irish.heldout.tunes))
    report["music"] = {"generated": yardsticks.public(music_gen),
                       "real_heldout": yardsticks.public(music_real),
                       "distances": yardsticks.compare(music_gen, music_real)}
    if best_of > 1:  # what a visitor gets by default: the best of the drafts
        kept = best_drafts(s, samples, length, temperature, best_of, top_p, form)
        music_best = yardsticks.measure([t.text if t else None for t in kept])
        report["music"].update(best_of=best_of, form=form, best=yardsticks.public(music_best),
                               best_distances=yardsticks.compare(music_best, music_real))
    report["notebook_style"] = notebook_style(s, irish.heldout.tunes)
    report["sample_600_seconds"] = sampler_speed(s)
    if best_of > 1:
        report["best_600_seconds"] = sampler_speed(s, best_of=best_of, form=form)
    report["evaluate_seconds"] = time.perf_counter() - t0
    return report


def format_report(r: dict) -> str:
    g, real = r["generated"], r["real_heldout"]
    lines = [
        f"weights            {r['weights']} ({r['parameters']:,} parameters, "
        + (f"{r['pretrained_steps']} + " if r.get("pretrained_steps") else "")
        + f"{r['steps']} steps)",
        f"held-out bpc       {r['heldout_bpc']:.3f}  (irish.abc held-out, {r['heldout_chars']:,}"
        " chars; target <= 1.35)",
        "validation bpc     " + (f"{r['val_bpc']:.3f}" if r["val_bpc"] is not None else "n/a")
        + ("" if r.get("val_irish_bpc") is None else
           f" (whole mix)   {r['val_irish_bpc']:.3f} (irish.abc validation tunes)"),
        f"valid tunes        {g['valid']}/{g['tunes']} = {g['valid_share']:.1%} generated "
        f"({g['completed']} completed; target >= 90%)   {real['valid']}/{real['tunes']} = "
        f"{real['valid_share']:.1%} real held-out",
        f"bars match meter   {g['bar_match_share']:.1%} of {g['bars']} generated bars   "
        f"{real['bar_match_share']:.1%} of {real['bars']} real bars",
        f"notebook style     {r['notebook_style']['bang_line_share']:.0%} of body lines end "
        f"with '!' after a held-out irish.abc header ({r['notebook_style']['tunes']} tunes, "
        f"{r['notebook_style']['valid_share']:.0%} valid)",
        f"600 chars          {r['sample_600_seconds'] * 1000:.0f} ms (median of 7, NumPy "
        "sampler, batch 1; target < 300 ms)"
        + (f"; best of {r['music']['best_of']} drafts"
           + (" with bar proposals" if r["music"].get("form") else "")
           + f" {r['best_600_seconds'] * 1000:.0f} ms"
           if "best_600_seconds" in r else ""),
    ]
    if "music" in r:
        lines += ["", music_table(r["music"])]
    return "\n".join(lines)


FORM_ROWS = [("bar_echo", "bars equal to an earlier bar of the tune"),
             ("phrase_echo", "2-bar phrases equal to an earlier one"),
             ("near_echo", f"bars within {facts.NEAR_EDITS} edits of an earlier bar"),
             ("looping_tunes", f"tunes with {facts.LOOP_RUN} equal bars in a row")]


def music_table(m: dict) -> str:
    """The yardsticks as a Markdown table: generated beside real, with 95% intervals."""
    names = [("valid", "valid (abc2midi -c)"), ("bars_fit_meter", "bars that fit the meter"),
             ("ends_on_tonic", "ends on the tonic of its K:"),
             ("parts_8_or_16_bars", "parts of 8 or 16 bars"),
             ("out_of_key_notes", "out-of-key notes")]

    def cell(x: dict) -> str:
        lo, hi = x["ci95"]
        return f"{x['share']:.1%} ({x['count']}/{x['of']}; {lo:.1%}-{hi:.1%})"

    g, real, d = m["generated"], m["real_heldout"], m["distances"]
    best, bd = m.get("best"), m.get("best_distances")
    kept = f" best of {m.get('best_of')} drafts" + (", bar proposals" if m.get("form") else "")
    head = "| yardstick | model's own draw |" + (f"{kept} |" if best else "") \
        + " irish.abc held-out |"
    rows = [head, "|---|---|" + ("---|" if best else "") + "---|"]
    rows += [f"| {label} | {cell(g[k])} |" + (f" {cell(best[k])} |" if best else "")
             + f" {cell(real[k])} |" for k, label in names]
    for k, label in FORM_ROWS:
        h = d["real_halves_form"][k]
        rows.append(f"| {label} | {cell(g[k])} |" + (f" {cell(best[k])} |" if best else "")
                    + f" {cell(real[k])}; halves {h['min']:.1%}-{h['max']:.1%} |")
    over = "over_real_most_bar_echo"
    rows.append(f"| tunes echoing more of their bars than any real tune ("
                f"{d[over]['real_most']:.0%}) | {cell(d[over])} |"
                + (f" {cell(bd[over])} |" if best else "") + " - |")
    for key, label in (("scale_degrees", "scale-degree histogram"),
                       ("intervals", "interval histogram")):
        halves = d[f"real_halves_{key}_js"]
        rows.append(f"| {label}: JS distance to real | {d[f'{key}_js']:.3f} |"
                    + (f" {bd[f'{key}_js']:.3f} |" if best else "")
                    + f" real halves: {halves['mean']:.3f} mean, {halves['max']:.3f} max of 20 "
                    "splits |")
    return "\n".join(rows)
