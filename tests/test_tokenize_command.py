"""`scratchformers tokenize`: train on a file, save, load, encode and decode through the CLI entry point."""
from __future__ import annotations

import ast
import json

import pytest

from scratchformers.train.cli import main
from scratchformers.reference.bpe import WordBPE, learn_bpe

TEXT = "the cat sat on the mat\nthe dog sat on the log\nthe cat and the dog\n" * 5


@pytest.fixture()
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_train_save_and_encode(corpus_file, tmp_path, capsys):
    saved = tmp_path / "bpe.json"
    rc = main(["tokenize", "--input", str(corpus_file), "--merges", "12", "--save", str(saved),
               "--encode", "the cat sat"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "merges learned  12" in out and "vocab size" in out and "characters per token" in out
    tok = WordBPE.load(saved)
    assert len(tok.merges) == 12
    assert tok.merges == learn_bpe(TEXT, 12)
    ids_line = next(line for line in out.splitlines() if line.startswith("ids:"))
    ids = ast.literal_eval(ids_line.removeprefix("ids:").strip())
    assert ids == tok.encode("the cat sat")
    tokens_line = next(line for line in out.splitlines() if line.startswith("tokens:"))
    assert ast.literal_eval(tokens_line.removeprefix("tokens:").strip()) == [tok.id2token[i] for i in ids]
    # The compression printed is the real one: characters / tokens of the corpus.
    n_tokens = len(tok.encode(TEXT))
    assert f"{len(TEXT) / n_tokens:.2f} characters per token ({n_tokens:,} tokens" in out


def test_load_decode_quiet(corpus_file, tmp_path, capsys):
    saved = tmp_path / "bpe.json"
    assert main(["tokenize", "--input", str(corpus_file), "--merges", "15", "--save", str(saved), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    tok = WordBPE.load(saved)
    ids = tok.encode("the dog sat on the mat")
    rc = main(["tokenize", "--load", str(saved), "--decode", " ".join(map(str, ids)), "--quiet"])
    assert rc == 0
    assert capsys.readouterr().out == "the dog sat on the mat\n"


def test_reference_impl_gives_the_same_file(corpus_file, tmp_path):
    for impl in ("fast", "reference"):
        assert main(["tokenize", "--input", str(corpus_file), "--merges", "15", "--impl", impl,
                     "--save", str(tmp_path / f"{impl}.json"), "--quiet"]) == 0
    assert (tmp_path / "fast.json").read_text() == (tmp_path / "reference.json").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--merges", "5", "--decode", "1 two"], "integer ids"),
        (["--merges", "5", "--decode", "99999"], "outside the vocabulary"),
        (["--kind", "word", "--vocab-size", "300"], "--vocab-size is for --kind byte"),
        (["--kind", "byte", "--merges", "10"], "--merges is for --kind word"),
        (["--merges", "-1"], "num_merges"),
    ],
)
def test_errors_are_reported(corpus_file, capsys, argv, message):
    assert main(["tokenize", "--input", str(corpus_file), "--quiet", *argv]) == 1
    assert message in capsys.readouterr().err


def test_too_many_merges_warns(corpus_file, capsys):
    assert main(["tokenize", "--input", str(corpus_file), "--merges", "100"]) == 0
    captured = capsys.readouterr()
    assert "warning: only 17 of the 100 requested merges" in captured.err
    assert "merges learned  17" in captured.out


def test_missing_input_file(tmp_path, capsys):
    assert main(["tokenize", "--input", str(tmp_path / "nope.txt")]) == 1
    assert "error" in capsys.readouterr().err


def test_byte_level_kind(corpus_file, tmp_path, capsys):
    pytest.importorskip("scratchformers.fast.bytebpe")
    saved = tmp_path / "byte.json"
    rc = main(["tokenize", "--kind", "byte", "--input", str(corpus_file), "--vocab-size", "270",
               "--save", str(saved), "--encode", "the cat"])
    out = capsys.readouterr().out
    assert rc == 0 and "vocab size      270" in out
    from scratchformers.fast.bytebpe import ByteLevelBPE

    tok = ByteLevelBPE.load(saved)
    ids_line = next(line for line in out.splitlines() if line.startswith("ids:"))
    assert ast.literal_eval(ids_line.removeprefix("ids:").strip()) == tok.encode("the cat")


@pytest.mark.parametrize("kind", ["word", "byte"])
def test_load_of_a_damaged_file_is_one_line(corpus_file, tmp_path, capsys, kind):
    saved = tmp_path / "tok.json"
    size = ["--merges", "5"] if kind == "word" else ["--vocab-size", "260"]
    assert main(["tokenize", "--kind", kind, "--input", str(corpus_file), *size, "--save", str(saved), "--quiet"]) == 0
    data = json.loads(saved.read_text(encoding="utf-8"))
    del data["merges"]
    saved.write_text(json.dumps(data), encoding="utf-8")
    assert main(["tokenize", "--kind", kind, "--load", str(saved), "--encode", "the cat"]) == 1
    err = capsys.readouterr().err
    assert err == f"scratchformers tokenize: error: {saved} is damaged: the 'merges' field is missing; save the " \
                  "tokenizer again\n"
