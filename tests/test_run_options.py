"""The run options seed 004's setup needs: ``epoch_steps`` (an epoch of N updates over fresh
shuffled passes), ``loss`` (Keras' clipped cross-entropy in place of the task's) and a model's
own augmentation; and the store keys of runs that use none of them, unchanged."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lrlab.engine import planning as engine_plan
from lrlab.engine import train_run
from lrlab.record import RunConfig
from lrlab.tasks import TASKS, TaskData
from lrlab.tasks.task import keras_cross_entropy

# RunConfig.key() as lrlab wrote it before epoch_steps and loss existed (git show dbfa13b).
OLD_KEY = (
    '{"batch_size":null,"device":"cpu","epochs":null,"lr":null,"model":"cnn",'
    '"optimizer":"sgd","optimizer_args":{},"sampling":null,"schedule":"lipschitz(bound=paper)",'
    '"seed":3,"split":null,"steps":null,"task":"mnist5k"}'
)


def test_keys_of_runs_without_the_new_options_are_unchanged() -> None:
    config = RunConfig(
        task="mnist5k", model="cnn", schedule="lipschitz(bound=paper)", seed=3, validation=False
    )
    assert config.key() == OLD_KEY
    written = {k: v for k, v in config.to_dict().items() if k not in ("loss", "validation")}
    old = RunConfig.from_dict(written)  # a config stored before those fields existed
    assert old == config
    # A run that holds a validation split out trains on other data: another key.
    assert RunConfig.from_dict({**written, "validation": True}).key() == (
        OLD_KEY[:-1] + ',"validation":true}'
    )
    with_options = dataclasses.replace(config, epoch_steps=235, loss="keras_cross_entropy")
    assert '"epoch_steps":235' in with_options.key()
    assert '"loss":"keras_cross_entropy"' in with_options.key()
    assert RunConfig.from_dict(with_options.to_dict()) == with_options


def test_default_epochs_are_one_pass_exactly_as_before() -> None:
    """epoch_steps equal to a pass's batch count draws the same permutations as no option."""
    config = RunConfig(task="digits", optimizer="sgd", lr=0.1, epochs=2, seed=1)
    plain = train_run(config)
    steps = math.ceil(1294 / 32)  # 1437 training digits, 143 of them validate
    assert plain.steps_per_epoch == steps
    same = train_run(dataclasses.replace(config, epoch_steps=steps))
    assert same.step_loss == plain.step_loss
    assert [e.test_metric for e in same.epochs] == [e.test_metric for e in plain.epochs]


def _indexed_iris(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """iris with 10 training rows whose features are their own index; returns the list each
    training batch's row indices are appended to (seen through an augmentation)."""
    seen: list[list[int]] = []
    x = torch.arange(10.0)[:, None].expand(10, 4).contiguous()
    data = TaskData(x, torch.zeros(10, dtype=torch.long), None, None, 3)

    def record(inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        seen.append(inputs[:, 0].long().tolist())
        return inputs

    monkeypatch.setattr(engine_plan, "load_task_data", lambda *args: data)
    task = dataclasses.replace(TASKS["iris"], augmentations={"mlp": record})
    monkeypatch.setitem(TASKS, "iris", task)
    return seen


def test_an_epoch_of_n_steps_cycles_fresh_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _indexed_iris(monkeypatch)
    record = train_run(RunConfig(task="iris", batch_size=4, epochs=2, epoch_steps=7, seed=0))
    assert record.steps_per_epoch == 7
    assert record.steps == 14
    assert len(record.epochs) == 2
    assert [len(b) for b in seen] == [4, 4, 2, 4, 4, 2, 4] * 2  # passes end in their partial batch
    passes = [[i for batch in seen[s : s + 3] for i in batch] for s in (0, 3, 7, 10)]
    for epoch, (first, second) in zip((seen[:7], seen[7:]), (passes[:2], passes[2:]), strict=True):
        assert sorted(first) == sorted(second) == list(range(10))  # each pass a permutation
        assert first != second  # a fresh one
        assert len(set(epoch[6])) == 4
    assert passes[0] != passes[2]


def test_without_epoch_steps_an_epoch_is_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _indexed_iris(monkeypatch)
    record = train_run(RunConfig(task="iris", batch_size=4, epochs=2, seed=0))
    assert record.steps_per_epoch == 3
    assert [len(b) for b in seen] == [4, 4, 2] * 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epoch_steps": 0}, "epoch_steps must be >= 1, got epoch_steps=0"),
        ({"epoch_steps": 2.5}, "epoch_steps must be an integer >= 1, got epoch_steps=2.5"),
        (
            {"loss": "bce"},
            "loss must be cross_entropy or keras_cross_entropy for task iris "
            r"\(its loss is cross_entropy\), got loss='bce'",
        ),
    ],
)
def test_bad_options_fail_before_training(changes: dict[str, object], message: str) -> None:
    config = dataclasses.replace(RunConfig(task="iris", steps=1), **changes)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        train_run(config)
    with pytest.raises(ValueError, match="loss must be mse for task regression"):
        train_run(RunConfig(task="regression", steps=1, loss="keras_cross_entropy"))


def test_keras_loss_is_cross_entropy_until_it_clips() -> None:
    """While no probability leaves [1e-7, 1 - 1e-7], Keras' loss is PyTorch's: the same run."""
    config = RunConfig(task="iris", optimizer="sgd", lr=0.01, steps=20, seed=2)
    plain = train_run(config)
    keras = train_run(dataclasses.replace(config, loss="keras_cross_entropy"))
    assert keras.step_loss == pytest.approx(plain.step_loss, abs=1e-6)
    assert keras.epochs[-1].test_loss == pytest.approx(plain.epochs[-1].test_loss, abs=1e-6)
    logits = torch.tensor([[30.0, 0.0, 0.0]])
    assert float(keras_cross_entropy(logits, torch.tensor([1]))) == pytest.approx(-math.log(1e-7))
    assert float(torch.nn.functional.cross_entropy(logits, torch.tensor([1]))) > 29


def test_dropout_masks_come_from_the_runs_seed() -> None:
    """paper-cnn has dropout: the same config gives the same numbers whatever the process drew
    from torch's global generator before, and the run leaves that generator as it found it."""
    config = RunConfig(task="mnist5k", model="paper-cnn", batch_size=8, steps=3, seed=1)
    first = train_run(config)
    torch.rand(1000)  # another run, or anything else, moves the global generator
    state = torch.get_rng_state()
    second = train_run(config)
    assert torch.equal(torch.get_rng_state(), state)
    assert second.step_loss == first.step_loss


def test_paper_cnn_trains_on_augmented_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    """paper-cnn's batches go through its augmentation; the other models' do not."""
    config = RunConfig(task="mnist5k", model="paper-cnn", batch_size=8, steps=2, seed=0)
    mlp = dataclasses.replace(config, model="mlp")
    augmented, mlp_before = train_run(config), train_run(mlp)
    task = dataclasses.replace(TASKS["mnist5k"], augmentations={})
    monkeypatch.setitem(TASKS, "mnist5k", task)
    assert train_run(config).step_loss[0] != augmented.step_loss[0]
    assert train_run(mlp).step_loss == mlp_before.step_loss
    for name in ("mnist", "fashion-mnist"):
        assert TASKS[name].augmentations.keys() == {"paper-cnn", "resnet"}
