"""Performance profiles: a hand-computed case to the digit, AlgoPerf's integration re-done with
numpy as its scoring code does it, the properties a profile promises, and the adapter from
stored runs (methods matched across tasks) up to ``lrlab report --db A --db B``."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrlab.api import Comparison
from lrlab.cli import main
from lrlab.record import RunConfig
from lrlab.report import (
    Speedup,
    default_baseline,
    geometric_mean_speedup,
    integrated_score,
    performance_profile,
    performance_ratios,
    plot_profiles,
    profiles,
    rho,
    summarize,
    tau_grid,
)
from lrlab.store import Store
from tests.fakes import record

INF = math.inf

# Three tasks, three methods, one miss (m3 on b). Ratios to each task's best:
#   a: 1, 1.5, 2.5    b: 3.5, 1, inf    c: 1, 4.5, 1
# Each ratio is 1, beyond 4 or midway between two points of AlgoPerf's grid (1.5 = point
# 16.5 of linspace(1, 4, 100)), where the trapezoid rule is exact: a task at ratio r adds
# (4 - r) to the area under rho (0 beyond 4), so the scores are
#   m1: (3 + 0.5 + 3) / 3 tasks / 3 = 6.5 / 9,  m2: (2.5 + 3 + 0) / 9,  m3: (1.5 + 0 + 3) / 9.
GOLDEN = {
    "a": {"m1": 100.0, "m2": 150.0, "m3": 250.0},
    "b": {"m1": 350.0, "m2": 100.0, "m3": INF},
    "c": {"m1": 100.0, "m2": 450.0, "m3": 100.0},
}


def test_the_golden_case_by_hand() -> None:
    ratios = performance_ratios(GOLDEN)
    assert ratios == {
        "m1": {"a": 1.0, "b": 3.5, "c": 1.0},
        "m2": {"a": 1.5, "b": 1.0, "c": 4.5},
        "m3": {"a": 2.5, "b": INF, "c": 1.0},
    }
    profile = performance_profile(GOLDEN)
    assert profile.tasks == ("a", "b", "c")
    assert [profile.at("m1", tau) for tau in (1, 3.49, 3.5, 4)] == [2 / 3, 2 / 3, 1, 1]
    m2 = [profile.at("m2", tau) for tau in (1, 1.49, 1.5, 4, 4.5)]
    assert m2 == [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1]
    assert [profile.at("m3", tau) for tau in (1, 2.5, 100)] == [1 / 3, 2 / 3, 2 / 3]
    assert profile.scores["m1"] == pytest.approx(6.5 / 9, abs=1e-12)
    assert profile.scores["m2"] == pytest.approx(5.5 / 9, abs=1e-12)
    assert profile.scores["m3"] == pytest.approx(4.5 / 9, abs=1e-12)
    assert [profile.reached(m) for m in profile.methods] == [3, 3, 2]

    speedups = geometric_mean_speedup(GOLDEN, "m1")
    # m2 over m1: 100/150, 350/100, 100/450 -> (2/3 * 3.5 * 2/9) ** (1/3) = (14/27) ** (1/3)
    assert speedups["m2"].value == pytest.approx((14 / 27) ** (1 / 3), abs=1e-12)
    assert (speedups["m2"].tasks, speedups["m2"].of) == (3, 3)
    # m3 missed b: only a (100/250) and c (100/100) count
    assert speedups["m3"].value == pytest.approx(0.4**0.5, abs=1e-12)
    assert (speedups["m3"].tasks, speedups["m3"].of) == (2, 3)
    assert speedups["m1"] == Speedup(1.0, 3, 3)


def test_the_score_at_a_grid_point_is_algoperfs_not_the_exact_area() -> None:
    """A ratio of 2 sits on point 33 of the grid: the trapezoid adds half a grid step
    (3/99/2) over the exact area 2, as AlgoPerf's np.trapz does."""
    assert tau_grid()[33] >= 2.0
    assert integrated_score([2.0]) == pytest.approx((2 + 3 / 198) / 3, abs=1e-12)


def _algoperf_score(ratios: list[float], tau_max: float) -> float:
    """AlgoPerf's scoring/performance_profile.py and score_submissions.py, for one method:
    rho at np.linspace(1, tau_max, 100), np.trapz over it, normalised by the tau range."""
    taus = np.linspace(1.0, tau_max, num=100)
    values = np.array([(np.array(ratios) <= tau).sum() / len(ratios) for tau in taus])
    return float(np.trapezoid(values, x=taus) / (taus.max() - taus.min()))


costs_tables = st.integers(1, 6).flatmap(
    lambda tasks: st.integers(1, 5).flatmap(
        lambda methods: st.lists(
            st.lists(
                st.one_of(st.integers(1, 10**6).map(float), st.just(INF)),
                min_size=methods,
                max_size=methods,
            ),
            min_size=tasks,
            max_size=tasks,
        )
    )
)


def _costs(table: list[list[float]]) -> dict[str, dict[str, float]]:
    return {f"t{i}": {f"m{j}": c for j, c in enumerate(row)} for i, row in enumerate(table)}


@given(costs_tables, st.sampled_from([2.0, 4.0, 10.0]))
def test_the_score_is_algoperfs_computation(table: list[list[float]], tau_max: float) -> None:
    profile = performance_profile(_costs(table), tau_max=tau_max)
    for method in profile.methods:
        expected = _algoperf_score(list(profile.ratios[method]), tau_max)
        assert profile.scores[method] == pytest.approx(expected, abs=1e-12)


@given(costs_tables)
def test_profile_properties(table: list[list[float]]) -> None:
    costs = _costs(table)
    profile = performance_profile(costs)
    for method in profile.methods:
        values = profile.rho[method]
        assert all(0 <= v <= 1 for v in values)
        assert all(a <= b for a, b in itertools.pairwise(values))
        # rho(1): the share of tasks where the method is (one of) the fastest
        best = sum(
            math.isfinite(row[method]) and row[method] == min(row.values())
            for row in costs.values()
        )
        assert profile.at(method, 1.0) == best / len(costs)
        assert 0 <= profile.scores[method] <= 1 + 1e-12
        # the trapezoid is within half a grid step per task of the exact area
        exact = sum(max(0.0, 4 - r) for r in profile.ratios[method]) / len(costs) / 3
        assert abs(profile.scores[method] - exact) <= 3 / 99 / 2 / 3 + 1e-12
    # every task's fastest method(s) have rho(1) on it: the rho(1) add up to at least the
    # share of tasks someone reached
    reached = sum(any(math.isfinite(c) for c in row.values()) for row in costs.values())
    assert sum(profile.at(m, 1.0) for m in profile.methods) >= reached / len(costs) - 1e-12


@given(costs_tables)
def test_a_method_fastest_everywhere_scores_one(table: list[list[float]]) -> None:
    costs = _costs(table)
    for row in costs.values():
        row["champion"] = min(row.values()) / 2 if math.isfinite(min(row.values())) else 1.0
    profile = performance_profile(costs)
    assert profile.rho["champion"] == (1.0,) * len(profile.taus)
    assert profile.scores["champion"] == pytest.approx(1.0, abs=1e-12)


@given(costs_tables, st.integers(1, 10**6), st.integers(-20, 20))
def test_scaling_every_cost_changes_nothing(
    table: list[list[float]], factor: int, power: int
) -> None:
    """Integer costs times an integer stay exact, and so does any cost times a power of two:
    the ratios are the same floats, so the profiles are identical, not merely close."""
    costs = _costs(table)
    before = performance_profile(costs)
    for scale in (float(factor), 2.0**power):
        scaled = {t: {m: c * scale for m, c in row.items()} for t, row in costs.items()}
        after = performance_profile(scaled)
        assert after.ratios == before.ratios
        assert after.rho == before.rho
        assert after.scores == before.scores


def test_the_default_baseline_reaches_something() -> None:
    costs = {"a": {"sgd": INF, "adam": 5.0, "momentum": 4.0}, "b": {"sgd": INF, "adam": 5.0}}
    assert default_baseline(costs, ["sgd", "momentum", "adam"]) == "adam"  # sgd reaches none
    assert default_baseline(costs, []) == "sgd"  # untuned only: the first
    assert default_baseline({"a": {"x": INF}}, ["x"]) == "x"
    assert default_baseline({}, []) is None


def test_a_task_nobody_reaches_counts_against_everyone() -> None:
    profile = performance_profile({"a": {"x": 10, "y": 20}, "b": {"x": INF, "y": INF}})
    assert profile.ratios == {"x": (1.0, INF), "y": (2.0, INF)}
    assert profile.at("x", 100) == 0.5
    assert rho([], 2.0) == 0.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: performance_profile({"a": {"x": 0}}), r"costs\['a'\]\['x'\] must be a number > 0"),
        (lambda: performance_profile({"a": {"x": -1.0}}), r"must be a number > 0"),
        (lambda: performance_profile({"a": {"x": math.nan}}), r"got costs\['a'\]\['x'\]=nan"),
        (lambda: performance_profile({"a": {"x": True}}), r"must be a number > 0"),
        (lambda: performance_profile({"a": {"x": 1}}, tau_max=1), r"tau_max must be > 1"),
        (lambda: tau_grid(4.0, 1), r"points must be >= 2"),
        (lambda: geometric_mean_speedup(GOLDEN, "sgd"), r"baseline must be one of m1, m2, m3"),
    ],
)
def test_bad_input_is_one_line(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        call()  # type: ignore[operator]
    assert "\n" not in str(error.value)


# -- from stored runs ----------------------------------------------------------------------------

# Per task, per method (optimizer, schedule): the test accuracy per epoch of every seed (3
# seeds), 10 steps per epoch, target 0.9. Steps to target: 10 x the first epoch at >= 0.9.
STORES = {
    "a": {
        "iris": {
            ("sgd", "cosine(lr=0.1, steps=30)"): [0.95, 0.95, 0.95],  # 10
            ("adam", None): [0.5, 0.95, 0.95],  # 20
        },
        "wine": {
            ("sgd", "cosine(lr=0.5, steps=60)"): [0.5, 0.5, 0.95],  # 30
            ("adam", None): [0.5, 0.95, 0.95],  # 20
        },
    },
    "b": {
        "digits": {
            ("sgd", "cosine(lr=0.2, steps=30)"): [0.5, 0.5, 0.5],  # miss
            ("adam", None): [0.5, 0.5, 0.95],  # 30
        },
        "noise": {("adam", None): [0.5, 0.5, 0.5]},  # no target: left out
    },
}


def _stores(folder: Path) -> list[Path]:
    paths = []
    for name, tasks in STORES.items():
        path = folder / f"{name}.sqlite"
        with Store(path) as store:
            for task, methods in tasks.items():
                for (optimizer, schedule), metrics in methods.items():
                    for seed in range(3):
                        config = RunConfig(task, optimizer, 0.05, schedule, seed=seed)
                        made = record(config, metrics, lr=0.05)
                        if task == "noise":
                            made.target = None
                        store.put(config, made)
        paths.append(path)
    return paths


def test_profiles_of_stored_runs_by_hand(tmp_path: Path) -> None:
    """Steps to target: iris sgd 10, adam 20; wine sgd 30, adam 20; digits sgd miss, adam 30.
    sgd's cosine schedules differ per task (LR, length) and are one method, "sgd + cosine".
    Ratios: sgd 1, 1.5, inf; adam 2, 1, 1."""
    runs = [r for path in _stores(tmp_path) for r in Store(path, readonly=True).runs()]
    result = profiles(summarize(runs))
    steps = result.steps
    assert steps.tasks == ("iris", "wine", "digits")
    assert set(steps.methods) == {"sgd + cosine", "adam"}
    assert steps.ratios["sgd + cosine"] == (1.0, 1.5, INF)
    assert steps.ratios["adam"] == (2.0, 1.0, 1.0)
    assert steps.scores["sgd + cosine"] == pytest.approx((3 + 2.5) / 3 / 3, abs=1e-12)
    # adam: 3 + 3 + (2 + half a grid step, ratio 2 being a grid point)
    assert steps.scores["adam"] == pytest.approx((6 + 2 + 3 / 198) / 3 / 3, abs=1e-12)
    # seconds to target are 0.5 s per epoch: the same ratios
    assert result.seconds.ratios == steps.ratios
    assert result.left_out == ("noise",)
    assert result.baseline == "sgd + cosine"  # the first tuned plain-sgd method
    # adam over sgd on the tasks both reach: 10/20 and 30/20
    assert result.speedups["adam"] == Speedup(pytest.approx(0.75**0.5), 2, 3)  # type: ignore[arg-type]

    comparison = Comparison(summarize(runs), runs, tmp_path / "a.sqlite", 0)
    assert comparison.profile(baseline="adam").speedups["sgd + cosine"].value == pytest.approx(
        (4 / 3) ** 0.5
    )
    with pytest.raises(ValueError, match="baseline must be one of sgd \\+ cosine, adam"):
        comparison.profile(baseline="sgd")

    axes = plot_profiles(result)
    assert [ax.get_title() for ax in axes] == ["steps to target", "training seconds to target"]
    lines = {line.get_label(): line for line in axes[0].get_lines()}
    adam = lines[f"adam ({steps.scores['adam']:.3f})"]
    assert list(adam.get_xdata()) == [1.0, 2.0, 4.0]  # the step function's corners
    assert list(adam.get_ydata()) == [2 / 3, 1.0, 1.0]


def test_methods_that_collide_within_a_task_keep_their_labels(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.sqlite") as store:
        for task in ("iris", "wine"):
            for schedule in ("cosine(lr=0.1, steps=30)", "cosine(lr=0.1, steps=20)"):
                config = RunConfig(task, "sgd", schedule=schedule)
                store.put(config, record(config, [0.95]))
        runs = store.runs()
    result = profiles(summarize(runs))
    assert set(result.methods) == {
        "sgd + cosine(lr=0.1, steps=30)",
        "sgd + cosine(lr=0.1, steps=20)",
    }


def test_report_over_two_stores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _stores(tmp_path)
    out = tmp_path / "report"
    argv = ["report", "--db", str(a), "--db", str(b), "--db", str(a), "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "performance profiles over 3 tasks" in printed
    assert "speedup over sgd + cosine (steps)" in printed
    text = (out / "report.md").read_text()
    assert f"lrlab report --db {a} --db {b} --db {a}" in text
    assert "## Performance profiles over 3 tasks" in text
    assert "Left out (no target): noise." in text
    assert "| adam | 3/3 | 0.891 |" in text  # (8 + 3/198) / 9, the store counted once
    assert "![Performance profiles](profile.png)" in text
    assert (out / "profile.png").stat().st_size > 0

    assert main([*argv, "--baseline", "sgd"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "lrlab: error: --baseline must be one of sgd + cosine, adam, got --baseline='sgd'\n"
    )
    assert main(["report", "--db", str(b), "--task", "digits", "--baseline", "adam"]) == 2
    assert "--baseline must be left out" in capsys.readouterr().err
