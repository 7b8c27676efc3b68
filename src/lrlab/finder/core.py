"""`find`: the LR range test, and `RangeTest`, its result.

The test (Smith 2017, "Cyclical Learning Rates", section 3.3; popularised by fastai) trains from
the current weights for ``steps`` optimizer steps while the LR ramps from ``start`` to ``end``,
records the loss of every step, smooths it, stops when it blows up, and reads suggestions off
the smoothed curve with the rules of `lrlab.finder.rules`. Then everything it touched is put
back (`lrlab.finder.state.Snapshot`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

import torch
from torch import Tensor, nn
from torch.nn.utils import clip_grad_norm_
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from lrlab.engine.precision import autocast, check_precision
from lrlab.finder import doubt
from lrlab.finder.plot import plot_range_test
from lrlab.finder.rules import Rule, Suggestion, minimum, rule_name, steepest, valley, window
from lrlab.finder.state import Snapshot
from lrlab.lipschitz import LipschitzLR, find_head
from lrlab.lipschitz.bounds import LOSSES, Loss, NonPositiveBound
from lrlab.optimizers import KerasSGD, set_optimizer_mode
from lrlab.record import finite
from lrlab.rng import loader_generators, seed_all
from lrlab.validate import (
    MAX_ACCUMULATION,
    MAX_REPEATS,
    MAX_STEPS,
    ArgumentTypeError,
    check_instance,
    check_number,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Mode = Literal["exponential", "linear"]
Stop = Literal["completed", "diverged", "non-finite"]
LossFn = Callable[[Any, Any], Tensor]

# The rule `RangeTest.suggested_lr` reads, chosen from the measurements in docs/lr-finder.md
# (`lrlab study lr-finder`, lrlab.studies.lr_finder): see `DEFAULT_RULES`.
RECOMMENDED = "minimum"
DEFAULT_RULES: tuple[Rule, ...] = (minimum, valley, steepest)
"""The rules `find` runs by default, the recommended one first (its median over repeats is
`RangeTest.suggested_lr`).

Why ``minimum`` (a tenth of the LR at the smoothed loss's minimum): docs/lr-finder.md trains
every rule's suggestion, as a constant LR and as the peak of a one-cycle schedule, against the
best LR of a tuned 7-value grid on iris, digits, mnist5k, breast-cancer, regression and the
example user task (``examples/digits_cnn.py``) x SGD, Momentum and Adam x 5 seeds
(``lrlab study lr-finder``). Reliability comes first: in the 32 cells where the tuned
grid reached the target on every seed, ``minimum`` did too in 30 (154 of 160 seeds),
``valley`` in 24 (142 seeds, at a median 2.67x the tuned best's steps: it sits an order of
magnitude below the best LR), ``steepest`` in 12 (84 seeds: on the noisy tasks,
iris and regression, its steepest point is batch noise at the start of the curve, and on
digits it lands past the edge of stability), while ``steepest`` was fastest where it worked.

Where ``minimum`` fails the goal (every seed reaching the target within 1.25x the tuned best's
median steps, at <= 1/5 of the grid's cost; the cost it meets, at 0.15-0.18 of the grid's
runs): on iris with Adam (the 4-4-6-3 ReLU network dies at its LR, 20-120x the tuned 0.003),
and in 18 cells on speed, a median 1.5x the tuned steps there, worst as a one-cycle peak (up
to 10x on regression: a tuned one-cycle peak is a median 3.2x the tuned constant LR, and a
range test suggests one LR for both). No rule meets the goal everywhere; docs/lr-finder.md
lists every cell."""


def lr_ramp(start: float, end: float, steps: int, mode: Mode = "exponential") -> list[float]:
    """The LRs of a range test's ``steps`` steps: ``start * (end / start) ** (i / (steps - 1))``
    (exponential) or ``start + (end - start) * i / (steps - 1)`` (linear), for
    ``i = 0 .. steps - 1``; the first is exactly ``start`` and the last exactly ``end``
    (torch-lr-finder's ``ExponentialLR``/``LinearLR`` reach ``end`` too; fastai's ramp stops
    one step short of it).

    >>> lr_ramp(1e-3, 10.0, 5)
    [0.001, 0.01, 0.1, 1.0, 10.0]
    >>> lr_ramp(0.1, 0.5, 5, "linear")
    [0.1, 0.2, 0.30000000000000004, 0.4, 0.5]
    """
    last = steps - 1
    if mode == "exponential":
        ratio = end / start
        lrs = [start * ratio ** (i / last) for i in range(steps)]
    else:
        lrs = [start + (end - start) * (i / last) for i in range(steps)]
    lrs[0], lrs[-1] = start, end
    return lrs


class _EMA:
    """The smoothing, one loss at a time (`smooth` over a whole series)."""

    def __init__(self, beta: float) -> None:
        self.beta, self.average, self.count = beta, 0.0, 0

    def add(self, loss: float) -> float:
        self.average = self.beta * self.average + (1.0 - self.beta) * loss
        self.count += 1
        return self.average / (1.0 - self.beta**self.count)


def smooth(losses: Sequence[float], beta: float) -> list[float]:
    """The bias-corrected EMA the range tests use (fastai's ``AvgSmoothLoss``, Lightning's
    ``_LRCallback``): ``a_i = beta a_(i-1) + (1 - beta) loss_i`` from ``a_(-1) = 0``, reported
    as ``a_i / (1 - beta ** (i + 1))``, so the first value is the first loss itself and a
    constant loss stays constant. ``beta = 0`` is no smoothing.

    >>> smooth([2.0, 2.0, 2.0], 0.9)
    [2.0, 2.0, 2.0]
    >>> [round(v, 6) for v in smooth([1.0, 0.0], 0.5)]
    [1.0, 0.333333]
    """
    ema = _EMA(beta)
    return [ema.add(loss) for loss in losses]


@dataclass(frozen=True)
class Curve:
    """One pass of the test (one repeat): ``losses[i]`` is the loss of step ``i``'s batch
    (the mean over its ``accumulation_steps`` batches), computed before that step's update at
    ``lrs[i]``; ``smoothed`` is `smooth` of it. The curve ends where the test stopped:
    ``completed`` (all steps), ``diverged`` (the smoothed loss exceeded ``diverge`` times its
    best; that point is the last) or ``non-finite`` (the last loss is NaN or infinite, and no
    update was made with it). ``seed`` is the seed this repeat ran with; the rules read
    ``smoothed[window[0]:window[1]]``, and ``suggestions`` holds their answers, indexed into
    the whole curve."""

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    stop: Stop
    seed: int
    window: tuple[int, int]
    suggestions: Mapping[str, Suggestion | None]


def _log_median(values: Sequence[float]) -> float:
    """The median on a log scale: the middle value, or the geometric mean of the two middle
    ones (an LR between 0.01 and 1 is 0.1, not 0.505).

    >>> _log_median([0.01, 1.0]), _log_median([3.0, 1.0, 2.0])
    (0.1, 2.0)
    """
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return math.sqrt(ordered[middle - 1] * ordered[middle])


@dataclass(frozen=True)
class RuleResult:
    """One rule over the repeats: ``values[r]`` is its suggestion on repeat ``r`` (``None``
    where that curve gave it nothing); ``lr`` is their median (on a log scale, `_log_median`),
    ``low``/``high`` the smallest and largest; all ``None`` when no repeat gave one."""

    rule: str
    values: tuple[float | None, ...]
    lr: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, rule: str, values: Sequence[float | None]) -> RuleResult:
        found = [v for v in values if v is not None]
        if not found:
            return cls(rule, tuple(values), None, None, None)
        return cls(rule, tuple(values), _log_median(found), min(found), max(found))


@dataclass(frozen=True)
class RangeTest:
    """The result of `find`: the planned ``lrs``, one `Curve` per repeat, each rule's
    suggestion over the repeats (`RuleResult`, keyed by rule name, the recommended rule
    first), LipschitzLR's LR at the initial weights for ``bound="paper"`` and
    ``bound="smooth"`` when asked for (``None`` where the bound is not positive, e.g. the
    paper's MSE bound), the settings, and the seconds spent (the range test with its snapshot
    and restores, and the LipschitzLR pass apart). ``adaptive``: the optimizer is not of
    SGD's family (plain, momentum, Nesterov, Schedule-Free SGD), so LipschitzLR's values are
    SGD theory for it. `doubts` says when the curve cannot place an LR
    (`lrlab.finder.doubt`)."""

    lrs: tuple[float, ...]
    curves: tuple[Curve, ...]
    suggestions: Mapping[str, RuleResult]
    recommended: str
    lipschitz: Mapping[str, float | None]
    start: float
    end: float
    steps: int
    mode: Mode
    smoothing: float
    diverge: float | None
    accumulation_steps: int
    seed: int
    seconds: float
    lipschitz_seconds: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)
    adaptive: bool = False
    clip_norm: float | None = None
    precision: str = "fp32"

    @property
    def doubts(self) -> tuple[doubt.Doubt, ...]:
        """The signs that this test cannot place an LR: a flat or noisy curve, a spread over
        repeats wider than a decade, a minimum at the chart's edge (`lrlab.finder.doubt`)."""
        return doubt.doubts(self)

    @property
    def doubtful(self) -> bool:
        """Whether the test shows any sign of doubt (`doubts`)."""
        return bool(self.doubts)

    def warning(self, command: str | None = None) -> str | None:
        """One line saying why the test is in doubt, pointing to ``lrlab tune`` (``command``:
        the tune command to suggest); ``None`` when it shows no sign."""
        return doubt.warning(self, command)

    @property
    def suggested_lr(self) -> float:
        """The recommended rule's median suggestion. A ``ValueError`` when no repeat gave one
        (the loss blew up within the burn-in, or never fell): lower ``start``, or give more
        ``steps``."""
        result = self.suggestions[self.recommended]
        if result.lr is None:
            stops = ", ".join(
                f"{c.stop} after {len(c.losses)} steps (lr {c.lrs[-1]:.3g})" for c in self.curves
            )
            raise ValueError(
                f"range test: rule {self.recommended!r} found no LR on any repeat ({stops}); "
                "lower start or raise steps"
            )
        return result.lr

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (non-finite floats as ``None``): ``suggested_lr`` at the top
        (``None`` when there is none), then one entry per rule, LipschitzLR's values, the
        settings and every curve."""
        try:
            suggested: float | None = self.suggested_lr
        except ValueError:
            suggested = None
        data = {
            "suggested_lr": suggested,
            "recommended": self.recommended,
            "suggestions": {
                name: {"lr": r.lr, "low": r.low, "high": r.high, "values": list(r.values)}
                for name, r in self.suggestions.items()
            },
            "doubtful": self.doubtful,
            "doubts": [{"kind": d.kind, "value": d.value, "detail": d.detail} for d in self.doubts],
            "lipschitz": dict(self.lipschitz),
            "lipschitz_is_sgd_theory": self.adaptive,
            "settings": {
                "start": self.start,
                "end": self.end,
                "steps": self.steps,
                "mode": self.mode,
                "smoothing": self.smoothing,
                "diverge": self.diverge,
                "accumulation_steps": self.accumulation_steps,
                "clip_norm": self.clip_norm,
                "precision": self.precision,
                "repeats": len(self.curves),
                "seed": self.seed,
            },
            "seconds": self.seconds,
            "lipschitz_seconds": self.lipschitz_seconds,
            "extra": dict(self.extra),
            "curves": [
                {
                    "seed": c.seed,
                    "stop": c.stop,
                    "window": list(c.window),
                    "lrs": list(c.lrs),
                    "losses": list(c.losses),
                    "smoothed": list(c.smoothed),
                }
                for c in self.curves
            ],
        }
        return finite(data)  # type: ignore[no-any-return]

    def plot(self, ax: Axes | None = None) -> Axes:
        """Loss against LR on a log axis: each repeat's raw losses faint, the median smoothed
        curve with its spread over repeats as a band, each rule's suggestion marked on it
        (with its min-max over repeats), LipschitzLR's values as vertical lines. Draws on
        ``ax``, or on a new figure (never registered with pyplot) when ``ax`` is ``None``;
        never shows anything. Returns the axes (``ax.figure.savefig(...)`` saves it)."""

        return plot_range_test(self, ax)


# -- the test ------------------------------------------------------------------------------------


def find(
    model: nn.Module,
    optimizer: Optimizer,
    data: DataLoader[Any] | Iterable[Sequence[Any]],
    loss_fn: LossFn,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    mode: Mode = "exponential",
    smoothing: float = 0.98,
    diverge: float | None = 4.0,
    accumulation_steps: int = 1,
    repeats: int = 1,
    seed: int = 0,
    rules: Sequence[Rule] = DEFAULT_RULES,
    lipschitz: Loss | None = None,
    clip_norm: float | None = None,
    precision: str = "fp32",
) -> RangeTest:
    """Run an LR range test on ``model`` with ``optimizer`` and put everything back.

    Each step ``i`` sets every param group's LR to ``lr_ramp(start, end, steps, mode)[i]``
    (times the group's ratio to the first group's LR, so discriminative LRs keep their
    proportions), computes ``loss_fn(model(inputs), targets)`` over ``accumulation_steps``
    batches (each loss divided by ``accumulation_steps`` before ``backward``: for a mean loss
    and equal batches, the same gradient and recorded loss as one batch that many times
    larger) and takes one optimizer step, with the model in train mode (a Schedule-Free
    optimizer in its ``train()`` mode), as lrlab's engine trains: ``precision="bf16"`` runs
    the forward pass and the loss under bfloat16 autocast (`lrlab.engine.precision`), and
    ``clip_norm`` clips the gradients' global norm (``torch.nn.utils.clip_grad_norm_``)
    after the backward passes, before the step. Weight decay by parameter group is the
    optimizer's own: build it with the groups (`lrlab.weight_decay_groups`; `find_on_task`
    does, from ``decay_params``). The loss is smoothed with `smooth` (``smoothing`` is the
    EMA's beta, 0.98 as in fastai and Lightning); the test stops when the smoothed loss
    exceeds ``diverge`` times its best so far (4 as in fastai and Lightning; ``None`` never
    stops early; only checked while the best is positive) or a loss is NaN or infinite.

    ``data``: a ``DataLoader``, iterated afresh whenever a pass ends, or any other iterable of
    ``(inputs, targets, ...)`` batches, read once (at most ``steps * accumulation_steps``
    batches) and cycled. Tensors (also inside lists, tuples and dicts) are moved to the
    model's device; ``model`` gets ``inputs`` as its one argument.

    ``repeats`` runs the test that many times from the same weights and optimizer state,
    repeat ``r`` with seed ``seed + r``; each rule's suggestion is reported as the median
    over repeats with its range (`RuleResult`), so its stability shows. ``seed`` makes the test
    reproducible: for the duration of repeat ``r``, torch's global CPU generator (CUDA's when
    initialised), numpy's and Python's ``random`` are seeded with ``seed + r``, and so is a
    DataLoader's own ``generator`` if it has one. A DataLoader with ``shuffle=True`` therefore
    draws a new order per repeat, and Dropout new masks. An iterable of batches is used in the
    order given on repeat 0 and in an order shuffled with ``seed + r`` on repeat ``r >= 1``.
    Repeats run one after another; repeat ``r`` of ``find(..., repeats=n, seed=s)`` on a
    DataLoader is ``find(..., repeats=1, seed=s + r)``.

    ``rules`` are the suggestion rules (`lrlab.finder.rules`); the first gives
    `RangeTest.suggested_lr` (default `DEFAULT_RULES`, recommended first).

    ``lipschitz`` (``"cross_entropy"``, ``"bce"`` or ``"mse"``, the loss ``loss_fn`` computes)
    also computes `lrlab.LipschitzLR`'s LR for ``bound="paper"`` and ``bound="smooth"`` at
    the same initial weights, from one eval-mode pass over the same data (one epoch of a
    DataLoader seeded with ``seed``; the batches read, for an iterable), as LipschitzLR's
    own epoch-0 value; the model's final trainable layer must be an ``nn.Linear``.

    Afterwards the model's parameters, buffers and gradients, each module's train/eval mode,
    the optimizer's state and param groups, and the RNGs are exactly as before (see
    `lrlab.finder.state`), also when the test stops on an exception: training after ``find``
    is bit-identical to training without it. A LipschitzLR attached to the model would see the
    test's batches: attach it after ``find``.

    Bad input is a one-line ``ValueError`` naming the parameter, before any training: a model
    without parameters, ``start``/``end`` not finite and positive or ``start >= end``,
    ``steps < 10``, an unknown ``mode``, ``smoothing`` outside [0, 1), ``diverge <= 1``,
    ``accumulation_steps``/``repeats`` < 1, a negative ``seed``, no ``rules``, an unknown
    ``lipschitz`` loss, ``clip_norm <= 0``, an unknown ``precision``; data that yields no
    batch, and a loss that is not finite on the very first batch, raise too (the model
    restored).

    Example::

        result = lrlab.find(model, optimizer, train_loader, nn.functional.cross_entropy)
        print(result.suggested_lr)
        result.plot().figure.savefig("range-test.png")
    """
    _check_arguments(
        start, end, steps, mode, smoothing, diverge, accumulation_steps, repeats, seed, rules
    )
    if clip_norm is not None:
        check_number("", "clip_norm", clip_norm, positive=True)
    check_precision("", precision)
    if lipschitz is not None and lipschitz not in LOSSES:
        raise ValueError(
            f"lipschitz must be one of {', '.join(LOSSES)} or None, got lipschitz={lipschitz!r}"
        )
    check_instance("", "model", model, nn.Module, "a torch nn.Module")
    check_instance("", "optimizer", optimizer, Optimizer, "a torch Optimizer")
    if not callable(loss_fn):
        raise ArgumentTypeError(
            f"loss_fn must be a function (outputs, targets) -> loss, got loss_fn={loss_fn!r}"
        )
    params = list(model.parameters())
    if not params:
        raise ValueError(
            f"model must have parameters to train, got a {type(model).__name__} with none"
        )
    own = {id(p) for p in params}
    held = [p for group in optimizer.param_groups for p in group["params"]]
    if not any(id(p) in own for p in held):  # (extra ones, a loss's temperature, are fine)
        raise ValueError(
            f"optimizer must update the model's parameters, got one holding {len(held)} "
            "tensor(s), none of them the model's (built for another model?)"
        )
    device = params[0].device
    source = _BatchSource(data, steps * accumulation_steps, device)
    lrs = lr_ramp(start, end, steps, mode)
    first = float(optimizer.param_groups[0]["lr"])
    ratios = [float(g["lr"]) / first if first else 1.0 for g in optimizer.param_groups]

    snapshot = Snapshot(model, optimizer, source.generators)
    curves: list[Curve] = []
    lipschitz_values: dict[str, float | None] = {}
    lipschitz_seconds = 0.0
    began = time.perf_counter()
    try:
        if lipschitz is not None:
            tick = time.perf_counter()
            set_optimizer_mode(optimizer, training=True)

            def one_pass() -> Iterable[tuple[Any, Any]]:
                seed_all(seed, source.generators)  # each bound sees the same batches
                return source.one_pass()

            lipschitz_values = _lipschitz_lrs(model, optimizer, one_pass, lipschitz)
            snapshot.restore()
            lipschitz_seconds = time.perf_counter() - tick
        for repeat in range(repeats):
            if repeat:
                snapshot.restore()
            seed_all(seed + repeat, source.generators)
            set_optimizer_mode(optimizer, training=True)
            model.train()
            runner = _Run(
                model,
                optimizer,
                loss_fn,
                accumulation_steps,
                smoothing,
                diverge,
                clip_norm,
                precision,
                device,
            )
            with torch.enable_grad():  # also when called under torch.no_grad()
                curves.append(
                    runner.curve(lrs, ratios, source.stream(repeat, seed), seed + repeat, rules)
                )
    finally:
        snapshot.restore()
    seconds = time.perf_counter() - began - lipschitz_seconds
    names = [rule_name(rule) for rule in rules]
    suggestions = {
        name: RuleResult.of(name, [_lr(c.suggestions[name]) for c in curves]) for name in names
    }
    return RangeTest(
        lrs=tuple(lrs),
        curves=tuple(curves),
        suggestions=suggestions,
        recommended=names[0],
        lipschitz=lipschitz_values,
        start=float(start),
        end=float(end),
        steps=steps,
        mode=mode,
        smoothing=float(smoothing),
        diverge=None if diverge is None else float(diverge),
        accumulation_steps=accumulation_steps,
        seed=seed,
        seconds=seconds,
        lipschitz_seconds=lipschitz_seconds,
        adaptive=not sgd_family(optimizer),
        clip_norm=None if clip_norm is None else float(clip_norm),
        precision=precision,
    )


def sgd_family(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` steps along the gradient itself (``torch.optim.SGD`` with or
    without momentum, Keras' momentum, Schedule-Free SGD): the optimizers LipschitzLR's
    theory is about. Adam, RMSprop, Adagrad and the rest rescale each coordinate."""
    return isinstance(optimizer, torch.optim.SGD | KerasSGD) or type(optimizer).__name__ in (
        "SGDScheduleFree",
        "SGDScheduleFreeReference",
    )


def _lr(suggestion: Suggestion | None) -> float | None:
    return None if suggestion is None else suggestion.lr


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_arguments(
    start: object,
    end: object,
    steps: object,
    mode: object,
    smoothing: object,
    diverge: object,
    accumulation_steps: object,
    repeats: object,
    seed: object,
    rules: object,
) -> None:
    """Every argument of `find` that needs no model or data, one-line ``ValueError``s."""
    if not (_is_real(start) and math.isfinite(start) and start > 0):
        raise ValueError(f"start must be a finite number > 0, got start={start!r}")
    if not (_is_real(end) and math.isfinite(end) and end > 0):
        raise ValueError(f"end must be a finite number > 0, got end={end!r}")
    if not start < end:
        raise ValueError(f"start must be below end, got start={start!r}, end={end!r}")
    test_steps = _check_count("steps", steps, 10, MAX_STEPS)
    if mode not in ("exponential", "linear"):
        raise ValueError(f"mode must be exponential or linear, got mode={mode!r}")
    if not (_is_real(smoothing) and 0 <= smoothing < 1):
        raise ValueError(f"smoothing must be in [0, 1), got smoothing={smoothing!r}")
    if diverge is not None and not (_is_real(diverge) and math.isfinite(diverge) and diverge > 1):
        raise ValueError(f"diverge must be a finite number > 1 or None, got diverge={diverge!r}")
    accumulated = _check_count("accumulation_steps", accumulation_steps, 1, MAX_ACCUMULATION)
    _check_count("repeats", repeats, 1, MAX_REPEATS)
    if test_steps * accumulated > MAX_STEPS:
        raise ValueError(
            f"steps x accumulation_steps (the batches a test reads) must be <= {MAX_STEPS}, "
            f"got steps={steps!r}, accumulation_steps={accumulation_steps!r}"
        )
    if not (_is_int(seed) and seed >= 0):
        raise ValueError(f"seed must be an integer >= 0, got seed={seed!r}")
    if not (isinstance(rules, Sequence) and rules and all(callable(r) for r in rules)):
        raise ValueError(f"rules must be a non-empty sequence of functions, got rules={rules!r}")


def _check_count(name: str, value: object, minimum: int, maximum: int) -> int:
    """A count of `find`: an integer in ``[minimum, maximum]`` (the bounds of
    `lrlab.validate`, so no count asks for work without end)."""
    if not (_is_int(value) and value >= minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    if value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {name}={value!r}")
    return value


def _to(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it (also inside lists, tuples and dicts) on ``device``."""
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, list | tuple):
        return type(value)(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def _split(batch: Any, device: torch.device) -> tuple[Any, Any]:
    if not isinstance(batch, list | tuple) or len(batch) < 2:
        raise ValueError(
            "data must yield (inputs, targets, ...) batches, got a batch of type "
            f"{type(batch).__name__}"
        )
    return _to(batch[0], device), _to(batch[1], device)


class _BatchSource:
    """The batches of ``data`` for each repeat (see `find`'s ``data`` and ``seed``)."""

    def __init__(self, data: Any, limit: int, device: torch.device) -> None:
        self.data, self.limit, self.device = data, limit, device
        self.loader = data if isinstance(data, DataLoader) else None
        self._items: list[Any] | None = None
        self.generators = loader_generators(self.loader) if self.loader is not None else []

    def _read(self) -> list[Any]:
        """An iterable's batches, read once (at most ``limit``)."""
        if self._items is None:
            items = []
            for batch in self.data:
                items.append(batch)
                if len(items) >= self.limit:
                    break
            if not items:
                raise ValueError("data must yield at least one batch, got none")
            self._items = items
        return self._items

    def one_pass(self) -> Iterable[tuple[Any, Any]]:
        """One pass over the data (a DataLoader's epoch, drawn when iterated), as
        ``(inputs, targets)`` on the model's device, one batch at a time."""
        batches = self.loader if self.loader is not None else self._read()
        return (_split(batch, self.device) for batch in batches)

    def stream(self, repeat: int, seed: int) -> Iterator[tuple[Any, Any]]:
        """Endless ``(inputs, targets)`` for repeat ``repeat``, on the model's device."""
        if self.loader is not None:
            while True:
                empty = True
                for batch in self.loader:
                    empty = False
                    yield _split(batch, self.device)
                if empty:
                    raise ValueError("data must yield at least one batch, got none")
        items = self._read()
        order: list[int] = list(range(len(items)))
        if repeat:
            generator = torch.Generator().manual_seed(seed + repeat)
            order = torch.randperm(len(items), generator=generator).tolist()
        while True:
            for index in order:
                yield _split(items[index], self.device)


@dataclass
class _Run:
    """One pass of the test."""

    model: nn.Module
    optimizer: Optimizer
    loss_fn: LossFn
    accumulation_steps: int
    smoothing: float
    diverge: float | None
    clip_norm: float | None = None
    precision: str = "fp32"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def curve(
        self,
        lrs: Sequence[float],
        ratios: Sequence[float],
        batches: Iterator[tuple[Any, Any]],
        seed: int,
        rules: Sequence[Rule],
    ) -> Curve:
        losses: list[float] = []
        smoothed: list[float] = []
        ema, best = _EMA(self.smoothing), math.inf
        stop: Stop = "completed"
        for i, lr in enumerate(lrs):
            self._set_lr(lr, ratios)
            value = self._loss_and_gradient(batches)
            losses.append(value)
            if not math.isfinite(value):
                if i == 0:
                    raise ValueError(
                        f"loss_fn returned {value} on the first batch, before any update "
                        f"(lr {lr:.3g}): check the model, loss_fn and data"
                    )
                smoothed.append(math.nan)
                stop = "non-finite"
                break
            if self.clip_norm is not None:
                clip_grad_norm_(self.model.parameters(), self.clip_norm)
            self.optimizer.step()
            current = ema.add(value)
            smoothed.append(current)
            best = min(best, current)
            if self.diverge is not None and best > 0 and current > self.diverge * best:
                stop = "diverged"
                break
        points = lrs[: len(losses)]
        begin, end = window(len(lrs), smoothed)
        suggestions: dict[str, Suggestion | None] = {}
        for rule in rules:
            found = rule(points[begin:end], smoothed[begin:end]) if end - begin >= 2 else None
            if found is not None:
                found = Suggestion(found.rule, found.lr, found.index + begin)
            suggestions[rule_name(rule)] = found
        return Curve(
            lrs=tuple(points),
            losses=tuple(losses),
            smoothed=tuple(smoothed),
            stop=stop,
            seed=seed,
            window=(begin, end),
            suggestions=suggestions,
        )

    def _set_lr(self, lr: float, ratios: Sequence[float]) -> None:
        for group, ratio in zip(self.optimizer.param_groups, ratios, strict=True):
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(lr * ratio)
            else:
                group["lr"] = lr * ratio

    def _loss_and_gradient(self, batches: Iterator[tuple[Any, Any]]) -> float:
        """Backward over ``accumulation_steps`` batches; the mean of their losses."""
        self.optimizer.zero_grad(set_to_none=True)
        k = self.accumulation_steps
        total = 0.0
        for _ in range(k):
            inputs, targets = next(batches)
            with autocast(self.precision, self.device):
                loss = self.loss_fn(self.model(inputs), targets)
            value = float(loss.item())
            if not math.isfinite(value):
                return value
            (loss / k if k > 1 else loss).backward()  # type: ignore[no-untyped-call]
            total += value
        return total / k


def _lipschitz_lrs(
    model: nn.Module,
    optimizer: Optimizer,
    one_pass: Callable[[], Iterable[tuple[Any, Any]]],
    loss: Loss,
) -> dict[str, float | None]:
    """LipschitzLR's epoch-0 LR (bound paper and smooth) at the current weights, each from an
    eval-mode pass over ``one_pass()``; its head wrapper is removed afterwards, also on
    error."""

    _, head = find_head(model)
    previous = head.__dict__.get("forward")
    values: dict[str, float | None] = {}
    try:
        for bound in ("paper", "smooth"):
            try:
                scheduler = LipschitzLR(optimizer, model, loss=loss, bound=bound, data=one_pass())
            except NonPositiveBound:
                values[bound] = None
            else:
                scheduler.remove()
                values[bound] = float(scheduler.history[-1]["lr"])
            _restore_forward(head, previous)
    finally:
        _restore_forward(head, previous)
    return values


def _restore_forward(module: nn.Module, previous: object) -> None:
    if module.__dict__.get("forward") is previous:
        return
    if previous is None:
        del module.forward
    else:
        setattr(module, "forward", previous)  # noqa: B010 (an instance attribute, as it was)
