"""`scratchformers train`, `sample` and `plot` end to end on tiny data (in-process, through cli.main)."""
from __future__ import annotations

import json
import math
import re
from dataclasses import fields

import pytest

from scratchformers.train.cli import main
from scratchformers.train.checkpoint import load_checkpoint
from scratchformers.train.config import TrainConfig, get_train_config

TINY = ["--num-layers", "1", "--num-heads", "2", "--emb-dim", "32", "--max-len", "16", "--batch-size", "4",
        "--eval-interval", "2", "--eval-batches", "2", "--log-interval", "1", "--num-threads", "1", "--no-progress"]


def test_train_prepares_data_trains_samples_and_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default data/ and out/ folders land here
    code = main(["train", "--preset", "shakespeare-cpu", "--max-steps", "3", "--shakespeare-variant", "tiny",
                 "--sample-tokens", "10", "--num-samples", "1", *TINY])
    assert code == 0
    out = capsys.readouterr().out
    assert "preparing the embedded Shakespeare" in out and "--- sample 1 ---" in out
    final = out.strip().splitlines()[-1]  # the last line: the loss in nats and bits, and the whole job's wall time
    found = re.fullmatch(r"done: 3 steps \(\d+ ms/step\), final val loss (\d\.\d{4}) nats = (\d\.\d{3}) bits per "
                         r"character \(best \d\.\d{4}\); checkpoints in \S+; wall time \d+ s", final)
    assert found, final
    assert float(found[2]) == pytest.approx(float(found[1]) / math.log(2), abs=1e-3)
    assert re.search(r"step 3: train loss \d\.\d{4}, val loss \d\.\d{4} \(\d\.\d{3} bits per character, perplexity",
                     out)
    assert (tmp_path / "data" / "shakespeare_tiny_char" / "meta.json").is_file()
    run = tmp_path / "out" / "shakespeare-cpu"
    assert {"log.jsonl", "last.pt", "best.pt", "curves.png", "samples.txt"} <= {p.name for p in run.iterdir()}
    state = load_checkpoint(run / "last.pt")
    assert state["step"] == 3 and state["train_config"]["max_steps"] == 3 and state["train_config"]["emb_dim"] == 32
    assert state["model_config"]["vocab_size"] == state["data"]["vocab_size"]

    assert main(["sample", "--checkpoint", str(run / "best.pt"), "--prompt", "ROMEO:", "--max-new-tokens", "15",
                 "--seed", "1", "--num-samples", "2"]) == 0
    out = capsys.readouterr().out
    samples = out.split("--- sample ")[1:]
    assert len(samples) == 2 and all(s.split("\n", 1)[1].startswith("ROMEO:") for s in samples)
    assert len(samples[0].split("\n", 1)[1].rstrip("\n")) == len("ROMEO:") + 15  # characters: one per token

    (run / "curves.png").unlink()
    assert main(["plot", str(run)]) == 0
    assert (run / "curves.png").stat().st_size > 10_000
    assert main(["plot", str(run / "log.jsonl"), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").is_file()


def test_resume_with_more_steps_continues_the_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["--shakespeare-variant", "tiny", "--num-samples", "0", "--no-plot", *TINY]
    assert main(["train", "--max-steps", "2", *common]) == 0
    assert main(["train", "--resume", "--max-steps", "4", "--no-progress"]) == 0
    lines = (tmp_path / "out" / "shakespeare-cpu" / "log.jsonl").read_text().splitlines()
    steps = [r["step"] for r in map(json.loads, lines) if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4]


def test_cli_errors_are_one_line_messages(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume"]) == 1
    assert "no checkpoint at out/shakespeare-cpu/last.pt" in capsys.readouterr().err
    assert main(["train", "--preset", "gpt2-owt", "--data-dir", str(tmp_path / "owt")]) == 1
    assert "no prepared dataset" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(tmp_path / "missing.pt")]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["plot", str(tmp_path)]) == 1
    assert "no training log" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--max-steps", "many"])


def test_flags_override_the_preset():
    config = get_train_config("gpt2-owt", max_steps=100, batch_size=4)
    assert (config.max_steps, config.batch_size, config.max_len) == (100, 4, 1024)


def test_the_final_line_reads_its_wall_time_in_minutes_and_seconds():
    from scratchformers.train.commands.train import wall_time

    assert [wall_time(s) for s in (0.4, 41.2, 59.6, 372.4, 3600.0)] == ["0 s", "41 s", "1 min 0 s", "6 min 12 s",
                                                                       "60 min 0 s"]


def test_every_training_flag_says_what_it_does(capsys):
    """--help gives each TrainConfig field its comment from the source, then its default."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        entry = re.search(re.escape(flag) + r"(?:, --no-\S+)?(?: [A-Z_]+)? (.*?) \(default ", help_text)
        assert entry and len(entry.group(1)) > 10, flag
    assert "optimizer steps in the run (default 2500)" in help_text
