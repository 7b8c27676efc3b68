"""Performance profiles (Dolan & Moré 2002, "Benchmarking optimization software with
performance profiles", Math. Programming 91), scored as AlgoPerf scores them, and the
geometric-mean speedup over a baseline method.

The input is plain data: ``costs[task][method]``, the cost of a method on a task (steps or
seconds to the target), a positive number, ``math.inf`` for a miss. With T the tasks and
``best(t) = min_m costs[t][m]``:

- the *performance ratio* ``r(t, m) = costs[t][m] / best(t)``: 1 for the fastest method,
  ``inf`` for a miss (and for every method of a task no method reached: it counts as a miss
  for all, as a workload nobody finishes does in AlgoPerf), also for a method with no cost on
  that task (not run there);
- the *profile* ``rho_m(tau) = |{t in T : r(t, m) <= tau}| / |T|``, for ``tau >= 1``: the
  fraction of tasks ``m`` reaches within ``tau`` times the best method's cost. It is a
  non-decreasing step function of ``tau`` in ``[0, 1]``; ``rho_m(1)`` is the fraction of tasks
  where ``m`` is the fastest (ties included), ``rho_m(inf)`` the fraction it reaches at all;
- the *integrated score*, exactly AlgoPerf's (mlcommons/algorithmic-efficiency,
  ``scoring/performance_profile.py``: ``compute_performance_profiles`` evaluates ``rho`` at
  ``np.linspace(min_tau, max_tau, num_points)``, called from ``scoring/score_submissions.py``
  with ``min_tau=1.0, max_tau=4.0, num_points=100, scale='linear'``; that file's
  ``compute_leaderboard_score(normalize=True)`` takes ``np.trapz(rho, taus)`` divided by
  ``max_tau - min_tau``): the trapezoid rule over 100 evenly spaced ``tau`` from 1 to
  ``tau_max``, over ``tau_max - 1``. It lies in ``[0, 1]``: 1 for a method fastest on every task,
  0 for one that is never within ``tau_max`` times the best. (AlgoPerf first sets costs beyond
  4x the best to ``inf``; with ``tau_max = 4`` that changes no ``rho`` on ``[1, 4]``.) Being the
  trapezoid rule on a grid, it differs from the exact area of the step function by at most
  half a grid step per task, ``(tau_max - 1) / (2 * 99)``, over ``tau_max - 1``: it equals the
  exact area when each ratio lies at 1, beyond ``tau_max``, or midway between grid points;
- the *geometric-mean speedup* of ``m`` over a baseline ``b``:
  ``exp(mean over t of log(costs[t][b] / costs[t][m]))`` over the tasks **both reach** (a
  ratio above 1: ``m`` needs less than the baseline). Tasks where either misses are left out
  and counted (`Speedup.tasks` of `Speedup.of`), never given a made-up cost. AlgoPerf's
  ``scoring/compute_speedups.py`` differs on both points: it divides the other way (time of
  ``m`` over time of the baseline, below 1 for a faster ``m``) and replaces a miss by the
  workload's budget plus one second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lrlab.report.plots import plot_profiles
from lrlab.validate import check_choice, check_int, check_number, fail

if TYPE_CHECKING:
    from lrlab.report.summary import Summary

__all__ = [
    "PerformanceProfile",
    "Profiles",
    "Speedup",
    "default_baseline",
    "geometric_mean_speedup",
    "integrated_score",
    "performance_profile",
    "performance_ratios",
    "profiles",
    "rho",
    "tau_grid",
]

#: AlgoPerf's upper end of the profile (``max_tau`` in ``scoring/score_submissions.py``).
TAU_MAX = 4.0
#: AlgoPerf's number of points on ``[1, tau_max]`` (``num_points``).
POINTS = 100

Costs = Mapping[str, Mapping[str, float]]


def _check_costs(costs: Costs) -> None:
    for task, row in costs.items():
        for method, cost in row.items():
            if not (isinstance(cost, int | float) and not isinstance(cost, bool)) or not (cost > 0):
                raise fail(
                    "performance_profile",
                    f"costs[{task!r}][{method!r}]",
                    cost,
                    "a number > 0 (math.inf for a miss)",
                )


def _methods(costs: Costs) -> list[str]:
    """Every method of any task, in the order they first appear."""
    return list(dict.fromkeys(method for row in costs.values() for method in row))


def performance_ratios(costs: Costs) -> dict[str, dict[str, float]]:
    """``{method: {task: r(task, method)}}``: each cost over the task's best, ``inf`` for a
    miss, for a method not run on the task, and for every method of a task nobody reached.

    >>> performance_ratios({"a": {"x": 100, "y": 150}, "b": {"x": math.inf, "y": 50}})
    {'x': {'a': 1.0, 'b': inf}, 'y': {'a': 1.5, 'b': 1.0}}
    """
    _check_costs(costs)
    ratios: dict[str, dict[str, float]] = {m: {} for m in _methods(costs)}
    for task, row in costs.items():
        best = min(row.values(), default=math.inf)
        for method in ratios:
            cost = row.get(method, math.inf)
            ratios[method][task] = cost / best if math.isfinite(cost) else math.inf
    return ratios


def rho(ratios: Sequence[float], tau: float) -> float:
    """The fraction of ``ratios`` (one per task) at most ``tau``.

    >>> rho([1.0, 1.5, math.inf], 1.5)
    0.6666666666666666
    """
    if not ratios:
        return 0.0
    return sum(r <= tau for r in ratios) / len(ratios)


def tau_grid(tau_max: float = TAU_MAX, points: int = POINTS) -> tuple[float, ...]:
    """AlgoPerf's ``np.linspace(1, tau_max, points)`` (the same floats).

    >>> tau_grid(4.0, 4)
    (1.0, 2.0, 3.0, 4.0)
    """
    import numpy as np

    if not check_number("tau_grid", "tau_max", tau_max) > 1:
        raise fail("tau_grid", "tau_max", tau_max, "> 1")
    check_int("tau_grid", "points", points, minimum=2)
    return tuple(float(t) for t in np.linspace(1.0, tau_max, points))


def integrated_score(
    ratios: Sequence[float], tau_max: float = TAU_MAX, points: int = POINTS
) -> float:
    """AlgoPerf's score of one method from its ratios (one per task): the trapezoid rule of
    ``rho`` over `tau_grid`, divided by ``tau_max - 1`` (see the module's docstring).

    >>> round(integrated_score([1.0, 1.5, math.inf]), 12)  # (3 + 2.5 + 0) / 3 tasks / 3
    0.611111111111
    """
    taus = tau_grid(tau_max, points)
    values = [rho(ratios, tau) for tau in taus]
    area = sum(
        (values[i] + values[i + 1]) / 2 * (taus[i + 1] - taus[i]) for i in range(len(taus) - 1)
    )
    return area / (taus[-1] - taus[0])


@dataclass(frozen=True)
class PerformanceProfile:
    """The profile of each method over ``tasks`` for one cost (``"steps"`` or ``"seconds"``
    to the target): its ratios (in ``tasks`` order), ``rho`` at each of ``taus`` (AlgoPerf's
    grid) and its integrated score."""

    cost: str
    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    ratios: dict[str, tuple[float, ...]]
    taus: tuple[float, ...]
    rho: dict[str, tuple[float, ...]]
    scores: dict[str, float]
    tau_max: float

    def at(self, method: str, tau: float) -> float:
        """``rho`` of ``method`` at any ``tau`` (exact, not read off the grid)."""
        check_choice("PerformanceProfile.at", "method", method, self.methods)
        return rho(self.ratios[method], tau)

    def reached(self, method: str) -> int:
        """On how many tasks ``method`` reached the target (a finite ratio)."""
        check_choice("PerformanceProfile.reached", "method", method, self.methods)
        return sum(math.isfinite(r) for r in self.ratios[method])


def performance_profile(
    costs: Costs, *, cost: str = "steps", tau_max: float = TAU_MAX, points: int = POINTS
) -> PerformanceProfile:
    """The `PerformanceProfile` of ``costs[task][method]`` (``math.inf``: a miss).

    >>> profile = performance_profile({"a": {"x": 2, "y": 3}, "b": {"x": 4, "y": 4}})
    >>> profile.ratios["y"], profile.at("y", 1.5), round(profile.scores["x"], 4)
    ((1.5, 1.0), 1.0, 1.0)
    """
    ratios = performance_ratios(costs)
    tasks = tuple(costs)
    taus = tau_grid(tau_max, points)
    table = {m: tuple(ratios[m][t] for t in tasks) for m in ratios}
    return PerformanceProfile(
        cost=cost,
        tasks=tasks,
        methods=tuple(table),
        ratios=table,
        taus=taus,
        rho={m: tuple(rho(r, tau) for tau in taus) for m, r in table.items()},
        scores={m: integrated_score(r, tau_max, points) for m, r in table.items()},
        tau_max=float(tau_max),
    )


@dataclass(frozen=True)
class Speedup:
    """The geometric mean of ``baseline cost / method cost`` over the ``tasks`` of ``of``
    tasks where both reached the target; ``value`` is ``None`` when there are none."""

    value: float | None
    tasks: int
    of: int


def geometric_mean_speedup(costs: Costs, baseline: str) -> dict[str, Speedup]:
    """Each method's geometric-mean speedup over ``baseline`` (``math.inf``: a miss; tasks
    either side misses are left out, see the module's docstring).

    >>> costs = {"a": {"sgd": 100, "adam": 50}, "b": {"sgd": 100, "adam": 200}}
    >>> geometric_mean_speedup(costs, "sgd")["adam"]
    Speedup(value=1.0, tasks=2, of=2)
    """
    _check_costs(costs)
    methods = _methods(costs)
    check_choice("geometric_mean_speedup", "baseline", baseline, methods)
    result = {}
    for method in methods:
        logs = [
            math.log(row[baseline] / row[method])
            for row in costs.values()
            if math.isfinite(row.get(baseline, math.inf))
            and math.isfinite(row.get(method, math.inf))
        ]
        value = math.exp(sum(logs) / len(logs)) if logs else None
        result[method] = Speedup(value, len(logs), len(costs))
    return result


@dataclass(frozen=True)
class Profiles:
    """Performance profiles of the methods of several tasks, by steps and by seconds to the
    target, with each method's geometric-mean speedup over ``baseline`` (by steps and by
    seconds). ``left_out``: tasks without a target (no cost to compare)."""

    steps: PerformanceProfile
    seconds: PerformanceProfile
    baseline: str | None
    speedups: dict[str, Speedup]
    time_speedups: dict[str, Speedup]
    left_out: tuple[str, ...]

    @property
    def methods(self) -> tuple[str, ...]:
        return self.steps.methods

    def plot(self, axes: Sequence[Any] | None = None) -> Any:
        """`lrlab.report.plot_profiles` of these profiles (two panels, steps and seconds)."""

        return plot_profiles(self, axes)


def default_baseline(costs: Costs, tuned: Sequence[str]) -> str | None:
    """The baseline when none is named: of the tuned methods whose optimizer is plain
    ``sgd`` (the classic baseline), the one that reaches the target on the most tasks (the
    first of equals); if none of them reaches any, the tuned method that reaches the most;
    without tuned methods, the first method. A baseline that reaches nothing would leave
    every speedup undefined.

    >>> costs = {"a": {"adam": 1, "sgd": math.inf, "sgd + cosine": 3}}
    >>> default_baseline(costs, ["adam", "sgd", "sgd + cosine"])
    'sgd + cosine'
    """
    reached = {
        m: sum(math.isfinite(row.get(m, math.inf)) for row in costs.values())
        for m in _methods(costs)
    }
    sgd = [m for m in tuned if m.split(" + ")[0].split("(")[0] == "sgd"]
    for candidates in (sgd, list(tuned)):
        best = max(candidates, key=lambda m: reached.get(m, 0), default=None)
        if best is not None and reached.get(best, 0) > 0:
            return best
    if sgd:
        return sgd[0]
    if tuned:
        return tuned[0]
    return next(iter(reached), None)


def _cost(value: float | None) -> float:
    return math.inf if value is None else value


def profiles(
    summaries: Sequence[Summary],
    *,
    baseline: str | None = None,
    tau_max: float = TAU_MAX,
    points: int = POINTS,
) -> Profiles:
    """`Profiles` of ranked summaries (any tasks, any stores): one cost per method and task,
    the median over seeds of steps (and of training seconds) to the target, a miss when that
    median is one (`Summary.steps_to_target` is ``None``).

    Methods are matched across tasks by `Summary.key` (the label without what is set per task:
    the LR, the schedule's numbers, the per-task options; see
    `lrlab.report.summary.method_key`); where two methods of one task share a key, each keeps
    its full label there. ``baseline`` names a method key (default: `default_baseline`)."""
    costs_steps: dict[str, dict[str, float]] = {}
    costs_seconds: dict[str, dict[str, float]] = {}
    tuned: list[str] = []
    left_out: list[str] = []
    by_task: dict[str, list[Summary]] = {}
    for summary in summaries:
        by_task.setdefault(summary.task, []).append(summary)
    for task, group in by_task.items():
        if group[0].target is None:
            left_out.append(task)
            continue
        keys = [s.key or s.base_label or s.label for s in group]
        for summary, key in zip(group, keys, strict=True):
            name = key if keys.count(key) == 1 else (summary.base_label or summary.label)
            costs_steps.setdefault(task, {})[name] = _cost(summary.steps_to_target)
            costs_seconds.setdefault(task, {})[name] = _cost(summary.time_to_target)
            if summary.group == "tuned" and name not in tuned:
                tuned.append(name)
    methods = _methods(costs_steps)
    if baseline is None:
        baseline = default_baseline(costs_steps, tuned)
    else:
        check_choice("", "baseline", baseline, methods)
    return Profiles(
        steps=performance_profile(costs_steps, cost="steps", tau_max=tau_max, points=points),
        seconds=performance_profile(costs_seconds, cost="seconds", tau_max=tau_max, points=points),
        baseline=baseline,
        speedups=geometric_mean_speedup(costs_steps, baseline) if baseline else {},
        time_speedups=geometric_mean_speedup(costs_seconds, baseline) if baseline else {},
        left_out=tuple(left_out),
    )
