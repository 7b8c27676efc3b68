"""Source of a task file full of users' classic mistakes, one task function each (`BAD_TASKS`
names them with a word the one-line error must hold), and of a task whose training data
comes from a ``Dataset`` class defined in the file through a ``DataLoader`` with worker
processes (`WORKER_TASKS`). Tests write them into temporary folders and give lrlab
``file.py:function`` references, as a user would."""

from __future__ import annotations

MISTAKES = """
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

import lrlab

X = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


def _task(name, **options):
    settings = dict(model=lambda: nn.Linear(4, 2), train=(X, Y), test=(X, Y), epochs=1,
                    batch_size=8)
    settings.update(options)
    return lrlab.Task(name=name, **settings)


class TupleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):  # TupleNet.forward
        return self.fc(x), x


class NoGradNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):  # NoGradNet.forward
        with torch.no_grad():
            return self.fc(x)


class EvalTupleNet(TupleNet):
    def forward(self, x):  # EvalTupleNet.forward
        out = self.fc(x)
        return out if self.training else (out, x)


class Points(Dataset):
    def __len__(self):
        return 32

    def __getitem__(self, i):
        return X[i], Y[i]  # Points.__getitem__


class Raising(Points):
    def __getitem__(self, i):
        raise KeyError(f"no sample {i}")  # Raising.__getitem__


class Liar(Points):
    def __len__(self):
        return 100


class Records(Points):
    def __getitem__(self, i):  # Records.__getitem__
        return {"x": X[i], "y": Y[i]}


class Triples(Points):
    def __getitem__(self, i):  # Triples.__getitem__
        return X[i], Y[i], 1.0


class Lists(Points):
    def __getitem__(self, i):  # Lists.__getitem__
        return X[i], [int(Y[i])]


def my_loss_raises(outputs, targets):
    raise RuntimeError("my loss is broken")  # my_loss_raises


def my_vector_loss(outputs, targets):
    return F.cross_entropy(outputs, targets, reduction="none")


def my_float_loss(outputs, targets):
    return float(F.cross_entropy(outputs, targets))


def my_detached_loss(outputs, targets):
    return F.cross_entropy(outputs.detach(), targets)


def my_metric_raises(outputs, targets):
    return outputs.argmax(1).eq(targets).float().mean() / undefined_name  # my_metric_raises


def my_metric_text(outputs, targets):
    return "great"


def my_metric_vector(outputs, targets):
    return outputs.argmax(1).eq(targets).float()


def labels_out_of_range():
    return _task("labels", train=(X, Y + 8), test=(X, Y + 8))


def test_labels_out_of_range():
    return _task("test-labels", test=(X, Y + 2))


def negative_labels():
    return _task("negative", train=(X, Y - 1))


def wrong_input_width():
    return _task("width", model=lambda: nn.Linear(5, 2))


def model_returns_tuple():
    return _task("tuple", model=TupleNet)


def model_returns_tuple_in_eval():
    return _task("eval-tuple", model=EvalTupleNet)


def forward_under_no_grad():
    return _task("no-grad", model=NoGradNet)


def builder_raises():
    return _task("builder", model=lambda: nn.Linear(4, 2, bogus=1))


def mse_shapes():
    return _task("mse", loss="mse", train=(X, X[:, 0]), test=None, model=lambda: nn.Linear(4, 1))


def bce_shapes():
    return _task("bce", loss="bce", train=(X, Y.float()), test=None,
                 model=lambda: nn.Linear(4, 1))


def targets_with_a_class_dimension():
    return _task("targets-2d", train=(X, Y[:, None]), test=None)


def loss_raises():
    return _task("loss", loss=my_loss_raises, metric="accuracy")


def loss_returns_a_vector():
    return _task("vector", loss=my_vector_loss, metric="accuracy")


def loss_returns_a_float():
    return _task("float", loss=my_float_loss, metric="accuracy")


def loss_detached():
    return _task("detached", loss=my_detached_loss, metric="accuracy")


def metric_raises():
    return _task("metric", metric=my_metric_raises)


def metric_returns_text():
    return _task("metric-text", metric=my_metric_text)


def metric_returns_a_vector():
    return _task("metric-vector", metric=my_metric_vector)


def dataset_raises():
    return _task("raising", train=DataLoader(Raising(), batch_size=8), test=None)


def dataset_raises_in_workers():
    return _task("raising-workers", train=DataLoader(Raising(), batch_size=8, num_workers=2),
                 test=None)


def dataset_length_lies():
    return _task("liar", train=DataLoader(Liar(), batch_size=8, shuffle=True), test=None)


def dict_batches():
    return _task("dicts", train=DataLoader(Records(), batch_size=8), test=None)


def triple_batches():
    return _task("triples", train=DataLoader(Triples(), batch_size=8), test=None)


def list_targets():
    return _task("lists", train=DataLoader(Lists(), batch_size=8, collate_fn=lambda b: (
        torch.stack([x for x, _ in b]), [y for _, y in b])), test=None)


def test_dataset_raises():
    return _task("test-raising", train=DataLoader(Points(), batch_size=8),
                 test=DataLoader(Raising(), batch_size=8))
"""

# Each bad task -> (what its one-line error says, a regular expression; the text of the line
# it must name, "def <task>(" when empty: the task's own function).
BAD_TASKS: dict[str, tuple[str, str]] = {
    "labels_out_of_range": (r"labels reach 9 but the model outputs 2 classes", ""),
    "test_labels_out_of_range": (r"cannot take a test batch: labels reach 3", ""),
    "negative_labels": (r"labels reach -1 but the model outputs 2 classes", ""),
    "wrong_input_width": (r"the model failed on a training batch .*mat1 and mat2", ""),
    "model_returns_tuple": (
        r"must return a tensor of outputs, its forward returns a tuple of 2",
        "# TupleNet.forward",
    ),
    "model_returns_tuple_in_eval": (
        r"returns a tuple of 2 .* on a test batch \(in eval mode\)",
        "# EvalTupleNet.forward",
    ),
    "forward_under_no_grad": (
        r"has no gradient \(no grad_fn\).*torch\.no_grad",
        "# NoGradNet.forward",
    ),
    "builder_raises": (r"its model builder raised: TypeError", "bogus=1"),
    "mse_shapes": (
        r"outputs \(8, 1\) and targets \(8,\) must have the same shape; mse would broadcast",
        "",
    ),
    "bce_shapes": (r"outputs \(8, 1\) and targets \(8,\) must have the same shape", ""),
    "targets_with_a_class_dimension": (r"targets \(8, 1\) must have the outputs' shape", ""),
    "loss_raises": (
        r"failed on a training batch .*RuntimeError: my loss is broken",
        "# my_loss_raises",
    ),
    "loss_returns_a_vector": (
        r"must return a scalar tensor \(mean-reduced\), it returns a tensor of shape \(8,\)",
        "def my_vector_loss(",
    ),
    "loss_returns_a_float": (
        r"must return a scalar tensor, it returns float",
        "def my_float_loss(",
    ),
    "loss_detached": (r"has no gradient", "def my_detached_loss("),
    "metric_raises": (r"the metric my_metric_raises failed .*NameError", "# my_metric_raises"),
    "metric_returns_text": (r"must return a number, it returns str", "def my_metric_text("),
    "metric_returns_a_vector": (
        r"must return a number, it returns a tensor of shape \(8,\)",
        "def my_metric_vector(",
    ),
    "dataset_raises": (
        r"training data raised on its first batch: KeyError",
        "# Raising.__getitem__",
    ),
    "dataset_raises_in_workers": (
        r"training data raised on its first batch: KeyError",
        "# Raising.__getitem__",
    ),
    "dataset_length_lies": (
        r"len\(\) is 100, but its item 99 raised: IndexError",
        "# Points.__getitem__",
    ),
    "dict_batches": (r"must be an \(inputs, targets\) pair, got a dict", "# Records.__getitem__"),
    "triple_batches": (
        r"must be an \(inputs, targets\) pair, got a list of 3",
        "# Triples.__getitem__",
    ),
    "list_targets": (
        r"targets of a training batch must be a tensor, got a list",
        "# Lists.__getitem__",
    ),
    "test_dataset_raises": (
        r"test data raised on its first batch: KeyError",
        "# Raising.__getitem__",
    ),
}


def mistake_line(task: str) -> int:
    """The line of `MISTAKES` the error of ``task`` must name."""
    marker = BAD_TASKS[task][1] or f"def {task}("
    lines = [i for i, text in enumerate(MISTAKES.splitlines(), 1) if marker in text]
    assert len(lines) == 1, (marker, lines)
    return lines[0]


# A task file whose training data is a Dataset class defined in the file, read through a
# DataLoader with two worker processes started by the given start method (None: the
# platform's default). ``slow_*`` tasks sleep a little per sample (runs then last long enough
# to be interrupted mid-way).
WORKER_TASKS = """
import os
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lrlab


class Blobs(Dataset):
    def __init__(self, n, seed, pause=0.0):
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=generator)
        self.y = (self.x[:, 0] > 0).long()
        self.pause = pause

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if self.pause:
            time.sleep(self.pause)
        return self.x[i], self.y[i]


def _blobs(context, pause=0.0, epochs=1):
    return lrlab.Task(
        name=f"blobs-{context}",
        model=lambda: nn.Linear(4, 2),
        train=DataLoader(Blobs(64, 0, pause), batch_size=16, shuffle=True, num_workers=2,
                         multiprocessing_context=context),
        test=DataLoader(Blobs(32, 1), batch_size=32),
        epochs=epochs,
    )


def default():
    return _blobs(None)


def spawn():
    return _blobs("spawn")


def forkserver():
    return _blobs("forkserver")


def slow_default():
    return _blobs(None, pause=0.05, epochs=50)
"""
