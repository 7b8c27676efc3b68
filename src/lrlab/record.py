"""The run record: a plain, versioned, serialisable description of one training run.

The engine produces it, the store keeps it, the report reads it; nothing else passes between
them. No torch import here, so reports and the store load fast.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

RECORD_VERSION = 3
# Version 1 records lack self_tuning, initial_lr and task_name; `RunRecord.from_dict` fills
# them in. These were the methods that set their own LR then. Version 2 records lack the
# validation metrics of each epoch (``None``) and their configs the ``validation`` flag
# (``False``: they trained on all the training data).
_V1_SELF_TUNING_OPTIMIZERS = ("prodigy", "dadapt-adam")

Status = Literal["done", "diverged", "failed"]
#: The data a metric is measured on: the test split (the training metric for a task without
#: one), the validation split, the training batches.
Split = Literal["test", "validation", "train"]
SPLITS: tuple[Split, ...] = ("test", "validation", "train")
#: What makes a method: every field of a run's config but its task, seed and LR (and where its
#: data lives, its device). Runs of one method differ only in seed and LR.
METHOD_FIELDS = (
    "optimizer",
    "optimizer_args",
    "schedule",
    "epochs",
    "steps",
    "batch_size",
    "model",
    "split",
    "sampling",
    "validation",
    "epoch_steps",
    "loss",
    "clip_norm",
    "decay_params",
    "accumulation_steps",
    "precision",
)
#: Seeds from here up are *fresh* seeds: a comparison re-runs each method's chosen setting on
#: them, and scores it there, never on the seeds that chose it (`lrlab.compare`).
HOLDOUT_SEEDS_FROM = 1000


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. Two equal configs give the same numbers on one device.

    ``lr`` is the optimizer's base LR; ``None`` takes the schedule's reference LR, or the
    optimizer's default (the seeds') when there is no schedule. ``schedule`` is a spec string:
    a schedule (``cosine(lr=0.1, steps=1000)``) or an adaptive controller
    (``lipschitz(bound=smooth)``). ``None`` for ``epochs``/``steps``/``batch_size``/``model``/
    ``split``/``sampling`` takes the task's default. ``validation``: the run holds its
    task's validation split out of training and measures it each epoch (``False``: it trains
    on the whole training data, as every run did before validation splits existed; such runs
    stored earlier read back with ``False``).

    The training options (`lrlab.engine.loop`): ``clip_norm`` clips the gradients' global
    norm before each update (``None``: no clipping); ``decay_params`` says which parameters
    the optimizer's ``weight_decay`` applies to (`lrlab.engine.groups.DECAY_PARAMS`);
    ``accumulation_steps`` micro-batches of ``batch_size`` make one update; ``precision`` is
    ``"fp32"`` or ``"bf16"`` (autocast around forward and loss). ``checkpoint_dir`` (with
    ``checkpoint_every`` updates or ``checkpoint_seconds``) writes mid-run checkpoints a
    killed run resumes from (`lrlab.engine.checkpoint`); like ``data_dir`` they say where,
    not what: they are no part of the run's `key`.
    """

    task: str
    optimizer: str = "sgd"
    lr: float | None = None
    schedule: str | None = None
    optimizer_args: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    steps: int | None = None
    batch_size: int | None = None
    seed: int = 0
    model: str | None = None
    split: str | None = None
    sampling: str | None = None
    device: str = "cpu"
    data_dir: str | None = None
    epoch_steps: int | None = None
    loss: str | None = None
    validation: bool = True
    clip_norm: float | None = None
    decay_params: str = "all"
    accumulation_steps: int = 1
    precision: str = "fp32"
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None
    checkpoint_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"run config: unknown keys {sorted(unknown)}")
        # A config written before validation splits existed trained on all the training data.
        return cls(**{"validation": False, **data})

    def method(self) -> dict[str, Any]:
        """The run's method: its `METHOD_FIELDS` (plain data)."""
        data = self.to_dict()
        return {name: data[name] for name in METHOD_FIELDS}

    def method_id(self) -> str:
        """A canonical string naming the run's task and method (what every run of one method
        on one task shares, whatever its seed and LR)."""
        return json.dumps([self.task, self.method()], sort_keys=True, separators=(",", ":"))

    @property
    def fresh_seed(self) -> bool:
        """Whether the run's seed is a fresh one (`HOLDOUT_SEEDS_FROM` and up)."""
        return self.seed >= HOLDOUT_SEEDS_FROM

    def key(self) -> str:
        """A canonical string identifying the run (everything but where the data lives).

        Fields added after a store was written are left out while they hold the value every
        earlier run had (`_ADDED_DEFAULTS`), so the runs already
        stored keep their keys and resume (a run with a validation split trains on other
        data, and its key says so); where a run keeps its checkpoints is left out always (the
        numbers do not depend on it)."""
        data = self.to_dict()
        for name in _WHERE:
            data.pop(name)
        for name, default in _ADDED_DEFAULTS.items():
            if data[name] == default:
                data.pop(name)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


# RunConfig fields that say where things live, not what the run computes: no part of its key.
_WHERE = ("data_dir", "checkpoint_dir", "checkpoint_every", "checkpoint_seconds")
# Fields added after stores were written, with the value every earlier run had, which leaves
# them out of a key (``validation``: runs then trained on all the training data).
_ADDED_DEFAULTS: dict[str, object] = {
    "epoch_steps": None,
    "loss": None,
    "validation": False,
    "clip_norm": None,
    "decay_params": "all",
    "accumulation_steps": 1,
    "precision": "fp32",
}


@dataclass(frozen=True)
class EpochStats:
    """Metrics at the end of an epoch (or of a final partial epoch).

    ``train_loss``/``train_metric`` are running means over the epoch's batches (as Keras
    reports them); ``test_*`` come from a pass over the held-out set in eval mode (``None``
    without one); ``val_*`` likewise from a validation split (``None`` without one, and in
    records written before validation splits existed). ``lr`` is the LR of the epoch's first
    step. Times are cumulative seconds; ``train_time`` leaves out evaluation.
    """

    epoch: int
    step: int
    lr: float
    train_loss: float | None
    train_metric: float | None
    test_loss: float | None
    test_metric: float | None
    train_time: float
    wall_time: float
    val_loss: float | None = None
    val_metric: float | None = None

    @property
    def metric(self) -> float | None:
        """The metric targets are judged on: test if there is a test set, else train."""
        return self.test_metric if self.test_loss is not None else self.train_metric

    def metric_on(self, split: Split) -> float | None:
        """The metric on ``split``: ``"test"`` (`metric`: the test set's, else training's),
        ``"validation"`` (``None`` without a validation split) or ``"train"`` (the running
        training metric)."""
        if split == "validation":
            return self.val_metric
        return self.train_metric if split == "train" else self.metric


_EPOCH_FIELDS = tuple(f.name for f in fields(EpochStats))


@dataclass
class RunRecord:
    """One run's outcome and traces. ``step_loss[i]`` is the loss of the batch at step ``i``
    (before its update), ``step_lr[i]`` the LR of that update (first param group).

    What a report needs to know about the method is written here by the engine, so the report
    reads records only: ``self_tuning`` (the method sets its own LR, LipschitzLR or an
    LR-free optimizer, so it is not tuned over an LR grid), ``initial_lr`` (the LR of the
    first update, what a method without a given LR effectively started from), ``task_name``
    (the task's own name, ``config.task`` being how to find it again: a name or a
    ``file.py:function`` reference). ``target`` is ``None`` for a task without one.
    """

    config: RunConfig
    status: Status
    metric: str
    target: float | None
    higher_is_better: bool
    steps_per_epoch: int
    steps: int = 0
    epochs: list[EpochStats] = field(default_factory=list)
    step_loss: list[float | None] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    wall_time: float = 0.0
    train_time: float = 0.0
    error: str | None = None
    diverged_at: int | None = None
    device: str = "cpu"
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    self_tuning: bool = False
    initial_lr: float | None = None
    task_name: str = ""
    version: int = RECORD_VERSION

    # -- derived results ---------------------------------------------------------------------

    def reached(self, value: float | None) -> bool:
        if value is None or self.target is None or not math.isfinite(value):
            return False
        return value >= self.target if self.higher_is_better else value <= self.target

    def _first_reaching(self, split: Split = "test") -> EpochStats | None:
        return next((e for e in self.epochs if self.reached(e.metric_on(split))), None)

    def steps_to_target_on(self, split: Split) -> int | None:
        """Steps done when the metric on ``split`` first met the target (at epoch ends)."""
        hit = self._first_reaching(split)
        return hit.step if hit else None

    def final_metric_on(self, split: Split) -> float | None:
        """The last epoch's metric on ``split`` (`EpochStats.metric_on`)."""
        return self.epochs[-1].metric_on(split) if self.epochs else None

    @property
    def steps_to_target(self) -> int | None:
        """Steps done when the metric first met the target (checked at epoch ends)."""
        return self.steps_to_target_on("test")

    @property
    def time_to_target(self) -> float | None:
        """Training seconds (evaluation excluded) when the metric first met the target."""
        hit = self._first_reaching()
        return hit.train_time if hit else None

    @property
    def final_metric(self) -> float | None:
        return self.final_metric_on("test")

    @property
    def final_val_metric(self) -> float | None:
        """The validation metric of the last epoch (``None`` without a validation split)."""
        return self.final_metric_on("validation")

    @property
    def has_validation(self) -> bool:
        """Whether the run measured a validation split."""
        return any(e.val_loss is not None for e in self.epochs)

    @property
    def best_metric(self) -> float | None:
        values = [e.metric for e in self.epochs if e.metric is not None and math.isfinite(e.metric)]
        if not values:
            return None
        return max(values) if self.higher_is_better else min(values)

    # -- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data; non-finite floats (a diverged loss) become ``None`` so it is valid JSON.

        The per-step traces are copied as flat lists (``asdict`` would deep-copy every float:
        most of the time of a long run's record)."""
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in ("step_loss", "step_lr"):
                data[item.name] = _finite_floats(value)
            elif item.name == "epochs":  # flat dataclasses of numbers: no deep copy needed
                data[item.name] = [
                    {f: finite(getattr(epoch, f)) for f in _EPOCH_FIELDS} for epoch in value
                ]
            else:  # finite rebuilds every dict and list; the leaves are immutable
                data[item.name] = finite(asdict(value) if isinstance(value, RunConfig) else value)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        version = data.get("version")
        if version not in (1, 2, RECORD_VERSION):
            raise ValueError(
                f"run record: version must be 1, 2 or {RECORD_VERSION}, got version={version!r}"
            )
        values = dict(data)
        values["config"] = RunConfig.from_dict(values["config"])
        if version == 1:
            config: RunConfig = values["config"]
            values["self_tuning"] = config.optimizer in _V1_SELF_TUNING_OPTIMIZERS or (
                config.schedule or ""
            ).startswith("lipschitz")
            values["initial_lr"] = values["step_lr"][0] if values.get("step_lr") else None
            values["task_name"] = config.task
        values["version"] = RECORD_VERSION
        values["epochs"] = [EpochStats(**e) for e in values["epochs"]]
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        return cls.from_dict(json.loads(text))


def _finite_floats(values: list[float]) -> list[float | None]:
    """A copy of a trace of floats with the non-finite ones as ``None``; one pass with
    ``sum`` first: a finite sum means every term is finite (an infinity or a NaN would carry
    into it), the common case, copied as is."""
    try:
        if math.isfinite(sum(values)):
            return list(values)
    except TypeError:  # a None already in the trace
        pass
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in values]


def finite(value: Any) -> Any:
    """``value`` with every non-finite float, however deeply nested, replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
