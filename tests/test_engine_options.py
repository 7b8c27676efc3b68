"""The engine's training options against a hand-written PyTorch loop doing the same on the same
numbers: gradient clipping by global norm, weight decay by parameter group, gradient
accumulation, bfloat16 autocast. Bit for bit where the arithmetic is the same (same initial
weights, same batch order, same kernels); accumulation against the larger batch up to float
rounding."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import lrlab
from lrlab.cli import main
from lrlab.engine import loop, train_run
from lrlab.engine.groups import decay_groups, decayed, weight_decay_groups
from lrlab.lipschitz import LipschitzLR
from lrlab.lipschitz.bounds import paper_constant
from lrlab.lipschitz.rule import A2
from lrlab.lipschitz.stats import Needs, StatsBuffer
from lrlab.record import RunConfig
from lrlab.schedules import parse
from lrlab.tasks import Task, load_tensor_data
from lrlab.vectorize import plan_groups

# -- a task whose trained model the test can read, and the hand-written loop ------------------


class Tracked:
    """A model builder that keeps every model it builds (the engine trains the last one)."""

    def __init__(self, build: Callable[[], nn.Module]) -> None:
        self.build, self.models = build, []

    def __call__(self) -> nn.Module:
        model = self.build()
        self.models.append(model)
        return model

    @property
    def last(self) -> nn.Module:
        return self.models[-1]


def digits_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def digits_task(builder: Tracked, *, batch_size: int = 32, epochs: int = 2) -> Task:
    data = load_tensor_data("digits", None, None)
    assert data.x_test is not None
    assert data.y_test is not None
    return Task(
        name="digits-tracked",
        model=builder,
        train=(data.x_train, data.y_train),
        test=(data.x_test, data.y_test),
        epochs=epochs,
        batch_size=batch_size,
    )


def reference_loop(
    task: Task,
    build: Callable[[], nn.Module],
    optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    *,
    seed: int,
    updates: int,
    batch_size: int,
    accumulation: int = 1,
    clip_norm: float | None = None,
    bf16: bool = False,
    lr_at: Callable[[int], float] | None = None,
) -> tuple[nn.Module, list[float], list[float]]:
    """The plain loop: the model built from ``torch.manual_seed(seed)``, a fresh permutation
    of the training set per pass from a generator seeded with ``seed``, cut into batches of
    ``batch_size * accumulation``; per update: (LR set by hand), each micro-batch's forward
    and loss (under autocast), scaled by its share and backward, clipping, step. Returns the
    model, the losses (mean over each update's samples) and the pre-clip norms."""
    torch.manual_seed(seed)
    model = build()
    opt = optimizer(model)
    x, y = task.train  # type: ignore[misc]
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    norms: list[float] = []
    while len(losses) < updates:
        order = torch.randperm(len(x), generator=generator)
        for index in order.split(batch_size * accumulation):
            if len(losses) == updates:
                break
            if lr_at is not None:
                for group in opt.param_groups:
                    group["lr"] = lr_at(len(losses))
            opt.zero_grad()
            total: Tensor | None = None
            for part in index.split(batch_size):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    loss = nn.functional.cross_entropy(model(x[part]), y[part])
                scaled = loss * (len(part) / len(index)) if accumulation > 1 else loss
                scaled.backward()
                total = scaled.detach() if total is None else total + scaled.detach()
            assert total is not None
            if clip_norm is not None:
                norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), clip_norm)))
            opt.step()
            losses.append(total.item())
    return model, losses, norms


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


# -- gradient clipping --------------------------------------------------------------------------


def test_clip_norm_is_clip_grad_norm_after_backward_before_the_step() -> None:
    builder = Tracked(digits_mlp)
    task = digits_task(builder)
    config = RunConfig(task="digits-tracked", optimizer="momentum", lr=0.1, seed=3, clip_norm=1.5)
    record = train_run(config, task=task)
    model, losses, norms = reference_loop(
        task,
        digits_mlp,
        lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
        seed=3,
        updates=record.steps,
        batch_size=32,
        clip_norm=1.5,
    )
    assert record.step_loss == losses
    assert_same_weights(builder.last, model)
    # The pre-clip norms, per epoch: their mean, largest and how many were clipped.
    per_epoch = record.steps_per_epoch
    epochs = [norms[i : i + per_epoch] for i in range(0, len(norms), per_epoch)]
    summary = record.extra["grad_norm"]
    assert summary["max"] == [max(e) for e in epochs]
    assert summary["mean"] == [sum(e) / len(e) for e in epochs]
    assert summary["clipped"] == [sum(v > 1.5 for v in e) for e in epochs]
    assert 0 < sum(summary["clipped"]) < record.steps  # it clipped, and not every step


def test_clipping_changes_nothing_below_the_norm() -> None:
    builder = Tracked(digits_mlp)
    task = digits_task(builder, epochs=1)
    plain = train_run(RunConfig(task="digits-tracked", lr=0.05, seed=1), task=task)
    clipped = train_run(RunConfig(task="digits-tracked", lr=0.05, seed=1, clip_norm=1e6), task=task)
    assert clipped.step_loss == plain.step_loss
    assert clipped.extra["grad_norm"]["clipped"] == [0]
    assert "grad_norm" not in plain.extra


# -- weight decay by parameter group ---------------------------------------------------------


class TokenNet(nn.Module):
    """Embedding, layer norm, linear head: a parameter of every kind the conventions name."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(17, 8)
        self.norm = nn.LayerNorm(8)
        self.hidden = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.norm(self.embed(tokens).mean(dim=1))
        return self.head(torch.relu(self.hidden(h)))  # type: ignore[no-any-return]


def token_task(builder: Tracked) -> Task:
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 17, (96, 5), generator=generator)
    y = x[:, 0] % 3
    return Task(name="tokens", model=builder, train=(x, y), test=(x[:32], y[:32]), epochs=3)


def test_conventions_name_the_parameters_they_decay() -> None:
    model = nn.Sequential(
        nn.Embedding(5, 4), nn.Conv1d(4, 4, 1), nn.BatchNorm1d(4), nn.Linear(4, 2), nn.RMSNorm(2)
    )
    names = [name for name, _ in model.named_parameters()]
    assert names == [
        "0.weight",
        "1.weight",
        "1.bias",
        "2.weight",
        "2.bias",
        "3.weight",
        "3.bias",
        "4.weight",
    ]
    assert decayed(model, "all") == [True] * 8
    # nanoGPT / timm: tensors of two or more dimensions (the embedding's among them).
    assert decayed(model, "matrices") == [True, True, False, False, False, True, False, False]
    # No decay on embeddings, norms and biases: the conv and linear weights only.
    assert decayed(model, "no-bias-norm-embed") == [
        False,
        True,
        False,
        False,
        False,
        True,
        False,
        False,
    ]
    parts = decay_groups(model, "no-bias-norm-embed")
    assert [(len(params), decays) for params, decays in parts] == [(2, True), (6, False)]


@pytest.mark.parametrize(
    ("optimizer", "build"),
    [
        ("adamw", lambda groups: torch.optim.AdamW(groups, lr=0.01, weight_decay=0.1)),
        (
            "momentum",
            lambda groups: torch.optim.SGD(groups, lr=0.01, momentum=0.9, weight_decay=0.1),
        ),
    ],
)
def test_decay_groups_under_a_schedule_match_torch_param_groups(
    optimizer: str, build: Callable[[list[dict[str, object]]], torch.optim.Optimizer]
) -> None:
    """Both groups follow the schedule (set by hand in the reference), only the decayed one
    decays: bit for bit torch's optimizer over the two groups."""
    builder = Tracked(TokenNet)
    task = token_task(builder)
    spec = "cosine(lr=0.01, steps=9)"
    config = RunConfig(
        task="tokens",
        optimizer=optimizer,
        schedule=spec,
        seed=2,
        optimizer_args={"weight_decay": 0.1},
        decay_params="no-bias-norm-embed",
    )
    record = train_run(config, task=task)
    schedule = parse(spec)
    model, losses, _ = reference_loop(
        task,
        TokenNet,
        lambda m: build(weight_decay_groups(m, "no-bias-norm-embed")),
        seed=2,
        updates=record.steps,
        batch_size=32,
        lr_at=schedule,
    )
    assert record.step_loss == losses
    assert_same_weights(builder.last, model)
    everything = train_run(RunConfig(**{**config.to_dict(), "decay_params": "all"}), task=task)
    assert everything.step_loss != record.step_loss  # the convention did change the run


def test_lipschitz_l2_term_covers_the_decayed_weights_only() -> None:
    """The paper's K adds l2 * (largest weight norm): with weight decay by group, the largest
    among the decayed weights (the bias here is larger, and not decayed)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight.fill_(0.5)
        model[0].bias.fill_(10.0)
    x = torch.ones(8, 4)
    data = [(x, torch.zeros(8, dtype=torch.long))]
    grouped = torch.optim.SGD(weight_decay_groups(model, "matrices", 0.01), lr=0.1)
    one = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.01)
    k = {}
    for name, optimizer in (("grouped", grouped), ("one", one)):
        scheduler = LipschitzLR(optimizer, model, loss="cross_entropy", bound="paper", data=data)
        scheduler.remove()
        k[name] = scheduler.history[-1]["K"]
    kz = math.sqrt(8 * 4)  # ||A||_F of eight rows of four ones
    weight = math.sqrt(12 * 0.25)  # ||W||_F, 3 x 4 of 0.5
    assert k["grouped"] == pytest.approx(
        paper_constant("cross_entropy", kz=kz, m=8, classes=3, l2=0.01, max_weight=weight)
    )
    assert k["one"] == pytest.approx(
        paper_constant("cross_entropy", kz=kz, m=8, classes=3, l2=0.01, max_weight=math.sqrt(300))
    )


def test_weight_decay_argument_is_the_optimizers() -> None:
    record = lrlab.train(
        "iris", optimizer="adamw", steps=3, weight_decay=0.3, decay_params="matrices"
    )
    assert record.config.optimizer_args == {"weight_decay": 0.3}
    with pytest.raises(ValueError, match=r"give weight_decay once"):
        lrlab.train(
            "iris", optimizer="adamw", weight_decay=0.3, optimizer_args={"weight_decay": 0.1}
        )


# -- gradient accumulation -----------------------------------------------------------------------


def test_accumulation_is_the_hand_written_accumulation_loop() -> None:
    builder = Tracked(digits_mlp)
    task = digits_task(builder, batch_size=8)
    config = RunConfig(task="digits-tracked", optimizer="adam", seed=5, accumulation_steps=4)
    record = train_run(config, task=task)
    x, _ = task.train  # type: ignore[misc]
    assert record.steps_per_epoch == math.ceil(len(x) / 32)  # a step is an update
    assert (
        len(record.step_loss) == len(record.step_lr) == record.steps == 2 * math.ceil(len(x) / 32)
    )
    model, losses, _ = reference_loop(
        task,
        digits_mlp,
        lambda m: torch.optim.Adam(m.parameters(), lr=0.001),
        seed=5,
        updates=record.steps,
        batch_size=8,
        accumulation=4,
    )
    assert record.step_loss == losses
    assert_same_weights(builder.last, model)


@pytest.mark.parametrize("sampling", ["shuffle", "replacement"])
def test_accumulation_of_four_equals_a_batch_four_times_larger(sampling: str) -> None:
    """Same data order (micro-batches are the consecutive slices of the larger batch), same
    number of updates, same LRs: the weights agree up to float rounding (the gradient of a
    mean over 32 samples summed in four parts)."""
    small, large = Tracked(digits_mlp), Tracked(digits_mlp)
    spec = "cosine(lr=0.05, steps=90)"
    common = {"optimizer": "momentum", "schedule": spec, "seed": 4, "sampling": sampling}
    accumulated = train_run(
        RunConfig(task="digits-tracked", batch_size=8, accumulation_steps=4, **common),
        task=digits_task(small),
    )
    whole = train_run(
        RunConfig(task="digits-tracked", batch_size=32, **common), task=digits_task(large)
    )
    assert accumulated.steps == whole.steps
    assert accumulated.step_lr == whole.step_lr
    assert accumulated.step_loss == pytest.approx(whole.step_loss, rel=1e-5)
    for p, q in zip(small.last.parameters(), large.last.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_lipschitz_refuses_micro_batch_statistics() -> None:
    with pytest.raises(
        ValueError, match=r"lipschitz: K needs the update's whole batch.*accumulation_steps=2"
    ):
        train_run(
            RunConfig(task="iris", schedule="lipschitz(every=batch)", steps=2, accumulation_steps=2)
        )
    # The paper's pass over the training set in update-sized batches works.
    record = train_run(
        RunConfig(task="iris", schedule="lipschitz(bound=paper)", steps=2, accumulation_steps=2)
    )
    assert record.status == "done"


# -- bfloat16 autocast -----------------------------------------------------------------------------


def test_bf16_is_autocast_around_forward_and_loss() -> None:
    builder = Tracked(digits_mlp)
    task = digits_task(builder, epochs=1)
    config = RunConfig(task="digits-tracked", optimizer="sgd", lr=0.1, seed=6, precision="bf16")
    record = train_run(config, task=task)
    model, losses, _ = reference_loop(
        task,
        digits_mlp,
        lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
        seed=6,
        updates=record.steps,
        batch_size=32,
        bf16=True,
    )
    assert record.step_loss == losses
    assert_same_weights(builder.last, model)
    assert next(builder.last.parameters()).dtype == torch.float32  # the weights stay float32
    fp32 = train_run(RunConfig(**{**config.to_dict(), "precision": "fp32"}), task=task)
    assert fp32.step_loss != record.step_loss
    assert fp32.step_loss == pytest.approx(record.step_loss, rel=0.05)


def test_lipschitz_reads_autocast_activations_in_float32() -> None:
    """Under bfloat16 autocast the head's input is bfloat16; LipschitzLR's statistics are
    float32 dot products of those values (a bfloat16 dot product keeps three digits)."""
    activations = torch.randn(64, 32, generator=torch.Generator().manual_seed(0)).bfloat16()
    buffer = StatsBuffer(Needs())
    buffer.add(activations, None)
    exact = activations.float().reshape(-1)
    assert buffer.columns()[A2] == [torch.dot(exact, exact).item()]
    half = activations.reshape(-1)
    assert torch.dot(half, half).item() != torch.dot(exact, exact).item()
    record = train_run(
        RunConfig(task="mnist5k", steps=20, schedule="lipschitz(every=batch)", precision="bf16")
    )
    assert record.status == "done"
    assert all(math.isfinite(lr) and lr > 0 for lr in record.step_lr)


# -- identity, bad input, vectorised groups ----------------------------------------------------


def test_new_fields_leave_stored_keys_alone() -> None:
    config = RunConfig(task="iris", optimizer="sgd", lr=0.1, validation=False)
    assert config.key() == (
        '{"batch_size":null,"device":"cpu","epochs":null,"lr":0.1,"model":null,'
        '"optimizer":"sgd","optimizer_args":{},"sampling":null,"schedule":null,"seed":0,'
        '"split":null,"steps":null,"task":"iris"}'
    )
    checkpointed = RunConfig(
        task="iris",
        optimizer="sgd",
        lr=0.1,
        validation=False,
        checkpoint_dir="/tmp/x",
        checkpoint_every=5,
    )
    assert checkpointed.key() == config.key()  # where checkpoints go is not what the run is
    options = RunConfig(
        task="iris",
        lr=0.1,
        clip_norm=1.0,
        accumulation_steps=2,
        precision="bf16",
        decay_params="matrices",
    )
    assert '"clip_norm":1.0' in options.key()
    assert '"precision":"bf16"' in options.key()
    assert '"accumulation_steps":2' in options.key()
    assert '"decay_params":"matrices"' in options.key()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clip_norm": 0}, r"^run: clip_norm must be > 0, got clip_norm=0$"),
        ({"clip_norm": -1.0}, r"^run: clip_norm must be > 0, got clip_norm=-1.0$"),
        (
            {"clip_norm": float("nan")},
            r"^run: clip_norm must be a finite number, got clip_norm=nan$",
        ),
        (
            {"accumulation_steps": 0},
            r"^run: accumulation_steps must be >= 1, got accumulation_steps=0$",
        ),
        (
            {"accumulation_steps": 10**6},
            r"^run: accumulation_steps must be <= 65536, got accumulation_steps=1000000$",
        ),
        (
            {"accumulation_steps": 30, "batch_size": 5},
            r"^run: accumulation_steps must leave no micro-batch of an update empty .* got "
            r"accumulation_steps=30$",
        ),
        ({"decay_params": "biases"}, r"^run: decay_params must be one of all, matrices, "),
        (
            {"precision": "fp16"},
            r"^run: precision must be one of fp32, bf16, got precision='fp16'$",
        ),
        ({"checkpoint_every": 5}, r"^run: checkpoint_every needs checkpoint_dir"),
        ({"checkpoint_seconds": 0.0, "checkpoint_dir": "x"}, r"checkpoint_seconds must be > 0"),
    ],
)
def test_bad_training_options_fail_in_one_line_before_training(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        train_run(RunConfig(task="iris", **change))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"clip_norm": 1.0}, "clip_norm=1.0: gradient clipping trains runs one by one"),
        ({"accumulation_steps": 2}, "accumulation_steps=2: gradient accumulation trains runs"),
        ({"precision": "bf16"}, "precision='bf16': autocast trains runs one by one"),
        ({"decay_params": "matrices"}, "decay_params='matrices': the stacked update rules"),
        ({"checkpoint_dir": "ckpt"}, "checkpoint_dir: mid-run checkpoints are written by runs"),
    ],
)
def test_runs_with_training_options_train_alone_saying_why(
    change: dict[str, object], reason: str
) -> None:
    runs = [RunConfig(task="iris", lr=lr, epochs=1, **change) for lr in (0.1, 0.2)]  # type: ignore[arg-type]
    groups, alone = plan_groups(runs)
    assert groups == []
    assert [config for config, _ in alone] == runs
    assert all(why.startswith(reason) for _, why in alone)


# -- the range test honours them ----------------------------------------------------------------


def _ramp_reference(
    batches: list[tuple[Tensor, Tensor]], lrs: list[float], *, clip_norm: float, bf16: bool
) -> list[float]:
    """The range test by hand: per step the LR, forward and loss (under autocast), backward,
    clipping, step; the batches cycled in order."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for lr, (x, y) in zip(lrs, itertools.cycle(batches), strict=False):
        optimizer.param_groups[0]["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("bf16", [False, True])
def test_range_test_clips_and_autocasts_as_a_run_does(bf16: bool) -> None:
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 6, generator=generator), torch.randint(3, (64,), generator=generator)
    batches = list(zip(x.split(16), y.split(16), strict=True))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    precision = "bf16" if bf16 else "fp32"
    result = lrlab.find(
        model,
        optimizer,
        batches,
        nn.functional.cross_entropy,
        start=1e-3,
        end=3.0,
        steps=20,
        diverge=None,
        clip_norm=0.25,
        precision=precision,
    )
    curve = result.curves[0]
    assert list(curve.losses) == _ramp_reference(
        batches, list(curve.lrs), clip_norm=0.25, bf16=bf16
    )
    assert result.to_dict()["settings"]["clip_norm"] == 0.25
    assert result.to_dict()["settings"]["precision"] == precision
    unclipped = lrlab.find(
        model, optimizer, batches, nn.functional.cross_entropy, start=1e-3, end=3.0, steps=20,
        diverge=None, precision=precision,
    )  # fmt: skip
    assert unclipped.curves[0].losses != curve.losses


def test_range_test_on_a_task_builds_the_runs_weight_decay_groups() -> None:
    """find_on_task's optimizer is the run's: the same groups, so the curve is that of a
    range test on torch's optimizer over `weight_decay_groups`."""
    from lrlab.finder import find_on_task, task_batches
    from lrlab.tasks import get_task, load_task_data

    grouped = find_on_task(
        "iris", "momentum", seed=3, steps=12, lipschitz=False, diverge=None,
        optimizer_args={"weight_decay": 0.5}, decay_params="matrices", clip_norm=1.0,
    )  # fmt: skip
    task = get_task("iris")
    torch.manual_seed(3)
    model = task.build_model()
    optimizer = torch.optim.SGD(weight_decay_groups(model, "matrices", 0.5), lr=0.01, momentum=0.9)
    by_hand = lrlab.find(
        model,
        optimizer,
        task_batches(load_task_data("iris", None, None), 5),
        nn.functional.cross_entropy,
        steps=12,
        seed=3,
        diverge=None,
        clip_norm=1.0,
    )
    assert grouped.curves[0].losses == by_hand.curves[0].losses
    assert grouped.extra["decay_params"] == "matrices"
    everywhere = find_on_task(
        "iris", "momentum", seed=3, steps=12, lipschitz=False, diverge=None,
        optimizer_args={"weight_decay": 0.5}, clip_norm=1.0,
    )  # fmt: skip
    assert everywhere.curves[0].losses != grouped.curves[0].losses


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ({"clip_norm": 0.0}, r"^clip_norm must be > 0, got clip_norm=0.0$"),
        ({"precision": "half"}, r"^precision must be one of fp32, bf16, got precision='half'$"),
    ],
)
def test_range_test_bad_options(argument: dict[str, object], message: str) -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=message):
        lrlab.find(
            model,
            torch.optim.SGD(model.parameters()),
            [(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))],
            nn.functional.cross_entropy,
            **argument,  # type: ignore[arg-type]
        )


def test_find_command_takes_the_training_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "find.json"
    code = main(
        [
            "find", "iris", "--optimizer", "adamw", "--steps", "12", "--no-lipschitz",
            "--clip-norm", "1", "--weight-decay", "0.1", "--decay-params", "no-bias-norm-embed",
            "--precision", "bf16", "--accumulation-steps", "2", "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    settings = json.loads(out.read_text())["settings"]
    assert (settings["clip_norm"], settings["precision"], settings["accumulation_steps"]) == (
        1.0,
        "bf16",
        2,
    )
    code = main(["find", "iris", "--steps", "12", "--accumulation-steps", "0"])
    assert code == 2
    assert capsys.readouterr().err.endswith(
        "--accumulation-steps must be >= 1, got --accumulation-steps=0\n"
    )


# -- compare ------------------------------------------------------------------------------------


def test_compare_gives_every_run_the_options(tmp_path: Path) -> None:
    result = lrlab.compare(
        "iris",
        optimizers=["sgd", "adamw"],
        seeds=2,
        steps=6,
        workers=1,
        db=tmp_path / "runs.sqlite",
        clip_norm=2.0,
        weight_decay=0.05,
        decay_params="matrices",
        accumulation_steps=2,
        precision="bf16",
        holdout_seeds=1,
    )
    assert len(result.runs) == 2  # the scored runs: 1 fresh seed per optimizer
    for run in result.runs:
        config = run.config
        assert (config.clip_norm, config.decay_params, config.accumulation_steps) == (
            2.0,
            "matrices",
            2,
        )
        assert config.precision == "bf16"
        assert config.optimizer_args == {"weight_decay": 0.05}
        assert run.record is not None
        assert "vectorized" not in run.record.extra
        alone = train_run(config)
        assert alone.step_loss == run.record.step_loss
    with pytest.raises(ValueError, match=r"^run: clip_norm must be > 0"):
        lrlab.compare("iris", optimizers=["sgd"], steps=2, db=tmp_path / "x.sqlite", clip_norm=-1.0)


def test_losses_and_norms_read_in_blocks_as_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On a GPU the host reads losses (and the norms waiting with them) every few steps:
    run that path on the CPU; the record is the per-step one, a divergence is found at the
    same step with the same norms before it, and a checkpoint reads what is pending first."""
    builder = Tracked(digits_mlp)
    task = digits_task(builder)
    fine = RunConfig(task="digits-tracked", lr=0.1, seed=2, clip_norm=1.0, accumulation_steps=3)
    diverging = RunConfig(task="mnist5k", lr=1e12, epochs=2, clip_norm=100.0)
    per_step = [train_run(fine, task=task), train_run(diverging)]
    assert per_step[1].status == "diverged"
    monkeypatch.setattr(loop, "host_sync_every", lambda device: 7)
    in_blocks = [train_run(fine, task=task), train_run(diverging)]
    checkpointed = train_run(
        RunConfig(**{**fine.to_dict(), "checkpoint_dir": str(tmp_path), "checkpoint_every": 5}),
        task=task,
    )
    for a, b in zip(per_step, in_blocks, strict=True):
        assert (a.status, a.diverged_at, a.steps) == (b.status, b.diverged_at, b.steps)
        assert a.step_loss[:-1] == b.step_loss[:-1]
        assert a.extra["grad_norm"] == b.extra["grad_norm"]
        assert [e.train_loss for e in a.epochs] == [e.train_loss for e in b.epochs]
    assert checkpointed.step_loss == per_step[0].step_loss
    assert checkpointed.extra["grad_norm"] == per_step[0].extra["grad_norm"]
