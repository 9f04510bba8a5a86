"""generate(): sampling filters, greedy decoding, seeds, the KV cache (same tokens as without), prompt kinds, errors."""
from __future__ import annotations

import pytest
import torch

from scratchformers.reference.config import get_config
from scratchformers.reference.generate import generate, sample_next_token, top_k_filter, top_p_filter
from scratchformers.reference.model import GPT

VOCAB = 61
MAX_LEN = 16


def sharp_model(seed: int = 0, std: float = 1.0, **overrides) -> GPT:
    """A tiny random GPT whose token table has std 1 (not GPT-2's 0.02), so its next-token distributions are
    peaked and the greedy argmax has clear winners: rounding differences between code paths cannot flip it."""
    torch.manual_seed(seed)
    config = get_config("gpt-mini", vocab_size=VOCAB, num_layers=2, num_heads=2, emb_dim=32, max_len=MAX_LEN)
    model = GPT(config.replace(**overrides))
    torch.nn.init.normal_(model.transformer.wte.weight, std=std)
    return model.eval()


class CharTokenizer:
    """A minimal tokenizer: one token per character of a fixed alphabet."""

    alphabet = "abcdefghijklmnopqrstuvwxyz .,!?"

    def encode(self, text: str) -> list[int]:
        return [self.alphabet.index(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.alphabet[i] for i in ids)


def greedy_by_hand(model: GPT, ids: list[int], steps: int) -> list[int]:
    """Greedy decoding written independently: full forward on the cropped window, argmax of the last logits."""
    ids = list(ids)
    for _ in range(steps):
        window = torch.tensor([ids[-model.config.max_len :]])
        logits, _ = model(window)
        ids.append(int(logits[0, -1].argmax()))
    return ids


# --------------------------------------------------------------------------------------------- filters, sampling


def test_top_k_filter_keeps_the_k_largest() -> None:
    logits = torch.tensor([[0.1, 3.0, -1.0, 2.0, 0.5]])
    kept = torch.isfinite(top_k_filter(logits, 2))
    assert kept.tolist() == [[False, True, False, True, False]]
    assert torch.isfinite(top_k_filter(logits, 99)).all()  # k larger than V keeps everything


@pytest.mark.parametrize("p, expected", [(0.4, [0]), (0.75, [0, 1]), (0.85, [0, 1, 2]), (1.0, [0, 1, 2, 3])])
def test_top_p_filter_keeps_the_smallest_nucleus(p: float, expected: list[int]) -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    order = torch.tensor([2, 0, 3, 1])  # shuffle so that the filter has to sort
    logits = probs.log()[order][None]  # (1, 4): token j has probability probs[order[j]]
    kept = torch.isfinite(top_p_filter(logits, p))[0]
    assert sorted(order[kept].tolist()) == expected


def test_top_p_filter_always_keeps_the_most_likely_token() -> None:
    logits = torch.randn(5, 50, generator=torch.Generator().manual_seed(0))
    kept = torch.isfinite(top_p_filter(logits, 1e-9))
    assert kept.sum(-1).tolist() == [1] * 5
    assert kept.float().argmax(-1).tolist() == logits.argmax(-1).tolist()


def test_sampling_frequencies_match_the_filtered_distribution() -> None:
    logits = torch.tensor([2.0, 1.5, 1.0, 0.0, -1.0, -3.0])
    rows = logits.expand(4000, -1)
    generator = torch.Generator().manual_seed(0)
    temperature, k = 0.7, 4
    draws = sample_next_token(rows, temperature=temperature, top_k=k, generator=generator)[:, 0]
    frequencies = torch.bincount(draws, minlength=6).float() / len(draws)
    expected = torch.zeros(6)
    expected[:k] = torch.softmax(logits[:k] / temperature, dim=0)  # the k largest are the first k here
    assert frequencies[k:].sum() == 0
    assert torch.allclose(frequencies, expected, atol=0.03)


def test_temperature_zero_is_argmax() -> None:
    logits = torch.randn(8, 30, generator=torch.Generator().manual_seed(1))
    assert sample_next_token(logits, temperature=0).squeeze(1).tolist() == logits.argmax(-1).tolist()


# ----------------------------------------------------------------------------------------------------- decoding


def test_greedy_matches_an_independent_loop_past_max_len() -> None:
    model = sharp_model()
    prompt = [3, 1, 4, 1, 5]
    steps = 2 * MAX_LEN  # runs well past max_len: the window must slide
    expected = greedy_by_hand(model, prompt, steps)
    for use_cache in (True, False):
        assert generate(model, prompt, steps, temperature=0, use_cache=use_cache) == expected


SAMPLINGS = [dict(temperature=0), dict(temperature=1.0, seed=7), dict(top_k=5, top_p=0.9, seed=3)]


@pytest.mark.parametrize("prompt_len", [1, 5, MAX_LEN, MAX_LEN + 4])
@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_kv_cache_gives_the_same_tokens(prompt_len: int, sampling: dict) -> None:
    model = sharp_model()
    prompt = torch.randint(0, VOCAB, (2, prompt_len), generator=torch.Generator().manual_seed(prompt_len))
    steps = MAX_LEN + 6  # the cache fills up, then the window slides
    cached = generate(model, prompt, steps, use_cache=True, **sampling)
    uncached = generate(model, prompt, steps, use_cache=False, **sampling)
    assert cached.shape == (2, prompt_len + steps)
    assert torch.equal(cached[:, :prompt_len], prompt)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("use_cache", [True, False])
def test_torch_sdpa_backend_gives_the_same_tokens(use_cache: bool) -> None:
    reference = sharp_model()
    sdpa = GPT(reference.config.replace(attention="torch_sdpa")).eval()
    sdpa.load_state_dict(reference.state_dict())
    prompt = [7, 8, 9]
    for sampling in (dict(temperature=0), dict(temperature=0.8, seed=11)):
        expected = generate(reference, prompt, MAX_LEN + 4, use_cache=use_cache, **sampling)
        assert generate(sdpa, prompt, MAX_LEN + 4, use_cache=use_cache, **sampling) == expected


def test_batch_rows_are_generated_independently() -> None:
    model = sharp_model()
    rows = [[1, 2, 3], [40, 50, 60]]
    batched = generate(model, torch.tensor(rows), 10, temperature=0)
    for row, out in zip(rows, batched.tolist()):
        assert out == generate(model, row, 10, temperature=0)


def test_top_k_one_and_tiny_top_p_are_greedy() -> None:
    model = sharp_model()
    greedy = generate(model, [5, 6], 12, temperature=0)
    assert generate(model, [5, 6], 12, top_k=1, seed=0) == greedy
    assert generate(model, [5, 6], 12, top_p=1e-9, seed=0) == greedy


def test_seed_is_reproducible_and_leaves_the_global_rng_alone() -> None:
    model = sharp_model(std=0.02)  # near-uniform next-token distributions: samples vary with the seed
    state = torch.get_rng_state()
    first = generate(model, [1], 20, temperature=2.0, seed=123)
    assert torch.equal(torch.get_rng_state(), state)
    assert generate(model, [1], 20, temperature=2.0, seed=123) == first
    others = {tuple(generate(model, [1], 20, temperature=2.0, seed=s)) for s in range(5)}
    assert len(others) > 1  # different seeds give different samples (60 tokens, temperature 2)


def test_training_mode_is_restored() -> None:
    model = sharp_model(dropout=0.5).train()
    first = generate(model, [1, 2], 8, temperature=0)
    assert model.training
    assert first == generate(model.eval(), [1, 2], 8, temperature=0)  # dropout was off while generating
    assert not model.training


def test_zero_new_tokens_returns_the_prompt() -> None:
    model = sharp_model()
    assert generate(model, [4, 2], 0) == [4, 2]
    assert torch.equal(generate(model, torch.tensor([4, 2]), 0), torch.tensor([4, 2]))


# ------------------------------------------------------------------------------------------------- prompt kinds


def test_string_prompt_with_a_custom_tokenizer() -> None:
    tokenizer = CharTokenizer()
    model = sharp_model()
    text = generate(model, "hello", 12, temperature=0, tokenizer=tokenizer)
    ids = generate(model, tokenizer.encode("hello"), 12, temperature=0)
    assert text == tokenizer.decode(ids)
    assert text.startswith("hello") and len(text) == 5 + 12


def test_string_prompt_with_the_default_gpt2_tokenizer() -> None:
    from scratchformers import gpt2_encoding

    torch.manual_seed(0)
    model = GPT(get_config("gpt-mini", num_layers=1, num_heads=2, emb_dim=16, max_len=16)).eval()  # V = 50257
    enc = gpt2_encoding()
    text = generate(model, "Hello world", 5, seed=0)
    ids = generate(model, enc.encode("Hello world"), 5, seed=0)
    assert text == "Hello world" + enc.decode(ids[2:])
    eot = generate(model, "<|endoftext|>", 3, temperature=0)  # the separator is allowed and becomes 50256
    assert eot == "<|endoftext|>" + enc.decode(generate(model, [50256], 3, temperature=0)[1:])


def test_a_text_prompt_never_gets_padding_ids_the_tokenizer_cannot_decode() -> None:
    """GPT-2's 50,257 tokens padded to 50,304 in the model (the gpt2-owt preset, as nanoGPT): text generation
    draws only decodable ids, even from a model that prefers the padding (an early checkpoint can)."""
    torch.manual_seed(0)
    model = GPT(get_config("gpt-mini", num_layers=1, num_heads=2, emb_dim=16, max_len=16, vocab_size=50304)).eval()
    with torch.no_grad():  # the final LayerNorm outputs ones; the padding rows of the tied table score 16 each
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.fill_(1.0)
        model.transformer.wte.weight[50257:] = 1.0
        model.transformer.wte.weight[:50257] = 0.0
    assert generate(model, [1, 2], 3, temperature=0)[2:] == [50257] * 3  # ids: the whole vocabulary
    text = generate(model, "Hello", 3, seed=0)  # text: only GPT-2's own ids
    assert text.startswith("Hello") and len(text) > len("Hello")


def test_one_dimensional_tensor_prompt_keeps_its_shape() -> None:
    out = generate(sharp_model(), torch.tensor([1, 2, 3]), 4, temperature=0)
    assert out.shape == (7,) and out.dtype == torch.long


# ------------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_new_tokens=-1), "max_new_tokens"),
        (dict(max_new_tokens=2.5), "max_new_tokens"),
        (dict(temperature=-0.1), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(prompt=[]), "empty"),
        (dict(prompt=""), "empty"),
        (dict(prompt=[1, VOCAB]), "token ids"),
        (dict(prompt=[-1]), "token ids"),
        (dict(prompt=torch.tensor([[0.5, 1.0]])), "integer"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict, message: str) -> None:
    arguments = dict(prompt=[1, 2], max_new_tokens=3, tokenizer=CharTokenizer()) | kwargs
    with pytest.raises(ValueError, match=message):
        generate(sharp_model(), **arguments)


def test_prompt_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="prompt"):
        generate(sharp_model(), 3.14, 2)
