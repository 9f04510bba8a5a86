"""Grade your own implementation of an exercise with the library's parity checks.

Each exercise is a stub to fill in (spec, formula, shapes, about how many lines): copy them all into a folder of
yours with --init, write one, and check it. The checks are the test suite's own: the same oracles (torch, autograd,
tiktoken, the reference model), tolerances and hypothesis strategies. One line per check; on the first failure,
the smallest failing case hypothesis can find, the largest error and where, the expected and computed numbers, and
a hint naming the likely mistake.

Exit status: 0 every check passes, 1 a check fails (or the function is not written yet), 2 a usage error.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scratchformers.exercises.checks.core import Exercise

EXAMPLES = """examples:
  scratchformers check --init my_exercises          # copy every stub into my_exercises/
  scratchformers check softmax my_exercises/softmax.py
  scratchformers check softmax my_exercises         # a folder: checks my_exercises/softmax.py
  scratchformers check --list                       # the exercises in reading order
  scratchformers check --list my_exercises          # ... and which of yours pass
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("exercise", nargs="?", help="the exercise to check (see --list)")
    parser.add_argument("file", nargs="?", help="your implementation: a .py file, or a folder holding EXERCISE.py")
    parser.add_argument("--list", nargs="?", const="", default=None, metavar="DIR",
                        help="list the exercises in reading order; with DIR, check the files in it and show which pass")
    parser.add_argument("--init", metavar="DIR", help="copy the exercise stubs into DIR (created if needed)")
    parser.add_argument("--force", action="store_true", help="with --init: overwrite files already in DIR")


def _error(message: str) -> int:
    print(f"scratchformers check: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    modes = [args.exercise is not None, args.list is not None, args.init is not None]
    if sum(modes) != 1:
        return _error("give EXERCISE FILE, or --list [DIR], or --init DIR (see scratchformers check --help)")
    if args.force and args.init is None:
        return _error("--force only goes with --init")
    if args.exercise is not None and args.file is None:
        return _error(f"which file? scratchformers check {args.exercise} FILE (a .py file, or a folder holding "
                      f"{args.exercise}.py)")
    if args.list is not None and args.file is not None:
        return _error("--list takes one folder")
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        return _error("the checks need hypothesis, which is not installed: pip install hypothesis")
    from scratchformers.exercises.checks.core import UsageError

    try:
        if args.init is not None:
            return _init(Path(args.init), args.force)
        if args.list is not None:
            return _list(Path(args.list) if args.list else None)
        return _check(args.exercise, Path(args.file))
    except UsageError as error:
        return _error(str(error))


def _exercise(name: str) -> Exercise:
    """The exercise ``name``, with Triton's interpreter switched on if it needs Triton and there is no GPU."""
    from scratchformers.exercises.checks import catalogue
    from scratchformers.exercises.checks.core import UsageError

    if name not in catalogue.ORDER:
        close = difflib.get_close_matches(name, catalogue.ORDER, n=1)
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"no exercise named {name!r}{suggestion} (scratchformers check --list shows them)")
    exercise = catalogue.exercise(name)
    if "triton" in exercise.needs:
        _interpret_triton_without_a_gpu()
    for module, install in exercise.needs.items():
        try:
            importlib.import_module(module)
        except ImportError:
            raise UsageError(f"the {name} exercise needs {module}, which is not installed: {install}") from None
    return exercise


def _interpret_triton_without_a_gpu() -> None:
    """Triton kernels run on CPU tensors in its interpreter; it must be switched on before a kernel is defined."""
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


# Set in the process that grades a Triton kernel on behalf of the one the learner started (see _check).
CHILD = "SCRATCHFORMERS_CHECK_CHILD"


def _check(name: str, path: Path) -> int:
    from scratchformers.exercises.checks.core import load_learner, run_checks

    exercise = _exercise(name)
    if "triton" in exercise.needs and not os.environ.get(CHILD):
        return _check_in_a_child(name, path)
    learner = load_learner(exercise, path)
    print(f"{exercise.name}: {exercise.summary}")
    print(f"checking {learner.path}")
    report = run_checks(exercise, learner, sys.stdout)
    if report.ok:
        print(f"all {report.total} checks pass")
        return 0
    print(f"{report.passed} of {report.total} checks pass; fix the first failure and run this again")
    return 1


def _check_in_a_child(name: str, path: Path) -> int:
    """Grade a kernel in a process of its own: Triton's interpreter does not check bounds, and a store past the end of
    a tensor can corrupt memory and kill the process that runs it. The child's output is the learner's report."""
    command = [sys.executable, "-m", "scratchformers", "check", name, str(path)]
    code = subprocess.run(command, env={**os.environ, CHILD: "1"}).returncode
    if code in (0, 1, 2):
        return code
    print(f"FAIL  the process that ran your kernel died ({_death(code)}): Triton's interpreter does not check bounds, "
          f"so a tl.load or tl.store outside the tensor can corrupt memory; mask every access (mask=cols < N)")
    return 1


def _death(code: int) -> str:
    try:
        return signal.Signals(-code).name if code < 0 else f"exit status {code}"
    except ValueError:
        return f"signal {-code}"


def _list(folder: Path | None) -> int:
    from scratchformers.exercises.checks import catalogue
    from scratchformers.exercises.checks.core import UsageError

    if folder is not None and not folder.is_dir():
        raise UsageError(f"no such folder: {folder}")
    width = max(map(len, catalogue.ORDER))
    for number, name in enumerate(catalogue.ORDER, 1):
        exercise = catalogue.exercise(name)
        line = f"{number:2}. {name:<{width}}  {exercise.summary}"
        if folder is not None:
            line = f"{line}\n    {_status(name, folder / f'{name}.py')}"
        print(line, flush=True)
    if folder is None:
        print("\nstart with: scratchformers check --init DIR, then scratchformers check EXERCISE DIR")
    return 0


def _status(name: str, path: Path) -> str:
    """One line: does the learner's file for exercise ``name`` pass?"""
    from scratchformers.exercises.checks.core import UsageError, load_learner, run_checks

    if not path.is_file():
        return f"-- no {path}"
    try:
        exercise = _exercise(name)
        if "triton" in exercise.needs and not os.environ.get(CHILD):
            return _status_in_a_child(name, path)
        report = run_checks(exercise, load_learner(exercise, path))
    except UsageError as error:
        return f"error: {error}"
    if report.ok:
        return f"PASS  all {report.total} checks pass ({path})"
    if report.not_implemented is not None:
        return f"--    not implemented yet ({path})"
    return f"FAIL  {report.passed} of {report.total} checks pass ({path}); scratchformers check {name} {path}"


def _status_in_a_child(name: str, path: Path) -> str:
    """:func:`_status` of a kernel, graded in a process of its own (see :func:`_check_in_a_child`)."""
    command = [sys.executable, "-m", "scratchformers", "check", name, str(path)]
    child = subprocess.run(command, env={**os.environ, CHILD: "1"}, capture_output=True, text=True)
    last = (child.stdout.strip().splitlines() or [""])[-1]
    if child.returncode == 0:
        return f"PASS  {last} ({path})"
    if child.returncode == 2:
        return f"error: {child.stderr.strip().removeprefix('scratchformers check: error: ')}"
    if child.returncode != 1:
        return f"FAIL  the process that ran your kernel died ({_death(child.returncode)}); " \
               f"scratchformers check {name} {path}"
    if "not implemented yet" in child.stdout:
        return f"--    not implemented yet ({path})"
    return f"FAIL  {last.split(';')[0]} ({path}); scratchformers check {name} {path}"


def _init(folder: Path, force: bool) -> int:
    from scratchformers.exercises.checks import catalogue
    from scratchformers.exercises.checks.core import UsageError

    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a folder")
    targets = {name: folder / f"{name}.py" for name in catalogue.ORDER}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing and not force:
        raise UsageError(f"{len(existing)} of the files exist already ({', '.join(existing[:3])}"
                         f"{', ...' if len(existing) > 3 else ''}); nothing was copied. Use another folder, or "
                         f"--force to overwrite them with the empty stubs")
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in targets.items():
        shutil.copyfile(catalogue.stub(name), target)
    print(f"copied {len(targets)} exercise stubs into {folder}/, in reading order:")
    print("  " + ", ".join(catalogue.ORDER))
    print(f"write one, then check it: scratchformers check {catalogue.ORDER[0]} {folder}")
    return 0
