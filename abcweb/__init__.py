"""abcweb: a character-level LSTM that writes folk tunes in ABC notation.

    from abcweb import load_sampler
    s = load_sampler()                 # the shipped weights
    g = s.generate(prime="X:", length=600, temperature=1.0, seed=0)
    print(g.text)

Importing abcweb does not import TensorFlow: sampling on a CPU runs in NumPy, and TensorFlow is
loaded only for training, for the compiled GPU sampler, or when asked for.

The package is a stack of layers, each a subpackage that imports only the ones below it
(tests/test_layers.py checks it): music (1), sound (2), model (3), sampling (4), evaluation
and inside (5), web (6). This module's public names and the command line (cli.py) sit on top.
"""

from abcweb.model.checkpoint import Checkpoint, CheckpointError
from abcweb.model.lstm import PRESETS, ModelConfig, UnknownCharacters
from abcweb.sampling.loop import Generation, Step
from abcweb.sampling.sampler import Sampler, load_sampler

__all__ = ["Checkpoint", "CheckpointError", "Generation", "ModelConfig", "PRESETS", "Sampler",
           "Step", "UnknownCharacters", "load_sampler"]
