"""What a learner reads holds together: the reading path covers the textbook in one order and every file it names
exists, the README leads to it before the benchmarks, the kernels' arguments are commented, and nothing speaks of
the project's history."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READING_PATH = ROOT / "reference" / "README.md"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def reading_path_rows() -> list[list[str]]:
    """The cells of each numbered row of the reading path's table."""
    rows = [line.strip("|").split("|") for line in READING_PATH.read_text(encoding="utf-8").splitlines()
            if re.match(r"\| \d+ \|", line)]
    return [[cell.strip() for cell in row] for row in rows]


def linked_files(markdown: str) -> list[str]:
    return re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", markdown)


def test_the_reading_path_is_one_numbered_order() -> None:
    rows = reading_path_rows()
    assert [int(row[0]) for row in rows] == list(range(1, len(rows) + 1))
    assert all(len(row) == 5 and row[1] and row[2] for row in rows), rows


def test_the_reading_path_names_the_exercises_in_the_graders_order() -> None:
    """The exercise column, read top to bottom, is `scratchformers check --list`'s order, each exercise once."""
    from scratchformers.exercises.checks.catalogue import ORDER

    named = [name for row in reading_path_rows() for name in re.findall(r"`(\w+)`", row[3])]
    assert tuple(named) == ORDER


def test_every_reference_module_is_on_the_reading_path_and_every_link_resolves() -> None:
    text = READING_PATH.read_text(encoding="utf-8")
    links = linked_files(text)
    assert not [link for link in links if not (READING_PATH.parent / link).is_file()]
    modules = {path.name for path in (ROOT / "reference").glob("*.py")}
    assert not modules - {Path(link).name for link in links if "/" not in link}


def test_the_readme_leads_to_the_tour_the_reading_path_and_the_exercises_before_the_benchmarks() -> None:
    sections = re.split(r"^## ", README, flags=re.M)
    titles = [section.splitlines()[0] for section in sections[1:]]
    assert titles[0] == "Quick start", titles
    assert titles.index("Learning path") < titles.index("What is inside") < titles.index("Tests and benchmarks")
    learning = sections[2]
    assert "(notebooks/transformers_from_scratch.ipynb)" in learning and "(reference/README.md)" in learning
    assert "`exercises/`" in learning
    assert README.index("## Learning path") < README.index("nanoGPT") < README.index("## Tests and benchmarks")


def launched_kernels(tree: ast.Module) -> list[ast.FunctionDef]:
    """The @triton.jit functions of a module that are launched (passed to a launcher or indexed by a grid), not the
    device functions they call."""
    jitted = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)
              and any("jit" in ast.unparse(decorator) for decorator in node.decorator_list)}
    launched = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            launched |= {arg.id for arg in node.args if isinstance(arg, ast.Name) and arg.id in jitted}
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in jitted:
            launched.add(node.value.id)
    return [jitted[name] for name in sorted(launched)]


@pytest.mark.parametrize("module", ["softmax", "layernorm", "flash_attention"])
def test_every_argument_of_every_kernel_is_commented(module: str) -> None:
    """As in the Triton tutorials: each line of a kernel's parameter list says what its parameters are."""
    source = (ROOT / "kernels" / f"{module}.py").read_text(encoding="utf-8")
    lines = source.splitlines()
    kernels = launched_kernels(ast.parse(source))
    assert kernels
    bare = [f"{kernel.name}({arg.arg})" for kernel in kernels for arg in kernel.args.args
            if "  # " not in lines[arg.lineno - 1]]
    assert not bare, bare


HISTORY = re.compile(r"\bthe seed\b|\bseed's\b|\boriginal notebook\b|\bissue #?\d+", re.I)


def learner_texts() -> dict[str, str]:
    """README, the reading path, the textbook's and the kernels' sources, the exercises, the tour's markdown."""
    paths = [ROOT / "README.md", READING_PATH, *sorted((ROOT / "reference").glob("*.py")),
             *sorted((ROOT / "kernels").glob("*.py")), *sorted((ROOT / "exercises").rglob("*.py"))]
    texts = {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in paths}
    notebook = json.loads((ROOT / "notebooks" / "transformers_from_scratch.ipynb").read_text(encoding="utf-8"))
    texts["notebook markdown"] = "\n".join("".join(cell["source"]) for cell in notebook["cells"]
                                           if cell["cell_type"] == "markdown")
    return texts


def test_what_a_learner_reads_names_the_notebook_it_follows_instead_of_the_projects_history() -> None:
    found = {name: HISTORY.findall(text) for name, text in learner_texts().items()}
    assert not {name: words for name, words in found.items() if words}
