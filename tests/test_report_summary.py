"""The report's statistics: medians and ranges of steps to target, where a miss counts as +inf."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from lrlab.record import RunConfig
from lrlab.report.render import rows
from lrlab.report.summary import spread_with_misses, summarize
from lrlab.store import Store
from tests.fakes import record

steps = st.integers(min_value=1, max_value=10_000)


@given(st.lists(steps, min_size=2, max_size=30))
def test_without_misses_it_is_statistics_quantiles(values: list[int]) -> None:
    spread = spread_with_misses(values)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    assert spread.median == statistics.median(values)
    assert spread.low is not None
    assert spread.high is not None
    assert math.isclose(spread.low, q1)
    assert math.isclose(spread.high, q3)


@given(st.lists(st.one_of(steps, st.none()), min_size=1, max_size=30))
def test_misses_sort_last_and_the_range_holds_the_median(values: list[int | None]) -> None:
    spread = spread_with_misses(values)
    assert spread.low is not None
    assert spread.median is not None
    assert spread.high is not None
    assert spread.low <= spread.median <= spread.high
    reached = sorted(v for v in values if v is not None)
    if not reached:
        assert spread.low == math.inf
    if len(reached) == len(values):
        assert not math.isinf(spread.high)
    if len(reached) * 2 <= len(values) - 1:  # more than half missed
        assert spread.median == math.inf


def test_a_method_that_reached_three_times_in_five(tmp_path: Path) -> None:
    """The row shows the median and its range over all five seeds (two misses sort last), not
    a range over the three that reached beside a median over five."""
    metrics = {0: [0.95], 1: [0.5, 0.95], 2: [0.5, 0.5, 0.95], 3: [0.5] * 3, 4: [0.5] * 3}
    with Store(tmp_path / "runs.sqlite") as store:
        for seed, values in metrics.items():
            config = RunConfig(task="iris", optimizer="sgd", lr=0.1, seed=seed)
            store.put(config, record(config, values))
        summary = summarize(store.runs())[0]
    assert summary.reached == 3
    assert summary.steps_to_target == 30
    assert (summary.steps_spread.low, summary.steps_spread.high) == (20, math.inf)
    _, table = rows([summary])
    assert table[0][5] == "30 [20-miss]"
