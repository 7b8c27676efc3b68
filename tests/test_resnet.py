"""``--model resnet``: a ResNet-8 (ResNet-20's blocks, one per stage) for 8x8, 28x28 and 32x32
images, trained on random shifts (and flips where a mirror image is the same class) drawn from
the run's generator, never at evaluation, where BatchNorm uses its running statistics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import lrlab
from lrlab.augment import RandomCrop, random_crop_flip
from lrlab.cli import main
from lrlab.models import ResNet, ResNet20, count_parameters
from lrlab.tasks import Task, evaluate, get_task, load_task_data
from lrlab.tasks.catalog import RESNET_AUGMENT_DIGITS


def _conv(c_in: int, c_out: int) -> int:
    return c_in * c_out * 9


def test_parameter_counts_by_hand() -> None:
    # Stem conv + BN, then per stage one block of two 3x3 convs (no bias) with two BNs
    # (2 c parameters each), then the head; option A shortcuts have no parameters.
    def resnet8(c_in: int) -> int:
        stem = _conv(c_in, 16) + 2 * 16
        stages = sum(
            _conv(a, b) + _conv(b, b) + 2 * (2 * b) for a, b in ((16, 16), (16, 32), (32, 64))
        )
        return stem + stages + 64 * 10 + 10

    assert count_parameters(ResNet(10, 1, blocks=1)) == resnet8(1) == 75_002
    assert count_parameters(ResNet(10, 3, blocks=1)) == resnet8(3) == 75_290
    assert count_parameters(ResNet20()) == 269_722  # the same family, three blocks per stage


@pytest.mark.parametrize(
    ("task", "shape"),
    [
        ("digits", (64,)),
        ("mnist5k", (784,)),
        ("mnist", (1, 28, 28)),
        ("fashion-mnist", (1, 28, 28)),
        ("cifar10", (3, 32, 32)),
    ],
)
def test_each_tasks_resnet_takes_its_inputs(task: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = get_task(task).build_model("resnet")
    assert model(torch.rand(3, *shape)).shape == (3, 10)
    residual = [m for m in model.modules() if isinstance(m, ResNet)]
    assert len(residual) == 1
    assert len(residual[0].blocks) == 3


def test_the_augmentations_suit_the_images() -> None:
    digits = get_task("digits").augmentations["resnet"]
    assert digits == RandomCrop(1, flip=False, shape=(1, 8, 8))
    assert get_task("mnist5k").augmentations["resnet"] == RandomCrop(2, shape=(1, 28, 28))
    assert get_task("mnist").augmentations["resnet"] == RandomCrop(2)
    assert get_task("fashion-mnist").augmentations["resnet"] == RandomCrop(2, flip=True)
    # CIFAR-10's data itself carries the crop-and-flip every model trains on.
    assert "resnet" not in get_task("cifar10").augmentations


def test_the_augmentation_is_drawn_from_the_generator() -> None:
    images = torch.rand(16, 64)
    first = RESNET_AUGMENT_DIGITS(images, torch.Generator().manual_seed(3))
    again = RESNET_AUGMENT_DIGITS(images, torch.Generator().manual_seed(3))
    other = RESNET_AUGMENT_DIGITS(images, torch.Generator().manual_seed(4))
    assert first.shape == images.shape
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # Each output is an unflipped window of the zero-padded image.
    padded = nn.functional.pad(images.view(16, 1, 8, 8), (1, 1, 1, 1))
    for n, out in enumerate(first.view(16, 1, 8, 8)):
        windows = [padded[n, :, i : i + 8, j : j + 8] for i in range(3) for j in range(3)]
        assert any(torch.equal(out, w) for w in windows)


def test_without_the_flip_the_same_draws_give_the_same_shifts() -> None:
    images = torch.rand(32, 3, 8, 8)
    flipped = random_crop_flip(images, torch.Generator().manual_seed(0), 2)
    shifted = random_crop_flip(images, torch.Generator().manual_seed(0), 2, flip=False)
    matches = [
        torch.equal(a, b) or torch.equal(a, b.flip(-1))
        for a, b in zip(flipped, shifted, strict=True)
    ]
    assert all(matches)
    assert any(
        not torch.equal(a, b) for a, b in zip(flipped, shifted, strict=True)
    )  # some were flipped
    with pytest.raises(ValueError, match="RandomCrop: padding must be >= 0, got padding=-1"):
        RandomCrop(-1)


def test_training_augments_and_evaluation_uses_batchnorm_running_statistics() -> None:
    """The engine evaluates the trained network in eval mode on un-augmented test images:
    the record's test loss is the eval-mode loss of the very model it trained, and the
    augmentation only ever saw training batches."""
    data = load_task_data("digits", None, None)
    built: list[nn.Module] = []
    sizes: list[int] = []

    def model() -> nn.Module:
        built.append(get_task("digits").build_model("resnet"))
        return built[-1]

    def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        sizes.append(int(x.shape[0]))
        return RESNET_AUGMENT_DIGITS(x, generator)

    task = Task(
        name="digits-resnet",
        model={"resnet": model},
        train=(data.x_train, data.y_train),
        test=(data.x_test, data.y_test),  # type: ignore[arg-type]
        augmentations={"resnet": augment},
        batch_size=32,
        steps=3,
    )
    run = lrlab.train(task, optimizer="momentum", lr=0.05, seed=0)
    assert run.status == "done"
    assert sizes == [32, 32, 32]
    network = built[-1]
    assert network.training  # evaluation put it back in train mode
    batchnorm = next(m for m in network.modules() if isinstance(m, nn.BatchNorm2d))
    assert int(batchnorm.num_batches_tracked) == 3  # three training batches, no evaluation
    loss, accuracy = evaluate(
        network, data.x_test, data.y_test, loss="cross_entropy", metric="accuracy"
    )
    assert (loss, accuracy) == (run.epochs[-1].test_loss, run.epochs[-1].test_metric)
    with torch.no_grad():  # in train mode (batch statistics) the numbers would differ
        train_mode = nn.functional.cross_entropy(network(data.x_test), data.y_test)
    assert float(train_mode) != pytest.approx(loss, rel=1e-6)


@pytest.mark.parametrize(("task", "steps"), [("digits", 4), ("mnist5k", 2)])
def test_a_short_resnet_run_from_the_command_line(
    task: str, steps: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", task, "--model", "resnet", "--optimizer", "momentum", "--lr", "0.05"]
    assert main([*argv, "--steps", str(steps), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"{task} / momentum / seed 0: done" in out
    assert f"{steps} steps, 1 epochs" in out


def test_the_study_workloads_are_lrlabs_tasks_with_other_defaults() -> None:
    """``examples/workloads.py``: ``digits_resnet`` trains as ``digits --model resnet`` does,
    to the bit; ``lm_short`` is the ``lm`` task at a study's budget."""
    root = Path(__file__).resolve().parents[1]
    resnet = f"{root / 'examples' / 'workloads.py'}:digits_resnet"
    assert get_task(resnet).models == ("resnet",)
    mine = lrlab.train(resnet, optimizer="momentum", lr=0.05, steps=6, seed=3)
    theirs = lrlab.train("digits", model="resnet", optimizer="momentum", lr=0.05, steps=6, seed=3)
    assert mine.step_loss == theirs.step_loss
    assert [e.val_metric for e in mine.epochs] == [e.val_metric for e in theirs.epochs]
    lm = get_task(f"{root / 'examples' / 'workloads.py'}:lm_short")
    assert (lm.steps, lm.epoch_steps, lm.target, lm.metric) == (240, 40, 3.3, "bits_per_byte")
