"""Attention heatmaps: the PNG is written, the plotted weights are causal probability rows and equal the
attention computed by hand, and ``scratchformers viz`` works on random, checkpointed and HF models."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("seaborn", reason="the heatmaps need seaborn (a dependency of the package; a GPU machine running a "
                                      "bare checkout may lack it)")
from scratchformers.train.commands import viz as viz_command  # noqa: E402
from scratchformers.reference.config import get_config  # noqa: E402
from scratchformers.reference.hf import save_hf_gpt2  # noqa: E402
from scratchformers.reference.model import GPT  # noqa: E402
from scratchformers.reference.viz import plot_attention, token_labels  # noqa: E402
from scratchformers.train.checkpoint import save_checkpoint  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_model(seed: int = 0, vocab_size: int = 50257, **overrides) -> GPT:
    torch.manual_seed(seed)
    config = get_config("gpt-mini", vocab_size=vocab_size, num_layers=2, num_heads=2, emb_dim=16, max_len=32)
    model = GPT(config.replace(**overrides))
    with torch.no_grad():  # larger weights than GPT-2's init: attention patterns far from uniform
        for name, parameter in model.named_parameters():
            if name.endswith("weight") and parameter.dim() == 2:
                torch.nn.init.normal_(parameter, std=0.5)
    return model.eval()


def first_layer_attention_by_hand(model: GPT, ids: list[int]) -> torch.Tensor:
    """Layer 0's attention weights (H, T, T) from the parameters, written out independently of the model code."""
    c = model.config
    T, H, D = len(ids), c.num_heads, c.head_dim
    sd = {k: v.double() for k, v in model.state_dict().items()}
    x = sd["transformer.wte.weight"][ids] + sd["transformer.wpe.weight"][:T]  # (T, C)
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    x = (x - mean) / torch.sqrt(var + c.layer_norm_eps)
    x = x * sd["transformer.h.0.ln_1.weight"] + sd["transformer.h.0.ln_1.bias"]
    qkv = x @ sd["transformer.h.0.attn.c_attn.weight"].T + sd["transformer.h.0.attn.c_attn.bias"]  # (T, 3C)
    q, k, _ = qkv.split(c.emb_dim, dim=-1)
    q, k = q.view(T, H, D).transpose(0, 1), k.view(T, H, D).transpose(0, 1)  # (H, T, D)
    scores = q @ k.transpose(-1, -2) / math.sqrt(D)  # (H, T, T)
    scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    return torch.softmax(scores, dim=-1)


def test_png_is_written_and_weights_are_causal_distributions(tmp_path: Path) -> None:
    model = small_model()
    path = tmp_path / "attention.png"
    _, weights = plot_attention(model, "The cat sat on the mat.", layers=[1, 0], heads=[1], path=path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    T = 7  # The, cat, sat, on, the, mat, .
    assert weights.shape == (2, 1, T, T)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 1, T), atol=1e-6)
    above_diagonal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    assert torch.all(weights[..., above_diagonal] == 0)
    assert weights.min() >= 0
    assert weights[0, 0].std() > 0.05  # a real pattern, not a uniform smear


def test_plotted_weights_equal_attention_computed_by_hand() -> None:
    model = small_model()
    ids = [464, 3797, 3332, 319, 262, 2603, 13]
    _, weights = plot_attention(model, ids, layers=[0], heads=[0, 1])
    expected = first_layer_attention_by_hand(model, ids).float()  # (H, T, T)
    assert torch.allclose(weights[0], expected, atol=1e-5)


def test_panels_are_labelled_with_tokens() -> None:
    from scratchformers import gpt2_encoding

    model = small_model()
    figure, _ = plot_attention(model, "Hello world\n again", layers=[1], heads=[0, 1])
    labels = token_labels(gpt2_encoding().encode("Hello world\n again"), gpt2_encoding())
    assert labels == ["Hello", "␣world", "↵", "␣again"]
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["layer 1, head 0", "layer 1, head 1"]
    for ax in panels:
        assert [t.get_text() for t in ax.get_xticklabels()] == labels
        assert [t.get_text() for t in ax.get_yticklabels()] == labels
        assert ax.get_xlabel() and ax.get_ylabel()


def test_other_backends_plot_the_same_weights() -> None:
    reference = small_model()
    sdpa = GPT(reference.config.replace(attention="torch_sdpa")).eval()
    sdpa.load_state_dict(reference.state_dict())
    _, expected = plot_attention(reference, [1, 2, 3, 4])
    _, weights = plot_attention(sdpa, [1, 2, 3, 4])
    assert torch.equal(weights, expected) and weights.shape == (2, 2, 4, 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(layers=[2]), "layers"),
        (dict(heads=[-1]), "heads"),
        (dict(layers=[]), "layers"),
        (dict(prompt=""), "prompt"),
        (dict(prompt=list(range(33))), "max_len"),
        (dict(prompt=[50257]), "token ids"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict, message: str) -> None:
    arguments = dict(prompt="Hello") | kwargs
    with pytest.raises(ValueError, match=message):
        plot_attention(small_model(), **arguments)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    viz_command.add_arguments(parser)
    return viz_command.run(parser.parse_args(argv))


def test_cli_random_preset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "mini.png"
    assert run_cli("--preset", "gpt-mini", "--layers", "5", "--heads", "0", "3", "--out", str(out)) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert "1 layer(s) × 2 head(s)" in capsys.readouterr().out


def test_cli_checkpoint_with_its_tokenizer(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    chars = " abcdefghijklmnopqrstuvwxyz"
    model = small_model(vocab_size=len(chars))
    checkpoint = tmp_path / "ckpt.pt"
    meta = {"tokenizer": {"kind": "char", "chars": chars}}  # the dataset metadata, as the training loop stores it
    save_checkpoint(checkpoint, {"step": 1, "model": model.state_dict(), "train_config": {},
                                 "model_config": model.config.to_dict(), "data": meta})
    out = tmp_path / "ckpt.png"
    assert run_cli("--checkpoint", str(checkpoint), "--prompt", "to be or not", "--out", str(out)) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert "over 12 tokens" in capsys.readouterr().out  # one per character: the checkpoint's own tokenizer


def test_cli_checkpoint_errors_are_the_checkpoint_loaders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """viz reads checkpoints through load_checkpoint, like train --resume and sample: same checks, same words."""
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint" * 8)
    assert run_cli("--checkpoint", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "x.png")) == 1
    assert "corrupt or truncated" in capsys.readouterr().err
    torch.save({"model": small_model().state_dict()}, tmp_path / "foreign.pt")
    assert run_cli("--checkpoint", str(tmp_path / "foreign.pt"), "--out", str(tmp_path / "x.png")) == 1
    assert "not a scratchformers training checkpoint" in capsys.readouterr().err


def test_cli_hf_folder(tmp_path: Path) -> None:
    save_hf_gpt2(small_model(), tmp_path / "hf")
    out = tmp_path / "hf.png"
    assert run_cli("--hf", str(tmp_path / "hf"), "--layers", "0", "--out", str(out)) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli("--preset", "gpt-mini", "--layers", "9", "--out", str(tmp_path / "x.png")) == 1
    assert "scratchformers viz: error: layers" in capsys.readouterr().err
    assert run_cli("--hf", str(tmp_path / "nothing")) == 1
    assert "config.json" in capsys.readouterr().err
