"""Update rules for stacked members: N runs' parameters as the rows of one ``(N, P)`` tensor,
each row with its own learning rate (and, where members differ, its own hyperparameters).

``torch.optim`` applies one LR to every tensor it holds, so N members with N LRs would take N
optimizers and N kernel launches per tensor per step. A rule here takes the members'
parameters, gradients and state as rows and computes, element for element, what
``torch.optim``'s single-tensor implementation (its default on the CPU) computes for each
member alone: the same operations in the same order, in the same dtype. A value that differs
between members is applied as an ``(N, 1)`` column: ``x.addcmul_(g, column)`` where torch
writes ``x.add_(g, alpha=value)``, ``x.addcdiv_(t * column, d)`` for
``x.addcdiv_(t, d, value=value)``; both round exactly as torch's scalar forms do (one fused
multiply-add, the scalar first rounded to the tensor's dtype), which the tests check bit for bit
against ``torch.optim``. Derived scalars (``lr / (1 - beta1^t)``, Adagrad's decayed LR,
AdamW's ``1 - lr * wd``) are computed in float64 as Python computes them, then rounded.

Sources: ``torch/optim/sgd.py`` (``_single_tensor_sgd``: the momentum buffer starts at the
first gradient, undamped), ``adam.py`` (``_single_tensor_adam``, non-capturable branch: AdamW is
Adam with ``decoupled_weight_decay``), ``adagrad.py`` (``_single_tensor_adagrad``),
``rmsprop.py`` (``_single_tensor_rmsprop``) of torch 2.13, and `lrlab.optimizers.KerasSGD`.

Not covered (`unsupported` says so, and such runs train one by one): sparse gradients, complex
parameters, ``foreach``/``fused``/``capturable``/``differentiable`` set to true (other kernels,
other rounding), tensor-valued hyperparameters, and any optimizer class not in `RULES`.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from lrlab.optimizers import OPTIMIZERS, KerasSGD

# A hyperparameter over the members: one Python float when every member has the same value
# (then applied exactly as torch.optim applies it), else an (N, 1) column in the parameters'
# dtype.
Scalar = float | Tensor

# Implementation switches of torch.optim that select other kernels when true.
_SWITCHES = ("foreach", "fused", "capturable", "differentiable")


def _add(x: Tensor, y: Tensor, alpha: Scalar) -> Tensor:
    """``x + alpha * y``, as ``torch.add(x, y, alpha=alpha)`` rounds it."""
    if isinstance(alpha, Tensor):
        return torch.addcmul(x, y, alpha)
    return torch.add(x, y, alpha=alpha)


def _add_(x: Tensor, y: Tensor, alpha: Scalar) -> None:
    if isinstance(alpha, Tensor):
        x.addcmul_(y, alpha)
    else:
        x.add_(y, alpha=alpha)


def _addcmul_(x: Tensor, a: Tensor, b: Tensor, value: Scalar) -> None:
    """``x += value * a * b``."""
    if isinstance(value, Tensor):
        x.addcmul_(a * value, b)
    else:
        x.addcmul_(a, b, value=value)


def _addcdiv_(x: Tensor, a: Tensor, b: Tensor, value: Scalar) -> None:
    """``x += value * a / b``."""
    if isinstance(value, Tensor):
        x.addcdiv_(a * value, b)
    else:
        x.addcdiv_(a, b, value=value)


class StackedRule(ABC):
    """One optimizer family's update over stacked members.

    Built from the members' ``param_groups[0]`` (the hyperparameters torch.optim resolved, so
    defaults and argument checks stay torch's); `step` updates ``params`` in place from
    ``grads`` with ``lr``, the members' learning rates as a float64 vector; `select` keeps only
    some members (rows), state included.
    """

    #: Keys of the param group this rule reads; any other key makes a config unsupported.
    keys: ClassVar[tuple[str, ...]]
    #: Tensors of the parameters' size that the rule's state holds at most.
    state_slots: ClassVar[int] = 0

    def __init__(self, groups: Sequence[Mapping[str, Any]], params: Tensor) -> None:
        if not groups or len(groups) != params.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: need one param group per member, got {len(groups)} "
                f"groups for {params.shape[0]} members"
            )
        for group in groups:
            reason = unsupported(type(self), group)
            if reason is not None:
                raise ValueError(f"{type(self).__name__}: {reason}")
        if len({self.signature(g) for g in groups}) > 1:
            raise ValueError(
                f"{type(self).__name__}: the members' options differ in kind "
                f"({', '.join(map(str, {self.signature(g) for g in groups}))}); group them apart"
            )
        self.groups = [dict(g) for g in groups]
        self.dtype, self.device = params.dtype, params.device

    @classmethod
    def signature(cls, group: Mapping[str, Any]) -> tuple[object, ...]:
        """What must be equal for members to share this rule: its boolean options and which
        of its terms are on (``momentum != 0``...); numeric values may differ per member."""
        return (cls.__name__,)

    @classmethod
    def state_tensors(cls, group: Mapping[str, Any]) -> int:
        """State tensors of the size of the parameters that ``group``'s options need."""
        return cls.state_slots

    def column(self, values: Sequence[float]) -> Scalar:
        """``values`` (one per member) as a float when all are equal, else an ``(N, 1)`` column."""
        first = float(values[0])
        if all(float(v) == first for v in values):
            return first
        return self.rounded(torch.tensor(values, dtype=torch.float64, device=self.device))

    def hyper(self, key: str) -> Scalar:
        return self.column([float(g[key]) for g in self.groups])

    def rounded(self, values: Tensor) -> Tensor:
        """A float64 vector of per-member values as an ``(N, 1)`` column in the parameters'
        dtype (rounded to nearest, as torch rounds a Python scalar it applies to a tensor)."""
        return values.to(self.dtype).unsqueeze(1)

    @abstractmethod
    def step(self, params: Tensor, grads: Tensor, lr: Tensor) -> None:
        """One update of every member; ``lr`` is a float64 vector, one LR per member."""

    def select(self, keep: Tensor) -> None:
        """Keep only the members (rows) ``keep``, in that order."""
        for name, value in list(vars(self).items()):
            if isinstance(value, Tensor) and value.dim() >= 1:
                setattr(self, name, value.index_select(0, keep))
        index = keep.tolist()
        self.groups = [self.groups[i] for i in index]


def _neg(lr: Tensor, rule: StackedRule) -> Tensor:
    return rule.rounded(-lr)


class SGDRule(StackedRule):
    """``torch.optim.SGD``: ``g += wd w``; ``b = g`` at the first step, then
    ``b = mu b + (1 - dampening) g``; ``g = g + mu b`` (Nesterov) or ``b``; ``w -= lr g``."""

    keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
    state_slots = 1

    @classmethod
    def signature(cls, group: Mapping[str, Any]) -> tuple[object, ...]:
        return (
            cls.__name__,
            bool(group["nesterov"]),
            bool(group["maximize"]),
            group["momentum"] != 0,
            group["weight_decay"] != 0,
        )

    def __init__(self, groups: Sequence[Mapping[str, Any]], params: Tensor) -> None:
        super().__init__(groups, params)
        first = self.groups[0]
        self.nesterov, self.maximize = bool(first["nesterov"]), bool(first["maximize"])
        self.use_momentum = first["momentum"] != 0
        self.use_decay = first["weight_decay"] != 0
        self.momentum = self.hyper("momentum")
        self.damped = self.column([1 - g["dampening"] for g in self.groups])
        self.weight_decay = self.hyper("weight_decay")
        self.buffer: Tensor | None = None

    @classmethod
    def state_tensors(cls, group: Mapping[str, Any]) -> int:
        return 1 if group["momentum"] != 0 else 0

    def step(self, params: Tensor, grads: Tensor, lr: Tensor) -> None:
        grad = -grads if self.maximize else grads
        if self.use_decay:
            grad = _add(grad, params, self.weight_decay)
        if self.use_momentum:
            if self.buffer is None:
                self.buffer = grad.detach().clone()
            else:
                self.buffer.mul_(self.momentum)
                _add_(self.buffer, grad, self.damped)
            grad = _add(grad, self.buffer, self.momentum) if self.nesterov else self.buffer
        params.addcmul_(grad, _neg(lr, self))


class KerasSGDRule(StackedRule):
    """`lrlab.optimizers.KerasSGD`: ``g += wd w``; ``v = mu v - lr g``; ``w += v`` (Nesterov:
    ``w += mu v - lr g``), ``v = 0`` at the start."""

    keys = ("lr", "momentum", "nesterov", "weight_decay")
    state_slots = 1

    @classmethod
    def signature(cls, group: Mapping[str, Any]) -> tuple[object, ...]:
        return (cls.__name__, bool(group["nesterov"]), bool(group["weight_decay"]))

    def __init__(self, groups: Sequence[Mapping[str, Any]], params: Tensor) -> None:
        super().__init__(groups, params)
        first = self.groups[0]
        self.nesterov, self.use_decay = bool(first["nesterov"]), bool(first["weight_decay"])
        self.momentum = self.hyper("momentum")
        self.weight_decay = self.hyper("weight_decay")
        self.velocity = torch.zeros_like(params)

    def step(self, params: Tensor, grads: Tensor, lr: Tensor) -> None:
        grad = _add(grads, params, self.weight_decay) if self.use_decay else grads
        neg_lr = _neg(lr, self)
        self.velocity.mul_(self.momentum)
        self.velocity.addcmul_(grad, neg_lr)
        if self.nesterov:
            _add_(params, self.velocity, self.momentum)
            params.addcmul_(grad, neg_lr)
        else:
            params.add_(self.velocity)


class AdagradRule(StackedRule):
    """``torch.optim.Adagrad``: ``h`` starts at ``initial_accumulator_value``; at step t,
    ``g += wd w``; ``h += g^2``; ``w -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(h) + eps)``."""

    keys = ("lr", "lr_decay", "eps", "weight_decay", "initial_accumulator_value", "maximize")
    state_slots = 1

    @classmethod
    def signature(cls, group: Mapping[str, Any]) -> tuple[object, ...]:
        return (cls.__name__, bool(group["maximize"]), group["weight_decay"] != 0)

    def __init__(self, groups: Sequence[Mapping[str, Any]], params: Tensor) -> None:
        super().__init__(groups, params)
        first = self.groups[0]
        self.maximize, self.use_decay = bool(first["maximize"]), first["weight_decay"] != 0
        self.eps = self.hyper("eps")
        self.weight_decay = self.hyper("weight_decay")
        self.lr_decay = torch.tensor(
            [float(g["lr_decay"]) for g in self.groups], dtype=torch.float64, device=self.device
        )
        initial = self.hyper("initial_accumulator_value")
        self.sum = torch.zeros_like(params).add_(initial)
        self.steps = 0

    def step(self, params: Tensor, grads: Tensor, lr: Tensor) -> None:
        self.steps += 1
        grad = -grads if self.maximize else grads
        if self.use_decay:
            grad = _add(grad, params, self.weight_decay)
        decayed = lr / (1 + (self.steps - 1) * self.lr_decay)
        self.sum.addcmul_(grad, grad, value=1)
        std = self.sum.sqrt()
        std.add_(self.eps)
        params.addcdiv_(grad * _neg(decayed, self), std)


class RMSpropRule(StackedRule):
    """``torch.optim.RMSprop``: ``g += wd w``; ``h = a h + (1 - a) g^2``; centered:
    ``m = a m + (1 - a) g`` (a lerp) and ``s = sqrt(h - m^2)``, else ``s = sqrt(h)``;
    ``s += eps``; momentum: ``b = mu b + g / s; w -= lr b``, else ``w -= lr g / s``."""

    keys = ("lr", "momentum", "alpha", "eps", "centered", "weight_decay", "maximize")
    state_slots = 3

    @classmethod
    def signature(cls, group: Mapping[str, Any]) -> tuple[object, ...]:
        return (
            cls.__name__,
            bool(group["centered"]),
            bool(group["maximize"]),
            group["momentum"] > 0,
            group["weight_decay"] != 0,
        )

    def __init__(self, groups: Sequence[Mapping[str, Any]], params: Tensor) -> None:
        super().__init__(groups, params)
        first = self.groups[0]
        self.centered, self.maximize = bool(first["centered"]), bool(first["maximize"])
        self.use_momentum, self.use_decay = first["momentum"] > 0, first["weight_decay"] != 0
        self.alpha = self.hyper("alpha")
        self.rest = self.column([1 - g["alpha"] for g in self.groups])
        self.eps = self.hyper("eps")
        self.momentum = self.hyper("momentum")
        self.weight_decay = self.hyper("weight_decay")
        self.square = torch.zeros_like(params)
        self.mean = torch.zeros_like(params) if self.centered else None
        self.buffer = torch.zeros_like(params) if self.use_momentum else None

    @classmethod
    def state_tensors(cls, group: Mapping[str, Any]) -> int:
        return 1 + int(bool(group["centered"])) + int(group["momentum"] > 0)

    def step(self, params: Tensor, grads: Tensor, lr: Tensor) -> None:
        grad = -grads if self.maximize else grads
        if self.use_decay:
            grad = _add(grad, params, self.weight_decay)
        self.square.mul_(self.alpha)
        _addcmul_(self.square, grad, grad, self.rest)
        if self.mean is not None:
            self.mean.lerp_(grad, self.rest)
            avg = self.square.addcmul(self.mean, self.mean, value=-1).sqrt_()
        else:
            avg = self.square.sqrt()
        avg.add_(self.eps)
        if self.buffer is not None:
            self.buffer.mul_(self.momentum).addcdiv_(grad, avg)
            params.addcmul_(self.buffer, _neg(lr, self))
        else:
            params.addcdiv_(grad * _neg(lr, self), avg)


class AdamRule(StackedRule):
    """``torch.optim.Adam`` and ``AdamW``: at step t, ``g += wd w`` (Adam) or
    ``w *= 1 - lr wd`` (AdamW); ``m = lerp(m, g, 1 - b1)``; ``v = b2 v + (1 - b2) g^2``;
    (AMSGrad: ``v_max = max(v_max, v)``); ``w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t)
    + eps)``, the bias corrections in float64 as torch computes them."""

    keys = (
        "lr",
        "betas",
        "eps",
        "weight_decay",
        "amsgrad",
        "maximize",
        "decoupled_weight_decay",
    )
    state_slots = 3

    @classmethod
    def signature(cls, group: Mapping[str, Any]) -> tuple[object, ...]:
        return (
            cls.__name__,
            bool(group["amsgrad"]),
            bool(group["maximize"]),
            bool(group["decoupled_weight_decay"]),
            group["weight_decay"] != 0,
        )

    def __init__(self, groups: Sequence[Mapping[str, Any]], params: Tensor) -> None:
        super().__init__(groups, params)
        first = self.groups[0]
        self.maximize, self.amsgrad = bool(first["maximize"]), bool(first["amsgrad"])
        self.decoupled = bool(first["decoupled_weight_decay"])
        self.use_decay = first["weight_decay"] != 0
        self.beta1s = [float(g["betas"][0]) for g in self.groups]
        self.beta2s = [float(g["betas"][1]) for g in self.groups]
        self.rest1 = self.column([1 - b for b in self.beta1s])
        self.beta2 = self.column(self.beta2s)
        self.rest2 = self.column([1 - b for b in self.beta2s])
        self.eps = self.hyper("eps")
        self.weight_decay = self.hyper("weight_decay")
        self.decay64 = torch.tensor(
            [float(g["weight_decay"]) for g in self.groups], dtype=torch.float64, device=self.device
        )
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self.max_exp_avg_sq = torch.zeros_like(params) if self.amsgrad else None
        self.steps = 0

    @classmethod
    def state_tensors(cls, group: Mapping[str, Any]) -> int:
        return 2 + int(bool(group["amsgrad"]))

    def select(self, keep: Tensor) -> None:
        super().select(keep)
        index = keep.tolist()
        self.beta1s = [self.beta1s[i] for i in index]
        self.beta2s = [self.beta2s[i] for i in index]

    def _corrections(self, betas: list[float]) -> Scalar:
        """``1 - beta^t`` per member, in Python floats as torch computes it (a float when the
        members share beta, else a float64 vector)."""
        step = float(self.steps)
        values: list[float] = [1 - b**step for b in betas]
        if all(v == values[0] for v in values):
            return values[0]
        return torch.tensor(values, dtype=torch.float64, device=self.device)

    def step(self, params: Tensor, grads: Tensor, lr: Tensor) -> None:
        self.steps += 1
        grad = -grads if self.maximize else grads
        if self.use_decay:
            if self.decoupled:
                params.mul_(self.rounded(1 - lr * self.decay64))
            else:
                grad = _add(grad, params, self.weight_decay)
        self.exp_avg.lerp_(grad, self.rest1)
        self.exp_avg_sq.mul_(self.beta2)
        _addcmul_(self.exp_avg_sq, grad, grad, self.rest2)
        correction1 = self._corrections(self.beta1s)
        correction2 = self._corrections(self.beta2s)
        step_size = lr / correction1
        root = (
            correction2**0.5
            if isinstance(correction2, float)
            else self.rounded(
                torch.tensor(
                    [c**0.5 for c in correction2.tolist()], dtype=torch.float64, device=self.device
                )
            )
        )
        if self.max_exp_avg_sq is not None:
            torch.maximum(self.max_exp_avg_sq, self.exp_avg_sq, out=self.max_exp_avg_sq)
            denom = self.max_exp_avg_sq.sqrt() / root
        else:
            denom = self.exp_avg_sq.sqrt() / root
        denom.add_(self.eps)
        params.addcdiv_(self.exp_avg * _neg(step_size, self), denom)


RULES: dict[type[Optimizer], type[StackedRule]] = {
    torch.optim.SGD: SGDRule,
    KerasSGD: KerasSGDRule,
    torch.optim.Adagrad: AdagradRule,
    torch.optim.RMSprop: RMSpropRule,
    torch.optim.Adam: AdamRule,
    torch.optim.AdamW: AdamRule,
}


def rule_for(optimizer: Optimizer) -> type[StackedRule] | str:
    """The stacked rule for ``optimizer``'s class, or why there is none (one line)."""
    if len(optimizer.param_groups) != 1:
        return "more than one param group"
    return rule_for_group(type(optimizer), optimizer.param_groups[0])


def rule_for_group(cls: type[Optimizer], group: Mapping[str, Any]) -> type[StackedRule] | str:
    """The stacked rule for a param group of optimizer class ``cls``, or why there is none."""
    rule = RULES.get(cls)
    if rule is None:
        return f"optimizer {cls.__name__} has no stacked update rule"
    return unsupported(rule, group) or rule


# Keys a torch.optim class puts in its param groups beyond its signature's arguments.
_IMPLIED: dict[type[Optimizer], dict[str, Any]] = {
    torch.optim.AdamW: {"decoupled_weight_decay": True},
}


def param_group(
    name: str, lr: float | None, overrides: Mapping[str, Any]
) -> tuple[type[Optimizer], dict[str, Any]]:
    """The class and the param group (without ``params``) that
    ``make_optimizer(name, params, lr=lr, **overrides)`` builds, read from the class's
    signature and the registry's defaults instead of building one: the first torch optimizer a
    process builds imports ``torch._dynamo``, seconds that planning a group and training it
    do not need. Arguments are checked by name as `make_optimizer` checks them; their values
    are left to torch (build the optimizer when ``overrides`` is not empty). A peer or an
    unknown name is a ``ValueError``.

    >>> param_group("momentum", 0.1, {})[1]["momentum"], param_group("adamw", None, {})[1]["lr"]
    (0.9, 0.001)
    """
    entry = OPTIMIZERS.lookup(name)
    if entry.imported_when_built:
        raise ValueError(f"optimizer {name!r} is a peer (its own package): no stacked update rule")
    arguments = inspect.signature(entry.cls).parameters
    for key in overrides:
        if key not in arguments or key == "params":
            raise ValueError(f"optimizer {name!r} takes no argument {key!r}")
    group = {
        key: parameter.default
        for key, parameter in arguments.items()
        if key != "params" and parameter.default is not inspect.Parameter.empty
    }
    group.update(entry.defaults)
    if lr is not None:
        group["lr"] = lr
    group.update(overrides)
    group.update(_IMPLIED.get(entry.cls, {}))
    return entry.cls, group


def unsupported(rule: type[StackedRule], group: Mapping[str, Any]) -> str | None:
    """Why ``group`` cannot be applied by ``rule`` (one line), or ``None`` if it can."""
    for key, value in group.items():
        if key == "params":
            continue
        if key in _SWITCHES:
            if value:
                return f"optimizer argument {key}={value!r} selects other kernels"
            continue
        if key not in rule.keys:
            return f"optimizer argument {key}={value!r} is not supported vectorised"
        values = value if isinstance(value, tuple | list) else (value,)
        if any(isinstance(v, Tensor) for v in values):
            return f"optimizer argument {key} is a tensor"
    return None
