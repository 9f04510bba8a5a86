"""Hunt for wrong solutions the exercise grader still passes: mutate correct solutions, grade every mutant.

    python tools/hunt_exercise_mutants.py                     # every exercise
    python tools/hunt_exercise_mutants.py softmax attention   # some of them
    python tools/hunt_exercise_mutants.py --limit 20 --json out.json

The seeds are the correct solutions written from scratch in tests/exercises/other_style/ (and the online softmax of
tests/exercises/reference/). Each mutant changes one thing, the way a slip of the keyboard or of the mind would:
an operator (+ -, * /, ** *, < <=, == !=), a number (n -> n + 1, n - 1, 2n, 0), a sign, an axis (-1 <-> 0), keepdims,
a slice bound, a NumPy function (max <-> min, sum <-> mean, sin <-> cos, tril <-> triu), one operand of a binary
operation dropped, or the two arguments of a call swapped. A mutant that the grader passes "survives": either it
computes the same thing (an equivalent mutant, e.g. a changed bound that no case reaches) or the grader has a gap.
Each survivor is printed with its line, for a person to decide which.
"""
from __future__ import annotations

import argparse
import ast
import copy
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "tests" / "exercises"
TIMEOUT_S = 300  # a kernel mutant's whole check, in a process of its own (the grader stops any check at 60 s)
MEMORY_LIMIT = 6 * 2**30  # bytes of address space: a mutant that grows a list forever gets a MemoryError instead

SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
         ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
         ast.FloorDiv: ast.Div, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd}
FUNCTIONS = {"max": "min", "min": "max", "sum": "mean", "mean": "sum", "sin": "cos", "cos": "sin", "tril": "triu",
             "triu": "tril", "exp": "exp2", "maximum": "minimum", "sqrt": "abs", "logaddexp": "maximum"}


def seed_path(name: str) -> Path:
    return SEEDS / ("reference" if name == "online_softmax" else "other_style") / f"{name}.py"


def mutants(source: str) -> Iterator[tuple[str, str]]:
    """(description, mutated source) for every single-point mutation of ``source``."""
    tree = ast.parse(source)
    nodes = [node for node in ast.walk(tree) if not isinstance(node, (ast.Import, ast.ImportFrom))]
    for index, node in enumerate(nodes):
        for description, change in _changes(node):
            mutated = copy.deepcopy(tree)
            target = [n for n in ast.walk(mutated) if not isinstance(n, (ast.Import, ast.ImportFrom))][index]
            if change(target) is False:
                continue
            try:
                text = ast.unparse(ast.fix_missing_locations(mutated))
            except Exception:
                continue
            yield f"line {getattr(node, 'lineno', '?')}: {description}", text


def _changes(node: ast.AST) -> Iterator[tuple[str, object]]:
    if isinstance(node, ast.BinOp):
        if type(node.op) in SWAPS:
            new = SWAPS[type(node.op)]
            yield f"{ast.unparse(node)}: {type(node.op).__name__} -> {new.__name__}", lambda n: setattr(n, "op", new())
        for side in ("left", "right"):
            yield f"{ast.unparse(node)} -> {ast.unparse(getattr(node, side))}", _replace_with(side)
    if isinstance(node, ast.Compare) and type(node.ops[0]) in SWAPS:
        new = SWAPS[type(node.ops[0])]
        yield f"{ast.unparse(node)}: {type(node.ops[0]).__name__} -> {new.__name__}", \
            lambda n: n.ops.__setitem__(0, new())
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        for value in {node.value + 1, node.value - 1, node.value * 2, 0} - {node.value}:
            yield f"{node.value!r} -> {value!r}", lambda n, value=value: setattr(n, "value", value)
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield f"{node.value} -> {not node.value}", lambda n: setattr(n, "value", not n.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        yield f"{ast.unparse(node)} -> {ast.unparse(node.operand)}", _replace_with("operand")
    if isinstance(node, ast.Attribute) and node.attr in FUNCTIONS:
        yield f"{ast.unparse(node)} -> .{FUNCTIONS[node.attr]}", lambda n: setattr(n, "attr", FUNCTIONS[n.attr])
    if isinstance(node, ast.Call) and len(node.args) == 2:
        yield f"{ast.unparse(node)}: arguments swapped", lambda n: setattr(n, "args", n.args[::-1])
    if isinstance(node, ast.keyword) and node.arg == "axis" and isinstance(node.value, (ast.UnaryOp, ast.Constant)):
        yield f"{ast.unparse(node)} -> axis=0 / -1", lambda n: setattr(
            n, "value", ast.Constant(0) if ast.unparse(n.value) == "-1" else ast.UnaryOp(ast.USub(), ast.Constant(1)))


def _replace_with(field: str):
    """Replace a node by one of its children, in place: its class and fields become the child's."""
    def change(node: ast.AST) -> None:
        child = getattr(node, field)
        node.__class__ = child.__class__
        node.__dict__.clear()
        node.__dict__.update(child.__dict__)
    return change


def grade(name: str, source: str) -> str:
    """'killed', 'survived', 'broken' (does not load: the grader says so, exit 2) or 'timeout'. Kernels are graded
    in a process of their own: Triton's interpreter does not check bounds, and a store past the end of a tensor can
    corrupt the heap and abort the process ('crashed', which kills the mutant too)."""
    from scratchformers.exercises.checks import catalogue
    from scratchformers.exercises.checks.core import UsageError, load_learner, run_checks

    exercise = catalogue.exercise(name)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.py"
        path.write_text(source, encoding="utf-8")
        if "triton" in exercise.needs:
            return _grade_in_a_process(name, path)
        try:
            report = run_checks(exercise, load_learner(exercise, path), io.StringIO())
        except UsageError:
            return "broken"
    return "timeout" if report.too_slow else "survived" if report.ok else "killed"


def _grade_in_a_process(name: str, path: Path) -> str:
    command = [sys.executable, "-m", "scratchformers", "check", name, str(path)]
    try:
        code = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        return "timeout"
    return {0: "survived", 1: "killed", 2: "broken"}.get(code, "crashed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exercises", nargs="*", help="exercise names (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many mutants per exercise")
    parser.add_argument("--json", metavar="PATH", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    import torch

    from scratchformers.exercises.checks import catalogue

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    unknown = set(args.exercises) - set(catalogue.ORDER)
    if unknown:
        parser.error(f"no exercise named {', '.join(sorted(unknown))}")
    results = {}
    for name in args.exercises or catalogue.ORDER:
        outcomes = []
        for number, (description, source) in enumerate(mutants(seed_path(name).read_text(encoding="utf-8"))):
            if args.limit is not None and number >= args.limit:
                break
            outcomes.append((description, grade(name, source)))
        counts = {kind: sum(outcome == kind for _, outcome in outcomes)
                  for kind in ("killed", "crashed", "survived", "broken", "timeout")}
        print(f"{name}: {len(outcomes)} mutants, " + ", ".join(f"{n} {kind}" for kind, n in counts.items()), flush=True)
        for description, outcome in outcomes:
            if outcome in ("survived", "timeout"):
                print(f"    {outcome}: {description}", flush=True)
        results[name] = outcomes
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
