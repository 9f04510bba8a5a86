"""Plot attention heatmaps: which earlier tokens each head of a GPT looks at, for one prompt.

The model is a random one built from a preset (the default, gpt-mini), a training checkpoint (--checkpoint), or a
Hugging Face GPT-2 folder (--hf). Every chosen (layer, head) gets one heatmap, queries down, keys across.
With --flash it draws the flash attention kernel at work instead, run by its NumPy twin on random inputs: which key
blocks each query block visits or skips, and the online softmax of one query row converging block by block.

examples:
  scratchformers viz --prompt "The quick brown fox jumps over the lazy dog" --layers 0 1 --heads 0 1 2
  scratchformers viz --checkpoint out/shakespeare/best.pt --prompt "ROMEO:" --out romeo.png
  scratchformers viz --hf ./gpt2 --prompt "When Mary and John went to the store, John gave a drink to" --layers 9
  scratchformers viz --flash --lengths 40 72 --blocks 8 16 --key-len 60
"""
from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", default="gpt-mini", help="random model from this preset (default: gpt-mini)")
    source.add_argument("--checkpoint", metavar="PATH", help="a training checkpoint (.pt) written by `train`")
    source.add_argument("--hf", metavar="DIR", help="a Hugging Face GPT-2 folder (config.json + weights)")
    parser.add_argument("--prompt", default="The quick brown fox jumps over the lazy dog.", help="text to run")
    parser.add_argument("--layers", type=int, nargs="+", metavar="L", help="layers to plot (default: all)")
    parser.add_argument("--heads", type=int, nargs="+", metavar="H", help="heads to plot (default: all)")
    parser.add_argument("--out", help="PNG file to write (default: attention.png, or flash_attention.png)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random model or inputs (default: 0)")
    flash = parser.add_argument_group("flash attention (--flash)")
    flash.add_argument("--flash", action="store_true",
                       help="draw the flash kernel's block schedule and online softmax instead of heatmaps")
    flash.add_argument("--lengths", type=int, nargs=2, default=(48, 64), metavar=("TQ", "TK"),
                       help="query and key lengths (default: 48 64)")
    flash.add_argument("--blocks", type=int, nargs=2, default=(16, 16), metavar=("BLOCK_M", "BLOCK_N"),
                       help="query and key block sizes (default: 16 16)")
    flash.add_argument("--key-len", type=int, help="keys from this position on are padding (default: none)")
    flash.add_argument("--no-causal", action="store_true", help="no causal mask")
    flash.add_argument("--row", type=int, help="the query row whose online softmax is drawn (default: the last)")


def _from_checkpoint(path: str) -> tuple[Any, Any]:
    """Model and tokenizer of a training checkpoint (read by :func:`load_checkpoint`, as every command does)."""
    from scratchformers.train.checkpoint import load_checkpoint, model_from_checkpoint
    from scratchformers.train.tokenizers import load_tokenizer

    state = load_checkpoint(path)
    # Attention weights come from the reference path; a checkpoint moves between backends unchanged.
    model = model_from_checkpoint(state, attention="reference", layernorm="reference")
    return model, load_tokenizer(state["data"]) if state.get("data") else None  # None: GPT-2's tokenizer


def _load_model(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """The model, its tokenizer (None: GPT-2's) and a description of where it came from."""
    import torch

    from scratchformers.reference.config import get_config
    from scratchformers.reference.hf import load_hf_gpt2
    from scratchformers.reference.model import GPT

    if args.checkpoint:
        model, tokenizer = _from_checkpoint(args.checkpoint)
        return model, tokenizer, args.checkpoint
    if args.hf:
        return load_hf_gpt2(args.hf), None, args.hf
    torch.manual_seed(args.seed)
    return GPT(get_config(args.preset)), None, f"random {args.preset} (seed {args.seed})"


def _run_flash(args: argparse.Namespace) -> None:
    from scratchformers.reference.viz import plot_flash_attention

    (tq, tk), (block_m, block_n) = args.lengths, args.blocks
    _, trace = plot_flash_attention(tq, tk, block_m, block_n, causal=not args.no_causal, key_len=args.key_len,
                                    row=args.row, seed=args.seed, path=args.out)
    table = trace.schedule()
    counts = ", ".join(f"{(table == kind).sum()} {name}" for kind, name in
                       ((trace.FULL, "unmasked"), (trace.MASKED, "masked"), (trace.SKIPPED, "skipped")))
    print(f"flash attention {tq}x{tk}, blocks {block_m}x{block_n}: {counts} key blocks → {args.out}")


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from scratchformers.reference.viz import plot_attention
    from scratchformers.train.plots import png_path

    args.out = str(png_path(args.out or ("flash_attention.png" if args.flash else "attention.png")))
    try:
        if args.flash:
            _run_flash(args)
            return 0
        model, tokenizer, source = _load_model(args)
        _, weights = plot_attention(
            model, args.prompt, tokenizer=tokenizer, layers=args.layers, heads=args.heads, path=args.out
        )
    except (ValueError, OSError, RuntimeError) as err:  # CheckpointError is a ValueError
        print(f"scratchformers viz: error: {err}", file=sys.stderr)
        return 1
    layers, heads, tokens, _ = weights.shape
    print(f"{source}: {layers} layer(s) × {heads} head(s) over {tokens} tokens → {args.out}")
    return 0
