"""The Python API's errors: a wrong type is a ``TypeError``, a wrong value a ``ValueError``,
each one line naming the parameter and the value, raised before anything trains (never an
``AttributeError``, ``KeyError``, ``IndexError`` or ``ZeroDivisionError`` from inside)."""

# ruff: noqa: E501  (the table of cases reads best one case a line)
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import lrlab
from lrlab import Constant, LipschitzLR, Schedule, ScheduleLR, make_optimizer
from lrlab.schedules import parse


def _params() -> list[torch.Tensor]:
    return [torch.zeros(2, requires_grad=True)]


def _sgd(lr: float = 0.1) -> torch.optim.Optimizer:
    """SGD whose group LR is ``lr``, set after construction (torch refuses some itself)."""
    optimizer = torch.optim.SGD(_params(), lr=0.1)
    optimizer.param_groups[0]["lr"] = lr
    return optimizer


@dataclass(frozen=True)
class Flat(Schedule):
    """A user's schedule whose reference LR is 0 (ScheduleLR divides by it)."""

    name = "flat"

    @property
    def reference_lr(self) -> float:
        return 0.0

    def value(self, t: float) -> float:
        return 0.0


def _scheduler_state(**changes: Any) -> dict[str, Any]:
    state = ScheduleLR(_sgd(), Constant(lr=0.1)).state_dict()
    state.update(changes)
    return state


def _load_schedule_state(state: object) -> None:
    ScheduleLR(_sgd(), Constant(lr=0.1)).load_state_dict(state)  # type: ignore[arg-type]


def _lipschitz(**overrides: Any) -> LipschitzLR:
    model = nn.Sequential(nn.Linear(2, 3))
    options: dict[str, Any] = {
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.1),
        "model": model,
        "loss": "cross_entropy",
        "data": [(torch.randn(4, 2), torch.tensor([0, 1, 2, 0]))],
    }
    options.update(overrides)
    optimizer, model = options.pop("optimizer"), options.pop("model")
    return LipschitzLR(optimizer, model, **options)


def _compare(**overrides: Any) -> object:
    options: dict[str, Any] = {"optimizers": ["sgd"], "seeds": 1, "steps": 1}
    options.update(overrides)
    return lrlab.compare("quadratic", **options)


CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    # ScheduleLR
    ("ScheduleLR", lambda: ScheduleLR(None, Constant(lr=0.1)), TypeError, r"optimizer=None"),  # type: ignore[arg-type]
    ("ScheduleLR", lambda: ScheduleLR(_sgd(), 0.1), TypeError, r"schedule=0\.1"),  # type: ignore[arg-type]
    ("ScheduleLR", lambda: ScheduleLR(_sgd(), "cosine"), ValueError, r"cosine: missing argument lr"),
    ("ScheduleLR", lambda: ScheduleLR(_sgd(math.nan), Constant(lr=0.1)), ValueError, r"\['lr'\]=nan"),
    ("ScheduleLR", lambda: ScheduleLR(_sgd(-5), Constant(lr=0.1)), ValueError, r"\['lr'\]=-5"),
    ("ScheduleLR", lambda: ScheduleLR(_sgd(), Flat()), ValueError, r"reference_lr=0\.0"),
    ("ScheduleLR", lambda: ScheduleLR(_sgd(), Constant(lr=0.1), "a"), TypeError, r"last_epoch='a'"),  # type: ignore[arg-type]
    ("ScheduleLR", lambda: ScheduleLR(_sgd(), Constant(lr=0.1), 5), ValueError, r"initial_lr"),
    # ScheduleLR.load_state_dict
    ("load_state_dict", lambda: _load_schedule_state(None), TypeError, r"state_dict=None"),
    ("load_state_dict", lambda: _load_schedule_state({}), ValueError, r"without last_epoch"),
    ("load_state_dict", lambda: _load_schedule_state(_scheduler_state(base_lrs=[math.nan])), ValueError, r"base_lrs\[0\]=nan"),
    ("load_state_dict", lambda: _load_schedule_state(_scheduler_state(base_lrs=[-5])), ValueError, r"base_lrs\[0\]=-5"),
    ("load_state_dict", lambda: _load_schedule_state(_scheduler_state(base_lrs=[0.1, 0.1])), ValueError, r"one LR per param group"),
    ("load_state_dict", lambda: _load_schedule_state(_scheduler_state(base_lrs="x")), TypeError, r"base_lrs='x'"),
    ("load_state_dict", lambda: _load_schedule_state(_scheduler_state(last_epoch=-7)), ValueError, r"last_epoch=-7"),
    ("load_state_dict", lambda: _load_schedule_state(_scheduler_state(last_epoch="x")), TypeError, r"last_epoch='x'"),
    # LipschitzLR
    ("LipschitzLR", lambda: _lipschitz(optimizer=None), TypeError, r"optimizer=None"),
    ("LipschitzLR", lambda: _lipschitz(model=None), TypeError, r"model=None"),
    ("LipschitzLR", lambda: _lipschitz(data=3), TypeError, r"data=3"),
    ("LipschitzLR", lambda: _lipschitz(loss=3), ValueError, r"loss=3"),
    ("LipschitzLR", lambda: _lipschitz(scale=math.nan), ValueError, r"scale=nan"),
    ("LipschitzLR", lambda: _lipschitz(head=3), ValueError, r"head must be"),
    ("LipschitzLR", lambda: _lipschitz().load_state_dict({}), ValueError, r"state_dict must hold epoch"),
    ("LipschitzLR", lambda: _lipschitz().load_state_dict(None), TypeError, r"state_dict=None"),  # type: ignore[arg-type]
    # make_optimizer
    ("make_optimizer", lambda: make_optimizer(3, _params()), TypeError, r"optimizer=3"),  # type: ignore[arg-type]
    ("make_optimizer", lambda: make_optimizer(["sgd"], _params()), TypeError, r"optimizer=\['sgd'\]"),  # type: ignore[arg-type]
    ("make_optimizer", lambda: make_optimizer("nope", _params()), ValueError, r"unknown optimizer 'nope'"),
    ("make_optimizer", lambda: make_optimizer("sgd", _params(), lr="x"), TypeError, r"lr='x'"),  # type: ignore[arg-type]
    ("make_optimizer", lambda: make_optimizer("sgd", _params(), lr=1e39), ValueError, r"lr=1e\+39"),
    ("make_optimizer", lambda: make_optimizer("sgd", _params(), momentum="x"), TypeError, r"momentum='x'"),
    ("make_optimizer", lambda: make_optimizer("adam", _params(), betas=[0.9]), ValueError, r"betas=\[0\.9\]"),
    ("make_optimizer", lambda: make_optimizer("adam", _params(), eps=math.nan), ValueError, r"eps=nan"),
    ("make_optimizer", lambda: make_optimizer("sgd", _params(), foreach="x"), TypeError, r"foreach='x'"),
    ("make_optimizer", lambda: make_optimizer("sgd", _params(), params=[]), TypeError, r"'params'"),
    ("make_optimizer", lambda: make_optimizer("sgd", _params(), momentum=-1), ValueError, r"optimizer 'sgd': Invalid momentum value: -1"),
    # parse
    ("parse", lambda: parse(3), TypeError, r"spec=<int>"),  # type: ignore[arg-type]
    ("parse", lambda: parse(None), TypeError, r"spec=<NoneType>"),  # type: ignore[arg-type]
    ("parse", lambda: parse("constant(lr=" + "-" * 5000 + "1)"), ValueError, r"nests deeper than 32"),
    ("parse", lambda: parse("exponential(lr=1e300, rate=1e300)"), ValueError, r"the LR at step 0"),
    ("parse", lambda: parse("per_epoch(constant(0.1))", steps_per_epoch="x"), TypeError, r"steps_per_epoch='x'"),  # type: ignore[arg-type]
    ("parse", lambda: parse("per_epoch(constant(0.1))", steps_per_epoch=0), ValueError, r"steps_per_epoch=0"),
    ("Schedule", lambda: Constant(lr=0.1)("a"), TypeError, r"step='a'"),  # type: ignore[arg-type]
    ("Schedule", lambda: Constant(lr=0.1).preview("a"), TypeError, r"steps='a'"),  # type: ignore[arg-type]
    ("Schedule", lambda: parse("exponential(lr=1, rate=2)")(200), ValueError, r"the LR at step 200 is 1\.6\d*e\+60, above"),
    ("Schedule", lambda: parse("exponential(lr=1, rate=2)")(2000), ValueError, r"the LR at step 2000 is not a finite number"),
    # train
    ("train", lambda: lrlab.train(3), TypeError, r"task=3"),  # type: ignore[arg-type]
    ("train", lambda: lrlab.train("quadratic", optimizer=3, steps=1), TypeError, r"optimizer=3"),  # type: ignore[arg-type]
    ("train", lambda: lrlab.train("quadratic", seed="a", steps=1), TypeError, r"seed='a'"),  # type: ignore[arg-type]
    ("train", lambda: lrlab.train("quadratic", seed=10**30, steps=1), ValueError, r"seed=10+"),
    ("train", lambda: lrlab.train("quadratic", steps=1.5), TypeError, r"steps=1\.5"),  # type: ignore[arg-type]
    ("train", lambda: lrlab.train("quadratic", lr=[1], steps=1), TypeError, r"lr=\[1\]"),  # type: ignore[arg-type]
    ("train", lambda: lrlab.train("quadratic", lr=math.inf, steps=1), ValueError, r"lr=inf"),
    ("train", lambda: lrlab.train("quadratic", schedule=3, steps=1), TypeError, r"schedule=3"),  # type: ignore[arg-type]
    ("train", lambda: lrlab.train("quadratic", schedule=" ", steps=1), ValueError, r"schedule=' '"),
    ("train", lambda: lrlab.train("quadratic", optimizer_args=3, steps=1), TypeError, r"optimizer_args=3"),  # type: ignore[arg-type]
    ("train", lambda: lrlab.train("quadratic", optimizer_args={"lr": 1}, steps=1), ValueError, r"lr cannot be in optimizer_args"),
    ("train", lambda: lrlab.train("quadratic", observer=3, steps=1), TypeError, r"observer=3"),  # type: ignore[arg-type]
    ("train", lambda: lrlab.train("quadratic", data_dir=3, steps=1), TypeError, r"data_dir=3"),  # type: ignore[arg-type]
    ("train", lambda: lrlab.train("quadratic", schedule="exponential(lr=0.1, rate=1e300)", steps=5), ValueError, r"the LR at step 1"),
    # compare
    ("compare", lambda: _compare(db=3), TypeError, r"db=3"),
    ("compare", lambda: _compare(optimizers="sgd"), TypeError, r"optimizers='sgd'"),
    ("compare", lambda: _compare(methods=[3]), TypeError, r"methods\[0\]=3"),
    ("compare", lambda: _compare(schedules=3), TypeError, r"schedules=3"),
    ("compare", lambda: _compare(lr_grid=[math.nan]), ValueError, r"lr_grid\[0\]=nan"),
    ("compare", lambda: _compare(workers=1.5), TypeError, r"workers=1\.5"),
    ("compare", lambda: _compare(workers=0), ValueError, r"workers=0"),
    ("compare", lambda: _compare(threads=0), ValueError, r"threads=0"),
    ("compare", lambda: _compare(epochs=0, steps=None), ValueError, r"epochs=0"),
    ("compare", lambda: _compare(seeds=10**6), ValueError, r"seeds=1000000"),
    ("compare", lambda: _compare(optimizers=["sgd", "adam"], optimizer_args={"momentum": 0.5}), ValueError, r"optimizer 'adam' takes no argument 'momentum'"),
    ("compare", lambda: _compare(schedules=["exponential(lr=0.1, rate=2)"], steps=2000), ValueError, r"the LR at step 1\d\d\d? is"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("where", "action", "kind", "message"),
    CASES,
    ids=[f"{where}-{i}" for i, (where, *_) in enumerate(CASES)],
)
def test_bad_arguments_raise_the_right_type_in_one_line(
    where: str,
    action: Callable[[], object],
    kind: type[Exception],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # compare's default store would land here
    with pytest.raises(kind, match=message) as error:
        action()
    assert isinstance(error.value, TypeError | ValueError)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


@pytest.mark.parametrize(
    "options",
    [
        {"schedule": "lipschitz(scale=1e300)"},  # LipschitzLR's scale / K
        {"optimizer": "prodigy", "optimizer_args": {"d0": 1e300}},  # Prodigy's d * lr
    ],
)
def test_an_lr_torch_cannot_apply_is_an_error_at_its_step(options: dict[str, Any]) -> None:
    """An LR a controller or an optimizer computes mid-run: beyond what torch can apply to
    float32 weights, it stops the run with one line naming the step (torch itself would fail
    with "value cannot be converted to type float without overflow")."""
    if options.get("optimizer") == "prodigy":
        pytest.importorskip("prodigyopt")
    with pytest.raises(ValueError, match=r"^run: the LR at step 0 is \d.*e\+\d+, outside \[0, "):
        lrlab.train("iris", steps=3, **options)
