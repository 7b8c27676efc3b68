"""`lrlab.find`: the range test against a hand-written loop, its stops, exact restore, gradient
accumulation, repeats and seeds, bad input, LipschitzLR's values and the chart."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import lrlab
from lrlab import Cosine, ScheduleLR
from lrlab.finder import RangeTest, find, lr_ramp, smooth

Batches = list[tuple[Tensor, Tensor]]


def _batches(count: int = 6, size: int = 16, features: int = 6, seed: int = 1) -> Batches:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count * size, features, generator=generator)
    y = torch.randint(3, (count * size,), generator=generator)
    return list(zip(x.split(size), y.split(size), strict=True))


def _mlp(seed: int = 0, features: int = 6, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, 12), nn.ReLU(), nn.Linear(12, 3)).to(dtype)


def _bn_dropout_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(16, 3),
    )


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    return {
        "tensors": [t.detach().clone() for t in [*model.parameters(), *model.buffers()]],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "modes": [m.training for m in model.modules()],
        "optimizer": _optimizer_state(optimizer),
        "rng": (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()),  # noqa: NPY002
    }


def _optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    state = optimizer.state_dict()
    return {
        "state": {k: {n: _plain(v) for n, v in s.items()} for k, s in state["state"].items()},
        "groups": [{k: _plain(v) for k, v in g.items()} for g in state["param_groups"]],
    }


def _plain(value: Any) -> Any:
    return value.clone() if isinstance(value, Tensor) else value


def _same(a: Any, b: Any) -> bool:
    """Bitwise equality of nested tensors, lists, dicts and plain values."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (
            isinstance(a, Tensor)
            and isinstance(b, Tensor)
            and a.dtype == b.dtype
            and torch.equal(a, b)
        )
    if isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# -- the ramp, the smoothing and the test itself ------------------------------------------------


@given(
    start=st.floats(1e-9, 1.0),
    decades=st.floats(0.5, 10.0),
    steps=st.integers(10, 300),
    mode=st.sampled_from(["exponential", "linear"]),
)
def test_lr_ramp_hits_both_ends_and_grows_as_promised(
    start: float, decades: float, steps: int, mode: str
) -> None:
    end = start * 10**decades
    lrs = lr_ramp(start, end, steps, mode)  # type: ignore[arg-type]
    assert len(lrs) == steps
    assert lrs[0] == start
    assert lrs[-1] == end
    assert all(b > a for a, b in itertools.pairwise(lrs))
    if mode == "exponential":
        ratios = [b / a for a, b in itertools.pairwise(lrs[:-1])]
        assert max(ratios) == pytest.approx(min(ratios), rel=1e-9)
    else:
        gaps = [b - a for a, b in itertools.pairwise(lrs[:-1])]
        assert max(gaps) == pytest.approx(min(gaps), rel=1e-6)


@given(st.lists(st.floats(0.0, 10.0), min_size=1, max_size=50), st.floats(0.0, 0.99))
def test_smooth_is_the_bias_corrected_ema(losses: list[float], beta: float) -> None:
    expected, average = [], 0.0
    for i, loss in enumerate(losses):
        average = average * beta + loss * (1 - beta)  # fastai's lerp(loss, val, beta)
        expected.append(average / (1 - beta ** (i + 1)))
    assert smooth(losses, beta) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert smooth([3.5] * len(losses), beta) == pytest.approx([3.5] * len(losses))


def _reference_curve(
    model: nn.Module, optimizer: torch.optim.Optimizer, batches: Batches, lrs: list[float]
) -> list[float]:
    """A plain loop doing what the range test should: set the LR, loss, backward, step."""
    losses = []
    for lr, (x, y) in zip(lrs, itertools.cycle(batches), strict=False):
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_the_curve_is_what_a_plain_loop_records() -> None:
    batches = _batches(count=4)
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    result = find(
        model, optimizer, batches, F.cross_entropy, start=1e-4, end=1.0, steps=30, diverge=None
    )
    curve = result.curves[0]
    assert curve.stop == "completed"
    assert list(curve.lrs) == lr_ramp(1e-4, 1.0, 30) == list(result.lrs)
    reference = _mlp()
    expected = _reference_curve(
        reference, torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9), batches, curve.lrs
    )
    assert list(curve.losses) == expected  # bit for bit, the batches cycled in order
    assert list(curve.smoothed) == smooth(expected, 0.98)
    assert curve.window == (3, 25)


def test_param_groups_keep_their_ratio() -> None:
    model = _mlp()
    optimizer = torch.optim.SGD(
        [{"params": model[0].parameters(), "lr": 0.2}, {"params": model[2].parameters()}],
        lr=0.1,
    )
    seen: list[tuple[float, float]] = []
    optimizer.register_step_pre_hook(
        lambda opt, *_: seen.append((opt.param_groups[0]["lr"], opt.param_groups[1]["lr"]))
    )
    find(model, optimizer, _batches(), F.cross_entropy, start=1e-3, end=1.0, steps=10)
    assert [a for a, _ in seen] == lr_ramp(1e-3, 1.0, 10)
    assert all(b == pytest.approx(a / 2) for a, b in seen)
    assert [g["lr"] for g in optimizer.param_groups] == [0.2, 0.1]


def test_stops_when_the_smoothed_loss_exceeds_diverge_times_its_best() -> None:
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters())
    result = find(model, optimizer, _batches(), F.cross_entropy, start=1e-3, end=1e4, steps=60)
    curve = result.curves[0]
    assert curve.stop == "diverged"
    assert len(curve.losses) < 60
    best = [min(curve.smoothed[: i + 1]) for i in range(len(curve.smoothed))]
    assert curve.smoothed[-1] > 4 * best[-1]
    assert all(s <= 4 * b for s, b in zip(curve.smoothed[:-1], best[:-1], strict=True))


def test_stops_at_a_non_finite_loss_without_updating_with_it() -> None:
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters())
    calls = itertools.count()

    def loss_fn(outputs: Tensor, targets: Tensor) -> Tensor:
        loss = F.cross_entropy(outputs, targets)
        return loss * math.inf if next(calls) == 20 else loss

    result = find(model, optimizer, _batches(), loss_fn, diverge=None, steps=50)
    curve = result.curves[0]
    assert curve.stop == "non-finite"
    assert len(curve.losses) == 21
    assert math.isinf(curve.losses[-1])
    assert math.isnan(curve.smoothed[-1])
    assert curve.window == (5, 16)


# -- exact restore -------------------------------------------------------------------------------


def _noisy_training(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    steps: int,
    scheduler: Any = None,
) -> None:
    """Training that draws from every global RNG: Dropout (torch), input noise from numpy and
    Python's random, so a test fails if any of them is not restored."""
    for x, y in itertools.islice(itertools.cycle(batches), steps):
        noise = torch.from_numpy(np.random.standard_normal(x.shape).astype(np.float32))  # noqa: NPY002
        inputs = x + 0.01 * noise + 0.01 * random.random()
        loss = F.cross_entropy(model(inputs), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def _setup(kind: str) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    model = _bn_dropout_model()
    scheduler = None
    if kind == "adam+ScheduleLR":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        scheduler = ScheduleLR(optimizer, Cosine(lr=0.01, steps=40, warmup=5))
    elif kind == "sgd-schedulefree":
        optimizer = lrlab.make_optimizer("sgd-schedulefree", model.parameters(), lr=0.5)
        optimizer.train()  # type: ignore[attr-defined]
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    return model, optimizer, scheduler


@pytest.mark.parametrize("kind", ["adam+ScheduleLR", "sgd-schedulefree", "nesterov"])
def test_training_after_find_is_bit_identical_to_training_without(kind: str) -> None:
    batches = _batches(count=5)
    final = []
    for with_find in (True, False):
        torch.manual_seed(11)
        np.random.seed(11)  # noqa: NPY002
        random.seed(11)
        model, optimizer, scheduler = _setup(kind)
        _noisy_training(model, optimizer, batches, 7, scheduler)  # state, grads, BN stats
        if kind == "sgd-schedulefree":
            optimizer.eval()  # type: ignore[attr-defined]  # the averaged weights, as to evaluate
        model[3].eval()  # one submodule in eval mode: its own flag must come back
        if with_find:
            before = _snapshot(model, optimizer)
            result = find(
                model, optimizer, batches, F.cross_entropy, start=1e-5, end=10.0, steps=25
            )
            assert len(result.curves[0].losses) >= 10  # it trained
            after = _snapshot(model, optimizer)
            assert _same(before, after)
        if kind == "sgd-schedulefree":
            optimizer.train()  # type: ignore[attr-defined]
        model.train()
        _noisy_training(model, optimizer, batches, 9, scheduler)
        final.append(
            (
                [t.clone() for t in [*model.parameters(), *model.buffers()]],
                _optimizer_state(optimizer),
                scheduler.state_dict() if scheduler else None,
                torch.rand(3),
            )
        )
    assert _same(final[0], final[1])


def test_restored_after_an_exception_mid_test() -> None:
    torch.manual_seed(3)
    model, optimizer, _ = _setup("adam+ScheduleLR")
    _noisy_training(model, optimizer, _batches(), 3)
    before = _snapshot(model, optimizer)
    calls = itertools.count()

    def loss_fn(outputs: Tensor, targets: Tensor) -> Tensor:
        if next(calls) == 12:
            raise RuntimeError("out of memory, say")
        return F.cross_entropy(outputs, targets)

    with pytest.raises(RuntimeError, match="out of memory"):
        find(model, optimizer, _batches(), loss_fn, steps=30)
    assert _same(before, _snapshot(model, optimizer))


def test_a_nan_loss_on_the_first_batch_is_an_error_and_restores() -> None:
    model, optimizer, _ = _setup("nesterov")
    _noisy_training(model, optimizer, _batches(), 2)
    before = _snapshot(model, optimizer)
    with pytest.raises(ValueError, match=r"^loss_fn returned nan on the first batch"):
        find(model, optimizer, _batches(), lambda o, t: F.cross_entropy(o, t) * math.nan)
    assert _same(before, _snapshot(model, optimizer))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_restores_on_cuda() -> None:  # pragma: no cover - runs where a GPU is present
    device = torch.device("cuda")
    model = _bn_dropout_model().to(device)
    optimizer = torch.optim.Adam(model.parameters())
    batches = [(x.to(device), y.to(device)) for x, y in _batches()]
    torch.cuda.manual_seed(5)
    state = torch.cuda.get_rng_state()
    before = [t.clone() for t in model.state_dict().values()]
    result = find(model, optimizer, batches, F.cross_entropy, steps=20)
    assert result.curves[0].losses
    assert torch.equal(torch.cuda.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(before, model.state_dict().values(), strict=True))
    assert not optimizer.state


# -- accumulation, repeats, seeds, data ---------------------------------------------------------


def test_accumulation_gives_the_curve_of_a_batch_that_many_times_larger() -> None:
    small = _batches(count=8, size=8, seed=4)
    large = [
        (torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]]))
        for a, b in zip(small[::2], small[1::2], strict=True)
    ]
    small = [(x.double(), y) for x, y in small]
    large = [(x.double(), y) for x, y in large]
    curves = []
    for data, k in ((small, 2), (large, 1)):
        model = _mlp(dtype=torch.float64)
        optimizer = torch.optim.SGD(model.parameters(), momentum=0.9)
        result = find(
            model,
            optimizer,
            data,
            F.cross_entropy,
            start=1e-4,
            end=3.0,
            steps=24,
            accumulation_steps=k,
            diverge=None,
        )
        curves.append(result.curves[0])
    assert curves[0].lrs == curves[1].lrs
    assert curves[0].losses == pytest.approx(curves[1].losses, rel=1e-12)
    assert curves[0].smoothed == pytest.approx(curves[1].smoothed, rel=1e-12)


def _loader(seed: int | None = None) -> DataLoader[tuple[Tensor, ...]]:
    x = torch.cat([x for x, _ in _batches(count=5)])
    y = torch.cat([y for _, y in _batches(count=5)])
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=generator)


@pytest.mark.parametrize("own_generator", [False, True])
def test_repeat_r_is_a_single_test_with_seed_plus_r(own_generator: bool) -> None:
    loader = _loader(seed=99 if own_generator else None)
    generator_state = loader.generator.get_state() if loader.generator is not None else None
    model = _bn_dropout_model()
    optimizer = torch.optim.Adam(model.parameters())
    together = find(model, optimizer, loader, F.cross_entropy, steps=20, repeats=3, seed=5)
    alone = [
        find(model, optimizer, loader, F.cross_entropy, steps=20, seed=5 + r).curves[0]
        for r in range(3)
    ]
    assert [c.seed for c in together.curves] == [5, 6, 7]
    for a, b in zip(together.curves, alone, strict=True):
        assert a.losses == b.losses
        assert a.smoothed == b.smoothed
    assert together.curves[0].losses != together.curves[1].losses  # a new order per repeat
    if generator_state is not None:
        assert torch.equal(loader.generator.get_state(), generator_state)  # type: ignore[union-attr]
    for name, rule in together.suggestions.items():
        values = [c.suggestions[name] for c in together.curves]
        found = sorted(s.lr for s in values if s is not None)
        assert rule.values == tuple(None if s is None else s.lr for s in values)
        if found:
            assert (rule.low, rule.high) == (found[0], found[-1])
            assert rule.lr == pytest.approx(found[len(found) // 2]) if len(found) % 2 else True


def test_the_seed_fixes_the_test_and_changes_it() -> None:
    model = _bn_dropout_model()
    optimizer = torch.optim.SGD(model.parameters())

    def losses(seed: int) -> tuple[float, ...]:
        return (
            find(model, optimizer, _loader(), F.cross_entropy, steps=15, seed=seed).curves[0].losses
        )

    assert losses(1) == losses(1)
    assert losses(1) != losses(2)


class _Recorder(nn.Module):
    """A linear model that records the first input value of every batch it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 2)
        self.seen: list[float] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(float(x[0, 0]))
        return self.linear(x)


def _numbered(count: int) -> Batches:
    return [(torch.full((4, 1), float(i)), torch.zeros(4, dtype=torch.long)) for i in range(count)]


def test_an_iterable_is_cycled_in_order_then_shuffled_on_later_repeats() -> None:
    model = _Recorder()
    optimizer = torch.optim.SGD(model.parameters())
    find(model, optimizer, _numbered(3), F.cross_entropy, steps=10, diverge=None, repeats=2)
    first, second = model.seen[:10], model.seen[10:]
    assert first == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    period = second[:3]
    assert sorted(period) == [0, 1, 2]
    assert period != [0, 1, 2]
    assert second == (period * 4)[:10]


def test_an_iterator_is_read_only_as_far_as_needed() -> None:
    model = _Recorder()
    optimizer = torch.optim.SGD(model.parameters())
    source = iter(_numbered(100))
    find(model, optimizer, source, F.cross_entropy, steps=10, diverge=None, accumulation_steps=2)
    assert model.seen == [float(i) for i in range(20)]
    assert float(next(source)[0][0, 0]) == 20  # nothing read beyond the 20 batches used


def test_batches_move_to_the_models_device_and_extra_items_are_ignored() -> None:
    model = _mlp()
    data = [(x, y, "an id") for x, y in _batches()]
    result = find(model, torch.optim.SGD(model.parameters()), data, F.cross_entropy, steps=10)
    assert len(result.curves[0].losses) == 10


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start": 0.0}, r"^start must be a finite number > 0, got start=0.0$"),
        ({"start": -1e-3}, r"start=-0.001"),
        ({"end": math.inf}, r"^end must be a finite number > 0, got end=inf$"),
        ({"end": math.nan}, r"end=nan"),
        ({"start": 1.0, "end": 1.0}, r"^start must be below end, got start=1.0, end=1.0$"),
        ({"start": 2.0, "end": 1.0}, r"start must be below end"),
        ({"steps": 9}, r"^steps must be an integer >= 10, got steps=9$"),
        ({"steps": 50.0}, r"steps=50.0"),
        ({"mode": "cosine"}, r"^mode must be exponential or linear, got mode='cosine'$"),
        ({"smoothing": 1.0}, r"^smoothing must be in \[0, 1\), got smoothing=1.0$"),
        ({"diverge": 1.0}, r"^diverge must be a finite number > 1 or None, got diverge=1.0$"),
        ({"accumulation_steps": 0}, r"accumulation_steps must be an integer >= 1"),
        ({"repeats": 0}, r"^repeats must be an integer >= 1, got repeats=0$"),
        ({"seed": -1}, r"^seed must be an integer >= 0, got seed=-1$"),
        ({"rules": ()}, r"^rules must be a non-empty sequence of functions"),
        ({"lipschitz": "hinge"}, r"^lipschitz must be one of cross_entropy, bce, mse or None"),
    ],
)
def test_bad_arguments_are_one_line_errors_before_any_training(
    options: dict[str, Any], message: str
) -> None:
    model = _Recorder()
    optimizer = torch.optim.SGD(model.parameters())
    with pytest.raises(ValueError, match=message) as error:
        find(model, optimizer, _numbered(2), F.cross_entropy, **options)
    assert "\n" not in str(error.value)
    assert model.seen == []


def test_a_model_without_parameters() -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match=r"^model must have parameters to train, got a ReLU"):
        find(nn.ReLU(), optimizer, _numbered(2), F.cross_entropy)


@pytest.mark.parametrize(
    "data",
    [[], iter([]), DataLoader(TensorDataset(torch.zeros(0, 1), torch.zeros(0)), batch_size=4)],
    ids=["list", "iterator", "loader"],
)
def test_empty_data_is_an_error_and_restores(data: Iterable[Any]) -> None:
    model = _Recorder()
    optimizer = torch.optim.SGD(model.parameters())
    before = _snapshot(model, optimizer)
    with pytest.raises(ValueError, match=r"^data must yield at least one batch, got none$"):
        find(model, optimizer, data, F.cross_entropy)
    assert _same(before, _snapshot(model, optimizer))


def test_a_batch_that_is_not_a_pair() -> None:
    model = _Recorder()
    with pytest.raises(ValueError, match=r"data must yield \(inputs, targets, \.\.\.\) batches"):
        find(model, torch.optim.SGD(model.parameters()), [torch.zeros(4, 1)], F.cross_entropy)


# -- LipschitzLR's values, the result, the chart ------------------------------------------------


def test_lipschitz_values_are_lipschitzlr_at_the_same_weights() -> None:
    batches = _batches(count=3)
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters())
    result = find(model, optimizer, batches, F.cross_entropy, steps=10, lipschitz="cross_entropy")
    assert "forward" not in model[2].__dict__  # LipschitzLR's wrapper is gone
    for bound in ("paper", "smooth"):
        fresh = _mlp()
        expected = lrlab.LipschitzLR(
            torch.optim.SGD(fresh.parameters()),
            fresh,
            loss="cross_entropy",
            bound=bound,  # type: ignore[arg-type]
            data=batches,
        ).history[-1]["lr"]
        assert result.lipschitz[bound] == expected


def test_the_papers_mse_bound_can_be_absent() -> None:
    generator = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 6, generator=generator), 100 * torch.ones(8, 3)) for _ in range(2)]
    model = _mlp()
    result = find(model, torch.optim.SGD(model.parameters()), data, F.mse_loss, lipschitz="mse")
    assert result.lipschitz["paper"] is None  # K_a - ||y|| < 0: the paper's sign error
    assert result.lipschitz["smooth"] is not None
    assert result.lipschitz["smooth"] > 0


def _result(**options: Any) -> RangeTest:
    model = _bn_dropout_model()
    optimizer = torch.optim.SGD(model.parameters(), momentum=0.9)
    return find(model, optimizer, _loader(), F.cross_entropy, lipschitz="cross_entropy", **options)


def test_to_dict_is_plain_json_with_suggested_lr_on_top() -> None:
    result = _result(repeats=2, start=1e-4, end=100.0, steps=40)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["suggested_lr"] == result.suggested_lr
    assert isinstance(data["suggested_lr"], float)
    assert set(data["suggestions"]) == {"valley", "steepest", "minimum"}
    assert data["recommended"] == "minimum" == next(iter(result.suggestions))
    assert len(data["curves"]) == 2
    assert data["settings"]["repeats"] == 2
    assert set(data["lipschitz"]) == {"paper", "smooth"}


def test_no_suggestion_when_the_loss_blows_up_in_the_burn_in() -> None:
    result = _result(start=1e3, end=1e9, steps=20)
    assert all(r.lr is None for r in result.suggestions.values())
    with pytest.raises(ValueError, match=r"rule 'minimum' found no LR on any repeat .*lower start"):
        _ = result.suggested_lr
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["suggested_lr"] is None


def test_custom_rules_plug_in_and_the_first_is_recommended() -> None:
    def median_lr(lrs: Any, losses: Any) -> lrlab.finder.Suggestion:
        return lrlab.finder.Suggestion("median_lr", lrs[len(lrs) // 2], len(lrs) // 2)

    result = _result(rules=(median_lr, lrlab.finder.steepest), steps=30)
    assert list(result.suggestions) == ["median_lr", "steepest"]
    assert result.recommended == "median_lr"
    begin, end = result.curves[0].window
    assert result.suggested_lr == result.lrs[begin + (end - begin) // 2]


def test_plot_draws_on_the_given_axes_and_never_on_pyplot() -> None:
    import matplotlib.pyplot as plt

    result = _result(repeats=3, start=1e-4, end=100.0, steps=40)
    figures = plt.get_fignums()
    ax = result.plot()
    assert plt.get_fignums() == figures  # a figure pyplot does not know: nothing to show
    labels = " ".join(ax.get_legend_handles_labels()[1])
    for word in ("valley", "steepest", "minimum", "LipschitzLR paper", "LipschitzLR smooth"):
        assert word in labels
    assert ax.get_xscale() == "log"
    from matplotlib.figure import Figure

    mine = Figure().add_subplot()
    assert result.plot(ax=mine) is mine


def test_find_is_exported_lazily() -> None:
    assert lrlab.find is find
    assert lrlab.RangeTest is RangeTest


def test_a_scheduler_attached_to_an_unstepped_optimizer_sees_no_step() -> None:
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = ScheduleLR(optimizer, Cosine(lr=0.1, steps=10))
    state = scheduler.state_dict()
    find(model, optimizer, _batches(), F.cross_entropy, steps=10)
    # PyTorch's schedulers mark the optimizer when it steps (to warn about the call order);
    # the range test's steps must leave no such mark, and the groups keep initial_lr.
    assert "_opt_called" not in optimizer.__dict__
    assert scheduler.state_dict() == state
    assert optimizer.param_groups[0]["initial_lr"] == 0.1


def test_parameters_the_optimizer_trains_outside_the_model_are_restored() -> None:
    model = _mlp()
    temperature = nn.Parameter(torch.tensor(1.5))
    optimizer = torch.optim.Adam([*model.parameters(), temperature])
    before = _snapshot(model, optimizer)

    def loss_fn(outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs / temperature, targets)

    find(model, optimizer, _batches(), loss_fn, steps=15)
    assert temperature.item() == 1.5
    assert temperature.grad is None
    assert _same(before, _snapshot(model, optimizer))


def test_works_under_no_grad() -> None:
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters())
    with torch.no_grad():
        result = find(model, optimizer, _batches(), F.cross_entropy, steps=10)
    assert len(result.curves[0].losses) == 10
    assert torch.is_grad_enabled()
