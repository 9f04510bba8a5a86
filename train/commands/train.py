"""Train a GPT: with no arguments, a character-level model on the embedded Shakespeare, on CPU in minutes.

Presets (every field can be overridden with its flag, e.g. --max-steps 100 --batch-size 4):
  shakespeare-cpu   4 layers, 128 wide, characters of the full Shakespeare (prepared automatically), 2 CPU cores
  gpt2-owt          GPT-2 small (124 M) on OpenWebText with nanoGPT's hyper-parameters, bf16, fast path, compile

Output goes to out/<preset>/ (or --out-dir): log.jsonl, last.pt, best.pt, curves.png, samples.txt. A run locks its
folder while it runs; a fresh run refuses a folder that holds a run: --resume it, pick another --out-dir, or
--overwrite it.

Examples:
  scratchformers train                                    # the default job
  scratchformers train --resume                           # continue an interrupted run exactly
  scratchformers prepare openwebtext && torchrun --standalone --nproc_per_node=8 -m scratchformers train --preset gpt2-owt
"""
from __future__ import annotations

import argparse
import sys
import time

from scratchformers.train.config import PRESETS, add_config_arguments, config_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="shakespeare-cpu",
                        help="the starting configuration (default shakespeare-cpu)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out-dir>/last.pt with its saved configuration (flags still override)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run found in the output folder (without it, a fresh run refuses a folder "
                             "that holds one)")
    parser.add_argument("--allow-data-change", action="store_true",
                        help="with --resume: continue on data whose content differs from the checkpoint's")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress report (a live bar on a terminal, a plain line every 30 s in a log)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()  # the wall time in the final line counts data preparation, samples and plots too
    from scratchformers.train.config import get_train_config
    from scratchformers.train.trainer import NothingToDo, Trainer

    if args.resume and args.overwrite:
        print("scratchformers train: error: --resume continues the run in the output folder and --overwrite "
              "replaces it: choose one", file=sys.stderr)
        return 2
    if args.allow_data_change and not args.resume:
        print("scratchformers train: error: --allow-data-change is for --resume", file=sys.stderr)
        return 2
    overrides = config_overrides(args)
    try:
        config = get_train_config(args.preset, **overrides)
        if args.resume:
            trainer = Trainer.resume(config.resolved_out_dir(), progress=args.progress,
                                     allow_data_change=args.allow_data_change, **overrides)
        else:
            trainer = Trainer(config, progress=args.progress, overwrite=args.overwrite)
        result = trainer.fit()
    except NothingToDo as done:
        print(f"nothing to do: {done}")
        return 0
    except (ValueError, OSError, ImportError, RuntimeError) as error:  # CheckpointError is a ValueError
        print(f"scratchformers train: error: {error}", file=sys.stderr)
        return 1
    if result.status == "interrupted":
        return 130
    if result.status == "diverged":
        return 1
    if result.val_loss is not None:
        print(f"done: {result.step} steps ({result.ms_per_step:.0f} ms/step), final val loss {result.val_loss:.4f} "
              f"nats = {result.val_bits:.3f} bits per {result.token_unit} (best {result.best_val_loss:.4f}); "
              f"checkpoints in {result.out_dir}; wall time {wall_time(time.perf_counter() - start)}")
    return 0


def wall_time(seconds: float) -> str:
    """``372.4`` → ``"6 min 12 s"``; under a minute, ``"41 s"``."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
