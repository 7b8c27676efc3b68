"""The training engine: one run of (task, optimizer, LR controller, seed, budget) -> `RunRecord`.

The loop is a plain PyTorch loop over tensors already in memory: batches are indexed straight
out of the training tensors (no per-sample ``Dataset.__getitem__``), the LR controller is four
method calls, and the only per-step host work is reading the loss (on CPU, where it is free) to
record it and to stop a diverged run at once. On CUDA the losses stay on the device and are read
every `CUDA_SYNC_EVERY` steps, so the GPU is not stalled every step.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from lrlab.controllers import LRController, TrainingContext, build_controller
from lrlab.optimizers import make_optimizer, optimizer_entry, set_optimizer_mode
from lrlab.record import EpochStats, RunConfig, RunRecord
from lrlab.tasks import MetricSum, Task, TaskData, evaluate, get_task, load_task_data
from lrlab.tasks.task import LossKind, loss_function

CUDA_SYNC_EVERY = 50
SAMPLINGS = ("shuffle", "replacement")
# The losses a run may put in place of its task's (RunConfig.loss).
COMPATIBLE_LOSSES: dict[str, tuple[LossKind, ...]] = {
    "cross_entropy": ("cross_entropy", "keras_cross_entropy")
}


class Observer(Protocol):
    """Progress hooks (e.g. the CLI's progress bar). ``on_step`` runs every step: keep it cheap."""

    def on_start(self, config: RunConfig, total_steps: int, steps_per_epoch: int) -> None: ...

    def on_step(self, step: int, loss: float | None, lr: float) -> None: ...

    def on_epoch(self, stats: EpochStats) -> None: ...


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (an error if none is available) or ``auto`` (CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: no CUDA device is available; use --device cpu")
        return torch.device(name)
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
    loss: LossKind


def plan(config: RunConfig, data: TaskData) -> Plan:
    """Resolve defaults and validate the config (one-line ``ValueError`` naming the field)."""
    task = get_task(config.task)
    optimizer_entry(config.optimizer)  # an unknown optimizer fails before any work
    batch_size = config.batch_size if config.batch_size is not None else task.batch_size
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got batch_size={batch_size!r}")
    sampling = config.sampling or task.sampling
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be shuffle or replacement, got sampling={sampling!r}")
    if config.epochs is not None and config.steps is not None:
        raise ValueError("give epochs or steps, not both")
    for name in ("epochs", "steps"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {name}={value!r}")
    if config.lr is not None and not (math.isfinite(config.lr) and config.lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got lr={config.lr!r}")
    epoch_steps = config.epoch_steps
    if epoch_steps is not None and (
        not isinstance(epoch_steps, int) or isinstance(epoch_steps, bool) or epoch_steps < 1
    ):
        raise ValueError(f"epoch_steps must be an integer >= 1, got epoch_steps={epoch_steps!r}")
    steps_per_epoch = epoch_steps or math.ceil(data.train_size / batch_size)
    if config.steps is not None:
        total = config.steps
    elif config.epochs is not None:
        total = config.epochs * steps_per_epoch
    elif task.steps is not None:
        total = task.steps
    else:
        total = (task.epochs or 1) * steps_per_epoch
    allowed = COMPATIBLE_LOSSES.get(task.loss, (task.loss,))
    loss = next((kind for kind in allowed if kind == (config.loss or task.loss)), None)
    if loss is None:
        raise ValueError(
            f"loss must be {' or '.join(allowed)} for task {task.name}, got loss={config.loss!r}"
        )
    device = resolve_device(config.device)
    return Plan(task, batch_size, steps_per_epoch, total, sampling, device, loss)


def host_sync_every(device: torch.device) -> int:
    """How many steps the loss stays on the device before the host reads it: every step on
    the CPU (free there), `CUDA_SYNC_EVERY` elsewhere (each read stalls the GPU queue)."""
    return 1 if device.type == "cpu" else CUDA_SYNC_EVERY


def versions() -> dict[str, str]:
    from lrlab import __version__

    return {"lrlab": __version__, "torch": torch.__version__, "python": platform.python_version()}


def train(config: RunConfig, *, observer: Observer | None = None) -> RunRecord:
    """Train one run and return its record.

    A non-finite loss ends the run as ``diverged`` at that step (recorded, not raised). A bad
    config raises ``ValueError`` before training starts; anything else that goes wrong during
    training propagates (a sweep records it as ``failed``).
    """
    task = get_task(config.task)
    data = load_task_data(config.task, config.split, config.data_dir)
    resolved = plan(config, data)
    augment = task.augmentations.get(config.model or task.default_model)
    if augment is not None:
        data = dataclasses.replace(data, augment=augment)
    data = data.to(resolved.device)
    controller = (
        build_controller(config.schedule, steps_per_epoch=resolved.steps_per_epoch)
        if config.schedule
        else None
    )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = task.build_model(config.model)
    model.to(resolved.device).train()
    lr = config.lr if config.lr is not None else (controller.initial_lr if controller else None)
    optimizer = make_optimizer(config.optimizer, model.parameters(), lr=lr, **config.optimizer_args)
    set_optimizer_mode(optimizer, training=True)  # schedule-free: train at y, evaluate at x
    record = RunRecord(
        config=config,
        status="done",
        metric=task.metric,
        target=task.target,
        higher_is_better=task.higher_is_better,
        steps_per_epoch=resolved.steps_per_epoch,
        device=str(resolved.device),
        versions=versions(),
    )
    context = TrainingContext(
        model,
        optimizer,
        data,
        resolved.loss,
        resolved.batch_size,
        resolved.steps_per_epoch,
        resolved.total_steps,
        resolved.device,
    )
    devices = [resolved.device] if resolved.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        # What the forward pass draws (dropout's masks) comes from the run's own seed, not
        # from whatever the process ran before, and the caller's RNG is left as it was.
        torch.manual_seed(config.seed)
        if controller is not None:
            controller.start(context)
        if observer is not None:
            observer.on_start(config, resolved.total_steps, resolved.steps_per_epoch)
        try:
            _Loop(config, resolved, context, controller, record, observer).run()
        finally:
            if controller is not None:
                controller.close()
    if controller is not None:
        record.extra["controller"] = {"spec": controller.spec, **controller.summary()}
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
    ) -> None:
        self.config, self.plan, self.context = config, resolved, context
        self.controller, self.record, self.observer = controller, record, observer
        self.loss_fn = loss_function(resolved.loss)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.sync_every = host_sync_every(resolved.device)
        self.train_time = 0.0
        self.step = 0  # the update in progress, for errors raised inside it

    def run(self) -> None:
        plan, record = self.plan, self.record
        start = time.perf_counter()
        step, epoch = 0, 0
        while step < plan.total_steps and record.status == "done":
            steps = min(plan.steps_per_epoch, plan.total_steps - step)
            tick = time.perf_counter()
            running = MetricSum(plan.task.metric, plan.loss)
            begin = step
            self.step = step
            try:
                if self.controller is not None:
                    self.controller.on_epoch_start(epoch, step)
                step = self._epoch(epoch, step, steps, running)
            except ArithmeticError as error:
                # A controller met non-finite or all-zero activations mid-run: the run broke
                # down there (a bad config raises before the loop and is not caught here).
                step = self.step
                self._diverged(step, math.nan, self.context.optimizer.param_groups[0]["lr"])
                record.error = str(error).splitlines()[0]
            self.train_time += time.perf_counter() - tick
            self._end_epoch(epoch, begin, step, running, start)
            epoch += 1
        record.steps = step
        record.train_time = self.train_time
        record.wall_time = time.perf_counter() - start

    def _batches(self, steps: int) -> list[Tensor]:
        """The index tensors of an epoch's batches: fresh permutations (one per pass over the
        training set, as many as ``steps`` needs, each pass ending in its partial batch), or
        seed 003's sampling with replacement."""
        n, size = self.context.data.train_size, self.plan.batch_size
        device = self.plan.device
        if self.plan.sampling == "replacement":
            draws = torch.randint(n, (steps, size), generator=self.generator)
            return list(draws.to(device).unbind(0))
        batches: list[Tensor] = []
        while len(batches) < steps:
            order = torch.randperm(n, generator=self.generator).to(device)
            batches += torch.split(order, size)
        return batches[:steps]

    def _epoch(self, epoch: int, step: int, steps: int, running: MetricSum) -> int:
        data, optimizer, model = self.context.data, self.context.optimizer, self.context.model
        controller, observer, record = self.controller, self.observer, self.record
        group = optimizer.param_groups[0]
        pending: list[Tensor] = []
        for index in self._batches(steps):
            self.step = step
            inputs, targets = data.x_train[index], data.y_train[index]
            if data.transform is not None:
                inputs = data.transform(inputs)
            if data.augment is not None:
                inputs = data.augment(inputs, self.generator)
            outputs = model(inputs)
            loss = self.loss_fn(outputs, targets)
            if self.sync_every == 1:
                value = loss.item()
                if not math.isfinite(value):
                    self._diverged(step, value, group["lr"])
                    return step
            else:
                pending.append(loss.detach())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if controller is not None:
                controller.before_update(step, inputs, targets)
            # D-adaptation's family (Prodigy, D-Adapt Adam) steps by d * lr: record that.
            lr = group["lr"] * group["d"] if "d" in group else group["lr"]
            optimizer.step()
            if controller is not None:
                controller.after_update(step)
            record.step_lr.append(lr)
            running.add(outputs, targets)
            if self.sync_every == 1:
                record.step_loss.append(value)
                if observer is not None:
                    observer.on_step(step, value, lr)
            elif len(pending) == self.sync_every and self._flush(pending, step + 1):
                return self.record.diverged_at or step
            step += 1
        if pending and self._flush(pending, step):
            return self.record.diverged_at or step
        return step

    def _flush(self, pending: list[Tensor], end: int) -> bool:
        """Record losses held on the device; mark divergence at the first non-finite one."""
        values = torch.stack(pending).tolist()
        pending.clear()
        first = end - len(values)
        for offset, value in enumerate(values):
            self.record.step_loss.append(value)
            if not math.isfinite(value):
                self.record.status = "diverged"
                self.record.diverged_at = first + offset
                del self.record.step_lr[first + offset + 1 :]
                del self.record.step_loss[first + offset + 1 :]
                return True
        return False

    def _diverged(self, step: int, value: float, lr: float) -> None:
        self.record.status = "diverged"
        self.record.diverged_at = step
        self.record.step_loss.append(value)
        self.record.step_lr.append(float(lr))

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
        if data.x_test is not None and data.y_test is not None:
            set_optimizer_mode(self.context.optimizer, training=False)
            test_loss, test_metric = evaluate(
                self.context.model,
                data.x_test,
                data.y_test,
                loss=self.plan.loss,
                metric=task.metric,
                transform=data.transform,
            )
            set_optimizer_mode(self.context.optimizer, training=True)
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
        if self.observer is not None:
            self.observer.on_epoch(stats)
