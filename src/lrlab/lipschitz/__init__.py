"""LipschitzLR: a learning rate computed from the final layer's input activations.

`LipschitzLR` is the scheduler for any PyTorch loop, `LipschitzOptions` its options (shared with
the engine's ``lipschitz(...)`` spec and the Keras callback); `lrlab.lipschitz.bounds` holds the
formulas (the paper's, and the sound smoothness constant) as plain functions.
"""

from lrlab.lipschitz.bounds import checked_rate, paper_constant, smooth_constant
from lrlab.lipschitz.head import find_head
from lrlab.lipschitz.options import LipschitzOptions
from lrlab.lipschitz.scheduler import LipschitzLR

__all__ = [
    "LipschitzLR",
    "LipschitzOptions",
    "checked_rate",
    "find_head",
    "paper_constant",
    "smooth_constant",
]
