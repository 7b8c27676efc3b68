"""A user's task checked before anything trains: one batch through the model, the loss and
the metric, in the calling process, before a store is written or a worker started.

`check_task` takes the first training batch (and the first test and validation batch) as a
run would see it, runs the model on it, the loss and its backward pass, and the metric, and
turns the classic mistakes into one line that names the task, what is wrong and where, as
``file:line`` of the user's code: the frame of the user's code in the traceback (a
``Dataset.__getitem__``, a model's ``forward``, a loss or metric function), or, when the error
arose inside torch, the user's code it concerns (the loss or metric function, the model's
``forward``, the task's own definition). The mistakes it names:

- data: a ``Dataset`` (or collate function) that raises, a map-style ``Dataset`` whose
  ``len()`` counts items it does not have (its last item is fetched too), a batch that is
  not an ``(inputs, targets)`` pair, targets that are not a tensor;
- model: a builder or ``forward`` that raises (shapes that do not fit), a model that returns
  a tuple, dict or anything but a tensor, in training or in eval mode;
- loss: one that raises (labels out of range: ``Target 9 is out of bounds``, said as "labels
  reach 9 but the model outputs 3 classes"), outputs and targets whose shapes the loss kind
  cannot pair (``mse`` would silently broadcast ``(N, 1)`` against ``(N,)``), a loss that
  returns a float or a vector rather than a scalar tensor, a loss without a gradient (the
  forward runs under ``torch.no_grad()`` or detaches), a backward pass that fails;
- metric: one that raises or does not return a number.

It changes nothing a run sees: a fresh model is built and dropped, no optimizer steps, and
every generator it may touch (torch's, CUDA's, numpy's, ``random``'s, a ``DataLoader``'s or
sampler's own) is restored afterwards, so a run's numbers are bit for bit those it has
without the check. A ``DataLoader`` with worker processes gives its first batch here, in this
process, through its sampler and collate function (no worker starts): unless it has a
``worker_init_fn`` the data may need, then a failing fetch is left for the run to meet. A
check passes once per process for each (task, model, loss, data, batch size, device), so a
sweep checks once; lrlab's own tasks are not checked.
"""

from __future__ import annotations

import inspect
import itertools
import os
import traceback
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset, RandomSampler, SequentialSampler

from lrlab.engine.planning import Plan
from lrlab.errors import TaskError, describe
from lrlab.record import RunConfig
from lrlab.registry import import_file, installed_locations
from lrlab.rng import RNGState
from lrlab.tasks import TASKS, AnyData, MetricSum, StreamData, Task, TaskData
from lrlab.tasks.catalog import reference_file
from lrlab.tasks.task import LossFn, loss_function, to_device

__all__ = ["check_task"]

_CHECKED: weakref.WeakKeyDictionary[Task, set[Hashable]] = weakref.WeakKeyDictionary()
_LRLAB = Path(__file__).resolve().parents[1]


def check_task(config: RunConfig, task: Task, data: AnyData, resolved: Plan) -> None:
    """Check ``task`` on one batch as ``config`` would train it (see the module docstring);
    a mistake is a one-line `lrlab.errors.TaskError` (a ``ValueError``) naming the user's
    ``file:line``, chained to the original error (``LRLAB_TRACEBACK=1`` shows both)."""
    if TASKS.get(task.name) is task:
        return
    loss = resolved.loss
    key = (
        config.model or task.default_model,
        loss if isinstance(loss, str) else id(loss),
        config.split,
        config.data_dir,
        config.validation,
        resolved.batch_size,
        str(resolved.device),
    )
    done = _CHECKED.setdefault(task, set())
    if key in done:
        return
    state = RNGState.capture(_generators(data))
    try:
        with warnings.catch_warnings():  # (a run that starts says them again)
            warnings.simplefilter("ignore")
            _Check(task, config, data, resolved).run()
    except _Skip:
        pass
    finally:
        state.restore()
    done.add(key)


def _generators(data: AnyData) -> list[torch.Generator]:
    """The ``torch.Generator`` objects a pass over the data's loaders draws from."""
    if not isinstance(data, StreamData):
        return []
    found: list[torch.Generator] = []
    for loader in (data.train, data.test, data.validation):
        if isinstance(loader, DataLoader):
            sampler = loader.sampler
            batch_sampler = getattr(loader.batch_sampler, "sampler", None)
            for owner in (loader, sampler, batch_sampler):
                generator = getattr(owner, "generator", None)
                if isinstance(generator, torch.Generator) and generator not in found:
                    found.append(generator)
    return found


class _Check:
    """One check of a task (`check_task`)."""

    def __init__(self, task: Task, config: RunConfig, data: AnyData, resolved: Plan) -> None:
        self.task, self.config, self.data, self.plan = task, config, data, resolved
        self.loss: str | LossFn = resolved.loss
        self.loss_fn = loss_function(resolved.loss)
        self.metric = task.metric
        self.model: nn.Module | None = None

    def run(self) -> None:
        batch = self._first_training_batch()
        model = self._call(
            "its model builder raised",
            lambda: self.task.build_model(self.config.model),
            self._anchor(),
        )
        self.model = model
        model.to(self.plan.device).train()
        inputs, targets = batch
        outputs = self._forward(model, inputs, "a training batch")
        self._check_loss(outputs, targets)
        self._check_metric(outputs.detach(), targets, "a training batch")
        for role, batches in (
            ("test", self.data.test_batches()),
            ("validation", self.data.validation_batches()),
        ):
            if batches is not None:
                self._check_held_out(model, role, batches)

    # -- data ---------------------------------------------------------------------------

    def _first_training_batch(self) -> tuple[Any, Tensor]:
        data = self.data
        if isinstance(data, TaskData):
            size = self.plan.batch_size
            inputs, targets = data.x_train[:size], data.y_train[:size]
            transform = data.transform
            if transform is not None:
                inputs = self._call("its input transform raised", lambda: transform(inputs))
            return inputs.to(self.plan.device), targets.to(self.plan.device)
        self._check_length(data.train)
        return self._first_batch(data.train, "training")

    def _first_batch(self, batches: Iterable[Any], role: str) -> tuple[Any, Tensor]:
        """The first batch of a pass over ``batches``, on the run's device, checked to be an
        ``(inputs, targets)`` pair with tensor targets."""
        anchor = self._data_anchor(batches)
        what = f"the {role} data raised on its first batch"
        if isinstance(batches, DataLoader) and batches.num_workers > 0:
            if batches.worker_init_fn is not None:
                try:
                    batch = _fetch_here(batches)
                except Exception:  # it may need what worker_init_fn sets up: the run tells
                    raise _Skip() from None
            else:
                batch = self._call(what, lambda: _fetch_here(batches), anchor)
        else:
            batch = self._call(what, lambda: next(iter(batches), None), anchor)
        if batch is None:
            self._fail(f"the {role} data yields no batches", where=anchor)
        if not (isinstance(batch, tuple | list) and len(batch) == 2):
            self._fail(
                f"a {role} batch must be an (inputs, targets) pair, got {_shape_of(batch)}",
                where=anchor,
            )
        inputs, targets = batch
        if not isinstance(targets, Tensor):
            self._fail(
                f"the targets of a {role} batch must be a tensor, got {_shape_of(targets)}",
                where=anchor,
            )
        device = self.plan.device
        return to_device(inputs, device), to_device(targets, device)

    def _check_length(self, batches: object) -> None:
        """A map-style ``Dataset`` whose sampler draws from ``range(len(dataset))``: its last
        item must exist when its first does (one that fails on every item is left to the
        first batch, which says so)."""
        if not isinstance(batches, DataLoader) or isinstance(batches.dataset, IterableDataset):
            return
        if not isinstance(batches.sampler, SequentialSampler | RandomSampler):
            return  # (a sampler of its own may draw from fewer indices)
        dataset = batches.dataset
        count = len(dataset)  # type: ignore[arg-type]
        if count == 0:
            return
        try:
            dataset[count - 1]
            return
        except Exception as error:
            last = error
        try:
            dataset[0]
        except Exception:
            return
        self._fail(
            f"its training Dataset says len() is {count}, but its item {count - 1} raised: "
            f"{describe(last)}",
            where=_user_frame(last.__traceback__) or self._data_anchor(batches),
            cause=last,
        )

    # -- model, loss and metric ---------------------------------------------------------

    def _forward(self, model: nn.Module, inputs: Any, where: str) -> Tensor:
        anchor = _code_location(type(model).forward) or self._anchor()
        outputs = self._call(
            f"the model failed on {where} (inputs {_shape_of(inputs)})",
            lambda: model(inputs),
            anchor,
        )
        if not isinstance(outputs, Tensor):
            self._fail(
                f"the model must return a tensor of outputs, its forward returns "
                f"{_shape_of(outputs)} on {where} (return the outputs the loss takes)",
                where=anchor,
            )
        return outputs

    def _check_loss(self, outputs: Tensor, targets: Tensor) -> None:
        loss = self.loss
        anchor = _code_location(loss) if callable(loss) else self._anchor()
        shapes = f"outputs {_dims(outputs)}, targets {_dims(targets)}"
        self._check_pairing(outputs, targets, "a training batch")
        value = self._call(
            f"the loss {self.task.loss_name} failed on a training batch ({shapes})",
            lambda: self.loss_fn(outputs, targets),
            anchor,
        )
        name = self.task.loss_name
        if not isinstance(value, Tensor):
            self._fail(
                f"the loss {name} must return a scalar tensor, it returns {_shape_of(value)}",
                where=anchor,
            )
        if value.numel() != 1:
            self._fail(
                f"the loss {name} must return a scalar tensor (mean-reduced), it returns a "
                f"tensor of shape {tuple(value.shape)} ({shapes}); reduce it, e.g. with .mean()",
                where=anchor,
            )
        if value.grad_fn is None:
            forward = self.model is not None and _code_location(type(self.model).forward)
            self._fail(
                f"the loss {name} has no gradient (no grad_fn): does the model's forward run "
                "under torch.no_grad() or detach its outputs, or the loss leave autograd "
                "(.item(), numpy)?",
                where=forward or anchor,
            )
        self._call(f"the backward pass through the loss {name} failed", value.backward, anchor)

    def _check_pairing(self, outputs: Tensor, targets: Tensor, where: str) -> None:
        """A built-in loss kind's own mistakes, said plainly (`_pairing`)."""
        if isinstance(self.loss, str):
            problem = _pairing(self.loss, outputs, targets)
            if problem is not None:
                self._fail(
                    f"the loss {self.loss} cannot take {where}: {problem}", where=self._anchor()
                )

    def _check_metric(self, outputs: Tensor, targets: Tensor, where: str) -> None:
        metric = self.metric
        name = self.task.metric_name
        anchor = _code_location(metric) if callable(metric) else self._anchor()
        if callable(metric):
            value = self._call(
                f"the metric {name} failed on {where}", lambda: metric(outputs, targets), anchor
            )
            if not _is_number(value):
                self._fail(
                    f"the metric {name} must return a number, it returns {_shape_of(value)}",
                    where=anchor,
                )
        running = MetricSum(metric, self.loss)  # type: ignore[arg-type]
        running.add(outputs, targets)
        self._call(f"the metric {name} failed on {where}", running.value, anchor)

    def _check_held_out(self, model: nn.Module, role: str, batches: Iterable[Any]) -> None:
        """The first batch of a held-out set through the model in eval mode, the loss and
        the metric, as the evaluation at an epoch's end runs them."""
        inputs, targets = self._first_batch(batches, role)
        model.eval()
        try:
            with torch.no_grad():
                outputs = self._forward(model, inputs, f"a {role} batch (in eval mode)")
                self._check_pairing(outputs, targets, f"a {role} batch")
                losses = MetricSum("loss", self.loss)
                losses.add(outputs, targets)
                anchor = _code_location(self.loss) if callable(self.loss) else self._anchor()
                self._call(
                    f"the loss {self.task.loss_name} failed on a {role} batch "
                    f"(outputs {_dims(outputs)}, targets {_dims(targets)})",
                    losses.value,
                    anchor,
                )
                self._check_metric(outputs, targets, f"a {role} batch")
        finally:
            model.train()

    # -- failures -------------------------------------------------------------------------

    def _call(self, what: str, action: Callable[[], Any], where: str | None = None) -> Any:
        """``action()``; what it raises, a `TaskError` at the user's frame (else ``where``)."""
        try:
            return action()
        except (TaskError, _Skip):
            raise
        except Exception as error:
            frame = _user_frame(error.__traceback__)
            self._fail(f"{what}: {describe(error)}", where=frame or where, cause=error)

    def _fail(
        self, what: str, *, where: str | None = None, cause: BaseException | None = None
    ) -> NoReturn:
        place = f" ({where})" if where else ""
        raise TaskError(f"task {self.task.name}: {what}{place}") from cause

    def _anchor(self) -> str | None:
        """Where the task is defined: its reference's function, else its model builder."""
        return _task_anchor(self.task, self.config.model)

    def _data_anchor(self, batches: object) -> str | None:
        """The user's ``Dataset`` class (its ``__getitem__``), else the task."""
        dataset = getattr(batches, "dataset", None)
        getitem = getattr(type(dataset), "__getitem__", None) if dataset is not None else None
        return _code_location(getitem) or self._anchor()


class _Skip(Exception):
    """The check cannot take a batch here (a loader that may need its worker_init_fn)."""


def _fetch_here(loader: DataLoader[Any]) -> Any:
    """The first batch of a pass over a ``DataLoader`` with worker processes, fetched in this
    process as a worker would: indices from its batch sampler, items from its dataset
    (``__getitems__`` when it has one, as torch's fetcher), its collate function."""
    dataset = loader.dataset
    if isinstance(dataset, IterableDataset):
        stream = iter(dataset)
        if loader.batch_size is None:
            return next(stream, None)
        items = list(itertools.islice(stream, loader.batch_size))
        return loader.collate_fn(items) if items else None
    if loader.batch_sampler is None:  # no automatic batching: one item is a batch
        index = next(iter(loader.sampler), None)
        return None if index is None else loader.collate_fn(dataset[index])
    indices = next(iter(loader.batch_sampler), None)
    if indices is None:
        return None
    getitems = getattr(dataset, "__getitems__", None)
    items = getitems(indices) if getitems is not None else [dataset[i] for i in indices]
    return loader.collate_fn(items)


def _pairing(kind: str, outputs: Tensor, targets: Tensor) -> str | None:
    """What keeps a built-in loss kind from pairing ``outputs`` with ``targets`` (``None``:
    nothing): the mistakes its own error hides or names only by its internals."""
    out, tgt = tuple(outputs.shape), tuple(targets.shape)
    if kind in ("mse", "bce"):
        if out != tgt:
            both = _broadcast(out, tgt)
            how = f"; mse would broadcast them to {both}" if kind == "mse" and both else ""
            return f"outputs {out} and targets {tgt} must have the same shape{how}"
        return None
    if outputs.dim() == 0:
        return f"the model's outputs are a scalar; {kind} needs a score per class"
    classes = out[-1]
    if targets.is_floating_point():  # class probabilities
        if kind == "keras_cross_entropy":
            return f"targets must be class indices (integers), got {targets.dtype}"
        return None if out == tgt else f"outputs {out} and class probabilities {tgt} differ"
    if tgt != out[:-1]:
        return (
            f"targets {tgt} must have the outputs' shape {out} without its last (class) "
            f"dimension, {out[:-1]}"
        )
    if targets.numel():
        low, high = int(targets.min()), int(targets.max())
        if high >= classes or low < 0:
            value = high if high >= classes else low
            return (
                f"labels reach {value} but the model outputs {classes} classes (outputs {out}); "
                f"labels must be in [0, {classes - 1}]"
            )
    return None


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape two shapes broadcast to (``None``: they do not)."""
    try:
        return tuple(torch.broadcast_shapes(a, b))  # type: ignore[no-untyped-call]
    except RuntimeError:
        return None


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, Tensor) and value.numel() == 1 and not value.dtype.is_complex


def _shape_of(value: object) -> str:
    """A short description of a value: a tensor's shape, a container's kind and length."""
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}" if value.dim() else "a 0-d tensor"
    if isinstance(value, tuple | list):
        inner = ", ".join(_brief(v) for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"a {type(value).__name__} of {len(value)} ({inner})"
    if isinstance(value, dict):
        return f"a dict with keys {list(value)[:6]}"
    if value is None:
        return "None"
    return f"{type(value).__name__} {value!r}"[:80] if _is_plain(value) else type(value).__name__


def _dims(value: object) -> str:
    """A tensor's shape, ``(8, 2)``; anything else as `_shape_of` says it."""
    return str(tuple(value.shape)) if isinstance(value, Tensor) else _shape_of(value)


def _brief(value: object) -> str:
    if isinstance(value, Tensor):
        return f"tensor {tuple(value.shape)}"
    return type(value).__name__


def _is_plain(value: object) -> bool:
    return isinstance(value, int | float | str | bool)


# -- where the user's code is ------------------------------------------------------------------


def _is_user_file(filename: str) -> bool:
    """Whether ``filename`` is the user's code: not lrlab's, torch's, the standard library's
    or an installed package's, and a real file."""
    if filename.startswith("<"):
        return False
    path = Path(filename).resolve()
    if path.is_relative_to(_LRLAB):
        return False
    return not any(path.is_relative_to(Path(place).resolve()) for place in _installed())


_INSTALLED: list[str] = []


def _installed() -> list[str]:
    if not _INSTALLED:
        _INSTALLED.extend(installed_locations())
    return _INSTALLED


def _user_frame(tb: TracebackType | None) -> str | None:
    """``file:line`` of the innermost frame of the user's code in a traceback."""
    found = None
    for frame in traceback.extract_tb(tb):
        if _is_user_file(frame.filename):
            found = _place(frame.filename, frame.lineno)
    return found


def _code_location(thing: object) -> str | None:
    """``file:line`` where a function, method, class or callable object of the user's is
    defined (``None`` for lrlab's, torch's, a built-in's)."""
    target = getattr(thing, "func", thing)  # functools.partial
    target = getattr(target, "__func__", target)  # bound methods
    if inspect.isfunction(target):
        code = target.__code__
        if not _is_user_file(code.co_filename):
            return None
        return _place(code.co_filename, code.co_firstlineno)
    owner = target if inspect.isclass(target) else type(target)
    for name in ("forward", "__call__", "__getitem__"):
        method = next((k.__dict__[name] for k in owner.__mro__ if name in k.__dict__), None)
        if inspect.isfunction(method):
            return _code_location(method)
    return None


def _task_anchor(task: Task, model: str | None) -> str | None:
    """Where a task is defined: the function of its ``file.py:function`` reference, else the
    builder of its model."""
    reference = task.reference
    file = reference_file(reference) if reference else None
    if reference and file:
        try:
            module = import_file(file, what="task")
        except ValueError:
            module = None
        function = getattr(module, reference.rpartition(":")[2], None)
        if function is not None and _code_location(function):
            return _code_location(function)
    builder = task.model_builders.get(model or task.default_model)
    return _code_location(builder)


def _place(filename: str, line: int | None) -> str:
    """``file:line``, the file relative to the current folder when inside it."""
    path = Path(filename)
    try:
        shown = str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        shown = os.fspath(path)
    return f"{shown}:{line}" if line is not None else shown
