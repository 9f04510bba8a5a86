"""The GPU check's summary and Markdown report, made from its JSON (``gpu_check.json``) alone."""
from __future__ import annotations

from collections.abc import Iterable

ATTENTION_IMPLS = ("ours-flash", "sdpa", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "sdpa-math", "reference",
                   "reference+triton-softmax")
HEADLINE = dict(dtype="bfloat16", D=64, causal=True, T=1024)  # GPT-2's attention at batch 12
TIMED = ("attention", "layernorm", "softmax", "model", "trainer", "hostsync")


def short_status(row: dict) -> str:
    """A table cell for a row that has no number."""
    status = row["status"]
    for prefix, cell in (("skipped: memory", "skip: memory"), ("skipped: refused", "refused"),
                         ("skipped: time budget", "skip: budget"), ("skipped: out of memory", "OOM"),
                         ("error", "error")):
        if status.startswith(prefix):
            return cell
    return status


def fmt(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, ``n/a`` for None."""
    return "n/a" if value is None else f"{value:.{digits}g}"


def ok(row: dict | None) -> bool:
    return row is not None and row.get("status") == "ok"


def ratio(numerator: dict | None, denominator: dict | None, key: str) -> str:
    """``numerator[key] / denominator[key]`` as ``1.23x``, or blank when either was not measured."""
    if not ok(numerator) or not ok(denominator) or not numerator.get(key) or not denominator.get(key):
        return ""
    return f"{numerator[key] / denominator[key]:.2f}x"


def unique(values: Iterable) -> list:
    """The distinct values in first-seen order."""
    return list(dict.fromkeys(values))


# ------------------------------------------------------------------------------------------------------- summary


def summary(results: dict) -> list[str]:
    """The few lines that say how the run went: printed last by the run, and on top of the Markdown."""
    meta = results["meta"]
    run = meta.get("run", {})
    code = meta.get("code") or {}
    lines = [f"GPU check on {meta.get('name')} (torch {meta.get('torch')}, triton {meta.get('triton')}): "
             f"{run.get('state')} after {fmt(run.get('elapsed_s'))} s of a {fmt(run.get('budget_s'))} s budget"
             + (" -- DRY RUN, numbers meaningless" if run.get("dry_run") else ""),
             f"code {code.get('sha256', '?')[:12]} (commit {code.get('git_commit') or 'unknown: no .git'}"
             + (", with uncommitted changes" if code.get("git_dirty") else "") + ")"]
    lines += attention_summary(results.get("attention", []))
    lines += parity_summary(results.get("parity"))
    lines += bandwidth_summary("layernorm", results.get("layernorm", []))
    lines += bandwidth_summary("softmax", results.get("softmax", []))
    lines += model_summary(results.get("model", []))
    lines += trainer_summary(results.get("trainer", []))
    lines += hostsync_summary(results.get("hostsync", []))
    errors = [row for section in TIMED for row in results.get(section, []) if row["status"].startswith("error")]
    errors += [{"status": f"{name}: {t['error']}"} for name, t in results.get("timing", {}).items()
               if isinstance(t, dict) and t.get("error")]
    if errors:
        lines.append(f"errors: {len(errors)}, e.g. {errors[0]['status'][:200]} (all in gpu_check.md)")
    return lines


def parity_summary(rows: list[dict] | None) -> list[str]:
    if rows is None:
        return ["GPU tests: not run"]
    tally: dict[str, int] = {}
    for row in rows:
        word = row["status"].split(":")[0]
        tally[word] = tally.get(word, 0) + 1
    lines = ["GPU tests: " + ", ".join(f"{n} {word}" for word, n in tally.items())]
    lines += [f"  {row['status'].split(':')[0].upper()} {row['test']}: {row['status'][:300]}" for row in rows
              if row["status"].startswith(("failed", "error"))]
    return lines


def find(rows: list[dict], **where: object) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in where.items())), None)


def best_sdpa(rows: list[dict], mode: str) -> dict | None:
    """The fastest SDPA row of ``mode`` (default dispatch or a forced backend) among ``rows``."""
    measured = [r for r in rows if r["impl"].startswith("sdpa") and r["mode"] == mode and ok(r)]
    return min(measured, key=lambda r: r["ms"], default=None)


def attention_summary(rows: list[dict]) -> list[str]:
    """The headline shape: ours against SDPA's best backend, end to end and kernel time, forward and fwd+bwd."""
    if not rows:
        return []
    at = [r for r in rows if all(r.get(k) == v for k, v in HEADLINE.items())] or rows
    first = at[0]
    shape = f"B{first['B']} H{first['H']} T{first['T']} D{first['D']} {first['dtype']}" + (
        " causal" if first["causal"] else "")
    parts = []
    for mode in ("fwd", "fwd+bwd"):
        ours, best = find(at, impl="ours-flash", mode=mode), best_sdpa(at, mode)
        cells = [f"{name} {fmt(r['tflops'])} ({fmt(r.get('kernel_tflops'))} kernel)" if ok(r)
                 else f"{name} {short_status(r) if r else '-'}"
                 for name, r in (("ours", ours), (best["impl"] if best else "sdpa", best))]
        speed = ratio(best, ours, "ms")
        parts.append(f"{mode}: " + ", ".join(cells) + (f"; ours {speed} as fast" if speed else ""))
    return [f"attention {shape}, TFLOP/s (causal counts half the T x T): " + "; ".join(parts)]


def bandwidth_summary(section: str, rows: list[dict]) -> list[str]:
    if not rows:
        return []
    N = rows[0]["N"]
    at = [r for r in rows if r["N"] == N]
    parts = []
    for mode in ("fwd", "bwd"):
        ours, torch_row = find(at, impl="ours-triton", mode=mode), find(at, impl="torch", mode=mode)
        cells = [f"{name} {fmt(r['gbps'], 4)} ({fmt(r.get('kernel_gbps'), 4)} kernel)" if ok(r)
                 else f"{name} {short_status(r) if r else '-'}" for name, r in (("ours", ours), ("torch", torch_row))]
        speed = ratio(torch_row, ours, "ms")
        parts.append(f"{mode}: " + ", ".join(cells) + (f"; ours {speed} as fast" if speed else ""))
    return [f"{section} {at[0]['M']} x {N} {at[0]['dtype']}, GB/s: " + "; ".join(parts)]


def model_summary(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    cells = []
    for r in rows:
        if ok(r):
            mfu = f", MFU {100 * r['mfu']:.1f}%" if r.get("mfu") is not None else ""
            cells.append(f"{variant_label(r)} {fmt(r['tokens_per_s'], 4)}{mfu}")
        else:
            cells.append(f"{variant_label(r)} {short_status(r)}")
    first = next((r for r in rows if ok(r)), None)
    shape = f" {first['batch']} x {first['seq_len']}" if first else ""
    return [f"train step GPT-2{shape}, tokens/s (MFU counts the full T x T): " + "; ".join(cells)]


def variant_label(row: dict) -> str:
    """``fast-compiled``, with the optimizer when it is not AdamW: ``fast-compiled muon``."""
    optimizer = row.get("optimizer", "adamw")
    return row["variant"] + ("" if optimizer == "adamw" else f" {optimizer}")


def trainer_summary(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    r = rows[0]
    line = f"trainer gpt2-owt, first {r.get('steps')} steps: {r['status']}"
    log = r.get("train_log") or []
    if log:
        first, last = log[0], log[-1]
        mfu = f", MFU {100 * last['mfu']:.1f}%" if last.get("mfu") is not None else ""
        line += (f"; loss {fmt(first.get('loss'), 4)} (step {first.get('step')}) -> {fmt(last.get('loss'), 4)} "
                 f"(step {last.get('step')}), {fmt(last.get('ms_per_step'))} ms/step and "
                 f"{fmt(last.get('tokens_per_s'), 4)} tokens/s over the last log window{mfu}; "
                 f"samples: {'yes' if r.get('samples') else 'no'}")
    return [line]


def hostsync_summary(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    r = rows[0]
    if not ok(r):
        return [f"host syncs: {r['status']}"]
    return [f"host syncs ({r['micro_steps']} micro-steps per step): synced "
            f"{r['synced']['ms_per_step']:.1f} ms/step, sync-free {r['sync-free']['ms_per_step']:.1f} ms/step: "
            f"sync-free is {r['speedup']:.3f}x as fast"]


# ------------------------------------------------------------------------------------------------------ markdown


def header(meta: dict) -> list[str]:
    peaks = [f"bf16 dense {fmt(meta.get('peak_bf16_tflops'), 4)} TFLOP/s" if meta.get("peak_bf16_tflops") else None,
             f"memory {fmt(meta.get('peak_gbps'), 4)} GB/s" if meta.get("peak_gbps") else None]
    run = meta.get("run", {})
    code = meta.get("code") or {}
    device = meta.get("name")
    if meta.get("memory_gib") is not None:
        device += (f", {fmt(meta['memory_gib'])} GiB, {meta.get('sm_count')} SMs, compute capability "
                   f"{meta.get('capability')}, driver {meta.get('driver')}")
    timer = ("the median of two calls after one warm-up (time.perf_counter)" if run.get("dry_run") else
             f"medians of triton.testing.do_bench (warm-up {fmt(run.get('warmup_ms'))} ms, "
             f"{fmt(run.get('rep_ms'))} ms of repetitions, L2 flushed between runs)")
    commit = code.get("git_commit") or "unknown (no .git)"
    lines = [f"# GPU check: {meta.get('name')}", "",
             f"- Device: {device}",
             f"- Software: torch {meta.get('torch')}, triton {meta.get('triton')}, CUDA {meta.get('cuda')}, "
             f"Python {meta.get('python')}",
             f"- Date: {meta.get('date')}",
             f"- Code: SHA-256 {code.get('sha256')} of {code.get('files')} files (`check.py --code-hash` prints it "
             f"for a checkout); commit {commit}" + (", with uncommitted changes" if code.get("git_dirty") else ""),
             f"- Datasheet peaks used for percentages: {', '.join(p for p in peaks if p) or 'unknown'}",
             f"- Run: {run.get('state', '?')} after {fmt(run.get('elapsed_s'))} s of a {fmt(run.get('budget_s'))} s "
             f"budget; kernel timings: {timer}, and the GPU's kernel time from torch.profiler beside them; our "
             f"flash-attention kernels tried the first {run.get('autotune_keep')} of their candidate tiles"]
    if run.get("unset_env"):
        lines.append(f"- Unset for the run: {', '.join(run['unset_env'])}")
    if run.get("dry_run"):
        lines.append("- **Dry run** on CPU under the Triton interpreter, tiny shapes: the numbers are meaningless.")
    return lines


def parity_table(rows: list[dict]) -> list[str]:
    lines = ["", "## GPU tests (every test marked gpu, tests/test_gpu_parity.py first)", "",
             "One process per test, side by side; `GiB`: the GPU memory it declares.", "",
             "| test | outcome | seconds | GiB |", "|---|---|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r['test'].removeprefix('tests/')}` | {r['status'][:300].replace('|', '/')} | "
                     f"{fmt(r.get('s', r.get('job_s')))} | {fmt(r.get('gib'))} |")
    return lines


def attention_tables(rows: list[dict]) -> list[str]:
    """One table per (mode, dtype, D, causal): T down, implementations across, TFLOP/s with the time."""
    lines = ["", "## Attention", "",
             "Cells: TFLOP/s end to end / from the kernel time, then the end-to-end milliseconds. FLOPs = 4·B·H·T²·D "
             "forward, halved when causal (the FlashAttention papers' count), ×3.5 forward+backward. End to end "
             "includes the host's launch path where the GPU waits for it (ours: custom op, autotuner, JIT launcher); "
             "the kernel time does not. `sdpa` is PyTorch's default dispatch. `ours ÷ sdpa`: how many times faster "
             "ours is, end to end / kernel time (above 1: faster)."]
    impls = [impl for impl in ATTENTION_IMPLS if any(r["impl"] == impl for r in rows)]
    combos = unique((r["mode"], r["dtype"], r["D"], r["causal"]) for r in rows)
    for mode, dtype, D, causal in combos:
        group = [r for r in rows if (r["mode"], r["dtype"], r["D"], r["causal"]) == (mode, dtype, D, causal)]
        lines += ["", f"### {mode}, {dtype}, D = {D}, {'causal' if causal else 'not causal'}", "",
                  "| T | B × H | " + " | ".join(impls) + " | ours ÷ sdpa |",
                  "|---:|---:|" + "---:|" * (len(impls) + 1)]
        for T in unique(r["T"] for r in group):
            at_t = {r["impl"]: r for r in group if r["T"] == T}
            cells = [(f"{fmt(r['tflops'])} / {fmt(r.get('kernel_tflops'))} ({fmt(r['ms'])})" if ok(r)
                      else short_status(r)) if r else "" for r in (at_t.get(impl) for impl in impls)]
            sdpa, ours = at_t.get("sdpa"), at_t.get("ours-flash")
            speed = " / ".join(filter(None, (ratio(sdpa, ours, "ms"), ratio(sdpa, ours, "kernel_ms"))))
            some = next(iter(at_t.values()))
            lines.append(f"| {T} | {some['B']} × {some['H']} | " + " | ".join(cells) + f" | {speed} |")
    tiles = next((r["tiles"] for r in rows if r.get("tiles")), None)
    if tiles:
        lines.append("\nOur kernels' tiles at the first shape: "
                     + "; ".join(f"`{name}` {config}" for name, config in tiles.items()))
    return lines


def bandwidth_table(title: str, rows: list[dict], size_label: str) -> list[str]:
    """Copy, torch and ours per size: GB/s and % of peak, forward and backward, and ours vs torch."""
    lines = ["", f"## {title}", "",
             "Cells: GB/s end to end / from the kernel time (kernel GB/s as % of the peak bandwidth). Bytes counted: "
             "forward 2·M·N, backward 3·M·N elements (one read of each input, one write of each output). "
             "`ours ÷ torch`: how many times faster ours is, end to end / kernel time.", "",
             f"| {size_label} | M | copy | torch fwd | ours fwd | ours ÷ torch fwd | torch bwd | ours bwd "
             "| ours ÷ torch bwd |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for N in unique(r["N"] for r in rows):
        at_n = {(r["impl"], r["mode"]): r for r in rows if r["N"] == N}
        cells = [bandwidth_cell(at_n.get(("copy", "fwd")))]
        for mode in ("fwd", "bwd"):
            torch_row, ours_row = at_n.get(("torch", mode)), at_n.get(("ours-triton", mode))
            speed = " / ".join(filter(None, (ratio(torch_row, ours_row, "ms"),
                                             ratio(torch_row, ours_row, "kernel_ms"))))
            cells += [bandwidth_cell(torch_row), bandwidth_cell(ours_row), speed]
        M = next(iter(at_n.values()))["M"]
        lines.append(f"| {N} | {M} | " + " | ".join(cells) + " |")
    return lines


def bandwidth_cell(row: dict | None) -> str:
    """``GB/s / kernel GB/s (kernel % of peak)``, a short status, or blank when not measured."""
    if row is None:
        return ""
    if not ok(row):
        return short_status(row)
    peak = f" ({fmt(row['kernel_pct_peak'], 2)}%)" if row.get("kernel_pct_peak") else ""
    return f"{fmt(row['gbps'], 4)} / {fmt(row.get('kernel_gbps'), 4)}{peak}"


def model_table(rows: list[dict]) -> list[str]:
    lines = ["", "## GPT-2 (124M) training step", "",
             "The gpt2-owt preset's model and micro-batch, bf16 autocast, the optimizer as the trainer builds it, "
             "random tokens. MFU: (6·N + 12·L·T·C) FLOPs per token × tokens/s ÷ the bf16 dense peak; its 12·L·T·C "
             "counts the full T × T attention although the model is causal (PaLM's and nanoGPT's convention, as the "
             "training log; the attention section counts half). `first steps`: the warm-up steps, including "
             "compilation and autotuning.", "",
             "| variant | optimizer | attention | layernorm | batch × T | ms / step | tokens/s | MFU | peak memory "
             "| first steps | loss |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        start = f"| {r['variant']} | {r.get('optimizer', 'adamw')} | {r['attention']} | {r['layernorm']} |"
        if not ok(r):
            lines.append(f"{start} | {short_status(r)} | | | | | |")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        memory = f"{r['peak_memory_gib']:.1f} GiB" if r.get("peak_memory_gib") is not None else "n/a"
        lines.append(f"{start} {r['batch']} × {r['seq_len']} | {fmt(r.get('ms_per_step'))} | "
                     f"{fmt(r.get('tokens_per_s'), 4)} | {mfu} | {memory} | {r['first_steps_s']:.1f} s | "
                     f"{r['loss']:.3f} |")
    by_name = {(r["variant"], r.get("optimizer", "adamw")): r for r in rows}
    for optimizer in unique(r.get("optimizer", "adamw") for r in rows):
        for kind in ("eager", "compiled"):
            speedup = ratio(by_name.get((f"fast-{kind}", optimizer)), by_name.get((f"torch-{kind}", optimizer)),
                            "tokens_per_s")
            if speedup:
                lines.append(f"\nFast path ÷ torch path, {kind}, {optimizer}: {speedup} the tokens/s.")
    return lines


def trainer_section(rows: list[dict]) -> list[str]:
    r = rows[0]
    lines = ["", "## The trainer: gpt2-owt, first steps", "", f"Status: {r['status']}."]
    if r.get("command"):
        lines += ["", f"`{r['command']}` ({fmt(r.get('seconds'))} s, limit {fmt(r.get('limit_s'))} s)"]
    if r.get("startup"):
        lines += ["", f"> {r['startup']}"]
    if r.get("train_log"):
        lines += ["", "| step | loss | lr | grad norm | ms / step | tokens/s | MFU | memory (MiB) |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for e in r["train_log"]:
            mfu = f"{100 * e['mfu']:.1f}%" if e.get("mfu") is not None else "n/a"
            cells = [fmt(e.get(key), digits) for key, digits in (("loss", 5), ("lr", 3), ("grad_norm", 4),
                                                                 ("ms_per_step", 4), ("tokens_per_s", 4))]
            lines.append(f"| {e.get('step')} | " + " | ".join(cells) + f" | {mfu} | {fmt(e.get('mem_mb'), 5)} |")
        lines.append("\nms/step averages the steps since the previous log line; the first window includes "
                     "compiling. MFU as the training log counts it: the full T × T attention.")
    for e in r.get("eval_log") or []:
        lines.append(f"- evaluation at step {e.get('step')}: train loss {fmt(e.get('train_loss'), 5)}, "
                     f"val loss {fmt(e.get('val_loss'), 5)}")
    if r.get("samples"):
        lines += ["", "Samples:", "", "```", r["samples"].strip(), "```"]
    if not ok(r) and r.get("output_tail"):
        lines += ["", "End of its output:", "", "```", r["output_tail"].strip()[-2000:], "```"]
    return lines


def hostsync_section(rows: list[dict]) -> list[str]:
    r = rows[0]
    lines = ["", "## Host syncs in the training loop", ""]
    if not ok(r):
        lines.append(f"Status: {r['status']}.")
        if r.get("output_tail"):
            lines += ["", "End of the synced run's output:", "", "```", r["output_tail"].strip()[-2000:], "```"]
        return lines
    lines += [f"{r['source']}: {r['steps']} steps of {r['micro_steps']} micro-steps, "
              f"{'compiled' if r['compiled'] else 'eager'}, logged every {r['log_interval']} steps; the sync-free "
              "run is the trainer section's; ms/step: the median of the log windows after the first two.", "",
              f"`{r['command']}`", "",
              "| loop | ms / step | tokens/s | log windows (ms / step) | run (s) |", "|---|---:|---:|---|---:|"]
    for variant in ("synced", "sync-free"):
        v = r[variant]
        lines.append(f"| {variant} | {v['ms_per_step']:.1f} | {v['tokens_per_s']:,.0f} | "
                     + ", ".join(f"{ms:.1f}" for ms in v["window_ms"]) + f" | {v['seconds']:.0f} |")
    lines.append(f"\nSync-free ÷ synced: {r['speedup']:.3f}x the steps per second.")
    return lines


def problems(results: dict) -> list[str]:
    """Every distinct refusal and error of the timed sections, with where it happened."""
    seen: dict[str, list[str]] = {}
    for section in ("attention", "layernorm", "softmax", "model"):
        for r in results.get(section, []):
            if r["status"].startswith(("error", "skipped: refused")):
                where = r.get("impl") or r.get("variant") or ""
                place = (f"{r.get('dtype', '')} D{r['D']} T{r['T']}{' causal' if r['causal'] else ''} {r['mode']}"
                         if section == "attention" else r.get("mode", ""))
                seen.setdefault(f"{section} {where}: {r['status']}", []).append(place)
    if not seen:
        return []
    lines = ["", "## Refusals and errors", ""]
    for status, places in seen.items():
        lines.append(f"- {status} ({len(places)}×, e.g. {places[0].strip() or 'all'})")
    return lines


def timing(results: dict) -> list[str]:
    """Each section's share and wall time, and how it ended when not by itself."""
    lines = ["", "## Where the time went", "", "| section | allotted (s) | wall (s) | note |", "|---|---:|---:|---|"]
    for name, t in results.get("timing", {}).items():
        note = t.get("error", "")
        if name == "parity" and "parallel" in t:
            note = (f"{t['parallel']} tests at a time within {fmt(t['memory_gib'])} GiB; {fmt(t['declared_gib'])} "
                    "GiB declared in all" + (f"; {note}" if note else ""))
        lines.append(f"| {name} | {fmt(t.get('allotted_s'))} | {fmt(t.get('wall_s'))} | {note[:300]} |")
    return lines


SECTION_TABLES = {"parity": parity_table, "attention": attention_tables,
                  "layernorm": lambda rows: bandwidth_table("LayerNorm", rows, "hidden N"),
                  "softmax": lambda rows: bandwidth_table("Softmax", rows, "row length N"),
                  "model": model_table, "trainer": trainer_section, "hostsync": hostsync_section}


def section_tables(name: str, rows: list[dict]) -> list[str]:
    """The Markdown of one section's rows (none when it has none)."""
    return SECTION_TABLES[name](rows) if rows else []


def markdown(results: dict, images: Iterable[str] = ()) -> str:
    """The whole report; ``images``: file names of charts in the same folder, linked at the end."""
    lines = header(results["meta"]) + ["", "## Summary", "", "```", *summary(results), "```"]
    for name in SECTION_TABLES:
        lines += section_tables(name, results.get(name) or [])
    lines += problems(results) + timing(results)
    images = list(images)
    if images:
        lines += ["", "## Charts", ""] + [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"
