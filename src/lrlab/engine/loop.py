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
import time
from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch import Tensor

from lrlab.controllers import LRController, TrainingContext, build_controller
from lrlab.engine.bookkeeping import Bookkeeper, new_record
from lrlab.engine.flat import flatten_parameters
from lrlab.engine.planning import Plan, host_sync_every, plan, task_data
from lrlab.optimizers import make_optimizer, optimizer_entry, set_optimizer_mode
from lrlab.record import EpochStats, RunConfig, RunRecord
from lrlab.rng import RNGState, seeded
from lrlab.tasks import AnyData, MetricSum, StreamData, Task, TaskData, get_task
from lrlab.tasks.task import Batches, evaluate_batches, loss_function, to_device
from lrlab.validate import MAX_LR


class Observer(Protocol):
    """Progress hooks (e.g. the CLI's progress bar). ``on_step`` runs for every step, once its
    loss has been read (on a GPU, in blocks): keep it cheap."""

    def on_start(self, config: RunConfig, total_steps: int, steps_per_epoch: int) -> None: ...

    def on_step(self, step: int, loss: float | None, lr: float) -> None: ...

    def on_epoch(self, stats: EpochStats) -> None: ...


def train_run(
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
    # lrlab's own rules are elementwise: on one flat tensor they compute the same numbers
    # with fewer kernels (unless the run picks torch's implementation itself).
    flat = (
        flatten_parameters(list(model.parameters()))
        if optimizer_entry(config.optimizer).elementwise
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
    record = new_record(config, task, resolved.steps_per_epoch, resolved.device, data)
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
        return _Loop(config, resolved, context, controller, record, observer, flat).run()
    finally:
        if controller is not None:
            controller.close()


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
        self.book = Bookkeeper(record)
        self.loss_fn = loss_function(resolved.loss)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.sync_every = host_sync_every(resolved.device)
        self.train_time = 0.0
        self.step = 0  # the update in progress, for errors raised inside it
        self.reported = 0  # steps whose loss the observer has seen
        self._stream: Iterator[tuple[Any, Tensor]] | None = None
        self.pending: list[Tensor] = []  # losses not read on the host yet

    def run(self) -> RunRecord:
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
                    self.book.diverge(step, math.nan, self._lr(), error)
                step = self._diverged_step()
            self.train_time += time.perf_counter() - tick
            self._end_epoch(epoch, begin, step, running, start)
            epoch += 1
        wall_time = time.perf_counter() - start
        return self.book.finish(step, self.train_time, wall_time, self.controller)

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
        step = self.book.add_losses(first, values)
        if step is None:
            return False
        lrs = self.record.step_lr
        self.book.diverge(step, values[step - first], lrs[step] if step < len(lrs) else self._lr())
        self._report()
        return True

    def _lr(self) -> float:
        """The LR the optimizer holds now (of the update in progress)."""
        return float(self.context.optimizer.param_groups[0]["lr"])

    def _report(self) -> None:
        """Tell the observer about every step whose loss and LR are both recorded."""
        if self.observer is None:
            return
        loss, lrs = self.record.step_loss, self.record.step_lr
        ready = min(len(loss), len(lrs))
        for step in range(self.reported, ready):
            self.observer.on_step(step, loss[step], lrs[step])
        self.reported = max(self.reported, ready)

    def _end_epoch(
        self, epoch: int, begin: int, step: int, running: MetricSum, start: float
    ) -> None:
        data = self.context.data
        (val_loss, val_metric), (test_loss, test_metric) = self._evaluate(
            data.validation_batches(), data.test_batches()
        )
        # (The LR of the epoch's first update, or, with none recorded, the one it would have:
        # a controller may set it during that update.)
        stats = self.book.close_epoch(
            epoch,
            begin,
            step,
            lr=self._lr(),
            train_metric=running.value(),
            test_loss=test_loss,
            test_metric=test_metric,
            val_loss=val_loss,
            val_metric=val_metric,
            train_time=self.train_time,
            wall_time=time.perf_counter() - start,
        )
        if self.controller is not None:
            self.controller.on_epoch_end(epoch, step, stats)
        if self.observer is not None:
            self.observer.on_epoch(stats)

    def _evaluate(self, *held_out: Batches | None) -> list[tuple[float | None, float | None]]:
        """The mean loss and metric on each set of held-out batches (``None``s without one),
        in eval mode at the evaluation weights, under its own RNG state: a DataLoader draws a
        seed per pass even unshuffled, and evaluating must not change the training's random
        stream."""
        if all(batches is None for batches in held_out):
            return [(None, None) for _ in held_out]
        data = self.context.data
        state = RNGState.capture()
        set_optimizer_mode(self.context.optimizer, training=False)
        try:
            return [
                (None, None)
                if batches is None
                else evaluate_batches(
                    self.context.model,
                    batches,
                    loss=self.plan.loss,
                    metric=self.plan.task.metric,  # type: ignore[arg-type]
                    device=self.plan.device if isinstance(data, StreamData) else None,
                )
                for batches in held_out
            ]
        finally:
            set_optimizer_mode(self.context.optimizer, training=True)
            state.restore()


def _take(batches: Iterator[tuple[Any, Tensor]], count: int) -> Iterator[tuple[Any, Tensor]]:
    for _ in range(count):
        batch = next(batches, None)
        if batch is None:
            return
        yield batch
