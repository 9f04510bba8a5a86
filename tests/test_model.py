"""The torch reference model: configs and parameter counts, backends, masks, KV cache, initialisation."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchformers.reference import backends
from scratchformers.reference.attention import scaled_dot_product_attention, visibility_mask
from scratchformers.reference.config import PRESETS, GPTConfig, count_parameters, get_config
from scratchformers.reference.gelu import gelu
from scratchformers.reference.layernorm import LayerNorm, TorchLayerNorm
from scratchformers.reference.model import GPT
from scratchformers.reference.positional import sinusoidal_table

SMALL = dict(vocab_size=97, max_len=32, num_layers=2, num_heads=4, emb_dim=32)


def small_model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**SMALL, **overrides})).eval()


# Published totals (tied embeddings, biases, learned positions): GPT-2 paper / HF model cards.
@pytest.mark.parametrize(
    "name, total",
    [("gpt2", 124_439_808), ("gpt2-medium", 354_823_168), ("gpt2-large", 774_030_080), ("gpt2-xl", 1_557_611_200)],
)
def test_parameter_count_matches_published_totals(name: str, total: int) -> None:
    assert count_parameters(get_config(name)) == total


@pytest.mark.parametrize("name", list(PRESETS))
def test_parameter_count_formula_matches_a_model_on_the_meta_device(name: str) -> None:
    config = get_config(name)
    with torch.device("meta"):
        model = GPT(config)
    assert model.num_parameters() == count_parameters(config)
    assert model.num_parameters(non_embedding=True) == count_parameters(config, non_embedding=True)


# The seed's usage: `config = dict(max_len=1024, emb_dim=768, num_layers=12, num_heads=12, model_dim=768, ...)`.
SEED_CONFIG = dict(max_len=1024, emb_dim=768, num_layers=12, num_heads=12, model_dim=768, vocab_size=50257,
                   weight_decay=0.1, dropout=0.0)


def test_the_seeds_config_is_gpt2_small() -> None:
    config = GPTConfig(**SEED_CONFIG)
    assert config == get_config("gpt2")
    assert (config.emb_dim, config.model_dim, config.mlp_dim) == (768, 768, 3072)
    assert count_parameters(config) == 124_439_808
    with torch.device("meta"):
        model = GPT(config)
    assert model.num_parameters() == 124_439_808
    assert model.transformer.h[0].mlp.c_fc.weight.shape == (3072, 768)
    assert model.transformer.h[0].mlp.c_proj.weight.shape == (768, 3072)


@pytest.mark.parametrize("widths", [dict(emb_dim=96), dict(model_dim=96), dict(emb_dim=96, model_dim=96)])
def test_emb_dim_and_model_dim_are_two_names_of_d_model(widths: dict) -> None:
    config = GPTConfig(num_heads=4, **widths)
    assert (config.emb_dim, config.model_dim, config.mlp_dim, config.head_dim) == (96, 96, 384, 24)


def test_emb_dim_and_model_dim_that_disagree_are_a_clear_error() -> None:
    """The old meaning of model_dim (the MLP's width) now fails loudly and says which field to use instead."""
    with pytest.raises(ValueError, match=r"emb_dim \(768\) and model_dim \(3072\) disagree.*pass mlp_dim=3072"):
        GPTConfig(emb_dim=768, model_dim=3072)
    with pytest.raises(ValueError, match="mlp_dim"):
        GPTConfig(**SMALL, mlp_dim=0)


def test_mlp_dim_sets_the_mlp_width_only() -> None:
    config = GPTConfig(**SMALL, mlp_dim=40)
    model = GPT(config)
    assert model.transformer.h[0].mlp.c_fc.weight.shape == (40, 32)
    assert model.transformer.h[0].attn.c_attn.weight.shape == (96, 32)
    assert model.num_parameters() == count_parameters(config)


def test_gpt_mini_counts_none_of_them_the_seeds_1_2m() -> None:
    """The seed's table gives GPT-Mini (6 layers, 6 heads, width 192) "1.2M parameters". With GPT-2's layout its
    blocks alone hold 2.67M; even an MLP only 192 wide (the seed's old 1x MLP) leaves 1.34M; the preset with GPT-2's
    50,257-token table and 256 positions has 12.4M."""
    config = get_config("gpt-mini")
    assert (config.num_layers, config.num_heads, config.model_dim, config.mlp_dim) == (6, 6, 192, 768)
    assert count_parameters(config) == 12_368_064
    assert count_parameters(config, non_embedding=True) == 2_669_568
    assert count_parameters(config.replace(mlp_dim=192), non_embedding=True) == 1_339_008


def test_a_new_width_moves_d_model_and_the_default_mlp_with_it() -> None:
    assert get_config("gpt2", model_dim=384) == get_config("gpt2", emb_dim=384)
    assert get_config("gpt2", model_dim=384).mlp_dim == 1536
    narrower = get_config("gpt2").replace(model_dim=96)
    assert (narrower.emb_dim, narrower.model_dim, narrower.mlp_dim) == (96, 96, 384)
    custom_mlp = get_config("gpt2", mlp_dim=1000).replace(emb_dim=96)
    assert (custom_mlp.model_dim, custom_mlp.mlp_dim) == (96, 1000)


def test_config_records_from_before_mlp_dim_still_load() -> None:
    """Checkpoints written while model_dim meant the MLP's width have no mlp_dim key."""
    record = get_config("gpt2").to_dict()
    del record["mlp_dim"]
    record["model_dim"] = 3072
    assert GPTConfig.from_dict(record) == get_config("gpt2")


def test_gpt3_preset_is_the_paper_not_the_context_length() -> None:
    config = get_config("gpt3")
    assert (config.num_layers, config.num_heads, config.emb_dim, config.head_dim) == (96, 96, 12288, 128)
    assert config.max_len == 2048
    assert 174e9 < count_parameters(config) < 176e9


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(emb_dim=30, num_heads=4), "divisible"),
        (dict(num_layers=0), "num_layers"),
        (dict(dropout=1.5), "dropout"),
        (dict(attention="flash"), "attention"),
        (dict(layernorm="apex"), "layernorm"),
        (dict(gelu="fast"), "gelu must be 'reference' or 'torch'"),
        (dict(positional="rope"), "positional"),
    ],
)
def test_bad_config_is_a_clear_error(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**SMALL, **changes})


def test_config_round_trip_and_unknown_fields() -> None:
    config = GPTConfig(**SMALL)
    assert GPTConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="n_embd"):
        GPTConfig.from_dict({**config.to_dict(), "n_embd": 3})


def test_weights_are_tied_and_initialised_like_gpt2() -> None:
    model = GPT(get_config("gpt2", num_layers=4, vocab_size=4096))
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.transformer.wte.weight.std().item() == pytest.approx(0.02, rel=0.05)
    c_proj = model.transformer.h[0].attn.c_proj.weight
    assert c_proj.std().item() == pytest.approx(0.02 / math.sqrt(2 * 4), rel=0.05)
    assert torch.all(model.transformer.h[0].attn.c_attn.bias == 0)
    assert torch.all(model.transformer.h[0].ln_1.weight == 1)


def test_state_dict_keys_use_gpt2_names() -> None:
    keys = set(small_model().state_dict())
    for key in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.h.1.attn.c_attn.weight",
                "transformer.h.1.mlp.c_proj.bias", "transformer.ln_f.weight", "lm_head.weight"):
        assert key in keys


def test_loss_of_an_untrained_model_is_near_uniform() -> None:
    model = small_model()
    idx, targets = torch.randint(0, 97, (2, 4, 32))
    _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(97)) < 0.1


@pytest.mark.parametrize("attention, layernorm", [("torch_sdpa", "reference"), ("reference", "torch"), ("torch_sdpa", "torch")])
def test_backends_share_state_dict_and_agree(attention: str, layernorm: str) -> None:
    reference = small_model()
    other = GPT(GPTConfig(**SMALL, attention=attention, layernorm=layernorm)).eval()
    other.load_state_dict(reference.state_dict())
    idx = torch.randint(0, 97, (3, 20))
    mask = torch.ones(3, 20, dtype=torch.long)
    mask[1, 12:] = 0
    mask[2, 3:] = 0
    for attention_mask in (None, mask):
        expected, _ = reference(idx, attention_mask=attention_mask)
        got, _ = other(idx, attention_mask=attention_mask)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_backends_agree_on_gradients() -> None:
    reference = small_model()
    other = GPT(GPTConfig(**SMALL, attention="torch_sdpa", layernorm="torch")).eval()
    other.load_state_dict(reference.state_dict())
    idx = torch.randint(0, 97, (2, 16))
    reference(idx, idx)[1].backward()
    other(idx, idx)[1].backward()
    for (name, p), q in zip(reference.named_parameters(), other.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-6, rtol=1e-4, msg=name)


def test_right_padding_does_not_change_the_real_tokens() -> None:
    model = small_model()
    idx = torch.randint(0, 97, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 9:] = 0
    logits, _ = model(idx, attention_mask=mask)
    alone, _ = model(idx[1:, :9])
    torch.testing.assert_close(logits[1, :9], alone[0], atol=1e-5, rtol=1e-5)


def test_fully_padded_sequence_gives_finite_outputs_and_gradients() -> None:
    model = small_model()
    idx = torch.randint(0, 97, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1] = 0
    logits, _ = model(idx, attention_mask=mask)
    logits.sum().backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@settings(max_examples=30, deadline=None)
@given(tq=st.integers(1, 9), tk=st.integers(1, 12), causal=st.booleans(), data=st.data())
def test_attention_weights_are_a_masked_distribution(tq: int, tk: int, causal: bool, data) -> None:
    lengths = data.draw(st.lists(st.integers(0, tk), min_size=2, max_size=2))
    mask = (torch.arange(tk)[None, :] < torch.tensor(lengths)[:, None]).long()  # (B, Tk)
    q, k, v = torch.randn(2, 3, tq, 4), torch.randn(2, 3, tk, 4), torch.randn(2, 3, tk, 4)
    out, weights = scaled_dot_product_attention(q, k, v, causal=causal, attention_mask=mask)
    visible = visibility_mask(tq, tk, causal=causal, attention_mask=mask).expand_as(weights)
    assert torch.all(weights[~visible] == 0)
    row_sums = weights.sum(-1)
    any_visible = visible.any(-1)
    torch.testing.assert_close(row_sums[any_visible], torch.ones_like(row_sums[any_visible]))
    assert torch.all(row_sums[~any_visible] == 0) and torch.all(out[~any_visible] == 0)


def test_causal_mask_is_bottom_right_aligned() -> None:
    mask = visibility_mask(2, 5, causal=True)[0, 0]
    assert mask.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    more_queries = visibility_mask(4, 2, causal=True)[0, 0]
    assert more_queries.tolist() == [[False, False], [False, False], [True, False], [True, True]]


def test_kv_cache_decoding_matches_the_full_forward() -> None:
    model = small_model()
    idx = torch.randint(0, 97, (2, 20))
    full, _ = model(idx)
    cache = model.new_kv_cache(batch_size=2)
    with torch.no_grad():
        pieces = [model(idx[:, :7], kv_cache=cache)[0]]
        for t in range(7, 20):
            pieces.append(model(idx[:, t : t + 1], kv_cache=cache)[0])
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 20


def test_kv_cache_overflow_and_too_long_input_are_clear_errors() -> None:
    model = small_model()
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 33, dtype=torch.long))
    cache = model.new_kv_cache(1)
    model(torch.zeros(1, 30, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 3, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="integer tensor"):
        model(torch.zeros(1, 3))


def test_forward_with_attention_returns_every_layer() -> None:
    model = small_model()
    idx = torch.randint(0, 97, (1, 10))
    logits, attentions = model.forward_with_attention(idx)
    assert len(attentions) == 2 and attentions[0].shape == (1, 4, 10, 10)
    torch.testing.assert_close(logits, model(idx)[0])
    assert torch.all(torch.triu(attentions[1][0, 0], diagonal=1) == 0)


def test_need_weights_on_flash_backends_is_refused() -> None:
    model = GPT(GPTConfig(**SMALL, attention="torch_sdpa"))
    with pytest.raises(ValueError, match="attention='torch_sdpa' never materialises .* attention='reference'"):
        model.forward_with_attention(torch.zeros(1, 4, dtype=torch.long))


def test_sinusoidal_positions_have_no_parameters_and_the_textbook_values() -> None:
    model = small_model(positional="sinusoidal")
    assert "transformer.wpe.weight" not in model.state_dict()
    table = sinusoidal_table(50, 16)
    pos, i = 7, 3
    assert table[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    assert torch.isfinite(model(torch.randint(0, 97, (1, 8)))[0]).all()


def test_layernorm_and_gelu_match_torch() -> None:
    x = torch.randn(4, 7, 24, dtype=torch.float64)
    ln = LayerNorm(24).double()
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    torch.testing.assert_close(ln(x), torch.nn.functional.layer_norm(x, (24,), ln.weight, ln.bias, 1e-5))
    fused = TorchLayerNorm(24).double()
    fused.load_state_dict(ln.state_dict())
    torch.testing.assert_close(fused(x), ln(x))
    torch.testing.assert_close(gelu(x), torch.nn.functional.gelu(x, approximate="tanh"))
    torch.testing.assert_close(gelu(x, "none"), torch.nn.functional.gelu(x))


def test_torch_gelu_is_the_reference_gelu_in_float64() -> None:
    """GPTConfig(gelu="torch") runs F.gelu(approximate="tanh"): the spelled-out formula's values and gradients."""
    x = (torch.randn(4, 7, 96, dtype=torch.float64) * 3).requires_grad_()
    reference, fused = (backends.build("gelu", GPTConfig(**SMALL, gelu=name)) for name in ("reference", "torch"))
    assert (type(reference).__name__, type(fused).__name__) == ("GELU", "TorchGELU")
    y_reference, y_fused = reference(x), fused(x)
    torch.testing.assert_close(y_fused, y_reference, atol=1e-12, rtol=0)
    go = torch.randn_like(x)
    (g_reference,) = torch.autograd.grad(y_reference, x, go)
    (g_fused,) = torch.autograd.grad(y_fused, x, go)
    torch.testing.assert_close(g_fused, g_reference, atol=1e-12, rtol=0)


def test_the_gelu_switch_changes_nothing_in_the_state_dict() -> None:
    models = []
    for name in ("reference", "torch"):
        torch.manual_seed(0)
        models.append(GPT(GPTConfig(**SMALL, gelu=name)).double().eval())
    reference, fused = models
    assert reference.transformer.h[0].mlp.gelu is not fused.transformer.h[0].mlp.gelu
    assert reference.state_dict().keys() == fused.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), fused.state_dict().values()))
    idx = torch.randint(0, 97, (2, 16))
    torch.testing.assert_close(fused(idx)[0], reference(idx)[0], atol=1e-12, rtol=0)


def test_dropout_is_active_only_in_training() -> None:
    model = small_model(dropout=0.5)
    idx = torch.randint(0, 97, (2, 8))
    model.eval()
    torch.testing.assert_close(model(idx)[0], model(idx)[0])
    model.train()
    assert not torch.allclose(model(idx)[0], model(idx)[0])
