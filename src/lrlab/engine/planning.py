"""A run's plan: its config resolved against its task's defaults (batch size, steps per epoch,
total steps, sampling, device, loss) and checked, before anything trains; and its data."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from lrlab.engine.groups import check_decay_params
from lrlab.engine.precision import check_precision
from lrlab.optimizers import check_optimizer_args, optimizer_entry
from lrlab.record import RunConfig
from lrlab.tasks import TASKS, AnyData, StreamData, Task, get_task
from lrlab.tasks.catalog import load_task_data
from lrlab.tasks.task import SAMPLINGS, LossFn
from lrlab.validate import (
    MAX_STEPS,
    check_choice,
    check_input_dir,
    check_int,
    check_number,
    check_optional_lr,
    check_output_path,
    check_plain,
    check_str,
)

CUDA_SYNC_EVERY = 50
# The losses a run may put in place of its task's (RunConfig.loss).
COMPATIBLE_LOSSES: dict[str, tuple[str, ...]] = {
    "cross_entropy": ("cross_entropy", "keras_cross_entropy")
}


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
    """A config resolved against its task's defaults and checked, before anything trains.

    ``batch_size`` is what one forward pass sees (a micro-batch); an update takes
    ``accumulation_steps`` of them, and ``steps_per_epoch``/``total_steps`` count updates."""

    task: Task
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    sampling: str
    device: torch.device
    loss: str | LossFn  # the task's, or the compatible kind the run asks for
    accumulation_steps: int = 1


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
            check_int("run", name, value, minimum=1, maximum=MAX_STEPS)
    for name in ("model", "split", "sampling"):
        if getattr(config, name) is not None:
            check_str("run", name, getattr(config, name))
    if config.model is not None and config.model not in task.models:
        task.build_model(config.model)  # the error that lists the task's models
    sampling = config.sampling or task.sampling
    check_choice("run", "sampling", sampling, SAMPLINGS)
    accumulation = _check_training_options(config)
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
        passes = data.steps_per_pass
        if accumulation > passes:
            raise ValueError(
                f"run: accumulation_steps must be <= the batches in a pass over task "
                f"{task.name}'s training stream ({passes}), got accumulation_steps={accumulation}"
            )
        steps_per_epoch = math.ceil(passes / accumulation)
    else:
        batch_size = config.batch_size if config.batch_size is not None else task.batch_size
        check_int("run", "batch_size", batch_size, minimum=1)
        if accumulation > 1 and (accumulation - 1) * batch_size >= data.train_size:
            raise ValueError(
                f"run: accumulation_steps must leave no micro-batch of an update empty "
                f"((accumulation_steps - 1) * batch_size < {data.train_size}, task "
                f"{task.name}'s training set, at batch_size={batch_size}), "
                f"got accumulation_steps={accumulation}"
            )
        steps_per_epoch = math.ceil(data.train_size / (batch_size * accumulation))
    if config.epoch_steps is not None:
        # An epoch of that many updates, cycling the data (seed 004's 60000 / 256 steps on
        # the 4000 offline digits): the LR controllers' epochs follow it.
        steps_per_epoch = check_int(
            "run", "epoch_steps", config.epoch_steps, minimum=1, maximum=MAX_STEPS
        )
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
    if total > MAX_STEPS:
        epochs = f"epochs={config.epochs}" if config.epochs is not None else "the task's epochs"
        raise ValueError(
            f"run: a run takes at most {MAX_STEPS} steps, got {total} ({epochs} x "
            f"{steps_per_epoch} steps an epoch)"
        )
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
    return Plan(task, batch_size, steps_per_epoch, total, sampling, device, loss, accumulation)


#: The most micro-batches an update may take (beyond that an update is a pass of its own).
MAX_ACCUMULATION = 65536


def _check_training_options(config: RunConfig) -> int:
    """The step's options (clipping, weight-decay groups, accumulation, precision) and the
    checkpoints', checked; returns ``accumulation_steps``."""
    if config.clip_norm is not None:
        check_number("run", "clip_norm", config.clip_norm, positive=True)
    check_decay_params(config.decay_params)
    if config.decay_params != "all":
        entry = optimizer_entry(config.optimizer)
        if "weight_decay" not in inspect.signature(entry.cls).parameters:
            raise ValueError(
                f"run: decay_params={config.decay_params!r} splits the weight decay by "
                f"parameter, and optimizer {config.optimizer!r} takes no weight_decay; use "
                "decay_params='all'"
            )
    accumulation = check_int(
        "run", "accumulation_steps", config.accumulation_steps, minimum=1, maximum=MAX_ACCUMULATION
    )
    check_precision("run", config.precision)
    if config.checkpoint_dir is not None:
        check_output_path("run", "checkpoint_dir", config.checkpoint_dir, directory=True)
    for name in ("checkpoint_every", "checkpoint_seconds"):
        value = getattr(config, name)
        if value is None:
            continue
        if name == "checkpoint_every":
            check_int("run", name, value, minimum=1)
        else:
            check_number("run", name, value, positive=True)
        if config.checkpoint_dir is None:
            raise ValueError(
                f"run: {name} needs checkpoint_dir (where the checkpoints go), got {name}={value!r}"
            )
    return accumulation


def host_sync_every(device: torch.device) -> int:
    """How many steps the loss stays on the device before the host reads it: every step on
    the CPU (free there), `CUDA_SYNC_EVERY` elsewhere (each read stalls the GPU queue)."""
    return 1 if device.type == "cpu" else CUDA_SYNC_EVERY


def task_data(config: RunConfig, task: Task) -> AnyData:
    """The run's data: cached per process when ``config.task`` names ``task`` (one of
    lrlab's, or a reference), loaded afresh for a `Task` object given directly."""
    if TASKS.get(config.task) is task or task.reference == config.task:
        return load_task_data(config.task, config.split, config.data_dir, config.validation)
    return task.load(
        config.split, Path(config.data_dir) if config.data_dir else None, config.validation
    )
