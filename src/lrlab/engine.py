"""The training engine: one run of (task, optimizer, LR controller, seed, budget) -> `RunRecord`.

One loop, two batch sources. A task's tensors held in memory are batched here: index tensors
straight out of the training set (no per-sample ``Dataset.__getitem__``), a fresh permutation
per epoch from the run's seed, or seed 003's sampling with replacement. A task's
``DataLoader`` (or any re-iterable, sized collection of batches) is streamed as given, one pass
an epoch, each batch moved to the run's device. Everything else is shared: the LR controller is
four method calls, losses are read on the host every `host_sync_every` steps (every step on
the CPU, where it is free, so a non-finite loss stops the run before its update; in blocks on
a GPU, so it is not stalled every step), the record, divergence handling and metrics.

A run draws all its randomness from its seed: the model's initial weights, the batch order,
augmentation, dropout, a DataLoader's shuffling (torch's global RNG, seeded and restored
around the run, so the caller's RNG state is untouched).
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from lrlab.controllers import LRController, TrainingContext, build_controller, controller_entry
from lrlab.optimizers import (
    OptimizerEntry,
    check_optimizer_args,
    flatten_parameters,
    make_optimizer,
    optimizer_entry,
    set_optimizer_mode,
)
from lrlab.record import EpochStats, RunConfig, RunRecord
from lrlab.rng import RNGState, seeded
from lrlab.tasks import TASKS, AnyData, MetricSum, StreamData, Task, TaskData, get_task
from lrlab.tasks.catalog import load_task_data
from lrlab.tasks.task import SAMPLINGS, LossFn, evaluate_batches, loss_function, to_device
from lrlab.validate import (
    MAX_LR,
    check_choice,
    check_input_dir,
    check_int,
    check_optional_lr,
    check_plain,
    check_str,
)

CUDA_SYNC_EVERY = 50
# The losses a run may put in place of its task's (RunConfig.loss).
COMPATIBLE_LOSSES: dict[str, tuple[str, ...]] = {
    "cross_entropy": ("cross_entropy", "keras_cross_entropy")
}


class Observer(Protocol):
    """Progress hooks (e.g. the CLI's progress bar). ``on_step`` runs for every step, once its
    loss has been read (on a GPU, in blocks): keep it cheap."""

    def on_start(self, config: RunConfig, total_steps: int, steps_per_epoch: int) -> None: ...

    def on_step(self, step: int, loss: float | None, lr: float) -> None: ...

    def on_epoch(self, stats: EpochStats) -> None: ...


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (an error if none is available) or ``auto`` (CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if isinstance(name, str) and name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: no CUDA device is available; use device=cpu")
        try:
            return torch.device(name)
        except RuntimeError:
            raise ValueError(
                f"device must be cpu, cuda, cuda:N or auto, got device={name!r}"
            ) from None
    raise ValueError(f"device must be cpu, cuda or auto, got device={name!r}")


@dataclass(frozen=True)
class Plan:
    """A config resolved against its task's defaults and checked, before anything trains."""

    task: Task
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    sampling: str
    device: torch.device
    loss: str | LossFn  # the task's, or the compatible kind the run asks for


def plan(config: RunConfig, data: AnyData, task: Task | None = None) -> Plan:
    """Resolve defaults and validate the config (one-line ``ValueError`` naming the field)."""
    task = task if task is not None else get_task(config.task)
    check_str("run", "optimizer", config.optimizer)
    optimizer_entry(config.optimizer)  # an unknown optimizer fails before any work
    check_optimizer_args(config.optimizer, config.optimizer_args)
    check_plain("run", "optimizer_args", config.optimizer_args)
    check_int("run", "seed", config.seed, minimum=0)
    check_optional_lr("run", config.lr)
    if config.schedule is not None:
        check_str("run", "schedule", config.schedule)
    if config.data_dir is not None:
        check_input_dir("run", "data_dir", config.data_dir)
    if config.epochs is not None and config.steps is not None:
        raise ValueError(
            f"give epochs or steps, not both, got epochs={config.epochs}, steps={config.steps}"
        )
    for name in ("epochs", "steps"):
        value = getattr(config, name)
        if value is not None:
            check_int("run", name, value, minimum=1)
    if config.model is not None and config.model not in task.models:
        task.build_model(config.model)  # the error that lists the task's models
    sampling = config.sampling or task.sampling
    check_choice("run", "sampling", sampling, SAMPLINGS)
    if isinstance(data, StreamData):
        if config.batch_size is not None:
            raise ValueError(
                f"task {task.name}: its training data is a DataLoader, which sets the batch "
                f"size; leave batch_size out, got batch_size={config.batch_size!r}"
            )
        if config.sampling == "replacement":
            raise ValueError(
                f"task {task.name}: sampling=replacement needs tensor data; a DataLoader "
                "chooses its own order"
            )
        batch_size = data.batch_size or 0
        steps_per_epoch = data.steps_per_pass
    else:
        batch_size = config.batch_size if config.batch_size is not None else task.batch_size
        check_int("run", "batch_size", batch_size, minimum=1)
        steps_per_epoch = math.ceil(data.train_size / batch_size)
    if config.epoch_steps is not None:
        # An epoch of that many updates, cycling the data (seed 004's 60000 / 256 steps on
        # the 4000 offline digits): the LR controllers' epochs follow it.
        steps_per_epoch = check_int("run", "epoch_steps", config.epoch_steps, minimum=1)
    elif task.epoch_steps is not None:  # the task's epoch (a stream without a len() needs one)
        steps_per_epoch = task.epoch_steps
    if config.steps is not None:
        total = config.steps
    elif config.epochs is not None:
        total = config.epochs * steps_per_epoch
    elif task.steps is not None:
        total = task.steps
    else:
        total = (task.epochs or 1) * steps_per_epoch
    loss: str | LossFn = task.loss
    if config.loss is not None:
        allowed = (
            COMPATIBLE_LOSSES.get(task.loss, (task.loss,)) if isinstance(task.loss, str) else ()
        )
        if config.loss not in allowed:
            raise ValueError(
                f"loss must be {' or '.join(allowed) or 'left out'} for task {task.name} "
                f"(its loss is {task.loss_name}), got loss={config.loss!r}"
            )
        loss = config.loss
    device = resolve_device(config.device)
    return Plan(task, batch_size, steps_per_epoch, total, sampling, device, loss)


def host_sync_every(device: torch.device) -> int:
    """How many steps the loss stays on the device before the host reads it: every step on
    the CPU (free there), `CUDA_SYNC_EVERY` elsewhere (each read stalls the GPU queue)."""
    return 1 if device.type == "cpu" else CUDA_SYNC_EVERY


def versions() -> dict[str, str]:
    from lrlab import __version__

    return {"lrlab": __version__, "torch": torch.__version__, "python": platform.python_version()}


def task_data(config: RunConfig, task: Task) -> AnyData:
    """The run's data: cached per process when ``config.task`` names ``task`` (one of
    lrlab's, or a reference), loaded afresh for a `Task` object given directly."""
    if TASKS.get(config.task) is task or task.reference == config.task:
        return load_task_data(config.task, config.split, config.data_dir)
    return task.load(config.split, Path(config.data_dir) if config.data_dir else None)


def train(
    config: RunConfig, *, observer: Observer | None = None, task: Task | None = None
) -> RunRecord:
    """Train one run and return its record.

    ``task`` is the `Task` object when the caller has one that ``config.task`` cannot name
    (a task built in Python and never registered); otherwise it is resolved from
    ``config.task``. A non-finite loss ends the run as ``diverged`` at that step (recorded,
    not raised). A bad config raises ``ValueError`` before training starts; anything else
    that goes wrong during training propagates (a sweep records it as ``failed``).
    """
    task = task if task is not None else get_task(config.task)
    data = task_data(config, task)
    resolved = plan(config, data, task)
    augment = task.augmentations.get(config.model or task.default_model)
    if augment is not None and isinstance(data, TaskData):
        data = dataclasses.replace(data, augment=augment)  # the model's own recipe
    controller = (
        build_controller(config.schedule, steps_per_epoch=resolved.steps_per_epoch)
        if config.schedule
        else None
    )
    if controller is not None:
        controller.check_task(task)
    if isinstance(data, TaskData):
        data = data.to(resolved.device)
    with seeded(config.seed, resolved.device):
        return _run(config, task, data, resolved, controller, observer)


def _run(
    config: RunConfig,
    task: Task,
    data: AnyData,
    resolved: Plan,
    controller: LRController | None,
    observer: Observer | None,
) -> RunRecord:
    model = task.build_model(config.model)
    model.to(resolved.device).train()
    lr = config.lr if config.lr is not None else (controller.initial_lr if controller else None)
    # The registry's rules are elementwise: on one flat tensor they compute the same numbers
    # with fewer kernels (unless the run picks torch's implementation itself).
    flat = (
        flatten_parameters(list(model.parameters()))
        if isinstance(optimizer_entry(config.optimizer), OptimizerEntry)
        and not {"foreach", "fused"} & set(config.optimizer_args)
        else None
    )
    optimizer = make_optimizer(
        config.optimizer,
        model.parameters() if flat is None else [flat],
        lr=lr,
        **config.optimizer_args,
    )
    set_optimizer_mode(optimizer, training=True)  # schedule-free: train at y, evaluate at x
    record = new_record(config, task, resolved, data)
    context = TrainingContext(
        model,
        optimizer,
        data,
        resolved.loss if isinstance(resolved.loss, str) else None,  # type: ignore[arg-type]
        resolved.batch_size,
        resolved.steps_per_epoch,
        resolved.total_steps,
        resolved.device,
        higher_is_better=bool(task.higher_is_better),
    )
    if controller is not None:
        controller.start(context)
    if observer is not None:
        observer.on_start(config, resolved.total_steps, resolved.steps_per_epoch)
    try:
        _Loop(config, resolved, context, controller, record, observer, flat).run()
    finally:
        if controller is not None:
            controller.close()
    return finish_record(record, controller)


def new_record(
    config: RunConfig, task: Task, resolved: Plan, data: AnyData | None = None
) -> RunRecord:
    """A run's record before its first step: what the report needs to know about the run's
    task and method (its metric and target, whether it sets its own LR), and what its data
    is (`TaskData.identity`, as ``extra["data"]``)."""
    entry = controller_entry(config.schedule) if config.schedule else None
    record = RunRecord(
        config=config,
        status="done",
        metric=task.metric_name,
        target=task.target,
        higher_is_better=bool(task.higher_is_better),
        steps_per_epoch=resolved.steps_per_epoch,
        device=str(resolved.device),
        versions=versions(),
        self_tuning=optimizer_entry(config.optimizer).lr_free
        or (entry is not None and not entry.takes_lr),
        task_name=task.name,
    )
    if isinstance(data, TaskData) and data.identity is not None:
        record.extra["data"] = dict(data.identity)
    return record


def finish_record(record: RunRecord, controller: LRController | None) -> RunRecord:
    """What a record learns when its run ends: the controller's summary, the first LR."""
    if controller is not None:
        record.extra["controller"] = {"spec": controller.spec, **controller.summary()}
    if record.step_lr:
        record.initial_lr = record.step_lr[0]
    return record


class _Loop:
    """The epochs of one run, writing into its `RunRecord`."""

    def __init__(
        self,
        config: RunConfig,
        resolved: Plan,
        context: TrainingContext,
        controller: LRController | None,
        record: RunRecord,
        observer: Observer | None,
        flat: Tensor | None = None,
    ) -> None:
        self.config, self.plan, self.context = config, resolved, context
        # The parameters are views of ``flat`` (`flatten_parameters`): clear its gradient in
        # place, one kernel, and keep it (the parameters' gradients are views of it).
        self.flat_grad = flat.grad if flat is not None else None
        self.controller, self.record, self.observer = controller, record, observer
        self.loss_fn = loss_function(resolved.loss)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.sync_every = host_sync_every(resolved.device)
        self.train_time = 0.0
        self.step = 0  # the update in progress, for errors raised inside it
        self.reported = 0  # steps whose loss the observer has seen
        self._stream: Iterator[tuple[Any, Tensor]] | None = None
        self.pending: list[Tensor] = []  # losses not read on the host yet

    def run(self) -> None:
        plan, record = self.plan, self.record
        start = time.perf_counter()
        step, epoch = 0, 0
        while step < plan.total_steps and record.status == "done":
            steps = min(plan.steps_per_epoch, plan.total_steps - step)
            tick = time.perf_counter()
            running = MetricSum(plan.task.metric, plan.loss)  # type: ignore[arg-type]
            begin = step
            self.step = step
            try:
                if self.controller is not None:
                    self.controller.on_epoch_start(epoch, step)
                step = self._epoch(step, steps, running)
            except ArithmeticError as error:
                # A controller met non-finite or all-zero activations mid-run: the run broke
                # down there (a bad config raises before the loop and is not caught here).
                step = self.step
                read = len(record.step_loss) + len(self.pending)
                if not (self.pending and self._flush(self.pending, read)):
                    del record.step_loss[step:], record.step_lr[step:]
                    self._diverged(step, math.nan, None)
                    record.error = str(error).splitlines()[0]
                step = self._diverged_step()
            self.train_time += time.perf_counter() - tick
            self._end_epoch(epoch, begin, step, running, start)
            epoch += 1
        record.steps = step
        record.train_time = self.train_time
        record.wall_time = time.perf_counter() - start

    def _batches(self, steps: int) -> Iterator[tuple[Any, Tensor]]:
        """An epoch's ``steps`` training batches, on the run's device, augmented: index
        tensors into the tensors in memory (a fresh permutation per pass over the training
        set, each pass ending in its partial batch; or seed 003's sampling with replacement),
        or the loader's batches."""
        data, device = self.context.data, self.plan.device
        if isinstance(data, StreamData):
            for inputs, targets in _take(self._stream_batches(), steps):
                yield to_device(inputs, device), to_device(targets, device)
            return
        n, size = data.train_size, self.plan.batch_size
        if self.plan.sampling == "replacement":
            draws = torch.randint(n, (steps, size), generator=self.generator)
            indices = list(draws.to(device).unbind(0))
        else:  # fresh permutations, as many passes as the epoch's steps need
            indices = []
            while len(indices) < steps:
                order = torch.randperm(n, generator=self.generator).to(device)
                indices += torch.split(order, size)
            indices = indices[:steps]
        for index in indices:
            inputs, targets = data.x_train[index], data.y_train[index]
            if data.transform is not None:
                inputs = data.transform(inputs)
            if data.augment is not None:
                inputs = data.augment(inputs, self.generator)
            yield inputs, targets

    def _stream_batches(self) -> Iterator[tuple[Any, Tensor]]:
        """The loader's batches, a new pass whenever one ends (so a budget in steps that
        ends mid-pass resumes there in the next epoch)."""
        while True:
            if self._stream is None:
                self._stream = iter(self.context.data.train)  # type: ignore[union-attr]
            yield from self._stream
            self._stream = None

    def _epoch(self, step: int, steps: int, running: MetricSum) -> int:
        """Train ``steps`` updates from ``step``; return the step count reached (the step
        of divergence when the run diverged)."""
        optimizer, model = self.context.optimizer, self.context.model
        controller, record = self.controller, self.record
        group = optimizer.param_groups[0]
        pending = self.pending
        for inputs, targets in self._batches(steps):
            self.step = step
            outputs = model(inputs)
            # A model may return a view of its parameters (seed 002's scalar does): the
            # running metric must see this batch's outputs, not what the update makes of them.
            seen = outputs.detach().clone() if outputs._is_view() else outputs
            loss = self.loss_fn(outputs, targets)
            pending.append(loss.detach())
            # On the CPU every loss is read here, before its update: a non-finite one stops
            # the run with the weights it had. On a GPU, in blocks (the updates between are
            # dropped from the record).
            if len(pending) == self.sync_every and self._flush(pending, step + 1):
                return self._diverged_step()
            if self.flat_grad is not None:
                self.flat_grad.zero_()
            else:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if controller is not None:
                controller.before_update(step, inputs, targets)
            # D-adaptation's family (Prodigy, D-Adapt Adam) steps by d * lr: record that.
            lr = group["lr"] * group["d"] if "d" in group else group["lr"]
            if not 0 <= lr <= MAX_LR:  # torch cannot take it (nor a NaN): say where, not what
                raise ValueError(
                    f"run: the LR at step {step} is {float(lr)!r}, outside [0, {MAX_LR:g}]"
                )
            optimizer.step()
            if controller is not None:
                controller.after_update(step)
            record.step_lr.append(float(lr))
            running.add(seen, targets)
            self._report()
            step += 1
        if pending and self._flush(pending, step):
            return self._diverged_step()
        self._report()
        return step

    def _diverged_step(self) -> int:
        diverged = self.record.diverged_at
        return self.step if diverged is None else diverged

    def _flush(self, pending: list[Tensor], end: int) -> bool:
        """Record the losses of steps ``end - len(pending) .. end - 1``; at the first
        non-finite one, mark the run diverged there and drop what came after."""
        values = torch.stack(pending).tolist() if len(pending) > 1 else [pending[0].item()]
        pending.clear()
        first = end - len(values)
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                step = first + offset
                lr = self.record.step_lr[step] if step < len(self.record.step_lr) else None
                del self.record.step_lr[step:]
                self._diverged(step, value, lr)
                self._report()
                return True
            self.record.step_loss.append(value)
        return False

    def _report(self) -> None:
        """Tell the observer about every step whose loss and LR are both recorded."""
        if self.observer is None:
            return
        loss, lrs = self.record.step_loss, self.record.step_lr
        ready = min(len(loss), len(lrs))
        for step in range(self.reported, ready):
            self.observer.on_step(step, loss[step], lrs[step])
        self.reported = max(self.reported, ready)

    def _diverged(self, step: int, value: float, lr: float | None) -> None:
        self.record.status = "diverged"
        self.record.diverged_at = step
        self.record.step_loss.append(value)
        group = self.context.optimizer.param_groups[0]
        self.record.step_lr.append(float(group["lr"] if lr is None else lr))

    def _end_epoch(
        self, epoch: int, begin: int, step: int, running: MetricSum, start: float
    ) -> None:
        data, task = self.context.data, self.plan.task
        # The LR of the epoch's first update (a controller may set it during that update).
        trace = self.record.step_lr
        first_lr = (
            trace[begin]
            if begin < len(trace)
            else float(self.context.optimizer.param_groups[0]["lr"])
        )
        losses = [
            v for v in self.record.step_loss[begin:step] if v is not None and math.isfinite(v)
        ]
        train_loss = sum(losses) / len(losses) if losses else None
        test_loss = test_metric = None
        batches = data.test_batches()
        if batches is not None:
            # Under its own RNG state: a DataLoader draws a seed per pass even unshuffled,
            # and evaluating must not change the training's random stream.
            state = RNGState.capture()
            set_optimizer_mode(self.context.optimizer, training=False)
            test_loss, test_metric = evaluate_batches(
                self.context.model,
                batches,
                loss=self.plan.loss,
                metric=task.metric,  # type: ignore[arg-type]
                device=self.plan.device if isinstance(data, StreamData) else None,
            )
            set_optimizer_mode(self.context.optimizer, training=True)
            state.restore()
        stats = EpochStats(
            epoch=epoch,
            step=step,
            lr=first_lr,
            train_loss=train_loss,
            train_metric=running.value(),
            test_loss=test_loss,
            test_metric=test_metric,
            train_time=self.train_time,
            wall_time=time.perf_counter() - start,
        )
        self.record.epochs.append(stats)
        if self.controller is not None:
            self.controller.on_epoch_end(epoch, step, stats)
        if self.observer is not None:
            self.observer.on_epoch(stats)


def _take(batches: Iterator[tuple[Any, Tensor]], count: int) -> Iterator[tuple[Any, Tensor]]:
    for _ in range(count):
        batch = next(batches, None)
        if batch is None:
            return
        yield batch
