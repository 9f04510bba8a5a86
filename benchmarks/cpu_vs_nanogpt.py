"""Side by side on one CPU: our default ``scratchformers train`` against nanoGPT's README CPU recipe, on the same
text and split, at equal wall time.

    python benchmarks/cpu_vs_nanogpt.py --nanogpt PATH            # the comparison (about 18 min on 2 idle cores)
    python benchmarks/cpu_vs_nanogpt.py --nanogpt PATH --quick    # a smoke test of every step, about a minute
    python benchmarks/cpu_vs_nanogpt.py --nanogpt PATH --budget-s 300
    python benchmarks/cpu_vs_nanogpt.py --report-only             # redo the table and plot from the JSON

``PATH`` is a checkout of https://github.com/karpathy/nanoGPT; nothing is downloaded at run time. In order:

1. **Data.** Our tiny Shakespeare (``scratchformers.train.data.shakespeare("tiny")``, 1,115,394 characters) is
   prepared by ``scratchformers prepare shakespeare --tokenizer char --variant tiny`` for us, and written again
   in nanoGPT's ``data/shakespeare_char`` layout (``train.bin``, ``val.bin``, ``meta.pkl``: the sorted characters as
   the vocabulary, the last 10 % as val, what nanoGPT's ``prepare.py`` does to its own file). The script checks that
   the two ``train.bin`` and the two ``val.bin`` are byte for byte the same: both trainers see the same tokens.
2. **Ours:** ``scratchformers train --shakespeare-variant tiny`` (the default preset on this text), to its end or
   until ``--budget-s``. The time of its last evaluation is the comparison point t*.
3. **nanoGPT**, its own ``train.py``, one run after the other (never two at once), each until it has an evaluation
   after t* (or 1.25 t* + 60 s): ``readme`` is the README's CPU command (``config/train_shakespeare_char.py
   --device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4
   --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0``), ``long`` the same with a schedule
   long enough to use the time (``--max_iters=10000 --lr_decay_iters=10000 --eval_iters=100 --eval_interval=1000``),
   ``fit`` the README's command with its cosine sized to end at t*: ``--max_iters`` (and ``--lr_decay_iters``) the
   iterations that ``readme`` ran per second times t*, rounded down to its evaluation interval (250), so that its
   learning rate has decayed by the comparison point as ours has.
4. **Report.** Each run's validation loss at t* (linear between the two evaluations around it; a run that ended
   earlier keeps its last value), the ratio ours / nanoGPT, the time nanoGPT needs to reach our final loss, and a
   plot of validation loss against wall time. Each trainer's own evaluation is used (ours: ``--eval-batches``
   fixed batches of its own context length; nanoGPT: ``eval_iters`` random batches of 64 characters).

Both trainers get ``--threads`` threads (default: every core this process may use; ours via ``--num-threads``,
nanoGPT via ``OMP_NUM_THREADS``), and both count everything from the start of the process: imports, model
building, evaluations, checkpoints. Wall-clock numbers only mean something on an otherwise idle machine: the load
averages before and after each run are in the report. Files: ``cpu_vs_nanogpt.json`` (every evaluation with its
time, the commands, the machine), ``cpu_vs_nanogpt.md`` and ``cpu_vs_nanogpt.png`` in ``--out``; data, checkpoints
and the stamped logs in ``--work-dir``.
"""
from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

import cpu_runs
from cpu_runs import REPO, Point, points_from, time_to_reach, value_at

NAME = "cpu_vs_nanogpt"
OURS = "ours"
README_RECIPE = [
    "config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1",
    "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--max_iters=2000",
    "--lr_decay_iters=2000", "--dropout=0.0",
]
FIT = "nanogpt-fit"  # README_RECIPE with max_iters sized to t* (fit_arguments): it needs the readme run's speed
# nanoGPT's configurator applies its arguments in order, so a later --key=value overrides an earlier one.
RECIPES = {
    "nanogpt-readme": README_RECIPE,
    "nanogpt-long": [*README_RECIPE, "--max_iters=10000", "--lr_decay_iters=10000", "--eval_iters=100",
                     "--eval_interval=1000"],
    FIT: README_RECIPE,
}
QUICK_OURS = ["--max-steps", "40", "--eval-interval", "20", "--log-interval", "10", "--sample-tokens", "100"]
QUICK_RECIPES = {
    "nanogpt-readme": ["--max_iters=150", "--lr_decay_iters=150", "--eval_interval=50"],
    "nanogpt-long": ["--max_iters=600", "--lr_decay_iters=600", "--eval_interval=60", "--eval_iters=20"],
    FIT: [],
}
FIT_EVAL_INTERVAL, QUICK_FIT_EVAL_INTERVAL = 250, 50  # config/train_shakespeare_char.py's, and the quick readme's
QUICK_BUDGET_S = 40.0
NANOGPT_FILES = ("train.py", "model.py", "sample.py", "configurator.py", "config/train_shakespeare_char.py")
VAL_FRACTION = 0.1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Our default CPU training run against nanoGPT's README CPU recipe: same text, same split, "
                    "equal wall time, run one after the other on this machine.",
        epilog="Example: python benchmarks/cpu_vs_nanogpt.py --nanogpt ~/src/nanoGPT",
    )
    parser.add_argument("--nanogpt", type=Path, help="a checkout of github.com/karpathy/nanoGPT")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="stop our run after this many seconds (default: let the default preset finish); "
                             "nanoGPT's runs get the same time plus one evaluation interval")
    parser.add_argument("--recipes", default=",".join(RECIPES),
                        help=f"nanoGPT runs, comma-separated (default: {','.join(RECIPES)})")
    parser.add_argument("--threads", type=int, default=cpu_runs.default_threads(),
                        help="CPU threads for every run (default: the cores this process may use)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke test: short schedules, {QUICK_BUDGET_S:.0f} s budget; results go to the "
                             "work folder, not benchmarks/results")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the JSON, Markdown and PNG go (default: benchmarks/results, or the work folder "
                             "with --quick)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="data, checkpoints and logs (default: out/cpu_vs_nanogpt[_quick])")
    parser.add_argument("--report-only", action="store_true", help="rewrite the Markdown and PNG from the JSON")
    parser.add_argument("--ours", nargs=argparse.REMAINDER, default=[],
                        help="extra `scratchformers train` flags for our run (last option; e.g. --ours --compile)")
    args = parser.parse_args(argv)
    args.work_dir = (args.work_dir or REPO / "out" / (NAME + ("_quick" if args.quick else ""))).resolve()
    args.out = args.out or (args.work_dir if args.quick else REPO / "benchmarks" / "results")
    args.recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    if FIT in args.recipes and "nanogpt-readme" not in args.recipes[:args.recipes.index(FIT)]:
        parser.error(f"--recipes: {FIT} sizes its schedule from nanogpt-readme's speed: list nanogpt-readme first")
    unknown = [r for r in args.recipes if r not in RECIPES]
    if unknown:
        parser.error(f"--recipes: unknown {unknown}; choose among {', '.join(RECIPES)}")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.quick and args.budget_s is None:
        args.budget_s = QUICK_BUDGET_S
    if not args.report_only:
        if args.nanogpt is None:
            parser.error("--nanogpt PATH is required: git clone https://github.com/karpathy/nanoGPT PATH")
        missing = [f for f in NANOGPT_FILES if not (args.nanogpt / f).is_file()]
        if missing:
            parser.error(f"--nanogpt {args.nanogpt}: not a nanoGPT checkout (no {', '.join(missing)}); "
                         "git clone https://github.com/karpathy/nanoGPT")
        args.nanogpt = args.nanogpt.resolve()
    return args


# ---------------------------------------------------------------------------------------------------------- data


def write_nanogpt_data(dest: Path, ours: Path) -> dict[str, Any]:
    """Our tiny Shakespeare in nanoGPT's ``shakespeare_char`` layout, checked token for token against ``ours``
    (the same text prepared by ``scratchformers prepare``)."""
    from scratchformers.train.data import shakespeare

    text = shakespeare("tiny")
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = np.array([stoi[ch] for ch in text], dtype=np.uint16)
    n_train = int(len(text) * (1 - VAL_FRACTION))
    dest.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", ids[:n_train]), ("val", ids[n_train:])):
        part.tofile(dest / f"{split}.bin")
        if (dest / f"{split}.bin").read_bytes() != (ours / f"{split}.bin").read_bytes():
            raise SystemExit(f"{dest / split}.bin differs from {ours / split}.bin: the two trainers would not see "
                             "the same tokens (has `scratchformers prepare` changed its split or vocabulary?)")
    with open(dest / "meta.pkl", "wb") as handle:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, handle)
    return {"characters": len(text), "train_tokens": n_train, "val_tokens": len(text) - n_train,
            "vocab_size": len(chars)}


# ---------------------------------------------------------------------------------------------------------- runs


def run_ours(args: argparse.Namespace, data_dir: Path, env: dict[str, str]) -> cpu_runs.Run:
    out_dir = args.work_dir / "runs" / OURS
    command = cpu_runs.scratchformers(
        "train", "--device", "cpu", "--shakespeare-variant", "tiny", "--data-dir", str(data_dir), "--out-dir",
        str(out_dir), "--num-threads", str(args.threads), "--no-progress", "--overwrite",  # the benchmark's folder
        *(QUICK_OURS if args.quick else []),
        *args.ours,
    )
    return cpu_runs.run_stamped(OURS, command, cwd=args.work_dir, env=env, log_path=args.work_dir / "logs" / "ours.log",
                                budget_s=args.budget_s, log_jsonl=out_dir / "log.jsonl")


def fit_arguments(readme: cpu_runs.Run, t_star: float, quick: bool) -> list[str]:
    """The ``fit`` recipe's schedule: the iterations the ``readme`` run did per second (up to its last evaluation,
    start-up and evaluations included) times ``t_star``, rounded down to a whole number of evaluation intervals."""
    interval = QUICK_FIT_EVAL_INTERVAL if quick else FIT_EVAL_INTERVAL
    last = readme.evals[-1]
    iters = max(interval, int(last.step / last.t * t_star) // interval * interval)
    return [f"--max_iters={iters}", f"--lr_decay_iters={iters}", f"--eval_interval={interval}"]


def run_nanogpt(args: argparse.Namespace, recipe: str, data_dir: Path, env: dict[str, str],
                t_star: float, extra: list[str]) -> cpu_runs.Run:
    """nanoGPT's ``train.py`` in its checkout (its configurator reads ``configurator.py`` and the config file from
    the working directory); an absolute ``--dataset`` makes its ``os.path.join('data', dataset)`` our folder.
    ``extra`` comes last: nanoGPT's configurator applies its arguments in order."""
    out_dir = args.work_dir / "runs" / recipe
    command = [sys.executable, "train.py", *RECIPES[recipe], *(QUICK_RECIPES[recipe] if args.quick else []), *extra,
               f"--dataset={data_dir}", f"--out_dir={out_dir}"]

    return cpu_runs.run_stamped(recipe, command, cwd=args.nanogpt, env=env,
                                log_path=args.work_dir / "logs" / f"{recipe}.log",
                                budget_s=1.25 * t_star + 60.0, enough=lambda lines: saved_past(lines, t_star))


def saved_past(lines: list[tuple[float, str]], t_star: float) -> bool:
    """nanoGPT has printed an evaluation after ``t_star`` and has finished saving its checkpoint: it prints
    "saving checkpoint to ..." *before* ``torch.save``, so only a line after that one (its next "iter" line) says
    the file is whole. Stopping earlier leaves a truncated ``ckpt.pt`` that ``sample.py`` cannot read."""
    evals = cpu_runs.eval_points(lines)
    if not evals or evals[-1].t <= t_star:
        return False
    after = [text for t, text in lines if t > evals[-1].t]
    return any(not text.startswith("saving checkpoint") for text in after)


def ours_samples(out_dir: Path) -> str:
    path = out_dir / "samples.txt"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else "(none: the run did not finish)"


def nanogpt_samples(args: argparse.Namespace, recipe: str, env: dict[str, str]) -> str:
    """Two samples from nanoGPT's checkpoint (its best evaluation so far) with its own ``sample.py``."""
    out_dir = args.work_dir / "runs" / recipe
    if not (out_dir / "ckpt.pt").is_file():
        return "(none: no checkpoint was written)"
    tokens = 100 if args.quick else 300
    command = [sys.executable, "sample.py", f"--out_dir={out_dir}", "--device=cpu", "--dtype=float32",
               "--num_samples=2", f"--max_new_tokens={tokens}", "--temperature=0.8"]
    result = subprocess.run(command, cwd=args.nanogpt, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        return f"(sample.py failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else '?'})"
    chatter = ("Overriding", "number of parameters", "Loading meta")  # its configurator's and loader's messages
    return "\n".join(line for line in result.stdout.splitlines() if not line.startswith(chatter)).strip()


# -------------------------------------------------------------------------------------------------------- report


def compare(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every run's validation loss at t* (ours' last evaluation) and ours / theirs."""
    ours = points_from(runs[OURS]["evals"])
    if not ours:
        raise SystemExit("our run printed no evaluation: see its log (out/.../logs/ours.log)")
    t_star, ours_val = ours[-1].t, ours[-1].value
    result: dict[str, Any] = {"t_star_s": round(t_star, 2), "ours_val": ours_val, "ours_step": ours[-1].step,
                              "nanogpt": {}}
    for name, run in runs.items():
        if name == OURS:
            continue
        points = points_from(run["evals"])
        theirs = value_at(points, t_star)
        after = [p for p in points if p.t >= t_star]
        result["nanogpt"][name] = {
            "val_at_t_star": theirs,
            "bracketed": bool(after) and points[0].t <= t_star,
            "iter_at_t_star": _step_at(points, t_star),
            "ratio_ours_over_theirs": ours_val / theirs if theirs else None,
            "time_to_reach_ours_s": time_to_reach(points, ours_val),
            "final_val": points[-1].value if points else None,
            "final_t_s": points[-1].t if points else None,
        }
    best = [r for r in result["nanogpt"].values() if r["val_at_t_star"] is not None]
    if best:
        strongest = min(best, key=lambda r: r["val_at_t_star"])
        result["best_nanogpt_val"] = strongest["val_at_t_star"]
        result["ratio_vs_best"] = ours_val / strongest["val_at_t_star"]
    return result


def _step_at(points: list[Point], t: float) -> int | None:
    """The step of the last evaluation at or before ``t``."""
    before = [p.step for p in points if p.t <= t]
    return before[-1] if before else None


def markdown(report: dict[str, Any]) -> str:
    m, cmp = report["machine"], report["comparison"]
    quick = " (QUICK SMOKE TEST: short schedules, the numbers mean nothing)" if report["quick"] else ""
    lines = [
        f"# Ours vs nanoGPT on CPU, equal wall time{quick}",
        "",
        f"**Machine:** {m['cpu']}, {m['cores_usable']} usable cores, {m['threads']} threads per run, "
        f"flags {', '.join(m['cpu_flags']) or 'none of interest'}; torch {m['torch']}, Python {m['python']}. "
        f"**Date:** {m['date']}. **nanoGPT:** {report['nanogpt_commit']}.",
        "",
        f"**Data:** our tiny Shakespeare, {report['data']['characters']:,} characters, character tokens "
        f"(vocabulary {report['data']['vocab_size']}), {report['data']['train_tokens']:,} train / "
        f"{report['data']['val_tokens']:,} val (the last 10 %), identical files for both trainers.",
        "",
        f"Comparison point t* = {cmp['t_star_s']:.0f} s (our last evaluation, step {cmp['ours_step']}).",
        "",
        "| run | ended | wall | last eval (step, s) | val loss at t* (nats/char) | ours / this | reaches our loss at |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, run in report["runs"].items():
        evals = run["evals"]
        last = f"{evals[-1]['step']}, {evals[-1]['t']:.0f} s" if evals else "none"
        if name == OURS:
            row = [f"{cmp['ours_val']:.4f}", "1", "—"]
        else:
            r = cmp["nanogpt"][name]
            ended = " (ended before t*)" if run["stop"] == "finished" else " (no eval after t*)"
            note = "" if r["bracketed"] else ended
            val = "—" if r["val_at_t_star"] is None else f"{r['val_at_t_star']:.4f}{note}"
            ratio = "—" if r["ratio_ours_over_theirs"] is None else f"{r['ratio_ours_over_theirs']:.3f}"
            reach = "never" if r["time_to_reach_ours_s"] is None else f"{r['time_to_reach_ours_s']:.0f} s"
            row = [val, ratio, reach]
        load = f"load {run['load_before'][0]:.1f}→{run['load_after'][0]:.1f}" if run["load_before"] else ""
        lines.append(f"| {name} | {run['stop']} ({load}) | {run['wall_s']:.0f} s | {last} | " + " | ".join(row) + " |")
    if "ratio_vs_best" in cmp:
        pct = 100 * (1 - cmp["ratio_vs_best"])
        word = "lower" if pct >= 0 else "higher"
        lines += ["", f"**Result:** at {cmp['t_star_s']:.0f} s our validation loss {cmp['ours_val']:.4f} is "
                      f"{abs(pct):.1f}% {word} than the best nanoGPT run's {cmp['best_nanogpt_val']:.4f} "
                      f"(ratio {cmp['ratio_vs_best']:.3f})."]
    lines += ["", "Commands (in order; nanoGPT's from its checkout):", ""]
    lines += [f"- {name}: `{' '.join(Path(c).name if i == 0 else c for i, c in enumerate(run['command']))}`"
              for name, run in report["runs"].items()]
    for name, text in report["samples"].items():
        lines += ["", f"Samples, {name}:", "", "```", text, "```"]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> Path:
    """Validation loss against wall time, every run, with t* marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cmp = report["comparison"]
    fig, ax = plt.subplots(figsize=(8, 5))
    finals = []
    for name, run in report["runs"].items():
        points = points_from(run["evals"])
        if points:
            ax.plot([p.t for p in points], [p.value for p in points], "o-", markersize=3, label=name,
                    linewidth=2.5 if name == OURS else 1.5)
            finals.append(min(p.value for p in points))
    if finals:
        ax.set_ylim(min(finals) - 0.05, min(finals) + 1.2)  # the start (~4.4 nats) would flatten the interesting part
    ax.axvline(cmp["t_star_s"], color="gray", linestyle="--", linewidth=1)
    ax.annotate(f"t* = {cmp['t_star_s']:.0f} s", (cmp["t_star_s"], ax.get_ylim()[1]), textcoords="offset points",
                xytext=(4, -12), color="gray")
    ratio = f", ours/nanoGPT best at t*: {cmp['ratio_vs_best']:.3f}" if "ratio_vs_best" in cmp else ""
    ax.set_title(f"tiny Shakespeare, characters, {report['machine']['threads']} threads{ratio}"
                 + (" (quick)" if report["quick"] else ""))
    ax.set_xlabel("wall time since process start (s)")
    ax.set_ylabel("validation loss (nats/char)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{NAME}.md").write_text(markdown(report), encoding="utf-8")
    plot(report, out / f"{NAME}.png")
    print(f"wrote {out / NAME}.json, .md and .png")
    print("\n".join(line for line in markdown(report).splitlines() if line.startswith("**Result:**")))


def nanogpt_commit(path: Path) -> str:
    result = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "unknown (not a git checkout)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    json_path = args.out / f"{NAME}.json"
    if args.report_only:
        if not json_path.is_file():
            raise SystemExit(f"no {json_path}: run the benchmark first (or pass --out)")
        write_report(json.loads(json_path.read_text()), args.out)
        return 0

    env = cpu_runs.child_env(args.threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    ours_data = cpu_runs.prepare_tiny_char(args.work_dir / "data" / "shakespeare_tiny_char", env)
    nano_data = args.work_dir / "data" / "shakespeare_char"
    data = write_nanogpt_data(nano_data, ours_data)
    print(f"data: {data['characters']:,} characters, {data['train_tokens']:,} train / {data['val_tokens']:,} val "
          f"tokens, identical for both ({ours_data}, {nano_data})")

    runs = {OURS: run_ours(args, ours_data, env)}
    ours_evals = runs[OURS].evals
    if not ours_evals:
        raise SystemExit(f"our run printed no evaluation (exit status {runs[OURS].returncode}); "
                         f"see {args.work_dir / 'logs' / 'ours.log'}")
    t_star = ours_evals[-1].t
    for recipe in args.recipes:
        extra = fit_arguments(runs["nanogpt-readme"], t_star, args.quick) if recipe == FIT else []
        runs[recipe] = run_nanogpt(args, recipe, nano_data, env, t_star, extra)
        if not runs[recipe].evals:
            raise SystemExit(f"nanoGPT ({recipe}) printed no evaluation (exit status {runs[recipe].returncode}); "
                             f"see {args.work_dir / 'logs' / recipe}.log")

    summaries = {name: run.summary() for name, run in runs.items()}
    samples = {OURS: ours_samples(args.work_dir / "runs" / OURS)}
    samples.update({recipe: nanogpt_samples(args, recipe, env) for recipe in args.recipes})
    report = {
        "quick": args.quick,
        "budget_s": args.budget_s,
        "machine": cpu_runs.machine_info(args.threads),
        "nanogpt_commit": nanogpt_commit(args.nanogpt),
        "data": data,
        "runs": summaries,
        "comparison": compare(summaries),
        "samples": samples,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    cpu_runs.kill_runs_on_sigterm()
    sys.exit(main())
