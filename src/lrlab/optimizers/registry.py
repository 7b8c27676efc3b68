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

The peers LipschitzLR is compared against are rows of the same registry whose class comes from
their own packages (``lrlab[peers]``), imported only when one is built:

- ``prodigy``: ``prodigyopt.Prodigy`` (Mishchenko & Defazio), Adam with a step size it
  estimates itself; ``lr`` multiplies that estimate, 1.0 and left there: **learning-rate free**.
- ``dadapt-adam``: ``dadaptation.DAdaptAdam`` (Defazio & Mishchenko), Adam with a D-adapted step
  size; ``lr`` is again a multiplier, 1.0: **learning-rate free**.
- ``sgd-schedulefree``: ``schedulefree.SGDScheduleFree`` (Defazio et al., "The Road Less
  Scheduled"). It removes the *schedule*, not the LR: its ``lr`` is tuned like SGD's (its
  authors suggest 10x-50x the classical SGD rate), so it belongs with the tuned optimizers.
  It needs ``optimizer.train()`` before training steps and ``optimizer.eval()`` before
  evaluating (`lrlab.optimizers.modes`).

For the two learning-rate-free peers the ``lr`` in ``param_groups`` (and so in a run's LR
trace) is the multiplier, 1.0; the step actually taken is ``d * lr`` with ``d`` their estimate
in ``param_groups[0]["d"]`` (the engine records that).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from lrlab.optimizers.keras_sgd import KerasSGD
from lrlab.registry import Registry, caller_source
from lrlab.validate import ArgumentTypeError, check_bool, check_kwargs, check_lr, check_str

#: The extra that installs the peers' packages.
PEERS_EXTRA = "peers"


@dataclass(frozen=True)
class OptimizerEntry:
    """A named update rule: the optimizer class, the arguments lrlab builds it with, and
    whether it needs LR tuning.

    ``target`` is the class (``torch.optim`` or any class taking ``params`` first) or, for an
    optimizer from a package of its own, ``"module:ClassName"``, imported only when the entry
    is built (`cls`): ``package`` is then its PyPI distribution and ``extra`` the lrlab extra
    that installs it, named in the one-line error when it is missing. ``lr_free``: the
    optimizer estimates its own step size (a comparison puts it in the "no tuning" group
    beside LipschitzLR and runs it once per seed whatever the LR grid); ``tuning`` says in
    words what to tune instead. ``elementwise``: every state and update is elementwise in the
    parameters (lrlab's own rules, in torch's default implementation), so a run may give the
    optimizer one flat tensor whose views are the parameters (`lrlab.engine.flat`); a user's
    or a peer's optimizer is not assumed to be.
    """

    target: type[Optimizer] | str
    defaults: Mapping[str, Any]
    summary: str
    lr_free: bool = False
    name: str = ""
    package: str | None = None
    extra: str | None = None
    tuning: str = ""
    elementwise: bool = False

    @property
    def imported_when_built(self) -> bool:
        """Whether the class lives in a package that is imported only when built (a peer)."""
        return isinstance(self.target, str)

    @property
    def class_name(self) -> str:
        target = self.target
        return target.rpartition(":")[2] if isinstance(target, str) else target.__name__

    @property
    def cls(self) -> type[Optimizer]:
        """The optimizer class, its package imported now (never at ``import lrlab`` time).

        A missing package is a one-line ``ValueError`` naming the extra to install, not an
        ``ImportError`` traceback: the user asked for an optimizer, not for a module.
        """
        if not isinstance(self.target, str):
            return self.target
        module_name, _, class_name = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)  # (cached by Python after the first)
        except ImportError as exc:
            root = module_name.partition(".")[0]
            if exc.name in (root, module_name):
                reason = f"{self.package or root} is not installed"
            else:  # installed, but it (or something it needs) fails to import
                reason = f"{self.package or root} failed to import: {exc}"
            install = f"pip install 'lrlab[{self.extra}]'" if self.extra else "install it"
            extra = f"the {self.extra} extra" if self.extra else f"{self.package or root}"
            raise ValueError(
                f"optimizer {self.name!r} needs {extra}: {install} ({reason})"
            ) from None
        cls: type[Optimizer] = getattr(module, class_name)
        return cls

    @property
    def label(self) -> str:
        """The optimizer and its settings as lrlab runs it, e.g. ``Prodigy(lr=1.0, d_coef=1.0)``."""
        return self.label_for()

    def label_for(self, lr: float | None = None, **overrides: Any) -> str:
        """The label of this entry built with ``lr`` and ``overrides`` (what `build` would
        run), so a report names a tuned run by its actual settings."""
        settings = {**self.defaults, **overrides}
        if lr is not None:
            settings["lr"] = lr
        args = ", ".join(f"{key}={value!r}" for key, value in settings.items())
        return f"{self.class_name}({args})"

    def build(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | None = None,
        **overrides: Any,
    ) -> Optimizer:
        """The optimizer over ``params``: ``defaults``, then ``lr`` and ``overrides``.

        ``lr`` and unknown arguments are checked before the class sees them, and its own
        ``ValueError``s are prefixed with this optimizer's name (they name the value, not the
        optimizer). Construction-time ``print`` notices (the peers' "Using decoupled weight
        decay") are swallowed: they would land in the middle of a progress bar or a table.
        """
        name = self.name or self.class_name
        cls = self.cls
        kwargs = dict(self.defaults)
        if lr is not None:
            kwargs["lr"] = check_lr(name, lr)
        kwargs.update(check_entry_args(name, cls, self.defaults, overrides))
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return cls(params, **kwargs)
        except ValueError as error:  # the class's range checks name the value, not the optimizer
            raise ValueError(f"optimizer {name!r}: {error}") from None


def _entry_point_optimizer(name: str, value: object) -> OptimizerEntry:
    """An ``lrlab.optimizers`` entry point: an `OptimizerEntry`, or an optimizer class
    (built with its own defaults)."""
    if isinstance(value, OptimizerEntry):
        return value
    if isinstance(value, type) and issubclass(value, Optimizer):
        return OptimizerEntry(value, {}, value.__name__, False, name)
    raise ValueError(
        f"lrlab.optimizers entry point {name!r} must name an Optimizer subclass, got {value!r}"
    )


#: Every optimizer by name: lrlab's, the peers (their packages imported only when built),
#: the ones users register, installed entry points (group ``lrlab.optimizers``).
OPTIMIZERS: Registry[OptimizerEntry] = Registry(
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


def _peer(
    target: str, package: str, defaults: dict[str, Any], summary: str, **kw: Any
) -> OptimizerEntry:
    return OptimizerEntry(target, defaults, summary, package=package, extra=PEERS_EXTRA, **kw)


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
    # The package's defaults (lr 1.0, momentum 0.9, no warmup). Its authors call lr 10x-50x
    # the classical SGD rate a good start; the seeds' SGD rate is 0.01, so 1.0 is on the high
    # side of that range and is what an untuned run of the package gets.
    "sgd-schedulefree": _peer(
        "schedulefree:SGDScheduleFree",
        "schedulefree",
        {"lr": 1.0, "momentum": 0.9, "warmup_steps": 0},
        "Schedule-Free SGD: no LR schedule, evaluated at the iterate average",
        tuning="lr like SGD (10x-50x the classical rate), momentum, warmup_steps",
    ),
    "prodigy": _peer(
        "prodigyopt:Prodigy",
        "prodigyopt",
        {"lr": 1.0, "d_coef": 1.0},
        "Prodigy: Adam with an estimated step size d; lr multiplies d",
        lr_free=True,
        tuning="none; d_coef (0.5-2) if anything, lr left at 1.0",
    ),
    "dadapt-adam": _peer(
        "dadaptation:DAdaptAdam",
        "dadaptation",
        {"lr": 1.0},
        "D-Adaptation Adam: Adam with a D-adapted step size; lr multiplies it",
        lr_free=True,
        tuning="none; lr stays 1.0 (lower it only if training is unstable)",
    ),
}.items():
    OPTIMIZERS.register(
        _name, replace(_entry, name=_name, elementwise=not _entry.imported_when_built)
    )

#: The peers, by name: the entries whose class comes from a package of its own.
PEERS: Mapping[str, OptimizerEntry] = {
    name: OPTIMIZERS[name] for name in ("sgd-schedulefree", "prodigy", "dadapt-adam")
}


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


def optimizer_entry(name: str) -> OptimizerEntry:
    """The registry entry for ``name`` (for a peer, without importing its package); an
    unknown name is a ``ValueError`` listing the known."""
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


def make_optimizer(
    name: str,
    params: Iterable[Tensor] | Iterable[dict[str, Any]],
    lr: float | None = None,
    **overrides: Any,
) -> Optimizer:
    """Build the optimizer ``name`` over ``params`` with the seeds' defaults.

    ``lr`` and ``overrides`` replace defaults; an argument the optimizer does not take is a
    one-line ``ValueError`` naming it. A peer imports its package here, and a missing package
    is a one-line ``ValueError`` naming the extra to install.

    >>> import torch
    >>> opt = make_optimizer("momentum", [torch.zeros(2, requires_grad=True)])
    >>> type(opt).__name__, opt.defaults["lr"], opt.defaults["momentum"]
    ('SGD', 0.01, 0.9)
    """
    return optimizer_entry(name).build(params, lr=lr, **overrides)
