"""The package installs as designed: mapped folders, shipped data, the offline GPT-2 encoding, the CLI."""
from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys

import pytest

import scratchformers
from scratchformers.encoding import ENCODER_JSON_SHA256, VOCAB_BPE_SHA256, gpt2_files
from scratchformers.train.data import TINY_CHARS, shakespeare


def test_mapped_packages_import() -> None:
    import scratchformers.fast
    import scratchformers.kernels
    import scratchformers.reference
    import scratchformers.train

    for module in (scratchformers.fast, scratchformers.kernels, scratchformers.reference, scratchformers.train):
        assert module.__doc__


def test_shipped_gpt2_files_match_tiktoken_hashes() -> None:
    encoder_json, vocab_bpe = gpt2_files()
    assert hashlib.sha256(encoder_json.read_bytes()).hexdigest() == ENCODER_JSON_SHA256
    assert hashlib.sha256(vocab_bpe.read_bytes()).hexdigest() == VOCAB_BPE_SHA256


def test_gpt2_encoding_is_offline_and_real() -> None:
    enc = scratchformers.gpt2_encoding()
    assert enc.n_vocab == 50257
    assert enc.encode("Hello world") == [15496, 995]
    assert enc.encode("<|endoftext|>", allowed_special="all") == [50256]
    with pytest.raises(ValueError):
        enc.encode("<|endoftext|>")


def test_shakespeare_corpus() -> None:
    full, tiny = shakespeare(), shakespeare("tiny")
    assert len(full) == 5_057_321
    assert len(tiny) == TINY_CHARS and full.startswith(tiny)
    assert "To be, or not to be" in full
    assert full.count("by William Shakespeare") >= 30
    with pytest.raises(ValueError, match="tiny"):
        shakespeare("huge")  # type: ignore[arg-type]


def test_cli_help_lists_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scratchformers", "--help"], capture_output=True, text=True, check=True
    )
    assert "tokenize" in result.stdout


def test_wheel_installs_the_mapped_folders_and_data(tmp_path) -> None:
    """A regular (non-editable) install: build the wheel, unpack it alone on sys.path, import and load data."""
    root = pathlib.Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"), str(root)],
        check=True, capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("scratchformers-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    probe = (
        "import scratchformers, scratchformers.reference.model, scratchformers.fast, scratchformers.kernels\n"
        "from scratchformers.train.data import shakespeare\n"
        "assert scratchformers.__file__.startswith(%r)\n"
        "assert len(shakespeare('tiny')) == 1_115_394\n"
        "assert scratchformers.gpt2_encoding().encode('Hello world') == [15496, 995]\n" % str(target)
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=tmp_path, env=env)


def test_front_door_exports_resolve() -> None:
    for name in scratchformers.__all__:
        assert getattr(scratchformers, name) is not None, name
    assert scratchformers.count_parameters(scratchformers.get_config("gpt2")) == 124_439_808
