"""The schedule `lrlab.tune` tunes: a spec with its learning rate left free, and the same
schedule at any LR and any horizon.

The free LR is written ``?`` or left out: ``one_cycle``, ``one_cycle(lr=?)``,
``cosine(warmup=50)``, ``wsd(decay=0.2)``, ``cyclic(step_size=200)``; ``None``, ``"none"``,
``"constant"`` or ``"constant(lr=?)"`` is a constant LR. The LR tuned is the schedule's peak:
``lr`` of ``constant``, ``one_cycle``, ``cosine`` (with or without warmup) and ``wsd``, and
``max_lr`` of ``cyclic``, whose base ``lr`` is then ``max_lr / 4`` (Smith 2017, "Cyclical
Learning Rates for Training Neural Networks", section 3.3: a base 3-4x below the maximum;
`lrlab find` writes its cyclic spec so). Every other argument is kept as written.

`LRTemplate.spec_at` writes the schedule at an LR over a horizon. A horizon other than the
run's compresses the whole schedule in time, ``s'(t) = s(t * total / steps)``: every step
count (``steps``, a warmup or a decay given in steps, a cycle's ``step_size``) is scaled by
``steps / total`` and rounded, fractions of the horizon stay, and ``exp_range``'s per-step
``gamma`` becomes ``gamma ** (total / steps)``. A rung of a fraction of the run's budget so
runs the schedule's whole shape (its warmup, its peak, its decay to the end), which is what
the ranking of LRs at the end of a complete run depends on (see `lrlab.tuning`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from lrlab.callspec import CallSpec, SpecError, parse_call
from lrlab.controllers import CONTROLLERS
from lrlab.schedules import SCHEDULES, Schedule
from lrlab.schedules.parse import from_call
from lrlab.validate import ArgumentTypeError

#: The schedules whose peak LR `lrlab.tune` tunes, with the field that holds it.
TUNABLE = {"constant": "lr", "one_cycle": "lr", "cosine": "lr", "wsd": "lr", "cyclic": "max_lr"}
#: Fields holding a count of steps, scaled with the horizon (a ``wsd`` warmup or decay below 1
#: is a fraction of the horizon and stays).
_STEP_FIELDS = {
    "one_cycle": ("steps",),
    "cosine": ("steps", "warmup"),
    "wsd": ("steps", "warmup", "decay"),
    "cyclic": ("step_size", "step_size_down"),
    "constant": (),
}
_HORIZONS = {"one_cycle": "steps", "cosine": "steps", "wsd": "steps"}
#: The ratio of cyclic's base LR to its peak when the spec leaves the base out.
CYCLIC_BASE = 0.25
_SLOT = "__tuned_lr__"
_QUESTION = re.compile(r"(?<=[(,=])(\s*)\?(?=\s*[,)])")


@dataclass(frozen=True)
class LRTemplate:
    """A schedule with its peak LR free: the schedule's ``name`` (``constant`` for a constant
    LR), the ``slot`` that holds the LR tuned, the other ``arguments`` as written, and the
    ``text`` the user gave."""

    name: str
    slot: str
    arguments: tuple[tuple[str, object], ...]
    text: str

    @property
    def constant(self) -> bool:
        return self.name == "constant"

    def values(self, lr: float, steps: int, total: int) -> dict[str, object]:
        """The schedule's arguments at peak ``lr`` over a horizon of ``steps`` of a run of
        ``total`` steps (see the module: counts of steps scale by ``steps / total``)."""
        factor = steps / total
        values = dict(self.arguments)
        for name in _STEP_FIELDS[self.name]:
            value = values.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                if self.name == "wsd" and name != "steps" and 0 <= value < 1:
                    continue  # a fraction of the horizon
                values[name] = max(1, round(value * factor)) if value > 0 else value
        horizon = _HORIZONS.get(self.name)
        if horizon is not None and horizon not in values:
            values[horizon] = steps
        if self.name == "cyclic":
            if values.get("mode") == "exp_range" and "gamma" in values:
                values["gamma"] = float(values["gamma"]) ** (1.0 / factor)  # type: ignore[arg-type]
            values.setdefault("lr", lr * CYCLIC_BASE)
        values[self.slot] = lr
        return values

    def schedule_at(self, lr: float, steps: int, total: int) -> Schedule:
        """The `Schedule` at peak ``lr`` over ``steps`` of a run of ``total`` steps; a
        `lrlab.callspec.SpecError` when that schedule is invalid (a rung too short for its
        phases)."""
        cls = SCHEDULES[self.name]
        call = CallSpec(self.name, (), self.values(lr, steps, total))
        return from_call(cls, call)

    def spec_at(self, lr: float, steps: int, total: int) -> str | None:
        """The spec a run at peak ``lr`` over ``steps`` of a run of ``total`` steps records
        (``None`` for a constant LR: the run's ``lr`` is the LR)."""
        if self.constant:
            return None
        return self.schedule_at(lr, steps, total).spec()

    def paste(self, lr: float, total: int) -> str:
        """The spec to paste, at ``lr`` over the whole run: ``constant(lr=0.0123)``,
        ``one_cycle(lr=0.0123, steps=640)``."""
        return self.schedule_at(lr, total, total).spec()


def parse_template(schedule: object) -> LRTemplate:
    """The `LRTemplate` of ``schedule``: ``None`` or a spec string whose LR is ``?`` or left
    out (see the module). A one-line ``ValueError`` names what cannot be tuned: an adaptive
    controller (it sets its own LR), a schedule other than `TUNABLE`'s, a spec that fixes
    the LR, a ``?`` anywhere but the LR, a cyclic base ``lr`` given as a number.

    >>> parse_template("one_cycle(pct_start=0.25)").paste(0.01, 100)
    'one_cycle(lr=0.01, steps=100, pct_start=0.25)'
    >>> parse_template(None).paste(0.5, 100)
    'constant(lr=0.5)'
    >>> parse_template("cyclic(max_lr=?, step_size=20)").spec_at(0.4, 50, 100)
    'cyclic(lr=0.1, max_lr=0.4, step_size=10)'
    """
    if schedule is None:
        return LRTemplate("constant", "lr", (), "constant")
    if isinstance(schedule, Schedule):
        raise ValueError(
            f"schedule must be a spec with its LR left out or ?, e.g. "
            f"'{schedule.name}(lr=?)', got a Schedule object with its LR set: schedule={schedule}"
        )
    if not isinstance(schedule, str):
        raise ArgumentTypeError(
            f"schedule must be a spec string with its LR left out or None, got "
            f"schedule={schedule!r}"
        )
    text = schedule.strip()
    if text.lower() in ("", "none", "constant"):
        if not text:
            raise ValueError(
                f"schedule must be a spec, none or constant, got schedule={schedule!r}"
            )
        return LRTemplate("constant", "lr", (), "constant")
    call = parse_call(_QUESTION.sub(lambda m: m.group(1) + _SLOT, text))
    entry = CONTROLLERS.find(call.name)
    if entry is not None:
        what = "sets its own LR" if not entry.takes_lr else "is an LR controller, not a schedule"
        raise ValueError(
            f"schedule must be a schedule with a free LR ({', '.join(TUNABLE)}); "
            f"{call.name} {what}, got schedule={text!r}"
        )
    if call.name not in TUNABLE:
        if call.name not in SCHEDULES:
            raise SpecError(f"unknown schedule {call.name!r}; tunable: {', '.join(TUNABLE)}")
        raise ValueError(
            f"schedule must be one of {', '.join(TUNABLE)} (their peak LR is tuned), got "
            f"schedule={text!r}"
        )
    cls = SCHEDULES[call.name]
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    if len(call.args) > len(names):
        raise SpecError(f"{call.name}: takes at most {len(names)} arguments, got {len(call.args)}")
    given: dict[str, object] = dict(zip(names, call.args, strict=False))
    for key, value in call.kwargs.items():
        if key not in names:
            raise SpecError(
                f"{call.name}: unknown argument {key!r}; expected one of {', '.join(names)}"
            )
        if key in given:
            raise SpecError(f"{call.name}: argument {key} given twice")
        given[key] = value
    slot = TUNABLE[call.name]
    for key, value in given.items():
        if value == _SLOT and key != slot:
            raise ValueError(
                f"schedule: only {slot} can be ? in {call.name} (its peak LR), got {key}=? in "
                f"schedule={text!r}"
            )
    if slot in given and given[slot] != _SLOT:
        raise ValueError(
            f"schedule must leave its {slot} out (or write {slot}=?) for tune to choose it; "
            f"got {slot}={given[slot]!r} in schedule={text!r}"
        )
    if call.name == "cyclic" and "lr" in given:
        raise ValueError(
            f"schedule: cyclic's base lr is set by tune to max_lr * {CYCLIC_BASE:g} (Smith's "
            f"advice); leave it out, got lr={given['lr']!r} in schedule={text!r}"
        )
    arguments = tuple((k, v) for k, v in given.items() if k != slot)
    template = LRTemplate(call.name, slot, arguments, text)
    template.schedule_at(1e-3, 1000, 1000)  # every other argument is checked now
    return template
