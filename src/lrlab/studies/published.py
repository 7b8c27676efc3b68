"""What a study's source published, as data: ``lrlab/studies/data/NAME.toml``.

A study module holds its plan and its section (the verdict logic and the report's words); the
numbers its source published live in the data file beside it, with their units, tolerances,
the source's wording and where each number comes from. The files are package data (declared
in pyproject.toml) read through `importlib.resources`, so an installed lrlab finds them
wherever it is installed, and no study reads a path relative to the repository.

A file is TOML (Python's `tomllib`). Values are reached by dotted paths (``"published.A.loss"``:
table ``published``, table ``A``, key ``loss``) through getters that check the type, so a
malformed file fails at import with one line naming the file, the path and the value. A
*quantity* is a table with a ``value`` (a number), its ``unit``, the source's ``wording``, and
optionally the ``tolerance`` (the half-width, in the same unit, of the neighbourhood within
which lrlab's value counts as near) and ``decimals`` (as the source printed it):

.. code-block:: toml

    [published.A.loss]
    value = 0.4630
    decimals = 4
    tolerance = 0.05
    unit = "categorical cross-entropy, the last epoch's running mean"
    wording = "loss: 0.4630 - acc: 0.6467"
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

PACKAGE = "lrlab.studies"
FOLDER = "data"


@dataclass(frozen=True)
class Quantity:
    """One number a source published: ``value`` in ``unit``; ``wording``, where and how the
    source says it; ``tolerance``, the half-width of its neighbourhood in the same unit
    (``None`` where a study does not judge nearness); ``decimals``, the places the source
    printed (``None``: not printed at a fixed precision)."""

    value: float
    unit: str
    wording: str
    tolerance: float | None = None
    decimals: int | None = None


class Source:
    """A study's data file, read: typed getters on dotted paths (`Quantity`, numbers, text)."""

    def __init__(self, name: str, data: Mapping[str, Any]) -> None:
        self.name = name
        self.data = data

    def _fail(self, path: str, what: str, value: object) -> ValueError:
        return ValueError(f"studies data {self.name}.toml: {path} must be {what}, got {value!r}")

    def get(self, path: str) -> Any:
        """The raw value at ``path``; a ``ValueError`` naming the path when it is absent."""
        value: Any = self.data
        for i, key in enumerate(path.split(".")):
            if not isinstance(value, Mapping) or key not in value:
                where = ".".join(path.split(".")[:i]) or "the file"
                raise ValueError(
                    f"studies data {self.name}.toml: no {path!r} ({where} lacks {key!r})"
                )
            value = value[key]
        return value

    def keys(self, path: str) -> list[str]:
        """The keys of the table at ``path``, in the file's order."""
        value = self.get(path)
        if not isinstance(value, Mapping):
            raise self._fail(path, "a table", value)
        return list(value)

    def number(self, path: str) -> float:
        value = self.get(path)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self._fail(path, "a finite number", value)
        return float(value)

    def integer(self, path: str) -> int:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(path, "an integer", value)
        return value

    def numbers(self, path: str) -> tuple[float, ...]:
        """A non-empty list of finite numbers."""
        value = self.get(path)
        if (
            not isinstance(value, list)
            or not value
            or any(
                isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
                for v in value
            )
        ):
            raise self._fail(path, "a non-empty list of finite numbers", value)
        return tuple(float(v) for v in value)

    def strings(self, path: str) -> tuple[str, ...]:
        """A non-empty list of non-empty strings."""
        value = self.get(path)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise self._fail(path, "a non-empty list of strings", value)
        return tuple(value)

    def text(self, path: str) -> str:
        value = self.get(path)
        if not isinstance(value, str) or not value.strip():
            raise self._fail(path, "a non-empty string", value)
        return value

    def texts(self, path: str) -> dict[str, str]:
        """A table of strings, in the file's order."""
        return {key: self.text(f"{path}.{key}") for key in self.keys(path)}

    def rows(self, path: str, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
        """An array of tables, each with a string under every one of ``columns``."""
        value = self.get(path)
        if not isinstance(value, list) or not value:
            raise self._fail(path, "a non-empty array of tables", value)
        result = []
        for i, row in enumerate(value):
            if not isinstance(row, Mapping) or set(row) != set(columns):
                raise self._fail(f"{path}[{i}]", f"a table of {', '.join(columns)}", row)
            if not all(isinstance(row[c], str) and row[c].strip() for c in columns):
                raise self._fail(f"{path}[{i}]", "strings", row)
            result.append(tuple(row[c] for c in columns))
        return result

    def quantity(self, path: str) -> Quantity:
        """The `Quantity` at ``path``: ``value``, ``unit``, ``wording``, optional
        ``tolerance`` (finite, >= 0) and ``decimals`` (an integer >= 0)."""
        keys = set(self.keys(path))
        extra = keys - {"value", "unit", "wording", "tolerance", "decimals"}
        if extra:
            raise self._fail(path, "value, unit, wording, tolerance, decimals", sorted(extra))
        tolerance = self.number(f"{path}.tolerance") if "tolerance" in keys else None
        if tolerance is not None and tolerance < 0:
            raise self._fail(f"{path}.tolerance", ">= 0", tolerance)
        decimals = self.integer(f"{path}.decimals") if "decimals" in keys else None
        if decimals is not None and decimals < 0:
            raise self._fail(f"{path}.decimals", ">= 0", decimals)
        return Quantity(
            self.number(f"{path}.value"),
            self.text(f"{path}.unit"),
            self.text(f"{path}.wording"),
            tolerance,
            decimals,
        )


def names() -> list[str]:
    """Every study data file, by name (``seed-000`` for ``data/seed-000.toml``)."""
    folder = resources.files(PACKAGE).joinpath(FOLDER)
    if not folder.is_dir():
        return []
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


@functools.cache
def load(name: str) -> Source:
    """The data file ``data/NAME.toml`` of package `lrlab.studies`, parsed (once per process).

    >>> load("seed-002").text("printed.lines.0")
    'After 0 epoch,w is 2.600000,loss is 36.000000,lr is 0.200000'
    """
    resource = resources.files(PACKAGE).joinpath(FOLDER).joinpath(f"{name}.toml")
    if not resource.is_file():
        known = ", ".join(names()) or "none (is lrlab installed with its package data?)"
        raise ValueError(f"no studies data file {name!r}; there are: {known}")
    try:
        data = tomllib.loads(resource.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"studies data {name}.toml is not valid TOML: {error}") from None
    source = Source(name, data)
    source.text("source.citation")  # every file says where its numbers come from
    return source
