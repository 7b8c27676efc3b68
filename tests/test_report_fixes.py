"""What a new user tripped over in the report, each pinned: diverged finals, tasks without a
target, labels at the chosen LR, ties, the LR plot's zero, the metric plot's target and
epochs, the LR-sensitivity plot and the grid-edge warning."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrlab.record import RunConfig, RunRecord
from lrlab.report import (
    RANKING_RULE,
    final_spread,
    grid_warnings,
    markdown,
    plot_lr_sensitivity,
    plot_per_epoch,
    rows,
    schedule_at_lr,
    summarize,
    terminal_table,
)
from lrlab.report.summary import Summary
from lrlab.schedules import parse
from lrlab.store import Store, StoredRun
from tests.fakes import record
from tests.strategies import BY_NAME, Case


def _runs(tmp_path: Path, made: list[tuple[RunConfig, RunRecord]]) -> list[StoredRun]:
    with Store(tmp_path / "runs.sqlite") as store:
        for config, run in made:
            store.put(config, run)
        return store.runs()


def _mse(config: RunConfig, finals: list[float], status: str = "done") -> RunRecord:
    """A regression run (lower is better, no target) ending at ``finals[-1]``."""
    run = record(config, finals, status=status)
    run.metric, run.higher_is_better, run.target = "mse", False, None
    return run


# -- diverged runs -------------------------------------------------------------------------------


def test_a_diverged_final_metric_reads_diverged(tmp_path: Path) -> None:
    """The engine evaluates the weights a run had when its loss went non-finite: that
    number (1.731e+37) is no result. One diverged seed of three: the median stands, the upper
    quartile is the diverged run; two of three: the median is."""
    made = []
    for seed, (final, status) in enumerate([(0.5, "done"), (0.7, "done"), (1.731e37, "diverged")]):
        config = RunConfig("regression", "sgd", 0.1, seed=seed)
        made.append((config, _mse(config, [1.0, final], status)))
    for seed, status in enumerate(["done", "diverged", "diverged"]):
        config = RunConfig("regression", "adam", 0.1, seed=seed)
        made.append((config, _mse(config, [1.0, 1.731e37 if seed else 0.6], status)))
    summaries = {s.label: s for s in summarize(_runs(tmp_path, made))}
    sgd, adam = summaries["sgd"], summaries["adam"]
    assert (sgd.final.median, sgd.final.low, sgd.final.high) == (0.7, 0.6, math.inf)
    assert adam.final.median == math.inf
    header, table = rows([sgd, adam])
    column = header.index("final mse")
    assert [row[column] for row in table] == ["0.7 [0.6-diverged]", "diverged"]
    assert "1.731e+37" not in terminal_table([sgd, adam])


def test_final_spread_when_higher_is_better() -> None:
    config = RunConfig("iris")
    runs = [record(config, [v]) for v in (0.2, 0.8, 0.9)]
    runs[0].status = "diverged"
    spread = final_spread(runs, higher_is_better=True)
    assert (spread.median, spread.low) == (0.8, -math.inf)
    assert spread.high == pytest.approx(0.85)
    assert final_spread(runs[1:], higher_is_better=True).median == pytest.approx(0.85)


# -- a task without a target ---------------------------------------------------------------------


def test_a_task_without_a_target_ranks_by_final_metric(tmp_path: Path) -> None:
    made = []
    for optimizer, final in (("sgd", 0.9), ("adam", 0.3), ("momentum", 0.5)):
        config = RunConfig("regression", optimizer, 0.1)
        made.append((config, _mse(config, [1.0, final])))
    summaries = summarize(_runs(tmp_path, made))
    assert [s.label for s in summaries] == ["adam", "momentum", "sgd"]
    header, _ = rows(summaries)
    assert header == ["#", "method", "tuning", "lr", "final mse", "best mse", "diverged", "failed"]
    text = terminal_table(summaries)
    assert "reached" not in text
    assert "steps" not in text


# -- ties ----------------------------------------------------------------------------------------


def test_ties_break_on_final_metric_then_steps_then_name(tmp_path: Path) -> None:
    """All reach the target at step 10. Final accuracy decides first; between equal finals
    fewer steps trained (a run that stopped at 2 epochs beats one of 3), then the name."""
    made = []
    for optimizer, metrics in (
        ("a-long", [0.95, 0.95, 0.95]),
        ("z-short", [0.95, 0.95]),
        ("b-short", [0.95, 0.95]),
        ("best", [0.95, 0.97]),
    ):
        config = RunConfig("iris", optimizer, 0.1)
        made.append((config, record(config, metrics)))
    summaries = summarize(_runs(tmp_path, made))
    assert [s.label for s in summaries] == ["best", "b-short", "z-short", "a-long"]
    report = markdown(summaries, [], {}, "runs.sqlite")
    assert RANKING_RULE in report
    assert "ties are broken by the better median final metric" in RANKING_RULE


# -- labels at the chosen LR ---------------------------------------------------------------------


def test_a_tuned_schedule_is_labelled_at_its_chosen_lr(tmp_path: Path) -> None:
    """``sgd + cosine(lr=0.1, steps=30)`` tuned over 0.03 and 0.3; 0.03 wins."""
    made = []
    schedule = "cosine(lr=0.1, steps=30, end=0.001)"
    for lr, metrics in ((0.03, [0.95, 0.95, 0.95]), (0.3, [0.5, 0.5, 0.95])):
        for seed in range(2):
            config = RunConfig("iris", "sgd", lr, schedule, seed=seed)
            made.append((config, record(config, metrics, lr=lr)))
    (summary,) = summarize(_runs(tmp_path, made))
    assert summary.lr == 0.03
    assert summary.label == "sgd + cosine(lr=0.03, steps=30, end=0.0003)"
    assert summary.base_label == "sgd + cosine(lr=0.1, steps=30, end=0.001)"
    assert summary.key == "sgd + cosine"


def test_a_schedule_that_cannot_be_rewritten_names_the_lr() -> None:
    assert schedule_at_lr("plateau(patience=2)", 0.03) == "plateau(patience=2) at lr=0.03"
    assert schedule_at_lr("cosine(lr=0.1, steps=30)", 0.1) == "cosine(lr=0.1, steps=30)"


@given(st.one_of(*BY_NAME.values()), st.floats(1e-4, 10.0))
def test_every_schedule_is_rewritten_at_any_lr(case: Case, lr: float) -> None:
    """The rewritten spec parses to the schedule a run at base LR ``lr`` follows: the original
    times lr / reference_lr (to the 6 digits the label shows), at every step."""
    schedule = case.schedule
    spec = schedule.spec()
    label = schedule_at_lr(spec, lr, horizon=400)
    assert not label.endswith(f" at lr={lr:.4g}"), label
    rewritten = parse(label)
    factor = lr / schedule.reference_lr
    for t in range(400):
        assert rewritten(t) == pytest.approx(factor * schedule(t), rel=1e-5, abs=1e-12)


# -- plots ---------------------------------------------------------------------------------------


def _summary(made: list[tuple[RunConfig, RunRecord]], tmp_path: Path) -> list[Summary]:
    return summarize(_runs(tmp_path, made))


def test_a_warmup_from_zero_stays_on_the_lr_chart(tmp_path: Path) -> None:
    config = RunConfig("iris", "sgd", schedule="warmup(constant(lr=0.1), steps=10)")
    warm = record(config, [0.5, 0.8, 0.95])
    warm.epochs = [
        e.__class__(**{**e.__dict__, "lr": lr})
        for e, lr in zip(warm.epochs, (0, 0.1, 0.1), strict=True)
    ]
    other = RunConfig("iris", "adam", 0.001)
    summaries = _summary(
        [(config, warm), (other, record(other, [0.5, 0.8, 0.95], lr=0.001))], tmp_path
    )
    ax = plot_per_epoch(summaries, "lr")
    assert ax.get_yscale() == "symlog"
    for line in ax.get_lines():
        points = ax.transData.transform(line.get_xydata())
        assert all(math.isfinite(v) for v in points.ravel())
    assert (
        0.0
        in next(line for line in ax.get_lines() if line.get_label().startswith("sgd")).get_ydata()
    )


def test_the_metric_plot_has_the_target_and_whole_epochs(tmp_path: Path) -> None:
    config = RunConfig("iris", "sgd", 0.1)
    summaries = _summary([(config, record(config, [0.5, 0.8, 0.95]))], tmp_path)
    ax = plot_per_epoch(summaries, "metric")
    target = next(line for line in ax.get_lines() if line.get_label() == "target 0.9")
    assert list(target.get_ydata()) == [0.9, 0.9]
    ax.figure.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks
    assert all(float(t).is_integer() for t in ticks)


def _grid(tmp_path: Path) -> list[Summary]:
    """sgd over 0.01, 0.1, 1 (0.1 wins: 3 of 3 seeds at epoch 1; 1 diverges on every seed),
    and a LipschitzLR method at its own LR 0.3."""
    made = []
    finals = {0.01: [0.5, 0.6, 0.7], 0.1: [0.9, 0.92, 0.94], 1.0: [0.1, 0.1, 0.1]}
    for lr, values in finals.items():
        for seed, final in enumerate(values):
            config = RunConfig("iris", "sgd", lr, seed=seed)
            run = record(config, [final], lr=lr)
            run.status = "diverged" if lr == 1.0 else "done"
            made.append((config, run))
    for seed in range(3):
        config = RunConfig("iris", schedule="lipschitz(bound=smooth)", seed=seed)
        run = record(config, [0.8], lr=0.3)
        run.self_tuning, run.initial_lr = True, 0.3
        made.append((config, run))
    return _summary(made, tmp_path)


def test_the_lr_sensitivity_plot(tmp_path: Path) -> None:
    summaries = _grid(tmp_path)
    ax = plot_lr_sensitivity(summaries)
    assert ax.get_xscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    sgd = lines["sgd"]
    assert list(sgd.get_xdata()) == [0.01, 0.1, 1.0]
    assert list(sgd.get_ydata())[:2] == [0.6, 0.92]  # medians; 1.0's median diverged
    assert math.isnan(list(sgd.get_ydata())[2])
    assert list(lines["median run diverged"].get_xdata()) == [1.0]
    star = next(line for line in ax.get_lines() if line.get_marker() == "*")
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([0.1], [0.92])
    reference = lines["sgd + lipschitz(bound=smooth) (own LR 0.3)"]
    assert list(reference.get_ydata()) == [0.8, 0.8]  # a horizontal line at its median

    with pytest.raises(ValueError, match="metric must be one the runs recorded"):
        plot_lr_sensitivity(summaries, metric="validation")
    with pytest.raises(ValueError, match="metric must be one of test, validation"):
        plot_lr_sensitivity(summaries, metric="train")


def test_the_sensitivity_plot_draws_validation_when_runs_record_it(tmp_path: Path) -> None:
    made = []
    for lr, val in ((0.01, 0.4), (0.1, 0.7)):
        config = RunConfig("iris", "sgd", lr)
        run = record(config, [0.9], lr=lr)
        run.epochs = [e.__class__(**{**e.__dict__, "val_metric": val}) for e in run.epochs]
        made.append((config, run))
    summaries = _summary(made, tmp_path)
    assert summaries[0].records[0].final_val_metric in (0.4, 0.7)
    sgd = next(line for line in plot_lr_sensitivity(summaries, "validation").get_lines())
    assert list(sgd.get_ydata()) == [0.4, 0.7]
    # records written before validation splits read without them
    data = made[0][1].to_dict()
    for epoch in data["epochs"]:
        del epoch["val_loss"], epoch["val_metric"]
    assert RunRecord.from_dict(data).final_val_metric is None


def test_a_chosen_lr_at_the_grid_edge_is_flagged(tmp_path: Path) -> None:
    summaries = _grid(tmp_path)
    assert [s.lr_at_edge for s in summaries] == [None, None]  # 0.1 is inside the grid
    made = []
    for lr, metrics in ((0.01, [0.5]), (0.1, [0.95])):
        config = RunConfig("iris", "sgd", lr)
        made.append((config, record(config, metrics, lr=lr)))
    (edge,) = _summary(made, tmp_path / "edge")
    assert edge.lr_at_edge == "highest"
    header, table = rows([edge])
    assert table[0][header.index("lr")] == "0.1 (edge)"
    (warning,) = grid_warnings([edge])
    assert warning == (
        "warning: iris: sgd: the chosen LR 0.1 is the highest of the grid [0.01, 0.1]; "
        "widen --lr-grid"
    )
    assert warning in terminal_table([edge])
    assert f"**{warning}**" in markdown([edge], [], {}, "runs.sqlite")
