"""Tokenize a dataset into train.bin / val.bin / meta.json for training.

Two datasets:

  shakespeare   the corpus shipped inside the package (no download); the last 10% of the text is val
  openwebtext   nanoGPT's GPT-2 reproduction data via `datasets` (8 M documents, ~9 B tokens, 0.05% val),
                or your own documents with --data-files (.jsonl/.json/.parquet with a `text` column, or .txt files)

The default output folder is the one `scratchformers train` reads for the same dataset, tokenizer, variant and BPE
merges; meta.json records them (and the source), and train refuses a folder that holds something else. A rerun
replaces a dataset only once the new one is complete: if it fails or is stopped, the previous dataset is still there.

Examples:
  scratchformers prepare shakespeare                       # GPT-2 BPE -> data/shakespeare_gpt2
  scratchformers prepare shakespeare --tokenizer char      # characters -> data/shakespeare_char
  scratchformers prepare shakespeare --tokenizer char --variant tiny       # -> data/shakespeare_tiny_char
  scratchformers prepare shakespeare --tokenizer bpe --bpe-merges 2000     # -> data/shakespeare_bpe2000
  scratchformers prepare openwebtext --num-proc 8          # -> data/openwebtext (needs the hub)
  scratchformers prepare openwebtext --data-files 'owt/*.parquet' --max-documents 10000 --out data/owt_small
"""
from __future__ import annotations

import argparse
import sys
import time

from scratchformers.train.data import VARIANTS
from scratchformers.train.datasets import (
    DEFAULT_BPE_MERGES,
    OPENWEBTEXT_SPEC,
    OPENWEBTEXT_SPLIT_SEED,
    OPENWEBTEXT_VAL_FRACTION,
    SHAKESPEARE_VAL_FRACTION,
    TOKENIZERS,
    shakespeare_spec,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    datasets = parser.add_subparsers(dest="dataset", metavar="DATASET")
    datasets.required = True

    sp = datasets.add_parser("shakespeare", help="the embedded Shakespeare corpus (default data of the library)")
    sp.add_argument("--tokenizer", choices=TOKENIZERS, default="gpt2",
                    help="gpt2: tiktoken's GPT-2 BPE (default); char: one token per character; bpe: the classic "
                         "word BPE trained on the corpus")
    sp.add_argument("--variant", choices=VARIANTS, default="full",
                    help="full: 42 works, 5.06 M characters (default); tiny: the first 1.1 M characters")
    sp.add_argument("--out", default=None,
                    help="output directory (default: data/shakespeare_[tiny_]<tokenizer>[<merges>], where train "
                         "looks for it)")
    sp.add_argument("--val-fraction", type=float, default=SHAKESPEARE_VAL_FRACTION,
                    help=f"held-out fraction of the text (default {SHAKESPEARE_VAL_FRACTION})")
    sp.add_argument("--bpe-merges", type=int, default=DEFAULT_BPE_MERGES,
                    help=f"merges learned by --tokenizer bpe (default {DEFAULT_BPE_MERGES})")

    op = datasets.add_parser("openwebtext", help="OpenWebText from the Hugging Face hub, or local documents")
    op.add_argument("--data-files", nargs="+", default=None, metavar="FILE",
                    help="local .jsonl/.json/.parquet files (a string `text` per row) or .txt files (one document "
                         "each, kept byte for byte), optionally .gz/.bz2/.xz. A path that exists is taken as it is; "
                         "anything else is a glob ('owt/*.parquet', 'owt/**/*.txt'). A directory is an error: name "
                         "its files. A bad row stops with its file and line. Without it the hub dataset "
                         "--dataset-name is loaded")
    op.add_argument("--dataset-name", default="openwebtext", help="hub dataset (default: openwebtext)")
    op.add_argument("--num-proc", type=int, default=None, help="tokenizer processes (default: half the CPU cores)")
    op.add_argument("--max-documents", type=int, default=None, help="keep only the first N documents")
    op.add_argument("--val-fraction", type=float, default=OPENWEBTEXT_VAL_FRACTION,
                    help=f"held-out fraction of documents (default {OPENWEBTEXT_VAL_FRACTION})")
    op.add_argument("--seed", type=int, default=OPENWEBTEXT_SPLIT_SEED,
                    help=f"seed of the document shuffle (default {OPENWEBTEXT_SPLIT_SEED})")
    op.add_argument("--cache-dir", default=None,
                    help="the `datasets` cache (default ~/.cache/huggingface/datasets); local files are cached by "
                         "the sha256 of their contents")
    op.add_argument("--out", default=None, help=f"output directory (default: {OPENWEBTEXT_SPEC.directory()})")


def run(args: argparse.Namespace) -> int:
    from scratchformers.train.prepare_openwebtext import prepare_openwebtext
    from scratchformers.train.prepare_shakespeare import prepare_shakespeare

    start = time.perf_counter()
    try:
        if args.dataset == "shakespeare":
            out = args.out or shakespeare_spec(args.tokenizer, args.variant, args.bpe_merges).directory()
            meta = prepare_shakespeare(out, args.tokenizer, args.variant, args.val_fraction, args.bpe_merges)
        else:
            out = args.out or OPENWEBTEXT_SPEC.directory()
            meta = prepare_openwebtext(
                out,
                data_files=args.data_files,
                num_proc=args.num_proc,
                val_fraction=args.val_fraction,
                seed=args.seed,
                max_documents=args.max_documents,
                cache_dir=args.cache_dir,
                dataset_name=args.dataset_name,
            )
    except (ValueError, OSError, RuntimeError) as err:
        print(f"scratchformers prepare: error: {err}", file=sys.stderr)
        return 1
    tokens = meta["tokens"]
    print(f"wrote {out}: train {tokens['train']:,} tokens, val {tokens['val']:,} tokens "
          f"({meta['tokenizer']['kind']} tokenizer, vocab_size {meta['vocab_size']:,}, {meta['dtype']}) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
