"""Keras 3 adapter: one lrlab schedule as a Keras ``LearningRateSchedule`` or as a callback.

Two ways to drive a Keras optimizer from the same `lrlab.schedules.Schedule` object that
`lrlab.ScheduleLR` drives a PyTorch optimizer with:

- `keras_schedule` (class ``KerasSchedule``): the exact per-iteration path. Pass it as an
  optimizer's ``learning_rate``; the optimizer calls it with its ``iterations`` counter before
  each update, so update ``k`` (counted from 0) uses ``schedule(k)``, and after ``N`` updates
  ``optimizer.learning_rate`` reads ``schedule(N)``. It serialises to ``{"spec": ...}``, so a
  compiled model saves and loads with its schedule.
- ``LRScheduleCallback``: writes ``schedule(t)`` into ``model.optimizer.learning_rate`` from a
  callback, either before every batch (``per="batch"``, ``t`` the global step
  ``epoch * steps_per_epoch + batch``) or at the start of every epoch (``per="epoch"``,
  ``t`` the epoch index from 0, like ``keras.callbacks.LearningRateScheduler``). Use it for
  schedules written per epoch (seed 000's ``LearningRateScheduler(step_decay)`` is
  ``LRScheduleCallback(Seed000(), per="epoch")``), or when the optimizer must keep a plain
  float LR.

Keras is imported on first use, never at import time: ``import lrlab.keras_adapter`` works without
Keras installed and does not fix the Keras backend; ``KerasSchedule`` and
``LRScheduleCallback`` are built (and registered with Keras) the first time they are asked
for. Set ``KERAS_BACKEND`` before that, as for any Keras program.

The schedule is evaluated in Python from a concrete step, so the step must be a real value
when the optimizer asks for the LR: the torch backend (tested) always gives one (on a GPU that
reads the iteration counter back to the host at each LR lookup); on the JAX and TensorFlow
backends (untested) compile with ``run_eagerly=True`` or use the callback. In a fresh process,
call `register` before ``keras.saving.load_model`` on a model saved with a ``KerasSchedule``.

Keras' own schedules compute in ``floatx`` (float32); this adapter computes in float64 and
rounds once to ``floatx``. The differences to Keras' built-in schedules are measured in
``tests/test_keras_adapter.py``.

Example::

    import keras
    from lrlab import Cosine
    from lrlab.keras_adapter import keras_schedule

    model.compile(
        optimizer=keras.optimizers.SGD(
            learning_rate=keras_schedule(Cosine(lr=0.1, steps=1000, warmup=50))
        ),
        loss="mse",
    )
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, NamedTuple

from lrlab.schedules import Schedule, parse
from lrlab.schedules.base import check_choice, check_int

if TYPE_CHECKING:
    import keras

    # Built on first access by the module __getattr__ below.
    KerasSchedule: type[Any]
    LRScheduleCallback: type[Any]
    LipschitzLRCallback: type[Any]

__all__ = [
    "KerasSchedule",
    "LRScheduleCallback",
    "LipschitzLRCallback",
    "keras_schedule",
    "register",
]

PER_CHOICES = ("batch", "epoch")


def keras_schedule(schedule: Schedule) -> keras.optimizers.schedules.LearningRateSchedule:
    """``schedule`` as a ``keras.optimizers.schedules.LearningRateSchedule`` (a ``KerasSchedule``).

    Calling it with ``step`` gives ``schedule(step)`` as a ``floatx`` scalar tensor; an optimizer
    calls it with its ``iterations`` (0 for the first update). ``get_config()`` is
    ``{"spec": schedule.spec()}`` and ``from_config`` parses it back, so
    ``keras.saving.serialize_keras_object`` / ``deserialize_keras_object`` and saving a
    compiled model round-trip; it is registered as ``"lrlab>KerasSchedule"``.

    Raises ``ValueError`` if ``schedule`` is not an lrlab `Schedule` (before importing Keras):

    >>> keras_schedule(0.1)
    Traceback (most recent call last):
    ...
    ValueError: keras_schedule: schedule must be an lrlab Schedule, got schedule=0.1
    """
    _check_schedule("keras_schedule", schedule)
    return _keras_classes().schedule(schedule)


def register() -> None:
    """Build ``KerasSchedule`` and ``LRScheduleCallback`` and register them with Keras.

    `keras_schedule` and the classes do this themselves; call it in a fresh process before
    ``keras.saving.load_model`` on a model saved with a ``KerasSchedule``, since Keras finds
    ``"lrlab>KerasSchedule"`` only once it is registered.
    """
    _keras_classes()


def __getattr__(name: str) -> Any:
    """Build the Keras classes on first access (imports Keras)."""
    if name == "KerasSchedule":
        return _keras_classes().schedule
    if name == "LRScheduleCallback":
        return _keras_classes().callback
    if name == "LipschitzLRCallback":
        return _lipschitz_callback()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_schedule(owner: str, schedule: object) -> Schedule:
    if not isinstance(schedule, Schedule):
        raise ValueError(f"{owner}: schedule must be an lrlab Schedule, got schedule={schedule!r}")
    return schedule


class _KerasClasses(NamedTuple):
    schedule: type[Any]
    callback: type[Any]


@functools.cache
def _keras_classes() -> _KerasClasses:
    """Define the Keras subclasses (once per process) and register them for deserialisation."""
    import keras

    def step_number(step: Any) -> float:
        """The step Keras passes (a scalar tensor, variable or number) as a Python float."""
        shape = tuple(getattr(step, "shape", ()))
        if shape:
            raise ValueError(f"KerasSchedule: step must be a scalar, got step of shape {shape}")
        try:
            return float(step)
        except TypeError as error:  # a traced step under jit has no value yet
            raise TypeError(
                "KerasSchedule: step has no concrete value (a traced step); use the torch "
                f"backend, compile with run_eagerly=True, or use LRScheduleCallback; got {step!r}"
            ) from error

    @keras.saving.register_keras_serializable(package="lrlab", name="KerasSchedule")
    class KerasSchedule(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
        """An lrlab schedule as a Keras ``LearningRateSchedule``: ``self(step)`` is
        ``schedule(step)`` (closed form, float64) rounded once to a ``floatx`` scalar tensor.

        A Keras optimizer calls it with its ``iterations`` before each update, so update ``k``
        (from 0) uses ``schedule(k)``. Config: ``{"spec": schedule.spec()}``.
        """

        def __init__(self, schedule: Schedule) -> None:
            self.schedule = _check_schedule("KerasSchedule", schedule)

        def __call__(self, step: Any) -> Any:
            value = self.schedule(step_number(step))
            return keras.ops.convert_to_tensor(value, dtype=keras.config.floatx())

        def get_config(self) -> dict[str, Any]:
            return {"spec": self.schedule.spec()}

        @classmethod
        def from_config(cls, config: dict[str, Any]) -> KerasSchedule:
            spec = config.get("spec") if isinstance(config, dict) else None
            if not isinstance(spec, str):
                raise ValueError(
                    f"KerasSchedule: config must hold a 'spec' string, got config={config!r}"
                )
            return cls(parse(spec))

        def __repr__(self) -> str:
            return f"KerasSchedule({self.schedule.spec()})"

    class LRScheduleCallback(keras.callbacks.Callback):  # type: ignore[misc]
        """Set ``model.optimizer.learning_rate`` from an lrlab schedule during ``fit``.

        - ``per="batch"``: before every batch, ``lr = schedule(epoch * steps_per_epoch +
          batch)``, the global step: ``optimizer.iterations`` in a fresh ``fit``, and counted
          from ``e * steps_per_epoch`` under ``fit(initial_epoch=e)``, as a resumed run
          expects. ``steps_per_epoch`` defaults to the batch count ``fit`` reports; give it
          when ``fit`` cannot tell (a generator without a length). Needs
          ``steps_per_execution=1``.
        - ``per="epoch"``: at the start of epoch ``e`` (from 0), ``lr = schedule(e)``, as
          ``keras.callbacks.LearningRateScheduler(lambda e: schedule(e))`` does; seed 000's
          ``LearningRateScheduler(step_decay)`` is ``LRScheduleCallback(Seed000(),
          per="epoch")``. ``steps_per_epoch`` does not apply and must be left out.

        ``history`` lists every LR set, in order, as the schedule's Python floats (the
        optimizer stores them in its ``floatx`` variable), across ``fit`` calls. The optimizer
        needs a float ``learning_rate``; one built with a ``LearningRateSchedule`` refuses to
        have it set (Keras raises ``TypeError``). For an exact per-iteration schedule with
        nothing to keep in step, prefer `keras_schedule`.
        """

        def __init__(
            self,
            schedule: Schedule,
            *,
            per: str,
            steps_per_epoch: int | None = None,
        ) -> None:
            super().__init__()
            owner = "LRScheduleCallback"
            self.schedule = _check_schedule(owner, schedule)
            self.per = check_choice(owner, "per", per, PER_CHOICES)
            if steps_per_epoch is not None:
                check_int(owner, "steps_per_epoch", steps_per_epoch, minimum=1)
                if self.per == "epoch":
                    raise ValueError(
                        f"{owner}: steps_per_epoch applies to per='batch' only, "
                        f"got steps_per_epoch={steps_per_epoch!r} with per='epoch'"
                    )
            self.steps_per_epoch = steps_per_epoch
            self.history: list[float] = []
            self._epoch = 0
            self._steps = 0

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            if self.per != "batch":
                return
            owner = "LRScheduleCallback"
            execution = getattr(self.model, "steps_per_execution", 1)
            if execution != 1:
                raise ValueError(
                    f"{owner}: per='batch' sets the LR once per batch call and needs "
                    f"steps_per_execution=1, got steps_per_execution={execution!r}; "
                    "use keras_schedule instead"
                )
            known = (self.params or {}).get("steps")
            if self.steps_per_epoch is None:
                if known is None:
                    raise ValueError(
                        f"{owner}: steps_per_epoch must be given when fit does not know the "
                        "number of batches per epoch, got steps_per_epoch=None"
                    )
                self._steps = int(known)
            else:
                if known is not None and int(known) != self.steps_per_epoch:
                    raise ValueError(
                        f"{owner}: steps_per_epoch must match the {known} batches per epoch "
                        f"fit runs, got steps_per_epoch={self.steps_per_epoch!r}"
                    )
                self._steps = self.steps_per_epoch

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._epoch = int(epoch)
            if self.per == "epoch":
                self._set(self._epoch)

        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if self.per == "batch":
                self._set(self._epoch * self._steps + int(batch))

        def _set(self, t: int) -> None:
            lr = self.schedule(t)
            self.model.optimizer.learning_rate = lr
            self.history.append(lr)

    # Plain qualified names, so pickle finds the classes through this module's __getattr__.
    KerasSchedule.__qualname__ = "KerasSchedule"
    LRScheduleCallback.__qualname__ = "LRScheduleCallback"
    return _KerasClasses(schedule=KerasSchedule, callback=LRScheduleCallback)


# -- LipschitzLR in Keras -----------------------------------------------------------------------


@functools.cache
def _lipschitz_callback() -> type[Any]:
    """Define ``LipschitzLRCallback`` (imports Keras and numpy)."""
    import keras
    import numpy as np

    # (Here, not at the top: `lrlab.lipschitz` imports torch, which a Keras schedule alone
    # does not need.)
    from lrlab.lipschitz.options import LipschitzOptions
    from lrlab.lipschitz.rule import A2, A4, COLUMNS, OUT2, Y2, M, Rule

    class LipschitzLRCallback(keras.callbacks.Callback):  # type: ignore[misc]
        """LipschitzLR for a Keras 3 model: at the start of every epoch (epoch 0 included, as
        the paper's authors ran it through ``LearningRateScheduler``), a fresh pass over ``x``
        in consecutive batches of ``batch_size`` through a sub-model that ends at the input of
        the model's last ``Dense`` layer (``head`` names another), then
        ``model.optimizer.learning_rate = scale / K``.

        The options are `lrlab.LipschitzLR`'s, one `LipschitzOptions` (or its fields by
        name: ``bound``, ``norm``, ``scale``, ``l2``, ``max_lr``, ``variant``, ``beta``,
        ``beta2``, ``initial_lr``, ``k1_start``, ``experimental``, ``head``), computed by the
        same code
        (`lrlab.lipschitz.rule`): the same weights and data give the same LR in both
        frameworks. ``bound="paper"`` passes in inference mode (``training=False``, the
        authors' ``K.function`` on ``model.layers[-2].output``); ``bound="smooth"`` in
        training mode, with the non-trainable variables (batch norm's moving statistics,
        dropout's seed state) put back afterwards. ``loss`` is the bound's loss kind:
        ``"cross_entropy"`` for a softmax head under ``categorical_crossentropy`` (Keras clips
        it; see `lrlab.tasks.task.keras_cross_entropy`), ``"bce"``, ``"mse"`` (the paper's MSE
        bound needs the targets ``y``). ``l2`` is lambda of a ``(lambda / 2) ||w||^2`` term:
        Keras' ``regularizers.L2(c)`` adds ``c ||w||^2``, i.e. ``l2 = 2 c``; Keras' optimizers'
        ``weight_decay`` is decoupled and does not count.

        Only the paper's per-epoch fresh pass is offered: a callback never sees a training
        batch's intermediate activations, which LipschitzLR's ``every="batch"`` and
        ``source="train"`` modes read. The optimizer needs a float ``learning_rate``.
        ``history`` lists each epoch's ``{"epoch", "kz", "K", ..., "lr"}``.
        """

        def __init__(
            self,
            x: Any,
            y: Any = None,
            *,
            batch_size: int = 32,
            options: LipschitzOptions | None = None,
            **changes: Any,
        ) -> None:
            """``changes``: `LipschitzOptions` fields by name, applied to ``options``
            (default: the defaults, with ``loss="cross_entropy"``)."""
            super().__init__()
            owner = "LipschitzLRCallback"
            options = LipschitzOptions.of(options or LipschitzOptions("cross_entropy"), **changes)
            if options.every != "epoch" or options.source != "eval":
                raise ValueError(
                    f"{owner}: only the paper's fresh pass at every epoch start runs in Keras "
                    f"(a callback never sees a training batch's activations), got "
                    f"every={options.every}, source={options.source}"
                )
            check_int(owner, "batch_size", batch_size, minimum=1)
            if x is None or len(x) == 0:
                raise ValueError(f"{owner}: x must hold at least one sample, got x={x!r}")
            loss, bound = options.loss, options.bound
            if bound == "paper" and loss == "mse" and y is None:
                raise ValueError(f"{owner}: the paper's MSE bound needs the targets, got y=None")
            self.options = options
            self.rule = Rule.of(options, options.l2 or 0.0)
            self.x, self.y, self.batch_size = x, y, batch_size
            self.norm, self.head_name = options.norm, options.head
            self.training = bound == "smooth"
            self.needs_outputs = bound == "paper" and loss == "mse"
            self.history: list[dict[str, float]] = []
            self._probe: Any = None
            self._classes = 0
            self._started = False

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            head = self._head()
            self._classes = int(head.units)
            outputs = [head.input, head.output] if self.needs_outputs else head.input
            inputs = self.model.inputs
            self._probe = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs)

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            record: dict[str, float] = {"epoch": float(epoch)}
            initial = None if self._started else self.rule.start()
            self._started = True
            if initial is not None:
                lr = initial
                record.update(K1=self.rule.k1, lr=lr)
            else:
                columns, spectral = self._pass()
                lr = self.rule.rate(
                    columns,
                    spectral,
                    classes=self._classes,
                    max_weight=self._max_weight(),
                    record=record,
                )
            self.model.optimizer.learning_rate = lr
            self.history.append(record)

        def _head(self) -> Any:
            layers = {layer.name: layer for layer in self.model.layers}
            if self.head_name is not None:
                if self.head_name not in layers:
                    raise ValueError(
                        f"LipschitzLRCallback: the model has no layer {self.head_name!r}; its "
                        f"layers are {', '.join(layers)}"
                    )
                head = layers[self.head_name]
            else:
                trainable = [layer for layer in self.model.layers if layer.trainable_weights]
                if not trainable:
                    raise ValueError("LipschitzLRCallback: the model has no trainable layer")
                head = trainable[-1]
            if not isinstance(head, keras.layers.Dense):
                raise ValueError(
                    f"LipschitzLRCallback: the head {head.name!r} is {type(head).__name__}, "
                    "not Dense; name the Dense head with head=..."
                )
            return head

        def _pass(self) -> tuple[list[list[float]], list[float] | None]:
            """Per-batch statistics of the head's input over ``x`` (and ``y``)."""
            saved = [np.array(v) for v in self.model.non_trainable_variables]
            columns: list[list[float]] = [[] for _ in range(COLUMNS)]
            spectral: list[float] | None = [] if self.norm == "spectral" else None
            try:
                for start in range(0, len(self.x), self.batch_size):
                    out = self._probe(
                        self.x[start : start + self.batch_size], training=self.training
                    )
                    head_input, head_output = out if self.needs_outputs else (out, None)
                    a = keras.ops.convert_to_numpy(head_input).astype(np.float64)
                    a = a.reshape(-1, a.shape[-1])
                    columns[M].append(float(a.shape[0]))
                    columns[A2].append(float(np.square(a).sum()))
                    columns[A4].append(float(np.square(np.square(a)).sum()))
                    if head_output is not None:
                        outputs = keras.ops.convert_to_numpy(head_output).astype(np.float64)
                        columns[OUT2].append(float(np.square(outputs).sum()))
                        y = np.asarray(self.y[start : start + self.batch_size], dtype=np.float64)
                        columns[Y2].append(float(np.square(y).sum()))
                    else:
                        columns[OUT2].append(0.0)
                        columns[Y2].append(0.0)
                    if spectral is not None:
                        augmented = np.concatenate([a, np.ones((a.shape[0], 1))], axis=1)
                        spectral.append(float(np.linalg.eigvalsh(augmented.T @ augmented)[-1]))
            finally:
                if self.training:
                    for variable, value in zip(
                        self.model.non_trainable_variables, saved, strict=True
                    ):
                        variable.assign(value)
            return columns, spectral

        def _max_weight(self) -> float:
            if self.rule.l2 == 0:
                return 0.0
            return max(float(np.linalg.norm(np.array(w))) for w in self.model.trainable_weights)

    LipschitzLRCallback.__qualname__ = "LipschitzLRCallback"
    return LipschitzLRCallback
