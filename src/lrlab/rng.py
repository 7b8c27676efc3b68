"""The random number generators a training run touches, captured and restored as one.

`RNGState.capture()` takes torch's CPU generator, every initialised CUDA device's, numpy's
global generator and Python's ``random``; ``restore()`` puts them back exactly. `seeded`
runs a block from a seed and leaves the caller's generators as they were, so a run's dropout
masks, augmentation and a shuffling ``DataLoader`` depend on its seed only, and training
inside a user's program does not disturb the user's random streams.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class RNGState:
    """A snapshot of the global generators (torch CPU and CUDA, numpy, ``random``)."""

    torch_cpu: torch.Tensor
    torch_cuda: tuple[torch.Tensor, ...]
    numpy: Any
    python: Any

    @classmethod
    def capture(cls) -> RNGState:
        cuda: tuple[torch.Tensor, ...] = ()
        initialised = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
        if torch.cuda.is_available() and initialised:
            cuda = tuple(torch.cuda.get_rng_state_all())
        numpy_state = np.random.get_state()  # noqa: NPY002 (the global generator, on purpose)
        return cls(torch.get_rng_state(), cuda, numpy_state, random.getstate())

    def restore(self) -> None:
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda:
            torch.cuda.set_rng_state_all(list(self.torch_cuda))
        np.random.set_state(self.numpy)  # noqa: NPY002
        random.setstate(self.python)


def seed_all(seed: int) -> None:
    """Seed torch (every device), numpy's global generator and ``random`` with ``seed``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    random.seed(seed)


@contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with every global generator seeded from ``seed``; restore the caller's
    generators afterwards, whatever happens (``device``: a CUDA device about to be used,
    whose generator is initialised first so that it too is restored)."""
    if device is not None and device.type == "cuda":
        torch.cuda.init()  # type: ignore[no-untyped-call]
    state = RNGState.capture()
    try:
        seed_all(seed)
        yield
    finally:
        state.restore()
