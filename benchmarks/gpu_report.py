"""The Markdown report of a GPU benchmark run, made from its JSON (``gpu_benchmark.json``) alone."""
from __future__ import annotations

from collections.abc import Iterable

ATTENTION_IMPLS = ("ours-flash", "sdpa-flash", "sdpa-efficient", "sdpa-math", "reference", "reference+triton-softmax")


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


def ratio(numerator: dict | None, denominator: dict | None, key: str) -> str:
    """``numerator[key] / denominator[key]`` as ``1.23x``, or blank when either was not measured."""
    if not numerator or not denominator or numerator["status"] != "ok" or denominator["status"] != "ok":
        return ""
    return f"{numerator[key] / denominator[key]:.2f}x"


def header(meta: dict) -> list[str]:
    peaks = [f"bf16 dense {fmt(meta.get('peak_bf16_tflops'), 4)} TFLOP/s" if meta.get("peak_bf16_tflops") else None,
             f"memory {fmt(meta.get('peak_gbps'), 4)} GB/s" if meta.get("peak_gbps") else None]
    run = meta.get("run", {})
    device = meta.get("name")
    if meta.get("memory_gib") is not None:
        device += (f", {fmt(meta['memory_gib'])} GiB, {meta.get('sm_count')} SMs, compute capability "
                   f"{meta.get('capability')}, driver {meta.get('driver')}")
    timer = ("the median of two calls after one warm-up (time.perf_counter)" if run.get("dry_run") else
             f"medians of triton.testing.do_bench (warm-up {fmt(run.get('warmup_ms'))} ms, "
             f"{fmt(run.get('rep_ms'))} ms of repetitions, L2 flushed between runs)")
    lines = [f"# GPU benchmark: {meta.get('name')}", "",
             f"- Device: {device}",
             f"- Software: torch {meta.get('torch')}, triton {meta.get('triton')}, CUDA {meta.get('cuda')}, "
             f"Python {meta.get('python')}",
             f"- Date: {meta.get('date')}; commit {meta.get('git_commit') or 'unknown'}",
             f"- Datasheet peaks used for percentages: {', '.join(p for p in peaks if p) or 'unknown'}",
             f"- Run: {run.get('state', '?')} after {fmt(run.get('elapsed_s'))} s of a {fmt(run.get('budget_s'))} s "
             f"budget; timings: {timer}"]
    if run.get("dry_run"):
        lines.append("- **Dry run** on CPU under the Triton interpreter, tiny shapes: the numbers are meaningless.")
    return lines


def attention_tables(rows: list[dict]) -> list[str]:
    """One table per (mode, dtype, D, causal): T down, implementations across, TFLOP/s with the time."""
    lines = ["", "## Attention", "",
             "Cells: TFLOP/s (milliseconds); FLOPs = 4·B·H·T²·D forward, halved when causal, ×3.5 forward+backward. "
             "`ours ÷ sdpa-flash`: how many times faster ours is (above 1: faster)."]
    impls = [impl for impl in ATTENTION_IMPLS if any(r["impl"] == impl for r in rows)]
    combos = unique((r["mode"], r["dtype"], r["D"], r["causal"]) for r in rows)
    for mode, dtype, D, causal in combos:
        group = [r for r in rows if (r["mode"], r["dtype"], r["D"], r["causal"]) == (mode, dtype, D, causal)]
        lines += ["", f"### {mode}, {dtype}, D = {D}, {'causal' if causal else 'not causal'}", "",
                  "| T | B × H | " + " | ".join(impls) + " | ours ÷ sdpa-flash |",
                  "|---:|---:|" + "---:|" * (len(impls) + 1)]
        for T in unique(r["T"] for r in group):
            at_t = {r["impl"]: r for r in group if r["T"] == T}
            cells = [f"{fmt(r['tflops'])} ({fmt(r['ms'])})" if r["status"] == "ok" else short_status(r)
                     for r in (at_t.get(impl) for impl in impls) if r is not None]
            some = next(iter(at_t.values()))
            speedup = ratio(at_t.get("sdpa-flash"), at_t.get("ours-flash"), "ms")
            lines.append(f"| {T} | {some['B']} × {some['H']} | " + " | ".join(cells) + f" | {speedup} |")
    return lines


def bandwidth_table(title: str, rows: list[dict], size_label: str) -> list[str]:
    """Copy, torch and ours per size: GB/s and % of peak, forward and backward, and ours vs torch."""
    lines = ["", f"## {title}", "",
             "Cells: GB/s (% of peak bandwidth). Bytes counted: forward 2·M·N, backward 3·M·N elements (one read of "
             "each input, one write of each output). `ours ÷ torch`: how many times faster ours is.", "",
             f"| {size_label} | M | copy | torch fwd | ours fwd | ours ÷ torch fwd | torch bwd | ours bwd "
             "| ours ÷ torch bwd |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for N in unique(r["N"] for r in rows):
        at_n = {(r["impl"], r["mode"]): r for r in rows if r["N"] == N}
        cells = [bandwidth_cell(at_n.get(("copy", "fwd")))]
        for mode in ("fwd", "bwd"):
            torch_row, ours_row = at_n.get(("torch", mode)), at_n.get(("ours-triton", mode))
            cells += [bandwidth_cell(torch_row), bandwidth_cell(ours_row), ratio(torch_row, ours_row, "ms")]
        M = next(iter(at_n.values()))["M"]
        lines.append(f"| {N} | {M} | " + " | ".join(cells) + " |")
    return lines


def bandwidth_cell(row: dict | None) -> str:
    """``GB/s (% of peak)``, a short status, or blank when not measured."""
    if row is None:
        return ""
    if row["status"] != "ok":
        return short_status(row)
    return f"{fmt(row['gbps'], 4)} ({fmt(row['pct_peak'], 2)}%)" if row.get("pct_peak") else fmt(row["gbps"], 4)


def model_table(rows: list[dict]) -> list[str]:
    lines = ["", "## GPT-2 (124M) training step", "",
             "bf16 autocast, fused AdamW, random tokens. MFU: (6·N + 12·L·T·C) FLOPs per token × tokens/s ÷ the "
             "bf16 dense peak. `first steps`: the warm-up steps, including compilation and autotuning.", "",
             "| variant | attention | layernorm | batch × T | ms / step | tokens/s | MFU | peak memory | first steps "
             "| loss |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['variant']} | {r['attention']} | {r['layernorm']} | | {short_status(r)} | | | | | |")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        memory = f"{r['peak_memory_gib']:.1f} GiB" if r.get("peak_memory_gib") is not None else "n/a"
        lines.append(f"| {r['variant']} | {r['attention']} | {r['layernorm']} | {r['batch']} × {r['seq_len']} | "
                     f"{fmt(r.get('ms_per_step'))} | {fmt(r.get('tokens_per_s'), 4)} | {mfu} | {memory} | "
                     f"{r['first_steps_s']:.1f} s | {r['loss']:.3f} |")
    by_name = {r["variant"]: r for r in rows}
    for kind in ("eager", "compiled"):
        speedup = ratio(by_name.get(f"fast-{kind}"), by_name.get(f"torch-{kind}"), "tokens_per_s")
        if speedup:
            lines.append(f"\nFast path ÷ torch path, {kind}: {speedup} the tokens/s.")
    return lines


def problems(results: dict) -> list[str]:
    """Every distinct refusal and error, with where it happened."""
    seen: dict[str, list[str]] = {}
    for section in ("attention", "layernorm", "softmax", "model"):
        for r in results.get(section, []):
            if r["status"].startswith(("error", "skipped: refused")):
                where = r.get("impl") or r.get("variant")
                seen.setdefault(f"{section} {where}: {r['status']}", []).append(
                    f"{r.get('dtype', '')} D{r['D']} T{r['T']}{' causal' if r['causal'] else ''} {r['mode']}"
                    if section == "attention" else r.get("mode", ""))
    if not seen:
        return []
    lines = ["", "## Refusals and errors", ""]
    for status, places in seen.items():
        lines.append(f"- {status} ({len(places)}×, e.g. {places[0].strip() or 'all'})")
    return lines


def timing(results: dict) -> list[str]:
    warm = results.get("timing", {}).get("warm") or {}
    sections = results.get("timing", {}).get("sections", {})
    lines = ["", "## Where the time went", ""]
    if warm:
        states: dict[str, int] = {}
        for job in warm.get("jobs", {}).values():
            states[job["status"]] = states.get(job["status"], 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in states.items()) or "no jobs"
        lines.append(f"- compile-ahead jobs: {fmt(warm.get('wall_s'))} s wall, {summary}")
    lines += [f"- {name}: {fmt(s.get('wall_s'))} s (allotted {fmt(s.get('allotted_s'))} s)"
              + (f"; stopped by {s['error']}" if s.get("error") else "") for name, s in sections.items()]
    return lines


def markdown(results: dict, images: Iterable[str] = ()) -> str:
    """The whole report; ``images``: file names of plots in the same folder, linked at the end."""
    lines = header(results["meta"])
    if results.get("attention"):
        lines += attention_tables(results["attention"])
    if results.get("layernorm"):
        lines += bandwidth_table("LayerNorm", results["layernorm"], "hidden N")
    if results.get("softmax"):
        lines += bandwidth_table("Softmax", results["softmax"], "row length N")
    if results.get("model"):
        lines += model_table(results["model"])
    lines += problems(results) + timing(results)
    images = list(images)
    if images:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def unique(values: Iterable) -> list:
    """The distinct values in first-seen order."""
    return list(dict.fromkeys(values))
