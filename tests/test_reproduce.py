"""``lrlab reproduce``: the seeds' experiments beside their published numbers.

The verdict logic is checked on hand-made numbers and records (no training); the commands run
at tiny budgets, with ``--data-dir`` pointing at an empty folder so that MNIST or CIFAR-10
files a developer keeps in the default cache cannot change what runs.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from pathlib import Path

import pytest

from lrlab.cli import main
from lrlab.record import EpochStats, RunConfig, RunRecord
from lrlab.store import StoredRun
from lrlab.studies import NAMES, seed000, seed002, seed003, seed004
from lrlab.studies.experiments import EXPERIMENTS
from lrlab.studies.runner import Options, Results, data_available
from lrlab.studies.verdict import PublishedValue, count_holding, overall, spread
from tests.fakes import record as fake_record


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _runs_in(store: Path) -> int:
    with sqlite3.connect(store) as db:
        return int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


# -- the verdict, on numbers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("published", "values", "relation", "near"),
    [
        (0.9, (0.88, 0.91, 0.95), "matches", 3),
        (0.6467, (0.3, 0.33, 0.35, 0.9), "within", 0),
        (0.6467, (0.3, 0.31, 0.33), "above", 0),
        (0.3393, (0.5, 0.8, 1.1), "below", 0),
        (0.5, (None, math.nan), "missing", 0),
    ],
)
def test_comparison_relation(
    published: float, values: tuple[float | None, ...], relation: str, near: int
) -> None:
    comparison = PublishedValue("acc", published, values, 0.05)
    assert comparison.relation == relation
    assert comparison.near == near


def test_comparison_edge_of_the_neighbourhood_counts_as_near() -> None:
    comparison = PublishedValue("acc", 0.5, (0.25, 0.75), 0.25)
    assert comparison.near == 2
    assert comparison.relation == "matches"  # the median 0.5 is the published value


def test_comparison_sentence_states_numbers_and_place() -> None:
    sentence = PublishedValue("final accuracy", 0.9, (0.3, 0.6, 0.7), 0.05, decimals=4).sentence()
    assert sentence == (
        "final accuracy: published 0.9000, lrlab 0.6000 [0.3000-0.7000] over 3 runs, "
        "0/3 within ±0.05: the published value is above every lrlab run"
    )


def test_comparison_rejects_a_bad_tolerance() -> None:
    with pytest.raises(
        ValueError, match=r"^PublishedValue: tolerance must be .* got tolerance=-1$"
    ):
        PublishedValue("acc", 0.5, (0.5,), -1)


def test_overall_and_per_seed_claims() -> None:
    def make(published: float) -> PublishedValue:
        return PublishedValue("x", published, (0.4, 0.5, 0.6), 0.01)

    assert overall([make(0.5), make(0.5)]) == "AGREES"
    assert overall([make(0.5), make(0.45)]) == "PARTLY"
    assert overall([make(0.9), make(0.1)]) == "DISAGREES"
    assert overall([PublishedValue("x", 0.5, (None,), 0.1)]) == "NO DATA"
    assert count_holding([True, True]) == "AGREES"
    assert count_holding([True, False]) == "PARTLY"
    assert count_holding([False, False]) == "DISAGREES"
    assert count_holding([]) == "NO DATA"


def test_spread_formats_median_min_max() -> None:
    assert spread([0.3, 0.1, 0.2]) == "0.2 [0.1-0.3]"
    assert spread([0.2, 0.2]) == "0.2"
    assert spread([None, math.inf]) == "-"


# -- seed 000's verdict on hand-made records ------------------------------------------------------


def _iris_record(config: RunConfig, loss: float, accuracy: float) -> RunRecord:
    """A finished record whose last epoch's running training loss/accuracy are given."""
    base = fake_record(config, [0.3, accuracy], steps_per_epoch=30)
    last = dataclasses.replace(base.epochs[-1], train_loss=loss, train_metric=accuracy)
    base.epochs[-1] = last
    return base


def _seed000_results(tmp_path: Path, finals: dict[str, list[tuple[float, float]]]) -> Results:
    options = Options(out=tmp_path, seeds=2, epochs=3)
    plan = seed000.plan(options)
    runs = {}
    for key, configs in plan.configs.items():
        runs[key] = [
            StoredRun(i, c, "done", None, _iris_record(c, *finals[key][i]), "now")
            for i, c in enumerate(configs)
        ]
    return Results(plan, runs, tmp_path)


def test_seed000_verdicts_computed_from_the_runs(tmp_path: Path) -> None:
    dead = (math.log(3), 1 / 3)
    results = _seed000_results(
        tmp_path,
        {
            # A: every run dead; B-code: runs around the published 0.3393 / 0.9000.
            "A": [dead, dead, dead],
            "B-code": [(0.33, 0.90), (0.35, 0.89), (0.34, 0.91)],
            "B-text": [dead, (0.2, 0.95), dead],
        },
    )
    section = seed000.section(results, Options(out=tmp_path, seeds=2, epochs=3))
    verdicts = "\n".join(section.verdicts)
    assert "seed-000 A: DISAGREES: published loss 0.4630 / acc 0.6467" in verdicts
    assert "3/3 dead" in verdicts
    assert "seed-000 B-code: AGREES: published loss 0.3393 / acc 0.9000" in verdicts
    assert "seed-000 B-text: no published number" in verdicts
    text = "\n".join(section.lines)
    assert "(2/3) ln 2 = 0.4621" in text  # why the published A sits at 0.6467
    assert "Seed 4, the seed's own `np.random.seed(4)`" in text
    assert "torch's generator is not numpy's" in text
    assert (tmp_path / "seed-000-lr.png").is_file()


def test_seed000_a_half_dead_run_lands_in_the_neighbourhood(tmp_path: Path) -> None:
    results = _seed000_results(
        tmp_path,
        {
            "A": [(math.log(3), 1 / 3), (0.4637, 0.62), (math.log(3), 1 / 3)],
            "B-code": [(1.1, 0.33)] * 3,
            "B-text": [(1.1, 0.33)] * 3,
        },
    )
    records = results.records("A")
    loss, accuracy = seed000.comparisons("A", records)
    assert (loss.near, accuracy.near) == (1, 1)
    assert loss.relation == accuracy.relation == "within"
    assert [seed000.is_dead(r) for r in records] == [True, False, True]


def test_seed000_outcomes_beside_keras_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's comparison with Keras' own runs: outcome counts and Fisher's exact test."""
    monkeypatch.setattr(
        seed000,
        "KERAS_OUTCOMES",
        {"B-code": {"seeds": 10, "trained": 7, "plateau": 0, "dead": 3, "median_loss": 0.3}},
    )
    plateau, trained = (0.47, 0.66), (0.2, 0.97)
    results = _seed000_results(
        tmp_path,
        {
            "A": [(math.log(3), 1 / 3)] * 3,
            "B-code": [plateau, plateau, trained],
            "B-text": [trained] * 3,
        },
    )
    section = seed000.section(results, Options(out=tmp_path, seeds=2, epochs=3))
    verdict = next(v for v in section.verdicts if "vs Keras 3 itself" in v)
    assert verdict.startswith("seed-000 B-code outcomes vs Keras 3 itself (10 seeds): ")
    assert "trained 1/3 vs 7/10 (p = 0.51)" in verdict  # scipy.stats.fisher_exact: 0.5105
    assert "plateau 2/3 vs 0/10 (p = 0.04)" in verdict  # scipy: 0.0385
    assert verdict.split(": ")[1] == "DISAGREES"
    assert [seed000.outcome(r) for r in results.records("B-code")] == [
        "plateau",
        "plateau",
        "trained",
    ]


def test_seed000_lr_schedules_code_vs_text() -> None:
    code = seed000._per_epoch(seed000.B_CODE, 200)
    text = seed000._per_epoch(seed000.B_TEXT, 200)
    assert code[0] == pytest.approx(0.01 * 0.05**0.1)
    assert code[199] == pytest.approx(0.01 * 0.05**20)
    assert text[0] == 0.1
    assert text[10] == 0.05
    assert text[199] == pytest.approx(0.1 * 0.5**19)
    assert seed000._shape(code).startswith("a continuous exponential, x0.7411")
    assert seed000._shape(text).startswith("a staircase")


# -- seed 003's claim on hand-made tables --------------------------------------------------------


def test_seed003_claim_counts_seeds() -> None:
    table = {
        0: {"SGD": 1.0, "Momentum": 0.5, "AdaGrad": 0.1, "Adam": 0.2},
        1: {"SGD": 1.0, "Momentum": 0.5, "AdaGrad": 0.3, "Adam": 0.2},
    }
    assert seed003.claim(table) == (1, 2, "PARTLY")
    assert seed003.ranking(table) == ["AdaGrad", "Adam", "Momentum", "SGD"]
    table[1]["AdaGrad"] = 0.1
    assert seed003.claim(table) == (2, 2, "AGREES")
    assert seed003.claim({0: {"SGD": 0.0, "Momentum": 1, "AdaGrad": 2, "Adam": 3}}) == (
        0,
        0,
        "DISAGREES",
    )


def test_seed003_budget_options(tmp_path: Path) -> None:
    assert seed003.budget(Options(out=tmp_path)) == {"steps": 2000}
    assert seed003.budget(Options(out=tmp_path, epochs=3)) == {"epochs": 3}
    assert seed003.budget(Options(out=tmp_path, epochs=3, steps=50)) == {"steps": 50}


def test_missing_data_means_the_offline_fallbacks(tmp_path: Path) -> None:
    present, found = data_available("mnist", str(tmp_path))
    assert not present
    assert "lrlab download mnist" in found
    present, found = data_available("cifar10", str(tmp_path))
    assert not present
    assert "lrlab download cifar10" in found


def test_seed004_reads_lipschitz_history() -> None:
    config = RunConfig(task="mnist5k", schedule="lipschitz(bound=paper)")
    record = fake_record(config, [0.1, 0.1])
    record.extra["controller"] = {
        "history": [{"epoch": 0.0, "kz": 20.0, "K": 0.25, "lr": 4.0}, {"epoch": 1.0, "kz": 1.0}]
    }
    assert seed004.first_kz(record) == 20.0
    assert seed004.history(record)[1] == {"epoch": 1.0, "kz": 1.0}
    assert seed004.learned_nothing(record)
    assert seed004.broke_down(record)
    assert seed004.best_percent(record) == pytest.approx(10.0)


def test_seed004_paper_numbers_are_the_notebooks() -> None:
    """The MNIST LRs the authors logged (MNIST.ipynb), not the worked example's Kz 206.695."""
    assert seed004.PAPER_LRS == (1.93, 2.95)
    assert seed004.PAPER_EPOCH0_LR == 2.624
    assert round(seed004.PAPER_KZ0, 1) == 108.4
    assert seed004.WORKED_EXAMPLE_KZ == 206.695
    assert round(seed004.PAPER_ADAMO_LRS[1], 3) == 1.427  # epoch 1, after K1 = 0.1
    assert len(seed004.PAPER_SGD_LRS) == len(seed004.PAPER_ADAM_LRS) == 20
    assert max(seed004.PAPER_VAL_ACC["SGD"]) == 0.995  # the published 99.5
    assert max(seed004.PAPER_VAL_ACC["Momentum"]) == 0.9957
    assert max(seed004.PAPER_VAL_ACC["Adam"]) == 0.9943
    assert seed004.paper_val_acc_within("SGD", 1.02) == pytest.approx(23.91)
    assert seed004.paper_val_acc_within("SGD", 2.0) == pytest.approx(89.95)
    assert seed004.paper_val_acc_within("Momentum", 40) == pytest.approx(99.57)


def test_seed004_plan_budgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = seed004.plan(Options(out=tmp_path, data_dir=str(tmp_path)))
    sgd = plan.configs["SGD"]
    assert [c.seed for c in sgd] == [0, 1, 2, 3, 4]
    assert {(c.task, c.model, c.batch_size, c.epoch_steps, c.steps, c.loss) for c in sgd} == {
        ("mnist5k", "paper-cnn", 256, 235, 240, "keras_cross_entropy")
    }
    assert [c.seed for c in plan.configs["Momentum"]] == [0]  # CPU budget: 1 seed
    assert plan.configs["Momentum"][0].optimizer == "ema-momentum"
    assert plan.configs["Adam"][0].optimizer_args == {"eps": 1e-7}
    torch_loss = plan.configs["SGD-torch-loss"][0]
    assert (torch_loss.loss, torch_loss.steps) == (None, 40)
    full = seed004.plan(Options(out=tmp_path, data_dir=str(tmp_path), full=True))
    assert {(c.epochs, c.steps, c.device) for c in full.configs["SGD"]} == {(20, None, "auto")}
    assert len(full.configs["Adam"]) == 5
    tiny = seed004.plan(Options(out=tmp_path, seeds=1, steps=3, data_dir=str(tmp_path)))
    assert {c.steps for cs in tiny.configs.values() for c in cs} == {3}
    monkeypatch.setattr(
        seed004, "data_available", lambda task, _: (task == "mnist", f"{task} files found")
    )
    mnist = seed004.plan(Options(out=tmp_path, data_dir=str(tmp_path)))
    assert {(c.task, c.epoch_steps, c.data_dir) for c in mnist.configs["SGD"]} == {
        ("mnist", None, str(tmp_path))
    }


def _seed004_results(tmp_path: Path, lr0: float, metrics: list[float], options: Options) -> Results:
    """Every MNIST run made by hand: LR ``lr0`` in every epoch, test accuracy ``metrics``."""
    plan = seed004.plan(options)
    runs = {}
    for key, configs in plan.configs.items():
        runs[key] = [
            StoredRun(i, c, "done", None, fake_record(c, metrics, lr=lr0), "now")
            for i, c in enumerate(configs)
        ]
    return Results(plan, runs, tmp_path)


def test_seed004_verdicts_from_the_runs(tmp_path: Path) -> None:
    options = Options(out=tmp_path, data_dir=str(tmp_path))
    section = seed004.section(_seed004_results(tmp_path, 2.6, [0.96, 0.98], options), options)
    verdicts = "\n".join(section.verdicts)
    assert "seed-004 MNIST goal (the paper's LR trains its CNN): AGREES" in verdicts
    assert "seed-004 MNIST epoch-0 LR: AGREES: 2.6 over 5 seeds (median 2.6)" in verdicts
    assert "the authors logged 2.624 (range 1.93-2.95)" in verdicts
    assert "seed-004 MNIST SGD not diverged: AGREES: 5/5 seeds" in verdicts
    assert "seed-004 MNIST SGD best test accuracy: NOT JUDGED at 2 epochs: lrlab 98%" in verdicts
    assert "beside the published 99.5%" in verdicts
    assert "seed-004 MNIST Momentum: published 99.57%" in verdicts
    text = "\n".join(section.lines)
    assert "MNIST Momentum.ipynb cells 11-12" in text
    assert "if epoch == 0: K1 = 0.1; return 0.1" in text
    assert "Kz 206.695 at m = 128, is another network" in text
    assert (tmp_path / "seed-004-lr.png").is_file()

    dead = seed004.section(_seed004_results(tmp_path, 7.0, [0.1, 0.1], options), options)
    verdicts = "\n".join(dead.verdicts)
    assert "seed-004 MNIST goal (the paper's LR trains its CNN): DISAGREES" in verdicts
    assert "seed-004 MNIST epoch-0 LR: DISAGREES: 7 over 5 seeds" in verdicts
    assert "seed-004 MNIST SGD not diverged: DISAGREES: 0/5 seeds (5 at chance)" in verdicts


def test_seed004_a_lagging_test_accuracy_is_not_a_dead_run(tmp_path: Path) -> None:
    """Test accuracy at chance while the running training accuracy climbs (batch norm's running
    statistics lag, as in the authors' epoch 0): trained, and said so."""
    config = RunConfig(task="mnist5k", model="paper-cnn")
    record = fake_record(config, [0.1, 0.15])
    record.epochs = [dataclasses.replace(e, train_metric=0.6) for e in record.epochs]
    assert not seed004.learned_nothing(record)
    assert seed004.eval_lags(record)
    assert seed004.best_train_percent(record) == pytest.approx(60.0)
    options = Options(out=tmp_path, data_dir=str(tmp_path))
    results = _seed004_results(tmp_path, 2.6, [0.1, 0.15], options)
    for run in results.runs["SGD"]:
        assert run.record is not None
        run.record.epochs = [dataclasses.replace(e, train_metric=0.6) for e in run.record.epochs]
    section = seed004.section(results, options)
    assert "seed-004 MNIST SGD not diverged: AGREES: 5/5 seeds" in section.verdicts
    assert "while the training accuracy reached 60%" in "\n".join(section.lines)


def test_seed004_accuracy_is_judged_at_the_papers_budget(tmp_path: Path) -> None:
    options = Options(out=tmp_path, data_dir=str(tmp_path), full=True)
    results = _seed004_results(tmp_path, 2.4, [0.9] * 19 + [0.996], options)
    verdicts = "\n".join(seed004.section(results, options).verdicts)
    assert "seed-004 MNIST SGD best test accuracy: AGREES: published 99.5%; lrlab 99.6%" in verdicts


# -- the command ---------------------------------------------------------------------------------


def test_every_name_is_an_experiment() -> None:
    assert set(NAMES) == set(EXPERIMENTS)


def test_seed002_stdout_unchanged_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "reproduce", "seed-002", "--out", str(tmp_path))
    assert code == 0
    assert out.splitlines() == [epoch.line() for epoch in seed002.run()]
    assert len(out.splitlines()) == 40
    assert "seed-002: AGREES: 15/15 published lines match" in err
    report = (tmp_path / "report.md").read_text()
    for epoch, line in seed002.PUBLISHED.items():
        assert f"| {epoch} | `{line}` | `{line}` | yes |" in report
    assert "All 15 published lines match lrlab's to the printed digit." in report
    assert (tmp_path / "seed-002-w.png").is_file()


def test_seed000_small_budget_then_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    argv = ["reproduce", "seed-000", "--seeds", "2", "--epochs", "3", "--workers", "1"]
    argv += ["--out", str(out_dir), "--data-dir", str(tmp_path)]
    code, out, err = _run(capsys, *argv)
    assert code == 0
    assert "9 runs, 0 already in" in err  # seeds 0, 1 and the seed's own 4, x 3 schedules
    report = (out_dir / "report.md").read_text()
    for published in ("0.4630", "0.6467", "0.3393", "0.9000"):
        assert published in report
    assert out.startswith("seed-000 A: ")
    assert "seed-000 B-code: " in out
    assert "seed-000 B text vs code: " in out
    for name in ("seed-000-lr.png", "seed-000-outcomes.png", "seed-000-accuracy.png"):
        assert (out_dir / name).is_file()
    assert _runs_in(out_dir / "reproduce.sqlite") == 9

    code, again, err = _run(capsys, *argv)
    assert code == 0
    assert "9 runs, 9 already in" in err
    assert "0 to run" in err
    assert "(0 runs now, 9 from the store" in err
    assert again == out  # the same verdicts, read back from the store
    assert _runs_in(out_dir / "reproduce.sqlite") == 9


def test_seed003_tiny_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["reproduce", "seed-003", "--seeds", "1", "--steps", "20", "--workers", "1"]
    code, out, _ = _run(capsys, *argv, "--out", str(tmp_path), "--data-dir", str(tmp_path))
    assert code == 0
    assert out.startswith("seed-003: ")
    assert "published 'AdaGrad lowest, SGD slowest'; lrlab on mnist5k over 1 seeds" in out
    report = (tmp_path / "report.md").read_text()
    assert "identical across the 5 optimizers in 1 of 1 seeds" in report
    assert "RMSprop (lr 0.01, 0.99; commented out in the seed)" in report
    assert (tmp_path / "seed-003-loss.png").is_file()


@pytest.mark.slow
def test_seed004_tiny_budget_and_cifar_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["reproduce", "seed-004", "--seeds", "1", "--steps", "2", "--workers", "1"]
    code, out, _ = _run(capsys, *argv, "--out", str(tmp_path), "--data-dir", str(tmp_path))
    assert code == 0
    assert "seed-004 MNIST epoch-0 LR: AGREES: 2.75 over 1 seeds" in out  # seed 0, paper-cnn
    assert "seed-004 MNIST SGD not diverged: " in out  # 2 steps: still at chance
    assert "seed-004 MNIST SGD-torch-loss: " in out
    assert "seed-004 MNIST SGD best test accuracy: NOT JUDGED" in out
    assert "seed-004 CIFAR-10: skipped" in out
    report = (tmp_path / "report.md").read_text()
    assert "Skipped: cifar10: no data_batch_1.bin" in report
    assert "`lrlab reproduce seed-004 --data-dir DIR`" in report
    assert "the 4000 training digits of `mnist5k`" in report
    assert "### What the authors' files say" in report
    assert (tmp_path / "seed-004-lr.png").is_file()


@pytest.mark.slow
def test_all_runs_every_seed_into_one_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["reproduce", "all", "--seeds", "1", "--epochs", "1", "--steps", "10"]
    code, out, _ = _run(capsys, *argv, "--out", str(tmp_path), "--data-dir", str(tmp_path))
    assert code == 0
    for name in NAMES:
        assert f"\n{name}" in "\n" + out
    assert "After 0 epoch" not in out  # the 40 lines only for seed-002 alone
    report = (tmp_path / "report.md").read_text()
    for experiment in EXPERIMENTS.values():
        assert f"## {experiment.title}" in report


def test_full_is_a_flag_of_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--full is accepted (seed 002 has no CPU budget to lift: the same 40 lines)."""
    code, out, _ = _run(capsys, "reproduce", "seed-002", "--full", "--out", str(tmp_path))
    assert code == 0
    assert len(out.splitlines()) == 40


def test_unknown_seed_lists_the_known(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "seed-001"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'seed-001'" in err
    assert "'seed-000', 'seed-002', 'seed-003', 'seed-004', 'all'" in err


@pytest.mark.parametrize("option", ["--seeds", "--epochs", "--steps", "--workers"])
def test_non_positive_counts_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    out_dir = tmp_path / "never"
    code, out, err = _run(capsys, "reproduce", "seed-000", option, "0", "--out", str(out_dir))
    assert code == 2
    assert out == ""
    assert err == f"lrlab: error: {option} must be >= 1, got {option}=0\n"
    assert not out_dir.exists()


def test_epoch_stats_fields_used_by_the_reports() -> None:
    """The sections read these fields; a rename in the record must fail here first."""
    names = {f.name for f in dataclasses.fields(EpochStats)}
    assert {"lr", "train_loss", "train_metric", "test_metric"} <= names


def test_seed004_cifar_part_when_the_files_are_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CIFAR-10 budget and verdict, on hand-made records (real files are 180 MB)."""
    monkeypatch.setattr(seed004, "data_available", lambda task, _: (task == "cifar10", "found"))
    options = Options(out=tmp_path, seeds=5, epochs=3)
    plan = seed004.plan(options)
    cifar = [
        c for key, configs in plan.configs.items() if key.startswith("cifar:") for c in configs
    ]
    assert {(c.task, c.model, c.epochs) for c in cifar} == {("cifar10", "cnn", 3)}
    assert sorted({c.seed for c in cifar}) == [0, 1]  # at most CIFAR_MAX_SEEDS
    accuracy = {"cifar:SGD": 0.5, "cifar:SGD-fixed": 0.4, "cifar:SGD-smooth": 0.45}
    runs = {
        key: [
            StoredRun(i, c, "done", None, fake_record(c, [0.2, accuracy.get(key, 0.99)]), "now")
            for i, c in enumerate(configs)
        ]
        for key, configs in plan.configs.items()
    }
    section = seed004.section(Results(plan, runs, tmp_path), options)
    verdict = section.verdicts[-1]
    assert verdict.startswith("seed-004 CIFAR-10 (2 epochs, small CNN): PARTLY: ")
    assert "published SGD 89.37 vs fixed 60.33" in verdict
    assert "lrlab 50% vs 40%" in verdict
    assert "the paper found it 29 points above" in "\n".join(section.lines)
