import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from abcweb.model import checkpoint
from abcweb.model.lstm import ModelConfig, preset, weight_shapes

# Property tests: CI draws the same examples on every run (derandomized, no example database),
# so a change can only fail for what it changed; a local run explores new examples and keeps
# the failing ones in .hypothesis/. Either way a failure prints the @reproduce_failure line
# that replays it. HYPOTHESIS_PROFILE=ci runs the CI profile locally.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True,
                          deadline=None)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") else "dev"))

ROOT = Path(__file__).resolve().parent.parent
IRISH = Path(os.environ.get("ABCWEB_IRISH", ROOT.parent / "shared" / "data" / "irish.abc"))


# One small jig, numbered: a corpus of it is valid ABC that a tiny model learns quickly.
JIG = ("X:{n}\nT:Jig {n}\nM:6/8\nL:1/8\nK:D\n|:DFA dAF|GBd gdB|AFD DFA|BGE E3:|\n"
       "|:fdf ecA|dfa gfe|fdB AFD|EFE D3:|\n")


def jigs(n: int) -> str:
    """n numbered copies of JIG as one ABC file, tunes separated by blank lines."""
    return "\n".join(JIG.format(n=i) for i in range(n))


def random_checkpoint(cfg: ModelConfig, seed: int = 0, scale: float = 0.3) -> checkpoint.Checkpoint:
    rng = np.random.default_rng(seed)
    weights = {n: (rng.standard_normal(s) * scale).astype(np.float32)
               for n, s in weight_shapes(cfg).items()}
    return checkpoint.Checkpoint(cfg, weights, {"steps": 0})


@pytest.fixture(scope="module")
def model_dir() -> str | None:
    """The model the page samples from (the shipped one, or $ABCWEB_WEIGHTS's folder)."""
    weights = os.environ.get("ABCWEB_WEIGHTS") or None
    try:
        checkpoint.load(weights)
    except checkpoint.CheckpointError as e:
        pytest.skip(f"no model to sample from: {e}")
    return weights


@pytest.fixture(scope="module")
def server(model_dir):
    """The dashboard under `streamlit run` for a module's browser tests: its base URL."""
    from browser_support import app_server

    with app_server() as (url, _):
        yield url


@pytest.fixture(scope="session")
def irish_path() -> Path:
    if not IRISH.exists():
        pytest.skip(f"irish.abc not found at {IRISH} (set ABCWEB_IRISH)")
    return IRISH


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A small random-weight checkpoint (two layers, so the stacked path is exercised)."""
    cfg = ModelConfig(embedding=16, units=48, layers=2)
    folder = tmp_path_factory.mktemp("tiny")
    checkpoint.save(random_checkpoint(cfg), folder)
    return folder


@pytest.fixture(scope="session")
def one_layer_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("one")
    checkpoint.save(random_checkpoint(preset("tiny"), seed=1), folder)
    return folder


def shown(markdown: object) -> str:
    """What a visitor reads of a Markdown message: abcweb.web.messages.as_text's escapes and word
    joiners taken out (AppTest gives the Markdown source)."""
    from abcweb.web.messages import WORD_JOINER

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(markdown)).replace(WORD_JOINER, "")
