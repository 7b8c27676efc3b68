"""Per-batch statistics of the final layer's input activations, and their union over ranks.

Everything LipschitzLR needs from a batch is additive over the samples in it: the sample count,
``||A||_F^2``, ``sum A^4``, ``||a_L||_F^2``, ``||y||_F^2`` and the Gram matrix ``[A, 1]^T [A, 1]``.
So the statistics of the union of the ranks' batches are the *sums* of the ranks' statistics,
and one ``all_reduce(SUM)`` makes every rank see exactly what a single process would on the
union: every rank then computes the same learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch import distributed as dist

from lrlab.lipschitz.rule import A2, A4, COLUMNS, OUT2, Y2, M


@dataclass(frozen=True)
class Needs:
    """Which optional statistics the configured bound uses."""

    fourth: bool = False  # sum A^4 (the paper's Adam/RMSprop variants)
    outputs: bool = False  # ||a_L||^2 (the paper's MSE bound)
    gram: bool = False  # [A, 1]^T [A, 1] (the exact spectral norm)


def detached(values: Tensor) -> Tensor:
    """``values`` detached, in float32 at least: under bfloat16 or float16 autocast the head
    sees half-precision activations, whose dot products would keep three digits."""
    values = values.detach()
    return values.float() if values.dtype in (torch.bfloat16, torch.float16) else values


def flat_rows(activations: Tensor) -> Tensor:
    """The activation matrix ``A``: one row per sample (a sequence model's extra leading
    dimensions become rows too)."""
    a = detached(activations)
    return a.reshape(-1, a.shape[-1]) if a.dim() != 2 else a


class StatsBuffer:
    """The statistics of the batches seen since the last `clear`.

    ``add`` runs one dot product per statistic and keeps 0-d tensors, so no host sync happens
    per batch; `rows` stacks them into an ``(n, 5)`` float64 matrix when the LR is computed.
    """

    def __init__(self, needs: Needs) -> None:
        self.needs = needs
        self.clear()

    def clear(self) -> None:
        self._m: list[int] = []
        self._columns: list[list[Tensor]] = [[] for _ in range(COLUMNS)]
        self._grams: list[Tensor] = []

    def __len__(self) -> int:
        return len(self._m)

    def add(self, activations: Tensor, outputs: Tensor | None) -> None:
        flat = detached(activations).reshape(-1)
        self._m.append(flat.numel() // activations.shape[-1])
        self._columns[A2].append(torch.dot(flat, flat))
        if self.needs.fourth:
            squares = flat.square()
            self._columns[A4].append(torch.dot(squares, squares))
        if self.needs.outputs and outputs is not None:
            out = detached(outputs).reshape(-1)
            self._columns[OUT2].append(torch.dot(out, out))
        if self.needs.gram:
            self._grams.append(gram(activations))

    def add_targets(self, targets: Tensor) -> None:
        """``||y||^2`` of the batch last added (the paper's MSE bound)."""
        y = targets.detach().reshape(-1).double()
        self._columns[Y2].append(torch.dot(y, y))

    def columns(self) -> list[list[float]]:
        """The statistics as ``columns[c][j]`` (statistic ``c`` of batch ``j``) in one read,
        for a single process (no reduction needed); absent statistics are zeros."""
        n = len(self._m)
        filled = [c for c in (A2, A4, OUT2, Y2) if self._columns[c]]
        values = torch.stack([torch.stack(self._columns[c]).double() for c in filled]).tolist()
        result: list[list[float]] = [[float(m) for m in self._m]] + [[0.0] * n] * (COLUMNS - 1)
        for column, row in zip(filled, values, strict=True):
            result[column] = row
        return result

    def rows(self, device: torch.device) -> Tensor:
        """An ``(n, 5)`` float64 matrix, one row per batch, columns ``M, A2, A4, OUT2, Y2``."""
        n = len(self._m)
        table = torch.zeros(n, COLUMNS, dtype=torch.float64, device=device)
        if n == 0:
            return table
        table[:, M] = torch.tensor(self._m, dtype=torch.float64, device=device)
        for column in (A2, A4, OUT2, Y2):
            values = self._columns[column]
            if values:
                table[: len(values), column] = torch.stack(values).to(device, torch.float64)
        return table

    def grams(self, device: torch.device) -> Tensor | None:
        """The batches' Gram matrices, stacked, when the spectral norm is wanted."""
        return torch.stack(self._grams).to(device) if self._grams else None

    def state(self) -> dict[str, object]:
        """Plain data, for a checkpoint taken mid-epoch."""
        return {
            "m": list(self._m),
            "columns": [[float(v) for v in column] for column in self._columns],
            "grams": [g.tolist() for g in self._grams],
        }

    def load(self, state: dict[str, object], device: torch.device) -> None:
        self.clear()
        self._m = [int(v) for v in state["m"]]  # type: ignore[attr-defined]
        self._columns = [
            [torch.tensor(v, dtype=torch.float64, device=device) for v in column]
            for column in state["columns"]  # type: ignore[attr-defined]
        ]
        self._grams = [torch.tensor(g, dtype=torch.float64, device=device) for g in state["grams"]]  # type: ignore[attr-defined]


def gram(activations: Tensor) -> Tensor:
    """``[A, 1]^T [A, 1]``, in float64."""
    a = flat_rows(activations).double()
    augmented = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype, device=a.device)], dim=1)
    return augmented.T @ augmented


def world(process_group: object | None) -> int:
    """Ranks sharing the LR: the process group's size under ``torch.distributed``, else 1."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return int(dist.get_world_size(process_group))  # type: ignore[arg-type]


def union(tensor: Tensor, process_group: object | None) -> Tensor:
    """Sum ``tensor`` over the ranks (in place, and returned); unchanged in a single process."""
    if world(process_group) > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=process_group)
    return tensor


def aligned_count(count: int, device: torch.device, process_group: object | None) -> int:
    """The largest batch count over the ranks, so shorter ranks can pad with empty batches and
    every rank joins the same number of reductions."""
    if world(process_group) == 1:
        return count
    value = torch.tensor([count], dtype=torch.int64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=process_group)
    return int(value.item())


def spectral_sq_norms(grams: Tensor) -> Tensor:
    """Largest eigenvalue of each Gram matrix, i.e. ``||[A, 1]||_2^2`` per batch."""
    top: Tensor = torch.linalg.eigvalsh(grams)[..., -1]
    return top
