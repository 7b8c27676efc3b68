"""Build schedules from spec strings such as ``exponential(lr=0.2, rate=0.99, every=1)``."""

from __future__ import annotations

import dataclasses
import difflib
from typing import TypeVar

from lrlab.callspec import CallSpec, SpecError, parse_call
from lrlab.schedules.base import SCHEDULES, Schedule
from lrlab.validate import check_int

__all__ = ["SCHEDULES", "build", "missing_horizon", "parse"]

T = TypeVar("T")


def parse(spec: str, *, steps_per_epoch: int | None = None, horizon: int | None = None) -> Schedule:
    """Build the schedule a spec string describes.

    ``steps_per_epoch`` fills ``per_epoch(...)`` wrappers that do not give their own.
    ``horizon`` fills the horizon (`Schedule.horizon`: ``steps`` of ``cosine``,
    ``one_cycle``, ``linear``, ``polynomial``, ``wsd``) of the outermost schedule when the
    spec leaves it out: a run passes its own length, so ``cosine(lr=0.1)`` decays over the
    whole run (a nested schedule's horizon is not the run's, so it must be given).
    Raises `lrlab.callspec.SpecError` (a ``ValueError``) with a one-line message naming the
    unknown schedule or argument, or the invalid value, or an LR that overflows at step 0
    (one that overflows later is an error at that step: `Schedule.check_steps` finds it
    before training).

    >>> parse("exponential(lr=0.2, rate=0.99)")(1)
    0.198
    >>> parse("per_epoch(step(lr=0.1, drop=0.5, every=10))", steps_per_epoch=5)(50)
    0.05
    >>> parse("cosine(lr=0.1)", horizon=1000).spec()
    'cosine(lr=0.1, steps=1000)'
    """
    return build(parse_call(spec), steps_per_epoch=steps_per_epoch, horizon=horizon)


def build(
    call: CallSpec, *, steps_per_epoch: int | None = None, horizon: int | None = None
) -> Schedule:
    """Build a schedule from a parsed `CallSpec` (see `parse`)."""
    if steps_per_epoch is not None:
        check_int("parse", "steps_per_epoch", steps_per_epoch, minimum=1)
    cls = SCHEDULES.find(call.name)
    if cls is None:
        raise SpecError(
            f"unknown schedule {call.name!r}{_suggest(call.name, SCHEDULES)}; "
            f"known: {', '.join(SCHEDULES)}"
        )
    if horizon is not None:
        check_int("parse", "horizon", horizon, minimum=1)
    schedule = from_call(cls, call, steps_per_epoch=steps_per_epoch, horizon=horizon)
    try:
        schedule(0)  # an LR that overflows from the start is known now
    except ValueError as error:
        raise SpecError(str(error)) from None
    return schedule


def missing_horizon(cls: type, call: CallSpec) -> str | None:
    """The horizon field (`Schedule.horizon`) of ``cls`` that ``call`` leaves out, or ``None``
    (a schedule without a horizon, or a call that gives it, by name or by position)."""
    field = getattr(cls, "horizon", None)
    if field is None:
        return None
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    given = names[: len(call.args)] + list(call.kwargs)
    return field if field in names and field not in given else None


def from_call(
    cls: type[T],
    call: CallSpec,
    *,
    steps_per_epoch: int | None = None,
    horizon: int | None = None,
) -> T:
    """Instantiate the dataclass ``cls`` from ``call``'s arguments: positional ones in field
    order, keyword ones by name, nested calls built as schedules (without ``horizon``: it is
    the outermost schedule's). An unknown, repeated or missing argument, or a value ``cls``
    refuses, raises `SpecError` naming it."""
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    names = [f.name for f in fields]
    if len(call.args) > len(names):
        raise SpecError(
            f"{call.name}: takes at most {len(names)} arguments "
            f"({', '.join(names)}), got {len(call.args)}"
        )
    values: dict[str, object] = dict(zip(names, call.args, strict=False))
    for key, value in call.kwargs.items():
        if key not in names:
            raise SpecError(
                f"{call.name}: unknown argument {key!r}{_suggest(key, names)}; "
                f"expected one of {', '.join(names)}"
            )
        if key in values:
            raise SpecError(f"{call.name}: argument {key} given twice")
        values[key] = value
    # A schedule counting epochs (``per_epoch``, or a user's with that field) gets the run's.
    if "steps_per_epoch" in names and "steps_per_epoch" not in values and steps_per_epoch:
        values["steps_per_epoch"] = steps_per_epoch
    field = missing_horizon(cls, call) if horizon is not None else None
    if field is not None:
        values[field] = horizon
    for f in fields:
        if f.name not in values and f.default is dataclasses.MISSING:
            hint = " (or pass --steps-per-epoch)" if f.name == "steps_per_epoch" else ""
            if f.name == getattr(cls, "horizon", None):
                hint = " (a run fills it in only for the outermost schedule)"
            raise SpecError(f"{call.name}: missing argument {f.name}{hint}")
        if f.name in values:
            values[f.name] = _resolve(values[f.name], steps_per_epoch)
    try:
        return cls(**values)
    except ValueError as error:
        raise SpecError(str(error)) from None


def _resolve(value: object, steps_per_epoch: int | None) -> object:
    """Turn nested calls (also inside lists) into schedules."""
    if isinstance(value, CallSpec):
        return build(value, steps_per_epoch=steps_per_epoch)
    if isinstance(value, tuple):
        return tuple(_resolve(v, steps_per_epoch) for v in value)
    return value


def _suggest(word: str, known: object) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)  # type: ignore[call-overload]
    return f" (did you mean {close[0]!r}?)" if close else ""
