"""`lrlab.tune` and ``lrlab tune``: the rung plan by hand, the robust choice on hand-made curves,
the schedule with its LR left free, the whole method on breast-cancer (90-step runs) from Python
and the command line, widening at an edge, resuming after an interruption, the validation
split as the only thing read, bad input; and ``lrlab find``'s doubt."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lrlab
from lrlab.cli import main
from lrlab.finder import Curve, RangeTest, RuleResult, doubts
from lrlab.record import HOLDOUT_SEEDS_FROM, RunConfig
from lrlab.schedules import parse
from lrlab.store import Store
from lrlab.tuning import choose, choose_runs, minimum_lr, objective, parse_template
from lrlab.tuning.plan import (
    bracket,
    grid_index,
    grid_lr,
    plan_cost,
    rung_counts,
    rung_steps,
    survivors,
    window,
)
from tests.fakes import record

TASK, STEPS = "breast-cancer", 90  # 90-step runs: rungs of 10, 30 and 90 steps
FAST = {"steps": 30}  # a 30-step range test


# -- the rung plan, by hand ----------------------------------------------------------------------


def test_rung_plan_by_hand() -> None:
    # T = 90, eta = 3: 90 / 9, 90 / 3, 90; 10 LRs, then ceil(10 / 3) = 4, then max(3, 2) = 3.
    assert rung_steps(90, 3, 3) == (10, 30, 90)
    assert rung_steps(640, 3, 3) == (71, 213, 640)  # 640 / 9 = 71.1
    assert rung_steps(640, 3, 1) == (640,)
    assert rung_counts(10, 3, 3) == (10, 4, 3)
    assert rung_counts(13, 3, 3) == (13, 5, 3)
    assert plan_cost((10, 4, 3), (10, 30, 90), seeds=1) == 100 + 120 + 270
    assert plan_cost((10, 4, 3), (10, 30, 90), seeds=2) == 980
    # The grid: 10 ** (k / 3) to 6 digits.
    assert [grid_lr(k) for k in (-9, -8, -7, -6)] == [0.001, 0.00215443, 0.00464159, 0.01]
    # m = 0.5 sits at grid position 3 log10(0.5) = -0.90; a constant LR's bracket starts 2.5
    # decades (7.5 positions) below, at round(-8.40) = -8, and holds 10 LRs up to position 1.
    assert bracket(0.5, constant=True) == list(range(-8, 2))
    assert [grid_lr(k) for k in (-8, 1)] == [0.00215443, 2.15443]
    # A schedule's peak: 2 decades below, 1 above: round(-0.90 - 6) = -7 to 2.
    assert bracket(0.5, constant=False) == list(range(-7, 3))
    # Survivors: the window of 4 around grid position -3.4 starts at floor(-3.4 - 1.5) = -5;
    # around -3.0 the spare LR goes below (-5, not -4); 3 around -3.4: round(-4.4) = -4.
    assert window(range(-8, 2), -3.4, 4) == [-5, -4, -3, -2]
    assert window(range(-8, 2), -3.0, 4) == [-5, -4, -3, -2]
    assert window(range(-8, 2), -3.4, 3) == [-4, -3, -2]
    assert window(range(-8, 2), 1.2, 3) == [-1, 0, 1]  # clamped to the bracket
    assert window(range(-8, 2), -20.0, 4) == [-8, -7, -6, -5]
    # ... unless the LRs within noise of the best span as many grid points: then spread over
    # them, from its ends (floor(x + 0.5)): -6.2 .. -1.4 in 3 steps of 2.4: -6, -4, -1.
    assert survivors(range(-8, 2), -6.2, -1.4, 3) == [-6, -4, -1]
    assert survivors(range(-8, 2), -6.2, -1.4, 4) == [-6, -5, -3, -1]  # steps of 1.6
    assert survivors(range(-8, 2), -3.9, -2.9, 4) == [-5, -4, -3, -2]  # 1 < 3: a window


# -- the schedule with its LR left free ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "at", "pasted"),
    [
        (None, "constant(lr=0.1)", "constant(lr=0.1)"),
        ("constant(lr=?)", "constant(lr=0.1)", "constant(lr=0.1)"),
        ("one_cycle", "one_cycle(lr=0.1, steps=100)", "one_cycle(lr=0.1, steps=900)"),
        ("one_cycle(?)", "one_cycle(lr=0.1, steps=100)", "one_cycle(lr=0.1, steps=900)"),
        # warmup 45 of 900 steps is 5 of 100; an end LR stays as written
        (
            "cosine(lr=?, warmup=45, end=1e-4)",
            "cosine(lr=0.1, steps=100, end=0.0001, warmup=5)",
            "cosine(lr=0.1, steps=900, end=0.0001, warmup=45)",
        ),
        # a wsd warmup in steps scales (90 -> 10), a decay given as a fraction stays
        (
            "wsd(warmup=90, decay=0.2)",
            "wsd(lr=0.1, steps=100, warmup=10, decay=0.2)",
            "wsd(lr=0.1, steps=900, warmup=90, decay=0.2)",
        ),
        # cyclic: max_lr is tuned, the base is a quarter of it, the step size scales
        (
            "cyclic(step_size=180)",
            "cyclic(lr=0.025, max_lr=0.1, step_size=20)",
            "cyclic(lr=0.025, max_lr=0.1, step_size=180)",
        ),
    ],
)
def test_a_schedule_with_its_lr_left_free_at_an_lr_and_a_horizon(
    text: str | None, at: str, pasted: str
) -> None:
    template = parse_template(text)
    assert template.spec_at(0.1, 100, 900) in (at, None)  # None: a constant LR is the run's lr
    assert template.paste(0.1, 900) == pasted
    assert parse(pasted).reference_lr in (0.1, 0.025)


def test_a_compressed_schedule_keeps_its_shape() -> None:
    """A rung of 1/9 of the run runs the whole one-cycle: its peak LR at 30% of the rung, its
    end at the rung's end, as the full schedule at 9 times the step (up to PyTorch's
    one-step offsets)."""
    template = parse_template("one_cycle")
    short, full = (parse(template.spec_at(1.0, s, 900) or "") for s in (100, 900))
    peak_short = max(range(100), key=short)
    peak_full = max(range(900), key=full)
    assert (peak_short, peak_full) == (29, 269)
    # step t of the rung is step 9t of the run (9t + 4: the middle of its 9), to 1% of the peak
    assert max(abs(short(t) - full(9 * t + 4)) for t in range(100)) < 0.01
    exp_range = parse_template("cyclic(step_size=90, mode=exp_range, gamma=0.999)")
    assert exp_range.spec_at(0.4, 100, 900) == (
        f"cyclic(lr=0.1, max_lr=0.4, step_size=10, mode=exp_range, gamma={0.999**9!r})"
    )


# -- the robust choice on hand-made curves --------------------------------------------------------


def _grid(count: int) -> list[float]:
    return [grid_lr(k) for k in range(-count, 0)]


@given(
    count=st.integers(7, 14),
    start=st.integers(1, 4),
    width=st.integers(3, 6),
    level=st.floats(0.05, 0.5),
    jump=st.floats(0.3, 1.0),
    slopes=st.tuples(st.floats(0.1, 1.0), st.floats(0.1, 1.0)),
)
def test_a_flat_plateau_picks_its_centre(
    count: int,
    start: int,
    width: int,
    level: float,
    jump: float,
    slopes: tuple[float, float],
) -> None:
    """A plateau of ``width`` LRs, then a jump and a rise on either side (of different
    slopes): the choice is the plateau's centre, to half a grid step."""
    end = min(start + width - 1, count - 2)
    lrs = _grid(count)
    values = []
    for i in range(count):
        if i < start:
            values.append(level + jump + slopes[0] * (start - i))
        elif i > end:
            values.append(level + jump + slopes[1] * (i - end))
        else:
            values.append(level)
    choice = choose(lrs, values, floor=0.02)
    assert choice is not None
    assert choice.at_edge is None
    centre = (grid_index(lrs[start]) + grid_index(lrs[end])) / 2
    assert abs(grid_index(choice.lr) - centre) <= 0.5
    assert lrs[start - 1] < choice.low <= choice.lr <= choice.high < lrs[end + 1]


def _bowl(count: int, optimum: float, curvature: float) -> tuple[list[float], list[float]]:
    """A smooth basin: ``curvature * (position - optimum) ** 2`` over ``count`` grid LRs."""
    lrs = _grid(count)
    return lrs, [curvature * (grid_index(lr) - optimum) ** 2 for lr in lrs]


@given(
    count=st.integers(8, 14),
    optimum=st.floats(0.1, 0.9),
    curvature=st.floats(0.05, 5.0),
    spike=st.integers(1, 12),
    depth=st.floats(0.01, 1.0),
)
def test_a_single_noisy_spike_does_not_win(
    count: int, optimum: float, curvature: float, spike: int, depth: float
) -> None:
    """A smooth basin, and one LR at least 3 grid steps from its optimum that scores better
    than the optimum itself, by up to its own height above it (so the single best point is
    the spike): the choice stays nearer the optimum than the spike, within 2.5 steps of it.
    (A spike at the first or last LR cannot be told from a trend going on beyond it; the
    tuner measures beyond an edge instead.)"""
    centre = -count + optimum * (count - 1)  # grid position of the optimum
    lrs, values = _bowl(count, centre, curvature)
    spike = min(spike, count - 2)
    if abs(grid_index(lrs[spike]) - centre) < 3:
        return
    best = min(values)
    values[spike] = best - depth * (values[spike] - best)
    assert min(range(count), key=values.__getitem__) == spike  # the single best: the spike
    choice = choose(lrs, values)
    assert choice is not None
    chosen = grid_index(choice.lr)
    assert abs(chosen - centre) < abs(chosen - grid_index(lrs[spike]))
    assert abs(chosen - centre) <= 2.5


@given(vertex=st.floats(-0.8, 0.8), curvature=st.floats(0.01, 10.0), level=st.floats(-2, 2))
def test_three_lrs_choose_the_vertex_of_their_parabola(
    vertex: float, curvature: float, level: float
) -> None:
    """A later rung runs a handful of LRs around the optimum: its curve is their parabola
    (local quadratic), and with no noise to speak of the choice is its vertex."""
    lrs = [grid_lr(k) for k in (-4, -3, -2)]
    values = [level + curvature * (grid_index(lr) + 3 - vertex) ** 2 for lr in lrs]
    choice = choose(lrs, values)
    assert choice is not None
    assert choice.at_edge is None
    assert grid_index(choice.lr) == pytest.approx(-3 + vertex, abs=1 / 16)


@given(
    count=st.integers(5, 12),
    optimum=st.floats(0.0, 1.0),
    shift=st.floats(-5.0, 5.0),
    scale=st.floats(0.1, 10.0),
    order=st.randoms(use_true_random=False),
)
def test_the_choice_ignores_order_shift_and_scale(
    count: int, optimum: float, shift: float, scale: float, order: object
) -> None:
    lrs, values = _bowl(count, -count + optimum * (count - 1), 0.3)
    values = [v + 0.01 * math.sin(7 * i) for i, v in enumerate(values)]  # a little noise
    first = choose(lrs, values, floor=0.01)
    pairs = list(zip(lrs, [shift + scale * v for v in values], strict=True))
    order.shuffle(pairs)  # type: ignore[attr-defined]
    second = choose([p[0] for p in pairs], [p[1] for p in pairs], floor=0.01 * scale)
    assert first is not None
    assert second is not None
    assert second.lr == pytest.approx(first.lr, rel=1e-6)
    assert (second.low, second.high) == pytest.approx((first.low, first.high), rel=1e-6)


@given(count=st.integers(6, 12), diverged=st.integers(1, 10), optimum=st.floats(0.0, 1.0))
def test_the_choice_never_crosses_a_diverged_lr(count: int, diverged: int, optimum: float) -> None:
    lrs, values = _bowl(count, -count + optimum * (count - 1), 0.1)
    diverged = min(diverged, count - 2)
    values[diverged] = math.inf
    choice = choose(lrs, values)
    assert choice is not None
    cut = lrs[diverged]
    assert choice.high < cut or choice.low > cut
    assert math.isnan(choice.smoothed[diverged])


def test_no_finite_value_is_no_choice() -> None:
    assert choose([0.1, 1.0], [math.inf, math.inf]) is None


def test_the_choice_reads_the_validation_split_only() -> None:
    """Runs whose test metric would choose another LR: the validation metric decides.

    At LR 0.01 the validation accuracy meets 0.9 at the second epoch (step 20) and the test
    accuracy never does; at LR 0.1 the reverse. An LR chosen on the test split would be 0.1.
    """
    fast_on_validation = record(
        RunConfig("x", lr=0.01), [0.5, 0.6, 0.7, 0.8], validation=[0.5, 0.95, 0.96, 0.97]
    )
    fast_on_test = record(
        RunConfig("x", lr=0.1), [0.95, 0.96, 0.97, 0.98], validation=[0.5, 0.6, 0.7, 0.8]
    )
    slow = record(RunConfig("x", lr=1.0), [0.95] * 4, validation=[0.5, 0.6, 0.7, 0.85])
    choice = choose_runs({0.01: [fast_on_validation], 0.1: [fast_on_test], 1.0: [slow]}, 40, 10)
    assert choice is not None
    assert choice.best == pytest.approx(0.01)
    # crossing between step 10 (0.5) and step 20 (0.95) at 10 + 10 * 0.4 / 0.45 steps
    assert objective(fast_on_validation, 40) == pytest.approx((10 + 10 * 0.4 / 0.45) / 40)
    # a miss: 1 + (0.9 - 0.8) / 0.9, whatever the test split says
    assert objective(fast_on_test, 40) == pytest.approx(1 + 0.1 / 0.9)
    assert objective(record(RunConfig("x"), [1.0], status="diverged"), 40) == math.inf


# -- the whole method, from Python and the command line -------------------------------------------


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> lrlab.TuneResult:
    db = tmp_path_factory.mktemp("tune") / "runs.sqlite"
    return lrlab.tune(TASK, "sgd", schedule="one_cycle", steps=STEPS, range_test=FAST, db=db)


def test_tune_races_the_bracket_in_rungs_of_complete_shorter_runs(
    tuned: lrlab.TuneResult,
) -> None:
    result = tuned
    assert [r.steps for r in result.rungs] == [10, 30, 90]
    first = bracket(minimum_lr(result.range_test) or 0.0, constant=False)
    widened = len(result.rungs[0].widened)
    assert len(result.rungs[0].lrs) == 10 + 3 * widened
    if not widened:
        assert result.rungs[0].lrs == tuple(grid_lr(k) for k in first)
    searched = [round(grid_index(lr)) for lr in result.rungs[0].lrs]
    for previous, rung, count in zip(result.rungs, result.rungs[1:], (4, 3), strict=False):
        assert previous.choice is not None
        low, high = (grid_index(previous.choice.low), grid_index(previous.choice.high))
        expected = survivors(searched, low, high, count)
        ran = [round(grid_index(lr)) for lr in rung.lrs]
        assert set(expected) <= set(ran)  # the window, and any LR the last rung widened to
        assert len(ran) == count + len(rung.widened)
    with Store(result.db) as store:
        runs = store.runs()
    assert len(runs) == len(result.trials()) == result.ran
    for run in runs:
        config = run.config
        # every trial a complete run of its rung's budget, the one-cycle compressed to it,
        # holding the validation split out, on a seed below the fresh ones
        assert config.steps in (10, 30, 90)
        assert config.lr is None
        assert config.schedule == parse_template("one_cycle").spec_at(
            float(parse(config.schedule or "").reference_lr), config.steps, 90
        )
        assert config.validation
        assert config.seed < HOLDOUT_SEEDS_FROM
        assert run.record is not None
        assert run.record.has_validation


def test_tune_answers_with_its_evidence_and_cost(tuned: lrlab.TuneResult, tmp_path: Path) -> None:
    result = tuned
    final = result.rungs[-1].choice
    assert final is not None
    assert result.lr == float(f"{final.lr:.3g}")
    assert result.spec == f"one_cycle(lr={result.lr!r}, steps=90)"
    assert result.flat == (final.low, final.high)
    assert result.flat[0] <= result.lr * 1.01
    assert result.lr <= result.flat[1] * 1.01
    assert result.searched[0] <= result.lr <= result.searched[1]
    trained = sum(t.trained for t in result.trials())
    assert result.range_test_steps == 30
    assert result.cost_steps == 30 + trained
    assert result.cost_steps <= 7 * 90
    assert result.cost_ratio <= 0.2
    assert result.grid_steps == 35 * 90
    config = result.run_config(HOLDOUT_SEEDS_FROM)
    assert (config.schedule, config.seed, config.steps) == (result.spec, 1000, 90)
    data = result.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False))["spec"] == result.spec
    assert data["selected_on"] == "validation"
    assert [len(r["trials"]) for r in data["rungs"]] == [len(r.trials) for r in result.rungs]
    assert "chosen lr = " in result.summary()
    assert result.spec in result.summary()
    ax = result.plot()
    assert ax.get_xscale() == "log"
    assert any(line.get_label().startswith("chosen lr") for line in ax.lines)


def test_tune_reads_the_validation_split_and_never_the_test_split(tmp_path: Path) -> None:
    """Two tasks that differ only in their test split (its labels inverted in the second):
    every trial scores the same and the same LR is chosen, though the runs' test metrics
    differ."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()

    def task(test_labels: torch.Tensor) -> lrlab.Task:
        return lrlab.Task(
            name="toy",
            model=lambda: torch.nn.Sequential(
                torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
            ),
            train=(x[:300], y[:300]),
            test=(x[300:], test_labels),
            validation=0.2,
            loss="cross_entropy",
            metric="accuracy",
            target=0.85,
            epochs=12,
            batch_size=16,
        )

    results = [
        lrlab.tune(task(labels), "sgd", db=tmp_path / f"{i}.sqlite", range_test=FAST)
        for i, labels in enumerate((y[300:], 1 - y[300:]))
    ]
    first, second = results
    assert first.lr == second.lr
    assert [t.objective for t in first.trials()] == [t.objective for t in second.trials()]
    with Store(tmp_path / "0.sqlite") as a, Store(tmp_path / "1.sqlite") as b:
        test_a = [r.record.final_metric for r in a.runs() if r.record is not None]
        test_b = [r.record.final_metric for r in b.runs() if r.record is not None]
    assert test_a != test_b


def test_lrlab_tune_on_the_command_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db, plot, data = tmp_path / "t.sqlite", tmp_path / "t.png", tmp_path / "t.json"
    argv = ["tune", TASK, "--optimizer", "momentum", "--steps", str(STEPS), "--db", str(db)]
    code = main([*argv, "--plot", str(plot), "--json", str(data)])
    out, err = capsys.readouterr()
    assert code == 0, err
    saved = json.loads(data.read_text())
    assert out.splitlines()[0].startswith(f"{TASK} / momentum / constant: tuned on the valid")
    assert f"chosen lr = {saved['lr']:.3g}" in out
    assert f"  constant(lr={saved['lr']!r})" in out.splitlines()
    assert saved["spec"] == f"constant(lr={saved['lr']!r})"
    assert saved["cost"]["ratio"] <= 0.2
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert "tune: 10 trials, 0 already in" in err
    # again: everything comes from the store
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert f"chosen lr = {saved['lr']:.3g}" in again
    assert f"0 run now, {saved['cost']['ran']} from {db}" in again


# -- widening at an edge, resuming ---------------------------------------------------------------


def test_tune_widens_when_the_best_is_at_the_edge(tmp_path: Path) -> None:
    """A range test stopped at 1e-4 brackets LRs far too low for SGD here: the first rung's
    best is its highest LR (nothing learns below), so it widens a decade at a time, as the
    budget allows; with no budget to spare, the result says the best lies beyond."""
    options = {"steps": STEPS, "range_test": {"end": 1e-4, "steps": 30}}
    wide = lrlab.tune(TASK, "sgd", budget=8, db=tmp_path / "wide.sqlite", **options)
    first = wide.rungs[0]
    assert first.widened
    assert set(first.widened) == {"high"}
    assert len(first.lrs) == 10 + 3 * len(first.widened)
    assert wide.searched[1] == pytest.approx(wide.bracket[1] * 10 ** len(first.widened), rel=1e-5)
    assert wide.lr > 0.1  # SGD's LR here is of order 1, far above the bracket
    assert wide.cost_steps <= 8 * STEPS
    narrow = lrlab.tune(TASK, "sgd", budget=5.8, db=tmp_path / "narrow.sqlite", **options)
    assert narrow.rungs[0].widened == ()
    assert narrow.edge == "high"
    assert any("allows no wider search" in w for w in narrow.warnings)
    assert narrow.cost_steps <= 5.8 * STEPS


class _Interrupt(Exception):
    pass


class _StopAfter:
    """A progress hook that stops the tune once ``limit`` trials are stored."""

    def __init__(self, limit: int) -> None:
        self.limit, self.seen = limit, 0

    def start(self, total: int, stored: int, pending: int, store: Path) -> None:
        pass

    def grouped(self, groups: list[int], alone: list[tuple[RunConfig, str]]) -> None:
        pass

    def update(self, outcome: object) -> None:
        self.seen += 1
        if self.seen >= self.limit:
            raise _Interrupt

    def close(self) -> None:
        pass


def test_a_killed_tune_resumes_without_redoing_finished_trials(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    options = {"steps": STEPS, "range_test": FAST}
    with pytest.raises(_Interrupt):  # in the second rung: its first trial is stored
        lrlab.tune(TASK, "sgd", db=db, progress=_StopAfter(12), **options)
    with Store(db) as store:
        before = {run.config.key() for run in store.runs()}
    assert len(before) == 12
    resumed = lrlab.tune(TASK, "sgd", db=db, **options)
    keys = {t.key for t in resumed.trials()}
    assert before <= keys
    assert resumed.stored == 12
    assert resumed.ran == len(keys) - 12
    with Store(db) as store:
        assert sorted(r.config.key() for r in store.runs()) == sorted(keys)  # each once
    whole = lrlab.tune(TASK, "sgd", db=tmp_path / "whole.sqlite", **options)
    assert (whole.lr, whole.spec) == (resumed.lr, resumed.spec)
    assert [t.objective for t in whole.trials()] == [t.objective for t in resumed.trials()]


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"optimizer": "prodigy"}, "optimizer must take an LR to tune; prodigy is learning-rate"),
        ({"schedule": "lipschitz(bound=smooth)"}, "lipschitz sets its own LR"),
        ({"schedule": "plateau(factor=0.5)"}, "plateau is an LR controller"),
        ({"schedule": "one_cycle(lr=0.1)"}, "must leave its lr out (or write lr=?)"),
        ({"schedule": "one_cycle(0.1)"}, "must leave its lr out"),
        ({"schedule": "cosine(steps=?)"}, "only lr can be ? in cosine"),
        ({"schedule": "cyclic(lr=0.01, step_size=5)"}, "cyclic's base lr is set by tune"),
        ({"schedule": "exponential(rate=0.9)"}, "schedule must be one of constant, one_cycle"),
        ({"schedule": lrlab.Cosine(lr=0.1, steps=10)}, "got a Schedule object with its LR set"),
        ({"budget": 1}, "budget must be at least 5.78 runs of 90 steps"),
        ({"budget": 0}, "budget must be > 0, got budget=0"),
        ({"seed": 1000}, "seed must be <= 999, got seed=1000"),
        ({"seeds": 0}, "seeds must be >= 1, got seeds=0"),
        ({"eta": 1}, "eta must be >= 2, got eta=1"),
        ({"rungs": 0}, "rungs must be >= 1, got rungs=0"),
        ({"rungs": 4, "schedule": "one_cycle"}, "rungs: a rung of 3 of the run's 90 steps"),
        ({"range_test": {"seed": 3}}, "range_test must not set seed"),
        ({"epochs": 2}, "give epochs or steps, not both, got epochs=2, steps=90"),
        ({"warmup": 3}, "tune() got an unexpected argument 'warmup'"),
    ],
)
def test_bad_input_is_one_line_before_anything_trains(
    arguments: dict[str, object], message: str, tmp_path: Path
) -> None:
    options: dict[str, object] = {"steps": STEPS, "range_test": FAST, **arguments}
    optimizer = str(options.pop("optimizer", "sgd"))
    with pytest.raises(ValueError, match=r"\w") as error:
        lrlab.tune(TASK, optimizer, db=tmp_path / "bad.sqlite", **options)  # type: ignore[arg-type]
    text = str(error.value)
    assert message in text
    assert "\n" not in text
    assert not (tmp_path / "bad.sqlite").exists()


def test_a_task_without_a_validation_split_is_refused(tmp_path: Path) -> None:
    x = torch.randn(64, 3)
    task = lrlab.Task(
        name="no-validation",
        model=lambda: torch.nn.Linear(3, 2),
        train=(x, (x[:, 0] > 0).long()),
        loss="cross_entropy",
        metric="accuracy",
        epochs=2,
    )
    with pytest.raises(
        ValueError,
        match=r"task must have a validation split .* give "
        r"lrlab.Task\(validation=0.1\)",
    ):
        lrlab.tune(task, "sgd", db=tmp_path / "x.sqlite")


_STREAM_TASK = """
import torch
from torch.utils.data import DataLoader, IterableDataset
import lrlab

class Stream(IterableDataset):
    def __iter__(self):
        while True:
            x = torch.randn(8, 3)
            yield x, (x[:, 0] > 0).long()

def make():
    return lrlab.Task(name="stream", model=lambda: torch.nn.Linear(3, 2),
                      train=DataLoader(Stream(), batch_size=None), loss="cross_entropy",
                      metric="accuracy", epochs=2)

def no_validation():
    x = torch.randn(64, 3)
    return lrlab.Task(name="plain", model=lambda: torch.nn.Linear(3, 2),
                      train=(x, (x[:, 0] > 0).long()), loss="cross_entropy",
                      metric="accuracy", epochs=2)
"""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--optimizer", "prodigy"], "optimizer must take an LR to tune"),
        (["--schedule", "lipschitz(bound=smooth)"], "lipschitz sets its own LR"),
        (["--schedule", "one_cycle(lr=0.1)"], "must leave its lr out (or write lr=?)"),
        (["--budget", "1"], "--budget must be at least 6.56 runs of 90 steps"),
        (["--seed", "1000"], "--seed must be <= 999, got --seed=1000"),
        (["--plot", "chart.txt"], "--plot must be a file ending in one of"),
        (["TASK=tasks.py:make"], "train has no len()"),
        (["TASK=tasks.py:no_validation"], "task must have a validation split to tune on"),
    ],
)
def test_bad_input_on_the_command_line_is_one_line_and_exit_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "tasks.py").write_text(_STREAM_TASK)
    monkeypatch.chdir(tmp_path)
    task = TASK
    if argv[0].startswith("TASK="):
        task, argv = argv[0].removeprefix("TASK="), argv[1:]
    code = main(["tune", task, "--steps", str(STEPS), "--db", "x.sqlite", *argv])
    _out, err = capsys.readouterr()
    assert code == 2
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.sqlite").exists()


# -- lrlab find learns doubt ---------------------------------------------------------------------


def _range_test(curves: list[Curve], low: float = 0.01, high: float = 0.02) -> RangeTest:
    lrs = curves[0].lrs
    return RangeTest(
        lrs=lrs,
        curves=tuple(curves),
        suggestions={"minimum": RuleResult("minimum", (low, high), low, low, high)},
        recommended="minimum",
        lipschitz={},
        start=lrs[0],
        end=lrs[-1],
        steps=len(lrs),
        mode="exponential",
        smoothing=0.0,
        diverge=4.0,
        accumulation_steps=1,
        seed=0,
        seconds=0.0,
    )


def _curve(losses: list[float], stop: str = "diverged") -> Curve:
    lrs = tuple(10 ** (-6 + 6 * i / (len(losses) - 1)) for i in range(len(losses)))
    return Curve(lrs, tuple(losses), tuple(losses), stop, 0, (0, len(losses)), {})  # type: ignore[arg-type]


def test_find_doubts_a_flat_a_noisy_an_edge_and_a_spread_curve() -> None:
    valley = [2.0 - 1.5 * math.exp(-(((i - 30) / 10) ** 2)) for i in range(50)]
    assert doubts(_range_test([_curve(valley)])) == ()
    flat = [2.0 - 0.001 * math.exp(-(((i - 30) / 10) ** 2)) for i in range(50)]
    assert [d.kind for d in doubts(_range_test([_curve(flat)]))] == ["flat"]
    # a shallow valley under batch noise of 0.3 a loss (the smoothed curve is the raw one
    # here, smoothing 0): within noise of its minimum over most of the 6 decades
    noisy = [v + (0.3 if i % 2 else -0.3) for i, v in enumerate(valley)]
    assert "noisy" in [d.kind for d in doubts(_range_test([_curve(noisy)]))]
    falling = [2.0 - i / 50 for i in range(50)]  # still falling at `end`, the test completed
    edge = doubts(_range_test([_curve(falling, stop="completed")]))
    assert [d.kind for d in edge] == ["edge"]
    assert "chart's end" in edge[0].detail
    assert doubts(_range_test([_curve(falling, stop="diverged")])) == ()
    spread = doubts(_range_test([_curve(valley)], low=0.001, high=0.05))
    assert [d.kind for d in spread] == ["spread"]
    assert spread[0].value == pytest.approx(50)
    result = _range_test([_curve(flat)])
    data = result.to_dict()
    assert data["doubtful"] is True
    assert data["doubts"][0]["kind"] == "flat"
    assert result.warning("lrlab tune x --optimizer sgd") == (
        "warning: this range test is in doubt (flat: the smoothed loss fell 0.0% before its "
        "minimum); `lrlab tune x --optimizer sgd` tunes the LR with short runs"
    )


def test_lrlab_find_warns_in_one_line_and_flags_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # digits with SGD: the smoothed loss falls 2.2% (docs/lr-finder.md's 2.33x-slow cell)
    assert main(["find", "digits", "--json", str(tmp_path / "d.json")]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "flat: the smoothed loss fell 2.2%" in warnings[0]
    assert "`lrlab tune digits --optimizer sgd`" in warnings[0]
    saved = json.loads((tmp_path / "d.json").read_text())
    assert saved["doubtful"] is True
    assert [d["kind"] for d in saved["doubts"]] == ["flat"]
    assert saved["lipschitz_is_sgd_theory"] is False
    # Adam: LipschitzLR's values are SGD theory
    assert main(["find", "mnist5k", "--optimizer", "adam", "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "SGD theory (adam scales its own steps)" in out
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["lipschitz_is_sgd_theory"] is True
    assert saved["doubtful"] is False
    assert not [line for line in out.splitlines() if line.startswith("warning:")]


@pytest.mark.slow
def test_tune_on_ray_fills_the_store_a_local_tune_resumes_from(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    db = tmp_path / "ray.sqlite"
    argv = ["tune", TASK, "--steps", str(STEPS), "--db", str(db)]
    assert main([*argv, "--executor", "ray", "--workers", "2"]) == 0
    on_ray = capsys.readouterr().out
    assert main(argv) == 0  # locally: every trial is in the store, under the same key
    local = capsys.readouterr().out
    chosen = next(line for line in on_ray.splitlines() if line.startswith("chosen lr"))
    assert chosen in local.splitlines()
    assert "17 trials, 17 run now, 0 from" in on_ray
    assert "17 trials, 0 run now, 17 from" in local
