"""Sampling text from a GPT, one token at a time.

Autoregressive generation repeats one step: run the model on the context, take the logits of the *last*
position (the prediction for the next token), turn them into a probability distribution, draw a token, append it:

    p = softmax(logits / temperature)                  (V,)
    top-k:  keep the k most likely tokens, renormalise
    top-p:  keep the smallest set of most likely tokens whose total probability is ≥ p ("nucleus"), renormalise
    next ~ p                                           temperature = 0 means argmax (greedy decoding)

The model only knows ``max_len`` positions, so the context is cropped to its last ``max_len`` tokens (as in
nanoGPT): generation can run as long as you like, the model just forgets the distant past.

**KV cache.** Without a cache, step t re-runs the model over all t context tokens. With one, the prompt is run once
("prefill") and each later step feeds only the newest token, whose query attends to the stored keys and values.
The cache works while the sequence fits in ``max_len``. Once the window must slide, every token moves to a new
position; with absolute position embeddings the stored keys and values (computed at the old positions) are stale,
so from then on each step recomputes the whole cropped window, exactly like the no-cache path. Both paths
therefore see the same contexts and give the same tokens (tested).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import torch

from scratchformers.reference.gpt2_encoding import ENDOFTEXT, gpt2_encoding
from scratchformers.reference.model import GPT
from scratchformers.reference.tokenizer import Tokenizer


Prompt = TypeVar("Prompt", str, list[int], torch.Tensor)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set every logit below the k-th largest of its row to −∞: (B, V) → (B, V). Ties with the k-th are kept."""
    k = min(k, logits.shape[-1])
    kth_largest = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probabilities sum to ≥ p.

    Sort the probabilities in decreasing order; a token is dropped when the tokens ranked before it already
    reach p. The most likely token is therefore always kept, whatever p. (B, V) → (B, V), dropped logits = −∞.
    """
    probs, order = torch.sort(torch.softmax(logits, dim=-1), dim=-1, descending=True)  # (B, V) each
    mass_before = torch.cumsum(probs, dim=-1) - probs  # (B, V) probability of the tokens ranked higher
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row from next-token logits (B, V); returns ids (B, 1). ``temperature=0`` is argmax."""
    if temperature == 0:
        return torch.argmax(logits, dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


def check_sampling_arguments(
    max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None
) -> None:
    """Raise ``ValueError`` naming the first argument of :func:`generate` that is out of range."""
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer ≥ 0, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number ≥ 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer ≥ 1, got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")


def encode_prompt(prompt: str, tokenizer: Tokenizer | None = None) -> list[int]:
    """Token ids of ``prompt``: ``tokenizer.encode(prompt)``, or GPT-2's encoding when ``tokenizer`` is None."""
    if tokenizer is not None:
        return list(tokenizer.encode(prompt))
    # tiktoken refuses special-token text by default; in a GPT-2 prompt "<|endoftext|>" means the document
    # separator (as in nanoGPT's sample.py), so it is allowed and becomes token 50256.
    return gpt2_encoding().encode(prompt, allowed_special={ENDOFTEXT})


def decode_tokens(ids: list[int], tokenizer: Tokenizer | None = None) -> str:
    """Text of ``ids``: ``tokenizer.decode(ids)``, or GPT-2's decoding when ``tokenizer`` is None."""
    if tokenizer is not None:
        return tokenizer.decode(ids)
    return gpt2_encoding().decode(ids)


def _as_batch(
    prompt: str | Sequence[int] | torch.Tensor, tokenizer: Tokenizer | None, device: torch.device
) -> torch.Tensor:
    """The prompt as a (B, T) int64 tensor on ``device``."""
    if isinstance(prompt, str):
        ids = torch.tensor([encode_prompt(prompt, tokenizer)], dtype=torch.long)
    elif isinstance(prompt, torch.Tensor):
        if prompt.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8) or prompt.dim() not in (1, 2):
            raise ValueError(
                f"a tensor prompt must hold integer token ids with shape (T,) or (B, T), "
                f"got dtype {prompt.dtype} and shape {tuple(prompt.shape)}"
            )
        ids = prompt.long().reshape(-1, prompt.shape[-1])
    elif isinstance(prompt, Sequence) and all(isinstance(i, int) and not isinstance(i, bool) for i in prompt):
        ids = torch.tensor([list(prompt)], dtype=torch.long)
    else:
        raise TypeError(
            f"prompt must be a string, a list of token ids or an integer tensor, got {type(prompt).__name__}"
        )
    return ids.to(device)


def _check_ids(idx: torch.Tensor, vocab_size: int) -> None:
    if idx.shape[-1] == 0:
        raise ValueError("the prompt is empty: give at least one token to condition on")
    if idx.min() < 0 or idx.max() >= vocab_size:
        raise ValueError(
            f"token ids must be in [0, {vocab_size}) for this model, got ids from {int(idx.min())} to "
            f"{int(idx.max())}; was the prompt encoded with a tokenizer of a different vocabulary?"
        )


def _decodable_ids(tokenizer: Tokenizer | None) -> int | None:
    """How many ids ``tokenizer`` (None: GPT-2's) can decode, when it says (``vocab_size``, tiktoken's ``n_vocab``)."""
    tokenizer = gpt2_encoding() if tokenizer is None else tokenizer
    return getattr(tokenizer, "vocab_size", None) or getattr(tokenizer, "n_vocab", None)


@torch.no_grad()
def _generate_ids(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
    use_cache: bool,
    num_ids: int | None = None,
) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``max_new_tokens`` sampled tokens: (B, T + max_new_tokens); only ids below
    ``num_ids`` (default: the model's whole vocabulary) are drawn."""
    max_len = model.config.max_len
    cache = model.new_kv_cache(idx.shape[0]) if use_cache else None
    for _ in range(max_new_tokens):
        if cache is not None and cache.length == max_len:
            cache = None  # the window slides from here on: positions shift, the cached keys are stale
        if cache is not None and cache.length > 0:
            context = idx[:, -1:]  # (B, 1) only the newest token; everything before it is cached
        else:
            context = idx[:, -max_len:]  # (B, ≤ max_len) the prefill, or a full recomputation
        logits, _ = model(context, kv_cache=cache)  # (B, T_context, V)
        next_id = sample_next_token(logits[:, -1, :num_ids], temperature, top_k, top_p, generator)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)
    return idx


def generate(
    model: GPT,
    prompt: Prompt,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    tokenizer: Tokenizer | None = None,
    use_cache: bool = True,
) -> Prompt:
    """Continue ``prompt`` with ``max_new_tokens`` tokens sampled from ``model``.

    ``prompt`` may be a string (encoded with ``tokenizer``, by default GPT-2's; the result is the prompt followed
    by the decoded continuation), a list of token ids (returns the list extended) or an integer tensor of shape
    (T,) or (B, T) (returns int64 ids of the same shape with T + max_new_tokens columns; rows are sampled
    independently).

    ``temperature`` divides the logits (0 = greedy argmax, ``top_k``/``top_p`` then play no role); ``top_k``
    keeps the k most likely tokens; ``top_p`` keeps the nucleus of probability ≥ p; both may be combined (k first).
    ``seed`` draws from a private ``torch.Generator``, so results are reproducible and the global RNG is left
    alone. ``use_cache`` switches the KV cache (same tokens, faster; see the module docstring). The model runs in
    eval mode without gradients; its previous mode is restored afterwards.
    """
    check_sampling_arguments(max_new_tokens, temperature, top_k, top_p)
    device = model.transformer.wte.weight.device
    idx = _as_batch(prompt, tokenizer, device)
    _check_ids(idx, model.config.vocab_size)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)

    was_training = model.training
    model.eval()
    try:
        # A text prompt is answered in text: only ids the tokenizer can decode are drawn. (GPT-2's 50,257 tokens are
        # often padded to 50,304 in the model, as in nanoGPT; early in training the padding ids still get sampled.)
        num_ids = _decodable_ids(tokenizer) if isinstance(prompt, str) else None
        out = _generate_ids(model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache, num_ids)
    finally:
        model.train(was_training)

    if isinstance(prompt, str):
        return prompt + decode_tokens(out[0, idx.shape[1] :].tolist(), tokenizer)
    if isinstance(prompt, torch.Tensor):
        return out.to(prompt.device).reshape(*prompt.shape[:-1], out.shape[-1])
    return out[0].tolist()
