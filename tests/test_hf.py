"""Hugging Face GPT-2 weights: a random ``transformers.GPT2LMHeadModel`` loads into our GPT with the same logits,
and ours exports back into ``transformers`` with the same logits. No network."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from scratchformers.reference.config import get_config  # noqa: E402
from scratchformers.reference.hf import from_pretrained, load_hf_gpt2, save_hf_gpt2  # noqa: E402
from scratchformers.reference.model import GPT  # noqa: E402

VOCAB, N_POSITIONS = 100, 64
TOLERANCE = 1e-5  # fp32, max abs error of the logits


def random_hf_model(seed: int = 0, **changes) -> transformers.GPT2LMHeadModel:
    """A small GPT-2 whose every parameter (LayerNorms and biases included) is perturbed away from its init, so
    that a mistake anywhere in the mapping (a missed transpose, a swapped bias) changes the logits visibly."""
    torch.manual_seed(seed)
    settings = dict(n_layer=2, n_head=2, n_embd=32, n_positions=N_POSITIONS, vocab_size=VOCAB)
    dropout_off = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    special = dict(bos_token_id=0, eos_token_id=0)  # inside the small vocabulary
    config = transformers.GPT2Config(**settings, **dropout_off, **special, **changes)
    model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return model.eval()


def tokens(length: int = N_POSITIONS, batch: int = 2) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def max_logit_error(ours: GPT, hf: transformers.GPT2LMHeadModel) -> float:
    idx = tokens()
    ours_logits, _ = ours(idx)
    hf_logits = hf(idx).logits
    assert hf_logits.abs().max() > 1.0  # the comparison is not between two near-zero tensors
    return (ours_logits - hf_logits).abs().max().item()


def test_import_from_safetensors(tmp_path: Path) -> None:
    hf = random_hf_model()
    hf.save_pretrained(tmp_path)
    ours = load_hf_gpt2(tmp_path)
    config = ours.config
    assert (config.num_layers, config.max_len, config.emb_dim, config.model_dim) == (2, N_POSITIONS, 32, 32)
    assert config.mlp_dim == 128  # n_inner unset: 4 * n_embd
    assert max_logit_error(ours, hf) <= TOLERANCE


def test_import_from_sharded_safetensors(tmp_path: Path) -> None:
    hf = random_hf_model()
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert max_logit_error(load_hf_gpt2(tmp_path), hf) <= TOLERANCE


def test_import_from_legacy_pytorch_model_bin(tmp_path: Path) -> None:
    """OpenAI's original upload: ``pytorch_model.bin`` of a ``GPT2Model`` (no ``transformer.`` prefix, no lm_head)
    with the causal-mask buffers ``attn.bias`` and ``attn.masked_bias`` stored as if they were weights."""
    hf = random_hf_model()
    state = dict(hf.transformer.state_dict())
    for layer in range(hf.config.n_layer):
        state[f"h.{layer}.attn.bias"] = torch.tril(torch.ones(N_POSITIONS, N_POSITIONS))[None, None]
        state[f"h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, tmp_path / "pytorch_model.bin")
    hf.config.save_pretrained(tmp_path)
    assert max_logit_error(load_hf_gpt2(tmp_path), hf) <= TOLERANCE


def test_import_with_other_backends(tmp_path: Path) -> None:
    hf = random_hf_model()
    hf.save_pretrained(tmp_path)
    ours = load_hf_gpt2(tmp_path, attention="torch_sdpa", layernorm="torch")
    assert ours.config.attention == "torch_sdpa"
    assert max_logit_error(ours, hf) <= TOLERANCE


def test_n_inner_is_our_mlp_dim_both_ways(tmp_path: Path) -> None:
    hf = random_hf_model(n_inner=48)
    hf.save_pretrained(tmp_path / "hf")
    ours = load_hf_gpt2(tmp_path / "hf")
    assert (ours.config.model_dim, ours.config.mlp_dim) == (32, 48)
    assert ours.transformer.h[0].mlp.c_fc.weight.shape == (48, 32)
    assert max_logit_error(ours, hf) <= TOLERANCE
    save_hf_gpt2(ours, tmp_path / "ours")
    exported = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "ours").eval()
    assert (exported.config.n_embd, exported.config.n_inner) == (32, 48)
    assert max_logit_error(ours, exported) <= TOLERANCE


def test_export_loads_in_transformers(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ours = GPT(get_config("gpt-mini", vocab_size=VOCAB, num_layers=2, num_heads=4, emb_dim=32, max_len=N_POSITIONS))
    with torch.no_grad():
        for parameter in ours.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    ours.eval()
    save_hf_gpt2(ours, tmp_path)
    hf, info = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert max_logit_error(ours, hf.eval()) <= TOLERANCE


def test_round_trip_is_exact(tmp_path: Path) -> None:
    hf = random_hf_model()
    hf.save_pretrained(tmp_path / "hf")
    ours = load_hf_gpt2(tmp_path / "hf")
    save_hf_gpt2(ours, tmp_path / "ours")
    again = load_hf_gpt2(tmp_path / "ours")
    assert again.config == ours.config
    for (name, a), (_, b) in zip(ours.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_from_pretrained_local_folder(tmp_path: Path) -> None:
    hf = random_hf_model()
    hf.save_pretrained(tmp_path)
    assert max_logit_error(from_pretrained(str(tmp_path), dropout=0.0), hf) <= TOLERANCE


def test_from_pretrained_without_network_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    asked = []

    def offline(repo_id: str, **kwargs) -> str:
        asked.append(repo_id)
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(FileNotFoundError, match="huggingface-cli download gpt2"):
        from_pretrained("gpt2")
    assert asked == ["gpt2"]


def test_unsupported_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    hf = random_hf_model()
    hf.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for change, message in [
        (dict(activation_function="relu"), "activation_function"),
        (dict(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
        (dict(model_type="llama"), "model_type"),
    ]:
        (tmp_path / "config.json").write_text(json.dumps(config | change))
        with pytest.raises(ValueError, match=message):
            load_hf_gpt2(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config | dict(n_layer=3)))
    with pytest.raises(ValueError, match="does not match"):
        load_hf_gpt2(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="cannot override"):
        load_hf_gpt2(tmp_path, num_layers=4)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_hf_gpt2(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf_gpt2(tmp_path / "missing")


def test_export_refuses_what_gpt2_cannot_express(tmp_path: Path) -> None:
    config = get_config("gpt-mini", vocab_size=VOCAB, num_layers=1, num_heads=2, emb_dim=16, max_len=16)
    for change in (dict(bias=False), dict(positional="sinusoidal")):
        with pytest.raises(ValueError, match="cannot be exported"):
            save_hf_gpt2(GPT(config.replace(**change)), tmp_path)
