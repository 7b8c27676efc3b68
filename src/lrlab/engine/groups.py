"""Weight decay by parameter group: which of a model's parameters the optimizer's
``weight_decay`` applies to, by a convention named in `RunConfig.decay_params`.

- ``"all"``: every parameter (torch's own behaviour; one param group).
- ``"matrices"``: parameters with two or more dimensions, and none whose name ends in
  ``.bias``: nanoGPT's ``GPT.configure_optimizers`` (karpathy/nanoGPT ``model.py``: "Any
  parameters that is 2D will be weight decayed, otherwise no", so biases and norm weights are
  not, embeddings are) and timm's ``param_groups_weight_decay``
  (``timm/optim/_param_groups.py``: ``param.ndim <= 1 or name.endswith(".bias")`` is not
  decayed).
- ``"no-bias-norm-embed"``: the above, and no decay on any parameter of an embedding or a
  normalisation layer either (``nn.Embedding``/``EmbeddingBag``, ``LayerNorm``,
  ``BatchNorm*``/``SyncBatchNorm``, ``GroupNorm``, ``InstanceNorm*``, ``RMSNorm``, and any
  module whose class name ends in ``Norm``): minGPT's ``configure_optimizers``
  (karpathy/minGPT ``mingpt/model.py``: ``blacklist_weight_modules = (torch.nn.LayerNorm,
  torch.nn.Embedding)``, biases never decayed), the convention most transformer recipes use.

The decayed parameters form param group 0 (with the optimizer's ``weight_decay``), the rest
group 1 (``weight_decay=0``), each in ``named_parameters()`` order; a group left empty is
dropped. Both groups start at the same LR, so an LR schedule (`lrlab.ScheduleLR` scales each
group's base LR) and LipschitzLR (which reads the L2 term from the groups that decay) drive
them alike.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from lrlab.validate import check_choice, check_number

#: The conventions `decay_groups` knows, ``"all"`` (one group) first.
DECAY_PARAMS: tuple[str, ...] = ("all", "matrices", "no-bias-norm-embed")

_NORMS: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)
_EMBEDDINGS: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def _is_norm_or_embedding(module: nn.Module) -> bool:
    return isinstance(module, _NORMS + _EMBEDDINGS) or type(module).__name__.endswith("Norm")


def check_decay_params(convention: object) -> str:
    """``convention``, checked: one of `DECAY_PARAMS`."""
    return check_choice("run", "decay_params", convention, DECAY_PARAMS)


def decayed(model: nn.Module, convention: str) -> list[bool]:
    """For each of ``model.named_parameters()``, in order, whether ``convention`` decays it.

    >>> net = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    >>> decayed(net, "matrices"), decayed(net, "no-bias-norm-embed")
    ([True, True, False, False, False], [False, True, False, False, False])
    """
    check_decay_params(convention)
    excluded: set[int] = set()
    if convention == "no-bias-norm-embed":
        for module in model.modules():
            if _is_norm_or_embedding(module):
                excluded.update(id(p) for p in module.parameters(recurse=False))
    return [
        convention == "all"
        or (p.dim() >= 2 and not name.endswith(".bias") and id(p) not in excluded)
        for name, p in model.named_parameters()
    ]


def decay_groups(model: nn.Module, convention: str) -> list[tuple[list[Tensor], bool]]:
    """The model's parameters split by ``convention``: ``(decayed ones, True)`` then
    ``(the others, False)``, an empty part dropped (``"all"``: one part of every parameter).

    >>> net = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2))
    >>> [(len(params), decays) for params, decays in decay_groups(net, "matrices")]
    [(1, True), (3, False)]
    """
    params: list[Tensor] = [p for _, p in model.named_parameters()]
    flags = decayed(model, convention)
    parts: list[tuple[list[Tensor], bool]] = [
        ([p for p, flag in zip(params, flags, strict=True) if flag], True),
        ([p for p, flag in zip(params, flags, strict=True) if not flag], False),
    ]
    return [(part, decays) for part, decays in parts if part]


def group_dict(params: list[Tensor], decays: bool) -> dict[str, Any]:
    """An optimizer param group of ``params``: the optimizer's ``weight_decay`` where
    ``decays``, else ``weight_decay=0``."""
    return {"params": params} if decays else {"params": params, "weight_decay": 0.0}


def weight_decay_groups(
    model: nn.Module, decay_params: str, weight_decay: float | None = None
) -> list[dict[str, Any]]:
    """Param groups for any torch optimizer, split by the ``decay_params`` convention: the
    decayed parameters first (with ``weight_decay`` when given, else the optimizer's), then
    the others with ``weight_decay=0``.

    >>> import torch
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    >>> optimizer = torch.optim.AdamW(weight_decay_groups(model, "matrices", 0.1), lr=1e-3)
    >>> [(len(g["params"]), g["weight_decay"]) for g in optimizer.param_groups]
    [(1, 0.1), (3, 0.0)]
    """
    if weight_decay is not None:
        check_number("weight_decay_groups", "weight_decay", weight_decay, nonnegative=True)
    groups = []
    for params, decays in decay_groups(model, decay_params):
        group = group_dict(params, decays)
        if decays and weight_decay is not None:
            group["weight_decay"] = weight_decay
        groups.append(group)
    return groups
