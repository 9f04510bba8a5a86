"""The command line against a hostile but realistic user: every mistake is refused with one line, before any work,
and no file of an earlier run changes.

Each case runs ``scratchformers ...`` in-process (``cli.main``) next to a finished run, then checks the exit code,
that stderr is one line saying what is wrong and what to do, and that every file of the finished run is byte for byte
what it was. The cases that need two processes (the output folder's lock) start real ones.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scratchformers.train import checkpoint
from scratchformers.train.checkpoint import load_checkpoint
from scratchformers.train.cli import main
from scratchformers.train.run_dir import LOCK_FILE

TINY = ["--num-layers", "1", "--num-heads", "2", "--emb-dim", "32", "--max-len", "16", "--batch-size", "4",
        "--eval-interval", "2", "--eval-batches", "2", "--log-interval", "1", "--num-threads", "1", "--no-progress",
        "--num-samples", "1", "--sample-tokens", "5", "--no-plot", "--dtype", "float32"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the sha256 of its bytes (the lock file aside: it only names its holder)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_FILE}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, char_data: str) -> Path:
    """A finished 4-step run (last.pt and best.pt at step 4, log.jsonl, samples.txt) on the tiny corpus."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--data-dir", char_data, "--shakespeare-variant", "tiny", "--max-steps", "4",
                 "--out-dir", str(out), *TINY]) == 0
    return out


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run, for the cases that could damage it."""
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def refuse(capsys: pytest.CaptureFixture, argv: list[str], code: int, *needles: str) -> str:
    """Run ``argv``; check its exit code and that stderr is one line holding every needle; return that line."""
    assert main(argv) == code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    return err[0]


def train(char_data: str, out: Path, *more: str) -> list[str]:
    return ["train", "--data-dir", char_data, "--shakespeare-variant", "tiny", "--out-dir", str(out), *TINY, *more]


# ------------------------------------------------------------------------------------- the run's own folder


def test_a_fresh_run_refuses_a_folder_holding_a_run(char_data, finished_run, capsys):
    before = snapshot(finished_run)
    refuse(capsys, train(char_data, finished_run, "--max-steps", "2"), 1,
           f"{finished_run} already holds a training run", "--resume", "--out-dir", "--overwrite")
    assert snapshot(finished_run) == before


def test_overwrite_replaces_the_run_and_leaves_nothing_of_the_old_one(char_data, run, capsys):
    old_best = (run / "best.pt").read_bytes()
    assert main(train(char_data, run, "--max-steps", "1", "--eval-interval", "5", "--overwrite",
                      "--num-samples", "0")) == 0
    capsys.readouterr()
    assert not (run / "best.pt").exists() or (run / "best.pt").read_bytes() != old_best
    assert load_checkpoint(run / "last.pt")["step"] == 1
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and max(steps) == 1  # the new run's log alone
    assert not (run / "samples.txt").exists()


def test_resume_and_overwrite_together_are_refused(char_data, finished_run, capsys):
    before = snapshot(finished_run)
    refuse(capsys, train(char_data, finished_run, "--resume", "--overwrite"), 2, "choose one")
    assert snapshot(finished_run) == before


def test_a_second_run_into_a_locked_folder_is_refused_and_kill_9_leaves_no_stale_lock(char_data, tmp_path, capsys):
    out = tmp_path / "held"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from scratchformers.train.run_dir import RunLock; lock = RunLock(Path(sys.argv[1])); "
         "print('locked', flush=True); time.sleep(120)", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        refuse(capsys, train(char_data, out, "--max-steps", "1"), 1,
               f"{out} is in use by another training run (pid {holder.pid} on ", "--out-dir")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing of a run was written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(train(char_data, out, "--max-steps", "1", "--num-samples", "0")) == 0  # the OS dropped the lock
    assert load_checkpoint(out / "last.pt")["step"] == 1


def test_two_trainings_started_together_into_one_folder(char_data, tmp_path):
    """The issue's reproduction: two `scratchformers train` processes, different seeds, one --out-dir. One trains;
    the other refuses with one line (the folder is locked, or, if the first has finished, holds its run)."""
    out = tmp_path / "dup"
    procs = [subprocess.Popen([sys.executable, "-m", "scratchformers", *train(char_data, out, "--max-steps", "6",
                                                                               "--seed", str(seed))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    refused = next(err for code, err in results if code == 1).strip().splitlines()
    assert len(refused) == 1 and ("is in use by another training run" in refused[0]
                                  or "already holds a training run" in refused[0]), refused
    steps = [r["step"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    assert steps == list(range(1, 7))
    winner_seed = 1 if results[0][0] == 0 else 2
    assert load_checkpoint(out / "last.pt")["train_config"]["seed"] == winner_seed


# ------------------------------------------------------------------------------ refused before any work


@pytest.mark.parametrize("flags, needle", [
    (["--temperature", "-1"], "temperature must be a finite number ≥ 0"),
    (["--top-k", "-1"], "top_k must not be negative"),
    (["--num-samples", "-1"], "num_samples must not be negative"),
    (["--sample-prompt", "Ω"], "--sample-prompt 'Ω': CharTokenizer: characters not in the vocabulary: ['Ω']"),
    (["--device", "banana"], "--device 'banana' is not a device"),
    (["--allow-data-change"], "--allow-data-change is for --resume"),
    (["--optimizer", "sgd"], "optimizer must be 'adamw' or 'muon', got 'sgd'"),
    (["--schedule", "linear"], "schedule must be 'cosine' or 'wsd', got 'linear'"),
])
def test_bad_flags_are_refused_before_any_training(char_data, tmp_path, capsys, flags, needle):
    out = tmp_path / "out"
    code = 2 if flags == ["--allow-data-change"] else 1
    refuse(capsys, train(char_data, out, "--max-steps", "3", *flags), code, needle)
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == [LOCK_FILE]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_device_cuda_without_cuda_is_one_line(char_data, tmp_path, capsys):
    refuse(capsys, train(char_data, tmp_path / "out", "--device", "cuda"), 1, "--device cuda: ", "--device cpu")
    refuse(capsys, ["sample", "--checkpoint", str(tmp_path / "x.pt"), "--device", "cuda"], 1, "--device cuda: ")


def test_muon_on_a_torch_without_it_is_one_line(char_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    out = tmp_path / "out"
    refuse(capsys, train(char_data, out, "--optimizer", "muon"), 1, "torch.optim.Muon", "torch 2.9",
           f"this is torch {torch.__version__}", "pip install 'torch>=2.9'")
    assert not out.exists()


def test_an_out_dir_that_is_a_file_or_under_one_is_refused(char_data, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    refuse(capsys, train(char_data, afile), 1, f"--out-dir {afile} is a file, not a folder")
    refuse(capsys, train(char_data, afile / "sub"), 1, f"--out-dir {afile / 'sub'} lies under {afile}, which is a file")
    assert afile.read_text() == "mine"


def test_a_read_only_out_dir_is_refused_at_start_up_even_on_resume(char_data, run, monkeypatch, capsys):
    """The lock file is the first thing a run writes, so an unwritable folder is found before any step runs. (Root
    writes into a chmod 555 folder anyway: then the permission error is what open() would raise.)"""
    from scratchformers.train import run_dir

    if os.geteuid() == 0:
        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        monkeypatch.setattr(run_dir, "open", denied, raising=False)
    else:
        run.chmod(0o555)
    before = snapshot(run)
    try:
        refuse(capsys, train(char_data, run, "--resume", "--max-steps", "8"), 1,
               f"cannot write to --out-dir {run}: Permission denied")
    finally:
        run.chmod(0o755)
    assert snapshot(run) == before


# ------------------------------------------------------------------------------------- what resume checks


def test_resume_refuses_another_architecture(char_data, finished_run, capsys):
    before = snapshot(finished_run)
    refuse(capsys, train(char_data, finished_run, "--resume", "--max-steps", "8", "--num-heads", "4"), 1,
           "--num-heads 4 (the checkpoint's num_heads is 2)", "another --out-dir")
    assert snapshot(finished_run) == before


def test_resume_keeps_the_optimizer(char_data, finished_run, capsys):
    before = snapshot(finished_run)
    trained_with = load_checkpoint(finished_run / "last.pt")["train_config"]["optimizer"]
    other = "adamw" if trained_with == "muon" else "muon"
    refuse(capsys, train(char_data, finished_run, "--resume", "--max-steps", "8", "--optimizer", other), 1,
           f"was trained with --optimizer {trained_with}", "a resumed run keeps its optimizer")
    assert snapshot(finished_run) == before


def test_a_checkpoint_from_before_the_optimizer_choice_resumes_with_adamw_on_the_cosine(char_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train(char_data, out, "--max-steps", "2", "--optimizer", "adamw", "--schedule", "cosine")) == 0
    state = torch.load(out / "last.pt", weights_only=False)
    for name in ("optimizer", "schedule", "cooldown_frac", "muon_learning_rate", "muon_momentum", "muon_weight_decay"):
        del state["train_config"][name]  # as saved before --optimizer and --schedule existed
    torch.save(state, out / "last.pt")
    assert main(train(char_data, out, "--resume", "--max-steps", "4")) == 0
    resumed = load_checkpoint(out / "last.pt")
    assert resumed["step"] == 4
    assert (resumed["train_config"]["optimizer"], resumed["train_config"]["schedule"]) == ("adamw", "cosine")


def test_resume_past_max_steps_says_there_is_nothing_to_do(char_data, finished_run, capsys):
    before = snapshot(finished_run)
    assert main(train(char_data, finished_run, "--resume", "--max-steps", "2")) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"nothing to do: {finished_run / 'last.pt'} is at step 4 and max_steps is 2; pass a larger "
                   "--max-steps to train further"]
    assert snapshot(finished_run) == before


def _copy_data(char_data: str, tmp_path: Path, change) -> str:
    data = tmp_path / "data"
    shutil.copytree(char_data, data)
    meta = json.loads((data / "meta.json").read_text())
    change(meta)
    (data / "meta.json").write_text(json.dumps(meta))
    return str(data)


def test_resume_refuses_changed_data_unless_allowed(char_data, run, tmp_path, capsys):
    def rewrite(meta):
        meta["source"]["sha256"] = "0" * 64
    changed = _copy_data(char_data, tmp_path, rewrite)
    before = snapshot(run)
    argv = ["train", "--resume", "--data-dir", changed, "--out-dir", str(run), "--max-steps", "5", "--no-progress",
            "--num-samples", "0", "--no-plot"]
    refuse(capsys, argv, 1, "changed since the checkpoint was written", "sha256", "--allow-data-change")
    assert snapshot(run) == before
    assert main([*argv, "--allow-data-change"]) == 0
    assert load_checkpoint(run / "last.pt")["step"] == 5


def test_resume_on_another_vocabulary_names_both(char_data, finished_run, tmp_path, capsys):
    def other_chars(meta):
        meta["tokenizer"]["chars"] = meta["tokenizer"]["chars"][:-1] + "Ω"
        meta["dataset"]["variant"] = "full"
    other = _copy_data(char_data, tmp_path, other_chars)
    before = snapshot(finished_run)
    refuse(capsys, ["train", "--resume", "--data-dir", other, "--shakespeare-variant", "full", "--out-dir",
                    str(finished_run), "--max-steps", "8"], 1,
           "trained on shakespeare (tiny, char tokenizer), ", "holds shakespeare (full, char tokenizer), ",
           "--shakespeare-variant")
    assert snapshot(finished_run) == before


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(char_data, run, monkeypatch, capsys):
    last = (run / "last.pt").read_bytes()

    def full_disk(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 62272 vs 62160")
    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    refuse(capsys, train(char_data, run, "--resume", "--max-steps", "6"), 1,
           f"disk full while writing {run / 'last.pt'}; the previous checkpoint is intact")
    assert (run / "last.pt").read_bytes() == last
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    assert load_checkpoint(run / "last.pt")["step"] == 4


# ----------------------------------------------------------------------------------- the other commands


def test_sample_refuses_bad_flags_before_loading(finished_run, tmp_path, capsys):
    best = str(finished_run / "best.pt")
    refuse(capsys, ["sample", "--checkpoint", best, "--device", "banana"], 1, "--device 'banana' is not a device")
    refuse(capsys, ["sample", "--checkpoint", best, "--num-samples", "-1"], 1, "--num-samples must be at least 1")
    refuse(capsys, ["sample", "--checkpoint", best, "--top-k", "-1"], 1, "--top-k must be 0 (no filter) or more")
    refuse(capsys, ["sample", "--checkpoint", best, "--top-p", "1.5"], 1, "top_p must be None or a number in (0, 1]")
    refuse(capsys, ["sample", "--checkpoint", best, "--prompt", "Ω"], 1, "characters not in the vocabulary")


def test_top_k_0_means_no_filter_in_sample_as_in_train(finished_run, capsys):
    best = str(finished_run / "best.pt")
    assert main(["sample", "--checkpoint", best, "--top-k", "0", "--seed", "3", "--max-new-tokens", "8"]) == 0
    unfiltered = capsys.readouterr().out
    assert main(["sample", "--checkpoint", best, "--seed", "3", "--max-new-tokens", "8"]) == 0
    assert capsys.readouterr().out == unfiltered


def test_a_lightning_checkpoint_gets_the_lightning_loader_hint(finished_run, tmp_path, capsys):
    lightning = pytest.importorskip("lightning")
    ckpt = tmp_path / "model.ckpt"
    torch.save({"pytorch-lightning_version": lightning.__version__, "state_dict": {}, "hyper_parameters": {}}, ckpt)
    for argv in (["sample", "--checkpoint", str(ckpt)], ["viz", "--checkpoint", str(ckpt), "--out",
                                                           str(tmp_path / "a.png")]):
        line = refuse(capsys, argv, 1, "is a PyTorch Lightning checkpoint", "GPT2.load_from_checkpoint")
        assert "--hf" not in line
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(ckpt, run / "last.pt")
    refuse(capsys, ["train", "--resume", "--out-dir", str(run)], 1, "GPT2.load_from_checkpoint")


def test_viz_reports_the_file_it_writes(tmp_path, capsys):
    assert main(["viz", "--prompt", "to be", "--layers", "0", "--heads", "0", "--out", str(tmp_path / "attn")]) == 0
    assert str(tmp_path / "attn.png") in capsys.readouterr().out
    assert (tmp_path / "attn.png").is_file() and not (tmp_path / "attn").exists()


def test_plot_refuses_a_log_with_garbage_and_a_path_under_a_file(finished_run, tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    log.write_text("garbage\n" + (finished_run / "log.jsonl").read_text())
    refuse(capsys, ["plot", str(log)], 1, "line 1 is not a JSON record: 'garbage'")
    log.write_text('{"kind": "train"}\n{"kind": "eval", "step": 1}\n')
    refuse(capsys, ["plot", str(log)], 1, "no training or evaluation losses to plot")
    assert not (tmp_path / "curves.png").exists()
    afile = tmp_path / "afile"
    afile.write_text("")
    refuse(capsys, ["plot", str(finished_run), "--out", str(afile / "c.png")], 1, "scratchformers plot: error:")
    assert main(["plot", str(finished_run), "--out", str(tmp_path / "curves")]) == 0
    assert f"wrote {tmp_path / 'curves.png'}" in capsys.readouterr().out


def test_bench_json_under_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    refuse(capsys, ["bench", "--quick", "--json", str(afile / "x.json")], 2, f"cannot write --json {afile / 'x.json'}")


def test_tokenize_load_names_the_kind_the_file_needs(tmp_path, capsys):
    saved = tmp_path / "byte.json"
    assert main(["tokenize", "--kind", "byte", "--vocab-size", "260", "--input", str(_text(tmp_path)),
                 "--save", str(saved), "--quiet"]) == 0
    refuse(capsys, ["tokenize", "--load", str(saved), "--encode", "hi"], 1, "holds a byte BPE tokenizer: add --kind byte")


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text("the cat sat on the mat " * 20)
    return path


def test_the_lock_is_released_when_a_run_ends_however_it_ends(char_data, tmp_path):
    """In-process API: fit() releases the folder even when it raises, so the next run in this process may take it."""
    from scratchformers.train.config import get_train_config
    from scratchformers.train.trainer import Trainer

    config = get_train_config(data_dir=char_data, shakespeare_variant="tiny", out_dir=str(tmp_path / "api"),
                              num_layers=1, num_heads=2, emb_dim=32, max_len=16, batch_size=4, max_steps=2,
                              eval_interval=2, eval_batches=1, num_samples=0, plot=False, num_threads=1)
    trainer = Trainer(config, progress=False)
    with pytest.raises(ValueError, match="is in use by another training run"):
        Trainer(config, progress=False, overwrite=True)
    trainer.evaluate = lambda: (_ for _ in ()).throw(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit()
    Trainer(config, progress=False, overwrite=True).fit()
    assert load_checkpoint(tmp_path / "api" / "last.pt")["step"] == 2
