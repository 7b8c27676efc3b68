"""The peers (``lrlab[peers]``): built by name with their packages' defaults and labelled with
them, trained by the engine, schedule-free's train()/eval() protocol honoured, imported only
when built, and a missing package reported in one line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch

from lrlab.engine import loop as engine
from lrlab.engine import train_run
from lrlab.optimizers import (
    OPTIMIZERS,
    PEERS,
    known_optimizers,
    lr_free,
    make_optimizer,
    needs_train_eval,
    optimizer_entry,
    set_optimizer_mode,
)
from lrlab.record import RunConfig


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(3))


@pytest.mark.parametrize(
    ("name", "class_name", "label"),
    [
        (
            "sgd-schedulefree",
            "SGDScheduleFree",
            "SGDScheduleFree(lr=1.0, momentum=0.9, warmup_steps=0)",
        ),
        ("prodigy", "Prodigy", "Prodigy(lr=1.0, d_coef=1.0)"),
        ("dadapt-adam", "DAdaptAdam", "DAdaptAdam(lr=1.0)"),
    ],
)
def test_each_peer_builds_by_name_with_its_defaults(name: str, class_name: str, label: str) -> None:
    optimizer = make_optimizer(name, [_param()])
    assert type(optimizer).__name__ == class_name
    assert type(optimizer).__module__.partition(".")[0] == PEERS[name].package
    entry = optimizer_entry(name)
    assert entry.imported_when_built
    for key, value in entry.defaults.items():
        assert optimizer.defaults[key] == value, key
    assert entry.label == label


def test_overrides_reach_the_peer_and_its_label() -> None:
    optimizer = make_optimizer("prodigy", [_param()], lr=0.5, d_coef=2.0, weight_decay=0.01)
    assert optimizer.defaults["lr"] == 0.5
    assert optimizer.defaults["d_coef"] == 2.0
    assert optimizer.defaults["weight_decay"] == 0.01
    label = PEERS["prodigy"].label_for(lr=0.5, d_coef=2.0, weight_decay=0.01)
    assert label == "Prodigy(lr=0.5, d_coef=2.0, weight_decay=0.01)"
    schedulefree = make_optimizer("sgd-schedulefree", [_param()], lr=0.2, warmup_steps=10)
    assert schedulefree.defaults["lr"] == 0.2
    assert schedulefree.defaults["warmup_steps"] == 10


def test_peer_construction_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    # Both packages print "Using decoupled weight decay" from their constructors.
    make_optimizer("prodigy", [_param()], weight_decay=0.01)
    make_optimizer("dadapt-adam", [_param()], decouple=True)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("prodigy", {"momentum": 0.9}, "optimizer 'prodigy' takes no argument 'momentum'"),
        ("dadapt-adam", {"lr": 0.0}, r"dadapt-adam: lr must be > 0, got lr=0\.0"),
        ("prodigy", {"lr": float("inf")}, r"prodigy: lr must be a finite number, got lr=inf"),
        # The package's own check, prefixed with the optimizer it came from.
        (
            "sgd-schedulefree",
            {"momentum": 1.0},
            r"^optimizer 'sgd-schedulefree': Momentum must be between",
        ),
    ],
)
def test_bad_peer_arguments_are_one_line_errors(
    name: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        make_optimizer(name, [_param()], **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", list(PEERS))
def test_each_peer_trains_digits_with_its_defaults(name: str) -> None:
    record = train_run(RunConfig(task="digits", optimizer=name, epochs=2, validation=False))
    assert record.status == "done"
    assert len(record.step_loss) == record.steps == 2 * record.steps_per_epoch
    k = record.steps // 5
    losses = [v for v in record.step_loss if v is not None]
    assert sum(losses[-k:]) / k < 0.5 * sum(losses[:k]) / k
    final = record.epochs[-1].test_metric
    assert final is not None
    assert final > 0.8


def _log_protocol(
    monkeypatch: pytest.MonkeyPatch,
    build: Callable[..., torch.optim.Optimizer],
) -> tuple[list[str], list[torch.optim.Optimizer]]:
    """Patch the engine so its optimizer logs ``train``/``eval``/``step`` calls and every
    evaluation logs ``evaluate``; returns the log and the optimizer(s) built."""
    log: list[str] = []
    built: list[torch.optim.Optimizer] = []

    def logged(method: Callable[..., Any], event: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            log.append(event)
            return method(*args, **kwargs)

        return call

    def make(*args: Any, **kwargs: Any) -> torch.optim.Optimizer:
        optimizer = build(*args, **kwargs)
        for event in ("train", "eval", "step"):
            setattr(optimizer, event, logged(getattr(optimizer, event), event))
        built.append(optimizer)
        return optimizer

    monkeypatch.setattr(engine, "make_optimizer", make)
    monkeypatch.setattr(engine, "evaluate_batches", logged(engine.evaluate_batches, "evaluate"))
    return log, built


def _without_steps(log: list[str]) -> list[str]:
    return [event for event in log if event != "step"]


def test_engine_switches_schedulefree_to_eval_weights_for_each_evaluation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_evaluate = engine.evaluate_batches
    log, built = _log_protocol(monkeypatch, make_optimizer)
    modes: list[bool] = []
    at_x: list[float] = []
    at_y: list[float] = []
    logged_evaluate = engine.evaluate_batches

    def evaluate(model: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[float, float | None]:
        optimizer = built[0]
        modes.append(optimizer.param_groups[0]["train_mode"])
        result = logged_evaluate(model, *args, **kwargs)
        at_x.append(result[0])
        # The same evaluation at the training iterate y, through the class's own methods so
        # the log only shows what the engine did.
        type(optimizer).train(optimizer)  # type: ignore[attr-defined]
        at_y.append(real_evaluate(model, *args, **kwargs)[0])
        type(optimizer).eval(optimizer)  # type: ignore[attr-defined]
        return result

    monkeypatch.setattr(engine, "evaluate_batches", evaluate)
    # (No validation split: one evaluation per epoch, the test set's.)
    config = RunConfig(task="digits", optimizer="sgd-schedulefree", epochs=3, validation=False)
    record = train_run(config)

    assert record.status == "done"
    assert _without_steps(log) == ["train"] + ["eval", "evaluate", "train"] * 3
    assert log[0] == "train"
    assert log[1] == "step"
    assert modes == [False, False, False]  # evaluation ran in eval mode, at x
    assert built[0].param_groups[0]["train_mode"] is True  # back to y afterwards
    # What the record reports is the evaluation at x, and x is not the training iterate y.
    assert [e.test_loss for e in record.epochs] == at_x
    assert all(abs(x - y) > 1e-6 for x, y in zip(at_x, at_y, strict=True))


class _ProtocolSGD(torch.optim.SGD):
    """A plain SGD that merely has the train()/eval() protocol, to show the engine keys on
    the protocol, not on schedule-free's class."""

    def __init__(self, params: Any, lr: float = 0.01) -> None:
        super().__init__(params, lr=lr)
        self.mode: str | None = None

    def train(self) -> None:
        self.mode = "train"

    def eval(self) -> None:
        self.mode = "eval"


def test_engine_honours_the_protocol_on_any_optimizer(monkeypatch: pytest.MonkeyPatch) -> None:
    def build(name: str, params: Any, lr: float | None = None, **_: Any) -> _ProtocolSGD:
        return _ProtocolSGD(params, lr=lr or 0.05)

    log, built = _log_protocol(monkeypatch, build)
    train_run(RunConfig(task="digits", optimizer="sgd", epochs=2))
    # Each epoch end: one switch to the evaluation weights for both held-out splits.
    assert _without_steps(log) == ["train"] + ["eval", "evaluate", "evaluate", "train"] * 2
    assert isinstance(built[0], _ProtocolSGD)
    assert built[0].mode == "train"


def test_only_optimizers_with_the_protocol_are_switched() -> None:
    optimizer = make_optimizer("momentum", [_param()])
    assert not needs_train_eval(optimizer)
    set_optimizer_mode(optimizer, training=False)  # a no-op, not an AttributeError
    set_optimizer_mode(optimizer, training=True)
    assert not needs_train_eval(make_optimizer("prodigy", [_param()]))
    schedulefree = make_optimizer("sgd-schedulefree", [_param()])
    assert needs_train_eval(schedulefree)
    set_optimizer_mode(schedulefree, training=True)
    assert schedulefree.param_groups[0]["train_mode"] is True
    set_optimizer_mode(schedulefree, training=False)
    assert schedulefree.param_groups[0]["train_mode"] is False


@pytest.mark.parametrize(
    ("name", "package"),
    [
        ("sgd-schedulefree", "schedulefree"),
        ("prodigy", "prodigyopt"),
        ("dadapt-adam", "dadaptation"),
    ],
)
def test_a_missing_package_is_a_one_line_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, name: str, package: str
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # `import package` now raises ImportError
    expected = (
        f"optimizer '{name}' needs the peers extra: pip install 'lrlab[peers]' "
        f"({package} is not installed)"
    )
    with pytest.raises(ValueError, match="needs the peers extra") as info:
        make_optimizer(name, [_param()])
    assert str(info.value) == expected
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    # The name is still known (metadata needs no import), and the engine says the same.
    assert optimizer_entry(name) is PEERS[name]
    with pytest.raises(ValueError, match=r"needs the peers extra"):
        train_run(RunConfig(task="digits", optimizer=name, steps=1))


def test_a_package_that_fails_to_import_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(module: str) -> None:
        raise ImportError("No module named 'triton'", name="triton")

    monkeypatch.setattr("lrlab.optimizers.registry.importlib.import_module", broken)
    with pytest.raises(ValueError, match=r"\(prodigyopt failed to import: No module named"):
        make_optimizer("prodigy", [_param()])


def test_unknown_name_lists_the_peers_too() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'prodigi'") as info:
        make_optimizer("prodigi", [_param()])
    message = str(info.value)
    assert "did you mean 'prodigy'" in message
    for name in known_optimizers():
        assert name in message
    assert set(known_optimizers()) == set(OPTIMIZERS) | set(PEERS)
    assert "\n" not in message


def test_lr_free() -> None:
    assert lr_free("prodigy")
    assert lr_free("dadapt-adam")
    assert not lr_free("sgd-schedulefree")  # it drops the schedule, not the LR
    assert not any(lr_free(name) for name in OPTIMIZERS if name not in PEERS)
    assert {name for name, entry in PEERS.items() if entry.lr_free} == {"prodigy", "dadapt-adam"}
    with pytest.raises(ValueError, match="unknown optimizer 'nope'"):
        lr_free("nope")


def test_peer_packages_load_only_when_a_peer_is_built() -> None:
    code = (
        "import sys, lrlab, lrlab.optimizers, lrlab.engine\n"
        "from lrlab.optimizers import lr_free, optimizer_entry\n"
        "optimizer_entry('prodigy'); lr_free('dadapt-adam')\n"
        "lrlab.optimizers.PEERS['prodigy'].label\n"
        "print(sorted({'schedulefree', 'prodigyopt', 'dadaptation'} & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", ["prodigy", "dadapt-adam"])
def test_lr_trace_shows_the_step_these_optimizers_take(name: str) -> None:
    """Their ``lr`` is a multiplier (1.0) of the step size ``d`` they estimate: the trace
    records ``d * lr``, which grows from the tiny initial ``d`` as they adapt."""
    record = train_run(RunConfig(task="digits", optimizer=name, epochs=2))
    assert record.step_lr[0] < 1e-3
    assert record.step_lr[-1] > 10 * record.step_lr[0]
