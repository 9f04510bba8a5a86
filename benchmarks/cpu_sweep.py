"""The sweep behind the CPU default: which GPT-2-shaped run makes the best use of a few minutes on a small CPU.

A candidate is a set of ``scratchformers train`` flags (model shape, batch, context, optimizer, learning rates and
schedule, dropout, compile, dtype). What a candidate reaches in a wall-clock budget is two separate measurements:

* **time** (needs an idle machine): a short run of each candidate, stamped line by line, gives its seconds per
  step, its cost per evaluation batch and its fixed overhead (start-up, the step-0 evaluation, ``torch.compile``);
* **loss** (any machine): a run of a given number of steps records the validation loss at each evaluation. The
  loss after N steps does not depend on how busy the machine is, so these runs may share the machine
  (``--jobs 2``, one thread each) or run while it is loaded.

``plan`` joins them: from the timings, how many steps each candidate affords in ``--budget-s`` with ``--evals``
evaluations of ``--eval-batches`` batches; ``loss --planned`` then runs each candidate for exactly that many steps
(its cosine schedule ending where the budget ends). The winner is confirmed by the side-by-side benchmark
(cpu_vs_nanogpt.py), which measures wall time and loss in one go.

    python benchmarks/cpu_sweep.py list                            # candidates, their flags and why
    python benchmarks/cpu_sweep.py time                            # idle machine: every candidate, one at a time
    python benchmarks/cpu_sweep.py plan --budget-s 420             # steps each candidate affords
    python benchmarks/cpu_sweep.py loss --planned --jobs 2         # val loss at the planned step counts
    python benchmarks/cpu_sweep.py loss b8t128 lr3e-3 --steps 400  # or a fixed step count, for pruning
    python benchmarks/cpu_sweep.py loss lr3e-3 --set batch_size=8  # a candidate on top of another's choice
    python benchmarks/cpu_sweep.py report                          # the table for RESULTS.md

Everything goes to ``--out`` (default ``out/cpu_sweep``): ``timing.json``, ``plan.json``, ``loss.json`` (results
accumulate across calls, keyed by candidate name plus its ``--set`` values), ``sweep.md`` and the stamped logs.
The data is our tiny Shakespeare with character tokens (the side-by-side benchmark's); ``--tokenizer gpt2`` prepares
it with GPT-2's tokens (the ``gpt2s-*`` candidates); ``--variant full`` uses the
full corpus that the default ``scratchformers train`` reads.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cpu_runs
from cpu_runs import REPO

# The knobs every candidate sets, so that a candidate means the same run whatever the preset's defaults become.
# These are the shakespeare-cpu defaults that the sweep started from.
BASE: dict[str, Any] = dict(
    num_layers=4, num_heads=4, emb_dim=128, max_len=128, batch_size=16, dropout=0.0,
    optimizer="adamw", learning_rate=2e-3, schedule="cosine", warmup_steps=100, min_lr_factor=0.1, beta2=0.99,
    weight_decay=0.1, compile=False, dtype="float32",
)
# The default that the first sweep found (bf16 autocast, AdamW's peak at 3e-3): the optimizer and schedule
# candidates start from it. The pilot behind them (1,500 steps on the full Shakespeare): Muon at 0.02 on the block
# matrices beside this AdamW reached a validation loss at 1,000 steps below AdamW's at 1,500; Muon at 0.05 did not.
DEFAULT: dict[str, Any] = dict(dtype="bfloat16", learning_rate=3e-3)
MUON: dict[str, Any] = dict(DEFAULT, optimizer="muon", muon_learning_rate=0.02, muon_momentum=0.95,
                            muon_weight_decay=0.0)
WSD: dict[str, Any] = dict(schedule="wsd", cooldown_frac=0.2, min_lr_factor=0.0)  # the speedrun's: cool down to 0
GPT2_SMALLER: dict[str, Any] = dict(DEFAULT, num_layers=4, num_heads=4, emb_dim=256, max_len=128, batch_size=8,
                                    beta2=0.95)


@dataclass(frozen=True)
class Candidate:
    changes: dict[str, Any]
    why: str

    def knobs(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**BASE, **self.changes, **(extra or {})}


CANDIDATES: dict[str, Candidate] = {
    "base": Candidate({}, "the shakespeare-cpu default as the sweep found it: 4x128, 16x128 characters, lr 2e-3"),
    # --- tokens per step against steps: per-token cost is nearly flat in T <= 256 at this width, so a smaller
    #     batch buys proportionally more optimizer steps; nanoGPT's recipe wins today with 768-token steps.
    "b8t128": Candidate(dict(batch_size=8), "half the tokens per step, twice the steps"),
    "b32t128": Candidate(dict(batch_size=32), "twice the tokens per step: is the default below its critical batch?"),
    "b16t64": Candidate(dict(max_len=64, batch_size=16), "shorter context, 1024 tokens per step"),
    "b12t64": Candidate(dict(max_len=64, batch_size=12), "nanoGPT's README shape in our trainer"),
    "b8t256": Candidate(dict(max_len=256, batch_size=8),
                        "longer context at the same tokens per step: attention is cheap at T=256, C=128"),
    "b4t256": Candidate(dict(max_len=256, batch_size=4), "long context, many small steps"),
    # --- width and depth at a fixed budget (0.8 M parameters today; compute-optimal for ~6 M tokens is ~0.5-1 M,
    #     and four epochs of a 1 M-character corpus argue for a larger model, not more tokens).
    "l6c128": Candidate(dict(num_layers=6), "deeper: 1.2 M parameters"),
    "l3c192": Candidate(dict(num_layers=3, num_heads=3, emb_dim=192), "wider, shallower, 64-wide heads: 1.3 M"),
    "l4c192": Candidate(dict(num_heads=3, emb_dim=192), "wider: 1.8 M parameters, bigger matmuls run closer to peak"),
    "l2c256": Candidate(dict(num_layers=2, emb_dim=256), "two wide layers: 1.6 M, fewest separate kernels per token"),
    "l4c96": Candidate(dict(num_heads=3, emb_dim=96), "narrower and faster: 0.45 M, more tokens"),
    # --- learning rate and schedule (small models take large rates; cosine to 10 % leaves loss on the table
    #     at the end of a short run; Adam's beta2=0.95 reacts faster with few steps).
    "lr1e-3": Candidate(dict(learning_rate=1e-3), "nanoGPT's rate"),
    "lr3e-3": Candidate(dict(learning_rate=3e-3), "higher rate"),
    "lr4e-3": Candidate(dict(learning_rate=4e-3), "higher rate"),
    "lr6e-3": Candidate(dict(learning_rate=6e-3, warmup_steps=200), "much higher rate, longer warm-up"),
    "minlr0": Candidate(dict(min_lr_factor=0.0), "cosine all the way to zero"),
    "wu30": Candidate(dict(warmup_steps=30), "shorter warm-up: 100 steps is 4 % of a 2500-step run"),
    "beta2-0.95": Candidate(dict(beta2=0.95), "GPT-2's beta2"),
    # --- regularisation: ~6 epochs of 1 M characters; dropout only pays once a model starts to overfit.
    "drop0.1-l4c192": Candidate(dict(num_heads=3, emb_dim=192, dropout=0.1), "dropout on the larger model"),
    # --- system: the same math, faster steps (or not).
    "compile": Candidate(dict(compile=True), "torch.compile: fused elementwise ops (GELU, residuals), ~35 s to "
                                             "compile, cold cache"),
    "bf16": Candidate(dict(dtype="bfloat16"), "bf16 autocast: native bf16 dot products (avx512_bf16 / AMX)"),
    "bf16-l4c192": Candidate(dict(num_heads=3, emb_dim=192, dtype="bfloat16"), "bf16 where matmuls are larger"),
    "compile-l4c192": Candidate(dict(num_heads=3, emb_dim=192, compile=True), "compile on the larger model"),
    # --- the optimizer: Muon (orthogonalised momentum) for the blocks' 2-D matrices, AdamW for the embeddings,
    #     biases and gains (--optimizer muon); every row below starts from today's default, "default".
    "default": Candidate(DEFAULT, "today's shakespeare-cpu default: AdamW 3e-3, cosine to 10 %, bf16"),
    "muon": Candidate(MUON, "Muon 0.02 (momentum 0.95, no decay) on the block matrices, AdamW 3e-3 on the rest"),
    "muon-lr0.01": Candidate({**MUON, "muon_learning_rate": 0.01}, "Muon's rate halved"),
    "muon-lr0.03": Candidate({**MUON, "muon_learning_rate": 0.03}, "Muon's rate x1.5"),
    "muon-lr0.05": Candidate({**MUON, "muon_learning_rate": 0.05}, "Muon's rate x2.5 (the pilot: worse than AdamW)"),
    "muon-mom0.9": Candidate({**MUON, "muon_momentum": 0.9}, "less momentum: a shorter memory for a short run"),
    "muon-mom0.98": Candidate({**MUON, "muon_momentum": 0.98}, "more momentum"),
    "muon-wd0.1": Candidate({**MUON, "muon_weight_decay": 0.1}, "Muon with torch's default weight decay"),
    "muon-adamw6e-3": Candidate({**MUON, "learning_rate": 6e-3}, "a higher AdamW rate beside Muon (embeddings, gains)"),
    # --- the schedule: warmup-stable-decay (--schedule wsd), the peak held until a linear cool-down to zero.
    "wsd": Candidate({**DEFAULT, **WSD}, "AdamW with wsd: what the schedule alone buys"),
    "muon-cos0": Candidate({**MUON, "min_lr_factor": 0.0}, "Muon, cosine to zero: the floor alone"),
    "muon-wsd": Candidate({**MUON, **WSD}, "Muon, wsd: the last 20 % of the steps cool down to zero"),
    "muon-wsd-cd0.1": Candidate({**MUON, **WSD, "cooldown_frac": 0.1}, "a shorter cool-down"),
    "muon-wsd-cd0.4": Candidate({**MUON, **WSD, "cooldown_frac": 0.4}, "a longer cool-down (the speedrun's 0.4)"),
    "muon-wsd-lr0.01": Candidate({**MUON, **WSD, "muon_learning_rate": 0.01}, "the two best changes together"),
    "muon-wsd-lr0.01-wd0.1": Candidate({**MUON, **WSD, "muon_learning_rate": 0.01, "muon_weight_decay": 0.1},
                                       "Muon fits the tiny text faster (train 1.25, val 1.52): decay as a brake"),
    "muon-wsd-lr0.01-drop0.1": Candidate({**MUON, **WSD, "muon_learning_rate": 0.01, "dropout": 0.1},
                                         "or dropout as the brake"),
    # --- shapes Muon may afford: if it learns more per step, a larger model's fewer steps may now pay.
    "muon-l4c192": Candidate({**MUON, "num_heads": 3, "emb_dim": 192}, "wider: 1.8 M parameters"),
    "muon-l6c128": Candidate({**MUON, "num_layers": 6}, "deeper: 1.2 M parameters"),
    "muon-l4c96": Candidate({**MUON, "num_heads": 3, "emb_dim": 96}, "narrower: 0.45 M, more steps"),
    "muon-b8t128": Candidate({**MUON, "batch_size": 8}, "half the tokens per step, twice the steps"),
    "muon-b32t128": Candidate({**MUON, "batch_size": 32}, "twice the tokens per step: Muon may use a larger batch"),
    "muon-b32t128-wsd-lr0.01": Candidate({**MUON, **WSD, "muon_learning_rate": 0.01, "batch_size": 32},
                                         "the larger batch with the best rate and schedule"),
    "muon-l4c192-wsd-lr0.01": Candidate({**MUON, **WSD, "muon_learning_rate": 0.01, "num_heads": 3, "emb_dim": 192},
                                        "the wider shape with the best rate and schedule"),
    # --- the same choice at GPT-2's scale of vocabulary (run with --tokenizer gpt2 --variant full): a 4-layer,
    #     256-wide GPT-2 with its 50,257-token table (16 M parameters, 13 M of them the tied embedding), 8 x 128
    #     tokens a step, AdamW at two rates against Muon at its default beside AdamW.
    "gpt2s-adamw1e-3": Candidate(dict(GPT2_SMALLER, learning_rate=1e-3), "GPT-2 tokens, AdamW 1e-3"),
    "gpt2s-adamw3e-3": Candidate(dict(GPT2_SMALLER, learning_rate=3e-3), "GPT-2 tokens, AdamW 3e-3"),
    "gpt2s-muon": Candidate(dict(GPT2_SMALLER, **{k: v for k, v in MUON.items() if k != "learning_rate"},
                                 learning_rate=1e-3), "GPT-2 tokens, Muon 0.02 beside AdamW 1e-3"),
}


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def knob_flags(knobs: dict[str, Any]) -> list[str]:
    """``scratchformers train`` flags for a candidate's knobs (booleans as ``--x`` / ``--no-x``)."""
    flags = []
    for key, value in knobs.items():
        if isinstance(value, bool):
            flags.append(flag(key) if value else "--no-" + key.replace("_", "-"))
        else:
            flags += [flag(key), str(value)]
    return flags


def check_flags(env: dict[str, str], knobs: dict[str, Any]) -> None:
    """Refuse to start when the CLI no longer has a flag the sweep sets (renamed since the sweep was written)."""
    help_text = subprocess.run(cpu_runs.scratchformers("train", "--help"), env=env, capture_output=True,
                               text=True).stdout
    missing = [flag(key) for key in knobs if flag(key) not in help_text]
    if missing:
        raise SystemExit(f"`scratchformers train` has no {', '.join(missing)}: update BASE/CANDIDATES in "
                         f"{Path(__file__).name}")


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set batch_size=8 --set compile=true`` → ``{"batch_size": 8, "compile": True}``."""
    extra: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, e.g. batch_size=8")
        lowered = text.lower()
        value: Any = text
        if lowered in ("true", "false"):
            value = lowered == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(text)
                    break
                except ValueError:
                    continue
        extra[key] = value
    return extra


def result_key(name: str, extra: dict[str, Any]) -> str:
    return name + "".join(f"+{k}={v}" for k, v in extra.items())


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def save_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------------------- runs


def train_command(args: argparse.Namespace, data_dir: Path, out_dir: Path, knobs: dict[str, Any],
                  steps: int, eval_interval: int, eval_batches: int, threads: int, log_interval: int,
                  samples: int) -> list[str]:
    return cpu_runs.scratchformers(
        "train", "--shakespeare-variant", args.variant, "--tokenizer", args.tokenizer, "--data-dir", str(data_dir),
        "--out-dir", str(out_dir),
        *knob_flags(knobs), "--max-steps", str(steps), "--eval-interval", str(eval_interval),
        "--eval-batches", str(eval_batches), "--log-interval", str(log_interval), "--num-threads", str(threads),
        "--num-samples", str(samples), "--no-plot", "--no-progress", "--overwrite",  # the sweep's own folders
    )


def prepare(args: argparse.Namespace, env: dict[str, str]) -> Path:
    data_dir = args.out / "data" / f"shakespeare_{args.variant}_{args.tokenizer}"
    if args.variant == "tiny" and args.tokenizer == "char":
        return cpu_runs.prepare_tiny_char(data_dir, env)
    command = cpu_runs.scratchformers("prepare", "shakespeare", "--tokenizer", args.tokenizer,
                                      "--variant", args.variant, "--out", str(data_dir))
    subprocess.run(command, env=env, check=True, capture_output=True)
    return data_dir


def timing_of(run: cpu_runs.Run, warm: int, steps: int, eval_batches: int) -> dict[str, float]:
    """Seconds per step (the median step from ``warm`` to ``steps``), per evaluation batch (the last evaluation,
    both splits), and the fixed overhead (everything before step ``warm`` that is not ``warm`` steady steps or an
    evaluation). The median, not the mean: on a shared virtual machine a step now and then stalls for a second or
    two while the host runs something else, and one stall in 40 steps would move the mean by 30 %."""
    train = {p.step: p.t for p in run.train}
    evals = {p.step: p.t for p in run.evals}
    if any(step not in train for step in range(warm, steps + 1)) or steps not in evals:
        raise ValueError(f"the timing run did not print every step from {warm} to {steps} and an evaluation at "
                         f"{steps}")
    step_s = statistics.median(train[step] - train[step - 1] for step in range(warm + 1, steps + 1))
    eval_s = evals[steps] - train[steps]
    return {"step_s": step_s, "eval_batch_s": eval_s / (2 * eval_batches),
            "overhead_s": train[warm] - warm * step_s - eval_s}


def cmd_time(args: argparse.Namespace, env: dict[str, str]) -> None:
    data_dir = prepare(args, env)
    timing = load_json(args.out / "timing.json")
    warm, eval_batches = args.steps // 3, 10
    for name, knobs in selected(args):
        key = result_key(name, args.extra)
        out_dir = args.out / "runs" / "time" / key
        command = train_command(args, data_dir, out_dir, knobs, args.steps, args.steps, eval_batches,
                                args.threads, log_interval=1, samples=0)
        with tempfile.TemporaryDirectory() as cache:  # a cold torch.compile cache, as on a user's first run
            run = cpu_runs.run_stamped(key, command, cwd=args.out, env={**env, "TORCHINDUCTOR_CACHE_DIR": cache},
                                       log_path=args.out / "logs" / f"time-{key}.log",
                                       log_jsonl=out_dir / "log.jsonl")
        try:
            measured = timing_of(run, warm, args.steps, eval_batches)
        except ValueError as err:
            print(f"{key}: {err} (exit status {run.returncode}); see {args.out / 'logs'}/time-{key}.log")
            continue
        timing[key] = {"knobs": knobs, "threads": args.threads, "load_before": run.load_before,
                       "load_after": run.load_after, **{k: round(v, 5) for k, v in measured.items()}}
        print(f"{key}: {1000 * measured['step_s']:.1f} ms/step, {1000 * measured['eval_batch_s']:.1f} ms per "
              f"eval batch, {measured['overhead_s']:.1f} s overhead (load {run.load_before[:1]} → "
              f"{run.load_after[:1]})")
        save_json(args.out / "timing.json", timing)


# Knobs that change the numbers a step computes but not the work it does: candidates that differ only in these
# run the same step, so `plan --pool` gives them the median of their timings (one timing on a shared VM can be
# 10-20 % off).
COST_FREE_KNOBS = ("learning_rate", "schedule", "cooldown_frac", "warmup_steps", "min_lr_factor", "beta2",
                   "weight_decay", "muon_learning_rate", "muon_momentum", "muon_weight_decay")


def pooled(timing: dict[str, Any]) -> dict[str, Any]:
    """``timing`` with each candidate's step, evaluation and overhead costs replaced by the medians over the
    candidates that do the same work per step (the same knobs but :data:`COST_FREE_KNOBS`)."""
    def work(t: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in t["knobs"].items() if k not in COST_FREE_KNOBS}, sort_keys=True)

    groups: dict[str, list[dict[str, Any]]] = {}
    for t in timing.values():
        groups.setdefault(work(t), []).append(t)
    costs = ("step_s", "eval_batch_s", "overhead_s")
    return {key: {**t, **{c: statistics.median(g[c] for g in groups[work(t)]) for c in costs},
                  "pooled_over": len(groups[work(t)])} for key, t in timing.items()}


def cmd_plan(args: argparse.Namespace) -> None:
    timing = load_json(args.out / "timing.json")
    if not timing:
        raise SystemExit(f"no {args.out / 'timing.json'}: run `cpu_sweep.py time` on an idle machine first")
    if args.pool:
        timing = pooled(timing)
    plan = {}
    for key, t in timing.items():
        eval_cost = 2 * args.eval_batches * t["eval_batch_s"]
        steps = math.floor((args.budget_s - t["overhead_s"] - (args.evals + 1) * eval_cost) / t["step_s"])
        if steps < args.evals:
            print(f"{key}: does not fit in {args.budget_s} s")
            continue
        tokens = steps * t["knobs"]["batch_size"] * t["knobs"]["max_len"]
        plan[key] = {"knobs": t["knobs"], "max_steps": steps, "eval_interval": math.ceil(steps / args.evals),
                     "eval_batches": args.eval_batches, "tokens": tokens, "step_ms": round(1000 * t["step_s"], 1),
                     "budget_s": args.budget_s}
        print(f"{key:>22}: {plan[key]['step_ms']:7.1f} ms/step → {steps:6d} steps, {tokens / 1e6:5.2f} M tokens")
    save_json(args.out / "plan.json", plan)


def cmd_loss(args: argparse.Namespace, env: dict[str, str]) -> None:
    data_dir = prepare(args, env)
    plan = load_json(args.out / "plan.json") if args.planned else {}
    jobs = []
    for name, knobs in selected(args):
        key = result_key(name, args.extra)
        if args.planned and key not in plan:
            print(f"{key}: not in plan.json (time it, then plan); skipped")
            continue
        steps = plan[key]["max_steps"] if args.planned else args.steps
        jobs.append((key, knobs, steps))

    def one(job: tuple[str, dict[str, Any], int]) -> tuple[str, dict[str, Any]]:
        key, knobs, steps = job
        out_dir = args.out / "runs" / f"loss-{steps}" / key
        interval = max(1, math.ceil(steps / args.evals))
        command = train_command(args, data_dir, out_dir, knobs, steps, interval, args.eval_batches, args.threads,
                                log_interval=interval, samples=1)
        run = cpu_runs.run_stamped(key, command, cwd=args.out, env=env,
                                   log_path=args.out / "logs" / f"loss-{steps}-{key}.log",
                                   log_jsonl=out_dir / "log.jsonl")
        evals = run.evals
        sample = out_dir / "samples.txt"
        return f"{key}@{steps}", {
            "knobs": knobs, "steps": steps, "returncode": run.returncode, "wall_s_loaded": round(run.wall_s, 1),
            "evals": [(p.step, p.value) for p in evals], "final_val": evals[-1].value if evals else None,
            "sample": sample.read_text(encoding="utf-8") if sample.is_file() else "",
        }

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for key, result in pool.map(one, jobs):
            results = load_json(args.out / "loss.json")  # read again: another `loss` may have saved meanwhile
            results[key] = result
            save_json(args.out / "loss.json", results)
            print(f"{key}: val {result['final_val']} after {result['steps']} steps")


def cmd_report(args: argparse.Namespace) -> None:
    results, plan = load_json(args.out / "loss.json"), load_json(args.out / "plan.json")
    rows = sorted(results.items(), key=lambda kv: kv[1]["final_val"] if kv[1]["final_val"] is not None else 99)
    lines = ["| candidate | flags beyond the base | steps | ms/step (idle) | val loss at the end | val loss along the "
             "way |", "|---|---|---|---|---|---|"]
    for key, r in rows:
        name = key.split("@")[0]
        step_ms = plan.get(name, {}).get("step_ms", "—")
        along = ", ".join(f"{v:.3f} ({s})" for s, v in r["evals"][1::2])
        final = "—" if r["final_val"] is None else f"{r['final_val']:.4f}"
        changes = " ".join(knob_flags({k: v for k, v in r["knobs"].items() if BASE.get(k) != v}))
        lines.append(f"| {name} | {f'`{changes}`' if changes else '—'} | {r['steps']} | {step_ms} | {final} | "
                     f"{along} |")
    text = "\n".join(lines) + "\n"
    (args.out / "sweep.md").write_text(text, encoding="utf-8")
    print(text)


def selected(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    names = args.names or list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidates {unknown}; `cpu_sweep.py list` shows them")
    return [(n, CANDIDATES[n].knobs(args.extra)) for n in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "cpu_sweep", help="(default: out/cpu_sweep)")
    parser.add_argument("--variant", choices=("tiny", "full"), default="tiny", help="the Shakespeare variant")
    parser.add_argument("--tokenizer", choices=("char", "gpt2"), default="char",
                        help="characters (default), or GPT-2's tokens (the gpt2s-* candidates)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the candidates, their flags and why")
    for name, help_text in (("time", "time each candidate briefly (on an idle machine)"),
                            ("loss", "val loss per step count (any machine)")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("names", nargs="*", help="candidates (default: all)")
        p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                       help="override a knob of every named candidate, e.g. --set batch_size=8")
    time_p, loss_p = sub.choices["time"], sub.choices["loss"]
    time_p.add_argument("--steps", type=int, default=60,
                        help="steps per timing run (default 60; the first third warms up)")
    time_p.add_argument("--threads", type=int, default=cpu_runs.default_threads(),
                        help="threads (default: the cores this process may use, as the default run does)")
    group = loss_p.add_mutually_exclusive_group(required=True)
    group.add_argument("--steps", type=int, help="run every candidate for this many steps")
    group.add_argument("--planned", action="store_true", help="run each for the steps plan.json gives it")
    loss_p.add_argument("--threads", type=int, default=1, help="threads per run (default 1)")
    loss_p.add_argument("--jobs", type=int, default=1, help="runs at the same time (default 1)")
    loss_p.add_argument("--evals", type=int, default=8, help="evaluations per run (default 8)")
    loss_p.add_argument("--eval-batches", type=int, default=40, help="batches per split and evaluation (default 40)")
    plan_p = sub.add_parser("plan", help="steps each timed candidate affords in the budget")
    plan_p.add_argument("--budget-s", type=float, default=420.0,
                        help="seconds from start to the last evaluation (default 420)")
    plan_p.add_argument("--evals", type=int, default=5, help="evaluations after step 0 (default 5)")
    plan_p.add_argument("--eval-batches", type=int, default=20, help="batches per split and evaluation (default 20)")
    plan_p.add_argument("--pool", action="store_true",
                        help="give candidates that do the same work per step the median of their timings")
    sub.add_parser("report", help="the loss results as a Markdown table")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # the runs start in it: their own paths must not be relative to it

    if args.command == "list":
        for name, cand in CANDIDATES.items():
            print(f"{name:>16}  {' '.join(knob_flags(cand.changes)) or '(the base knobs)':<52} {cand.why}")
        print(f"\nbase knobs: {' '.join(knob_flags(BASE))}")
        return 0
    if args.command == "plan":
        cmd_plan(args)
        return 0
    if args.command == "report":
        cmd_report(args)
        return 0
    args.extra = parse_set(args.extra)
    env = cpu_runs.child_env(args.threads)
    check_flags(env, {**BASE, **args.extra})
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "time":
        cmd_time(args, env)
    else:
        cmd_loss(args, env)
    return 0


if __name__ == "__main__":
    cpu_runs.kill_runs_on_sigterm()
    sys.exit(main())
