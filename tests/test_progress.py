"""How a sweep's progress says the runs will train (`lrlab.progress.SweepProgress.grouped`):
vectorised groups, or none, and with ``--verbose`` why runs train alone."""

from __future__ import annotations

import pytest

from lrlab.progress import SweepProgress
from lrlab.record import RunConfig

LOADER = "the task's data is a DataLoader (its batches are not indexed per member)"
LONE = "controller Freeze has no vectorised form"


def _alone(*reasons: str) -> list[tuple[RunConfig, str]]:
    return [(RunConfig("t", "sgd", seed=i), reason) for i, reason in enumerate(reasons)]


@pytest.mark.parametrize(
    ("verbose", "expected"),
    [
        (False, "t: vectorised: no group (5 runs alone)\n"),
        (True, f"t: vectorised: no group (5 runs alone): 3 {LOADER}; 2 {LONE}\n"),
    ],
)
def test_no_group_is_said_with_its_reasons(
    verbose: bool, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    progress = SweepProgress(verbose=verbose, label="t: ")
    progress.grouped([], _alone(LONE, LOADER, LOADER, LONE, LOADER))
    assert capsys.readouterr().err == expected


def test_groups_are_said_and_the_lone_runs_reasons_listed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    SweepProgress(verbose=True, label="t: ").grouped([4, 2], _alone(LONE))
    assert capsys.readouterr().err == (
        f"t: vectorised: 6 runs in 2 group(s) of 2-4, 1 alone\n  1 alone: {LONE}\n"
    )
    SweepProgress(verbose=False).grouped([], [])
    assert capsys.readouterr().err == ""
