"""The update rules the source documents compare, by name, with the seeds' defaults.

Each name is a thin factory over ``torch.optim``; the one rule PyTorch lacks, Keras' (and the
seeds') momentum with the LR inside the velocity, is `KerasSGD`. ``g`` is the gradient:

- ``sgd``: ``w -= lr g``; lr 0.01.
- ``momentum``: PyTorch's ``b = mu b + g; w -= lr b``; lr 0.01, momentum 0.9.
- ``nesterov``: PyTorch's Nesterov SGD; lr 0.01, momentum 0.9.
- ``ema-momentum``: ``b = mu b + (1 - mu) g; w -= lr b``, seed 004's AdaMo update (PyTorch SGD
  with ``dampening=mu``; PyTorch starts the buffer at the first gradient where the paper's
  starts at ``(1 - mu) g``); lr 0.01, momentum 0.9. Its step has unit gain, so an LR meant for
  plain SGD (LipschitzLR's) stays meaningful, where ``momentum`` would take ~10x larger steps.
- ``keras-momentum``: Keras' and the seeds' ``v = mu v - lr g; w += v``; lr 0.01, momentum 0.9.
- ``keras-nesterov``: ``v = mu v - lr g; w += mu v - lr g``; lr 0.01, momentum 0.9.
- ``adagrad``: ``h += g^2; w -= lr g / (sqrt(h) + eps)``; lr 0.01, eps 1e-7 (seed 003's).
- ``rmsprop``: ``h = a h + (1 - a) g^2; w -= lr g / (sqrt(h) + eps)``; lr 0.01, a 0.99,
  eps 1e-7 (seed 003's).
- ``adam``: PyTorch's Adam; lr 0.001, betas (0.9, 0.999), PyTorch's eps 1e-8 (seed 003 and
  Keras put eps outside the bias correction, a form ``torch.optim`` does not offer).
- ``adamw``: PyTorch's AdamW; lr 0.001, weight_decay 0.01.

The two momentum forms agree while the LR is constant (``v = -lr b``) and part ways as soon as
it changes: PyTorch's applies the *current* LR to the whole buffer, Keras' keeps each step's
LR inside the velocity. Seed 000's decayed-LR experiment ran Keras' form.

The peers LipschitzLR is compared against come from their own packages (``lrlab[peers]``,
see `lrlab.peers`) and are imported only when built: ``sgd-schedulefree`` (tuned like SGD),
``prodigy`` and ``dadapt-adam`` (learning-rate free, `lr_free`). Schedule-free optimizers
must be switched between training and evaluation weights; `set_optimizer_mode` does that for
any optimizer with ``train()``/``eval()`` methods, and is a no-op for the others.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeGuard

import torch
from torch import Tensor
from torch.optim import Optimizer

from lrlab.peers import PEERS, PeerEntry
from lrlab.registry import Registry, caller_source
from lrlab.validate import (
    ArgumentTypeError,
    check_bool,
    check_kwargs,
    check_lr,
    check_number,
    check_str,
)


class KerasSGD(Optimizer):
    """SGD with momentum in Keras' (and the seeds') form, the LR inside the velocity:

    ``v = momentum * v - lr * g;  w = w + v``  (``nesterov``: ``w = w + momentum * v - lr * g``),

    with ``v = 0`` at the start and ``g`` the gradient plus ``weight_decay * w``. This is
    Keras 2's ``SGD(momentum=..., nesterov=...)`` and seed 003's ``Momentum``; ``torch.optim.SGD``
    keeps the LR outside its buffer (``b = mu b + g; w -= lr b``), which differs once the LR
    changes during training.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        check_number("KerasSGD", "lr", lr, nonnegative=True)
        check_number("KerasSGD", "momentum", momentum, nonnegative=True)
        check_number("KerasSGD", "weight_decay", weight_decay, nonnegative=True)
        check_bool("KerasSGD", "nesterov", nesterov)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "nesterov": nesterov,
            "weight_decay": weight_decay,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads: list[Tensor] = [p.grad for p in params if p.grad is not None]
            if group["weight_decay"]:
                grads = list(torch._foreach_add(grads, params, alpha=group["weight_decay"]))
            velocities = []
            for p in params:
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                velocities.append(state["velocity"])
            lr, mu = group["lr"], group["momentum"]
            torch._foreach_mul_(velocities, mu)
            torch._foreach_add_(velocities, grads, alpha=-lr)
            if group["nesterov"]:
                torch._foreach_add_(params, velocities, alpha=mu)
                torch._foreach_add_(params, grads, alpha=-lr)
            else:
                torch._foreach_add_(params, velocities)
        return loss


@dataclass(frozen=True)
class OptimizerEntry:
    """A named update rule: the optimizer class (``torch.optim`` or any class taking
    ``params`` first), the arguments lrlab builds it with, and whether it needs LR tuning.

    ``lr_free``: the optimizer estimates its own step size (a comparison puts it in the
    "no tuning" group beside LipschitzLR and runs it once per seed whatever the LR grid).
    """

    cls: type[Optimizer]
    defaults: dict[str, Any]
    summary: str
    lr_free: bool = False
    name: str = ""

    def build(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | None = None,
        **overrides: Any,
    ) -> Optimizer:
        """The optimizer over ``params``: ``defaults``, then ``lr`` and ``overrides``."""
        kwargs = dict(self.defaults)
        if lr is not None:
            kwargs["lr"] = check_lr(self.name or self.cls.__name__, lr)
        name = self.name or self.cls.__name__
        kwargs.update(check_entry_args(name, self.cls, self.defaults, overrides))
        try:
            return self.cls(params, **kwargs)
        except ValueError as error:  # torch's range checks name the value, not the optimizer
            kind = ArgumentTypeError if isinstance(error, TypeError) else ValueError
            raise kind(f"optimizer {name!r}: {error}") from None


def _entry_point_optimizer(name: str, value: object) -> OptimizerEntry | PeerEntry:
    """An ``lrlab.optimizers`` entry point: an `OptimizerEntry`, or an optimizer class
    (built with its own defaults)."""
    if isinstance(value, OptimizerEntry | PeerEntry):
        return value
    if isinstance(value, type) and issubclass(value, Optimizer):
        return OptimizerEntry(value, {}, value.__name__, False, name)
    raise ValueError(
        f"lrlab.optimizers entry point {name!r} must name an Optimizer subclass, got {value!r}"
    )


#: Every optimizer by name: lrlab's, the peers (their packages imported only when built),
#: the ones users register, installed entry points (group ``lrlab.optimizers``).
OPTIMIZERS: Registry[OptimizerEntry | PeerEntry] = Registry(
    "optimizer", "lrlab.optimizers", _entry_point_optimizer
)


def register_optimizer(
    name: str,
    cls: type[Optimizer],
    *,
    defaults: dict[str, Any] | None = None,
    summary: str = "",
    lr_free: bool = False,
    replace: bool = False,
) -> OptimizerEntry:
    """Make ``cls`` available as ``name`` in `make_optimizer`, ``--optimizer``,
    ``--optimizers`` and sweeps, built with ``defaults`` (``lr`` among them unless ``cls``
    has a default LR). ``lr_free=True`` for a method that estimates its own step size (it
    then runs once per seed in a comparison, in the "no tuning" group).

    Example::

        register_optimizer("lion", Lion, defaults={"lr": 1e-4, "betas": (0.9, 0.99)})

    Register at a module's top level (or in a task file): sweep workers import that module
    again to see the name. A taken name is a ``ValueError`` unless ``replace=True``.
    """
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise ArgumentTypeError(
            f"register_optimizer: cls must be a torch.optim.Optimizer subclass, got cls={cls!r}"
        )
    check_bool("register_optimizer", "lr_free", lr_free)
    values = dict(defaults or {})
    accepted = set(inspect.signature(cls).parameters) - {"params"}
    for key in values:
        if key not in accepted:
            raise ValueError(
                f"register_optimizer: {cls.__name__} takes no argument {key!r} (in defaults)"
            )
    entry = OptimizerEntry(cls, values, summary or cls.__name__, lr_free, name)
    OPTIMIZERS.register(name, entry, replace=replace, source=caller_source(1))
    return entry


for _name, _entry in {
    "sgd": OptimizerEntry(torch.optim.SGD, {"lr": 0.01}, "plain SGD, w -= lr g"),
    "momentum": OptimizerEntry(
        torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}, "PyTorch momentum, b = mu b + g; w -= lr b"
    ),
    "ema-momentum": OptimizerEntry(
        torch.optim.SGD,
        {"lr": 0.01, "momentum": 0.9, "dampening": 0.9},
        "EMA momentum (AdaMo's), b = mu b + (1 - mu) g; w -= lr b",
    ),
    "nesterov": OptimizerEntry(
        torch.optim.SGD,
        {"lr": 0.01, "momentum": 0.9, "nesterov": True},
        "PyTorch Nesterov momentum",
    ),
    "keras-momentum": OptimizerEntry(
        KerasSGD, {"lr": 0.01, "momentum": 0.9}, "Keras/seed momentum, v = mu v - lr g; w += v"
    ),
    "keras-nesterov": OptimizerEntry(
        KerasSGD, {"lr": 0.01, "momentum": 0.9, "nesterov": True}, "Keras/seed Nesterov momentum"
    ),
    "adagrad": OptimizerEntry(torch.optim.Adagrad, {"lr": 0.01, "eps": 1e-7}, "AdaGrad, h += g^2"),
    "rmsprop": OptimizerEntry(
        torch.optim.RMSprop,
        {"lr": 0.01, "alpha": 0.99, "eps": 1e-7},
        "RMSprop, h = 0.99 h + 0.01 g^2",
    ),
    "adam": OptimizerEntry(torch.optim.Adam, {"lr": 0.001, "betas": (0.9, 0.999)}, "Adam"),
    "adamw": OptimizerEntry(
        torch.optim.AdamW,
        {"lr": 0.001, "betas": (0.9, 0.999), "weight_decay": 0.01},
        "Adam with decoupled weight decay",
    ),
}.items():
    OPTIMIZERS.register(_name, replace(_entry, name=_name))
for _name, _peer in PEERS.items():
    OPTIMIZERS.register(_name, _peer)


#: Arguments lrlab passes itself, so ``optimizer_args`` may not name them.
RESERVED_ARGS = {
    "params": "lrlab sets it",
    "lr": "it is the run's own lr",
}


#: Flags of torch's optimizers that lrlab's engine cannot honour, refused when true.
UNSUPPORTED_FLAGS = {
    "differentiable": "lrlab steps optimizers outside autograd, so a step has no graph",
    "capturable": "lrlab captures no CUDA graphs, and torch refuses it on the CPU",
}


def check_optimizer_args(name: str, args: object) -> dict[str, Any]:
    """Check ``args`` (a run's ``optimizer_args``, ``--optimizer-arg``) against the signature
    of the optimizer ``name`` and the types of its defaults (`lrlab.validate.check_kwargs`):
    names it does not take, ``lr`` and ``params`` (lrlab sets them), values of the wrong type
    or shape (``momentum="abc"``, ``betas=[0.9]``), and flags lrlab's engine cannot honour
    (`UNSUPPORTED_FLAGS`: ``differentiable``, ``capturable``) are a one-line error before
    anything runs.
    A peer's package is imported here. Returns the arguments, lists for tuples as tuples.

    >>> check_optimizer_args("adam", {"betas": [0.9, 0.99], "amsgrad": True})
    {'betas': (0.9, 0.99), 'amsgrad': True}
    >>> check_optimizer_args("sgd", {"params": []})
    Traceback (most recent call last):
    ...
    ValueError: optimizer 'sgd': params cannot be in optimizer_args (lrlab sets it), got params=[]
    """
    entry = optimizer_entry(name)
    return check_entry_args(name, entry.cls, entry.defaults, args)


def check_entry_args(
    name: str, cls: type[Optimizer], defaults: Mapping[str, Any], args: object
) -> dict[str, Any]:
    """`check_optimizer_args` for the optimizer class ``cls`` built with ``defaults``."""
    checked = check_kwargs(
        f"optimizer {name!r}",
        cls,
        args,
        name="optimizer_args",
        reserved=RESERVED_ARGS,
        defaults=dict(defaults),
    )
    for flag, reason in UNSUPPORTED_FLAGS.items():
        if checked.get(flag) is True:
            raise ValueError(
                f"optimizer {name!r}: {flag} must be false ({reason}), got {flag}=True"
            )
    return checked


def known_optimizers() -> tuple[str, ...]:
    """Every name `make_optimizer` takes, the peers included (their packages need not be
    installed for their names to be known)."""
    return tuple(OPTIMIZERS)


def optimizer_entry(name: str) -> OptimizerEntry | PeerEntry:
    """The registry entry for ``name`` (a `PeerEntry` for a peer, without importing its
    package); an unknown name is a ``ValueError`` listing the known."""
    check_str("", "optimizer", name)
    return OPTIMIZERS.lookup(name)


def lr_free(name: str) -> bool:
    """Whether the optimizer ``name`` needs no LR tuning (``prodigy``, ``dadapt-adam``), so a
    comparison can put it in the "no tuning" group beside LipschitzLR. ``sgd-schedulefree``
    is not: it drops the schedule, not the LR. An unknown name is a ``ValueError``.

    >>> lr_free("prodigy"), lr_free("sgd-schedulefree"), lr_free("adam")
    (True, False, False)
    """
    return optimizer_entry(name).lr_free


class TrainEvalOptimizer(Protocol):
    """An optimizer whose weights for evaluation differ from those it trains at (schedule-free
    methods): ``train()`` before training steps, ``eval()`` before evaluating or saving."""

    def train(self) -> object: ...

    def eval(self) -> object: ...


def needs_train_eval(optimizer: object) -> TypeGuard[TrainEvalOptimizer]:
    """Whether ``optimizer`` has the ``train()``/``eval()`` protocol (callable ``train`` and
    ``eval`` attributes). Checked by shape, not by class, so any optimizer that adopts the
    protocol is honoured; ``torch.optim.Optimizer`` itself has neither method."""
    return callable(getattr(optimizer, "train", None)) and callable(
        getattr(optimizer, "eval", None)
    )


def set_optimizer_mode(optimizer: object, *, training: bool) -> None:
    """Put an optimizer with the ``train()``/``eval()`` protocol in training or evaluation
    mode (for schedule-free methods this moves the model's weights between the point
    gradients are taken at and the average that is evaluated); a no-op for any other."""
    if needs_train_eval(optimizer):
        if training:
            optimizer.train()
        else:
            optimizer.eval()


# Bytes each parameter is aligned to inside a flat buffer: what PyTorch's CPU allocator gives a
# tensor of its own. BLAS kernels take other code paths (other summation orders) for
# misaligned operands, so a parameter must sit in the buffer as it would alone.
ALIGNMENT = 64


def aligned_offsets(numels: Sequence[int], element_size: int) -> tuple[list[int], int]:
    """Offsets (in elements) of tensors of ``numels`` elements packed one after another, each
    starting at a multiple of `ALIGNMENT` bytes, and the total size, padded likewise.

    >>> aligned_offsets([3, 16, 1], 4)
    ([0, 16, 32], 48)
    """
    step = max(1, ALIGNMENT // element_size)
    offsets, offset = [], 0
    for numel in numels:
        offsets.append(offset)
        offset += -(-numel // step) * step
    return offsets, offset


def flatten_parameters(params: Sequence[Tensor]) -> Tensor | None:
    """Make ``params`` views of one flat leaf tensor and their gradients views of its gradient;
    return that leaf, to give the optimizer in their place, or ``None`` when they cannot
    share one (mixed dtypes or devices, a frozen, sparse or non-float parameter).

    An elementwise update rule (every one in `OPTIMIZERS`, in torch's default implementation)
    computes on the flat tensor what it computes parameter by parameter, bit for bit, with one
    kernel per operation instead of one per parameter: Adam's step on seed 003's MLP takes
    about half the time. (torch's ``foreach`` implementation is the same work on one tensor;
    its CPU ``fused`` kernels round differently from the default for every registry rule with
    a state, and an element's rounding there depends on its position in the tensor, so they
    gain nothing that keeps the numbers.) Each parameter starts at a multiple of `ALIGNMENT`
    bytes, as a tensor of its own does; the padding between them stays zero. Backward
    accumulates into the gradient views in place, so clear the gradient with
    ``optimizer.zero_grad(set_to_none=False)`` (setting it to ``None`` would detach the views).

    >>> w, b = torch.ones(2, 3, requires_grad=True), torch.zeros(3, requires_grad=True)
    >>> flat = flatten_parameters([w, b])
    >>> flat.shape, w.data_ptr() - flat.data_ptr(), b.data_ptr() - flat.data_ptr()
    (torch.Size([32]), 0, 64)
    """
    params = list(params)
    if not params or any(
        not p.requires_grad or p.is_sparse or not p.is_floating_point() for p in params
    ):
        return None
    if len({(p.dtype, p.device) for p in params}) > 1:
        return None
    first = params[0]
    offsets, size = aligned_offsets([p.numel() for p in params], first.element_size())
    flat = torch.nn.Parameter(torch.zeros(size, dtype=first.dtype, device=first.device))
    flat.grad = torch.zeros_like(flat)
    with torch.no_grad():
        for p, offset in zip(params, offsets, strict=True):
            block = slice(offset, offset + p.numel())
            flat.data[block].copy_(p.reshape(-1))
            p.data = flat.data[block].view_as(p)
            p.grad = flat.grad[block].view_as(p)
    return flat


def make_optimizer(
    name: str,
    params: Iterable[Tensor] | Iterable[dict[str, Any]],
    lr: float | None = None,
    **overrides: Any,
) -> Optimizer:
    """Build the optimizer ``name`` over ``params`` with the seeds' defaults.

    ``lr`` and ``overrides`` replace defaults; an argument the optimizer does not take is a
    one-line ``ValueError`` naming it. A peer (`lrlab.peers`) imports its package here, and a
    missing package is a one-line ``ValueError`` naming the extra to install.

    >>> import torch
    >>> opt = make_optimizer("momentum", [torch.zeros(2, requires_grad=True)])
    >>> type(opt).__name__, opt.defaults["lr"], opt.defaults["momentum"]
    ('SGD', 0.01, 0.9)
    """
    return optimizer_entry(name).build(params, lr=lr, **overrides)
