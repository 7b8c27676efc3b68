"""What `lrlab.tune` returns: the chosen LR with its evidence (`TuneResult`), each rung
(`Rung`) and each trial (`Trial`), as plain frozen data a study can read its cost from."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrlab.record import RunConfig, finite
from lrlab.tuning.choice import Choice

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from lrlab.finder import RangeTest

#: The grid a tuned answer is priced against: 7 LRs x 5 seeds of full runs
#: (``lrlab compare --lr-grid 1e-3:1:7 --seeds 5``, docs/lipschitz.md and docs/lr-finder.md).
GRID_RUNS = 35


@dataclass(frozen=True)
class Trial:
    """One run of a rung: its ``lr`` (the schedule's peak), ``seed``, the rung's budget
    ``steps``, how it ended (``status``: done, diverged or failed, with the ``error``), its
    score (`lrlab.tuning.choice.objective`, smaller is better, ``inf`` when diverged), its
    final validation metric, the steps it trained (fewer when it diverged), its seconds
    (a member of a vectorised group: its share of the group's) and its key in the store."""

    lr: float
    seed: int
    steps: int
    status: str
    objective: float
    val_metric: float | None
    trained: int
    seconds: float
    key: str
    error: str | None = None


@dataclass(frozen=True)
class Rung:
    """One rung: its ``index`` (0 first), budget ``steps``, its ``trials`` (every LR x seed),
    the ``choice`` read from them (``None`` when none gave a value: all diverged or failed),
    and the sides its LRs were widened on (``"low"``/``"high"``, in order) because the best
    sat at an edge."""

    index: int
    steps: int
    trials: tuple[Trial, ...]
    choice: Choice | None
    widened: tuple[str, ...] = ()

    @property
    def lrs(self) -> tuple[float, ...]:
        """The LRs run, ascending."""
        return tuple(sorted({t.lr for t in self.trials}))

    def values(self) -> dict[float, float]:
        """The objective per LR: the median over its seeds (``inf`` once half diverged)."""
        grouped: dict[float, list[float]] = {}
        for trial in self.trials:
            grouped.setdefault(trial.lr, []).append(trial.objective)
        return {lr: float(statistics.median(v)) for lr, v in sorted(grouped.items())}

    def metrics(self) -> dict[float, float | None]:
        """The final validation metric per LR: the median over its seeds that have one."""
        grouped: dict[float, list[float]] = {}
        for trial in self.trials:
            values = grouped.setdefault(trial.lr, [])
            if trial.val_metric is not None and math.isfinite(trial.val_metric):
                values.append(trial.val_metric)
        return {lr: float(statistics.median(v)) if v else None for lr, v in sorted(grouped.items())}


@dataclass(frozen=True)
class TuneResult:
    """`lrlab.tune`'s answer and its evidence.

    ``lr`` is the chosen LR (3 significant digits), ``spec`` the schedule at that LR, ready
    to paste (``constant(lr=0.0123)``, ``one_cycle(lr=0.0123, steps=640)``). ``flat`` is the
    range of LRs whose smoothed full-budget score is within noise of the best (how flat the
    optimum is; clipped to the LRs run at full budget). ``searched`` is the range the first
    rung covered, after any widening; ``bracket`` the range the range test proposed.
    ``edge`` is ``"low"``/``"high"`` when the best stayed at that edge of what was searched
    (widening ran out of budget), and ``warnings`` says so in words, with every other doubt.

    Cost: ``cost_steps`` training steps (every trial's, stored ones too, plus the range
    test's), against ``grid_steps`` (`GRID_RUNS` full runs); ``seconds`` of this call,
    ``compute_seconds`` of every trial and the range test however many calls they took;
    ``ran`` trials ran in this call, ``stored`` came from the store ``db``.
    ``range_minimum`` is the LR at the range test's smoothed loss minimum, the bracket's
    anchor (``None`` when its curves had none).
    """

    task: str
    optimizer: str
    schedule: str
    lr: float
    spec: str
    flat: tuple[float, float]
    searched: tuple[float, float]
    bracket: tuple[float, float]
    edge: str | None
    rungs: tuple[Rung, ...]
    range_test: RangeTest
    metric: str
    target: float | None
    higher_is_better: bool
    total_steps: int
    steps_per_epoch: int
    cost_steps: int
    range_test_steps: int
    seconds: float
    compute_seconds: float
    ran: int
    stored: int
    db: Path
    seed: int
    seeds: int
    budget: float
    range_minimum: float | None = None
    warnings: tuple[str, ...] = ()
    run_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def grid_steps(self) -> int:
        """The steps of the grid a tuned answer replaces: `GRID_RUNS` full runs."""
        return GRID_RUNS * self.total_steps

    @property
    def cost_runs(self) -> float:
        """``cost_steps`` in full runs of the task's budget."""
        return self.cost_steps / self.total_steps

    @property
    def cost_ratio(self) -> float:
        """``cost_steps / grid_steps``: the share of the 7-LR x 5-seed grid's steps spent."""
        return self.cost_steps / self.grid_steps

    @property
    def lipschitz(self) -> Mapping[str, float | None]:
        """LipschitzLR's LRs at the initial weights (``paper``, ``smooth``), from the range
        test; SGD theory when the optimizer is adaptive (`adaptive`)."""
        return self.range_test.lipschitz

    @property
    def adaptive(self) -> bool:
        """Whether the optimizer rescales each coordinate (LipschitzLR is SGD theory then)."""
        return self.range_test.adaptive

    @property
    def constant(self) -> bool:
        return self.spec.startswith("constant(")

    def run_config(self, seed: int) -> RunConfig:
        """The full run at the chosen LR with ``seed``, as `lrlab.train` and `lrlab.compare`
        store it (a constant LR as ``lr``, a schedule as its spec): what a study scores on
        fresh seeds (`lrlab.record.HOLDOUT_SEEDS_FROM` and up)."""
        if self.constant:
            return RunConfig(
                task=self.task, optimizer=self.optimizer, lr=self.lr, seed=seed, **self.run_options
            )
        return RunConfig(
            task=self.task,
            optimizer=self.optimizer,
            schedule=self.spec,
            seed=seed,
            **self.run_options,
        )

    def summary(self) -> str:
        """What ``lrlab tune`` prints: the search, each rung, the choice, the spec, the cost,
        LipschitzLR's values and every warning."""
        metric = self.metric + (f" (target {self.target:g})" if self.target is not None else "")
        lines = [
            f"{self.task} / {self.optimizer} / {self.schedule}: tuned on the validation split's "
            f"{metric}, seed{'s' * (self.seeds > 1)} {_seeds(self.seed, self.seeds)}",
            f"range test: smoothed minimum at {_lr(self.range_minimum)} -> bracket "
            f"{_lr(self.bracket[0])} - {_lr(self.bracket[1])}; searched "
            f"{_lr(self.searched[0])} - {_lr(self.searched[1])}",
        ]
        for rung in self.rungs:
            share = _share(rung.steps, self.total_steps)
            diverged = sum(t.status == "diverged" for t in rung.trials)
            head = (
                f"rung {rung.index + 1}: {len(rung.lrs)} LRs x {rung.steps} steps ({share})"
                + (f", {diverged} diverged" if diverged else "")
                + (f", widened {'/'.join(rung.widened)}" if rung.widened else "")
            )
            if rung.choice is None:
                lines.append(f"{head}: no trial gave a value")
                continue
            choice = rung.choice
            lines.append(
                f"{head}: best {_lr(choice.best)}, within noise {_lr(choice.low)} - "
                f"{_lr(choice.high)} -> {_lr(choice.lr)}"
            )
        low, high = self.flat
        lines += [
            "",
            f"chosen lr = {self.lr:.3g}  (full-budget runs within noise of the best: "
            f"{_lr(low)} - {_lr(high)}, {_flatness(low, high)})",
            f"  {self.spec}",
            "",
            f"cost: {self.cost_steps} steps = {self.cost_runs:.2f} runs = {self.cost_ratio:.2f} "
            f"of the {GRID_RUNS}-run grid (7 LRs x 5 seeds); {len(self.trials())} trials, "
            f"{self.ran} run now, {self.stored} from {self.db}; {self.seconds:.1f} s",
        ]
        theory = " (SGD theory)" if self.adaptive else ""
        values = ", ".join(f"{k} {_lr(v)}" for k, v in self.lipschitz.items())
        if values:
            lines.append(f"LipschitzLR at the initial weights{theory}: {values}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def trials(self) -> list[Trial]:
        """Every trial, rung by rung."""
        return [t for rung in self.rungs for t in rung.trials]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (non-finite numbers as ``None``): the answer, its evidence
        rung by rung, the cost and the range test."""
        data = {
            "lr": self.lr,
            "spec": self.spec,
            "task": self.task,
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "flat": list(self.flat),
            "searched": list(self.searched),
            "bracket": list(self.bracket),
            "range_minimum": self.range_minimum,
            "edge": self.edge,
            "warnings": list(self.warnings),
            "metric": self.metric,
            "target": self.target,
            "higher_is_better": self.higher_is_better,
            "selected_on": "validation",
            "seed": self.seed,
            "seeds": self.seeds,
            "budget": self.budget,
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "cost": {
                "steps": self.cost_steps,
                "range_test_steps": self.range_test_steps,
                "runs": self.cost_runs,
                "grid_steps": self.grid_steps,
                "ratio": self.cost_ratio,
                "seconds": self.seconds,
                "compute_seconds": self.compute_seconds,
                "ran": self.ran,
                "stored": self.stored,
            },
            "lipschitz": dict(self.lipschitz),
            "lipschitz_is_sgd_theory": self.adaptive,
            "rungs": [
                {
                    "index": rung.index,
                    "steps": rung.steps,
                    "widened": list(rung.widened),
                    "choice": None
                    if rung.choice is None
                    else {
                        "lr": rung.choice.lr,
                        "best": rung.choice.best,
                        "low": rung.choice.low,
                        "high": rung.choice.high,
                        "sigma": rung.choice.sigma,
                        "at_edge": rung.choice.at_edge,
                    },
                    "trials": [
                        {
                            "lr": t.lr,
                            "seed": t.seed,
                            "status": t.status,
                            "objective": t.objective,
                            "val_metric": t.val_metric,
                            "trained": t.trained,
                            "seconds": t.seconds,
                            "error": t.error,
                        }
                        for t in rung.trials
                    ],
                }
                for rung in self.rungs
            ],
            "range_test": self.range_test.to_dict(),
            "db": str(self.db),
        }
        return finite(data)  # type: ignore[no-any-return]

    def plot(self, ax: Axes | None = None) -> Axes:
        """The evidence on one chart: the final validation metric against the LR (log axis)
        at each rung, diverged trials marked, the chosen LR and the within-noise range at
        full budget; on a second y axis the range test's smoothed loss, with LipschitzLR's
        values as vertical lines. On ``ax`` or a new figure; never shown."""
        from lrlab.tuning.plot import plot_tune

        return plot_tune(self, ax)


def _lr(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _seeds(first: int, count: int) -> str:
    return str(first) if count == 1 else f"{first}-{first + count - 1}"


def _share(steps: int, total: int) -> str:
    """A rung's budget as a fraction of the run's: ``1/9 run``, ``full run``."""
    if steps >= total:
        return "full run"
    return f"1/{round(total / steps)} run"


def _flatness(low: float, high: float) -> str:
    """How wide the within-noise range is, in words."""
    ratio = high / low if low > 0 else math.inf
    return f"a {ratio:.1f}x range" if ratio > 1.0001 else "a sharp optimum"
