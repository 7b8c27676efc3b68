"""A published number beside lrlab's distribution over seeds, and the verdict computed from them.

The source documents report single runs; lrlab runs each experiment over several seeds. A
published value is judged against the whole distribution, not one lucky run: does lrlab's
median land near it, does it fall inside lrlab's spread, or is it beyond every run? "Near"
is a neighbourhood of half-width ``tolerance`` chosen per quantity (and stated in the
report), so that a difference smaller than the run-to-run noise is not called a mismatch.

Plain Python, no torch or numpy, so the verdict logic is tested on hand-made numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from lrlab.studies.published import Quantity

Relation = Literal["matches", "within", "above", "below", "missing"]
Overall = Literal["AGREES", "PARTLY", "DISAGREES", "NO DATA"]

_RELATION_TEXT: dict[Relation, str] = {
    "matches": "lrlab's median is within the neighbourhood",
    "within": "inside lrlab's spread, away from its median",
    "above": "the published value is above every lrlab run",
    "below": "the published value is below every lrlab run",
    "missing": "no finished lrlab run to compare",
}


def finite_values(values: Sequence[float | None]) -> list[float]:
    """The finite values, in order (a diverged run's ``None`` or NaN is left out)."""
    return [v for v in values if v is not None and math.isfinite(v)]


def number(value: float | None, digits: int = 4, decimals: int | None = None) -> str:
    """``value`` to ``digits`` significant digits, or to ``decimals`` places when given (as
    the source printed it, e.g. ``0.4630``); ``-`` for none."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{decimals}f}" if decimals is not None else f"{value:.{digits}g}"


def spread(values: Sequence[float | None], digits: int = 4, decimals: int | None = None) -> str:
    """``median [min-max]`` of the finite values (just the value when they are all equal).

    >>> spread([0.3, 0.1, 0.2])
    '0.2 [0.1-0.3]'
    >>> spread([0.46, 0.5], decimals=3)
    '0.480 [0.460-0.500]'
    >>> spread([None])
    '-'
    """
    values = finite_values(values)
    if not values:
        return "-"
    low, high = min(values), max(values)
    middle = number(statistics.median(values), digits, decimals)
    if low == high:
        return middle
    return f"{middle} [{number(low, digits, decimals)}-{number(high, digits, decimals)}]"


@dataclass(frozen=True)
class PublishedValue:
    """One published number (``published``) beside lrlab's values over seeds (``values``).

    ``tolerance`` is the half-width of the published value's neighbourhood, in the same
    unit: a run within it is "near"; ``digits`` (significant) or ``decimals`` (places) say
    how to print the numbers. `of` builds one from a study's data (`Quantity`).
    """

    what: str
    published: float
    values: tuple[float | None, ...]
    tolerance: float
    digits: int = 4
    decimals: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(
                f"PublishedValue: tolerance must be a finite number >= 0, "
                f"got tolerance={self.tolerance!r}"
            )
        if not math.isfinite(self.published):
            raise ValueError(
                f"PublishedValue: published must be finite, got published={self.published!r}"
            )

    @classmethod
    def of(
        cls, what: str, quantity: Quantity, values: Sequence[float | None], digits: int = 4
    ) -> PublishedValue:
        """``quantity`` (its value, tolerance and printed decimals) beside ``values``; a
        quantity without a tolerance cannot be judged (``ValueError``)."""
        if quantity.tolerance is None:
            raise ValueError(f"PublishedValue: {what!r} has no tolerance in its study's data")
        return cls(
            what, quantity.value, tuple(values), quantity.tolerance, digits, quantity.decimals
        )

    @property
    def finite_values(self) -> list[float]:
        return finite_values(self.values)

    @property
    def median(self) -> float | None:
        values = self.finite_values
        return statistics.median(values) if values else None

    @property
    def near(self) -> int:
        """How many runs land within ``tolerance`` of the published value."""
        return sum(abs(v - self.published) <= self.tolerance for v in self.finite_values)

    @property
    def relation(self) -> Relation:
        """Where the published value sits relative to lrlab's runs."""
        values = self.finite_values
        median = self.median
        if median is None:
            return "missing"
        if abs(median - self.published) <= self.tolerance:
            return "matches"
        if self.published > max(values) + self.tolerance:
            return "above"
        if self.published < min(values) - self.tolerance:
            return "below"
        return "within"

    def lrlab(self) -> str:
        """lrlab's distribution as ``median [min-max]``."""
        return spread(self.values, self.digits, self.decimals)

    def near_text(self) -> str:
        return f"{self.near}/{len(self.values)} within ±{number(self.tolerance, 3)}"

    def sentence(self) -> str:
        """One plain sentence: the numbers and where the published value sits."""
        return (
            f"{self.what}: published {number(self.published, self.digits, self.decimals)}, lrlab "
            f"{self.lrlab()} over {len(self.values)} runs, {self.near_text()}: "
            f"{_RELATION_TEXT[self.relation]}"
        )


def overall(comparisons: Sequence[PublishedValue]) -> Overall:
    """The verdict over several published values of one experiment.

    ``AGREES``: lrlab's median is near every published value. ``DISAGREES``: every published
    value lies beyond all of lrlab's runs. ``PARTLY``: anything between. ``NO DATA``: no
    finished run (or nothing published to compare).
    """
    relations = [c.relation for c in comparisons if c.relation != "missing"]
    if not relations:
        return "NO DATA"
    if all(r == "matches" for r in relations):
        return "AGREES"
    if all(r in ("above", "below") for r in relations):
        return "DISAGREES"
    return "PARTLY"


def count_holding(flags: Sequence[bool]) -> Overall:
    """The verdict on a claim checked once per seed: ``AGREES`` when it holds in every seed,
    ``DISAGREES`` in none, ``PARTLY`` in some."""
    if not flags:
        return "NO DATA"
    held = sum(flags)
    if held == len(flags):
        return "AGREES"
    return "DISAGREES" if held == 0 else "PARTLY"


def fisher_exact(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided p-value of Fisher's exact test: could ``hits_a`` of ``n_a`` and ``hits_b`` of
    ``n_b`` come from one rate? The probability, with the margins fixed, of every table no
    more likely than the one observed (scipy's ``fisher_exact``, in plain Python).

    >>> round(fisher_exact(0, 10, 6, 20), 4)  # scipy: 0.0741
    0.0741
    >>> fisher_exact(3, 10, 3, 10)
    1.0
    """
    for name, hits, n in (("hits_a", hits_a, n_a), ("hits_b", hits_b, n_b)):
        if not (0 <= hits <= n):
            raise ValueError(f"fisher_exact: {name} must be in [0, {n}], got {name}={hits}")
    total = hits_a + hits_b
    low, high = max(0, total - n_b), min(total, n_a)

    def probability(k: int) -> float:
        return math.comb(n_a, k) * math.comb(n_b, total - k) / math.comb(n_a + n_b, total)

    observed = probability(hits_a)
    p = sum(q for k in range(low, high + 1) if (q := probability(k)) <= observed * (1 + 1e-7))
    return min(1.0, p)
