"""Generate text from a trained checkpoint (ours, or Hugging Face GPT-2 weights) with temperature, top-k, top-p.

Examples:
  scratchformers sample                                         # out/shakespeare-cpu/best.pt, a newline prompt
  scratchformers sample --checkpoint out/gpt2-owt/last.pt --prompt "The meaning of life is" --top-k 200
  scratchformers sample --hf path/to/gpt2 --prompt "Hello, I'm a language model," --num-samples 3
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", default="out/shakespeare-cpu/best.pt",
                        help="a checkpoint written by `scratchformers train` (default out/shakespeare-cpu/best.pt)")
    source.add_argument("--hf", metavar="DIR_OR_NAME",
                        help="a Hugging Face GPT-2 folder (config.json + model.safetensors) or hub name")
    parser.add_argument("--prompt", default="\n", help="the text to continue (default a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=300, help="tokens to add to the prompt (default 300)")
    parser.add_argument("--num-samples", type=int, default=1, help="how many samples (default 1)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=0,
                        help="sample among the k likeliest tokens only; 0 = no filter (default), as in `train`")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling: the smallest set of tokens "
                                                                   "whose probabilities add up to p (default: off)")
    parser.add_argument("--seed", type=int, default=None, help="fix the sampling randomness")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default auto)")


def run(args: argparse.Namespace) -> int:
    import torch

    from scratchformers.reference.generate import check_sampling_arguments, encode_prompt, generate
    from scratchformers.train.checkpoint import load_checkpoint, model_from_checkpoint
    from scratchformers.train.ddp import resolve_device
    from scratchformers.train.tokenizers import load_tokenizer

    try:
        if args.num_samples < 1:
            raise ValueError(f"--num-samples must be at least 1, got {args.num_samples}")
        if args.top_k < 0:
            raise ValueError(f"--top-k must be 0 (no filter) or more, got {args.top_k}")
        top_k = args.top_k or None
        check_sampling_arguments(args.max_new_tokens, args.temperature, top_k, args.top_p)
        device = resolve_device(args.device)
        # The Triton path needs a GPU: on CPU a model trained with it runs on the (weight-compatible) torch path.
        backends = {} if device.type == "cuda" else {"attention": "torch_sdpa", "layernorm": "torch"}
        if args.hf:
            from scratchformers.reference.hf import from_pretrained

            model, tokenizer = from_pretrained(args.hf, **backends), None  # None: GPT-2's own BPE
        else:
            state = load_checkpoint(args.checkpoint)
            model, tokenizer = model_from_checkpoint(state, **backends), load_tokenizer(state["data"])
        encode_prompt(args.prompt, tokenizer)  # characters outside the vocabulary: an error before any sampling
        model.to(device)
        for i in range(args.num_samples):
            seed = None if args.seed is None else args.seed + i
            with torch.no_grad():
                text = generate(model, args.prompt, args.max_new_tokens, temperature=args.temperature,
                                top_k=top_k, top_p=args.top_p, seed=seed, tokenizer=tokenizer)
            print(f"--- sample {i + 1} ---\n{text}")
    except (ValueError, OSError) as error:  # CheckpointError is a ValueError, FileNotFoundError an OSError
        print(f"scratchformers sample: error: {error}", file=sys.stderr)
        return 1
    return 0
