"""`prepare openwebtext --data-files`: the prepared tokens hold exactly the documents on disk now, a bad file is one
clear line, and a rerun that fails or is stopped anywhere leaves the previous dataset whole."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scratchformers import gpt2_encoding
from scratchformers.train.commands import prepare as prepare_command
from scratchformers.train.data import shakespeare
from scratchformers.train.documents import DataFileError
from scratchformers.train.meta import load_meta
from scratchformers.train.prepare_openwebtext import prepare_openwebtext
from scratchformers.train.prepare_shakespeare import prepare_shakespeare
from scratchformers.train.tokenizers import load_tokenizer

EOT = 50256


def prepare(out: Path, files: list[Path | str], cache: Path | None = None) -> dict:
    return prepare_openwebtext(out, data_files=[str(f) for f in files], num_proc=1, cache_dir=cache)


def documents_in(out: Path) -> list[str]:
    """Every document of a prepared folder, decoded, sorted (the split shuffles them)."""
    meta, enc, docs = load_meta(out), gpt2_encoding(), []
    for split in ("train", "val"):
        ids = np.fromfile(out / f"{split}.bin", dtype=meta["dtype"]).tolist()
        while ids:
            end = ids.index(EOT)
            docs.append(enc.decode(ids[:end]))
            ids = ids[end + 1 :]
    return sorted(docs)


def write_jsonl(path: Path, texts: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- the right documents


def test_a_changed_file_with_the_same_size_and_mtime_is_read_again(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "src" / "docs.jsonl", ["alpha " * 20, "beta " * 25, "gamma " * 10])
    stamp = path.stat()
    first = prepare(tmp_path / "out", [path], cache=tmp_path / "cache")
    write_jsonl(path, ["ALPHA " * 20, "BETA " * 25, "GAMMA " * 10])  # same length, other text
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert path.stat().st_size == stamp.st_size and path.stat().st_mtime_ns == stamp.st_mtime_ns
    second = prepare(tmp_path / "out", [path], cache=tmp_path / "cache")
    assert documents_in(tmp_path / "out") == sorted(["ALPHA " * 20, "BETA " * 25, "GAMMA " * 10])
    assert first["source"]["sha256"] != second["source"]["sha256"]
    assert second["source"]["files"] == 1 and second["source"]["bytes"] == stamp.st_size


def test_a_directory_is_an_error_naming_it_never_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "src" / "docs.jsonl", ["one", "two"])
    (tmp_path / "nested" / "sub").mkdir(parents=True)

    def no_hub(*args: object, **kwargs: object) -> None:
        raise AssertionError("the hub dataset was loaded")

    monkeypatch.setattr("datasets.load_dataset", no_hub)
    with pytest.raises(DataFileError, match=f"{tmp_path / 'src'}' is a directory; name its files"):
        prepare(tmp_path / "out", [tmp_path / "src"])
    with pytest.raises(DataFileError, match="only directories match"):
        prepare(tmp_path / "out", [tmp_path / "nested" / "*"])
    with pytest.raises(DataFileError, match="no file given"):
        prepare_openwebtext(tmp_path / "out", data_files=[], num_proc=1)
    assert not (tmp_path / "out" / "meta.json").exists()


def test_a_path_with_brackets_that_exists_is_taken_literally(tmp_path: Path) -> None:
    literal = write_jsonl(tmp_path / "src" / "part[1].jsonl", ["the bracketed file", "its second document"])
    write_jsonl(tmp_path / "src" / "part1.jsonl", ["the other file", "which a glob would match"])
    prepare(tmp_path / "out", [literal], cache=tmp_path / "cache")
    assert documents_in(tmp_path / "out") == sorted(["the bracketed file", "its second document"])
    prepare(tmp_path / "out", [tmp_path / "src" / "part?.jsonl"], cache=tmp_path / "cache")  # a pattern still globs
    assert documents_in(tmp_path / "out") == sorted(["the other file", "which a glob would match"])


def test_txt_documents_are_stored_byte_for_byte(tmp_path: Path) -> None:
    texts = ["Windows line\r\nends\r\n", "old Mac\rline ends\r", "mixed\n\r\n\r and a trailing space "]
    for i, text in enumerate(texts):
        (tmp_path / "src").mkdir(exist_ok=True)
        (tmp_path / "src" / f"doc{i}.txt").write_bytes(text.encode("utf-8"))
    prepare(tmp_path / "out", [tmp_path / "src" / "*.txt"], cache=tmp_path / "cache")
    assert documents_in(tmp_path / "out") == sorted(texts)


def test_formats_may_be_mixed_and_compressed(tmp_path: Path) -> None:
    import gzip

    write_jsonl(tmp_path / "src" / "a.jsonl", ["from json lines"])
    (tmp_path / "src" / "b.json").write_text(json.dumps([{"text": "from a json array", "id": 3}]))
    (tmp_path / "src" / "c.txt.gz").write_bytes(gzip.compress("from gzip\r\n".encode()))
    prepare(tmp_path / "out", [tmp_path / "src" / "*"], cache=tmp_path / "cache")
    assert documents_in(tmp_path / "out") == sorted(["from json lines", "from a json array", "from gzip\r\n"])


# --------------------------------------------------------------------------------------------- one-line errors

BAD_ROWS = {
    "null": ('{"text": null}', r"bad.jsonl, line 2: `text` is null, not a string"),
    "missing": ('{"body": "x"}', r"bad.jsonl, line 2 has no `text` field"),
    "number": ('{"text": 42}', r"bad.jsonl, line 2: `text` is a number, not a string"),
    "list": ('{"text": ["a", "b"]}', r"bad.jsonl, line 2: `text` is a list, not a string"),
    "surrogate": ('{"text": "broken \\ud800 half"}', r"bad.jsonl, line 2: `text` holds a lone surrogate \(\\ud800"),
    "not-json": ('{"text": "unterminated', r"bad.jsonl, line 2 is not valid JSON"),
    "not-object": ('["text"]', r"bad.jsonl, line 2 is a list, not a JSON object"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_a_bad_row_is_one_line_naming_file_and_line(tmp_path: Path, case: str) -> None:
    row, message = BAD_ROWS[case]
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a good first row"}\n' + row + '\n{"text": "and a good last one"}\n', encoding="utf-8")
    with pytest.raises(DataFileError, match=message) as caught:
        prepare(tmp_path / "out", [path], cache=tmp_path / "cache")
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_empty_files_and_bad_utf8_are_one_line_errors(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "good.jsonl", ["one", "two"])
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataFileError, match=r"empty.jsonl holds no document \(it is empty\); remove it"):
        prepare(tmp_path / "out", [tmp_path / "good.jsonl", tmp_path / "empty.jsonl"], cache=tmp_path / "cache")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataFileError, match=r"latin1.txt is not valid UTF-8 \(byte 3"):
        prepare(tmp_path / "out", [tmp_path / "latin1.txt"], cache=tmp_path / "cache")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(DataFileError, match=r"latin1.jsonl, line 1 is not valid UTF-8"):
        prepare(tmp_path / "out", [tmp_path / "latin1.jsonl"], cache=tmp_path / "cache")


def test_parquet_nulls_and_numbers_name_the_row(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["fine", None, "fine too"]}), tmp_path / "nulls.parquet")
    with pytest.raises(DataFileError, match=r"nulls.parquet, row 2: `text` is null"):
        prepare(tmp_path / "out", [tmp_path / "nulls.parquet"], cache=tmp_path / "cache")
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "ints.parquet")
    with pytest.raises(DataFileError, match=r"ints.parquet: column `text` holds int64 values, not strings"):
        prepare(tmp_path / "out", [tmp_path / "ints.parquet"], cache=tmp_path / "cache")


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    prepare_command.add_arguments(parser)
    return prepare_command.run(parser.parse_args(argv))


def test_cli_malformed_jsonl_is_one_line_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "broken.jsonl").write_text('{"text": "fine"}\n{"text": "cut off\n')
    code = run_cli(["openwebtext", "--data-files", str(tmp_path / "broken.jsonl"), "--out", str(tmp_path / "out"),
                    "--num-proc", "1", "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "DatasetGenerationError" not in err
    lines = [line for line in err.splitlines() if line.startswith("scratchformers prepare: error:")]
    assert len(lines) == 1 and "broken.jsonl, line 2 is not valid JSON" in lines[0]


# ---------------------------------------------------------------------------------- a failed rerun keeps the data


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_rerun_that_fails_on_a_bad_row_keeps_the_previous_dataset(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", ["first document", "second document", "third one"])
    prepare(tmp_path / "out", [good], cache=tmp_path / "cache")
    before = snapshot(tmp_path / "out")
    bad = write_jsonl(tmp_path / "bad.jsonl", ["new first", None])
    with pytest.raises(DataFileError):
        prepare(tmp_path / "out", [bad], cache=tmp_path / "cache")
    assert snapshot(tmp_path / "out") == before
    assert documents_in(tmp_path / "out") == sorted(["first document", "second document", "third one"])


def decoded_splits(folder: Path) -> tuple[dict, str]:
    """The folder's meta and its train + val text, decoded with its own tokenizer (raises if it does not load)."""
    meta = load_meta(folder)
    tok = load_tokenizer(meta)
    text = " ".join(tok.decode(np.fromfile(folder / f"{s}.bin", dtype=meta["dtype"]).tolist()) for s in ("train", "val"))
    return meta, text


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_stopping_a_rerun_at_any_rename_leaves_the_old_or_the_new_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tokenizer: str
) -> None:
    """Replay the replacement, failing the first, second, ... rename (where a crash would stop it): the folder must
    then read as the old dataset or the new one, whole, and the next run must work."""
    corpus = shakespeare("tiny")[:30_000]  # the protocol is under test, not the corpus: keep each run short
    monkeypatch.setattr("scratchformers.train.prepare_shakespeare.shakespeare", lambda variant: corpus)
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    prepare_shakespeare(old_dir, tokenizer, "tiny", val_fraction=0.1, bpe_merges=30)
    prepare_shakespeare(new_dir, tokenizer, "tiny", val_fraction=0.3, bpe_merges=40)
    old, new = decoded_splits(old_dir), decoded_splits(new_dir)
    real_replace, seen = os.replace, set()
    for fail_at in range(1, 20):
        work = tmp_path / f"work{fail_at}"
        shutil.copytree(old_dir, work)
        calls = 0

        def crash_at(src: object, dst: object) -> None:
            nonlocal calls
            calls += 1
            if calls == fail_at:
                raise OSError("simulated crash")
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", crash_at)
        try:
            prepare_shakespeare(work, tokenizer, "tiny", val_fraction=0.3, bpe_merges=40)
            finished = True
        except OSError:
            finished = False
        monkeypatch.setattr(os, "replace", real_replace)
        meta, text = decoded_splits(work)
        state = "old" if meta["tokens"] == old[0]["tokens"] else "new"
        expected = old if state == "old" else new
        assert meta["tokens"] == expected[0]["tokens"] and text == expected[1]
        seen.add(state)
        if finished:
            break
    assert seen == {"old", "new"} and finished  # both sides of the commit point were hit
    prepare_shakespeare(work, tokenizer, "tiny", val_fraction=0.1, bpe_merges=30)  # and a later run works
    assert decoded_splits(work)[1] == old[1]


def test_killing_prepare_mid_run_keeps_the_previous_dataset(tmp_path: Path) -> None:
    out = tmp_path / "data"
    prepare_shakespeare(out, "char", "tiny")
    before = snapshot(out)
    code = ("from scratchformers.train.prepare_shakespeare import prepare_shakespeare; "
            f"prepare_shakespeare({str(out)!r}, 'gpt2', 'full', val_fraction=0.5)")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "train.bin.new").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert (out / "train.bin.new").exists(), "the run never started writing; nothing was tested"
    assert load_meta(out)["dataset"]["tokenizer"] == "char"
    assert {name: data for name, data in snapshot(out).items() if ".new" not in name} == before
    prepare_shakespeare(out, "char", "tiny", val_fraction=0.2)  # the next run clears the leftovers
    assert not any(".new" in p.name for p in out.iterdir())
