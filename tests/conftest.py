import os
from pathlib import Path

import numpy as np
import pytest

from abcweb import checkpoint
from abcweb.model import ModelConfig, preset, weight_shapes

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
