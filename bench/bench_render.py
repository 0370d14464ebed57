"""Render benchmark: what a tune costs to check, engrave and play, on one machine.

    python bench/bench_render.py [--tunes 10] [--irish ../shared/data/irish.abc]

Takes the first complete tune the shipped model writes for seeds 0..N-1 (prime "X:", 600
characters), and, for comparison, the first N held-out tunes of irish.abc. For each it times,
from an empty cache: check (abc2midi -c), MIDI (abc2midi), SVG (abcm2ps) and web audio
(fluidsynth + encoder), then replaying the same tune from the cache. Prints the medians, the
web audio's size per 30 s of music (issue 4: a 30 s tune under 300 KB, rendered in under
0.5 s), and how long the page's token colouring takes for 1,000 characters.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from abcweb import load_sampler
from abcweb.music import corpus
from abcweb.music.tunes import first_complete_tune, token_kinds
from abcweb.sound import abctools

IRISH = os.environ.get("ABCWEB_IRISH", "../shared/data/irish.abc")


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def measure(tunes: list[str]) -> dict:
    rows = []
    for abc in tunes:
        abctools.clear_cache()
        _, t_check = timed(abctools.check, abc)
        abctools.clear_cache()
        _, t_midi = timed(abctools.to_midi, abc)
        _, t_svg = timed(abctools.to_svg, abc)
        abctools.clear_cache()
        web, t_audio = timed(abctools.to_audio, abc)  # cold: abc2midi + fluidsynth + encoder
        _, t_replay = timed(abctools.to_audio, abc)
        seconds = len(abctools.to_audio(abc, "wav")) / 2 / abctools.SAMPLE_RATE  # mono 16-bit
        rows.append((t_check, t_midi, t_svg, t_audio, t_replay, seconds, len(web)))
    cols = list(zip(*rows))
    med = [statistics.median(c) for c in cols]
    per30_kb = statistics.median(b / s * 30 / 1000 for *_, s, b in rows if s > 0)
    per30_s = statistics.median(r[3] / r[5] * 30 for r in rows if r[5] > 0)
    return {
        "tunes": len(rows),
        "check_ms": med[0] * 1000,
        "midi_ms": med[1] * 1000,
        "svg_ms": med[2] * 1000,
        "audio_s": med[3],
        "replay_ms": med[4] * 1000,
        "music_s": med[5],
        "audio_kb": med[6] / 1000,
        "audio_kb_per_30s": per30_kb,
        "audio_s_per_30s": per30_s,
        "audio_s_max": max(cols[3]),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tunes", type=int, default=10)
    ap.add_argument("--irish", default=IRISH)
    args = ap.parse_args()

    print(f"tools: {abctools.tool_status()}")
    print(f"web audio: {abctools.WEB_FORMAT} at {abctools.SAMPLE_RATE} Hz, {os.cpu_count()} CPUs")
    sampler = load_sampler()
    generated = []
    for seed in range(args.tunes * 3):
        tune = first_complete_tune(sampler.generate("X:", 600, 1.0, seed=seed).text)
        if tune is not None:
            generated.append(tune.text)
        if len(generated) == args.tunes:
            break
    sets = {"generated": generated}
    if os.path.isfile(args.irish):
        sets["irish held-out"] = corpus.load_irish(args.irish).heldout.tunes[: args.tunes]
    for name, tunes in sets.items():
        r = measure(tunes)
        print(
            f"{name} ({r['tunes']} tunes, median {r['music_s']:.1f} s of music): "
            f"check {r['check_ms']:.1f} ms, MIDI {r['midi_ms']:.1f} ms, SVG {r['svg_ms']:.1f} ms, "
            f"{abctools.WEB_FORMAT} {r['audio_s']:.3f} s (max {r['audio_s_max']:.3f} s) and "
            f"{r['audio_kb']:.0f} KB; per 30 s of music {r['audio_s_per_30s']:.3f} s and "
            f"{r['audio_kb_per_30s']:.0f} KB; cached replay {r['replay_ms']:.2f} ms"
        )
    text = (generated[0] * 10)[:1000]
    best = min(timed(token_kinds, text)[1] for _ in range(20))
    print(f"token kinds for 1,000 characters (chart colours): {best * 1000:.2f} ms")


if __name__ == "__main__":
    main()
