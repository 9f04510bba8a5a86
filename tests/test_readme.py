"""The README is the user's first contact: its Python examples run, and CI runs its test command."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, re.S)


@pytest.mark.parametrize("index", range(len(re.findall(r"```python\n", README))))
def test_python_examples_run(index: int, tmp_path: Path) -> None:
    code = re.findall(r"```python\n(.*?)```", README, re.S)[index]
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_quick_start_is_two_commands_and_ci_runs_the_test_command() -> None:
    install_and_train, install_and_test = (block.strip() for block in bash_blocks()[:2])
    assert install_and_train == "pip install -e . && scratchformers train"
    assert install_and_test.startswith('pip install -e ".[test]"')
    assert install_and_test in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_command_the_readme_names_exists() -> None:
    from scratchformers.train.cli import COMMANDS

    pairs = re.findall(r"`scratchformers (\w+)|^scratchformers (\w+)", README, re.M)
    named = {inline or line_start for inline, line_start in pairs}
    assert {"train", "sample", "tokenize"} <= named
    assert named <= set(COMMANDS), named - set(COMMANDS)
