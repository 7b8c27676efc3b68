"""The honest protocol: each method's LR chosen on the validation split with the tuning seeds,
every number scored on fresh seeds and the test split; the old optimistic selection behind a
flag that says so; stores written before validation splits still read, and migrate."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

import lrlab
from lrlab.cli import main
from lrlab.record import HOLDOUT_SEEDS_FROM, RunConfig
from lrlab.report import choose_lrs, summarize
from lrlab.store import SCHEMA_VERSION, Store
from lrlab.sweep import Sweep
from tests.fakes import record

STORE_0_1_0 = Path(__file__).parent / "data" / "store-0.1.0.sqlite"


def _disagreeing_store(path: Path) -> None:
    """sgd tuned over LRs 0.01 and 0.1 on seeds 0-2: on the test split 0.1 looks best (it
    reaches the target sooner), on the validation split 0.01 does; then both LRs on fresh
    seeds, where 0.01 is what the honest protocol reports."""
    with Store(path) as store:
        for seed in range(3):
            low = RunConfig(task="iris", optimizer="sgd", lr=0.01, seed=seed)
            high = RunConfig(task="iris", optimizer="sgd", lr=0.1, seed=seed)
            store.put(low, record(low, [0.5, 0.8, 0.95], validation=[0.9, 0.95, 0.96]))
            store.put(high, record(high, [0.95, 0.96, 0.97], validation=[0.5, 0.6, 0.7]))
        for seed in (HOLDOUT_SEEDS_FROM, HOLDOUT_SEEDS_FROM + 1):
            low = RunConfig(task="iris", optimizer="sgd", lr=0.01, seed=seed)
            high = RunConfig(task="iris", optimizer="sgd", lr=0.1, seed=seed)
            store.put(low, record(low, [0.6, 0.7, 0.91], validation=[0.9, 0.9, 0.9]))
            store.put(high, record(high, [0.99, 0.99, 0.99], validation=[0.5, 0.5, 0.5]))


def test_the_report_is_the_honest_protocols_where_the_two_disagree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.sqlite"
    _disagreeing_store(db)
    with Store(db) as store:
        runs = store.runs()
    (honest,) = summarize(runs)
    assert honest.lr == 0.01  # the validation split's choice
    assert honest.selected_on == "validation"
    assert honest.fresh
    assert honest.tuning_seeds == (0, 1, 2)
    assert honest.seeds == (1000, 1001)
    assert [r.config.seed for r in honest.records] == [1000, 1001]
    assert honest.steps_to_target == 30  # the fresh runs', not the tuning runs' (also 30...)
    assert honest.final.median == pytest.approx(0.91)  # ...but their final metric is theirs
    (optimistic,) = summarize(runs, optimistic=True)
    assert optimistic.lr == 0.1  # the test split's choice, on the seeds it reports
    assert optimistic.selected_on == "test"
    assert not optimistic.fresh
    assert optimistic.seeds == (0, 1, 2)
    assert optimistic.final.median == pytest.approx(0.97)
    assert "optimistic" in optimistic.provenance
    # The report says which: by default the honest numbers, and where they come from.
    out = tmp_path / "report"
    assert main(["report", "--db", str(db), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "LR chosen on the validation split with seeds 0-2; scored on fresh seeds" in text
    markdown = (out / "report.md").read_text()
    assert "scored on fresh seeds 1000, 1001" in markdown
    assert "| 0.01 " in markdown or " 0.01 |" in markdown
    assert main(["report", "--db", str(db), "--out", str(out), "--optimistic"]) == 0
    assert "scored on them (optimistic)" in capsys.readouterr().out


def test_without_a_validation_split_the_choice_is_made_on_the_training_metric(
    tmp_path: Path,
) -> None:
    """Never on the test split: a run without validation metrics is chosen on training's
    (here the same as test's, by construction of the fake records)."""
    db = tmp_path / "runs.sqlite"
    with Store(db) as store:
        for lr, metrics in ((0.01, [0.5, 0.6]), (0.1, [0.95, 0.96])):
            config = RunConfig(task="iris", optimizer="sgd", lr=lr, seed=0)
            store.put(config, record(config, metrics))
        runs = store.runs()
    (summary,) = summarize(runs)
    assert summary.selected_on == "train"
    assert summary.lr == 0.1
    assert not summary.fresh
    assert "training metric" in summary.provenance


def test_compare_costs_the_grid_plus_one_run_per_method_per_fresh_seed(tmp_path: Path) -> None:
    result = lrlab.compare(
        "breast-cancer",
        optimizers=["sgd", "adam"],
        methods=[("sgd", "lipschitz(bound=smooth)")],
        seeds=2,
        lr_grid=[0.01, 0.1, 1.0],
        holdout_seeds=3,
        steps=30,
        db=tmp_path / "runs.sqlite",
        workers=1,
    )
    assert result.ran == 2 * 3 * 2 + 3 * 3
    chosen = choose_lrs([r for r in result.runs if not r.config.fresh_seed])
    for summary in result.summaries:
        assert summary.seeds == (1000, 1001, 1002)
        assert {r.config.seed for r in summary.records} == {1000, 1001, 1002}
        assert all(r.config.validation for r in summary.records)
        if summary.group == "tuned":
            assert summary.selected_on == "validation"
            assert summary.lr in chosen.values()
    again = lrlab.compare(
        "breast-cancer",
        optimizers=["sgd", "adam"],
        methods=[("sgd", "lipschitz(bound=smooth)")],
        seeds=2,
        lr_grid=[0.01, 0.1, 1.0],
        holdout_seeds=3,
        steps=30,
        db=tmp_path / "runs.sqlite",
        workers=1,
    )
    assert again.ran == 0  # resumable: both phases found in the store
    assert again.ranking == result.ranking


def test_the_optimistic_protocol_runs_every_method_on_the_seeds_given(tmp_path: Path) -> None:
    result = lrlab.compare(
        "breast-cancer",
        optimizers=["sgd"],
        seeds=2,
        lr_grid=[0.01, 0.1],
        optimistic=True,
        steps=10,
        db=tmp_path / "runs.sqlite",
        workers=1,
    )
    assert result.ran == 2 * 2
    (summary,) = result.summaries
    assert summary.selected_on == "test"
    assert summary.seeds == (0, 1)
    assert "optimistic" in summary.provenance


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"holdout_seeds": 0}, r"holdout_seeds must be >= 1, got holdout_seeds=0"),
        ({"holdout_seeds": 2.5}, r"holdout_seeds must be an integer"),
        (
            {"seeds": [3, 1000]},
            r"seeds must be below 1000 \(the fresh seeds start there\), got a seed 1000",
        ),
        ({"optimistic": "yes"}, r"optimistic must be true or false"),
    ],
)
def test_bad_protocol_arguments_are_one_line_errors(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        lrlab.compare(
            "iris",
            optimizers=["sgd"],
            lr_grid=[0.1, 1.0],
            db=tmp_path / "x.sqlite",
            **kwargs,  # type: ignore[arg-type]
        )
    assert not (tmp_path / "x.sqlite").exists()


def test_sweep_fresh_configs_run_each_method_at_its_choice() -> None:
    sweep = Sweep(
        task="iris",
        optimizers=("sgd",),
        schedules=(None, "lipschitz(bound=smooth)"),
        seeds=(0, 1),
        lr_grid=(0.01, 0.1),
        fresh_seeds=(1000, 1001),
    )
    tuning = sweep.tuning_configs()
    assert {(c.lr, c.seed) for c in tuning} == {(0.01, 0), (0.01, 1), (0.1, 0), (0.1, 1)}
    chosen = {tuning[0].method_id(): 0.1}
    fresh = sweep.fresh_configs(chosen)
    assert [(c.schedule, c.lr, c.seed) for c in fresh] == [
        (None, 0.1, 1000),
        (None, 0.1, 1001),
        ("lipschitz(bound=smooth)", None, 1000),
        ("lipschitz(bound=smooth)", None, 1001),
    ]
    with pytest.raises(ValueError, match="no LR chosen for sgd"):
        sweep.fresh_configs({})


def test_a_store_written_by_lrlab_0_1_0_reads_and_migrates(tmp_path: Path) -> None:
    """``tests/data/store-0.1.0.sqlite`` was written by the last release (``lrlab compare
    iris --optimizers sgd,adam --lr-grid 0.01,0.1 --seeds 2 --epochs 3 --method
    sgd:lipschitz(bound=smooth)``, commit 5bb511e): schema 1, records of version 2."""
    path = tmp_path / "old.sqlite"
    shutil.copyfile(STORE_0_1_0, path)
    before = path.read_bytes()
    with Store(path, readonly=True) as store:
        runs = store.runs()
        assert store.schema == 1
    assert path.read_bytes() == before  # reading leaves it as it was
    assert len(runs) == 10
    assert all(r.record is not None and r.record.version == 3 for r in runs)
    assert not any(r.config.validation for r in runs)  # they trained on all 120 flowers
    assert all(r.record is not None and not r.record.has_validation for r in runs)
    old_keys = {r.config.key() for r in runs}
    assert not any('"validation"' in key for key in old_keys)  # the keys they were stored under
    summaries = summarize(runs)
    assert {s.label for s in summaries} == {"sgd", "adam", "sgd + lipschitz(bound=smooth)"}
    assert all(s.selected_on in (None, "train") for s in summaries)
    # Opened for writing, it migrates: schema 2, a column for the validation metric.
    with Store(path) as store:
        assert store.schema == SCHEMA_VERSION == 2
        assert store.finished_keys() == old_keys
        config = RunConfig(task="iris", optimizer="sgd", lr=0.5, seed=7)
        store.put(config, record(config, [0.9], validation=[0.8]))
    connection = sqlite3.connect(path)
    columns = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
    value = connection.execute("SELECT final_val_metric FROM runs WHERE seed = 7").fetchone()[0]
    connection.close()
    assert "final_val_metric" in columns
    assert value == 0.8
    with Store(path, readonly=True) as store:
        assert len(store.runs()) == 11
