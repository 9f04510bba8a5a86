"""A rehearsal of the GPT-2 / OpenWebText job at toy scale, on CPU: the path a GPU run takes, only the sizes shrunk.

``scratchformers prepare openwebtext --data-files`` tokenizes a few local documents with GPT-2's BPE, then
``scratchformers train --preset gpt2-owt`` runs the preset's own code path: fast attention and fast LayerNorm (the
Triton kernels, in the interpreter here), bf16 autocast, gradient accumulation, optionally ``torch.compile``,
evaluation, checkpoints, ``--resume`` and the final samples. Under the interpreter the kernels compute bf16 calls
on fp32 copies (its bf16 arithmetic is wrong; the kernel parity tests check numbers in fp32/fp16): the dtype flow
is bf16 all the same, which is what is rehearsed here.

The compiled rehearsal is marked slow: compiling the model for the CPU (Inductor, C++, a fresh cache) took 89 s of
CPU time against 28 s for the same rehearsal without ``--compile``, which runs in CI.
"""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from scratchformers.train.cli import main
from scratchformers.kernels import flash_attention as attention_kernels
from scratchformers.kernels import layernorm as layernorm_kernels
from scratchformers.train import trainer as trainer_module
from scratchformers.train.checkpoint import load_checkpoint
from scratchformers.train.config import get_train_config
from scratchformers.train.data import shakespeare
from scratchformers.train.trainer import CLOCK_FIELDS

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="rehearses the GPU job on CPU (Triton interpreter)")

# The preset's sizes shrunk; everything else (dataset, tokenizer, vocabulary, fast path, bf16, optimiser, schedule
# shape, top-k sampling, prompt) is gpt2-owt's own.
SIZES = ["--num-layers", "2", "--num-heads", "2", "--emb-dim", "16", "--max-len", "16", "--batch-size", "2",
         "--grad-accum-steps", "2", "--max-steps", "6", "--warmup-steps", "2", "--decay-steps", "6",
         "--eval-interval", "3", "--eval-batches", "1", "--log-interval", "2", "--num-samples", "1",
         "--sample-tokens", "4", "--num-threads", "1", "--no-plot", "--no-progress"]
LAYERS, MICRO_STEPS, EVALS, SAMPLE_FORWARDS = 2, 6 * 2, 3 * 2, 4  # evaluations at steps 0, 3, 6 on 2 splits


def write_documents(path: Path, count: int = 16) -> Path:
    """``count`` documents of 2,500 characters (about 700 GPT-2 tokens) of Shakespeare as OpenWebText-style jsonl."""
    text = shakespeare("tiny")
    with open(path, "w") as handle:
        for i in range(count):
            handle.write(json.dumps({"text": text[i * 2500 : (i + 1) * 2500]}) + "\n")
    return path


class KernelCalls:
    """Counts the calls of the Triton kernels' host functions (each launches the kernels of one op) and the
    dtypes they were given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        self.dtypes: dict[str, set[torch.dtype]] = {}
        for module, name in ((attention_kernels, "flash_attention_forward"),
                             (attention_kernels, "flash_attention_backward"),
                             (layernorm_kernels, "layer_norm_forward"), (layernorm_kernels, "layer_norm_backward")):
            monkeypatch.setattr(module, name, self._counting(name, getattr(module, name)))

    def _counting(self, name: str, launch):
        inside = []  # under the interpreter a bf16 call runs the fp32 kernels by calling itself on fp32 copies

        def counted(*args, **kwargs):
            if not inside:
                self.calls[name] += 1
                self.dtypes.setdefault(name, set()).add(args[0].dtype)
            inside.append(name)
            try:
                return launch(*args, **kwargs)
            finally:
                inside.pop()

        return counted

    def take(self) -> Counter[str]:
        calls, self.calls = self.calls, Counter()
        return calls


def train_records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def without_timings(records: list[dict]) -> list[dict]:
    """The log's figures without wall-clock timings and memory, which differ between any two runs."""
    return [{k: v for k, v in r.items() if k not in CLOCK_FIELDS} for r in records]


def rehearse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, compile: bool) -> None:
    data, run, resumed = tmp_path / "owt", tmp_path / "run", tmp_path / "resumed"
    documents = write_documents(tmp_path / "docs.jsonl")
    assert main(["prepare", "openwebtext", "--data-files", str(documents), "--out", str(data), "--num-proc", "1",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "gpt2 tokenizer, vocab_size 50,257" in capsys.readouterr().out

    # Keep the checkpoint written at the step-3 evaluation: what an interruption after step 3 leaves behind.
    save = trainer_module.save_checkpoint

    def save_and_keep_step_3(path, state):
        save(path, state)
        if Path(path).name == "last.pt" and state["step"] == 3:
            shutil.copy(path, tmp_path / "step3.pt")

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_and_keep_step_3)
    kernels = KernelCalls(monkeypatch)
    compile_flag = "--compile" if compile else "--no-compile"
    assert main(["train", "--preset", "gpt2-owt", "--data-dir", str(data), "--out-dir", str(run), *SIZES,
                 compile_flag]) == 0
    out = capsys.readouterr().out

    # The preset's path was taken: fast kernels in every layer, forward and backward, bf16 autocast.
    config = load_checkpoint(run / "last.pt")["train_config"]
    preset = get_train_config("gpt2-owt")
    assert {k: config[k] for k in ("attention", "layernorm", "dtype", "vocab_size", "compile")} == dict(
        attention="fast", layernorm="fast", dtype="bfloat16", vocab_size=preset.vocab_size, compile=compile)
    forwards = MICRO_STEPS + EVALS + SAMPLE_FORWARDS
    assert kernels.take() == {"flash_attention_forward": LAYERS * forwards,
                              "flash_attention_backward": LAYERS * MICRO_STEPS,
                              "layer_norm_forward": (2 * LAYERS + 1) * forwards,
                              "layer_norm_backward": (2 * LAYERS + 1) * MICRO_STEPS}
    assert kernels.dtypes["flash_attention_forward"] == {torch.bfloat16}  # autocast: bf16 q, k, v into the kernel
    assert "bfloat16 autocast" in out and "global batch 4 windows (1 process × 2 micro-batches × 2 windows)" in out

    # The loss falls from ln(50,304) = 10.83 at initialisation, at every evaluation, on fixed batches (slowly: six
    # steps at the preset's learning rate of 6e-4, about 10.80 -> 10.78 on train).
    records = train_records(run)
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 3, 6]
    assert evals[0]["val_loss"] == pytest.approx(10.83, abs=0.05)
    for split in ("train_loss", "val_loss"):
        assert evals[2][split] < evals[1][split] < evals[0][split]

    # The final samples: the prompt continued by 4 GPT-2 tokens.
    samples = (run / "samples.txt").read_text()
    assert samples.startswith("--- sample 1 ---\nThe meaning of life is") and "--- sample 1 ---" in out

    # --resume from the step-3 checkpoint continues the same run: steps 4-6 as the uninterrupted run had them,
    # the same final weights and the same sample.
    resumed.mkdir()
    shutil.copy(tmp_path / "step3.pt", resumed / "last.pt")
    shutil.copy(run / "log.jsonl", resumed / "log.jsonl")
    assert main(["train", "--resume", "--out-dir", str(resumed), "--no-progress"]) == 0
    assert "resuming at step 3" in capsys.readouterr().out
    assert without_timings(train_records(resumed)) == without_timings(records)
    final, final_resumed = load_checkpoint(run / "last.pt"), load_checkpoint(resumed / "last.pt")
    assert final_resumed["step"] == 6
    assert all(torch.equal(final["model"][k], final_resumed["model"][k]) for k in final["model"])
    assert (resumed / "samples.txt").read_text() == samples
    resumed_calls = kernels.take()
    assert resumed_calls["flash_attention_backward"] == LAYERS * MICRO_STEPS // 2  # only steps 4-6 were run again


def test_gpt2_owt_rehearsal(tmp_path, monkeypatch, capsys):
    rehearse(tmp_path, monkeypatch, capsys, compile=False)


@pytest.mark.slow
def test_gpt2_owt_rehearsal_compiled(tmp_path, monkeypatch, capsys):
    rehearse(tmp_path, monkeypatch, capsys, compile=True)
