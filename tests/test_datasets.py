"""One definition of each dataset fact: `prepare` writes where `train` reads, meta.json records what the folder
holds, and `train` refuses data that is not what it was asked for."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from scratchformers.train.commands import prepare as prepare_command
from scratchformers.train.config import TrainConfig, get_train_config
from scratchformers.train.datasets import DatasetSpec, requested_spec, shakespeare_spec
from scratchformers.train.ddp import DistContext
from scratchformers.train.meta import DatasetMissingError
from scratchformers.train.prepare_shakespeare import prepare_shakespeare
from scratchformers.train.run_data import ensure_data

SINGLE = DistContext()


def run_prepare(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    prepare_command.add_arguments(parser)
    return prepare_command.run(parser.parse_args(argv))


@pytest.mark.parametrize(
    ("prepare_args", "config", "folder"),
    [
        ([], dict(tokenizer="gpt2"), "data/shakespeare_gpt2"),
        (["--tokenizer", "char"], dict(), "data/shakespeare_char"),
        (["--tokenizer", "char", "--variant", "tiny"], dict(shakespeare_variant="tiny"), "data/shakespeare_tiny_char"),
        (["--tokenizer", "bpe"], dict(tokenizer="bpe"), "data/shakespeare_bpe4000"),
        (["--tokenizer", "bpe", "--bpe-merges", "2000", "--variant", "tiny"],
         dict(tokenizer="bpe", bpe_merges=2000, shakespeare_variant="tiny"), "data/shakespeare_tiny_bpe2000"),
    ],
)
def test_prepare_writes_where_train_reads(prepare_args: list[str], config: dict, folder: str) -> None:
    parser = argparse.ArgumentParser()
    prepare_command.add_arguments(parser)
    args = parser.parse_args(["shakespeare", *prepare_args])
    assert shakespeare_spec(args.tokenizer, args.variant, args.bpe_merges).directory() == folder
    assert TrainConfig(**config).resolved_data_dir() == folder
    assert get_train_config("gpt2-owt").resolved_data_dir() == "data/openwebtext"


def test_prepare_tiny_then_default_train_never_reads_the_tiny_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_prepare(["shakespeare", "--tokenizer", "char", "--variant", "tiny"]) == 0
    assert "wrote data/shakespeare_tiny_char" in capsys.readouterr().out
    meta = ensure_data(TrainConfig(), SINGLE)  # the default run: full Shakespeare, characters
    assert meta["data_dir"] == "data/shakespeare_char" and meta["dataset"]["variant"] == "full"
    assert meta["characters"]["train"] + meta["characters"]["val"] == 5_057_321


def test_a_folder_holding_another_variant_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_prepare(["shakespeare", "--tokenizer", "char", "--variant", "tiny", "--out", "data/shakespeare_char"]) == 0
    with pytest.raises(ValueError, match=r"data/shakespeare_char holds shakespeare \(tiny, char tokenizer\) but "
                                         r"shakespeare \(full, char tokenizer\) was asked for: to train on it pass "
                                         r"--shakespeare-variant tiny, or run `scratchformers prepare shakespeare "
                                         r"--tokenizer char` to replace it"):
        ensure_data(TrainConfig(), SINGLE)
    assert ensure_data(TrainConfig(shakespeare_variant="tiny", data_dir="data/shakespeare_char"), SINGLE)


def test_bpe_merges_must_match(tmp_path: Path) -> None:
    prepare_shakespeare(tmp_path / "bpe", "bpe", "tiny", bpe_merges=50)
    asked = dict(data_dir=str(tmp_path / "bpe"), tokenizer="bpe", shakespeare_variant="tiny")
    with pytest.raises(ValueError, match=r"\(tiny, bpe tokenizer, 50 merges\) but .* 4000 merges\) was asked for: "
                                         r"to train on it pass --bpe-merges 50"):
        ensure_data(TrainConfig(**asked), SINGLE)
    assert ensure_data(TrainConfig(**asked, bpe_merges=50), SINGLE)["dataset"]["bpe_merges"] == 50


def test_data_without_a_recorded_dataset_is_refused(tmp_path: Path) -> None:
    prepare_shakespeare(tmp_path / "old", "char", "tiny")
    meta = json.loads((tmp_path / "old" / "meta.json").read_text())
    del meta["dataset"]  # as written before datasets were recorded
    (tmp_path / "old" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"does not record which dataset it holds \(prepared by an older"):
        ensure_data(TrainConfig(data_dir=str(tmp_path / "old"), shakespeare_variant="tiny"), SINGLE)


def test_missing_data_names_the_command_for_its_dataset(tmp_path: Path) -> None:
    owt = get_train_config("gpt2-owt", data_dir=str(tmp_path / "owt"))
    with pytest.raises(DatasetMissingError, match="run `scratchformers prepare openwebtext") as caught:
        ensure_data(owt, SINGLE)
    assert "shakespeare" not in str(caught.value)
    custom = TrainConfig(dataset="mycorpus", data_dir=str(tmp_path / "mine"))
    assert requested_spec(custom) is None
    with pytest.raises(DatasetMissingError, match="prepare openwebtext --data-files FILE"):
        ensure_data(custom, SINGLE)


def test_openwebtext_data_is_not_shakespeare(tmp_path: Path) -> None:
    prepare_shakespeare(tmp_path / "s", "gpt2", "tiny")
    owt = get_train_config("gpt2-owt", data_dir=str(tmp_path / "s"))
    with pytest.raises(ValueError, match=r"holds shakespeare \(tiny, gpt2 tokenizer\) but openwebtext \(gpt2 "
                                         r"tokenizer\) was asked for: to train on it pass --dataset shakespeare"):
        ensure_data(owt, SINGLE)


def test_dataset_spec_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="unknown tokenizer"):
        DatasetSpec("shakespeare", "wordpiece", "full")
    with pytest.raises(ValueError, match="variant"):
        DatasetSpec("shakespeare", "char", "medium")
    with pytest.raises(ValueError, match="bpe_merges"):
        DatasetSpec("shakespeare", "char", "full", bpe_merges=10)
    with pytest.raises(ValueError, match="gpt2 tokenizer"):
        DatasetSpec("openwebtext", "char")
    with pytest.raises(ValueError, match="bpe_merges must be at least 1"):
        TrainConfig(bpe_merges=0)
    assert shakespeare_spec("char", "tiny", bpe_merges=123).bpe_merges is None  # merges count only for bpe
