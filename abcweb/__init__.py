"""abcweb: a character-level LSTM that writes folk tunes in ABC notation.

    from abcweb import load_sampler
    s = load_sampler()                 # the shipped weights
    g = s.generate(prime="X:", length=600, temperature=1.0, seed=0)
    print(g.text)

Importing abcweb does not import TensorFlow: sampling on a CPU runs in NumPy, and TensorFlow is
loaded only for training, for the compiled GPU sampler, or when asked for.
"""

from .checkpoint import Checkpoint, CheckpointError
from .model import PRESETS, ModelConfig, UnknownCharacters
from .sampler import Generation, Sampler, Step, load_sampler

__all__ = ["Checkpoint", "CheckpointError", "Generation", "ModelConfig", "PRESETS", "Sampler",
           "Step", "UnknownCharacters", "load_sampler"]
