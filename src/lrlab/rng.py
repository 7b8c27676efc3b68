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

    def to_plain(self) -> dict[str, Any]:
        """The state as plain data that ``torch.load(..., weights_only=True)`` reads back
        (tensors, numbers, lists; no pickled objects): numpy's and Python's states become
        integer tensors and numbers. `from_plain` inverts it."""
        name, keys, position, has_gauss, gauss = self.numpy
        version, internal, python_gauss = self.python
        return {
            "torch": self.torch_cpu,
            "cuda": list(self.torch_cuda),
            "numpy": {
                "name": str(name),
                "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                "position": int(position),
                "has_gauss": int(has_gauss),
                "gauss": float(gauss),
            },
            "python": {
                "version": int(version),
                "internal": torch.tensor(internal, dtype=torch.int64),
                "gauss": python_gauss,
            },
            "generators": [state for _, state in self.generators],
        }

    @classmethod
    def from_plain(
        cls, data: dict[str, Any], generators: Iterable[torch.Generator] = ()
    ) -> RNGState:
        """The state `to_plain` wrote, for ``generators`` (the same ones, in the same order)."""
        numpy = data["numpy"]
        python = data["python"]
        owned = list(generators)
        states = list(data["generators"])
        if len(states) != len(owned):
            raise ValueError(
                f"RNG state: {len(states)} generator states for {len(owned)} generators"
            )
        return cls(
            data["torch"],
            tuple(data["cuda"]),
            (
                numpy["name"],
                numpy["keys"].numpy().astype(np.uint32),
                numpy["position"],
                numpy["has_gauss"],
                numpy["gauss"],
            ),
            (python["version"], tuple(python["internal"].tolist()), python["gauss"]),
            tuple(zip(owned, states, strict=True)),
        )

    def restore(self) -> None:
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda:
            torch.cuda.set_rng_state_all(list(self.torch_cuda))
        np.random.set_state(self.numpy)  # noqa: NPY002
        random.setstate(self.python)
        for generator, state in self.generators:
            generator.set_state(state)


def loader_generators(loader: object) -> list[torch.Generator]:
    """The ``torch.Generator`` objects a ``DataLoader`` draws its order from (its own, its
    sampler's, its batch sampler's sampler's), each once; empty for anything else (a
    DataLoader without one draws from torch's global generator)."""
    found: list[torch.Generator] = []
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    for owner in (loader, sampler, getattr(batch_sampler, "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


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
