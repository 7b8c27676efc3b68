"""``lrlab study lr-finder``: the range-test study end to end on a small grid (one task, one
optimizer, two LRs, two tuning seeds and two fresh ones, 60-step runs), its page checked
against the stored runs: the grid's LR chosen on the validation split with the tuning seeds,
every number in the tables from the fresh seeds.

breast-cancer reaches its target within the first epoch at good LRs, so the cells count and
the verdict has something to say; at 60 steps a 100-step range test costs more than the
two-LR grid, so no rule meets the goal, and the page must say where and why.
"""

from __future__ import annotations

import csv
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

import lrlab
import lrlab.report
from lrlab.cli import main
from lrlab.cli.common import parse_lr_grid
from lrlab.store import Store
from lrlab.studies import lr_finder

TASK, OPTIMIZER, GRID, SEEDS, STEPS = "breast-cancer", "sgd", (0.03, 0.3), 2, 60
RULES = ("minimum", "valley", "steepest")
FRESH = tuple(range(lrlab.HOLDOUT_SEEDS_FROM, lrlab.HOLDOUT_SEEDS_FROM + SEEDS))
SOURCES = (*RULES, "lipschitz paper", "lipschitz smooth")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study")
    argv = ["study", "lr-finder", "--tasks", TASK, "--optimizers", OPTIMIZER, "--workers", "1"]
    argv += ["--lr-grid", ",".join(map(str, GRID)), "--seeds", str(SEEDS)]
    argv += ["--steps", str(STEPS), "--out", str(out)]
    assert main(argv) == 0
    return out


def _stored(out: Path) -> dict[tuple[float, str | None, int], lrlab.StoredRun]:
    """The store's runs by (LR, schedule spec, seed)."""
    with Store(out / "lr-finder" / "runs.sqlite") as store:
        return {(r.config.lr or 0.0, r.config.schedule, r.config.seed): r for r in store.runs()}


def _table(page: str) -> dict[tuple[str, str], list[str]]:
    """The task's results table: (schedule, method) -> the row's cells."""
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8 and cells[0] == OPTIMIZER:
            rows[(cells[1], cells[2].removesuffix(" ✓"))] = cells
    return rows


def _spec(schedule: str) -> str | None:
    return None if schedule == "constant" else f"one_cycle(lr=1, steps={STEPS})"


def _reached(runs: list[lrlab.StoredRun], split: str = "test") -> int:
    return sum(
        r.record is not None and r.record.steps_to_target_on(split) is not None  # type: ignore[arg-type]
        for r in runs
    )


def _median_steps(runs: list[lrlab.StoredRun]) -> str:
    steps = sorted(
        math.inf
        if r.record is None or r.record.steps_to_target is None
        else r.record.steps_to_target
        for r in runs
    )
    median = statistics.median(steps)
    return "-" if math.isinf(median) else f"{median:.4g}"


def _suggestions() -> dict[str, list[float | None]]:
    """Each source's LR per seed, from the range test through the public API, rounded as
    ``lrlab find`` prints it."""
    lrs: dict[str, list[float | None]] = {source: [] for source in SOURCES}
    for seed in FRESH:  # the range tests run from the fresh seeds' weights
        result = lrlab.find_on_task(TASK, OPTIMIZER, seed=seed, run_steps=STEPS)
        values = {name: r.lr for name, r in result.suggestions.items()}
        values |= {f"lipschitz {bound}": v for bound, v in result.lipschitz.items()}
        for source in SOURCES:
            value = values[source]
            lrs[source].append(None if value is None else float(f"{value:.3g}"))
    return lrs


def test_default_grid_is_the_cli_grid() -> None:
    assert parse_lr_grid("1e-3:1:7") == lr_finder.GRID


def test_page_tables_match_the_stored_runs(study: Path) -> None:
    page = (study / "lr-finder.md").read_text()
    stored = _stored(study)
    table = _table(page)
    suggestions = _suggestions()
    assert len(stored) == len({key for key in stored})  # one run per config
    for schedule in ("constant", "one-cycle"):
        spec = _spec(schedule)
        # The tuned grid: the LR reaching the target most often on the validation split with
        # the tuning seeds, then fastest (then the better final metric, as `lrlab report`).
        by_lr = {lr: [stored[(lr, spec, seed)] for seed in range(SEEDS)] for lr in GRID}
        (summary,) = lrlab.report.summarize([r for lr in GRID for r in by_lr[lr]])
        best = summary.lr
        assert summary.selected_on == "validation"
        assert best == min(
            GRID,
            key=lambda lr: (
                -_reached(by_lr[lr], "validation"),
                statistics.median(
                    math.inf
                    if r.record is None or r.record.steps_to_target_on("validation") is None
                    else r.record.steps_to_target_on("validation")
                    for r in by_lr[lr]
                ),
                -statistics.median(r.record.final_val_metric or 0 for r in by_lr[lr]),
            ),
        )
        scored = [stored[(best, spec, seed)] for seed in FRESH]  # type: ignore[index]
        tuned = table[(schedule, "tuned grid")]
        assert float(tuned[3]) == best
        assert tuned[4] == f"{_reached(scored)}/{SEEDS}"
        assert tuned[5].split(" [")[0] == _median_steps(scored)
        for source in SOURCES:
            lrs = suggestions[source]
            row = table[(schedule, source)]
            runs = [
                stored[(lr, spec, seed)]
                for seed, lr in zip(FRESH, lrs, strict=True)
                if lr is not None
            ]
            assert len(runs) == SEEDS, source
            low, high = min(lr for lr in lrs if lr), max(lr for lr in lrs if lr)
            middle = math.sqrt(low * high)  # the median of two on a log scale
            assert row[3] == (
                f"{low:.3g}" if low == high else f"{middle:.3g} [{low:.3g}-{high:.3g}]"
            )
            assert row[4] == f"{_reached(runs)}/{SEEDS}", (schedule, source)
            assert row[5].split(" [")[0] == _median_steps(runs), (schedule, source)
            assert row[7] == str(sum(r.status == "diverged" for r in runs))


def test_verdict_follows_the_tables(study: Path) -> None:
    page = (study / "lr-finder.md").read_text()
    table = _table(page)
    counted = [
        schedule
        for schedule in ("constant", "one-cycle")
        if table[(schedule, "tuned grid")][4] == f"{SEEDS}/{SEEDS}"
    ]
    assert f"{len(counted)} of the 2 task x optimizer x schedule cells count" in page
    all_reached = {
        source: sum(table[(s, source)][4] == f"{SEEDS}/{SEEDS}" for s in counted)
        for source in SOURCES
    }
    for source in SOURCES:
        seeds_reached = sum(int(table[(s, source)][4].split("/")[0]) for s in counted)
        line = next(line for line in page.splitlines() if line.startswith(f"| {source} | "))
        assert line.startswith(
            f"| {source} | {all_reached[source]}/{len(counted)} | 0/{len(counted)} | "
            f"{seeds_reached}/{SEEDS * len(counted)} | "
        )
    recommended = re.search(r"\*\*lrlab recommends `([^`]+)`\*\*", page)
    assert recommended is not None
    assert recommended.group(1) in RULES  # LipschitzLR's values are not candidates
    assert all_reached[recommended.group(1)] == max(all_reached[rule] for rule in RULES)
    note = "NOTE: the code currently recommends `minimum`; these measurements favour"
    assert (note in page) == (recommended.group(1) != "minimum")
    # A 100-step range test costs more than 60-step runs of a 2-LR grid: the goal's cost
    # clause fails in every counted cell, and the page lists them.
    assert f"**No rule meets the goal everywhere.** `{recommended.group(1)}` misses it" in page
    # The grid's cost: its tuning runs and one scored run per seed.
    assert f"| {TASK} | {OPTIMIZER} | {len(GRID) * SEEDS + SEEDS} | " in page
    assert "of the grid's runs" in page


def test_runs_csv_is_the_store(study: Path) -> None:
    stored = _stored(study)
    with (study / "lr-finder" / "runs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["method"] for row in rows} == {"tuned grid", *SOURCES}
    for row in rows:
        run = stored[(float(row["lr"]), _spec(row["schedule"]), int(row["seed"]))]
        assert row["status"] == run.status
        assert run.record is not None
        assert row["steps_to_target"] == str(run.record.steps_to_target or "")
    assert (study / "lr-finder" / f"{TASK}-range-test.png").stat().st_size > 0


def test_page_states_the_command_that_regenerates_it(study: Path) -> None:
    page = (study / "lr-finder.md").read_text()
    assert (
        f"lrlab study lr-finder --out {study} --tasks {TASK} --optimizers {OPTIMIZER} "
        f"--seeds {SEEDS} --lr-grid 0.03,0.3 --steps {STEPS}\n"
    ) in page


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tasks", "no-such-task"], "unknown task 'no-such-task'"),
        (["--optimizers", "sgd,nope"], "unknown optimizer 'nope'"),
        (["--seeds", "0"], "--seeds must be >= 1, got --seeds=0"),
        (["--smoothing", "1.5"], "smoothings must be in [0, 1)"),
        (["--lr-grid", "0,1"], "--lr-grid values must be finite and > 0"),
        (["--steps", "0"], "--steps must be >= 1, got --steps=0"),
    ],
)
def test_bad_arguments_are_one_line_errors_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = tmp_path / "never"
    code = main(["study", "lr-finder", "--out", str(out), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("lrlab: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert not (out / "lr-finder.md").exists()
    assert not (out / "lr-finder" / "runs.sqlite").exists()


def test_the_parser_imports_no_study() -> None:
    """``lrlab study`` is a registry parsed in two steps: building the command's parser (for
    ``lrlab --help``) imports no study module."""
    code = (
        "import sys\nfrom lrlab.cli import build_parser\nbuild_parser().format_help()\n"
        "print(sorted(m for m in sys.modules if m.startswith('lrlab.studies.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_study_shows_its_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "lr-finder", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lrlab study lr-finder ")
    assert "--lr-grid GRID" in out
