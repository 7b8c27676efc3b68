"""The peers LipschitzLR is compared against, each from its own package (``lrlab[peers]``).

LipschitzLR claims to take the LR out of tuning. The fair comparison is against other methods
that make the same or a similar claim, run as their authors ship them rather than
re-implemented here:

- ``prodigy``: ``prodigyopt.Prodigy`` (Mishchenko & Defazio), Adam with a step size it
  estimates itself (D-adaptation with a faster-growing estimate). ``lr`` is a multiplier on
  that estimate, 1.0 by default and left there: **learning-rate free**.
- ``dadapt-adam``: ``dadaptation.DAdaptAdam`` (Defazio & Mishchenko), Adam with a D-adapted
  step size; ``lr`` is again a multiplier, 1.0: **learning-rate free**.
- ``sgd-schedulefree``: ``schedulefree.SGDScheduleFree`` (Defazio et al., "The Road Less
  Scheduled"). It removes the *schedule* (no decay, no stopping time), not the LR: its ``lr``
  is tuned like SGD's (its authors suggest 10x-50x the classical SGD rate). So it is **not**
  learning-rate free and belongs with the tuned optimizers in a comparison, not in the
  "no tuning" group. It also requires ``optimizer.train()`` before training steps and
  ``optimizer.eval()`` before evaluating or saving: the weights it is evaluated at (the
  average ``x``) are not the ones its gradients are taken at (``y``). lrlab's engine does both
  for any optimizer with callable ``train`` and ``eval`` (`lrlab.optimizers.set_optimizer_mode`).

For the two learning-rate-free peers, the ``lr`` in ``param_groups`` (and so in a run's LR
trace) is the multiplier, 1.0; the step actually taken is ``d * lr`` with ``d`` the estimate in
``param_groups[0]["d"]``.

This module imports neither torch nor the peer packages, so a report can ask which peers are
learning-rate free (`PEERS`) without loading anything; a peer's package is imported when the
peer is built, and a missing one is a one-line ``ValueError`` saying how to install it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lrlab.validate import check_lr

if TYPE_CHECKING:
    from torch import Tensor
    from torch.optim import Optimizer

EXTRA = "peers"


@dataclass(frozen=True)
class PeerEntry:
    """A peer optimizer: where it lives, the settings lrlab runs it with, and how it is tuned.

    ``package`` is the PyPI distribution (``pip install`` name), ``module``/``class_name`` the
    import path; the package is imported only by `cls` / `build`. ``defaults`` are the
    arguments lrlab passes (its package's own defaults, spelled out so a run's label says what
    ran). ``lr_free``: whether it needs no LR tuning (a comparison's "no tuning" group);
    ``tuning`` says in words what to tune instead.
    """

    name: str
    package: str
    module: str
    class_name: str
    defaults: Mapping[str, Any]
    summary: str
    lr_free: bool
    tuning: str

    @property
    def label(self) -> str:
        """The optimizer and its settings as lrlab runs it, e.g. ``Prodigy(lr=1.0, d_coef=1.0)``."""
        return self.label_for()

    def label_for(self, lr: float | None = None, **overrides: Any) -> str:
        """The label of this peer built with ``lr`` and ``overrides`` (what `build` would run),
        so a report names a tuned run by its actual settings."""
        settings = {**self.defaults, **overrides}
        if lr is not None:
            settings["lr"] = lr
        args = ", ".join(f"{key}={value!r}" for key, value in settings.items())
        return f"{self.class_name}({args})"

    @property
    def cls(self) -> type[Optimizer]:
        """The optimizer class, importing its package now (never at ``import lrlab`` time).

        A missing package is a one-line ``ValueError`` naming the extra to install, not an
        ``ImportError`` traceback: the user asked for an optimizer, not for a module.
        """
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            root = self.module.partition(".")[0]
            if exc.name in (root, self.module):
                reason = f"{self.package} is not installed"
            else:  # installed, but it (or something it needs) fails to import
                reason = f"{self.package} failed to import: {exc}"
            raise ValueError(
                f"optimizer {self.name!r} needs the {EXTRA} extra: "
                f"pip install 'lrlab[{EXTRA}]' ({reason})"
            ) from None
        cls: type[Optimizer] = getattr(module, self.class_name)
        return cls

    def build(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | None = None,
        **overrides: Any,
    ) -> Optimizer:
        """The peer over ``params`` with lrlab's defaults, ``lr`` and ``overrides`` replacing them.

        ``lr`` and unknown arguments are checked before the package sees them, and the
        package's own ``ValueError``s are prefixed with this optimizer's name (they name the
        value, not the optimizer), so a mistake is one line saying which run it belongs to.
        The packages' construction-time ``print`` notices ("Using decoupled weight decay") are
        swallowed: they would land in the middle of a progress bar or a table.
        """
        from lrlab.optimizers import check_entry_args

        cls = self.cls
        if lr is not None:
            check_lr(self.name, lr)
        kwargs = {**self.defaults, **check_entry_args(self.name, cls, self.defaults, overrides)}
        if lr is not None:
            kwargs["lr"] = lr
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return cls(params, **kwargs)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from None


PEERS: dict[str, PeerEntry] = {
    "sgd-schedulefree": PeerEntry(
        name="sgd-schedulefree",
        package="schedulefree",
        module="schedulefree",
        class_name="SGDScheduleFree",
        # The package's defaults (lr 1.0, momentum 0.9, no warmup). Its authors call lr 10x-50x
        # the classical SGD rate a good start; the seeds' SGD rate is 0.01, so 1.0 is on the
        # high side of that range and is what an untuned run of the package gets.
        defaults={"lr": 1.0, "momentum": 0.9, "warmup_steps": 0},
        summary="Schedule-Free SGD: no LR schedule, evaluated at the iterate average",
        lr_free=False,
        tuning="lr like SGD (10x-50x the classical rate), momentum, warmup_steps",
    ),
    "prodigy": PeerEntry(
        name="prodigy",
        package="prodigyopt",
        module="prodigyopt",
        class_name="Prodigy",
        defaults={"lr": 1.0, "d_coef": 1.0},
        summary="Prodigy: Adam with an estimated step size d; lr multiplies d",
        lr_free=True,
        tuning="none; d_coef (0.5-2) if anything, lr left at 1.0",
    ),
    "dadapt-adam": PeerEntry(
        name="dadapt-adam",
        package="dadaptation",
        module="dadaptation",
        class_name="DAdaptAdam",
        defaults={"lr": 1.0},
        summary="D-Adaptation Adam: Adam with a D-adapted step size; lr multiplies it",
        lr_free=True,
        tuning="none; lr stays 1.0 (lower it only if training is unstable)",
    ),
}
