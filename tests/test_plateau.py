"""Reduce-on-plateau against ``torch.optim.lr_scheduler.ReduceLROnPlateau``, LR for LR, the
warmup in front of it, and exact resume from a plain-data state."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lrlab.callspec import parse_call
from lrlab.controllers import build_controller
from lrlab.plateau import Plateau, PlateauLR, PlateauState, plateau_lrs
from lrlab.plateau.controller import PlateauController, from_spec

LRS = (0.1, 0.03)  # two param groups


def _sgd(lrs: tuple[float, ...] = LRS) -> torch.optim.SGD:
    return torch.optim.SGD(
        [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs], lr=lrs[0]
    )


def _lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in optimizer.param_groups]


# ReduceLROnPlateau's arguments over their valid ranges, with eps and min_lr large enough to
# matter, and metric sequences with ties, plateaus, negative values and NaN.
options = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["min", "max"]),
        "factor": st.sampled_from([0.1, 0.5, 0.9]) | st.floats(0.01, 0.99),
        "patience": st.integers(0, 4),
        "threshold": st.sampled_from([0.0, 1e-4, 0.01, 0.5]) | st.floats(0, 1),
        "threshold_mode": st.sampled_from(["rel", "abs"]),
        "cooldown": st.integers(0, 3),
        "min_lr": st.sampled_from([0.0, 1e-3, 0.02]) | st.tuples(st.floats(0, 0.05), st.just(0.0)),
        "eps": st.sampled_from([0.0, 1e-8, 1e-3, 0.02]),
    }
)
metric_values = st.sampled_from([0.0, 0.5, 1.0, 1.0001, 2.0, -1.0, math.nan]) | st.floats(-100, 100)
metric_sequences = st.lists(metric_values, min_size=1, max_size=60)


@given(options=options, metrics=metric_sequences)
def test_matches_reduce_lr_on_plateau_lr_for_lr(
    options: dict[str, Any], metrics: list[float]
) -> None:
    theirs_opt, ours_opt = _sgd(), _sgd()
    min_lr = options["min_lr"]
    theirs = ReduceLROnPlateau(
        theirs_opt, **{**options, "min_lr": list(min_lr) if isinstance(min_lr, tuple) else min_lr}
    )
    ours = PlateauLR(ours_opt, **options)
    for epoch, metric in enumerate(metrics):
        theirs.step(metric)
        reduced = ours.step(metric)
        assert _lrs(ours_opt) == _lrs(theirs_opt), f"epoch {epoch}"
        assert ours.get_last_lr() == theirs.get_last_lr()
        if reduced:  # a reduction starts the cooldown and clears the bad epochs
            assert (ours.cooldown_counter, ours.num_bad_epochs) == (options["cooldown"], 0)
        assert (ours.num_bad_epochs, ours.cooldown_counter, ours.last_epoch) == (
            theirs.num_bad_epochs,
            theirs.cooldown_counter,
            theirs.last_epoch,
        )
        assert ours.best == theirs.best or (math.isnan(ours.best) and math.isnan(theirs.best))


@given(options=options, metrics=metric_sequences)
def test_the_torch_free_preview_is_the_same_rule(
    options: dict[str, Any], metrics: list[float]
) -> None:
    """`plateau_lrs` (what ``lrlab schedule`` prints) gives the LR torch sets for each epoch."""
    min_lr = options["min_lr"]
    options = {**options, "min_lr": min_lr[0] if isinstance(min_lr, tuple) else min_lr}
    optimizer = _sgd((0.1,))
    theirs = ReduceLROnPlateau(optimizer, **options)
    expected = []
    for metric in metrics:
        expected.append(_lrs(optimizer)[0])
        theirs.step(metric)
    assert plateau_lrs(Plateau(**options), metrics, lr=0.1) == expected


def test_a_hand_checked_sequence() -> None:
    """min, patience 2, cooldown 1, factor 0.5, rel threshold 1e-4 (so 0.99995 is no better
    than 1.0): reduced after the third bad epoch, cooldown swallows the next one."""
    optimizer = _sgd((1.0,))
    scheduler = PlateauLR(optimizer, "min", factor=0.5, patience=2, cooldown=1)
    seen = []
    for metric in [1.0, 0.99995, 1.2, 1.1, 1.3, 1.3, 1.3, 0.5, 0.6]:
        scheduler.step(metric)
        seen.append(_lrs(optimizer)[0])
    # bad epochs: 1, 2, 3 -> reduce (cooldown 1); cooldown; 1, 2; better; 1
    assert seen == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    scheduler.step(0.6)
    scheduler.step(0.6)
    assert _lrs(optimizer)[0] == 0.25


def test_min_lr_and_eps_stop_the_reductions() -> None:
    optimizer = _sgd((1.0, 1.0))
    scheduler = PlateauLR(optimizer, "min", factor=0.1, patience=0, min_lr=[0.05, 0.0], eps=1e-3)
    for _ in range(6):
        scheduler.step(1.0)
    # group 0: 1 -> 0.1 -> 0.05 (floor); group 1: 1 -> 0.1 -> 0.01 -> 0.001, then a change of
    # 9e-4 <= eps is not made.
    assert _lrs(optimizer) == pytest.approx([0.05, 0.001], rel=1e-15)


def test_warmup_then_plateau_is_a_manual_torch_composition() -> None:
    """Warmup for N updates, then ReduceLROnPlateau on the epochs that end after it: what a
    hand-written torch loop does (SequentialLR cannot hold ReduceLROnPlateau)."""
    steps_per_epoch, warmup = 5, 12
    metrics = [3.0, 2.0, 2.0, 2.0, 1.5, 1.5, 1.5, 1.5]

    ours_opt, theirs_opt = _sgd(), _sgd()
    ours = PlateauLR(ours_opt, "min", factor=0.5, patience=1, warmup=warmup)
    theirs: ReduceLROnPlateau | None = None

    def start_theirs() -> ReduceLROnPlateau:
        for group, base in zip(theirs_opt.param_groups, LRS, strict=True):
            group["lr"] = base
        return ReduceLROnPlateau(theirs_opt, "min", factor=0.5, patience=1)

    updates = 0
    for metric in metrics:
        for _ in range(steps_per_epoch):
            if updates < warmup:
                for group, base in zip(theirs_opt.param_groups, LRS, strict=True):
                    group["lr"] = base * updates / warmup
            elif theirs is None:
                theirs = start_theirs()
            assert _lrs(ours_opt) == _lrs(theirs_opt), f"update {updates}"
            ours_opt.step()
            theirs_opt.step()
            ours.step_update()
            updates += 1
        if updates >= warmup:
            theirs = theirs or start_theirs()
            theirs.step(metric)
        ours.step(metric)
    assert _lrs(ours_opt) == _lrs(theirs_opt)
    # The first epoch ends at update 5 < 12: its metric is ignored; the plateau starts at 15.
    assert ours.last_epoch == len(metrics) - 2
    assert _lrs(ours_opt)[0] < LRS[0]


def test_warmup_values() -> None:
    optimizer = _sgd((0.2,))
    scheduler = PlateauLR(optimizer, "max", warmup=4)
    seen = []
    for _ in range(6):
        seen.append(_lrs(optimizer)[0])
        scheduler.step(0.0)  # ignored during the warmup
        scheduler.step_update()
    assert seen == [0.0, 0.05, 0.1, 0.15000000000000002, 0.2, 0.2]
    assert scheduler.last_epoch == 2  # only the metrics given after the warmup count


def _roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = torch.load(buffer, weights_only=True)
    return loaded


@given(
    options=options,
    metrics=st.lists(metric_values, min_size=2, max_size=40),
    split=st.floats(0, 1),
    warmup=st.sampled_from([0, 7]),
)
def test_resume_from_state_dict_is_exact(
    options: dict[str, Any], metrics: list[float], split: float, warmup: int
) -> None:
    cut = int(split * len(metrics))

    def run(resume_at: int | None) -> list[list[float]]:
        optimizer = _sgd()
        scheduler = PlateauLR(optimizer, **options, warmup=warmup)
        trace = []
        for epoch, metric in enumerate(metrics):
            if epoch == resume_at:
                state = _roundtrip(scheduler.state_dict())
                optimizer = _sgd()  # a fresh process: new optimizer, new scheduler
                scheduler = PlateauLR(optimizer, **options, warmup=warmup)
                scheduler.load_state_dict(state)
            for _ in range(3):
                trace.append(_lrs(optimizer))
                scheduler.step_update()
            scheduler.step(metric)
        trace.append(_lrs(optimizer))
        return trace

    assert run(resume_at=cut) == run(resume_at=None)


def test_state_dict_is_plain_data() -> None:
    scheduler = PlateauLR(_sgd(), "max", factor=0.5, patience=0)
    scheduler.step(0.5)
    scheduler.step(0.4)
    state = scheduler.state_dict()
    assert state == {
        "rule": "plateau(mode=max, factor=0.5, patience=0)",
        "best": 0.5,
        "num_bad_epochs": 0,
        "cooldown_counter": 0,
        "last_epoch": 2,
        "updates": 0,
        "base_lrs": [0.1, 0.03],
        "lrs": [0.05, 0.015],
    }
    assert _roundtrip(state) == state


def test_loading_another_rules_state_warns() -> None:
    state = PlateauLR(_sgd(), "max").state_dict()
    with pytest.warns(UserWarning, match=r"loading the state of plateau\(mode=max\)"):
        PlateauLR(_sgd(), "min").load_state_dict(state)


def test_tensor_lrs_stay_tensors() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=torch.tensor(0.1))
    scheduler = PlateauLR(optimizer, "min", factor=0.5, patience=0)
    scheduler.step(1.0)
    scheduler.step(1.0)
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)
    assert optimizer.param_groups[0]["lr"] == torch.tensor(0.05)


def test_the_state_machine_needs_a_mode() -> None:
    with pytest.raises(ValueError, match="mode is not resolved yet"):
        PlateauState(Plateau(), [0.1])
    assert Plateau(monitor="loss").resolved(None).mode == "min"
    assert Plateau().resolved(True).mode == "max"
    assert Plateau().resolved(False).mode == "min"
    assert Plateau(mode="min").resolved(True).mode == "min"  # given wins
    with pytest.raises(ValueError, match="mode must be given"):
        Plateau().resolved(None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("plateau(factor=1)", r"plateau: factor must be < 1, got factor=1"),
        ("plateau(factor=0)", r"plateau: factor must be > 0, got factor=0"),
        ("plateau(patience=1.5)", r"patience must be an integer >= 0, got patience=1.5"),
        ("plateau(patience=-1)", r"patience must be >= 0, got patience=-1"),
        ("plateau(mode=up)", r"mode must be one of min, max, got mode='up'"),
        ("plateau(monitor=acc)", r"monitor must be one of metric, loss"),
        ("plateau(threshold_mode=pct)", r"threshold_mode must be one of rel, abs"),
        ("plateau(threshold=-0.1)", r"threshold must be >= 0"),
        ("plateau(cooldown=-2)", r"cooldown must be >= 0"),
        ("plateau(min_lr=[])", r"min_lr must not be an empty list"),
        ("plateau(min_lr=[0.1, -1])", r"min_lr\[1\] must be >= 0"),
        ("plateau(eps=nan)", r"eps must be a finite number"),
        ("plateau(lr=0)", r"lr must be > 0, got lr=0"),
        ("plateau(warmup=-5)", r"warmup must be >= 0"),
        ("plateau(patiense=3)", r"unknown argument 'patiense' \(did you mean 'patience'"),
        ("plateu(patience=3)", r"unknown schedule 'plateu'"),
    ],
)
def test_bad_specs_are_one_line_errors_before_training(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        build_controller(spec)
    assert "\n" not in str(info.value)


def test_bad_arguments_to_plateau_lr() -> None:
    with pytest.raises(TypeError, match=r"optimizer must be a torch\.optim\.Optimizer"):
        PlateauLR("sgd", "min")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"min_lr must have one entry per param group \(2\)"):
        PlateauLR(_sgd(), "min", min_lr=[0.1])


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"mode": "up"}, "mode"),
        ({"factor": 1.0}, "factor"),
        ({"factor": -1}, "factor"),
        ({"factor": math.nan}, "factor"),
        ({"factor": "a"}, "factor"),
        ({"patience": -1}, "patience"),
        ({"patience": 1.5}, "patience"),
        ({"patience": True}, "patience"),
        ({"threshold": -1}, "threshold"),
        ({"threshold": math.inf}, "threshold"),
        ({"threshold_mode": "x"}, "threshold_mode"),
        ({"cooldown": -1}, "cooldown"),
        ({"min_lr": -1}, "min_lr"),
        ({"min_lr": math.nan}, "min_lr"),
        ({"eps": math.inf}, "eps"),
        ({"eps": -1}, "eps"),
    ],
)
def test_every_bad_argument_is_named(arguments: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=rf"^plateau: {name} must .*got {name}=") as info:
        PlateauLR(_sgd(), **{"mode": "min", **arguments})  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("metric", ["x", None, [1.0, 2.0], torch.ones(2)])
def test_a_metric_that_is_not_a_number_is_named(metric: object) -> None:
    scheduler = PlateauLR(_sgd(), "min")
    with pytest.raises(TypeError, match=r"^plateau: metric must be a number or a 0-d tensor"):
        scheduler.step(metric)  # type: ignore[arg-type]
    assert scheduler.step(torch.tensor(0.5)) is False  # a 0-d tensor is a number


def test_spec_builds_a_controller_and_round_trips() -> None:
    controller = build_controller("plateau(lr=0.1, factor=0.5, patience=3, warmup=100)")
    assert isinstance(controller, PlateauController)
    assert controller.initial_lr == 0.1
    assert controller.spec == "plateau(lr=0.1, factor=0.5, patience=3, warmup=100)"
    assert from_spec(parse_call(controller.spec)).rule == controller.rule
    assert build_controller("plateau").initial_lr is None  # the run's LR
