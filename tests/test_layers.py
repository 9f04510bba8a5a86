"""The parts depend one way: kernels <- fast <- (backends registry); reference stands alone; the exercises' checks
sit on reference; train and the CLI on top; the front door (scratchformers/__init__.py) only re-exports."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Which scratchformers.* packages each folder may import from (besides itself).
ALLOWED = {
    "kernels": {"kernels"},
    "reference": {"reference"},
    "fast": {"fast", "kernels", "reference"},
    "exercises": {"exercises", "reference"},
    "train": {"train", "fast", "kernels", "reference", "exercises"},
}


def imported_modules(path: Path) -> list[str]:
    """Every module an ``import`` statement of ``path`` names, at any depth (function-level imports included)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_each_folder_imports_only_the_layers_below_it(folder: str) -> None:
    wrong = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] == "scratchformers" and (len(parts) < 2 or parts[1] not in ALLOWED[folder]):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_the_front_door_only_re_exports() -> None:
    """scratchformers/__init__.py defines nothing (besides __all__, __version__ and the bare-checkout path hook): every
    name it exports is imported from a part; scratchformers/__main__.py runs the CLI's main."""
    import scratchformers

    tree = ast.parse((ROOT / "scratchformers" / "__init__.py").read_text(encoding="utf-8"))
    assert not [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    re_exported = {alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
                   and (node.module or "").startswith("scratchformers.") for alias in node.names}
    assert set(scratchformers.__all__) - {"__version__"} == re_exported
    assert sorted(path.name for path in (ROOT / "scratchformers").iterdir() if path.name != "__pycache__") == [
        "__init__.py", "__main__.py"]
    assert "from scratchformers.train.cli import main" in (ROOT / "scratchformers" / "__main__.py").read_text()


def front_door_modules(part: str) -> list[str]:
    """The modules of ``part`` (e.g. "fast") that the front door imports names from."""
    tree = ast.parse((ROOT / "scratchformers" / "__init__.py").read_text(encoding="utf-8"))
    return sorted(node.module for node in tree.body if isinstance(node, ast.ImportFrom)
                  and (node.module or "").startswith(f"scratchformers.{part}."))


BLOCKED_RUN = """
import sys
from pathlib import Path

FRONT_DOOR = set(sys.argv[2].split(",")) - {""}  # imported by scratchformers/__init__.py, which runs first
FRONT_DOOR |= {name.rpartition(".")[0] for name in FRONT_DOOR}  # with their folder (a namespace package: no code)

class Blocked:
    def find_spec(self, name, path=None, target=None):
        blocked = name.split(".")[:2] in (["scratchformers", "fast"], ["scratchformers", "kernels"])
        if blocked and name not in FRONT_DOOR:
            raise ModuleNotFoundError(f"{name} is blocked by the test")
        return None

sys.meta_path.insert(0, Blocked())
import importlib
import torch

for path in sorted(Path(sys.argv[1]).glob("*.py")):
    importlib.import_module("scratchformers.reference." + path.stem)
from scratchformers.reference.config import get_config
from scratchformers.reference.model import GPT

for backends in (dict(attention="reference", layernorm="reference", gelu="reference"),
                 dict(attention="torch_sdpa", layernorm="torch", gelu="torch")):
    model = GPT(get_config("gpt-mini", vocab_size=11, num_layers=1, **backends))
    logits, loss = model(torch.randint(0, 11, (2, 5)), torch.randint(0, 11, (2, 5)))
    loss.backward()
# modules with code (a checkout maps the folders themselves as empty packages), but the front door's tokenizers
blocked = ("scratchformers.fast", "scratchformers.kernels")
loaded = sorted(name for name, module in sys.modules.items()
                if name.startswith(blocked) and getattr(module, "__file__", None) and name not in FRONT_DOOR)
assert not loaded, loaded
print("reference runs alone")
GPT(get_config("gpt-mini", vocab_size=11, num_layers=1, attention="fast"))
"""


def test_reference_imports_and_runs_with_fast_and_kernels_blocked() -> None:
    """Every reference module imports, and a GPT trains a step on every reference and torch backend, while importing
    scratchformers.kernels or scratchformers.fast fails (all of fast but the pure-Python tokenizer trainers that the
    front door re-exports, which the package imports first); asking for attention='fast' there is one clear error."""
    allowed = front_door_modules("fast")
    assert allowed == ["scratchformers.fast.bpe", "scratchformers.fast.bytebpe"] and not front_door_modules("kernels")
    result = subprocess.run([sys.executable, "-c", BLOCKED_RUN, str(ROOT / "reference"), ",".join(allowed)],
                            capture_output=True, text=True)
    assert "reference runs alone" in result.stdout, result.stderr
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: attention='fast' is provided by scratchformers.fast.backends"), last
    assert "blocked by the test" in last and "'reference' or 'torch_sdpa'" in last
