"""``lrlab study tune`` end to end on a small grid (breast-cancer, SGD, a constant LR and a
one-cycle peak, two LRs x two tuning seeds, two fresh seeds, 90-step runs), its page and
table checked against the stored runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import lrlab
from lrlab.cli import main
from lrlab.report import choose_lrs
from lrlab.store import Store
from lrlab.studies import tune as study

TASK, OPTIMIZER, GRID, SEEDS, HOLDOUT, STEPS = "breast-cancer", "sgd", (0.03, 0.3), 2, 2, 90


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    argv = ["study", "tune", "--tasks", TASK, "--optimizers", OPTIMIZER, "--workers", "1"]
    argv += ["--lr-grid", ",".join(map(str, GRID)), "--seeds", str(SEEDS)]
    argv += ["--holdout-seeds", str(HOLDOUT), "--steps", str(STEPS), "--out", str(folder)]
    assert main(argv) == 0
    return folder


def _rows(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    with (out / "tune" / "cells.csv").open() as file:
        return {(row["schedule"], row["source"]): row for row in csv.DictReader(file)}


def test_the_study_scores_every_source_on_fresh_seeds(out: Path) -> None:
    rows = _rows(out)
    assert set(rows) == {(s, source) for s in study.SCHEDULES for source in study.SOURCES}
    with Store(out / "tune" / "runs.sqlite") as store:
        runs = store.runs()
    for schedule in study.SCHEDULES:
        spec = None if schedule == "constant" else f"one_cycle(lr=1, steps={STEPS})"
        grid = [
            r
            for r in runs
            if r.config.schedule == spec and r.config.lr in GRID and not r.config.fresh_seed
        ]
        assert sorted({r.config.seed for r in grid}) == [0, 1]
        chosen = next(iter(choose_lrs(grid).values()))  # on the validation split
        assert float(rows[(schedule, "grid")]["lr"]) == chosen
        for source in study.SOURCES:
            row = rows[(schedule, source)]
            lr = float(row["lr"])
            fresh = [
                r
                for r in runs
                if r.config.seed >= lrlab.HOLDOUT_SEEDS_FROM
                and r.config
                == study.run_config(TASK, OPTIMIZER, schedule, lr, r.config.seed, STEPS, STEPS)
            ]
            assert sorted(r.config.seed for r in fresh) == [1000, 1001]
            reached = sum(
                r.record is not None and r.record.steps_to_target is not None for r in fresh
            )
            assert int(row["reached"]) == reached
        grid_cost = sum(r.record.steps for r in grid if r.record is not None)
        assert int(rows[(schedule, "grid")]["cost_steps"]) == grid_cost


def test_the_page_gives_the_verdict_and_every_cell(out: Path) -> None:
    page = (out / "tune.md").read_text()
    assert page.startswith("# lrlab tune, measured")
    assert f"lrlab study tune --tasks {TASK} --seeds {SEEDS} --holdout-seeds {HOLDOUT}" in page
    assert "## Verdict" in page
    for schedule in study.SCHEDULES:
        assert f"- {TASK}, {OPTIMIZER}, {schedule}: " in page
        for source in study.SOURCES:
            assert f"| {TASK} | {OPTIMIZER} | {schedule} | {source} |" in page


def test_a_cell_names_how_tune_misses(tmp_path: Path) -> None:
    def score(
        source: str, reached: int, steps: float | None, cost: int, final: float = 0.97
    ) -> study.Score:
        return study.Score(source, 0.1, 5, reached, steps, final, 0.96, 0.98, 0.95, 0, cost, 1.0)

    scores = {
        "grid": score("grid", 5, 100.0, 3500),
        "tune": score("tune", 5, 120.0, 800),
        "minimum": score("minimum", 5, 100.0, 100, final=0.94),
        "lipschitz smooth": score("lipschitz smooth", 4, None, 0),
    }
    cell = study.Cell("t", "sgd", "constant", 100, True, scores)
    assert cell.counts
    # 120 > 1.1 x 100 steps; 800 > 0.2 x 3500 steps
    assert cell.misses() == ["1.20x the grid's steps", "cost 0.23 of the grid's steps"]
    # 0.94 is worse than the grid's worst seed (0.95)
    assert cell.misses("minimum") == ["final 0.94 worse than the grid's worst seed's 0.95"]
    assert cell.misses("lipschitz smooth") == ["reached 4/5"]


def test_bad_study_arguments_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="schedules must be among constant, one_cycle"):
        study.run_study(tmp_path, schedules=["cosine"])
    with pytest.raises(ValueError, match="unknown task 'irs'"):
        study.run_study(tmp_path, tasks=["irs"])
