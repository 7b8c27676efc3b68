"""``lrlab study wsd``: the warmup-stable-decay study end to end on a small task (regression,
budgets of 20, 40 and 80 steps, 10 steps an epoch), its page checked against the stored
runs: peaks chosen on the validation split with the tuning seed, every number from the
fresh seeds, the verdicts recomputed here, the branched runs bit for bit the stored ones."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest

import lrlab
from lrlab.cli import main
from lrlab.store import Store
from lrlab.studies import wsd

TASK, OPTIMIZER, BUDGETS, GRID, SEEDS = "regression", "adam", (20, 40, 80), (0.01, 0.1), 2
FRESH = tuple(range(lrlab.HOLDOUT_SEEDS_FROM, lrlab.HOLDOUT_SEEDS_FROM + SEEDS))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study")
    argv = ["study", "wsd", "--task", TASK, "--optimizer", OPTIMIZER, "--workers", "1"]
    argv += ["--budgets", ",".join(map(str, BUDGETS)), "--holdout-seeds", str(SEEDS)]
    argv += ["--warmup", "3"]
    argv += ["--lr-grid", ",".join(map(str, GRID)), "--out", str(out)]
    assert main(argv) == 0
    return out


def _runs(out: Path) -> list[lrlab.StoredRun]:
    with Store(out / "wsd" / "runs.sqlite") as store:
        return list(store.runs())


def _finals(page: str) -> dict[int, list[float]]:
    """The results table: budget -> each schedule's median final metric."""
    rows = {}
    for line in page.splitlines():
        match = re.match(r"\| (\d+) \| (.*) \|$", line)
        if match:
            rows[int(match[1])] = [float(c.split(" [")[0]) for c in match[2].split(" | ")]
    return rows


def test_peaks_are_chosen_on_validation_and_every_number_is_a_fresh_seeds(study: Path) -> None:
    runs = _runs(study)
    tuning = [r for r in runs if not r.config.fresh_seed]
    assert {r.config.seed for r in tuning} == {0}  # one tuning seed
    assert {r.config.steps for r in tuning} == {40}  # the middle budget
    page = (study / "wsd.md").read_text()
    header = next(line for line in page.splitlines() if line.startswith("| budget |"))
    peaks = dict(re.findall(r"\| ([^|(]+?) \(([\d.e-]+)\)", header))
    assert set(peaks) == set(wsd.SCHEDULES)
    chosen = lrlab.report.choose_lrs([r for r in tuning if r.record is not None])
    for label, text in peaks.items():
        config = next(
            r.config for r in tuning if r.config.schedule == wsd.spec(label, 40, warmup=3)
        )
        assert float(text) == pytest.approx(chosen[config.method_id()], rel=1e-3)
    finals = _finals(page)
    assert set(finals) == set(BUDGETS)
    for budget in BUDGETS:
        for label, shown in zip(wsd.SCHEDULES, finals[budget], strict=True):
            values = [
                r.record.final_metric
                for r in runs
                if r.config.fresh_seed
                and r.config.steps == budget
                and r.config.schedule == wsd.spec(label, budget, warmup=3)
                and r.record is not None
            ]
            assert sorted(r for r in values if r is not None)
            assert len(values) == SEEDS
            assert shown == pytest.approx(statistics.median(values), abs=1e-4)  # type: ignore[type-var]


def test_branched_runs_equal_the_stored_ones(study: Path) -> None:
    page = (study / "wsd.md").read_text()
    line = next(line for line in page.splitlines() if "(branching" in line)
    assert line.startswith("- **AGREES** (branching, `wsd 1-sqrt 20%`")
    # 20 steps cool down from 16 (parts at 17) -> epoch boundary 10; 40 from 32 -> 30
    assert f"20 steps continued from step 10 of the 80-step run on {SEEDS}/{SEEDS}" in line
    assert f"40 steps continued from step 30 of the 80-step run on {SEEDS}/{SEEDS}" in line
    assert f"{(10 + 30) * SEEDS} of {sum(BUDGETS) * SEEDS} steps were not trained again" in line


def test_verdicts_are_the_seed_by_seed_comparison(study: Path) -> None:
    runs = _runs(study)
    page = (study / "wsd.md").read_text()

    def final(label: str, budget: int, seed: int) -> float:
        run = next(
            r
            for r in runs
            if r.config.seed == seed
            and r.config.schedule == wsd.spec(label, budget, warmup=3)
            and r.config.steps == budget
        )
        assert run.record is not None
        assert run.record.final_metric is not None
        return run.record.final_metric

    held = [
        final("wsd 1-sqrt 20%", b, s) <= final(wsd.COSINE, b, s) + 0.02
        for b in BUDGETS
        for s in FRESH
    ]
    word = "AGREES" if all(held) else "PARTLY" if any(held) else "DISAGREES"
    assert f"- **{word}**: WSD with a 20% 1-sqrt cooldown matches or beats cosine" in page
    assert (study / "wsd" / "schedules.png").stat().st_size > 0
    assert (study / "wsd" / "curves-80.png").stat().st_size > 0


def test_a_rerun_trains_nothing_again(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["study", "wsd", "--task", TASK, "--optimizer", OPTIMIZER, "--workers", "1"]
    argv += ["--budgets", ",".join(map(str, BUDGETS)), "--holdout-seeds", str(SEEDS)]
    argv += ["--warmup", "3"]
    argv += ["--lr-grid", ",".join(map(str, GRID)), "--out", str(study), "--no-branch"]
    before = (study / "wsd.md").read_text()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "0 to run" in err
    assert not re.search(r"[1-9]\d* to run", err)
    after = (study / "wsd.md").read_text()
    assert "(branching" not in after
    assert _finals(after) == _finals(before)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--budgets", "40,80.5"], "budgets must be an integer"),
        (["--budgets", "0,40"], "budgets must be >= 1"),
        (["--warmup", "20", "--budgets", "20,40"], "warmup must end before the shortest"),
        (["--lr-grid=-1,0.1"], "lr"),
        (["--seeds", "0"], "seeds must be >= 1"),
        (["--holdout-seeds", "0"], "--holdout-seeds must be >= 1"),
        (["--task", "nope"], "nope"),
        (["--optimizer", "nope"], "nope"),
    ],
)
def test_bad_input_is_one_line_before_anything_runs(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["study", "wsd", "--out", str(tmp_path), "--task", TASK, *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "wsd").exists()
