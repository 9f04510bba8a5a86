"""Train a BPE tokenizer (classic word BPE or GPT-2-style byte-level BPE), save it, encode and decode text.

The tokenizer is trained on a text file (--input) or on the embedded Shakespeare corpus (--corpus, default tiny),
or loaded from a JSON file written by --save (--load). Then it prints what it learned: the vocabulary size, the
number of merges, the training time and the compression on the corpus (characters per token).

  --kind word   Sennrich's word BPE with </w> (scratchformers.reference.bpe / fast.bpe): --merges N
  --kind byte   GPT-2's byte-level BPE (scratchformers.reference.bytebpe / fast.bytebpe): --vocab-size N
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections import Counter
from typing import Any

DEFAULT_MERGES = 4000
DEFAULT_VOCAB_SIZE = 1000

EXAMPLES = """examples:
  scratchformers tokenize                                  # word BPE, 4000 merges on tiny Shakespeare
  scratchformers tokenize --corpus full --save bpe.json    # the full corpus (5 M characters), saved as JSON
  scratchformers tokenize --input my.txt --merges 1000 --encode "To be, or not to be"
  scratchformers tokenize --load bpe.json --encode "Wherefore art thou Romeo" --quiet
  scratchformers tokenize --load bpe.json --decode "523 87 1200"
  scratchformers tokenize --kind byte --vocab-size 2000 --save bytebpe.json
  scratchformers tokenize --impl reference --merges 100    # the reference's plain loop: slow, same merges
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--kind", choices=["word", "byte"], default="word",
                        help="word: classic word BPE with </w> (default); byte: GPT-2-style byte-level BPE")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="PATH", help="train on this UTF-8 text file")
    source.add_argument("--corpus", choices=["full", "tiny"], default=None,
                        help="train on the embedded Shakespeare corpus: tiny (1.1 M characters, the default) or full")
    parser.add_argument("--merges", type=int, default=None,
                        help=f"merges to learn, --kind word (default {DEFAULT_MERGES})")
    parser.add_argument("--vocab-size", type=int, default=None,
                        help=f"vocabulary size, --kind byte (default {DEFAULT_VOCAB_SIZE}; at least 256)")
    parser.add_argument("--impl", choices=["fast", "reference"], default="fast",
                        help="trainer: fast (default) or the readable reference (slow; the same merges)")
    parser.add_argument("--save", metavar="PATH", help="write the tokenizer to this JSON file")
    parser.add_argument("--load", metavar="PATH", help="load a tokenizer written by --save instead of training")
    parser.add_argument("--encode", metavar="TEXT", help="print the ids and tokens of TEXT")
    parser.add_argument("--decode", metavar="IDS", help='print the text of space-separated ids, e.g. "12 7 301"')
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no statistics: print only --encode / --decode results")


def _tokenizer_class(kind: str, impl: str) -> Any:
    if kind == "word":
        if impl == "fast":
            from scratchformers.fast.bpe import WordBPE
        else:
            from scratchformers.reference.bpe import WordBPE
        return WordBPE
    if impl == "fast":
        from scratchformers.fast.bytebpe import ByteLevelBPE
    else:
        from scratchformers.reference.bytebpe import ByteLevelBPE
    return ByteLevelBPE


def _load(cls: Any, args: argparse.Namespace) -> Any:
    """The tokenizer saved at ``--load``; a file of the other kind is one error naming the ``--kind`` it needs."""
    try:
        return cls.load(args.load)
    except ValueError:
        saved = _saved_kind(args.load)
        if saved is not None and saved != args.kind:
            raise ValueError(f"{args.load} holds a {saved} BPE tokenizer: add --kind {saved}") from None
        raise


def _saved_kind(path: str) -> str | None:
    """``"word"`` or ``"byte"``: the kind of tokenizer a JSON file written by ``--save`` holds (None: neither)."""
    from scratchformers.reference import bpe, bytebpe

    try:
        with open(path, encoding="utf-8") as f:
            found = json.load(f).get("format")
    except (OSError, ValueError, AttributeError):
        return None
    return {bpe.FILE_FORMAT: "word", bytebpe.FILE_FORMAT: "byte"}.get(found)


def _read_corpus(args: argparse.Namespace) -> tuple[str, str]:
    """The training text and a description of it."""
    if args.input is not None:
        with open(args.input, encoding="utf-8") as f:
            text = f.read()
        return text, args.input
    from scratchformers.train.data import shakespeare

    variant = args.corpus or "tiny"
    return shakespeare(variant), f"{variant} Shakespeare"


def _count_tokens(tok: Any, kind: str, text: str) -> int:
    """Number of tokens of ``text``. The word BPE encodes each distinct word once (exactly the same count)."""
    if kind == "word":
        return sum(len(tok.encode_word(word)) * n for word, n in Counter(text.split()).items())
    return len(tok.encode(text))


def _token_strings(tok: Any, kind: str, ids: list[int]) -> list[str]:
    if kind == "word":
        return [tok.id2token[i] for i in ids]
    return [tok.decode([i]) for i in ids]


def _parse_ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"--decode takes integer ids separated by spaces, got {text!r}") from None


def _check_sizes(args: argparse.Namespace) -> None:
    if args.kind == "word" and args.vocab_size is not None:
        raise ValueError("--vocab-size is for --kind byte; the word BPE takes --merges")
    if args.kind == "byte" and args.merges is not None:
        raise ValueError("--merges is for --kind word; the byte-level BPE takes --vocab-size")


def run(args: argparse.Namespace) -> int:
    say = (lambda *a: None) if args.quiet else print
    try:
        _check_sizes(args)
        cls = _tokenizer_class(args.kind, args.impl)
        label = f"{args.kind} BPE ({args.impl})"
        text = None
        if args.load is not None:
            tok = _load(cls, args)
            say(f"{label} loaded from {args.load}")
            if args.input is not None or args.corpus is not None:
                text, source = _read_corpus(args)
        else:
            text, source = _read_corpus(args)
            if args.kind == "word":
                size = DEFAULT_MERGES if args.merges is None else args.merges
            else:
                size = DEFAULT_VOCAB_SIZE if args.vocab_size is None else args.vocab_size
            start = time.perf_counter()
            tok = cls()
            with warnings.catch_warnings(record=True) as caught:  # e.g. "only 17 of the 4000 merges are possible"
                warnings.simplefilter("always")
                tok.train(text, size, verbose=not args.quiet)
            for warning in caught:
                print(f"scratchformers tokenize: warning: {warning.message}", file=sys.stderr)
            say(f"{label} trained on {source} ({len(text):,} characters) in {time.perf_counter() - start:.2f} s")
        say(f"  merges learned  {len(tok.merges):,}")
        say(f"  vocab size      {tok.vocab_size:,}")
        if text is not None and not args.quiet:
            n_tokens = _count_tokens(tok, args.kind, text)
            print(f"  compression     {len(text) / max(n_tokens, 1):.2f} characters per token "
                  f"({n_tokens:,} tokens on {source})")
        if args.save is not None:
            tok.save(args.save)
            say(f"saved to {args.save}")
        if args.encode is not None:
            ids = tok.encode(args.encode)
            print(f"ids:    {ids}")
            print(f"tokens: {_token_strings(tok, args.kind, ids)}")
        if args.decode is not None:
            print(tok.decode(_parse_ids(args.decode)))
    except (ValueError, TypeError, OSError) as err:
        print(f"scratchformers tokenize: error: {err}", file=sys.stderr)
        return 1
    return 0
