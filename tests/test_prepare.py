"""Data preparation: Shakespeare with each tokenizer, OpenWebText-style local documents, metadata checks, CLI."""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from scratchformers import gpt2_encoding
from scratchformers.train.commands import prepare as prepare_command
from scratchformers.train.data import shakespeare
from scratchformers.train.documents import DataFileError
from scratchformers.train.meta import check_vocab, load_meta, token_dtype
from scratchformers.train.prepare_openwebtext import prepare_openwebtext
from scratchformers.train.prepare_shakespeare import prepare_shakespeare
from scratchformers.train.tokenizers import CharTokenizer, load_tokenizer

EOT = 50256


@pytest.fixture(scope="module", params=["gpt2", "char", "bpe"])
def shakespeare_tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp(f"shakespeare_{request.param}")
    prepare_shakespeare(out, tokenizer=request.param, variant="tiny", bpe_merges=200)
    return request.param, out


def read_split(data_dir: Path, split: str, meta: dict) -> np.ndarray:
    return np.fromfile(data_dir / f"{split}.bin", dtype=meta["dtype"])


def test_shakespeare_metadata(shakespeare_tiny: tuple[str, Path]) -> None:
    kind, data_dir = shakespeare_tiny
    text = shakespeare("tiny")
    meta = json.loads((data_dir / "meta.json").read_text())
    tok = load_tokenizer(meta, data_dir)
    assert meta["tokenizer"]["kind"] == kind
    assert meta["dataset"] == {"name": "shakespeare", "tokenizer": kind, "variant": "tiny",
                               "bpe_merges": 200 if kind == "bpe" else None}
    assert meta["source"]["variant"] == "tiny"
    assert meta["vocab_size"] == tok.vocab_size
    assert meta["dtype"] == "uint16"
    assert meta["source"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    n_val = len(text) - int(len(text) * 0.9)
    assert meta["characters"] == {"train": len(text) - n_val, "val": n_val}
    for split in ("train", "val"):
        ids = read_split(data_dir, split, meta)
        assert len(ids) == meta["tokens"][split] > 0
        assert ids.max() < meta["vocab_size"]
    if kind == "char":
        assert meta["vocab_size"] == len(set(text)) and meta["tokens"] == meta["characters"]
    if kind == "gpt2":
        assert meta["tokens"]["val"] == len(gpt2_encoding().encode_ordinary(text[-n_val:]))


def test_shakespeare_round_trip(shakespeare_tiny: tuple[str, Path]) -> None:
    kind, data_dir = shakespeare_tiny
    text = shakespeare("tiny")
    meta = load_meta(data_dir)
    tok = load_tokenizer(meta)
    n_train = meta["characters"]["train"]
    train_text, val_text = text[:n_train], text[n_train:]
    if kind == "bpe":  # the word BPE keeps words, not whitespace: it decodes to the words joined by single spaces
        train_text, val_text = " ".join(train_text.split()), " ".join(val_text.split())
    val = tok.decode(read_split(data_dir, "val", meta).tolist())
    assert val == val_text  # the held-out text is the last 10 %, contiguous, decoded exactly
    head = tok.decode(read_split(data_dir, "train", meta)[:500].tolist())
    assert len(head) >= 500 and train_text.startswith(head)


def test_char_tokenizer() -> None:
    tok = CharTokenizer.from_text("to be or not")
    assert tok.chars == " benort" and tok.vocab_size == 7
    assert tok.decode(tok.encode("not to be")) == "not to be"
    assert CharTokenizer.from_dict(tok.to_dict()).encode("be") == tok.encode("be")
    with pytest.raises(ValueError, match=r"\['q', 'z'\]"):
        tok.encode("tone zoo q")
    with pytest.raises(ValueError, match="kind"):
        load_tokenizer({"tokenizer": {"kind": "sentencepiece"}})


def test_gpt2_tokenizer_matches_tiktoken() -> None:
    tok = load_tokenizer({"tokenizer": {"kind": "gpt2"}})
    text = "Hello world <|endoftext|> 日本"
    assert tok.vocab_size == 50257
    assert tok.encode(text) == gpt2_encoding().encode_ordinary(text)
    assert EOT not in tok.encode(text)  # the separator cannot be smuggled in through text
    assert tok.decode(tok.encode(text)) == text


def test_token_dtype() -> None:
    assert token_dtype(50257) == np.uint16 and token_dtype(2**16) == np.uint16
    assert token_dtype(2**16 + 1) == np.uint32


@pytest.fixture()
def char_dir(tmp_path: Path) -> Path:
    out = tmp_path / "char"
    prepare_shakespeare(out, tokenizer="char", variant="tiny")
    return out


def test_load_meta_refuses_truncated_and_missing(char_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no prepared dataset .* `scratchformers prepare shakespeare --out"):
        load_meta(tmp_path / "never_prepared")
    size = (char_dir / "train.bin").stat().st_size
    with open(char_dir / "train.bin", "r+b") as f:
        f.truncate(size - 2)
    with pytest.raises(ValueError, match="truncated"):
        load_meta(char_dir)
    (char_dir / "train.bin").unlink()
    with pytest.raises(FileNotFoundError, match="train.bin is missing"):
        load_meta(char_dir)
    (char_dir / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="malformed"):
        load_meta(char_dir)


def test_check_vocab(char_dir: Path) -> None:
    meta = load_meta(char_dir)
    check_vocab(meta, meta["vocab_size"])
    check_vocab(meta, 50304)
    with pytest.raises(ValueError, match="smaller than the data's"):
        check_vocab(meta, meta["vocab_size"] - 1)


def test_prepare_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tokenizer"):
        prepare_shakespeare(tmp_path, tokenizer="wordpiece", variant="tiny")
    with pytest.raises(ValueError, match="val_fraction"):
        prepare_shakespeare(tmp_path, tokenizer="char", variant="tiny", val_fraction=1.0)


# ---------------------------------------------------------------------------------------------------- OpenWebText

DOCUMENTS = [f"Document {i}: " + "the quick brown fox jumps. " * (i + 1) + "Ünïcode ✓" for i in range(9)]


def write_documents(folder: Path, fmt: str) -> list[str]:
    """The documents as local files in one of the supported formats; returns the --data-files patterns."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        with open(folder / "docs.jsonl", "w", encoding="utf-8") as f:
            for i, doc in enumerate(DOCUMENTS):
                f.write(json.dumps({"id": i, "text": doc}) + "\n")
        return [str(folder / "*.jsonl")]
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"text": DOCUMENTS[:5]}), folder / "a.parquet")
        pq.write_table(pa.table({"text": DOCUMENTS[5:]}), folder / "b.parquet")
        return [str(folder / "a.parquet"), str(folder / "b.parquet")]
    for i, doc in enumerate(DOCUMENTS):  # text: one document per file
        (folder / f"doc{i}.txt").write_text(doc + "\n\nwith a blank line inside", encoding="utf-8")
    return [str(folder / "*.txt")]


def expected_documents(fmt: str) -> list[str]:
    return [doc + "\n\nwith a blank line inside" for doc in DOCUMENTS] if fmt == "text" else DOCUMENTS


def check_owt_output(out: Path, documents: list[str]) -> dict:
    meta = load_meta(out)
    enc = gpt2_encoding()
    assert meta["tokenizer"] == {"kind": "gpt2"} and meta["dtype"] == "uint16" and meta["vocab_size"] == 50257
    assert meta["documents"] == {"train": len(documents) - 1, "val": 1}  # ceil(0.0005 * n) = 1 document held out
    decoded = []
    for split in ("train", "val"):
        ids = np.fromfile(out / f"{split}.bin", dtype=np.uint16)
        assert len(ids) == meta["tokens"][split]
        assert ids[-1] == EOT and (ids == EOT).sum() == meta["documents"][split]
        ends = np.flatnonzero(ids == EOT)
        starts = np.concatenate([[0], ends[:-1] + 1])
        decoded += [enc.decode(ids[s:e].tolist()) for s, e in zip(starts, ends)]
    assert sorted(decoded) == sorted(documents)  # every document exactly once, split only at the separators
    assert sum(meta["tokens"].values()) == sum(len(enc.encode_ordinary(d)) + 1 for d in documents)
    return meta


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "text"])
def test_openwebtext_local_files(tmp_path: Path, fmt: str) -> None:
    patterns = write_documents(tmp_path / "src", fmt)
    meta = prepare_openwebtext(tmp_path / "out", data_files=patterns, num_proc=1, cache_dir=tmp_path / "cache")
    check_owt_output(tmp_path / "out", expected_documents(fmt))
    assert meta["separator"] == EOT


def test_openwebtext_two_processes_write_the_same_files(tmp_path: Path) -> None:
    patterns = write_documents(tmp_path / "src", "jsonl")
    for num_proc in (1, 2):
        prepare_openwebtext(tmp_path / f"out{num_proc}", data_files=patterns, num_proc=num_proc,
                            cache_dir=tmp_path / f"cache{num_proc}")
    check_owt_output(tmp_path / "out2", DOCUMENTS)
    for name in ("train.bin", "val.bin"):
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes()


def test_openwebtext_max_documents(tmp_path: Path) -> None:
    patterns = write_documents(tmp_path / "src", "jsonl")
    meta = prepare_openwebtext(tmp_path / "out", data_files=patterns, num_proc=1, max_documents=4,
                               cache_dir=tmp_path / "cache")
    assert meta["documents"] == {"train": 3, "val": 1}
    check_owt_output(tmp_path / "out", DOCUMENTS[:4])


def test_openwebtext_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    write_documents(src, "jsonl")
    with pytest.raises(DataFileError, match="nothing matches"):
        prepare_openwebtext(tmp_path / "out", data_files=[str(src / "*.parquet")], num_proc=1)
    (src / "notes.csv").write_text("text\nhello\n")
    with pytest.raises(ValueError, match="cannot tell the format"):
        prepare_openwebtext(tmp_path / "out", data_files=[str(src / "*")], num_proc=1)
    (src / "one.txt").write_text("a single document")
    with pytest.raises(ValueError, match="at least 2 documents"):
        prepare_openwebtext(tmp_path / "out", data_files=[str(src / "one.txt")], num_proc=1,
                            cache_dir=tmp_path / "cache")
    with open(src / "untitled.jsonl", "w") as f:
        f.write('{"body": "no text column"}\n{"body": "here either"}\n')
    with pytest.raises(ValueError, match=r"untitled.jsonl, line 1 has no `text` field"):
        prepare_openwebtext(tmp_path / "out", data_files=[str(src / "untitled.jsonl")], num_proc=1,
                            cache_dir=tmp_path / "cache")

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'openwebtext' on the Hub")

    monkeypatch.setattr("datasets.load_dataset", offline)
    with pytest.raises(RuntimeError, match="--data-files"):
        prepare_openwebtext(tmp_path / "out", num_proc=1)
    assert not (tmp_path / "out" / "meta.json").exists()


# ------------------------------------------------------------------------------------------------------------ CLI


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    prepare_command.add_arguments(parser)
    return prepare_command.run(parser.parse_args(argv))


def test_cli_prepare_shakespeare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "chars"
    assert run_cli(["shakespeare", "--tokenizer", "char", "--variant", "tiny", "--out", str(out)]) == 0
    meta = load_meta(out)
    printed = capsys.readouterr().out
    assert f"train {meta['tokens']['train']:,} tokens" in printed and "char tokenizer" in printed


def test_cli_reports_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["openwebtext", "--data-files", str(tmp_path / "missing*.jsonl"), "--out", str(tmp_path)]) == 1
    assert "error: --data-files: nothing matches" in capsys.readouterr().err


def test_cli_help_has_examples() -> None:
    parser = argparse.ArgumentParser()
    prepare_command.add_arguments(parser)
    assert "scratchformers prepare shakespeare --tokenizer char" in prepare_command.__doc__
    with pytest.raises(SystemExit):
        parser.parse_args(["shakespeare", "--tokenizer", "unknown"])
