"""The package installs as designed: mapped folders, shipped data, the offline GPT-2 encoding, the CLI."""
from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys

import pytest

import scratchformers
from scratchformers.reference.gpt2_encoding import ENCODER_JSON_SHA256, VOCAB_BPE_SHA256, gpt2_files
from scratchformers.train.data import TINY_CHARS, shakespeare


ROOT = pathlib.Path(__file__).resolve().parent.parent
FOLDERS = ("reference", "fast", "kernels", "train", "exercises")


def test_mapped_packages_import() -> None:
    import scratchformers.fast.attention
    import scratchformers.kernels.flash_attention
    import scratchformers.reference.model
    import scratchformers.train.trainer

    for module, folder in ((scratchformers.fast.attention, "fast"), (scratchformers.kernels.flash_attention, "kernels"),
                           (scratchformers.reference.model, "reference"), (scratchformers.train.trainer, "train")):
        assert pathlib.Path(module.__file__).parent.name == folder


@pytest.mark.parametrize("name", FOLDERS)
def test_repository_folder_never_shadows_an_installed_package(tmp_path, name: str) -> None:
    """From the repository root, with or without the root on PYTHONPATH, `import <folder name>` finds an installed
    package of that name, not the repository's folder (which only ever imports as scratchformers.<name>)."""
    site = tmp_path / "site"
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text("THROWAWAY = True\n")
    probe = f"import {name}; assert {name}.THROWAWAY, {name}.__path__; import scratchformers.{name}"
    for pythonpath in (str(site), os.pathsep.join([str(ROOT), str(site)])):
        env = {**os.environ, "PYTHONPATH": pythonpath}
        subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT, env=env)


def test_hugging_face_kernels_imports_from_the_repository_root() -> None:
    """transformers >= 5 imports Hugging Face's `kernels` package; the repository's kernels/ must not take its place."""
    pytest.importorskip("kernels")
    probe = ("import kernels, pathlib; assert 'site-packages' in pathlib.Path(kernels.__file__).parts, kernels.__file__\n"
             "from transformers import GPT2LMHeadModel")
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT)


def test_bare_checkout_imports_with_only_pythonpath(bare_checkout: pathlib.Path, tmp_path) -> None:
    """A copy of the tracked files, nothing installed from it: PYTHONPATH=<copy> is enough for scratchformers.*, and
    every module comes from the copy (not from an installed or editable scratchformers)."""
    probe = ("import pathlib, scratchformers, scratchformers.reference.model as m, scratchformers.fast.attention as a, "
             "scratchformers.kernels.softmax as k, scratchformers.train.trainer as t, "
             "scratchformers.exercises.checks.core as e\n"
             "for mod in (scratchformers, m, a, k, t, e): assert pathlib.Path(mod.__file__).is_relative_to(%r), mod\n"
             % str(bare_checkout))
    env = {**os.environ, "PYTHONPATH": str(bare_checkout)}
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=tmp_path, env=env)
    solution = bare_checkout / "tests" / "exercises" / "reference" / "softmax.py"
    check = subprocess.run([sys.executable, "-m", "scratchformers", "check", "softmax", str(solution)], cwd=tmp_path,
                           env=env, capture_output=True, text=True)
    assert check.returncode == 0 and "all 3 checks pass" in check.stdout, check.stdout + check.stderr


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
    """A regular (non-editable) install: build the wheel, unpack it alone on sys.path, import and load data, and find
    the console script's entry point (train/cli.py) and every command (train/commands/)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"), str(ROOT)],
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
        "assert scratchformers.gpt2_encoding().encode('Hello world') == [15496, 995]\n"
        "from importlib.metadata import entry_points\n"
        "(script,) = entry_points(group='console_scripts', name='scratchformers')\n"
        "from scratchformers.train.cli import COMMANDS, build_parser, main\n"
        "assert script.load() is main and build_parser().prog == 'scratchformers' and 'train' in COMMANDS\n"
        "from scratchformers.exercises.checks import catalogue\n"
        "assert all('NotImplementedError' in catalogue.stub(name).read_text() for name in catalogue.ORDER)\n"
        "assert all(catalogue.exercise(name).checks for name in catalogue.ORDER)\n"
        % str(target)
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=tmp_path, env=env)


def test_front_door_exports_resolve() -> None:
    for name in scratchformers.__all__:
        assert getattr(scratchformers, name) is not None, name
    assert scratchformers.count_parameters(scratchformers.get_config("gpt2")) == 124_439_808


def test_only_the_library_folders_are_mapped() -> None:
    """Installed (the test suite runs on `pip install -e .`) or bare, scratchformers.* holds the library's folders and
    nothing else of the repository: no scratchformers.tests or .benchmarks, no scratchformers.scratchformers, and
    walking the package (what pdoc and sphinx autosummary do) ends."""
    import importlib
    import pkgutil

    for name in ("scratchformers.tests", "scratchformers.benchmarks", "scratchformers.scratchformers",
                 "scratchformers.tools"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)
    names = [module.name for module in pkgutil.walk_packages(scratchformers.__path__, "scratchformers.")]
    assert len(names) < 200 and not any(".scratchformers." in name for name in names)


def test_the_bare_checkout_maps_exactly_the_library_folders(bare_checkout: pathlib.Path, tmp_path) -> None:
    probe = ("import importlib, scratchformers, scratchformers.train.commands.train\n"
             "for name in ('tests', 'benchmarks', 'scratchformers', 'tools', 'notebooks'):\n"
             "    try:\n"
             "        importlib.import_module('scratchformers.' + name)\n"
             "    except ModuleNotFoundError:\n"
             "        continue\n"
             "    raise SystemExit('scratchformers.' + name + ' should not import')\n")
    env = {**os.environ, "PYTHONPATH": str(bare_checkout)}
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=tmp_path, env=env)


def test_the_front_doors_tokenizers_are_the_fast_trainers_and_need_no_triton() -> None:
    """``from scratchformers import WordBPE, ByteLevelBPE`` gives the fast trainers, drop-ins for the reference classes
    (subclasses, the same merges); importing the front door and training with them loads neither Triton nor the
    kernels."""
    probe = """
import sys
import scratchformers
from scratchformers.fast import bpe as fast_bpe, bytebpe as fast_bytebpe
from scratchformers.reference import bpe, bytebpe

assert scratchformers.WordBPE is fast_bpe.WordBPE and issubclass(fast_bpe.WordBPE, bpe.WordBPE)
assert scratchformers.ByteLevelBPE is fast_bytebpe.ByteLevelBPE
assert issubclass(fast_bytebpe.ByteLevelBPE, bytebpe.ByteLevelBPE)
text = scratchformers.shakespeare("tiny")[:20_000]
fast, reference = scratchformers.WordBPE(), bpe.WordBPE()
fast.train(text, num_merges=50)
reference.train(text, num_merges=50)
assert fast.merges == reference.merges
byte_level = scratchformers.ByteLevelBPE()
byte_level.train(text[:2_000], vocab_size=300)
assert byte_level.decode(byte_level.encode("To be, or not to be")) == "To be, or not to be"
loaded = sorted(name for name, module in sys.modules.items()  # with code: a checkout maps kernels/ as an empty package
                if name.startswith(("triton", "scratchformers.kernels")) and getattr(module, "__file__", None))
assert not loaded, loaded
"""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT, env=env)
