"""Argument checks shared by every part of lrlab: schedules, optimizers, the engine, LipschitzLR,
sweeps and reproductions. One module, so they agree (an LR is a number in ``(0, MAX_LR]``
everywhere).

Each check raises at once, with ONE line naming the owner (the function or class being
configured), the parameter and the value it got::

    cosine: steps must be > 0, got steps=-3

A value of the wrong type raises `ArgumentTypeError`, a ``TypeError`` that is also a
``ValueError``: callers who test for either get it, and the CLI's one-line error handler
(which catches ``ValueError``) reports it like every other bad value. No torch import here.

Paths lrlab will write (`check_output_path`) or read (`check_input_dir`) are checked the same
way, before anything runs: a parent that is a file, a folder where a file belongs (or the
reverse), a place the user may not write, something that is not a plain file (a FIFO, a
device, a socket: only looked at, never opened, so a FIFO cannot block), a path inside the
system's folders (``/dev``, ``/proc``, ``/sys``). Nothing is created by a check.

Counts are bounded before any work starts (`MAX_STEPS`, `MAX_SEEDS`, `MAX_RUNS`,
`MAX_REPEATS`, `MAX_ACCUMULATION`, `MAX_WORKERS`), so no argument asks for work or memory
without end.

Keyword arguments for a class (an optimizer's ``optimizer_args``) are checked against its
signature and the types of its defaults (`check_kwargs`).
"""

from __future__ import annotations

import inspect
import math
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "MAX_ACCUMULATION",
    "MAX_INT",
    "MAX_LR",
    "MAX_REPEATS",
    "MAX_RUNS",
    "MAX_SEEDS",
    "MAX_STEPS",
    "MAX_WORKERS",
    "ArgumentTypeError",
    "check_bool",
    "check_choice",
    "check_increasing",
    "check_input_dir",
    "check_instance",
    "check_int",
    "check_kwargs",
    "check_lr",
    "check_number",
    "check_optional_lr",
    "check_output_path",
    "check_plain",
    "check_state",
    "check_str",
    "fail",
]

#: Integers larger than this are refused (seeds, step counts): torch and numpy hold 64 bits.
MAX_INT = 2**63 - 1

#: The most seeds a comparison or a reproduction runs per method.
MAX_SEEDS = 10_000

#: The most optimizer steps a run, a range test or a schedule preview takes (a run's record
#: keeps every step's loss and LR: ten million steps are about 0.5 GB of record).
MAX_STEPS = 10_000_000

#: The most runs one comparison holds (methods x LRs x seeds).
MAX_RUNS = 1_000_000

#: The most repeats of a range test (each one a whole test from the same weights).
MAX_REPEATS = 1_000

#: The most batches a range test accumulates into one step.
MAX_ACCUMULATION = 10_000

#: The most worker processes (or torch threads) lrlab starts, far beyond any machine's cores.
MAX_WORKERS = 4096

#: Folders of the system, never a place for lrlab's files (their entries are devices and
#: kernel settings, some of them writable plain files).
SYSTEM_FOLDERS = (Path("/dev"), Path("/proc"), Path("/sys"))

#: The largest learning rate lrlab takes: float32's largest number. Torch cannot apply a larger
#: LR to float32 weights (it cannot convert the step size), so a larger one is never meaningful.
MAX_LR = 3.4028234663852886e38


_FLOAT_MAX = 1.7976931348623157e308


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a string where a number belongs, a float where an
    integer does). Both a ``TypeError`` and a ``ValueError``, like numpy's ``AxisError``."""


def _prefix(owner: str) -> str:
    return f"{owner}: " if owner else ""


def _show(value: object, width: int = 60) -> str:
    """``repr(value)``, cut to ``width`` characters (a path is shown whole, up to 500)."""
    if isinstance(value, os.PathLike):
        value, width = os.fspath(value), 500
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def fail(owner: str, name: str, value: object, requirement: str) -> ValueError:
    """The error for ``name=value`` not meeting ``requirement`` (returned, for ``raise``)."""
    return ValueError(f"{_prefix(owner)}{name} must be {requirement}, got {name}={_show(value)}")


def _type_fail(owner: str, name: str, value: object, requirement: str) -> ArgumentTypeError:
    return ArgumentTypeError(
        f"{_prefix(owner)}{name} must be {requirement}, got {name}={_show(value)}"
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_number(
    owner: str,
    name: str,
    value: object,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
) -> float:
    """Check that ``value`` is a finite real number in range; return it as a float.

    >>> check_number("adam", "lr", 1e-3, positive=True)
    0.001
    >>> check_number("adam", "lr", 0, positive=True)
    Traceback (most recent call last):
    ...
    ValueError: adam: lr must be > 0, got lr=0
    """
    if not _is_number(value):
        raise _type_fail(owner, name, value, "a finite number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond a double's range
        raise fail(owner, name, value, f"a finite number (|x| <= {_FLOAT_MAX:g})") from None
    if not math.isfinite(number):
        raise fail(owner, name, value, "a finite number")
    if positive and not number > 0:
        raise fail(owner, name, value, "> 0")
    if nonnegative and not number >= 0:
        raise fail(owner, name, value, ">= 0")
    if minimum is not None and number < minimum:
        raise fail(owner, name, value, f">= {minimum:g}")
    if maximum is not None and number > maximum:
        raise fail(owner, name, value, f"<= {maximum:g}")
    if below is not None and not number < below:
        raise fail(owner, name, value, f"< {below:g}")
    return number


def check_int(owner: str, name: str, value: object, *, minimum: int, maximum: int = MAX_INT) -> int:
    """Check that ``value`` is an integer in ``[minimum, maximum]`` (a float with an integral
    value is not an integer, nor is ``True``).

    >>> check_int("run", "seed", 10**30, minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: run: seed must be <= 9223372036854775807, got seed=1000000000000000000000000000000
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise _type_fail(owner, name, value, f"an integer >= {minimum}")
    if value < minimum:
        raise fail(owner, name, value, f">= {minimum}")
    if value > maximum:
        raise fail(owner, name, value, f"<= {maximum}")
    return value


def check_lr(owner: str, value: object, name: str = "lr") -> float:
    """A learning rate: a number > 0 and at most `MAX_LR`.

    >>> check_lr("sgd", 1e39)
    Traceback (most recent call last):
    ...
    ValueError: sgd: lr must be <= 3.40282e+38, got lr=1e+39
    """
    return check_number(owner, name, value, positive=True, maximum=MAX_LR)


def check_optional_lr(owner: str, value: object, name: str = "lr") -> float | None:
    """A learning rate or ``None`` (the default)."""
    return None if value is None else check_lr(owner, value, name)


def check_increasing(owner: str, name: str, values: Sequence[object]) -> tuple[float, ...]:
    """Check a sequence of finite numbers >= 0, strictly increasing; return it as a tuple."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise _type_fail(owner, name, values, "a list of numbers")
    numbers = tuple(
        check_number(owner, f"{name}[{i}]", v, nonnegative=True) for i, v in enumerate(values)
    )
    for i in range(1, len(numbers)):
        if not numbers[i] > numbers[i - 1]:
            raise fail(owner, name, list(values), "strictly increasing")
    return numbers


def check_bool(owner: str, name: str, value: object) -> bool:
    """Check that ``value`` is ``True`` or ``False`` (not merely truthy)."""
    if not isinstance(value, bool):
        raise _type_fail(owner, name, value, "true or false")
    return value


def check_choice(owner: str, name: str, value: object, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise fail(owner, name, value, "one of " + ", ".join(choices))
    return value


def check_str(owner: str, name: str, value: object, *, empty: bool = False) -> str:
    """Check that ``value`` is a string (a non-empty one unless ``empty``)."""
    if not isinstance(value, str):
        raise _type_fail(owner, name, value, "a string")
    if not empty and not value.strip():
        raise fail(owner, name, value, "a non-empty string")
    return value


def _path(owner: str, name: str, value: object) -> tuple[Path, Path]:
    """``value`` as a path, ``~`` expanded, and as given (to show, whole, in messages)."""
    if not isinstance(value, str | os.PathLike) or isinstance(value, bytes):
        raise _type_fail(owner, name, value, "a path")
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip():
        raise fail(owner, name, value, "a non-empty path")
    if "\0" in text:
        raise fail(owner, name, value, "a path without NUL characters")
    return Path(text).expanduser(), Path(text)


def _kind(path: Path) -> str | None:
    """What ``path`` is when it is neither a plain file nor a folder (a FIFO, a device...),
    from ``stat`` alone: nothing is opened, so a FIFO cannot block."""
    mode = os.stat(path).st_mode
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "not a plain file"


def _system_folder(path: Path) -> Path | None:
    """The system folder (`SYSTEM_FOLDERS`) ``path`` lies in, links resolved, or ``None``."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a loop of links: judged as written
        resolved = path.absolute()
    return next((f for f in SYSTEM_FOLDERS if resolved.is_relative_to(f)), None)


def _probe(owner: str, name: str, value: object, path: Path) -> bool:
    """Whether ``path`` exists; an error naming it when the system cannot even tell (a name
    too long, a parent that may not be searched)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as error:
        raise fail(owner, name, value, f"a usable path ({error.strerror})") from None
    return True


def check_output_path(owner: str, name: str, value: object, *, directory: bool = False) -> Path:
    """Check a path lrlab will write: a file (a folder when ``directory``), existing or not.

    Refused: a folder where a file belongs or the reverse (a file's path ending in ``/``
    included), a path below a file, something that is not a plain file or folder (a FIFO, a
    device, a socket), a path inside ``/dev``, ``/proc`` or ``/sys``, and a place this process
    may not write (the file itself when it exists, else the nearest existing folder above it,
    where it would be created). Nothing is created or opened here.

    >>> check_output_path("", "json", "/tmp/a/")
    Traceback (most recent call last):
    ...
    ValueError: json must be a file, not a folder (it ends with '/'), got json='/tmp/a/'
    >>> check_output_path("", "plot", "/dev/null")
    Traceback (most recent call last):
    ...
    ValueError: plot must be a plain file, not a character device, got plot='/dev/null'
    """
    if not directory and isinstance(value, str) and value.endswith(("/", os.sep)):
        raise fail(owner, name, value, f"a file, not a folder (it ends with {value[-1]!r})")
    path, value = _path(owner, name, value)
    what = "folder" if directory else "file"
    exists = _probe(owner, name, value, path)
    if exists:
        kind = _kind(path)
        if kind is not None:
            raise fail(owner, name, value, f"a plain {what}, not {kind}")
        if directory and not path.is_dir():
            raise fail(owner, name, value, "a folder, not a file")
        if not directory and path.is_dir():
            raise fail(owner, name, value, "a file, not a folder")
    system = _system_folder(path)
    if system is not None:
        raise fail(owner, name, value, f"a {what} outside {system} (a folder of the system)")
    if exists:
        if not os.access(path, os.W_OK | (os.X_OK if directory else 0)):
            raise fail(owner, name, value, f"a {what} this process may write (permission denied)")
        return path
    parent = path.absolute().parent
    while not _probe(owner, name, value, parent):
        parent = parent.parent
    if not parent.is_dir():
        raise fail(owner, name, value, f"a path in a folder ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise fail(
            owner, name, value, f"a {what} this process may create ({parent} is not writable)"
        )
    return path


def check_input_dir(owner: str, name: str, value: object) -> Path:
    """Check a folder lrlab will read from: when it exists it must be a folder this process
    may list (a missing one is the caller's to report, naming what it looked for)."""
    path, value = _path(owner, name, value)
    if _probe(owner, name, value, path):
        if not path.is_dir():
            raise fail(owner, name, value, f"a folder, not {_kind(path) or 'a file'}")
        if not os.access(path, os.R_OK | os.X_OK):
            raise fail(owner, name, value, "a folder this process may read (permission denied)")
    return path


def check_kwargs(
    owner: str,
    target: Callable[..., object],
    kwargs: object,
    *,
    name: str = "kwargs",
    reserved: Mapping[str, str] | None = None,
    defaults: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Check keyword arguments meant for ``target`` (a class or function) against its
    signature; return them, lists given for tuples turned into tuples.

    Refused, one line each: a name ``target`` does not take (unless it takes ``**kwargs``), a
    name in ``reserved`` (mapped to why: lrlab sets it), and a value whose type does not fit
    the parameter, judged by its default (``defaults`` first, then the signature's) and its
    annotation: ``True``/``False`` for a flag, a finite number for a number (an integer where
    only an integer fits; an infinite number only where the default is), a list of as many
    numbers for a tuple default such as Adam's ``betas``, ``None`` where the default or the
    annotation allows it. A parameter whose type cannot be told is not checked.

    >>> import torch
    >>> check_kwargs("optimizer 'adam'", torch.optim.Adam, {"betas": [0.9, 0.99]})
    {'betas': (0.9, 0.99)}
    >>> check_kwargs("optimizer 'adam'", torch.optim.Adam, {"betas": [0.9]})
    Traceback (most recent call last):
    ...
    ValueError: optimizer 'adam': betas must be a list of 2 numbers, got betas=[0.9]
    """
    if not isinstance(kwargs, Mapping):
        raise _type_fail("", name, kwargs, "a mapping of argument names to values")
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # no signature to check against
        return dict(kwargs)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    named = {
        key: p
        for key, p in parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    reserved = reserved or {}
    result: dict[str, object] = {}
    for key, value in kwargs.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise _type_fail(owner, f"{name} keys", key, "argument names")
        if key in reserved:
            raise ValueError(
                f"{owner}: {key} cannot be in {name} ({reserved[key]}), got {key}={_show(value)}"
            )
        parameter = named.get(key)
        if parameter is None:
            if takes_any:
                result[key] = value
                continue
            known = ", ".join(k for k in named if k not in reserved) or "none"
            raise ValueError(
                f"{owner} takes no argument {key!r} (it takes {known}), got {key}={_show(value)}"
            )
        default = (defaults or {}).get(key, parameter.default)
        result[key] = _check_like(owner, key, value, default, _annotation(parameter.annotation))
    return result


def _annotation(annotation: object) -> set[str]:
    """The names in a parameter's annotation (``"float | None"`` -> ``{"float", "None"}``);
    empty when there is none."""
    if annotation is inspect.Parameter.empty:
        return set()
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if not isinstance(annotation, str) and not isinstance(annotation, type):
        text = str(annotation)
    return set(re.findall(r"[A-Za-z_]\w*", text))


def _check_like(owner: str, key: str, value: object, default: object, names: set[str]) -> object:
    """``value`` checked against what a parameter with this default and annotation takes."""
    if isinstance(default, tuple) and default and all(_is_number(v) for v in default):
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise _type_fail(owner, key, value, f"a list of {len(default)} numbers")
        if len(value) != len(default):
            raise fail(owner, key, list(value), f"a list of {len(default)} numbers")
        return tuple(check_number(owner, f"{key}[{i}]", v) for i, v in enumerate(value))
    empty = default is inspect.Parameter.empty
    takes_none = default is None or "None" in names or "Optional" in names
    takes_bool = isinstance(default, bool) or "bool" in names
    takes_str = isinstance(default, str) or "str" in names
    plain_int = _is_number(default) and isinstance(default, int)
    takes_float = isinstance(default, float) or "float" in names or (plain_int and not names)
    takes_int = plain_int or takes_float or "int" in names
    if not (takes_bool or takes_str or takes_int) or (empty and not names):
        return value  # a type that cannot be told (a tensor, a callable, no default at all)
    if value is None and takes_none:
        return value
    if isinstance(value, bool):
        if takes_bool:
            return value
    elif isinstance(value, int) and takes_int:
        check_number(owner, key, value)
        return value
    elif isinstance(value, float) and takes_float:
        if isinstance(default, float) and not math.isfinite(default) and value == default:
            return value  # an infinite default (Prodigy's growth_rate=inf) may be given back
        return check_number(owner, key, value)
    elif isinstance(value, str) and takes_str:
        return value
    kinds = [
        *(["true or false"] if takes_bool else []),
        *(["a finite number" if takes_float else "an integer"] if takes_int else []),
        *(["a string"] if takes_str else []),
        *(["None"] if takes_none else []),
    ]
    raise _type_fail(owner, key, value, " or ".join(kinds))


def check_plain(owner: str, name: str, value: object) -> object:
    """Check that ``value`` is plain data a run config can store: ``None``, true/false,
    numbers, strings, and lists, tuples and string-keyed dicts of them (JSON, in short).

    >>> check_plain("run", "optimizer_args", {"betas": (0.9, 0.99)})
    {'betas': (0.9, 0.99)}
    """
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, bool | int | float | str):
            continue
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict) and all(isinstance(k, str) for k in item):
            stack.extend(item.values())
        else:
            raise _type_fail(owner, name, value, "plain data (numbers, true/false, strings, lists)")
    return value


def check_instance(owner: str, name: str, value: object, cls: type, what: str) -> None:
    """Check that ``value`` is a ``cls`` (``what`` says it in words: "a torch Optimizer")."""
    if not isinstance(value, cls):
        raise _type_fail(owner, name, value, what)


def check_state(owner: str, state: object, keys: Sequence[str]) -> Mapping[str, object]:
    """Check that a ``state_dict`` to load is a mapping holding ``keys``.

    >>> check_state("ScheduleLR", {"last_epoch": 3}, ("last_epoch", "base_lrs"))
    Traceback (most recent call last):
    ...
    ValueError: ScheduleLR: state_dict must hold last_epoch, base_lrs, got one without base_lrs
    """
    if not isinstance(state, Mapping):
        raise _type_fail(owner, "state_dict", state, "a dict from state_dict()")
    missing = [key for key in keys if key not in state]
    if missing:
        raise ValueError(
            f"{owner}: state_dict must hold {', '.join(keys)}, got one without {', '.join(missing)}"
        )
    return state
