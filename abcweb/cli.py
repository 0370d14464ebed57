"""Command line: python -m abcweb sample|train|evaluate|render ...

Every error a person can cause (a bad argument, a missing file, a damaged checkpoint) ends the
program with exit status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time

from abcweb.model import extras
from abcweb.model.checkpoint import CheckpointError
from abcweb.model.lstm import UnknownCharacters
from abcweb.music.corpus import CorpusError


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other error here
        raise UsageError(f"{self.prog}: {message}")


def _number(kind, name, low=None, high=None):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a {kind.__name__}, not {text!r}") from None
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{name} must be finite, not {text!r}")
        if (low is not None and v < low) or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"{name} must be from {low} to {high}, not {text}")
        return v
    return parse


def _top_p(text: str) -> float:
    v = _number(float, "top-p", 0, 1)(text)
    if v == 0:  # an empty nucleus: nothing could be drawn
        raise argparse.ArgumentTypeError("top-p must be above 0 (1: no cut), not 0")
    return v


def _prime(text: str) -> str:
    # A shell cannot easily pass newlines: accept the two characters \n for one.
    return text.replace("\\n", "\n")


# -- sample ------------------------------------------------------------------------------------
def add_sample(sub) -> None:
    from abcweb.sampling.drafts import BEST_OF, MAX_BEST_OF
    from abcweb.sampling.loop import MAX_LENGTH, MAX_TEMPERATURE
    p = sub.add_parser("sample", help="write a tune and print its ABC",
                       description="Write ABC with a trained model and print it to stdout.")
    p.add_argument("--seed", type=_number(int, "seed", 0, 2**63 - 1), default=0)
    p.add_argument("--temperature", "-t", type=_number(float, "temperature", 0, MAX_TEMPERATURE),
                   default=1.0, help="0 is greedy; higher is wilder (default 1.0)")
    p.add_argument("--length", "-n", type=_number(int, "length", 0, MAX_LENGTH), default=600,
                   help="characters to generate at most (default 600)")
    p.add_argument("--prime", "-p", type=_prime, default="X:",
                   help="the text the tune starts from; \\n for a newline (default X:)")
    p.add_argument("--top-k", type=_number(int, "top-k", 0, 1000), default=0,
                   help="sample from the k most likely characters only (0: all)")
    p.add_argument("--top-p", type=_top_p, default=1.0,
                   help="nucleus sampling: draw from the likeliest characters that together "
                        "hold this share of the probability (1: all; 0.5 is the RWKV ABC "
                        "model's advice)")
    p.add_argument("--best-of", type=_number(int, "best-of", 1, MAX_BEST_OF), default=BEST_OF,
                   help=f"keep the best of this many drafts by the musical yardsticks (default "
                   f"{BEST_OF}; 1: the model's own draw for the seed)")
    p.add_argument("--no-form", dest="form", action="store_false",
                   help="every bar the model's own draw: no earlier bars offered at bar starts "
                   "(the tunes of links made before 7 December 2026)")
    p.add_argument("--weights", help="checkpoint folder (default: the shipped weights)")
    p.add_argument("--model", help="a shipped model's id, as share links carry it (default: "
                   "the current one; earlier ones are kept in weights/ID/)")
    p.add_argument("--backend", choices=["auto", "numpy", "tf"], default="auto")
    p.add_argument("--no-stop", action="store_true",
                   help="keep going past the end of the first tune")
    p.add_argument("--json", action="store_true", help="print text and per-step data as JSON")
    p.set_defaults(run=run_sample)


def run_sample(args) -> int:
    from abcweb.model.checkpoint import CheckpointError, shipped_models
    from abcweb.sampling.sampler import load_sampler
    path = args.weights
    if args.model:
        models = shipped_models(args.weights)
        if args.model not in models:
            raise CheckpointError(f"no shipped model {args.model!r}; this checkout has "
                                  f"{', '.join(models)}")
        path = models[args.model]
    # One tune in a process of one thread: no GIL to share, so no worker to start.
    s = load_sampler(path, backend=args.backend, workers=False)
    g = s.generate(args.prime, args.length, args.temperature, args.seed, args.top_k,
                   stop_at_end=not args.no_stop, best_of=args.best_of, top_p=args.top_p,
                   form=args.form)
    if args.json:
        print(json.dumps({"text": g.text, "stopped": g.stopped, "draft": g.draft,
                          "drafts": g.drafts, "copies": g.copies, "steps": [
            {"char": st.char, "prob": st.prob, "entropy": st.entropy, "top": st.top}
            for st in g.steps]}))
    else:
        sys.stdout.write(g.text if g.text.endswith("\n") else g.text + "\n")
    return 0


# -- train -------------------------------------------------------------------------------------
def add_train(sub) -> None:
    from abcweb.model.lstm import PRESETS
    p = sub.add_parser("train", help="train or fine-tune a model",
                       description="Train a model on ABC corpora and save checkpoints. "
                       "--recipe shipped retrains the shipped model.")
    p.add_argument("--out", required=True, help="checkpoint folder to write (and resume from)")
    p.add_argument("--recipe", choices=["shipped", "transposed"],
                   help="shipped: the earlier shipped model from scratch; transposed: the "
                   "current one, continuing the earlier one (weights/de2eb17119ae) on the same "
                   "mix plus transposed copies")
    p.add_argument("--irish", help="path to irish.abc (its train split is used; the held-out "
                   "tunes never are)")
    p.add_argument("--corpus", action="append", default=[],
                   help="a music21 collection name or an .abc file (repeatable)")
    p.add_argument("--preset", choices=list(PRESETS), default="small")
    p.add_argument("--init", help="fine-tune from this checkpoint ('shipped' for the shipped "
                   "weights); its vocabulary is kept")
    p.add_argument("--steps", type=_number(int, "steps", 1, 10**8), default=None,
                   help="total steps of the run in --out (default 1000; the recipe's own)")
    p.add_argument("--minutes", type=_number(float, "minutes", 0, 10**6), default=0,
                   help="stop (and save) after this much training time; 0: no limit")
    p.add_argument("--lr", type=_number(float, "learning rate", 1e-7, 1), default=None)
    p.add_argument("--batch", type=_number(int, "batch", 1, 4096), default=None)
    p.add_argument("--seq-len", type=_number(int, "sequence length", 2, 10000), default=None)
    p.add_argument("--eval-every", type=_number(int, "eval-every", 0, 10**8), default=None)
    p.add_argument("--checkpoint-every", type=_number(int, "checkpoint-every", 0, 10**8),
                   default=None)
    p.add_argument("--ship", help="also write the best model so far (by validation bits, "
                   "float16, no optimizer state) to this folder")
    p.add_argument("--seed", type=_number(int, "seed", 0, 2**31 - 1), default=0)
    p.add_argument("--precision", choices=["float32", "mixed_bfloat16", "auto"], default=None,
                   help="compute precision (default: float32; the shipped recipe uses auto)")
    p.set_defaults(run=run_train)


def run_train(args) -> int:
    from abcweb.model import recipes
    from abcweb.music import corpus as corpora
    if not args.verbose:
        import_tensorflow_quietly()
    plan = recipes.plan_from_args(args, corpora)
    for line in plan.describe():
        print(line, file=sys.stderr)
    return recipes.run_plan(plan, log=lambda s: print(s, file=sys.stderr, flush=True))


# -- cells -------------------------------------------------------------------------------------
def add_cells(sub) -> None:
    p = sub.add_parser("cells", help="find the LSTM units that track ABC structure",
                       description="For each named feature of ABC text (header, position in "
                       "the bar and the line, chords, slurs, grace notes), the unit whose cell "
                       "or hidden state follows it best (Pearson r) over irish.abc's held-out "
                       "tunes, or a bundled collection's validation tunes.")
    p.add_argument("--irish", default=os.environ.get("ABCWEB_IRISH", "../shared/data/irish.abc"),
                   help="path to irish.abc (its held-out tunes are read)")
    p.add_argument("--corpus", help="read this bundled collection's validation tunes instead "
                   "(e.g. ryansMammoth, which has slurs and grace notes)")
    p.add_argument("--weights", help="checkpoint folder (default: the shipped weights)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(run=run_cells)


def run_cells(args) -> int:
    from abcweb.inside import cells_table, find_cells
    from abcweb.model import checkpoint
    from abcweb.music import corpus
    tunes = (corpus.load(args.corpus).split()[1].tunes if args.corpus
             else corpus.load_irish(args.irish).heldout.tunes)
    rows = find_cells(checkpoint.load(args.weights), list(tunes))
    print(json.dumps(rows, indent=1) if args.json else cells_table(rows))
    return 0


# -- evaluate ----------------------------------------------------------------------------------
def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a model: bits per character and valid tunes",
                       description="Print the shipped model's quality figures (weights/README.md).")
    p.add_argument("--irish", default=os.environ.get("ABCWEB_IRISH", "../shared/data/irish.abc"),
                   help="path to irish.abc (its held-out tunes are scored)")
    p.add_argument("--weights", help="checkpoint folder (default: the shipped weights)")
    p.add_argument("--samples", type=_number(int, "samples", 1, 10000), default=200,
                   help="generated tunes (seeds 0..N-1) for the valid share and the musical "
                        "yardsticks (default 200)")
    p.add_argument("--length", type=_number(int, "length", 1, 5000), default=800)
    p.add_argument("--temperature", type=_number(float, "temperature", 0, 100), default=1.0)
    p.add_argument("--top-p", type=_top_p, default=1.0,
                   help="nucleus sampling's share of the probability (default 1: no cut)")
    p.add_argument("--best-of", type=_number(int, "best-of", 1, 16), default=None,
                   help="also measure the best of this many drafts, as visitors get them "
                        "(default: the library's default; 1: the model's own draws only)")
    p.add_argument("--no-form", dest="form", action="store_false",
                   help="measure the drafts without bar proposals (abcweb/sampling/form.py)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(run=run_evaluate)


def run_evaluate(args) -> int:
    from abcweb.evaluation import evaluate
    from abcweb.sampling.drafts import BEST_OF
    report = evaluate.evaluate(args.weights, args.irish, samples=args.samples,
                               length=args.length, temperature=args.temperature,
                               best_of=args.best_of or BEST_OF, top_p=args.top_p,
                               form=args.form)
    print(json.dumps(report, indent=1) if args.json else evaluate.format_report(report))
    return 0


# -- prior -------------------------------------------------------------------------------------
def add_prior(sub) -> None:
    p = sub.add_parser("prior", help="fit a model's melody prior (how drafts are tie-broken)",
                       description="Compare the model's own draws with irish.abc's train pieces "
                       "(never the held-out ones) interval by interval and degree by degree, "
                       "and store the result in the model's model.json "
                       "(abcweb/evaluation/prior.py).")
    p.add_argument("--irish", default=os.environ.get("ABCWEB_IRISH", "../shared/data/irish.abc"),
                   help="path to irish.abc (its train pieces are the real tunes)")
    p.add_argument("--weights", required=True, help="checkpoint folder to fit and update")
    p.add_argument("--temperature", type=_number(float, "temperature", 0.05, 2), default=1.0,
                   help="the temperature of the draws (the page's default)")
    p.add_argument("--draws", type=_number(int, "draws", 25, 10000), default=400)
    p.set_defaults(run=run_prior)


def run_prior(args) -> int:
    from abcweb.evaluation.prior import fit as fit_prior
    from abcweb.model import checkpoint
    from abcweb.music import corpus
    from abcweb.sampling.sampler import load_sampler
    real = corpus.load_irish(args.irish).train.tunes
    s = load_sampler(args.weights, backend="numpy")
    prior = fit_prior(s, list(real), args.temperature, args.draws)
    checkpoint.update_info(args.weights, melody_prior=prior)
    print(f"melody prior written to {checkpoint.resolve(args.weights)}: {prior['fitted_on']}")
    return 0


# -- main --------------------------------------------------------------------------------------
def build_parser() -> Parser:
    # The installed command is `abcweb`; a checkout without it runs `python -m abcweb`.
    prog = "abcweb" if os.path.basename(sys.argv[0]) == "abcweb" else "python -m abcweb"
    p = Parser(prog=prog, description="abcweb: an LSTM that writes folk tunes.")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show TensorFlow's own start-up and warning lines (hidden by default)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_sample(sub)
    add_train(sub)
    add_evaluate(sub)
    add_cells(sub)
    add_prior(sub)
    try:
        from abcweb.sound.abctools import add_render_parser, run_render
    except ImportError:
        pass
    else:
        add_render_parser(sub)
        sub.choices["render"].set_defaults(run=run_render)
    return p


def quiet_tensorflow(verbose: bool) -> None:
    """TensorFlow's C++ start-up lines (oneDNN, CPU features) and absl's warnings say nothing a
    user of this command can act on. Must run before TensorFlow is imported. Quiet leaves a
    level the caller set; --verbose overrides it."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ["ABSL_MIN_LOG_LEVEL"] = "0"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")  # absl's own C++ log (TF 2.16 and later)
    for name in ("absl", "tensorflow", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)


# Lines TensorFlow 2.19 and later writes while it loads, through absl before absl reads any
# log level: TF_CPP_MIN_LOG_LEVEL does not reach them (on CPUs where oneDNN's custom operations
# are on, every import printed two).
_START_UP_NOISE = ("oneDNN custom operations", "absl::InitializeLog", "cpu_feature_guard",
                   "rebuild TensorFlow", "This TensorFlow binary is optimized")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 held in a temporary file, then pass on every
    line it wrote but the start-up noise. A no-op once TensorFlow is imported."""
    import tempfile

    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines(keepends=True):
                if not any(n in line for n in _START_UP_NOISE):
                    sys.stderr.write(line)


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    args = None
    try:
        args = build_parser().parse_args(argv)
        quiet_tensorflow(args.verbose)
        return args.run(args)
    except UsageError as e:
        print(str(e), file=sys.stderr)
    except ModuleNotFoundError as e:  # an optional package: name the extra that installs it
        command = f"abcweb {args.command}" if getattr(args, "command", None) else "abcweb"
        print(f"error: {extras.explain(e, command) or e}", file=sys.stderr)
    except (UnknownCharacters, CheckpointError, CorpusError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"interrupted after {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        return 130
    except Exception as e:  # the tools' own errors (abctools.ToolError) and anything else
        name = type(e).__name__
        print(f"error: {e}" if "Error" in name or "Missing" in name or "Timeout" in name
              else f"error: {name}: {e}", file=sys.stderr)
    return 2
