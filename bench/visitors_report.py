"""The figures of a headless-visitor run (bench/visitors.py): latency, throughput, the
server's CPU per tune and its RSS over time, and the report printed from them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from load_test import percentile
from visitors_meter import Meter, quarter_medians


def rounded(x, n: int = 3):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, n)


def summarize(args, out: dict, wrong: int, problems: list[str], client_cpu: float,
              work: Path) -> dict:
    visits, wall = out["visits"], out["wall"]
    tunes = [t for v in visits if v.name != "trainer" for t in v.tunes]
    later = [t.latency for t in tunes if not t.first]
    firsts = [t.latency for t in tunes if t.first]
    result = {
        "visitors": args.visitors, "training_visitor": bool(args.train_steps),
        "think_s": args.think, "length": args.length, "tunes": len(tunes),
        "wall_s": rounded(wall, 1),
        "throughput_per_s": rounded(len(tunes) / wall if wall else None, 2),
        "latency_s": {"p50": rounded(percentile(later, 0.5)),
                      "p95": rounded(percentile(later, 0.95)),
                      "max": rounded(max(later, default=None)), "n": len(later)},
        "first_tune_s": {"p50": rounded(percentile(firsts, 0.5)),
                         "p95": rounded(percentile(firsts, 0.95)), "n": len(firsts)},
        "wrong_tunes": wrong,
        "client_cpu_s": {"total": rounded(client_cpu, 2)},
        "host_cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
        "stream": dict(out["stats"]), "problems": problems, "workdir": str(work),
    }
    tv = next((v for v in visits if v.name == "trainer"), None)
    if tv is not None and tv.training_window:
        # The criterion: a tune while someone trains against a tune while nobody does.
        a, b = tv.training_window
        during = [t.latency for t in tunes if not t.first and t.t_end - t.latency >= a
                  and t.t_end <= b]
        idle = [t.latency for t in tunes if not t.first and (t.t_end <= a
                                                              or t.t_end - t.latency >= b)]
        result["latency_while_training_s"] = {
            "during": {"p50": rounded(percentile(during, 0.5)),
                       "p95": rounded(percentile(during, 0.95)), "n": len(during)},
            "outside": {"p50": rounded(percentile(idle, 0.5)),
                        "p95": rounded(percentile(idle, 0.95)), "n": len(idle)}}
    if tv is not None:
        result["trainer"] = {**(tv.trained or {}), "error": tv.error, "tunes": len(tv.tunes),
                             "model": tv.tunes[-1].model if tv.tunes else None,
                             "tune_from_its_model_s": rounded(tv.tunes[-1].latency)
                             if len(tv.tunes) > 1 else None}
    return result


def server_figures(meter: Meter, out: dict) -> dict:
    """CPU per tune (all of the run, and after warm-up) and RSS over time."""
    ends = sorted(t.t_end for v in out["visits"] for t in v.tunes)
    cpu = {"whole_run": meter.cpu("start", "end")}
    cpu["whole_run"]["tunes"] = len(ends)
    if "warm" in meter.snaps:
        cpu["after_warmup"] = meter.cpu("warm", "end")
        cpu["after_warmup"]["tunes"] = sum(t > meter.snaps["warm"]["t"] for t in ends)
    for part in cpu.values():
        part["per_tune"] = part["pages"] / part["tunes"] if part["tunes"] else None
        for k, v in part.items():
            part[k] = rounded(v) if isinstance(v, float) else v
    rss = dict(meter.rss.marks)
    rss["peak"] = round(meter.rss.peak, 1)
    t_warm = (out["warm_at"] - meter.rss.t0) if out["warm_at"] else 0.0
    rss["quarters_after_warmup"] = quarter_medians(meter.rss.samples, t_warm)
    rss["sampling_workers_at_end"] = round(meter.watch.workers_rss(), 1)
    return {"server_cpu_s": cpu, "server_rss_mb": rss}


def report(r: dict) -> str:
    lines = [f"{r['visitors']} visitors{' + 1 training' if r['training_visitor'] else ''}, "
             f"think {r['think_s']} s: {r['tunes']} tunes in {r['wall_s']} s, "
             f"{r['throughput_per_s']} tunes/s",
             f"latency (rerun -> script_finished and the audio): p50 {r['latency_s']['p50']} s,"
             f" p95 {r['latency_s']['p95']} s, max {r['latency_s']['max']} s "
             f"({r['latency_s']['n']} tunes); a new visitor's first tune: p50 "
             f"{r['first_tune_s']['p50']} s, p95 {r['first_tune_s']['p95']} s"]
    w = r.get("latency_while_training_s")
    if w:
        lines.append(f"latency while the trainer trains: p50 {w['during']['p50']} s, p95 "
                     f"{w['during']['p95']} s ({w['during']['n']} tunes); before or after: p50 "
                     f"{w['outside']['p50']} s, p95 {w['outside']['p95']} s "
                     f"({w['outside']['n']} tunes)")
    for name, c in r.get("server_cpu_s", {}).items():
        lines.append(f"server CPU, {name.replace('_', ' ')}: {c['per_tune']} s per tune "
                     f"({c['pages']} s for {c['tunes']} tunes: server process "
                     f"{c['server_process']} s, tools and sampling workers "
                     f"{c['tools_and_sampling_workers']} s); training worker "
                     f"{c['training_worker']} s apart")
    lines.append(f"this client: {r['client_cpu_s']} CPU-s; {r['host_cpus']} CPUs, load average "
                 f"{r['load_average']}")
    m = r.get("server_rss_mb")
    if m:
        lines.append(f"server RSS (MB): start {m.get('start')}, after warm-up {m.get('warm')}, "
                     f"quarters after warm-up {m['quarters_after_warmup']}, peak {m['peak']}, "
                     f"end {m.get('end')} (sampling workers {m['sampling_workers_at_end']})")
    if r.get("trainer"):
        lines.append(f"trainer: {r['trainer']}")
    if "leftover_tmp_after_stop" in r:
        lines.append(f"temporary files after the server stopped: "
                     f"{ {k: len(v) for k, v in r['leftover_tmp_after_stop'].items()} }")
    lines.append("problems: " + ("none" if not r["problems"]
                                 else "\n  " + "\n  ".join(r["problems"])))
    return "\n".join(lines)
