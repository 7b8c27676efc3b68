"""The random number generators a training run touches, captured and restored as one.

`RNGState.capture()` takes torch's CPU generator, every initialised CUDA device's, numpy's
global generator, Python's ``random`` and any ``torch.Generator`` given; ``restore()`` puts
them back exactly. `seed_all` seeds them; `seeded` runs a block from a seed and leaves the
caller's generators as they were, so a run's dropout masks, augmentation and a shuffling
``DataLoader`` depend on its seed only, and training inside a user's program (a run, a range
test) does not disturb the user's random streams.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


def cuda_initialized() -> bool:
    """Whether CUDA has been initialised in this process (its generators exist)."""
    return bool(torch.cuda.is_initialized())  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class RNGState:
    """A snapshot of the global generators (torch CPU and CUDA, numpy, ``random``) and of
    the ``torch.Generator`` objects it was given."""

    torch_cpu: torch.Tensor
    torch_cuda: tuple[torch.Tensor, ...]
    numpy: Any
    python: Any
    generators: tuple[tuple[torch.Generator, torch.Tensor], ...] = ()

    @classmethod
    def capture(cls, generators: Iterable[torch.Generator] = ()) -> RNGState:
        cuda = tuple(torch.cuda.get_rng_state_all()) if cuda_initialized() else ()
        numpy_state = np.random.get_state()  # noqa: NPY002 (the global generator, on purpose)
        return cls(
            torch.get_rng_state(),
            cuda,
            numpy_state,
            random.getstate(),
            tuple((g, g.get_state()) for g in generators),
        )

    def restore(self) -> None:
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda:
            torch.cuda.set_rng_state_all(list(self.torch_cuda))
        np.random.set_state(self.numpy)  # noqa: NPY002
        random.setstate(self.python)
        for generator, state in self.generators:
            generator.set_state(state)


def seed_all(seed: int, generators: Iterable[torch.Generator] = ()) -> None:
    """Seed torch's CPU generator, CUDA's only where CUDA is already initialised
    (``torch.manual_seed`` would queue a seed for a later CUDA start-up, a side effect no
    restore could undo), numpy's global one (modulo 2**32), Python's ``random``, and
    ``generators``, with ``seed``."""
    torch.default_generator.manual_seed(seed)
    if cuda_initialized():
        torch.cuda.manual_seed_all(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    random.seed(seed)
    for generator in generators:
        generator.manual_seed(seed)


@contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with every global generator seeded from ``seed``; restore the caller's
    generators afterwards, whatever happens (``device``: a CUDA device about to be used,
    whose generator is initialised first so that it too is seeded and restored)."""
    if device is not None and device.type == "cuda":
        torch.cuda.init()  # type: ignore[no-untyped-call]
    state = RNGState.capture()
    try:
        seed_all(seed)
        yield
    finally:
        state.restore()
