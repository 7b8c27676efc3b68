"""The ``lm`` task: a causal byte transformer with tied embeddings and nanoGPT's init, trained
on CPython's reference documentation split by position, measured in bits per byte, with the
corpus's SHA-256 in every record and a report that says when runs read different corpora."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import lrlab
from lrlab.cli import main
from lrlab.engine import train_run as train_alone
from lrlab.record import RunConfig
from lrlab.report.render import markdown, terminal_table
from lrlab.report.summary import summarize
from lrlab.store import Store
from lrlab.tasks import MetricSum, get_task, load_task_data
from lrlab.tasks.lm import (
    CONTEXT,
    corpus_slices,
    lm_task,
    python_docs_corpus,
    read_corpus,
    split_bounds,
    windows,
)
from lrlab.transformer import INIT_STD, ByteTransformer
from lrlab.vectorize import plan_groups
from lrlab.vectorize.engine import train_group
from tests.fakes import record


def _tiny(seed: int = 0, **sizes: int) -> ByteTransformer:
    torch.manual_seed(seed)
    return ByteTransformer(**{"context": 16, "width": 32, "layers": 2, "heads": 4, **sizes})


# --- the model ------------------------------------------------------------------------------


def test_a_later_byte_never_changes_an_earlier_prediction() -> None:
    model = _tiny()
    tokens = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1))
    changed = tokens.clone()
    changed[:, 9] = (changed[:, 9] + 1) % 256
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    assert torch.equal(before[:, :9], after[:, :9])
    assert not torch.allclose(before[:, 9:], after[:, 9:])


def test_shapes_and_a_context_too_long() -> None:
    model = _tiny()
    assert model(torch.zeros(3, 16, dtype=torch.long)).shape == (3, 16, 256)
    assert model(torch.zeros(1, 5, dtype=torch.long)).shape == (1, 5, 256)
    with pytest.raises(ValueError, match="inputs must be at most context=16 long, got 17"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="heads must be a divisor of width=32, got heads=5"):
        ByteTransformer(width=32, heads=5)


def test_the_embedding_and_the_head_are_one_tensor() -> None:
    model = _tiny()
    assert model.head.weight is model.token.weight
    names = [name for name, _ in model.named_parameters()]
    assert "token.weight" in names
    assert "head.weight" not in names
    # Parameters by hand: (V + T) d embeddings, per block 2 LayerNorms (4d), qkv (3d^2 + 3d),
    # attention proj (d^2 + d), fc (4d^2 + 4d), proj (4d^2 + d); the final LayerNorm (2d).
    d, layers, context, vocab = 32, 2, 16, 256
    expected = (vocab + context) * d + layers * (12 * d * d + 13 * d) + 2 * d
    assert sum(p.numel() for p in model.parameters()) == expected
    # The final nn.Linear, which LipschitzLR watches, is the tied head.
    from lrlab.lipschitz.head import find_head

    assert find_head(model) == ("head", model.head)


def test_initialisation_is_nanogpts() -> None:
    model = ByteTransformer(width=128, layers=4)  # nanoGPT-sized blocks, for the statistics
    residual = INIT_STD / math.sqrt(2 * 4)
    for name, parameter in model.named_parameters():
        values = parameter.detach()
        if name.endswith("attn.proj.weight") or name.endswith(".proj.weight"):
            assert float(values.std()) == pytest.approx(residual, rel=0.05), name
        elif name.endswith("weight") and values.dim() == 2:
            assert float(values.std()) == pytest.approx(INIT_STD, rel=0.05), name
            assert abs(float(values.mean())) < 0.1 * INIT_STD, name
        elif "ln" in name or name.startswith("norm"):
            expected = 1.0 if name.endswith("weight") else 0.0
            assert torch.equal(values, torch.full_like(values, expected)), name
        else:  # the Linear biases
            assert name.endswith("bias"), name
            assert float(values.abs().max()) == 0.0, name


# --- the corpus and its splits ----------------------------------------------------------------


def test_the_corpus_is_the_python_docs_and_its_hash_is_of_exactly_those_bytes() -> None:
    from pydoc_data.topics import topics

    corpus = python_docs_corpus()
    expected = "".join(topics[key] for key in sorted(topics)).encode("utf-8")
    assert corpus.text == expected
    assert corpus.sha256 == hashlib.sha256(expected).hexdigest()
    assert python_docs_corpus().sha256 == corpus.sha256  # stable from one read to the next
    assert corpus.identity["bytes"] == len(expected) > 400_000
    assert corpus.text.count(b'The "if" statement') >= 1  # real prose, not escaped source


def test_a_file_corpus_is_its_raw_bytes(tmp_path: Path) -> None:
    text = "naïve text\n".encode() * 50
    path = tmp_path / "book.txt"
    path.write_bytes(text)
    corpus = read_corpus(path)
    assert corpus.text == text
    assert corpus.identity == {
        "corpus": str(path),
        "bytes": len(text),
        "sha256": hashlib.sha256(text).hexdigest(),
    }


def test_splits_are_contiguous_slices_by_position() -> None:
    text = bytes(range(256)) * 4 + b"tail"  # 1028 bytes
    slices = corpus_slices(text)
    assert split_bounds(1028) == (925, 976)
    assert slices["train"] + slices["validation"] + slices["test"] == text
    assert [len(slices[name]) for name in ("train", "validation", "test")] == [925, 51, 52]


def test_windows_are_next_byte_pairs() -> None:
    x, y = windows(b"abcdefghij", 3)  # 10 bytes: 3 windows, the last byte only a target
    assert x.dtype == torch.uint8
    assert y.dtype == torch.int64
    assert [bytes(row.tolist()) for row in x] == [b"abc", b"def", b"ghi"]
    assert [bytes(row.tolist()) for row in y] == [b"bcd", b"efg", b"hij"]


def test_the_task_data_is_the_corpus_slices_in_windows() -> None:
    text = python_docs_corpus().text
    first, second = split_bounds(len(text))
    data = load_task_data("lm", None, None)
    assert data.x_test is not None
    assert data.y_test is not None
    assert data.x_train.shape == ((first - 1) // CONTEXT, CONTEXT)
    assert bytes(data.x_train[1].tolist()) == text[CONTEXT : 2 * CONTEXT]
    assert bytes(data.y_train[1].tolist()) == text[CONTEXT + 1 : 2 * CONTEXT + 1]
    assert bytes(data.x_test[0].tolist()) == text[second : second + CONTEXT]
    # The last training target comes before the test slice: nothing is shared.
    last = (data.x_train.shape[0]) * CONTEXT
    assert last <= first
    # The validation split is the slice between, measured by every run but trained on by none.
    assert data.x_val is not None
    assert bytes(data.x_val[0].tolist()) == text[first : first + CONTEXT]
    assert data.x_val.shape[0] * CONTEXT <= second - first
    without = get_task("lm").load(None, validation=False)
    assert without.x_val is None  # type: ignore[union-attr]
    assert torch.equal(without.x_train, data.x_train)  # type: ignore[union-attr]
    assert data.transform is not None
    assert data.transform(data.x_train[:1]).dtype == torch.int64


# --- the metric -------------------------------------------------------------------------------


def test_bits_per_byte_by_hand() -> None:
    # Position 0: uniform over 4 values, 2 bits. Position 1: logits (0, ln 3, 0, 0) make the
    # target's probability 3 / 6, 1 bit. Their mean: 1.5 bits per byte.
    logits = torch.tensor(
        [[[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3.0), 0.0, 0.0]]], dtype=torch.float64
    )
    targets = torch.tensor([[2, 1]])
    metric = MetricSum("bits_per_byte", "cross_entropy")
    metric.add(logits, targets)
    assert metric.value() == pytest.approx(1.5, abs=1e-12)
    # A second batch of two 1-bit predictions: the mean is over predictions, (2 + 1 + 1 + 1) / 4.
    metric.add(logits[:, 1:].expand(1, 2, 4).reshape(2, 1, 4), torch.tensor([[1], [1]]))
    assert metric.value() == pytest.approx(1.25, abs=1e-12)
    loss = MetricSum("loss", "cross_entropy")
    loss.add(logits, targets)
    assert loss.value() == pytest.approx(1.5 * math.log(2), abs=1e-12)  # nats: CE = bpb ln 2
    task = get_task("lm")
    assert task.higher_is_better is False
    assert task.reached(2.0)
    assert not task.reached(3.0)


# --- training ---------------------------------------------------------------------------------


def test_a_short_run_trains_and_records_the_corpus() -> None:
    run = lrlab.train("lm", optimizer="adamw", lr=3e-3, steps=4, seed=0)
    assert run.status == "done"
    assert run.steps == 4
    assert run.metric == "bits_per_byte"
    assert run.higher_is_better is False
    assert all(math.isfinite(v) for v in run.step_loss)
    assert run.step_loss[-1] < run.step_loss[0] < math.log(256) + 0.5
    assert run.extra["data"]["sha256"] == python_docs_corpus().sha256
    test_bits = run.epochs[-1].test_metric
    test_loss = run.epochs[-1].test_loss
    assert test_bits is not None
    assert test_loss is not None
    assert test_bits == pytest.approx(test_loss / math.log(2), rel=1e-9)


def test_lrlab_run_lm_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "lm", "--steps", "3", "--optimizer", "adamw", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "lm / adamw / seed 0: done" in out
    assert "bits_per_byte" in out
    assert "target bits_per_byte <= " in out


def test_runs_of_lm_vectorise_and_equal_the_runs_alone(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.bin"
    corpus.write_bytes(python_docs_corpus().text[:20_000])
    task_file = tmp_path / "tiny_lm.py"
    task_file.write_text(
        "from lrlab.tasks.lm import lm_task\n\n"
        "def make():\n"
        f"    return lm_task(corpus={str(corpus)!r}, context=16, width=32, layers=1,\n"
        "                   batch_size=8, steps=4, epoch_steps=2, name='tiny-lm')\n"
    )
    configs = [
        RunConfig(f"{task_file}:make", "adamw", lr=lr, seed=seed)
        for lr, seed in ((1e-3, 0), (3e-3, 1))
    ]
    groups, alone = plan_groups(configs)
    assert [len(group) for group in groups] == [2]
    assert alone == []
    # 1124 training windows make 141 batches of 8: a longer epoch takes a second pass.
    long_epoch = RunConfig(f"{task_file}:make", "adamw", lr=1e-3, epoch_steps=142)
    assert plan_groups([long_epoch])[1] == [
        (
            long_epoch,
            "an epoch of epoch_steps longer than one pass over the data has no vectorised form",
        )
    ]
    assert plan_groups([replace(long_epoch, epoch_steps=141)])[1] == []
    together = train_group(configs)
    for config, member in zip(configs, together, strict=True):
        single = train_alone(config)
        assert member.extra["vectorized"] == {"members": 2, "path": "loop"}
        assert member.step_loss == single.step_loss
        for name in ("train_metric", "test_metric", "test_loss"):
            assert [getattr(e, name) for e in member.epochs] == [
                getattr(e, name) for e in single.epochs
            ]
        assert member.extra["data"] == single.extra["data"] == read_corpus(corpus).identity


def test_lipschitz_lr_watches_the_tied_head() -> None:
    run = lrlab.train(
        "lm", optimizer="sgd", schedule="lipschitz(bound=smooth, source=train)", steps=3
    )
    assert run.status == "done"
    assert run.extra["controller"]["spec"].startswith("lipschitz")
    assert all(0 < lr < math.inf for lr in run.step_lr)


# --- bad input --------------------------------------------------------------------------------


def test_a_corpus_that_cannot_be_read(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with pytest.raises(ValueError, match=r"lm: corpus file cannot be read \(No such file") as info:
        lm_task(corpus=missing)
    assert str(missing) in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="corpus file cannot be read"):
        lm_task(corpus=tmp_path)  # a folder


def test_a_context_longer_than_a_split(tmp_path: Path) -> None:
    path = tmp_path / "small.txt"
    path.write_bytes(b"x" * 1000)  # slices of 900, 50 and 50 bytes
    assert lm_task(corpus=path, context=49).load().x_test.shape == (1, 49)  # type: ignore[union-attr]
    message = r"lm: context must be <= 49: the corpus's validation slice has 50 bytes.*context=50"
    with pytest.raises(ValueError, match=message):
        lm_task(corpus=path, context=50)
    # The built-in corpus is read lazily: the same check when its data loads.
    with pytest.raises(ValueError, match=r"context must be <= \d+: .*got context=100000"):
        lm_task(context=100_000).load()


def test_bad_input_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task_file = tmp_path / "mylm.py"
    task_file.write_text(
        "from lrlab.tasks.lm import lm_task\n\n"
        "def make():\n"
        f"    return lm_task(corpus={str(tmp_path / 'nope.txt')!r})\n"
    )
    assert main(["run", f"{task_file}:make", "--optimizer", "adamw", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "corpus file cannot be read" in err[0]
    assert "nope.txt" in err[0]


# --- reports ----------------------------------------------------------------------------------


def _stored(store: Store, optimizer: str, seed: int, sha: str) -> None:
    config = RunConfig(task="lm", optimizer=optimizer, lr=1e-3, seed=seed)
    run = record(config, [0.5, 0.95])
    run.extra["data"] = {"corpus": "pydoc_data.topics", "sha256": sha}
    store.put(config, run)


def test_a_report_says_when_runs_read_different_corpora(tmp_path: Path) -> None:
    with Store(tmp_path / "same.sqlite") as store:
        for seed in (0, 1):
            _stored(store, "adamw", seed, "a" * 64)
            _stored(store, "adam", seed, "a" * 64)
        same = store.runs()
    summaries = summarize(same)
    assert [s.data for s in summaries] == [("a" * 64,)] * 2
    assert "different data" not in terminal_table(summaries)
    assert "Different data" not in markdown(summaries, same, {}, "same.sqlite")

    with Store(tmp_path / "mixed.sqlite") as store:
        _stored(store, "adamw", 0, "a" * 64)
        _stored(store, "adamw", 1, "b" * 64)  # one method, two corpora
        _stored(store, "adam", 0, "c" * 64)
        mixed = store.runs()
    summaries = summarize(mixed)
    labels = {s.label: s.data for s in summaries}
    assert labels["adamw [2 data versions]"] == ("a" * 64, "b" * 64)
    assert labels["adam"] == ("c" * 64,)
    table = terminal_table(summaries)
    assert "runs read 3 different data (sha256 aaaaaaaaaaaa, bbbbbbbbbbbb, cccccccccccc)" in table
    report = markdown(summaries, mixed, {}, "mixed.sqlite")
    assert "**Different data.** These runs read 3 different versions" in report
